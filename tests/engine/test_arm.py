"""The native kernels' ARM build (aarch64, NEON) under user-mode emulation against plain
vmap + autodiff + optax, as ``test_native`` checks this machine's builds (``armtools``:
each kernel call replayed under ``qemu-aarch64``): GCC's, and where clang is installed,
clang's (what an ARM Mac builds with)."""

from __future__ import annotations

import shutil

import pytest
from armtools import needs_arm, on_arm
from test_engine import _padded_data
from test_native import LONG, SHORT, _assert_native_equals_vmap, _cell, _task_data

from latchlab.core import catalog
from latchlab.core import model as M

pytestmark = needs_arm


def _builds(tmp) -> dict:
    """The ARM builds of ``armtools``: GCC's, and clang's where it is installed."""
    return on_arm(tmp) | (on_arm(tmp, "clang++") if shutil.which("clang++") else {})


@pytest.mark.parametrize(
    "kind, rsig, head, optimizer, batch, Ts, units",
    [
        ("lstm", "hard_sigmoid", "dense2", "adam", 16, LONG, 1),  # the seed's (Keras 2)
        ("srnn", "sigmoid", "dense1", "rmsprop", 7, LONG, 1),
        ("gru_ra", "sigmoid", "dense2", "adam", 16, SHORT, 1),  # Keras 3
        ("janet", "hard_sigmoid_keras3", "dense2", "sgd", 10, SHORT, 1),
        ("lstm", "hard_sigmoid", "dense2", "adam", 16, LONG, 8),  # the bit relay's (its own build)
        ("gru", "hard_sigmoid", "dense1", "rmsprop", 24, SHORT, 2),
        ("lstm_nofg", "sigmoid", "dense2", "sgd", 7, SHORT, 33),
    ],
)
def test_arm_kernels_equal_vmap_autodiff(kind, rsig, head, optimizer, batch, Ts, units, tmp_path_factory):
    """``test_native_equals_vmap_autodiff``'s check, 1e-5 after 3 epochs, for the ARM build:
    each cell, each gate activation, both classification heads, each optimiser, units of
    the one-unit path, the 8-unit build and the general one."""
    model = M.Model(_cell(kind, rsig, units), head)
    builds = _builds(tmp_path_factory.getbasetemp())
    _assert_native_equals_vmap(model, optimizer, batch, _padded_data(Ts, Ts[0], 64)[0], builds)


@pytest.mark.parametrize(
    "task, kind, rsig, optimizer, batch, Ts, units",
    [
        ("adding", "gru_ra", "hard_sigmoid", "adam", 16, (8, 4, 6), 8),  # linear head, 2 channels
        ("copy", "lstm", "sigmoid", "rmsprop", 10, (30, 21, 25), 2),  # seq_softmax, 10 channels
    ],
)
def test_arm_kernels_on_adding_and_copy(task, kind, rsig, optimizer, batch, Ts, units, tmp_path_factory):
    """The same for the linear and seq_softmax heads on inputs of several channels."""
    model = M.Model(_cell(kind, rsig, units), catalog.HEADS_FOR[catalog.TARGETS[task]][0], catalog.N_IN[task])
    if task == "copy":
        model = M.Model(model.cell, model.head, model.n_in, catalog.COPY_CATEGORIES)
    builds = _builds(tmp_path_factory.getbasetemp())
    _assert_native_equals_vmap(model, optimizer, batch, _task_data(task, Ts), builds)
