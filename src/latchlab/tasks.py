"""Tasks: pure generators of ``(x, y)`` from a PRNG key, and train/validation splits.

Every generator returns ``x`` (N, T, 1) float32 and ``y`` (N,) int32 with balanced classes
in random order (a generator never orders examples by class).

The noise of step ``t`` is drawn from ``fold_in(key, t)``, so a sequence does not depend on
how long it is cut: with the same key, the length-T data are the first T steps of the
length-T' data (T < T'), and ``pad_to`` can left-pad inside the generator (for ensembles
of mixed lengths) without changing a single value.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from latchlab.errors import ConfigError

TASKS = ("latch", "bit_relay")
SPLITS = ("stratified", "tail")


def _balanced_labels(key, n):
    return jax.random.permutation(key, jnp.arange(n, dtype=jnp.int32) % 2)


def _steps(T, pad_to):
    """Step index of every padded position (negative in the padding) and the valid mask."""
    s = jnp.arange(pad_to) - (pad_to - T)
    return s, s >= 0


def _noise(key, n, T, pad_to):
    """(n, pad_to) Gaussian noise, step t drawn from ``fold_in(key, t)``; 0 in the padding."""
    s, valid = _steps(T, pad_to)
    e = jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (n,)))(jnp.maximum(s, 0))
    return jnp.where(valid[:, None], e, 0.0).T


def _padded(T, pad_to):
    if pad_to is None:
        if not isinstance(T, int):
            raise ConfigError("pad_to", "a traced length needs a static pad_to")
        return T
    return pad_to


@partial(jax.jit, static_argnames=("n", "pad_to"))
def _latch(key, n, T, noise, signal_len, pad_to):
    k_y, k_e = jax.random.split(key)
    y = _balanced_labels(k_y, n)
    sign = 2.0 * y - 1.0  # (N,)
    s, valid = _steps(T, pad_to)
    signal = jnp.where(valid & (s < signal_len), 1.0, 0.0)[None, :] * sign[:, None]  # (N, T)
    x = signal + noise * _noise(k_e, n, T, pad_to)
    return x[..., None].astype(jnp.float32), y


def latch(key, n: int, T, noise=0.1, signal_len=1, pad_to: int | None = None):
    """Information latching (Bengio et al. 1994, as the seed ran it).

    ``x_t = s_t + e_t`` with ``s_t = +1`` (y = 1) or ``-1`` (y = 0) for ``t < signal_len``,
    ``s_t = 0`` after, and ``e_t ~ N(0, noise^2)``. The label is the class of the start.

    Args:
        key: PRNG key. n: sequences. T: length (may be traced when ``pad_to`` is given).
        noise: noise std. signal_len: signal steps.
        pad_to: left-pad every sequence with zeros to this length.
    Returns:
        ``x`` (n, pad_to or T, 1), ``y`` (n,).
    """
    return _latch(key, n, T, noise, signal_len, _padded(T, pad_to))


@partial(jax.jit, static_argnames=("n", "pad_to"))
def _bit_relay(key, n, T, noise, signal_len, pad_to):
    k_y, k_a, k_e = jax.random.split(key, 3)
    y = _balanced_labels(k_y, n)
    a = jnp.where(jax.random.bernoulli(k_a, 0.5, (n,)), 1.0, -1.0)
    b = jnp.where(y == 1, a, -a)
    s, valid = _steps(T, pad_to)
    half = T // 2
    first = (valid & (s < signal_len)).astype(jnp.float32)[None, :]
    second = (valid & (s >= half) & (s < half + signal_len)).astype(jnp.float32)[None, :]
    x = first * a[:, None] + second * b[:, None] + noise * _noise(k_e, n, T, pad_to)
    return x[..., None].astype(jnp.float32), y


def bit_relay(key, n: int, T, noise=0.1, signal_len=1, pad_to: int | None = None):
    """Bit relay (the seed answer's "task 2").

    Signs ``a`` at ``t = 0`` and ``b`` at ``t = floor(T/2)`` (each held ``signal_len`` steps),
    each ±1 at random, Gaussian noise of std ``noise`` everywhere; ``y = 1`` iff ``a == b``.
    Arguments as for ``latch``.
    """
    return _bit_relay(key, n, T, noise, signal_len, _padded(T, pad_to))


GENERATORS = {"latch": latch, "bit_relay": bit_relay}
# the compiled forms, ``(key, n, T, noise, signal_len, pad_to)`` with T traceable
PADDED = {"latch": _latch, "bit_relay": _bit_relay}


def check(task: str, T: int, noise: float, signal_len: int, n: int | None = None) -> None:
    """Raise ``ConfigError`` naming the first field out of range."""
    if task not in GENERATORS:
        raise ConfigError("task", f"unknown task {task!r}", TASKS)
    if not isinstance(T, int) or T < 1:
        raise ConfigError("T", f"sequence length must be an integer >= 1, got {T!r}")
    if not noise >= 0:
        raise ConfigError("noise", f"noise std must be >= 0, got {noise!r}")
    if not isinstance(signal_len, int) or signal_len < 1:
        raise ConfigError("signal_len", f"must be an integer >= 1, got {signal_len!r}")
    need = signal_len if task == "latch" else max(2 * signal_len, 2)
    if T < need:
        raise ConfigError("T", f"{task} with signal_len={signal_len} needs T >= {need}, got {T}")
    if n is not None and (not isinstance(n, int) or n < 4):
        raise ConfigError("N", f"number of sequences must be an integer >= 4, got {n!r}")


def generate(task: str, key, n: int, T: int, noise: float = 0.1, signal_len: int = 1):
    """``(x, y)`` for a task by name; see the generators for the definitions."""
    check(task, T, noise, signal_len, n)
    return GENERATORS[task](key, n, T, noise, signal_len)


def split_indices(key, y, val_frac: float = 0.2, how: str = "stratified"):
    """Indices of the training and validation sets.

    ``stratified``: a random subset of each class, in proportion to the classes, goes to
    validation; its size is Keras', ``N - int(N (1 - val_frac))``, as for ``tail``.
    ``tail``: Keras' ``validation_split`` on data ordered as the seed ordered it (all
    positives first): validation is the last ``N - int(N (1 - val_frac))`` examples, so with
    balanced classes it holds only negatives. This reproduces the seed's bug on purpose.

    Args:
        key: PRNG key (unused by ``tail``).
        y: (N,) labels (numpy or jax).
    Returns:
        ``(train_idx, val_idx)`` as numpy int arrays, each sorted.
    """
    if how not in SPLITS:
        raise ConfigError("split", f"unknown split {how!r}", SPLITS)
    if not 0.0 < val_frac < 1.0:
        raise ConfigError("val_frac", f"must be in (0, 1), got {val_frac!r}")
    y = jnp.asarray(y, jnp.int32)
    n_val = len(y) - int(len(y) * (1.0 - val_frac))
    n_pos = int(round(n_val * float(np.mean(np.asarray(y) == 1))))
    tr, va = split(key, y, n_val, n_pos, how == "tail")
    return np.asarray(tr), np.asarray(va)


@partial(jax.jit, static_argnames=("n_val", "n_pos"))
def split(key, y, n_val: int, n_pos: int, tail):
    """``split_indices`` as a traceable function (``tail`` may be a traced bool).

    Args:
        y: (N,) labels; n_val: validation size; n_pos: positives in a stratified
        validation set; tail: use the ``tail`` split.
    Returns:
        sorted ``(train (N - n_val,), val (n_val,))`` index arrays.
    """
    n = y.shape[0]
    # tail: rank in the seed's order (positives first, stably), last n_val go to validation
    pos = y == 1
    rank = jnp.where(pos, jnp.cumsum(pos) - 1, pos.sum() + jnp.cumsum(~pos) - 1)
    tail_val = rank >= n - n_val
    # stratified: the first n_pos positives and n_val - n_pos negatives of a permutation
    perm = jax.random.permutation(key, n)
    yp = y[perm] == 1
    take = jnp.where(yp, jnp.cumsum(yp) <= n_pos, jnp.cumsum(~yp) <= n_val - n_pos)
    strat_val = jnp.zeros(n, bool).at[perm].set(take)
    is_val = jnp.where(tail, tail_val, strat_val)
    return jnp.nonzero(~is_val, size=n - n_val)[0], jnp.nonzero(is_val, size=n_val)[0]
