"""Where the test suite's CPU time goes: JAX's compilation events a test file, as a pytest
plugin, and their sum over a run's workers.

    PYTHONPATH=bench COMPILE_SHARE=/tmp/cs-r1 .venv/bin/python -m pytest -q -n 2 --dist loadfile \
        -p compile_share -p no:cacheprovider tests --ignore=tests/engine --ignore=tests/experiments
    .venv/bin/python bench/compile_share.py /tmp/cs-r1

Each worker writes ``<COMPILE_SHARE>-<worker>.json``: per test file, the CPU time of its
tests in that process (threads included, subprocesses not) and the seconds JAX reported for
tracing, lowering to MLIR, XLA's backend compilation and what the persistent cache saved.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import sys
import time

import pytest

BACKEND = "/jax/core/compile/backend_compile_duration"
LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
TRACE = "/jax/core/compile/jaxpr_trace_duration"
SAVED = "/jax/compilation_cache/compile_time_saved_sec"

_per: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
_current: list[str | None] = [None]


def _listener(event, duration, **_):
    if _current[0] is not None:
        _per[_current[0]][event] += duration


def pytest_configure(config):
    from jax._src import monitoring

    monitoring.register_event_duration_secs_listener(_listener)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current[0] = item.nodeid.split("::")[0]
    t = time.process_time()
    yield
    _per[_current[0]]["cpu"] += time.process_time() - t
    _current[0] = None


def pytest_sessionfinish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(f"{os.environ.get('COMPILE_SHARE', '/tmp/compile-share')}-{worker}.json", "w") as f:
        json.dump(_per, f)


def main(prefix: str) -> None:
    files: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for path in glob.glob(f"{prefix}-*.json"):
        with open(path) as f:
            for name, c in json.load(f).items():
                files[name].update(c)
    total = sum(files.values(), collections.Counter())
    print(f"{'CPU s':>7} {'backend':>8} {'lower':>6} {'trace':>6} {'saved':>6}  test file")
    for name, c in [*sorted(files.items(), key=lambda x: -x[1]["cpu"]), ("all", total)]:
        print(f"{c['cpu']:7.1f} {c[BACKEND]:8.1f} {c[LOWER]:6.1f} {c[TRACE]:6.1f} {c[SAVED]:6.1f}  {name}")


if __name__ == "__main__":
    main(sys.argv[1])
