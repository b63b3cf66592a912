"""Experiment configuration: one frozen, validated record per grid point, a sweep over a grid.

A sweep file is TOML. Top-level keys set ``RunConfig`` fields (and the sweep's ``name``,
``repeats``, ``seed``); a ``[grid]`` table gives lists whose Cartesian product is swept;
a ``[values]`` table sets explicit initial parameter values::

    name = "seed"
    repeats = 30
    epochs = 5
    [grid]
    cell = ["srnn", "lstm"]
    T = [2, 5, 10, 20]
    [values]
    recurrent = 1.25

Every value is checked at load time (``latchlab.validate``: one declaration per field,
whose JSON Schema ``latchlab schema`` writes; docs/config.md lists them); a bad one raises
``ConfigError`` naming the field. Top-level settings are checked field by field, and the
checks that relate fields (a task's shortest ``T``, a head that fits the task, chrono's
gated cells and sigmoid gates) run on every grid point, so a grid may complete what the top level leaves
open. Importing this module does not import JAX.
"""

import functools
import hashlib
import itertools
import json
import math
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Mapping

from pydantic import ConfigDict, Field, create_model, model_validator
from pydantic_core import core_schema

from latchlab.core import catalog
from latchlab.errors import ConfigError
from latchlab.validate import (
    F32_MAX,
    Frozen,
    IntRange,
    List,
    Number,
    NumberRange,
    OneOf,
    Seed,
    Str,
    _Checked,
    _err,
    check_seed_range,
    checked,
)

if TYPE_CHECKING:
    from latchlab.core.cells import Cell
    from latchlab.core.model import Model

TaskName = Annotated[str, OneOf(catalog.TASKS)]
CellName = Annotated[str, OneOf(catalog.CELLS)]
PresetName = Annotated[str, OneOf(catalog.PRESETS)]
InitName = Annotated[str, OneOf(catalog.INITS)]
HeadName = Annotated[str, OneOf(("auto",) + catalog.ALL_HEADS)]
OptimizerName = Annotated[str, OneOf(catalog.OPTIMIZERS)]
SplitName = Annotated[str, OneOf(catalog.SPLITS)]


def _values(v):
    """``values``: a table (or pairs) of parameter name -> finite number, as sorted pairs."""
    if isinstance(v, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in v):
        v = dict(v)
    if not isinstance(v, Mapping):
        raise ConfigError("values", f"must be a table of parameter = number, got {v!r}")
    for name, x in v.items():
        if name not in catalog.ALL_PARAMETER_NAMES:
            raise ConfigError(f"values.{name}", "unknown parameter", catalog.ALL_PARAMETER_NAMES)
        checked(Number(), x, f"values.{name}")
    return tuple(sorted(v.items()))


_NOISE_NUMBER = NumberRange(ge=0)


def _noise(v):
    """``noise``: ``auto`` (the task's default, resolved by ``RunConfig``) or a number >= 0."""
    if isinstance(v, str) and v != "auto":
        raise _err("number", f"must be auto or a number >= 0, got {v!r}")
    return v if v == "auto" else _NOISE_NUMBER.check(v)


Noise = Annotated[
    Any,
    _Checked(
        _noise,
        core_schema.union_schema([core_schema.literal_schema(["auto"]), _NOISE_NUMBER.schema]),
        f"auto, or a {_NOISE_NUMBER.text}",
    ),
]

Values = Annotated[
    tuple,
    _Checked(
        _values,
        core_schema.dict_schema(
            core_schema.literal_schema(list(catalog.ALL_PARAMETER_NAMES)),
            core_schema.float_schema(ge=-F32_MAX, le=F32_MAX),
        ),
        "table of parameter name = finite number",
    ),
]


class RunFields(Frozen):
    """The fields of a ``RunConfig``, each checked on its own (a sweep's top-level settings,
    which the grid completes)."""

    task: TaskName = "latch"
    """Task generator: ``latch``, ``bit_relay``, ``two_sequence``, ``two_sequence_3b``,
    ``parity`` (classification), ``adding`` (regression) or ``copy`` (per-step categories).
    What the stored metrics mean depends on it (docs/tasks.md): for classification
    ``val_loss`` is the cross-entropy and ``val_acc`` the accuracy; for ``adding``
    ``val_loss`` is the MSE (baseline 1/6) and ``val_acc`` the fraction of sequences with
    absolute error < 0.04; for ``copy`` ``val_loss`` is the mean per-step cross-entropy
    (baseline ``10 log 8 / T``) and ``val_acc`` the per-symbol accuracy of the 10 recalled
    symbols."""
    cell: CellName = "srnn"
    """Recurrent cell: ``srnn``, ``lstm``, ``gru``, ``lstm_nofg`` or ``janet``."""
    units: Annotated[int, IntRange(ge=1)] = 1
    """Hidden units H >= 1."""
    T: Annotated[int, IntRange(ge=1)] = 10
    """Sequence length >= 1 (``adding``: >= 2; ``copy``: the total length, >= 21, i.e.
    Arjovsky et al.'s delay plus 20)."""
    N: Annotated[int, IntRange(ge=4)] = 10000
    """Sequences per member (training + validation), >= 4."""
    noise: Noise = "auto"
    """Standard deviation of the Gaussian noise on every step, >= 0 (``parity``: the
    half-width of uniform noise; ignored by ``adding`` and ``copy``), or ``auto``: the
    task's own (``latch`` and ``bit_relay`` 0.1, ``two_sequence`` and ``two_sequence_3b``
    sqrt(0.2), H&S's variance 0.2, ``parity`` 0). ``to_dict`` (so member ids and stored
    rows) gives the resolved number."""
    signal_len: Annotated[int, IntRange(ge=1)] = 1
    """Steps that carry the class signal, >= 1 (ignored by ``parity``, ``adding``, ``copy``)."""
    preset: PresetName = "keras3"
    """``keras2`` (hard_sigmoid gates, GRU reset_after=False: the seed's 2018 Keras) or
    ``keras3`` (sigmoid gates, reset_after=True)."""
    init: InitName = "keras"
    """Initialisation scheme: ``keras``, ``torch`` or ``chrono`` (a gated cell, ``lstm``,
    ``gru`` or ``janet``, with sigmoid gates: preset ``keras3``)."""
    values: Values = ()
    """Explicit initial values as sorted ``(name, value)`` pairs (a table in TOML), e.g.
    ``recurrent``, ``bias_f``: a whole parameter or one gate's block. In a sweep, a value
    applies to the members whose cell has that parameter."""
    head: HeadName = "auto"
    """``auto`` (the task's default: ``dense2`` for classification, ``linear`` for adding,
    ``seq_softmax`` for copy), ``dense2`` (Dense(2) + softmax cross-entropy, the seed's) or
    ``dense1`` (sigmoid BCE) for classification tasks; ``linear`` (Dense(1) + squared
    error) for adding; ``seq_softmax`` (Dense(10) on every step + cross-entropy) for copy.
    ``to_dict`` (so member ids and stored rows) gives the resolved head."""
    optimizer: OptimizerName = "adam"
    """``adam`` (Keras' Adam and defaults: eps added to sqrt(v) before the bias
    correction), ``sgd`` or ``rmsprop``."""
    lr: Annotated[float, NumberRange(gt=0)] = 1e-3
    """Learning rate > 0."""
    batch_size: Annotated[int, IntRange(ge=1)] = 16
    """Minibatch size >= 1."""
    epochs: Annotated[int, IntRange(ge=1)] = 5
    """Training epochs >= 1."""
    val_frac: Annotated[float, NumberRange(gt=0, lt=1)] = 0.2
    """Fraction of the sequences held out for validation, in (0, 1)."""
    split: SplitName = "stratified"
    """``stratified`` (shuffled, class-balanced) or ``tail`` (Keras validation_split on
    class-ordered data: the seed's bug, reproduced on purpose)."""

    def to_dict(self, resolve: bool = False) -> dict:
        """The fields as a dict (``values`` a dict)."""
        d = self._fields()
        d["values"] = dict(self.values)
        return d


RUN_FIELDS = tuple(RunFields.model_fields)


class RunConfig(RunFields):
    """Everything that defines an ensemble member except its seed: the fields of
    ``RunFields``, and the checks that relate them."""

    @model_validator(mode="before")
    @classmethod
    def _resolve_noise(cls, data):
        """``noise = "auto"`` (or left out) becomes the task's default (``catalog.NOISE``)."""
        if isinstance(data, dict) and data.get("noise", "auto") == "auto":
            data = {**data, "noise": catalog.NOISE.get(data.get("task", "latch"), 0.0)}  # an unknown task fails on task
        return data

    @model_validator(mode="after")
    def _check_run(self):
        _check_run(self)
        return self

    @property
    def cell_spec(self) -> "Cell":
        from latchlab.core import cells

        return cells.Cell.from_preset(self.cell, self.units, self.preset)

    @property
    def head_name(self) -> str:
        """The head, ``auto`` resolved to the task's default."""
        return catalog.HEADS_FOR[catalog.TARGETS[self.task]][0] if self.head == "auto" else self.head

    @property
    def model(self) -> "Model":
        from latchlab.core import model

        return model.Model(
            self.cell_spec,
            self.head_name,
            catalog.N_IN[self.task],
            catalog.COPY_CATEGORIES if self.task == "copy" else None,
        )

    def to_dict(self, resolve: bool = True) -> dict:
        """The fields as a dict (``values`` a dict); ``head`` resolved unless ``resolve``
        is False (a sweep keeps ``auto`` so that a grid over tasks picks each one's head)."""
        d = self._fields()
        d["values"] = dict(self.values)
        if resolve:
            d["head"] = self.head_name
        return d


def _check_run(c: RunConfig) -> None:
    catalog.check(c.task, c.T, c.noise, c.signal_len, c.N)
    fit = catalog.HEADS_FOR[catalog.TARGETS[c.task]]
    if c.head != "auto" and c.head not in fit:
        raise ConfigError(
            "head", f"{c.head} does not fit task {c.task} ({catalog.TARGETS[c.task]} targets)", ("auto",) + fit
        )
    if c.init == "chrono" and c.cell not in catalog.CHRONO_CELLS:
        raise ConfigError("init", f"chrono needs a gated cell, not {c.cell!r}", catalog.CHRONO_CELLS)
    if c.init == "chrono" and catalog.PRESETS[c.preset][0] != "sigmoid":
        # chrono's biases are defined through the sigmoid: under a hard sigmoid (linear on
        # |z| < 2.5 only) its input bias -b_f < -2.5 starts the input gate saturated at 0
        raise ConfigError(
            "init",
            f"chrono needs sigmoid gates, not the {catalog.PRESETS[c.preset][0]} of preset {c.preset!r} "
            "(its input gate would start saturated at 0, with no gradient)",
            tuple(p for p, (act, _) in catalog.PRESETS.items() if act == "sigmoid"),
        )
    allowed = catalog.parameter_names(c.cell)
    for name, _ in c.values:
        if name not in allowed:
            raise ConfigError(f"values.{name}", f"unknown parameter for {c.cell}", allowed)
    n_val = c.N - int(c.N * (1 - c.val_frac))
    if n_val < 1 or c.N - n_val < 1:
        raise ConfigError("val_frac", f"leaves an empty training or validation set with N={c.N}")


MAX_GRID_POINTS = 100_000
"""The most points a sweep's grid may have (each is checked at load: 100000 points take
about 1.6 s, and as long again for ``latchlab.limits`` to estimate them)."""


@dataclass(frozen=True)
class Member:
    """One ensemble member: a grid point and a seed."""

    run: RunConfig
    seed: int

    def __post_init__(self):
        if not isinstance(self.run, RunConfig):
            raise ConfigError("run", f"must be a RunConfig, got {type(self.run).__name__}")
        checked(Seed, self.seed, "seed")

    @functools.cached_property
    def id(self) -> str:
        """A stable id: the hash of the resolved configuration and seed."""
        text = json.dumps({**self.run.to_dict(), "seed": self.seed}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


class SweepConfig(Frozen):
    """A grid of ``RunConfig`` points, each trained ``repeats`` times."""

    name: Str = "sweep"
    """A label stored with the results."""
    repeats: Annotated[int, IntRange(ge=1)] = 1
    """Members per grid point, >= 1."""
    seed: Seed = 0
    """Seed of the first repeat; repeat r has seed ``seed + r`` (paired across the grid);
    ``seed + repeats - 1`` must stay in the PRNG's range ``[0, 2^32 - 1]``."""
    base: RunFields = RunFields()
    """The fixed fields (the file's top level)."""
    grid: tuple = ()
    """Swept fields as ``(name, (value, ...))`` pairs."""

    @model_validator(mode="after")
    def _check_sweep(self):
        check_seed_range(self.seed, self.repeats)
        for item in self.grid:
            if not (
                isinstance(item, tuple)
                and len(item) == 2
                and item[0] in RUN_FIELDS
                and isinstance(item[1], tuple)
                and item[1]
            ):
                raise ConfigError("grid", f"must hold (field, (value, ...)) pairs, got {item!r}")
        n = math.prod(len(vs) for _, vs in self.grid)
        if n > MAX_GRID_POINTS:  # each point is checked below: refuse before spending minutes on it
            raise ConfigError(
                "grid", f"has {n} points (the product of its lists' lengths), more than {MAX_GRID_POINTS}"
            )
        self.points()  # every grid point is a valid RunConfig
        return self

    def points(self) -> list[RunConfig]:
        """The grid points. A ``values`` entry applies to the points whose cell has that
        parameter; one that applies to no point is an error."""
        names = [n for n, _ in self.grid]
        base = self.base.to_dict()
        out, given, used, cells = [], {}, set(), []
        for combo in itertools.product(*(vs for _, vs in self.grid)):
            d = base | dict(zip(names, combo))
            values = dict(_values(d["values"]))
            if d["cell"] in catalog.GATES:
                cells.append(d["cell"])
                have = catalog.parameter_names(d["cell"])
                given.update(values)
                used.update(k for k in values if k in have)
                values = {k: v for k, v in values.items() if k in have}
            d["values"] = values
            out.append(RunConfig(**d))
        for name in [n for n in given if n not in used]:
            cells = tuple(dict.fromkeys(cells))
            allowed = tuple(dict.fromkeys(n for c in cells for n in catalog.parameter_names(c)))
            raise ConfigError(f"values.{name}", f"unknown parameter for {', '.join(cells)}", allowed)
        return out

    def members(self) -> list[Member]:
        return [Member(p, self.seed + r) for p in self.points() for r in range(self.repeats)]

    def to_dict(self) -> dict:
        grid = {n: [dict(v) if n == "values" else v for v in vs] for n, vs in self.grid}
        base = {k: v for k, v in self.base.to_dict().items() if k not in grid}  # each field in one place
        return {"name": self.name, "repeats": self.repeats, "seed": self.seed, **base, "grid": grid}


def _run(d: Mapping[str, Any]) -> RunConfig:
    """A ``RunConfig`` from a dict of its fields (``values`` a table)."""
    return RunConfig(**d)


SWEEP_FIELDS = ("name", "repeats", "seed")


def from_dict(d: Mapping[str, Any]) -> SweepConfig:
    """Build and validate a sweep from a TOML-shaped dict."""
    if not isinstance(d, Mapping):
        raise ConfigError("config", f"must be a table of fields, got {type(d).__name__}")
    d = dict(d)
    grid = d.pop("grid", {})
    if not isinstance(grid, Mapping):
        raise ConfigError("grid", f"must be a table of field = [values], got {grid!r}")
    sweep = {k: d.pop(k) for k in SWEEP_FIELDS if k in d}
    allowed = (*SWEEP_FIELDS, "grid", *RUN_FIELDS)
    for k in grid:
        if k in SWEEP_FIELDS:
            raise ConfigError(
                f"grid.{k}", "is the sweep's own field, not one to sweep: set it at the top level", RUN_FIELDS
            )
    for k in list(d) + list(grid):
        if k not in RUN_FIELDS:
            raise ConfigError(k, "unknown field", allowed)
    items = []
    for k, vs in grid.items():
        if not isinstance(vs, list) or not vs:
            raise ConfigError(f"grid.{k}", f"must be a non-empty list, got {vs!r}")
        vals = tuple(getattr(RunFields(**{k: v}), k) for v in vs)  # each value checked as the field
        for i, v in enumerate(vals):  # a member's id hashes its numbers as written: 1 and 1.0 would be two
            w = next((w for w in vals[:i] if w == v and repr(w) != repr(v)), None)
            if w is not None:
                a, b = (dict(x) if k == "values" else x for x in (w, v))
                raise ConfigError(f"grid.{k}", f"lists {a!r} and {b!r}, the same number written twice; give it once")
        items.append((k, vals))
    return SweepConfig(base=RunFields(**d), grid=tuple(items), **sweep)


TOML_MAX_BYTES = 16 << 20
"""The largest TOML file read (a sweep file is a few hundred bytes; a device never ends)."""


def read_toml(path: str | Path, field: str = "config") -> dict:
    """A TOML file as a dict (a UTF-8 byte order mark, which some editors write, is
    skipped); an unreadable, non-UTF-8, malformed or oversized file, or a device, is a
    ``ConfigError`` naming ``field``. A FIFO (a shell's pipe, ``/dev/stdin``) is read as any
    tool reads one: to its writer's end."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISDIR(mode)):
            raise ConfigError(field, f"{path} is not a regular file")
        with open(path, "rb") as f:
            raw = f.read(TOML_MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(field, f"cannot read {path}: {e.strerror}") from None
    if len(raw) > TOML_MAX_BYTES:
        raise ConfigError(field, f"{path} is larger than {TOML_MAX_BYTES >> 20} MB: not a latchlab TOML file")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise ConfigError(field, f"{path} is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(field, f"{path} is not valid TOML: {e}") from None


def load(path: str | Path) -> SweepConfig:
    """Load and validate a sweep TOML file. A field both at the top level and in ``[grid]``
    is refused here (in a file it is a slip: the grid's list would replace the top-level
    value without a word); ``from_dict`` lets a program's defaults be completed by a grid."""
    d = read_toml(path)
    grid = d.get("grid")
    for k in grid if isinstance(grid, dict) else ():
        if k in d:
            raise ConfigError(
                f"grid.{k}",
                f"is also set at the top level ({k} = {d[k]!r}); set it in one place (a list of one value sweeps nothing)",
            )
    return from_dict(d)


# ----------------------------------------------------------------------------- the file's schema


def _sweep_file_model():
    """The sweep file's shape as a pydantic model (for its JSON Schema): the sweep's own
    fields, every ``RunConfig`` field at the top level, ``[grid]`` lists of them."""

    def field(info):
        default = info.get_default(call_default_factory=True)
        return info.rebuild_annotation(), Field(
            {} if info.annotation is tuple else default, description=info.description
        )

    # field definitions as create_model takes them by keyword: name -> (type, FieldInfo)
    sweep: dict[str, Any] = {k: field(SweepConfig.model_fields[k]) for k in SWEEP_FIELDS}
    run: dict[str, Any] = {k: field(info) for k, info in RunFields.model_fields.items()}
    grid: dict[str, Any] = {
        k: (List(info.rebuild_annotation()), Field(None, description=f"Values of ``{k}`` to sweep."))
        for k, info in RunFields.model_fields.items()
    }
    cfg = ConfigDict(extra="forbid")
    Grid = create_model("Grid", __config__=cfg, **grid)
    Grid.__doc__ = "Fields to sweep: the grid is the Cartesian product of these lists."
    model = create_model(
        "SweepFile", __config__=cfg, **sweep, **run, grid=(Grid, Field(None, description=Grid.__doc__))
    )
    model.__doc__ = "A latchlab sweep file (TOML): top-level settings, a [grid] to sweep, [values]."
    return model


def json_schema() -> dict:
    """The JSON Schema of a sweep TOML file (``latchlab schema`` writes it)."""
    schema = _sweep_file_model().model_json_schema()
    grid = schema.pop("$defs")["Grid"]
    schema["properties"]["grid"] = grid  # inlined: no references for an editor to resolve
    for d in (grid["properties"], schema["properties"]):
        for prop in d.values():
            if prop.get("default", 0) is None:  # optional tables and lists (TOML has no null)
                del prop["default"]
    # draft 7 keywords only (exclusiveMinimum as a number, propertyNames): what editors' TOML
    # language servers check
    return {"$schema": "http://json-schema.org/draft-07/schema#", **schema, "title": "latchlab sweep"}
