"""Shared test setup: Keras on the JAX backend, no implicit rank promotion in jax.numpy, one
XLA compilation cache a test run, and the ``x64`` fixture."""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# tests/clitools.py, shared by the test folders that mirror the package
sys.path.insert(0, str(Path(__file__).parent))

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras

from latchlab import runtime  # noqa: E402
from latchlab.engine import native  # noqa: E402  (imports no JAX)

# JAX's persistent compilation cache in a directory new for this test run, shared by its
# pytest-xdist workers (they inherit the variable from the process that made it, which
# removes it at exit) and their CLI subprocesses (``xla_cache``), never latchlab's own
# (~/.cache/latchlab/xla): a module's programs that another module, worker or subprocess
# compiled before are read, not compiled again (on two cores, tests/engine and
# tests/experiments took 1073 CPU-seconds instead of 1506, 9.9 min, not 13.6). Every program
# is kept (latchlab's MIN_COMPILE_SECS is 0 now too; it was 0.2 s when this was measured):
# each module drops its compiled executables (``_fresh_compilations``), and the next ones'
# small eager operations were compiled again (tests/analysis in one process: 255 CPU-seconds,
# not 280; with ``native`` below, make test's first run 776 CPU-s and 6.9 min, not 853 and 7.5).
# Beside it, ``native``: latchlab's own built kernels, which a subprocess given this cache
# finds there (``native.cache_dir``) instead of building them again
if "LATCHLAB_TEST_XLA_CACHE" not in os.environ:
    _root = Path(tempfile.mkdtemp(prefix="latchlab-test-"))
    atexit.register(shutil.rmtree, _root, ignore_errors=True)
    native.cache_dir().mkdir(parents=True, exist_ok=True)
    (_root / "native").symlink_to(native.cache_dir(), target_is_directory=True)
    (_root / "xla").mkdir()
    os.environ["LATCHLAB_TEST_XLA_CACHE"] = str(_root / "xla")
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["LATCHLAB_TEST_XLA_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
# one XLA device per core, as the CLI has (before JAX starts); ``runtime.setup`` leaves the
# cache above as it is, and what calls it in process (``latchlab.sweep``, experiment
# runners) changes nothing after this
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
def xla_cache():
    """The test run's compilation cache, for CLI subprocesses (their ``LATCHLAB_CACHE``)."""
    return Path(os.environ["LATCHLAB_TEST_XLA_CACHE"])


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilations():
    """Drop JAX's compiled executables after each test module: one process running the
    whole suite otherwise accumulates thousands of them (each holds its own memory
    mappings), and XLA crashed in the compiler late in such runs."""
    yield
    jax.clear_caches()
