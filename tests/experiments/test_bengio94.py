"""Reference tests for ``latchlab.experiments.bengio1994`` (Bengio, Simard & Frasconi 1994).

* Fig. 1: fixed points of ``x -> tanh(w x)`` solve the fixed-point equation and their
  stability is ``|w (1 - x²)| < 1``; the analytic flip threshold ``h*(w)`` equals the peak
  of ``a - w tanh(a)`` on ``a < 0`` (scipy) and the threshold found by simulation alone.
* The model equals a numpy loop of ``a_t = w tanh(a_{t-1}) + h_t``; its gradient equals
  central finite differences in float64; left-padding with zero inputs is exact.
* The vmapped ensemble trainer equals a Python loop over members of plain gradient descent
  with the same data, convergence checks and freezing.
* Bad config values raise ``ConfigError`` naming the field.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from latchlab.experiments import bengio1994 as B
from latchlab.errors import ConfigError


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


def _loop_reference(cfg, T, w0, s, seed):
    """One member alone: its data from its seed, unpadded; plain gradient descent with the
    same convergence checks and freezing, in a Python loop."""
    k_init, k_data = B._keys(seed)
    x_tr, c_tr, x_te, c_te = B.member_data(k_data, cfg.n_train, cfg.n_test, T, jnp.float32(s))
    p = B.init_params(k_init, cfg.L, w0, cfg.h_init)
    grad = jax.jit(jax.grad(B.loss))

    def conv(p):
        tl, errs = B.test_metrics(p, x_te, c_te, cfg.target)
        return bool(errs == 0) and float(tl) < cfg.loss_threshold

    if conv(p):
        return True, 0, p
    for e in range(1, cfg.epochs + 1):
        g = grad(p, x_tr, c_tr, cfg.target)
        p = jax.tree.map(lambda a, b: a - cfg.lr * b, p, g)
        if e % cfg.check_every == 0 and conv(p):
            return True, e, p
    return False, cfg.epochs, p


def test_vmapped_ensemble_equals_a_loop_over_members():
    cfg = B.make_config(n_train=8, n_test=200, epochs=40, check_every=5, lr=1.0)
    members = [(20, 1.25, 0.05, 7), (12, 1.5, 0.02, 1), (8, 2.0, 0.02, 7), (12, 1.5, 0.02, 4)]
    T, w0, s, seeds = map(np.array, zip(*members))
    got = B.train_ensemble(cfg, T, w0, s, seeds)
    for r, (T_r, w_r, s_r, seed_r) in enumerate(members):
        done, epochs, p = _loop_reference(cfg, int(T_r), float(w_r), float(s_r), int(seed_r))
        assert got.converged[r] == done and got.epochs[r] == epochs, (r, got.converged[r], got.epochs[r], done, epochs)
        np.testing.assert_allclose(got.params.w[r], p.w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.params.h[r], p.h, rtol=1e-4, atol=1e-5)
    assert got.converged.any() and not got.converged.all()  # both outcomes are exercised


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
        ("nope", 1),
    ],
)
def test_bad_config_values_raise_config_error(field, value):
    with pytest.raises(ConfigError) as info:
        B.make_config(**{field: value})
    assert info.value.field == field
