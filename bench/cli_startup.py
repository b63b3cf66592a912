"""How long ``latchlab --help`` takes, against a bare Python start in the same process.

Importing latchlab must not import JAX (``runtime.setup`` only sets environment variables
when JAX is not loaded yet), so the help screen should print in well under a second.

    python bench/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _median_seconds(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    latchlab = str(Path(sys.executable).with_name("latchlab"))
    bare = _median_seconds([sys.executable, "-c", "pass"], args.repeats)
    jax = _median_seconds([sys.executable, "-c", "import jax"], args.repeats)
    helps = _median_seconds([latchlab, "--help"], args.repeats)
    print(f"python -c pass      {bare:6.3f} s")
    print(f"python -c 'import jax' {jax:6.3f} s  ({jax / bare:.1f}x a bare start)")
    print(f"latchlab --help     {helps:6.3f} s  ({helps / bare:.1f}x a bare start, {helps / jax:.2f}x importing JAX)")


if __name__ == "__main__":
    main()
