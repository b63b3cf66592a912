"""Figures of loss landscapes, drawn from the frames of ``latchlab.analysis.landscape`` alone.

Every function takes the tidy frames (``pascanu``, ``pascanu_paths``, ``surface``) and
returns a matplotlib ``Figure``; ``latchlab.analysis.plot.save`` writes it as PNG and SVG.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.lines import Line2D

from latchlab.analysis import landscape as L
from latchlab.analysis import plot as P

plt = P.plt  # Agg backend and the package's paper style, set by latchlab.analysis.plot

_KIND_STYLE: dict[Hashable, dict[str, Any]] = {
    "gd": dict(color="#d62728", ls="-", lw=1.0, label="plain gradient descent"),
    "clipped": dict(color="white", ls="-", lw=0.7, label="with norm clipping"),
}


def _grid(df: pd.DataFrame, x: str, y: str, v: str = "loss"):
    """Columns ``x, y`` and values ``v`` of one panel as 2-D arrays (rows: y)."""
    t = df.pivot_table(index=y, columns=x, values=v, sort=True)
    return t.columns.to_numpy(), t.index.to_numpy(), t.to_numpy()


def _norm(loss: np.ndarray) -> LogNorm:
    pos = loss[np.isfinite(loss) & (loss > 0)]
    hi = float(pos.max()) if pos.size else 1.0
    lo = max(float(pos.min()) if pos.size else hi * 1e-4, hi * 1e-5)
    return LogNorm(lo, hi)


def _axes(n: int, extra: int = 0, width: float = 3.3, height: float = 3.0, cols: int = 3):
    total = n + extra
    cols = min(cols, total)
    rows = math.ceil(total / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 1.6, height * rows + 0.9), squeeze=False)
    axes = list(axes.ravel())
    for ax in axes[total:]:
        ax.set_visible(False)
    return fig, axes[:n], axes[n:total]


def _thrown(ax, d: pd.DataFrame, x: str, y: str) -> str | None:
    """``(x, y)`` where a path ends if that is outside the panel, else None."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    end = d.iloc[-1]
    if x0 <= end[x] <= x1 and y0 <= end[y] <= y1:
        return None
    return f"({end[x]:.3g}, {end[y]:.3g})"


def _margins(fig, bottom: float = 0.55, top: float = 0.6) -> None:
    """Margins in inches (titles above, axis labels and legends below), whatever the rows."""
    h, w = fig.get_figheight(), fig.get_figwidth()
    fig.subplots_adjust(bottom=bottom / h, top=1 - top / h, hspace=0.5, wspace=0.35, right=1 - 1.35 / w)


def _colorbar(fig, mesh, label: str) -> None:
    w = fig.get_figwidth()
    cax = fig.add_axes([1 - 1.15 / w, 0.2, 0.12 / w, 0.62])
    fig.colorbar(mesh, cax=cax, label=label)


def pascanu_figure(grid: pd.DataFrame, paths: pd.DataFrame | None = None, cliff: bool = True):
    """Pascanu et al. (2013) Fig. 6 as heat maps: one panel per ``T`` of ``log E_T(w, b)``.

    Args:
        grid: ``landscape.pascanu`` frame.
        paths: ``landscape.pascanu_paths`` frame (optional): every start's plain (red,
            solid) and clipped (white, dashed) gradient-descent path, and a last panel with
            the longest step each path took against ``T``.
        cliff: draw ``landscape.pascanu_cliff``, where the surface is discontinuous as
            ``T -> inf`` (black dotted).
    Returns:
        the figure.
    """
    Ts = sorted(grid["T"].unique())
    fig, axes, extra = _axes(len(Ts), 1 if paths is not None else 0)
    norm = _norm(grid.loss.to_numpy())
    mesh = None
    for T, ax in zip(Ts, axes):
        w, b, loss = _grid(cast(pd.DataFrame, grid[grid["T"] == T]), "w", "b")
        mesh = ax.pcolormesh(w, b, loss, norm=norm, cmap="viridis", shading="auto", rasterized=True)
        ax.set_xlim(w.min(), w.max())
        ax.set_ylim(b.min(), b.max())
        if cliff:
            ww = np.linspace(w.min(), w.max(), 400)
            ax.plot(
                ww,
                L.pascanu_cliff(ww),
                color="black",
                ls=":",
                lw=1.0,
                label="cliff as T → ∞ (unstable fixed point at $x_0$)",
            )
        if paths is not None:
            thrown = []
            at_T = cast(pd.DataFrame, paths[paths["T"] == T])
            by_path = at_T.groupby(["kind", "start"], sort=False)
            for (kind, _), d in by_path:  # pyright: ignore[reportGeneralTypeIssues]  (the keys are tuples)
                st = _KIND_STYLE[kind]
                ax.plot(d.w, d.b, **{k: v for k, v in st.items() if k != "label"})
                ax.plot(d.w.iloc[-1], d.b.iloc[-1], marker="x", ms=4, mew=1.0, color=st["color"])
                if (end := _thrown(ax, d, "w", "b")) is not None:
                    thrown.append(end)
            s = paths[(paths["T"] == T) & (paths.step == 0)]
            ax.plot(s.w, s.b, "o", mfc="none", mec="white", ms=5, mew=1.0)
            if thrown:
                ax.text(
                    0.97,
                    0.03,
                    "plain GD thrown off to\n" + "\n".join(thrown),
                    transform=ax.transAxes,
                    ha="right",
                    va="bottom",
                    fontsize=6.5,
                    color="#d62728",
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", alpha=0.85, lw=0),
                )
        ax.set_title(f"T = {T}")
        ax.set_xlabel("w")
        ax.set_ylabel("b")
    _colorbar(fig, mesh, r"$E_T = (\sigma(x_T) - 0.7)^2$ (log scale)")
    handles = [Line2D([], [], color="black", ls=":", label="cliff as T → ∞")]
    if paths is not None:
        handles += [
            Line2D([], [], **{**st, "color": "0.4" if k == "clipped" else st["color"]}) for k, st in _KIND_STYLE.items()
        ]
        handles.append(Line2D([], [], ls="none", marker="o", mfc="none", mec="0.3", label="start"))
        handles.append(Line2D([], [], ls="none", marker="x", color="0.3", label="end"))
        _longest_steps(extra[0], paths)
    axes[0].figure.legend(
        handles=handles, loc="lower center", ncol=len(handles), frameon=False, bbox_to_anchor=(0.45, 0.0)
    )
    fig.suptitle(r"Pascanu et al. (2013) Fig. 6: $x_t = w\,\sigma(x_{t-1}) + b$, $x_0 = 0.5$", y=0.99)
    _margins(fig, bottom=0.85)
    return fig


def _longest_steps(ax, paths: pd.DataFrame) -> None:
    s = L.path_summary(paths)
    for kind, d in s.groupby("kind", sort=False):
        st = _KIND_STYLE[kind]
        color = "0.3" if kind == "clipped" else st["color"]
        for _, e in d.groupby("start"):
            ax.plot(e["T"], e.longest_step, color=color, ls=st["ls"], marker="o", ms=3, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("T")
    ax.set_ylabel("longest step of the path")
    ax.set_title("longest step (one line per start)")


def surface_figure(df: pd.DataFrame, trajectory: pd.DataFrame | None = None, value: str = "loss", log: bool = True):
    """One panel per ``T`` of a ``landscape.surface`` frame, the centre marked.

    Args:
        df: ``landscape.surface`` frame.
        trajectory: optional frame with columns ``x, y`` (and ``epoch``): points to draw in
            order over every panel (e.g. a stored member's parameters after each epoch).
        value: ``loss`` or ``accuracy``.
        log: colour on a log scale (loss only).
    Returns:
        the figure.
    """
    Ts = sorted(df["T"].unique())
    fig, axes, _ = _axes(len(Ts))
    v = df[value].to_numpy()
    norm = _norm(v) if log and value == "loss" else Normalize(np.nanmin(v), np.nanmax(v))
    x_name, y_name = df.x_name.iloc[0], df.y_name.iloc[0]
    centre = L.center_rows(df)
    mesh = None
    for T, ax in zip(Ts, axes):
        x, y, z = _grid(cast(pd.DataFrame, df[df["T"] == T]), "x", "y", value)
        mesh = ax.pcolormesh(x, y, z, norm=norm, cmap="viridis", shading="auto", rasterized=True)
        c = cast(pd.DataFrame, centre[centre["T"] == T])
        if len(c):
            ax.plot(c.x, c.y, marker="*", color="white", mec="black", ms=9, ls="none")
            ax.set_title(f"T = {T}   centre {value} {float(c[value].iloc[0]):.3g}")
        else:
            ax.set_title(f"T = {T}")
        if trajectory is not None and len(trajectory):
            ax.plot(trajectory.x, trajectory.y, color="#d62728", marker="o", ms=2.5, lw=0.9)
        ax.set_xlim(x.min(), x.max())
        ax.set_ylim(y.min(), y.max())
        ax.set_xlabel(x_name)
        ax.set_ylabel(y_name)
    label = {"loss": "cross-entropy loss", "accuracy": "accuracy"}.get(value, value)
    _colorbar(fig, mesh, label + (" (log scale)" if log and value == "loss" else ""))
    _margins(fig)
    return fig
