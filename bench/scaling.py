"""How a sweep's cost grows: wall time against members, sequence length and units.

    python bench/scaling.py [--quick] [--out docs/img/scaling.png]

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


def main():
    runtime.setup()  # one XLA device per core and the compilation cache, as the CLI does
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer, smaller points")
    ap.add_argument("--out", default="docs/img/scaling.png")
    a = ap.parse_args()
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
