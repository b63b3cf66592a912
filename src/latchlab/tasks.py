"""Tasks: pure generators of ``(x, y)`` from a PRNG key, and train/validation splits.

Every generator returns ``x`` (N, T, 1) float32 and ``y`` (N,) int32 with balanced classes
in random order (a generator never orders examples by class).
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


@partial(jax.jit, static_argnames=("n", "T", "signal_len"))
def latch(key, n: int, T: int, noise=0.1, signal_len: int = 1):
    """Information latching (Bengio et al. 1994, as the seed ran it).

    ``x_t = s_t + e_t`` with ``s_t = +1`` (y = 1) or ``-1`` (y = 0) for ``t < signal_len``,
    ``s_t = 0`` after, and ``e_t ~ N(0, noise^2)``. The label is the class of the start.
    """
    k_y, k_e = jax.random.split(key)
    y = _balanced_labels(k_y, n)
    sign = 2.0 * y - 1.0  # (N,)
    s = jnp.where(jnp.arange(T)[None, :] < signal_len, sign[:, None], 0.0)  # (N, T)
    x = s + noise * jax.random.normal(k_e, (n, T))
    return x[..., None].astype(jnp.float32), y


@partial(jax.jit, static_argnames=("n", "T", "signal_len"))
def bit_relay(key, n: int, T: int, noise=0.1, signal_len: int = 1):
    """Bit relay (the seed answer's "task 2").

    Signs ``a`` at ``t = 0`` and ``b`` at ``t = floor(T/2)`` (each held ``signal_len`` steps),
    each ±1 at random, Gaussian noise of std ``noise`` everywhere; ``y = 1`` iff ``a == b``.
    """
    k_y, k_a, k_e = jax.random.split(key, 3)
    y = _balanced_labels(k_y, n)
    a = jnp.where(jax.random.bernoulli(k_a, 0.5, (n,)), 1.0, -1.0)
    b = jnp.where(y == 1, a, -a)
    t = jnp.arange(T)[None, :]
    s = (jnp.where(t < signal_len, a[:, None], 0.0)
         + jnp.where((t >= T // 2) & (t < T // 2 + signal_len), b[:, None], 0.0))
    x = s + noise * jax.random.normal(k_e, (n, T))
    return x[..., None].astype(jnp.float32), y


GENERATORS = {"latch": latch, "bit_relay": bit_relay}


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
        ``(train_idx, val_idx)`` as numpy int arrays.
    """
    if how not in SPLITS:
        raise ConfigError("split", f"unknown split {how!r}", SPLITS)
    if not 0.0 < val_frac < 1.0:
        raise ConfigError("val_frac", f"must be in (0, 1), got {val_frac!r}")
    y = np.asarray(y)
    n = len(y)
    if how == "tail":
        order = np.concatenate([np.flatnonzero(y == 1), np.flatnonzero(y == 0)])
        at = int(n * (1.0 - val_frac))
        return order[:at], order[at:]
    perm = np.asarray(jax.random.permutation(key, n))
    n_val = n - int(n * (1.0 - val_frac))  # the same size as Keras' (and ``tail``'s)
    n_pos = int(round(n_val * np.mean(y == 1)))
    val = np.sort(np.concatenate([perm[y[perm] == 1][:n_pos], perm[y[perm] == 0][:n_val - n_pos]]))
    train = np.setdiff1d(np.arange(n), val)
    return train, val
