"""``native.prng``: JAX's random numbers for the latch and bit relay tasks, made natively,
compared with JAX itself (``data.prng_differences``: every one of the 2^23 values
``jax.random.normal`` can give, members' keys, both tasks' draws and both splits, random
guessing's guesses), and the
check's power to refuse a library one bit off. ``test_engine.py`` compares the sweeps'
families made either way."""

from __future__ import annotations

import platform

import armtools
import jax
import numpy as np
import pytest

from latchlab import config
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

    def prng_normal_unfused(self, n, bits, out):
        self.so.prng_normal_unfused(n, bits, out)
        if self.what == "unfused":
            np.ctypeslib.as_array(out, (n,)).view(np.uint32)[54321] += 1

    def prng_log_uniform(self, R, keys, n, lo, hi, out):
        self.so.prng_log_uniform(R, keys, n, lo, hi, out)
        if self.what == "chrono":
            np.ctypeslib.as_array(out, (R * n,)).view(np.uint32)[R * n - 1] += 1

    def prng_split(self, R, keys, y, n, n_val, n_pos, tail, rounds, tr, va, threads):
        self.so.prng_split(R, keys, y, n, n_val, n_pos, tail, rounds, tr, va, threads)
        if self.what == "split":
            np.ctypeslib.as_array(va, (R * n_val,))[0] ^= 1

    def prng_guesses(self, R, keys, first, count, P, lo, hi, out, threads):
        self.so.prng_guesses(R, keys, first, count, P, lo, hi, out, threads)
        if self.what == "guesses":
            np.ctypeslib.as_array(out, (R * count * P,)).view(np.uint32)[R * count * P // 2] += 1


@pytest.mark.parametrize(
    "what, said",
    [
        ("normal", "1 of the 2^23 normal values"),
        ("unfused", "1 of the 2^23 unoptimised normal values"),
        ("chrono", "initial parameters of {'cell': 'gru', 'units': 3, 'preset': 'keras3'}, chrono"),
        ("split", "splits"),
        ("guesses", "guesses"),
    ],
)
def test_the_check_refuses_a_library_one_bit_off(what, said):
    assert data.prng_differences(_OneBitOff(native.prng(), what)) == said


def test_a_library_that_differs_is_not_used(monkeypatch, tmp_path):
    """A library whose check found a difference is refused (the JAX path makes the data),
    and the verdict is kept: the check is not run again."""
    monkeypatch.setenv("LATCHLAB_CACHE", str(tmp_path / "xla"))
    key = ("prng", native._target())
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
    to an even count), a seed's sequences not depending on the members beside it, and noise
    arrays of fewer values than the generator's vectors hold and of more (drawn in blocks of
    several vectors, then the fewest vectors that hold the rest, overlapping the values
    before them)."""
    so = native.prng()
    for R, n, T in ((1, 1, 1), (3, 7, 5), (2, 2001, 3), (2, 5, 16), (1, 3, 37), (2, 37, 7)):
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


def test_normal_values_do_not_depend_on_how_many_are_drawn():
    """``prng_normal`` (checked against JAX on all 2^23 inputs at once) gives every input the
    same value in calls of any size, 0 to beyond two blocks of the generator's vectors, fused
    and unfused, and writes nothing past the values asked for."""
    so = native.prng()
    bits = np.random.default_rng(0).integers(0, 2**32, 500, dtype=np.uint64).astype(np.uint32)
    for draw in (so.prng_normal, so.prng_normal_unfused):
        every = np.empty(500, np.float32)
        draw(500, data._u32(bits), native._ptr(every))
        for n in range(0, 260):
            out = np.full(n + 20, 7.0, np.float32)
            draw(n, data._u32(bits[:n].copy()), native._ptr(out))
            np.testing.assert_array_equal(out[:n].view(np.uint32), every[:n].view(np.uint32))
            assert (out[n:] == 7.0).all()


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64's baseline has no fused multiply-add")
def test_a_build_without_fused_multiply_adds_is_not_used(monkeypatch):
    """x86-64's baseline (SSE2) has no fused multiply-add instruction: the library's fmaf would
    be a library call, far slower than JAX, so the JAX path makes the data."""
    monkeypatch.setenv("LATCHLAB_NATIVE_MARCH", "x86-64")
    assert native.prng() is None
    assert "has no fused multiply-add instruction" in native._errors.pop(("prng", native._target()))


# every cell and both GRU forms, one and several units up to LAPACK's unblocked QR's 128,
# every head, each scheme where it applies, values of every kind (a negative recurrent value
# gives its identity's zeros a sign)
INIT_CASES = [
    *(
        ({"cell": cell, "units": H, "preset": preset}, "keras", {})
        for cell in ("srnn", "lstm", "lstm_nofg", "gru", "janet")
        for preset in (("keras2", "keras3") if cell == "gru" else ("keras2",))
        for H in (1, 2, 8, 33)
    ),
    ({"cell": "lstm", "units": 100}, "keras", {}),
    ({"cell": "srnn", "units": 128}, "keras", {}),
    ({"cell": "gru", "units": 5, "preset": "keras3"}, "torch", {}),
    ({"cell": "lstm", "units": 3, "head": "dense1"}, "torch", {}),
    ({"cell": "srnn", "units": 1, "head": "linear", "task": "adding"}, "keras", {}),
    ({"cell": "lstm", "units": 4, "task": "copy", "T": 30}, "keras", {}),
    ({"cell": "janet", "units": 1, "preset": "keras3"}, "chrono", {}),
    ({"cell": "lstm", "units": 1, "preset": "keras3"}, "chrono", {"recurrent_f": 0.5}),
    ({"cell": "gru", "units": 2, "preset": "keras3"}, "chrono", {"bias_z": -1.0}),
    ({"cell": "lstm", "units": 2}, "keras", {"recurrent": -0.75, "kernel_i": 0.5, "bias": 1.5}),
    ({"cell": "gru", "units": 3, "preset": "keras3"}, "keras", {"bias_r": 2.0, "recurrent_h": -1.0}),
]


@pytest.mark.parametrize("case", INIT_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{sorted(c[2])}")
def test_native_initial_parameters_are_inits_bit_for_bit(case):
    """``data.native_init`` gives ``data._init``'s numbers bit for bit: 64 members each (their
    own seeds and lengths, each value its own number), compared by ``init_differences``."""
    settings, scheme, values = case
    if "task" not in settings:
        settings = {**settings, "task": "latch"}
    assert data.init_differences(native.prng(), [(settings, scheme, values)]) == ""


def test_chrono_biases_are_jaxs_for_every_length():
    """A chrono initialisation's log of a uniform, on 16 384 members of lengths 2 to 16 385: XLA
    fuses the uniform's multiply-add into the log's loop, which a separate multiply and add
    would miss in about 1 in 1000 values (69 of 65 536 here before it was fused; 2 of these)."""
    so = native.prng()
    n = 16384
    keys = data._member_keys(range(n))[:, 2]
    t_max = np.arange(2, n + 2, dtype=np.float32)
    run = config.from_dict({"name": "c", "cell": "lstm", "preset": "keras3", "init": "chrono"}).members()[0].run
    got = data.native_init(so, keys, t_max, np.zeros((n, 0), np.float32), run.model, "chrono", ())
    want = [
        data._on_padded_stack(
            data._init,
            keys[i : i + 512],
            t_max[i : i + 512],
            np.zeros((512, 0), np.float32),
            split=False,
            model=run.model,
            scheme="chrono",
            names=(),
        )["cell"]["bias"]
        for i in range(0, n, 512)
    ]
    np.testing.assert_array_equal(got["cell"]["bias"].view(np.uint32), np.concatenate(want).view(np.uint32))


def test_initial_parameters_beyond_128_units_are_left_to_jax():
    run = config.from_dict({"name": "w", "cell": "srnn", "units": 129}).members()[0].run
    assert not data.native_inits(run.model, "keras", ())
    assert (
        data.native_init(
            native.prng(),
            data._member_keys([0])[:, 2],
            np.ones(1, np.float32),
            np.zeros((1, 0), np.float32),
            run.model,
            "keras",
            (),
        )
        is None
    )
