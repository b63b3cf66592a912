"""Figures drawn from result frames alone (one row per member, or per member per epoch).

Every function takes a DataFrame as the store or ``latchlab.engine.sweep`` returns it, keeps each
member's final epoch, and returns a matplotlib ``Figure``; ``save`` writes PNG and SVG.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from pathlib import Path
from typing import cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from latchlab.analysis.stats import wilson  # noqa: E402
from latchlab.analysis.success import SUCCESS_THRESHOLD, succeeded  # noqa: E402
from latchlab.outputs import FIGURE_FORMATS, figure_files  # noqa: E402

SUCCESS = SUCCESS_THRESHOLD  # the name explain.py reads; the value lives in analysis.success
_STYLE: dict[Hashable, tuple[str, str]] = {
    "srnn": ("C0", "o"),
    "lstm": ("C3", "s"),
    "gru": ("C2", "^"),
    "lstm_nofg": ("C1", "v"),
    "janet": ("C4", "D"),
}
_SPLIT_TITLE: dict[Hashable, str] = {"stratified": "stratified split (fixed)", "tail": "tail split (the seed's bug)"}

plt.rcParams.update(
    {
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "savefig.dpi": 150,
        "figure.dpi": 100,
        "svg.hashsalt": "latchlab",
    }
)


# settings that tell lines apart (T and split are the axes and panels; seed is a repeat)
_SETTINGS = (
    "task",
    "cell",
    "units",
    "N",
    "noise",
    "signal_len",
    "preset",
    "init",
    "values",
    "head",
    "optimizer",
    "lr",
    "batch_size",
    "epochs",
    "val_frac",
)


def final(df: pd.DataFrame) -> pd.DataFrame:
    """One row per member: its last epoch (a frame already per member passes through),
    with a ``variant`` column naming the settings that vary across the frame."""
    if "epoch" in df and "epochs" in df:
        df = cast(pd.DataFrame, df[df.epoch == df.epochs])
    df = df.reset_index(drop=True)
    if "variant" not in df:
        varying = [c for c in _SETTINGS if c in df and cast(pd.Series, df[c]).astype(str).nunique() > 1]
        if not varying:
            varying = [c for c in ("cell",) if c in df]
        # column by column: a row at a time took 5 ms for bengio1994's 160 members
        words = [df[c].astype(str) if c == "cell" else f"{c}=" + df[c].astype(str) for c in varying]
        df["variant"] = functools.reduce(lambda a, b: a + " " + b, words) if words else "all"
    return df


def summary(df: pd.DataFrame, by=("split", "variant", "T"), threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """Per group: members, mean and std of validation accuracy, successes and Wilson 95 %."""
    df = final(df)
    by = [b for b in by if b in df]
    g = df.groupby(by, sort=True).val_acc
    out = pd.DataFrame(
        {
            "members": g.size(),
            "mean_val_acc": g.mean(),
            "std_val_acc": g.std(ddof=0),
            "successes": g.apply(lambda a: int(succeeded(a, threshold).sum())),
        }
    ).reset_index()
    out["success_rate"] = out.successes / out.members
    out["wilson_low"], out["wilson_high"] = wilson(out.successes, out.members)
    return out


def _panels(df: pd.DataFrame, key: str = "split"):
    groups = sorted(df[key].unique()) if key in df else [None]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.2), squeeze=False, sharey=True)
    return fig, list(zip(groups, axes[0]))


def _label(df: pd.DataFrame, cell: str) -> str:
    units = sorted(df.units.unique()) if "units" in df else []
    return cell if units == [1] or not units else f"{cell} ({', '.join(map(str, units))} units)"


def accuracy_vs_T(df: pd.DataFrame, line: str = "variant", panel: str = "split"):
    """Final validation accuracy against T, mean ± std over members, one line per ``line``
    (default: each combination of the settings that vary, e.g. the cell)."""
    s = summary(df, by=(panel, line, "T"))
    fig, panels = _panels(s, panel)
    for group, ax in panels:
        sub = s if group is None else s[s[panel] == group]
        for name, d in sub.groupby(line, sort=False):
            colour, marker = _STYLE.get(name, (None, "o"))
            ax.errorbar(
                d["T"],
                d.mean_val_acc,
                yerr=d.std_val_acc,
                color=colour,
                marker=marker,
                ms=3,
                capsize=2,
                lw=1,
                label=str(name),
            )
        ax.set_xlabel("sequence length T")
        ax.set_title(_SPLIT_TITLE.get(group, str(group) if group is not None else ""))
        ax.set_ylim(-0.02, 1.02)
        ax.axhline(0.5, color="0.7", lw=0.6, ls=":")
    panels[0][1].set_ylabel("validation accuracy (mean ± std)")
    panels[0][1].legend(frameon=False)
    fig.tight_layout()
    return fig


def success_vs_T(df: pd.DataFrame, line: str = "variant", panel: str = "split", threshold: float = SUCCESS_THRESHOLD):
    """Fraction of members with validation accuracy >= ``threshold``, Wilson 95 % band."""
    s = summary(df, by=(panel, line, "T"), threshold=threshold)
    fig, panels = _panels(s, panel)
    for group, ax in panels:
        sub = s if group is None else s[s[panel] == group]
        for name, d in sub.groupby(line, sort=False):
            colour, marker = _STYLE.get(name, (None, "o"))
            (handle,) = ax.plot(d["T"], d.success_rate, color=colour, marker=marker, ms=3, lw=1, label=str(name))
            ax.fill_between(d["T"], d.wilson_low, d.wilson_high, color=handle.get_color(), alpha=0.15, lw=0)
        ax.set_xlabel("sequence length T")
        ax.set_title(_SPLIT_TITLE.get(group, str(group) if group is not None else ""))
        ax.set_ylim(-0.02, 1.02)
    panels[0][1].set_ylabel(f"success frequency (val acc ≥ {threshold:g})\nband: Wilson 95 %")
    panels[0][1].legend(frameon=False)
    fig.tight_layout()
    return fig


def save(fig, path: str | Path, formats=FIGURE_FORMATS) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix in ``formats``; close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for f in formats:
        p = path.with_suffix("." + f)
        fig.savefig(p, metadata={"Date": None} if f == "svg" else None)
        out.append(p)
    plt.close(fig)
    return out


_SEED_FIGURES = {"accuracy_vs_T": accuracy_vs_T, "success_vs_T": success_vs_T}
SEED_FIGURES = figure_files(*_SEED_FIGURES)
"""The files ``seed_figures`` writes."""


def seed_figures(df: pd.DataFrame, out: str | Path) -> list[Path]:
    """The seed's figures: ``accuracy_vs_T`` (PNG, SVG) and ``success_vs_T`` (PNG, SVG)."""
    return [p for stem, draw in _SEED_FIGURES.items() for p in save(draw(df), Path(out) / stem)]
