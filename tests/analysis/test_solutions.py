"""Hand-set solutions (``latchlab.analysis.solutions``): capacity apart from trainability.

* Every construction reaches >= 0.99 accuracy at T = 20, 100 and 200 on fresh data from the
  project's task generators (seeds used nowhere else), through the project's forward pass,
  under both gate presets.
* The one-unit SRNN has no bit-relay solution: the argument's key step (for any weights and
  any noise path, at most 3 of the 4 sign pairs are classified right) holds over thousands
  of random weight sets, and is reached; the one-unit GRU construction gets all 4, so the
  check can fail.
* The explain report's capacity section lists them as background (no test, no verdict),
  with its table in ``findings.json``.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from latchlab.analysis import solutions as S
from latchlab.errors import ConfigError

BUILT = [(cell, task, units) for task, units in S.CASES for cell in S.CELLS if (cell, task, units) not in S.NO_SOLUTION]


@pytest.mark.parametrize("preset", S.PRESETS)
@pytest.mark.parametrize("cell, task, units", BUILT)
def test_each_construction_solves_fresh_data_at_every_length(cell, task, units, preset):
    sol = S.construct(cell, task, units, preset)
    assert sol.params is not None
    for T in S.LENGTHS:
        acc = S.accuracy(sol, T, seed=90_000 + T, n=1000)
        assert acc >= 0.99, (cell, task, units, preset, T, acc)


def test_a_construction_is_not_a_solution_of_the_other_task():
    # the accuracy check can fail: a latch solution does not relay, a relay solution does not latch
    latch = S.construct("gru", "latch", 1, "keras3")
    relay = S.Solution("gru", "bit_relay", 1, "keras3", latch.params, "")
    assert S.accuracy(relay, 20, seed=5, n=1000) < 0.6
    relay_sol = S.construct("gru", "bit_relay", 1, "keras3")
    assert S.accuracy(S.Solution("gru", "latch", 1, "keras3", relay_sol.params, ""), 20, seed=5, n=1000) < 0.9


def _random_srnn(key, n, scale):
    k = jax.random.split(key, 5)
    cell = {
        "kernel": scale * jax.random.normal(k[0], (n, 1, 1)),
        "recurrent": scale * jax.random.normal(k[1], (n, 1, 1)),
        "bias": scale * jax.random.normal(k[2], (n, 1)),
    }
    head = {"kernel": scale * jax.random.normal(k[3], (n, 1, 2)), "bias": scale * jax.random.normal(k[4], (n, 2))}
    return {"cell": cell, "head": head}


@pytest.mark.parametrize("T", [4, 20])
def test_no_one_unit_srnn_gets_more_than_three_of_four_sign_pairs(T):
    sol = S.construct("srnn", "bit_relay", 1)
    assert sol.params is None and "none exists" in sol.why
    best = 0
    for i, scale in enumerate((0.5, 3.0, 30.0)):
        params = _random_srnn(jax.random.PRNGKey(i), 4000, scale)
        got = np.asarray(S.four_pairs_correct(sol, params, T, jax.random.PRNGKey(100 + i)))
        assert got.max() <= 3, (scale, got.max())
        best = max(best, int(got.max()))
    assert best == 3  # the bound is reached
    gru = S.construct("gru", "bit_relay", 1, "keras2")
    one = jax.tree.map(lambda a: a[None], gru.params)
    assert int(S.four_pairs_correct(gru, one, T, jax.random.PRNGKey(7))[0]) == 4


def test_no_construction_for_an_unknown_case_names_the_field():
    with pytest.raises(ConfigError) as info:
        S.construct("rnn", "latch", 1)
    assert info.value.field == "cell"
    with pytest.raises(ConfigError) as info:
        S.construct("gru", "latch", 8)
    assert info.value.field == "task"


def test_capacity_section_is_background_with_its_table_in_findings_json():
    from latchlab.experiments import explain as report

    f = report.capacity(lengths=(20,), presets=("keras3",), n=200)
    assert f.verdict == "context" and f.claims == [] and f.notes
    assert "No one-unit SRNN solves bit relay" in f.notes and "not a test" in f.notes
    (caption, t), *_ = f.tables
    assert len(t) == len(S.CELLS) * len(S.CASES)
    built = t[t.solution == "constructed"]
    assert len(built) == len(BUILT) and (built.min_acc >= 0.99).all()
    none = t[t.solution != "constructed"]
    assert list(zip(none.cell, none.task, none.units)) == list(S.NO_SOLUTION) and none.min_acc.isna().all()
    data = json.loads(json.dumps(report.findings_json(["x"], "quick", 1, [f], 1.0)))
    (section,) = data["sections"]
    assert section["verdict"] == "context" and section["declared_test"] is None
    rows = section["tables"][0]["rows"]
    assert len(rows) == len(t) and {"cell", "task", "units", "solution", "acc_T20"} <= set(rows[0])
    assert data["claims"] == []


def test_solutions_use_the_project_forward_pass_layout():
    # the head and cell parameters are the Keras layout that ``model.init`` produces
    from latchlab.core import model as M

    for cell, task, units in BUILT:
        for preset in S.PRESETS:
            sol = S.construct(cell, task, units, preset)
            ref = M.init(jax.random.PRNGKey(0), sol.model)
            assert jax.tree.structure(ref) == jax.tree.structure(sol.params)
            assert jax.tree.map(jnp.shape, ref) == jax.tree.map(jnp.shape, sol.params)
