"""Gates that start saturated: a gate whose activation has zero slope at every step of
every sequence passes no gradient to its parameters, so a variant that starts there
measures a dead gate, not the initialisation it names.

A hard sigmoid (Keras 2, ``clip(0.2 z + 0.5, 0, 1)``) has slope 0.2 on ``|z| < 2.5`` and
exactly 0 outside; a sigmoid's slope is never 0 but underflows in float32 far out. A gate
unit is **saturated at initialisation** when the largest slope of its activation over a
batch of the task's sequences (every step, the initial parameters, the states they
produce) is below ``SLOPE_TOL``. ``fraction_saturated`` applies that to sweep members
with the initial parameters and data keys the sweep uses.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from latchlab.core import cells

SLOPE_TOL = 1e-6


def _slope(rsig: str, z):
    if rsig == "sigmoid":
        s = jax.nn.sigmoid(z)
        return s * (1.0 - s)
    lim, k = (2.5, 0.2) if rsig == "hard_sigmoid" else (3.0, 1.0 / 6.0)
    return jnp.where(jnp.abs(z) < lim, k, 0.0)


def gate_preactivations(cell: cells.Cell, params, x) -> dict:
    """The pre-activation of every gate that goes through the gate activation, at every
    step: ``{gate: (B, T, H)}`` (JANET's input gate, ``rsig(1 - s)``, is ``"1-f"``)."""
    _, hs = cells.scan(cell, params, x, return_sequences=True)
    h_prev = jnp.concatenate([jnp.zeros_like(hs[:, :1]), hs[:, :-1]], axis=1)
    xw = cells.input_projection(cell, params, x)
    U, H = params["recurrent"], cell.units
    block = lambda a, k: a[..., k * H : (k + 1) * H]  # noqa: E731
    if cell.kind in ("lstm", "lstm_nofg"):
        z = xw + cells._dot(h_prev, U)
        return {g: block(z, k) for k, g in enumerate(cell.gates) if g != "c"}
    if cell.kind == "janet":
        s = block(xw + cells._dot(h_prev, U), 0)
        return {"f": s, "1-f": 1.0 - s}
    if cell.kind == "gru":
        if cell.reset_after:
            r_all = cells._dot(h_prev, U) + cells.lead(params["bias"][1], 3)
        else:
            r_all = cells._dot(h_prev, U[:, : 2 * H])
        return {"z": block(xw, 0) + block(r_all, 0), "r": block(xw, 1) + block(r_all, 1)}
    return {}


def saturated_gates(cell: cells.Cell, params, x) -> dict:
    """``{gate: (H,) bool}``: the gate unit's activation slope stays below ``SLOPE_TOL``
    at every step of every sequence in ``x`` (B, T, F)."""
    return {
        g: np.asarray(jnp.max(_slope(cell.rsig, z), axis=(0, 1)) < SLOPE_TOL)
        for g, z in gate_preactivations(cell, params, x).items()
    }


def is_saturated(cell: cells.Cell, params, x) -> bool:
    """Whether any gate unit starts saturated on ``x``."""
    return any(bool(v.any()) for v in saturated_gates(cell, params, x).values())


@partial(jax.jit, static_argnums=0)
def _max_slopes(cell: cells.Cell, params, x, lengths=None):
    """Per member (leading axis of ``params``, ``x`` and ``lengths``): ``{gate: (H,)}``
    largest slope over the first ``lengths[r]`` steps of its sequences (default: all). The
    steps after them, right padding, come later in the scan: they change nothing before."""
    T_max = x.shape[2]

    def one(p, xs, T):
        valid = (jnp.arange(T_max) < T)[None, :, None]
        return {
            g: jnp.max(jnp.where(valid, _slope(cell.rsig, z), 0.0), axis=(0, 1))  # slopes are >= 0
            for g, z in gate_preactivations(cell, p, xs).items()
        }

    return jax.vmap(one)(params, x, jnp.full(x.shape[0], T_max) if lengths is None else lengths)


def fraction_saturated(members, n: int = 64) -> float:
    """Fraction of sweep ``members`` (one run settings, e.g. one ablation variant; any
    lengths and seeds) with a gate saturated at initialisation, on ``n`` fresh sequences of
    the member's task and length drawn from its data key (latch task). Every length in one
    call (``_max_slopes`` on sequences right-padded to the longest: one compilation a cell,
    where one a length took most of the explain report's time for this)."""
    from latchlab.engine import data as D

    members = list(members)
    if not members:
        return float("nan")
    cell = members[0].run.model.cell
    if cell.kind == "srnn":
        return 0.0
    params = D.init_members(members)
    assert params is not None  # members is not empty
    lengths = np.array([m.run.T for m in members], np.int32)
    x = np.zeros((len(members), n, int(lengths.max()), 1), np.float32)
    for T in np.unique(lengths):
        rs = np.flatnonzero(lengths == T)
        x[rs, :, :T, 0] = D.latch_draws([members[r] for r in rs], n, int(T))
    slopes = _max_slopes(cell, params["cell"], x, lengths)
    dead = np.zeros(len(members), bool)
    for v in slopes.values():
        dead |= np.asarray(v < SLOPE_TOL).any(axis=1)
    return int(dead.sum()) / len(members)
