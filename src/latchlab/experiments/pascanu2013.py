"""Pascanu, Mikolov & Bengio (2013) Fig. 6: the loss cliff of ``x_t = w sigmoid(x_{t-1}) + b``.

The error surface over a ``(w, b)`` grid for several lengths T, with gradient-descent paths
with and without norm clipping (``analysis.landscape`` computes both; its ``PASCANU_*``
constants are the defaults, declared there once).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from latchlab.analysis import landscape as L
from latchlab import limits
from latchlab.errors import ConfigError
from latchlab.validate import Int, Number, checked
from latchlab.experiments.experiment import Experiment, Table, figure_files, scale_with, write_results

SCALES = {
    # the one scale: the documented grid, lengths, starts and descent settings
    "quick": {
        "T": L.PASCANU_T,
        "points": 201,
        "w": L.PASCANU_W,
        "b": L.PASCANU_B,
        "lr": L.PASCANU_LR,
        "clip": L.PASCANU_CLIP,
        "steps": L.PASCANU_STEPS,
    },
}


def settings(scale: str = "quick", **over) -> dict:
    """The scale's settings with ``over`` replacing any of them, checked."""
    s, rest = scale_with(SCALES, scale, over)
    if rest:
        raise ConfigError(next(iter(rest)), "unknown setting", tuple(SCALES[scale]))
    T = list(s["T"])
    if not T or any(isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in T):
        raise ConfigError("T", f"must be integers >= 1, got {s['T']!r}")
    if not 3 <= s["points"] <= 2001:
        raise ConfigError("points", f"must be in [3, 2001], got {s['points']}")
    for name in ("w", "b"):
        if not isinstance(s[name], (tuple, list)) or len(s[name]) != 2:
            raise ConfigError(name, f"range must be lo,hi, got {s[name]!r}")
        lo, hi = s[name]
        for v in (lo, hi):
            checked(Number(), v, name)  # finite in float32, as the surface is computed
        if not lo < hi:
            raise ConfigError(name, f"range must be lo,hi with lo < hi, got {lo:g},{hi:g}")
        if len(np.unique(np.linspace(lo, hi, s["points"]).astype(np.float32))) < s["points"]:
            raise ConfigError(  # the surface is computed in float32: its points would coincide
                name, f"range {lo:g},{hi:g} is below float32's resolution for {s['points']} points; widen it"
            )
    for name in ("lr", "clip"):
        checked(Number(gt=0), s[name], name)
    for t in T:
        checked(Int(ge=1), t, "T")  # XLA's int32 lengths
    checked(Int(ge=1), s["steps"], "steps")
    T = list(dict.fromkeys(T))
    # the surface (points^2 x lengths, a few values each) and every path's rows (lengths x
    # starts x 2 kinds x steps, nine columns in the frame): refused before work if too big
    paths = len(T) * len(L.PASCANU_STARTS) * len(L.PATH_KINDS) * (s["steps"] + 1)
    parts = {
        "surface (points^2 x lengths)": 12 * s["points"] ** 2 * len(T) * limits.F32,
        "paths (lengths x starts x steps)": paths * (6 * limits.F32 + 9 * 8),
        # a descent step's gradient keeps every step of the map for the backward pass, for
        # every path at once
        "gradients through time (paths x T)": len(T)
        * len(L.PASCANU_STARTS)
        * len(L.PATH_KINDS)
        * max(T)
        * 8
        * limits.F32,
    }
    seconds = (s["points"] ** 2 + paths) * len(T) * max(T) * limits.STEP_SECONDS / 10
    limits.check(f"a surface of {s['points']}x{s['points']} points at T={max(T)}, {s['steps']} steps", parts, seconds)
    return {**s, "T": T}


class Reproduction(NamedTuple):
    """The surface (one row per grid point and T), the descent paths and the settings."""

    grid: pd.DataFrame
    paths: pd.DataFrame
    settings: dict


def _compute(runner, scale: str = "quick", **over) -> Reproduction:
    s = settings(scale, **over)
    paths = L.pascanu_paths(s["T"], L.PASCANU_STARTS, s["lr"], s["steps"], s["clip"])  # checks lr, clip, steps
    (w_lo, w_hi), (b_lo, b_hi) = s["w"], s["b"]  # settings() checked both are (lo, hi) pairs
    grid = L.pascanu(s["T"], np.linspace(w_lo, w_hi, s["points"]), np.linspace(b_lo, b_hi, s["points"]))
    return Reproduction(grid, paths, s)


def _outputs(r: Reproduction, out: Path) -> list[Path]:
    from latchlab.analysis import landscape_plot as LP
    from latchlab.analysis import plot

    out = Path(out)
    return [
        write_results(r.grid, out, list(r.grid), "landscape.csv"),
        write_results(r.paths, out, list(r.paths), "paths.csv"),
        *plot.save(LP.pascanu_figure(r.grid, r.paths), out / "fig6"),
    ]


def _table(r: Reproduction) -> Table:
    s = L.path_summary(r.paths)
    frame = pd.DataFrame(
        {
            "T": s["T"].astype(str),
            "start": [str(L.PASCANU_STARTS[k]) for k in s.start],
            "kind": s.kind,
            "final loss": [f"{x:.4f}" for x in s.final_loss],
            "longest step": [f"{x:.3g}" for x in s.longest_step],
            "max ||g||": [f"{x:.3g}" for x in s.max_grad_norm],
        }
    )
    c = r.settings
    return Table(
        f"gradient descent from {len(L.PASCANU_STARTS)} starts, lr {c['lr']:g}, clip {c['clip']:g}, {c['steps']} steps",
        frame,
    )


EXPERIMENT = Experiment(
    "pascanu2013",
    SCALES,
    settings,
    _compute,
    _outputs,
    _table,
    ("landscape.csv", "paths.csv", *figure_files("fig6")),
    store=False,
)
