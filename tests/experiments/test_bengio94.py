"""Reference tests for ``latchlab.experiments.bengio1994`` (Bengio, Simard & Frasconi 1994).

* Fig. 1: fixed points of ``x -> tanh(w x)`` solve the fixed-point equation and their
  stability is ``|w (1 - x²)| < 1``; the analytic flip threshold ``h*(w)`` equals the peak
  of ``a - w tanh(a)`` on ``a < 0`` (scipy) and the threshold found by simulation alone.
* The model equals a numpy loop of ``a_t = w tanh(a_{t-1}) + h_t``; its gradient equals
  central finite differences in float64; left-padding with zero inputs is exact.
* The ensemble trainer (the native kernel, its ARM build under emulation, and its JAX
  fallback) equals a Python loop over members of plain gradient descent with the same data,
  convergence checks and freezing, and the trainer as first written (every member vmapped,
  left-padded to the longest length, frozen by ``where``) with each optimiser, mixed lengths
  and members converging at different checks; a member's results do not depend on the
  others; its noise is ``member_data``'s.
* Bad config values raise ``ConfigError`` naming the field.
"""

from __future__ import annotations

import functools
import math

import armtools
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references
from scipy import optimize

from latchlab.engine import train
from latchlab.experiments import bengio1994 as B
from latchlab.errors import ConfigError


@pytest.fixture
def native():
    """The native kernel trains (skipped where it cannot run)."""
    from latchlab.engine import native

    armtools.loads_or_skips(native.bengio94)


CLANG, needs_clang = armtools.CLANG, armtools.needs_clang


@pytest.fixture(
    params=["native", "jax", pytest.param("arm", marks=armtools.needs_arm), pytest.param("clang", marks=needs_clang)]
)
def trainer(request, monkeypatch, tmp_path_factory):
    """``train_ensemble`` by the native kernel, by its JAX fallback (``LATCHLAB_NATIVE=0``),
    by the native kernel built for ARM (aarch64, NEON) under emulation (``armtools``), or
    by the native kernel built by clang (``CXX``: macOS's compiler)."""
    if request.param == "jax":
        monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    elif request.param == "clang":  # must build: not skipped
        from latchlab.engine import native

        monkeypatch.setenv("CXX", CLANG)
        assert "clang" in native.compiler_version()
        native.bengio94()
    else:
        request.getfixturevalue("native")
    if request.param == "arm":
        from latchlab.engine import native

        lib = armtools.ArmBengio94(armtools.build("bengio94", tmp_path_factory.getbasetemp()))
        monkeypatch.setattr(native, "bengio94", lambda: lib)
    return request.param


# ----------------------------------------------------------------------------- Fig. 1


@pytest.mark.parametrize("w", [0.5, 0.99, 1.01, 1.25, 2.0, 5.0])
def test_fixed_points_and_stability(w):
    pts = B.fixed_points(w)
    for x, stable in pts:
        assert math.tanh(w * x) == pytest.approx(x, abs=1e-12)
        assert stable == (abs(w * (1 - math.tanh(w * x) ** 2)) < 1)
    if w > 1:
        assert [s for _, s in pts] == [True, False, True] and pts[0][0] == -pts[2][0] > -1
    else:
        assert pts == [(0.0, True)]


def test_flip_threshold_is_the_saddle_node_and_matches_simulation():
    ws = np.array([1.05, 1.25, 1.5, 2.0, 3.0, 5.0])
    h = B.flip_threshold(ws)
    # the largest h at which a negative fixed point of a -> w tanh(a) + h exists
    peak = [
        -optimize.minimize_scalar(
            lambda a: -(a - w * math.tanh(a)), bounds=(-30, 0), method="bounded", options={"xatol": 1e-12}
        ).fun
        for w in ws
    ]
    np.testing.assert_allclose(h, peak, rtol=1e-7)
    sim = B.simulated_flip_threshold(ws)
    np.testing.assert_allclose(sim, h, rtol=2e-5)
    assert B.flip_threshold(0.8) == 0.0


@pytest.mark.parametrize("w", [1.25, 2.0])
def test_input_just_below_threshold_does_not_flip_just_above_does(w):
    h = float(B.flip_threshold(w))
    a_bar = w * B.fixed_points(w)[2][0]
    for factor, flips in ((0.99, False), (1.01, True)):
        a = -a_bar
        for _ in range(5000):
            a = w * math.tanh(a) + factor * h
        for _ in range(200):
            a = w * math.tanh(a)
        assert (a > 0) == flips
        assert abs(abs(a) - a_bar) < 1e-9  # back on an attractor


# ----------------------------------------------------------------------------- the model


def _numpy_forward(w, h, noise, cls):
    a = np.zeros(len(cls))
    L = h.shape[1]
    for t in range(noise.shape[1]):
        u = h[cls, t] if t < L else noise[:, t]
        a = w * np.tanh(a) + u
    return np.tanh(a)


def test_forward_equals_numpy_loop_and_padding_is_exact():
    rng = np.random.default_rng(0)
    w, h = 1.7, rng.normal(size=(2, 3))
    noise = rng.normal(size=(8, 12)) * 0.4
    cls = np.arange(8) % 2
    p = B.Params(jnp.float32(w), jnp.asarray(h, jnp.float32))
    got = np.asarray(B.forward(p, jnp.asarray(noise, jnp.float32), jnp.asarray(cls)))
    np.testing.assert_allclose(got, _numpy_forward(w, h, noise, cls), atol=1e-5)
    padded = np.concatenate([rng.normal(size=(8, 5)), noise], axis=1)  # ignored before start
    got_p = np.asarray(B.forward(p, jnp.asarray(padded, jnp.float32), jnp.asarray(cls), 5))
    np.testing.assert_allclose(got_p, got, atol=1e-6)


def test_gradient_equals_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        noise = jnp.asarray(rng.normal(size=(10, 15)) * 0.45)
        cls = jnp.arange(10) % 2
        p = B.Params(jnp.float64(1.3), jnp.asarray(rng.normal(size=(2, 3)) * 0.5))
        g = jax.grad(B.loss)(p, noise, cls, 0.8)
        flat = np.concatenate([[p.w], np.ravel(p.h)])
        assert g.w.dtype == jnp.float64

        def f(v):
            return float(B.loss(B.Params(jnp.float64(v[0]), jnp.asarray(v[1:]).reshape(2, 3)), noise, cls, 0.8))

        eps = 1e-6
        fd = [(f(flat + eps * e) - f(flat - eps * e)) / (2 * eps) for e in np.eye(flat.size)]
        np.testing.assert_allclose(np.concatenate([[g.w], np.ravel(g.h)]), fd, rtol=1e-6, atol=1e-10)


# ----------------------------------------------------------------------------- the trainer


@functools.partial(references.jit, static_argnames=("n_train", "n_test", "T", "L"))
def _member_alone(seed, w0, s, h_init, target, *, n_train, n_test, T, L):
    """A member's data from its seed (``member_data``, unpadded), its initial parameters
    (``init_params``), their test metrics and training loss."""
    k_init, k_data = B._keys(seed)
    data = B.member_data(k_data, n_train, n_test, T, s)
    p = B.init_params(k_init, L, w0, h_init)
    return data, p, B.test_metrics(p, *data[2:], target), B.loss(p, *data[:2], target)


def _initial(cfg, T, w0, s, seed):
    """``_member_alone`` for one member of ``cfg``."""
    args = (np.int32(seed), np.float32(w0), np.float32(s), np.float32(cfg.h_init), np.float32(cfg.target))
    return _member_alone(*args, n_train=cfg.n_train, n_test=cfg.n_test, T=int(T), L=cfg.L)


_test_metrics = references.jit(B.test_metrics)
_grad = references.jit(jax.grad(B.loss))


def _loop_reference(cfg, T, w0, s, seed):
    """One member alone: its data from its seed, unpadded; plain gradient descent with the
    same convergence checks and freezing, in a Python loop."""
    (x_tr, c_tr, x_te, c_te), p, _, _ = _initial(cfg, T, w0, s, seed)

    def conv(p):
        tl, errs = _test_metrics(p, x_te, c_te, cfg.target)
        return bool(errs == 0) and float(tl) < cfg.loss_threshold

    if conv(p):
        return True, 0, p
    for e in range(1, cfg.epochs + 1):
        g = _grad(p, x_tr, c_tr, cfg.target)
        p = jax.tree.map(lambda a, b: a - cfg.lr * b, p, g)
        if e % cfg.check_every == 0 and conv(p):
            return True, e, p
    return False, cfg.epochs, p


LOOP_CFG = dict(n_train=8, n_test=200, epochs=40, check_every=5, lr=1.0)
LOOP_MEMBERS = [(20, 1.25, 0.05, 7), (12, 1.5, 0.02, 1), (8, 2.0, 0.02, 7), (12, 1.5, 0.02, 4)]


@functools.cache  # each trainer is compared with the same loops
def _loop_references():
    cfg = B.make_config(**LOOP_CFG)
    return [_loop_reference(cfg, *member) for member in LOOP_MEMBERS]


def test_ensemble_equals_a_loop_over_members(trainer):
    cfg = B.make_config(**LOOP_CFG)
    T, w0, s, seeds = map(np.array, zip(*LOOP_MEMBERS))
    got = B.train_ensemble(cfg, T, w0, s, seeds)
    for r, (done, epochs, p) in enumerate(_loop_references()):
        assert got.converged[r] == done and got.epochs[r] == epochs, (r, got.converged[r], got.epochs[r], done, epochs)
        np.testing.assert_allclose(got.params.w[r], p.w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.params.h[r], p.h, rtol=1e-4, atol=1e-5)
    assert got.converged.any() and not got.converged.all()  # both outcomes are exercised


def _vmapped_reference(cfg, T, w0, s, seeds):
    """The trainer as first written: every member vmapped in one compiled call, its data
    (``member_data``) left-padded to the longest length, a scan over checks of scans over
    epochs of ``jax.grad`` and the optimiser, converged members frozen by ``where``."""
    T_pad, budget = int(max(T)), cfg.epochs // cfg.check_every * cfg.check_every
    opt = train.direction(cfg.optimizer)

    def one(seed, T, w0, s):
        k_init, k_data = B._keys(seed)
        start = T_pad - T
        x_tr, c_tr, x_te, c_te = B.member_data(k_data, cfg.n_train, cfg.n_test, T_pad, s, start)
        p0 = B.init_params(k_init, cfg.L, w0, cfg.h_init)

        def converged(p):
            tl, errs = B.test_metrics(p, x_te, c_te, cfg.target, start)
            return (errs == 0) & (tl < cfg.loss_threshold)

        def step(carry, _):
            p, o, done = carry
            u, o = opt.update(jax.grad(B.loss)(p, x_tr, c_tr, cfg.target, start), o, p)
            return (jax.tree.map(lambda a, b: jnp.where(done, a, a - cfg.lr * b), p, u), o, done), None

        def block(carry, k):
            p, o, done, at = carry
            (p, o, _), _ = jax.lax.scan(step, (p, o, done), None, length=cfg.check_every)
            ok = converged(p) & ~done
            return (p, o, done | ok, jnp.where(ok, (k + 1) * cfg.check_every, at)), None

        done0 = converged(p0)
        carry = (p0, opt.init(p0), done0, jnp.where(done0, 0, budget))
        (p, _, done, at), _ = jax.lax.scan(block, carry, jnp.arange(budget // cfg.check_every))
        tl, errs = B.test_metrics(p, x_te, c_te, cfg.target, start)
        return done, at, p, B.loss(p, x_tr, c_tr, cfg.target, start), tl, errs

    args = (jnp.asarray(seeds, jnp.uint32), jnp.asarray(T), jnp.asarray(w0, jnp.float32), jnp.asarray(s, jnp.float32))
    return B.Result(*jax.device_get(references.jit(jax.vmap(one))(*args)))


# (T, w0, s, seed): three lengths in one call; under each optimiser some converge before any
# training, some at different checks, some never (members whose trajectories part at float32
# rounding within the budget, e.g. w growing without bound, are left out)
MEMBERS = [
    (20, 1.5, 0.01, 21),
    (11, 2.0, 0.2, 35),
    (5, 1.0, 0.05, 44),
    (5, 3.0, 0.05, 3),
    (5, 2.0, 0.2, 46),
    (5, 3.0, 0.2, 26),
    (5, 1.0, 0.2, 17),
    (11, 1.0, 0.2, 12),
    (20, 2.0, 0.05, 17),  # seed 16's Adam trajectory parts at rounding under Keras' Adam (test loss 1.4e-3 apart)
    (11, 1.0, 0.2, 35),
    (11, 1.5, 0.2, 29),
    (20, 1.5, 0.2, 25),
    (11, 1.5, 0.2, 38),
    (11, 1.0, 0.05, 16),
    (20, 1.0, 0.2, 44),
    (5, 1.0, 0.2, 13),
]


def _members_cfg(optimizer: str, lr: float):
    # 100 test sequences: six whole vectors of 16 and a part one
    return B.make_config(n_train=8, n_test=100, epochs=60, check_every=5, lr=lr, optimizer=optimizer)


@functools.cache  # each trainer is compared with the same reference
def _members_reference(optimizer: str, lr: float):
    return _vmapped_reference(_members_cfg(optimizer, lr), *map(np.array, zip(*MEMBERS)))


@pytest.mark.parametrize(
    "trainer, optimizer, lr",
    # the fallback is ``_train`` per length: one optimiser suffices (each compiles 3 times)
    [
        ("native", "sgd", 1.0),
        ("native", "adam", 0.05),
        ("native", "rmsprop", 0.02),
        ("jax", "adam", 0.05),
        pytest.param("arm", "adam", 0.05, marks=armtools.needs_arm),
        pytest.param("arm", "rmsprop", 0.02, marks=armtools.needs_arm),
        pytest.param("clang", "adam", 0.05, marks=needs_clang),
    ],
    indirect=["trainer"],
)
def test_ensemble_equals_the_vmapped_formulation(trainer, optimizer, lr):
    """Same checks passed (converged, epochs, wrong signs) and, to float32 rounding grown
    over 60 steps, the same parameters and losses."""
    ref = _members_reference(optimizer, lr)
    got = B.train_ensemble(_members_cfg(optimizer, lr), *map(np.array, zip(*MEMBERS)))
    np.testing.assert_array_equal(got.converged, ref.converged)
    np.testing.assert_array_equal(got.epochs, ref.epochs)
    np.testing.assert_array_equal(got.test_errors, ref.test_errors)
    for name, a, b in [("w", got.params.w, ref.params.w), ("h", got.params.h, ref.params.h)]:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)
    # the loss of a nearly saturated output moves ~100x its parameters' relative difference
    np.testing.assert_allclose(got.train_loss, ref.train_loss, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(got.test_loss, ref.test_loss, rtol=1e-3, atol=1e-6)
    ok = got.converged
    assert ok.any() and not ok.all() and (got.epochs[ok] == 0).any() and len(set(got.epochs[ok])) >= 3


@pytest.mark.parametrize(
    "trainer",
    ["native", pytest.param("arm", marks=armtools.needs_arm), pytest.param("clang", marks=needs_clang)],
    indirect=True,
)
def test_checks_decide_at_the_threshold(trainer):
    """The native trainer settles most checks on each member's first vector of test
    sequences (``screen``), the rest by whole checks that stop early: at a threshold that
    members pass with a test loss within 2 % of it, on 16 test sequences (one AVX-512
    vector; four NEON ones), the same checks pass as in the vmapped formulation."""
    cfg = B.make_config(n_train=8, n_test=16, epochs=60, check_every=5, lr=1.0, loss_threshold=0.02)
    members = [np.array(a) for a in zip(*MEMBERS)]
    ref = _vmapped_reference(cfg, *members)
    got = B.train_ensemble(cfg, *members)
    np.testing.assert_array_equal(got.converged, ref.converged)
    np.testing.assert_array_equal(got.epochs, ref.epochs)
    np.testing.assert_array_equal(got.test_errors, ref.test_errors)
    near = got.converged & (got.epochs > 0) & (got.test_loss > 0.98 * cfg.loss_threshold)
    assert near.any()  # a check passed at the threshold's edge


def test_before_training_the_metrics_are_the_models(native):
    """A budget of no step: each member's results are its initial parameters' loss and test
    metrics (``loss``, ``test_metrics`` on ``member_data``), for test sets of part of a SIMD
    vector, one vector, and several and a part. (A config refuses ``epochs`` that are no
    multiple of ``check_every``; the trainer's zero budget is made here by ``model_copy``,
    which does not validate, to see the initial check alone.)"""
    members = [(9, 1.5, 0.1, 3), (9, 0.5, 0.4, 8), (9, 2.5, 0.01, 1)]  # one length: fewer compilations
    T, w0, s, seeds = map(np.array, zip(*members))
    for n_test in (7, 16, 37):
        cfg = B.make_config(n_train=6, n_test=n_test, epochs=2, check_every=2).model_copy(update={"epochs": 1})
        got = B.train_ensemble(cfg, T, w0, s, seeds)
        assert (got.epochs == 0).all()
        for r, (T_r, w_r, s_r, seed_r) in enumerate(members):
            _, p, (tl, errs), train_loss = _initial(cfg, T_r, w_r, s_r, seed_r)
            assert got.test_errors[r] == errs and got.converged[r] == (errs == 0 and tl < cfg.loss_threshold)
            np.testing.assert_allclose(got.test_loss[r], tl, rtol=1e-6)
            np.testing.assert_allclose(got.train_loss[r], train_loss, rtol=1e-6)
            assert got.params.w[r] == p.w and (got.params.h[r] == p.h).all()


def test_a_members_results_do_not_depend_on_the_others(native):
    """Members trained in another order and other company (other lanes, other threads) come
    out the same, bit for bit."""
    cfg = B.make_config(n_train=8, n_test=60, epochs=30, check_every=5)
    rng = np.random.default_rng(4)
    T, w0, s, seeds = rng.choice([6, 9], 40), rng.choice([1.0, 2.0], 40), rng.choice([0.05, 0.2], 40), np.arange(40)
    whole = B.train_ensemble(cfg, T, w0, s, seeds)
    order = rng.permutation(40)[:23]
    part = B.train_ensemble(cfg, T[order], w0[order], s[order], seeds[order])
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(part)):
        np.testing.assert_array_equal(a[order], b)


def test_native_noise_is_member_data_and_compiles_once_per_set_size():
    """The native trainer's noise (steps after the trainable ones, time-major) and initial
    inputs are ``member_data``'s and ``init_params``', exactly; its draws compile once per
    number of sequences, whatever the lengths."""
    seeds, w0, s = np.array([3, 11], np.uint32), np.array([1.5, 2.0], np.float32), np.array([0.2, 0.05], np.float32)
    B._normal_rows.clear_cache()
    for T in (7, 12):
        h0, k_tr, k_te = B._member_keys(seeds, w0, jnp.float32(0.1), L=3)
        x_tr = B._time_major_noise(np.asarray(k_tr), np.sqrt(s), 3, T, 20)
        x_te = B._time_major_noise(np.asarray(k_te), np.sqrt(s), 3, T, 50)
        for r, seed in enumerate(seeds):
            k_init, k_data = B._keys(seed)
            ref = B.member_data(k_data, 20, 50, T, jnp.float32(s[r]))
            np.testing.assert_array_equal(x_tr[r], np.asarray(ref[0])[:, 3:].T)
            np.testing.assert_array_equal(x_te[r], np.asarray(ref[2])[:, 3:].T)
            np.testing.assert_array_equal(h0[r], B.init_params(k_init, 3, w0[r], 0.1).h)
    assert B._normal_rows._cache_size() == 2


@pytest.mark.parametrize("build", ["native", pytest.param("arm", marks=armtools.needs_arm)])
def test_native_draws_are_the_jax_draws(build, tmp_path):
    """``_native_draws`` (``prng.cpp``, here or built for ARM under emulation) gives the JAX
    path's initial inputs and noise (``_member_keys``, ``_time_major_noise``) bit for bit:
    seeds at both ends of their range, mixed variances, a trial of one noisy step."""
    from latchlab.engine import native

    so = native.prng() if build == "native" else armtools.ArmPrng(armtools.build("prng", tmp_path))
    if so is None:
        pytest.skip("no native random numbers here")
    cfg = B.make_config(n_train=6, n_test=40, h_init=0.3)
    seeds = np.array([0, 1, 12345, 2**31, 2**32 - 1], np.uint32)
    sd = np.sqrt(np.array([0.025, 0.2, 1.6, 0.0, 3.0], np.float32))
    for T in (cfg.L + 1, 11):
        h0, x_tr, x_te = B._native_draws(so, cfg, T, sd, seeds)
        want_h0, k_tr, k_te = B._member_keys(seeds, np.ones(5, np.float32), jnp.float32(0.3), L=cfg.L)
        want = (want_h0, *(B._time_major_noise(np.asarray(k), sd, cfg.L, T, n) for k, n in ((k_tr, 6), (k_te, 40))))
        for got, ref in zip((h0, x_tr, x_te), want):
            assert got.shape == np.shape(ref)
            np.testing.assert_array_equal(got.view(np.uint32), np.asarray(ref).view(np.uint32))


@pytest.mark.parametrize(
    "trainer",
    ["native", pytest.param("arm", marks=armtools.needs_arm), pytest.param("clang", marks=needs_clang)],
    indirect=True,
)
def test_members_sharing_their_seeds_draws_train_as_on_their_own(trainer):
    """``train_ensemble`` draws each seed's unit noise once, up to its members' longest
    length, and the kernel scales it by each member's own ``sqrt(s)`` as it reads it: the
    same bits as each member trained on its own scaled copy (the JAX-drawn path, which
    scales on the host), for seeds shared across lengths and variances and a seed alone.
    A product fused into the multiply-add that takes it (``scaled``) changes those bits."""
    from latchlab.engine import native

    so = native.prng()
    if so is None:
        pytest.skip("no native random numbers here")
    lib = native.bengio94()
    cfg = B.make_config(n_train=6, n_test=40, h_init=0.3, epochs=40, check_every=5, lr=0.5)
    rng = np.random.default_rng(7)
    seeds = rng.choice(np.array([5, 9, 2, 2**32 - 1], np.uint32), 48)
    T = rng.choice(np.array([4, 7, 11]), 48)
    s = rng.choice(np.array([0.025, 0.2, 1.6, 0.4, 0.05, 3.0, 0.1], np.float32), 48)
    w0 = rng.choice(np.array([0.7, 1.5, 3.0], np.float32), 48)
    d = B._seed_draws(so, cfg, T, seeds)
    assert len(d.h0) == 4 and (d.steps == 11 - cfg.L).all()  # each seed to its longest
    for length in np.unique(T):
        idx = np.flatnonzero(T == length)
        args = (cfg, int(length), w0[idx], s[idx], seeds[idx], lib)
        shared, own = B._train_native(*args, d), B._train_native(*args, None)
        assert 0 < shared.epochs.sum() and (shared.epochs < cfg.epochs).any() and not shared.converged.all()
        for got, ref in zip(jax.tree.leaves(shared), jax.tree.leaves(own)):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))


def test_converged_members_pass_the_criterion_on_their_test_set():
    cfg = B.make_config(n_train=20, n_test=200, epochs=100, check_every=10)
    n = 12
    r = B.train_ensemble(cfg, np.full(n, 10), np.full(n, 2.0), np.full(n, 0.05), np.arange(n))
    assert r.converged.sum() >= 3
    assert (r.test_errors[r.converged] == 0).all() and (r.test_loss[r.converged] < cfg.loss_threshold).all()
    assert (r.epochs[~r.converged] == cfg.epochs).all()


@pytest.mark.parametrize(
    "field, value",
    [
        ("L", 0),
        ("T", 3),
        ("n_train", 3),
        ("optimizer", "lbfgs"),
        ("lr", 0.0),
        ("target", 1.0),
        ("s_grid", (0.1, -0.2)),
        ("T_grid", (2, 10)),
        ("w0_grid", ()),
        ("epochs", 0),
        ("epochs", 25),  # not whole blocks of check_every=10: 20 epochs were trained (5: none)
        ("nope", 1),
    ],
)
def test_bad_config_values_raise_config_error(field, value):
    with pytest.raises(ConfigError) as info:
        B.make_config(**{field: value})
    assert info.value.field == field
