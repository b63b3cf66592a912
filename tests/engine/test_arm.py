"""The native kernels built for ARM (aarch64: NEON's 16-byte vectors, fused multiply-adds,
the FPCR's flush to zero) and run under user-mode emulation (``qemu-aarch64``), against
plain vmap + autodiff + optax, as ``test_native`` runs this machine's builds.

Every kernel call an ``native.Ensemble`` makes goes to ``ArmKernels``: it copies the call's
arrays to a file, ``arm_replay`` (the kernels' source with a ``main`` that replays one
call, built statically for aarch64) runs it under emulation, and the arrays the call wrote
are copied back. Emulation says nothing about speed, only about numbers. Skipped where the
cross compiler (``g++-aarch64-linux-gnu``) or ``qemu-aarch64`` (``qemu-user``) is missing.
"""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_native import SHORT, LONG, _assert_native_equals_vmap, _cell, _task_data
from test_engine import _padded_data

from latchlab.core import catalog
from latchlab.core import model as M
from latchlab.engine import native

CXX, QEMU = "aarch64-linux-gnu-g++", "qemu-aarch64"
pytestmark = pytest.mark.skipif(
    not (shutil.which(CXX) and shutil.which(QEMU)),
    reason="no ARM cross compiler (g++-aarch64-linux-gnu) or user-mode emulator (qemu-user)",
)
REPLAY = Path(__file__).with_name("arm_replay.cpp")
_builds: dict[tuple, Path] = {}


def _build(v: tuple[int, int, int], tmp: Path) -> Path:
    """``arm_replay`` for variant ``v``: the kernels' own flags and codes, for ARMv8-A."""
    if v not in _builds:
        exe = tmp / f"arm_replay-{''.join(map(str, v))}"
        flags = [f for f in native.FLAGS if f not in ("-shared", "-fPIC")]
        cmd = [CXX, *flags, "-march=armv8-a", *native.defines(v), "-static", f"-I{native.SOURCE.parent}"]
        r = subprocess.run([*cmd, "-o", str(exe), str(REPLAY)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        _builds[v] = exe
    return _builds[v]


def _addr(p) -> int | None:
    return None if p is None else ctypes.cast(p, ctypes.c_void_p).value


def _get(p, n: int, dtype) -> np.ndarray | None:
    """``n`` values of ``dtype`` at pointer ``p`` (None for a null pointer)."""
    a = _addr(p)
    return None if a is None else np.frombuffer(ctypes.string_at(a, n * np.dtype(dtype).itemsize), dtype).copy()


def _put(p, a: np.ndarray) -> None:
    ctypes.memmove(_addr(p), a.tobytes(), a.nbytes)


class ArmKernels:
    """The entries of ``native.SIGNATURES`` an ensemble calls, run by ``arm_replay`` under
    emulation; ``P`` is the ensemble's parameters a member."""

    def __init__(self, exe: Path, P: int):
        self.exe, self.P = exe, P
        isa, lanes, block = subprocess.run(
            [QEMU, str(exe), "info"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert isa == "neon"
        self.lanes, self.block = int(lanes), int(block)

    def latch_lanes(self) -> int:
        return self.lanes

    def latch_per_block(self) -> int:
        return self.block

    def _rows(self, xrow, xstride, t0, R: int, F: int, N: int, T: int) -> list[np.ndarray]:
        """The inputs' rows (F R of them, channel-major) as the kernels read them, and their offsets."""
        stride = _get(xstride, F * R, np.int64)
        rows = [
            _get(xrow[i], (N - 1) * int(stride[i]) + T - int(t0[i % R]), np.float32) if N else np.zeros(0, np.float32)
            for i in range(F * R)
        ]
        offsets = np.cumsum([0] + [len(r) for r in rows[:-1]]).astype(np.int64)
        return [np.concatenate(rows), offsets, stride]

    def _run(self, entry: int, scalars: list[int], arrays: list) -> tuple[int, int, bytes]:
        tmp = self.exe.parent
        blob = struct.pack(f"<ii{len(scalars)}i", entry, len(scalars), *scalars)
        for a in arrays:
            blob += struct.pack("<q", -1) if a is None else struct.pack("<q", a.nbytes) + a.tobytes()
        (tmp / "in").write_bytes(blob)
        r = subprocess.run([QEMU, str(self.exe), str(tmp / "in"), str(tmp / "out")], capture_output=True, text=True)
        assert r.returncode == 0, (r.returncode, r.stderr)
        out = (tmp / "out").read_bytes()
        rc, counter = struct.unpack("<ii", out[:8])
        return rc, counter, out[8:]

    def latch_train_epoch(self, *a):
        kind, rsig, ra, H, F, head, n_out, opt, R, T, xrow, xstride, t0p, S, B, pos, Ntr, train, y, yv, N, ysteps = a[
            :22
        ]
        weight, params, mu, nu, count, lr, loss, acc, per_block, counter = a[22:]
        t0 = _get(t0p, R, np.int32)
        arrays = self._rows(xrow, xstride, t0, R, F, N, T) + [
            t0,
            _get(pos, R * S * B, np.int32),
            _get(train, R * Ntr, np.int32),
            _get(y, R * N, np.int32),
            _get(yv, R * N, np.float32),
            _get(ysteps, R * N * T, np.int32),
            _get(weight, R * S * B, np.float32),
            _get(params, R * self.P, np.float32),
            _get(mu, R * self.P, np.float32),
            _get(nu, R * self.P, np.float32),
            _get(count, R, np.int32),
            _get(lr, R, np.float32),
        ]
        scalars = [kind, rsig, ra, H, F, head, n_out, opt, R, T, S, B, Ntr, N, per_block, counter[0]]
        rc, counter[0], out = self._run(0, scalars, arrays)
        at = 0
        for p, n, dtype in [
            (params, R * self.P, np.float32),
            (mu, R * self.P, np.float32),
            (nu, R * self.P, np.float32),
        ]:
            if p is not None:
                _put(p, np.frombuffer(out, dtype, n, at))
                at += 4 * n
        for p, dtype in [(count, np.int32), (loss, np.float32), (acc, np.float32)]:
            _put(p, np.frombuffer(out, dtype, R, at))
            at += 4 * R
        assert at == len(out)
        return rc

    def latch_evaluate(self, *a):
        kind, rsig, ra, H, F, head, n_out, R, T, xrow, xstride, t0p, Nv, val, yv, yvv, N, ysteps = a[:18]
        params, loss, acc, per_block, counter = a[18:]
        t0 = _get(t0p, R, np.int32)
        arrays = self._rows(xrow, xstride, t0, R, F, N, T) + [
            t0,
            _get(val, R * Nv, np.int32),
            _get(yv, R * Nv, np.int32),
            _get(yvv, R * Nv, np.float32),
            _get(ysteps, R * N * T, np.int32),
            _get(params, R * self.P, np.float32),
        ]
        rc, counter[0], out = self._run(
            1, [kind, rsig, ra, H, F, head, n_out, R, T, Nv, N, per_block, counter[0]], arrays
        )
        assert len(out) == 8 * R
        _put(loss, np.frombuffer(out, np.float32, R, 0))
        _put(acc, np.frombuffer(out, np.float32, R, 4 * R))
        return rc


def _on_arm(tmp: Path):
    """A ``_assert_native_equals_vmap`` build: every ensemble's kernels are ARM's, called
    from one thread (the replay takes a call's blocks itself)."""

    def setup(mp):
        init = native.Ensemble.__init__

        def on_arm(self, model, *a, **k):
            init(self, model, *a, **k)
            self.lib = ArmKernels(_build(native.variant(model), tmp), self.params.shape[1])
            self.per_block = native.per_block(self.lib.latch_per_block(), model.cell.units)

        mp.setattr(native.Ensemble, "__init__", on_arm)
        mp.setattr(native, "threads", lambda: 1)

    return {"aarch64 (qemu)": setup}


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
    builds = _on_arm(tmp_path_factory.getbasetemp())
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
    builds = _on_arm(tmp_path_factory.getbasetemp())
    _assert_native_equals_vmap(model, optimizer, batch, _task_data(task, Ts), builds)
