"""What produced a number: versions, commit, PRNG, device; and where the time went."""

from __future__ import annotations

import platform
import subprocess
import threading
import time
from collections import defaultdict
from importlib import metadata
from pathlib import Path

import jax

PACKAGES = ("latchlab", "jax", "jaxlib", "optax", "numpy", "scipy", "pandas")


def git_commit() -> str:
    """The source tree's commit (with ``-dirty`` for uncommitted changes), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


def versions() -> dict:
    """Python's and ``PACKAGES``' versions, and the C++ compiler that builds the native
    kernels here with the instruction set it builds for (``c++``: GCC's and clang's builds
    agree to float32 rounding, not bit for bit; "none" without a compiler)."""
    from latchlab.engine import native

    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "missing"
    cxx = native.compiler_version()
    out["c++"] = f"{cxx}, -march={native.march()}" if cxx else "none"
    return out


def prng() -> str:
    impl = jax.config.jax_default_prng_impl  # pyright: ignore[reportAttributeAccessIssue]  (set at runtime)
    return f"jax {impl} (data, splits, initialisation); numpy PCG64 (epoch shuffles)"


def collect() -> dict:
    """Provenance stored with every sweep."""
    return {
        "git_commit": git_commit(),
        "versions": versions(),
        "prng": prng(),
        "device": f"{jax.default_backend()}:{jax.device_count()}",
    }


class Profile:
    """Wall time per phase (data, compile, train, validate, store).

    Compilation is measured by JAX's own compile-duration events and subtracted from the
    phase it happened in, so "train" is time spent training, not compiling. Compilations
    in other threads (``engine.data.warm``'s, overlapped with the phases) are summed apart in
    ``background``.
    """

    _EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.seconds = defaultdict(float)
        self.background = 0.0
        self._owner = threading.get_ident()
        self._open: dict[str, float] = {}
        self._compile_at_open: dict[str, float] = {}
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event: str, duration_secs: float, **kw: str | int) -> None:
        if event == self._EVENT:
            if threading.get_ident() == self._owner:
                self.seconds["compile"] += duration_secs
            else:
                self.background += duration_secs

    def start(self, name: str):
        self._open[name] = time.perf_counter()
        self._compile_at_open[name] = self.seconds["compile"]

    def stop(self, name: str):
        dt = time.perf_counter() - self._open.pop(name)
        self.seconds[name] += dt - (self.seconds["compile"] - self._compile_at_open.pop(name))

    def table(self) -> list[tuple[str, float]]:
        order = ("data", "compile", "train", "validate", "store")
        return [(k, self.seconds.get(k, 0.0)) for k in order]
