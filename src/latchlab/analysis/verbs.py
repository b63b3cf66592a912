"""``latchlab diagnose`` and ``latchlab landscape`` as library calls.

Each checks its options and its output directory before any work, computes, writes its files
into ``out`` and returns ``(Table, written paths)``; the CLI prints them.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Sequence

import pandas as pd

from latchlab import limits
from latchlab.core import catalog
from latchlab.errors import ConfigError
from latchlab.outputs import Table, check_dir
from latchlab.validate import Int, Seed, checked

DIAGNOSE_FILES = (
    "gradient_through_time.png",
    "retention.png",
    "dynamics.png",
    "summary.csv",
    "gradients.csv",
    "retention.csv",
    "fixed_points.csv",
    "trajectories.csv",
)
LANDSCAPE_FILES = ("landscape.csv", "trajectory.csv", "landscape.png", "landscape.svg")


def diagnose(
    store: str | Path, member: str, out: str | Path, N: int = 256, epochs: str = "all", examples: int = 5
) -> tuple[Table, list[Path]]:
    """Every diagnostic of a stored member after each of ``epochs`` (``all`` or a
    comma-separated list, 0 = initial), on ``N`` of its validation sequences: figures and
    tables in ``out`` (``analysis.diagnose_plot.write``) and one summary row per epoch."""
    from latchlab.analysis import diagnose as D
    from latchlab.analysis import diagnose_plot as DP
    from latchlab.store import Store

    if not 2 <= N <= 100000 or N % 2:
        raise ConfigError("N", f"must be an even integer in [2, 100000] (half of it a class), got {N}")
    if not 0 <= examples <= 50:
        raise ConfigError("examples", f"must be an integer in [0, 50], got {examples}")
    check_dir(out, "out", [store], DIAGNOSE_FILES)
    with Store(store, create=False) as st:
        row = st.member(member)
        d = D.member(st, row.member_id, N, D.parse_epochs(epochs, int(row.epochs)), examples)
    paths = DP.write(d, out)
    s = d.summary
    assert s is not None  # D.member computes every part, the summary included
    gate = "contr." if s.retention_gate.iloc[0] == "contraction" else s.retention_gate.iloc[0]
    frame = pd.DataFrame(
        {
            "epoch": s.epoch.astype(str),
            "val acc": ["" if v != v else f"{v:.3f}" for v in s.val_acc],
            "grad h1/hT": [f"{v:.3g}" for v in s.grad_ratio_median],
            f"mean {gate}": [f"{v:.3f}" for v in s.retention_mean],
            "half-life": [f"{v:.3g}" for v in s.half_life],
            "U": [f"{v:.3g}" for v in s.recurrent],
            "stable fp": s.n_stable.astype(str),
            "h*": [f"{v:+.2f}" for v in s.boundary_h],
        }
    )
    return Table(d.label, frame), paths


def _check_landscape_options(T: Sequence[int], N: int, points: int, fresh: dict, defaults) -> None:
    """``landscape``'s sizes and a fresh centre's options, checked before any work: the
    centre as a sweep's member with those fields would be (``config.RunConfig``: each
    field's range, a head that fits the task, chrono's gated cells and sigmoid gates), at
    the longest ``T`` and with ``N`` sequences; the seed as a ``validate.Seed``."""
    from latchlab.config import RunConfig

    if isinstance(points, bool) or not isinstance(points, int) or not 3 <= points <= 1001:
        raise ConfigError("points", f"must be an integer in [3, 1001], got {points!r}")
    if not T:
        raise ConfigError("T", "give at least one sequence length")
    for t in T:
        checked(Int(ge=1), t, "T")
    checked(Int(ge=4), N, "N")
    if "seed" in fresh:
        checked(Seed, fresh["seed"], "seed")
    run = {k: fresh.get(k, defaults[k].default) for k in ("cell", "preset", "units", "head", "init", "task")}
    if run["task"] not in catalog.CLASS_TASKS:
        raise ConfigError(
            "task", f"landscapes are drawn for classification tasks, not {run['task']!r}", catalog.CLASS_TASKS
        )
    noise = {"noise": fresh["noise"]} if "noise" in fresh else {}
    RunConfig(**run, **noise, T=max(T), N=N)


def landscape(
    out: str | Path,
    T: Sequence[int] = (5, 20, 50),
    spans: Sequence[float] = (3.0,),
    points: int = 41,
    N: int = 256,
    x: str | None = None,
    y: str | None = None,
    store: str | Path | None = None,
    member: str | None = None,
    epoch: int | None = None,
    **centre,
) -> tuple[Table, list[Path]]:
    """The loss over two named parameters around a centre: a stored member's point (``store``,
    ``member``, ``epoch``) or a fresh member's initial one (``centre``: cell, preset, task,
    units, head, init, seed, noise; ``None`` ones take ``initial_centre``'s defaults).

    Writes ``landscape.csv``, ``trajectory.csv`` (a stored member's path) and the figure.
    Options are checked before any work (the centre's as the sweep fields of their names),
    and a landscape that needs more memory than the machine has is refused
    (``limits.check_landscape``: ``LimitError``) before anything is made or written.
    """
    from latchlab.analysis import landscape as L
    from latchlab.analysis import landscape_plot as LP
    from latchlab.analysis import plot as P
    from latchlab.store import Store

    fresh = {k: v for k, v in centre.items() if v is not None}
    given = {f"--{k}": v for k, v in fresh.items()}
    if (store is None) != (member is None):
        raise ConfigError("member", "give --store and --member together")
    if epoch is not None and member is None:
        raise ConfigError("epoch", "--epoch needs --store and --member")
    if member is not None and given:
        raise ConfigError("member", f"the stored member fixes {', '.join(given)}; drop them")
    defaults = inspect.signature(L.initial_centre).parameters
    _check_landscape_options(T, N, points, fresh, defaults)
    if member is None:  # a fresh centre: its size is known before anything is made
        cell, units, task = (fresh.get(k, defaults[k].default) for k in ("cell", "units", "task"))
        limits.check_landscape(cell, units, catalog.N_IN[task], T, N, points)
    check_dir(out, "out", [store] if store is not None else [], LANDSCAPE_FILES)
    if member is not None:
        assert store is not None  # checked above: --store and --member come together
        with Store(store, create=False) as st:
            c = L.member_centre(st, member, epoch)
        limits.check_landscape(c.model.cell.kind, c.model.cell.units, c.model.n_in, T, N, points)
    else:
        c = L.initial_centre(**fresh, signal_len=1, t_max=max(T))
    dx, dy = L.DEFAULT_AXES.get(c.model.cell.kind, ("recurrent[0,0]", "bias[0]"))
    for field, name in (("x", x), ("y", y)):
        if name is not None and not name.strip():  # '' is no name, not the default's
            raise ConfigError(field, "is empty: give a parameter name, or leave the option out for the default")
    names = [x or dx, y or dy]
    L.parse_name(c.model, c.params, names[0], "x")  # name errors before any work
    L.parse_name(c.model, c.params, names[1], "y")
    df = L.surface(
        c.model,
        c.params,
        names,
        spans[0] if len(spans) == 1 else list(spans),
        c.task,
        list(T),
        points,
        N,
        c.key,
        c.noise,
        c.signal_len,
    )
    traj = L.trajectory_frame(c, names) if c.trajectory else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "landscape.csv", index=False)
    written = [out / "landscape.csv"]
    if traj is not None:
        traj.to_csv(out / "trajectory.csv", index=False)
        written.append(out / "trajectory.csv")
    fig = LP.surface_figure(df, traj)
    fig.suptitle(c.label, fontsize=8)
    written += P.save(fig, out / "landscape")
    rows = []
    for T_, d in df.groupby("T"):
        ctr, m = L.center_rows(d).iloc[0], d.loc[d.loss.idxmin()]
        rows.append([str(T_), f"{ctr.loss:.4f}", f"{ctr.accuracy:.3f}", f"{m.loss:.4f}", f"({m.x:.3g}, {m.y:.3g})"])
    frame = pd.DataFrame(rows, columns=["T", "centre loss", "centre acc", "min loss", f"at ({names[0]}, {names[1]})"])
    return Table(c.label, frame), written
