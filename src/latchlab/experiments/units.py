"""Success against the number of units: the comment's "have you tried making it bigger, say
10 or 100 units?", for SRNN, LSTM and GRU on both follow-up tasks, the asker's protocol
(``followups.PROTOCOL``) otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import cast

import pandas as pd

from latchlab import config
from latchlab.analysis import plot
from latchlab.analysis.success import SUCCESS_THRESHOLD
from latchlab.errors import ConfigError
from latchlab.experiments.experiment import Experiment, Table, figure_files, scale_with, write_results
from latchlab.experiments.followups import (
    CELL_STYLE,
    CELLS,
    PROTOCOL,
    RESULT_COLUMNS,
    TASK_TITLES,
    TASK_UNITS,
    final_rows,
)

UNITS = (1, 2, 4, 8, 16, 32, 100)
SCALES = {
    # every unit count, four lengths, 20 members per point (Wilson half-widths <= 0.2)
    "full": {"units": UNITS, "T": (5, 20, 50, 100), "repeats": 20, "N": 10000},
    # four unit counts (each one a compiled model: compilation dominates) at two lengths,
    # 4 members per point, N = 2000 (fewer steps per epoch)
    "quick": {"units": (1, 4, 16, 100), "T": (5, 20), "repeats": 4, "N": 2000},
}


def units_configs(scale: str = "quick", preset: str = "keras2", seed: int = 0, **over) -> list[config.SweepConfig]:
    """Per task (latch, bit_relay) a grid over cell x units x T, the asker's protocol otherwise."""
    s, rest = scale_with(SCALES, scale, over)
    units = list(s["units"])
    if not units or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units):
        raise ConfigError("units", f"must be a non-empty list of integers >= 1, got {units!r}")
    return [
        config.from_dict(
            {
                **PROTOCOL,
                "N": s["N"],
                **rest,
                "task": task,
                "preset": preset,
                "name": f"units-{scale}-{task}",
                "repeats": s["repeats"],
                "seed": seed,
                "grid": {"cell": list(CELLS), "units": units, "T": list(s["T"])},
            }
        )
        for task in TASK_UNITS
    ]


def units_table(df: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """Per task, cell, units and T: members, mean ± std accuracy, successes, Wilson 95 %."""
    return plot.summary(df, by=("task", "cell", "units", "T"), threshold=threshold)


def units_figure(df: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD):
    """Success frequency against units (log axis), one row of panels per task, one panel
    per T, one line per cell with its Wilson 95 % band."""
    s = units_table(df, threshold)
    tasks = [t for t in TASK_UNITS if t in set(s.task)]
    Ts = sorted(s["T"].unique())
    fig, axes = plot.plt.subplots(
        len(tasks), len(Ts), figsize=(3.0 * len(Ts) + 0.6, 2.7 * len(tasks)), sharex=True, sharey=True, squeeze=False
    )
    for a, task in enumerate(tasks):
        for b, T in enumerate(Ts):
            ax = axes[a][b]
            for cell in CELLS:
                d = cast(pd.DataFrame, s[(s.task == task) & (s.cell == cell) & (s["T"] == T)]).sort_values("units")
                if d.empty:
                    continue
                colour, marker = CELL_STYLE[cell]
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


def _compute(runner, scale: str = "quick", preset: str = "keras2", **over) -> pd.DataFrame:
    cfgs = units_configs(scale, preset, **over)
    return final_rows(runner(cfgs), cfgs)


def _outputs(df: pd.DataFrame, out: Path) -> list[Path]:
    return [write_results(df, out, RESULT_COLUMNS), *plot.save(units_figure(df), Path(out) / "units")]


def _table(df: pd.DataFrame) -> Table:
    s = units_table(df)
    units = sorted(s.units.unique())
    rows = []
    # (grouped by a list of columns: each key is a tuple)
    groups = cast(Iterable[tuple[tuple, pd.DataFrame]], s.groupby(["task", "T", "cell"], sort=True))
    for (task, T, cell), d in groups:
        by = dict(zip(d.units, zip(d.successes, d.members)))
        rows.append([task, str(T), cell, *(f"{by[u][0]}/{by[u][1]}" if u in by else "" for u in units)])
    frame = pd.DataFrame(rows, columns=["task", "T", "cell", *map(str, units)])
    return Table(f"successes (val acc ≥ {SUCCESS_THRESHOLD:g}) / members, by hidden units", frame)


EXPERIMENT = Experiment(
    "units", SCALES, units_configs, _compute, _outputs, _table, ("results.csv", *figure_files("units"))
)
