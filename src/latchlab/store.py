"""The results store: one SQLite file, tidy rows, provenance with every sweep.

Tables:
    meta(key, value)            the schema tag
    sweeps(sweep_id, ...)       one row per ``latchlab run``: config, commit, versions, PRNG
    members(member_id, ...)     one row per member: its resolved config, seed and the first
                                epoch (1-based, as in ``epochs``) at which its loss was not
                                finite (``diverged_epoch``; -1: never)
    epochs(member_id, epoch, train_loss, train_acc, val_loss, val_acc)
    params(member_id, epoch, npz)   parameters after each epoch (epoch 0: initial), packed
                                    by ``_pack_all`` with a checksum (stores written before
                                    it hold unchecked packed blobs or ``.npz`` bytes;
                                    ``Store.params`` reads all three)
    claims(member_id, owner, ...)   members some process is training now (``Store.claim``)

A member's rows are written in one transaction, so an interrupted sweep loses only the
members that were still training, and a re-run skips every member already stored.

What the store promises (``docs/reliability.md``): a file that is not a sound latchlab store
is refused with one line (and left as it was); a damaged one names the command that salvages
what is readable (``salvage``); the file is in WAL mode, so readers never wait for a writer
and a second writer waits (up to ``timeout`` seconds) instead of failing; creation is safe
under concurrent openers; and claims let several processes run one sweep on one store,
each member trained once.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import itertools
import json
import os
import socket
import sqlite3
import time
import uuid
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from latchlab.config import RUN_FIELDS, Member, from_dict
from latchlab.errors import ConfigError, LatchlabError, StoreError
from latchlab.core.catalog import SEED_MAX
from latchlab.outputs import JOURNALS, is_database, journal_name
from latchlab.validate import Seed, checked

SCHEMA = "latchlab-store/1"
_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")
_TABLES = ("meta", "sweeps", "members", "epochs", "params")
_SWEEP_COLS = ("name", "started", "config", "git_commit", "versions", "prng", "device", "command")
# created when missing (stores written before they existed are migrated on a writable open)
_CLAIMS_DDL = """CREATE TABLE IF NOT EXISTS claims(member_id TEXT PRIMARY KEY, owner TEXT NOT NULL,
    host TEXT, pid INTEGER, pid_start TEXT, expires REAL)"""
# where each member trained when a cluster trained it: host, CPU, JAX backend, gradient mode
_WORKERS_DDL = """CREATE TABLE IF NOT EXISTS workers(member_id TEXT PRIMARY KEY REFERENCES members,
    host TEXT, cpu TEXT, backend TEXT, mode TEXT)"""
_WORKER_KEYS = ("host", "cpu", "backend", "mode")
_DDL = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sweeps(sweep_id INTEGER PRIMARY KEY, name TEXT, started REAL, config TEXT,
    git_commit TEXT, versions TEXT, prng TEXT, device TEXT, command TEXT);
CREATE TABLE members(member_id TEXT PRIMARY KEY, sweep_id INTEGER REFERENCES sweeps,
    seed INTEGER, {", ".join(f'"{f}"' for f in RUN_FIELDS)}, seconds REAL, diverged_epoch INTEGER);
CREATE TABLE epochs(member_id TEXT REFERENCES members, epoch INTEGER,
    {", ".join(f"{m} REAL" for m in _METRICS)}, PRIMARY KEY(member_id, epoch));
CREATE TABLE params(member_id TEXT REFERENCES members, epoch INTEGER, npz BLOB,
    PRIMARY KEY(member_id, epoch));
{_CLAIMS_DDL};
{_WORKERS_DDL};
"""
# Seconds a reader or writer waits for another process's lock before giving up with a
# one-line error (a sweep's chunk in flight is written once the lock is free).
TIMEOUT = 600.0
# Seconds a claim on members in flight lasts unless renewed. A claim of a dead process on
# this host is taken over at once; the time-out frees claims of processes on other hosts.
CLAIM_TTL = 6 * 3600.0
_HOST = socket.gethostname()
_OPEN_OWNERS: set[str] = set()  # claim owners of this process's open stores


class Store:
    """An open results store. ``Store(path)`` creates it if missing.

    Raises ``StoreError`` (and leaves the file untouched) when the file exists but is not a
    latchlab store of this schema, is damaged (the message names ``latchlab store salvage``),
    is locked longer than ``timeout`` seconds, or cannot be opened at all (a directory, a
    device, a path under a regular file). A store the process cannot write (a read-only
    file or directory) opens for reading: ``add_sweep``, ``write`` and ``claim`` then raise
    ``StoreError``.
    """

    def __init__(self, path: str | Path, create: bool = True, timeout: float = TIMEOUT):
        self.path = Path(path)
        self.timeout = float(timeout)
        self.owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.db: sqlite3.Connection | None = None  # None once closed
        self.readonly = False
        self._claimed = False
        self._owners = {self.owner}  # every owner this store claimed for: live while it is open
        self._damage: tuple[tuple, dict[str, str]] | None = None  # ``_refuse_damage``'s last verdict
        _check_path(self.path)
        if not _nonempty(self.path):
            if not create:
                what = "is empty" if self.path.exists() else "does not exist"
                raise StoreError(f"store: {self.path} {what}")
            self._create()
        self.readonly = not _writable(self.path)
        self.db = self._connect()
        try:
            tables = self._verify()
            if tables is None:  # an SQLite file without any table: one being created, or made empty
                self.db.close()
                self.db = None
                if not create:
                    raise StoreError(f"store: {self.path} is empty")
                self._create()
                self.db = self._connect()
                tables = self._verify()
            if not self.readonly:  # (still no table, e.g. only a view: the migration's SQL names what is missing)
                self._migrate(tables or set())
        except BaseException:
            if self.db is not None:
                self.db.close()
                self.db = None
            raise
        _OPEN_OWNERS.add(self.owner)

    @property
    def _conn(self) -> sqlite3.Connection:
        """The open connection (``db``, which ``close`` sets to None)."""
        assert self.db is not None, f"store: {self.path} is closed"
        return self.db

    # ------------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        try:
            if not self.readonly:
                return _connection(uri + "?mode=rw", self.timeout)
            try:
                db = _connection(uri + "?mode=ro", self.timeout)
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return db
            except sqlite3.OperationalError:
                # a WAL store in a directory this process cannot write: readable as an
                # immutable file, unless a journal holds changes not yet in it
                _refuse_unsaved_journal(self.path)
                return _connection(uri + "?mode=ro&immutable=1", self.timeout)
        except sqlite3.Error as e:
            raise _error(self.path, e) from None

    def _create(self) -> None:
        """Make the schema in a missing or empty file, safely when several processes do it at
        once: the tables are made in one write transaction by whichever process gets it first."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"store: cannot create {self.path}: {e.strerror or e}") from None
        if not _writable(self.path):
            raise StoreError(f"store: cannot create {self.path}: its directory is read-only")
        try:
            db = _connection(self.path.resolve().as_uri() + "?mode=rwc", self.timeout)
        except sqlite3.Error as e:
            raise _error(self.path, e) from None
        try:
            _retry(self, lambda: db.execute("PRAGMA journal_mode=WAL").fetchone())

            def make():
                names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
                if not names:
                    for stmt in _DDL.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))

            self._transaction(make, db)
        finally:
            db.close()

    def _not_a_store(self, e: sqlite3.Error) -> StoreError:
        """An SQLite file whose pages are damaged (a truncated store: "database disk image is
        malformed") is a damaged store, with the commands that help; anything else is no store."""
        if any(w in str(e) for w in ("malformed", "corrupt")):
            return _damaged(self.path, str(e))
        return StoreError(f"store: {self.path} is not a latchlab store ({e})")

    def _verify(self) -> set[str] | None:
        """Check what the file holds; returns its table names, or None for an SQLite file
        without tables. Raises ``StoreError`` for anything but a sound latchlab store."""
        try:
            names = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as e:
            if _locked(e):
                raise _error(self.path, e, self.timeout) from None
            raise self._not_a_store(e) from None
        except sqlite3.DatabaseError as e:
            raise self._not_a_store(e) from None
        if not names:
            return None
        if "meta" not in names:
            raise StoreError(f"store: {self.path} is not a latchlab store (no such table: meta)")
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.Error as e:
            raise _error(self.path, e, self.timeout) from None
        if row is None or row[0] != SCHEMA:
            found = row[0] if row else "no schema tag"
            raise StoreError(f"store: {self.path} was written by another schema ({found}); expected {SCHEMA}")
        missing = [t for t in _TABLES if t not in names]
        if missing:
            raise _damaged(self.path, f"tables {', '.join(missing)} are missing")
        try:
            result = [r[0] for r in self._conn.execute("PRAGMA quick_check(3)")]
            if result != ["ok"]:
                raise _damaged(self.path, "; ".join(result))
            gaps = _incomplete(self._conn, limit=3)
        except sqlite3.Error as e:
            raise _error(self.path, e, self.timeout) from None
        if gaps:
            raise _damaged(self.path, "; ".join(line for _, line in gaps))
        return names

    def _migrate(self, tables: set[str]) -> None:
        """Bring a sound store written by an earlier version up to date: WAL mode, the
        ``diverged_epoch`` column, the claims and workers tables."""

        def steps():
            cols = {r[1] for r in self._conn.execute("PRAGMA table_info(members)")}
            if "diverged_epoch" not in cols:  # the epoch rows say when a member diverged
                self._conn.execute("ALTER TABLE members ADD COLUMN diverged_epoch INTEGER")
                self._conn.execute(
                    f"UPDATE members SET diverged_epoch = coalesce((SELECT min(epoch) FROM epochs e "
                    f"WHERE e.member_id = members.member_id AND ({_NOT_FINITE})), -1)"
                )
            if "claims" not in tables:
                self._conn.execute(_CLAIMS_DDL)
            if "workers" not in tables:
                self._conn.execute(_WORKERS_DDL)

        try:
            mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                _retry(self, lambda: self._conn.execute("PRAGMA journal_mode=WAL").fetchone())
        except sqlite3.Error as e:
            raise _error(self.path, e) from None
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(members)")}
        if "diverged_epoch" not in cols or not {"claims", "workers"} <= tables:
            self._transaction(steps)

    def close(self):
        if self.db is None:
            return
        try:
            if self._claimed:
                self.release()
        except StoreError:
            pass  # a claim left behind is freed when this process is gone
        finally:
            _OPEN_OWNERS.difference_update(self._owners)
            self.db.close()
            self.db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ transactions

    def _transaction(self, fn, db=None):
        """``fn()`` in one write transaction, waiting up to ``timeout`` seconds for the lock
        (retrying when SQLite reports the store busy without waiting)."""
        db = db if db is not None else self._conn
        if self.readonly and db is self.db:
            raise StoreError(
                f"store: {self.path} is read-only (a read-only file or directory); "
                "copy it somewhere writable to add to it"
            )

        def once():
            db.execute("BEGIN IMMEDIATE")
            try:
                out = fn()
                db.execute("COMMIT")
                return out
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        return _retry(self, once)

    @contextlib.contextmanager
    def _reading(self):
        try:
            yield
        except sqlite3.Error as e:
            raise _error(self.path, e) from None

    # ------------------------------------------------------------------ rows

    def done(self) -> set[str]:
        """Ids of the members already stored."""
        with self._reading():
            return {r[0] for r in self._conn.execute("SELECT member_id FROM members")}

    def add_sweep(self, name: str, config: dict, provenance: dict, command: str = "") -> int:
        row = (
            name,
            time.time(),
            json.dumps(config),
            provenance["git_commit"],
            json.dumps(provenance["versions"]),
            provenance["prng"],
            provenance["device"],
            command,
        )
        return self._transaction(
            lambda: self._conn.execute(
                f"INSERT INTO sweeps({', '.join(_SWEEP_COLS)}) VALUES ({', '.join('?' * len(_SWEEP_COLS))})", row
            ).lastrowid
        )

    def write(self, sweep_id: int, members: list[Member], history, seconds: float, worker: dict | None = None) -> None:
        """Store finished members: ``history`` is a ``train.History`` over exactly these (its
        ``diverged_epoch``, if it has one, per member: -1 when the loss stayed finite; without
        one, the first epoch whose training or validation loss is not finite).
        ``worker``: where a cluster trained them (``host``, ``cpu``, ``backend``, ``mode``),
        for the ``workers`` table. Claims on these members are released in the same transaction."""
        cols = ["member_id", "sweep_id", "seed", *RUN_FIELDS, "seconds", "diverged_epoch"]
        diverged = getattr(history, "diverged_epoch", None)
        rows_m, rows_e, rows_p = [], [], []
        for r, m in enumerate(members):
            run = m.run.to_dict()
            run["values"] = json.dumps(run["values"], sort_keys=True)
            div = (
                _diverged(history.train_loss[:, r], history.val_loss[:, r])
                if diverged is None
                else int(np.asarray(diverged)[r])
            )
            rows_m.append((m.id, sweep_id, m.seed, *(run[f] for f in RUN_FIELDS), seconds / len(members), div))
            for e in range(history.val_acc.shape[0]):
                rows_e.append((m.id, e + 1, *(float(getattr(history, k)[e, r]) for k in _METRICS)))
        packed = [_pack_all(snap) for snap in history.params]
        for r, m in enumerate(members):
            for e, blobs in enumerate(packed):
                rows_p.append((m.id, e, blobs[r]))

        def put():
            self._conn.executemany(
                f"INSERT OR REPLACE INTO members({', '.join(map(_q, cols))}) VALUES ({', '.join('?' * len(cols))})",
                rows_m,
            )
            self._conn.executemany("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?)", rows_e)
            self._conn.executemany("INSERT OR REPLACE INTO params VALUES (?, ?, ?)", rows_p)
            self._conn.executemany("DELETE FROM claims WHERE member_id = ?", [(m.id,) for m in members])
            if worker is not None:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?)",
                    [(m.id, *(worker[k] for k in _WORKER_KEYS)) for m in members],
                )

        self._transaction(put)

    def epochs(self, member_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per member per epoch: the member's config, seed and metrics; with
        ``member_ids``, those members' rows only (read by id, in the store's order). A row
        anywhere in the store that holds what no sweep writes raises ``StoreError`` (damaged;
        ``salvage`` drops it)."""
        query = (
            "SELECT m.*, e.epoch, "
            + ", ".join(f"e.{k}" for k in _METRICS)
            + " FROM members m JOIN epochs e USING(member_id){} ORDER BY m.rowid, e.epoch"
        )
        ids = None if member_ids is None else list(dict.fromkeys(member_ids))
        with self._reading():
            self._refuse_damage()
            if ids is None or len(ids) > 500:  # one read (more ids than a statement takes)
                df = pd.read_sql_query(query.format(""), self.db)
                if ids is not None:
                    df = cast(pd.DataFrame, df[df.member_id.isin(ids)]).reset_index(drop=True)
            else:
                where = f" WHERE m.member_id IN ({', '.join('?' * len(ids))})"
                df = pd.read_sql_query(query.format(where), self.db, params=ids)
        # a metric SQLite stored as NULL (NaN) throughout a few members' rows is read as None
        df = df.astype({k: np.float64 for k in _METRICS})
        if "diverged_epoch" not in df:  # a read-only store of an earlier version
            bad = df[~np.isfinite(df.train_loss.astype(float)) | ~np.isfinite(df.val_loss.astype(float))]
            first = bad.groupby("member_id").epoch.min()
            df.insert(
                cast(int, df.columns.get_loc("seconds")) + 1,
                "diverged_epoch",  # unique columns: an int
                df.member_id.map(first).fillna(-1).astype(np.int64),
            )
        return df

    def _refuse_damage(self) -> None:
        """Raise ``StoreError`` if a row holds what no sweep writes (``_bad_rows``). The
        verdict is kept until the store changes: SQLite's ``data_version`` (commits by any
        other connection) and this connection's ``total_changes``."""
        conn = self._conn
        state = (conn.execute("PRAGMA data_version").fetchone()[0], conn.total_changes)
        if self._damage is None or self._damage[0] != state:
            self._damage = (state, _bad_rows(conn, limit=3))
        bad = self._damage[1]
        if bad:
            raise _damaged(self.path, "; ".join(f"member {k}: {v}" for k, v in bad.items()))

    def members(self, member_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per member: its config, seed and final-epoch metrics (``member_ids``: as
        ``epochs``)."""
        df = self.epochs(member_ids)
        return cast(pd.DataFrame, df[df.epoch == df.epochs]).reset_index(drop=True)

    def member(self, member_id: str) -> pd.Series:
        """A member's row (final epoch) from its id or a unique prefix of it.

        Raises:
            ConfigError: no or several members match (the message says how to list ids).
            StoreError: the store holds no finished members.
        """
        prefix = str(member_id)
        with self._reading():
            ids = [
                r[0]
                for r in self._conn.execute("SELECT member_id FROM members WHERE instr(member_id, ?) = 1", (prefix,))
            ]
        hits = self.members(ids)  # (refuses a damaged store first)
        if hits.empty:
            with self._reading():
                finished = self._conn.execute(
                    "SELECT 1 FROM members m JOIN epochs e USING(member_id) WHERE e.epoch = m.epochs LIMIT 1"
                ).fetchone()
            if finished is None:
                raise StoreError(f"store: {self.path} holds no finished members")
        if len(hits) != 1:
            problem = "matches no member" if hits.empty else f"matches {len(hits)} members; give more characters"
            raise ConfigError(
                "member",
                f"{member_id!r} {problem} of {self.path} (list the ids with "
                f"`latchlab export {self.path} --per member --csv members.csv`)",
            )
        return hits.iloc[0]

    def params(self, member_id: str, epoch: int | None = None) -> dict:
        """A member's parameters after ``epoch`` (default: the last), as nested numpy dicts.

        Raises ``StoreError`` when there are none, or when the stored bytes are damaged."""
        q = "SELECT epoch, npz FROM params WHERE member_id = ? "
        q += "AND epoch = ?" if epoch is not None else "ORDER BY epoch DESC LIMIT 1"
        with self._reading():
            row = self._conn.execute(q, (member_id, epoch) if epoch is not None else (member_id,)).fetchone()
        if row is None:
            raise StoreError(f"member: no parameters for {member_id!r} at epoch {epoch}")
        try:
            return _unpack(row[1])
        except ValueError as e:
            raise _damaged(self.path, f"parameters of member {member_id} at epoch {row[0]}: {e}") from None

    def sweeps(self) -> pd.DataFrame:
        with self._reading():
            return pd.read_sql_query("SELECT * FROM sweeps", self.db)

    def workers(self) -> pd.DataFrame:
        """Where each member trained on a cluster (``member_id``, ``host``, ``cpu``,
        ``backend``, ``mode``); empty if none did."""
        with self._reading():
            if not self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'workers'").fetchone():
                return pd.DataFrame(columns=["member_id", *_WORKER_KEYS])  # a read-only store of an old version
            return pd.read_sql_query("SELECT * FROM workers", self.db)

    # ------------------------------------------------------------------ claims

    def claim(self, member_ids, owner: str | None = None, ttl: float = CLAIM_TTL) -> set[str]:
        """Claim members for training: those neither stored nor claimed by another live
        process (a claim is stale once its time-out passed, or its process on this host is
        gone). Claims already held by ``owner`` (default: this store's) are renewed.

        Returns:
            the ids granted to ``owner``; train exactly these.
        """
        owner = owner or self.owner
        ids = list(dict.fromkeys(member_ids))
        self._claimed = True
        self._owners.add(owner)
        _OPEN_OWNERS.add(owner)
        pid_start = _start_time(os.getpid())

        def take():
            done = _in(self._conn, "SELECT member_id FROM members WHERE member_id IN ({})", ids)
            held = {
                r[0]: r[1:]
                for r in _rows_in(
                    self._conn,
                    "SELECT member_id, owner, host, pid, pid_start, expires FROM claims WHERE member_id IN ({})",
                    ids,
                )
            }
            granted = []
            for i in ids:
                if i in done:
                    continue
                if i in held and held[i][0] != owner and not _stale(*held[i]):
                    continue
                granted.append(i)
            self._conn.executemany(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                [(i, owner, _HOST, os.getpid(), pid_start, time.time() + ttl) for i in granted],
            )
            return set(granted)

        return self._transaction(take)

    def release(self, member_ids=None, owner: str | None = None) -> None:
        """Drop ``owner``'s claims (default: this store's) on ``member_ids`` (default: all)."""
        owner = owner or self.owner
        if member_ids is None:
            self._transaction(lambda: self._conn.execute("DELETE FROM claims WHERE owner = ?", (owner,)))
        else:
            self._transaction(
                lambda: self._conn.executemany(
                    "DELETE FROM claims WHERE owner = ? AND member_id = ?", [(owner, i) for i in member_ids]
                )
            )

    def claims(self) -> pd.DataFrame:
        """The claims on members in flight, with a column ``stale``."""
        with self._reading():
            df = pd.read_sql_query("SELECT * FROM claims ORDER BY member_id", self.db)
        df["stale"] = [
            _stale(r.owner, r.host, r.pid, r.pid_start, r.expires) for r in cast(Iterable[Any], df.itertuples())
        ]  # named tuples of the columns
        return df

    def wait(self, member_ids, poll: float = 1.0, say=None) -> set[str]:
        """Wait while other live processes train (hold claims on) members of ``member_ids``
        not yet stored; return those neither stored nor claimed by a live process (what is
        left for this one to train: empty once every member is stored). ``say``: called
        once, with a line naming the processes waited for, if there is a wait."""
        ids = set(member_ids)
        said = False
        while True:
            left = ids - self.done()
            if not left:
                return set()
            claims = self.claims()
            held = claims.loc[~claims.stale & ~claims.owner.isin(self._owners) & claims.member_id.isin(left)]
            free = left - set(held.member_id)
            if free:
                return free
            if say is not None and not said:
                say(self._waiting_for(held))
                said = True
            time.sleep(poll)

    def _waiting_for(self, held: pd.DataFrame) -> str:
        ends = held.groupby(["host", "pid"], dropna=False).expires.max()
        who = [
            f"pid {pid} on {host} (claims end {'never' if pd.isna(end) else time.strftime('%Y-%m-%d %H:%M', time.localtime(float(end)))})"
            for (host, pid), end in ends.items()
        ]
        return (
            f"waiting for {len(held)} members that other runs are training: {', '.join(who)}; if those "
            f"runs are gone, `latchlab store release {self.path}` lets this one train them"
        )

    def free(self) -> dict[str, int]:
        """Drop every claim not held by a live process on this machine (a dead run's, here
        or on another host, whose claims would otherwise hold its members for ``CLAIM_TTL``):
        per host, how many. A run on another host that is still alive loses its claims too;
        members it then stores are stored again with the same numbers, nothing is lost."""
        claims = self.claims()
        gone = claims.loc[claims.stale | (claims.host != _HOST)]
        pairs = list(zip(gone.member_id, gone.owner))
        self._transaction(lambda: self._conn.executemany("DELETE FROM claims WHERE member_id = ? AND owner = ?", pairs))
        return {str(h): n for h, n in collections.Counter(gone.host).items()}


# ---------------------------------------------------------------------- helpers

# a stored loss that is not finite (SQLite stores NaN as NULL)
_NOT_FINITE = " OR ".join(f"{k} IS NULL OR abs({k}) > 1.7976931348623157e308" for k in ("train_loss", "val_loss"))


def _diverged(train_loss, val_loss) -> int:
    """The first epoch (1-based) with a non-finite loss; -1 if none."""
    bad = np.flatnonzero(~(np.isfinite(np.asarray(train_loss, float)) & np.isfinite(np.asarray(val_loss, float))))
    return int(bad[0]) + 1 if len(bad) else -1


def _q(name: str) -> str:
    return f'"{name}"'


def _connection(uri: str, timeout: float) -> sqlite3.Connection:
    # autocommit; writes take the lock up front (BEGIN IMMEDIATE), so that a writer never
    # has to upgrade a read lock (which fails at once in WAL mode instead of waiting)
    return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)


def _locked(e: Exception) -> bool:
    s = str(e).lower()
    return "locked" in s or "busy" in s


def _retry(store: Store, fn):
    """``fn()``, retried while SQLite reports the store busy, for up to ``store.timeout``."""
    deadline = time.monotonic() + store.timeout
    pause = 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if not _locked(e) or time.monotonic() >= deadline:
                raise _error(store.path, e, store.timeout) from None
        except sqlite3.Error as e:
            raise _error(store.path, e, store.timeout) from None
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def _error(path: Path, e: sqlite3.Error, timeout: float | None = None) -> StoreError:
    """A one-line ``StoreError`` for an SQLite error on ``path``."""
    s = str(e)
    if _locked(e):
        waited = f" for {timeout:g} s" if timeout is not None else ""
        return StoreError(
            f"store: {path} is locked by another process (waited{waited}); try again when it has finished"
        )
    if "readonly" in s.replace("-", "").replace(" ", "") or "read-only" in s:
        return StoreError(
            f"store: {path} is read-only (a read-only file or directory); copy it somewhere writable to add to it"
        )
    if "unable to open" in s:
        return StoreError(f"store: cannot open {path} ({s})")
    if "full" in s:
        return StoreError(f"store: cannot write {path}: {s}")
    if any(w in s for w in ("malformed", "corrupt", "not a database")):
        return _damaged(path, s)
    return StoreError(f"store: {path}: {s}")


def _damaged(path: Path, what: str) -> StoreError:
    what = "; ".join(x.strip() for x in what.splitlines() if x.strip() and not x.startswith("***"))
    return StoreError(
        f"store: {path} is damaged ({what}); `latchlab store check {path}` lists the damage "
        f"and `latchlab store salvage {path} NEW.sqlite` copies every readable member"
    )


def _check_path(path: Path) -> None:
    """Refuse paths that can never be a store file, with what is wrong."""
    journal = journal_name(path)
    if journal:  # SQLite takes such a file for the journal of the database beside it, and deletes it
        j, base = journal
        raise StoreError(
            f"store: {path} ends in {j}, the name SQLite gives the journal of {base or 'a store'}; "
            "opening that database would delete this file: name the store otherwise (rename it if it exists)"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StoreError(f"store: cannot use {path}: {parent} is not a directory")
            break
    if path.exists():
        if path.is_dir():
            raise StoreError(f"store: {path} is a directory; give a file path such as {path / 'store.sqlite'}")
        if not path.is_file():
            raise StoreError(f"store: {path} is not a regular file")
        if not os.access(path, os.R_OK):
            raise StoreError(f"store: {path} is not readable (permission denied)")
        if (links := path.stat().st_nlink) > 1:
            # SQLite names its journal and its lock after the path: two commands writing one
            # store under two names each wrote their own journal, and one sweep was lost
            raise StoreError(
                f"store: {path} has {links} names (hard links); SQLite keeps a journal and a lock per name, "
                "so results written through one name can be lost through another: use one name (copy the "
                "store with `cp`, or remove the other links)"
            )


def _nonempty(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _writable(path: Path) -> bool:
    """Whether this process can write the store: the file (if any) and its directory (for
    the WAL journal beside it)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and not os.access(path, os.W_OK):
        return False
    return os.access(parent, os.W_OK | os.X_OK)


def _in(db, query: str, ids: list) -> set:
    return {r[0] for r in _rows_in(db, query, ids)}


def _rows_in(db, query: str, ids: list) -> list:
    out = []
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        out += db.execute(query.format(", ".join("?" * len(part))), part).fetchall()
    return out


def _incomplete(db, limit: int | None = None) -> list[tuple[str, str]]:
    """Members without all their epochs and parameter snapshots (epochs 1..E and 0..E):
    (member id, the problem's line) pairs."""
    lim = f" LIMIT {int(limit)}" if limit else ""
    q = f"SELECT member_id, epochs FROM members WHERE typeof(epochs) != 'integer' OR epochs < 1{lim}"
    out = [(mid, f"member {mid}: epochs is {e!r}, not an integer >= 1") for mid, e in db.execute(q)]
    if out:  # the counts below need the epochs
        return out
    for table, extra in (("epochs", 0), ("params", 1)):
        q = (
            f"SELECT m.member_id, m.epochs, coalesce(n.k, 0) FROM members m LEFT JOIN "
            f"(SELECT member_id, count(*) AS k FROM {table} GROUP BY member_id) n USING(member_id) "
            f"WHERE coalesce(n.k, 0) != m.epochs + {extra}{lim}"
        )
        for mid, e, k in db.execute(q):
            what = "epoch rows" if table == "epochs" else "parameter snapshots"
            out.append((mid, f"member {mid} has {k} of its {int(e) + extra} {what}"))
    return out[:limit] if limit else out


def _start_time(pid: int) -> str | None:
    """The process's start time (Linux: clock ticks after boot), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` runs on this host (not a zombie), and is the one that started
    at ``start`` (``_start_time``; None: any), so that a reused pid is not taken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # killed, not yet reaped
        return False
    return start is None or fields[19] == start


def _stale(owner, host, pid, pid_start, expires) -> bool:
    if expires is not None and expires < time.time():
        return True
    if host != _HOST or pid is None:
        return False
    if int(pid) == os.getpid():  # this process: live while the store that claimed is open
        return owner not in _OPEN_OWNERS
    return not process_alive(int(pid), pid_start)


# ---------------------------------------------------------------------- parameter blobs

_MAGIC1 = b"LLP1"  # magic, header length (4 bytes), JSON header, data
_MAGIC = b"LLP2"  # magic, header length (4 bytes), CRC-32 of all but the magic (4 bytes), JSON header, data


def _pack_all(params) -> list[bytes]:
    """Every member's parameters (leading axis R of each leaf) as ``_unpack``'s blobs: a JSON
    header of names, dtypes and shapes, then the arrays' bytes, behind a CRC-32 of both
    (np.savez took ~0.2 ms a member, the whole store phase of a sweep)."""
    leaves = [(f"{a}/{b}", np.asarray(v)) for a, d in params.items() for b, v in d.items()]
    head = json.dumps([[k, v.dtype.str, v.shape[1:]] for k, v in leaves]).encode()
    R = leaves[0][1].shape[0]
    flat = [np.ascontiguousarray(v).reshape(R, -1) for _, v in leaves]
    out = []
    for r in range(R):
        n, body = len(head).to_bytes(4, "little"), head + b"".join(f[r].tobytes() for f in flat)
        out.append(_MAGIC + n + zlib.crc32(body, zlib.crc32(n)).to_bytes(4, "little") + body)
    return out


def _unpack(blob: bytes) -> dict:
    """A member's parameters from its blob. Raises ``ValueError`` for damaged bytes."""
    out: dict = {}
    try:
        if blob[:4] not in (_MAGIC, _MAGIC1):  # an .npz (stores written before _pack_all)
            with np.load(io.BytesIO(blob)) as z:  # allow_pickle=False: objects are refused
                if not hasattr(z, "files"):
                    raise ValueError("not a parameter snapshot (neither latchlab's packing nor an .npz)")
                for k in z.files:
                    a, b = k.split("/")
                    out.setdefault(a, {})[b] = z[k]
            return out
        n = int.from_bytes(blob[4:8], "little")
        pos = 8
        if blob[:4] == _MAGIC:
            if zlib.crc32(blob[12:], zlib.crc32(blob[4:8])) != int.from_bytes(blob[8:12], "little"):
                raise ValueError("checksum mismatch")
            pos = 12
        head = json.loads(blob[pos : pos + n])
        pos += n
        for k, dtype, shape in head:
            dt = np.dtype(dtype)
            size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            if pos + size > len(blob):
                raise ValueError("truncated")
            a, b = k.split("/")
            out.setdefault(a, {})[b] = np.frombuffer(blob, dt, size // dt.itemsize, pos).reshape(shape).copy()
            pos += size
        if pos != len(blob):
            raise ValueError("trailing bytes")
        return out
    except ValueError as e:
        if "pickled" in str(e):  # numpy's advice to unpickle: never for stored bytes
            raise ValueError("not a parameter snapshot (pickled objects)") from None
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure of stored bytes is damage
        raise ValueError(f"unreadable ({type(e).__name__}: {e})") from None


def _config_problem(m: dict, cache: dict, seed: bool = True) -> str | None:
    """What is wrong with a member row's configuration and (with ``seed``) its seed (None:
    what a sweep writes). ``cache`` holds the verdicts on configurations already seen (the
    seeds of a point share one)."""
    key = tuple((type(m.get(f)), m.get(f)) for f in RUN_FIELDS)
    if key not in cache:
        d = {f: m.get(f) for f in RUN_FIELDS}
        try:
            values = d["values"]
            try:
                d["values"] = json.loads(values) if isinstance(values, str) else (values or {})
            except ValueError as e:
                raise ConfigError("values", f"{values!r} is not JSON ({e})") from None
            from_dict(d).points()
            cache[key] = None
        except (LatchlabError, ValueError, TypeError) as e:
            cache[key] = str(e)
    if cache[key] is None and seed:
        try:
            checked(Seed, m.get("seed"), "seed")
        except ConfigError as e:
            return str(e)
    return cache[key]


def _epoch_problem(epochs: list[tuple]) -> str | None:
    """What is wrong with a member's ``(epoch, *metrics)`` rows' values (None: numbers or
    NULL, SQLite's NaN)."""
    for r in epochs:
        for name, v in zip(_METRICS, r[1:]):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                return f"{name} of epoch {r[0]} is {v!r}, not a number"
    return None


def _bad_rows(db, limit: int | None = None) -> dict[str, str]:
    """Members whose rows hold what no sweep writes (a configuration field out of its range,
    values that are not JSON, a seed outside the PRNG's, a metric that is not a number):
    member id -> what. Each distinct configuration (with its fields' SQLite types, so that
    5 and 5.0 differ) is checked once; the seeds and metrics in SQL."""
    fields = [_q(f) for f in RUN_FIELDS]
    typed = ", ".join(f"{f}, typeof({f})" for f in fields)
    bad: dict[str, str] = {}
    cache: dict = {}
    for row in db.execute(f"SELECT DISTINCT {typed} FROM members").fetchall():
        why = _config_problem(dict(zip(RUN_FIELDS, row[::2])), cache, seed=False)
        if why is not None:
            same = " AND ".join(f"{f} IS ? AND typeof({f}) = ?" for f in fields)
            for (mid,) in db.execute(f"SELECT member_id FROM members WHERE {same} ORDER BY rowid", row):
                bad[mid] = why
    seeds = f"typeof(seed) != 'integer' OR seed < 0 OR seed > {SEED_MAX}"
    for mid, seed in db.execute(f"SELECT member_id, seed FROM members WHERE {seeds} ORDER BY rowid"):
        bad.setdefault(mid, f"seed: must be in [0, {SEED_MAX}], got {seed!r}")
    not_number = " OR ".join(f"typeof({k}) NOT IN ('real', 'integer', 'null')" for k in _METRICS)
    lim = f" LIMIT {int(limit)}" if limit else ""
    q = f"SELECT member_id, epoch, {', '.join(_METRICS)} FROM epochs WHERE {not_number}{lim}"
    for row in db.execute(q):
        bad.setdefault(row[0], _epoch_problem([row[1:]]) or "")
    return dict(list(bad.items())[:limit]) if limit else bad


def _fingerprint(member: dict, epochs: list[tuple], params: list[tuple]) -> str:
    """A digest of a member's numbers (config, seed, metrics, parameters), whatever sweep,
    time or blob format they were stored with."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {k: member[k] for k in ("seed", *RUN_FIELDS, "diverged_epoch") if k in member}, sort_keys=True, default=str
        ).encode()
    )
    for row in epochs:
        h.update(np.array([np.nan if v is None else v for v in row], np.float64).tobytes())
    for e, blob in params:
        h.update(str(e).encode())
        p = _unpack(blob)
        for a in sorted(p):
            for b in sorted(p[a]):
                v = p[a][b]
                h.update(f"{a}/{b}{v.dtype.str}{v.shape}".encode())
                h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------- check, salvage, merge


def check(path: str | Path) -> list[str]:
    """Every problem found in a store (empty: sound): SQLite's full integrity check, the
    schema, each member's epochs and parameter snapshots, and every snapshot's checksum.
    Reads only; never raises for a damaged store (it says what is damaged). A path that is
    no store at all (missing, empty, not SQLite, SQLite without latchlab's tables) raises
    ``StoreError``: there is nothing to salvage."""
    path = Path(path)
    _check_path(path)
    if not _nonempty(path):
        raise StoreError(f"store: {path} {'is empty (no store yet)' if path.exists() else 'does not exist'}")
    if not is_database(path):
        raise StoreError(f"store: {path} is not a latchlab store (not an SQLite database)")
    try:
        db = _raw(path)
    except StoreError as e:
        return [str(e)]
    problems: list[str] = []
    try:
        try:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as e:
            return [f"sqlite: {e}"]
        if not names:
            return [f"{path} is empty (no tables)"]
        if "meta" not in names:
            raise StoreError(f"store: {path} is not a latchlab store (no table meta)")
        try:
            problems += [
                f"sqlite: {x.strip()}"
                for r in db.execute("PRAGMA integrity_check(20)")
                if r[0] != "ok"
                for x in r[0].splitlines()
                if x.strip() and not x.startswith("***")
            ]
        except sqlite3.Error as e:
            problems.append(f"sqlite: {e}")
        missing = [t for t in _TABLES if t not in names]
        if missing:
            return problems + [f"tables {', '.join(missing)} are missing"]
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None or row[0] != SCHEMA:
                problems.append(f"schema tag {row[0] if row else None!r}; expected {SCHEMA}")
            gaps = _incomplete(db)
            problems += [line for _, line in gaps]
            named = {mid for mid, _ in gaps}  # a member's bad epochs count is named once
            problems += [f"member {k}: {v}" for k, v in _bad_rows(db).items() if k not in named]
        except sqlite3.Error as e:
            problems.append(f"members: {e}")
        try:
            cur = db.execute("SELECT member_id, epoch, npz FROM params")
            while True:
                try:
                    row = cur.fetchone()
                except sqlite3.Error as e:
                    problems.append(f"params: reading stopped: {e}")
                    break
                if row is None:
                    break
                try:
                    _unpack(row[2])
                except ValueError as e:
                    problems.append(f"parameters of member {row[0]} at epoch {row[1]}: {e}")
        except sqlite3.Error as e:
            problems.append(f"params: {e}")
    finally:
        db.close()
    return problems


def _refuse_unsaved_journal(path: Path) -> None:
    """Before a store that SQLite cannot read through its journal (a read-only place, or a
    missing or damaged ``-shm`` index) is read as a file alone: refuse it if the journal holds
    changes, which that read would miss (salvage reported "0 members" from such a store)."""
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(
            f"store: {path} cannot be read with its journal {wal}, which holds unsaved changes (a read-only "
            "place, or a missing or damaged -shm index); open it once where it is writable"
        )


def _raw(path: Path) -> sqlite3.Connection:
    """A read-only connection that neither checks nor changes anything, nor leaves files
    beside the store: with no journal beside it no connection is open on the file (each
    makes its ``-wal``), so it is read as a file that does not change (``immutable``);
    else SQLite reads it through the journal."""
    uri = path.resolve().as_uri()
    if not any(Path(f"{path}{x}").exists() for x in JOURNALS if x != "-shm"):
        try:
            return _connection(uri + "?mode=ro&immutable=1", TIMEOUT)
        except sqlite3.Error as e:
            raise StoreError(f"store: cannot open {path} ({e})") from None
    db = None
    try:
        db = _connection(uri + "?mode=ro", TIMEOUT)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.Error as e:
        if db is not None:
            db.close()
        if _locked(e):
            raise _error(path, e, TIMEOUT) from None
    _refuse_unsaved_journal(path)
    try:  # a directory this process cannot write (no journal index can be made), or damage
        return _connection(uri + "?mode=ro&immutable=1", TIMEOUT)
    except sqlite3.Error as e:
        raise StoreError(f"store: cannot open {path} ({e})") from None


def _scan(db, table: str, cols: str = "*") -> tuple[list, list[str]]:
    """Every readable row of ``table``: a forward scan up to the first unreadable page, then
    a backward one from the end (rows between two damaged pages may be missed)."""
    rows, errors = {}, []
    for order in ("ASC", "DESC"):
        try:
            cur = db.execute(f"SELECT rowid, {cols} FROM {table} ORDER BY rowid {order}")
            while True:
                r = cur.fetchone()
                if r is None:
                    return [rows[k] for k in sorted(rows)], errors
                rows[r[0]] = r[1:]
        except sqlite3.Error as e:
            errors.append(f"{table}: {e}")
    return [rows[k] for k in sorted(rows)], errors


def salvage(source: str | Path, target: str | Path) -> dict:
    """Copy every readable, complete member of a (damaged) store, with its sweep, into a new
    store ``target``. A member is copied only with its member row, all its epoch rows and all
    its parameter snapshots readable (checksums included).

    Returns:
        ``{"members": kept, "dropped": {member_id: why}, "sweeps": n, "errors": [...]}``.
    """
    source, target = Path(source), Path(target)
    _check_path(source)
    if not _nonempty(source):
        raise StoreError(f"store: {source} {'is empty' if source.exists() else 'does not exist'}")
    if _nonempty(target.resolve()):  # resolved: "missing/../store.sqlite" is the store
        raise StoreError(f"store: {target} exists; salvage writes a new store")
    db = _raw(source)
    try:
        try:
            cols = [r[1] for r in db.execute("PRAGMA table_info(members)")]
        except sqlite3.Error as e:
            raise StoreError(f"store: {source}: nothing readable ({e})") from None
        if "member_id" not in cols:
            raise StoreError(f"store: {source} has no readable members table")
        sweeps, errors = _scan(db, "sweeps")
        members, errs = _scan(db, "members", ", ".join(map(_q, cols)))
        errors += errs
        workers, errs = _scan(db, "workers") if _has_table(db, "workers") else ([], [])
        errors += errs
        kept, dropped, cache = [], {}, {}
        for row in members:
            m = dict(zip(cols, row))
            mid = m["member_id"]
            try:
                n = int(m["epochs"])
                ep = db.execute(
                    "SELECT epoch, " + ", ".join(_METRICS) + " FROM epochs WHERE member_id = ? ORDER BY epoch", (mid,)
                ).fetchall()
                pa = db.execute("SELECT epoch, npz FROM params WHERE member_id = ? ORDER BY epoch", (mid,)).fetchall()
            except (sqlite3.Error, TypeError, ValueError) as e:
                dropped[mid] = f"unreadable rows ({e})"
                continue
            if [r[0] for r in ep] != list(range(1, n + 1)) or [r[0] for r in pa] != list(range(n + 1)):
                dropped[mid] = f"{len(ep)} of {n} epoch rows and {len(pa)} of {n + 1} parameter snapshots"
                continue
            try:
                for _, blob in pa:
                    _unpack(blob)
            except ValueError as e:
                dropped[mid] = f"damaged parameters ({e})"
                continue
            why = _config_problem(m, cache) or _epoch_problem(ep)
            if why is not None:
                dropped[mid] = f"bad row ({why})"
                continue
            kept.append((m, ep, pa))
    finally:
        db.close()
    sweep_cols = ["sweep_id", *_SWEEP_COLS]
    known = {r[0] for r in sweeps}
    with new_or_nothing(target), Store(target) as out:

        def put():
            out._conn.executemany(
                f"INSERT INTO sweeps({', '.join(sweep_cols)}) VALUES ({', '.join('?' * 9)})",
                [tuple(r[:9]) for r in sweeps],
            )
            lost = {m.get("sweep_id") for m, _, _ in kept} - known - {None}
            out._conn.executemany(
                "INSERT INTO sweeps(sweep_id, name) VALUES (?, ?)",
                [(s, "salvaged (sweep row unreadable)") for s in sorted(lost)],
            )
            _insert_members(out._conn, kept)
            ids = {m["member_id"] for m, _, _ in kept}
            out._conn.executemany(
                "INSERT INTO workers VALUES (?, ?, ?, ?, ?)", [tuple(w[:5]) for w in workers if w[0] in ids]
            )

        out._transaction(put)
    return {"members": len(kept), "dropped": dropped, "sweeps": len(sweeps), "errors": errors}


@contextlib.contextmanager
def new_or_nothing(path: str | Path, keep_members: bool = False):
    """Remove the store at ``path`` (with its journal files, and the directories made for
    it) if the block made it and then failed: a refused merge or salvage leaves no new file
    or directory behind. With ``keep_members``, a store that holds a member by then is kept
    (an interrupted sweep resumes from it); only one that failed before any is removed."""
    real = Path(path).resolve()  # a link's target: the link itself is the user's
    existed = real.exists()
    made = list(itertools.takewhile(lambda d: not d.exists(), real.parents))  # innermost first
    try:
        yield
    except BaseException:
        if not existed and not (keep_members and _has_members(real)):
            for suffix in ("", *JOURNALS):
                Path(f"{real}{suffix}").unlink(missing_ok=True)
            for d in made:
                try:
                    d.rmdir()
                except OSError:  # no longer empty: something else wrote there
                    break
        raise


def _has_members(path: Path) -> bool:
    """Whether the store at ``path`` holds a member (unreadable: assume it does, and keep it)."""
    if not _nonempty(path):
        return False
    try:
        db = _raw(path)
        try:
            return db.execute("SELECT 1 FROM members LIMIT 1").fetchone() is not None
        finally:
            db.close()
    except (sqlite3.Error, StoreError):
        return True


def _has_table(db, name: str) -> bool:
    try:
        return db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None
    except sqlite3.Error:
        return False


def _insert_members(db, members) -> None:
    """Insert ``(member row dict, epoch rows, param rows)`` triples."""
    cols = ["member_id", "sweep_id", "seed", *RUN_FIELDS, "seconds", "diverged_epoch"]
    db.executemany(
        f"INSERT INTO members({', '.join(map(_q, cols))}) VALUES ({', '.join('?' * len(cols))})",
        [tuple(m.get(c) for c in cols) for m, _, _ in members],
    )
    db.executemany(
        "INSERT INTO epochs VALUES (?, ?, ?, ?, ?, ?)", [(m["member_id"], *r) for m, ep, _ in members for r in ep]
    )
    db.executemany(
        "INSERT INTO params VALUES (?, ?, ?)", [(m["member_id"], e, blob) for m, _, pa in members for e, blob in pa]
    )


def _fingerprints(st: Store, path: Path, cache: dict) -> list[tuple]:
    """Every member of an open store as ``(member row dict, epoch rows, param rows,
    _fingerprint)``; a row no sweep writes, or one that cannot be read, is ``_damaged``."""
    out = []
    try:
        for m, ep, pa in _member_rows(st):
            why = _config_problem(m, cache) or _epoch_problem(ep)
            if why is not None:
                raise _damaged(path, f"member {m['member_id']}: {why}")
            try:
                out.append((m, ep, pa, _fingerprint(m, ep, pa)))
            except ValueError as e:
                raise _damaged(path, f"parameters of member {m['member_id']}: {e}") from None
    except sqlite3.Error as e:
        raise _damaged(path, f"members: {e}") from None
    return out


def _member_rows(st: Store):
    """Every member of an open store as ``(member row dict, epoch rows, param rows)``."""
    cols = [r[1] for r in st._conn.execute("PRAGMA table_info(members)")]
    for row in st._conn.execute(f"SELECT {', '.join(map(_q, cols))} FROM members ORDER BY rowid").fetchall():
        m = dict(zip(cols, row))
        ep = st._conn.execute(
            "SELECT epoch, " + ", ".join(_METRICS) + " FROM epochs WHERE member_id = ? ORDER BY epoch",
            (m["member_id"],),
        ).fetchall()
        pa = st._conn.execute(
            "SELECT epoch, npz FROM params WHERE member_id = ? ORDER BY epoch", (m["member_id"],)
        ).fetchall()
        yield m, ep, pa


def merge(target: str | Path, sources: list) -> dict:
    """Merge stores (e.g. one per worker) into ``target`` (created if missing): every sweep
    row is kept (provenance included; a sweep already in the target is not repeated), and
    members are deduplicated by id. A member stored twice with different numbers (config,
    metrics or parameters) refuses the whole merge before anything is written.

    Returns:
        ``{"members": added, "duplicates": skipped, "sweeps": added}``.
    """
    target = Path(target)
    sources = [Path(s) for s in sources]
    for s in sources:
        _check_path(s)
        if not _nonempty(s):
            raise StoreError(f"store: {s} {'is empty' if s.exists() else 'does not exist'}")
        if s.resolve() == target.resolve():
            raise StoreError(f"store: {s} is the merge target; give it once, as the target")
        Store(s, create=False).close()  # every source sound before the target is made
    with new_or_nothing(target), Store(target) as out:
        cache: dict = {}
        seen = {m["member_id"]: (fp, str(target)) for m, _, _, fp in _fingerprints(out, target, cache)}
        existing = {
            tuple(r[1:]): r[0]
            for r in out._conn.execute(f"SELECT sweep_id, {', '.join(_SWEEP_COLS)} FROM sweeps").fetchall()
        }
        plans, conflicts, dups = [], [], 0
        for s in sources:  # first every check, then every write
            with Store(s, create=False) as st:
                sweeps = st._conn.execute(f"SELECT sweep_id, {', '.join(_SWEEP_COLS)} FROM sweeps").fetchall()
                where = {r[0]: tuple(r[1:]) for r in st.workers().itertuples(index=False)}
                new = []
                for m, ep, pa, fp in _fingerprints(st, s, cache):
                    if m["member_id"] in seen:
                        if seen[m["member_id"]][0] != fp:
                            conflicts.append(f"{m['member_id']} ({seen[m['member_id']][1]} and {s})")
                        dups += 1
                        continue
                    seen[m["member_id"]] = (fp, str(s))
                    new.append((m, ep, pa))
                plans.append((s, sweeps, new, where))
        if conflicts:
            raise StoreError(
                f"store: merge refused, nothing written: {len(conflicts)} member(s) stored with "
                f"different numbers: {'; '.join(conflicts[:3])}{' ...' if len(conflicts) > 3 else ''}"
            )

        added = {"members": 0, "duplicates": dups, "sweeps": 0}

        def put():
            for _, sweeps, new, where in plans:
                ids = {}
                for r in sweeps:
                    key = tuple(r[1:])
                    if key not in existing:
                        existing[key] = out._conn.execute(
                            f"INSERT INTO sweeps({', '.join(_SWEEP_COLS)}) VALUES ({', '.join('?' * 8)})", key
                        ).lastrowid
                        added["sweeps"] += 1
                    ids[r[0]] = existing[key]
                _insert_members(out._conn, [({**m, "sweep_id": ids.get(m["sweep_id"])}, ep, pa) for m, ep, pa in new])
                out._conn.executemany(
                    "INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?)",
                    [(m["member_id"], *where[m["member_id"]]) for m, _, _ in new if m["member_id"] in where],
                )
                added["members"] += len(new)

        out._transaction(put)
    return added
