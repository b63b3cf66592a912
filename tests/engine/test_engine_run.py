"""Tests of a chunk's trip through the engine (``plan`` -> ``data`` -> ``train`` -> ``run``).

* ``run.execute(chunk)``, on a chunk that went through pickle, gives the same exported
  metrics as the in-process loop (which reuses data between chunks).
* A native kernel that fails to build is planned for: chunks shaped for the XLA backend
  that trains instead, and one warning line naming it.
* Resume is bit-identical whatever the interruption point: interrupted after each chunk,
  or resumed in a store that already holds some members from another sweep, the store
  equals an uninterrupted run's exactly.
* A diverging member (a huge learning rate) is marked diverged at its epoch and keeps its
  last finite parameters; the members trained beside it get exactly the numbers they get
  in a chunk without it, on the native kernels and on XLA.
"""

from __future__ import annotations

import logging
import pickle
import sqlite3

import jax
import numpy as np
import pandas as pd
import pytest

from latchlab import config
from latchlab.engine import native, train
from latchlab.engine import plan as sweep_plan
from latchlab.engine import run as runner
from latchlab.store import Store

METRICS = ["member_id", "seed", "epoch", "train_loss", "train_acc", "val_loss", "val_acc"]


def _cfg(**over):
    base = {"name": "trip", "repeats": 3, "seed": 0, "N": 24, "epochs": 2, "batch_size": 4, "noise": 0.2}
    return config.from_dict({**base, **over})


# ----------------------------------------------------------------------------- execute


def _multi_unit_on_xla(monkeypatch):
    """Cells of more than one unit train on the XLA modes in this test (the native kernels
    train every cell where they build): a sweep that mixes both backends."""
    native_ok = runner.train.native_ok
    monkeypatch.setattr(runner.train, "native_ok", lambda m, o="adam": m.cell.units == 1 and native_ok(m, o))


def test_execute_alone_equals_the_in_process_loop(monkeypatch):
    """A sweep of one-unit SRNNs (native kernels where they build) and two-unit GRUs (XLA,
    bucketed lengths, a padded chunk): every chunk executed alone, from a pickled copy of
    it, gives the in-process loop's metrics exactly."""
    _multi_unit_on_xla(monkeypatch)
    cfg = _cfg(grid={"T": [3, 6], "cell": ["srnn", "gru"], "units": [1, 2]})
    want = runner.run(cfg)
    seen = []

    def elsewhere(chunks):
        for c in chunks:
            copy = pickle.loads(pickle.dumps(c))
            seen.append(copy.backend.name)
            yield c, runner.execute(copy)

    got = runner.run(cfg, executor=elsewhere)
    assert len(got) == len(cfg.members()) * 2
    pd.testing.assert_frame_equal(
        got[METRICS].sort_values(["member_id", "epoch"]).reset_index(drop=True),
        want[METRICS].sort_values(["member_id", "epoch"]).reset_index(drop=True),
        check_exact=True,
    )
    assert "autodiff" in seen  # the GRUs trained on XLA


def test_a_sweep_leaves_older_objects_unscanned_and_restores_the_collector():
    """While ``run`` trains, the objects made before it are frozen out of the garbage
    collector's scans; after it (and after an error) nothing is frozen again, and a process
    that had frozen objects itself keeps them frozen."""
    import gc

    seen = []
    cfg = _cfg(grid={"T": [3]})
    runner.run(cfg, progress=lambda n, total: seen.append(gc.get_freeze_count()))
    assert seen and min(seen) > 1000 and gc.get_freeze_count() == 0

    def broken(chunks):
        seen.append(gc.get_freeze_count())
        raise KeyError("an executor failed")
        yield  # a generator

    with pytest.raises(KeyError):
        runner.run(cfg, executor=broken)
    assert seen[-1] > 1000 and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        runner.run(cfg)
        assert gc.get_freeze_count() >= before
    finally:
        gc.unfreeze()


def _frame_row_by_row(results) -> pd.DataFrame:
    """The reference for ``run.frame``: a dict per member and epoch, as it was written first."""
    import json

    recs = []
    for members, hist, *seconds in results:
        for r, m in enumerate(members):
            base = {"member_id": m.id, "sweep_id": None, "seed": m.seed, **m.run.to_dict()}
            base["seconds"] = seconds[0] if seconds else float("nan")
            base["values"] = json.dumps(base["values"], sort_keys=True)
            for e in range(hist.val_acc.shape[0]):
                metrics = {k: float(getattr(hist, k)[e, r]) for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
                recs.append({**base, "epoch": e + 1, **metrics})
    return pd.DataFrame.from_records(recs)


def test_frame_equals_its_rows_made_one_by_one():
    """``run.frame`` (each member's fields once, the metrics as columns) gives the frame a
    dict per member and epoch gives: the same columns in the same order, types and values,
    for results of different epoch counts, members that share a grid point or not, values
    tables, and with and without seconds; none gives an empty frame."""
    rng = np.random.default_rng(0)
    a = _cfg(grid={"cell": ["srnn", "lstm"], "values": [{}, {"recurrent": 0.5}]}).members()
    b = _cfg(epochs=3, T=7, grid={"lr": [0.01, 0.1]}).members()
    results = []
    for ms, E, extra in ((a[:7], 2, (0.25,)), (b, 3, ()), (a[7:], 2, (1.5,))):
        h = [rng.normal(size=(E, len(ms))).astype(np.float32) for _ in range(4)]
        results.append((ms, train.History(*h, params=[]), *extra))
    got, want = runner.frame(results), _frame_row_by_row(results)
    assert len(got) == 7 * 2 + len(b) * 3 + (len(a) - 7) * 2
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert runner.frame([]).empty


def test_an_executor_returning_the_wrong_chunk_is_refused():
    cfg = _cfg(units=1, grid={"cell": ["lstm", "srnn"]})

    def swapped(chunks):
        assert len(chunks) == 2
        results = [runner.execute(c) for c in chunks]
        yield chunks[0], results[-1]

    with pytest.raises(ValueError, match="executor"):
        runner.run(cfg, executor=swapped)


# ----------------------------------------------------------------------------- a failed build


def test_a_failed_native_build_is_planned_for(monkeypatch, caplog):
    """The plan asks for the kernels before shaping chunks: when the LSTM's variant fails
    to build, its chunks are the XLA backend's (bucketed, padded to the devices), trained
    with bptt, and one warning line says so; the SRNN's variant still runs natively."""

    def fails(v=(1, 1)):
        if v == native.variant(lstm.run.model):
            raise RuntimeError("latchlab's native kernels are unavailable: g++ failed: simulated")
        return real(v)

    cfg = _cfg(repeats=5, units=1, grid={"T": [3, 7, 9], "cell": ["lstm", "srnn"]})
    lstm = next(m for m in cfg.members() if m.run.cell == "lstm")
    real = native.lib
    monkeypatch.setattr(native, "enabled", lambda: True)
    monkeypatch.setattr(native, "lib", fails)
    with caplog.at_level(logging.WARNING, logger="latchlab"):
        chunks = sweep_plan.plan(cfg.members())
    lines = [r.getMessage() for r in caplog.records if r.name == "latchlab"]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "lstm" in lines[0] and "simulated" in lines[0] and "bptt" in lines[0], lines
    by_cell = {c: [k for k in chunks if k.members[0].run.cell == c] for c in ("lstm", "srnn")}
    n_dev = jax.local_device_count()
    assert {k.backend.name for k in by_cell["lstm"]} == {"bptt"}
    assert all(len(k.members) % n_dev == 0 for k in by_cell["lstm"])
    real_lstm = [m.id for k in by_cell["lstm"] for m in k.members[: len(k.members) - k.pad]]
    assert sorted(real_lstm) == sorted(m.id for m in cfg.members() if m.run.cell == "lstm")
    if train.native_ok(next(m for m in cfg.members() if m.run.cell == "srnn").run.model):
        assert {k.backend.name for k in by_cell["srnn"]} == {"native"}


# ----------------------------------------------------------------------------- resume


def _tables(path) -> dict:
    with sqlite3.connect(path) as db:
        return {
            t: pd.read_sql_query(f"SELECT * FROM {t} ORDER BY member_id", db).drop(columns="seconds", errors="ignore")
            for t in ("members", "epochs", "params")
        }


def _equal_stores(a, b, ids=None):
    ta, tb = _tables(a), _tables(b)
    for t in ("members", "epochs", "params"):
        x, y = ta[t], tb[t]
        if ids is not None:
            x, y = x[x.member_id.isin(ids)], y[y.member_id.isin(ids)]
        x, y = x.drop(columns="sweep_id", errors="ignore"), y.drop(columns="sweep_id", errors="ignore")
        pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True), check_exact=True)


# four-unit GRUs on XLA (where the chunk's size changes the rounding by about 6e-8):
# lengths 10 and 5 in one bucket, T = 10 members first (the grid's order), 22 members in
# chunks of 8, 8 and 6 (+ 2 padding); a plan of the members left after one or two chunks
# would cut other chunks, and not pad T = 5 to 10
RESUME = {"cell": "gru", "units": 4, "repeats": 11, "N": 200, "batch_size": 16, "grid": {"T": [10, 5]}}


_PLAN = sweep_plan.plan


def _plan_small(members, **kw):  # chunks of up to 4 members per device (batch 16)
    return _PLAN(members, **{**kw, "rows_per_device": 4 * 16})


def test_resume_after_every_chunk_is_bit_identical(tmp_path, monkeypatch):
    """Interrupted after each of its chunks (lengths 10 and 5 in one bucket) and resumed:
    the store equals the uninterrupted run's exactly (parameters included)."""
    _multi_unit_on_xla(monkeypatch)
    cfg = _cfg(**RESUME)
    monkeypatch.setattr(sweep_plan, "plan", _plan_small)
    chunks = sweep_plan.plan(cfg.members())
    assert len(chunks) >= 3 and {c.T_pad for c in chunks} == {10}
    assert any(m.run.T == 5 for m in chunks[-1].members)
    with Store(tmp_path / "ref.sqlite") as st:  # the same small chunks, uninterrupted
        runner.run(cfg, st)
    for k in range(1, len(chunks)):
        path = tmp_path / f"cut{k}.sqlite"
        with Store(path) as st:

            def stop(n, total, st=st, k=k):
                if len(st.done()) >= sum(len(c.wanted) for c in chunks[:k]):
                    raise KeyboardInterrupt

            with pytest.raises(KeyboardInterrupt):
                runner.run(cfg, st, stop)
            assert 0 < len(st.done()) < len(cfg.members())
        with Store(path) as st:
            runner.run(cfg, st)
        _equal_stores(path, tmp_path / "ref.sqlite")


def test_members_stored_by_another_sweep_do_not_change_the_others(tmp_path, monkeypatch):
    """A combined run ([A, B]) in a store that already holds A's members (e.g. the seed
    sweep before the ablations): B's members are trained in the chunks the combined plan
    gives them, finished members beside them are trained again but not rewritten, and B's
    rows equal those of the combined run in an empty store."""
    _multi_unit_on_xla(monkeypatch)
    a = _cfg(**RESUME)
    b = _cfg(**{**RESUME, "name": "b", "lr": 3e-3})
    fresh, reused = tmp_path / "fresh.sqlite", tmp_path / "reused.sqlite"
    with Store(fresh) as st:
        runner.run([a, b], st)
    with Store(reused) as st:
        runner.run(a, st)
        before = _tables(reused)
        chunks = sweep_plan.plan([*a.members(), *b.members()], done=frozenset(st.done()))
        assert any(0 < len(c.done) for c in chunks)  # chunks mixing finished and new members
        runner.run([a, b], st)
    after = _tables(reused)
    a_ids = {m.id for m in a.members()}
    for t in before:
        pd.testing.assert_frame_equal(
            after[t][after[t].member_id.isin(a_ids)].reset_index(drop=True),
            before[t].reset_index(drop=True),
            check_exact=True,
        )
    _equal_stores(reused, fresh, {m.id for m in b.members()})


# ----------------------------------------------------------------------------- divergence


def test_diverged_marks_the_epoch_and_keeps_the_last_finite_parameters():
    """``train._diverged`` on a made-up history of 3 members over 3 epochs: member 1's
    validation loss is inf in epoch 2 with finite parameters (kept), member 2's parameters
    are NaN after epoch 3 (epoch 2's kept)."""
    E, R = 3, 3
    ones = np.ones((E, R), np.float32)
    params = [{"w": np.full((R, 2), float(e), np.float32)} for e in range(E + 1)]
    val = ones.copy()
    val[1, 1] = np.inf
    params[3]["w"][2, 0] = np.nan
    h = train._diverged(train.History(ones, ones, val, ones, params))
    np.testing.assert_array_equal(h.diverged_epoch, [-1, 2, 3])
    got = np.stack([p["w"] for p in h.params])  # (E + 1, R, 2)
    np.testing.assert_array_equal(got[:, 0, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(got[:, 1, 0], [0, 1, 2, 2])  # epoch 2's finite parameters kept
    np.testing.assert_array_equal(got[:, 2, 0], [0, 1, 2, 2])  # NaN after epoch 3: epoch 2's
    assert params[3]["w"][1, 0] == 3.0  # the input history is not written to


@pytest.mark.parametrize("cell, units", [("srnn", 1), ("gru", 2)])
def test_a_diverging_member_leaves_the_others_unchanged(cell, units):
    """Four members, one with a learning rate of 3e38 (Adam's first steps move every weight
    by about the learning rate: infinite by the second step), against the same chunk with
    that member replaced by a copy of a normal one (and, on the native kernels, against
    the three normal members alone): the normal members' histories are identical."""
    cfg = _cfg(repeats=1, cell=cell, units=units, T=6, grid={"lr": [1e-3, 3e-3, 1e-2]})
    normal = cfg.members()
    huge = config.Member(normal[0].run.replace(lr=3e38), normal[0].seed + 7)
    (bk,) = {c.backend for c in sweep_plan.plan(normal)}

    def execute(members, pad=0):
        return runner.execute(sweep_plan.Chunk(tuple(members), 6, bk, pad))

    with_it = execute(normal + [huge])
    without = execute(normal + [normal[-1]], pad=1)
    d = with_it.history.diverged_epoch
    assert d[3] == 1 and (d[:3] == -1).all()
    assert not np.isfinite(with_it.history.train_loss[0, 3])
    for e, snap in enumerate(with_it.history.params):  # its last finite parameters: the initial ones
        for a, b in zip(jax.tree.leaves(snap), jax.tree.leaves(with_it.history.params[0])):
            np.testing.assert_array_equal(a[3], b[3], err_msg=f"epoch {e}")
    others = [without] + ([execute(normal)] if bk.name == "native" else [])
    for ref in others:
        for k in range(4):
            np.testing.assert_array_equal(with_it.history[k][:, :3], ref.history[k][:, :3])
        for a, b in zip(jax.tree.leaves(with_it.history.params), jax.tree.leaves(ref.history.params)):
            np.testing.assert_array_equal(a[:3], b[:3])
    moved = [
        np.abs(a[:3] - b[:3]).max()
        for a, b in zip(jax.tree.leaves(with_it.history.params[-1]), jax.tree.leaves(with_it.history.params[0]))
    ]
    assert max(moved) > 1e-3  # the normal members did train
