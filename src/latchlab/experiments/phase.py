"""The phase diagram of latching: success against the initial retention, set by hand.

An intervention on the candidate explanation "a member latches if its state starts with a
long memory": the initial per-step retention ``r`` (``latchlab.analysis.initial``) is set
through the ``values`` of each member's configuration and swept continuously, everything
else as the seed's protocol (stratified split, Keras initialisation otherwise):

* LSTM: forget-gate bias ``b_f`` over ``BIASES`` (-2 ... 6), ``r = f = rsig(b_f)``;
* GRU: update-gate bias ``b_z`` over the same biases, so the same retentions (``r = z``:
  in Keras' convention ``h = z h + (1 - z) h~``, ``z`` keeps the state);
* SRNN: recurrent weight ``U`` (0.25 ... 2). Below 1, ``r = U``; the values are those
  retentions of the gated cells that lie in ``[0.25, 1)``, so all three cells share these
  points exactly (paired by seed: members of one seed share its data), plus 0.25. At and
  above 1 (``SRNN_BISTABLE``) the map ``h -> tanh(U h)`` is marginal (``U = 1``) or
  bistable: ``r = U (1 - h̄^2)`` at its attractors is small, but the sign is held by them.

Each point runs at every ``T`` of the scale with the same seeds. ``results.csv`` has one
row per member with its configured value, ``retention`` and ``half_life`` (``ln 0.5 / ln
r``; ``inf`` for ``r >= 1``); ``phase.png`` draws success against the initial half-life, all
cells on one axis, one panel per ``T``. ``latchlab explain`` runs it at its own scale and
tests whether one curve of half-life against ``T`` serves every cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from latchlab import config
from latchlab.analysis import plot
from latchlab.analysis.diagnose import half_life
from latchlab.analysis.initial import gate_retention, srnn_retention
from latchlab.analysis.stats import wilson
from latchlab.analysis.success import SUCCESS_THRESHOLD, succeeded
from latchlab.errors import ConfigError
from latchlab.experiments.experiment import Experiment, Table, figure_files, scale_with, write_results
from latchlab.experiments.seed import PROTOCOL as SEED_PROTOCOL

BIASES = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
"""The LSTM's forget-gate and the GRU's update-gate biases at initialisation (full scale)."""
SRNN_LOW = 0.25
"""The SRNN's smallest recurrent weight."""
SRNN_BISTABLE = (1.0, 1.25, 1.5, 2.0)
"""The SRNN's recurrent weights at and above 1 (marginal, then bistable)."""
CELLS = ("srnn", "lstm", "gru")
PARAMETER = {"srnn": "recurrent", "lstm": "bias_f", "gru": "bias_z"}
"""The initial value each cell's retention is set by (a ``values`` entry)."""
SCALES = {
    # the four lengths of the issue, 30 seeds per point: 21-22 points per cell family
    "full": {"T": (20, 50, 100, 200), "repeats": 30, "biases": BIASES},
    # a smoke run: every other bias, 8 seeds
    "quick": {"T": (20, 50, 100, 200), "repeats": 8, "biases": (-2.0, 0.0, 2.0, 4.0, 6.0)},
}
PROTOCOL = {**SEED_PROTOCOL, "split": "stratified"}
"""The seed's protocol with the fixed split; each point sets its cell, gates and one initial value."""
DEFAULT_PRESET = "keras3"
"""Sigmoid gates: ``rsig(b)`` is continuous in ``b``. Under Keras 2's hard sigmoid every
``b >= 2.5`` gives ``r = 1`` exactly (an infinite half-life); ``--preset keras2`` runs it."""
RESULT_COLUMNS = [
    "cell",
    "preset",
    "parameter",
    "value",
    "retention",
    "half_life",
    "regime",
    "T",
    "seed",
    "member_id",
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
]
REGIMES = {
    "decay": "r < 1 at a stable origin: the state decays towards 0",
    "no decay": "r = 1: a marginal map (SRNN U = 1) or a saturated gate (f = 1, z = 1)",
    "bistable": "SRNN U > 1: the sign is held by two attractors; r is the return rate to them",
}


@cache
def _retention(cell: str, preset: str, value: float) -> float:
    from latchlab.core.cells import Cell

    if cell == "srnn":
        return srnn_retention(value, 0.0)
    c = Cell.from_preset(cell, 1, preset)
    G = len(c.gates)
    bias = np.zeros((2, G) if c.split_bias else (G,), np.float32)
    k = c.gates.index("f" if cell == "lstm" else "z")
    if c.split_bias:
        bias[0, k] = value
    else:
        bias[k] = value
    cp = {"kernel": np.zeros((1, G), np.float32), "recurrent": np.zeros((1, G), np.float32), "bias": bias}
    return gate_retention(c, cp)


def retention(cell: str, value: float, preset: str = DEFAULT_PRESET) -> float:
    """The initial retention at the operating point of a one-unit ``cell`` whose
    ``PARAMETER[cell]`` is ``value`` (``latchlab.analysis.initial``): the SRNN's
    ``srnn_retention(U, 0)``; the LSTM's ``f`` and the GRU's ``z`` at the origin,
    ``rsig(value)`` in float32 under ``preset``'s gates."""
    return _retention(cell, preset, float(value))


def values(cell: str, biases=BIASES, preset: str = DEFAULT_PRESET) -> list[float]:
    """The configured values of ``cell``: the biases for the gated cells; for the SRNN the
    gated cells' retentions in ``[SRNN_LOW, 1)`` (so the cells share those points), and
    ``SRNN_LOW`` and ``SRNN_BISTABLE``, sorted."""
    if cell != "srnn":
        return [float(b) for b in biases]
    shared = [retention("lstm", b, preset) for b in biases]
    return sorted({SRNN_LOW, *(r for r in shared if SRNN_LOW <= r < 1.0), *SRNN_BISTABLE})


def configs(scale: str = "quick", preset: str = DEFAULT_PRESET, seed: int = 0, **over) -> list[config.SweepConfig]:
    """One sweep per cell (``CELLS``): ``PARAMETER[cell]`` over ``values(cell)`` x the
    scale's ``T``, ``repeats`` seeds from ``seed``.

    Args:
        over: replaces ``T``, ``repeats`` or ``biases`` of the scale, or fields of
            ``PROTOCOL`` (tests use it to run tiny versions).
    """
    s, rest = scale_with(SCALES, scale, over)
    biases = list(s["biases"])
    if not biases or any(
        isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) for b in biases
    ):
        raise ConfigError("biases", f"must be a non-empty list of finite numbers, got {biases!r}")
    return [
        config.from_dict(
            {
                **PROTOCOL,
                **rest,
                "cell": cell,
                "preset": preset,
                "name": f"phase-{scale}-{cell}",
                "repeats": s["repeats"],
                "seed": seed,
                "grid": {
                    "values": [{PARAMETER[cell]: v} for v in values(cell, biases, preset)],
                    "T": list(s["T"]),
                },
            }
        )
        for cell in CELLS
    ]


def _regime(cell: str, value: float, r: float) -> str:
    if cell == "srnn" and value > 1.0:
        return "bistable"
    return "no decay" if r >= 1.0 else "decay"


def label(df: pd.DataFrame, cfgs) -> pd.DataFrame:
    """One row per member of ``cfgs`` (``configs``' sweeps) from ``df`` (epoch or member
    rows): its final epoch with ``parameter``, ``value``, ``retention``, ``half_life`` and
    ``regime`` columns."""
    info = {}
    for cfg in cfgs:
        for m in cfg.members():
            name, v = next(iter(m.run.values))
            r = retention(m.run.cell, v, m.run.preset)
            info[m.id] = (name, float(v), r, float(half_life(r)), _regime(m.run.cell, v, r))
    f = plot.final(df.drop(columns=["variant"], errors="ignore").assign(variant=""))
    f = cast(pd.DataFrame, f[f.member_id.isin(info)]).copy()
    for k, col in enumerate(("parameter", "value", "retention", "half_life", "regime")):
        f[col] = f.member_id.map(lambda i, k=k: info[i][k])
    f["variant"] = f.cell
    order = {c: k for k, c in enumerate(CELLS)}
    return (
        f.assign(_c=f.cell.map(order))
        .sort_values(["_c", "value", "T", "seed"], kind="stable")
        .drop(columns="_c")
        .reset_index(drop=True)
    )


def summary(df: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """Per cell, configured value and ``T``: members, successes, rate and Wilson 95 %
    interval, with the point's retention, half-life and regime."""
    keys = ["cell", "value", "retention", "half_life", "regime", "T"]
    g = df.groupby(keys, sort=False).val_acc
    out = pd.DataFrame(
        {"members": g.size(), "successes": g.apply(lambda a: int(succeeded(a, threshold).sum()))}
    ).reset_index()
    out["success_rate"] = out.successes / out.members
    out["wilson_low"], out["wilson_high"] = wilson(out.successes, out.members)
    return out


def half_life_at(df: pd.DataFrame, level: float = 0.5, threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """Per cell and ``T``, the shortest initial half-life among the ``decay`` and ``no decay``
    points from which on the success rate stays at or above ``level`` (NaN if it never
    does): where each cell's curve crosses ``level``."""
    s = summary(df, threshold)
    rows = []
    groups = cast(Iterable[tuple[tuple, pd.DataFrame]], s[s.regime != "bistable"].groupby(["cell", "T"], sort=False))
    for (cell, T), d in groups:
        d = d.sort_values("half_life")
        ok = d.success_rate.to_numpy() >= level
        tail = np.flatnonzero(~ok)
        k = 0 if not len(tail) else int(tail[-1]) + 1
        rows.append({"cell": cell, "T": T, "half_life": float(d.half_life.iloc[k]) if k < len(d) else math.nan})
    return pd.DataFrame(rows)


_NAMES = {"srnn": "SRNN (recurrent weight U)", "lstm": "LSTM (forget bias b_f)", "gru": "GRU (update bias b_z)"}


def figure(df: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD):
    """Success against the initial half-life (log axis), one panel per ``T``, one line per
    cell with its Wilson 95 % band; the SRNN's bistable points (``U > 1``) as open markers
    on a dotted line; infinite half-lives (``r >= 1``) at the axis' right end (``∞``)."""
    s = summary(df, threshold)
    Ts = sorted(s["T"].unique())
    finite = s.half_life[np.isfinite(s.half_life) & (s.half_life > 0)]
    lo = float(finite.min()) / 1.5 if len(finite) else 0.1
    top = float(finite.max()) if len(finite) else 1.0
    inf_x = 10 ** (math.ceil(math.log10(max(top, 1.0))) + 1)
    fig, axes = plot.plt.subplots(1, len(Ts), figsize=(3.2 * len(Ts) + 0.4, 3.7), sharey=True, squeeze=False)
    for ax, T in zip(axes[0], Ts):
        for cell in CELLS:
            colour, marker = plot._STYLE[cell]
            d = cast(pd.DataFrame, s[(s.cell == cell) & (s["T"] == T)])
            for regime, style in (("held", "-"), ("bistable", ":")):
                part = d[d.regime == "bistable"] if regime == "bistable" else d[d.regime != "bistable"]
                part = part.assign(x=np.where(np.isfinite(part.half_life), part.half_life, inf_x)).sort_values("x")
                if part.empty:
                    continue
                open_marker = regime == "bistable"
                ax.plot(
                    part.x,
                    part.success_rate,
                    color=colour,
                    marker=marker,
                    ms=3.5,
                    lw=1,
                    ls=style,
                    mfc="white" if open_marker else colour,
                    label=_NAMES[cell] if not open_marker else "SRNN, U > 1 (bistable)",
                )
                ax.fill_between(part.x, part.wilson_low, part.wilson_high, color=colour, alpha=0.12, lw=0)
        ax.axvline(T, color="0.75", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_xlim(lo, inf_x * 1.6)
        ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50, 100, 1000) if lo <= t < inf_x / 3]
        ax.set_xticks([*ticks, inf_x], [*(f"{t:g}" for t in ticks), "∞"], fontsize=7)
        ax.minorticks_off()
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"T = {T}")
        ax.set_xlabel("initial half-life (steps)")
    axes[0][0].set_ylabel(f"success (val acc ≥ {threshold:g})\nband: Wilson 95 %")
    n = int(s.members.max()) if len(s) else 0
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=len(labels),
        frameon=False,
        fontsize=7,
        title=f"{n} seeds per point; grey dashed line: T",
        title_fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.13, 1, 1))
    return fig


def _compute(runner, scale: str = "quick", preset: str = DEFAULT_PRESET, **over) -> pd.DataFrame:
    cfgs = configs(scale, preset, **over)
    return label(runner(cfgs), cfgs)


def _outputs(df: pd.DataFrame, out: Path) -> list[Path]:
    return [write_results(df, out, RESULT_COLUMNS), *plot.save(figure(df), Path(out) / "phase")]


def _table(df: pd.DataFrame) -> Table:
    s = summary(df)
    Ts = sorted(s["T"].unique())
    rows = []
    groups = cast(Iterable[tuple[tuple, pd.DataFrame]], s.groupby(["cell", "value", "half_life", "regime"], sort=False))
    for (cell, value, hl, regime), d in groups:
        by = dict(zip(d["T"], zip(d.successes, d.members)))
        rows.append(
            [cell, f"{value:g}", f"{hl:.3g}", regime, *(f"{by[T][0]}/{by[T][1]}" if T in by else "" for T in Ts)]
        )
    frame = pd.DataFrame(rows, columns=["cell", "value", "half-life", "regime", *(f"T = {T}" for T in Ts)])
    return Table(f"successes (val acc ≥ {SUCCESS_THRESHOLD:g}) / members against the initial half-life", frame)


EXPERIMENT = Experiment("phase", SCALES, configs, _compute, _outputs, _table, ("results.csv", *figure_files("phase")))
