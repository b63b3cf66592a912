"""One-command reproductions of published figures."""
from __future__ import annotations

from pathlib import Path

from latchlab import config, plot
from latchlab.errors import ConfigError

# The seed's lengths exactly as its code wrote them: 30 appears twice (26 entries). The
# duplicate is the same members with the same seeds, so it is trained and stored once.
SEED_LENGTHS = [2, 5, 8, 10, 15, 20, 25, 30] + list(range(30, 210, 10))
SCALES = {
    # the seed's grid: 2 cells x 26 lengths x 30 repeats x 5 epochs, N = 10000
    "full": {"T": SEED_LENGTHS, "repeats": 30},
    # a subset that keeps the shape of the curves and runs in about a minute on 2 cores
    "quick": {"T": [2, 5, 10, 20, 30, 50, 100], "repeats": 10},
}
RESULT_COLUMNS = ["member_id", "cell", "units", "T", "seed", "split", "preset", "init", "lr",
                  "epochs", "N", "val_acc", "val_loss", "train_acc", "train_loss"]


def seed_config(scale: str = "quick", splits=("stratified", "tail"), preset: str = "keras2",
                cells=("srnn", "lstm")) -> config.SweepConfig:
    """The seed's experiment: one-unit SRNN and LSTM, Dense(2) softmax, Adam, batch 16.

    Args:
        scale: ``full`` (the seed's grid) or ``quick`` (a documented subset).
        splits: ``stratified`` (the fix), ``tail`` (the seed's bug) or both.
        preset: ``keras2`` (what the seed ran in 2018) or ``keras3``.
    """
    if scale not in SCALES:
        raise ConfigError("scale", f"unknown scale {scale!r}", tuple(SCALES))
    s = SCALES[scale]
    return config.from_dict({
        "name": f"seed-{scale}", "repeats": s["repeats"], "seed": 0,
        "task": "latch", "units": 1, "N": 10000, "noise": 0.1, "epochs": 5, "batch_size": 16,
        "optimizer": "adam", "lr": 1e-3, "head": "dense2", "init": "keras", "preset": preset,
        "val_frac": 0.2,
        "grid": {"split": list(splits), "cell": list(cells), "T": s["T"]},
    })


def write_results(df, out: Path) -> Path:
    """``results.csv``: one row per member with its final metrics."""
    path = out / "results.csv"
    final = plot.final(df)
    final[[c for c in RESULT_COLUMNS if c in final]].to_csv(path, index=False)
    return path
