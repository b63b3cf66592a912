"""What a command gives back (files and a ``Table``); output paths, checked before anything
is written; files written all or none.

Every command checks all of its outputs before it writes any: an output may not equal or lie
inside one of the command's inputs (a store exported onto itself would be destroyed), may
not be an existing results store (nor any SQLite database: an export never replaces one),
may not lie under a regular file, a file's directory must exist, and the directory must
take a file (tried, as permissions alone do not tell: root may not write in ``/proc``).
``write_all`` then writes a set of files so that either every one of them is replaced or
none is.
"""

from __future__ import annotations

import glob
import os
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

from latchlab.errors import ConfigError

FIGURE_FORMATS = ("png", "svg")
"""The formats every figure is saved in (``analysis.plot.save``)."""


def figure_files(*stems: str, formats: Sequence[str] = FIGURE_FORMATS) -> tuple[str, ...]:
    """The file names of figures saved with ``analysis.plot.save`` (one per stem and format)."""
    return tuple(f"{s}.{f}" for s in stems for f in formats)


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _within(path: Path, other: Path) -> bool:
    """``path`` is ``other`` or lies inside it (links resolved)."""
    if _same(path, other):
        return True
    return other.resolve() in path.resolve().parents


def _not_an_input(path: Path, field: str, inputs: Iterable[str | Path]) -> None:
    for i in inputs:
        i = Path(i)
        if _within(path, i):
            where = "is" if _same(path, i) else "lies inside"
            raise ConfigError(field, f"{path} {where} the input {i}; choose an output path apart from the inputs")


def _existing_ancestor(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


SQLITE_HEADER = b"SQLite format 3\x00"


def is_database(path: str | Path) -> bool:
    """Whether ``path`` is a regular file that starts as every SQLite database does (a
    latchlab store is one)."""
    if not Path(path).is_file():  # before opening: a FIFO would block
        return False
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


JOURNALS = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database: a ``-wal`` may hold committed transactions."""


def journal_name(path: Path) -> tuple[str, str] | None:
    """``(suffix, database's name)`` if ``path``'s name is one SQLite gives a journal of the
    database beside it (existing or not: opening that database takes such a file for its
    journal), else None."""
    for j in JOURNALS:
        if path.name.endswith(j):
            return j, path.name[: -len(j)]
    return None


def _not_a_store(path: Path, field: str) -> None:
    real = path.resolve()  # resolved: "missing/../store.sqlite" is the store
    if is_database(real):
        raise ConfigError(
            field,
            f"{path} is an SQLite database, such as a results store; latchlab never overwrites one: choose another path",
        )
    journal = journal_name(real)
    if journal and journal[1] and is_database(real.with_name(journal[1])):
        raise ConfigError(
            field,
            f"{path} is the journal name of the SQLite database beside it, part of that store: choose another path",
        )


def _replaceable(path: Path, field: str) -> None:
    """An existing file at an output's path must be a regular file this process may replace."""
    if path.is_dir():
        raise ConfigError(field, f"{path} is a directory; give a file name")
    if path.exists() and not path.is_file():  # a device or a FIFO: the file is replaced, not written into
        raise ConfigError(field, f"{path} is not a regular file; give a file name")


def _takes_files(path: Path, field: str) -> None:
    """Make ``path`` (with its parents) and a file in it, then remove what was made: a
    directory that cannot be made or written is a ``ConfigError`` before any work."""
    missing, p = [], Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".latchlab-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(field, f"cannot write in {path}: {e.strerror or e}") from None
    finally:
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:
                pass


def check_dir(
    path: str | Path, field: str = "out", inputs: Iterable[str | Path] = (), files: Sequence[str] = ()
) -> Path:
    """An output directory, created later with its parents.

    Raises ``ConfigError(field, ...)`` if it is or lies inside an input, if it or the nearest
    existing directory on its path is a regular file, if it cannot be made or written, or if
    one of ``files`` (names inside it) is an input or an existing store.
    """
    path, inputs = Path(path), [Path(i) for i in inputs]
    _not_an_input(path, field, inputs)
    a = _existing_ancestor(path)
    if not a.is_dir():
        where = "is" if a == Path(os.path.abspath(path)) else "lies under"
        raise ConfigError(field, f"{path} {where} the regular file {a}; give a directory")
    for name in files:
        _not_an_input(path / name, field, inputs)
        _not_a_store(path / name, field)
        _replaceable(path / name, field)
        if (path / name).exists() and not os.access(path / name, os.W_OK):  # written in place
            raise ConfigError(field, f"{path / name} is not writable (permission denied); it would be replaced")
    _takes_files(path, field)
    return path


def check_store(path: str | Path, field: str = "store") -> Path:
    """A store to make or extend: not a directory or a device; one to make, in a directory
    that can be made and written. (An existing store in a read-only place is read; the
    store says so in one line if it must be written.)"""
    path = Path(path)
    _replaceable(path, field)
    a = _existing_ancestor(path.parent)
    if not a.is_dir():
        raise ConfigError(field, f"cannot use {path}: {a} is a regular file, not a directory")
    if not path.exists():
        _takes_files(path.parent, field)
    return path


def check_file(path: str | Path, field: str, inputs: Iterable[str | Path] = (), store: bool = False) -> Path:
    """An output file: not an input, not inside one, not a directory, in an existing directory
    that takes files; an existing store only if ``store`` (the file is a store to extend). A
    store's missing directories are made when it is (``store.new_or_nothing`` removes them
    again if nothing was stored), as long as they can be: ``run --store new/dir/s.sqlite``."""
    path = Path(path)
    _not_an_input(path, field, inputs)
    _replaceable(path, field)
    parent = Path(os.path.abspath(path)).parent
    if not parent.is_dir():
        a = _existing_ancestor(parent)
        if not a.is_dir():
            raise ConfigError(field, f"cannot write {path}: lies under the regular file {a}")
        if not store:
            raise ConfigError(field, f"cannot write {path}: directory {parent} does not exist")
    if not store:
        _not_a_store(path, field)
    _takes_files(parent, field)
    return path


def check_files(outputs: dict[str, str | Path | None], inputs: Iterable[str | Path] = ()) -> dict[str, Path]:
    """``check_file`` for every given output (``{field: path or None}``), and no two the same."""
    inputs = list(inputs)
    given = {f: check_file(p, f, inputs) for f, p in outputs.items() if p is not None}
    fields = list(given)
    for i, a in enumerate(fields):
        for b in fields[i + 1 :]:
            if _same(given[a], given[b]):
                raise ConfigError(b, f"{given[b]} is also the --{a} output; give each output its own file")
    return given


def write_all(writes: Sequence[tuple[str, Path, Callable[[Path], object]]]) -> list[Path]:
    """Write every file or none.

    Each ``(field, path, write)`` writes to a temporary file beside ``path``; only when all
    have been written are they renamed into place. A write that fails with ``OSError`` is a
    ``ConfigError(field, ...)``; the temporary files are removed whatever happens.
    """
    tmps: list[Path] = []
    try:
        for field, path, write in writes:
            _remove_dead_partials(path)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
            tmps.append(tmp)
            try:
                write(tmp)
            except OSError as e:
                raise ConfigError(field, f"cannot write {path}: {e.strerror or e}") from None
        # the renames with SIGINT and SIGTERM held until all are done: an interrupt between
        # two of them replaced one file and not the other
        signals = {signal.SIGINT, signal.SIGTERM}
        held = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            for (_, path, _), tmp in zip(writes, tmps):
                os.replace(tmp, path)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return [path for _, path, _ in writes]


def _remove_dead_partials(path: Path) -> None:
    """Remove the temporary files beside ``path`` left by a ``write_all`` that was killed
    (``.NAME.PID.partial`` of a process that no longer runs)."""
    from latchlab.store import process_alive  # the store's check of its claims' processes

    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        pid = tmp.name[len(path.name) + 2 : -len(".partial")]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


class Table(NamedTuple):
    """What a command prints: a title, a frame of formatted cells (one column per table
    column), an optional line under it, and whether cells may wrap."""

    title: str
    frame: Any
    note: str = ""
    no_wrap: bool = False
