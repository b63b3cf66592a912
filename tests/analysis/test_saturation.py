"""Saturated gates at initialisation (``latchlab.analysis.saturation``) and chrono under the
gate activation actually used.

* Gate pre-activations equal a Python loop over the LSTM's update.
* Chrono with hard-sigmoid gates is refused with a one-line error; the old combination
  (chrono's biases under a hard sigmoid) starts most members with a dead input gate at
  T = 100 (measured over 200 seeds), chrono with sigmoid gates none.
* A sweep's ``b_f = 5`` hard-sigmoid LSTM starts with its forget gate saturated at 1.
* ``fraction_saturated`` takes every length in one call (sequences right-padded to the
  longest): each member's largest slopes are those of its own sequences alone, bit for bit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latchlab import config
from latchlab.analysis import saturation as S
from latchlab.core import cells, tasks
from latchlab.errors import ConfigError


def test_lstm_preactivations_equal_a_python_loop():
    cell = cells.Cell("lstm", 2, "hard_sigmoid")
    p = cells.init_params(jax.random.PRNGKey(3), cell, 1, "keras")
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (3, 6, 1)))
    W, U, b = (np.asarray(p[k], np.float64) for k in ("kernel", "recurrent", "bias"))
    hs = lambda z: np.clip(0.2 * z + 0.5, 0, 1)  # noqa: E731
    h, c = np.zeros((3, 2)), np.zeros((3, 2))
    want = {g: [] for g in "ifo"}
    for t in range(6):
        z = x[:, t] @ W + h @ U + b
        i, f, g, o = (z[:, 2 * k : 2 * k + 2] for k in range(4))
        for name, v in zip("ifo", (i, f, o)):
            want[name].append(v)
        c = hs(f) * c + hs(i) * np.tanh(g)
        h = hs(o) * np.tanh(c)
    got = S.gate_preactivations(cell, p, jnp.asarray(x))
    for g in "ifo":
        np.testing.assert_allclose(np.asarray(got[g]), np.stack(want[g], axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru", "janet"])
def test_chrono_is_refused_under_hard_sigmoid_gates(kind):
    with pytest.raises(ConfigError, match="sigmoid") as e:
        cells.init_params(jax.random.PRNGKey(0), cells.Cell.from_preset(kind, 1, "keras2"), 1, "chrono", t_max=50.0)
    assert "\n" not in str(e.value.args[0] if e.value.args else e.value)


def _dead_fraction(rsig: str, T: int = 100, seeds: int = 200) -> float:
    cell = cells.Cell("lstm", 1, "sigmoid")
    keys = jax.random.split(jax.random.PRNGKey(11), seeds)
    params = jax.vmap(lambda k: cells.init_params(k, cell, 1, "chrono", t_max=float(T)))(keys)
    x = jnp.stack([tasks.latch(k, 32, T, 0.1)[0] for k in jax.random.split(jax.random.PRNGKey(12), seeds)])
    slopes = S._max_slopes(cells.Cell("lstm", 1, rsig), params, x)
    return float(np.mean(np.any(np.concatenate([v for v in slopes.values()], 1) < S.SLOPE_TOL, axis=1)))


@pytest.mark.slow
def test_chrono_starts_no_gate_saturated_with_the_gates_it_is_defined_for():
    assert _dead_fraction("hard_sigmoid") > 0.5  # the old combination: b_i = -b_f < -2.5 for most seeds
    assert _dead_fraction("sigmoid") == 0.0


@pytest.mark.slow
def test_fraction_saturated_of_sweep_members():
    def members(values):
        return config.from_dict(
            {
                "name": "t",
                "repeats": 8,
                "cell": "lstm",
                "preset": "keras2",
                "N": 64,
                "values": values,
                "grid": {"T": [10, 30]},
            }
        ).members()

    assert S.fraction_saturated(members({"bias_f": 5.0})) == 1.0  # f = clip(0.2 b_f + ...) = 1
    assert S.fraction_saturated(members({"bias_f": 0.0})) == 0.0
    srnn = config.from_dict({"name": "t", "repeats": 2, "cell": "srnn", "N": 64, "grid": {"T": [5]}}).members()
    assert S.fraction_saturated(srnn) == 0.0


@pytest.mark.parametrize("preset, bias_f", [("keras2", 2.8), ("keras2", 3.2), ("keras3", 14.0)])
def test_fraction_saturated_of_mixed_lengths_is_each_members_own(preset, bias_f):
    """Members of three lengths, some starting saturated and some not: their largest slopes
    from the one padded call equal, bit for bit, those of each member's own unpadded
    sequences (``tasks.latch`` of its data key), and the fraction is theirs."""
    from latchlab.engine import data as D

    cfg = {"name": "t", "repeats": 6, "cell": "lstm", "preset": preset, "N": 64, "values": {"bias_f": bias_f}}
    members = config.from_dict({**cfg, "grid": {"T": [4, 9, 17]}}).members()
    cell = members[0].run.model.cell
    params = D.init_members(members)["cell"]
    lengths = np.array([m.run.T for m in members], np.int32)
    x = np.zeros((len(members), 16, 17, 1), np.float32)
    dead = []
    for r, m in enumerate(members):
        own = tasks.latch(D.member_keys(m.seed)[0], 16, m.run.T, m.run.noise, m.run.signal_len)[0]
        x[r, :, : m.run.T] = np.asarray(own)
        p = jax.tree.map(lambda a: a[r : r + 1], params)
        want = S._max_slopes(cell, p, jnp.asarray(own)[None])
        dead.append(any(bool((v < S.SLOPE_TOL).any()) for v in want.values()))
        got = S._max_slopes(cell, p, x[r : r + 1], lengths[r : r + 1])
        for g in want:
            np.testing.assert_array_equal(np.asarray(got[g]).view(np.int32), np.asarray(want[g]).view(np.int32))
    assert 0 < sum(dead) < len(members)  # both kinds
    assert S.fraction_saturated(members, n=16) == sum(dead) / len(members)
