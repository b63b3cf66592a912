"""Hand-derived backpropagation through time for the one-unit LSTM (the seed's cell).

Reverse-mode autodiff through ``lax.scan`` stores about fifteen residual arrays per time
step for an LSTM and emits one XLA:CPU kernel per residual; with one unit every array is
(R, B) scalars, so the loop is bound by those writes rather than by arithmetic. Here the
forward pass keeps ``(h, c)`` and its two tanh values per step (recomputing them cost 6 %
more, bench/modes.py); the backward pass recomputes hard-sigmoid gates and reads sigmoid
gates kept by the forward pass (whichever measured faster).

Written so that XLA:CPU vectorises every kernel in the two time loops (docs/benchmarks.md):
masks are 0/1 floats blended arithmetically (a ``select`` on a per-member mask made LLVM
unswitch the loop and emit scalar code), and the backward pass emits each gate's ``dz``
per step as its own array, reduced into the parameter gradients after the loop (stacking
the gates on the minor axis, or reducing over the batch inside the loop, emitted scalar
kernels). Same numbers as autodiff to float32 rounding (tests/engine/test_engine.py).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from latchlab.core import model as M

KINDS = ("lstm", "lstm_nofg")
_SLOPE = {"hard_sigmoid": 0.2, "hard_sigmoid_keras3": 1.0 / 6.0}


def supports(model: M.Model) -> bool:
    """One-unit LSTM (with or without forget gate) on scalar inputs."""
    return model.cell.kind in KINDS and model.cell.units == 1 and model.n_in == 1


def _gate(rsig: str):
    """The gate activation and its derivative from ``(z, value)``."""
    if rsig == "sigmoid":
        return jax.nn.sigmoid, lambda z, s: s * (1.0 - s)
    k = _SLOPE[rsig]

    def act(z):
        return jnp.clip(k * z + 0.5, 0.0, 1.0)

    def d(z, s):
        v = k * z + 0.5
        return jnp.where((v > 0.0) & (v < 1.0), k, 0.0)

    return act, d


def loss_and_grads(model: M.Model, params, x, y, w, mask):
    """Per-member losses, accuracies and gradients of a one-unit LSTM ensemble.

    Forward, per row (member r, example b), with ``s`` the gate activation:
        z_k = x_t W_k + h_{t-1} U_k + b_k,  k in (i, f, g, o)
        c_t = s(z_f) c_{t-1} + s(z_i) tanh(z_g),  h_t = s(z_o) tanh(c_t)
    (``lstm_nofg``: no f block, ``s(z_f) = 1``); masked steps keep the state.
    Backward, from ``dh_T = dL/dh_T`` (the head's gradient) and ``dc_T = 0``:
        dc = dc_t + dh_t s(z_o) (1 - tanh(c_t)^2)
        dz_i = dc tanh(z_g) s'(z_i),  dz_f = dc c_{t-1} s'(z_f),
        dz_g = dc s(z_i) (1 - tanh(z_g)^2),  dz_o = dh_t tanh(c_t) s'(z_o)
        dh_{t-1} = sum_k dz_k U_k,  dc_{t-1} = dc s(z_f)
        dW_k = sum_{t,b} dz_k x_t,  dU_k = sum_{t,b} dz_k h_{t-1},  db_k = sum_{t,b} dz_k

    Args:
        params: leading axis R, Keras layout (kernel (R, 1, G), recurrent (R, 1, G), bias (R, G)).
        x: (R, B, T, 1); y, w: (R, B); mask: (R, T).
    Returns:
        ``(loss (R,), accuracy (R,), grads)`` as ``train.loss_and_grads``.
    """
    if not supports(model):
        raise ValueError(f"bptt supports one-unit {'/'.join(KINDS)} on scalar inputs, not {model.cell}")
    forget = model.cell.kind == "lstm"
    _, dact = _gate(model.cell.rsig)
    names, col, gates, forward = _forward(model, params)
    xs, ms = _time_major(x, mask)
    U = [Uk for _, Uk, _ in col]

    # sigmoid gates: keep their values for the backward pass (recomputing three sigmoids
    # there cost ~20 % more); hard-sigmoid gates are cheaper to recompute than to store
    store = model.cell.rsig == "sigmoid"
    R, B = y.shape
    zero = jnp.zeros((R, B), xs.dtype)

    def step(carry, inp):  # stores (h_{t-1}, c_{t-1}, tanh(z_g), tanh(c_t)[, gate values])
        carry, out = forward(carry, inp)
        return carry, (out if store else out[:4])

    (h_T, _), stored = jax.lax.scan(step, (zero, zero), (xs, ms))
    hs = stored[0]

    (loss, acc), (g_head, dh_T) = jax.vmap(
        jax.value_and_grad(partial(M.head_loss, model), argnums=(0, 1), has_aux=True)
    )(params["head"], h_T[..., None], y, w)

    def backward(carry, inp):
        dh, dc = carry
        x_t, m_t, h, c, g, tc, *v = inp
        z, v = ({n: None for n in names}, v[0]) if store else gates(x_t, h)
        dcc = dc + dh * v["o"] * (1.0 - tc * tc)
        dz = {
            "i": dcc * g * dact(z["i"], v["i"]),
            "g": dcc * v["i"] * (1.0 - g * g),
            "o": dh * tc * dact(z["o"], v["o"]),
        }
        if forget:
            dz["f"] = dcc * c * dact(z["f"], v["f"])
        dz = [m_t * dz[n] for n in names]
        dh_prev = sum(d * Uk for d, Uk in zip(dz, U))
        dc_prev = dcc * v["f"] if forget else dcc
        return (_keep(m_t, dh_prev, dh), _keep(m_t, dc_prev, dc)), tuple(dz)

    _, dzs = jax.lax.scan(backward, (dh_T[..., 0], zero), (xs, ms, *stored), reverse=True)
    # (T, R, B) per gate -> (R, G): sums over time and batch, outside the loop
    stack = lambda f: jnp.stack([f(d) for d in dzs], -1)  # noqa: E731
    g_cell = {
        "kernel": stack(lambda d: jnp.einsum("trb,trb->r", d, xs))[:, None, :],
        "recurrent": stack(lambda d: jnp.einsum("trb,trb->r", d, hs))[:, None, :],
        "bias": stack(lambda d: d.sum((0, 2))),
    }
    return loss, acc, {"cell": g_cell, "head": g_head}


def _forward(model: M.Model, params):
    """The pieces of the forward pass: gate names, per-gate ``(W, U, b)`` columns (R, 1),
    the gate pre-activations/activations and the scan step."""
    forget = model.cell.kind == "lstm"
    act, _ = _gate(model.cell.rsig)
    pc = params["cell"]
    G = pc["bias"].shape[-1]
    W, U, b = pc["kernel"][:, 0, :], pc["recurrent"][:, 0, :], pc["bias"]  # (R, G)
    col = [(W[:, k : k + 1], U[:, k : k + 1], b[:, k : k + 1]) for k in range(G)]  # (R, 1) each
    names = ("i", "f", "g", "o") if forget else ("i", "g", "o")

    def gates(x_t, h):
        z = {n: x_t * Wk + h * Uk + bk for n, (Wk, Uk, bk) in zip(names, col)}
        return z, {n: act(z[n]) for n in names if n != "g"}

    def forward(carry, inp):
        h, c = carry
        x_t, m_t = inp
        z, v = gates(x_t, h)
        g = jnp.tanh(z["g"])
        c_new = v["i"] * g + (v["f"] * c if forget else c)
        tc = jnp.tanh(c_new)
        return (_keep(m_t, v["o"] * tc, h), _keep(m_t, c_new, c)), (h, c, g, tc, v)

    return names, col, gates, forward


def final_state(model: M.Model, params, x, mask):
    """``h_T`` (R, B) of a one-unit LSTM ensemble (the forward pass of ``loss_and_grads``
    without its stored states): x (R, B, T, 1), mask (R, T)."""
    *_, forward = _forward(model, params)
    xs, ms = _time_major(x, mask)
    zero = jnp.zeros(xs.shape[1:], xs.dtype)
    (h, _), _ = jax.lax.scan(lambda c, i: (forward(c, i)[0], None), (zero, zero), (xs, ms))
    return h


def _time_major(x, mask):
    """x (R, B, T, 1) -> (T, R, B); mask (R, T) -> (T, R, 1) floats, 1.0 on valid steps."""
    xs = jnp.moveaxis(x[..., 0], 2, 0)
    return xs, mask.T[:, :, None].astype(xs.dtype)


def _keep(m, new, old):  # where(m, new, old) for m in {0, 1}, exact for finite values
    return m * new + (1.0 - m) * old
