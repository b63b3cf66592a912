"""Figures of ``latchlab reproduce bengio1994``: Fig. 1 (dynamics), Fig. 2a and 2b (convergence).

Fig. 2 is drawn from the per-trial rows of ``results.csv`` (and, for the overlay, the seed
set-up's per-member frame) alone, so it can be redrawn without training.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from latchlab.experiments import bengio1994 as B
from latchlab.analysis import plot as P
from latchlab.analysis.stats import wilson

plt = P.plt


def fig1(ws_map=(0.5, 1.5, 3.0), w_sim=(1.1, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)):
    """(a) ``x -> tanh(w x)`` against the identity with fixed points (filled: stable, open:
    unstable); (b) the flip threshold ``h*(w)``, analytic, with simulated thresholds.

    Returns:
        ``(figure, table)``: the table holds ``w``, analytic and simulated ``h*``.
    """
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    x = np.linspace(-1.5, 1.5, 400)
    ax.plot(x, x, color="0.5", lw=0.8, ls="--", label="identity")
    for i, w in enumerate(ws_map):
        (line,) = ax.plot(x, np.tanh(w * x), lw=1.2, color=f"C{i}", label=f"tanh({w:g} x)")
        for xf, stable in B.fixed_points(w):
            ax.plot([xf], [xf], "o", ms=5, color=line.get_color(), mfc=line.get_color() if stable else "white")
    ax.set_xlabel("$x_{t-1}$")
    ax.set_ylabel("$x_t$")
    ax.set_title("(a) x → tanh(w x); ● stable, ○ unstable fixed point", fontsize=8)
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    w = np.linspace(1.0, 5.0, 200)
    bx.plot(w, B.flip_threshold(w), color="C0", lw=1.2, label="h*(w) = √(w(w−1)) − artanh √(1−1/w)")
    sim = B.simulated_flip_threshold(np.asarray(w_sim))
    bx.plot(w_sim, sim, "x", color="C3", ms=6, label="simulation (bisection, 20000 steps)")
    bx.set_xlabel("recurrent weight w")
    bx.set_ylabel("constant input h needed to flip −x̄ → +x̄")
    bx.set_title("(b) flip threshold: saddle-node of a → w tanh(a) + h", fontsize=8)
    bx.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    table = pd.DataFrame({"w": w_sim, "h_star": B.flip_threshold(np.asarray(w_sim)), "h_star_simulated": sim})
    return fig, table


def _criterion(cfg) -> str:
    import textwrap

    return textwrap.fill(
        f"converged: all {cfg.n_test} fresh test sequences of the right sign and mean loss "
        f"< {cfg.loss_threshold:g} within {cfg.epochs} epochs ({cfg.optimizer}, lr {cfg.lr:g}, "
        f"{cfg.n_train} training sequences)",
        95,
    )


def fig2a(rows: pd.DataFrame, cfg):
    """Convergence frequency over the grid of initial weight ``w0`` and noise variance ``s``."""
    d = cast(pd.DataFrame, rows[rows.figure == "2a"])
    freq = d.groupby(["w0", "s"]).converged.mean().unstack("s")
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    im = ax.imshow(freq.values, origin="lower", cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(freq.shape[1]), [f"{s:g}" for s in freq.columns])
    ax.set_yticks(range(freq.shape[0]), [f"{w:g}" for w in freq.index])
    for i in range(freq.shape[0]):
        for j in range(freq.shape[1]):
            v = freq.values[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if v < 0.6 else "k")
    ax.set_xlabel("noise variance s")
    ax.set_ylabel("initial recurrent weight w0")
    n = d.groupby(["w0", "s"]).size().min()
    T, L = int(d["T"].iloc[0]), int(d["L"].iloc[0])
    ax.set_title(f"Fig. 2a: convergence frequency (T = {T}, L = {L}, {n} trials per cell)", fontsize=8)
    fig.colorbar(im, ax=ax, label="fraction of trials converged")
    fig.text(0.01, 0.01, _criterion(cfg), fontsize=6)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def fig2b(rows: pd.DataFrame, cfg, seed_final: pd.DataFrame | None = None, threshold: float = P.SUCCESS):
    """Convergence frequency against T with Wilson 95 % bands; optionally the seed's softmax
    set-up (one-unit SRNN, Keras-2, Adam, 5 epochs) with success = val acc >= ``threshold``."""
    d = rows[rows.figure == "2b"]
    g = d.groupby("T").converged.agg(["sum", "size"]).reset_index()
    lo, hi = wilson(g["sum"], g["size"])
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    s, w0 = d.s.iloc[0], d.w0.iloc[0]
    (line,) = ax.plot(
        g["T"],
        g["sum"] / g["size"],
        "o-",
        ms=3,
        lw=1.2,
        color="C0",
        label=f"Bengio 1994 neuron, s = {s:g}, w0 = {w0:g} ({int(g['size'].min())} trials)",
    )
    ax.fill_between(g["T"], lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    if seed_final is not None and len(seed_final):
        k = seed_final.assign(ok=seed_final.val_acc >= threshold).groupby("T").ok.agg(["sum", "size"]).reset_index()
        lo2, hi2 = wilson(k["sum"], k["size"])
        (line2,) = ax.plot(
            k["T"],
            k["sum"] / k["size"],
            "s--",
            ms=3,
            lw=1.0,
            color="C3",
            label=f"seed set-up: 1-unit SRNN + softmax, Adam, noise std "
            f"{seed_final.noise.iloc[0]:g} (val acc ≥ {threshold:g}; {int(k['size'].min())} repeats)",
        )
        ax.fill_between(k["T"], lo2, hi2, color=line2.get_color(), alpha=0.12, lw=0)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("frequency of convergence\nband: Wilson 95 %")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Fig. 2b: convergence against sequence length", fontsize=8)
    ax.legend(frameon=False, fontsize=6.5, loc="upper right")
    fig.text(0.01, 0.01, _criterion(cfg), fontsize=6)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
