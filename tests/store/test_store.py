"""The results store: resumable, exact, self-describing, and safe on files it does not own.

* An interrupted sweep keeps exactly its finished members (every epoch, no partial
  member); a re-run trains only the rest and ends with the store an uninterrupted run
  writes.
* ``params(member, epoch)`` returns the initial parameters at epoch 0 and what training
  produced after every epoch.
* Every sweep row carries its provenance (commit, versions, PRNG, device, config), and
  every member row reconstructs its member id.
* A file of another schema, garbage bytes or a foreign SQLite database raises
  ``StoreError`` and is left byte for byte as it was.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import optax
import pandas as pd
import pytest

from latchlab import config
from latchlab.engine import run as runner
from latchlab.engine import data as sweep_data
from latchlab.engine import plan as sweep_plan
from latchlab.config import RUN_FIELDS, Member, RunConfig
from latchlab.errors import LatchlabError, StoreError
from latchlab.store import SCHEMA, Store

EPOCHS = 2
# Shapes as in test_cli's tiny seed reproduction (keras2, N = 200, T padded to 5, four
# members a chunk), so the two files share compiled epochs. Two cells: two chunks.
SWEEP = {
    "name": "resume",
    "repeats": 2,
    "seed": 0,
    "N": 200,
    "epochs": EPOCHS,
    "preset": "keras2",
    "grid": {"cell": ["srnn", "lstm"], "T": [2, 5]},
}


def _cfg():
    return config.from_dict(json.loads(json.dumps(SWEEP)))


def _rows(path: Path) -> dict[str, pd.DataFrame]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            t: pd.read_sql_query(f"SELECT * FROM {t} ORDER BY {key}", db)
            for t, key in (
                ("members", "member_id"),
                ("epochs", "member_id, epoch"),
                ("params", "member_id, epoch"),
                ("sweeps", "sweep_id"),
            )
        }
    finally:
        db.close()


def _assert_tree_equal(a: dict, b, atol=0.0):
    b = jax.tree.map(np.asarray, b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.shape == y.shape and x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep run without interruption: its config and store path."""
    cfg = _cfg()
    path = tmp_path_factory.mktemp("reference") / "s.sqlite"
    with Store(path) as st:
        df = runner.run(cfg, st)
    assert len(df) == len(cfg.members()) * EPOCHS
    return cfg, path


# ----------------------------------------------------------------------------- resume


def test_interrupted_sweep_keeps_finished_members_and_resumes_to_the_same_store(tmp_path, reference):
    cfg = _cfg()
    chunks = sweep_plan.plan(cfg.members())
    assert len(chunks) == 2 and all(c.pad == 0 for c in chunks)
    first = {m.id for m in chunks[0].members}
    rest = {m.id for m in chunks[1].members}
    path = tmp_path / "s.sqlite"

    calls = []
    with Store(path) as st:

        def progress(n, total):
            calls.append(len(st.done()))
            if st.done():  # the first chunk is written: stop as Ctrl-C would
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            runner.run(cfg, st, progress)
    assert calls == [0] * EPOCHS + [len(first)]  # interrupted in the second chunk's first epoch

    # exactly the finished members, each with all its epochs and parameter snapshots
    cut = _rows(path)
    assert set(cut["members"].member_id) == first
    ep = cut["epochs"]
    assert set(ep.member_id) == first
    assert ep.groupby("member_id").epoch.agg(lambda e: sorted(e) == list(range(1, EPOCHS + 1))).all()
    pr = cut["params"]
    assert set(pr.member_id) == first
    assert pr.groupby("member_id").epoch.agg(lambda e: sorted(e) == list(range(EPOCHS + 1))).all()
    assert len(cut["sweeps"]) == 1

    with Store(path) as st:  # the re-run: a new process would reopen the file the same way
        assert st.done() == first
        df = runner.run(cfg, st, lambda n, total: calls.append(("rerun", n, total)))
    # only the unfinished chunk trained: its members' epochs, out of a total of its own
    assert calls[-EPOCHS:] == [("rerun", len(rest), len(rest) * EPOCHS)] * EPOCHS
    assert set(df.member_id) == first | rest and len(df) == len(first | rest) * EPOCHS

    done = _rows(path)
    for t in ("members", "epochs", "params"):  # the finished members' rows, seconds included
        old = cut[t].reset_index(drop=True)
        new = done[t][done[t].member_id.isin(first)].reset_index(drop=True)
        pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert list(done["sweeps"].sweep_id) == [1, 2]
    assert set(done["members"][done["members"].member_id.isin(rest)].sweep_id) == {2}

    # ... and the store an uninterrupted run writes
    ref = _rows(reference[1])
    assert list(done["members"].member_id) == list(ref["members"].member_id)
    cols = ["member_id", "seed", *RUN_FIELDS]
    pd.testing.assert_frame_equal(done["members"][cols], ref["members"][cols], check_exact=True)
    pd.testing.assert_frame_equal(done["epochs"], ref["epochs"], check_exact=False, rtol=0, atol=1e-6)
    with Store(path, create=False) as a, Store(reference[1], create=False) as b:
        for m in first | rest:
            _assert_tree_equal(a.params(m), b.params(m), atol=1e-6)


# ----------------------------------------------------------------------------- parameters


def test_params_round_trip_initial_and_trained(reference):
    cfg, path = reference
    chunk = sweep_plan.plan(cfg.members())[1]  # the LSTM chunk: four weight arrays a member
    assert chunk.members[0].run.cell == "lstm" and chunk.pad == 0
    hist = runner.train_chunk(chunk)  # the same chunk again: the same compiled epochs, same numbers
    with Store(path, create=False) as st:
        for r, m in enumerate(chunk.members):
            (one,) = [jax.tree.map(lambda a: a[0], sweep_data.init_members([m]))]
            _assert_tree_equal(st.params(m.id, 0), one, atol=1e-7)  # its own seed, alone
            for e in range(EPOCHS + 1):
                _assert_tree_equal(st.params(m.id, e), jax.tree.map(lambda a: a[r], hist.params[e]))
            _assert_tree_equal(st.params(m.id), st.params(m.id, EPOCHS))  # default: the last
            assert not np.array_equal(
                st.params(m.id, 0)["cell"]["kernel"], st.params(m.id)["cell"]["kernel"]
            )  # training moved it
        stored = st.epochs()
        with pytest.raises(StoreError, match="member"):
            st.params(m.id, EPOCHS + 1)
        with pytest.raises(StoreError, match="member"):
            st.params("no-such-member")
    # the stored metrics are this training's metrics
    for r, m in enumerate(chunk.members):
        rows = stored[stored.member_id == m.id].sort_values("epoch")
        np.testing.assert_allclose(rows.val_acc, hist.val_acc[:, r], rtol=0, atol=1e-7)
        np.testing.assert_allclose(rows.train_loss, hist.train_loss[:, r], rtol=0, atol=1e-7)


def test_reads_of_some_members_are_the_whole_stores_rows_and_still_refuse_damage(tmp_path, reference):
    """``epochs(ids)``, ``members(ids)`` and ``member(prefix)`` read only the members asked
    for (an analysis of one member read every row of the store before: most of the explain
    report's time) and give the whole store's rows of them exactly. The store is still
    refused when any row is damaged, also by another connection after a read (the verdict
    kept between reads is renewed when the store changes)."""
    from latchlab.errors import ConfigError

    path = tmp_path / "s.sqlite"
    path.write_bytes(reference[1].read_bytes())
    with Store(path, create=False) as st:
        full, finals = st.epochs(), st.members()
        ids = list(dict.fromkeys(full.member_id))
        pick = [ids[5], ids[0], ids[5]]  # any order, repeats: the store's order, once each
        want = full[full.member_id.isin(pick)].reset_index(drop=True)
        pd.testing.assert_frame_equal(st.epochs(pick), want)
        pd.testing.assert_frame_equal(st.members(pick), finals[finals.member_id.isin(pick)].reset_index(drop=True))
        assert st.epochs([]).empty and list(st.epochs([]).columns) == list(full.columns)
        for mid in ids:
            row = finals[finals.member_id == mid].iloc[0]
            pd.testing.assert_series_equal(st.member(mid[:10]), row, check_names=False)
        with pytest.raises(ConfigError, match=f"matches {len(ids)} members"):
            st.member("")
        with pytest.raises(ConfigError, match="matches no member"):
            st.member("zz")
        victim = ids[3]
        db = sqlite3.connect(path)
        with db:
            db.execute("UPDATE members SET cell = 'rnn' WHERE member_id = ?", (victim,))
        db.close()
        for read in (lambda: st.member(ids[0]), lambda: st.epochs([ids[0]]), st.members):
            with pytest.raises(StoreError, match=f"is damaged .*member {victim}"):
                read()


def test_packed_params_round_trip_and_npz_blobs_still_read():
    """``_pack_all``'s blobs give back every member's arrays (dtypes, shapes, values), and
    blobs written by earlier versions (``np.savez``) read the same."""
    import io

    from latchlab import store as S

    rng = np.random.default_rng(0)
    params = {
        "cell": {
            "kernel": rng.normal(size=(3, 1, 4)).astype(np.float32),
            "bias": rng.normal(size=(3, 2, 4)).astype(np.float32),
        },
        "head": {"kernel": rng.normal(size=(3, 1, 2)), "step": np.arange(3, dtype=np.int32)},
    }
    blobs = S._pack_all(params)
    for r, blob in enumerate(blobs):
        got = S._unpack(blob)
        want = jax.tree.map(lambda a: a[r], params)
        for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want)):
            assert g.dtype == w.dtype and g.shape == w.shape, path
            np.testing.assert_array_equal(g, w)
        buf = io.BytesIO()
        np.savez(buf, **{f"{a}/{b}": v for a, d in want.items() for b, v in d.items()})
        old = S._unpack(buf.getvalue())
        for g, w in zip(jax.tree.leaves(old), jax.tree.leaves(want)):
            np.testing.assert_array_equal(g, w)


# ----------------------------------------------------------------------------- provenance


def test_sweep_rows_carry_provenance(reference):
    cfg, path = reference
    with Store(path, create=False) as st:
        sw = st.sweeps()
        members = pd.read_sql_query("SELECT * FROM members", st.db)
    assert len(sw) == 1
    row = sw.iloc[0]
    assert row["name"] == "resume"
    assert time.time() - 3600 < row.started <= time.time()

    head = subprocess.run(
        ["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", row.git_commit)
    if head:
        assert row.git_commit.split("-")[0] == head

    v = json.loads(row.versions)
    assert {"python", "latchlab", "jax", "jaxlib", "numpy", "optax", "scipy", "pandas"} <= set(v)
    assert (v["jax"], v["numpy"], v["optax"], v["pandas"]) == (
        jax.__version__,
        np.__version__,
        optax.__version__,
        pd.__version__,
    )

    assert "threefry" in row.prng and jax.config.jax_default_prng_impl in row.prng
    assert row.device == f"{jax.default_backend()}:{jax.device_count()}"

    # the stored config rebuilds the sweep, and every member row rebuilds its member id
    again = config.from_dict(json.loads(row.config))
    assert [m.id for m in again.members()] == [m.id for m in cfg.members()]
    for r in members.itertuples(index=False):
        d = {f: getattr(r, f) for f in RUN_FIELDS}
        d["values"] = tuple(sorted(json.loads(d["values"]).items()))
        d = {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()}
        assert Member(RunConfig(**d), int(r.seed)).id == r.member_id
    assert (members.sweep_id == row.sweep_id).all() and (members.seconds > 0).all()


# ----------------------------------------------------------------------------- foreign files


def _sqlite(path: Path, *statements) -> None:
    db = sqlite3.connect(path)
    with db:
        for s in statements:
            db.execute(s)
    db.close()


FOREIGN = {
    "another schema": lambda p: _sqlite(
        p,
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta VALUES ('schema', 'latchlab-store/0')",
    ),
    "meta without a schema tag": lambda p: _sqlite(
        p,
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta VALUES ('owner', 'someone')",
    ),
    "garbage bytes": lambda p: p.write_bytes(np.random.default_rng(1).bytes(8192)),
    "empty sqlite db with other tables": lambda p: _sqlite(
        p, "CREATE TABLE members(member_id TEXT)", "CREATE TABLE epochs(x REAL)"
    ),
    "text file": lambda p: p.write_text("member_id,val_acc\nabc,0.5\n"),
}


@pytest.mark.parametrize("create", [True, False])
@pytest.mark.parametrize("kind", list(FOREIGN))
def test_foreign_file_raises_store_error_and_is_untouched(kind, create, tmp_path):
    path = tmp_path / "s.sqlite"
    FOREIGN[kind](path)
    os.utime(path, (1_000_000_000, 1_000_000_000))
    before = path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))
    with pytest.raises(StoreError) as e:
        Store(path, create=create)
    assert isinstance(e.value, LatchlabError)
    msg = str(e.value)
    assert msg.startswith("store: ") and "\n" not in msg
    if kind in ("another schema", "meta without a schema tag"):
        assert SCHEMA in msg
    assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before


def test_missing_store_is_created_only_when_asked(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "a.sqlite", create=False)
    assert os.listdir(tmp_path) == []
    with Store(tmp_path / "sub" / "b.sqlite") as st:
        assert st.done() == set() and st.epochs().empty and st.members().empty
    with Store(tmp_path / "sub" / "b.sqlite", create=False) as st:  # and reopens as a store
        assert st.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (SCHEMA,)


@pytest.mark.parametrize("name", ["a#b.sqlite", "a?b.sqlite"])
def test_store_path_with_uri_characters_reopens(name, tmp_path):
    Store(tmp_path / name).close()
    try:
        with Store(tmp_path / name, create=False) as st:
            assert st.done() == set()
    finally:
        assert sorted(os.listdir(tmp_path)) == [name]


def test_every_single_bit_flip_of_a_packed_blob_is_caught():
    """A packed blob's checksum covers its header and every parameter byte: each of its
    bits flipped alone makes ``_unpack`` raise ``ValueError`` (which ``Store.params`` turns
    into a one-line ``StoreError`` naming the salvage command)."""
    from latchlab import store as S

    params = {
        "cell": {"kernel": np.arange(8, dtype=np.float32).reshape(2, 1, 4)},
        "head": {"bias": np.array([[0.5], [-1.5]])},
    }
    blob = S._pack_all(params)[1]
    np.testing.assert_array_equal(S._unpack(blob)["cell"]["kernel"], params["cell"]["kernel"][1])
    bits = np.unpackbits(np.frombuffer(blob, np.uint8))
    for i in range(len(bits)):
        flipped = bits.copy()
        flipped[i] ^= 1
        with pytest.raises(ValueError, match="checksum mismatch" if i >= 32 else None):  # past the magic
            S._unpack(np.packbits(flipped).tobytes())
    with pytest.raises(ValueError, match="truncated|checksum"):
        S._unpack(blob[:-3])
