"""Reference tests for the native kernels (``latchlab.engine.native``): every variant they train
(cell, gate activation, GRU reset_after, head, optimiser, batch size) against plain vmap +
reverse-mode autodiff + optax in ``train.fit``, on members of mixed left-padded lengths."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest
from test_engine import _padded_data, _stack

from latchlab.core import model as M
from latchlab.engine import native
from latchlab.engine import train
from latchlab.core.cells import Cell

# without a compiler (or with LATCHLAB_NATIVE=0) these are skipped; with one, a failed build fails
pytestmark = pytest.mark.skipif(
    not shutil.which(os.environ.get("CXX", "g++")) or os.environ.get("LATCHLAB_NATIVE") == "0",
    reason="no C++ compiler: native kernels unavailable",
)


def _x86_with(flag: str) -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


# instruction sets the reference test runs the kernels for: this machine's, and on an x86
# machine that has them the AVX2 build (16 registers, 8 floats a vector: the AMD EPYC
# laptops and servers of issue 13) and the portable 16-byte vectors (what ARM's NEON gets)
MARCHES = ["native"] + (["x86-64-v3"] if _x86_with("avx2") else []) + (["x86-64"] if _x86_with("sse2") else [])


def test_kernels_build_and_load():
    """Each variant builds (RuntimeError with the compiler's message otherwise) and rejects
    calls meant for another variant: another cell, or a GRU's other reset_after."""
    import ctypes

    for cell, other in [
        (Cell("lstm", 1, "hard_sigmoid"), (0, 0, 0)),  # lstm -> srnn
        (Cell("srnn", 1), (1, 0, 0)),  # srnn -> lstm
        (Cell("gru", 1, "sigmoid", reset_after=True), (3, 0, 0)),  # reset_after -> not
    ]:
        model = M.Model(cell)
        so = native.lib(native.variant(model))
        assert native.available(model)
        counter = (ctypes.c_int * 16)()
        assert (
            so.latch_evaluate(
                *other,
                1,
                0,
                0,
                1,
                None,
                None,
                None,
                0,
                None,
                None,
                None,
                None,
                None,
                8,
                ctypes.cast(counter, ctypes.POINTER(ctypes.c_int)),
            )
            == -1
        )


def test_library_codes_equal_the_python_tables():
    """The codes are defined once, in ``native.CODES``; the C++ names each one and reads its
    code from the build's -D flags: a library hands back exactly the Python tables."""
    for model in (M.Model(Cell("lstm", 1, "hard_sigmoid")), M.Model(Cell("srnn", 1))):
        assert native.library_codes(native.lib(native.variant(model))) == native.CODES
    assert native.CODES["kind"]["lstm_nofg"] == 2 and native.CODES["optimizer"]["rmsprop"] == 2


def _prototypes(source: str) -> dict[str, int]:
    """``{name: number of parameters}`` of the functions in kernels.cpp's extern "C" block."""
    block = source[source.index('extern "C" {') :]
    out = {}
    for name, params in re.findall(r"^[\w ]+?\*?\s*(latch_\w+)\(([^)]*)\)\s*\{", block, re.M | re.S):
        params = params.strip()
        out[name] = 0 if params in ("", "void") else params.count(",") + 1
    return out


def test_every_entry_point_has_declared_argument_types():
    """``native.SIGNATURES`` types every function kernels.cpp exports, with as many
    arguments as its C++ prototype; the loaded library carries them."""
    protos = _prototypes(native.SOURCE.read_text())
    assert set(protos) >= {"latch_train_epoch", "latch_evaluate", "latch_code"}
    assert {name: len(args) for name, (_, args) in native.SIGNATURES.items()} == protos
    so = native.lib(native.variant(M.Model(Cell("lstm", 1))))
    for name, (res, args) in native.SIGNATURES.items():
        assert getattr(so, name).argtypes == args and getattr(so, name).restype is res


@pytest.mark.skipif("x86-64-v3" not in MARCHES, reason="needs an x86 CPU with AVX2")
def test_vector_width_and_block_follow_the_instruction_set(monkeypatch):
    """``LATCHLAB_NATIVE_MARCH`` builds for another instruction set; the library picks 8
    floats a vector for AVX2 and 4 for the portable build, 16 for AVX-512."""
    model = M.Model(Cell("lstm", 1))
    for march, isa, lanes in [("x86-64-v3", "avx2", 8), ("x86-64", "portable", 4)]:
        monkeypatch.setenv("LATCHLAB_NATIVE_MARCH", march)
        info = native.build_info(native.lib(native.variant(model)))
        assert (info["isa"], info["lanes"]) == (isa, lanes)
        assert info["per_block"] >= 1
    monkeypatch.delenv("LATCHLAB_NATIVE_MARCH")
    if _x86_with("avx512f"):
        assert native.build_info(native.lib(native.variant(model)))["lanes"] == 16


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-g++"), reason="no ARM cross compiler (g++-aarch64-linux-gnu)")
def test_kernels_compile_for_arm_with_neon_vectors(tmp_path):
    """The portable build compiles for ARM (a cross compiler; nothing runs) and picks
    16-byte NEON vectors and 4 members a block."""
    cxx = "aarch64-linux-gnu-g++"
    flags = [*native.FLAGS, "-march=armv8-a", *native.defines((1, 1, 0))]
    r = subprocess.run([cxx, *flags, "-o", str(tmp_path / "k.so"), str(native.SOURCE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    macros = subprocess.run(
        [cxx, *flags, "-E", "-dM", str(native.SOURCE)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert {'#define LATCH_ISA "neon"', "#define LATCH_VBYTES 16", "#define LATCH_PER_BLOCK 4"} <= set(macros)


def test_available_says_why_not(monkeypatch):
    lstm = M.Model(Cell("lstm", 1), "dense2")
    assert native.available(lstm) and native.available(lstm).reason == ""
    assert native.available(M.Model(Cell("gru", 1)), build=False)
    assert not native.available(M.Model(Cell("gru", 1), "linear"))
    assert "head linear" in native.available(M.Model(Cell("gru", 1), "linear")).reason
    assert native.available(M.Model(Cell("lstm", 2)))
    assert "2 inputs" in native.available(M.Model(Cell("lstm", 2), "linear", n_in=2)).reason
    assert "optimizer adagrad" in native.available(lstm, "adagrad").reason
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    assert native.available(lstm, build=False).reason == "disabled by LATCHLAB_NATIVE=0"


SHORT, LONG = (8, 4, 6), (40, 17, 35)  # LONG: the kernels' 16-step blocks and their tails


@pytest.mark.parametrize(
    "kind, rsig, head, optimizer, batch, Ts, units",
    [
        ("lstm", "hard_sigmoid", "dense2", "adam", 16, SHORT, 1),  # the seed's (Keras 2)
        ("lstm", "hard_sigmoid", "dense2", "adam", 16, LONG, 1),
        ("lstm", "sigmoid", "dense2", "adam", 16, SHORT, 1),  # Keras 3
        ("srnn", "hard_sigmoid", "dense2", "adam", 16, LONG, 1),
        ("lstm_nofg", "hard_sigmoid_keras3", "dense1", "sgd", 10, SHORT, 1),  # SIMD vectors span members
        ("srnn", "sigmoid", "dense1", "rmsprop", 7, LONG, 1),
        ("lstm", "sigmoid", "dense1", "rmsprop", 24, SHORT, 1),
        # the GRU: each reset_after mode with every gate activation, head and optimiser
        ("gru_ra", "sigmoid", "dense2", "adam", 16, LONG, 1),  # Keras 3
        ("gru", "hard_sigmoid", "dense2", "adam", 16, LONG, 1),  # Keras 2
        ("gru_ra", "hard_sigmoid", "dense1", "sgd", 10, SHORT, 1),
        ("gru", "sigmoid", "dense1", "rmsprop", 7, SHORT, 1),
        ("gru_ra", "hard_sigmoid_keras3", "dense1", "rmsprop", 24, SHORT, 1),
        ("gru", "hard_sigmoid_keras3", "dense2", "sgd", 7, LONG, 1),
        ("janet", "sigmoid", "dense2", "adam", 16, LONG, 1),
        ("janet", "hard_sigmoid", "dense1", "sgd", 10, SHORT, 1),
        ("janet", "hard_sigmoid_keras3", "dense2", "rmsprop", 7, LONG, 1),
        # cells of H units (the follow-ups' bit relay has 8, the units sweep 1 to 100): a
        # member's rows fill vectors of their own (B = 7, 10, 24: partly filled ones)
        ("lstm", "hard_sigmoid", "dense2", "adam", 16, LONG, 8),  # the bit relay's (Keras 2)
        ("srnn", "hard_sigmoid", "dense2", "adam", 16, LONG, 8),
        ("gru", "hard_sigmoid", "dense2", "adam", 16, LONG, 8),
        ("gru_ra", "sigmoid", "dense1", "rmsprop", 24, SHORT, 2),
        ("gru", "hard_sigmoid_keras3", "dense2", "sgd", 7, SHORT, 33),
        ("gru_ra", "hard_sigmoid", "dense2", "sgd", 10, SHORT, 33),
        ("lstm", "sigmoid", "dense1", "sgd", 7, LONG, 2),
        ("lstm", "hard_sigmoid_keras3", "dense2", "rmsprop", 16, SHORT, 33),
        ("lstm_nofg", "hard_sigmoid", "dense1", "adam", 10, SHORT, 8),
        ("srnn", "sigmoid", "dense1", "sgd", 24, SHORT, 33),
        ("janet", "sigmoid", "dense2", "rmsprop", 16, SHORT, 33),
        ("janet", "hard_sigmoid", "dense1", "adam", 7, LONG, 2),
    ],
)
def test_native_equals_vmap_autodiff(kind, rsig, head, optimizer, batch, Ts, units):
    """3 epochs of 51 training examples (short last batches), 5 members with lengths
    ``Ts[0], Ts[1], Ts[2], Ts[0], Ts[1]`` left-padded to ``Ts[0]`` and their own learning
    rates: parameters, training and validation metrics agree to 1e-5 with the reference,
    which moved them by > 1e-2, for every instruction set in ``MARCHES`` (``gru_ra``: a
    GRU with reset_after, ``gru`` one without)."""
    if kind.startswith("gru"):
        cell = Cell("gru", units, rsig, reset_after=kind == "gru_ra")
    else:
        cell = Cell(kind, units, rsig)
    model = M.Model(cell, head)
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
    want = train.fit(spec._replace(mode="vmap"), init, data, lr, seeds, 3)
    for march in MARCHES:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LATCHLAB_NATIVE_MARCH", march)
            got = train.fit(spec, init, data, lr, seeds, 3)
        for (path, g), w in zip(
            jax.tree_util.tree_flatten_with_path(got.params[-1])[0], jax.tree.leaves(want.params[-1])
        ):
            np.testing.assert_allclose(g, w, atol=1e-5, err_msg=f"{march} {jax.tree_util.keystr(path)}")
        for name, a, b in zip(("train_loss", "train_acc", "val_loss", "val_acc"), got[:4], want[:4]):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"{march} {name}")
    assert (
        max(
            float(np.abs(np.asarray(a) - np.asarray(b)).max())
            for a, b in zip(jax.tree.leaves(want.params[-1]), jax.tree.leaves(init))
        )
        > 1e-2
    )


def test_flatten_round_trip_and_layout():
    """``flatten`` orders each member's parameters as the kernels read them: a reset_after
    GRU's input biases, then its recurrent biases, after its kernel and recurrent weights."""
    model = M.Model(Cell("lstm", 1), "dense2")
    gru = M.Model(Cell("gru", 1, reset_after=True), "dense1")
    p = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(3)])
    q = _stack([M.init(jax.random.PRNGKey(s), gru, "torch") for s in range(3)])  # nonzero biases
    flat, flat_q = native.flatten(p), native.flatten(q)
    assert flat.shape == (3, 12 + 4) and flat_q.shape == (3, 12 + 2)
    np.testing.assert_array_equal(flat[:, 4:8], np.asarray(p["cell"]["recurrent"])[:, 0])
    np.testing.assert_array_equal(flat[:, 12:14], np.asarray(p["head"]["kernel"])[:, 0])
    np.testing.assert_array_equal(flat_q[:, 6:9], np.asarray(q["cell"]["bias"])[:, 0])
    np.testing.assert_array_equal(flat_q[:, 9:12], np.asarray(q["cell"]["bias"])[:, 1])
    for f, like in ((flat, p), (flat_q, q)):
        for a, b in zip(jax.tree.leaves(native.unflatten(f, like)), jax.tree.leaves(like)):
            np.testing.assert_array_equal(a, b)


def test_kernels_restore_the_callers_subnormal_mode():
    """The kernels flush subnormal floats to zero while they run, as XLA:CPU does (the
    native GRU trained 3.5x slower without), and leave the calling thread's mode as it was:
    numpy keeps its subnormals after a native epoch."""
    tiny, scale = np.float32(2e-38), np.float32(0.01)
    assert tiny * scale > 0
    model = M.Model(Cell("gru", 1, "hard_sigmoid", reset_after=False), "dense2")
    data, _ = _padded_data(SHORT, SHORT[0], 64)
    seeds = np.arange(3) + 5
    init = _stack([M.init(jax.random.PRNGKey(int(s)), model) for s in seeds])
    train.fit(train.Spec(model, "adam", 16, "native"), init, data, np.full(3, 1e-2, np.float32), seeds, 1)
    assert tiny * scale > 0


def test_masks_must_be_left_padded():
    with pytest.raises(ValueError, match="left-padded"):
        native.first_steps(np.array([[True, False, True]]))
    np.testing.assert_array_equal(native.first_steps(np.array([[False, True, True], [True] * 3])), [1, 0])


def test_disabled_by_environment(monkeypatch):
    """``LATCHLAB_NATIVE=0`` sends training back to the XLA modes."""
    model = M.Model(Cell("lstm", 1), "dense2")
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    assert not native.available(model) and train.choose_mode(model) == "bptt"
    monkeypatch.delenv("LATCHLAB_NATIVE")
    assert train.choose_mode(model) == "native"
    assert train.choose_mode(M.Model(Cell("gru", 1), "dense2")) == "native"
    assert train.choose_mode(M.Model(Cell("janet", 1, "hard_sigmoid"), "dense1")) == "native"
    assert train.choose_mode(M.Model(Cell("gru", 2), "dense2")) == "native"
    assert train.choose_mode(M.Model(Cell("gru", 2), "linear")) == "vmap"
