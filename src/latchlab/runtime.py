"""Process set-up that latchlab's programs call explicitly (importing latchlab changes nothing).

``setup()`` must run before JAX initialises its backend: it splits the host into one XLA
device per core and turns on JAX's persistent compilation cache. The CLI calls it first
thing; ``latchlab.sweep`` calls it too, so a notebook gets the same speed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_done = False


def cache_root() -> Path:
    """latchlab's cache directory: ``$LATCHLAB_CACHE``'s parent's ``latchlab`` tree, or
    ``~/.cache/latchlab``; the XLA cache is ``xla/`` below it (or ``$LATCHLAB_CACHE``)."""
    root = os.environ.get("LATCHLAB_CACHE")
    return Path(root).parent if root else Path.home() / ".cache" / "latchlab"


def xla_cache_dir() -> Path:
    root = os.environ.get("LATCHLAB_CACHE")
    return Path(root) if root else cache_root() / "xla"


def cores() -> int:
    """The cores this process may run on: its affinity where the system keeps one (Linux),
    else every core (macOS has no ``os.sched_getaffinity``)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, len(affinity(0)) if affinity else os.cpu_count() or 1)


def host_devices() -> int:
    """How many XLA host devices ``setup`` asks for: ``$LATCHLAB_DEVICES`` or the cores
    this process may use."""
    n = os.environ.get("LATCHLAB_DEVICES") or str(cores())
    return max(1, int(n))


def split_host_into_cores() -> None:
    # XLA:CPU runs a compiled while loop on one core. One host device per core lets an
    # ensemble's halves train in parallel (engine.train.member_sharding). Must precede
    # JAX's backend initialisation; a user's own XLA_FLAGS setting wins.
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    n = host_devices()
    if n > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


# compilations shorter than this are not written to the persistent cache. 0: every one is kept.
# At 0.2 s (before), the explain report recompiled 134 small programs (31 ms each) on every
# run: with a store that held every member, 24.4 s against 19.8-20.1 s at 0, and `reproduce
# guessing` 6.5-6.8 s against 4.5 s; the cache grew by 0.9 MB (docs/benchmarks.md).
MIN_COMPILE_SECS = 0.0


def setup(persistent_cache: bool = True) -> None:
    """Host devices (one per core) and the persistent compilation cache; idempotent.

    Call before anything creates a JAX array. If JAX's backend is already initialised (a
    notebook that ran JAX first), nothing changes: the device split cannot, and the
    persistent cache is not switched on mid-process. ``persistent_cache=False`` leaves
    JAX's compilation cache as JAX's own settings have it (latchlab's test process sets
    one for each test run).
    """
    global _done
    if _done:
        return
    if "jax" not in sys.modules:
        # JAX reads these when it is first imported: set-up costs no import of JAX (so
        # ``latchlab --help`` stays fast)
        split_host_into_cores()
        if persistent_cache:
            os.environ["JAX_COMPILATION_CACHE_DIR"] = str(xla_cache_dir())
            os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", str(MIN_COMPILE_SECS))
    elif not jax_started():
        # JAX is loaded but has compiled nothing yet: both settings still take effect
        import jax

        split_host_into_cores()
        if persistent_cache:
            jax.config.update("jax_compilation_cache_dir", str(xla_cache_dir()))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS)
    # else JAX has already started (a notebook that ran JAX first): the device split cannot
    # change, and turning the persistent cache on mid-process is not safe (it crashed XLA in
    # a test process), so the process keeps the set-up it has
    _done = True


def is_set_up() -> bool:
    """Whether ``setup`` has run in this process."""
    return _done


def jax_started() -> bool:
    """Whether JAX's backend is initialised in this process (its devices can no longer change)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except Exception:  # noqa: BLE001  (a private API: assume the worst)
        return True
