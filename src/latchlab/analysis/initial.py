"""What a one-unit member starts with: its initial retention and its initial parameters.

The **initial retention** ``r`` is the factor by which the state keeps its past per step at
initialisation, at the state's *operating point* (where the state sits between the signal
and the read-out, with the input's noise left out, ``x = 0``):

* SRNN ``h = tanh(W x + U h + b)``: ``r = |U (1 - h*^2)|``, the slope of the input-free map
  at its operating point ``h*``: the stable fixed point of ``h -> tanh(U h + b)`` (the
  slowest one if there are several; with ``b = 0``, ``h* = 0`` for ``|U| <= 1`` and the two
  attractors ``±h̄`` of Bengio et al. 1994 Fig. 1 for ``U > 1``, which share the slope).
  For ``U > 1`` the state holds the sign by bistability, and ``r < 1`` is the rate at
  which a perturbation returns to the attractor, not a rate of forgetting.
* LSTM ``c = f c + i g``: ``r = f`` at the origin ``(h, c) = 0`` (a fixed point of the
  input-free map while ``b_c = 0``): ``rsig(b_f)``.
* GRU ``h = z h + (1 - z) h~`` (Keras' and latchlab's convention: ``z`` keeps the state):
  ``r = z`` at ``h = 0``: ``rsig(b_z)`` (plus the recurrent bias of a reset-after GRU).
* JANET ``c = f c + ...``: ``r = f`` at ``c = 0``; ``lstm_nofg``: ``r = 1``.

``half_life(r) = ln 0.5 / ln r`` (``latchlab.analysis.diagnose.half_life``) is the number of
steps after which ``r`` keeps half. ``latchlab.analysis.diagnose`` measures the retention
along actual sequences instead (``retention_geomean`` in its summary); the two agree up to
the input's effect on the gates.

``quantities`` lists these with every initial parameter of a one-unit model by name, the
per-seed table of ``latchlab explain``'s "what decides latching" section.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from latchlab.analysis.diagnose import RETENTION, half_life
from latchlab.core import cells
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError

__all__ = ["gate_retention", "half_life", "operating_retention", "quantities", "srnn_retention"]


def srnn_retention(U: float, b: float = 0.0) -> float:
    """``|U (1 - h*^2)|`` at the operating point ``h*`` of ``h -> tanh(U h + b)``.

    The fixed points are the roots of ``tanh(U h + b) - h`` on ``[-1, 1]`` (a grid of 2000
    points refined by ``brentq``); ``h*`` is the stable or marginal one (slope ``<= 1`` in
    modulus) with the largest slope, i.e. the slowest to move; if none is (``U < -1``
    with no stable point), the largest slope is returned (``> 1``: the origin repels).
    """
    from scipy.optimize import brentq

    U, b = float(U), float(b)
    g = lambda h: math.tanh(U * h + b) - h  # noqa: E731
    grid = np.linspace(-1.0, 1.0, 2000)
    r = np.tanh(U * grid + b) - grid
    roots = [float(h) for h, v in zip(grid, r) if v == 0.0]
    for a, c, ra, rc in zip(grid[:-1], grid[1:], r[:-1], r[1:]):
        if ra * rc < 0:
            roots.append(float(cast(float, brentq(g, float(a), float(c), xtol=1e-13))))
    slopes = [abs(U * (1.0 - h * h)) for h in roots]
    held = [s for s in slopes if s <= 1.0 + 1e-12]
    return float(max(held) if held else max(slopes))


def gate_retention(cell: Cell, cp) -> float:
    """The retention gate (``diagnose.RETENTION``: LSTM/JANET ``f``, GRU ``z``) of a
    one-unit gated cell at the origin state with ``x = 0``, as ``cells.step_gates`` computes
    it (float32, the model's own gate activation); ``lstm_nofg``: 1."""
    import jax.numpy as jnp

    if cell.kind == "lstm_nofg":
        return 1.0
    cp = {k: jnp.asarray(v, jnp.float32) for k, v in cp.items()}
    n_in = cp["kernel"].shape[0]
    xw = cells.input_projection(cell, cp, jnp.zeros((1, n_in), jnp.float32))
    _, blocks = cells.step_gates(cell, cp, cells.initial_carry(cell, 1), xw)
    return float(blocks[RETENTION[cell.kind]][0, 0])


def operating_retention(cell: Cell, cp) -> float:
    """The initial retention ``r`` of a one-unit cell with parameters ``cp`` (see the module
    docstring): ``srnn_retention(U, b)`` for the SRNN, ``gate_retention`` otherwise."""
    if cell.units != 1:
        raise ConfigError("units", f"the operating-point retention is defined for one unit, got {cell.units}")
    if cell.kind == "srnn":
        return srnn_retention(float(np.asarray(cp["recurrent"])[0, 0]), float(np.asarray(cp["bias"]).ravel()[0]))
    return gate_retention(cell, cp)


def quantities(cell: Cell, params) -> dict[str, float]:
    """Named initial quantities of a one-unit model ``params = {"cell", "head"}``:
    ``retention`` and ``half-life`` (the operating point's, see the module docstring), each
    gate's ``kernel_<g>``, ``recurrent_<g>``, ``bias_<g>`` (a reset-after GRU's recurrent
    biases as ``recurrent bias_<g>``), and the head's ``head k1 - k0`` (the weight of ``h``
    in the difference of the two logits; a one-logit head: its weight ``head k``)."""
    cp = params["cell"]
    r = operating_retention(cell, cp)
    out = {"retention": r, "half-life": float(half_life(r))}
    bias = np.asarray(cp["bias"], np.float64)
    for k, g in enumerate(cell.gates):
        out[f"kernel_{g}"] = float(np.asarray(cp["kernel"])[0, k])
        out[f"recurrent_{g}"] = float(np.asarray(cp["recurrent"])[0, k])
        out[f"bias_{g}"] = float(bias[0, k] if cell.split_bias else bias[k])
        if cell.split_bias:
            out[f"recurrent bias_{g}"] = float(bias[1, k])
    k = np.asarray(params["head"]["kernel"], np.float64)
    if k.shape[1] == 2:
        out["head k1 - k0"] = float(k[0, 1] - k[0, 0])
    else:
        out["head k"] = float(k[0, 0])
    return out
