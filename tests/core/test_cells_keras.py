"""Reference tests for ``latchlab.core.cells`` and ``latchlab.core.interop``.

* Parity with Keras 3 recurrent layers (JAX backend) with random weights copied across.
* Keras 2's ``hard_sigmoid`` LSTM / GRU, ``lstm_nofg`` and ``janet`` against plain numpy
  float64 loops written here from the equations.
* ``step_gates``: its gate blocks and new carry against one numpy float64 step of every
  cell (``step`` is its first output).
* ``interop.from_keras``: a layer alone, a layer with its Dense head, a Keras model.
* ``init_params`` conventions (keras, chrono, explicit values).

Keras itself relies on implicit rank promotion (its ``Orthogonal`` initializer, for one),
so every test here runs under ``jax.numpy_rank_promotion("allow")``; the conftest's
``"raise"`` policy is checked for latchlab on its own in the ``rank_promotion`` tests.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

from latchlab.core import cells
from latchlab.core import interop
from latchlab.core import model as M
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError

ATOL = 1e-5
B, T = 4, 7


@pytest.fixture(autouse=True)
def _allow_rank_promotion():
    with jax.numpy_rank_promotion("allow"):
        yield


# ----------------------------------------------------------------------------- helpers


def _inputs(n_in, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=(B, T, n_in))).astype(np.float32)


def _keras_layer(kind, units, reset_after=True, **kw):
    if kind == "srnn":
        return keras.layers.SimpleRNN(units, return_sequences=True, **kw)
    if kind == "lstm":
        return keras.layers.LSTM(units, return_sequences=True, **kw)
    return keras.layers.GRU(units, return_sequences=True, reset_after=reset_after, **kw)


def _randomise(layer, rng, scale=0.5):
    """Give a built layer random, non-trivial weights (normal, std ``scale``)."""
    ws = [(scale * rng.normal(size=w.shape)).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(ws)
    return ws


def _built_layer(kind, units, n_in, x, reset_after=True, seed=1, scale=0.5, **kw):
    layer = _keras_layer(kind, units, reset_after, **kw)
    layer(x)  # build
    _randomise(layer, np.random.default_rng(seed), scale)
    return layer


def _params(ws):
    return {"kernel": jnp.asarray(ws[0]), "recurrent": jnp.asarray(ws[1]), "bias": jnp.asarray(ws[2])}


def _random_params(cell, n_in, rng, scale):
    G, H = len(cell.gates), cell.units
    bias_shape = (2, G * H) if cell.split_bias else (G * H,)
    return [(scale * rng.normal(size=s)).astype(np.float32) for s in ((n_in, G * H), (H, G * H), bias_shape)]


# numpy float64 references --------------------------------------------------------------


def _np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np_hard_sigmoid_k2(z):
    return np.clip(0.2 * z + 0.5, 0.0, 1.0)


_NP_RSIG = {"sigmoid": _np_sigmoid, "hard_sigmoid": _np_hard_sigmoid_k2}


def _split(a, n):
    return np.split(a, n, axis=-1)


def _ref_lstm(x, W, U, b, rsig, gate_pre=None):
    """Keras (2 and 3) LSTM, gates i f c o: c = f c + i tanh(g), h = o tanh(c)."""
    x, W, U, b = (np.asarray(a, np.float64) for a in (x, W, U, b))
    H = U.shape[0]
    h = np.zeros((x.shape[0], H))
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[1]):
        zi, zf, zc, zo = _split(x[:, t] @ W + h @ U + b, 4)
        if gate_pre is not None:
            gate_pre.extend([zi, zf, zo])
        c = rsig(zf) * c + rsig(zi) * np.tanh(zc)
        h = rsig(zo) * np.tanh(c)
        out.append(h)
    return np.stack(out, 1)


def _ref_gru_reset_before(x, W, U, b, rsig, gate_pre=None):
    """Keras 2 GRU (reset_after=False), gates z r h: h~ = tanh(x W_h + b_h + (r h) U_h)."""
    x, W, U, b = (np.asarray(a, np.float64) for a in (x, W, U, b))
    Wz, Wr, Wh = _split(W, 3)
    Uz, Ur, Uh = _split(U, 3)
    bz, br, bh = _split(b, 3)
    h = np.zeros((x.shape[0], U.shape[0]))
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        pz, pr = xt @ Wz + h @ Uz + bz, xt @ Wr + h @ Ur + br
        if gate_pre is not None:
            gate_pre.extend([pz, pr])
        z, r = rsig(pz), rsig(pr)
        hh = np.tanh(xt @ Wh + bh + (r * h) @ Uh)
        h = z * h + (1.0 - z) * hh
        out.append(h)
    return np.stack(out, 1)


def _ref_lstm_nofg(x, W, U, b, rsig):
    """LSTM without a forget gate (f = 1), gates i c o: c = c + i tanh(g), h = o tanh(c)."""
    x, W, U, b = (np.asarray(a, np.float64) for a in (x, W, U, b))
    H = U.shape[0]
    h = np.zeros((x.shape[0], H))
    c = np.zeros_like(h)
    out = []
    for t in range(x.shape[1]):
        zi, zc, zo = _split(x[:, t] @ W + h @ U + b, 3)
        c = c + rsig(zi) * np.tanh(zc)
        h = rsig(zo) * np.tanh(c)
        out.append(h)
    return np.stack(out, 1), c


def _ref_janet(x, W, U, b, rsig):
    """JANET: s = x W_f + h U_f + b_f, c = sig(s) c + sig(1 - s) tanh(x W_c + h U_c + b_c), h = c."""
    x, W, U, b = (np.asarray(a, np.float64) for a in (x, W, U, b))
    Wf, Wc = _split(W, 2)
    Uf, Uc = _split(U, 2)
    bf, bc = _split(b, 2)
    c = np.zeros((x.shape[0], U.shape[0]))
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        s = xt @ Wf + c @ Uf + bf
        c = rsig(s) * c + rsig(1.0 - s) * np.tanh(xt @ Wc + c @ Uc + bc)
        out.append(c)
    return np.stack(out, 1)


# ----------------------------------------------------------------------------- Keras parity

KERAS_CASES = [("srnn", True), ("lstm", True), ("gru", True), ("gru", False)]


@pytest.mark.parametrize("n_in", [1, 2])
@pytest.mark.parametrize("units", [1, 3])
@pytest.mark.parametrize(
    "kind,reset_after", KERAS_CASES, ids=["SimpleRNN", "LSTM", "GRU-reset_after", "GRU-reset_before"]
)
def test_keras_parity(kind, reset_after, units, n_in):
    x = _inputs(n_in)
    layer = _built_layer(kind, units, n_in, x, reset_after)
    ws = layer.get_weights()
    expected = np.asarray(layer(x))
    assert expected.shape == (B, T, units)
    assert np.std(expected) > 0.01  # the weights do something

    # (a) latchlab.core.cells.scan with parameters copied from the layer
    cell = Cell(kind, units, "sigmoid", reset_after)
    params = _params(ws)
    assert params["bias"].shape == ((2, 3 * units) if kind == "gru" and reset_after else (len(cell.gates) * units,))
    carry, hs = cells.scan(cell, params, jnp.asarray(x), return_sequences=True)
    assert hs.shape == (B, T, units)
    np.testing.assert_allclose(np.asarray(hs), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(cells.output(cell, carry)), expected[:, -1], rtol=0, atol=ATOL)
    final = cells.scan(cell, params, jnp.asarray(x))  # return_sequences=False: carry only
    np.testing.assert_allclose(np.asarray(cells.output(cell, final)), expected[:, -1], rtol=0, atol=ATOL)

    # (b) interop.from_keras
    model = interop.from_keras(layer)
    assert model.cell == cell
    got = model(x)
    assert isinstance(got, np.ndarray) and got.shape == (B, T, units)
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "kind,reset_after", KERAS_CASES, ids=["SimpleRNN", "LSTM", "GRU-reset_after", "GRU-reset_before"]
)
def test_keras_parity_without_bias(kind, reset_after):
    x = _inputs(2, seed=11)
    layer = _built_layer(kind, 3, 2, x, reset_after, seed=12, use_bias=False)
    assert len(layer.get_weights()) == 2
    np.testing.assert_allclose(interop.from_keras(layer)(x), np.asarray(layer(x)), rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "kind,reset_after",
    [("lstm", True), ("gru", True), ("gru", False)],
    ids=["LSTM", "GRU-reset_after", "GRU-reset_before"],
)
def test_keras3_hard_sigmoid_layer(kind, reset_after):
    """Keras 3's hard_sigmoid (slope 1/6) comes through from_keras as ``hard_sigmoid_keras3``."""
    x = _inputs(2, seed=3, scale=1.5)
    layer = _built_layer(kind, 3, 2, x, reset_after, seed=4, scale=1.5, recurrent_activation="hard_sigmoid")
    expected = np.asarray(layer(x))
    # the clip is exercised: some input projections already fall outside [-3, 3]
    ws = layer.get_weights()
    b_in = ws[2][0] if ws[2].ndim == 2 else ws[2]
    pre = x.reshape(-1, 2) @ ws[0] + b_in
    assert np.mean(np.abs(pre) > 3.0) > 0.05

    model = interop.from_keras(layer)
    assert model.cell.rsig == "hard_sigmoid_keras3"
    np.testing.assert_allclose(model(x), expected, rtol=0, atol=ATOL)
    # and the Keras 2 slope would be measurably different
    k2 = cells.scan(
        Cell(kind, 3, "hard_sigmoid", reset_after), model.params["cell"], jnp.asarray(x), return_sequences=True
    )[1]
    assert np.max(np.abs(np.asarray(k2) - expected)) > 1e-3


# ----------------------------------------------------------------------------- numpy references


@pytest.mark.parametrize("units,n_in", [(1, 1), (3, 2)])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_keras2_hard_sigmoid_matches_numpy(kind, units, n_in):
    """Keras 2 preset (hard_sigmoid = clip(0.2 z + 0.5, 0, 1), GRU reset_after=False)."""
    cell = Cell.from_preset(kind, units, "keras2")
    assert (cell.rsig, cell.reset_after) == ("hard_sigmoid", False)
    ws = _random_params(cell, n_in, np.random.default_rng(5), scale=1.5)
    x = _inputs(n_in, seed=6, scale=1.5)
    ref = _ref_lstm if kind == "lstm" else _ref_gru_reset_before
    pre = []
    expected = ref(x, *ws, _np_hard_sigmoid_k2, gate_pre=pre)
    pre = np.concatenate([p.ravel() for p in pre])
    # both the linear part and the clipped parts of the hard sigmoid are exercised
    assert np.mean(np.abs(pre) > 2.5) > 0.05
    assert np.mean(np.abs(pre) < 2.5) > 0.05
    _, hs = cells.scan(cell, _params(ws), jnp.asarray(x), return_sequences=True)
    np.testing.assert_allclose(np.asarray(hs), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("rsig", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("units,n_in", [(1, 1), (3, 2)])
def test_lstm_nofg_matches_numpy(units, n_in, rsig):
    cell = Cell("lstm_nofg", units, rsig)
    assert cell.gates == ("i", "c", "o")
    ws = _random_params(cell, n_in, np.random.default_rng(7), scale=0.8)
    x = _inputs(n_in, seed=8)
    expected, c_ref = _ref_lstm_nofg(x, *ws, _NP_RSIG[rsig])
    (h, c), hs = cells.scan(cell, _params(ws), jnp.asarray(x), return_sequences=True)
    np.testing.assert_allclose(np.asarray(hs), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(h), expected[:, -1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(c), c_ref, rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(cells.output(cell, (h, c))), np.asarray(h))


@pytest.mark.parametrize("rsig", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("units,n_in", [(1, 1), (3, 2)])
def test_janet_matches_numpy(units, n_in, rsig):
    cell = Cell("janet", units, rsig)
    assert cell.gates == ("f", "c")
    ws = _random_params(cell, n_in, np.random.default_rng(9), scale=0.8)
    x = _inputs(n_in, seed=10)
    expected = _ref_janet(x, *ws, _NP_RSIG[rsig])
    carry, hs = cells.scan(cell, _params(ws), jnp.asarray(x), return_sequences=True)
    np.testing.assert_allclose(np.asarray(hs), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(carry), expected[:, -1], rtol=0, atol=ATOL)


def _np_step_blocks(cell, ws, x, h, c):
    """One step of ``cell`` in numpy float64 from the equations: the new state and the gate
    blocks ``step_gates`` documents (gates activated, candidate through tanh)."""
    W, U, b = ws
    rsig = _NP_RSIG[cell.rsig]
    G = len(cell.gates)
    if cell.kind == "gru":  # reset_before (Keras 2)
        Wz, Wr, Wh = _split(W, 3)
        Uz, Ur, Uh = _split(U, 3)
        bz, br, bh = _split(b, 3)
        z, r = rsig(x @ Wz + h @ Uz + bz), rsig(x @ Wr + h @ Ur + br)
        hh = np.tanh(x @ Wh + bh + (r * h) @ Uh)
        return z * h + (1 - z) * hh, {"z": z, "r": r, "h": hh}
    pre = dict(zip(cell.gates, _split(x @ W + (c if cell.kind == "janet" else h) @ U + b, G)))
    if cell.kind == "srnn":
        return np.tanh(pre["h"]), {"h": np.tanh(pre["h"])}
    if cell.kind == "janet":
        f, i, g = rsig(pre["f"]), rsig(1.0 - pre["f"]), np.tanh(pre["c"])
        return f * c + i * g, {"f": f, "i": i, "c": g}
    blocks = {k: (np.tanh(v) if k == "c" else rsig(v)) for k, v in pre.items()}
    c = blocks.get("f", 1.0) * c + blocks["i"] * blocks["c"]
    return (blocks["o"] * np.tanh(c), c), blocks


@pytest.mark.parametrize("rsig", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("kind", ["srnn", "lstm", "lstm_nofg", "gru", "janet"])
def test_step_gates_equal_numpy(kind, rsig):
    cell = Cell(kind, 3, rsig, reset_after=False)
    ws = _random_params(cell, 2, np.random.default_rng(13), scale=1.5)
    rng = np.random.default_rng(14)
    x, h, c = rng.normal(size=(B, 2)), np.tanh(rng.normal(size=(B, 3))), rng.normal(size=(B, 3))
    want, blocks = _np_step_blocks(cell, [np.asarray(w, np.float64) for w in ws], x, h, c)
    p = _params(ws)
    xw = cells.input_projection(cell, p, jnp.asarray(x, jnp.float32))
    carry = (
        (jnp.asarray(h, jnp.float32), jnp.asarray(c, jnp.float32))
        if kind in ("lstm", "lstm_nofg")
        else jnp.asarray(c if kind == "janet" else h, jnp.float32)
    )
    new, got = cells.step_gates(cell, p, carry, xw)
    assert set(got) == set(blocks) == set(cell.gates) | ({"i"} if kind == "janet" else set())
    for k in blocks:
        np.testing.assert_allclose(np.asarray(got[k]), blocks[k], rtol=0, atol=ATOL, err_msg=k)
    for a, w in zip(jax.tree.leaves(new), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), w, rtol=0, atol=ATOL)
    for a, w in zip(jax.tree.leaves(cells.step(cell, p, carry, xw)), jax.tree.leaves(new)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(w))


def test_from_keras_layer_head_and_model():
    """One return type: the layer alone (called: its output sequence; no ``model``), the
    layer with its Dense head, and a Keras model holding both give the same cell, and the
    head's logits are the Dense layer's pre-activations."""
    x = _inputs(2, seed=15)
    layer = _built_layer("gru", 3, 2, x, seed=16)
    dense = keras.layers.Dense(1, activation="sigmoid")
    km = keras.Sequential([keras.Input((T, 2)), layer, dense])
    _randomise(dense, np.random.default_rng(17))
    alone, with_head, whole = interop.from_keras(layer), interop.from_keras(layer, dense), interop.from_keras(km)
    assert alone.head is None and set(alone.params) == {"cell"}
    with pytest.raises(ConfigError, match="^head: "):
        alone.model
    assert with_head.cell == whole.cell == alone.cell and with_head.model == whole.model
    assert whole.model.head == "dense1" and whole.model.n_in == 2
    np.testing.assert_allclose(alone(x), np.asarray(layer(x)), rtol=0, atol=ATOL)  # return_sequences=True
    z = np.asarray(M.logits(whole.model, whole.params, jnp.asarray(x)))
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-z)), np.asarray(km(x))[:, -1, 0], rtol=0, atol=ATOL)
    headless = interop.from_keras(keras.Sequential([keras.Input((T, 2)), layer]))
    assert headless.head is None and headless.cell == alone.cell
    two = keras.Sequential([keras.Input((T, 2)), layer, keras.layers.Dense(3), keras.layers.Dense(1)])
    with pytest.raises(ConfigError, match="^model: .*found 1 and 2"):
        interop.from_keras(two)


# ----------------------------------------------------------------------------- from_keras errors


def test_from_keras_rejects_dense():
    layer = keras.layers.Dense(3)
    layer(np.zeros((2, 4), np.float32))
    with pytest.raises(ConfigError, match="unsupported layer Dense"):
        interop.from_keras(layer)


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda: keras.layers.LSTM(2, activation="relu"), "activation"),
        (lambda: keras.layers.GRU(2, recurrent_activation="relu"), "recurrent_activation"),
        (lambda: keras.layers.SimpleRNN(2, go_backwards=True), "go_backwards"),
    ],
    ids=["relu-activation", "relu-gates", "go_backwards"],
)
def test_from_keras_rejects_unsupported_settings(make, field):
    layer = make()
    layer(_inputs(2))
    with pytest.raises(ConfigError) as err:
        interop.from_keras(layer)
    assert err.value.field == field


def test_from_keras_rejects_unbuilt_layer():
    with pytest.raises(ConfigError, match="not built"):
        interop.from_keras(keras.layers.LSTM(2))


# ----------------------------------------------------------------------------- init_params


def _block(arr, cell, gate):
    H = cell.units
    k = cell.gates.index(gate)
    return np.asarray(arr)[..., k * H : (k + 1) * H]


def test_keras_init_one_unit_srnn_recurrent_is_plus_minus_one():
    cell = Cell("srnn", 1)
    seen = set()
    for seed in range(16):
        p = cells.init_params(jax.random.key(seed), cell, 1, "keras")
        assert p["recurrent"].shape == (1, 1)
        u = float(p["recurrent"][0, 0])
        assert u in (1.0, -1.0)
        seen.add(u)
    assert seen == {1.0, -1.0}  # both signs occur (orthogonal, not a fixed identity)


@pytest.mark.parametrize("units,n_in", [(1, 1), (3, 2)])
def test_keras_init_lstm(units, n_in):
    cell = Cell("lstm", units)
    H = units
    p = cells.init_params(jax.random.key(0), cell, n_in, "keras")
    assert p["kernel"].shape == (n_in, 4 * H)
    assert p["recurrent"].shape == (H, 4 * H)
    assert p["bias"].shape == (4 * H,)
    assert all(a.dtype == jnp.float32 for a in p.values())
    np.testing.assert_array_equal(_block(p["bias"], cell, "f"), np.ones(H))
    for g in ("i", "c", "o"):
        np.testing.assert_array_equal(_block(p["bias"], cell, g), np.zeros(H))
    U = np.asarray(p["recurrent"], np.float64)
    np.testing.assert_allclose(U @ U.T, np.eye(H), atol=1e-5)  # orthogonal rows (Keras)
    limit = math.sqrt(6.0 / (n_in + 4 * H))
    assert np.all(np.abs(np.asarray(p["kernel"])) <= limit)  # glorot_uniform


def test_keras_init_gru_biases_zero():
    for ra in (True, False):
        cell = Cell("gru", 3, reset_after=ra)
        p = cells.init_params(jax.random.key(0), cell, 2, "keras")
        assert p["bias"].shape == ((2, 9) if ra else (9,))
        np.testing.assert_array_equal(np.asarray(p["bias"]), 0.0)


@pytest.mark.parametrize("kind", ["srnn", "lstm", "gru", "lstm_nofg", "janet"])
def test_values_recurrent_gives_scaled_identity_blocks(kind):
    cell = Cell(kind, 3)
    p = cells.init_params(jax.random.key(0), cell, 2, "keras", values={"recurrent": 1.25})
    for g in cell.gates:
        np.testing.assert_array_equal(_block(p["recurrent"], cell, g), 1.25 * np.eye(3))


def test_values_bias_f_sets_only_the_f_block():
    cell = Cell("lstm", 3)
    base = cells.init_params(jax.random.key(0), cell, 2, "keras")
    p = cells.init_params(jax.random.key(0), cell, 2, "keras", values={"bias_f": 3.0})
    np.testing.assert_array_equal(_block(p["bias"], cell, "f"), np.full(3, 3.0))
    for g in ("i", "c", "o"):
        np.testing.assert_array_equal(_block(p["bias"], cell, g), _block(base["bias"], cell, g))
    for name in ("kernel", "recurrent"):
        np.testing.assert_array_equal(np.asarray(p[name]), np.asarray(base[name]))


def test_values_bias_on_reset_after_gru_goes_to_input_bias():
    cell = Cell("gru", 2, reset_after=True)
    base = cells.init_params(jax.random.key(0), cell, 2, "torch")
    p = cells.init_params(jax.random.key(0), cell, 2, "torch", values={"bias_z": 2.0})
    np.testing.assert_array_equal(_block(p["bias"][0], cell, "z"), np.full(2, 2.0))
    np.testing.assert_array_equal(_block(p["bias"][1], cell, "z"), np.zeros(2))
    for g in ("r", "h"):
        np.testing.assert_array_equal(_block(p["bias"], cell, g), _block(base["bias"], cell, g))


def test_values_rejects_unknown_gate():
    with pytest.raises(ConfigError):
        cells.init_params(jax.random.key(0), Cell("gru", 2), 1, "keras", values={"bias_f": 1.0})


@pytest.mark.parametrize("t_max", [10.0, 100.0])
def test_chrono_lstm(t_max):
    cell = Cell("lstm", 64)
    p = cells.init_params(jax.random.key(1), cell, 2, "chrono", t_max=t_max)
    bf = _block(p["bias"], cell, "f")
    bi = _block(p["bias"], cell, "i")
    assert np.all(bf >= 0.0) and np.all(bf <= math.log(t_max - 1.0) + 1e-6)
    assert np.ptp(bf) > 0.1  # sampled, not constant
    np.testing.assert_array_equal(bi, -bf)
    for g in ("c", "o"):
        np.testing.assert_array_equal(_block(p["bias"], cell, g), 0.0)


def test_chrono_gru_sets_z_bias():
    cell = Cell("gru", 16, reset_after=True)
    t_max = 50.0
    p = cells.init_params(jax.random.key(2), cell, 2, "chrono", t_max=t_max)
    bz = _block(p["bias"][0], cell, "z")
    assert np.all(bz >= 0.0) and np.all(bz <= math.log(t_max - 1.0) + 1e-6)
    np.testing.assert_array_equal(_block(p["bias"][1], cell, "z"), 0.0)
    np.testing.assert_array_equal(_block(p["bias"], cell, "r"), 0.0)


def test_chrono_needs_a_forget_gate_and_t_max():
    with pytest.raises(ConfigError):
        cells.init_params(jax.random.key(0), Cell("srnn", 2), 1, "chrono", t_max=10.0)
    with pytest.raises(ConfigError):
        cells.init_params(jax.random.key(0), Cell("lstm", 2), 1, "chrono")


# ----------------------------------------------------------------------------- rank promotion


class _RankPromotionError(Exception):
    """Raised in place of jax's rank-promotion ValueError, so that xfail cannot hide a ConfigError."""


def _under_raise(fn):
    with jax.numpy_rank_promotion("raise"):
        try:
            return fn()
        except ValueError as e:
            if "jax_numpy_rank_promotion" in str(e):
                raise _RankPromotionError(str(e)) from e
            raise


@pytest.mark.parametrize("kind", ["srnn", "lstm", "gru", "janet"])
def test_init_params_without_rank_promotion(kind):
    _under_raise(lambda: cells.init_params(jax.random.key(0), Cell(kind, 3), 2, "keras"))


@pytest.mark.parametrize("kind,units,n_in", [("lstm", 1, 1), ("gru", 3, 2), ("gru", 8, 8)])
def test_scan_without_rank_promotion(kind, units, n_in):
    cell = Cell(kind, units)
    p = cells.init_params(jax.random.key(0), cell, n_in, "torch")
    _under_raise(lambda: cells.scan(cell, p, jnp.asarray(_inputs(n_in)), return_sequences=True))


def test_from_keras_model_without_rank_promotion():
    x = _inputs(2)
    model = interop.from_keras(_built_layer("lstm", 3, 2, x))
    _under_raise(lambda: model(x))
