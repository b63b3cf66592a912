"""latchlab: why can (or can't) a recurrent network carry information across time?

Public API: ``latchlab.sweep(config) -> DataFrame`` (one row per member per epoch) and the
modules ``cells``, ``tasks``, ``model``, ``train``, ``config``, ``sweep``, ``store``,
``plot`` (figures from such frames), ``stats``, ``interop`` (``from_keras``),
``diagnose``, ``landscape``, ``ablations``, ``bengio94``, ``guess``, ``report``.
"""
import os as _os


def _split_host_into_cores() -> None:
    # XLA:CPU runs a compiled while loop on one core. One host device per core lets an
    # ensemble's halves train in parallel (train.member_sharding). Must precede JAX's
    # backend initialisation; a user's own setting wins; LATCHLAB_DEVICES overrides.
    flags = _os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        return
    n = _os.environ.get("LATCHLAB_DEVICES") or str(len(_os.sched_getaffinity(0)))
    if int(n) > 1:
        _os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={int(n)}".strip()


_split_host_into_cores()

__version__ = "0.1.0"

from latchlab import sweep  # noqa: E402  (callable: latchlab.sweep(config) -> DataFrame)
