"""Experiment configuration: one frozen dataclass per grid point, a sweep over a grid.

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

Every value is checked at load time; a bad one raises ``ConfigError`` naming the field.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from latchlab.core import cells
from latchlab.core import model
from latchlab.core import tasks
from latchlab.engine import train
from latchlab.errors import ConfigError


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines an ensemble member except its seed."""

    task: str = "latch"
    """Task generator: ``latch``, ``bit_relay``, ``two_sequence``, ``two_sequence_3b``,
    ``parity`` (classification), ``adding`` (regression) or ``copy`` (per-step categories).
    What the stored metrics mean depends on it (docs/tasks.md): for classification
    ``val_loss`` is the cross-entropy and ``val_acc`` the accuracy; for ``adding``
    ``val_loss`` is the MSE (baseline 1/6) and ``val_acc`` the fraction of sequences with
    absolute error < 0.04; for ``copy`` ``val_loss`` is the mean per-step cross-entropy
    (baseline ``10 log 8 / T``) and ``val_acc`` the per-symbol accuracy of the 10 recalled
    symbols."""
    cell: str = "srnn"
    """Recurrent cell: ``srnn``, ``lstm``, ``gru``, ``lstm_nofg`` or ``janet``."""
    units: int = 1
    """Hidden units H >= 1."""
    T: int = 10
    """Sequence length >= 1 (``adding``: >= 2; ``copy``: the total length, >= 21, i.e.
    Arjovsky et al.'s delay plus 20)."""
    N: int = 10000
    """Sequences per member (training + validation), >= 4."""
    noise: float = 0.1
    """Standard deviation of the Gaussian noise on every step, >= 0 (``parity``: the
    half-width of uniform noise; ignored by ``adding`` and ``copy``)."""
    signal_len: int = 1
    """Steps that carry the class signal, >= 1 (ignored by ``parity``, ``adding``, ``copy``)."""
    preset: str = "keras3"
    """``keras2`` (hard_sigmoid gates, GRU reset_after=False: the seed's 2018 Keras) or
    ``keras3`` (sigmoid gates, reset_after=True)."""
    init: str = "keras"
    """Initialisation scheme: ``keras``, ``torch`` or ``chrono``."""
    values: tuple = ()
    """Explicit initial values as sorted ``(name, value)`` pairs, e.g. ``recurrent``, ``bias_f``."""
    head: str = "auto"
    """``auto`` (the task's default: ``dense2`` for classification, ``linear`` for adding,
    ``seq_softmax`` for copy), ``dense2`` (Dense(2) + softmax cross-entropy, the seed's) or
    ``dense1`` (sigmoid BCE) for classification tasks; ``linear`` (Dense(1) + squared
    error) for adding; ``seq_softmax`` (Dense(10) on every step + cross-entropy) for copy.
    ``to_dict`` (so member ids and stored rows) gives the resolved head."""
    optimizer: str = "adam"
    """``adam`` (Keras defaults), ``sgd`` or ``rmsprop``."""
    lr: float = 1e-3
    """Learning rate > 0."""
    batch_size: int = 16
    """Minibatch size >= 1."""
    epochs: int = 5
    """Training epochs >= 1."""
    val_frac: float = 0.2
    """Fraction of the sequences held out for validation, in (0, 1)."""
    split: str = "stratified"
    """``stratified`` (shuffled, class-balanced) or ``tail`` (Keras validation_split on
    class-ordered data: the seed's bug, reproduced on purpose)."""

    def __post_init__(self):
        _check_run(self)

    @property
    def cell_spec(self) -> cells.Cell:
        return cells.Cell.from_preset(self.cell, self.units, self.preset)

    @property
    def head_name(self) -> str:
        """The head, ``auto`` resolved to the task's default."""
        return model.HEADS_FOR[tasks.TARGETS[self.task]][0] if self.head == "auto" else self.head

    @property
    def model(self) -> model.Model:
        n_in = tasks.N_IN[self.task]
        return model.Model(self.cell_spec, self.head_name, n_in,
                           tasks.COPY_CATEGORIES if self.task == "copy" else None)

    def to_dict(self, resolve: bool = True) -> dict:
        """The fields as a dict (``values`` a dict); ``head`` resolved unless ``resolve``
        is False (a sweep keeps ``auto`` so that a grid over tasks picks each one's head)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # asdict's deep copies cost ~1 ms
        d["values"] = dict(self.values)
        if resolve:
            d["head"] = self.head_name
        return d


RUN_FIELDS = tuple(f.name for f in fields(RunConfig))
_INT = {"units", "T", "N", "signal_len", "batch_size", "epochs"}
_FLOAT = {"noise", "lr", "val_frac"}
_CHOICES = {"task": tasks.TASKS, "cell": cells.CELLS, "preset": tuple(cells.PRESETS),
            "init": cells.INITS, "head": ("auto",) + model.ALL_HEADS, "optimizer": train.OPTIMIZERS,
            "split": tasks.SPLITS}


def _check_run(c: RunConfig) -> None:
    for name in _INT:
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(name, f"must be an integer, got {v!r}")
    for name in _FLOAT:
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(name, f"must be a number, got {v!r}")
    for name, allowed in _CHOICES.items():
        v = getattr(c, name)
        if v not in allowed:
            raise ConfigError(name, f"unknown {name} {v!r}", allowed)
    tasks.check(c.task, c.T, c.noise, c.signal_len, c.N)
    fit = model.HEADS_FOR[tasks.TARGETS[c.task]]
    if c.head != "auto" and c.head not in fit:
        raise ConfigError("head", f"{c.head} does not fit task {c.task} ({tasks.TARGETS[c.task]} targets)",
                          ("auto",) + fit)
    if c.units < 1:
        raise ConfigError("units", f"must be >= 1, got {c.units}")
    if not c.lr > 0:
        raise ConfigError("lr", f"learning rate must be > 0, got {c.lr}")
    if c.batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {c.batch_size}")
    if c.epochs < 1:
        raise ConfigError("epochs", f"must be >= 1, got {c.epochs}")
    if not 0.0 < c.val_frac < 1.0:
        raise ConfigError("val_frac", f"must be in (0, 1), got {c.val_frac}")
    if c.init == "chrono" and c.cell not in ("lstm", "gru", "janet"):
        raise ConfigError("init", f"chrono needs a gated cell, not {c.cell!r}", ("lstm", "gru", "janet"))
    for name, v in c.values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"values.{name}", f"must be a number, got {v!r}")
        base, _, gate = name.partition("_")
        if base not in ("kernel", "recurrent", "bias") or (gate and gate not in cells.GATES[c.cell]):
            allowed = [b for b in ("kernel", "recurrent", "bias")]
            allowed += [f"{b}_{g}" for b in allowed for g in cells.GATES[c.cell]]
            raise ConfigError(f"values.{name}", f"unknown parameter for {c.cell}", allowed)
    n_val = c.N - int(c.N * (1 - c.val_frac))
    if n_val < 1 or c.N - n_val < 1:
        raise ConfigError("val_frac", f"leaves an empty training or validation set with N={c.N}")


@dataclass(frozen=True)
class Member:
    """One ensemble member: a grid point and a seed."""

    run: RunConfig
    seed: int

    @functools.cached_property
    def id(self) -> str:
        """A stable id: the hash of the resolved configuration and seed."""
        text = json.dumps({**self.run.to_dict(), "seed": self.seed}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepConfig:
    """A grid of ``RunConfig`` points, each trained ``repeats`` times."""

    name: str = "sweep"
    """A label stored with the results."""
    repeats: int = 1
    """Members per grid point, >= 1."""
    seed: int = 0
    """Seed of the first repeat; repeat r has seed ``seed + r`` (paired across the grid)."""
    base: RunConfig = field(default_factory=RunConfig)
    """The fixed fields."""
    grid: tuple = ()
    """Swept fields as ``(name, (value, ...))`` pairs."""

    def points(self) -> list[RunConfig]:
        names = [n for n, _ in self.grid]
        out = []
        for combo in itertools.product(*(vs for _, vs in self.grid)):
            out.append(_run(self.base.to_dict(resolve=False) | dict(zip(names, combo))))
        return out

    def members(self) -> list[Member]:
        return [Member(p, self.seed + r) for p in self.points() for r in range(self.repeats)]

    def to_dict(self) -> dict:
        grid = {n: [dict(v) if n == "values" else v for v in vs] for n, vs in self.grid}
        return {"name": self.name, "repeats": self.repeats, "seed": self.seed,
                **self.base.to_dict(resolve=False), "grid": grid}


def _run(d: Mapping[str, Any]) -> RunConfig:
    d = dict(d)
    values = d.get("values") or {}
    if isinstance(values, tuple):
        values = dict(values)
    if not isinstance(values, Mapping):
        raise ConfigError("values", f"must be a table of parameter = number, got {values!r}")
    d["values"] = tuple(sorted(values.items()))
    return RunConfig(**d)


def from_dict(d: Mapping[str, Any]) -> SweepConfig:
    """Build and validate a sweep from a TOML-shaped dict."""
    d = dict(d)
    grid = d.pop("grid", {}) or {}
    if not isinstance(grid, Mapping):
        raise ConfigError("grid", "must be a table of field = [values]")
    sweep = {k: d.pop(k) for k in ("name", "repeats", "seed") if k in d}
    allowed = ("name", "repeats", "seed", "grid", *RUN_FIELDS)
    for k in list(d) + list(grid):
        if k not in RUN_FIELDS:
            raise ConfigError(k, "unknown field", allowed)
    if not isinstance(sweep.get("name", ""), str):
        raise ConfigError("name", "must be a string")
    for k in ("repeats", "seed"):
        v = sweep.get(k, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if k == "repeats" else 0):
            raise ConfigError(k, f"must be an integer >= {1 if k == 'repeats' else 0}, got {v!r}")
    items = []
    for k, vs in grid.items():
        if not isinstance(vs, list) or not vs:
            raise ConfigError(f"grid.{k}", f"must be a non-empty list, got {vs!r}")
        if k == "values":
            vs = [tuple(sorted(v.items())) if isinstance(v, Mapping) else v for v in vs]
        items.append((k, tuple(vs)))
    base = _run(d)
    cfg = SweepConfig(base=base, grid=tuple(items), **sweep)
    cfg.points()  # validates every grid point
    return cfg


def read_toml(path: str | Path) -> dict:
    """A TOML file's table, or ``ConfigError("config", ...)`` if it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError("config", f"cannot read {path}: {e.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"{path} is not valid TOML: {e}") from None


def load(path: str | Path) -> SweepConfig:
    """Load and validate a sweep TOML file."""
    return from_dict(read_toml(path))
