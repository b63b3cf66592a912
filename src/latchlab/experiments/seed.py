"""The question's experiment (the "seed"): one-unit SRNN against one-unit LSTM latching a bit.

``PROTOCOL`` is the seed's training protocol, declared here once; the ablations, the
follow-ups, Bengio 1994's overlay and ``explain`` start from it and say what they change.
``EXPERIMENT`` is what ``latchlab reproduce seed`` runs.
"""

from __future__ import annotations

from pathlib import Path

from latchlab import config
from latchlab.analysis import plot
from latchlab.analysis.success import SUCCESS_THRESHOLD
from latchlab.experiments.experiment import Experiment, Table, scale_with, write_results

# The seed's lengths exactly as its code wrote them: 30 appears twice (26 entries). The
# duplicate is the same members with the same seeds, so it is trained and stored once.
SEED_LENGTHS = [2, 5, 8, 10, 15, 20, 25, 30] + list(range(30, 210, 10))
PROTOCOL = {
    # the seed's task: a sign held for one step, then Gaussian noise of std 0.1
    "task": "latch",
    "units": 1,
    "N": 10000,
    "noise": 0.1,
    # Keras' fit: Adam (Keras' defaults) at 1e-3, batch 16, 5 epochs, 20 % validation
    "epochs": 5,
    "batch_size": 16,
    "optimizer": "adam",
    "lr": 1e-3,
    "val_frac": 0.2,
    # Dense(2) softmax head, Keras' initialisers
    "head": "dense2",
    "init": "keras",
}
"""The seed's protocol (``docs/science.md``); its split is the bug (``tail``) or the fix
(``stratified``), its gates are ``preset`` (``keras2`` in 2018)."""
SCALES = {
    # the seed's grid: 2 cells x 26 lengths x 30 repeats x 5 epochs, N = 10000
    "full": {"T": SEED_LENGTHS, "repeats": 30},
    # a subset that keeps the shape of the curves and runs in about a minute on 2 cores
    "quick": {"T": [2, 5, 10, 20, 30, 50, 100], "repeats": 10},
}
RESULT_COLUMNS = [
    "member_id",
    "cell",
    "units",
    "T",
    "seed",
    "split",
    "preset",
    "init",
    "lr",
    "epochs",
    "N",
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
]


def seed_config(
    scale: str = "quick", splits=("stratified", "tail"), preset: str = "keras2", cells=("srnn", "lstm"), **over
) -> config.SweepConfig:
    """The seed's experiment: ``PROTOCOL`` over split x cell x T.

    Args:
        scale: ``full`` (the seed's grid) or ``quick`` (a documented subset).
        splits: ``stratified`` (the fix), ``tail`` (the seed's bug) or both.
        preset: ``keras2`` (what the seed ran in 2018) or ``keras3``.
        over: replaces ``T`` or ``repeats`` of the scale, or fields of ``PROTOCOL``
            (tests use it to run tiny versions).
    """
    s, rest = scale_with(SCALES, scale, over)
    return config.from_dict(
        {
            **PROTOCOL,
            **rest,
            "name": f"seed-{scale}",
            "repeats": s["repeats"],
            "seed": 0,
            "preset": preset,
            "grid": {"split": list(splits), "cell": list(cells), "T": list(s["T"])},
        }
    )


def _configs(scale: str = "quick", splits=("stratified", "tail"), preset: str = "keras2", **over):
    return seed_config(scale, tuple(dict.fromkeys(splits)), preset, **over)


def _compute(runner, scale: str = "quick", splits=("stratified", "tail"), preset: str = "keras2", **over):
    return plot.final(runner(_configs(scale, splits, preset, **over)))


def _outputs(final, out: Path) -> list[Path]:
    return [write_results(final, out, RESULT_COLUMNS), *plot.seed_figures(final, out)]


def _table(final) -> Table:
    s = plot.summary(final)
    frame = (
        s[["split", "variant", "T", "members"]]
        .astype(str)
        .assign(
            **{
                "mean ± std": [f"{a:.3f} ± {b:.3f}" for a, b in zip(s.mean_val_acc, s.std_val_acc)],
                "success [Wilson 95 %]": [
                    f"{k}/{n} [{lo:.2f}, {hi:.2f}]"
                    for k, n, lo, hi in zip(s.successes, s.members, s.wilson_low, s.wilson_high)
                ],
            }
        )
    )
    return Table(f"final validation accuracy and success (val acc ≥ {SUCCESS_THRESHOLD:g})", frame)


EXPERIMENT = Experiment("seed", SCALES, _configs, _compute, _outputs, _table, ("results.csv", *plot.SEED_FIGURES))
