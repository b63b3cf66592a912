"""The native kernels built for ARM (aarch64: NEON's 16-byte vectors, fused multiply-adds,
the FPCR's flush to zero) and run under user-mode emulation (``qemu-aarch64``), for the
tests that compare them with their references as they compare this machine's builds.

Each call of a kernel goes to a stand-in for its library (``ArmKernels`` for
``kernels.cpp``, ``ArmBengio94`` for ``bengio94.cpp``, ``ArmPrng`` for ``prng.cpp``, ``ArmGuessing``
for ``guessing.cpp``): it copies the call's arrays to a
file, ``arm_replay`` (the kernel's source with a ``main`` that replays one call, built
statically for aarch64) runs it under emulation, and the arrays the call wrote are copied
back. Emulation says nothing about speed, only about numbers. ``needs_arm`` skips where the
cross compiler (``g++-aarch64-linux-gnu``) or ``qemu-aarch64`` (``qemu-user``) is missing.
The kernels are built by GCC, or (``compiler="clang++"``, where clang is installed: what an
ARM Mac builds with) by clang for the same target, with GCC's ARM libraries.
"""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from latchlab.engine import native

CXX, QEMU = "aarch64-linux-gnu-g++", "qemu-aarch64"
COMPILERS = {"g++": [CXX], "clang++": ["clang++", "--target=aarch64-linux-gnu"]}  # their commands for aarch64
needs_arm = pytest.mark.skipif(
    not (shutil.which(CXX) and shutil.which(QEMU)),
    reason="no ARM cross compiler (g++-aarch64-linux-gnu) or user-mode emulator (qemu-user)",
)
REPLAY = Path(__file__).with_name("arm_replay.cpp")
CLANG = shutil.which("clang++")  # the compiler of macOS, for the tests that build with it too
needs_clang = pytest.mark.skipif(not CLANG, reason="no clang++")


def loads_or_skips(load) -> None:
    """``load()`` (a native library's loader: ``native.bengio94``, ``native.guessing``), or the
    test skipped where the library cannot run here."""
    try:
        load()
    except RuntimeError as e:
        pytest.skip(str(e))


_builds: dict[tuple, Path] = {}


def build(v: tuple[int, int, int] | str, tmp: Path, compiler: str = "g++") -> Path:
    """``arm_replay`` for kernel variant ``v`` (or ``"bengio94"``, ``"prng"``, ``"guessing"``: those sources),
    with the flags and codes latchlab builds them with, for ARMv8-A, by ``compiler`` (a key of
    ``COMPILERS``), in folder ``tmp`` (once a process)."""
    if (v, compiler) not in _builds:
        flags = [f for f in native.FLAGS if f not in ("-shared", "-fPIC")]
        if v == "bengio94":
            exe = tmp / "arm_replay-bengio94"
            codes = [f"-DLATCH_OPTIMIZER_{name.upper()}={code}" for name, code in native.OPTIMIZERS.items()]
            flags += ["-pthread", "-DREPLAY_BENGIO94", *codes]
        elif v == "guessing":
            exe = tmp / "arm_replay-guessing"
            codes = [f"-DLATCH_NET_{name.upper()}={code}" for name, code in native.GUESS_NETS.items()]
            flags += ["-pthread", "-DREPLAY_GUESSING", *codes]
        elif v == "prng":
            exe = tmp / "arm_replay-prng"
            flags = [f for f in native.PRNG_FLAGS if f not in ("-shared", "-fPIC")] + ["-DREPLAY_PRNG"]
        else:
            assert isinstance(v, tuple)
            exe = tmp / f"arm_replay-{''.join(map(str, v))}"
            flags += native.defines(v)
        exe = exe.with_name(f"{exe.name}-{compiler}")
        cmd = [*COMPILERS[compiler], *flags, "-march=armv8-a", "-static", f"-I{native.SOURCE.parent}"]
        r = subprocess.run([*cmd, "-o", str(exe), str(REPLAY)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        _builds[v, compiler] = exe
    return _builds[v, compiler]


def _info(exe: Path, isa: str = "neon") -> tuple[int, int]:
    """The build's lanes and block (members a block); it must say ``isa`` (the kernels'
    instruction set; the generator's ``fma``: fused multiply-adds are instructions)."""
    out = subprocess.run([QEMU, str(exe), "info"], capture_output=True, text=True, check=True).stdout
    said, lanes, block = out.split()
    assert said == isa
    return int(lanes), int(block)


def _run(exe: Path, entry: int, scalars: list[int], arrays: list) -> tuple[int, int, bytes]:
    """``arm_replay``'s call ``entry`` under emulation: its return code, block counter and output."""
    blob = struct.pack(f"<ii{len(scalars)}i", entry, len(scalars), *scalars)
    for a in arrays:
        blob += struct.pack("<q", -1) if a is None else struct.pack("<q", a.nbytes) + a.tobytes()
    src, dst = exe.with_suffix(".in"), exe.with_suffix(".out")
    src.write_bytes(blob)
    r = subprocess.run([QEMU, str(exe), str(src), str(dst)], capture_output=True, text=True)
    assert r.returncode == 0, (r.returncode, r.stderr)
    out = dst.read_bytes()
    rc, counter = struct.unpack("<ii", out[:8])
    return rc, counter, out[8:]


def _addr(p) -> int | None:
    return None if p is None else ctypes.cast(p, ctypes.c_void_p).value


def _get(p, n: int, dtype) -> np.ndarray | None:
    """``n`` values of ``dtype`` at pointer ``p`` (None for a null pointer)."""
    a = _addr(p)
    return None if a is None else np.frombuffer(ctypes.string_at(a, n * np.dtype(dtype).itemsize), dtype).copy()


def _unpack(out: bytes, wrote: list) -> None:
    """``out``'s arrays copied to the pointers of ``wrote``: (pointer, count, dtype) each, in
    order; a null pointer's array is not in ``out``."""
    at = 0
    for p, n, dtype in wrote:
        if p is not None:
            a = np.frombuffer(out, dtype, n, at)
            ctypes.memmove(_addr(p), a.tobytes(), a.nbytes)
            at += a.nbytes
    assert at == len(out)


class ArmKernels:
    """The entries of ``native.SIGNATURES`` an ensemble calls, run by ``arm_replay`` under
    emulation; ``P``: the ensemble's parameters a member."""

    def __init__(self, exe: Path, P: int):
        self.exe, self.P = exe, P
        self.lanes, self.block = _info(exe)

    def latch_lanes(self) -> int:
        return self.lanes

    def latch_per_block(self) -> int:
        return self.block

    @staticmethod
    def _rows(xrow, xstride, t0, R: int, F: int, N: int, T: int) -> list:
        """The inputs' F R rows (channel-major) as the kernels read them: their floats, each
        row's offset into them, and the rows' strides."""
        stride = _get(xstride, F * R, np.int64)
        assert stride is not None and N > 0
        rows = [_get(xrow[i], (N - 1) * int(stride[i]) + T - int(t0[i % R]), np.float32) for i in range(F * R)]
        offsets = np.cumsum([0] + [len(r) for r in rows[:-1]]).astype(np.int64)
        return [np.concatenate(rows), offsets, stride]

    def latch_train_epoch(self, *a):
        kind, rsig, ra, H, F, head, n_out, opt, R, T, xrow, xstride, t0p, S, B, pos = a[:16]
        Ntr, train, y, yv, N, ysteps, weight, prow, params, mu, nu, count, lr, loss, acc, per_block, counter = a[16:]
        t0 = _get(t0p, R, np.int32)
        rows = _get(prow, R, np.int32)
        assert rows is not None
        D = int(rows.max()) + 1  # the shuffles' rows
        P = R * self.P
        arrays = self._rows(xrow, xstride, t0, R, F, N, T) + [
            t0,
            _get(pos, D * S * B, np.int32),
            _get(train, R * Ntr, np.int32),
            _get(y, R * N, np.int32),
            _get(yv, R * N, np.float32),
            _get(ysteps, R * N * T, np.int32),
            _get(weight, D * S * B, np.float32),
            _get(params, P, np.float32),
            _get(mu, P, np.float32),
            _get(nu, P, np.float32),
            _get(count, R, np.int32),
            _get(lr, R, np.float32),
            rows,
        ]
        scalars = [kind, rsig, ra, H, F, head, n_out, opt, R, T, S, B, Ntr, N, per_block, counter[0]]
        rc, counter[0], out = _run(self.exe, 0, scalars, arrays)
        wrote = [(params, P, np.float32), (mu, P, np.float32), (nu, P, np.float32), (count, R, np.int32)]
        _unpack(out, wrote + [(loss, R, np.float32), (acc, R, np.float32)])
        return rc

    def latch_evaluate(self, *a):
        kind, rsig, ra, H, F, head, n_out, R, T, xrow, xstride, t0p, Nv, val, yv, yvv, N, ysteps = a[:18]
        params, loss, acc, per_block, counter = a[18:23]
        assert a[23:] == (None, None), "the emulated kernels gather their rows (no latch_batch_rows)"
        t0 = _get(t0p, R, np.int32)
        arrays = self._rows(xrow, xstride, t0, R, F, N, T) + [
            t0,
            _get(val, R * Nv, np.int32),
            _get(yv, R * Nv, np.int32),
            _get(yvv, R * Nv, np.float32),
            _get(ysteps, R * N * T, np.int32),
            _get(params, R * self.P, np.float32),
        ]
        scalars = [kind, rsig, ra, H, F, head, n_out, R, T, Nv, N, per_block, counter[0]]
        rc, counter[0], out = _run(self.exe, 1, scalars, arrays)
        _unpack(out, [(loss, R, np.float32), (acc, R, np.float32)])
        return rc


class ArmBengio94:
    """``native.bengio94()``'s library: its ``b94_train`` run by ``arm_replay`` under emulation."""

    def __init__(self, exe: Path):
        self.exe = exe
        self.lanes = _info(exe)[0]

    def b94_lanes(self) -> int:
        return self.lanes

    def b94_train(self, *a):
        R, T, L, n_train, n_test, x_train, x_test, scale, w0, h0, opt, lr, target, threshold, budget = a[:15]
        check_every, threads, w, h, converged, epochs, train_loss, test_loss, test_errors = a[15:]
        floats = struct.unpack("<3i", struct.pack("<3f", lr, target, threshold))  # their bits
        scalars = [R, T, L, n_train, n_test, opt, *floats, budget, check_every, threads]

        def rows(x, n):  # each member's T - L rows of its noise array, one after another
            return np.concatenate([_get(x[m], (T - L) * n, np.float32) for m in range(R)] or [np.zeros(0, np.float32)])

        arrays = [
            rows(x_train, n_train),
            rows(x_test, n_test),
            _get(scale, R, np.float32),
            _get(w0, R, np.float32),
            _get(h0, R * 2 * L, np.float32),
        ]
        rc, _, out = _run(self.exe, 2, scalars, arrays)
        wrote = [(w, R, np.float32), (h, R * 2 * L, np.float32), (converged, R, np.int32), (epochs, R, np.int32)]
        _unpack(out, wrote + [(train_loss, R, np.float32), (test_loss, R, np.float32), (test_errors, R, np.int32)])
        return rc


class ArmPrng:
    """``native.prng()``'s library (``PRNG_SIGNATURES``), each entry run by ``arm_replay``
    under emulation."""

    def __init__(self, exe: Path):
        self.exe = exe
        _info(exe, "fma")

    def prng_hardware_fma(self) -> int:
        return 1

    def prng_member_keys(self, R, seeds, keys):
        _unpack(_run(self.exe, 3, [R], [_get(seeds, R, np.uint32)])[2], [(keys, R * 6, np.uint32)])

    def prng_normal(self, n, bits, out):
        _unpack(_run(self.exe, 4, [], [_get(bits, n, np.uint32)])[2], [(out, n, np.float32)])

    def prng_normal_unfused(self, n, bits, out):
        _unpack(_run(self.exe, 10, [], [_get(bits, n, np.uint32)])[2], [(out, n, np.float32)])

    def prng_log_uniform(self, R, keys, n, lo, hi, out):
        bits = int(np.float32(lo).view(np.int32))
        out_ = _run(self.exe, 11, [R, n, bits], [_get(keys, 2 * R, np.uint32), _get(hi, R, np.float32)])[2]
        _unpack(out_, [(out, R * n, np.float32)])

    def prng_children(self, R, keys, n, children):
        _unpack(_run(self.exe, 12, [R, n], [_get(keys, 2 * R, np.uint32)])[2], [(children, R * n * 2, np.uint32)])

    def prng_bits(self, R, keys, n, bits):
        _unpack(_run(self.exe, 13, [R, n], [_get(keys, 2 * R, np.uint32)])[2], [(bits, R * n, np.uint32)])

    def prng_guesses(self, R, keys, first, count, P, lo, hi, out, threads):
        bits = struct.unpack("<2i", struct.pack("<2f", lo, hi))
        got = _run(self.exe, 16, [R, first, count, P, *bits, threads], [_get(keys, 2 * R, np.uint32)])[2]
        _unpack(got, [(out, R * count * P, np.float32)])

    def prng_latch(self, R, keys, n, T, noise, signal_len, rounds, x, y, threads):
        arrays = [_get(keys, 2 * R, np.uint32), _get(noise, R, np.float32), _get(signal_len, R, np.int32)]
        out = _run(self.exe, 5, [R, n, T, rounds, threads], arrays)[2]
        _unpack(out, [(x, R * n * T, np.float32), (y, R * n, np.int32)])

    def prng_bit_relay(self, R, keys, n, T, rounds, e, a, y, threads):
        out = _run(self.exe, 6, [R, n, T, rounds, threads], [_get(keys, 2 * R, np.uint32)])[2]
        _unpack(out, [(e, R * n * T, np.float32), (a, R * n, np.float32), (y, R * n, np.int32)])

    def prng_split(self, R, keys, y, n, n_val, n_pos, tail, rounds, tr, va, threads):
        arrays = [_get(keys, 2 * R, np.uint32), _get(y, R * n, np.int32), _get(tail, R, np.uint8)]
        out = _run(self.exe, 7, [R, n, n_val, n_pos, rounds, threads], arrays)[2]
        _unpack(out, [(tr, R * (n - n_val), np.int32), (va, R * n_val, np.int32)])

    def prng_b94_members(self, R, seeds, L, h_init, h, k_tr, k_te):
        bits = int(np.float32(h_init).view(np.int32))
        out = _run(self.exe, 8, [R, L, bits], [_get(seeds, R, np.uint32)])[2]
        _unpack(out, [(h, R * 2 * L, np.float32), (k_tr, 2 * R, np.uint32), (k_te, 2 * R, np.uint32)])

    def prng_b94_noise(self, R, keys, L, T, n, sd, out, threads):
        arrays = [_get(keys, 2 * R, np.uint32), _get(sd, R, np.float32)]
        _unpack(_run(self.exe, 9, [R, L, T, n, threads], arrays)[2], [(out, R * (T - L) * n, np.float32)])


def on_arm(tmp: Path, compiler: str = "g++") -> dict:
    """``test_native._assert_native_equals_vmap``'s builds: the ARM one by ``compiler``,
    every ensemble's kernels run by ``ArmKernels`` from one thread (the replay takes a call's
    blocks itself)."""

    def setup(mp):
        init = native.Ensemble.__init__

        def on_arm(self, model, *a, **k):
            init(self, model, *a, **k)
            self.lib = ArmKernels(build(native.variant(model), tmp, compiler), self.params.shape[1])
            self.per_block = native.per_block(self.lib.latch_per_block(), model.cell.units)

        mp.setattr(native.Ensemble, "__init__", on_arm)
        mp.setattr(native, "threads", lambda: 1)

    return {f"aarch64 (qemu, {compiler})": setup}


class ArmGuessing:
    """``native.guessing()``'s library (``GUESS_SIGNATURES``), each entry run by ``arm_replay``
    under emulation."""

    def __init__(self, exe: Path):
        self.exe = exe
        _info(exe)

    def guess_hardware_fma(self) -> int:
        return 1

    def guess_isa(self) -> bytes:
        return b"neon"

    @staticmethod
    def _arrays(S, B, P, theta, run, n, T, x, start, y) -> list:
        runs = _get(run, S, np.int32)
        R = int(runs.max()) + 1 if S else 0  # the rows the call reads
        return [
            _get(theta, S * B * P, np.float32),
            runs,
            _get(x, R * n * T, np.float32),
            _get(start, R * n, np.int32),
            _get(y, R * n, np.int32),
        ]

    def guess_outputs(self, net, flags, S, B, P, theta, run, n, T, x, start, y, threads, out):
        rc, _, got = _run(
            self.exe, 14, [net, flags, S, B, P, n, T, threads], self._arrays(S, B, P, theta, run, n, T, x, start, y)
        )
        _unpack(got, [(out, S * B * n, np.float32)])
        return rc

    def guess_solved(self, net, flags, S, B, P, theta, run, n, T, x, start, y, lo, hi, tol, sign, threads, solved):
        floats = struct.unpack("<3i", struct.pack("<3f", lo, hi, tol))  # their bits
        scalars = [net, flags, S, B, P, n, T, *floats, sign, threads]
        rc, _, got = _run(self.exe, 15, scalars, self._arrays(S, B, P, theta, run, n, T, x, start, y))
        _unpack(got, [(solved, S * B, np.uint8)])
        return rc
