"""The answer's reruns: learning rate, batch size and epochs tuned, then reported on fresh members.

At T = 5 and T = 100 (``ANSWER_T``), on both follow-up tasks and all three cells, the
setting is tuned on *tuning members* (their own data seeds, their own validation sets) and
reported on fresh members whose validation sets the choice never saw (``select``). The
protocol otherwise is the asker's (``followups.PROTOCOL``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from latchlab import config
from latchlab.analysis import plot
from latchlab.analysis.stats import wilson
from latchlab.analysis.success import SUCCESS_THRESHOLD, succeeded
from latchlab.errors import ConfigError
from latchlab.experiments.experiment import Experiment, Table, figure_files, member_ids, scale_with, write_results
from latchlab.experiments.followups import CELL_STYLE, CELLS, PROTOCOL, TASK_TITLES, TASK_UNITS, final_rows, units_label

ANSWER_T = (5, 100)
# tuning members have seeds TUNE_SEED, TUNE_SEED + 1, ...; reported members 0, 1, ...: their
# data, splits, initialisations and shuffles are all different draws
TUNE_SEED = 1000
SCALES = {
    # the tuning grid: the Cartesian product of lr, batch_size and epochs
    "full": {
        "lr": (1e-3, 3e-3, 1e-2, 3e-2),
        "batch_size": (16, 64, 256),
        "epochs": (5, 10, 20),
        "tune_repeats": 5,
        "repeats": 10,
        "N": 10000,
    },
    # a 2 x 2 x 2 grid, fewer members, N = 2000 (1600 training sequences: fewer steps per epoch)
    "quick": {
        "lr": (1e-3, 1e-2),
        "batch_size": (16, 64),
        "epochs": (5, 10),
        "tune_repeats": 3,
        "repeats": 5,
        "N": 2000,
    },
}
SETTING = ("lr", "batch_size", "epochs")


def _answer_scale(scale: str, over: dict) -> tuple[dict, dict]:
    s, rest = scale_with(SCALES, scale, over)
    for k in SETTING:
        if not s[k] or len(set(s[k])) != len(s[k]):
            raise ConfigError(k, f"tuning grid must be a non-empty list of distinct values, got {s[k]!r}")
    if not 1 <= s["tune_repeats"] <= TUNE_SEED:
        raise ConfigError("tune_repeats", f"must be in [1, {TUNE_SEED}], got {s['tune_repeats']!r}")
    if not 1 <= s["repeats"] <= TUNE_SEED:
        raise ConfigError(
            "repeats", f"must be in [1, {TUNE_SEED}] (reported seeds stay below the tuning seeds), got {s['repeats']!r}"
        )
    return s, rest


def tune_configs(scale: str = "quick", preset: str = "keras2", **over) -> list[config.SweepConfig]:
    """The tuning members: per task, a grid over cell x lr x batch_size x T (``ANSWER_T``),
    ``tune_repeats`` members each with seeds from ``TUNE_SEED``, trained for the largest
    epoch budget of the grid (smaller budgets are read from the per-epoch history:
    ``tuning_rows``)."""
    s, rest = _answer_scale(scale, over)
    base = {**PROTOCOL, "N": s["N"], **rest, "preset": preset}
    return [
        config.from_dict(
            {
                **base,
                "task": task,
                "units": units,
                "epochs": max(s["epochs"]),
                "name": f"answer-tune-{scale}",
                "repeats": s["tune_repeats"],
                "seed": TUNE_SEED,
                "grid": {
                    "cell": list(CELLS),
                    "lr": list(s["lr"]),
                    "batch_size": list(s["batch_size"]),
                    "T": list(ANSWER_T),
                },
            }
        )
        for task, units in TASK_UNITS.items()
    ]


def tuning_rows(df: pd.DataFrame, cfgs, epochs) -> pd.DataFrame:
    """One row per tuning member per epoch budget in ``epochs``: its validation metrics
    after that many epochs, with ``role = "tune"``.

    A member's first ``e`` epochs are exactly an ``e``-epoch run of the same member: its
    shuffles come from one generator seeded by its seed, drawn epoch by epoch, and Adam's
    step has no schedule (checked in tests/experiments/test_followups.py).
    """
    ids = member_ids(cfgs)
    d = df[df.member_id.isin(ids) & df.epoch.isin(list(epochs))].copy()
    d["trained_epochs"] = d["epochs"]
    d["epochs"] = d["epoch"].astype(int)
    return d.assign(role="tune").drop(columns=["variant"], errors="ignore").reset_index(drop=True)


def select(rows: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """The tuned setting per task and cell, chosen on the tuning members alone.

    Rows with ``role != "tune"`` (the reported members) are dropped first, so nothing about
    the reported validation sets can change the choice. Over the tuning members of a
    setting (both lengths pooled), the score is, in order: the success rate (validation
    accuracy >= ``threshold``; the answer tuned "to make sure training always converged"),
    then the mean validation accuracy; an exact tie keeps the asker's protocol (lr 1e-3,
    batch 16, 10 epochs) if it is among the tied, else the first in grid order (lr, then
    batch size, then epochs, ascending).

    Args:
        rows: ``tuning_rows`` (and possibly reported rows): task, cell, lr, batch_size,
            epochs, role, val_acc.
    Returns:
        one row per (task, cell): the chosen lr, batch_size, epochs, and its tuning score
        (``tune_success``, ``tune_mean_val_acc``, ``tune_members``).
    """
    tune = rows[rows.role == "tune"]
    if tune.empty:
        raise ConfigError("role", "no tuning rows to select from")
    g = tune.groupby(["task", "cell", *SETTING], sort=True).val_acc
    s = pd.DataFrame(
        {
            "tune_success": g.apply(lambda a: float(np.mean(succeeded(a, threshold)))),
            "tune_mean_val_acc": g.mean(),
            "tune_members": g.size(),
        }
    ).reset_index()
    s["_protocol"] = (
        np.isclose(s.lr, PROTOCOL["lr"]) & (s.batch_size == PROTOCOL["batch_size"]) & (s.epochs == PROTOCOL["epochs"])
    )
    s = s.sort_values(
        ["task", "cell", "tune_success", "tune_mean_val_acc", "_protocol"],
        ascending=[True, True, False, False, False],
        kind="stable",
    )
    return s.groupby(["task", "cell"], sort=False).head(1).drop(columns="_protocol").reset_index(drop=True)


def report_configs(
    chosen: pd.DataFrame, scale: str = "quick", preset: str = "keras2", **over
) -> list[config.SweepConfig]:
    """Fresh members (seeds 0, 1, ...) of each (task, cell) at its chosen setting, at ``ANSWER_T``."""
    s, rest = _answer_scale(scale, over)
    base = {**PROTOCOL, "N": s["N"], **rest, "preset": preset}
    return [
        config.from_dict(
            {
                **base,
                "task": r.task,
                "cell": r.cell,
                "units": TASK_UNITS[r.task],
                "lr": float(r.lr),
                "batch_size": int(r.batch_size),
                "epochs": int(r.epochs),
                "name": f"answer-report-{scale}",
                "repeats": s["repeats"],
                "seed": 0,
                "grid": {"T": list(ANSWER_T)},
            }
        )
        for r in cast(Iterable[Any], chosen.itertuples())
    ]  # named tuples of the columns


def answer(run, scale: str = "quick", preset: str = "keras2", **over) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tune, select, then train and report fresh members at the chosen settings.

    Args:
        run: callable ``run(list_of_sweeps) -> epoch rows`` (``latchlab.engine.run.run`` with a
            store, or the CLI's progress-bar runner).
    Returns:
        ``(rows, chosen)``: ``rows`` one row per tuning member per epoch budget
        (``role = "tune"``) and one per reported member (``role = "report"``), with a
        ``chosen`` column; ``chosen`` as ``select`` returns it.
    """
    s, _ = _answer_scale(scale, over)
    tcfgs = tune_configs(scale, preset, **over)
    tune = tuning_rows(run(tcfgs), tcfgs, s["epochs"])
    chosen = select(tune)
    rcfgs = report_configs(chosen, scale, preset, **over)
    report = final_rows(run(rcfgs), rcfgs).drop(columns=["variant"], errors="ignore").assign(role="report")
    rows = pd.concat([tune, report], ignore_index=True)
    key = ["task", "cell", *SETTING]
    pick = set(map(tuple, chosen[key].astype(object).values.tolist()))
    rows["chosen"] = [tuple(r) in pick for r in rows[key].astype(object).values.tolist()]
    return rows, chosen


ANSWER_COLUMNS = [
    "role",
    "task",
    "cell",
    "units",
    "T",
    "seed",
    "lr",
    "batch_size",
    "epochs",
    "chosen",
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "N",
    "preset",
    "member_id",
]


def answer_table(rows: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """Per task, cell and T: the chosen setting's reported result (mean ± std, successes)
    and the spread over the grid (min, median, max over settings of the tuning members'
    mean validation accuracy), with the asker's protocol's tuning mean when in the grid."""
    out = []
    tune, rep = cast(pd.DataFrame, rows[rows.role == "tune"]), cast(pd.DataFrame, rows[rows.role == "report"])
    # (grouped by a list of columns: each key is a tuple)
    groups = cast(Iterable[tuple[tuple, pd.DataFrame]], rep.groupby(["task", "cell", "T"], sort=False))
    for (task, cell, T), r in groups:
        t = tune[(tune.task == task) & (tune.cell == cell) & (tune["T"] == T)]
        per = t.groupby(list(SETTING)).val_acc.mean()
        proto = per.get((PROTOCOL["lr"], PROTOCOL["batch_size"], PROTOCOL["epochs"]), np.nan) if len(per) else np.nan
        k = int(succeeded(r.val_acc, threshold).sum())
        lo, hi = wilson(k, len(r))
        out.append(
            {
                "task": task,
                "cell": cell,
                "T": int(T),
                "lr": r.lr.iloc[0],
                "batch_size": int(r.batch_size.iloc[0]),
                "epochs": int(r.epochs.iloc[0]),
                "members": len(r),
                "mean_val_acc": r.val_acc.mean(),
                "std_val_acc": r.val_acc.std(ddof=0),
                "successes": k,
                "wilson_low": float(lo),
                "wilson_high": float(hi),
                "grid_settings": len(per),
                "grid_min": per.min() if len(per) else np.nan,
                "grid_median": per.median() if len(per) else np.nan,
                "grid_max": per.max() if len(per) else np.nan,
                "protocol_tune_mean": proto,
            }
        )
    return pd.DataFrame(out)


def answer_figure(rows: pd.DataFrame):
    """One panel per task; at each T, per cell: every grid setting's mean tuning accuracy
    (grey dots; open black circle: the asker's protocol) and the chosen setting's reported
    members (coloured, mean ± std)."""
    tasks = [t for t in TASK_UNITS if t in set(rows.task)]
    fig, axes = plot.plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.6), sharey=True, squeeze=False)
    tune, rep = cast(pd.DataFrame, rows[rows.role == "tune"]), cast(pd.DataFrame, rows[rows.role == "report"])
    Ts = sorted(rows["T"].unique())
    for task, ax in zip(tasks, axes[0]):
        for i, T in enumerate(Ts):
            for j, cell in enumerate(CELLS):
                x = i + (j - 1) * 0.27
                colour, marker = CELL_STYLE[cell]
                t = tune[(tune.task == task) & (tune.cell == cell) & (tune["T"] == T)]
                per = t.groupby(list(SETTING)).val_acc.mean()
                jitter = np.linspace(-0.07, 0.07, len(per)) if len(per) > 1 else np.zeros(len(per))
                ax.scatter(x - 0.04 + jitter, per.values, s=7, color="0.6", lw=0, zorder=1)
                key = (PROTOCOL["lr"], PROTOCOL["batch_size"], PROTOCOL["epochs"])
                if key in per.index:
                    ax.scatter(
                        [x - 0.04 + jitter[list(per.index).index(key)]],
                        [per[key]],
                        s=22,
                        facecolor="none",
                        edgecolor="k",
                        lw=0.7,
                        zorder=2,
                    )
                r = rep[(rep.task == task) & (rep.cell == cell) & (rep["T"] == T)]
                if len(r):
                    ax.errorbar(
                        [x + 0.09],
                        [r.val_acc.mean()],
                        yerr=[r.val_acc.std(ddof=0)],
                        color=colour,
                        marker=marker,
                        ms=5,
                        capsize=2,
                        lw=1.2,
                        zorder=3,
                    )
                    ax.annotate(
                        f"{r.lr.iloc[0]:g}\n{int(r.batch_size.iloc[0])}/{int(r.epochs.iloc[0])}",
                        (x + 0.09, 0.02),
                        ha="center",
                        va="bottom",
                        fontsize=5.5,
                        color=colour,
                    )
        ax.set_xticks(range(len(Ts)), [f"T = {T}" for T in Ts])
        ax.set_xlim(-0.6, len(Ts) - 0.4)
        ax.set_ylim(-0.02, 1.04)
        ax.axhline(0.5, color="0.7", lw=0.6, ls=":")
        units = sorted(rows[rows.task == task].units.unique())
        ax.set_title(f"{TASK_TITLES.get(task, task)} ({', '.join(units_label(u) for u in units)})", fontsize=9)
    handles = [
        Line2D([], [], color=c, marker=m, lw=1.2, label=f"{cell}: chosen setting, reported members (mean ± std)")
        for cell, (c, m) in CELL_STYLE.items()
    ]
    handles += [
        Line2D([], [], color="0.6", marker="o", ms=3, lw=0, label="each grid setting: mean over tuning members"),
        Line2D(
            [],
            [],
            color="k",
            marker="o",
            mfc="none",
            ms=4,
            lw=0,
            label="the asker's protocol (lr 1e-3, batch 16, 10 epochs)",
        ),
    ]
    handles.append(Line2D([], [], lw=0, label="numbers at the bottom: chosen lr, batch size / epochs"))
    axes[0][0].set_ylabel("validation accuracy")
    fig.legend(handles=handles, frameon=False, fontsize=6.5, loc="lower center", ncol=3)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def _compute(runner, scale: str = "quick", preset: str = "keras2", **over) -> pd.DataFrame:
    rows, _ = answer(runner, scale, preset, **over)
    return rows


def _outputs(rows: pd.DataFrame, out: Path) -> list[Path]:
    out = Path(out)
    table = answer_table(rows)
    return [
        write_results(rows, out, ANSWER_COLUMNS),
        write_results(table, out, list(table), "summary.csv"),
        *plot.save(answer_figure(rows), out / "answer"),
    ]


def _table(rows: pd.DataFrame) -> Table:
    t = answer_table(rows)
    frame = pd.DataFrame(
        {
            "task": t.task,
            "cell": t.cell,
            "T": t["T"].astype(str),
            "lr/batch/ep": [f"{a:g}/{b}/{c}" for a, b, c in zip(t.lr, t.batch_size, t.epochs)],
            "reported": [f"{a:.3f}±{b:.3f}" for a, b in zip(t.mean_val_acc, t.std_val_acc)],
            "succ.": [f"{k}/{n}" for k, n in zip(t.successes, t.members)],
            "grid min-max": [f"{a:.2f}-{b:.2f}" for a, b in zip(t.grid_min, t.grid_max)],
            "protocol": [f"{a:.2f}" for a in t.protocol_tune_mean],
        }
    )
    return Table(
        "chosen on tuning members, reported on fresh ones; grid: tuning means over settings", frame, no_wrap=True
    )


EXPERIMENT = Experiment(
    "answer", SCALES, tune_configs, _compute, _outputs, _table, ("results.csv", "summary.csv", *figure_files("answer"))
)
