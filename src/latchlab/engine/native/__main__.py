"""``python -m latchlab.engine.native``: build every variant of the native kernels now (the Makefile
does this after installing, so that a first sweep does not wait for the compiler)."""
import sys

from latchlab.engine import native

if __name__ == "__main__":
    built, failed = native.build_all()
    for v, path in built.items():
        print(f"latchlab native kernels {v}: {path}")
    for v, err in failed.items():
        print(f"latchlab native kernels {v}: not built ({err}); the JAX modes will train instead", file=sys.stderr)
