"""Reference tests for the native kernels (``latchlab.engine.native``): every variant they train
(cell, gate activation, head, optimiser, batch size) against plain vmap + reverse-mode
autodiff + optax in ``train.fit``, on members of mixed left-padded lengths."""
from __future__ import annotations

import os
import shutil

import jax
import numpy as np
import pytest
from test_engine import _padded_data, _stack

from latchlab.core import model as M
from latchlab.engine import native
from latchlab.engine import train
from latchlab.core.cells import Cell

# without a compiler (or with LATCHLAB_NATIVE=0) these are skipped; with one, a failed build fails
pytestmark = pytest.mark.skipif(not shutil.which(os.environ.get("CXX", "g++")) or os.environ.get("LATCHLAB_NATIVE") == "0",
                                reason="no C++ compiler: native kernels unavailable")


def test_kernels_build_and_load():
    """Each variant builds (RuntimeError with the compiler's message otherwise) and rejects
    calls meant for another variant."""
    import ctypes

    for kind, rsig in [("lstm", "hard_sigmoid"), ("srnn", "sigmoid")]:
        model = M.Model(Cell(kind, 1, rsig))
        so = native.lib(native.variant(model))
        assert native.available(model)
        counter = (ctypes.c_int * 16)()
        other = 1 - native.variant(model)[0]  # lstm <-> srnn
        null = ctypes.c_void_p()
        assert so.latch_evaluate(other, 0, 0, 0, 1, null, null, null, 0, null, null, null, null, null, 8,
                                 ctypes.cast(counter, ctypes.POINTER(ctypes.c_int))) == -1


SHORT, LONG = (8, 4, 6), (40, 17, 35)  # LONG: the kernels' 16-step blocks and their tails


@pytest.mark.parametrize("kind, rsig, head, optimizer, batch, Ts", [
    ("lstm", "hard_sigmoid", "dense2", "adam", 16, SHORT),  # the seed's (Keras 2)
    ("lstm", "hard_sigmoid", "dense2", "adam", 16, LONG),
    ("lstm", "sigmoid", "dense2", "adam", 16, SHORT),  # Keras 3
    ("srnn", "hard_sigmoid", "dense2", "adam", 16, LONG),
    ("lstm_nofg", "hard_sigmoid_keras3", "dense1", "sgd", 10, SHORT),  # SIMD vectors span members
    ("srnn", "sigmoid", "dense1", "rmsprop", 7, LONG),
    ("lstm", "sigmoid", "dense1", "rmsprop", 24, SHORT),
])
def test_native_equals_vmap_autodiff(kind, rsig, head, optimizer, batch, Ts):
    """3 epochs of 51 training examples (short last batches), 5 members with lengths
    ``Ts[0], Ts[1], Ts[2], Ts[0], Ts[1]`` left-padded to ``Ts[0]`` and their own learning
    rates: parameters, training and validation metrics agree to 1e-5 with the reference,
    which moved them by > 1e-2."""
    model = M.Model(Cell(kind, 1, rsig), head)
    assert train.choose_mode(model, optimizer) == "native"
    data, _ = _padded_data(Ts, Ts[0], 64)
    pick = np.array([0, 1, 2, 0, 1])
    data = train.Data(*(np.asarray(a)[pick] for a in data))
    seeds = np.arange(5) + 21
    init = _stack([M.init(jax.random.PRNGKey(int(s)), model) for s in seeds])
    lr = np.array([1e-2, 3e-2, 1e-2, 5e-3, 2e-2], np.float32)
    if optimizer == "rmsprop":  # its first steps are ~3 lr whatever the gradient: at 3e-2 the
        lr *= 0.3  # XLA modes themselves (rtrl against vmap) part by 5e-6 after 3 epochs
    spec = train.Spec(model, optimizer, batch, "native")
    got = train.fit(spec, init, data, lr, seeds, 3)
    want = train.fit(spec._replace(mode="vmap"), init, data, lr, seeds, 3)
    for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(got.params[-1])[0], jax.tree.leaves(want.params[-1])):
        np.testing.assert_allclose(g, w, atol=1e-5, err_msg=jax.tree_util.keystr(path))
    for name, a, b in zip(("train_loss", "train_acc", "val_loss", "val_acc"), got[:4], want[:4]):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)
    assert max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
               for a, b in zip(jax.tree.leaves(want.params[-1]), jax.tree.leaves(init))) > 1e-2


def test_flatten_round_trip_and_layout():
    """``flatten`` orders each member's parameters as the kernels read them."""
    model = M.Model(Cell("lstm", 1), "dense2")
    p = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(3)])
    flat = native.flatten(p)
    assert flat.shape == (3, 12 + 4)
    np.testing.assert_array_equal(flat[:, 4:8], np.asarray(p["cell"]["recurrent"])[:, 0])
    np.testing.assert_array_equal(flat[:, 12:14], np.asarray(p["head"]["kernel"])[:, 0])
    back = native.unflatten(flat, p)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(p)):
        np.testing.assert_array_equal(a, b)


def test_masks_must_be_left_padded():
    with pytest.raises(ValueError, match="left-padded"):
        native.first_steps(np.array([[True, False, True]]))
    np.testing.assert_array_equal(native.first_steps(np.array([[False, True, True], [True] * 3])), [1, 0])


def test_disabled_by_environment(monkeypatch):
    """``LATCHLAB_NATIVE=0`` sends training back to the XLA modes."""
    model = M.Model(Cell("lstm", 1), "dense2")
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    assert not native.available() and train.choose_mode(model) == "bptt"
    monkeypatch.delenv("LATCHLAB_NATIVE")
    assert train.choose_mode(model) == "native"
    assert train.choose_mode(M.Model(Cell("gru", 1), "dense2")) == "vmap"
