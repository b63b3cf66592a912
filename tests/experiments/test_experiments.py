"""Every reproduction has one shape (``experiments.experiment.Experiment``): run through it at a
tiny size, each writes only the files it declares and prints a table; a bad scale is one
``ConfigError`` naming the scales; the shared pieces (scale check, results writer, seed
protocol, success threshold) are the ones every experiment uses."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from latchlab.analysis import plot
from latchlab.analysis.success import SUCCESS_THRESHOLD
from latchlab.engine import run as engine_run
from latchlab.errors import ConfigError
from latchlab.experiments import experiment as E
from latchlab.experiments import seed

NAMES = ("seed", "ablations", "phase", "followups", "answer", "units", "bengio1994", "guessing", "pascanu2013")
TINY = {
    "seed": {"T": [2, 3], "repeats": 1, "N": 64, "epochs": 1},
    "followups": {"T": [2, 3], "repeats": 1, "N": 64, "epochs": 1},
    "units": {"units": (1, 2), "T": (3,), "repeats": 1, "N": 64, "epochs": 1},
    "bengio1994": {
        "overrides": {
            "w0_grid": [1.0, 2.0],
            "s_grid": [0.1],
            "T_grid": [5, 8],
            "trials": 2,
            "fig2b_trials": 2,
            "epochs": 20,
            "n_test": 20,
            "seed_repeats": 0,
        }
    },
    "guessing": {
        "overrides": {
            "runs": 2,
            "len_min": 5,
            "len_max": 6,
            "n_train": 4,
            "n_test": 4,
            "max_trials": 64,
            "block": 16,
            "screen": 2,
        }
    },
    "pascanu2013": {"T": [2, 5], "points": 5, "steps": 3},
}


def experiment(name):
    return importlib.import_module(f"latchlab.experiments.{name}").EXPERIMENT


@pytest.mark.parametrize("name", NAMES)
def test_declared_once_and_a_bad_scale_names_the_scales(name):
    exp = experiment(name)
    assert exp.name == name and "quick" in exp.scales
    assert len(exp.files) == len(set(exp.files)) > 0
    with pytest.raises(ConfigError) as info:
        exp.check("huge")
    assert info.value.field == "scale" and all(s in str(info.value) for s in exp.scales)


SLOW = {"followups", "units", "bengio1994", "guessing"}  # up to 60-90 s each on two busy cores (compilation)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in TINY])
def test_a_tiny_run_writes_only_declared_files_and_a_table(name, tmp_path):
    exp = experiment(name)
    result, paths = exp.reproduce(tmp_path / "out", "quick", **TINY[name])
    names = [p.name for p in paths]
    assert names and set(names) <= set(exp.files), (names, exp.files)
    assert all(p.parent == tmp_path / "out" and p.stat().st_size > 0 for p in paths)
    written = {p.name for p in (tmp_path / "out").iterdir()} - {"store.sqlite", "store.sqlite-wal", "store.sqlite-shm"}
    assert written == set(names)
    table = exp.table(result)
    assert table.title and len(table.frame) > 0 and len(table.frame.columns) > 1
    assert all(isinstance(v, str) for v in np.ravel(table.frame.to_numpy()))


def test_scale_check_and_overrides():
    scales = {"quick": {"T": [1], "repeats": 2}, "full": {"T": [1, 2], "repeats": 3}}
    assert E.check_scale(scales, "full") == {"T": [1, 2], "repeats": 3}
    s, rest = E.scale_with(scales, "quick", {"repeats": 5, "N": 10})
    assert s == {"T": [1], "repeats": 5} and rest == {"N": 10}
    assert scales["quick"]["repeats"] == 2  # the declaration is not changed
    with pytest.raises(ConfigError, match=r"scale: unknown scale 'tiny' \(allowed: quick, full\)"):
        E.check_scale(scales, "tiny")


def test_results_writer_keeps_the_listed_columns_in_order(tmp_path):
    df = pd.DataFrame({"b": [1, 2], "a": [3, 4], "c": [5, 6]})
    path = E.write_results(df, tmp_path, ["a", "missing", "b"])
    assert path == tmp_path / "results.csv"
    assert path.read_text().splitlines() == ["a,b", "3,1", "4,2"]


def test_every_sweep_experiment_starts_from_the_seed_protocol():
    """The seed's protocol, declared once, is what the other experiments' members train
    with, except for the fields each says it changes."""
    from latchlab.experiments import ablations, answer, bengio1994, followups, units

    def runs(cfgs):
        cfgs = cfgs if isinstance(cfgs, list) else [cfgs]
        return [m.run for c in cfgs for m in c.members()]

    changed = {  # experiment -> the protocol fields it may change
        "seed": ({"split"}, runs(seed.seed_config("quick"))),
        "ablations": ({"split", "init"}, runs([c for _, _, c in ablations.configs("quick")])),
        "followups": ({"split", "epochs", "task", "units"}, runs(followups.followup_configs("quick"))),
        "answer": ({"split", "epochs", "task", "units", "N", "lr", "batch_size"}, runs(answer.tune_configs("quick"))),
        "units": ({"split", "epochs", "task", "units", "N"}, runs(units.units_configs("quick"))),
        "bengio1994": ({"split"}, runs(bengio1994.seed_overlay_sweep(bengio1994.experiment_config("quick")[0]))),
    }
    for name, (may, rs) in changed.items():
        for field, value in seed.PROTOCOL.items():
            if field not in may:
                assert {getattr(r, field) for r in rs} == {value}, (name, field)


def test_one_success_threshold():
    assert SUCCESS_THRESHOLD == 0.99 and plot.SUCCESS == SUCCESS_THRESHOLD
    df = pd.DataFrame({"split": "s", "variant": "v", "T": 5, "val_acc": [0.98, 0.99, 1.0]})
    assert plot.summary(df).successes.tolist() == [2]
    assert plot.summary(df, threshold=0.995).successes.tolist() == [1]


def test_the_runner_records_the_command(tmp_path):
    from latchlab.store import Store

    cfg = seed.seed_config("quick", splits=("stratified",), cells=("srnn",), T=[2], repeats=1, N=32, epochs=1)
    runner = E.Runner.at(tmp_path / "s.sqlite", command="latchlab test")
    df = runner(cfg)
    assert len(plot.final(df)) == 1
    with Store(tmp_path / "s.sqlite", create=False) as st:
        assert st.sweeps().command.tolist() == ["latchlab test"]
    np.testing.assert_array_equal(plot.final(engine_run.run(cfg)).val_acc, plot.final(df).val_acc)
