"""Reference tests for the native kernels (``latchlab.engine.native``): every variant they train
(cell, gate activation, GRU reset_after, head, optimiser, batch size, units, input channels)
against plain vmap + reverse-mode autodiff + optax in ``train.fit``, on members of mixed
left-padded lengths: latch data for the classification heads, the adding task (2 channels)
for the linear head and the copy task (10 channels) for seq_softmax."""

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
import references
from test_engine import _padded_data, _stack

from latchlab import config, limits
from latchlab.core import catalog, tasks
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


# instruction sets the reference test runs the kernels for: this machine's; on an x86
# machine with AVX-512 the AVX2 build too (16 registers, 8 floats a vector: the AMD EPYC
# laptops and servers of issue 13; on an AVX2 machine that is the native build, the same
# vector width, registers and code paths, so not built twice); and on an x86 machine the
# portable 16-byte vectors (what ARM's NEON gets)
MARCHES = ["native"] + (["x86-64-v3"] if _x86_with("avx512f") else []) + (["x86-64"] if _x86_with("sse2") else [])
# and, where clang is installed and is not already the compiler, this machine's build by
# clang (macOS's compiler): it must meet the references as GCC's builds do (not bit for bit
# with them: the two fuse different multiply-adds)
CLANG = shutil.which("clang++")


def _evaluate_nothing(so, v, head, n_out, labels=None, values=None, steps=None):
    """``latch_evaluate`` of variant ``v`` for no members (R = 0): 0 if the library takes the
    call, -1 if it rejects it."""
    import ctypes

    counter = (ctypes.c_int * 16)()
    I = ctypes.c_int32  # noqa: E741
    ptr = lambda a, t=I: None if a is None else a.ctypes.data_as(ctypes.POINTER(t))  # noqa: E731
    # kind, rsig, reset_after, H, F, head, O, R, T, xrow, xstride, t0, Nv, val, yv, yvv, N,
    # ysteps, params, loss, acc, per_block, next_block, brow, bsteps
    return so.latch_evaluate(
        *v,
        1,
        1,
        native.HEADS[head],
        n_out,
        0,
        1,
        None,
        None,
        None,
        0,
        None,
        ptr(labels),
        ptr(values, ctypes.c_float),
        1,
        ptr(steps),
        None,
        None,
        None,
        8,
        ctypes.cast(counter, ctypes.POINTER(ctypes.c_int)),
        None,
        None,
    )


def test_kernels_build_and_load():
    """Each variant builds (RuntimeError with the compiler's message otherwise) and rejects
    calls meant for another variant (another cell, or a GRU's other reset_after), a head
    with another number of outputs, or without the targets it reads."""
    labels, values, steps = np.zeros(1, np.int32), np.zeros(1, np.float32), np.zeros(1, np.int32)
    for cell, other in [
        (Cell("lstm", 1, "hard_sigmoid"), (0, 0, 0)),  # lstm -> srnn
        (Cell("srnn", 1), (1, 0, 0)),  # srnn -> lstm
        (Cell("gru", 1, "sigmoid", reset_after=True), (3, 0, 0)),  # reset_after -> not
    ]:
        model = M.Model(cell)
        v = native.variant(model)
        so = native.lib(v)
        assert native.available(model)
        assert _evaluate_nothing(so, v, "dense2", 2, labels) == 0
        assert _evaluate_nothing(so, other, "dense2", 2, labels) == -1
        assert _evaluate_nothing(so, v, "dense2", 1, labels) == -1
        assert _evaluate_nothing(so, v, "dense1", 1, None, values) == -1
        assert _evaluate_nothing(so, v, "linear", 1, None, values) == 0
        assert _evaluate_nothing(so, v, "linear", 1, labels) == -1
        assert _evaluate_nothing(so, v, "seq_softmax", 10, steps=steps) == 0
        assert _evaluate_nothing(so, v, "seq_softmax", 10, labels) == -1


def test_library_codes_equal_the_python_tables():
    """The codes are defined once, in ``native.CODES``; the C++ names each one and reads its
    code from the build's -D flags: a library hands back exactly the Python tables."""
    for model in (M.Model(Cell("lstm", 1, "hard_sigmoid")), M.Model(Cell("srnn", 1))):
        assert native.library_codes(native.lib(native.variant(model))) == native.CODES
    assert native.CODES["kind"]["lstm_nofg"] == 2 and native.CODES["optimizer"]["rmsprop"] == 2
    assert set(native.HEADS) == set(M.ALL_HEADS)


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


@pytest.mark.skipif(not _x86_with("avx2"), reason="needs an x86 CPU with AVX2")
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


@pytest.mark.skipif(not CLANG, reason="no clang++")
def test_clang_builds_every_source_and_a_process_keeps_each_compilers(monkeypatch):
    """clang builds the kernels (GCC's vector shuffles are not clang's), bengio94 and the
    random number generator, whose numbers are JAX's bit for bit under clang too. A process
    keeps one library per compiler: after the default compiler's, ``CXX=clang++`` loads
    clang's, with the same vector width and block, and the default's comes back after."""
    if native._compiler() == CLANG:
        pytest.skip("clang++ is the default compiler here")
    v = native.variant(M.Model(Cell("lstm", 1)))
    first = native.lib(v), native.bengio94(), native.prng()
    monkeypatch.setenv("CXX", CLANG)
    clang = native.lib(v), native.bengio94(), native.prng()
    assert clang[2] is not None, "clang's random numbers differ from JAX's"
    for a, b in zip(first, clang):
        assert a is not None and a._name != b._name
    assert native.build_info(clang[0]) == native.build_info(first[0])
    monkeypatch.delenv("CXX")
    assert native.lib(v) is first[0]


def _stand_in(tmp_path, name: str, script: str) -> str:
    """An executable shell script ``name`` in ``tmp_path``: a stand-in compiler."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_a_compiler_that_rejects_march_native_builds_for_its_default_target(tmp_path, monkeypatch):
    """clang before 15 on an ARM CPU (an ARM Mac's among them) says it does not support
    -march=native; the build then tries -mcpu=native, then neither (the compiler's default
    target: on an ARM Mac, its NEON). Here g++ behind a script that rejects both as clang
    does: the library built is the x86 default's (16-byte vectors) and meets the reference.
    A compiler that fails for any other reason is tried once, and its error is the one said."""
    log = tmp_path / "calls"
    old_clang = _stand_in(
        tmp_path,
        "old-clang",
        f'echo "$*" >> {log}\n'
        'for a in "$@"; do case "$a" in -march=native|-mcpu=native)\n'
        "  echo \"clang: error: the clang compiler does not support '$a'\" >&2; exit 1;; esac; done\n"
        'exec g++ "$@"\n',
    )
    monkeypatch.setenv("CXX", old_clang)
    monkeypatch.delenv("LATCHLAB_NATIVE_MARCH", raising=False)
    monkeypatch.setattr(native, "cache_dir", lambda: tmp_path / "native")
    model = M.Model(Cell("srnn", 1))
    so = native.lib(native.variant(model))
    calls = log.read_text().splitlines()
    assert ["-march=native" in c for c in calls] == [True, False, False]
    assert ["-mcpu=native" in c for c in calls] == [False, True, False]
    assert native.build_info(so)["lanes"] == 4  # x86-64's default, SSE2 (on ARM, NEON)
    builds = {
        "no -march": lambda mp: (
            mp.setenv("CXX", old_clang),
            mp.setattr(native, "cache_dir", lambda: tmp_path / "native"),
        )
    }
    _assert_native_equals_vmap(model, "adam", 16, _padded_data(SHORT, SHORT[0], 64)[0], builds)

    broken = _stand_in(
        tmp_path, "broken", f'echo "$*" >> {log}.broken\necho "kernels.cpp:1: error: no such thing" >&2\nexit 1\n'
    )
    monkeypatch.setenv("CXX", broken)
    with pytest.raises(RuntimeError, match="no such thing"):
        native.lib((4, 2, 0))
    assert len((tmp_path / "calls.broken").read_text().splitlines()) == 1


def test_available_says_why_not(monkeypatch):
    lstm = M.Model(Cell("lstm", 1), "dense2")
    assert native.available(lstm) and native.available(lstm).reason == ""
    assert native.available(M.Model(Cell("gru", 1)), build=False)
    assert native.available(M.Model(Cell("gru", 1), "linear", n_in=2))  # adding
    assert native.available(M.Model(Cell("lstm", 2)))
    assert native.available(M.Model(Cell("janet", 8), "seq_softmax", n_in=10))  # copy
    assert "optimizer adagrad" in native.available(lstm, "adagrad").reason
    assert "head dense3" in native.reach("lstm", "sigmoid", "dense3", "adam")
    assert "cell elman" in native.reach("elman", "sigmoid", "dense2", "adam")
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
        ("gru_ra", "sigmoid", "dense2", "adam", 16, SHORT, 5),  # Keras 3's; units 4 at a time, then 1
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
    model = M.Model(_cell(kind, rsig, units), head)
    _assert_native_equals_vmap(model, optimizer, batch, _padded_data(Ts, Ts[0], 64)[0])


@pytest.mark.parametrize("kind, head, units", [("srnn", "dense2", 1), ("lstm", "dense1", 1), ("gru", "dense2", 8)])
def test_heads_agree_far_in_their_tails(kind, head, units):
    """Head kernels 300 times their initial values: most rows' logits are tens to hundreds
    apart, where e^-|d| is below the smallest normal float (the kernels' vexp clamps it
    there) and the loss is the margin itself. Parameters and metrics still agree with the
    reference, to 1e-5 of their size (losses of about 100), on both paths' heads."""
    model = M.Model(_cell(kind, "sigmoid", units), head)
    _assert_native_equals_vmap(model, "adam", 16, _padded_data(LONG, LONG[0], 64)[0], head_scale=300.0, rtol=1e-5)


def _cell(kind, rsig, units):
    if kind.startswith("gru"):
        return Cell("gru", units, rsig, reset_after=kind == "gru_ra")
    return Cell(kind, units, rsig)


def _marches() -> dict:
    """The builds of ``MARCHES``, and clang's (``CLANG``): each name's set-up of a
    monkeypatch context."""
    builds = {m: (lambda mp, m=m: mp.setenv("LATCHLAB_NATIVE_MARCH", m)) for m in MARCHES}
    if CLANG and native._compiler() != CLANG:
        builds["native, clang++"] = lambda mp: mp.setenv("CXX", CLANG)
    return builds


def _assert_native_equals_vmap(model, optimizer, batch, data, builds=None, head_scale=1.0, rtol=0.0):
    """``data``'s sets 0, 1, 2, 0, 1 for 5 members: 3 epochs of ``train.fit`` natively (for
    every build in ``builds``, name to monkeypatch set-up; default every instruction set in
    ``MARCHES``) and with vmap + autodiff give the same parameters and metrics to 1e-5 (and
    ``rtol``); the reference moved the parameters by > 1e-2, and its metrics are not all
    zero. ``head_scale`` multiplies the initial head kernels."""
    assert train.choose_mode(model, optimizer) == "native"
    pick = np.array([0, 1, 2, 0, 1])
    data = train.Data(*(np.asarray(a)[pick] for a in data))
    seeds = np.arange(5) + 21
    init = _stack([M.init(jax.random.PRNGKey(int(s)), model) for s in seeds])
    init["head"]["kernel"] = np.asarray(init["head"]["kernel"]) * np.float32(head_scale)
    lr = np.array([1e-2, 3e-2, 1e-2, 5e-3, 2e-2], np.float32)
    if optimizer == "rmsprop":  # its first steps are ~3 lr whatever the gradient: at 3e-2 the
        lr *= 0.3  # XLA modes themselves (rtrl against vmap) part by 5e-6 after 3 epochs
    spec = train.Spec(model, optimizer, batch, "native")
    want = references.vmap_fit(spec, init, data, lr, seeds, 3)
    for march, setup in (builds or _marches()).items():
        with pytest.MonkeyPatch.context() as mp:
            setup(mp)
            got = train.fit(spec, init, data, lr, seeds, 3)
        for (path, g), w in zip(
            jax.tree_util.tree_flatten_with_path(got.params[-1])[0], jax.tree.leaves(want.params[-1])
        ):
            np.testing.assert_allclose(g, w, rtol, atol=1e-5, err_msg=f"{march} {jax.tree_util.keystr(path)}")
        for name, a, b in zip(("train_loss", "train_acc", "val_loss", "val_acc"), got[:4], want[:4]):
            np.testing.assert_allclose(a, b, rtol, atol=1e-5, err_msg=f"{march} {name}")
    assert (
        max(
            float(np.abs(np.asarray(a) - np.asarray(b)).max())
            for a, b in zip(jax.tree.leaves(want.params[-1]), jax.tree.leaves(init))
        )
        > 1e-2
    )
    # the metrics compared are not all zeros (the adding task's |z - y| < 0.04 is rare early)
    assert np.asarray(want.train_acc).max() > 0 and np.asarray(want.val_acc).max() > 0


def _task_data(task, Ts, n=64, pad_targets=None):
    """``task``'s data sets of lengths ``Ts`` left-padded to ``Ts[0]`` by its generator (as
    ``engine.data.make_data`` pads them: zero inputs, copy's targets -1), split as the engine
    splits them; ``pad_targets``: copy's padded steps given that category instead of -1."""
    xs, ys, masks, trs, vas = [], [], [], [], []
    for d, T in enumerate(Ts):
        x, y = tasks.GENERATORS[task](jax.random.PRNGKey(100 + d), n, T, pad_to=Ts[0])
        tr, va = tasks.split_indices(jax.random.PRNGKey(200 + d), y, 0.2)
        mask = np.arange(Ts[0]) >= Ts[0] - T
        y = np.array(y)
        if pad_targets is not None:
            y[:, ~mask] = pad_targets
        xs.append(np.asarray(x))
        ys.append(y)
        masks.append(mask)
        trs.append(tr.astype(np.int32))
        vas.append(va.astype(np.int32))
    return train.Data(*map(np.stack, (xs, ys, masks, trs, vas)))


ADD_SHORT, ADD_LONG = (8, 4, 6), (40, 17, 35)
COPY_SHORT, COPY_LONG = (30, 21, 25), (45, 22, 37)  # copy needs T >= 21


@pytest.mark.parametrize(
    "task, kind, rsig, optimizer, batch, Ts, units",
    [
        # adding (F = 2) with the linear head: the one-unit cells take the H-unit path
        ("adding", "lstm", "hard_sigmoid", "adam", 16, ADD_LONG, 1),
        ("adding", "lstm_nofg", "sigmoid", "adam", 7, ADD_SHORT, 1),
        ("adding", "gru_ra", "sigmoid", "rmsprop", 10, ADD_SHORT, 2),
        ("adding", "gru", "hard_sigmoid", "sgd", 16, ADD_SHORT, 8),
        ("adding", "janet", "hard_sigmoid_keras3", "sgd", 7, ADD_LONG, 8),
        ("adding", "srnn", "sigmoid", "adam", 24, ADD_SHORT, 33),
        # copy (F = 10) with seq_softmax: dL/dh at every step
        ("copy", "srnn", "sigmoid", "sgd", 16, COPY_SHORT, 1),
        ("copy", "gru", "hard_sigmoid", "rmsprop", 10, COPY_SHORT, 2),
        ("copy", "janet", "sigmoid", "adam", 24, COPY_LONG, 2),
        ("copy", "lstm", "sigmoid", "adam", 16, COPY_SHORT, 8),
        ("copy", "gru_ra", "hard_sigmoid_keras3", "sgd", 7, COPY_SHORT, 8),
        # with adam, this one is ill-conditioned: the delimiter's kernel row gets one small
        # gradient per sequence, and adam's steps on it amplify rounding, so that vmap, flat
        # and the kernels each end 3e-5 from a float64 run (and up to 2e-5 from each other)
        ("copy", "lstm_nofg", "hard_sigmoid", "sgd", 16, COPY_SHORT, 33),
    ],
)
def test_native_equals_vmap_autodiff_on_adding_and_copy(task, kind, rsig, optimizer, batch, Ts, units):
    """As ``test_native_equals_vmap_autodiff``, on the adding task (2 input channels, the
    linear head: squared error, |z - y| < 0.04) and the copy task (10 channels, seq_softmax:
    each step's cross-entropy over the steps with a target, per-symbol accuracy), as the
    engine makes them (``RunConfig.model``)."""
    model = M.Model(_cell(kind, rsig, units), catalog.HEADS_FOR[catalog.TARGETS[task]][0], catalog.N_IN[task])
    if task == "copy":
        model = M.Model(model.cell, model.head, model.n_in, catalog.COPY_CATEGORIES)
    _assert_native_equals_vmap(model, optimizer, batch, _task_data(task, Ts))


def test_seq_softmax_reads_targets_on_padded_steps():
    """seq_softmax counts every step with a category (``model.per_example``), padded ones
    too: there the state is the initial zero and the logits the head's bias. The engine's
    copy data have none there (-1); with one on them (the blank: it counts in the loss, not
    in the metric, whose argmax over Adam's first biases alone, all moved by ~lr, breaks
    ties on rounding) the kernels still agree."""
    data = _task_data("copy", COPY_SHORT, pad_targets=0)
    padded = ~np.asarray(data.mask)[:, None, :].repeat(64, 1)
    assert padded.any() and (np.asarray(data.y)[padded] == 0).all()
    model = M.Model(Cell("gru", 2, "sigmoid", reset_after=True), "seq_softmax", 10, catalog.COPY_CATEGORIES)
    _assert_native_equals_vmap(model, "adam", 16, data)


def test_inputs_of_several_channels_are_copied_channel_major():
    """``Ensemble`` gathers each of F channels as a scalar input from an (F, R, N, T) copy,
    made member by member from host arrays and from device arrays split over devices."""
    x = np.random.default_rng(0).normal(size=(4, 5, 6, 3)).astype(np.float32)
    for a in (x, jax.numpy.asarray(x), jax.device_put(x, train.member_sharding(4))):
        np.testing.assert_array_equal(native._channel_major(a), np.moveaxis(x, 3, 0))


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
    assert train.choose_mode(M.Model(Cell("gru", 2), "linear", n_in=2)) == "native"  # adding
    assert train.choose_mode(M.Model(Cell("lstm", 1), "seq_softmax", n_in=10)) == "native"  # copy
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    assert train.choose_mode(M.Model(Cell("gru", 2), "linear", n_in=2)) == "vmap"


def test_limits_chunk_what_the_kernels_train():
    """``limits`` sizes native chunks for exactly the runs ``native.available`` accepts
    (model checks; no JAX, no model): every task, cell, preset, head and optimiser."""
    for task in catalog.TASKS:
        for cell in catalog.CELLS:
            for preset in catalog.PRESETS:
                for optimizer in catalog.OPTIMIZERS:
                    run = config.RunConfig(task=task, cell=cell, preset=preset, optimizer=optimizer, T=30)
                    assert limits._native_eligible(run) == (not native._model_reason(run.model, optimizer)), run


@pytest.mark.parametrize(
    "kind, rsig, head, units", [("lstm", "hard_sigmoid", "dense2", 8), ("gru_ra", "sigmoid", "linear", 3)]
)
def test_passes_over_a_batch_do_not_change_the_numbers(kind, rsig, head, units):
    """``train_h`` takes a block's vectors in passes whose step records fit the core's L2
    (``LATCH_RECORD_BYTES``): with one vector a pass, a batch of 40 rows (3 vectors a member)
    and members of mixed lengths train to the same bits as with the whole block in one pass."""
    n_in = 2 if head == "linear" else 1
    model = M.Model(_cell(kind, rsig, units), head, n_in)
    data = _task_data("adding", (12, 5, 9)) if head == "linear" else _padded_data((12, 5, 9), 12, 64)[0]
    pick = np.array([0, 1, 2, 0, 1])
    data = train.Data(*(np.asarray(a)[pick] for a in data))
    init = _stack([M.init(jax.random.PRNGKey(int(s)), model) for s in range(5)])
    v = native.variant(model)
    one = native._compile(
        native.SOURCE,
        "kernels-test-passes",
        native.FLAGS + (f"-march={native.march()}", "-DLATCH_RECORD_BYTES=1") + native.defines(v),
    )
    so = native._typed(one)
    lr = np.full(5, 1e-2, np.float32)
    out = []
    for lib in (native.lib(v), so):
        ens = native.Ensemble(model, "adam", init, *data)
        ens.lib = lib
        rngs = [np.random.default_rng(s) for s in range(5)]
        metrics = [ens.train_epoch(lr, *train.epoch_order(rngs, ens.train.shape[1], 40)) for _ in range(2)]
        out.append((ens.params.copy(), np.array(metrics)))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])
    assert not np.array_equal(out[0][0], native.flatten(init))


@pytest.mark.parametrize("units", [1, 3])
def test_positions_out_of_range_are_refused(units):
    """The kernels look up each step's examples from positions into a member's training
    examples: a position past them (or negative) is refused, not read, and so are shuffles
    for another number of members."""
    model = M.Model(Cell("lstm", units, "hard_sigmoid"))
    data = _padded_data((12, 5, 9), 12, 64)[0]
    init = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(3)])
    ens = native.Ensemble(model, "adam", init, *data)
    order, weight = train.epoch_order([np.random.default_rng(s) for s in range(3)], ens.train.shape[1], 8)
    lr = np.full(3, 1e-2, np.float32)
    for bad in (ens.train.shape[1], -1):
        o = order.copy()
        o[1, 2, 3] = bad
        with pytest.raises(RuntimeError, match="rejected its arguments"):
            ens.train_epoch(lr, o, weight)
    with pytest.raises(ValueError, match="for 3 members"):
        ens.train_epoch(lr, order[:2], weight[:2])
    ens.train_epoch(lr, order, weight)  # the same call in range trains


@pytest.mark.parametrize("kind, rsig", [("lstm", "hard_sigmoid"), ("srnn", "sigmoid"), ("gru", "hard_sigmoid")])
def test_members_reading_the_same_rows_equal_members_reading_their_own(kind, rsig):
    """Members that read the same rows (a seed's, at several lengths) validate from rows laid
    out once for all of them (``RowLayout``, the kernels' ``brow``); each member reading its
    own copy of the rows gathers them itself. Both give the same bits, after training too,
    with a last validation pass that is not full."""
    model = M.Model(_cell(kind, rsig, 1))
    rng = np.random.default_rng(0)
    N, T, lengths = 60, 12, np.array([12, 3, 7, 12, 5, 9])
    fam, other = (rng.normal(size=(N, T)).astype(np.float32) for _ in range(2))
    y = np.tile((rng.random(N) < 0.5).astype(np.int32), (6, 1))
    mask = np.arange(T)[None, :] >= T - lengths[:, None]
    perm = rng.permutation(N)
    tr, va = np.tile(perm[:47], (6, 1)), np.tile(np.sort(perm[47:]), (6, 1))  # 13 validation rows
    va[5] = np.sort(perm[:13])  # member 5: its own examples of the shared rows
    init = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(6)])
    lr = np.full(6, 1e-2, np.float32)
    out = []
    for arrays in ([fam, fam, fam, other, other, fam], [a.copy() for a in (fam, fam, fam, other, other, fam)]):
        ens = native.Ensemble(model, "adam", init, native.Rows(arrays, lengths, T), y, mask, tr, va)
        metrics = [ens.evaluate()]
        for e in range(2):
            rngs = [np.random.default_rng([e, 7]) for _ in range(6)]  # every member shuffles alike
            metrics += [ens.train_epoch(lr, *train.epoch_order(rngs, ens.train.shape[1], 16)), ens.evaluate()]
        out.append((ens.params.copy(), np.array(metrics), ens))
    shared, alone = out
    assert [sorted(g) for g in shared[2].val_rows.groups(shared[2].val)] == [[0, 1, 2], [3, 4]]
    assert shared[2].val_laid_out[1] is not None and alone[2].val_laid_out[1:] == (None, None)
    assert np.array_equal(shared[0], alone[0]) and np.array_equal(shared[1], alone[1])
    assert not np.array_equal(shared[0], native.flatten(init))


@pytest.mark.parametrize("kind, rsig, units", [("srnn", "sigmoid", 1), ("lstm", "sigmoid", 2)])
def test_members_sharing_shuffles_train_as_with_copies_of_them(kind, rsig, units):
    """Members that shuffle alike share one row of an epoch's positions and weights
    (``train.Shuffles``): 7 members reading 3 rows (weights differing between the rows, out
    of order) end with the bits they get from each member's own copy of its row."""
    model = M.Model(_cell(kind, rsig, units))
    rng = np.random.default_rng(11)
    R, N, T = 7, 40, 6
    x = rng.normal(size=(R, N, T, 1)).astype(np.float32)
    y = (rng.random((R, N)) < 0.5).astype(np.int32)
    perm = np.stack([rng.permutation(N) for _ in range(R)])
    tr, va = perm[:, :30], np.sort(perm[:, 30:], axis=1)
    mask = np.ones((R, T), bool)
    init = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(R)])
    lr = np.full(R, 1e-2, np.float32)
    row = np.array([2, 0, 2, 1, 0, 1, 2], np.int32)
    order, weight = train.epoch_order([np.random.default_rng([d, 9]) for d in range(3)], 30, 8)  # (3, 4, 8)
    weight = weight.copy()
    weight[1, 0, :3] = 0.0  # row 1 leaves out three examples of its first batch
    shared = train.Shuffles(order, weight, row)
    out = []
    for args in (tuple(shared), shared.per_member()):
        ens = native.Ensemble(model, "adam", init, x, y, mask, tr, va)
        metrics = [ens.train_epoch(lr, *args) + ens.evaluate() for _ in range(2)]
        out.append((ens.params.copy(), np.array(metrics)))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])
    assert not np.array_equal(out[0][0], native.flatten(init))
    with pytest.raises(ValueError, match="rows"):
        native.Ensemble(model, "adam", init, x, y, mask, tr, va).train_epoch(lr, order, weight, row + 1)


@pytest.mark.parametrize("kind, rsig, units", [("lstm", "hard_sigmoid", 1), ("gru", "sigmoid", 8)])
def test_members_sharing_their_examples_equal_members_trained_alone(kind, rsig, units, monkeypatch):
    """A block looks up a member's examples and labels for the epoch once, and copies the last
    member's when its positions, training examples and labels are the same (a seed's members
    at every length). In one call of 12 members (cut into two blocks of 6), members 0-2
    share all three; member 3 differs from 2 in one label, member 4 from 3 in one training
    example, member 5 from 4 in the batches of two examples; 6-11 are 5's copies. Trained
    together, each ends with the bits it gets trained alone (with any of the three checks
    left out, it does not)."""
    monkeypatch.setattr(native, "per_block", lambda *a: 12)
    model = M.Model(_cell(kind, rsig, units))
    rng = np.random.default_rng(3)
    R, N, T = 12, 40, 9
    x = np.tile(rng.normal(size=(1, N, T, 1)).astype(np.float32), (R, 1, 1, 1))
    y = np.tile((rng.random(N) < 0.5).astype(np.int32), (R, 1))
    perm = rng.permutation(N)
    tr, va = np.tile(perm[:32], (R, 1)), np.tile(np.sort(perm[32:]), (R, 1))
    y[3:, tr[0, 5]] ^= 1
    tr[4:, [0, 1]] = tr[4:, [1, 0]]
    mask = np.ones((R, T), bool)
    init = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(R)])
    lr = np.full(R, 1e-2, np.float32)
    orders = []
    for e in range(2):
        order, weight = train.epoch_order([np.random.default_rng([e, 5]) for _ in range(R)], 32, 8)
        order[5:, [0, 1], 0] = order[5:, [1, 0], 0]  # an example in another batch
        orders.append((order, weight))

    def trained(rows):
        ens = native.Ensemble(model, "adam", jax.tree.map(lambda a: a[rows], init), x[rows], y[rows], mask[rows],
                              tr[rows], va[rows])  # fmt: skip
        metrics = [ens.train_epoch(lr[rows], o[rows], w[rows]) + ens.evaluate() for o, w in orders]
        return ens.params.copy(), np.array(metrics)

    together = trained(np.arange(R))
    for r in range(R):
        alone = trained(np.array([r]))
        assert np.array_equal(together[0][r], alone[0][0]), f"member {r}"
        assert np.array_equal(together[1][:, :, r], alone[1][:, :, 0]), f"member {r}"
    assert not np.array_equal(together[0], native.flatten(init))


def test_parallel_calls_share_blocks_keep_their_threads_and_raise_a_helpers_error(monkeypatch):
    """``native._parallel``: the calls on every core take each block once through the shared
    counter; the helper threads are kept between calls (not started anew each time); an
    error raised in a helper reaches the caller (a thread of its own only printed it)."""
    import ctypes
    import threading
    import time

    monkeypatch.setattr(native, "threads", lambda: 3)
    taken, lock, names = [], threading.Lock(), set()

    def call(counter):
        names.add(threading.current_thread().name)
        c = ctypes.cast(counter, ctypes.POINTER(ctypes.c_int))
        while True:
            with lock:
                block = c[0]
                c[0] += 1
            if block >= 10:
                return 0
            taken.append(block)

    for _ in range(3):
        native._parallel(call, 40, 4)
    assert sorted(taken) == sorted(list(range(10)) * 3)
    helpers = names - {threading.current_thread().name}
    assert 1 <= len(helpers) <= 2  # the pool's two threads at most over three calls (not six)

    def failing(counter):
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("a helper failed")
        time.sleep(0.05)  # the caller's own part ends after the helpers'
        return 0

    with pytest.raises(ValueError, match="a helper failed"):
        native._parallel(failing, 40, 4)
    with pytest.raises(RuntimeError, match="code -3"):
        native._parallel(lambda counter: -3, 40, 4)


def test_tuning_follows_the_cpu(monkeypatch):
    """``native.tuning``: two backward vectors for the one-unit LSTM on a Zen 5 (AMD family
    26) built for its own instruction set; nothing on a Zen 4, an Intel CPU or for a named
    instruction set; the fields read from /proc/cpuinfo's first processor."""
    cpu = lambda vendor, family: "\n".join(  # noqa: E731
        [
            f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: 2",
            "processor\t: 1\ncpu family\t: 9",
        ]
    )
    parse = native._cpu_fields
    for vendor, family, want in [
        ("AuthenticAMD", 26, ("-DLATCH_BWD_VECTORS=2",)),
        ("AuthenticAMD", 25, ()),
        ("GenuineIntel", 6, ()),
    ]:
        fields = parse(cpu(vendor, family))
        assert fields["vendor_id"] == vendor and fields["cpu family"] == str(family)
        monkeypatch.setattr(native, "_cpu_fields", lambda f=fields: f)
        monkeypatch.delenv("LATCHLAB_NATIVE_MARCH", raising=False)
        assert native.tuning() == want
        monkeypatch.setenv("LATCHLAB_NATIVE_MARCH", "x86-64-v3")
        assert native.tuning() == ()


@pytest.mark.parametrize("rsig", ["hard_sigmoid", "sigmoid"])
def test_one_or_two_backward_vectors_give_the_same_bits(rsig):
    """The one-unit LSTM's backward pass one vector at a time (the default but on a Zen 5)
    or two (``native.tuning``'s choice there): the same parameters and metrics bit for bit,
    members of mixed lengths, a block of 5 (an odd vector left over)."""
    model = M.Model(_cell("lstm", rsig, 1), "dense2", 1)
    data = _padded_data((12, 5, 9), 12, 64)[0]
    pick = np.array([0, 1, 2, 0, 1])
    data = train.Data(*(np.asarray(a)[pick] for a in data))
    init = _stack([M.init(jax.random.PRNGKey(int(s)), model) for s in range(5)])
    out = _trained_by_builds(model, data, init, 16, ["-DLATCH_BWD_VECTORS=1", "-DLATCH_BWD_VECTORS=2"])
    assert all(np.array_equal(a, b) for a, b in zip(out[0], out[1]))
    assert not np.array_equal(out[0][0], native.flatten(init))


def _trained_by_builds(model, data, init, batch: int, defines: list[str]) -> list[tuple]:
    """For each of ``defines`` (a build of the model's variant with it added): the members
    of ``init`` trained two epochs on ``data`` with Adam at batches of ``batch``, then
    validated, as (parameters, the epochs' metrics, the validation's metrics)."""
    R = len(native.flatten(init))
    v = native.variant(model)
    lr = np.full(R, 1e-2, np.float32)
    out = []
    for define in defines:
        flags = native.FLAGS + (f"-march={native.march()}", define) + native.defines(v)
        ens = native.Ensemble(model, "adam", init, *data)
        name = "kernels-test" + re.sub(r"\W", "", define)
        ens.lib = native._typed(native._compile(native.SOURCE, name, flags))
        rngs = [np.random.default_rng(s) for s in range(R)]
        metrics = [ens.train_epoch(lr, *train.epoch_order(rngs, ens.train.shape[1], batch)) for _ in range(2)]
        out.append((ens.params.copy(), np.array(metrics), np.array(ens.evaluate())))
    return out


@pytest.mark.parametrize("kind,units,batch", [("lstm", 5, 16), ("gru_ra", 8, 64)])
def test_weight_gradients_summed_a_vector_of_columns_at_a_time_give_the_same_bits(kind, units, batch):
    """The H-unit path's weight gradients take each row's lane sums a vector of columns at a
    time (``hsums``; ``LATCH_GROUP_SUMS=0``: a column at a time): the same parameters and
    metrics bit for bit. Rows of 20 columns (a vector's worth and 4 left over on AVX-512),
    a reset_after GRU's two sums, batches of one and of four vectors, mixed lengths."""
    model = M.Model(_cell(kind, "hard_sigmoid", units), "dense2", 1)
    data = _padded_data((12, 5, 9), 12, 200)[0]
    init = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(3)])
    out = _trained_by_builds(model, data, init, batch, ["-DLATCH_GROUP_SUMS=1", "-DLATCH_GROUP_SUMS=0"])
    assert all(np.array_equal(a, b) for a, b in zip(out[0], out[1]))
    assert not np.array_equal(out[0][0], native.flatten(init))


@pytest.mark.parametrize("batch", [16, 64])
@pytest.mark.parametrize("option", ["LATCH_SRNN_REGS", "LATCH_MASKED_ROWS"])
def test_srnn_states_in_registers_and_masked_rows_give_the_general_loops_bits(batch, option):
    """A one-unit SRNN block of exactly the build's members (or their validation passes)
    keeps its states in registers (``forward_srnn_regs``), and on AVX-512 rows of 5 to 15
    steps are read as one tile of masked loads: 19 members of mixed lengths on rows they
    share (validated from rows laid out once) give the same bits, after training and in
    every validation, as the build without either (``LATCH_SRNN_REGS=0``,
    ``LATCH_MASKED_ROWS=0``)."""
    if (
        option == "LATCH_MASKED_ROWS"
        and native.build_info(native.lib(native.variant(M.Model(Cell("srnn", 1)))))["isa"] != "avx512"
    ):
        pytest.skip("masked rows are the AVX-512 build's")
    model = M.Model(_cell("srnn", "sigmoid", 1))
    rng = np.random.default_rng(3)
    R, N, T = 19, 96, 23
    lengths = np.array([23, 4, 17, 9, 23, 12, 2, 20, 15, 23, 7, 11, 23, 5, 19, 14, 23, 8, 16])
    fam = rng.normal(size=(N, T)).astype(np.float32)
    y = np.tile((rng.random(N) < 0.5).astype(np.int32), (R, 1))
    mask = np.arange(T)[None, :] >= T - lengths[:, None]
    perm = rng.permutation(N)
    tr, va = np.tile(perm[:70], (R, 1)), np.tile(np.sort(perm[70:]), (R, 1))
    init = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(R)])
    lr = np.full(R, 3e-2, np.float32)
    v = native.variant(model)
    out = []
    for on in ({"LATCH_SRNN_REGS": 1, "LATCH_MASKED_ROWS": 5}[option], 0):
        flags = native.FLAGS + (f"-march={native.march()}", f"-D{option}={on}") + native.defines(v)
        ens = native.Ensemble(model, "adam", init, native.Rows([fam] * R, lengths, T), y, mask, tr, va)
        ens.lib = native._typed(native._compile(native.SOURCE, f"kernels-test-{option}{on}", flags))
        metrics = [ens.evaluate()]
        for e in range(2):
            rngs = [np.random.default_rng([e, 5]) for _ in range(R)]
            metrics += [ens.train_epoch(lr, *train.epoch_order(rngs, ens.train.shape[1], batch)), ens.evaluate()]
        out.append((ens.params.copy(), np.array(metrics), ens.val_laid_out[1] is not None))
    assert out[0][2] and out[1][2]  # validated from laid-out rows
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])
    assert not np.array_equal(out[0][0], native.flatten(init))


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_members_update_alike_together_or_one_by_one(optimizer):
    """``update_members``: members whose step counts agree take one pass over their
    parameters; where a member's count differs (Adam's bias corrections differ), each takes
    its own. Six one-unit LSTMs, one of them set 1000 steps ahead, end with the bits the other
    five have without it, and that member with those of its own one-member ensemble."""
    model = M.Model(Cell("lstm", 1, "hard_sigmoid"))
    rng = np.random.default_rng(5)
    R, N, T = 6, 48, 9
    x = rng.normal(size=(R, N, T, 1)).astype(np.float32)
    y = (rng.random((R, N)) < 0.5).astype(np.int32)
    mask = np.ones((R, T), bool)
    tr, va = np.tile(np.arange(32), (R, 1)), np.tile(np.arange(32, N), (R, 1))
    init = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(R)])
    lr = np.linspace(1e-2, 3e-2, R).astype(np.float32)
    order, weight = train.epoch_order([np.random.default_rng([9, r]) for r in range(R)], 32, 16)

    def trained(members, ahead):
        members = np.array(members)
        sub = jax.tree.map(lambda a: a[members], init)
        ens = native.Ensemble(model, optimizer, sub, x[members], y[members], mask[members], tr[members], va[members])
        ens.count[:] = [1000 if m == ahead else 0 for m in members]
        ens.train_epoch(lr[members], order[members], weight[members])
        return ens.params.copy()

    together = trained(list(range(R)), None)
    mixed = trained(list(range(R)), 3)
    alone = trained([3], 3)
    others = [0, 1, 2, 4, 5]
    assert np.array_equal(mixed[others], together[others])
    assert np.array_equal(mixed[3], alone[0])
    assert (optimizer != "adam") == np.array_equal(mixed[3], together[3])  # Adam's corrections differ
    assert not np.array_equal(together, native.flatten(init))


def test_blocks_of_members_far_apart_in_length_are_larger_and_train_alike(monkeypatch):
    """``train_block``: one-unit members whose lengths spread far within a block (one seed's
    lengths 5 to 100, as bengio1994's seed overlay has them) keep few of the block's vectors
    busy on most steps, and get blocks up to 4 times larger, no larger than a thread's share of
    the call; members of like lengths keep the build's block. Trained in either, every member
    ends with the same bits."""
    spread = np.tile([5, 10, 15, 20, 30, 50, 75, 100], 7)[:54]
    # six blocks of 8 (305 steps, the longest 100) and one of 6 (130 steps, the longest 50)
    assert native.busy_vectors(spread, 8) == pytest.approx((6 * 305 * 3.05 + 130 * 2.6) / 1960)
    assert native.busy_vectors(np.full(20, 7), 8) == pytest.approx((8 * 8 + 8 * 8 + 4 * 4) / 20)
    monkeypatch.setattr(native, "threads", lambda: 2)
    assert native.train_block(8, spread) == 27  # 4 x 8, but a thread's share is 27
    assert native.train_block(8, np.tile(spread, 4)) == 32
    assert native.train_block(8, np.full(54, 100)) == 8
    assert native.train_block(8, np.tile([90, 95, 100, 100], 14)) == 8
    assert native.train_block(8, spread[:16]) == 8  # a thread's share: 8
    assert native.train_block(8, np.zeros(4, np.int64)) == 8
    monkeypatch.undo()

    model = M.Model(Cell("srnn", 1, "hard_sigmoid"))
    rng = np.random.default_rng(4)
    lengths = np.tile([5, 10, 15, 20, 30, 50, 75, 100], 4)
    R, N, T = len(lengths), 48, 100
    x = rng.normal(size=(R, N, T, 1)).astype(np.float32)
    y = (rng.random((R, N)) < 0.5).astype(np.int32)
    mask = np.arange(T)[None, :] >= T - lengths[:, None]
    tr, va = np.tile(np.arange(32), (R, 1)), np.tile(np.arange(32, N), (R, 1))
    init = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(R)])
    lr = np.full(R, 1e-2, np.float32)
    orders = [train.epoch_order([np.random.default_rng([e, r]) for r in range(R)], 32, 16) for e in range(2)]
    chosen, builds = [], []

    def trained(block):
        def spy(one_unit, steps):
            chosen.append((one_unit, block(one_unit, steps)))
            return chosen[-1][1]

        monkeypatch.setattr(native, "train_block", spy)
        ens = native.Ensemble(model, "adam", init, x, y, mask, tr, va)
        builds.append(native.build_info(ens.lib))
        metrics = [ens.train_epoch(lr, o, w) + ens.evaluate() for o, w in orders]
        return ens.params.copy(), np.array(metrics)

    larger = trained(native.train_block)
    base = trained(lambda one_unit, steps: one_unit)
    if builds[0]["lanes"] == 16:  # a member's 16 rows in one vector (AVX-512): the rule applies
        assert chosen[0][1] > chosen[0][0]
    assert np.array_equal(larger[0], base[0]) and np.array_equal(larger[1], base[1])
    assert not np.array_equal(larger[0], native.flatten(init))
