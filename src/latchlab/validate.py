"""One validation path for every configuration class: field types declared once (pydantic).

A configuration is a frozen pydantic model (``Frozen``) whose fields use the types below:
``IntRange`` (a bounded integer, never a bool or a float), ``NumberRange`` (a finite int or
float, kept as given: member ids hash it), ``OneOf`` (one of a catalogue's names), each the
metadata of an ``Annotated`` type (``units: Annotated[int, IntRange(ge=1)]``, so that type
checkers read the field as an ``int``), and the aliases ``Seed`` (an integer in the PRNG's
range), ``Str`` and ``NonEmpty`` (``NonEmpty[T]``: a non-empty tuple of ``T``). ``Int``,
``Number``, ``Choice`` and ``List`` build the same types as values, for code that makes
them at run time. Any bad value, at construction or in
``replace``, raises one ``ConfigError`` whose single line is ``field: what is wrong``
(allowed: ...). Cross-field checks live in each class's ``model_validator`` and raise
``ConfigError`` directly.

``field_table`` renders a class's fields (name, type and range, default, meaning) as the
Markdown table that docs/config.md holds; ``json_schema`` gives the JSON Schema.
"""

from __future__ import annotations

import math
import operator
from dataclasses import FrozenInstanceError
from typing import Annotated, Any, Literal, LiteralString, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError, core_schema

from latchlab.core.catalog import INDEX_MAX, SEED_MAX
from latchlab.errors import ConfigError, LatchlabError


# ----------------------------------------------------------------------------- field types


def _bounds(gt=None, ge=None, lt=None, le=None) -> list[tuple[str, Any, Any]]:
    return [
        (f"{sym} {b:g}" if isinstance(b, float) else f"{sym} {b}", op, b)
        for sym, op, b in (
            (">", operator.gt, gt),
            (">=", operator.ge, ge),
            ("<", operator.lt, lt),
            ("<=", operator.le, le),
        )
        if b is not None
    ]


def _err(kind: str, problem: str, allowed=None) -> PydanticCustomError:
    # the message is ours already; ``allowed`` travels in the context to ``config_error``
    # (the stubs ask for literal strings, to keep user input out of templates: ours are built here)
    return PydanticCustomError(
        cast(LiteralString, kind),
        cast(LiteralString, problem),
        {"allowed": list(allowed) if allowed is not None else None},
    )


class _Checked:
    """A field type from a checking function and the JSON Schema its values satisfy."""

    def __init__(self, check, schema: core_schema.CoreSchema, text: str):
        self.check, self.schema, self.text = check, schema, text

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_plain_validator_function(self.check, json_schema_input_schema=self.schema)

    def __repr__(self):
        return self.text


def IntRange(ge: int | None = None, le: int = INDEX_MAX, *, even: bool = False) -> _Checked:
    """An integer in ``[ge, le]`` (``le`` defaults to the int32 limit of XLA's indices): the
    metadata of ``Annotated[int, IntRange(...)]``."""
    bounds = _bounds(ge=ge, le=le)

    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise _err("int", f"must be an integer, got {v!r}")
        for sym, op, b in bounds:
            if not op(v, b):
                raise _err(
                    "range",
                    f"must be {sym}, got {v}" if le == INDEX_MAX or ge is None else f"must be in [{ge}, {le}], got {v}",
                )
        if even and v % 2:
            raise _err("even", f"must be even, got {v}")
        return v

    text = "integer" + ("" if ge is None else f" ≥ {ge}") + (" (even)" if even else "")
    if le != INDEX_MAX:
        text += f", ≤ {le}"
    return _Checked(check, core_schema.int_schema(ge=ge, le=le, multiple_of=2 if even else None), text)


def NumberRange(
    gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None
) -> _Checked:
    """A float32-finite int or float in the bounds, kept as given (``1`` stays an int): the
    metadata of ``Annotated[float, NumberRange(...)]``. The engine computes in float32, so a
    number beyond float32's range (``F32_MAX``, about 3.4e38) would become ``inf`` there."""
    bounds = _bounds(gt, ge, lt, le)

    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _err("number", f"must be a finite number, got {v!r}")
        if isinstance(v, float) and not math.isfinite(v):  # an int is finite, however long
            raise _err("finite", f"must be a finite number, got {v!r}")
        if abs(v) > F32_MAX:  # Python compares a huge int with a float exactly
            got = f"{v!r}" if len(str(v)) <= 40 else f"an integer of {len(str(abs(v)))} digits"
            raise _err("finite", f"must lie within float32's range (|x| <= {F32_MAX!r}), got {got}")
        if v != 0 and abs(v) < F32_TINY:
            raise _err("finite", f"must be 0 or at least {F32_TINY!r} in size (float32's smallest), got {v!r}")
        for sym, op, b in bounds:
            if not op(v, b):
                raise _err("range", f"must be {sym}, got {v}")
        return v

    lo = f"> {gt:g}" if gt is not None else f"≥ {ge:g}" if ge is not None else ""
    hi = f"< {lt:g}" if lt is not None else f"≤ {le:g}" if le is not None else ""
    text = "finite number" + (
        f" in ({gt:g}, {lt:g})" if gt is not None and lt is not None else "".join(f" {s}" for s in (lo, hi) if s)
    )
    # float32's range as default bounds: JSON Schema has no "finite", and TOML has inf (a
    # strict bound replaces the inclusive one)
    low = None if gt is not None else -F32_MAX if ge is None else ge
    high = None if lt is not None else F32_MAX if le is None else le
    return _Checked(check, core_schema.float_schema(gt=gt, ge=low, lt=lt, le=high, allow_inf_nan=False), text)


F32_MAX = 3.4028234663852886e38
"""The largest finite float32 (``numpy.finfo(numpy.float32).max``): the bound of every number."""
F32_TINY = 1.401298464324817e-45
"""The smallest positive float32 (a subnormal): a smaller number but 0 would be 0 there."""


Seed = Annotated[int, IntRange(ge=0, le=SEED_MAX)]
"""A PRNG seed: ``jax.random.PRNGKey`` takes ``[0, 2^32 - 1]``."""


def OneOf(names) -> _Checked:
    """One of ``names`` (the message lists them): the metadata of ``Annotated[str, OneOf(...)]``."""
    names = tuple(names)

    def check(v):
        if not isinstance(v, str) or v not in names:
            raise _err("choice", f"unknown {{field}} {v!r}", names)
        return v

    return _Checked(check, core_schema.literal_schema(list(names)), "one of " + ", ".join(names))


def _str(v):
    if not isinstance(v, str):
        raise _err("str", f"must be a string, got {v!r}")
    return v


Str = Annotated[str, _Checked(_str, core_schema.str_schema(), "string")]


_T = TypeVar("_T")

NonEmpty = Annotated[tuple[_T, ...], Field(min_length=1)]
"""``NonEmpty[T]``: a non-empty list (a tuple once validated) of ``T``."""


# the same types as values built at run time (not annotations: a type checker reads no call there)


def Int(ge: int | None = None, le: int = INDEX_MAX, *, even: bool = False) -> Any:
    """``Annotated[int, IntRange(ge, le, even=even)]``."""
    return Annotated[int, IntRange(ge, le, even=even)]


def Number(gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None) -> Any:
    """``Annotated[float, NumberRange(gt, ge, lt, le)]``."""
    return Annotated[float, NumberRange(gt, ge, lt, le)]


def Choice(names) -> Any:
    """``Annotated[str, OneOf(names)]``."""
    return Annotated[str, OneOf(names)]


def List(item, min_length: int = 1) -> Any:
    """A non-empty list (a tuple once validated) of ``item``."""
    return Annotated[tuple[item, ...], Field(min_length=min_length)]


# ----------------------------------------------------------------------------- errors


def config_error(e: ValidationError, fields=()) -> LatchlabError:
    """The first error of ``e`` as one ``ConfigError`` line naming the field.

    ``fields``: the names allowed where an unknown one was given.
    """
    err = e.errors(include_url=False)[0]
    loc = [p for p in err["loc"] if not isinstance(p, int)]
    field = ".".join(map(str, loc)) or "config"
    ctx = err.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, LatchlabError):  # a cross-field check's own error, unwrapped
        return cause
    kind, v = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return ConfigError(field, "unknown field", fields)
    if kind == "missing":
        return ConfigError(field, "is required")
    if kind in ("too_short", "tuple_type", "list_type", "dict_type"):
        what = "a table" if kind == "dict_type" else "a non-empty list"
        return ConfigError(field, f"must be {what}, got {v!r}")
    if kind == "model_type":
        return ConfigError(field, f"must be a table, got {v!r}")
    if "allowed" in ctx:  # one of our own checks: its message is final
        return ConfigError(field, err["msg"].replace("{field}", str(loc[-1]) if loc else field), ctx["allowed"])
    return ConfigError(field, err["msg"].split("\n")[0])


class Frozen(BaseModel):
    """A frozen configuration: validated on construction and ``replace``, hashable, with
    ``to_dict``; a bad value raises one ``ConfigError`` line naming the field."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    def __init__(self, *args, **data):
        names = tuple(type(self).model_fields)
        if len(args) > len(names):
            raise ConfigError(type(self).__name__, f"takes at most {len(names)} fields, got {len(args)}", names)
        for name, v in zip(names, args):  # positional fields in declaration order, as a dataclass takes them
            if name in data:
                raise ConfigError(name, "given twice (by position and by name)")
            data[name] = v
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise config_error(e, tuple(type(self).model_fields)) from None

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"{type(self).__name__} is frozen: use .replace({name}=...)")

    def to_dict(self) -> dict:
        """The fields as a dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._fields().items()}

    def _fields(self) -> dict:
        return {k: getattr(self, k) for k in type(self).model_fields}

    def replace(self, **changes) -> "Frozen":
        """A copy with ``changes``, validated as a new instance."""
        return type(self)(**(self._fields() | changes))

    @classmethod
    def make(cls, **overrides):
        """The defaults with ``overrides`` (e.g. from TOML); TOML arrays become tuples."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def checked(kind, value, field: str):
    """``value`` checked as a field of type ``kind`` (``Seed``, ``Annotated[int, IntRange(...)]``,
    ``Number(...)``, ...) outside a model; a bad one raises ``ConfigError`` naming ``field``."""
    check = next(m for m in kind.__metadata__ if isinstance(m, _Checked)).check
    try:
        return check(value)
    except PydanticCustomError as e:
        allowed = (e.context or {}).get("allowed")
        raise ConfigError(field, e.message().replace("{field}", field.rpartition(".")[2]), allowed) from None


def check_seed_range(seed: int, count: int, field: str = "seed", high: int = SEED_MAX) -> None:
    """Seeds ``seed .. seed + count - 1`` must stay in ``[0, high]``."""
    if seed + count - 1 > high:
        raise ConfigError(field, f"seed + {count - 1} = {seed + count - 1} leaves the PRNG's range", (f"0 ... {high}",))


# ----------------------------------------------------------------------------- documentation


def _type_text(info) -> str:
    for m in info.metadata:
        if isinstance(m, _Checked):
            return m.text
    ann = info.annotation
    args = getattr(ann, "__args__", ())
    if getattr(ann, "__origin__", None) is tuple and args:
        inner = args[0]
        for m in getattr(inner, "__metadata__", ()):
            if isinstance(m, _Checked):
                return f"non-empty list, each a {m.text}"
        return "non-empty list"
    if getattr(ann, "__origin__", None) is Literal:
        return "one of " + ", ".join(map(str, args))
    return getattr(ann, "__name__", str(ann))


def field_table(model: type[BaseModel], skip=()) -> str:
    """A Markdown table of ``model``'s fields: name, type and range, default, meaning."""
    rows = ["| field | type and range | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        default = info.get_default(call_default_factory=True)
        text = _type_text(info)
        if isinstance(default, tuple):
            default = dict(default) if text.startswith("table") else list(default)
        doc = " ".join((info.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {text} | `{default!r}` | {doc} |")
    return "\n".join(rows)
