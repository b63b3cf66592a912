"""The native random number generator of two revisions compared: the time a draw takes.

    python bench/prng_ab.py --old 7803ef5 [--lengths 100,5] [--repeats 9]
    python bench/prng_ab.py --old HEAD --new-defines=-DLATCH_DRAW_VECTORS=4   # a setting of this tree
    LATCHLAB_NATIVE_MARCH=x86-64-v3 python bench/prng_ab.py --old 7803ef5    # AVX2 builds

Builds ``latchlab/engine/native/prng.cpp`` as git revision ``--old`` has it and as the
working tree has it (each with ``--old-defines`` / ``--new-defines``), with the flags and
compiler latchlab uses, for the instruction set ``native.march()`` names. On one thread,
each library draws the latch task's sequences of 8 seeds (``prng_latch``: 10^4 sequences
of each length in ``--lengths``, their labels included) and Bengio 1994's noise of 8
members (``prng_b94_noise``: 100 steps of 1000 and of 20 sequences), the two taking turns,
``--repeats`` times after a warm-up pair. Prints the median time a draw of each and the
median and range of old over new per pair (above 1, the working tree is faster), and
whether the two drew the same bits. The speed of a change is this ratio, never a wall-clock
time (docs/benchmarks.md says which CPU each ratio was measured on).
"""

import ctypes
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from ab import header, parser, ratio

from latchlab.engine import native

_F = ctypes.POINTER(ctypes.c_float)
_I = ctypes.POINTER(ctypes.c_int32)


def source_at(rev: str, into: Path) -> Path:
    """prng.cpp and simd.h as revision ``rev`` has them, written into ``into``."""
    for name in ("prng.cpp", "simd.h"):
        r = subprocess.run(["git", "show", f"{rev}:src/latchlab/engine/native/{name}"], capture_output=True, text=True)
        if r.returncode == 0:  # older revisions' prng.cpp includes no simd.h
            (into / name).write_text(r.stdout)
    return into / "prng.cpp"


def library(source: Path, tag: str, defines: tuple[str, ...]):
    """The generator of ``source``, built as ``native.prng`` builds it, and typed."""
    flags = native.PRNG_FLAGS + (f"-march={native.march()}",) + defines
    return native._typed(native._compile(source, f"ab-prng-{tag}", flags), native.PRNG_SIGNATURES)


def latch(lib, T: int, R: int = 8, n: int = 10_000):
    keys = (np.arange(2 * R, dtype=np.uint32) * 7919 + 3).astype(np.uint32)
    noise, L = np.full(R, 0.1, np.float32), np.ones(R, np.int32)
    x, y = np.empty((R, n, T), np.float32), np.empty((R, n), np.int32)
    t0 = time.perf_counter()
    lib.prng_latch(
        R,
        keys.ctypes.data_as(native._U32),
        n,
        T,
        noise.ctypes.data_as(_F),
        L.ctypes.data_as(_I),
        3,
        x.ctypes.data_as(_F),
        y.ctypes.data_as(_I),
        1,
    )
    return time.perf_counter() - t0, R * n * T, x


def b94(lib, n: int, R: int = 8, L: int = 3, T: int = 103):
    keys = (np.arange(2 * R, dtype=np.uint32) * 104729 + 11).astype(np.uint32)
    sd = np.linspace(0.1, 1.0, R).astype(np.float32)
    x = np.empty((R, T - L, n), np.float32)
    t0 = time.perf_counter()
    lib.prng_b94_noise(R, keys.ctypes.data_as(native._U32), L, T, n, sd.ctypes.data_as(_F), x.ctypes.data_as(_F), 1)
    return time.perf_counter() - t0, R * (T - L) * n, x


def compare(name: str, draw, old, new, repeats: int) -> str:
    times: dict[str, list[float]] = {"old": [], "new": []}
    same = True
    for rep in range(repeats + 1):
        got = {}
        for k in ("old", "new") if rep % 2 == 0 else ("new", "old"):
            seconds, draws, got[k] = draw(old if k == "old" else new)
            if rep:  # the first pair warms up
                times[k].append(seconds / draws)
        same &= np.array_equal(got["old"].view(np.uint32), got["new"].view(np.uint32))
    return (
        f"{name}: old {np.median(times['old']) * 1e9:.2f} ns a draw, new {np.median(times['new']) * 1e9:.2f}; "
        f"{ratio(times['old'], times['new'])}; {'the same bits' if same else 'DIFFERENT'}"
    )


def main() -> None:
    p = parser(__doc__ or "", "generator")
    p.add_argument("--lengths", default="100,5", help="latch sequence lengths")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = library(source_at(a.old, Path(tmp)), "old", tuple(a.old_defines.split()))
        new = library(native.PRNG_SOURCE, "new", tuple(a.new_defines.split()))
        print(header(a, compiler=True), flush=True)
        for T in map(int, a.lengths.split(",")):
            print(compare(f"latch, T = {T}", lambda lib, T=T: latch(lib, T), old, new, a.repeats), flush=True)
        for n in (1000, 20):
            print(compare(f"bengio1994 noise, n = {n}", lambda lib, n=n: b94(lib, n), old, new, a.repeats), flush=True)


if __name__ == "__main__":
    main()
