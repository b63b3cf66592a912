"""Reference tests for ``latchlab.experiments.guessing`` (random weight guessing, H&S 1996).

* The defaults are the source's definitions read literally, one test per definition:
  latch II's noise is a sequence element (it reaches the unit through the input weight);
  parity's A1 net has a bias on its hidden unit only, and its update is the standard
  synchronous one (equal to a hand-written loop for a fixed small weight set). Under that
  update no weights get more than 3 of 4 last-step continuations right (the docstring's
  argument), while the layered update can get all 4.
* Each problem's net equals a numpy loop over its equations, per sequence over its own
  length (variable lengths by per-sequence masks are exact).
* The native kernel (``guessing.cpp``) gives every net's outputs bit for bit as JAX does,
  for small and large weights on sequences of mixed lengths, and ``solved``'s verdicts.
* The blocked, all-runs-at-once search returns exactly the trials of trying each run's guesses
  one at a time in order (a Python loop), by the native kernel (a guess runs a sequence only
  if it passed every one before) and by the XLA fallback (screened on a few sequences).
* Hand-built weights that latch solve latch II and parity; the ``abs`` criterion is
  unattainable for latch I (targets ±0.8 with the last step's noise) while ``sign`` is easy.
* ``success_probability`` counts exactly the solvers among the probe guesses (a direct
  evaluation of every probe on the whole training set); ``expected_trials`` is 1/p with
  statsmodels' exact binomial interval inverted; measured mean trials agree with it.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import armtools

from latchlab.experiments import guessing as G
from latchlab.errors import ConfigError

SHORT = {"len_min": 20, "len_max": 30, "n_train": 20, "n_test": 20}
NETS = [
    {"problem": "latch1"},
    {"problem": "latch2", "noise_into": "input"},
    {"problem": "latch2", "noise_into": "net"},
    {"problem": "two_sequence"},
    {"problem": "parity", "hidden": "tanh", "update": "layered", "biases": "all"},
    {"problem": "parity", "hidden": "sigmoid", "update": "sync"},
    {"problem": "parity", "hidden": "sigmoid", "update": "layered"},
    {"problem": "parity", "hidden": "sigmoid", "update": "sync", "biases": "all"},
]


@pytest.fixture
def native_kernel():
    """The native guessing kernel runs (skipped where it cannot)."""
    from latchlab.engine import native

    armtools.loads_or_skips(native.guessing)


@pytest.fixture(
    params=["g++", pytest.param("clang", marks=armtools.needs_clang), pytest.param("arm", marks=armtools.needs_arm)]
)
def build(request, monkeypatch, tmp_path_factory):
    """The native guessing kernel as this machine builds it (``$CXX``, else g++), built by clang
    (macOS's compiler), or built for ARM (aarch64, NEON) and run under emulation."""
    from latchlab.engine import native

    if request.param == "clang":
        monkeypatch.setenv("CXX", armtools.CLANG)
        assert "clang" in native.compiler_version()
        native.guessing()  # must build: not skipped
    elif request.param == "arm":
        lib = armtools.ArmGuessing(armtools.build("guessing", tmp_path_factory.getbasetemp()))
        monkeypatch.setattr(native, "guessing", lambda: lib)
    else:
        request.getfixturevalue("native_kernel")
    return request.param


@pytest.fixture(params=["native", "native, JAX draws", "xla"])
def path(request, monkeypatch):
    """The search by the native kernel (checked to be called), with its guesses drawn by the
    native generator or (where that cannot run) by JAX, or by its XLA fallback
    (``LATCHLAB_NATIVE=0``, checked not to call it)."""
    from latchlab.engine import native

    calls = []
    real = G.native_solved
    monkeypatch.setattr(G, "native_solved", lambda *a: calls.append(1) or real(*a))
    if request.param == "xla":
        monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    else:
        request.getfixturevalue("native_kernel")
    if request.param == "native, JAX draws":
        monkeypatch.setattr(native, "prng", lambda **kw: None)
    yield request.param
    assert bool(calls) == (request.param != "xla")


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _numpy_outputs(cfg, theta, data):
    x, valid = np.asarray(data.x, np.float64), np.asarray(data.valid)
    out = np.zeros((len(theta), len(x)))
    for g, th in enumerate(np.asarray(theta, np.float64)):
        for i in range(len(x)):
            seq = x[i][valid[i]]  # the sequence alone, over its own length
            if cfg.problem == "parity":
                whx, whh, who, bh, wox, woh, woo = th[:7]
                bo = th[7] if cfg.biases == "all" else 0.0
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


@pytest.mark.parametrize("over", NETS)
def test_outputs_equal_numpy_loop_over_each_sequence(over):
    cfg = G.make_config(**SHORT, **over, a=3.0)
    data = G.make_data(cfg, jax.random.PRNGKey(0), 6)
    assert len(set(np.asarray(data.valid).sum(1))) > 1  # lengths really vary
    theta = jax.random.uniform(jax.random.PRNGKey(1), (5, G.n_params(cfg)), minval=-3, maxval=3)
    np.testing.assert_allclose(np.asarray(G.outputs(cfg, theta, data)), _numpy_outputs(cfg, theta, data), atol=2e-5)


@pytest.mark.parametrize("a", [3.0, 100.0])
@pytest.mark.parametrize("over", NETS)
def test_native_outputs_equal_jax_bit_for_bit(over, a, build):
    cfg = G.make_config(**SHORT, **over, a=a)
    data = G.make_data(cfg, jax.random.PRNGKey(0), 16)
    assert len(set(np.asarray(data.valid).sum(1))) > 1  # lengths really vary
    theta = jax.random.uniform(jax.random.PRNGKey(1), (300, G.n_params(cfg)), minval=-a, maxval=a)
    want = np.asarray(G.outputs(cfg, theta, data))
    assert np.unique(want).size > 100  # not saturated to a few values
    np.testing.assert_array_equal(G.native_outputs(cfg, theta, data), want)


@pytest.mark.parametrize(
    "over",
    [
        {"problem": "latch1", "criterion": "sign"},
        {"problem": "latch2", "noise_into": "net", "tol": 0.5},
        {"problem": "parity", "hidden": "tanh", "update": "layered", "biases": "all", "tol": 0.45},
        {"problem": "parity", "tol": 0.45},
    ],
)
def test_native_verdicts_equal_solved(over, build):
    cfg = G.make_config(**(SHORT | over | {"len_min": 6, "len_max": 9, "n_train": 4}), a=5.0)
    train = jax.device_get(
        jax.vmap(lambda k: G.make_data(cfg, k, cfg.n_train))(jax.random.split(jax.random.PRNGKey(3), 3))
    )
    k = G.kernel(cfg, train)
    assert k is not None
    theta = np.asarray(jax.random.uniform(jax.random.PRNGKey(4), (3, 4000, G.n_params(cfg)), minval=-5, maxval=5))
    run = np.array([2, 0, 1])  # tasks on runs in another order
    got = G.native_solved(cfg, k, theta, run)
    for s, r in enumerate(run):
        want = np.asarray(G.solved(cfg, jnp.asarray(theta[s]), G.Data(*(a[r] for a in train))))
        np.testing.assert_array_equal(got[s], want)
        assert 0 < want.sum() < want.size  # both verdicts occur


def test_config_json_says_which_code_evaluated_and_drew_the_guesses(monkeypatch):
    from latchlab.engine import native

    here = G.paths()
    try:
        isa = native.guessing().guess_isa().decode()
        assert here["evaluation"].startswith("native kernel guessing.cpp") and isa in here["evaluation"]
    except RuntimeError:
        assert here["evaluation"].startswith("XLA (")
    assert ("prng.cpp" in here["guesses"]) == (native.prng() is not None)
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    off = G.paths()
    assert off["evaluation"] == "XLA (latchlab's native guessing kernel is unavailable: disabled by LATCHLAB_NATIVE=0)"
    assert off["guesses"] == "JAX threefry2x32"


@pytest.mark.parametrize(
    "over",
    [
        {"problem": "latch1", "criterion": "sign", "block": 4, "screen": 3},
        {"problem": "latch2", "noise_into": "net", "block": 8, "screen": 5},
        pytest.param(
            {
                "problem": "parity",
                "hidden": "tanh",
                "update": "layered",
                "biases": "all",
                "block": 64,
                "len_min": 6,
                "len_max": 8,
            },
            marks=pytest.mark.slow,
        ),
    ],
)
def test_search_equals_trying_guesses_one_at_a_time(over, path):
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


def test_a_solver_past_the_budget_does_not_count(path):
    """The last block is rounded up to a power of two, so it holds guesses past
    ``max_trials``: a run whose first solver is one of them is unsolved (trials
    ``max_trials + 1``, NaN weights), as with no solver at all. It recorded the solver."""
    base = {"problem": "latch2", "a": 5.0, "len_min": 10, "len_max": 16, "n_train": 8, "n_test": 8, "runs": 4}
    full = G.search(G.make_config(**base, block=64, max_trials=2000))
    assert full.solved.all()
    r = int(np.argmax(full.trials))  # the latest first solver of the four
    j = int(full.trials[r])
    for budget in (j - 3, j - 2, j - 1, j, j + 1):
        got = G.search(G.make_config(**base, block=64, max_trials=budget))
        for q in range(4):
            want = int(full.trials[q]) if full.trials[q] <= budget else budget + 1
            assert got.trials[q] == want, (budget, q)
            assert np.isnan(got.theta[q]).all() == (want > budget)


def test_hand_built_latches_solve_and_latch1_abs_is_unattainable():
    for noise_into in G.NOISE_INTO:
        cfg2 = G.make_config(problem="latch2", noise_into=noise_into)
        data = G.make_data(cfg2, jax.random.PRNGKey(2), 100)
        assert bool(G.solved(cfg2, jnp.array([[20.0, 10.0, 0.0]]), data)[0])  # w=20 latches, v=10 writes
        assert not bool(G.solved(cfg2, jnp.array([[0.5, 10.0, 0.0]]), data)[0])  # w < 1 forgets
    # parity by hand (layered, tanh, output bias): h = AND-like of (x, o), o = XOR(x, o_prev)
    cfgp = G.make_config(problem="parity", hidden="tanh", update="layered", biases="all")
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
    cfg = G.make_config(problem="latch2", runs=200, block=32, max_trials=5000, probes=200, **SHORT)
    got = G.search(cfg)
    assert got.solved.all()
    e = G.expected_trials(int(G.success_probability(cfg).sum()), cfg.probes * cfg.runs)
    mean = got.trials.mean()  # geometric: mean 1/p, std sqrt(1-p)/p
    assert abs(mean - e.trials) < 4 * np.sqrt(1 - e.p) / e.p / np.sqrt(cfg.runs) + 0.1 * e.trials


# ----------------------------------------------------------------------------- the source's definitions


def test_defaults_are_the_literal_reading():
    d = G.GuessConfig()
    assert (d.noise_into, d.update, d.biases, d.hidden) == ("input", "sync", "hidden", "sigmoid")
    cfgs = {c.problem: c for c in G.experiment_configs("quick") if G.reading(c) == "default"}
    assert set(cfgs) == {"latch1", "latch2", "parity"}
    assert cfgs["latch2"].noise_into == "input"
    assert (cfgs["parity"].update, cfgs["parity"].biases) == ("sync", "hidden")
    assert (
        G.n_params(cfgs["parity"]) == 7
        and G.n_params(G.make_config(**(cfgs["parity"].to_dict() | {"biases": "all"}))) == 8
    )
    # every alternative is named by what differs from the default
    alts = [G.reading(c) for c in G.experiment_configs("quick") if G.reading(c) != "default"]
    assert alts == [
        "noise_into=net",
        "update=layered",
        "update=layered, biases=all",
        "update=layered, biases=all, hidden=tanh",
    ]


def test_latch2_noise_is_a_sequence_element_through_the_input_weight():
    cfg = G.make_config(problem="latch2", **SHORT)  # the default reading
    data = G.make_data(cfg, jax.random.PRNGKey(5), 8)
    x = np.asarray(data.x)
    first = np.asarray(data.valid) & ~np.pad(np.asarray(data.valid)[:, :-1], ((0, 0), (1, 0)))
    assert np.all(np.abs(x[first]) == 1.0) and np.std(x[np.asarray(data.valid) & ~first]) > 0.3  # ±1, then noise
    w, v, b = 1.5, 0.7, -0.2
    want = np.zeros(len(x))
    for i in range(len(x)):  # y_t = tanh(w y_{t-1} + v x_t + b): every element through v
        y = 0.0
        for xt in x[i][np.asarray(data.valid)[i]]:
            y = np.tanh(w * y + v * xt + b)
        want[i] = y
    np.testing.assert_allclose(np.asarray(G.outputs(cfg, jnp.array([[w, v, b]]), data))[0], want, atol=1e-5)
    # with v = 0 no element reaches the unit, noise included; on the net input it would
    quiet = G.Data(jnp.where(jnp.asarray(first), data.x, 0.0), data.valid, data.y)
    th0 = jnp.array([[1.5, 0.0, -0.2]])
    np.testing.assert_array_equal(np.asarray(G.outputs(cfg, th0, data)), np.asarray(G.outputs(cfg, th0, quiet)))
    net = G.make_config(problem="latch2", noise_into="net", **SHORT)
    assert not np.allclose(np.asarray(G.outputs(net, th0, data)), np.asarray(G.outputs(net, th0, quiet)))


def test_parity_a1_synchronous_update_equals_a_hand_written_loop():
    cfg = G.make_config(problem="parity", len_min=3, len_max=5)  # the default reading
    assert G.n_params(cfg) == 7  # 4 into the hidden unit (input, h, o, bias), 3 into the output (no bias)
    data = G.make_data(cfg, jax.random.PRNGKey(6), 6)
    w_hx, w_hh, w_ho, b_h, w_ox, w_oh, w_oo = 1.2, -0.8, 2.0, 0.3, -1.5, 2.5, 0.6
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    want = []
    for xs, ok in zip(np.asarray(data.x, np.float64), np.asarray(data.valid)):
        h = o = 0.0
        for x in xs[ok]:
            # synchronous: both units read the previous step's activations
            h, o = sig(w_hx * x + w_hh * h + w_ho * o + b_h), sig(w_ox * x + w_oh * h + w_oo * o)
        want.append(o)
    th = jnp.array([[w_hx, w_hh, w_ho, b_h, w_ox, w_oh, w_oo]])
    np.testing.assert_allclose(np.asarray(G.outputs(cfg, th, data))[0], want, atol=1e-6)
    layered = np.asarray(G.outputs(G.make_config(problem="parity", len_min=3, len_max=5, update="layered"), th, data))[
        0
    ]
    assert np.abs(layered - np.asarray(want)).max() > 1e-3  # the other reading differs


def test_synchronous_parity_gets_at_most_three_of_four_last_step_continuations():
    cfg = G.make_config(problem="parity")
    prefixes = jnp.array([[1.0, -1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, 1.0, -1.0]])  # even, odd
    for a in (3.0, 30.0):  # small and large weights
        th = jax.random.uniform(jax.random.PRNGKey(int(a)), (20000, 7), minval=-a, maxval=a)
        got = np.asarray(G.last_step_pairs_correct(cfg, th, prefixes))
        assert got.max() <= 3
    assert got.max() == 3  # the bound is reached (by large weights)
    # the layered reading can get all four: the bound is the synchronous update's
    k = 30.0
    xor = jnp.array([[k, 0.0, 2 * k, -2 * k, k, -2 * k, 2 * k, -2 * k]])
    lay = G.make_config(problem="parity", update="layered", hidden="tanh", biases="all")
    assert int(G.last_step_pairs_correct(lay, xor, prefixes)[0]) == 4


@pytest.mark.parametrize("over", [{"problem": "latch1", "criterion": "sign"}, {"problem": "latch2"}])
def test_success_probability_counts_every_solving_probe(over, path):
    cfg = G.make_config(**(SHORT | over), runs=3, probes=300, block=64, screen=4, seed=21)
    hits = G.success_probability(cfg)
    keys = G.probe_keys(cfg)
    for r in range(cfg.runs):
        k_train = jax.random.split(jax.random.PRNGKey(cfg.seed + r), 3)[0]
        data = G.make_data(cfg, k_train, cfg.n_train)  # the run's own training set
        th = G.guesses(cfg, keys[r : r + 1], 0, cfg.probes)[0]
        assert hits[r] == int(np.asarray(G.solved(cfg, th, data)).sum())  # direct, no screening
        search_th = G.guesses(cfg, jax.random.split(jax.random.PRNGKey(cfg.seed + r), 3)[2][None], 0, cfg.probes)[0]
        assert not np.any(np.all(np.asarray(th)[:, None] == np.asarray(search_th)[None], axis=-1))  # own stream
    assert 0 < hits.sum() < cfg.runs * cfg.probes


def test_probe_keys_are_no_key_of_the_search():
    """The probes' keys and every key the search derives (training data, test data and the
    guesses, and the keys each of them splits off) are distinct: the probes took the test
    data's key until 2026-12-06 (``fold_in(key, 1)`` is ``split(key, 3)[1]``)."""
    cfg = G.make_config(problem="latch2", runs=4, seed=5)
    probes = {tuple(np.asarray(k).tolist()) for k in G.probe_keys(cfg)}
    search = set()
    for r in range(cfg.runs):
        for k in jax.random.split(jax.random.PRNGKey(cfg.seed + r), 3):
            search.add(tuple(np.asarray(k).tolist()))
            for kk in jax.random.split(k, 3):  # what the data generators split off
                search.add(tuple(np.asarray(kk).tolist()))
            for j in range(4):  # the first guesses' keys
                search.add(tuple(np.asarray(jax.random.fold_in(k, j)).tolist()))
    assert len(probes) == cfg.runs and not probes & search


def test_expected_trials_is_one_over_p_with_the_exact_interval_inverted():
    from statsmodels.stats.proportion import proportion_confint

    e = G.expected_trials(37, 4000)
    lo, hi = proportion_confint(37, 4000, alpha=0.05, method="beta")
    assert e.p == 37 / 4000 and e.trials == pytest.approx(4000 / 37)
    assert (e.trials_lo, e.trials_hi) == (pytest.approx(1 / hi), pytest.approx(1 / lo))
    none = G.expected_trials(0, 1000)
    assert none.trials == np.inf and none.trials_hi == np.inf
    assert none.trials_lo == pytest.approx(1 / proportion_confint(0, 1000, alpha=0.05, method="beta")[1])


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
        ("biases", "output"),
        ("probes", -1),
        ("bogus", 1),
    ],
)
def test_bad_config_values_raise_config_error(field, value):
    with pytest.raises(ConfigError) as info:
        G.make_config(**{field: value})
    assert info.value.field == field
