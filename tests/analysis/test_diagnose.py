"""Diagnostics against references.

* ``measure``'s states, loss and metric are ``cells.scan``'s and ``model``'s for every cell,
  preset and head; its gates equal a numpy float64 loop (LSTM with sigmoid and hard
  sigmoid, GRU, SRNN contraction).
* ``measure``: ``dl/dh_t`` and ``dl/dc_t`` equal central finite differences of a numpy
  float64 forward pass perturbed at step t (x64), for an SRNN, an LSTM and both heads;
  and, for a one-unit SRNN, the analytic ``dl/dh_t = dl/dh_T prod_{s>t} U (1 - h_s^2)``;
  the whole state's gradient ``||dl/d(h_t, c_t)||`` equals finite differences of the
  whole state, and for an LSTM whose only path back is through ``c``, its closed form.
* ``fixed_points``: the one-unit SRNN's against ``scipy.optimize.brentq`` on
  ``tanh(w h + b) - h`` with slope ``w (1 - h^2)``; an LSTM's and a GRU's are fixed points of
  ``cells.step`` and every orbit of the input-free map ends on a listed stable one; a
  decoupled two-unit SRNN's are the products of the one-unit ones; a gate saturated at 1
  gives a ``marginal_line`` (GRU z = 1, LSTM f = 1 with a shut input gate, lstm_nofg),
  and ``dynamics`` classifies hand-made fixed-point sets.
* ``boundary``: where the head's predicted class flips on a fine grid of ``h``.
* ``member``: the data are the sweep's (``tasks.generate`` with the member's key and its
  split), and on the whole validation set the loss and accuracy equal the stored ones;
  ``members.member_from_row`` gives back every stored member's id and model.
* ``interop.from_keras``: Keras 3 SimpleRNN/LSTM + Dense give the Keras layer's states and
  logits, and the same diagnostics as the latchlab model with copied weights.
* ``latchlab diagnose`` end to end, and its one-line errors; ``adding`` and ``copy``
  members refused in one line naming the task.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from latchlab import config
from latchlab.core import catalog, cells
from latchlab.core import interop
from latchlab.analysis import diagnose as D
from latchlab.engine import run as runner
from latchlab.analysis import members
from latchlab.core import tasks
from latchlab.core import model as M
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError
from latchlab.store import Store

from clitools import assert_user_error, cli_here  # noqa: E402

LATCHLAB = Path(sys.executable).with_name("latchlab")


def _random_model(cell: Cell, head="dense2", seed=0, scale=0.7, n_in=1):
    params = M.init(jax.random.PRNGKey(seed), M.Model(cell, head, n_in))
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda a: np.asarray(scale * rng.normal(size=a.shape), np.float32), params)
    return M.Model(cell, head, n_in), params


def _batch(B=6, T=7, seed=1, n_in=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, n_in)).astype(np.float32)
    y = (np.arange(B) % 2).astype(np.int32)
    return x, y


ALL_CELLS = [Cell.from_preset(k, 2, p) for k in cells.CELLS for p in cells.PRESETS]


# ----------------------------------------------------------------------------- the model's own step and head


@pytest.mark.parametrize("head", ["dense2", "dense1"])
@pytest.mark.parametrize("cell", ALL_CELLS, ids=lambda c: f"{c.kind}{c.units}-{c.rsig}")
def test_measured_states_and_loss_are_the_models(cell, head):
    """``measure`` runs ``cells.step_gates`` and ``model.read_out``: its states are
    ``cells.scan``'s outputs, its loss and metric ``model.per_example`` of ``model.logits``
    (the same float32 operations, compiled in other programs: equal to a few ulps)."""
    model, params = _random_model(cell, head)
    x, y = _batch()
    p = jax.tree.map(jnp.asarray, params)
    m = D.measure(model, p, jnp.asarray(x), jnp.asarray(y))
    carry, hs = cells.scan(cell, p["cell"], jnp.asarray(x), return_sequences=True)
    np.testing.assert_allclose(np.asarray(m.h), np.asarray(hs), rtol=0, atol=1e-6)
    if cell.kind in D.LSTMS:
        np.testing.assert_allclose(np.asarray(m.c)[:, -1], np.asarray(carry[1]), rtol=0, atol=1e-6)
    else:
        np.testing.assert_array_equal(np.asarray(m.c), 0.0)
    loss, ok = M.per_example(model, M.logits(model, p, jnp.asarray(x)), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(m.loss), np.asarray(loss), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(m.correct), np.asarray(ok))
    assert np.asarray(m.gates).shape == (x.shape[0], x.shape[1], len(D.gate_names(cell)), cell.units)


def _np_rsig(rsig):
    return {"sigmoid": lambda z: 1 / (1 + np.exp(-z)), "hard_sigmoid": lambda z: np.clip(0.2 * z + 0.5, 0, 1)}[rsig]


def _np_lstm(p, x, rsig, dh=None, dc=None):
    """float64 LSTM: states, gates; optional perturbations ``dh, dc`` (T, B, H) added after each step."""
    W, U, b = (np.asarray(p[k], np.float64) for k in ("kernel", "recurrent", "bias"))
    H = U.shape[0]
    B, T = x.shape[:2]
    h, c = np.zeros((B, H)), np.zeros((B, H))
    hs, fs = [], []
    s = _np_rsig(rsig)
    for t in range(T):
        z = x[:, t] @ W + h @ U + b
        i, f, g, o = s(z[:, :H]), s(z[:, H : 2 * H]), np.tanh(z[:, 2 * H : 3 * H]), s(z[:, 3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        if dh is not None:
            h, c = h + dh[t], c + dc[t]
        hs.append(h)
        fs.append(f)
    return np.stack(hs, 1), np.stack(fs, 1), h


def _np_srnn(p, x, dh=None):
    W, U, b = (np.asarray(p[k], np.float64) for k in ("kernel", "recurrent", "bias"))
    h = np.zeros((x.shape[0], U.shape[0]))
    hs = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ W + h @ U + b)
        if dh is not None:
            h = h + dh[t]
        hs.append(h)
    return np.stack(hs, 1), h


def _np_loss(model, head, h, y):
    k, b = np.asarray(head["kernel"], np.float64), np.asarray(head["bias"], np.float64)
    z = h @ k + b
    if model.head == "dense2":
        m = z.max(1, keepdims=True)
        lse = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
        return lse - z[np.arange(len(y)), y]
    z = z[:, 0]
    return np.logaddexp(0, z) - y * z


@pytest.mark.parametrize("rsig", ["sigmoid", "hard_sigmoid"])
def test_lstm_gates_and_states_equal_numpy(rsig):
    cell = Cell("lstm", 2, rsig)
    model, params = _random_model(cell, scale=1.0)
    x, y = _batch(B=5, T=9)
    m = D.measure(model, jax.tree.map(jnp.asarray, params), jnp.asarray(x), jnp.asarray(y))
    hs, fs, _ = _np_lstm(params["cell"], x.astype(np.float64), rsig)
    np.testing.assert_allclose(np.asarray(m.h), hs, atol=2e-6)
    np.testing.assert_allclose(np.asarray(m.gates)[:, :, D.gate_names(cell).index("f")], fs, atol=2e-6)


def test_srnn_contraction_and_gru_retention_equal_numpy():
    model, params = _random_model(Cell("srnn", 1), scale=1.2)
    x, y = _batch(T=11)
    m = D.measure(model, params, jnp.asarray(x), jnp.asarray(y))
    hs, _ = _np_srnn(params["cell"], x.astype(np.float64))
    U = float(params["cell"]["recurrent"][0, 0])
    np.testing.assert_allclose(np.asarray(m.gates)[:, :, 0, 0], np.abs(U * (1 - hs[..., 0] ** 2)), atol=2e-6)
    # GRU (reset_before, hard sigmoid): z_t = rsig(x W_z + h_{t-1} U_z + b_z)
    model, params = _random_model(Cell.from_preset("gru", 1, "keras2"), scale=1.0)
    m = D.measure(model, params, jnp.asarray(x), jnp.asarray(y))
    W, U, b = (np.asarray(params["cell"][k], np.float64) for k in ("kernel", "recurrent", "bias"))
    h = np.zeros((x.shape[0], 1))
    zs = []
    s = _np_rsig("hard_sigmoid")
    for t in range(x.shape[1]):
        z = s(x[:, t] @ W[:, :1] + h @ U[:, :1] + b[:1])
        r = s(x[:, t] @ W[:, 1:2] + h @ U[:, 1:2] + b[1:2])
        hh = np.tanh(x[:, t] @ W[:, 2:] + (r * h) @ U[:, 2:] + b[2:])
        h = z * h + (1 - z) * hh
        zs.append(z)
    np.testing.assert_allclose(np.asarray(m.gates)[:, :, 0], np.stack(zs, 1), atol=2e-6)
    np.testing.assert_allclose(np.asarray(m.h)[:, -1], h, atol=2e-6)


# ----------------------------------------------------------------------------- gradients


def _fd_grads(kind, model, params, x, y, d=1e-6):
    """Central finite differences ``(l(s_t + d e_j) - l(s_t - d e_j)) / 2d`` of each example's
    loss in a numpy float64 forward pass, for every component of ``h_t`` and (LSTM) ``c_t``:
    ``(fd_h, fd_c)``, each (B, T, H) (``fd_c`` zeros for the SRNN)."""
    B, T = x.shape[:2]
    H = model.cell.units
    x64_ = x.astype(np.float64)

    def loss(dh, dc):
        if kind == "srnn":
            h = _np_srnn(params["cell"], x64_, dh)[1]
        else:
            h = _np_lstm(params["cell"], x64_, "sigmoid", dh, dc)[2]
        return _np_loss(model, params["head"], h, y)

    out = {"h": np.zeros((B, T, H)), "c": np.zeros((B, T, H))}
    for which in ("h", "c") if kind != "srnn" else ("h",):
        for t in range(T):
            for j in range(H):
                e = np.zeros((T, B, H))
                e[t, :, j] = d
                z = np.zeros((T, B, H))
                plus = loss(e, z) if which == "h" else loss(z, e)
                minus = loss(-e, z) if which == "h" else loss(z, -e)
                out[which][:, t, j] = (plus - minus) / (2 * d)
    return out["h"], out["c"]


@pytest.mark.parametrize("kind,head", [("srnn", "dense2"), ("srnn", "dense1"), ("lstm", "dense2"), ("lstm", "dense1")])
def test_gradient_through_time_equals_finite_differences(x64, kind, head):
    """Every ``dl_b/dh_t`` (and ``dl_b/dc_t``) against ``(l(h_t + d) - l(h_t - d)) / 2d`` of
    a numpy float64 forward pass, d = 1e-6, atol 1e-8 / rtol 1e-5."""
    cell = Cell(kind, 2)
    model, params = _random_model(cell, head, scale=0.9)
    x, y = _batch(B=4, T=6)
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    m = D.measure(model, p64, jnp.asarray(x, jnp.float64), jnp.asarray(y))
    assert m.grad_h.dtype == jnp.float64
    x64_ = x.astype(np.float64)
    fd_h, fd_c = _fd_grads(kind, model, params, x, y)
    np.testing.assert_allclose(np.asarray(m.grad_h), fd_h, rtol=1e-5, atol=1e-8)
    if kind == "srnn":
        np.testing.assert_array_equal(np.asarray(m.grad_c), 0.0)
    else:
        np.testing.assert_allclose(np.asarray(m.grad_c), fd_c, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(
        np.asarray(m.loss),
        _np_loss(
            model,
            params["head"],
            _np_srnn(params["cell"], x64_)[1] if kind == "srnn" else _np_lstm(params["cell"], x64_, "sigmoid")[2],
            y,
        ),
        rtol=1e-12,
    )


@pytest.mark.parametrize("kind", ["srnn", "lstm"])
def test_whole_state_gradient_equals_finite_differences(x64, kind):
    """``||dl_b/ds_t||`` of the whole state ``s_t = (h_t, c_t)`` (``h_t`` for the SRNN) is the
    norm of the finite differences over all its components; the ``whole`` rows of the
    gradient frame and the summary's whole-state numbers are its means and median ratio."""
    model, params = _random_model(Cell(kind, 2), "dense2", scale=0.9)
    x, y = _batch(B=6, T=6)
    fd_h, fd_c = _fd_grads(kind, model, params, x, y)
    want = np.sqrt((fd_h**2).sum(-1) + (fd_c**2).sum(-1))  # (B, T)
    p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    m = D.measure(model, p64, jnp.asarray(x, jnp.float64), jnp.asarray(y))
    np.testing.assert_allclose(D.state_gradient_norms(m)[2], want, rtol=1e-5, atol=1e-8)
    d = D.analyse(model, params, x, y, parts=("gradients", "summary"))  # float32
    g = d.gradients[d.gradients.state == "whole"].sort_values(["class", "t"])
    np.testing.assert_allclose(g.grad_norm, np.concatenate([want[y == k].mean(0) for k in (0, 1)]), rtol=2e-4)
    s = d.summary.iloc[0]
    assert s.grad_ratio_state_median == pytest.approx(np.median(want[:, 0] / want[:, -1]), rel=2e-4)
    assert s.grad_first_state == pytest.approx(want[:, 0].mean(), rel=2e-4)
    assert s.grad_last_state == pytest.approx(want[:, -1].mean(), rel=2e-4)
    if kind == "srnn":  # the state is h
        h = d.gradients[d.gradients.state == "h"].sort_values(["class", "t"])
        np.testing.assert_array_equal(g.grad_norm, h.grad_norm)
        assert s.grad_ratio_state_median == s.grad_ratio_median
    else:
        assert set(d.gradients.state) == {"h", "c", "whole"}


def test_lstm_whole_state_gradient_through_c_alone():
    """One LSTM unit with no recurrent weights and a constant forget gate ``f = sigmoid(b_f)``:
    ``h_t`` (t < T) reaches the loss through nothing, ``c_t`` through ``c_T`` only, so
    ``dl/dh_t = 0`` and ``dl/dc_t = dl/dh_T o_T (1 - tanh^2 c_T) f^(T - t)``: the h-only ratio
    is 0 while the whole state's is ``o_T (1 - tanh^2 c_T) f^(T-1)``."""
    model, params = _random_model(Cell("lstm", 1), "dense2", scale=1.0)
    params["cell"]["recurrent"][:] = 0.0
    params["cell"]["kernel"][0, 1] = 0.0  # no input to the forget gate
    params["cell"]["bias"][1] = 2.0
    f = 1.0 / (1.0 + np.exp(-2.0))
    x, y = _batch(B=8, T=9)
    m = D.measure(model, params, jnp.asarray(x), jnp.asarray(y))
    W, b = (np.asarray(params["cell"][k], np.float64) for k in ("kernel", "bias"))
    c = np.asarray(m.c, np.float64)[:, -1, 0]
    o = 1.0 / (1.0 + np.exp(-(x[:, -1].astype(np.float64) @ W[:, 3:4] + b[3])))[:, 0]
    gh, gc, gs = D.state_gradient_norms(m)
    np.testing.assert_array_equal(gh[:, :-1], 0.0)
    ratio = o * (1 - np.tanh(c) ** 2) * f ** np.arange(8, 0, -1)[:, None]  # (T-1, B): t = 1 .. T-1
    np.testing.assert_allclose(gs[:, :-1], (gh[:, -1] * ratio).T, rtol=2e-5)
    s = D.summary(model, params, x, y).iloc[0]
    assert s.grad_ratio_median == 0.0
    assert s.grad_ratio_state_median == pytest.approx(np.median(ratio[0]), rel=2e-5)


def test_one_unit_srnn_gradient_is_product_of_contractions():
    """``dl/dh_t = dl/dh_T prod_{s=t+1}^T U (1 - h_s^2)``; so the summary's gradient ratio
    equals its retained product of contractions."""
    model, params = _random_model(Cell("srnn", 1), scale=1.0)
    params["cell"]["recurrent"][:] = 1.1
    x, y = _batch(B=8, T=12)
    m = D.measure(model, params, jnp.asarray(x), jnp.asarray(y))
    h, g = np.asarray(m.h, np.float64)[..., 0], np.asarray(m.grad_h, np.float64)[..., 0]
    fac = 1.1 * (1 - h**2)  # (B, T): dh_s/dh_{s-1}
    for t in range(12):
        np.testing.assert_allclose(g[:, t], g[:, -1] * np.prod(fac[:, t + 1 :], 1), rtol=2e-5)
    s = D.summary(model, params, x, y)
    assert s.grad_ratio_median[0] == pytest.approx(s.retained_median[0], rel=1e-4)
    gt = D.gradient_through_time(model, params, x, y)
    pos = gt[(gt["class"] == 1) & (gt.t == 1)].grad_norm.iloc[0]
    assert pos == pytest.approx(np.abs(g[y == 1, 0]).mean(), rel=1e-6)


def test_half_life():
    assert D.half_life(0.5) == pytest.approx(1.0)
    f = np.array([0.7, 0.9, 0.99])
    np.testing.assert_allclose(f ** D.half_life(f), 0.5)
    assert D.half_life(1.0) == np.inf and D.half_life(0.0) == 0.0


# ----------------------------------------------------------------------------- fixed points


def _srnn_params(w, b):
    return {
        "cell": {
            "kernel": np.ones((1, 1), np.float32),
            "recurrent": np.full((1, 1), w, np.float32),
            "bias": np.full((1,), b, np.float32),
        },
        "head": {"kernel": np.array([[-1.0, 1.0]], np.float32), "bias": np.zeros(2, np.float32)},
    }


@pytest.mark.parametrize(
    "w,b",
    # the last three: strong latches, whose attractors lie within 5e-4 of ±1 (w + b > 4.15),
    # past the search grid's last point: they were missed (the map called monostable or
    # without attractor); at w = 8 float32's tanh rounds the attractors to ±1 itself
    [(0.5, 0.0), (1.5, 0.0), (2.0, 0.3), (3.0, -0.5), (-2.0, 0.1), (1.25, 0.05), (4.2, 0.0), (8.0, 0.0), (3.0, 1.2)],
)
def test_srnn_fixed_points_equal_brentq(w, b):
    model = M.Model(Cell("srnn", 1))
    fp = D.fixed_points(model, _srnn_params(w, b))
    g = lambda h: np.tanh(w * h + b) - h  # noqa: E731
    grid = np.linspace(-1 + 1e-9, 1 - 1e-9, 200001)
    v = g(grid)
    ref = [brentq(g, grid[i], grid[i + 1]) for i in np.flatnonzero(v[:-1] * v[1:] < 0)]
    ref += list(grid[v == 0])
    ref = np.sort(ref)
    np.testing.assert_allclose(fp.h, ref, atol=1e-5)
    slope = w * (1 - ref**2)
    np.testing.assert_allclose(fp.slope, slope, atol=1e-4)
    np.testing.assert_array_equal(fp.stable, np.abs(slope) < 1)
    if b == 0.0:  # Bengio 1994 Fig. 1: w > 1 gives two stable attractors ±h̄ and 0 unstable
        assert fp.stable.sum() == (2 if w > 1 else 1)


@pytest.mark.parametrize(
    "cell",
    [
        Cell("lstm", 1, "sigmoid"),
        Cell("lstm", 1, "hard_sigmoid"),
        Cell("gru", 1, "sigmoid", True),
        Cell("janet", 1, "sigmoid"),
    ],
    ids=["lstm", "lstm-hard", "gru", "janet"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gated_fixed_points_are_fixed_and_attract_the_orbits(cell, seed):
    model, params = _random_model(cell, seed=seed, scale=2.0)
    fp = D.fixed_points(model, params)
    assert len(fp) >= 1
    cp = jax.tree.map(jnp.asarray, params["cell"])
    xw = cells.input_projection(cell, cp, jnp.zeros((1, 1)))
    lstm = cell.kind == "lstm"
    for r in fp.itertuples():
        carry = (jnp.array([[r.h]]), jnp.array([[r.c]])) if lstm else jnp.array([[r.h]])
        new = cells.step(cell, cp, carry, xw)
        np.testing.assert_allclose(
            np.concatenate([np.ravel(a) for a in jax.tree.leaves(new)]),
            np.concatenate([np.ravel(a) for a in jax.tree.leaves(carry)]),
            atol=2e-5,
        )
    # orbits from 64 starts of the input-free map, 3000 steps: each ends near a stable point
    rng = np.random.default_rng(seed)
    h0 = rng.uniform(-1, 1, (64, 1)).astype(np.float32)
    carry = (jnp.asarray(h0), jnp.asarray(rng.uniform(-2, 2, (64, 1)), jnp.float32)) if lstm else jnp.asarray(h0)
    xw64 = jnp.tile(xw, (64, 1))
    carry = jax.lax.fori_loop(0, 3000, lambda _, c: cells.step(cell, cp, c, xw64), carry)
    moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a - b))[:, 0], cells.step(cell, cp, carry, xw64), carry)
    stopped = np.max(np.stack(jax.tree.leaves(moved)), 0) < 1e-6
    assert stopped.mean() >= 0.75  # the others drift slowly along a near-neutral stretch
    ends = np.asarray(cells.output(cell, carry))[:, 0][stopped]
    att = fp[fp.kind != "unstable"]
    assert len(att) >= 1
    near = (np.abs(ends[:, None] - att.h.to_numpy()[None, :]) < 1e-3) | (
        (ends[:, None] >= att.h_lo.to_numpy()[None, :]) & (ends[:, None] <= att.h_hi.to_numpy()[None, :])
    )
    assert near.any(1).all()


def test_two_unit_decoupled_srnn_fixed_points_are_products():
    """U = diag(1.5, 0.5), b = 0: unit 0 has 0 (unstable) and ±h̄ (stable), unit 1 only 0."""
    cell = Cell("srnn", 2)
    p = {
        "cell": {
            "kernel": np.ones((1, 2), np.float32),
            "recurrent": np.diag([1.5, 0.5]).astype(np.float32),
            "bias": np.zeros(2, np.float32),
        }
    }
    fp = D.fixed_points(cell, p)
    hbar = brentq(lambda h: np.tanh(1.5 * h) - h, 0.1, 1.0)
    np.testing.assert_allclose(fp.h, [-hbar, 0.0, hbar], atol=1e-5)
    np.testing.assert_allclose([s[1] for s in fp.state], 0.0, atol=1e-5)
    assert list(fp.kind) == ["stable", "unstable", "stable"]


# ----------------------------------------------------------------------------- head


@pytest.mark.parametrize("head", ["dense2", "dense1"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_boundary_is_where_the_prediction_flips(head, seed):
    model, params = _random_model(Cell("srnn", 1), head, seed=seed, scale=0.5)
    b = D.boundary(model, params)
    hs = np.linspace(-3, 3, 600001, dtype=np.float64)
    z = hs[:, None] * np.asarray(params["head"]["kernel"], np.float64)[0] + np.asarray(params["head"]["bias"])
    pos = z[:, 1] > z[:, 0] if head == "dense2" else z[:, 0] > 0
    flip = np.flatnonzero(pos[1:] != pos[:-1])
    if flip.size == 0:
        assert not -3 < b.h < 3
    else:
        assert flip.size == 1 and abs(hs[flip[0]] - b.h) < 2e-5
        assert b.positive_above == bool(pos[-1])


# ----------------------------------------------------------------------------- stored members

TOML = """\
name = "diag-test"
repeats = 1
seed = 3
N = 80
epochs = 2
T = 5
preset = "keras2"
[grid]
cell = ["srnn", "lstm"]
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    d = tmp_path_factory.mktemp("diag")
    (d / "s.toml").write_text(TOML)
    path = d / "store.sqlite"
    with Store(path) as st:
        runner.run(config.load(d / "s.toml"), st)
    return path


def test_member_data_are_the_sweeps(store):
    with Store(store, create=False) as st:
        row = st.members().iloc[0]
        x, y, source = D.member_data(row, N=16)
    assert source == "validation"
    key = jax.random.split(jax.random.PRNGKey(int(row.seed)), 3)
    xa, ya = tasks.generate("latch", key[0], 80, 5)
    _, val = tasks.split_indices(key[1], ya, 0.2, "stratified")
    np.testing.assert_array_equal(x, np.asarray(xa)[val])
    np.testing.assert_array_equal(y, np.asarray(ya)[val])


def test_member_on_whole_validation_set_equals_stored_metrics(store):
    """N = the validation set (16 of 80, 8 per class): diagnose's loss and accuracy after each
    epoch equal those the sweep stored."""
    with Store(store, create=False) as st:
        for mid in st.members().member_id:
            d = D.member(st, mid, N=16)
            s = d.summary[d.summary.epoch >= 1]
            np.testing.assert_allclose(s.accuracy, s.val_acc, atol=1e-6)
            np.testing.assert_allclose(s.loss, s.val_loss, rtol=1e-5)
            assert list(d.summary.epoch) == [0, 1, 2]
            assert set(d.gradients.epoch) == {0, 1, 2} and d.gradients.t.max() == 5
            assert (d.fixed_points.groupby("epoch").size() >= 1).all()
            col = 2 if d.model.cell.kind == "lstm" else 0  # the candidate block: U_c, or the SRNN's U
            assert d.summary.recurrent[0] == st.params(mid, 0)["cell"]["recurrent"][0, col]


def test_member_errors(store):
    with Store(store, create=False) as st:
        with pytest.raises(ConfigError, match="matches no member.*latchlab export"):
            D.member(st, "zz")
        with pytest.raises(ConfigError, match="matches 2 members"):
            D.member(st, "")
        mid = st.members().member_id[0]
        with pytest.raises(ConfigError, match="epochs"):
            D.member(st, mid, epochs=[3])
        with pytest.raises(ConfigError, match="N"):
            D.member(st, mid, N=1)
        with pytest.raises(ConfigError, match="N: must be an even"):
            D.member(st, mid, N=3)
    assert D.parse_epochs("all", 2) == [0, 1, 2] and D.parse_epochs("2,0", 2) == [0, 2]
    for text in ("x", "0,,1", "1,", ""):  # an empty item is refused, as by every list option (``--T 5,,20``)
        with pytest.raises(ConfigError, match="epochs"):
            D.parse_epochs(text, 2)


def test_adding_and_copy_members_are_refused_in_one_line(tmp_path):
    """Diagnostics are per class: a member of ``adding`` or ``copy`` (a regression or
    per-step head) is refused naming its task and the tasks diagnose measures, by
    ``member``, by ``analyse`` (naming the head) and by ``latchlab diagnose`` (exit 2, one
    line, nothing written)."""
    cfg = config.from_dict(
        {"name": "heads", "repeats": 1, "N": 16, "epochs": 1, "grid": {"task": ["adding", "copy"], "T": [21]}}
    )
    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        runner.run(cfg, st)
        rows = st.members()
    assert sorted(rows.task) == ["adding", "copy"]
    for mid, task in zip(rows.member_id, rows.task):
        with Store(path, create=False) as st:
            with pytest.raises(ConfigError, match=f"^task: member {mid} trained on {task} .*allowed: latch, "):
                D.member(st, mid)
        out = tmp_path / f"out-{task}"
        rc, stdout, err = cli_here("diagnose", path, "--member", mid, "--out", out)
        assert_user_error(rc, stdout, err, "task", (task, *catalog.CLASS_TASKS))
        assert not out.exists()
    model = M.Model(Cell("srnn", 1), "linear", 2)
    with pytest.raises(ConfigError, match="^head: .*not head 'linear'"):
        D.analyse(model, M.init(jax.random.PRNGKey(0), model), np.zeros((4, 3, 2)), np.zeros(4))


@pytest.mark.slow
def test_cli_diagnose(store, tmp_path, xla_cache):
    env = {**os.environ, "LATCHLAB_CACHE": str(xla_cache)}
    with Store(store, create=False) as st:
        mid = st.members().member_id[1]
    out = tmp_path / "out"
    p = subprocess.run(
        [str(LATCHLAB), "diagnose", str(store), "--member", mid[:6], "--out", str(out), "--N", "16"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    for f in ("gradient_through_time.png", "retention.png", "dynamics.png", "summary.csv"):
        assert (out / f).stat().st_size > 1000 or f.endswith(".csv")
    s = pd.read_csv(out / "summary.csv")
    assert list(s.epoch) == [0, 1, 2]
    np.testing.assert_allclose(s.accuracy[1:], s.val_acc[1:], atol=1e-6)
    p = subprocess.run(
        [str(LATCHLAB), "diagnose", str(store), "--member", "nope", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and p.stderr.startswith("error: member:")


# ----------------------------------------------------------------------------- Keras


@pytest.mark.parametrize("kind", ["srnn", "lstm"])
def test_from_keras_equals_copied_weights(kind):
    keras = pytest.importorskip("keras")
    with jax.numpy_rank_promotion("allow"):  # Keras' own ops promote ranks
        _keras_equals_copied_weights(keras, kind)


def _keras_equals_copied_weights(keras, kind):
    rng = np.random.default_rng(0)
    x, y = _batch(B=8, T=10)
    layer = keras.layers.SimpleRNN(1) if kind == "srnn" else keras.layers.LSTM(1)
    dense = keras.layers.Dense(2, activation="softmax")
    km = keras.Sequential([keras.Input((10, 1)), layer, dense])
    for L in (layer, dense):
        L.set_weights([(0.8 * rng.normal(size=w.shape)).astype(np.float32) for w in L.get_weights()])
    km_ = interop.from_keras(km)
    model, params = km_.model, km_.params
    assert model.head == "dense2" and model.cell.kind == kind
    # the latchlab model's states and logits are Keras' own
    seq = (
        keras.layers.SimpleRNN(1, return_sequences=True)
        if kind == "srnn"
        else keras.layers.LSTM(1, return_sequences=True)
    )
    seq(x)
    seq.set_weights(layer.get_weights())
    tr = D.trajectories(model, params, x, y, n_examples=8)
    ex = tr[tr.example >= 0].sort_values(["class", "example", "t"])
    hk = np.asarray(seq(x))[..., 0]  # (B, T)
    np.testing.assert_allclose(km_(x)[..., 0], hk, atol=1e-6)  # called: the layer's output sequence
    want = np.concatenate([np.c_[np.zeros(4), hk[y == k]].ravel() for k in (0, 1)])
    np.testing.assert_allclose(ex.h, want, atol=1e-6)
    probs = np.asarray(km(x))
    logits = np.asarray(M.logits(model, params, jnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(logits)), probs, atol=1e-6)
    # the same diagnostics as the latchlab model built by hand with the copied weights
    ws = layer.get_weights()
    cell = Cell(kind, 1, "sigmoid")
    own = {
        "cell": {"kernel": ws[0], "recurrent": ws[1], "bias": ws[2]},
        "head": {"kernel": dense.get_weights()[0], "bias": dense.get_weights()[1]},
    }
    a = D.analyse(model, params, x, y)
    b = D.analyse(M.Model(cell, "dense2"), own, x, y)
    for name in ("gradients", "retention", "trajectories", "fixed_points", "summary"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    # and through the layer plus the Dense layer, or the layer plus the head's weights
    for km2 in (
        interop.from_keras(layer, dense),
        interop.from_keras(layer, {"kernel": dense.get_weights()[0], "bias": dense.get_weights()[1]}),
    ):
        c = D.analyse(km2.model, km2.params, x, y)
        pd.testing.assert_frame_equal(a.summary, c.summary)


def test_from_keras_rejects_bad_heads():
    keras = pytest.importorskip("keras")
    with jax.numpy_rank_promotion("allow"):
        layer = keras.layers.LSTM(1)
        layer(np.zeros((1, 3, 1), np.float32))
        dense = keras.layers.Dense(2, activation="relu")
        dense(np.zeros((1, 1), np.float32))
    with pytest.raises(ConfigError, match="^head: .*activation softmax or linear, got relu"):
        interop.from_keras(layer, dense)
    with pytest.raises(ConfigError, match="^head: .*without a Dense head"):
        interop.from_keras(layer).model  # the layer alone has no head
    with pytest.raises(ConfigError, match="^head: need kernel"):
        interop.from_keras(layer, {"kernel": np.zeros((2, 2)), "bias": np.zeros(2)})


def test_saturated_hard_sigmoid_gru_is_a_line_of_fixed_points():
    """Keras 2 GRU with update bias 5 and |U_z| <= 1: ``z = clip(0.2 (5 + U_z h) + 0.5) = 1`` for
    every ``h`` in [-1, 1], so every state is fixed (``h = z h``): one marginal row spanning
    the grid."""
    cell = Cell.from_preset("gru", 1, "keras2")
    model, params = _random_model(cell, seed=0, scale=0.5)
    params["cell"]["bias"][0] = 5.0
    params["cell"]["recurrent"][0, 0] = 0.5
    fp = D.fixed_points(model, params)
    assert len(fp) == 1 and fp.kind[0] == "marginal_line" and not fp.stable[0]
    assert fp.h_lo[0] == pytest.approx(-1, abs=1e-3) and fp.h_hi[0] == pytest.approx(1, abs=1e-3)
    assert D.dynamics(fp) == "marginal_line"
    h = jnp.linspace(-0.99, 0.99, 7)[:, None]
    xw = cells.input_projection(cell, jax.tree.map(jnp.asarray, params["cell"]), jnp.zeros((7, 1)))
    np.testing.assert_array_equal(np.asarray(cells.step(cell, params["cell"], h, xw)), np.asarray(h))


@pytest.mark.parametrize("kind", ["lstm", "lstm_nofg"])
def test_saturated_hard_sigmoid_lstm_is_a_line_of_fixed_points(kind):
    """Keras 2 gates with ``b_f = 5``, ``b_i = -5`` and ``|U| <= 0.5``: ``f = 1`` and ``i = 0``
    for every ``h`` in [-1, 1], so ``c`` is kept as it is (a perfect integrator with a shut
    input) and every ``(h, atanh(h / o(h)))`` with ``|h| < o(h)`` is fixed: one
    ``marginal_line`` row spanning the ``h`` that ``o`` allows, not 'not bistable'."""
    cell = Cell.from_preset(kind, 1, "keras2")
    gates = cell.gates
    model, params = _random_model(cell, seed=1, scale=0.5)
    params["cell"]["recurrent"][:] = 0.5
    params["cell"]["bias"][gates.index("i")] = -5.0
    if "f" in gates:
        params["cell"]["bias"][gates.index("f")] = 5.0
    params["cell"]["bias"][gates.index("o")] = 1.0
    fp = D.fixed_points(model, params)
    assert list(fp.kind) == ["marginal_line"] and not fp.stable.any()
    # the line's ends: |h| = o(h) = 0.2 (1 + 0.5 h) + 0.5, i.e. h = 0.7 / 0.9 and -0.7 / 1.1
    assert fp.h_lo[0] == pytest.approx(-0.7 / 1.1, abs=1e-3) and fp.h_hi[0] == pytest.approx(0.7 / 0.9, abs=1e-3)
    cp = jax.tree.map(jnp.asarray, params["cell"])
    xw = cells.input_projection(cell, cp, jnp.zeros((1, 1)))
    for h in (fp.h_lo[0], 0.1, fp.h[0], 0.5):  # points on the line are fixed by cells.step
        o = 0.2 * (1 + 0.5 * h) + 0.5
        carry = (jnp.array([[h]], jnp.float32), jnp.array([[np.arctanh(h / o)]], jnp.float32))
        new = cells.step(cell, cp, carry, xw)
        np.testing.assert_allclose(np.asarray(new[0]), np.asarray(carry[0]), atol=2e-5)
        np.testing.assert_array_equal(np.asarray(new[1]), np.asarray(carry[1]))
    x, y = _batch()
    s = D.summary(model, params, x, y).iloc[0]
    assert s.marginal_line and not s.bistable and s.dynamics == "marginal_line"


def _fp(*kinds):
    return pd.DataFrame({"kind": list(kinds), "stable": [k == "stable" for k in kinds]})


@pytest.mark.parametrize(
    "kinds,want",
    [
        (("stable", "unstable", "stable"), "bistable"),
        (("stable", "marginal_line", "stable"), "bistable"),
        (("marginal_line",), "marginal_line"),
        (("stable", "marginal_line"), "marginal_line"),
        (("stable",), "monostable"),
        (("unstable", "stable", "unstable"), "monostable"),
        (("unstable",), "no_attractor"),
        (("marginal",), "no_attractor"),
        ((), "no_attractor"),
    ],
)
def test_dynamics_classes(kinds, want):
    assert D.dynamics(_fp(*kinds)) == want
    assert want in D.DYNAMICS


def test_summary_columns_are_documented():
    model, params = _random_model(Cell("lstm", 1))
    x, y = _batch()
    s = D.summary(model, params, x, y)
    assert list(s.columns) == list(D.SUMMARY_COLUMNS)


def test_member_from_row_is_the_stored_member(store):
    """Every stored row gives back the member the sweep ran: its id (the hash of the whole
    configuration and seed) and its model."""
    cfg = config.load(Path(store).parent / "s.toml")
    want = {m.id: m for m in cfg.members()}
    with Store(store, create=False) as st:
        rows = st.members()
        for _, row in rows.iterrows():
            m = members.member_from_row(row)
            assert m.id == row.member_id and m.run.to_dict() == want[m.id].run.to_dict()
            assert m.run.model == want[m.id].run.model and m.seed == want[m.id].seed
            assert members.label(row).startswith(f"member {m.id[:8]}: {m.run.cell} (1 unit, keras2, dense2)")
        row = rows.iloc[0]
    assert members.checked_epochs(row, [2, 0, 2]) == [2, 0]
    for bad in ([3], [-1], [True], [0.5], []):
        with pytest.raises(ConfigError, match="^epochs: must be epochs in \\[0, 2\\]"):
            members.checked_epochs(row, bad)
    with pytest.raises(ConfigError, match="^epoch: must be an integer in \\[0, 2\\].*got 3$"):
        members.checked_epochs(row, [3], "epoch")


def test_multi_unit_retention_is_the_documented_rate():
    """With more units, ``retention_geomean`` is the geometric mean over batch, steps and
    units, and ``half_life`` its half-life, as ``SUMMARY_COLUMNS`` says: two LSTM units that
    retain 0.5 and 0.982 a step keep sqrt(0.5 * 0.982) = 0.70 (half-life 1.95 steps). The
    summary gave the units' mean geometric mean, 0.74, and their mean half-life, 19.6."""
    model = M.Model(Cell.from_preset("lstm", 2, "keras3"), "dense2")
    x, y = tasks.generate("latch", jax.random.PRNGKey(0), 64, 10)
    p = jax.device_get(M.init(jax.random.PRNGKey(1), model, "keras"))
    bias = np.array(p["cell"]["bias"])
    bias[2:4] = [0.0, 4.0]  # the forget biases of units 0 and 1; no weight moves a gate
    p["cell"] = {**p["cell"], "bias": bias}
    p["cell"]["recurrent"] = np.zeros_like(p["cell"]["recurrent"])
    p["cell"]["kernel"] = np.zeros_like(p["cell"]["kernel"])
    s = D.summary(model, [p], x, y).iloc[0]
    f = 1 / (1 + np.exp(-np.array([0.0, 4.0])))
    assert s.retention_geomean == pytest.approx(np.sqrt(f.prod()), rel=1e-6)
    assert s.half_life == pytest.approx(np.log(0.5) / np.log(np.sqrt(f.prod())), rel=1e-6)
    assert s.retention_mean == pytest.approx(f.mean(), rel=1e-6)
