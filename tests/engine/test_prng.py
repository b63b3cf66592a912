"""``native.prng``: JAX's random numbers for the latch and bit relay tasks, made natively,
compared with JAX itself (``data.prng_differences``: every one of the 2^23 values
``jax.random.normal`` can give, members' keys, both tasks' draws and both splits), and the
check's power to refuse a library one bit off. ``test_engine.py`` compares the sweeps'
families made either way."""

from __future__ import annotations

import platform

import armtools
import jax
import numpy as np
import pytest

from latchlab.engine import data, native

pytestmark = pytest.mark.skipif(native.prng() is None, reason="native.prng is unavailable here")


def test_the_native_generator_gives_jaxs_numbers():
    assert data.prng_differences(native.prng()) == ""


@armtools.needs_arm
def test_the_arm_build_gives_jaxs_numbers(tmp_path):
    """The generator built for ARM (aarch64) and run under emulation (``armtools``) passes
    the same check against JAX (here, this machine's JAX; an ARM machine checks against its own
    before use)."""
    assert data.prng_differences(armtools.ArmPrng(armtools.build("prng", tmp_path))) == ""


def test_member_keys_are_jaxs_for_any_seed():
    seeds = [0, 1, 7, 2**31 - 1, 2**31, 2**32 - 1]
    got = data._member_keys(seeds)
    want = np.asarray(data._member_keys_jit(np.asarray(seeds, np.uint32)))  # JAX's, as before
    np.testing.assert_array_equal(got, want)


class _OneBitOff:
    """``native.prng``'s library, but its normal value of one input one bit (ulp) larger, or
    one split index moved: what a CPU or compiler that rounds otherwise would give."""

    def __init__(self, so, what: str):
        self.so, self.what = so, what

    def __getattr__(self, name):
        return getattr(self.so, name)

    def prng_normal(self, n, bits, out):
        self.so.prng_normal(n, bits, out)
        if self.what == "normal":
            np.ctypeslib.as_array(out, (n,)).view(np.uint32)[12345] += 1

    def prng_split(self, R, keys, y, n, n_val, n_pos, tail, rounds, tr, va, threads):
        self.so.prng_split(R, keys, y, n, n_val, n_pos, tail, rounds, tr, va, threads)
        if self.what == "split":
            np.ctypeslib.as_array(va, (R * n_val,))[0] ^= 1


@pytest.mark.parametrize("what, said", [("normal", "1 of the 2^23 normal values"), ("split", "splits")])
def test_the_check_refuses_a_library_one_bit_off(what, said):
    assert data.prng_differences(_OneBitOff(native.prng(), what)) == said


def test_a_library_that_differs_is_not_used(monkeypatch, tmp_path):
    """A library whose check found a difference is refused (the JAX path makes the data),
    and the verdict is kept: the check is not run again."""
    monkeypatch.setenv("LATCHLAB_CACHE", str(tmp_path / "xla"))
    key = ("prng", native.march())
    monkeypatch.delitem(native._libs, key, raising=False)
    monkeypatch.delitem(native._errors, key, raising=False)
    calls = []
    monkeypatch.setattr(data, "prng_differences", lambda so: calls.append(so) or "3 of the 2^23 normal values")
    assert native.prng() is None
    assert "3 of the 2^23 normal values" in native._errors[key]
    (verdict,) = (tmp_path / "native").glob("prng-*.check")
    assert verdict.read_text() == "3 of the 2^23 normal values"
    native._errors.pop(key)
    assert native.prng() is None and len(calls) == 1  # the kept verdict, not a new check
    native._errors.pop(key)


def test_draws_of_odd_sizes_match_jax():
    """One sequence, one step; an odd number of sequences and members (JAX pads its counters
    to an even count), and a seed's sequences not depending on the members beside it."""
    so = native.prng()
    for R, n, T in ((1, 1, 1), (3, 7, 5), (2, 2001, 3)):
        keys = data._member_keys(list(range(40, 40 + R)))
        noise, L = np.full(R, 0.25, np.float32), np.full(R, 2, np.int32)
        args = (jax.numpy.asarray(keys), jax.numpy.full(R, T), jax.numpy.asarray(noise), jax.numpy.asarray(L))
        for task in ("latch", "bit_relay"):
            *want, _ = data._chunk_sequences(*args, task=task, n=n, pad_to=T, draws=True)
            got = data._prng_draws(so, task, keys, n, T, noise, L)
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a.view(np.int32), np.asarray(b).reshape(a.shape).view(np.int32))
            alone = data._prng_draws(so, task, keys[-1:], n, T, noise[-1:], L[-1:])
            for a, b in zip(alone, got):
                np.testing.assert_array_equal(a[0], b[-1])


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64's baseline has no fused multiply-add")
def test_a_build_without_fused_multiply_adds_is_not_used(monkeypatch):
    """x86-64's baseline (SSE2) has no fused multiply-add instruction: the library's fmaf would
    be a library call, far slower than JAX, so the JAX path makes the data."""
    monkeypatch.setenv("LATCHLAB_NATIVE_MARCH", "x86-64")
    assert native.prng() is None
    assert "has no fused multiply-add instruction" in native._errors.pop(("prng", "x86-64"))
