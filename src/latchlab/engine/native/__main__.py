"""``python -m latchlab.engine.native``: build every variant of the native kernels, the
bengio94 and guessing kernels and the random number generator (checked against JAX) now (the Makefile
does this after installing, so that a first sweep does not wait for the compiler), for
``-march=native`` or ``$LATCHLAB_NATIVE_MARCH``."""

import sys

from latchlab.engine import native

if __name__ == "__main__":
    built, failed = native.build_all()
    for v, path in built.items():
        print(f"latchlab native kernels {v}: {path}")
    if built:
        info, tuned = native.build_info(native.lib(next(iter(built)))), native.tuning()
        print(
            f"{native.compiler_version()}, -march={native.march()}: {info['isa']}, {info['lanes']} floats a vector, "
            f"{info['per_block']} members a block" + (f"; tuned for this CPU: {' '.join(tuned)}" if tuned else "")
        )
    try:
        print(f"latchlab native bengio94 kernel: {native.bengio94()._name}")
    except RuntimeError as e:
        print(f"{e}; reproduce bengio1994 will train with JAX instead", file=sys.stderr)
    try:
        print(f"latchlab native guessing kernel: {native.guessing()._name}")
    except RuntimeError as e:
        print(f"{e}; reproduce guessing will evaluate guesses with JAX instead", file=sys.stderr)
    if native.prng() is not None:
        print("latchlab native random numbers: built, and the same as JAX's here")
    else:
        print("latchlab native random numbers: unavailable; JAX makes the data instead", file=sys.stderr)
    for v, err in failed.items():
        print(f"latchlab native kernels {v}: not built ({err}); the JAX modes will train instead", file=sys.stderr)
