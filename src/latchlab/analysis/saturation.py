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
def _max_slopes(cell: cells.Cell, params, x):
    """Per member (leading axis of ``params`` and ``x``): ``{gate: (H,)}`` largest slope."""

    def one(p, xs):
        return {g: jnp.max(_slope(cell.rsig, z), axis=(0, 1)) for g, z in gate_preactivations(cell, p, xs).items()}

    return jax.vmap(one)(params, x)


def fraction_saturated(members, n: int = 64) -> float:
    """Fraction of sweep ``members`` (one run settings, e.g. one ablation variant; any
    lengths and seeds) with a gate saturated at initialisation, on ``n`` fresh sequences of
    the member's task and length drawn from its data key (latch task)."""
    from latchlab.core import tasks
    from latchlab.engine import data as D

    members = list(members)
    if not members:
        return float("nan")
    cell = members[0].run.model.cell
    if cell.kind == "srnn":
        return 0.0
    params = D.init_members(members)
    assert params is not None  # members is not empty
    params = params["cell"]
    by_T = {}
    for r, m in enumerate(members):
        by_T.setdefault(m.run.T, []).append(r)
    count = 0
    for T, rs in by_T.items():
        x = jnp.stack(
            [
                tasks.latch(D.member_keys(members[r].seed)[0], n, T, members[r].run.noise, members[r].run.signal_len)[0]
                for r in rs
            ]
        )
        p = jax.tree.map(lambda a: a[np.asarray(rs)], params)
        slopes = _max_slopes(cell, p, x)
        dead = np.zeros(len(rs), bool)
        for v in slopes.values():
            dead |= np.asarray(v < SLOPE_TOL).any(axis=1)
        count += int(dead.sum())
    return count / len(members)
