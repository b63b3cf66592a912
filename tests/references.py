"""How the tests compile their references: unoptimised.

A reference (a Python loop over members, plain vmap + autodiff + optax, a formulation as
first written) exists to give the numbers that what a test checks must equal. Its XLA
programs are compiled with LLVM at -O0: the same operations in the same order, so the same
numbers to float32 rounding (``bench/compile_flags.py``: 1e-7 to 8e-7 apart after a training
epoch), compiled in 0.54-0.74 of the time and run 2.5-8.4 times slower, which is nothing on the
tests' few examples. What a test checks is compiled as a user's is.
"""

from __future__ import annotations

from functools import partial

import jax
import pytest

from latchlab.engine import train

UNOPTIMISED = {"xla_backend_optimization_level": 0}
jit = partial(jax.jit, compiler_options=UNOPTIMISED)
"""``jax.jit`` for a reference's own programs."""

_VMAP_PROGRAMS = {
    "init_state": jit(train.init_state.__wrapped__, static_argnums=0),
    "train_epoch": jit(train.train_epoch.__wrapped__, static_argnums=0, donate_argnums=1),
    "evaluate": jit(train.evaluate.__wrapped__, static_argnums=(0, 3)),
}


def vmap_fit(spec: train.Spec, init, data: train.Data, lr, seeds, epochs: int) -> train.History:
    """``train.fit`` in the vmap mode (plain vmap + reverse-mode autodiff + optax) with its
    programs compiled unoptimised."""
    with pytest.MonkeyPatch.context() as mp:
        for name, f in _VMAP_PROGRAMS.items():
            mp.setattr(train, name, f)
        return train.fit(spec._replace(mode="vmap"), init, data, lr, seeds, epochs)
