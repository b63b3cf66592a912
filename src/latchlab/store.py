"""The results store: one SQLite file, tidy rows, provenance with every sweep.

Tables:
    meta(key, value)            the schema tag
    sweeps(sweep_id, ...)       one row per ``latchlab run``: config, commit, versions, PRNG
    members(member_id, ...)     one row per member: its resolved config and seed
    epochs(member_id, epoch, train_loss, train_acc, val_loss, val_acc)
    params(member_id, epoch, npz)   parameters after each epoch (epoch 0: initial), packed
                                    by ``_pack_all`` (stores written before it hold ``.npz`` bytes;
                                    ``Store.params`` reads both)

A member's rows are written in one transaction, so an interrupted sweep loses only the
members that were still training, and a re-run skips every member already stored.
"""
from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd

from latchlab.config import RUN_FIELDS, Member
from latchlab.errors import ConfigError, StoreError

SCHEMA = "latchlab-store/1"
_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")
_DDL = f"""
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE sweeps(sweep_id INTEGER PRIMARY KEY, name TEXT, started REAL, config TEXT,
    git_commit TEXT, versions TEXT, prng TEXT, device TEXT, command TEXT);
CREATE TABLE members(member_id TEXT PRIMARY KEY, sweep_id INTEGER REFERENCES sweeps,
    seed INTEGER, {", ".join(f'"{f}"' for f in RUN_FIELDS)}, seconds REAL);
CREATE TABLE epochs(member_id TEXT REFERENCES members, epoch INTEGER,
    {", ".join(f"{m} REAL" for m in _METRICS)}, PRIMARY KEY(member_id, epoch));
CREATE TABLE params(member_id TEXT REFERENCES members, epoch INTEGER, npz BLOB,
    PRIMARY KEY(member_id, epoch));
"""


class Store:
    """An open results store. ``Store(path)`` creates it if missing.

    Raises ``StoreError`` (and leaves the file untouched) when the file exists but is not a
    latchlab store of this schema.
    """

    def __init__(self, path: str | Path, create: bool = True):
        self.path = Path(path)
        exists = self.path.exists() and self.path.stat().st_size > 0
        if not exists and not create:
            what = "is empty" if self.path.exists() else "does not exist"
            raise StoreError(f"store: {self.path} {what}")
        if exists:
            _check_schema(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        if not exists:
            with self.db:
                self.db.executescript(_DDL)
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA,))

    def close(self):
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def done(self) -> set[str]:
        """Ids of the members already stored."""
        return {r[0] for r in self.db.execute("SELECT member_id FROM members")}

    def add_sweep(self, name: str, config: dict, provenance: dict, command: str = "") -> int:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO sweeps(name, started, config, git_commit, versions, prng, device, command)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, time.time(), json.dumps(config), provenance["git_commit"],
                 json.dumps(provenance["versions"]), provenance["prng"], provenance["device"], command))
        return cur.lastrowid

    def write(self, sweep_id: int, members: list[Member], history, seconds: float) -> None:
        """Store finished members: ``history`` is a ``train.History`` over exactly these."""
        cols = ["member_id", "sweep_id", "seed", *RUN_FIELDS, "seconds"]
        rows_m, rows_e, rows_p = [], [], []
        for r, m in enumerate(members):
            run = m.run.to_dict()
            run["values"] = json.dumps(run["values"], sort_keys=True)
            rows_m.append((m.id, sweep_id, m.seed, *(run[f] for f in RUN_FIELDS), seconds / len(members)))
            for e in range(history.val_acc.shape[0]):
                rows_e.append((m.id, e + 1, *(float(getattr(history, k)[e, r]) for k in _METRICS)))
        packed = [_pack_all(snap) for snap in history.params]
        for r, m in enumerate(members):
            for e, blobs in enumerate(packed):
                rows_p.append((m.id, e, blobs[r]))
        with self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO members({', '.join(map(_q, cols))}) "
                                f"VALUES ({', '.join('?' * len(cols))})", rows_m)
            self.db.executemany("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?)", rows_e)
            self.db.executemany("INSERT OR REPLACE INTO params VALUES (?, ?, ?)", rows_p)

    def epochs(self) -> pd.DataFrame:
        """One row per member per epoch: the member's config, seed and metrics."""
        return pd.read_sql_query(
            "SELECT m.*, e.epoch, " + ", ".join(f"e.{k}" for k in _METRICS) +
            " FROM members m JOIN epochs e USING(member_id) ORDER BY m.rowid, e.epoch", self.db)

    def members(self) -> pd.DataFrame:
        """One row per member: its config, seed and final-epoch metrics."""
        df = self.epochs()
        return df[df.epoch == df.epochs].reset_index(drop=True)

    def member(self, member_id: str) -> pd.Series:
        """A member's row (final epoch) from its id or a unique prefix of it.

        Raises:
            ConfigError: no or several members match (the message says how to list ids).
            StoreError: the store holds no finished members.
        """
        members = self.members()
        if members.empty:
            raise StoreError(f"store: {self.path} holds no finished members")
        hits = members[members.member_id.str.startswith(str(member_id))]
        if len(hits) != 1:
            problem = "matches no member" if hits.empty else f"matches {len(hits)} members; give more characters"
            raise ConfigError("member", f"{member_id!r} {problem} of {self.path} (list the ids with "
                                        f"`latchlab export {self.path} --per member --csv members.csv`)")
        return hits.iloc[0]

    def params(self, member_id: str, epoch: int | None = None) -> dict:
        """A member's parameters after ``epoch`` (default: the last), as nested numpy dicts."""
        q = "SELECT npz FROM params WHERE member_id = ? "
        q += "AND epoch = ?" if epoch is not None else "ORDER BY epoch DESC LIMIT 1"
        row = self.db.execute(q, (member_id, epoch) if epoch is not None else (member_id,)).fetchone()
        if row is None:
            raise StoreError(f"member: no parameters for {member_id!r} at epoch {epoch}")
        return _unpack(row[0])

    def sweeps(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM sweeps", self.db)


def _q(name: str) -> str:
    return f'"{name}"'


_MAGIC = b"LLP1"  # a packed parameter blob: magic, header length (4 bytes), JSON header, data


def _pack_all(params) -> list[bytes]:
    """Every member's parameters (leading axis R of each leaf) as ``_unpack``'s blobs: a JSON
    header of names, dtypes and shapes, then the arrays' bytes (np.savez took ~0.2 ms a
    member, the whole store phase of a sweep)."""
    leaves = [(f"{a}/{b}", np.asarray(v)) for a, d in params.items() for b, v in d.items()]
    head = json.dumps([[k, v.dtype.str, v.shape[1:]] for k, v in leaves]).encode()
    prefix = _MAGIC + len(head).to_bytes(4, "little") + head
    R = leaves[0][1].shape[0]
    flat = [np.ascontiguousarray(v).reshape(R, -1) for _, v in leaves]
    return [prefix + b"".join(f[r].tobytes() for f in flat) for r in range(R)]


def _unpack(blob: bytes) -> dict:
    out: dict = {}
    if blob[:4] != _MAGIC:  # an .npz (stores written before _pack_all)
        with np.load(io.BytesIO(blob)) as z:
            for k in z.files:
                a, b = k.split("/")
                out.setdefault(a, {})[b] = z[k]
        return out
    n = int.from_bytes(blob[4:8], "little")
    pos = 8 + n
    for k, dtype, shape in json.loads(blob[8:pos]):
        dt = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        a, b = k.split("/")
        out.setdefault(a, {})[b] = np.frombuffer(blob, dt, size // dt.itemsize, pos).reshape(shape).copy()
        pos += size
    return out


def _check_schema(path: Path) -> None:
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"store: {path} is not a latchlab store ({e})") from None
    if row is None or row[0] != SCHEMA:
        found = row[0] if row else "no schema tag"
        raise StoreError(f"store: {path} was written by another schema ({found}); expected {SCHEMA}")
