"""Property-based fuzz of sweep files (hypothesis; derandomized, so CI sees the same examples).

Random TOML documents, every field's value drawn within and outside its range (wrong
types, out-of-range and huge integers, infinities and NaN, unknown names and fields,
grids and ``[values]`` tables, bytes that are not UTF-8 or TOML):

* ``config.load`` either returns a sweep or raises one ``ConfigError`` line that names
  a field of the document (never another exception); a loaded sweep's limits
  (``limits.check_sweep``) pass or refuse it with ``LimitError``.
* ``latchlab run`` on the same file (the CLI's entry point, in process) prints exactly that
  line after ``error: ``, exits with code 2 and creates no store.
* Sweeps of tiny sizes (10 of them, most valid; random tasks, cells, presets, initialisations, heads,
  optimisers, learning rates up to divergence, explicit values) either fail to load in
  one line or run through ``latchlab run`` into a store holding every member and every
  epoch row, each member's losses finite unless it is marked diverged.
"""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latchlab import config, limits
from latchlab.core import catalog
from latchlab.errors import ConfigError, LimitError

from clitools import cli_here  # noqa: E402

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

INTS = ("units", "T", "N", "signal_len", "batch_size", "epochs", "repeats")
FLOATS = ("noise", "lr", "val_frac")
CHOICES = {
    "task": catalog.TASKS,
    "cell": catalog.CELLS,
    "preset": tuple(catalog.PRESETS),
    "init": catalog.INITS,
    "head": ("auto",) + catalog.ALL_HEADS,
    "optimizer": catalog.OPTIMIZERS,
    "split": catalog.SPLITS,
}
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789 -", max_size=12)
EDGE_INTS = st.sampled_from([-1, 0, 1, 2, 3, 4, 21, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 10**12, 2**62])
ODD = st.one_of(
    st.booleans(), WORDS, st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=2)
)


def _mostly(valid, other):
    """``valid`` four times in five, else ``other`` (a document is valid only if all its
    fields are: most fields must be)."""
    return st.sampled_from([True] * 4 + [False]).flatmap(lambda ok: valid if ok else other)


def _int_value():
    valid = st.one_of(st.integers(1, 64), st.sampled_from([2**20, 10**9, 2**31 - 1]))  # in range, maybe too big
    return _mostly(valid, st.one_of(st.integers(-3, 0), EDGE_INTS, ODD))


def _float_value():
    odd = st.one_of(st.sampled_from([0.0, 1.0, 1e300, math.inf, -math.inf, math.nan]), st.integers(-2, 3), ODD)
    return _mostly(st.floats(0.01, 0.9), st.one_of(st.floats(-10, 10), odd))


def _choice_value(names):
    return _mostly(st.sampled_from(names), st.one_of(WORDS, ODD))


def _values_table():
    names = st.sampled_from(catalog.ALL_PARAMETER_NAMES + ("bias_q", "weights"))
    return _mostly(st.dictionaries(names, _float_value(), max_size=3), ODD)


FIELD = {
    **{k: _int_value() for k in INTS},
    **{k: _float_value() for k in FLOATS},
    **{k: _choice_value(v) for k, v in CHOICES.items()},
    "seed": _mostly(st.integers(0, 2**32 - 1), st.one_of(st.integers(-2, 2**33), EDGE_INTS, ODD)),
    "name": _mostly(WORDS, ODD),
    "values": _values_table(),
    "tsk": st.just("latch"),  # an unknown field
}
GRIDDABLE = [k for k in FIELD if k not in ("seed", "name", "repeats", "tsk")]


@st.composite
def documents(draw) -> dict:
    """A sweep file as a dict: some top-level fields and maybe a ``[grid]`` of lists."""
    keys = draw(st.lists(st.sampled_from(sorted(FIELD)), unique=True, max_size=6))
    doc = {k: draw(FIELD[k]) for k in keys}
    if draw(st.booleans()):
        gkeys = draw(st.lists(st.sampled_from(GRIDDABLE + ["seed"]), unique=True, max_size=3))
        grid = {k: draw(_mostly(st.lists(FIELD[k], min_size=1, max_size=3), FIELD[k])) for k in gkeys}
        doc["grid"] = draw(_mostly(st.just(grid), ODD))
    return doc


def toml(doc: dict) -> str:
    """``doc`` as TOML: scalars, arrays and inline tables at the top, then ``[grid]``."""
    lines = [f"{k} = {_value(v)}" for k, v in doc.items() if k != "grid" or not isinstance(v, dict)]
    if isinstance(doc.get("grid"), dict):
        lines += ["[grid]"] + [f"{k} = {_value(v)}" for k, v in doc["grid"].items()]
    return "\n".join(lines) + "\n"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else "inf" if v == math.inf else "-inf" if v == -math.inf else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(_value, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + "}"
    return str(v)


@st.composite
def files(draw) -> bytes:
    """A document's TOML, sometimes damaged: bytes inserted (maybe not UTF-8) or cut off."""
    raw = toml(draw(documents())).encode()
    how = draw(st.sampled_from(["keep"] * 8 + ["insert", "cut"]))  # kept first: what hypothesis prefers
    if how == "insert":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    elif how == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


def _named(field: str, raw: bytes) -> bool:
    """Whether an error's field is one of the file's: a known field (or a part of one:
    ``grid.T``, ``values.bias_f``), the file as a whole, a key the file holds, or memory."""
    head = field.split(".")[0]
    known = {*config.RUN_FIELDS, *config.SWEEP_FIELDS, "grid", "config", "memory"}
    return head in known or head.encode() in raw


def _load(path):
    """``(sweep, None)`` or ``(None, the one-line error)``; anything else escapes."""
    try:
        cfg = config.load(path)
    except ConfigError as e:
        return None, e
    try:
        limits.check_sweep(cfg)
    except LimitError as e:
        return cfg, e
    return cfg, None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(FUZZ, max_examples=400)
@given(raw=files())
def test_a_file_loads_or_fails_in_one_line_naming_a_field(scratch, raw):
    path = scratch / "doc.toml"
    path.write_bytes(raw)
    cfg, err = _load(path)
    if err is None:
        assert cfg is not None and all(isinstance(p, config.RunConfig) for p in cfg.points())
        return
    msg = str(err)
    assert "\n" not in msg and msg.startswith(f"{err.field}: "), msg
    assert _named(err.field, raw), msg


@settings(FUZZ, max_examples=60)
@given(raw=files())
def test_the_cli_prints_that_line_exits_2_and_creates_no_store(scratch, raw):
    path, store = scratch / "cli.toml", scratch / "cli.sqlite"
    path.write_bytes(raw)
    store.unlink(missing_ok=True)
    cfg, err = _load(path)
    if err is None:  # a valid sweep: trained by the tiny-run test below, not here
        return
    rc, out, stderr = cli_here("run", path, "--store", store)
    assert rc == 2 and "Traceback" not in out + stderr
    assert stderr == f"error: {err}\n"
    assert not store.exists()


TINY = {
    "name": st.just("fuzz"),
    "repeats": st.integers(1, 2),
    "N": _mostly(st.integers(4, 24), st.integers(2, 3)),
    "epochs": st.integers(1, 2),
    "batch_size": st.integers(1, 30),
}
TINY_OPTIONAL = {
    "seed": _mostly(st.integers(0, 1000), st.just(2**32 - 1)),
    "task": st.sampled_from(catalog.TASKS),
    "cell": st.sampled_from(catalog.CELLS),
    "units": st.integers(1, 3),
    "T": st.integers(1, 24),
    "noise": _mostly(st.floats(0, 3), st.just(math.inf)),
    "signal_len": st.integers(1, 3),
    "preset": st.sampled_from(tuple(catalog.PRESETS)),
    "init": st.sampled_from(catalog.INITS),
    "head": st.sampled_from(("auto",) + catalog.ALL_HEADS),
    "optimizer": st.sampled_from(catalog.OPTIMIZERS),
    "lr": st.floats(1e-4, 1e4),
    "val_frac": st.floats(0.05, 0.95),
    "split": st.sampled_from(catalog.SPLITS),
    "values": st.dictionaries(st.sampled_from(("recurrent", "bias", "kernel", "bias_f")), st.floats(-3, 3), max_size=1),
}


@settings(FUZZ, max_examples=10)
@given(doc=st.fixed_dictionaries(TINY, optional=TINY_OPTIONAL))
def test_tiny_sweeps_run_or_fail_in_one_line(scratch, doc):
    path, store = scratch / "tiny.toml", scratch / "tiny.sqlite"
    path.write_text(toml(doc))
    for p in scratch.glob("tiny.sqlite*"):
        p.unlink()
    cfg, err = _load(path)
    rc, out, stderr = cli_here("run", path, "--store", store)
    assert "Traceback" not in out + stderr
    if err is not None:
        assert (rc, stderr) == (2, f"error: {err}\n")
        assert not store.exists()
        return
    assert cfg is not None
    assert rc == 0, stderr
    db = sqlite3.connect(store)
    members = db.execute("SELECT member_id, epochs, diverged_epoch FROM members").fetchall()
    assert sorted(m[0] for m in members) == sorted(m.id for m in cfg.members())
    for mid, epochs, diverged in members:
        losses = [r[0] for r in db.execute("SELECT val_loss FROM epochs WHERE member_id = ?", (mid,))]
        assert len(losses) == epochs
        finite = all(v is not None and math.isfinite(v) for v in losses)
        assert finite or diverged >= 1, (mid, losses, diverged)
    db.close()
