"""A sweep's data and initial parameters, each derived from a member's seed alone.

``member_keys`` splits a seed into the member's (data, split, init) keys; ``make_data``
makes a chunk's data sets on the devices in one call; ``Families`` draws each seed's
longest latch or bit relay sequences once and cuts every length from them;
``init_members`` stacks the members' initial parameters. A member's data and initial
parameters do not depend on the members it is trained beside (``tests/engine/test_engine.py``).

The keys, the families' draws, their splits and the initial parameters (``native_init``,
with the LAPACK QR JAX calls) are made by ``native.prng``'s library where it is available:
JAX's Threefry, permutations and normal values, bit for bit, checked against JAX on this
machine before first use (``prng_differences``), with no compilation (XLA's took 0.2-1.2 s a
function and its Threefry ran several times slower). Elsewhere JAX makes them, the same
numbers.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
from collections import defaultdict
from functools import cached_property, partial
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from latchlab.config import Member, RunConfig
from latchlab.core import cells
from latchlab.core import model as M
from latchlab.core import tasks
from latchlab.engine import native, train


def member_keys(seed: int):
    """A member's ``(data, split, init)`` PRNG keys, all derived from its seed."""
    return jax.random.split(jax.random.PRNGKey(seed), 3)


# set-up functions whose run time is negligible compile without LLVM's optimisations
# (about a third less compile time, measured on the initialiser: 0.70 against 1.04 s)
_QUICK_COMPILE = {"xla_backend_optimization_level": 0}
# the sequence generators at LLVM's first level: the same bits as the default level (every
# task, tests/engine/test_engine.py), compiled in 30-85 % less time (latch 1.5-1.6 against
# 0.8-1.0 s, copy 3.2-4.5 against 0.6) and run within 10 % of its speed; unoptimised they
# differed in the last bit and ran 5 times slower
_GENERATOR_COMPILE = {"xla_backend_optimization_level": 1}
_member_keys_jit = jax.jit(jax.vmap(member_keys), compiler_options=_QUICK_COMPILE)
# the per-member set-up functions (keys, initial parameters, the split) run on stacks
# padded to a multiple of this, so that chunks of different sizes share one compilation
# (~1 s each)
PREP_STACK = 64


def _padded_rows(n: int) -> int:
    """The rows of a stack of ``n`` members as the set-up functions take it."""
    return n + -n % PREP_STACK


def _stack_sharding(rows: int, split: bool):
    return train.member_sharding(rows) if split else jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _on_padded_stack(f, *arrays, split: bool = True, **static):
    """``f(*arrays, **static)`` for jitted per-member functions ``f`` (leading axis R), run
    on stacks padded to a multiple of ``PREP_STACK`` rows, split over the devices unless
    ``split`` is False; returns host arrays of the first R rows."""
    n = len(arrays[0])
    rows = _padded_rows(n)
    padded = [np.concatenate([a, np.repeat(a[-1:], rows - n, axis=0)]) for a in map(np.asarray, arrays)]
    out = _call(f, jax.device_put(padded, _stack_sharding(rows, split)), static)
    return jax.tree.map(lambda a: np.asarray(a)[:n], out)


def _member_keys(seeds) -> np.ndarray:
    """(R, 3, 2) ``member_keys`` of every seed, as a host array (made natively where
    ``native.prng``'s library is loaded: a sweep of latch or bit relay families loads it; a
    sweep of other tasks does not build it for its keys alone)."""
    seeds = np.asarray(seeds)
    so = native.prng(loaded=True)
    if so is not None and seeds.size and 0 <= seeds.min() and seeds.max() < 2**32:
        keys = np.empty((len(seeds), 3, 2), np.uint32)
        so.prng_member_keys(len(seeds), _u32(np.ascontiguousarray(seeds, np.uint32)), _u32(keys))
        return keys
    return _on_padded_stack(_member_keys_jit, seeds.astype(np.uint32))


def _u32(a: np.ndarray):
    return native._ptr(a, ctypes.c_uint32)


def _i32(a: np.ndarray):
    return native._ptr(a, ctypes.c_int32)


def shuffle_rounds(n: int) -> int:
    """The sorts of ``jax.random.permutation`` of ``n`` elements (its ``_shuffle``'s formula)."""
    return int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))


# ------------------------------------------------------ the native random numbers, checked
def prng_differences(so) -> str:
    """What of ``native.prng``'s library ``so`` differs from JAX here ("" if nothing): every
    one of the 2^23 values ``jax.random.normal`` can give (its uniform's 23 random bits),
    members' keys, latch and bit relay draws of five seeds against ``_chunk_sequences``,
    both splits of the latch labels against ``_chunk_splits``, and random guessing's guesses
    against ``jax_guesses``."""
    try:
        return _prng_differences(so)
    except Exception as e:  # a JAX that cannot run a check: the JAX path, which it can run
        return f"check failed: {type(e).__name__}: {e}"


def _prng_differences(so) -> str:
    from jax.extend import random as jr

    # a PRNG whose bits are every 23-bit mantissa in turn: jax.random.normal's own code on them
    every = jr.define_prng_impl(
        key_shape=(2,),
        seed=lambda s: jnp.zeros(2, jnp.uint32),
        split=lambda k, shape: jnp.zeros((*shape, 2), jnp.uint32),
        random_bits=lambda k, width, shape: jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape) << 9,
        fold_in=lambda k, d: k,
        name="latchlab_every_mantissa",
    )
    n = 1 << 23
    want = jax.jit(lambda k: jax.random.normal(k, (n,)), compiler_options=_GENERATOR_COMPILE)(
        jax.random.key(0, impl=every)
    )
    got = np.empty(n, np.float32)
    so.prng_normal(n, _u32(np.arange(n, dtype=np.uint32) << 9), native._ptr(got))
    if (bad := int((got.view(np.uint32) != np.asarray(want).view(np.uint32)).sum())) > 0:
        return f"{bad} of the 2^23 normal values"
    # the same unoptimised, as ``_init`` computes them
    want = jax.jit(lambda k: jax.random.normal(k, (n,)), compiler_options=_QUICK_COMPILE)(jax.random.key(0, impl=every))
    so.prng_normal_unfused(n, _u32(np.arange(n, dtype=np.uint32) << 9), native._ptr(got))
    if (bad := int((got.view(np.uint32) != np.asarray(want).view(np.uint32)).sum())) > 0:
        return f"{bad} of the 2^23 unoptimised normal values"
    if why := init_differences(so):
        return why
    seeds = [0, 1, 12345, 2**31 - 1, 2**32 - 1]
    keys = np.asarray(_member_keys_jit(jnp.asarray(seeds, jnp.uint32)))
    mine = np.empty_like(keys)
    so.prng_member_keys(len(seeds), _u32(np.asarray(seeds, np.uint32)), _u32(mine))
    if not np.array_equal(keys, mine):
        return "member keys"
    # 2 sorts, then 1; rows of fewer steps than a block of the noise, and of more (the last
    # block overlapping the one before)
    for task, n_seq, T in (("latch", 2001, 13), ("bit_relay", 300, 21)):
        R = len(seeds)
        # a noise of 0 too: signed zeros where the sign is 0
        noise, L = np.array([0.1, 0.0, 0.5, 1.0, 2.0], np.float32), np.array([1, 2, 3, 20, 1], np.int32)
        args = (jnp.asarray(keys), jnp.full(R, T, jnp.int32), jnp.asarray(noise), jnp.asarray(L))
        *draws, y, _ = _chunk_sequences(*args, task=task, n=n_seq, pad_to=T, draws=True)
        fam = _prng_draws(so, task, keys, n_seq, T, noise, L)
        same = (a.view(np.int32) == np.asarray(b).reshape(a.shape).view(np.int32) for a, b in zip(fam, (*draws, y)))
        if not all(map(np.all, same)):
            return f"{task} sequences"
        if task == "latch":  # the splits depend on the labels alone (one compilation a size)
            y = fam[-1]
            for n_val, n_pos in ((n_seq // 5, n_seq // 10), (7, 0)):
                tail = np.array([False, True, False, True, False])
                want_split = _chunk_splits(
                    jnp.asarray(keys), jnp.asarray(y), jnp.asarray(tail), n_val=n_val, n_pos=n_pos
                )
                got_split = _prng_splits(so, keys, y, tail, n_val, n_pos)
                if not all(np.array_equal(a, np.asarray(b)) for a, b in zip(got_split, want_split)):
                    return "splits"
    # random guessing's guesses: from a first index past 0, more than a pack of lanes, a tail
    flat = np.ascontiguousarray(keys).reshape(-1, 2)  # every member key of the five seeds
    want = np.asarray(jax_guesses_jit(jnp.asarray(flat), 1000, 200, 7, 100.0))
    if not np.array_equal(uniform_guesses(so, flat, 1000, 200, 7, 100.0).view(np.uint32), want.view(np.uint32)):
        return "guesses"
    return ""


def jax_guesses(keys, first, count: int, P: int, a: float):
    """(R, count, P): ``uniform(fold_in(keys[r], first + j), (P,), -a, a)`` for j < count, of
    keys (R, 2): random weight guessing's guesses (``latchlab.experiments.guessing.guesses``),
    guess j of a run from its own key whatever the blocks."""
    one = lambda k, j: jax.random.uniform(jax.random.fold_in(k, j), (P,), jnp.float32, -a, a)  # noqa: E731
    return jax.vmap(lambda k: jax.vmap(lambda j: one(k, j))(first + jnp.arange(count)))(keys)


jax_guesses_jit = jax.jit(jax_guesses, static_argnums=(2, 3, 4))  # P and a static: XLA folds them as the search does


def uniform_guesses(so, keys, first: int, count: int, P: int, a: float) -> np.ndarray:
    """``jax_guesses`` by ``native.prng``'s library ``so`` (bit for bit), of keys (R, 2)."""
    keys = np.ascontiguousarray(keys, np.uint32)
    out = np.empty((len(keys), count, P), np.float32)
    so.prng_guesses(len(keys), _u32(keys), first, count, P, -a, a, native._ptr(out), native.threads())
    return out


def init_differences(so, cases=None) -> str:
    """What of ``native_init`` with library ``so`` differs from ``_init`` ("" if nothing), on
    ``cases`` (``(cell settings, scheme, values)``; by default a few that take every path:
    each scheme, a reset_after GRU's two biases, a gate's value, an orthogonal matrix of 8
    columns and one of 1)."""
    from latchlab.config import from_dict

    cases = cases or (
        ({"cell": "lstm", "units": 1}, "keras", {"recurrent_f": -0.5, "bias": 2.0}),
        ({"cell": "gru", "units": 3, "preset": "keras3"}, "chrono", {}),  # reset_after, sigmoid gates
        ({"cell": "srnn", "units": 2, "head": "dense1"}, "torch", {"kernel": 0.25}),
        ({"cell": "janet", "units": 8}, "keras", {}),
        ({"cell": "lstm", "units": 2, "preset": "keras3"}, "chrono", {"bias_o": 0.5}),
    )
    seeds = [*range(61), 2**31 - 1, 2**31, 2**32 - 1]  # a stack of PREP_STACK: one compilation a case
    keys = _member_keys(seeds)[:, 2]
    t_max = np.array([2 + 17 * r for r in range(len(seeds))], np.float32)
    for settings, scheme, values in cases:
        run = from_dict({"name": "check", "task": "latch", **settings}).members()[0].run
        names = tuple(values)
        numbers = np.array([[v * (1 + r) for v in values.values()] for r in range(len(seeds))], np.float32)
        numbers = numbers.reshape(len(seeds), len(names))
        got = native_init(so, keys, t_max, numbers, run.model, scheme, names)
        want = _on_padded_stack(_init, keys, t_max, numbers, split=False, model=run.model, scheme=scheme, names=names)
        if got is None or jax.tree.structure(got) != jax.tree.structure(want):
            return f"initial parameters of {settings}, {scheme}: not made"
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            if a.shape != b.shape or not np.array_equal(a.view(np.uint32), np.asarray(b).view(np.uint32)):
                return f"initial parameters of {settings}, {scheme}"
    return ""


def _prng_draws(so, task: str, keys, n: int, T: int, noise, signal_len) -> tuple[np.ndarray, ...]:
    """``_chunk_sequences(..., draws=True)``'s draws and labels of the members' keys (R, 3, 2),
    made by ``native.prng``'s library ``so``: latch (x (R, n, T), y), bit relay (e, a, y)."""
    R = len(keys)
    data_keys = np.ascontiguousarray(keys[:, 0])
    f32 = native._ptr
    x, y = np.empty((R, n, T), np.float32), np.empty((R, n), np.int32)
    rounds, threads = shuffle_rounds(n), native.threads()
    if task == "latch":
        noise = np.ascontiguousarray(noise, np.float32)
        signal_len = np.ascontiguousarray(signal_len, np.int32)
        so.prng_latch(R, _u32(data_keys), n, T, f32(noise), _i32(signal_len), rounds, f32(x), _i32(y), threads)
        return x, y
    a = np.empty((R, n), np.float32)
    so.prng_bit_relay(R, _u32(data_keys), n, T, rounds, f32(x), f32(a), _i32(y), threads)
    return x, a, y


def _prng_splits(so, keys, y, tail, n_val: int, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """``_chunk_splits``'s (train, validation) indices of 0/1 labels ``y`` (R, n), made by ``so``."""
    R, n = y.shape
    tr, va = np.empty((R, n - n_val), np.int32), np.empty((R, n_val), np.int32)
    split_keys, labels = np.ascontiguousarray(keys[:, 1]), np.ascontiguousarray(y, np.int32)
    tails = np.ascontiguousarray(tail, np.uint8)
    so.prng_split(
        R, _u32(split_keys), _i32(labels), n, n_val, n_pos, native._ptr(tails, ctypes.c_uint8),
        shuffle_rounds(n), _i32(tr), _i32(va), native.threads(),
    )  # fmt: skip
    return tr, va


# --------------------------------------------------------------- compiling ahead of need
# A sweep's set-up functions (the sequences, the splits, the initial parameters) compile
# in 0.5-1.6 s each, on one core while the other waits. ``warm`` compiles those the chunks
# will need in a background thread while this one makes the first chunk's data; a call
# then finds its compilation made, or waits for the one under way, instead of making it
# again (``_call``). Compilations depend on shapes only, so the numbers do not change.
_compiles_lock = threading.Lock()
_compiles: dict[tuple, threading.Event] = {}  # set-up compilations under way or made in this process


def _signature(f, args, static: dict) -> tuple:
    """What a compilation of jitted ``f`` depends on: its static arguments and its array
    arguments' (placed arrays or ``jax.ShapeDtypeStruct``) shapes, types and shardings."""
    return (f, tuple(sorted(static.items())), tuple((a.shape, np.dtype(a.dtype), a.sharding) for a in args))


def _claim(key) -> threading.Event | None:
    """None if the caller is the first to need compilation ``key`` (it makes it, then sets
    the event ``_compiles[key]``); else the event of the one made or under way."""
    with _compiles_lock:
        if key in _compiles:
            return _compiles[key]
        _compiles[key] = threading.Event()
        return None


def _call(f, args, static: dict):
    """``f(*args, **static)``, after any compilation of it under way in ``warm``'s thread."""
    key = _signature(f, args, static)
    made = _claim(key)
    if made is not None:
        made.wait()
    try:
        return f(*args, **static)
    finally:
        if made is None:
            _compiles[key].set()


@partial(jax.jit, static_argnames=("task", "n", "pad_to", "draws"), compiler_options=_GENERATOR_COMPILE)
def _chunk_sequences(keys, T, noise, signal_len, task, n, pad_to, draws=False):
    # draws: a family's random draws (``FAMILY_DRAWS``) instead of the sequences
    gen = FAMILY_DRAWS[task] if draws else tasks.PADDED[task]

    def one(args):
        k, T, noise, L = args
        return *gen(k[0], n, T, noise, L, pad_to), tasks._steps(T, pad_to)[1]

    # one member at a time on each device: a vmap over all members would hold every
    # member's random bits and intermediates at once (4-5 times the data's size)
    R, D = keys.shape[0], train.devices_for(keys.shape[0])
    per_device = jax.tree.map(lambda a: a.reshape((D, R // D) + a.shape[1:]), (keys, T, noise, signal_len))
    out = jax.vmap(lambda a: jax.lax.map(one, a))(per_device)
    return jax.tree.map(lambda a: a.reshape((R,) + a.shape[2:]), out)


@partial(jax.jit, static_argnames=("n_val", "n_pos"), compiler_options=_QUICK_COMPILE)
def _chunk_splits(keys, y, tail, n_val, n_pos):
    # apart from the sequences: the split's shapes do not depend on the length bucket, so
    # it compiles once per sweep instead of once per bucket. Integer arithmetic, exact at
    # any optimisation level: unoptimised it compiled in 0.67 s instead of 1.11 and ran
    # 30 members' in 0.18 s instead of 0.13
    tr, va = jax.vmap(lambda k, y, t: tasks.split(k[1], y, n_val, n_pos, t))(keys, y, tail)
    return tr.astype(jnp.int32), va.astype(jnp.int32)


def warm(chunks, families: Families | None = None) -> threading.Thread | None:
    """Start compiling, in a background thread, the set-up functions the planned ``chunks``
    will call (``_set_up_calls``); returns the thread (None if there is nothing to compile).

    Args:
        chunks: the planned chunks, in the order they will be made.
        families: the ``Families`` their data will be cut from, if any.
    """
    if not chunks:
        return None
    if families is not None and families.T:
        _ = families.prng  # asked here, not first in the low-priority thread (which reads it)
    t = threading.Thread(target=_compile_ahead, args=(chunks, families), name="latchlab-warm", daemon=True)
    t.start()
    return t


def _compile_ahead(chunks, families) -> None:
    # The first chunk's compilations at the sweep's priority: its training waits for them
    # (at the lowest priority, while the data took both cores, the seed's first
    # initialisation still waited 0.3-0.5 s for its compilation). The later ones at the
    # lowest priority: the thread takes a core while the other waits on a compilation or
    # a trace, not from the sweep's training (at normal priority it slowed the seed's
    # training and data as much as it saved).
    try:
        for part, low in ((chunks[:1], False), (chunks, True)):
            if low:
                try:
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
                except (AttributeError, OSError):  # not on Linux: as fast, with the sweep
                    pass
            for f, args, static in _set_up_calls(part, families):
                key = _signature(f, args, static)
                if _claim(key) is not None:
                    continue
                try:
                    f.lower(*args, **static).compile()
                finally:
                    _compiles[key].set()
    except Exception:  # what cannot be made here, the call that needs it makes (and raises there)
        pass


def _set_up_calls(chunks, families):
    """The set-up calls the chunks will make, as ``(f, abstract args, static args)``, in the
    order they will be needed, each once; but the first chunk's sequences and keys, which
    the caller's thread makes first."""
    struct = jax.ShapeDtypeStruct
    seen = set()

    def once(call):
        key = _signature(*call)
        if key not in seen:
            seen.add(key)
            yield call

    def splits(rows: int, y, n_val: int, n_pos: int):
        rows = _padded_rows(rows)
        sh = _stack_sharding(rows, True)
        args = (
            struct((rows, 3, 2), np.uint32, sharding=sh),
            struct((rows,) + y.shape, y.dtype, sharding=sh),
            struct((rows,), np.bool_, sharding=sh),
        )
        return _chunk_splits, args, dict(n_val=n_val, n_pos=n_pos)

    def sequences(task, n, pad_to, rows, draws=False):
        sh = train.member_sharding(rows)
        args = (struct((rows, 3, 2), np.uint32, sharding=sh),) + tuple(
            struct((rows,), dt, sharding=sh) for dt in (np.int32, np.float32, np.int32)
        )
        static = dict(task=task, n=n, pad_to=pad_to) | (dict(draws=True) if draws else {})
        return _chunk_sequences, args, static

    shapes = {}

    def labels(call):  # one member's targets' shape and type
        f, args, static = call
        key = (static["task"], static["n"], static["pad_to"], static.get("draws", False))
        if key not in shapes:
            y = f.eval_shape(*args, **static)[-2]
            shapes[key] = struct(y.shape[1:], y.dtype)
        return shapes[key]

    for i, c in enumerate(chunks):
        members = list(c.members)
        run = members[0].run
        if families is not None and families.covers(members):
            # a family's split is made with those of the same sizes (``Families._splits``),
            # natively where ``families.prng`` is
            for shape, sizes in {(families._shape(_family(m)), _split_sizes(m.run)) for m in members}:
                rows = sum(1 for v in families.split_keys.values() if v == sizes)
                task, _, _, n, T = shape
                if families.prng is None:
                    y = labels(sequences(task, n, T, jax.local_device_count(), draws=True))
                    yield from once(splits(rows, y, *sizes))
        else:
            seq = sequences(run.task, run.N, c.T_pad, len(members))
            if i > 0:
                yield from once(seq)
            yield from once(splits(len(members), labels(seq), *_split_sizes(run)))
        subsets = defaultdict(int)
        for m in members:
            subsets[(m.run.init, tuple(n for n, _ in m.run.values))] += 1
        for (scheme, names), n in subsets.items():
            if native.prng(loaded=True) is not None and native_inits(run.model, scheme, names):
                continue  # made natively: nothing to compile
            n = _padded_rows(n)
            sh = _stack_sharding(n, False)
            args = (
                struct((n, 2), np.uint32, sharding=sh),
                struct((n,), np.float32, sharding=sh),
                struct((n, len(names)), np.float32, sharding=sh),
            )
            yield from once((_init, args, dict(model=run.model, scheme=scheme, names=names)))


def _split_sizes(run: RunConfig) -> tuple[int, int]:
    """(n_val, n_pos) of a member's split: the generators make exactly N // 2 positives."""
    n, vf = run.N, run.val_frac
    n_val = n - int(n * (1.0 - vf))
    return n_val, int(round(n_val * (n // 2) / n))


def make_data(members: list[Member], T_pad: int, families: Families | None = None) -> train.Data:
    """Every member's data set, left-padded to ``T_pad``, made on the devices in one call
    (or cut on the host from ``families``, each seed's longest sequences, where the task
    allows).

    A member's sequences depend only on its (task, T, noise, signal_len, N) and seed (not on
    ``T_pad``: see ``tasks``), and its split on (val_frac, split) and seed; so members that
    differ in cell, initialisation or learning rate see the same sequences.
    """
    if families is not None and families.covers(members):
        return families.cut(members, T_pad)
    run = members[0].run
    n_val, n_pos = _split_sizes(run)
    sharding = train.member_sharding(len(members))
    col = lambda f, dt: jax.device_put(np.array([f(m) for m in members], dt), sharding)  # noqa: E731
    keys = _member_keys([m.seed for m in members])
    x, y, mask = _call(
        _chunk_sequences,
        (
            jax.device_put(keys, sharding),
            col(lambda m: m.run.T, np.int32),
            col(lambda m: m.run.noise, np.float32),
            col(lambda m: m.run.signal_len, np.int32),
        ),
        dict(task=run.task, n=run.N, pad_to=T_pad),
    )
    tail = np.array([m.run.split == "tail" for m in members])
    splits = _on_padded_stack(_chunk_splits, keys, y, tail, n_val=n_val, n_pos=n_pos)
    tr, va = jax.device_put(splits, sharding)
    return train.Data(x, y, mask, tr, va)


def latch_draws(members: list[Member], n: int, T: int) -> np.ndarray:
    """(R, n, T) float32: member r's ``tasks.latch(member_keys(seed)[0], n, T, noise,
    signal_len)`` sequences (their one channel), made by ``native.prng``'s library where it
    can be used (JAX's numbers, bit for bit), else by JAX a member at a time."""
    so = native.prng()
    if so is not None:
        keys = _member_keys([m.seed for m in members])
        noise = np.array([m.run.noise for m in members], np.float32)
        signal_len = np.array([m.run.signal_len for m in members], np.int32)
        return _prng_draws(so, "latch", keys, n, T, noise, signal_len)[0]
    return np.stack(
        [
            np.asarray(tasks.latch(member_keys(m.seed)[0], n, T, m.run.noise, m.run.signal_len)[0])[..., 0]
            for m in members
        ]
    )


def stored_data(members: list[Member], T_pad: int) -> train.Data:
    """``make_data``'s numbers for a few members outside a sweep (the analyses of stored
    members), as host arrays: cut from their families' draws (``Families``: made natively
    where ``native.prng``'s library loads, with no compilation, where ``make_data`` compiled
    and ran the set-up stack of ``PREP_STACK`` members for one) when every member's task has
    them, else ``make_data``'s."""
    if all(m.run.task in FAMILY_DRAWS for m in members):
        data = Families([SimpleNamespace(members=members, data_key=None)]).cut(members, T_pad)
        assert isinstance(data.x, native.Rows)  # what ``Families.cut`` gives
        return data._replace(x=data.x.padded())
    return train.Data(*(np.asarray(a) for a in make_data(members, T_pad)))


def _host_rows(a) -> list[np.ndarray]:
    """The rows (leading axis) of a member-sharded array as host arrays, without copies: on
    a CPU each shard is host memory already (``np.asarray`` of the whole array gathered the
    shards into a new array, 0.5 s for a sweep's 240 MB of sequences)."""
    rows = [None] * a.shape[0]
    for shard in a.addressable_shards:
        part = np.asarray(shard.data)
        for i, r in enumerate(range(*shard.index[0].indices(a.shape[0]))):
            rows[r] = part[i]
    return rows


# Tasks whose sequences of every length are cut from the same key's longest draws
# (``tasks``: step t's noise comes from ``fold_in(key, t)``). A latch sequence of length T
# is the first T steps of the longer one; bit relay's second sign sits at floor(T/2), so
# its draws (unit noise, a prefix; first signs; labels) are kept and each length's
# sequences made from them (``_bit_relay_cut``).
FAMILY_DRAWS = {"latch": tasks._latch, "bit_relay": tasks._bit_relay_draws}
# ``signs + noise e`` on the steps with a sign, compiled as the generator's own sum is (XLA
# fuses it into one multiply-add: a product rounded first differs in the last bit)
_signed_steps = jax.jit(lambda signs, noise, e: signs + noise * e)


def _bit_relay_cut(e, a, y, T: int, noise: float, signal_len: int) -> np.ndarray:
    """Bit relay's (N, T) sequences, bit for bit ``tasks.bit_relay``'s, from its draws (``e``
    the unit noise of at least T steps): ``noise e`` (one rounding, as in the generator
    where the signs are 0), and ``signs + noise e`` on the steps with a sign."""
    x = np.float32(noise) * e[:, :T]
    cols = np.minimum(np.r_[np.arange(signal_len), T // 2 + np.arange(signal_len)], T - 1)  # (2 signal_len,)
    signs = tasks.bit_relay_signals(a, y, cols, cols >= 0, T, signal_len, xp=np)
    x[:, cols] = np.asarray(_signed_steps(signs, np.float32(noise), e[:, cols]))
    return x


# the most sequence memory ``Families`` makes in one call ahead of need: with JAX, whose
# every stack size is a compilation; with the native generator, which compiles nothing, a
# few seeds at a time, so that the memory of the families freed is the next ones' (a
# virtual machine's first touch of memory cost 0.3 s of the seed sweep's 240 MB at once)
FAMILY_BATCH_BYTES = 512 << 20
NATIVE_FAMILY_BATCH_BYTES = 32 << 20


def _family(m: Member):
    r = m.run
    return (r.task, r.noise, r.signal_len, r.N, m.seed)


class Families:
    """Each seed's longest sequences, labels and splits, made once for a whole sweep.

    For ``PREFIX_TASKS`` a member's data are the first T steps of its seed's longest
    sequences, so a sweep over lengths draws each seed's noise once instead of once per
    member (and its split once per (val_frac, split)). A family is made when a chunk first
    needs it, in one call with the families of the same shape that later chunks need (up to
    ``FAMILY_BATCH_BYTES``, or ``NATIVE_FAMILY_BATCH_BYTES`` from the native generator; their
    splits likewise), and freed after the last chunk that needs it.

    Args:
        chunks: the planned chunks (``plan.Chunk``), in the order they will be cut.
    """

    def __init__(self, chunks):
        self.T, self.uses = defaultdict(int), defaultdict(int)
        last = None
        for c in chunks:
            for m in c.members:
                if m.run.task in FAMILY_DRAWS:
                    self.T[_family(m)] = max(self.T[_family(m)], m.run.T)
            if c.data_key != last:  # a chunk's data are made unless the last chunk's fit
                for f in {_family(m) for m in c.members}:
                    self.uses[f] += 1
            last = c.data_key
        self.seq, self.splits = {}, {}
        # every (family, val_frac, split) the chunks need, in plan order, with its split's sizes
        self.split_keys = {
            (_family(m), m.run.val_frac, m.run.split): _split_sizes(m.run) for c in chunks for m in c.members
        }

    @cached_property
    def prng(self):
        """``native.prng()``'s library, which makes the draws and splits (JAX's numbers, bit for
        bit, with no compilations), or None (JAX makes them); asked when first needed, so that
        a sweep of other tasks never builds it, and a worker's families made empty (``cluster``)
        still get it."""
        return native.prng()

    def covers(self, members: list[Member]) -> bool:
        return all(_family(m) in self.T for m in members)

    def _make(self, fams) -> None:
        by_shape = defaultdict(list)
        for f in dict.fromkeys(fams):
            if f not in self.seq:
                by_shape[self._shape(f)].append(f)
        for shape, fs in by_shape.items():
            # with the families later chunks will need, up to FAMILY_BATCH_BYTES: one call
            # (one compilation) for chunks that each need a few seeds (chunks of seeds)
            task, noise, signal_len, n, T = shape
            batch = FAMILY_BATCH_BYTES if self.prng is None else NATIVE_FAMILY_BATCH_BYTES
            most = max(len(fs), batch // (4 * n * T))
            later = (g for g in self.T if g not in self.seq and self.uses[g] > 0 and self._shape(g) == shape)
            fs = list(dict.fromkeys([*fs, *later]))[:most]
            if self.prng is not None:
                keys = _member_keys([f[4] for f in fs])
                R = len(fs)
                *draws, y = _prng_draws(
                    self.prng, task, keys, n, T, np.full(R, noise, np.float32), np.full(R, signal_len, np.int32)
                )
                a = draws[1] if task == "bit_relay" else [None] * R
                for i, f in enumerate(fs):
                    self.seq[f] = (draws[0][i], y[i], keys[i], a[i])
                continue
            # a stack the devices divide (an odd one ran on one core): repeats of the last seed
            seeds = [f[4] for f in fs] + [fs[-1][4]] * (-len(fs) % jax.local_device_count())
            keys = _member_keys(seeds)
            sharding = train.member_sharding(len(seeds))
            put = lambda a: jax.device_put(a, sharding)  # noqa: E731
            *draws, y, _ = _call(
                _chunk_sequences,
                (
                    put(keys),
                    put(np.full(len(seeds), T, np.int32)),
                    put(np.full(len(seeds), noise, np.float32)),
                    put(np.full(len(seeds), signal_len, np.int32)),
                ),
                dict(task=task, n=n, pad_to=T, draws=True),
            )
            y = _host_rows(y)
            if task == "latch":  # the sequences themselves, (N, T, 1)
                x = [r[..., 0] for r in _host_rows(draws[0])]
                a = [None] * len(seeds)
            else:  # bit_relay: the unit noise and the first signs
                x, a = _host_rows(draws[0]), _host_rows(draws[1])
            for i, f in enumerate(fs):
                self.seq[f] = (x[i], y[i], keys[i], a[i])

    def _shape(self, f) -> tuple:
        return f[:4] + (self.T[f],)

    def _sequences(self, m: Member) -> np.ndarray:
        """Member m's (N, >= T) sequences: its family's, or cut from its draws."""
        f = _family(m)
        x, y, _, a = self.seq[f]
        return x if a is None else _bit_relay_cut(x, a, y, m.run.T, m.run.noise, m.run.signal_len)

    def cut(self, members: list[Member], T_pad: int) -> train.Data:
        fams = [_family(m) for m in members]
        self._make(fams)
        lengths = np.array([m.run.T for m in members])
        x = native.Rows([self._sequences(m) for m in members], lengths, T_pad)  # padded by train.fit if needed
        y = np.stack([self.seq[f][1] for f in fams])
        mask = np.arange(T_pad)[None, :] >= T_pad - lengths[:, None]
        tr, va = self._splits(members, fams)
        for f in dict.fromkeys(fams):  # free what no later chunk needs
            self.uses[f] -= 1
            if self.uses[f] == 0:
                self.seq.pop(f, None)
                for k in [k for k in self.splits if k[0] == f]:
                    del self.splits[k]
        return train.Data(x, y, mask, tr, va)  # host arrays: ``train.fit`` places them

    def _splits(self, members, fams):
        keys = [(f, m.run.val_frac, m.run.split) for m, f in zip(members, fams)]
        missing = defaultdict(list)
        for k, m in zip(keys, members):
            if k not in self.splits:
                missing[_split_sizes(m.run)].append(k)
        for (n_val, n_pos), ks in missing.items():
            # with those of families already made that later chunks need (one call, not one a chunk)
            later = (
                k
                for k, sizes in self.split_keys.items()
                if k not in self.splits and k[0] in self.seq and sizes == (n_val, n_pos)
            )
            ks = list(dict.fromkeys([*ks, *later]))
            stack = (
                np.stack([self.seq[k[0]][2] for k in ks]),
                np.stack([self.seq[k[0]][1] for k in ks]),
                np.array([k[2] == "tail" for k in ks]),
            )
            if self.prng is not None:
                tr, va = _prng_splits(self.prng, *stack, n_val, n_pos)
            else:
                tr, va = _on_padded_stack(_chunk_splits, *stack, n_val=n_val, n_pos=n_pos)
            for i, k in enumerate(ks):
                self.splits[k] = (tr[i], va[i])
        return np.stack([self.splits[k][0] for k in keys]), np.stack([self.splits[k][1] for k in keys])


@partial(jax.jit, static_argnames=("model", "scheme", "names"), compiler_options=_QUICK_COMPILE)
def _init(keys, t_max, numbers, model, scheme, names):
    # numbers (R, len(names)): each member's explicit values, traced, so that members setting
    # the same parameters to other numbers share one compilation (the ablations' and the phase
    # diagram's variants: the explain report's 37 compilations of this became 15)
    return jax.vmap(lambda k, t, v: M.init(k, model, scheme, dict(zip(names, v)), t))(keys, t_max, numbers)


def init_members(members: list[Member]):
    """Stacked initial parameters (leading axis R), each from its member's own seed.

    Made natively where ``native.prng``'s library is loaded (``native_init``: no
    compilation), else by ``_init`` (host-side numpy between the few compiled calls: eager
    JAX ops cost milliseconds each); the same numbers either way.
    """
    model = members[0].run.model
    keys = _member_keys([m.seed for m in members])[:, 2]
    t_max = np.array([m.run.T for m in members], np.float32)
    subsets = defaultdict(list)
    for r, m in enumerate(members):
        subsets[(m.run.init, tuple(n for n, _ in m.run.values))].append(r)
    params = None
    so = native.prng(loaded=True)
    for (scheme, names), rs in subsets.items():
        numbers = np.array([[v for _, v in members[r].run.values] for r in rs], np.float32).reshape(len(rs), len(names))
        part = native_init(so, keys[rs], t_max[rs], numbers, model, scheme, names) if so is not None else None
        if part is None:
            # on one device: split over two host devices, the orthogonal initialiser's QR (a
            # LAPACK call XLA cannot partition) deadlocked XLA:CPU from 16 units on
            part = _on_padded_stack(
                _init, keys[rs], t_max[rs], numbers, split=False, model=model, scheme=scheme, names=names
            )
        if params is None:
            params = jax.tree.map(lambda a: np.zeros((len(members),) + a.shape[1:], a.dtype), part)
        for dst, src in zip(jax.tree.leaves(params), jax.tree.leaves(part)):
            dst[rs] = src
    return params


def native_inits(model, scheme: str, names: tuple[str, ...]) -> bool:
    """Whether ``native_init`` makes these members' parameters (else ``_init``, which also
    refuses what ``cells.init_params`` refuses)."""
    cell = model.cell
    if not all(cells.settable(cell, name) for name in names):
        return False
    if cell.units > 128:
        # up to LAPACK's crossover to blocked code (128 columns): beyond it a QR's numbers
        # depend on the workspace it is given, which JAX and scipy may choose otherwise
        return False
    if scheme == "chrono":
        return cell.kind in cells.CHRONO_RETAIN and cell.rsig == "sigmoid"
    return scheme in ("keras", "torch")


def native_init(so, keys, t_max, numbers, model, scheme: str, names: tuple[str, ...]):
    """``_init``'s parameters, bit for bit, made with ``native.prng``'s library ``so`` (JAX's
    Threefry keys and bits, its normal values as XLA computes them unoptimised, chrono's log
    of a uniform as XLA fuses them), numpy's float32 arithmetic (each operation rounded, as
    unoptimised XLA does) and the LAPACK routines JAX's QR calls on the CPU (scipy's
    ``sgeqrf`` and ``sorgqr``): on a cold start ``_init``'s compilation, 0.3-0.6 s a cell, was
    what a sweep's first chunk waited for. None where ``native_inits`` says no. Checked
    against ``_init`` with the library (``prng_differences``)."""
    if not native_inits(model, scheme, names):
        return None
    from scipy.linalg import get_lapack_funcs

    f32 = np.float32
    keys = np.ascontiguousarray(keys, np.uint32)
    R, cell = len(keys), model.cell
    H, G, F, n_out = cell.units, len(cell.gates), model.n_in, model.n_out
    GH = G * H

    def children(k, n):  # (R, 2) -> n arrays (R, 2): split(k, n)
        out = np.empty((R, n, 2), np.uint32)
        so.prng_children(R, _u32(np.ascontiguousarray(k)), n, _u32(out))
        return list(out.transpose(1, 0, 2))

    def bits(k, shape):
        out = np.empty((R, math.prod(shape)), np.uint32)
        so.prng_bits(R, _u32(np.ascontiguousarray(k)), out.shape[1], _u32(out))
        return out.reshape((R, *shape))

    def uniform(k, shape, lo, hi):  # jax.random.uniform
        lo, hi = f32(lo), f32(hi)
        u = ((bits(k, shape) >> np.uint32(9)) | np.uint32(0x3F800000)).view(f32) - f32(1.0)
        return np.maximum(lo, u * (hi - lo) + lo)

    def orthogonal(k, rows, cols):  # cells._orthogonal
        b = bits(k, (max(rows, cols), min(rows, cols)))
        a = np.empty(b.shape, f32)
        so.prng_normal_unfused(b.size, _u32(b), native._ptr(a))
        q = np.empty_like(a)
        geqrf, orgqr = get_lapack_funcs(("geqrf", "orgqr"), dtype=f32)  # sgeqrf, sorgqr
        for r in range(R):
            qr, tau, _, info = geqrf(a[r])
            q[r], _, info2 = orgqr(qr, tau)
            if info or info2:
                return None
            q[r] *= np.sign(np.diagonal(qr))[None, :]
        return q.transpose(0, 2, 1) if rows < cols else q

    def blocks(gate):
        k = cell.gates.index(gate)
        return slice(k * H, (k + 1) * H)

    def put(p, base, gate, value):  # cells._set, a value (R,) or (R, H) a member
        cols, v = blocks(gate), np.asarray(value, f32).reshape(R, -1)
        if base == "recurrent":
            p[base][:, :, cols] = v[:, :, None] * np.eye(H, dtype=f32)
        elif base == "bias" and cell.split_bias:
            p[base][:, 0, cols], p[base][:, 1, cols] = v, f32(0.0)
        elif base == "bias":
            p[base][:, cols] = v
        else:
            p[base][:, :, cols] = v[:, None, :]

    k_cell, k_head = children(keys, 2)
    lim = math.sqrt(6.0 / (H + n_out))
    head = {"bias": np.zeros((R, n_out), f32), "kernel": uniform(k_head, (H, n_out), -lim, lim)}
    k1, k2, k3, k4 = children(k_cell, 4)
    bias_shape = (2, GH) if cell.split_bias else (GH,)
    if scheme == "torch":
        lim = 1.0 / math.sqrt(H)
        bias = uniform(k3, bias_shape, -lim, lim)
        if not cell.split_bias:
            bias = bias + uniform(k4, bias_shape, -lim, lim)
        p = {"bias": bias, "kernel": uniform(k1, (F, GH), -lim, lim), "recurrent": uniform(k2, (H, GH), -lim, lim)}
    else:
        lim = math.sqrt(6.0 / (F + GH))
        p = {"bias": np.zeros((R, *bias_shape), f32), "kernel": uniform(k1, (F, GH), -lim, lim)}
        if (rec := orthogonal(k2, H, GH)) is None:
            return None
        p["recurrent"] = rec
        if "f" in cell.gates:
            put(p, "bias", "f", np.ones(R, f32))
    if scheme == "chrono":
        retain = cells.CHRONO_RETAIN[cell.kind]
        hi = np.maximum(np.asarray(t_max, f32) - f32(1.0), f32(1.0))
        b = np.empty((R, H), f32)
        so.prng_log_uniform(R, _u32(np.ascontiguousarray(k4)), H, 1.0, native._ptr(hi), native._ptr(b))
        put(p, "bias", retain, b)
        if cell.kind == "lstm":
            put(p, "bias", "i", -b)
    for j, name in enumerate(names):
        base, _, gate = name.partition("_")
        for g in [gate] if gate else cell.gates:
            put(p, base, g, numbers[:, j])
    return {"cell": p, "head": head}
