"""``latchlab.analysis.initial``: the initial retention at the operating point, against
direct computations (the sigmoid and hard sigmoid of a bias; the slope of ``tanh(U h + b)``
at a fixed point found by ``scipy.optimize.brentq``), and the named initial quantities."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from scipy.optimize import brentq

from latchlab.analysis import initial
from latchlab.core import model as M
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError


@pytest.mark.parametrize("U, b", [(0.5, 0.0), (1.0, 0.0), (1.25, 0.0), (2.0, 0.0), (1.5, 0.2), (0.8, -0.3)])
def test_srnn_retention_is_the_slope_at_the_stable_fixed_point(U, b):
    f = lambda h: math.tanh(U * h + b) - h  # noqa: E731
    grid = np.linspace(-1, 1, 400)
    roots = [brentq(f, a, c) for a, c in zip(grid[:-1], grid[1:]) if f(a) * f(c) < 0]
    slopes = [abs(U * (1 - h * h)) for h in roots]
    want = max(s for s in slopes if s <= 1 + 1e-9)
    assert initial.srnn_retention(U, b) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("preset", ["keras2", "keras3"])
@pytest.mark.parametrize("kind, gate", [("lstm", "f"), ("gru", "z"), ("janet", "f")])
def test_gate_retention_at_the_origin_is_rsig_of_the_bias(kind, gate, preset):
    cell = Cell.from_preset(kind, 1, preset)
    model = M.Model(cell, "dense2")
    params = jax.device_get(M.init(jax.random.PRNGKey(0), model, "keras", {f"bias_{gate}": 1.7}))
    rsig = (lambda z: min(max(0.2 * z + 0.5, 0), 1)) if preset == "keras2" else (lambda z: 1 / (1 + math.exp(-z)))
    assert initial.operating_retention(cell, params["cell"]) == pytest.approx(rsig(1.7), rel=1e-6)
    q = initial.quantities(cell, params)
    assert q["retention"] == pytest.approx(rsig(1.7), rel=1e-6) and q[f"bias_{gate}"] == pytest.approx(1.7)
    assert q["half-life"] == pytest.approx(math.log(0.5) / math.log(rsig(1.7)), rel=1e-5)
    k = np.asarray(params["head"]["kernel"])
    assert q["head k1 - k0"] == pytest.approx(float(k[0, 1] - k[0, 0]))
    assert {f"kernel_{g}" for g in cell.gates} <= set(q)


def test_no_forget_gate_keeps_everything_and_more_units_are_refused():
    cell = Cell.from_preset("lstm_nofg", 1, "keras3")
    params = jax.device_get(M.init(jax.random.PRNGKey(0), M.Model(cell, "dense2"), "keras"))
    assert initial.operating_retention(cell, params["cell"]) == 1.0
    two = Cell.from_preset("srnn", 2, "keras3")
    p2 = jax.device_get(M.init(jax.random.PRNGKey(0), M.Model(two, "dense2"), "keras"))
    with pytest.raises(ConfigError, match="^units"):
        initial.operating_retention(two, p2["cell"])
