"""The package's facade: ``__all__`` lists every re-export, each resolves to the object it
names, and the facade itself loads nothing heavy."""

import importlib
import subprocess
import sys

import latchlab


def test_all_lists_every_export_and_each_resolves():
    assert set(latchlab.__all__) == {"__version__", *latchlab._EXPORTS}
    for name, (module, attr) in latchlab._EXPORTS.items():
        assert getattr(latchlab, name) is getattr(importlib.import_module(module), attr)


def test_importing_the_facade_loads_no_jax():
    code = "import sys, latchlab; print(any(m == 'jax' or m.startswith('jax.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
