"""Reference tests for ``latchlab.experiments.guessing`` (random weight guessing, H&S 1996).

* Each problem's net equals a numpy loop over its equations, per sequence over its own
  length (variable lengths by per-sequence masks are exact).
* The blocked, screened, all-runs-at-once search returns exactly the trials of trying each
  run's guesses one at a time in order (a Python loop).
* Hand-built weights that latch solve latch II and parity; the ``abs`` criterion is
  unattainable for latch I (targets ±0.8 with the last step's noise) while ``sign`` is easy.
* Measured trials on short sequences agree with the success probability estimated by
  evaluating many guesses at once (the mean of a geometric law is 1/p).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latchlab.experiments import guessing as G
from latchlab.errors import ConfigError

SHORT = {"len_min": 20, "len_max": 30, "n_train": 20, "n_test": 20}


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _numpy_outputs(cfg, theta, data):
    x, valid = np.asarray(data.x, np.float64), np.asarray(data.valid)
    out = np.zeros((len(theta), len(x)))
    for g, th in enumerate(np.asarray(theta, np.float64)):
        for i in range(len(x)):
            seq = x[i][valid[i]]  # the sequence alone, over its own length
            if cfg.problem == "parity":
                whx, whh, who, bh, wox, woh, woo, bo = th
                f = _sig if cfg.hidden == "sigmoid" else np.tanh
                h = o = 0.0
                for xt in seq:
                    h_new = f(whx * xt + whh * h + who * o + bh)
                    o = _sig(wox * xt + woh * (h_new if cfg.update == "layered" else h) + woo * o + bo)
                    h = h_new
                out[g, i] = o
                continue
            y = 0.0
            for t, xt in enumerate(seq):
                if cfg.problem == "latch1":
                    w, h0, h1 = th
                    y = np.tanh(w * y + ((h1 if xt > 0 else h0) if t == 0 else xt))
                else:
                    w, v, b = th
                    through = cfg.problem != "latch2" or cfg.noise_into == "input" or t == 0
                    y = np.tanh(w * y + (v * xt if through else xt) + b)
            out[g, i] = y
    return out


@pytest.mark.parametrize(
    "over",
    [
        {"problem": "latch1"},
        {"problem": "latch2", "noise_into": "input"},
        {"problem": "latch2", "noise_into": "net"},
        {"problem": "two_sequence"},
        {"problem": "parity", "hidden": "tanh", "update": "layered"},
        {"problem": "parity", "hidden": "sigmoid", "update": "sync"},
    ],
)
def test_outputs_equal_numpy_loop_over_each_sequence(over):
    cfg = G.make_config(**SHORT, **over, a=3.0)
    data = G.make_data(cfg, jax.random.PRNGKey(0), 6)
    assert len(set(np.asarray(data.valid).sum(1))) > 1  # lengths really vary
    theta = jax.random.uniform(jax.random.PRNGKey(1), (5, G.n_params(cfg)), minval=-3, maxval=3)
    np.testing.assert_allclose(np.asarray(G.outputs(cfg, theta, data)), _numpy_outputs(cfg, theta, data), atol=2e-5)


@pytest.mark.parametrize(
    "over",
    [
        {"problem": "latch1", "criterion": "sign", "block": 4, "screen": 3},
        {"problem": "latch2", "noise_into": "net", "block": 8, "screen": 5},
        pytest.param(
            {"problem": "parity", "hidden": "tanh", "update": "layered", "block": 64, "len_min": 6, "len_max": 8},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_search_equals_trying_guesses_one_at_a_time(over):
    cfg = G.make_config(**(SHORT | over), runs=5, max_trials=2000, seed=11)
    got = G.search(cfg)
    for r in range(cfg.runs):
        k_train, _, k_guess = jax.random.split(jax.random.PRNGKey(cfg.seed + r), 3)
        data = G.make_data(cfg, k_train, cfg.n_train)
        th = G.guesses(cfg, k_guess[None], 0, cfg.max_trials)[0]
        ok = np.asarray(G.solved(cfg, th, data))
        want = int(np.argmax(ok)) + 1 if ok.any() else cfg.max_trials + 1
        assert got.trials[r] == want
        if ok.any():
            np.testing.assert_array_equal(got.theta[r], np.asarray(th[want - 1]))
    assert got.solved.any()


def test_hand_built_latches_solve_and_latch1_abs_is_unattainable():
    cfg2 = G.make_config(problem="latch2", noise_into="net")
    data = G.make_data(cfg2, jax.random.PRNGKey(2), 100)
    assert bool(G.solved(cfg2, jnp.array([[20.0, 10.0, 0.0]]), data)[0])  # w=20 latches, v=10 writes
    assert not bool(G.solved(cfg2, jnp.array([[0.5, 10.0, 0.0]]), data)[0])  # w < 1 forgets
    # parity by hand (layered, tanh): h = AND-like of (x, o), o = XOR(x, o_prev)
    cfgp = G.make_config(problem="parity", hidden="tanh", update="layered")
    dp = G.make_data(cfgp, jax.random.PRNGKey(3), 100)
    # h = tanh(k(x + 2o - 2)) ~ +1 iff x=+1 and o=1; o = sig(k(x + 2o - 4h - 2))... found by reasoning:
    # with q = 2o - 1 in {-1, 1}: new parity q' = -x q  ->  o' = 1 iff (x = 1) xor (o = 1)
    k = 30.0
    th = jnp.array(
        [
            [
                k,
                0.0,
                2 * k,
                -2 * k,  # h ~ +1 iff x = +1 and o = 1, else -1
                k,
                -2 * k,
                2 * k,
                -2 * k,
            ]
        ]
    )  # o' = sig(k(x + 2o - 2h - 2)): XOR
    out = np.asarray(G.outputs(cfgp, th, dp))[0]
    np.testing.assert_array_equal(out > 0.5, np.asarray(dp.y) == 1)
    assert bool(G.solved(cfgp, th, dp)[0])
    # latch I with targets ±0.8: no guess in 20000 meets |error| < 0.1, many meet the signs
    c1 = G.make_config(problem="latch1", criterion="abs", **SHORT)
    d1 = G.make_data(c1, jax.random.PRNGKey(4), 20)
    th = G.guesses(c1, jax.random.PRNGKey(5)[None], 0, 20000)[0]
    assert not np.asarray(G.solved(c1, th, d1)).any()
    signs = np.asarray(G.solved(G.make_config(problem="latch1", criterion="sign", **SHORT), th, d1)).mean()
    assert 0.05 < signs < 0.2  # about 1/8: w > 0 and h_1 > 0 > h_0


@pytest.mark.slow
def test_mean_trials_match_the_success_probability():
    cfg = G.make_config(problem="latch2", noise_into="net", runs=200, block=32, max_trials=5000, **SHORT)
    got = G.search(cfg)
    assert got.solved.all()
    # p from 20000 independent guesses on one run's data (runs differ in data, slightly)
    k_train = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)[0]
    data = G.make_data(cfg, k_train, cfg.n_train)
    p = np.asarray(G.solved(cfg, G.guesses(cfg, jax.random.PRNGKey(9)[None], 0, 20000)[0], data)).mean()
    mean = got.trials.mean()  # geometric: mean 1/p, std sqrt(1-p)/p
    assert abs(mean - 1 / p) < 4 * np.sqrt(1 - p) / p / np.sqrt(cfg.runs) + 0.1 / p


@pytest.mark.parametrize(
    "field, value",
    [
        ("problem", "xor"),
        ("criterion", "close"),
        ("a", 0.0),
        ("len_max", 1),
        ("runs", 0),
        ("n_train", 3),
        ("hidden", "relu"),
        ("bogus", 1),
    ],
)
def test_bad_config_values_raise_config_error(field, value):
    with pytest.raises(ConfigError) as info:
        G.make_config(**{field: value})
    assert info.value.field == field
