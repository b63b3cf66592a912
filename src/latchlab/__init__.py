"""latchlab: why can (or can't) a recurrent network carry information across time?

The public API is re-exported here; importing ``latchlab`` imports nothing heavy (no JAX)
and changes nothing in the process: names are loaded on first use.

- ``sweep(config, store=None, progress=False) -> DataFrame``: run a sweep from a notebook
  (one row per member per epoch).
- ``load_config``, ``SweepConfig``, ``RunConfig``: sweep declarations (``latchlab.config``).
- ``Store``: the SQLite results store (``latchlab.store``).
- ``from_keras``: a Keras 3 recurrent layer as a latchlab cell (``latchlab.core.interop``).
- ``setup``: process set-up (host devices, compilation cache; ``latchlab.runtime``).
- ``LatchlabError``, ``ConfigError``, ``StoreError``: what bad input raises.

Floors, lowest first: ``core`` (tasks, cells, model), ``engine`` (plan, data, training,
native kernels), ``store``, ``analysis`` (statistics, figures, diagnostics, landscapes),
``experiments`` (one module per published experiment), ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "sweep": ("latchlab.engine.sweep", "sweep"),
    "load_config": ("latchlab.config", "load"),
    "SweepConfig": ("latchlab.config", "SweepConfig"),
    "RunConfig": ("latchlab.config", "RunConfig"),
    "Store": ("latchlab.store", "Store"),
    "from_keras": ("latchlab.core.interop", "from_keras"),
    "setup": ("latchlab.runtime", "setup"),
    "LatchlabError": ("latchlab.errors", "LatchlabError"),
    "ConfigError": ("latchlab.errors", "ConfigError"),
    "StoreError": ("latchlab.errors", "StoreError"),
}
__all__ = [
    "__version__",
    "sweep",
    "load_config",
    "SweepConfig",
    "RunConfig",
    "Store",
    "from_keras",
    "setup",
    "LatchlabError",
    "ConfigError",
    "StoreError",
]

if TYPE_CHECKING:
    from latchlab.config import RunConfig as RunConfig
    from latchlab.config import SweepConfig as SweepConfig
    from latchlab.config import load as load_config  # noqa: F401  (listed in __all__ through _EXPORTS)
    from latchlab.core.interop import from_keras as from_keras
    from latchlab.engine.sweep import sweep as sweep
    from latchlab.errors import ConfigError as ConfigError
    from latchlab.errors import LatchlabError as LatchlabError
    from latchlab.errors import StoreError as StoreError
    from latchlab.runtime import setup as setup
    from latchlab.store import Store as Store


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'latchlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
