"""One-command reproductions of published figures."""
from __future__ import annotations

from pathlib import Path

from latchlab import config
from latchlab.analysis import plot
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


# ----------------------------------------------------------------------------- Bengio 1994

BENGIO_SCALES = {
    # Fig. 2a on a 6 x 6 grid with 10 trials per cell, Fig. 2b at 6 lengths with 30 trials
    "quick": {"w0_grid": (0.5, 1.0, 1.25, 1.5, 2.0, 3.0), "s_grid": (0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
              "T_grid": (5, 10, 20, 30, 50, 100), "trials": 10, "fig2b_trials": 30, "seed_repeats": 5},
    # the config's full grids, 40 trials per Fig. 2a cell, 100 per Fig. 2b length
    "full": {"trials": 40, "fig2b_trials": 100, "seed_repeats": 20},
}


def bengio_config(scale: str = "quick", overrides=None):
    """The ``Bengio94Config`` of a scale, with optional field overrides (e.g. from TOML).

    Returns:
        ``(config, fig2b_trials)``.
    """
    from latchlab.experiments import bengio1994 as bengio94

    if scale not in BENGIO_SCALES:
        raise ConfigError("scale", f"unknown scale {scale!r}", tuple(BENGIO_SCALES))
    s = dict(BENGIO_SCALES[scale])
    fig2b_trials = (overrides or {}).get("fig2b_trials", s.pop("fig2b_trials"))
    if isinstance(fig2b_trials, bool) or not isinstance(fig2b_trials, int) or fig2b_trials < 1:
        raise ConfigError("fig2b_trials", f"must be an integer >= 1, got {fig2b_trials!r}")
    over = {k: v for k, v in (overrides or {}).items() if k != "fig2b_trials"}
    return bengio94.make_config(**(s | over)), fig2b_trials


def bengio_rows(cfg, fig2b_trials: int):
    """Train Fig. 2a (one ensemble: every ``(w0, s)`` cell x trial at ``T``) and Fig. 2b (one
    ensemble: every ``T`` x trial at ``(w0_fig2b, s_fig2b)``); one row per trial."""
    import numpy as np
    import pandas as pd

    from latchlab.experiments import bengio1994 as bengio94

    frames = []
    w0, s = (a.ravel() for a in np.meshgrid(cfg.w0_grid, cfg.s_grid, indexing="ij"))
    seeds = cfg.seed + np.arange(cfg.trials)
    plan = [("2a", np.full(w0.size * cfg.trials, cfg.T), np.repeat(w0, cfg.trials), np.repeat(s, cfg.trials),
             np.tile(seeds, w0.size))]
    Ts = np.asarray(cfg.T_grid)
    seeds_b = cfg.seed + np.arange(fig2b_trials)
    plan.append(("2b", np.repeat(Ts, fig2b_trials), np.full(Ts.size * fig2b_trials, cfg.w0_fig2b),
                 np.full(Ts.size * fig2b_trials, cfg.s_fig2b), np.tile(seeds_b, Ts.size)))
    for fig, T, w, v, sd in plan:
        r = bengio94.train_ensemble(cfg, T, w, v, sd)
        frames.append(pd.DataFrame({
            "figure": fig, "T": T, "w0": w, "s": v, "L": cfg.L, "seed": sd, "converged": r.converged.astype(int),
            "epochs": r.epochs, "w_final": r.params.w, "train_loss": r.train_loss, "test_loss": r.test_loss,
            "test_sign_errors": r.test_errors, "optimizer": cfg.optimizer, "lr": cfg.lr}))
    return pd.concat(frames, ignore_index=True)


def bengio_seed_sweep(cfg) -> config.SweepConfig:
    """The seed's softmax set-up (one-unit SRNN, Keras-2, Dense(2), Adam 1e-3, batch 16,
    5 epochs, N = 10000, stratified split) at Fig. 2b's lengths, for the overlay."""
    return config.from_dict({
        "name": "bengio1994-seed-overlay", "repeats": cfg.seed_repeats, "seed": cfg.seed,
        "task": "latch", "cell": "srnn", "units": 1, "N": 10000, "noise": cfg.seed_noise, "epochs": 5,
        "batch_size": 16, "optimizer": "adam", "lr": 1e-3, "head": "dense2", "init": "keras",
        "preset": "keras2", "val_frac": 0.2, "split": "stratified", "grid": {"T": list(cfg.T_grid)},
    })


# ----------------------------------------------------------------------------- guessing

GUESS_SCALES = {
    # runs per problem; parity takes ~3000 guesses of 100 sequences of 500-600 steps per run
    "quick": {"latch1": 40, "latch2": 40, "parity": 10},
    "full": {"latch1": 40, "latch2": 40, "parity": 40},
}
# H&S's set-up where their text leaves a choice, chosen as documented in docs/bengio1994.md
GUESS_PROBLEMS = {
    "latch1": {"problem": "latch1", "criterion": "sign", "block": 32},
    "latch2": {"problem": "latch2", "criterion": "abs", "noise_into": "net", "block": 64},
    "parity": {"problem": "parity", "criterion": "abs", "hidden": "tanh", "update": "layered", "block": 1024},
}


def guess_configs(scale: str = "quick", overrides=None) -> list:
    """The three H&S problems' ``GuessConfig`` at a scale; ``overrides`` apply to all three."""
    from latchlab.experiments import guessing as guess

    if scale not in GUESS_SCALES:
        raise ConfigError("scale", f"unknown scale {scale!r}", tuple(GUESS_SCALES))
    return [guess.make_config(**(GUESS_PROBLEMS[p] | {"runs": GUESS_SCALES[scale][p]} | dict(overrides or {})))
            for p in GUESS_PROBLEMS]


def guessing_table(results) -> "pd.DataFrame":
    """``guessing.csv``: one row per problem with measured and published mean trials.

    ``mean_trials`` is over the runs that solved within the budget (``solved`` says how many).
    """
    import numpy as np
    import pandas as pd

    from latchlab.experiments import guessing as guess

    rows = []
    for cfg, r in results:
        t = r.trials[r.solved]
        rows.append({"problem": cfg.problem, "runs": cfg.runs, "solved": int(r.solved.sum()),
                     "mean_trials": float(t.mean()) if t.size else float("nan"),
                     "median_trials": float(np.median(t)) if t.size else float("nan"),
                     "published_mean_trials": guess.PUBLISHED.get(cfg.problem, float("nan")),
                     "criterion": cfg.criterion, "a": cfg.a, "test_correct": float(np.nanmean(r.test_correct))
                     if r.solved.any() else float("nan"), "seconds": round(r.seconds, 2)})
    return pd.DataFrame(rows)
