"""The store under faults: kill -9 at random points, damaged pages and bytes, read-only
files, held locks, concurrent creators and concurrent runners of one sweep, bad paths,
merging worker stores, and stores written by earlier versions.

Each test checks that nothing finished is lost or duplicated and that the store ends as an
uninterrupted run writes it. The runs here are fake trainings (numbers made from each
member's id, written through ``Store.write`` exactly as ``sweep.run`` writes them) so that
a test can kill and restart a run many times in seconds; ``test_two_sweep_runs_on_one_store_split_the_work``
(slow) runs two real ``sweep.run`` processes on one store.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latchlab import config
from latchlab import store as S
from latchlab.errors import StoreError
from latchlab.store import SCHEMA, Store

from clitools import cli  # noqa: E402

TESTS = Path(__file__).parent
SRC = Path(S.__file__).parents[1]
History = namedtuple("History", "train_loss train_acc val_loss val_acc params diverged_epoch")
PROV = {"git_commit": "0" * 40, "versions": {"python": "3"}, "prng": "threefry2x32", "device": "cpu:1"}
EPOCHS = 2
CHUNK = 4
FAKE = {
    "name": "faults",
    "repeats": 6,
    "seed": 0,
    "N": 64,
    "epochs": EPOCHS,
    "grid": {"cell": ["srnn", "lstm"], "T": [2, 5]},
}  # 24 members, 6 chunks


def _members():
    return config.from_dict(json.loads(json.dumps(FAKE))).members()


def _history(members) -> History:
    """Every member's numbers from its id alone: the same whoever trains it, and when."""
    rngs = [np.random.default_rng(int(hashlib.sha256(m.id.encode()).hexdigest()[:12], 16)) for m in members]
    metric = lambda: np.stack([g.random(EPOCHS) for g in rngs], axis=1)  # noqa: E731
    tl, ta, vl, va = metric(), metric(), metric(), metric()
    params = [
        {
            "cell": {
                "kernel": np.stack([g.normal(size=(1, 4)).astype(np.float32) for g in rngs]),
                "big": np.stack([g.normal(size=20_000).astype(np.float32) for g in rngs]),
            },
            "head": {"bias": np.stack([g.normal(size=(1,)) for g in rngs])},
        }
        for _ in range(EPOCHS + 1)
    ]
    div = np.array([int(g.integers(-1, EPOCHS + 1)) for g in rngs])
    return History(tl, ta, vl, va, params, div)


def _work(path, log=None, pause=0.0, ids=None, ready=None, go=None):
    """A fake sweep run as ``sweep.run`` runs one: claim a chunk, train it, write it; at the
    end wait for members other runners hold, and train those whose runner died. (With
    ``ready`` and ``go``: touch ``ready``, then start once ``go`` exists.)"""
    members = [m for m in _members() if ids is None or m.id in ids]
    if ready:
        Path(ready).touch()
        while not Path(go).exists():
            time.sleep(0.005)
    with Store(path) as st:
        todo = [m for m in members if m.id not in st.done()]
        sid = st.add_sweep("faults", FAKE, PROV, "fake") if todo else None
        while todo:
            for i in range(0, len(todo), CHUNK):
                chunk = todo[i : i + CHUNK]
                got = st.claim([m.id for m in chunk])
                kept = [m for m in chunk if m.id in got]
                if not kept:
                    continue
                time.sleep(pause)
                st.write(sid, kept, _history(kept), 0.5)
                if log:
                    with open(log, "a") as f:
                        f.write("".join(f"{m.id}\n" for m in kept))
            left = st.wait({m.id for m in members}, poll=0.05)
            todo = [m for m in members if m.id in left]


def _worker(path, log=None, pause=0.0, ready=None, go=None) -> subprocess.Popen:
    args = ", ".join(repr(None if a is None else str(a)) for a in (path, log))
    gate = ", ".join(repr(None if a is None else str(a)) for a in (ready, go))
    code = (
        f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}]; from test_store_faults import _work; "
        f"_work({args}, {pause}, None, {gate})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), str(TESTS.parent)])}
    return subprocess.Popen([sys.executable, "-c", code], env=env)


def _start_together(n, tmp_path, **kw) -> list[subprocess.Popen]:
    """``n`` workers released at the same moment, once every one has started."""
    go = tmp_path / "go"
    ps = [_worker(ready=tmp_path / f"ready{i}", go=go, **{k: v[i] for k, v in kw.items()}) for i in range(n)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(n)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in ps)
        time.sleep(0.01)
    go.touch()
    return ps


def _content(path) -> dict:
    """What a store holds, apart from when and by which sweep row it was written."""
    with Store(path, create=False) as st:
        m = pd.read_sql_query("SELECT * FROM members ORDER BY member_id", st.db).drop(columns=["sweep_id", "seconds"])
        e = pd.read_sql_query("SELECT * FROM epochs ORDER BY member_id, epoch", st.db)
        keys = st.db.execute("SELECT member_id, epoch FROM params ORDER BY member_id, epoch").fetchall()
        p = {k: st.params(*k) for k in keys}
    return {"members": m, "epochs": e, "params": p}


def _assert_same(a: dict, b: dict) -> None:
    pd.testing.assert_frame_equal(a["members"], b["members"], check_exact=True)
    pd.testing.assert_frame_equal(a["epochs"], b["epochs"], check_exact=True)
    assert list(a["params"]) == list(b["params"])
    for k in a["params"]:
        for part in a["params"][k]:
            for name, v in a["params"][k][part].items():
                w = b["params"][k][part][name]
                assert v.dtype == w.dtype and v.shape == w.shape
                np.testing.assert_array_equal(v, w)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The fake sweep written without interruption."""
    path = tmp_path_factory.mktemp("ref") / "s.sqlite"
    _work(path)
    return path, _content(path)


def _one_line(rc, out, err):
    assert "Traceback" not in out + err, err
    assert rc == 2, (rc, out, err)
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: store: "), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------- kill -9


def test_kill9_at_random_points_loses_and_duplicates_nothing(tmp_path, reference):
    path = tmp_path / "s.sqlite"
    rnd = random.Random(0)
    before, kills = set(), 0
    for i in range(6):
        ready = tmp_path / f"ready{i}"
        worker = _worker(path, pause=0.15, ready=ready, go=ready)
        while not ready.exists() and worker.poll() is None:  # imported: the store work begins
            time.sleep(0.002)
        time.sleep(rnd.uniform(0.0, 0.3))  # creating, opening, claiming, "training" or writing
        if worker.poll() is not None:
            assert worker.returncode == 0
            break
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills += 1
        problems = S.check(path) if path.exists() and path.stat().st_size else ["absent"]
        if problems:  # killed while creating the store: nothing was written yet
            assert not before and all("empty" in x or x == "absent" for x in problems), problems
            continue
        with Store(path, create=False) as st:  # sound after every kill
            now = st.done()
        assert before <= now  # nothing finished is lost
        before = now
    assert kills >= 3
    _work(path)  # finish (claims of the killed processes are stale: their pids are gone)
    assert S.check(path) == []
    _assert_same(_content(path), reference[1])
    with Store(path, create=False) as st:
        assert st.claims().empty
        n = st.db.execute("SELECT count(*) FROM epochs").fetchone()[0]
    assert n == len(_members()) * EPOCHS  # nothing duplicated


# ----------------------------------------------------------------------------- damage


def _pages(path: Path):
    data = path.read_bytes()
    size = int.from_bytes(data[16:18], "big")
    return data, size


def test_damaged_page_is_refused_in_one_line_and_salvaged(tmp_path, reference, xla_cache):
    path = tmp_path / "s.sqlite"
    shutil.copy(reference[0], path)
    assert not Path(str(path) + "-wal").exists()
    data, size = _pages(path)
    # a leaf page of the params table (rows with packed blobs): garbage over it
    leaves = [
        i for i in range(1, len(data) // size) if data[i * size] == 0x0D and b"LLP2" in data[i * size : (i + 1) * size]
    ]
    assert leaves
    i = leaves[len(leaves) // 2]
    junk = np.random.default_rng(2).bytes(size)
    path.write_bytes(data[: i * size] + junk + data[(i + 1) * size :])

    with pytest.raises(StoreError, match=r"damaged .*latchlab store salvage") as e:
        Store(path, create=False)
    assert "\n" not in str(e.value)
    for args in (["export", path, "--csv", tmp_path / "x.csv"], ["plot", path, "--out", tmp_path / "fig"]):
        assert "salvage" in _one_line(*cli(*args, cwd=tmp_path, cache=xla_cache))

    beside = [Path(f"{path}{x}") for x in ("-wal", "-shm", "-journal")]
    assert not any(p.exists() for p in beside)
    rc, out, err = cli("store", "check", path, cwd=tmp_path, cache=xla_cache)
    assert rc == 1 and "Traceback" not in err and "damaged:" in out and "store salvage" in out
    rc, out, err = cli("store", "salvage", path, tmp_path / "new.sqlite", cwd=tmp_path, cache=xla_cache)
    assert rc == 0, err
    assert not any(p.exists() for p in beside)  # check and salvage only read: no journal files made
    got = _content(tmp_path / "new.sqlite")
    ref = reference[1]
    kept = set(got["members"].member_id)
    assert 0 < len(kept) < len(ref["members"])  # the page held some members' parameters
    ref_kept = {
        "members": ref["members"][ref["members"].member_id.isin(kept)].reset_index(drop=True),
        "epochs": ref["epochs"][ref["epochs"].member_id.isin(kept)].reset_index(drop=True),
        "params": {k: v for k, v in ref["params"].items() if k[0] in kept},
    }
    _assert_same(got, ref_kept)  # every salvaged member exactly as written
    assert S.check(tmp_path / "new.sqlite") == []
    # and a re-run on the salvaged store trains exactly the dropped members back
    _work(tmp_path / "new.sqlite")
    _assert_same(_content(tmp_path / "new.sqlite"), ref)


def test_damaged_parameter_bytes_are_caught_by_their_checksum(tmp_path, reference, xla_cache):
    path = tmp_path / "s.sqlite"
    shutil.copy(reference[0], path)
    with Store(path, create=False) as st:
        victim = sorted(st.done())[3]
        blob = st.db.execute("SELECT npz FROM params WHERE member_id = ? AND epoch = 1", (victim,)).fetchone()[0]
    data = path.read_bytes()
    at = data.find(blob[:200])  # the blob's first bytes (its header) lie on one page
    assert at > 0 and data.count(blob[:200]) == 1
    flip = at + 199  # one bit of the blob's header or first parameters, past its checksum
    path.write_bytes(data[:flip] + bytes([data[flip] ^ 0x01]) + data[flip + 1 :])

    with Store(path, create=False) as st:  # SQLite cannot see it: the page's structure is sound
        st.params(victim, 0)
        with pytest.raises(StoreError, match=f"damaged .*{victim} at epoch 1.*checksum"):
            st.params(victim, 1)
    rc, out, _ = cli("store", "check", path, cwd=tmp_path, cache=xla_cache)
    assert rc == 1 and f"parameters of member {victim} at epoch 1: checksum mismatch" in out
    got = S.salvage(path, tmp_path / "new.sqlite")
    assert set(got["dropped"]) == {victim} and got["members"] == len(_members()) - 1


CORRUPT_ROWS = {  # a row no sweep writes: what `store check` must say of it
    "UPDATE members SET cell = 'rnn' WHERE member_id = ?": "cell: unknown cell 'rnn'",
    "UPDATE members SET T = 'abc' WHERE member_id = ?": "T: must be an integer",
    # equal to the other members' 5 in SQL, yet no integer: each type is checked
    "UPDATE members SET T = 5.0 WHERE member_id = ?": "T: must be an integer, got 5.0",
    "UPDATE members SET \"values\" = '{not json' WHERE member_id = ?": "values: '{not json' is not JSON",
    "UPDATE members SET seed = -1 WHERE member_id = ?": "seed: ",
    "UPDATE epochs SET val_acc = 'x' WHERE member_id = ? AND epoch = 2": "val_acc of epoch 2 is 'x', not a number",
    "UPDATE members SET epochs = 'x' WHERE member_id = ?": "epochs is 'x', not an integer >= 1",
}


@pytest.mark.parametrize("statement", list(CORRUPT_ROWS))
def test_rows_no_sweep_writes_are_damage_that_salvage_drops(statement, tmp_path, reference, xla_cache):
    """A member row edited to hold what no sweep writes is damage: `store check` names the
    member and the field (exit 1), every reader refuses the store in one line naming
    salvage, `merge` refuses it, and `salvage` copies every other member."""
    path = tmp_path / "s.sqlite"
    shutil.copy(reference[0], path)
    victim = sorted(m.id for m in _members())[5]
    db = sqlite3.connect(path)
    with db:
        db.execute(statement, (victim,))
    db.close()
    problems = S.check(path)
    assert problems == [f"member {victim}: {problems[0].split(': ', 1)[1]}"], problems
    assert CORRUPT_ROWS[statement] in problems[0]
    with pytest.raises(StoreError, match=f"is damaged .*member {victim}.*store salvage"):
        with Store(path, create=False) as st:
            st.members()
    with pytest.raises(StoreError, match=f"is damaged .*member {victim}"):
        S.merge(tmp_path / "m.sqlite", [path])
    assert not (tmp_path / "m.sqlite").exists()  # refused: no target made
    got = S.salvage(path, tmp_path / "new.sqlite")
    assert list(got["dropped"]) == [victim] and got["members"] == len(_members()) - 1
    assert S.check(tmp_path / "new.sqlite") == []
    # nor is anything merged into it
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"is damaged .*member {victim}"):
        S.merge(path, [tmp_path / "new.sqlite"])
    assert path.read_bytes() == before


def test_refused_merge_and_salvage_leave_no_new_file_and_never_write_into_a_store(tmp_path, reference):
    """A merge refused for conflicting members creates no target; a salvage into
    ``missing/../existing.sqlite`` (the store itself once the directory exists) is refused
    and leaves the store's bytes."""
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    shutil.copy(reference[0], a)
    shutil.copy(reference[0], b)
    db = sqlite3.connect(b)
    with db:
        db.execute("UPDATE epochs SET val_loss = 0.123 WHERE rowid = 1")
    db.close()
    with pytest.raises(StoreError, match="merge refused, nothing written"):
        S.merge(tmp_path / "new.sqlite", [a, b])
    assert sorted(os.listdir(tmp_path)) == ["a.sqlite", "b.sqlite"]
    (tmp_path / "link.sqlite").symlink_to(tmp_path / "none.sqlite")  # a link to a store to be
    with pytest.raises(StoreError, match="merge refused, nothing written"):
        S.merge(tmp_path / "link.sqlite", [a, b])
    assert sorted(os.listdir(tmp_path)) == ["a.sqlite", "b.sqlite", "link.sqlite"]
    assert (tmp_path / "link.sqlite").is_symlink()
    (tmp_path / "link.sqlite").unlink()
    with pytest.raises(StoreError, match="merge refused, nothing written"):  # nor the directories made for it
        S.merge(tmp_path / "missing" / "deeper" / "new.sqlite", [a, b])
    assert sorted(os.listdir(tmp_path)) == ["a.sqlite", "b.sqlite"]
    before = b.read_bytes()
    with pytest.raises(StoreError, match="exists; salvage writes a new store"):
        S.salvage(a, tmp_path / "missing" / ".." / "b.sqlite")
    assert b.read_bytes() == before and not (tmp_path / "missing").exists()


def test_store_check_of_what_is_no_store_is_one_line_exit_2(tmp_path, xla_cache):
    """`store check` damage (exit 1, a line per problem) is for stores; a path with no store
    at all (missing, empty, not SQLite, SQLite of other tables) is one line, exit 2."""
    (tmp_path / "text.txt").write_text("member_id,T\n")
    (tmp_path / "empty.sqlite").touch()
    db = sqlite3.connect(tmp_path / "other.sqlite")
    with db:
        db.execute("CREATE TABLE foo(x)")
    db.close()
    cases = {
        "missing.sqlite": "does not exist",
        "empty.sqlite": "is empty",
        "text.txt": "not a latchlab store (not an SQLite database)",
        "other.sqlite": "not a latchlab store (no table meta)",
    }
    for name, what in cases.items():
        line = _one_line(*cli("store", "check", name, cwd=tmp_path, cache=xla_cache))
        assert what in line and "salvage" not in line, line
    assert sorted(os.listdir(tmp_path)) == ["empty.sqlite", "other.sqlite", "text.txt"]


def test_store_with_schema_tag_but_no_tables_and_bad_paths_give_one_line(tmp_path, xla_cache):
    tagged = tmp_path / "tag.sqlite"
    db = sqlite3.connect(tagged)
    with db:
        db.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))
    db.close()
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    # a FIFO, not /dev/null: some sandboxes make /dev/null a regular file
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = {
        tagged: "tables sweeps, members, epochs, params are missing",
        tmp_path / "dir": "is a directory",
        tmp_path / "file" / "s.sqlite": "is not a directory",
        fifo: "not a regular file",
    }
    for path, what in cases.items():
        for create in (True, False):
            with pytest.raises(StoreError, match=what) as e:
                Store(path, create=create)
            assert str(e.value).startswith("store: ") and "\n" not in str(e.value)
    assert "is a directory" in _one_line(
        *cli("export", tmp_path / "dir", "--csv", tmp_path / "x.csv", cwd=tmp_path, cache=xla_cache)
    )
    (tmp_path / "c.toml").write_text(
        'name = "t"\nrepeats = 1\nseed = 0\nN = 64\nepochs = 1\n[grid]\ncell = ["srnn"]\nT = [2]\n'
    )
    assert "not a regular file" in _one_line(
        *cli("run", tmp_path / "c.toml", "--store", fifo, cwd=tmp_path, cache=xla_cache)
    )
    assert (tmp_path / "file").read_text() == "x" and os.listdir(tmp_path / "dir") == []


# ----------------------------------------------------------------------------- read-only

READER = r"""
import json, sys
from latchlab.store import Store
from latchlab.errors import StoreError
out = {}
with Store(sys.argv[1], create=False) as st:
    out["members"] = len(st.members())
    out["params"] = float(st.params(sorted(st.done())[0])["cell"]["kernel"].sum())
    out["readonly"] = st.readonly
    try:
        st.add_sweep("x", {}, {"git_commit": "", "versions": {}, "prng": "", "device": ""})
    except StoreError as e:
        out["write"] = str(e)
try:
    Store(sys.argv[1] + ".new")
except StoreError as e:
    out["create"] = str(e)
print(json.dumps(out))
"""


def test_read_only_store_reads_and_refuses_writes_in_one_line(reference):
    """A store in a read-only file and directory (as root, who may write any file: on a
    read-only mount of the directory, in a mount namespace of the reader's own)."""
    d = Path(tempfile.mkdtemp())
    try:
        path = d / "s.sqlite"
        shutil.copy(reference[0], path)
        os.chmod(path, 0o444)
        os.chmod(d, 0o555)
        prefix = []
        if os.geteuid() == 0:
            if shutil.which("unshare") is None:
                pytest.skip("root without unshare(1): no way to make a read-only store")
            prefix = [
                "unshare",
                "-m",
                "sh",
                "-c",
                'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"',
                "sh",
                str(d),
            ]
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        p = subprocess.run(
            [*prefix, sys.executable, "-c", READER, str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=d,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        got = json.loads(p.stdout)
        with Store(reference[0], create=False) as st:
            want = float(st.params(sorted(st.done())[0])["cell"]["kernel"].sum())
        assert got["members"] == len(_members()) and got["params"] == want and got["readonly"]
        assert got["write"].startswith("store: ") and "read-only" in got["write"] and "\n" not in got["write"]
        assert "read-only" in got["create"]
        assert sorted(os.listdir(d)) == ["s.sqlite"]  # no journal left behind, nothing made
    finally:
        os.chmod(d, 0o755)
        shutil.rmtree(d)


# ----------------------------------------------------------------------------- locks


def test_held_lock_makes_writers_wait_not_fail(tmp_path):
    path = tmp_path / "s.sqlite"
    members = _members()[:4]
    with Store(path) as st:
        sid = st.add_sweep("lock", FAKE, PROV)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")  # a second connection holds the write lock for 6 s
    release = threading.Timer(6.0, lambda: other.execute("COMMIT"))
    release.start()
    try:
        t0 = time.monotonic()
        with Store(path, create=False) as st:  # opening and reading do not wait (WAL)
            assert st.done() == set()
            assert time.monotonic() - t0 < 3.0
            st.write(sid, members, _history(members), 1.0)  # waits for the lock, then writes
            assert time.monotonic() - t0 >= 5.5
            assert st.done() == {m.id for m in members}
        other.execute("BEGIN EXCLUSIVE")
        with Store(path, create=False, timeout=0.5) as st:  # a writer that will not wait that long
            with pytest.raises(StoreError, match="is locked by another process") as e:
                st.add_sweep("lock", FAKE, PROV)
            assert "not a latchlab store" not in str(e.value) and "\n" not in str(e.value)
        other.execute("COMMIT")
        # a store still in the rollback journal (as earlier versions left it), locked by a
        # writer: even opening it waits, and then says it is locked
        other.execute("PRAGMA journal_mode=DELETE")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="is locked by another process") as e:
            Store(path, create=False, timeout=0.5)
        assert "not a latchlab store" not in str(e.value)
        other.execute("COMMIT")
    finally:
        release.cancel()
        other.close()


CREATOR = r"""
import os, sys, time
from latchlab.store import Store
open(sys.argv[3], "w").close()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
with Store(sys.argv[1]) as st:
    print(len(st.done()))
"""


def test_concurrent_creators_make_one_store(tmp_path):
    path, go = tmp_path / "new" / "s.sqlite", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    ps = [
        subprocess.Popen(
            [sys.executable, "-c", CREATOR, str(path), str(go), str(tmp_path / f"ready{i}")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):  # every creator imported
        assert all(p.poll() is None for p in ps)
        time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=120) for p in ps]
    assert [p.returncode for p in ps] == [0] * 4, [e for _, e in outs]
    assert [o.strip() for o, _ in outs] == ["0"] * 4
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM meta").fetchone() == (1,)
    names = sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    assert names == ["claims", "epochs", "members", "meta", "params", "sweeps", "workers"]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


# ----------------------------------------------------------------------------- claims


def test_two_concurrent_runners_split_the_work(tmp_path, reference):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    ps = _start_together(2, tmp_path, path=[path, path], log=logs, pause=[0.3, 0.3])
    assert [p.wait(timeout=300) for p in ps] == [0, 0]
    a, b = (set(log.read_text().split()) if log.exists() else set() for log in logs)
    assert a and b and not a & b  # each trained some, none trained twice
    assert a | b == {m.id for m in _members()}
    _assert_same(_content(path), reference[1])


def test_a_killed_runners_claims_are_taken_over(tmp_path, reference):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    p = _worker(path, pause=30.0)  # claims its first chunk, then "trains" for 30 s
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with Store(path, create=False) as st:
            held = st.claims()
        if len(held):
            break
        time.sleep(0.1)
    assert len(held) == CHUNK and (held.pid == p.pid).all() and not held.stale.any()
    p.send_signal(signal.SIGKILL)
    p.wait()
    with Store(path, create=False) as st:
        assert st.claims().stale.all()
    _work(path)
    _assert_same(_content(path), reference[1])


def test_claims_of_a_run_on_another_host_are_named_while_waited_for_and_released(tmp_path, xla_cache):
    """A run on another machine that died leaves claims this host cannot see die: a re-run
    says once whom it waits for (host, pid, when the claims end) and how to free them;
    ``latchlab store release`` drops them (and a live local claim it keeps), and the wait
    then hands the members over."""
    ids = [m.id for m in _members()[:3]]
    path = tmp_path / "s.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    with db:  # as a run on node17 claims them (its claims would hold them for 6 hours)
        db.executemany(
            "INSERT INTO claims VALUES (?, 'node17-run', 'node17.cluster', 4242, '1', ?)",
            [(i, time.time() + S.CLAIM_TTL) for i in ids],
        )
    db.close()
    with Store(path, create=False) as st, Store(path, create=False) as mine:
        mine.claim(["a-live-claim-here"])
        said, got = [], []
        waiter = threading.Thread(target=lambda: got.append(st.wait(ids, poll=0.02, say=said.append)))
        waiter.start()
        deadline = time.monotonic() + 30
        while not said and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(said) == 1 and "waiting for 3 members" in said[0] and "on node17.cluster" in said[0], said
        assert f"latchlab store release {path}" in said[0]
        rc, out, err = cli("store", "release", str(path), cwd=tmp_path, cache=xla_cache)
        assert rc == 0 and "released 3 claims" in out and "3 of node17.cluster" in out, (out, err)
        waiter.join(timeout=30)
        assert got == [set(ids)] and len(said) == 1
        assert list(mine.claims().member_id) == ["a-live-claim-here"]
    rc, out, _ = cli("store", "release", str(path), cwd=tmp_path, cache=xla_cache)
    assert rc == 0 and out.strip() == f"no claims to release in {path}"


def test_claim_api(tmp_path):
    ids = [m.id for m in _members()[:6]]
    with Store(tmp_path / "s.sqlite") as a, Store(tmp_path / "s.sqlite", create=False) as b:
        assert a.claim(ids[:4]) == set(ids[:4])
        assert b.claim(ids) == set(ids[4:])  # a live claim is not granted twice
        assert a.claim(ids[:2]) == set(ids[:2])  # renewing one's own
        a.release(ids[:1])
        assert b.claim(ids[:2]) == {ids[0]}
        assert b.claim(ids[2:3], owner="elsewhere", ttl=-1.0) == set()  # a's claim still live
        a.release()
        assert b.claim(ids[2:3], owner="elsewhere", ttl=-1.0) == {ids[2]}
        assert b.claim(ids[2:3]) == {ids[2]}  # an expired claim is free
        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        assert b.claim(ids[3:4], owner="gone") == {ids[3]}
        assert not b.claims().set_index("member_id").stale[ids[3]]
        b.db.execute("UPDATE claims SET pid = ? WHERE member_id = ?", (int(dead), ids[3]))
        assert b.claims().set_index("member_id").stale[ids[3]]
        assert a.claim(ids[3:4]) == {ids[3]}  # a dead process's claim is free
        ms = [m for m in _members() if m.id in ids[4:]]
        b.write(b.add_sweep("c", {}, PROV), ms, _history(ms), 1.0)
        assert a.claim(ids) == {ids[1], ids[3]}  # ids[0] and ids[2] are b's; stored members are never granted
        assert set(b.claims().member_id) == set(ids[:4])
    with Store(tmp_path / "s.sqlite", create=False) as st:
        assert st.claims().empty  # closing releases a store's claims


# ----------------------------------------------------------------------------- merge


def test_merge_worker_stores(tmp_path, reference, xla_cache):
    members = [m.id for m in _members()]
    parts = [set(members[:10]), set(members[8:18]), set(members[16:])]  # overlapping workers
    paths = []
    for i, ids in enumerate(parts):
        paths.append(tmp_path / f"w{i}.sqlite")
        _work(paths[-1], ids=ids)
    rc, out, err = cli("store", "merge", tmp_path / "all.sqlite", *paths, cwd=tmp_path, cache=xla_cache)
    assert rc == 0, err
    assert f"{len(members)} members added, 4 duplicates skipped, 3 sweeps added" in out
    _assert_same(_content(tmp_path / "all.sqlite"), reference[1])
    with Store(tmp_path / "all.sqlite", create=False) as st:
        sw = st.sweeps()
        mem = pd.read_sql_query("SELECT member_id, sweep_id FROM members", st.db)
    assert len(sw) == 3 and (sw.command == "fake").all() and (sw.git_commit == PROV["git_commit"]).all()
    first = {m: i + 1 for i, ids in reversed(list(enumerate(parts))) for m in ids}  # the first store holding it
    assert dict(zip(mem.member_id, mem.sweep_id)) == first
    assert S.merge(tmp_path / "all.sqlite", paths) == {"members": 0, "duplicates": 28, "sweeps": 0}  # idempotent
    rc, out, err = cli("store", "check", tmp_path / "all.sqlite", cwd=tmp_path, cache=xla_cache)
    assert rc == 0 and f"ok: {tmp_path / 'all.sqlite'}: {len(members)} members from 3 sweeps" in out, err
    with pytest.raises(StoreError, match="is the merge target"):
        S.merge(paths[0], [paths[1], paths[0]])
    with pytest.raises(StoreError, match="salvage writes a new store"):
        S.salvage(paths[1], paths[0])

    # a member stored with other numbers: refused, nothing written
    bad = tmp_path / "bad.sqlite"
    shutil.copy(paths[1], bad)
    db = sqlite3.connect(bad)
    with db:
        db.execute("UPDATE epochs SET val_acc = val_acc + 1e-9 WHERE member_id = ?", (members[9],))
    db.close()
    target = tmp_path / "t.sqlite"
    shutil.copy(paths[0], target)
    before = target.read_bytes()
    rc, out, err = cli("store", "merge", target, paths[2], bad, cwd=tmp_path, cache=xla_cache)
    line = _one_line(rc, out, err)
    assert "merge refused, nothing written" in line and members[9] in line
    assert target.read_bytes() == before


def test_worker_rows_are_written_with_their_members_and_kept_by_merge_and_salvage(tmp_path):
    ms = _members()[:6]
    where = {"host": "node7", "cpu": "Some CPU", "backend": "cpu:1", "mode": "native"}
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    with Store(a) as st:
        st.write(st.add_sweep("a", {}, PROV), ms[:3], _history(ms[:3]), 1.0, worker=where)
        assert st.workers().set_index("member_id").to_dict("index") == {m.id: where for m in ms[:3]}
    with Store(b) as st:
        st.write(st.add_sweep("b", {}, PROV), ms[3:], _history(ms[3:]), 1.0)  # trained in-process: no row
        assert st.workers().empty
    S.merge(tmp_path / "all.sqlite", [a, b])
    S.salvage(a, tmp_path / "saved.sqlite")
    for path in (tmp_path / "all.sqlite", tmp_path / "saved.sqlite"):
        with Store(path, create=False) as st:
            assert sorted(st.workers().member_id) == sorted(m.id for m in ms[:3])
            assert (st.workers()[["host", "cpu", "backend", "mode"]] == pd.Series(where)).all().all()


# ----------------------------------------------------------------------------- old stores


def test_old_store_is_migrated_and_diverged_epoch_stored(tmp_path):
    path = tmp_path / "old.sqlite"
    ms = _members()[:4]
    h = _history(ms)
    Old = namedtuple("Old", History._fields[:5])  # a History from before divergence was reported
    tl, vl = h.train_loss.copy(), h.val_loss.copy()
    vl[0, 0], tl[1, 1] = np.inf, np.nan  # member 0 diverged in epoch 1, member 1 in epoch 2
    with Store(path) as st:
        st.write(st.add_sweep("old", {}, PROV), ms[:2], Old(tl, h.train_acc, vl, h.val_acc, h.params), 1.0)
        old_blob = st.db.execute("SELECT npz FROM params WHERE member_id = ? AND epoch = 2", (ms[0].id,)).fetchone()[0]
    db = sqlite3.connect(path, isolation_level=None)  # as an earlier version wrote it
    db.execute("ALTER TABLE members DROP COLUMN diverged_epoch")
    db.execute("DROP TABLE claims")
    db.execute("DROP TABLE workers")
    db.execute("PRAGMA journal_mode=DELETE")
    llp1 = b"LLP1" + old_blob[4:8] + old_blob[12:]  # the unchecked packed format
    db.execute("UPDATE params SET npz = ? WHERE member_id = ? AND epoch = 2", (llp1, ms[0].id))
    db.close()

    with Store(path, create=False) as st:
        assert st.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert st.claims().empty and st.workers().empty
        st.write(1, ms[2:], History(*h[:5], h.diverged_epoch[2:]), 1.0)
        df = st.members().set_index("member_id")
        for part in ("cell", "head"):
            for k, v in st.params(ms[0].id, 2)[part].items():
                np.testing.assert_array_equal(v, h.params[2][part][k][0])
    # the old members' divergence, from their stored losses; the new ones' as training reported it
    assert [int(df.diverged_epoch[m.id]) for m in ms] == [1, 2, *map(int, h.diverged_epoch[2:])]
    assert S._diverged([0.5, 0.4], [0.6, 0.5]) == -1 and S._diverged([0.5, np.nan], [0.6, np.inf]) == 2
    assert list(df.columns).index("diverged_epoch") == list(df.columns).index("seconds") + 1


# ----------------------------------------------------------------------------- real runs

RUNNER = r"""
import json, sys, time
from pathlib import Path
from latchlab import config, runtime
from latchlab.engine import run as runner
from latchlab.store import Store

runtime.setup()
path, log, ready, go, cfg, mine, other = sys.argv[1:8]
written = []
write = Store.write
Store.write = lambda self, sid, members, *a, **k: (written.extend(m.id for m in members), write(self, sid, members, *a, **k))[1]
claim = Store.claim


# ``Store.claim``, which after this process's first grant waits (at most 5 minutes) until
# the other process has been granted something too: on a busy machine one process can start
# a chunk's training later than the other finishes both, and this test is about the split
def claimed(self, ids, *a, **k):
    got = claim(self, ids, *a, **k)
    if got and not Path(mine).exists():
        Path(mine).touch()
        t = time.monotonic()
        while not Path(other).exists() and time.monotonic() - t < 300:
            time.sleep(0.005)
    return got


Store.claim = claimed
from latchlab.engine import native
native.prng()  # built and checked against JAX (once a cache) before the start, as ``make`` does
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.005)
with Store(path) as st:
    df = runner.run(config.from_dict(json.loads(cfg)), st)
Path(log).write_text(json.dumps({"written": written, "returned": sorted(set(df.member_id))}))
"""


@pytest.mark.slow
def test_two_sweep_runs_on_one_store_split_the_work(tmp_path, xla_cache):
    """``sweep.run`` in two processes at once on one store: each trains some chunks, no
    member is trained twice, both return every member, and the store equals one run's."""
    from test_store import SWEEP

    path = tmp_path / "s.sqlite"
    Store(path).close()
    env = {**os.environ, "PYTHONPATH": str(SRC), "LATCHLAB_CACHE": str(xla_cache)}
    go = tmp_path / "go"
    ps = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUNNER,
                str(path),
                str(tmp_path / f"log{i}"),
                str(tmp_path / f"ready{i}"),
                str(go),
                json.dumps(SWEEP),
                str(tmp_path / f"got{i}"),
                str(tmp_path / f"got{1 - i}"),
            ],
            env=env,
        )
        for i in range(2)
    ]
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert all(p.poll() is None for p in ps)
        time.sleep(0.01)
    go.touch()
    assert [p.wait(timeout=900) for p in ps] == [0, 0]
    logs = [json.loads((tmp_path / f"log{i}").read_text()) for i in range(2)]
    cfg = config.from_dict(json.loads(json.dumps(SWEEP)))
    every = sorted(m.id for m in cfg.members())
    a, b = (set(g["written"]) for g in logs)
    assert a and b and not a & b and sorted(a | b) == every
    assert all(g["returned"] == every for g in logs)

    ref = tmp_path / "ref.sqlite"
    subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            str(ref),
            str(tmp_path / "logr"),
            str(tmp_path / "readyr"),
            str(tmp_path / "readyr"),
            json.dumps(SWEEP),
            str(tmp_path / "gotr"),
            str(tmp_path / "gotr"),
        ],
        env=env,
        check=True,
        timeout=900,
    )
    got, want = _content(path), _content(ref)
    pd.testing.assert_frame_equal(got["members"], want["members"], check_exact=True)
    pd.testing.assert_frame_equal(got["epochs"], want["epochs"], check_exact=False, rtol=0, atol=1e-6)
    for k, v in want["params"].items():
        for part in v:
            for name, w in v[part].items():
                np.testing.assert_allclose(got["params"][k][part][name], w, rtol=0, atol=1e-6)


# ``latchlab run`` (the console script's ``main``) whose second chunk, once claimed and its
# data made, waits to be killed instead of training
_HOLD_SECOND_CHUNK = """
import sys, time
from latchlab.cli import main
from latchlab.engine import run
train, calls = run.train_chunk, []
def held(*args, **kwargs):
    calls.append(1)
    while len(calls) > 1:
        time.sleep(1)
    return train(*args, **kwargs)
run.train_chunk = held
sys.argv[0] = "latchlab"
sys.exit(main())
"""


@pytest.mark.slow
def test_latchlab_run_killed_after_a_chunk_resumes_to_the_uninterrupted_store(tmp_path, xla_cache):
    """``kill -9`` of a real ``latchlab run`` while it trains its second chunk (its claims
    left behind): the re-run trains only the rest and the store equals an uninterrupted run's.
    The run's second chunk is held (``_HOLD_SECOND_CHUNK``) until the kill: on a fast machine
    it had finished between two polls of the store, and the kill came after the run. The kill
    waits for the second chunk's claims too: storing the first chunk releases its claims, and
    a kill between that and the next claim (CI, 2026-12-02) left none behind."""
    from test_store import SWEEP

    from latchlab.engine import run as runner

    cfg = config.from_dict(json.loads(json.dumps(SWEEP)))
    toml = [f"{k} = {json.dumps(v)}" for k, v in SWEEP.items() if k != "grid"]
    toml += ["[grid]"] + [f"{k} = {json.dumps(v)}" for k, v in SWEEP["grid"].items()]
    (tmp_path / "s.toml").write_text("\n".join(toml) + "\n")
    path = tmp_path / "s.sqlite"
    env = {**os.environ, "PYTHONPATH": str(SRC), "LATCHLAB_CACHE": str(xla_cache)}
    env.pop("LATCHLAB_PROGRESS", None)
    p = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SECOND_CHUNK, "run", "s.toml", "--store", "s.sqlite"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    first, claimed = set(), False
    deadline = time.monotonic() + 600
    while not (first and claimed):  # the first chunk stored, the second claimed (and held)
        assert p.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
        if path.exists():
            try:
                with Store(path, create=False) as st:
                    first, claimed = st.done(), len(st.claims()) > 0
            except StoreError:  # still being created
                pass
    p.send_signal(signal.SIGKILL)
    p.wait()
    with Store(path, create=False) as st:
        assert st.done() == first and 0 < len(first) < len(cfg.members())
        assert len(st.claims()) and st.claims().stale.all()  # the killed run's second chunk
    rc, _, err = cli("run", "s.toml", "--store", "s.sqlite", cwd=tmp_path, cache=xla_cache, timeout=900)
    assert rc == 0, err
    ref = tmp_path / "ref.sqlite"
    with Store(ref) as st:
        runner.run(cfg, st)
    got, want = _content(path), _content(ref)
    pd.testing.assert_frame_equal(got["members"], want["members"], check_exact=True)
    pd.testing.assert_frame_equal(got["epochs"], want["epochs"], check_exact=False, rtol=0, atol=1e-6)
    assert list(got["params"]) == list(want["params"])
    for k, v in want["params"].items():
        for part in v:
            for name, w in v[part].items():
                np.testing.assert_allclose(got["params"][k][part][name], w, rtol=0, atol=1e-6)
    with Store(path, create=False) as st:
        sw = pd.read_sql_query("SELECT member_id, sweep_id FROM members", st.db)
        assert st.claims().empty
    assert set(sw[sw.member_id.isin(first)].sweep_id) == {1} and set(sw[~sw.member_id.isin(first)].sweep_id) == {2}


def test_a_store_with_two_names_is_refused_before_anything_is_written(tmp_path, reference):
    """Two sweeps written concurrently into one store through two hard-linked names each kept
    its own journal (SQLite names it after the path): both said they stored their members,
    and one sweep was gone. A store with more than one name is refused in one line, by every
    command, and nothing is written."""
    a = tmp_path / "a.sqlite"
    shutil.copy(reference[0], a)
    os.link(a, tmp_path / "b.sqlite")
    before = a.read_bytes()
    for name in ("a.sqlite", "b.sqlite"):
        for create in (True, False):
            with pytest.raises(StoreError, match=r"has 2 names \(hard links\).*use one name") as e:
                Store(tmp_path / name, create=create)
            assert "\n" not in str(e.value)
    with pytest.raises(StoreError, match="hard links"):
        S.merge(tmp_path / "m.sqlite", [a])
    assert a.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["a.sqlite", "b.sqlite"]
    (tmp_path / "b.sqlite").unlink()
    with Store(a, create=False) as st:  # one name again: a store as before
        assert len(st.members()) > 0


def test_salvage_refuses_a_journal_it_cannot_read_instead_of_saving_nothing(tmp_path, reference, monkeypatch):
    """A store whose -wal holds changes, copied without its -shm index to a place this process
    cannot write: SQLite cannot read it through its journal there, and salvage read the file
    alone and said "salvaged 0 members", exit 0. It refuses in one line, as every other
    command does, and writes nothing."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(reference[0], src / "s.sqlite")
    db = sqlite3.connect(src / "s.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("UPDATE members SET seconds = seconds + 1")
    away = tmp_path / "away"
    away.mkdir()
    for suffix in ("", "-wal"):  # while the writer holds the journal: its changes are in it alone
        shutil.copy(f"{src / 's.sqlite'}{suffix}", f"{away / 's.sqlite'}{suffix}")
    db.close()
    assert (away / "s.sqlite-wal").stat().st_size > 0 and not (away / "s.sqlite-shm").exists()
    real = S._connection

    def read_only_place(uri, timeout):  # as in a read-only directory: no -shm index can be made
        if uri.endswith("?mode=ro"):
            raise sqlite3.OperationalError("unable to open database file")
        return real(uri, timeout)

    monkeypatch.setattr(S, "_connection", read_only_place)
    with pytest.raises(StoreError, match="holds unsaved changes") as e:
        S.salvage(away / "s.sqlite", tmp_path / "salvaged.sqlite")
    assert "\n" not in str(e.value) and not (tmp_path / "salvaged.sqlite").exists()
    monkeypatch.undo()
    assert S.salvage(away / "s.sqlite", tmp_path / "salvaged.sqlite")["members"] > 0  # where it can be read


def test_a_truncated_store_is_called_damaged_with_the_commands_that_help(tmp_path, reference, xla_cache):
    """A store cut short (a copy that did not finish) said "is not a latchlab store (database
    disk image is malformed)" when opened, and `store check` called it damaged: it is a
    damaged store, and the line says how to list the damage and salvage it."""
    cut = tmp_path / "cut.sqlite"
    data = reference[0].read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3 // 4096 * 4096])
    with pytest.raises(StoreError, match=r"is damaged \(.*malformed.*\).*store check.*store salvage") as e:
        Store(cut, create=False)
    assert "not a latchlab store" not in str(e.value) and "\n" not in str(e.value)
    line = _one_line(*cli("export", cut, "--csv", tmp_path / "x.csv", cwd=tmp_path, cache=xla_cache))
    assert "is damaged" in line and not (tmp_path / "x.csv").exists()
