"""Recurrent cells as pure functions over parameter pytrees.

Parameters follow Keras' layout so that weights copy across unchanged:
``kernel`` (F, G*H), ``recurrent`` (H, G*H), ``bias`` (G*H,) — or (2, G*H) for a GRU
with ``reset_after`` (input bias, recurrent bias). Gates are stacked in Keras' order:
LSTM ``i f c o``, GRU ``z r h``; ``lstm_nofg`` drops ``f``, ``janet`` keeps ``f c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, cast

import jax
import jax.numpy as jnp

from latchlab.core.catalog import CELLS, GATES, INITS, PRESETS  # noqa: F401 (re-exported)
from latchlab.errors import ConfigError

_RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "hard_sigmoid_keras3")


def hard_sigmoid(z):
    """Keras 2's hard sigmoid, ``clip(0.2 z + 0.5, 0, 1)`` (the seed's gate activation)."""
    return jnp.clip(0.2 * z + 0.5, 0.0, 1.0)


def hard_sigmoid_keras3(z):
    """Keras 3's hard sigmoid, ``relu6(z + 3) / 6`` (slope 1/6); only met in imported layers."""
    return jnp.clip(z / 6.0 + 0.5, 0.0, 1.0)


_RSIG = {"sigmoid": jax.nn.sigmoid, "hard_sigmoid": hard_sigmoid, "hard_sigmoid_keras3": hard_sigmoid_keras3}


@dataclass(frozen=True)
class Cell:
    """A recurrent cell's static description (hashable: it keys compiled functions).

    Attributes:
        kind: one of ``CELLS``.
        units: hidden size H >= 1.
        rsig: gate activation, ``sigmoid`` or ``hard_sigmoid`` (slope 0.2).
        reset_after: GRU only: apply the reset gate after the recurrent matmul (Keras 3).
    """

    kind: str
    units: int = 1
    rsig: str = "sigmoid"
    reset_after: bool = True

    def __post_init__(self):
        if self.kind not in GATES:
            raise ConfigError("cell", f"unknown cell {self.kind!r}", CELLS)
        if not isinstance(self.units, int) or self.units < 1:
            raise ConfigError("units", f"must be an integer >= 1, got {self.units!r}")
        if self.rsig not in _RSIG:
            raise ConfigError("rsig", f"unknown gate activation {self.rsig!r}", _RECURRENT_ACTIVATIONS)

    @classmethod
    def from_preset(cls, kind: str, units: int = 1, preset: str = "keras3") -> "Cell":
        if preset not in PRESETS:
            raise ConfigError("preset", f"unknown preset {preset!r}", tuple(PRESETS))
        rsig, reset_after = PRESETS[preset]
        return cls(kind, units, rsig, reset_after)

    @property
    def gates(self) -> tuple[str, ...]:
        return GATES[self.kind]

    @property
    def split_bias(self) -> bool:
        return self.kind == "gru" and self.reset_after


def _dot(x, w):
    """``x @ w`` for ``x`` (..., K), ``w`` (K, M).

    For tiny K (one-unit cells, scalar inputs) a broadcast sum: XLA:CPU fuses it with the
    gate nonlinearities, where a GEMM call per time step would dominate the cost.
    """
    k = w.shape[0]
    if k <= 4:
        out = x[..., 0:1] * lead(w[0], x.ndim)
        for j in range(1, k):
            out = out + x[..., j : j + 1] * lead(w[j], x.ndim)
        return out
    return x @ w


def lead(v, ndim: int):
    """``v`` with leading unit axes up to ``ndim`` (explicit broadcasting, no rank promotion)."""
    return v.reshape((1,) * (ndim - v.ndim) + v.shape)


def initial_carry(cell: Cell, batch: int, dtype=jnp.float32):
    h = jnp.zeros((batch, cell.units), dtype)
    return (h, h) if cell.kind in ("lstm", "lstm_nofg") else h


def output(cell: Cell, carry):
    """The hidden state ``h`` the cell exposes (LSTM carries ``(h, c)``)."""
    return carry[0] if cell.kind in ("lstm", "lstm_nofg") else carry


def step(cell: Cell, params, carry, xw):
    """One time step given the precomputed input projection ``xw = x W + b_in``.

    Update rules (``rsig`` the gate activation, ``U`` the recurrent matrix):
        srnn:      h = tanh(xw + h U)
        lstm:      i,f,o = rsig(.), g = tanh(.), c = f c + i g, h = o tanh(c)
        lstm_nofg: as lstm with f = 1 (the 1997 constant error carousel)
        gru:       z,r = rsig(.), h~ = tanh(xw_h + r * (h U_h + b_h)) if reset_after
                   else tanh(xw_h + (r h) U_h), h = z h + (1 - z) h~
        janet:     s = xw_f + h U_f, c = sigmoid(s) c + sigmoid(1 - s) tanh(xw_c + h U_c), h = c

    Args:
        cell: the cell description.
        params: ``{"kernel", "recurrent", "bias"}``.
        carry: ``h`` (B, H), or ``(h, c)`` for LSTMs.
        xw: (B, G*H) the input projection at this step.
    Returns:
        the new carry (``step_gates``' first output: the update rules are written once).
    """
    return step_gates(cell, params, carry, xw)[0]


def step_gates(cell: Cell, params, carry, xw):
    """``step``, and the activated gate blocks it used (for diagnostics).

    The blocks, each (B, H), are keyed by the cell's gate names (``cell.gates``, Keras
    order): a gate ``i, f, o`` (LSTM), ``z, r`` (GRU) or ``f`` (JANET) is its value
    ``rsig(.)``; the candidate block (``c``: LSTM, lstm_nofg, JANET; ``h``: GRU, SRNN) is
    ``tanh(.)`` of its pre-activation, i.e. ``g`` in the LSTM's rule, ``h~`` in the GRU's
    and the new state of the SRNN. JANET adds its tied input gate ``i = rsig(1 - s)``.
    Under ``jit`` the blocks nobody reads cost nothing (``step`` compiles to the same
    program as before).

    Returns:
        ``(new_carry, blocks)``.
    """
    H, rsig, U = cell.units, _RSIG[cell.rsig], params["recurrent"]
    kind = cell.kind
    if kind == "srnn":
        h = jnp.tanh(xw + _dot(carry, U))
        return h, {"h": h}
    if kind in ("lstm", "lstm_nofg"):
        h, c = carry
        z = xw + _dot(h, U)
        if kind == "lstm":
            i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
            i, f, g, o = rsig(i), rsig(f), jnp.tanh(g), rsig(o)
            c = f * c + i * g
            blocks = {"i": i, "f": f, "c": g, "o": o}
        else:
            i, g, o = (z[:, k * H : (k + 1) * H] for k in range(3))
            i, g, o = rsig(i), jnp.tanh(g), rsig(o)
            c = c + i * g
            blocks = {"i": i, "c": g, "o": o}
        return (o * jnp.tanh(c), c), blocks
    if kind == "gru":
        h = carry
        if cell.reset_after:
            r_all = _dot(h, U) + lead(params["bias"][1], 2)
            z = rsig(xw[:, :H] + r_all[:, :H])
            r = rsig(xw[:, H : 2 * H] + r_all[:, H : 2 * H])
            hh = jnp.tanh(xw[:, 2 * H :] + r * r_all[:, 2 * H :])
        else:
            r_zr = _dot(h, U[:, : 2 * H])
            z = rsig(xw[:, :H] + r_zr[:, :H])
            r = rsig(xw[:, H : 2 * H] + r_zr[:, H:])
            hh = jnp.tanh(xw[:, 2 * H :] + _dot(r * h, U[:, 2 * H :]))
        return z * h + (1.0 - z) * hh, {"z": z, "r": r, "h": hh}
    # janet: forget gate only, input gate tied to it with a shift of 1
    c = carry
    z = xw + _dot(c, U)
    s, g = z[:, :H], z[:, H:]
    f, i, g = rsig(s), rsig(1.0 - s), jnp.tanh(g)
    return f * c + i * g, {"f": f, "c": g, "i": i}


def input_projection(cell: Cell, params, x):
    """``x W + b`` (the part of every gate that does not depend on the state)."""
    b = params["bias"][0] if cell.split_bias else params["bias"]
    return _dot(x, params["kernel"]) + lead(b, x.ndim)


def scan(cell: Cell, params, x, mask=None, return_sequences=False):
    """Run the cell over a batch of sequences.

    Args:
        x: (B, T, F) inputs.
        mask: optional (T,) bool; steps where it is False leave the state unchanged
            (sequences left-padded to a common length).
        return_sequences: return every step's ``h`` as well.
    Returns:
        the final carry, and (B, T, H) outputs if ``return_sequences``.
    """
    xw = jnp.swapaxes(input_projection(cell, params, x), 0, 1)  # (T, B, G*H)
    carry0 = initial_carry(cell, x.shape[0], xw.dtype)

    def body(carry, inp):
        xw_t, m_t = inp
        new = step(cell, params, carry, xw_t)
        if mask is not None:
            new = jax.tree.map(lambda a, b: jnp.where(m_t, a, b), new, carry)
        return new, (output(cell, new) if return_sequences else None)

    m = mask if mask is not None else jnp.ones(xw.shape[0], bool)
    carry, hs = jax.lax.scan(body, carry0, (xw, m))
    if return_sequences:
        return carry, jnp.swapaxes(cast(jax.Array, hs), 0, 1)  # (T, B, H): every step's ``h``
    return carry


# ----------------------------------------------------------------------------- init


def _glorot_uniform(key, shape):
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def _orthogonal(key, shape):
    """Keras' ``Orthogonal``: QR of a normal matrix, sign-corrected (1x1 gives +-1)."""
    rows, cols = shape
    a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diagonal(r))[None, :]
    return q.T if rows < cols else q


# chrono's retention gate per cell (the gate whose bias sets how long a state is kept)
CHRONO_RETAIN = {"lstm": "f", "janet": "f", "gru": "z"}


def settable(cell: Cell, name: str) -> bool:
    """Whether ``init_params``' ``values`` may name ``name`` for ``cell``: ``kernel``,
    ``recurrent`` or ``bias``, or one of the cell's gate blocks of them (``bias_f``)."""
    base, _, gate = name.partition("_")
    return base in ("kernel", "recurrent", "bias") and (not gate or gate in cell.gates)


def init_params(
    key, cell: Cell, n_in: int, scheme: str = "keras", values: Mapping[str, float] | None = None, t_max=None
):
    """Initial cell parameters.

    Schemes:
        keras:  kernel glorot_uniform, recurrent orthogonal, bias 0 (forget bias +1).
        torch:  every entry U(-1/sqrt(H), 1/sqrt(H)); single biases are b_ih + b_hh.
        chrono: keras, then b_f ~ log U[1, t_max - 1] and b_i = -b_f (Tallec & Ollivier
                2018; the GRU's retention gate is z). Sigmoid gates only: chrono's biases are
                defined through the sigmoid, and a hard sigmoid (linear on |z| < 2.5) would
                start its input gate at exactly 0 whenever b_f > 2.5; refused.
    ``values`` then sets named parameters to constants: ``kernel``, ``recurrent``, ``bias``
    or a gate block such as ``recurrent_f``, ``bias_f``. A recurrent value ``v`` sets each
    (H, H) block to ``v I``; kernel and bias values fill their block. A reset_after GRU's
    bias value goes to the input bias, and that gate's recurrent bias is set to 0.

    Args:
        key: PRNG key.
        cell: the cell.
        n_in: input width F.
        scheme: one of ``INITS``.
        values: explicit parameter values.
        t_max: chrono's longest dependency (may be a traced scalar).
    Returns:
        ``{"kernel", "recurrent", "bias"}``.
    """
    if scheme not in INITS:
        raise ConfigError("init", f"unknown initialisation {scheme!r}", INITS)
    H, G = cell.units, len(cell.gates)
    bias_shape = (2, G * H) if cell.split_bias else (G * H,)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    if scheme == "torch":
        lim = 1.0 / math.sqrt(H)
        u = lambda k, s: jax.random.uniform(k, s, jnp.float32, -lim, lim)  # noqa: E731
        bias = u(k3, bias_shape)
        if not cell.split_bias:
            bias = bias + u(k4, bias_shape)
        params = {"kernel": u(k1, (n_in, G * H)), "recurrent": u(k2, (H, G * H)), "bias": bias}
    else:
        bias = jnp.zeros(bias_shape, jnp.float32)
        params = {"kernel": _glorot_uniform(k1, (n_in, G * H)), "recurrent": _orthogonal(k2, (H, G * H)), "bias": bias}
        if "f" in cell.gates:
            params = _set(cell, params, "bias", "f", 1.0)
    if scheme == "chrono":
        retain = CHRONO_RETAIN.get(cell.kind)
        if retain is None:
            raise ConfigError(
                "init", f"chrono needs a gated cell with a forget gate, not {cell.kind!r}", ("lstm", "gru", "janet")
            )
        if cell.rsig != "sigmoid":
            raise ConfigError(
                "init",
                "chrono needs sigmoid gates: under a hard sigmoid its input bias -b_f "
                "< -2.5 leaves the input gate at exactly 0 (no gradient)",
                ("preset keras3",),
            )
        if t_max is None:
            raise ConfigError("t_max", "chrono initialisation needs t_max")
        b = jnp.log(jax.random.uniform(k4, (H,), jnp.float32, 1.0, jnp.maximum(t_max - 1.0, 1.0)))
        params = _set(cell, params, "bias", retain, b)
        if cell.kind == "lstm":
            params = _set(cell, params, "bias", "i", -b)
    for name, v in (values or {}).items():
        base, _, gate = name.partition("_")
        if not settable(cell, name):
            names = [f"{b}_{g}" for b in ("kernel", "recurrent", "bias") for g in cell.gates]
            raise ConfigError(
                "values", f"unknown parameter {name!r} for {cell.kind}", ("kernel", "recurrent", "bias", *names)
            )
        for g in [gate] if gate else cell.gates:
            params = _set(cell, params, base, g, v)
    return params


def _set(cell: Cell, params, base: str, gate: str, value):
    """Set one gate block of ``params[base]`` (see ``init_params`` for the conventions)."""
    H = cell.units
    k = cell.gates.index(gate)
    cols = slice(k * H, (k + 1) * H)
    arr = params[base]
    value = jnp.asarray(value, jnp.float32)
    if base == "recurrent":
        arr = arr.at[:, cols].set(value * jnp.eye(H, dtype=jnp.float32))
    elif base == "bias" and cell.split_bias:
        arr = arr.at[0, cols].set(value).at[1, cols].set(0.0)
    elif base == "bias":
        arr = arr.at[cols].set(value)
    else:
        arr = arr.at[:, cols].set(value)
    return {**params, base: arr}
