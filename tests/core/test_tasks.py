"""Reference tests for ``latchlab.core.tasks`` and the configuration errors around it.

* ``latch`` and ``bit_relay`` written out from their definitions in SCIENCE.md: exact
  signals with ``noise = 0``, the noise exactly additive and Gaussian of the given std,
  balanced classes in random order.
* ``split_indices``: ``tail`` equals Keras' own ``validation_split`` applied to the seed's
  class-ordered arrays (hence an all-negative validation set, a 62.5 % positive training
  set at N = 10000); ``stratified`` is class-balanced, of Keras' size, and a partition.
* Bad values raise ``ConfigError`` whose message starts with the field's name.
"""

from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest

from latchlab import config
from latchlab.core import tasks
from latchlab.errors import ConfigError

KEY = jax.random.PRNGKey(0)


# ----------------------------------------------------------------------------- latch


@pytest.mark.parametrize("signal_len", [1, 3])
def test_latch_signal_is_the_label_sign_then_zero(signal_len):
    n, T = 400, 12
    x0, y0 = map(np.asarray, tasks.latch(KEY, n, T, 0.0, signal_len))
    assert x0.shape == (n, T, 1) and x0.dtype == np.float32 and y0.dtype == np.int32
    sign = np.where(y0 == 1, 1.0, -1.0)[:, None]
    np.testing.assert_array_equal(x0[:, :signal_len, 0], np.broadcast_to(sign, (n, signal_len)))
    np.testing.assert_array_equal(x0[:, signal_len:, 0], 0.0)


def test_latch_noise_is_additive_gaussian_with_the_given_std():
    """Same key: ``x(sigma) = x(0) + sigma * e`` with one ``e ~ N(0, 1)`` for every sigma."""
    n, T = 2000, 10
    x0, y0 = map(np.asarray, tasks.latch(KEY, n, T, 0.0))
    x1, y1 = map(np.asarray, tasks.latch(KEY, n, T, 0.1))
    x3, y3 = map(np.asarray, tasks.latch(KEY, n, T, 0.3))
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(y3, y0)
    e = (x1 - x0) / 0.1
    np.testing.assert_allclose((x3 - x0) / 0.3, e, atol=1e-5)
    # x[:, 0] = +-1 + noise with the label's sign
    np.testing.assert_allclose(x1[:, 0, 0], np.where(y0 == 1, 1.0, -1.0) + 0.1 * e[:, 0, 0], atol=1e-6)
    assert (np.sign(x1[:, 0, 0]) == np.where(y0 == 1, 1.0, -1.0)).all()
    # e ~ N(0, 1), i.i.d. over examples and steps: moments within ~5 standard errors
    m = e.size
    assert abs(e.mean()) < 5 / np.sqrt(m)
    assert abs(e.std() - 1.0) < 5 / np.sqrt(2 * m)
    assert abs(np.corrcoef(e[:, 0, 0], e[:, 1, 0])[0, 1]) < 5 / np.sqrt(n)
    assert abs(np.corrcoef(e[:, 0, 0], y0)[0, 1]) < 5 / np.sqrt(n)  # the noise ignores the label


@pytest.mark.parametrize(
    "gen, n, T", [(tasks.latch, 7, 3), (tasks.latch, 2000, 10), (tasks.bit_relay, 7, 3), (tasks.bit_relay, 1000, 6)]
)
def test_classes_balanced_and_not_class_ordered(gen, n, T):
    _, y = gen(KEY, n, T)
    y = np.asarray(y)
    assert set(np.unique(y)) <= {0, 1}
    assert y.sum() == n // 2  # exactly balanced (the odd one out is a negative)
    if n >= 100:
        assert not (np.all(np.diff(y) >= 0) or np.all(np.diff(y) <= 0))  # not sorted
        # not ordered by class in any block sense either: each half is close to balanced
        for half in (y[: n // 2], y[n // 2 :]):
            assert abs(half.mean() - 0.5) < 0.15
        assert 0.3 < np.mean(y[1:] != y[:-1]) < 0.7  # label changes as often as a coin's


def test_different_keys_give_different_orders():
    ys = [np.asarray(tasks.latch(jax.random.PRNGKey(s), 64, 5)[1]) for s in range(4)]
    assert len({y.tobytes() for y in ys}) == 4


# ----------------------------------------------------------------------------- bit_relay


@pytest.mark.parametrize("T, signal_len", [(T, 1) for T in (2, 3, 4, 7)] + [(8, 2), (9, 3)])
def test_bit_relay_exhaustive_small_cases(T, signal_len):
    """noise = 0: ``x[t] = a`` for ``t < L``, ``b`` for ``T//2 <= t < T//2 + L``, else 0;
    ``y = 1`` iff ``a == b``; all four ``(a, b)`` combinations occur, in balanced labels."""
    n = 64
    x, y = map(np.asarray, tasks.bit_relay(KEY, n, T, 0.0, signal_len))
    x = x[..., 0]
    assert x.shape == (n, T)
    a, b = x[:, 0], x[:, T // 2]
    assert set(np.unique(a)) == {-1.0, 1.0} and set(np.unique(b)) == {-1.0, 1.0}
    want = np.zeros((n, T), np.float32)
    want[:, :signal_len] = a[:, None]
    want[:, T // 2 : T // 2 + signal_len] = b[:, None]
    np.testing.assert_array_equal(x, want)
    np.testing.assert_array_equal(y, (a == b).astype(np.int32))
    assert y.sum() == n // 2
    assert {(p, q) for p, q in zip(a, b)} == set(itertools.product((-1.0, 1.0), repeat=2))


def test_bit_relay_noise_is_additive():
    x0, y0 = map(np.asarray, tasks.bit_relay(KEY, 64, 7, 0.0))  # the shapes of a case above
    x2, y2 = map(np.asarray, tasks.bit_relay(KEY, 64, 7, 0.2))
    np.testing.assert_array_equal(y2, y0)
    e = (x2 - x0) / 0.2
    assert abs(e.mean()) < 5 / np.sqrt(e.size) and abs(e.std() - 1) < 5 / np.sqrt(2 * e.size)


# ----------------------------------------------------------------------------- splits


def _balanced(n, seed=0):
    """Balanced labels in random order, as every generator returns them."""
    return np.random.default_rng(seed).permutation(np.arange(n) % 2).astype(np.int32)


def _keras_split(order, val_frac):
    """Keras 3's own ``validation_split`` (the slicing ``Model.fit`` does) on an array."""
    from keras.src.trainers.data_adapters.array_slicing import train_validation_split

    (tr,), (va,) = train_validation_split((order,), val_frac)
    return np.asarray(tr), np.asarray(va)


@pytest.mark.parametrize("n", [10, 64, 101, 10000])
def test_tail_split_is_keras_validation_split_on_class_ordered_data(n):
    y = _balanced(n)
    seed_order = np.concatenate([np.flatnonzero(y == 1), np.flatnonzero(y == 0)])  # positives first
    k_tr, k_va = _keras_split(seed_order, 0.2)
    tr, va = tasks.split_indices(KEY, y, 0.2, "tail")
    assert len(va) == n - int(n * 0.8) == len(k_va)
    np.testing.assert_array_equal(np.sort(va), np.sort(k_va))
    np.testing.assert_array_equal(np.sort(tr), np.sort(k_tr))
    assert (y[va] == 0).all()  # the seed's bug: an all-negative validation set
    if n == 10000:
        assert y[tr].mean() == 0.625  # and a 62.5 % positive training set


@pytest.mark.parametrize("n", [10, 64, 101, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_stratified_split_is_a_balanced_partition(n, seed):
    y = _balanced(n, seed)
    tr, va = tasks.split_indices(jax.random.PRNGKey(seed + 10), y, 0.2, "stratified")
    assert len(np.intersect1d(tr, va)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))
    assert len(va) == n - int(n * 0.8)  # Keras' size
    assert abs(int(y[va].sum()) - int((y[va] == 0).sum())) <= 1  # class-balanced
    assert abs(y[tr].mean() - 0.5) < 0.05


def test_stratified_split_is_random_and_keeps_class_proportions():
    y = np.zeros(1000, np.int32)
    y[np.random.default_rng(0).permutation(1000)[:300]] = 1  # 30 % positives
    _, va0 = tasks.split_indices(jax.random.PRNGKey(0), y, 0.2)
    _, va1 = tasks.split_indices(jax.random.PRNGKey(1), y, 0.2)
    assert len(va0) == 200 and y[va0].sum() == 60
    assert not np.array_equal(va0, va1)
    _, tail = tasks.split_indices(jax.random.PRNGKey(0), y, 0.2, "tail")
    assert not np.array_equal(np.sort(va0), np.sort(tail))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: tasks.check("latch", 0, 0.1, 1), "T"),
        (lambda: tasks.check("latch", -3, 0.1, 1), "T"),
        (lambda: tasks.check("latch", 2.5, 0.1, 1), "T"),
        (lambda: tasks.check("bit_relay", 1, 0.1, 1), "T"),  # needs room for the second sign
        (lambda: tasks.check("latch", 10, -0.1, 1), "noise"),
        (lambda: tasks.check("latch", 10, float("nan"), 1), "noise"),
        (lambda: tasks.check("nope", 10, 0.1, 1), "task"),
        (lambda: tasks.check("latch", 10, 0.1, 0), "signal_len"),
        (lambda: tasks.check("latch", 10, 0.1, 1, n=2), "N"),
        (lambda: tasks.generate("latch", KEY, 8, 0), "T"),
        (lambda: tasks.generate("parrot", KEY, 8, 5), "task"),
        (lambda: tasks.split_indices(KEY, np.zeros(10), 0.2, "head"), "split"),
        (lambda: tasks.split_indices(KEY, np.zeros(10), 1.0), "val_frac"),
        (lambda: config.from_dict({"T": 0}), "T"),
        (lambda: config.from_dict({"noise": -1.0}), "noise"),
        (lambda: config.from_dict({"task": "nope"}), "task"),
        (lambda: config.from_dict({"grid": {"T": [5, 0]}}), "T"),
        (lambda: config.from_dict({"grid": {"task": ["latch", "nope"]}}), "task"),
        (lambda: config.from_dict({"tsk": "latch"}), "tsk"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(call, field):
    with pytest.raises(ConfigError) as info:
        call()
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: "), str(info.value)


def test_unknown_task_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed: latch, bit_relay"):
        config.from_dict({"task": "nope"})
