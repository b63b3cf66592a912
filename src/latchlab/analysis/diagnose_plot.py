"""Figures of diagnostics, drawn from the frames of ``latchlab.analysis.diagnose`` alone.

Every function takes a ``diagnose.Diagnostics`` (its frames, each with an ``epoch``
column) and returns a matplotlib ``Figure``; ``latchlab.analysis.plot.save`` writes it; ``write``
writes the three figures and ``summary.csv`` that ``latchlab diagnose`` produces.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from latchlab.analysis import diagnose as D
from latchlab.analysis import plot as P

plt = P.plt  # Agg backend and the package's paper style, set by latchlab.analysis.plot

CLASS_NAME = {0: "negative sequences (y = 0)", 1: "positive sequences (y = 1)"}
CLASS_SHORT = {0: "negative (y = 0)", 1: "positive (y = 1)"}
CLASS_COLOUR = {0: "#1f77b4", 1: "#d62728"}
_GATE_TITLE = {
    "contraction": "contraction |U (1 - h_t²)|",
    "f": "forget gate f_t",
    "i": "input gate i_t",
    "o": "output gate o_t",
    "z": "update gate z_t (retention)",
    "r": "reset gate r_t",
}


def _epoch_colours(epochs):
    cmap = plt.get_cmap("viridis")
    n = max(len(epochs) - 1, 1)
    return {e: cmap(0.9 * k / n) for k, e in enumerate(epochs)}


def _acc(d: D.Diagnostics, epoch) -> str:
    s = d.summary
    if s is None or "val_acc" not in s:
        return ""
    v = s.loc[s.epoch == epoch, "val_acc"]
    return "" if v.empty or not np.isfinite(v.iloc[0]) else f", val acc {v.iloc[0]:.2f}"


def _finish(fig, d: D.Diagnostics, title: str):
    fig.suptitle(f"{title}\n{d.label}", fontsize=8)
    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _epoch_legend(fig, axes):
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=7, frameon=False)


_STATE_NAME = {"whole": "(h,c)"}


def _class_panels(frame: pd.DataFrame, column: str, rows: list, row_height: float, extra: float):
    """A figure with a row per value of ``frame[column]`` in ``rows`` and a column per class,
    and each panel's ``(row index, class, axes, its rows of frame)``."""
    fig, axes = plt.subplots(
        len(rows), 2, figsize=(8.4, row_height * len(rows) + extra), squeeze=False, sharex=True, layout="constrained"
    )
    panels = [
        (i, k, axes[i, k], cast(pd.DataFrame, frame[(frame[column] == v) & (frame["class"] == k)]))
        for i, v in enumerate(rows)
        for k in (0, 1)
    ]
    return fig, axes, panels


def gradient_figure(d: D.Diagnostics):
    """``||dl/dh_t||`` (and for LSTMs ``||dl/dc_t||`` and the whole state's
    ``||dl/d(h_t, c_t)||``) against ``t``: one panel per class (columns) and state (rows),
    one line per epoch, log scale."""
    g = d.gradients
    assert g is not None, "needs the gradients part"
    states = list(dict.fromkeys(g.state))
    if d.model.cell.kind not in D.LSTMS:  # the whole state is h: the same row again
        states = [st for st in states if st != "whole"]
    colours = _epoch_colours(d.epochs)
    fig, axes, panels = _class_panels(g, "state", states, 2.7, 1.2)
    for r, k, ax, sub in panels:
        for e in d.epochs:
            de = sub[sub.epoch == e]
            v = de.grad_norm.where(de.grad_norm > 0)
            ax.plot(de.t, v, color=colours[e], lw=1.2, marker=".", ms=3, label=f"epoch {e}{_acc(d, e)}")
        ax.set_yscale("log")
        ax.set_title(f"{CLASS_NAME[k]}", fontsize=8)
        ax.set_ylabel(f"mean ||dL/d{_STATE_NAME.get(states[r], states[r])}_t||")
        if r == len(states) - 1:
            ax.set_xlabel("step t (the label's signal enters at t = 1)")
        ax.grid(alpha=0.3, which="both", lw=0.4)
    _epoch_legend(fig, axes)
    what = "||dL/dh_t||, ||dL/dc_t|| and ||dL/d(h,c)_t||" if len(states) > 1 else "||dL/dh_t||"
    return _finish(fig, d, f"gradient through time: {what} of each sequence's loss, mean over the class")


def retention_figure(d: D.Diagnostics):
    """Each gate along the sequences (rows: the retention factor first), per class
    (columns), one line per epoch; the legend gives each epoch's half-life."""
    r = d.retention
    assert r is not None, "needs the retention part"
    r = cast(pd.DataFrame, r[r.unit == 0])
    gates = list(dict.fromkeys(r.sort_values("retention", ascending=False, kind="stable").gate))
    colours = _epoch_colours(d.epochs)
    s = d.summary
    fig, axes, panels = _class_panels(r, "gate", gates, 2.4, 1.3)
    for row, k, ax, sub in panels:
        gate = gates[row]
        for e in d.epochs:
            de = sub[sub.epoch == e]
            label = f"epoch {e}"
            if row == 0 and s is not None:
                se = s[s.epoch == e].iloc[0]
                label += f": mean {se.retention_mean:.3f}, half-life {se.half_life:.3g} steps"
            ax.plot(de.t, de.value, color=colours[e], lw=1.2, marker=".", ms=3, label=label)
            if e == d.epochs[-1]:
                ax.fill_between(
                    de.t, de.value - de.value_std, de.value + de.value_std, color=colours[e], alpha=0.15, lw=0
                )
        if gate == "contraction":
            ax.axhline(1.0, color="k", lw=0.7, ls=":")
        else:
            ax.set_ylim(-0.03, 1.03)
        ax.set_title(f"{_GATE_TITLE.get(gate, gate)}, {CLASS_SHORT[k]}", fontsize=8)
        ax.set_ylabel(gate)
        if row == len(gates) - 1:
            ax.set_xlabel("step t")
        ax.grid(alpha=0.3, lw=0.4)
    _epoch_legend(fig, axes)
    kind = d.model.cell.kind
    what = (
        "the SRNN's per-step retention |dh_t/dh_(t-1)| = |U (1 - h_t²)|"
        if kind == "srnn"
        else f"the gates along the sequences (retention: {D.RETENTION[kind]}); band: ± std, last epoch"
    )
    return _finish(fig, d, f"retention: {what}")


def _pick(epochs, n_max: int):
    if len(epochs) <= n_max:
        return list(epochs)
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, n_max)).astype(int))
    return [epochs[i] for i in idx]


_FP_STYLE: dict[str, dict[str, Any]] = {
    "stable": dict(ls="-", lw=1.4, color="0.35"),
    "unstable": dict(ls="--", lw=1.0, color="0.35"),
    "marginal": dict(ls=":", lw=1.2, color="0.35"),
}
# a line of marginal fixed points: a band h_lo .. h_hi
_LINE_STYLE: dict[str, Any] = dict(color="0.35", alpha=0.18, lw=0)


def dynamics_figure(d: D.Diagnostics, max_panels: int = 6):
    """The state ``h_t`` of example sequences (thin) and class means (thick) against ``t``,
    with the input-free map's fixed points (grey: solid stable, dashed unstable, dotted
    marginal, a grey band for a line of marginal fixed points) and the head's decision boundary (black dash-dot; shaded: predicted
    positive), one panel per epoch (at most ``max_panels``, evenly spaced)."""
    tr, fp, bd, s = d.trajectories, d.fixed_points, d.boundary, d.summary
    assert tr is not None and fp is not None and bd is not None, "needs trajectories, fixed_points, boundary"
    tr = cast(pd.DataFrame, tr[tr.unit == 0])
    shown = _pick(d.epochs, max_panels)
    cols = min(3, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.3 * cols + 0.4, 2.6 * rows + 1.3), squeeze=False, sharey=True, layout="constrained"
    )
    for ax in axes.ravel()[len(shown) :]:
        ax.set_visible(False)
    for ax, e in zip(axes.ravel(), shown):
        de = tr[tr.epoch == e]
        for k in (0, 1):
            dk = cast(pd.DataFrame, de[de["class"] == k])
            for j, dj in dk[dk.example >= 0].groupby("example"):
                ax.plot(dj.t, dj.h, color=CLASS_COLOUR[k], lw=0.6, alpha=0.45)
            m = dk[dk.example == -1]
            ax.plot(m.t, m.h, color=CLASS_COLOUR[k], lw=2.0, label=f"mean, y = {k}")
        for f in fp[fp.epoch == e].itertuples():
            if f.kind == "marginal_line":  # pyright: ignore[reportAttributeAccessIssue]
                ax.axhspan(f.h_lo, f.h_hi, **_LINE_STYLE)  # pyright: ignore[reportAttributeAccessIssue]
            else:
                ax.axhline(f.h, **_FP_STYLE[f.kind])  # pyright: ignore[reportAttributeAccessIssue]
        b = bd[bd.epoch == e].iloc[0]
        if np.isfinite(b.h) and -1.0 <= b.h <= 1.0:
            ax.axhline(b.h, color="k", ls="-.", lw=0.9)
            lo, hi = (b.h, 1.0) if b.positive_above else (-1.0, b.h)
            ax.axhspan(lo, hi, color=CLASS_COLOUR[1], alpha=0.06, lw=0)
        elif np.isfinite(b.h):
            ax.text(0.02, 0.02, f"boundary h* = {b.h:.3g} (outside)", transform=ax.transAxes, fontsize=6.5)
        ax.set_ylim(-1.02, 1.02)
        se = s[s.epoch == e].iloc[0] if s is not None else None
        title = f"epoch {e}{_acc(d, e)}"
        if se is not None:
            title += f"\nU = {se.recurrent:.3g}, {se.n_stable} stable / {se.n_fixed} fixed pts"
            if se.marginal_line:
                title += " (a line)"
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("step t")
        ax.grid(alpha=0.3, lw=0.4)
    for ax in axes[:, 0]:
        ax.set_ylabel("h_t (unit 0)")
    handles: list[Artist] = [
        Line2D([], [], color=CLASS_COLOUR[1], lw=2, label="positive (y = 1): mean, examples"),
        Line2D([], [], color=CLASS_COLOUR[0], lw=2, label="negative (y = 0): mean, examples"),
        Line2D([], [], **_FP_STYLE["stable"], label="stable fixed point (input-free map)"),
        Line2D([], [], **_FP_STYLE["unstable"], label="unstable fixed point"),
        Line2D([], [], color="k", ls="-.", lw=0.9, label="head's decision boundary (shaded: says y = 1)"),
    ]
    if (fp.kind == "marginal_line").any():
        handles.append(Rectangle((0, 0), 1, 1, **_LINE_STYLE, label="line of marginal fixed points"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7, frameon=False)
    return _finish(fig, d, "dynamics: state trajectories, fixed points and decision boundary")


def write(d: D.Diagnostics, out: str | Path) -> list[Path]:
    """``gradient_through_time.png``, ``retention.png``, ``dynamics.png`` and ``summary.csv``
    (plus the tidy frames as CSV) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in (
        ("gradient_through_time", gradient_figure),
        ("retention", retention_figure),
        ("dynamics", dynamics_figure),
    ):
        paths += P.save(make(d), out / name, formats=("png",))
    for name in ("summary", "gradients", "retention", "fixed_points", "trajectories"):
        df: pd.DataFrame = getattr(d, name)
        p = out / f"{name}.csv"
        df.to_csv(p, index=False)
        paths.append(p)
    return paths
