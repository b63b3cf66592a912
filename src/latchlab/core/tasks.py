"""Tasks: pure generators of ``(x, y)`` from a PRNG key, and train/validation splits.

Classification tasks (``latch``, ``bit_relay``, ``two_sequence``, ``two_sequence_3b``,
``parity``) return ``x`` (N, T, 1) float32 and ``y`` (N,) int32 with balanced classes in
random order (a generator never orders examples by class). ``adding`` returns ``x``
(N, T, 2) and a float32 regression target ``y`` (N,); ``copy`` returns one-hot ``x``
(N, T, 10) and per-step int32 targets ``y`` (N, T) (-1 on left-padding steps). What each
task's target is, and so which heads fit it, is in ``TARGETS``; its input width in
``N_IN``. docs/tasks.md has every definition, metric and baseline.

The noise of step ``t`` is drawn from ``fold_in(key, t)``, so a sequence does not depend on
how long it is cut: with the same key, the length-T data are the first T steps of the
length-T' data (T < T'), and ``pad_to`` can left-pad inside the generator (for ensembles
of mixed lengths) without changing a single value. (``two_sequence`` and ``parity`` keep
the second property, not the first: their sequences' lengths and last signs depend on T.)
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

# the catalogue (names, targets, input widths, copy's alphabet) and ``check`` live in the
# JAX-free ``catalog``, so that configs validate without importing this module
# the catalogue's names are re-exported here (``tasks.TASKS`` and so on)
from latchlab.core import catalog
from latchlab.core.catalog import (  # noqa: F401
    COPY_BLANK,
    COPY_CATEGORIES,
    COPY_DELIMITER,
    COPY_LEN,
    COPY_SYMBOLS,
    N_IN,
    SPLITS,
    TARGETS,
    TASKS,
    check,
    two_sequence_min_length,
)
from latchlab.errors import ConfigError

# H&S 1997's criterion for the adding problem: a sequence is solved if |error| < 0.04
ADDING_TOLERANCE = 0.04


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


def latch(key, n: int, T, noise=catalog.NOISE["latch"], signal_len=1, pad_to: int | None = None):
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


def _bit_relay_draws(key, n, T, noise, signal_len, pad_to):
    """Bit relay's random draws: the unit noise ``e`` (n, pad_to), the first signs ``a`` (n,)
    and the labels ``y`` (n,). Only the noise depends on T, as a prefix."""
    k_y, k_a, k_e = jax.random.split(key, 3)
    y = _balanced_labels(k_y, n)
    a = jnp.where(jax.random.bernoulli(k_a, 0.5, (n,)), 1.0, -1.0)
    return _noise(k_e, n, T, pad_to), a, y


def bit_relay_signals(a, y, s, valid, T, signal_len, xp=jnp):
    """The signs of bit relay at steps ``s`` (valid where ``valid``) of length-T sequences:
    ``a`` for ``s < signal_len``, ``b = a`` (y = 1) or ``-a`` (y = 0) for ``floor(T/2) <= s <
    floor(T/2) + signal_len``, 0 elsewhere; (n, len(s)). ``xp``: jax.numpy or numpy (the host
    cuts a seed's longest draws for every length, ``engine.data.Families``)."""
    b = xp.where(y == 1, a, -a)
    half = T // 2
    first = (valid & (s < signal_len)).astype(xp.float32)[None, :]
    second = (valid & (s >= half) & (s < half + signal_len)).astype(xp.float32)[None, :]
    return first * a[:, None] + second * b[:, None]


@partial(jax.jit, static_argnames=("n", "pad_to"))
def _bit_relay(key, n, T, noise, signal_len, pad_to):
    e, a, y = _bit_relay_draws(key, n, T, noise, signal_len, pad_to)
    s, valid = _steps(T, pad_to)
    x = bit_relay_signals(a, y, s, valid, T, signal_len) + noise * e
    return x[..., None].astype(jnp.float32), y


def bit_relay(key, n: int, T, noise=catalog.NOISE["bit_relay"], signal_len=1, pad_to: int | None = None):
    """Bit relay (the seed answer's "task 2").

    Signs ``a`` at ``t = 0`` and ``b`` at ``t = floor(T/2)`` (each held ``signal_len`` steps),
    each ±1 at random, Gaussian noise of std ``noise`` everywhere; ``y = 1`` iff ``a == b``.
    Arguments as for ``latch``.
    """
    return _bit_relay(key, n, T, noise, signal_len, _padded(T, pad_to))


def _two_sequence_layout(key, n, T, pad_to):
    """Each sequence's step index ``(n, pad_to)``: negative before its own start.

    Sequence ``i`` has length ``T_i`` uniform in ``[two_sequence_min_length(T), T]`` and
    ends at the last position; it starts ``T - T_i`` steps after the length-T frame does.
    """
    t_min = two_sequence_min_length(T)
    extra = jax.random.randint(key, (n,), 0, T - t_min + 1)  # T - T_i
    s, _ = _steps(T, pad_to)
    return s[None, :] - extra[:, None]


def two_sequence_valid(key, n: int, T, pad_to: int | None = None):
    """``(n, pad_to or T)`` bool: the steps that belong to each ``two_sequence`` sequence
    (False on the leading zeros of the shorter ones and in any padding). Same ``key`` as
    the generator. A trainer with per-sequence masks (``latchlab.experiments.guessing``) uses it to run
    every sequence over its own length exactly."""
    pad_to = _padded(T, pad_to)
    return _two_sequence_layout(jax.random.split(key, 3)[2], n, T, pad_to) >= 0


@partial(jax.jit, static_argnames=("n", "pad_to", "noisy_signal"))
def _two_sequence(key, n, T, noise, signal_len, pad_to, noisy_signal=False):
    k_y, k_e, k_len = jax.random.split(key, 3)
    y = _balanced_labels(k_y, n)
    sign = 2.0 * y - 1.0  # (N,)
    rel = _two_sequence_layout(k_len, n, T, pad_to)  # (N, T) step within each sequence
    signal = jnp.where((rel >= 0) & (rel < signal_len), 1.0, 0.0) * sign[:, None]
    noisy = rel >= (0 if noisy_signal else signal_len)
    x = signal + jnp.where(noisy, noise * _noise(k_e, n, T, pad_to), 0.0)
    return x[..., None].astype(jnp.float32), y


def two_sequence(key, n: int, T, noise=catalog.NOISE["two_sequence"], signal_len=1, pad_to: int | None = None):
    """The 2-sequence problem (Hochreiter & Schmidhuber 1997, task 3a).

    Sequence ``i`` has its own length ``T_i``, uniform in ``[T - floor(T/11), T]`` (H&S's
    ``[T0, T0 + T0/10]`` with ``T = 1.1 T0``). Its first ``signal_len`` (H&S's ``N``)
    elements are ``+1`` (y = 1) or ``-1`` (y = 0), the rest Gaussian noise of std ``noise``
    (H&S: variance 0.2, the default). The label is read at the end.

    Variable lengths in one array: every sequence *ends* at the last step, and the
    ``T - T_i`` steps before a shorter sequence starts are noise-free zeros. For a cell
    whose state stays at its initial value on a zero input (a zero-bias SRNN, any cell
    at 0 with zero biases) this is exactly a sequence of length ``T_i``; for a cell with
    biases, the leading zeros move the state from 0 towards the cell's input-free fixed
    point before the signal arrives (at most ``floor(T/11)`` steps). The sweep engine has
    one valid-step mask per member, not per sequence, so it sees these zeros; a trainer
    with per-sequence masks can skip them with ``two_sequence_valid``.

    Args:
        key: PRNG key. n: sequences. T: longest length (may be traced with ``pad_to``).
        noise: noise std. signal_len: class-carrying steps N.
        pad_to: left-pad every sequence with zeros to this length.
    Returns:
        ``x`` (n, pad_to or T, 1), ``y`` (n,).
    """
    return _two_sequence(key, n, T, noise, signal_len, _padded(T, pad_to))


def _two_sequence_3b(key, n, T, noise, signal_len, pad_to):
    return _two_sequence(key, n, T, noise, signal_len, pad_to, noisy_signal=True)


def two_sequence_3b(key, n: int, T, noise=catalog.NOISE["two_sequence_3b"], signal_len=1, pad_to: int | None = None):
    """H&S 1997 task 3b: ``two_sequence`` with the noise on the signal steps too
    (``x_t = ±1 + e_t`` for the first ``signal_len`` steps). Arguments as ``two_sequence``."""
    return _two_sequence_3b(key, n, T, noise, signal_len, _padded(T, pad_to))


@partial(jax.jit, static_argnames=("n", "pad_to"))
def _parity(key, n, T, noise, signal_len, pad_to):
    del signal_len  # every step carries signal
    k_y, k_b, k_e = jax.random.split(key, 3)
    y = _balanced_labels(k_y, n)
    s, valid = _steps(T, pad_to)
    bits = jax.vmap(lambda t: jax.random.bernoulli(jax.random.fold_in(k_b, t), 0.5, (n,)))(
        jnp.maximum(s, 0)
    ).T  # (N, T) True = +1
    free = valid & (s < T - 1)  # the last step is set so that the parity is y's
    odd = (jnp.sum(bits & free[None, :], axis=1) % 2) == 1
    bits = jnp.where((s == T - 1)[None, :], (odd != (y == 1))[:, None], bits)
    e = jax.vmap(lambda t: jax.random.uniform(jax.random.fold_in(k_e, t), (n,), minval=-1.0, maxval=1.0))(
        jnp.maximum(s, 0)
    ).T
    x = jnp.where(valid[None, :], jnp.where(bits, 1.0, -1.0) + noise * e, 0.0)
    return x[..., None].astype(jnp.float32), y


def parity(key, n: int, T, noise=catalog.NOISE["parity"], signal_len=1, pad_to: int | None = None):
    """Parity (Bengio et al. 1994; Hochreiter & Schmidhuber 1996).

    ``x_t = b_t + u_t`` with ``b_t = ±1`` and ``u_t`` uniform in ``[-noise, noise]``
    (Bengio's noisy variant: ``noise = 0.2``; default none). ``y = 1`` iff the number of
    ``+1`` among the ``b_t`` is odd. The first ``T - 1`` signs are fair coins, the last is
    the one that gives the sequence its (balanced) label: so each sequence is uniform among
    the sequences of its parity. ``noise`` here is a half-width, not a std; ``signal_len``
    is ignored (every step counts).

    Returns:
        ``x`` (n, pad_to or T, 1), ``y`` (n,).
    """
    return _parity(key, n, T, noise, signal_len, _padded(T, pad_to))


@partial(jax.jit, static_argnames=("n", "pad_to"))
def _adding(key, n, T, noise, signal_len, pad_to):
    del noise, signal_len  # no noise: the values are the distractors
    k_v, k_a, k_b = jax.random.split(key, 3)
    s, valid = _steps(T, pad_to)
    v = jax.vmap(lambda t: jax.random.uniform(jax.random.fold_in(k_v, t), (n,)))(jnp.maximum(s, 0)).T
    v = jnp.where(valid[None, :], v, 0.0)  # (N, T) values in [0, 1)
    half = T // 2
    a = jax.random.randint(k_a, (n,), 0, half)  # first marker in the first half
    b = jax.random.randint(k_b, (n,), half, T)  # second marker in the second half
    marked = (s[None, :] == a[:, None]) | (s[None, :] == b[:, None])  # (N, T)
    y = jnp.sum(jnp.where(marked, v, 0.0), axis=1)  # exactly v_a + v_b: the rest are zeros
    x = jnp.stack([v, marked.astype(v.dtype)], axis=-1)
    return x.astype(jnp.float32), y.astype(jnp.float32)


def adding(key, n: int, T, noise=catalog.NOISE["adding"], signal_len=1, pad_to: int | None = None):
    """The adding problem (Hochreiter & Schmidhuber 1997, experiment 4, in the form of
    Le et al. 2015 and Arjovsky et al. 2016).

    Two input channels per step: a value ``v_t ~ U[0, 1)`` and a marker ``m_t``, which is 1
    at exactly two steps, ``a`` uniform in ``[0, floor(T/2))`` and ``b`` uniform in
    ``[floor(T/2), T)``, and 0 elsewhere. The target is the regression value
    ``y = v_a + v_b``. Predicting the mean, ``y_hat = 1``, has the baseline mean squared
    error ``Var(v_a + v_b) = 1/6`` (``ADDING_BASELINE``).

    Choices, where versions of the task differ: values in [0, 1] (H&S 1997 drew them from
    [-1, 1], marked the first pair element among the first 10 steps, and regressed
    ``0.5 + (v_a + v_b) / 4``); one length T for every sequence (H&S drew it from
    ``[T, 1.1 T]``). ``noise`` and ``signal_len`` are ignored. Value ``t`` is drawn from
    ``fold_in(key, t)``; the markers depend on T.

    Args:
        key: PRNG key. n: sequences. T: length >= 2 (may be traced with ``pad_to``).
        pad_to: left-pad every sequence with zeros (both channels) to this length.
    Returns:
        ``x`` (n, pad_to or T, 2) ``[value, marker]``, ``y`` (n,) float32.
    """
    return _adding(key, n, T, noise, signal_len, _padded(T, pad_to))


@partial(jax.jit, static_argnames=("n", "pad_to"))
def _copy(key, n, T, noise, signal_len, pad_to):
    del noise, signal_len
    s, valid = _steps(T, pad_to)
    d = jax.random.randint(key, (n, COPY_LEN), 1, COPY_SYMBOLS + 1)  # (N, 10) symbols 1..8
    recall = T - COPY_LEN  # first step of the recall
    shown = d[:, jnp.clip(s, 0, COPY_LEN - 1)]  # (N, T) the symbol shown at step s < 10
    cue = jnp.where(s == recall - 1, COPY_DELIMITER, COPY_BLANK)
    x_cat = jnp.where((s >= 0) & (s < COPY_LEN), shown, cue[None, :])
    x = jnp.where(valid[None, :, None], jax.nn.one_hot(x_cat, COPY_CATEGORIES, dtype=jnp.float32), 0.0)
    target = d[:, jnp.clip(s - recall, 0, COPY_LEN - 1)]  # (N, T)
    y = jnp.where((s >= recall)[None, :], target, COPY_BLANK)
    y = jnp.where(valid[None, :], y, -1)  # padding steps have no target
    return x, y.astype(jnp.int32)


def copy(key, n: int, T, noise=catalog.NOISE["copy"], signal_len=1, pad_to: int | None = None):
    """Copy memory (Arjovsky, Shah & Bengio 2016), parameterised by its total length.

    Categories: blank 0, data symbols 1..8, delimiter 9, given one-hot (10 channels). With
    ``D = T - 20`` (the paper's T): 10 data symbols drawn uniformly from 1..8, then
    ``D - 1`` blanks, the delimiter, and 10 blanks; the target is blank at the first
    ``T - 10`` steps and the 10 data symbols, in order, at the last 10. The loss is the
    cross-entropy of every step; the baseline that outputs blanks and then guesses a
    uniform symbol has loss ``10 log 8 / T`` (``copy_baseline``).

    ``T`` here is the whole sequence length (what the sweep engine pads and masks), so
    ``T >= 21``. ``noise`` and ``signal_len`` are ignored.

    Args:
        key: PRNG key. n: sequences. T: total length (may be traced with ``pad_to``).
        pad_to: left-pad to this length: zero input vectors (not blanks) and target -1.
    Returns:
        ``x`` (n, pad_to or T, 10) one-hot float32, ``y`` (n, pad_to or T) int32.
    """
    return _copy(key, n, T, noise, signal_len, _padded(T, pad_to))


ADDING_BASELINE = 1.0 / 6.0


def copy_baseline(T):
    """Copy's baseline loss, ``10 log 8 / T``: blanks with certainty for ``T - 10`` steps,
    then each of the 8 symbols with probability 1/8 (T the total length)."""
    return COPY_LEN * float(np.log(COPY_SYMBOLS)) / T


def baseline_loss(task: str, T: int) -> float:
    """The loss of the best input-blind predictor, the yardstick for ``val_loss``:
    ``log 2`` (balanced classes, dense2 head), ``1/6`` (adding: predict 1), or
    ``10 log 8 / T`` (copy)."""
    if task == "adding":
        return ADDING_BASELINE
    if task == "copy":
        return copy_baseline(T)
    return float(np.log(2.0))


GENERATORS = {
    "latch": latch,
    "bit_relay": bit_relay,
    "two_sequence": two_sequence,
    "two_sequence_3b": two_sequence_3b,
    "parity": parity,
    "adding": adding,
    "copy": copy,
}
# the compiled forms, ``(key, n, T, noise, signal_len, pad_to)`` with T traceable
PADDED = {
    "latch": _latch,
    "bit_relay": _bit_relay,
    "two_sequence": _two_sequence,
    "two_sequence_3b": _two_sequence_3b,
    "parity": _parity,
    "adding": _adding,
    "copy": _copy,
}


def generate(task: str, key, n: int, T: int, noise: float | None = None, signal_len: int = 1):
    """``(x, y)`` for a task by name; see the generators for the definitions. ``noise``:
    the task's default (``catalog.NOISE``) if ``None``."""
    noise = catalog.NOISE.get(task, 0.0) if noise is None else noise
    check(task, T, noise, signal_len, n)
    return GENERATORS[task](key, n, T, noise, signal_len)


def split_indices(key, y, val_frac: float = 0.2, how: str = "stratified"):
    """Indices of the training and validation sets.

    ``stratified``: a random subset of each class, in proportion to the classes, goes to
    validation; its size is Keras', ``N - int(N (1 - val_frac))``, as for ``tail``.
    ``tail``: Keras' ``validation_split`` on data ordered as the seed ordered it (all
    positives first): validation is the last ``N - int(N (1 - val_frac))`` examples, so with
    balanced classes it holds only negatives. This reproduces the seed's bug on purpose.

    Targets that are not 0/1 labels (``adding``'s floats, ``copy``'s sequences) have no
    classes to stratify: ``stratified`` is then a plain shuffled split and ``tail`` the last
    examples in the generator's (random) order, Keras' ``validation_split`` as such.

    Args:
        key: PRNG key (unused by ``tail``).
        y: (N,) labels, or (N, ...) targets (numpy or jax).
    Returns:
        ``(train_idx, val_idx)`` as numpy int arrays, each sorted.
    """
    if how not in SPLITS:
        raise ConfigError("split", f"unknown split {how!r}", SPLITS)
    if not 0.0 < val_frac < 1.0:
        raise ConfigError("val_frac", f"must be in (0, 1), got {val_frac!r}")
    y_np = np.asarray(y)
    labels = y_np.ndim == 1 and bool(np.isin(y_np, (0, 1)).all())
    y = jnp.asarray(y_np, jnp.int32) if labels else jnp.asarray(y_np)
    n_val = len(y) - int(len(y) * (1.0 - val_frac))
    n_pos = int(round(n_val * float(np.mean(y_np == 1)))) if labels else 0
    tr, va = split(key, y, n_val, n_pos, how == "tail")
    return np.asarray(tr), np.asarray(va)


@partial(jax.jit, static_argnames=("n_val", "n_pos"))
def split(key, y, n_val: int, n_pos: int, tail):
    """``split_indices`` as a traceable function (``tail`` may be a traced bool).

    Integer (N,) labels are split by class as ``split_indices`` says; any other target (a
    float dtype or more axes: regression and sequence tasks) by position only, ignoring
    ``n_pos``: ``stratified`` takes the first ``n_val`` of a random permutation, ``tail``
    the last ``n_val`` examples.

    Args:
        y: (N,) labels or (N, ...) targets; n_val: validation size; n_pos: positives in a
        stratified validation set; tail: use the ``tail`` split.
    Returns:
        sorted ``(train (N - n_val,), val (n_val,))`` index arrays.
    """
    n = y.shape[0]
    if y.ndim != 1 or not jnp.issubdtype(y.dtype, jnp.integer):
        perm = jax.random.permutation(key, n)
        shuffled_val = jnp.zeros(n, bool).at[perm[:n_val]].set(True)
        is_val = jnp.where(tail, jnp.arange(n) >= n - n_val, shuffled_val)
        return jnp.nonzero(~is_val, size=n - n_val)[0], jnp.nonzero(is_val, size=n_val)[0]
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
