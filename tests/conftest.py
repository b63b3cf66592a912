"""Shared test setup: Keras on the JAX backend, no implicit rank promotion in jax.numpy, and
the ``x64`` fixture."""

import os
import sys
from pathlib import Path

# tests/clitools.py, shared by the test folders that mirror the package
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

from latchlab import runtime  # noqa: E402

# one XLA device per core, as the CLI has (before JAX starts); the test process keeps JAX's
# in-memory compilation only, and what calls ``runtime.setup`` in process (``latchlab.sweep``,
# experiment runners) changes nothing after this; CLI subprocesses get the persistent cache in
# a per-session directory (``xla_cache``)
runtime.setup(persistent_cache=False)

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """float64 for the duration of a test (finite-difference references)."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory):
    """One compilation cache for every CLI subprocess of a test session."""
    return tmp_path_factory.mktemp("xla-cache")


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilations():
    """Drop JAX's compiled executables after each test module: one process running the
    whole suite otherwise accumulates thousands of them (each holds its own memory
    mappings), and XLA crashed in the compiler late in such runs."""
    yield
    jax.clear_caches()
