"""Reference tests for the tasks ``two_sequence`` (H&S 1997 task 3a / 3b) and ``parity``.

* Written out from their definitions: with noise 0 the exact signal layout (each sequence
  ends at the last step, its first N elements ±1 by class, noise-free leading zeros before a
  shorter sequence starts), lengths uniform over ``[T - T//11, T]``, parity labels equal to
  a numpy count, balanced classes; the noise exactly additive (Gaussian std for
  two_sequence, uniform half-width for parity); left-padding changes no value.
* The sweep engine runs them from a config (``task = "parity"`` etc.) on exactly the
  generators' data, and rejects a too-short two_sequence.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from latchlab import config
from latchlab.engine import run as runner
from latchlab.engine import data as sweep_data
from latchlab.core import tasks
from latchlab.errors import ConfigError

KEY = jax.random.PRNGKey(3)


@pytest.mark.parametrize("T, N", [(22, 1), (110, 3), (11, 3)])
def test_two_sequence_layout_and_lengths(T, N):
    n = 600
    x, y = map(np.asarray, tasks.two_sequence(KEY, n, T, 0.0, N))
    valid = np.asarray(tasks.two_sequence_valid(KEY, n, T))
    x = x[..., 0]
    lengths = valid.sum(1)
    t_min = T - T // 11
    assert lengths.min() == t_min and lengths.max() == T  # H&S: [T0, T0 + T0/10], T = 1.1 T0
    assert set(lengths) == set(range(t_min, T + 1))
    assert (valid == (np.arange(T)[None, :] >= (T - lengths)[:, None])).all()  # ends at the last step
    sign = np.where(y == 1, 1.0, -1.0)
    want = np.zeros((n, T), np.float32)
    for i in range(n):
        start = T - lengths[i]
        want[i, start : start + N] = sign[i]
    np.testing.assert_array_equal(x, want)
    assert y.sum() == n // 2


@pytest.mark.parametrize("gen, on_signal", [(tasks.two_sequence, False), (tasks.two_sequence_3b, True)])
def test_two_sequence_noise_is_gaussian_after_the_signal_or_everywhere(gen, on_signal):
    n, T, N = 3000, 33, 3
    x0, y0 = map(np.asarray, gen(KEY, n, T, 0.0, N))
    x1, y1 = map(np.asarray, gen(KEY, n, T, 0.2**0.5, N))
    np.testing.assert_array_equal(y0, y1)
    valid = np.asarray(tasks.two_sequence_valid(KEY, n, T))
    e = (x1 - x0)[..., 0] / 0.2**0.5
    rel = np.cumsum(valid, 1) - 1  # step within each sequence
    noisy = valid & ((rel >= 0) if on_signal else (rel >= N))
    np.testing.assert_array_equal(e[~noisy], 0.0)  # leading zeros stay noise-free
    v = e[noisy]
    assert abs(v.mean()) < 5 / np.sqrt(v.size) and abs(v.std() - 1) < 5 / np.sqrt(2 * v.size)


@pytest.mark.parametrize("task", ["two_sequence", "two_sequence_3b", "parity"])
def test_left_padding_changes_no_value(task):
    gen = tasks.GENERATORS[task]
    x, y = map(np.asarray, gen(KEY, 50, 23, 0.3, 2))
    xp, yp = map(np.asarray, gen(KEY, 50, 23, 0.3, 2, pad_to=30))
    np.testing.assert_array_equal(yp, y)
    np.testing.assert_array_equal(xp[:, 7:], x)
    np.testing.assert_array_equal(xp[:, :7], 0.0)


@pytest.mark.parametrize("T", [1, 2, 7, 40])
def test_parity_labels_are_the_parity_of_the_plus_ones(T):
    n = 1000
    x, y = map(np.asarray, tasks.parity(KEY, n, T))
    x = x[..., 0]
    assert set(np.unique(x)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(y, ((x == 1).sum(1) % 2).astype(np.int32))
    assert y.sum() == n // 2
    if T >= 7:  # the free signs are fair coins, independent of the label
        first = x[:, : T - 1]
        assert abs((first == 1).mean() - 0.5) < 5 * 0.5 / np.sqrt(first.size)
        assert abs(np.corrcoef(first[:, 0], y)[0, 1]) < 5 / np.sqrt(n)


def test_parity_noise_is_uniform_with_the_given_half_width():
    n, T = 2000, 20
    x0, y0 = map(np.asarray, tasks.parity(KEY, n, T, 0.0))
    x2, y2 = map(np.asarray, tasks.parity(KEY, n, T, 0.2))
    np.testing.assert_array_equal(y0, y2)
    u = (x2 - x0).ravel() / 0.2
    assert u.min() >= -1 and u.max() <= 1
    assert abs(u.mean()) < 5 * np.sqrt(1 / 3 / u.size) and abs(u.var() - 1 / 3) < 0.01


# ----------------------------------------------------------------------------- the engine


@pytest.mark.slow
@pytest.mark.parametrize(
    "task, noise, L", [("parity", 0.0, 1), ("two_sequence", 0.2**0.5, 3), ("two_sequence_3b", 0.2**0.5, 1)]
)
def test_sweep_runs_the_new_tasks_on_the_generators_data(task, noise, L):
    cfg = config.from_dict(
        {
            "name": "t",
            "repeats": 2,
            "task": task,
            "noise": noise,
            "signal_len": L,
            "N": 64,
            "epochs": 1,
            "grid": {"T": [11, 22]},
        }
    )
    members = cfg.members()
    data = sweep_data.make_data(members, 22)
    for r, m in enumerate(members):
        k_data = sweep_data.member_keys(m.seed)[0]
        x, y = map(np.asarray, tasks.generate(task, k_data, 64, m.run.T, noise, L))
        np.testing.assert_array_equal(np.asarray(data.y[r]), y)
        np.testing.assert_allclose(np.asarray(data.x[r])[:, 22 - m.run.T :], x, atol=1e-6)
    df = runner.run(cfg)
    assert len(df) == len(members) and df.val_acc.between(0, 1).all()


@pytest.mark.parametrize(
    "d, field",
    [
        ({"task": "two_sequence", "T": 22, "signal_len": 21}, "T"),
        ({"task": "parity", "T": 0}, "T"),
        ({"task": "parity", "noise": -0.2}, "noise"),
        ({"task": "two_sequences"}, "task"),
    ],
)
def test_bad_values_raise_config_error(d, field):
    with pytest.raises(ConfigError) as info:
        config.from_dict(d)
    assert info.value.field == field
