"""The ``latchlab`` command line, run as a user runs it: the console script in a subprocess.

* Bad input (a config value, a malformed TOML, a store of another schema or not a
  database, sizes beyond int32 or the PRNG, sizes whose memory cannot exist) prints exactly one line ``error: <field>: ...`` naming what is allowed, exits
  with code 2, prints no traceback and leaves the store as it was (a missing store is not
  created, an existing one keeps its bytes and mtime).
* ``run`` writes a store and a re-run trains nothing; ``export`` round-trips the store's
  rows through CSV and Parquet; ``plot`` redraws the figures from the store alone.
* The seed reproduction end to end at a tiny scale (through the Python API, since the CLI
  only offers the quick and full scales): its results are checked against a numpy forward
  pass of the stored parameters on the regenerated validation sets.
"""

from __future__ import annotations

from collections import Counter
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from latchlab import config
from latchlab.analysis import plot
from latchlab.cli.common import INTERRUPTED
from latchlab.experiments import seed as reproduce
from latchlab.engine import run as runner
from latchlab.engine import data as sweep_data
from latchlab.core import tasks
from latchlab.store import SCHEMA, Store

from clitools import assert_user_error, cli, cli_here  # noqa: E402

OLD = 1_000_000_000  # an mtime far in the past, so any write to a file shows

TINY = """\
name = "tiny"
repeats = 2
seed = 0
N = 64
epochs = 2
"""
GOOD = TINY + '[grid]\ncell = ["srnn", "lstm"]\nT = [2, 3]\n'  # 2 x 2 x 2 = 8 members


# ----------------------------------------------------------------------------- helpers


def age(path: Path) -> None:
    os.utime(path, (OLD, OLD))


def sqlite_file(path: Path, statements) -> Path:
    db = sqlite3.connect(path)
    with db:
        for s in statements:
            db.execute(s)
    db.close()
    age(path)
    return path


def tables(path: Path) -> dict[str, pd.DataFrame]:
    with Store(path, create=False) as st:
        return {
            "members": pd.read_sql_query("SELECT * FROM members ORDER BY member_id", st.db),
            "epochs": pd.read_sql_query("SELECT * FROM epochs ORDER BY member_id, epoch", st.db),
            "sweeps": st.sweeps(),
        }


BAD_SCHEMA = [
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO meta VALUES ('schema', 'latchlab-store/0')",
    "CREATE TABLE members(member_id TEXT)",
]
OTHER_TABLES = ["CREATE TABLE results(x REAL)", "INSERT INTO results VALUES (0.5)"]


def garbage(p: Path) -> None:
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    age(p)


def empty_store(p: Path) -> None:
    Store(p).close()
    age(p)


def a_file(p: Path) -> None:
    """A regular file ``f`` beside where the store would be (no store)."""
    (p.parent / "f").write_text("not a directory")
    age(p.parent / "f")


def store_and_file(p: Path) -> None:
    empty_store(p)
    a_file(p)


def store_and_store(p: Path) -> None:
    """``s.sqlite`` and a second store ``t.sqlite`` beside it."""
    empty_store(p)
    empty_store(p.parent / "t.sqlite")


def store_and_wal(p: Path) -> None:
    """``s.sqlite`` and a write-ahead journal beside it (its header's magic number, then
    what would be committed pages)."""
    empty_store(p)
    (p.parent / "s.sqlite-wal").write_bytes(bytes.fromhex("377f0682") + bytes(4092))
    age(p.parent / "s.sqlite-wal")


def dir_named_as(name: str) -> Callable[[Path], None]:
    """``s.sqlite`` and a directory at ``name`` (an output file's name)."""

    def make(p: Path) -> None:
        empty_store(p)
        (p.parent / name).mkdir(parents=True)

    return make


def store_named_as(*names: str) -> Callable[[Path], None]:
    """``s.sqlite`` and a store at each of ``names`` (an output file's name)."""

    def make(p: Path) -> None:
        empty_store(p)
        for n in names:
            (p.parent / n).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, p.parent / n)
            age(p.parent / n)

    return make


@dataclass(frozen=True)
class Bad:
    """A bad invocation: its arguments, the field its error must name and what is allowed.

    ``config`` is written to the config file the arguments name; ``store`` makes
    ``s.sqlite`` (None: there is no store, and none may be created).
    """

    args: tuple
    field: str
    allowed: tuple = ()
    config: str | None = None
    store: Callable[[Path], None] | None = None


RUN_BAD = ("run", "bad.toml", "--store", "s.sqlite")
RUN_GOOD = ("run", "good.toml", "--store", "s.sqlite")
BAD = {
    "cell": Bad(RUN_BAD, "cell", ("srnn", "lstm", "gru", "lstm_nofg", "janet"), TINY + 'cell = "rnn"\n'),
    "task": Bad(RUN_BAD, "task", ("latch", "bit_relay"), TINY + 'task = "mnist"\n'),
    "preset": Bad(RUN_BAD, "preset", ("keras2", "keras3"), TINY + 'preset = "keras1"\n'),
    "T<1 in the grid": Bad(RUN_BAD, "T", (">= 1",), TINY + "[grid]\nT = [2, 0]\n"),
    "negative noise": Bad(RUN_BAD, "noise", (">= 0",), TINY + "noise = -0.1\n"),
    "zero repeats": Bad(RUN_BAD, "repeats", (">= 1",), TINY.replace("repeats = 2", "repeats = 0")),
    "malformed TOML": Bad(RUN_BAD, "config", ("not valid TOML",), TINY + "[grid\nT = [2]\n"),
    "a field at the top level and in the grid": Bad(
        RUN_BAD,
        "grid.cell",
        ("also set at the top level (cell = 'lstm')",),
        TINY + 'cell = "lstm"\n[grid]\ncell = ["srnn"]\n',
    ),
    "values at the top level and in the grid": Bad(
        RUN_BAD,
        "grid.values",
        ("also set at the top level",),
        TINY + "[values]\nbias = 0.0\n[grid]\nvalues = [{recurrent = 1.0}]\n",
    ),
    "missing config": Bad(("run", "nope.toml", "--store", "s.sqlite"), "config", ("nope.toml",)),
    "bad config, existing store": Bad(RUN_BAD, "T", (">= 1",), GOOD.replace("[2, 3]", "[0, 3]"), empty_store),
    "store of another schema": Bad(
        RUN_GOOD, "store", (SCHEMA, "latchlab-store/0"), GOOD, lambda p: sqlite_file(p, BAD_SCHEMA)
    ),
    "store not a database": Bad(RUN_GOOD, "store", ("not a latchlab store",), GOOD, garbage),
    "store, sqlite of other tables": Bad(
        RUN_GOOD, "store", ("not a latchlab store",), GOOD, lambda p: sqlite_file(p, OTHER_TABLES)
    ),
    "export, store not a database": Bad(
        ("export", "s.sqlite", "--csv", "x.csv"), "store", ("not a latchlab store",), None, garbage
    ),
    "plot, store of another schema": Bad(
        ("plot", "s.sqlite", "--out", "figs"), "store", (SCHEMA,), None, lambda p: sqlite_file(p, BAD_SCHEMA)
    ),
    "plot, empty store": Bad(
        ("plot", "s.sqlite", "--out", "figs"), "store", ("no finished members",), None, empty_store
    ),
    "export, missing store": Bad(("export", "s.sqlite", "--csv", "x.csv"), "store", ("does not exist",)),
    "export, unknown --per": Bad(
        ("export", "s.sqlite", "--csv", "x.csv", "--per", "run"), "per", ("epoch", "member"), None, empty_store
    ),
    "reproduce, unknown preset": Bad(
        ("reproduce", "seed", "--preset", "keras1", "--out", "out"), "preset", ("keras2", "keras3")
    ),
    "reproduce phase, unknown preset": Bad(
        ("reproduce", "phase", "--preset", "keras1", "--out", "out"), "preset", ("keras2", "keras3")
    ),
    "reproduce, unknown scale": Bad(
        ("reproduce", "seed", "--scale", "tiny", "--out", "out"), "scale", ("quick", "full")
    ),
    # an output that is, or lies in or under, an input or a regular file: refused before any write
    "export --csv onto the store": Bad(
        ("export", "s.sqlite", "--csv", "s.sqlite"), "csv", ("input",), None, empty_store
    ),
    "export --parquet onto the store": Bad(
        ("export", "s.sqlite", "--csv", "x.csv", "--parquet", "./s.sqlite"), "parquet", ("input",), None, empty_store
    ),
    "export, --parquet in a missing directory": Bad(
        ("export", "s.sqlite", "--csv", "x.csv", "--parquet", "nodir/x.parquet"),
        "parquet",
        ("does not exist",),
        None,
        empty_store,
    ),
    "export, one file for both": Bad(
        ("export", "s.sqlite", "--csv", "x", "--parquet", "x"), "parquet", ("--csv",), None, empty_store
    ),
    "plot --out onto the store": Bad(("plot", "s.sqlite", "--out", "s.sqlite"), "out", ("input",), None, empty_store),
    "diagnose --out under a file": Bad(
        ("diagnose", "s.sqlite", "--member", "0", "--out", "f/d"), "out", ("regular file",), None, store_and_file
    ),
    "diagnose, an odd --N": Bad(
        ("diagnose", "s.sqlite", "--member", "0", "--N", "3"), "N", ("even", "half of it a class"), None, empty_store
    ),
    "pascanu2013, an empty --w": Bad(
        ("reproduce", "pascanu2013", "--w", "", "--out", "o"), "w", ("2 comma-separated",)
    ),
    "pascanu2013, a --b range float32 cannot resolve": Bad(
        ("reproduce", "pascanu2013", "--b", "1,1.0000001", "--out", "o"), "b", ("float32's resolution",)
    ),
    "landscape, an empty --x": Bad(("landscape", "--x", "", "--out", "o"), "x", ("is empty",)),
    "landscape --out under a file": Bad(("landscape", "--out", "f/d"), "out", ("regular file",), None, a_file),
    "explain --out under a file": Bad(("explain", "--out", "f/d"), "out", ("regular file",), None, a_file),
    "explain --store not a store": Bad(  # and no --out directory appears
        ("explain", "--scale", "quick", "--out", "o", "--store", "f"), "store", ("not a latchlab store",), None, a_file
    ),
    "reproduce --out a file": Bad(("reproduce", "seed", "--out", "f"), "out", ("regular file",), None, a_file),
    "reproduce --store is an output": Bad(
        ("reproduce", "seed", "--out", "o", "--store", "o/results.csv"), "out", ("input",)
    ),
    # an output that is another store (any SQLite database): never overwritten
    "export --csv onto another store": Bad(
        ("export", "s.sqlite", "--csv", "t.sqlite"),
        "csv",
        ("SQLite database", "never overwrites"),
        None,
        store_and_store,
    ),
    "export --parquet onto another store": Bad(
        ("export", "s.sqlite", "--parquet", "t.sqlite"), "parquet", ("never overwrites",), None, store_and_store
    ),
    # a store or output at a store's journal name: SQLite opening that store would delete it
    "run --store at a store's journal name": Bad(
        ("run", "good.toml", "--store", "s.sqlite-wal"), "store", ("journal of s.sqlite",), GOOD, empty_store
    ),
    "salvage into a journal name": Bad(
        ("store", "salvage", "s.sqlite", "t.sqlite-journal"), "store", ("journal of t.sqlite",), None, empty_store
    ),
    "export --csv at a store's journal name not yet there": Bad(
        ("export", "s.sqlite", "--csv", "s.sqlite-shm"), "csv", ("journal name",), None, empty_store
    ),
    "schema --out onto a store": Bad(("schema", "--out", "s.sqlite"), "out", ("never overwrites",), None, empty_store),
    "plot --out holding a store as a figure's name": Bad(
        ("plot", "s.sqlite", "--out", "figs"),
        "out",
        ("figs/accuracy_vs_T.png",),
        None,
        store_named_as("figs/accuracy_vs_T.png"),
    ),
    "reproduce --out holding a store as results.csv": Bad(
        ("reproduce", "seed", "--out", "o", "--store", "s.sqlite"),
        "out",
        ("o/results.csv",),
        None,
        store_named_as("o/results.csv"),
    ),
    "schema --out onto a store's journal": Bad(
        ("schema", "--out", "s.sqlite-wal"), "out", ("journal",), None, store_and_wal
    ),
    "plot --out holding a directory at a figure's name": Bad(
        ("plot", "s.sqlite", "--out", "figs"), "out", ("is a directory",), None, dir_named_as("figs/accuracy_vs_T.png")
    ),
    "reproduce --store under a regular file": Bad(
        ("reproduce", "seed", "--out", "o", "--store", "f/s.sqlite"), "store", ("regular file",), None, a_file
    ),
    # an output directory that cannot be made (even by root): refused before any work
    "plot --out in /proc": Bad(
        ("plot", "s.sqlite", "--out", "/proc/latchlab-no/figs"), "out", ("cannot write in",), None, empty_store
    ),
    "reproduce --out in /proc": Bad(("reproduce", "seed", "--out", "/proc/latchlab-no/o"), "out", ("cannot write in",)),
    "landscape --out in /proc": Bad(("landscape", "--out", "/proc/latchlab-no/l"), "out", ("cannot write in",)),
    # numbers finite as doubles but not in float32, where the engine computes
    "lr beyond float32": Bad(RUN_BAD, "lr", ("float32",), TINY + "lr = 1e39\n"),
    "noise beyond float32": Bad(RUN_BAD, "noise", ("float32",), TINY + "noise = 1e308\n"),
    "a 400-digit integer for a number": Bad(RUN_BAD, "lr", ("400 digits",), TINY + "lr = " + "9" * 400 + "\n"),
    "lr that is 0 in float32": Bad(RUN_BAD, "lr", ("float32's smallest",), TINY + "lr = 1e-50\n"),
    "a value beyond float32": Bad(RUN_BAD, "values.recurrent", ("float32",), TINY + "[values]\nrecurrent = 1e300\n"),
    "landscape --span beyond float32": Bad(("landscape", "--span", "1e39", "--out", "o"), "span", ("float32",)),
    "pascanu2013 --lr inf": Bad(("reproduce", "pascanu2013", "--lr", "inf", "--out", "o"), "lr", ("finite",)),
    "pascanu2013 --clip inf": Bad(("reproduce", "pascanu2013", "--clip", "inf", "--out", "o"), "clip", ("finite",)),
    "pascanu2013 --w beyond float32": Bad(
        ("reproduce", "pascanu2013", "--w", "-1e39,1e39", "--out", "o"), "w", ("float32",)
    ),
    # what the command line cannot parse: one line naming the option, as every other error
    "an unknown option": Bad(("export", "s.sqlite", "--csv", "x.csv", "--bogus"), "--bogus", ("No such option",)),
    "a missing option": Bad(("run", "good.toml"), "store", ("Missing option '--store'", "latchlab run --help")),
    "an option that is no integer": Bad(("landscape", "--points", "abc", "--out", "o"), "points", ("'--points'",)),
    "landscape --T with an empty item": Bad(("landscape", "--T", "3,,4", "--out", "o"), "T", ("'3,,4'",)),
    "an unknown command": Bad(("reproduce", "nope"), "command", ("No such command 'nope'",)),
    # click kept the last of two in silence: export wrote b.csv alone
    "an option given twice": Bad(
        ("export", "s.sqlite", "--csv", "a.csv", "--csv=b.csv"), "csv", ("--csv is given 2 times",), None, empty_store
    ),
    # sizes beyond int32 or the PRNG, or whose memory cannot exist: refused before any work
    # (tests/engine/test_limits.py times the same refusals in process)
    "N of 10^12": Bad(RUN_BAD, "N", ("2147483647",), TINY.replace("N = 64", "N = 1000000000000")),
    "T of 10^9, existing store": Bad(
        RUN_BAD, "memory", ("T=1000000000", "more than"), TINY + "T = 1000000000\n", empty_store
    ),
    "10^9 repeats": Bad(
        RUN_BAD, "memory", ("1000000000 members", "more than"), TINY.replace("repeats = 2", "repeats = 1000000000")
    ),
    "landscape, a million units": Bad(
        ("landscape", "--units", "1000000", "--out", "o"), "memory", ("1000000 units", "more than")
    ),
    "landscape, seed beyond the PRNG": Bad(
        ("landscape", "--seed", "4294967296", "--out", "o"), "seed", ("4294967295",)
    ),
    "landscape, N of 10^12": Bad(("landscape", "--N", "1000000000000", "--out", "o"), "N", ("2147483647",)),
}


def _files(d: Path) -> dict:
    """Every entry of a directory, a file with its bytes and mtime (a journal shows too)."""
    return {p.name: "dir" if p.is_dir() else (p.read_bytes(), p.stat().st_mtime_ns) for p in d.iterdir()}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, xla_cache):
    """Every subprocess this module can start early, started at once (two cores: four at a
    time): the tiny sweep's ``run`` first, then every bad invocation."""
    pool = ThreadPoolExecutor(max_workers=4)
    d = tmp_path_factory.mktemp("run")
    (d / "tiny.toml").write_text(GOOD)
    # a store whose path is longer than the terminal and has brackets (rich's markup)
    (d / RAN_STORE).parent.mkdir()
    run = cli, "run", "tiny.toml", "--store", RAN_STORE
    started = {"run": (d, None, pool.submit(*run, cwd=d, cache=xla_cache))}
    for case, b in BAD.items():
        d = tmp_path_factory.mktemp("bad")
        if b.config is not None:
            (d / Path(b.args[1]).name).write_text(b.config)
        if b.store is not None:
            b.store(d / "s.sqlite")
        started[case] = (d, _files(d), pool.submit(cli, *b.args, cwd=d, cache=xla_cache))
    yield started
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def ran(jobs):
    """One ``latchlab run`` of the tiny 8-member, two-epoch sweep: its directory and store."""
    d, _, job = jobs["run"]
    rc, out, err = job.result()
    assert rc == 0, err
    assert err.splitlines()[-1] == f"8 members in {RAN_STORE}", err  # one line, as given
    return d, d / RAN_STORE


RAN_STORE = "a-directory-whose-name-is-longer-than-a-terminal-is-wide-[old]/s.sqlite"


def test_printed_text_keeps_its_brackets_and_stays_on_its_line(capsys, monkeypatch):
    """What the CLI prints is printed as given: rich's markup took ``[old]`` in a path or
    ``[orthogonal]`` in a cell for a style and dropped it, and broke a long line (a path, the
    command that frees a dead run's claims) at the terminal's width."""
    from latchlab.cli import common
    from latchlab.outputs import Table

    monkeypatch.setenv("COLUMNS", "40")
    path = "/tmp/" + "x" * 60 + "/results[old]/fig.png"
    common.show(Table("t", pd.DataFrame({"variant": ["init[orthogonal]"]})), [path])
    common.console.print(f"`latchlab store release {path}` lets this one train them")
    out, err = capsys.readouterr()
    assert "init[orthogonal]" in out
    assert err == f"wrote {path}\n`latchlab store release {path}` lets this one train them\n"


WIDE = pd.DataFrame(
    {
        "task": ["bit_relay", "latch"],
        "cell": ["lstm", "srnn"],
        "T": ["100", "5"],
        "lr/batch/ep": ["0.001/16/20", "0.03/16/5"],
        "reported": ["0.546±0.123", "1.000±0.000"],
        "succ.": ["0/10", "10/10"],
        "grid min-max": ["0.49-0.58", "0.86-1.00"],
        "protocol": ["0.50", "1.00"],
    }
)


@pytest.mark.parametrize("terminal", [False, True])
def test_a_table_wider_than_the_output_loses_no_cell(terminal, capsys, monkeypatch):
    """A table that keeps its cells on one line (the answer's), wider than 80 columns:
    into a pipe or a file it printed at rich's 80 and cropped ``T = 100`` to ``1…``; now
    it prints whole there, and on a terminal too narrow for it its cells wrap."""
    from rich.console import Console

    from latchlab.cli import common
    from latchlab.outputs import Table

    monkeypatch.delenv("COLUMNS", raising=False)
    if terminal:
        monkeypatch.setattr(common, "_console", lambda: Console(force_terminal=True, width=60, color_system=None))
    common.show(Table("wide", WIDE, no_wrap=True))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(map(len, lines)) <= 60 if terminal else max(map(len, lines)) > 80
    assert "…" not in out
    if not terminal:  # every row whole on its line
        for row in WIDE.itertuples(index=False):
            assert any(all(f" {v} " in line for v in row) for line in lines)
    # every character of every cell and header printed (a cell cut short loses some)
    printed = Counter(c for c in out if c.isalnum() or c in "._/±-")
    wanted = Counter(c for v in [*WIDE.columns, *WIDE.to_numpy().ravel()] for c in str(v) if c != " ")
    assert not wanted - printed


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_touches_nothing(case, jobs):
    """One ``error: <field>: ...`` line naming what is allowed, exit 2, no traceback; the
    directory is as it was: a store keeps its bytes and mtime, a missing one is not created,
    no export, figure or output directory appears."""
    b = BAD[case]
    d, before, job = jobs[case]
    rc, out, err = job.result()
    assert_user_error(rc, out, err, b.field, b.allowed)
    assert _files(d) == before


def test_help_exits_0_and_a_group_without_its_command_shows_its_help():
    rc, out, err = cli_here("--help")
    assert rc == 0 and "Usage: " in out and "reproduce" in out, (rc, out, err)
    rc, out, err = cli_here("store", "check", "--help")
    assert rc == 0 and "store check" in out and "Check a store" in out, (rc, out, err)
    rc, out, err = cli_here("store")
    assert rc == 2 and "salvage" in out + err, (rc, out, err)


def _run_interrupted(tmp_path, xla_cache, interrupted: str) -> subprocess.CompletedProcess:
    """``latchlab run`` in a fresh process whose training is ``interrupted`` (Python source
    defining that function, with os, signal and time imported)."""
    (tmp_path / "tiny.toml").write_text(GOOD)
    code = (
        "import os, signal, sys, time; from latchlab import cli; from latchlab.engine import run as runner\n"
        f"{interrupted}\n"
        "runner.run = interrupted\n"
        "sys.argv = ['latchlab', 'run', 'tiny.toml', '--store', 's.sqlite']\n"
        "cli.main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "LATCHLAB_CACHE": str(xla_cache)},
        timeout=120,
    )


def test_a_list_option_and_a_flag_may_be_given_twice():
    """Only options that take one value are refused twice (``an option given twice``)."""
    rc, out, err = cli_here(
        "reproduce", "seed", "--split", "stratified", "--split", "random", "--profile", "--profile", "--help"
    )
    assert rc == 0 and "--split" in out, err


def test_interrupt_prints_the_resume_hint(tmp_path, xla_cache):
    p = _run_interrupted(tmp_path, xla_cache, "def interrupted(*a, **k): raise KeyboardInterrupt")
    assert p.returncode == 130
    assert "Traceback" not in p.stderr
    assert "re-run the same command to resume" in p.stderr


@pytest.mark.parametrize(
    "signals, rc", [(("SIGTERM",), 143), (("SIGINT", "SIGINT", "SIGTERM"), 130)], ids=["term", "int3"]
)
def test_a_signal_unwinds_in_one_line_and_another_during_the_clean_up_ends_it_at_once(tmp_path, xla_cache, signals, rc):
    """SIGTERM is an interrupt (the clean-up runs: the new store, which holds no member yet,
    is removed), exit 143; signals that arrive while the clean-up runs end the process at
    once (exit 128 + the first one's number) without the tracebacks of a cut-short clean-up."""
    interrupted = (
        f"SIGNALS = {list(signals)!r}\n"
        "def interrupted(*a, **k):\n"
        "    def held():  # closed as the interrupt unwinds: a clean-up that takes long, interrupted again\n"
        "        try:\n"
        "            yield\n"
        "        finally:\n"
        "            for s in SIGNALS[1:]:\n"
        "                os.kill(os.getpid(), getattr(signal, s)); time.sleep(0.2)\n"
        "    g = held(); next(g)\n"
        "    os.kill(os.getpid(), getattr(signal, SIGNALS[0])); time.sleep(30)"
    )
    p = _run_interrupted(tmp_path, xla_cache, interrupted)
    assert p.returncode == rc, p.stderr
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
    if len(signals) == 1:
        assert p.stderr.strip().splitlines() == [INTERRUPTED]
        assert sorted(os.listdir(tmp_path)) == ["tiny.toml"]


def test_one_sigint_during_training_says_so_in_one_line(tmp_path, xla_cache):
    """Ctrl-C while a sweep trains: the resume hint alone (``interrupted`` followed it), 130."""
    p = _run_interrupted(
        tmp_path, xla_cache, "def interrupted(*a, **k):\n    os.kill(os.getpid(), signal.SIGINT); time.sleep(30)"
    )
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip().splitlines() == [INTERRUPTED]


def test_a_sigint_python_ignores_still_stops_the_sweep(tmp_path, xla_cache):
    """Ctrl-C that lands in a callback whose exceptions Python ignores (JAX's
    garbage-collection callback; a ``__del__`` here) printed "Exception ignored ..." and the
    sweep trained on to its end; now it stops at the next epoch, in one line, exit 130."""
    interrupted = (
        "class Collected:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
        "def interrupted(cfgs, store, progress, *a, **k):\n"
        "    Collected()\n"
        "    for e in range(3):\n"
        "        progress(1, 3)\n"
        "    print('trained to the end', file=sys.stderr)\n"
    )
    p = _run_interrupted(tmp_path, xla_cache, interrupted)
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip().splitlines() == [INTERRUPTED]


def test_export_into_a_missing_directory_is_a_user_error(ran, tmp_path, xla_cache):
    rc, out, err = cli("export", ran[1], "--csv", "nodir/x.csv", cwd=tmp_path, cache=xla_cache)
    assert_user_error(rc, out, err, "csv")


# ----------------------------------------------------------------------------- run, export, plot


def test_run_writes_one_row_per_member_and_the_sweep(ran):
    t = tables(ran[1])
    members = config.from_dict(tomllib.loads(GOOD)).members()
    assert sorted(t["members"].member_id) == sorted(m.id for m in members)
    ep = t["epochs"]  # (member_id, epoch) is the primary key: each member has epochs 1 and 2
    assert len(ep) == 16 and ep.groupby("member_id").epoch.agg(lambda e: sorted(e) == [1, 2]).all()
    assert len(t["sweeps"]) == 1
    assert t["sweeps"].command[0] == f"latchlab run tiny.toml --store {RAN_STORE}"
    assert json.loads(t["sweeps"].config[0])["grid"] == {"cell": ["srnn", "lstm"], "T": [2, 3]}


def test_run_makes_a_new_stores_directories_and_removes_them_if_nothing_is_stored(tmp_path, xla_cache):
    """As docs/reliability.md says of ``run --store`` (it refused ``directory ... does not
    exist``): the store's missing directories are made; a refused sweep leaves none."""
    (tmp_path / "tiny.toml").write_text(TINY)
    rc, out, err = cli("run", "tiny.toml", "--store", "nd/sub/s.sqlite", cwd=tmp_path, cache=xla_cache)
    assert rc == 0, err
    assert len(tables(tmp_path / "nd/sub/s.sqlite")["members"]) == config.from_dict(tomllib.loads(TINY)).repeats
    (tmp_path / "huge.toml").write_text(TINY + "units = 1000000\n")
    rc, out, err = cli("run", "huge.toml", "--store", "new/sub/s.sqlite", cwd=tmp_path, cache=xla_cache)
    assert_user_error(rc, out, err, "memory")
    assert not (tmp_path / "new").exists()


def test_rerun_trains_nothing(ran, tmp_path, xla_cache):
    store = tmp_path / "s.sqlite"
    shutil.copy(ran[1], store)
    before = tables(store)
    shutil.copy(ran[0] / "tiny.toml", tmp_path / "tiny.toml")
    rc, out, err = cli("run", "tiny.toml", "--store", store, cwd=tmp_path, cache=xla_cache)
    assert rc == 0, err
    assert "8 members in" in err
    after = tables(store)
    for k in before:  # same members, seconds, metrics; no new sweep row (nothing to train)
        pd.testing.assert_frame_equal(after[k], before[k], check_exact=True)


def test_export_round_trips_csv_and_parquet(ran, tmp_path, xla_cache):
    rc, out, err = cli("export", ran[1], "--csv", "e.csv", "--parquet", "e.parquet", cwd=tmp_path, cache=xla_cache)
    assert rc == 0, err
    assert "16 rows exported" in err
    with Store(ran[1], create=False) as st:
        ref = st.epochs()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "e.parquet"), ref, check_exact=True)
    back = pd.read_csv(tmp_path / "e.csv", dtype={"member_id": str, "values": str}, keep_default_na=False)
    pd.testing.assert_frame_equal(back, ref, check_exact=True, check_dtype=False)


def test_export_per_member_gives_one_row_per_member(ran, tmp_path, xla_cache):
    rc, _, err = cli("export", ran[1], "--parquet", "m.parquet", "--per", "member", cwd=tmp_path, cache=xla_cache)
    assert rc == 0, err
    assert "8 rows exported" in err
    got = pd.read_parquet(tmp_path / "m.parquet")
    with Store(ran[1], create=False) as st:
        every = st.epochs()
    assert len(every) == 16 and len(got) == 8 and got.member_id.is_unique
    assert (got.epoch == 2).all()  # the final epoch of each member
    last = every[every.epoch == 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, last, check_exact=True)


def test_plot_redraws_figures_from_the_store_alone(ran, tmp_path, xla_cache):
    store = tmp_path / "only.sqlite"  # no config, no cache of results: the store only
    shutil.copy(ran[1], store)
    rc, out, err = cli("plot", store, "--out", "figs", cwd=tmp_path, cache=xla_cache)
    assert rc == 0, err
    for name in ("accuracy_vs_T", "success_vs_T"):
        png = (tmp_path / "figs" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
        assert "<svg" in (tmp_path / "figs" / f"{name}.svg").read_text()
    assert sorted(os.listdir(tmp_path / "figs")) == [
        "accuracy_vs_T.png",
        "accuracy_vs_T.svg",
        "success_vs_T.png",
        "success_vs_T.svg",
    ]


# ----------------------------------------------------------------------------- reproduce seed


def _hard_sigmoid(z):
    return np.clip(0.2 * z + 0.5, 0.0, 1.0)


def _predict(cell: str, p: dict, x: np.ndarray) -> np.ndarray:
    """Class predictions of a Keras-2 one-layer model, in float64 numpy, from the equations.

    srnn: ``h = tanh(x W + h U + b)``; lstm (gates i f c o, hard_sigmoid):
    ``c = f c + i g``, ``h = o tanh(c)``; head ``argmax(h K + k)``.
    """
    c = {k: np.asarray(v, np.float64) for k, v in p["cell"].items()}
    B, T, _ = x.shape
    H = c["recurrent"].shape[0]
    h, s = np.zeros((B, H)), np.zeros((B, H))
    for t in range(T):
        z = x[:, t] @ c["kernel"] + h @ c["recurrent"] + c["bias"]
        if cell == "srnn":
            h = np.tanh(z)
        else:
            i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
            s = _hard_sigmoid(f) * s + _hard_sigmoid(i) * np.tanh(g)
            h = _hard_sigmoid(o) * np.tanh(s)
    head = {k: np.asarray(v, np.float64) for k, v in p["head"].items()}
    return np.argmax(h @ head["kernel"] + head["bias"], -1)


def test_reproduce_seed_tiny_end_to_end(tmp_path):
    # the seed's protocol exactly (reproduce.seed_config), shrunk to N = 200, T in {2, 5}, 2 repeats
    seed = reproduce.seed_config("quick")
    d = seed.to_dict()
    assert config.from_dict(d).members() == seed.members()  # to_dict round-trips
    d.update(N=200, repeats=2)
    d["grid"]["T"] = [2, 5]
    cfg = config.from_dict(d)
    assert reproduce.seed_config("quick", N=200, repeats=2, T=[2, 5]).members() == cfg.members()
    b = cfg.base
    assert (b.preset, b.epochs, b.batch_size, b.head, b.N) == ("keras2", 5, 16, "dense2", 200)
    with Store(tmp_path / "store.sqlite") as st:
        df = runner.run(cfg, st)
        stored = st.members()
        final_params = {m: st.params(m) for m in stored.member_id}
    paths = reproduce.EXPERIMENT.outputs(plot.final(df), tmp_path)
    assert sorted(p.name for p in paths) == [
        "accuracy_vs_T.png",
        "accuracy_vs_T.svg",
        "results.csv",
        "success_vs_T.png",
        "success_vs_T.svg",
    ]
    assert sorted(p.name for p in paths) == sorted(reproduce.EXPERIMENT.files)

    res = pd.read_csv(tmp_path / "results.csv", dtype={"member_id": str})
    assert len(res) == 2 * 2 * 2 * 2 and res.member_id.is_unique
    assert set(res.member_id) == {m.id for m in cfg.members()}
    assert {"cell", "T", "seed", "split", "preset", "val_acc", "val_loss"} <= set(res.columns)
    assert set(res.split) == {"stratified", "tail"} and set(res.preset) == {"keras2"}
    assert res.val_acc.between(0, 1).all() and (res.val_loss > 0).all()
    merged = res.merge(stored[["member_id", "val_acc"]], on="member_id", suffixes=("", "_store"))
    np.testing.assert_allclose(merged.val_acc, merged.val_acc_store, rtol=0, atol=1e-12)

    # every member's val_acc is its stored final parameters' accuracy on its own validation
    # set; the tail split's validation set holds only negatives (the seed's bug), the
    # stratified one both classes equally
    for r in res.itertuples():
        k_data, k_split, _ = sweep_data.member_keys(r.seed)
        x, y = (np.asarray(a) for a in tasks.latch(k_data, 200, int(r.T), 0.1, 1))
        _, val = tasks.split_indices(k_split, y, 0.2, r.split)
        assert len(val) == 40
        if r.split == "tail":
            assert (y[val] == 0).all()
        else:
            assert (y[val] == 1).sum() == 20
        pred = _predict(r.cell, final_params[r.member_id], x[val].astype(np.float64))
        assert np.mean(pred == y[val]) == pytest.approx(r.val_acc, abs=1e-6), r
        if r.split == "tail":  # accuracy is the fraction predicted negative
            assert np.mean(pred == 0) == pytest.approx(r.val_acc, abs=1e-6)


# ----------------------------------------------------------------------------- output paths


def test_outputs_are_all_written_or_none(tmp_path):
    """``outputs.write_all``: a failing second write leaves the first file as it was (here:
    absent, and an existing one keeps its bytes) and no temporary file behind."""
    from latchlab import outputs
    from latchlab.errors import ConfigError

    def fails(p):
        raise OSError(28, "No space left on device")

    a, b = tmp_path / "a.csv", tmp_path / "b.parquet"
    with pytest.raises(ConfigError, match=r"^parquet: cannot write .*b\.parquet: No space left on device$"):
        outputs.write_all([("csv", a, lambda p: p.write_text("new")), ("parquet", b, fails)])
    assert sorted(os.listdir(tmp_path)) == []
    a.write_text("old")
    with pytest.raises(ConfigError):
        outputs.write_all([("csv", a, lambda p: p.write_text("new")), ("parquet", b, fails)])
    assert a.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["a.csv"]
    assert outputs.write_all(
        [("csv", a, lambda p: p.write_text("new")), ("parquet", b, lambda p: p.write_text("b"))]
    ) == [a, b]
    assert (a.read_text(), b.read_text()) == ("new", "b") and sorted(os.listdir(tmp_path)) == ["a.csv", "b.parquet"]


def test_a_killed_writes_temporary_files_go_and_the_renames_hold_interrupts(tmp_path, monkeypatch):
    """A ``write_all`` killed by SIGKILL left ``.NAME.PID.partial`` files that nothing removed:
    the next write of that name removes those of processes that no longer run (not a
    running one's). SIGINT between two renames replaced one output and not the other: SIGINT
    and SIGTERM are held while the renames run (and only then), so one arriving there is
    acted on once both are done."""
    import signal as sig

    from latchlab import outputs

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    a, b = tmp_path / "a.csv", tmp_path / "b.parquet"
    stale = tmp_path / f".a.csv.{int(dead.stdout)}.partial"
    live = tmp_path / f".a.csv.{os.getppid()}.partial"
    for p in (stale, live):
        p.write_text("left by a killed export")
    real, held = os.replace, []

    def replace(src, dst):  # the signals this thread holds at each rename
        held.append({sig.SIGINT, sig.SIGTERM} <= sig.pthread_sigmask(sig.SIG_BLOCK, []))
        real(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    outputs.write_all([("csv", a, lambda p: p.write_text("a")), ("parquet", b, lambda p: p.write_text("b"))])
    assert held == [True, True] and sig.SIGINT not in sig.pthread_sigmask(sig.SIG_BLOCK, [])
    assert (a.read_text(), b.read_text()) == ("a", "b")
    assert not stale.exists() and live.exists()
    live.unlink()
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.parquet"]


def test_output_checks_see_through_links_and_relative_paths(tmp_path, monkeypatch):
    from latchlab import outputs
    from latchlab.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "s.sqlite"
    store.write_bytes(b"x")
    (tmp_path / "link.sqlite").symlink_to(store)
    (tmp_path / "d").mkdir()
    for path in ("s.sqlite", "./d/../s.sqlite", "link.sqlite", str(store)):
        with pytest.raises(ConfigError, match="^csv: .* is the input"):
            outputs.check_file(path, "csv", ["s.sqlite"])
    with pytest.raises(ConfigError, match="^csv: .* is a directory"):
        outputs.check_file("d", "csv")
    with pytest.raises(ConfigError, match="^out: .* lies under the regular file"):
        outputs.check_dir("s.sqlite/figs/x", "out")
    with pytest.raises(ConfigError, match="^out: .*results.csv is the input"):
        outputs.check_dir("d", "out", ["d/results.csv"], ("results.csv",))
    assert outputs.check_file("d/new.csv", "csv", ["s.sqlite"]) == Path("d/new.csv")
    assert outputs.check_dir("d/new/deeper", "out", ["s.sqlite"], ("a.png",)) == Path("d/new/deeper")
    assert sorted(os.listdir(tmp_path)) == ["d", "link.sqlite", "s.sqlite"] and os.listdir(tmp_path / "d") == []
    # a file an --out directory would replace in place must be writable (os.access says so
    # for a user; these tests run as root, who may write anything, so it is asked here)
    (tmp_path / "d" / "a.png").write_bytes(b"")
    real = os.access
    monkeypatch.setattr(outputs.os, "access", lambda p, mode: Path(p).name != "a.png" and real(p, mode))
    with pytest.raises(ConfigError, match="^out: .*a.png is not writable"):
        outputs.check_dir("d", "out", [], ("a.png",))
