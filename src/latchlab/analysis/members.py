"""Stored members as configurations: one way from a store's row back to the member.

A row of ``Store.members()`` (or ``Store.member(id)``) holds a member's id, seed, every
``RunConfig`` field (``values`` as JSON) and its final metrics; the functions here turn it
back into the ``config.Member`` the sweep trained, check epochs against what is stored,
and describe the member in one line.
"""

from __future__ import annotations

import json
from typing import Sequence, SupportsFloat, SupportsInt, cast

import numpy as np
import pandas as pd

from latchlab.config import RUN_FIELDS, Member, from_dict
from latchlab.errors import ConfigError


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def member_from_row(row: pd.Series) -> Member:
    """The ``config.Member`` (configuration and seed) of a stored member's row.

    Its ``id`` is the row's ``member_id`` and its ``run.model`` the model the sweep trained
    (checked by the tests for every field a sweep stores).
    """
    d = {f: _plain(row[f]) for f in RUN_FIELDS}
    values = d["values"]
    d["values"] = json.loads(values) if isinstance(values, str) else (values or {})
    return Member(from_dict(d).points()[0], int(cast(SupportsInt, row["seed"])))


def checked_epochs(row: pd.Series, epochs: Sequence, field: str = "epochs") -> list[int]:
    """``epochs`` as a list of distinct ints, each a stored epoch of the member (0 = the
    initial parameters .. its last); else a ``ConfigError`` naming ``field``."""
    last = int(cast(SupportsInt, row["epochs"]))
    out = list(dict.fromkeys(epochs))
    bad = [e for e in out if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or not 0 <= e <= last]
    if bad or not out:
        got = epochs[0] if field == "epoch" and len(epochs) == 1 else list(epochs)
        raise ConfigError(
            field,
            f"must be {'an integer' if field == 'epoch' else 'epochs'} in [0, {last}] for "
            f"member {row['member_id']}, got {got!r}",
        )
    return [int(e) for e in out]


def label(row: pd.Series) -> str:
    """One line naming a stored member: id, cell, task, initialisation, seed, final accuracy."""
    run = member_from_row(row).run
    values = dict(run.values)
    plural = "s" if run.units > 1 else ""
    return (
        f"member {str(row['member_id'])[:8]}: {run.cell} ({run.units} unit{plural}, {run.preset}, "
        f"{run.head_name}), {run.task} T={run.T}, {run.init} init"
        f"{' ' + json.dumps(values) if values else ''}, seed {int(cast(SupportsInt, row['seed']))}, "
        f"final val acc {float(cast(SupportsFloat, row['val_acc'])):.3f}"
    )
