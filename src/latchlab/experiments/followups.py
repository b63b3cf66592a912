"""The question's follow-ups: the asker's two figures, the answer's tuned reruns, bigger models.

* ``followup_configs``: "Task 1: information latching (1 unit; 10 repeats; 10 epochs)" and
  "Task 2: bit relay (8 units; 10 repeats; 10 epochs)" for SRNN, LSTM and GRU, final
  validation accuracy (mean ± std over members) against the seed's lengths.
* ``answer``: the answer's reruns at T = 5 and T = 100 on both tasks and all three cells,
  with learning rate, batch size and epochs tuned on *tuning members* (their own data
  seeds, their own validation sets) and reported on fresh members whose validation sets
  the choice never saw (``select``).
* ``units_configs``: success frequency against the number of units (the comment's "have
  you tried making it bigger, say 10 or 100 units?").

Every part keeps the asker's protocol except where a scale says otherwise: N = 10000
sequences, 20 % stratified validation (the answer's fix of the seed's bug), Adam (Keras
defaults), batch 16, 10 epochs, Dense(2) softmax head, Keras initialisation and Keras-2
gates (hard sigmoid; GRU ``reset_after=False``), which is what ran in 2018. Latching uses
one unit, bit relay eight, as the asker's figures did.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from latchlab import config
from latchlab.analysis import plot
from latchlab.errors import ConfigError
from latchlab.experiments.seed import SEED_LENGTHS
from latchlab.analysis.stats import wilson

CELLS = ("srnn", "lstm", "gru")
TASK_UNITS = {"latch": 1, "bit_relay": 8}
TASK_TITLES = {"latch": "Task 1: information latching", "bit_relay": "Task 2: bit relay"}
PROTOCOL = {"N": 10000, "noise": 0.1, "epochs": 10, "batch_size": 16, "optimizer": "adam", "lr": 1e-3,
            "head": "dense2", "init": "keras", "val_frac": 0.2, "split": "stratified"}
_CELL_STYLE = {"srnn": ("C0", "o"), "lstm": ("C3", "s"), "gru": ("C2", "^")}


def _scale(table: dict, scale: str, over: dict) -> tuple[dict, dict]:
    """The scale's settings with ``over``'s keys that belong to it replaced, and the rest of
    ``over`` (protocol fields, used by tests to run tiny versions)."""
    if scale not in table:
        raise ConfigError("scale", f"unknown scale {scale!r}", tuple(table))
    s = dict(table[scale])
    rest = dict(over)
    for k in list(rest):
        if k in s:
            s[k] = rest.pop(k)
    return s, rest


def _units_label(n: int) -> str:
    return f"{n} unit" + ("" if n == 1 else "s")


RESULT_COLUMNS = ["task", "cell", "units", "T", "seed", "val_acc", "val_loss", "train_acc", "train_loss",
                  "preset", "N", "lr", "batch_size", "epochs", "member_id"]


def final_rows(df: pd.DataFrame, cfgs) -> pd.DataFrame:
    """One row per member of ``cfgs`` (a list of sweeps): its final epoch's metrics."""
    ids = {m.id for c in cfgs for m in c.members()}
    f = plot.final(df)
    return f[f.member_id.isin(ids)].sort_values(["task", "cell", "units", "T", "seed"], kind="stable") \
        .reset_index(drop=True)


def write_results(df: pd.DataFrame, out: Path, columns=RESULT_COLUMNS) -> Path:
    """``out/results.csv``: the listed columns that ``df`` has, one row per frame row."""
    path = Path(out) / "results.csv"
    df[[c for c in columns if c in df]].to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------------- part 1

FOLLOWUP_SCALES = {
    # the asker's protocol: the seed's 25 distinct lengths, 10 repeats, N = 10000, 10 epochs
    "full": {"T": sorted(set(SEED_LENGTHS)), "repeats": 10},
    # five lengths from easy to hard, 5 repeats; N and epochs as the asker's
    "quick": {"T": [2, 5, 10, 20, 50], "repeats": 5},
}


def followup_configs(scale: str = "quick", preset: str = "keras2", seed: int = 0, **over) -> list[config.SweepConfig]:
    """The asker's two follow-up sweeps, task 1 (latch, 1 unit) then task 2 (bit_relay, 8 units).

    Args:
        scale: ``full`` (the asker's protocol) or ``quick`` (``FOLLOWUP_SCALES``).
        preset: ``keras2`` (the asker's 2018 Keras) or ``keras3``.
        over: replaces ``T`` or ``repeats`` of the scale, or fields of ``PROTOCOL``.
    Returns:
        one ``SweepConfig`` per task, each a grid over cell x T.
    """
    s, rest = _scale(FOLLOWUP_SCALES, scale, over)
    return [config.from_dict({**PROTOCOL, **rest, "task": task, "units": units, "preset": preset,
                              "name": f"followups-{scale}-{task}", "repeats": s["repeats"], "seed": seed,
                              "grid": {"cell": list(CELLS), "T": list(s["T"])}})
            for task, units in TASK_UNITS.items()]


def followup_figure(df: pd.DataFrame, task: str):
    """The asker's figure for one task: final validation accuracy against T, mean ± std
    (error bars, ddof = 0) over members, one line per cell."""
    d = df[df.task == task]
    if d.empty:
        raise ConfigError("task", f"no results for task {task!r}", tuple(sorted(df.task.unique())))
    fig = plot.accuracy_vs_T(d, line="cell", panel="task")
    reps = int(d.groupby(["cell", "T"]).size().max())
    units = sorted(d.units.unique())
    fig.axes[0].set_title(f"{TASK_TITLES.get(task, task)} ({', '.join(_units_label(u) for u in units)}; "
                          f"{reps} repeats; {int(d.epochs.max())} epochs)", fontsize=9)
    fig.axes[0].set_ylabel("validation accuracy\n(mean ± std over repeats)")
    fig.axes[0].legend(frameon=False, loc="lower left")
    fig.set_size_inches(5.2, 3.4)
    fig.tight_layout()
    return fig


def followup_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per task, cell and T: members, mean and std of validation accuracy, successes."""
    return plot.summary(df, by=("task", "cell", "T"))


# ----------------------------------------------------------------------------- part 2

ANSWER_T = (5, 100)
# tuning members have seeds TUNE_SEED, TUNE_SEED + 1, ...; reported members 0, 1, ...: their
# data, splits, initialisations and shuffles are all different draws
TUNE_SEED = 1000
ANSWER_SCALES = {
    # the tuning grid: the Cartesian product of lr, batch_size and epochs
    "full": {"lr": (1e-3, 3e-3, 1e-2, 3e-2), "batch_size": (16, 64, 256), "epochs": (5, 10, 20),
             "tune_repeats": 5, "repeats": 10, "N": 10000},
    # a 2 x 2 x 2 grid, fewer members, N = 2000 (1600 training sequences: fewer steps per epoch)
    "quick": {"lr": (1e-3, 1e-2), "batch_size": (16, 64), "epochs": (5, 10),
              "tune_repeats": 3, "repeats": 5, "N": 2000},
}
SETTING = ("lr", "batch_size", "epochs")


def _answer_scale(scale: str, over: dict) -> tuple[dict, dict]:
    s, rest = _scale(ANSWER_SCALES, scale, over)
    for k in SETTING:
        if not s[k] or len(set(s[k])) != len(s[k]):
            raise ConfigError(k, f"tuning grid must be a non-empty list of distinct values, got {s[k]!r}")
    if not 1 <= s["tune_repeats"] <= TUNE_SEED:
        raise ConfigError("tune_repeats", f"must be in [1, {TUNE_SEED}], got {s['tune_repeats']!r}")
    if not 1 <= s["repeats"] <= TUNE_SEED:
        raise ConfigError("repeats", f"must be in [1, {TUNE_SEED}] (reported seeds stay below the tuning "
                                     f"seeds), got {s['repeats']!r}")
    return s, rest


def tune_configs(scale: str = "quick", preset: str = "keras2", **over) -> list[config.SweepConfig]:
    """The tuning members: per task, a grid over cell x lr x batch_size x T (``ANSWER_T``),
    ``tune_repeats`` members each with seeds from ``TUNE_SEED``, trained for the largest
    epoch budget of the grid (smaller budgets are read from the per-epoch history:
    ``tuning_rows``)."""
    s, rest = _answer_scale(scale, over)
    base = {**PROTOCOL, "N": s["N"], **rest, "preset": preset}
    return [config.from_dict({**base, "task": task, "units": units, "epochs": max(s["epochs"]),
                              "name": f"answer-tune-{scale}", "repeats": s["tune_repeats"], "seed": TUNE_SEED,
                              "grid": {"cell": list(CELLS), "lr": list(s["lr"]), "batch_size": list(s["batch_size"]),
                                       "T": list(ANSWER_T)}})
            for task, units in TASK_UNITS.items()]


def tuning_rows(df: pd.DataFrame, cfgs, epochs) -> pd.DataFrame:
    """One row per tuning member per epoch budget in ``epochs``: its validation metrics
    after that many epochs, with ``role = "tune"``.

    A member's first ``e`` epochs are exactly an ``e``-epoch run of the same member: its
    shuffles come from one generator seeded by its seed, drawn epoch by epoch, and Adam's
    step has no schedule (checked in tests/test_followups.py).
    """
    ids = {m.id for c in cfgs for m in c.members()}
    d = df[df.member_id.isin(ids) & df.epoch.isin(list(epochs))].copy()
    d["trained_epochs"] = d["epochs"]
    d["epochs"] = d["epoch"].astype(int)
    return d.assign(role="tune").drop(columns=["variant"], errors="ignore").reset_index(drop=True)


def select(rows: pd.DataFrame, threshold: float = plot.SUCCESS) -> pd.DataFrame:
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
    s = pd.DataFrame({"tune_success": g.apply(lambda a: float(np.mean(a >= threshold))),
                      "tune_mean_val_acc": g.mean(), "tune_members": g.size()}).reset_index()
    s["_protocol"] = (np.isclose(s.lr, PROTOCOL["lr"]) & (s.batch_size == PROTOCOL["batch_size"])
                      & (s.epochs == PROTOCOL["epochs"]))
    s = s.sort_values(["task", "cell", "tune_success", "tune_mean_val_acc", "_protocol"],
                      ascending=[True, True, False, False, False], kind="stable")
    return s.groupby(["task", "cell"], sort=False).head(1).drop(columns="_protocol").reset_index(drop=True)


def report_configs(chosen: pd.DataFrame, scale: str = "quick", preset: str = "keras2",
                   **over) -> list[config.SweepConfig]:
    """Fresh members (seeds 0, 1, ...) of each (task, cell) at its chosen setting, at ``ANSWER_T``."""
    s, rest = _answer_scale(scale, over)
    base = {**PROTOCOL, "N": s["N"], **rest, "preset": preset}
    return [config.from_dict({**base, "task": r.task, "cell": r.cell, "units": TASK_UNITS[r.task], "lr": float(r.lr),
                              "batch_size": int(r.batch_size), "epochs": int(r.epochs),
                              "name": f"answer-report-{scale}", "repeats": s["repeats"], "seed": 0,
                              "grid": {"T": list(ANSWER_T)}})
            for r in chosen.itertuples()]


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


ANSWER_COLUMNS = ["role", "task", "cell", "units", "T", "seed", "lr", "batch_size", "epochs", "chosen", "val_acc",
                  "val_loss", "train_acc", "train_loss", "N", "preset", "member_id"]


def answer_table(rows: pd.DataFrame, threshold: float = plot.SUCCESS) -> pd.DataFrame:
    """Per task, cell and T: the chosen setting's reported result (mean ± std, successes)
    and the spread over the grid (min, median, max over settings of the tuning members'
    mean validation accuracy), with the asker's protocol's tuning mean when in the grid."""
    out = []
    tune, rep = rows[rows.role == "tune"], rows[rows.role == "report"]
    for (task, cell, T), r in rep.groupby(["task", "cell", "T"], sort=False):
        t = tune[(tune.task == task) & (tune.cell == cell) & (tune["T"] == T)]
        per = t.groupby(list(SETTING)).val_acc.mean()
        proto = per.get((PROTOCOL["lr"], PROTOCOL["batch_size"], PROTOCOL["epochs"]), np.nan) if len(per) else np.nan
        k = int((r.val_acc >= threshold).sum())
        lo, hi = wilson(k, len(r))
        out.append({"task": task, "cell": cell, "T": int(T), "lr": r.lr.iloc[0], "batch_size": int(r.batch_size.iloc[0]),
                    "epochs": int(r.epochs.iloc[0]), "members": len(r), "mean_val_acc": r.val_acc.mean(),
                    "std_val_acc": r.val_acc.std(ddof=0), "successes": k, "wilson_low": float(lo),
                    "wilson_high": float(hi), "grid_settings": len(per),
                    "grid_min": per.min() if len(per) else np.nan, "grid_median": per.median() if len(per) else np.nan,
                    "grid_max": per.max() if len(per) else np.nan, "protocol_tune_mean": proto})
    return pd.DataFrame(out)


def answer_figure(rows: pd.DataFrame):
    """One panel per task; at each T, per cell: every grid setting's mean tuning accuracy
    (grey dots; open black circle: the asker's protocol) and the chosen setting's reported
    members (coloured, mean ± std)."""
    tasks = [t for t in TASK_UNITS if t in set(rows.task)]
    fig, axes = plot.plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 3.6), sharey=True, squeeze=False)
    tune, rep = rows[rows.role == "tune"], rows[rows.role == "report"]
    Ts = sorted(rows["T"].unique())
    for task, ax in zip(tasks, axes[0]):
        for i, T in enumerate(Ts):
            for j, cell in enumerate(CELLS):
                x = i + (j - 1) * 0.27
                colour, marker = _CELL_STYLE[cell]
                t = tune[(tune.task == task) & (tune.cell == cell) & (tune["T"] == T)]
                per = t.groupby(list(SETTING)).val_acc.mean()
                jitter = np.linspace(-0.07, 0.07, len(per)) if len(per) > 1 else np.zeros(len(per))
                ax.scatter(x - 0.04 + jitter, per.values, s=7, color="0.6", lw=0, zorder=1)
                key = (PROTOCOL["lr"], PROTOCOL["batch_size"], PROTOCOL["epochs"])
                if key in per.index:
                    ax.scatter([x - 0.04 + jitter[list(per.index).index(key)]], [per[key]], s=22, facecolor="none",
                               edgecolor="k", lw=0.7, zorder=2)
                r = rep[(rep.task == task) & (rep.cell == cell) & (rep["T"] == T)]
                if len(r):
                    ax.errorbar([x + 0.09], [r.val_acc.mean()], yerr=[r.val_acc.std(ddof=0)], color=colour,
                                marker=marker, ms=5, capsize=2, lw=1.2, zorder=3)
                    ax.annotate(f"{r.lr.iloc[0]:g}\n{int(r.batch_size.iloc[0])}/{int(r.epochs.iloc[0])}",
                                (x + 0.09, 0.02), ha="center", va="bottom", fontsize=5.5, color=colour)
        ax.set_xticks(range(len(Ts)), [f"T = {T}" for T in Ts])
        ax.set_xlim(-0.6, len(Ts) - 0.4)
        ax.set_ylim(-0.02, 1.04)
        ax.axhline(0.5, color="0.7", lw=0.6, ls=":")
        units = sorted(rows[rows.task == task].units.unique())
        ax.set_title(f"{TASK_TITLES.get(task, task)} ({', '.join(_units_label(u) for u in units)})", fontsize=9)
    handles = [plot.plt.Line2D([], [], color=c, marker=m, lw=1.2, label=f"{cell}: chosen setting, reported "
                                                                        "members (mean ± std)")
               for cell, (c, m) in _CELL_STYLE.items()]
    handles += [plot.plt.Line2D([], [], color="0.6", marker="o", ms=3, lw=0, label="each grid setting: mean over "
                                                                                   "tuning members"),
                plot.plt.Line2D([], [], color="k", marker="o", mfc="none", ms=4, lw=0,
                                label="the asker's protocol (lr 1e-3, batch 16, 10 epochs)")]
    handles.append(plot.plt.Line2D([], [], lw=0, label="numbers at the bottom: chosen lr, batch size / epochs"))
    axes[0][0].set_ylabel("validation accuracy")
    fig.legend(handles=handles, frameon=False, fontsize=6.5, loc="lower center", ncol=3)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


# ----------------------------------------------------------------------------- part 3

UNITS = (1, 2, 4, 8, 16, 32, 100)
UNITS_SCALES = {
    # every unit count, four lengths, 20 members per point (Wilson half-widths <= 0.2)
    "full": {"units": UNITS, "T": (5, 20, 50, 100), "repeats": 20, "N": 10000},
    # four unit counts (each one a compiled model: compilation dominates) at two lengths,
    # 4 members per point, N = 2000 (fewer steps per epoch)
    "quick": {"units": (1, 4, 16, 100), "T": (5, 20), "repeats": 4, "N": 2000},
}


def units_configs(scale: str = "quick", preset: str = "keras2", seed: int = 0, **over) -> list[config.SweepConfig]:
    """Per task (latch, bit_relay) a grid over cell x units x T, the asker's protocol otherwise."""
    s, rest = _scale(UNITS_SCALES, scale, over)
    units = list(s["units"])
    if not units or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units):
        raise ConfigError("units", f"must be a non-empty list of integers >= 1, got {units!r}")
    return [config.from_dict({**PROTOCOL, "N": s["N"], **rest, "task": task, "preset": preset,
                              "name": f"units-{scale}-{task}", "repeats": s["repeats"], "seed": seed,
                              "grid": {"cell": list(CELLS), "units": units, "T": list(s["T"])}})
            for task in TASK_UNITS]


def units_table(df: pd.DataFrame, threshold: float = plot.SUCCESS) -> pd.DataFrame:
    """Per task, cell, units and T: members, mean ± std accuracy, successes, Wilson 95 %."""
    return plot.summary(df, by=("task", "cell", "units", "T"), threshold=threshold)


def units_figure(df: pd.DataFrame, threshold: float = plot.SUCCESS):
    """Success frequency against units (log axis), one row of panels per task, one panel
    per T, one line per cell with its Wilson 95 % band."""
    s = units_table(df, threshold)
    tasks = [t for t in TASK_UNITS if t in set(s.task)]
    Ts = sorted(s["T"].unique())
    fig, axes = plot.plt.subplots(len(tasks), len(Ts), figsize=(3.0 * len(Ts) + 0.6, 2.7 * len(tasks)),
                                  sharex=True, sharey=True, squeeze=False)
    for a, task in enumerate(tasks):
        for b, T in enumerate(Ts):
            ax = axes[a][b]
            for cell in CELLS:
                d = s[(s.task == task) & (s.cell == cell) & (s["T"] == T)].sort_values("units")
                if d.empty:
                    continue
                colour, marker = _CELL_STYLE[cell]
                ax.plot(d.units, d.success_rate, color=colour, marker=marker, ms=3, lw=1, label=cell)
                ax.fill_between(d.units, d.wilson_low, d.wilson_high, color=colour, alpha=0.13, lw=0)
            ax.set_xscale("log")
            ax.set_xticks(sorted(s.units.unique()), [str(u) for u in sorted(s.units.unique())])
            ax.minorticks_off()
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{TASK_TITLES.get(task, task)}, T = {T}", fontsize=8.5)
            if a == len(tasks) - 1:
                ax.set_xlabel("hidden units")
        axes[a][0].set_ylabel(f"success (val acc ≥ {threshold:g})\nband: Wilson 95 %")
    n = int(s.members.max())
    axes[0][0].legend(frameon=False, fontsize=7, title=f"{n} members per point", title_fontsize=7)
    fig.tight_layout()
    return fig
