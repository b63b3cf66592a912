"""Initialisation and cell ablations of the latching experiment, under the seed's protocol.

Each variant changes one thing against the seed's one-unit setting (N = 10000, 20 %
stratified validation, Adam 1e-3, batch 16, 5 epochs, Dense(2) softmax):

* SRNN recurrent weight at initialisation: 0.5, 1.0, 1.25, and Keras' orthogonal (which
  for one unit is exactly +1 or -1);
* LSTM forget-gate bias 0, 1 (Keras' default), 3, 5 and chrono (Tallec & Ollivier 2018),
  each with hard-sigmoid gates (Keras 2, the seed's) and with sigmoid gates (Keras 3);
* the 1997 LSTM without forget gate (``lstm_nofg``), JANET and the GRU.

All variants run as one sweep, so variants of one cell share compiled ensembles.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from latchlab import config
from latchlab.analysis import plot
from latchlab.analysis.success import SUCCESS_THRESHOLD, succeeded
from latchlab.experiments.seed import PROTOCOL as SEED_PROTOCOL
from latchlab.experiments.seed import SEED_LENGTHS
from latchlab.experiments.experiment import Experiment, Table, figure_files, scale_with, write_results

SCALES = {
    # the seed's lengths and repeats for every variant (about 10x the seed's sweep)
    "full": {"T": sorted(set(SEED_LENGTHS)), "repeats": 30},
    # four lengths that span easy to hard, 10 repeats: about a minute on 2 cores
    "quick": {"T": [5, 20, 50, 100], "repeats": 10},
}
PROTOCOL = {**SEED_PROTOCOL, "split": "stratified"}
"""The seed's protocol with the fixed split; each variant sets its cell, gates and initial values."""
_HARD, _SOFT = "LSTM, hard-sigmoid gates (Keras 2)", "LSTM, sigmoid gates (Keras 3)"


def _lstm(preset):
    yield "b_f = 0", {"cell": "lstm", "preset": preset, "values": {"bias_f": 0.0}}
    yield "b_f = 1 (Keras)", {"cell": "lstm", "preset": preset}
    yield "b_f = 3", {"cell": "lstm", "preset": preset, "values": {"bias_f": 3.0}}
    yield "b_f = 5", {"cell": "lstm", "preset": preset, "values": {"bias_f": 5.0}}
    if preset != "keras2":  # chrono is refused under hard-sigmoid gates (its input gate starts at exactly 0)
        yield "chrono", {"cell": "lstm", "preset": preset, "init": "chrono"}


def variants() -> list[tuple[str, str, dict]]:
    """``(family, variant, settings)`` for every ablation; a family is one figure panel."""
    srnn = "SRNN, recurrent weight at init"
    out = [
        (srnn, f"U0 = {u}", {"cell": "srnn", "preset": "keras2", "values": {"recurrent": u}}) for u in (0.5, 1.0, 1.25)
    ]
    out.append((srnn, "U0 = orthogonal (±1, Keras)", {"cell": "srnn", "preset": "keras2"}))
    out += [(_HARD, v, s) for v, s in _lstm("keras2")]
    out += [(_SOFT, v, s) for v, s in _lstm("keras3")]
    other = "other gated cells"
    out += [
        (other, "lstm_nofg (hard sigmoid)", {"cell": "lstm_nofg", "preset": "keras2"}),
        (other, "lstm_nofg (sigmoid)", {"cell": "lstm_nofg", "preset": "keras3"}),
        (other, "janet (sigmoid, chrono)", {"cell": "janet", "preset": "keras3", "init": "chrono"}),
        (other, "gru (Keras 2)", {"cell": "gru", "preset": "keras2"}),
        (other, "gru (Keras 3)", {"cell": "gru", "preset": "keras3"}),
    ]
    return out


def configs(scale: str = "quick", seed: int = 0, **protocol) -> list[tuple[str, str, config.SweepConfig]]:
    """``(family, variant, sweep)`` for every ablation at ``scale``.

    Args:
        protocol: replaces fields of the seed's protocol (``PROTOCOL``), and ``T`` or
            ``repeats`` of the scale (used by tests to run tiny versions).
    """
    s, protocol = scale_with(SCALES, scale, protocol)
    return [
        (
            family,
            name,
            config.from_dict(
                {
                    **PROTOCOL,
                    **protocol,
                    **settings,
                    "name": f"ablation-{scale}",
                    "repeats": s["repeats"],
                    "seed": seed,
                    "grid": {"T": s["T"]},
                }
            ),
        )
        for family, name, settings in variants()
    ]


def label(df: pd.DataFrame, parts) -> pd.DataFrame:
    """One row per member of ``df`` (epoch rows or member rows) with ``family`` and
    ``variant`` columns from ``parts`` (``configs``' result)."""
    names = {m.id: (k, family, name) for k, (family, name, cfg) in enumerate(parts) for m in cfg.members()}
    df = plot.final(df.drop(columns=["variant"], errors="ignore").assign(variant=""))
    df = cast(pd.DataFrame, df[df.member_id.isin(names)]).copy()
    order = df.member_id.map(lambda i: names[i][0])
    df["family"] = df.member_id.map(lambda i: names[i][1])
    df["variant"] = df.member_id.map(lambda i: names[i][2])
    return df.assign(_k=order).sort_values(["_k", "T", "seed"]).drop(columns="_k").reset_index(drop=True)


RESULT_COLUMNS = [
    "family",
    "variant",
    "cell",
    "preset",
    "init",
    "values",
    "T",
    "seed",
    "member_id",
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
]


def figure(df: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD):
    """Success frequency against T, one panel per family, one line per variant, with
    Wilson 95 % bands."""
    fams = list(dict.fromkeys(df.family))
    s = plot.summary(df, by=("family", "variant", "T"), threshold=threshold)
    fig, axes = plot.plt.subplots(1, len(fams), figsize=(3.6 * len(fams), 3.3), sharey=True, squeeze=False)
    for fam, ax in zip(fams, axes[0]):
        order = list(dict.fromkeys(df[df.family == fam].variant))
        for name in order:
            d = s[(s.family == fam) & (s.variant == name)]
            (h,) = ax.plot(d["T"], d.success_rate, marker="o", ms=3, lw=1, label=name)
            ax.fill_between(d["T"], d.wilson_low, d.wilson_high, color=h.get_color(), alpha=0.12, lw=0)
        ax.set_title(fam, fontsize=8.5)
        ax.set_xlabel("sequence length T")
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(frameon=False, fontsize=7)
    axes[0][0].set_ylabel(f"success (val acc ≥ {threshold:g})\nband: Wilson 95 %")
    fig.tight_layout()
    return fig


def table(df: pd.DataFrame, threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """Per family and variant: members, success rate over all T, mean validation accuracy."""
    g = df.groupby(["family", "variant"], sort=False).val_acc
    out = pd.DataFrame(
        {
            "members": g.size(),
            "success_rate": g.apply(lambda a: float(np.mean(succeeded(a, threshold)))),
            "mean_val_acc": g.mean(),
        }
    ).reset_index()
    return out


def _compute(runner, scale: str = "quick", **protocol) -> pd.DataFrame:
    parts = configs(scale, **protocol)
    return label(runner([cfg for _, _, cfg in parts]), parts)


def _outputs(df: pd.DataFrame, out: Path) -> list[Path]:
    return [write_results(df, out, RESULT_COLUMNS), *plot.save(figure(df), Path(out) / "success_vs_T")]


def _table(df: pd.DataFrame) -> Table:
    t = table(df)
    frame = (
        t[["family", "variant", "members"]]
        .astype(str)
        .assign(success=[f"{r:.2f}" for r in t.success_rate], **{"mean val acc": [f"{a:.3f}" for a in t.mean_val_acc]})
    )
    return Table(f"ablations: success (val acc ≥ {SUCCESS_THRESHOLD:g}) over all lengths", frame)


EXPERIMENT = Experiment(
    "ablations", SCALES, configs, _compute, _outputs, _table, ("results.csv", *figure_files("success_vs_T"))
)
