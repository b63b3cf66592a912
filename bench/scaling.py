"""How a sweep's cost grows: wall time against members, sequence length and units.

    python bench/scaling.py [--quick] [--out docs/img/scaling.png]
    python bench/scaling.py --per-cell [--quick] [--out docs/img/scaling_units.png]

``--per-cell``: for each cell (SRNN, LSTM, lstm_nofg, GRU, JANET) and hidden size H = 1, 2,
4, ..., 128, the training and validation time (``provenance.Profile``'s train + validate
phases: no data making, no compilation) per member-step (one sequence step of one
member's training or validation sequence) of a one-epoch sweep of 32 members at T = 50,
N = 1000, keras2 gates, against the arithmetic bound per member-step: the cell's flops
(forward, and backward at twice that for training sequences) at the machine's measured
flop rate and its transcendentals at the measured rate (``bench/experiments.py``'s work
model; the rates measured again after each point, every bound at the fastest of each,
``seed_sweep.remeasure``), which grows as H^2 once the recurrent products dominate.
Prints each point's time over its bound; plots both on log axes.

Each point runs a whole sweep through ``latchlab.engine.run.run`` (data, training, validation;
one-unit LSTM unless units vary, keras2 gates, N = 1000, one epoch, batch 16) several times with
different seeds: the first run compiles, then the median of three timed runs with other
seeds is the point, so the curves show the cost of work, and a recompilation inside a
curve would show as a step. For each curve the
script fits ``time = a + b * x`` and prints the fit's R^2 and the largest relative
deviation from it, and the time per unit of work relative to the curve's first point
(a ratio, not seconds: comparable across machines).
"""

import argparse
import time

import numpy as np

from latchlab import config, runtime
from latchlab.engine import run as runner

CURVES = {
    "members": ("repeats", [1, 30, 100, 300, 1000, 2000, 3000], dict(T=50, units=1)),
    "T": ("T", [10, 50, 100, 200, 400, 700, 1000], dict(repeats=64, units=1)),
    "units": ("units", [1, 2, 4, 8, 16, 32, 64], dict(repeats=64, T=50)),
}
QUICK = {"members": [1, 30, 100, 300, 600], "T": [10, 50, 100, 200, 400], "units": [1, 4, 16, 64]}


def seconds(var: str, value, fixed: dict, seed: int) -> float:
    d = {"name": "scaling", "cell": "lstm", "preset": "keras2", "N": 1000, "epochs": 1, "seed": seed, **fixed}
    d["repeats" if var == "repeats" else var] = value
    cfg = config.from_dict(d)
    t0 = time.perf_counter()
    runner.run(cfg)
    return time.perf_counter() - t0


PER_CELL = ("srnn", "lstm", "lstm_nofg", "gru", "janet")
UNITS = [1, 2, 4, 8, 16, 32, 64, 128]


def per_step(cell: str, H: int, seed: int, repeats: int = 32, T: int = 50, N: int = 1000) -> tuple[float, tuple]:
    """Seconds of training and validation per member-step of one sweep, and its flops and
    transcendentals per member-step (``experiments.work_counts``)."""
    import experiments as EX  # bench/experiments.py: the work model

    from latchlab import provenance

    d = {"name": "scaling", "cell": cell, "units": H, "preset": "keras2", "N": N, "epochs": 1}
    cfg = config.from_dict({**d, "T": T, "repeats": repeats, "seed": seed})
    timer = provenance.Profile()
    runner.run(cfg, timer=timer)
    steps = repeats * T * N
    flops, trans = EX.work_counts(cfg.members())
    return (timer.seconds["train"] + timer.seconds["validate"]) / steps, (flops / steps, trans / steps)


def main_per_cell(a) -> None:
    import experiments as EX  # bench/experiments.py: the bound at the rates measured

    units = [1, 4, 16, 64] if a.quick else UNITS
    work = {}
    for cell in PER_CELL:
        for H in units:
            per_step(cell, H, seed=0)  # compiles this shape, builds the kernels' variant
            runs = [per_step(cell, H, seed=10_000 * k) for k in (1, 2, 3)]
            work[cell, H] = (float(np.median([r[0] for r in runs])), runs[0][1])
            f, r = EX.SS.remeasure()  # after each point: every bound at the fastest rates measured
            print(
                f"{cell:10s} H={H:4d}  {1e9 * work[cell, H][0]:9.2f} ns/member-step  (rates {f / 1e9:.0f} "
                f"GFLOP/s, {r / 1e9:.2f} x 10^9/s)",
                flush=True,
            )
    rows = {k: (t, EX.bound_of(counts)) for k, (t, counts) in work.items()}
    print(
        f"bounds at the fastest rates measured: {EX.SS.flop_rate() / 1e9:.0f} GFLOP/s, "
        f"{EX.SS.trans_rate() / 1e9:.2f} x 10^9/s"
    )
    for (cell, H), (t, b) in rows.items():
        print(f"{cell:10s} H={H:4d}  {1e9 * t:9.2f} ns/member-step  bound {1e9 * b:8.2f} ns  x{t / b:5.2f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PER_CELL), figsize=(3.0 * len(PER_CELL), 3.2), sharey=True)
    for ax, cell in zip(axes, PER_CELL):
        t = np.array([rows[cell, H][0] for H in units]) * 1e9
        b = np.array([rows[cell, H][1] for H in units]) * 1e9
        ax.loglog(units, t, "o-", ms=4, lw=1, label="latchlab (train + validate)")
        ax.loglog(units, b, "--", lw=1, color="0.4", label="arithmetic bound (~H²)")
        ax.set_title(cell)
        ax.set_xlabel("hidden units H")
        ax.set_xticks(units, [str(u) for u in units])
    axes[0].set_ylabel("ns per member-step")
    axes[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


def main():
    runtime.setup()  # one XLA device per core and the compilation cache, as the CLI does
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer, smaller points")
    ap.add_argument("--per-cell", action="store_true", help="time per member-step against H for every cell")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.per_cell:
        a.out = a.out or "docs/img/scaling_units.png"
        return main_per_cell(a)
    a.out = a.out or "docs/img/scaling.png"
    results = {}
    for name, (var, xs, fixed) in CURVES.items():
        xs = QUICK[name] if a.quick else xs
        ts = []
        for x in xs:
            seconds(var, x, fixed, seed=0)  # compiles this shape (and warms the data path)
            t = float(np.median([seconds(var, x, fixed, seed=10_000 * k) for k in (1, 2, 3)]))
            ts.append(t)
            print(f"{name:8s} {x:6d}  {t:8.3f} s", flush=True)
        xs_a, ts_a = np.array(xs, float), np.array(ts)
        b, c = np.polyfit(xs_a, ts_a, 1)
        fit = b * xs_a + c
        r2 = 1 - ((ts_a - fit) ** 2).sum() / ((ts_a - ts_a.mean()) ** 2).sum()
        dev = np.abs(ts_a - fit).max() / ts_a.max()
        per = ts_a / xs_a / (ts_a[0] / xs_a[0])
        print(
            f"RESULT {name}: linear fit R^2 = {r2:.4f}, largest deviation {100 * dev:.1f} % of the largest time; "
            f"time per unit of {name} relative to the first point: {', '.join(f'{p:.2f}' for p in per)}",
            flush=True,
        )
        results[name] = (xs, ts, b, c, r2)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, (name, (xs, ts, b, c, r2)) in zip(axes, results.items()):
        ax.plot(xs, ts, "o", ms=4, label="measured")
        xx = np.linspace(min(xs), max(xs), 50)
        ax.plot(xx, b * xx + c, "-", lw=1, label=f"linear fit, R² = {r2:.3f}")
        ax.set_xlabel(
            {
                "members": "members (one-unit LSTM, T = 50)",
                "T": "sequence length T (64 members)",
                "units": "units (64 members, T = 50)",
            }[name]
        )
        ax.set_ylabel("seconds per sweep (1 epoch, N = 1000)")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
