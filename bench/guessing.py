"""Random weight guessing: the native kernel against the XLA evaluation, in one process.

    python bench/guessing.py [--scale quick|full] [--problems parity] [--no-xla]
    LATCHLAB_NATIVE_MARCH=x86-64-v3 python bench/guessing.py    # the AVX2 build of the kernel

For each row of ``latchlab reproduce guessing --scale SCALE`` (a problem under one reading),
runs its searches and its probes (``guessing.search`` and ``success_probability``) by the
native kernel (``latchlab/engine/native/guessing.cpp``: a guess runs a training sequence only
if it passed every one before), then by XLA (``LATCHLAB_NATIVE=0``: blocks of guesses screened
on ``screen`` sequences, the survivors on the whole set; latchlab's way before the kernel and
its fallback now). Each path first runs the row at a small budget (every shape compiled
before the timed run). Prints each path's time, XLA over native, whether the two found the
same trials, solvers' weights and probe hits, and the total. The speed of the kernel is this
ratio, never a wall-clock time (docs/benchmarks.md says which CPU each was measured on).
"""

import argparse
import os
import platform
import time

import numpy as np

from latchlab.engine import native
from latchlab.experiments import guessing as G


def run(cfg: G.GuessConfig, xla: bool):
    """``cfg``'s searches and probes, on XLA or natively: (seconds, result, probe hits)."""
    if xla:
        os.environ["LATCHLAB_NATIVE"] = "0"
    try:
        small = G.make_config(**(cfg.to_dict() | {"max_trials": 4 * cfg.block, "probes": min(cfg.probes, cfg.block)}))
        G.search(small), G.success_probability(small)  # compiles every shape of the timed run
        t0 = time.perf_counter()
        result, hits = G.search(cfg), G.success_probability(cfg)
        return time.perf_counter() - t0, result, hits
    finally:
        os.environ.pop("LATCHLAB_NATIVE", None)


def same(a, b) -> bool:
    (_, ra, ha), (_, rb, hb) = a, b
    return bool(
        np.array_equal(ra.trials, rb.trials)
        and np.array_equal(ra.theta, rb.theta, equal_nan=True)
        and np.array_equal(ha, hb)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="full", choices=["quick", "full"])
    ap.add_argument("--problems", default="", help="only these problems (comma-separated), e.g. parity")
    ap.add_argument("--no-xla", action="store_true", help="the native kernel alone")
    args = ap.parse_args()
    isa = native.guessing().guess_isa().decode()
    print(f"{platform.machine()}, the kernel built for -march={native.march()}: {isa}")
    rows = [c for c in G.experiment_configs(args.scale) if not args.problems or c.problem in args.problems.split(",")]
    total = {"native": 0.0, "xla": 0.0}
    print(f"{'row':52} {'native s':>9} {'xla s':>9} {'xla/native':>10}  same")
    for cfg in rows:
        name = f"{cfg.problem} {G.reading(cfg)} ({cfg.runs} runs)"
        nat = run(cfg, xla=False)
        total["native"] += nat[0]
        if args.no_xla:
            print(f"{name:52} {nat[0]:9.2f}")
            continue
        ref = run(cfg, xla=True)
        total["xla"] += ref[0]
        print(f"{name:52} {nat[0]:9.2f} {ref[0]:9.2f} {ref[0] / nat[0]:10.1f}  {'yes' if same(nat, ref) else 'NO'}")
    ratio = f" {total['xla']:9.2f} {total['xla'] / total['native']:10.1f}" if total["xla"] else ""
    print(f"{'all rows':52} {total['native']:9.2f}{ratio}")


if __name__ == "__main__":
    main()
