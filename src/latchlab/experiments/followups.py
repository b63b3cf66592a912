"""The asker's follow-ups: task 1 latching (1 unit) and task 2 bit relay (8 units).

"Task 1: information latching (1 unit; 10 repeats; 10 epochs)" and "Task 2: bit relay (8
units; 10 repeats; 10 epochs)" for SRNN, LSTM and GRU, final validation accuracy (mean ±
std over members) against the seed's lengths. The answer's tuned reruns are
``experiments.answer``, success against the number of units ``experiments.units``; both
share this module's protocol, cells and tasks.

Every part keeps the asker's protocol except where a scale says otherwise: the seed's
protocol (``seed.PROTOCOL``) with 10 epochs and the 20 % stratified validation split (the
answer's fix of the seed's bug), Keras initialisation and Keras-2 gates (hard sigmoid; GRU
``reset_after=False``), which is what ran in 2018. Latching uses one unit, bit relay eight,
as the asker's figures did.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pandas as pd

from latchlab import config
from latchlab.analysis import plot
from latchlab.analysis.success import SUCCESS_THRESHOLD
from latchlab.errors import ConfigError
from latchlab.experiments.experiment import Experiment, Table, figure_files, member_ids, scale_with, write_results
from latchlab.experiments.seed import PROTOCOL as SEED_PROTOCOL
from latchlab.experiments.seed import SEED_LENGTHS

CELLS = ("srnn", "lstm", "gru")
TASK_UNITS = {"latch": 1, "bit_relay": 8}
TASK_TITLES = {"latch": "Task 1: information latching", "bit_relay": "Task 2: bit relay"}
PROTOCOL = {
    **{k: v for k, v in SEED_PROTOCOL.items() if k not in ("task", "units")},
    "epochs": 10,
    "split": "stratified",
}
"""The asker's protocol: the seed's with 10 epochs and the stratified split; task and units per task."""
CELL_STYLE = {"srnn": ("C0", "o"), "lstm": ("C3", "s"), "gru": ("C2", "^")}
RESULT_COLUMNS = [
    "task",
    "cell",
    "units",
    "T",
    "seed",
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "preset",
    "N",
    "lr",
    "batch_size",
    "epochs",
    "member_id",
]


def units_label(n: int) -> str:
    return f"{n} unit" + ("" if n == 1 else "s")


def final_rows(df: pd.DataFrame, cfgs) -> pd.DataFrame:
    """One row per member of ``cfgs`` (a list of sweeps): its final epoch's metrics."""
    ids = member_ids(cfgs)
    f = plot.final(df)
    return (
        cast(pd.DataFrame, f[f.member_id.isin(ids)])
        .sort_values(["task", "cell", "units", "T", "seed"], kind="stable")
        .reset_index(drop=True)
    )


SCALES = {
    # the asker's protocol: the seed's 25 distinct lengths, 10 repeats, N = 10000, 10 epochs
    "full": {"T": sorted(set(SEED_LENGTHS)), "repeats": 10},
    # five lengths from easy to hard, 5 repeats; N and epochs as the asker's
    "quick": {"T": [2, 5, 10, 20, 50], "repeats": 5},
}


def followup_configs(scale: str = "quick", preset: str = "keras2", seed: int = 0, **over) -> list[config.SweepConfig]:
    """The asker's two follow-up sweeps, task 1 (latch, 1 unit) then task 2 (bit_relay, 8 units).

    Args:
        scale: ``full`` (the asker's protocol) or ``quick`` (``SCALES``).
        preset: ``keras2`` (the asker's 2018 Keras) or ``keras3``.
        over: replaces ``T`` or ``repeats`` of the scale, or fields of ``PROTOCOL``.
    Returns:
        one ``SweepConfig`` per task, each a grid over cell x T.
    """
    s, rest = scale_with(SCALES, scale, over)
    return [
        config.from_dict(
            {
                **PROTOCOL,
                **rest,
                "task": task,
                "units": units,
                "preset": preset,
                "name": f"followups-{scale}-{task}",
                "repeats": s["repeats"],
                "seed": seed,
                "grid": {"cell": list(CELLS), "T": list(s["T"])},
            }
        )
        for task, units in TASK_UNITS.items()
    ]


def followup_figure(df: pd.DataFrame, task: str):
    """The asker's figure for one task: final validation accuracy against T, mean ± std
    (error bars, ddof = 0) over members, one line per cell."""
    d = cast(pd.DataFrame, df[df.task == task])
    if d.empty:
        raise ConfigError("task", f"no results for task {task!r}", tuple(sorted(df.task.unique())))
    fig = plot.accuracy_vs_T(d, line="cell", panel="task")
    reps = int(cast(pd.Series, d.groupby(["cell", "T"]).size()).max())  # (grouped with an index: a Series)
    units = sorted(d.units.unique())
    fig.axes[0].set_title(
        f"{TASK_TITLES.get(task, task)} ({', '.join(units_label(u) for u in units)}; "
        f"{reps} repeats; {int(d.epochs.max())} epochs)",
        fontsize=9,
    )
    fig.axes[0].set_ylabel("validation accuracy\n(mean ± std over repeats)")
    fig.axes[0].legend(frameon=False, loc="lower left")
    fig.set_size_inches(5.2, 3.4)
    fig.tight_layout()
    return fig


def followup_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task, cell and T: members, mean and std of validation accuracy, successes."""
    return plot.summary(df, by=("task", "cell", "T"))


def _compute(runner, scale: str = "quick", preset: str = "keras2", **over) -> pd.DataFrame:
    cfgs = followup_configs(scale, preset, **over)
    return final_rows(runner(cfgs), cfgs)


def _outputs(df: pd.DataFrame, out: Path) -> list[Path]:
    paths = [write_results(df, out, RESULT_COLUMNS)]
    for k, task in enumerate(TASK_UNITS, 1):
        paths += plot.save(followup_figure(df, task), Path(out) / f"task{k}")
    return paths


def _table(df: pd.DataFrame) -> Table:
    s = followup_table(df)
    frame = (
        s[["task", "cell", "T", "members"]]
        .astype(str)
        .assign(
            **{
                "mean ± std": [f"{a:.3f} ± {b:.3f}" for a, b in zip(s.mean_val_acc, s.std_val_acc)],
                "success": [f"{k}/{n}" for k, n in zip(s.successes, s.members)],
            }
        )
    )
    return Table(f"final validation accuracy, mean ± std, and success (val acc ≥ {SUCCESS_THRESHOLD:g})", frame)


EXPERIMENT = Experiment(
    "followups",
    SCALES,
    followup_configs,
    _compute,
    _outputs,
    _table,
    ("results.csv", *figure_files(*(f"task{k}" for k in range(1, len(TASK_UNITS) + 1)))),
)
