"""``latchlab reproduce phase``: the initial retention set by hand, and success against it.

* A tiny run (2 lengths, 2 seeds, N = 64, one epoch, two biases) writes ``results.csv`` and
  ``phase.png`` / ``phase.svg``; every row's half-life is ``ln 0.5 / ln r`` of the retention
  computed directly from the configured value (the sigmoid of the bias; for the SRNN the
  slope of ``tanh(U h)`` at its stable fixed point, found by ``scipy.optimize.brentq``), and
  the stored initial parameters carry the configured value.
* The SRNN's recurrent weights below 1 are the gated cells' retentions, so the cells share
  those half-lives exactly; hard-sigmoid gates saturate at ``b >= 2.5`` (``r = 1``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from latchlab.analysis import initial
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError
from latchlab.experiments import phase
from latchlab.store import Store


def _direct(cell: str, value: float, preset: str) -> float:
    """The retention from the configured value, written out again by hand."""
    if cell == "srnn":
        if value <= 1.0:
            return value
        h = brentq(lambda h: math.tanh(value * h) - h, 1e-6, 1.0)
        return value * (1.0 - h * h)
    if preset == "keras2":
        return min(max(0.2 * value + 0.5, 0.0), 1.0)
    return 1.0 / (1.0 + math.exp(-value))


def test_tiny_run_writes_the_figure_and_half_lives_follow_the_configured_values(tmp_path):
    out = tmp_path / "out"
    df, paths = phase.EXPERIMENT.reproduce(out, "quick", T=[3, 5], repeats=2, N=64, epochs=1, biases=[-1.0, 2.0])
    assert sorted(p.name for p in paths) == ["phase.png", "phase.svg", "results.csv"]
    assert all(p.stat().st_size > 0 for p in paths)
    res = pd.read_csv(out / "results.csv")
    assert set(res.cell) == set(phase.CELLS) and len(res) == len(df)
    # SRNN: 0.25, the two retentions sigmoid(-1), sigmoid(2) and the four values >= 1
    assert sorted(res[res.cell == "srnn"].value.unique()) == pytest.approx(
        [0.25, 1 / (1 + math.exp(1)), 1 / (1 + math.exp(-2)), 1.0, 1.25, 1.5, 2.0], rel=1e-6
    )
    for r in res.drop_duplicates(["cell", "value"]).itertuples():
        want = _direct(r.cell, r.value, r.preset)
        assert r.retention == pytest.approx(want, rel=2e-6), (r.cell, r.value)
        expected = math.inf if want >= 1.0 else math.log(0.5) / math.log(want)
        assert r.half_life == pytest.approx(expected, rel=2e-5), (r.cell, r.value)
    assert set(res.regime) == {"decay", "no decay", "bistable"}
    assert (res[res.regime == "bistable"].value > 1).all() and (res[res.regime == "bistable"].cell == "srnn").all()
    with Store(out / "store.sqlite", create=False) as st:  # the configured value is what the members started from
        for r in res.drop_duplicates(["cell", "value"]).itertuples():
            p = st.params(r.member_id, 0)
            cell = Cell.from_preset(r.cell, 1, r.preset)
            assert initial.operating_retention(cell, p["cell"]) == pytest.approx(r.retention, rel=1e-6)
    t = phase.EXPERIMENT.table(df).frame
    assert list(t.columns[-2:]) == ["T = 3", "T = 5"] and t.iloc[0, -1].endswith("/2")


def test_the_cells_share_the_half_lives_below_one():
    for preset in ("keras3", "keras2"):
        gated = {round(phase.retention("lstm", b, preset), 6) for b in phase.BIASES}
        assert gated == {round(phase.retention("gru", b, preset), 6) for b in phase.BIASES}
        srnn = {round(phase.retention("srnn", u, preset), 6) for u in phase.values("srnn", phase.BIASES, preset)}
        assert {r for r in gated if phase.SRNN_LOW <= r < 1} <= srnn
    assert phase.retention("lstm", 3.0, "keras2") == 1.0 and phase.retention("lstm", 1.0, "keras2") == pytest.approx(
        0.7
    )
    assert phase.retention("lstm", 6.0, "keras3") == pytest.approx(1 / (1 + math.exp(-6)), rel=1e-6)


def test_full_scale_is_thirty_seeds_per_point_and_bad_biases_name_the_field():
    cfgs = phase.configs("full")
    assert [c.repeats for c in cfgs] == [30, 30, 30]
    assert all(dict(c.grid)["T"] == (20, 50, 100, 200) for c in cfgs)
    assert len(dict(cfgs[1].grid)["values"]) == len(phase.BIASES)
    with pytest.raises(ConfigError) as info:
        phase.configs("quick", biases=[np.inf])
    assert info.value.field == "biases"
