"""A model is a cell and a classification head; its loss is a pure function of parameters."""
from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from latchlab import cells
from latchlab.cells import Cell
from latchlab.errors import ConfigError

HEADS = ("dense2", "dense1")


@dataclass(frozen=True)
class Model:
    """A recurrent cell read out by a head on its last state.

    Heads:
        dense2: ``Dense(2)`` + softmax cross-entropy (the seed's).
        dense1: ``Dense(1)`` + sigmoid binary cross-entropy (equivalent in law, not in
                parameters).
    """

    cell: Cell
    head: str = "dense2"
    n_in: int = 1

    def __post_init__(self):
        if self.head not in HEADS:
            raise ConfigError("head", f"unknown head {self.head!r}", HEADS)

    @property
    def n_out(self) -> int:
        return 2 if self.head == "dense2" else 1


def init(key, model: Model, scheme: str = "keras", values=None, t_max=None):
    """``{"cell": ..., "head": {"kernel", "bias"}}``; the head is glorot_uniform, bias 0."""
    k_cell, k_head = jax.random.split(key)
    H, O = model.cell.units, model.n_out
    limit = math.sqrt(6.0 / (H + O))
    head = {"kernel": jax.random.uniform(k_head, (H, O), jnp.float32, -limit, limit),
            "bias": jnp.zeros((O,), jnp.float32)}
    return {"cell": cells.init_params(k_cell, model.cell, model.n_in, scheme, values, t_max),
            "head": head}


def logits(model: Model, params, x, mask=None):
    """Head logits from the last state: (B, 2) for dense2, (B,) for dense1."""
    h = cells.output(model.cell, cells.scan(model.cell, params["cell"], x, mask))
    out = cells._dot(h, params["head"]["kernel"]) + cells.lead(params["head"]["bias"], 2)
    return out if model.head == "dense2" else out[:, 0]


def per_example(model: Model, z, y):
    """Cross-entropy and correctness per example from logits ``z`` and labels ``y``."""
    if model.head == "dense2":
        loss = jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
        correct = jnp.argmax(z, axis=-1) == y
    else:
        yf = y.astype(z.dtype)
        loss = jnp.logaddexp(0.0, z) - yf * z  # -log sigmoid(z) for y=1, -log(1-sigmoid(z)) for 0
        correct = (z > 0) == (y == 1)
    return loss, correct.astype(jnp.float32)


def loss(model: Model, params, x, y, weight=None, mask=None):
    """Weighted mean cross-entropy ``L = sum_b w_b l_b / sum_b w_b`` and accuracy.

    Args:
        x: (B, T, F) inputs; y: (B,) int labels; weight: (B,) example weights (0 pads a
        short last batch); mask: (T,) valid steps of left-padded sequences.
    Returns:
        ``(loss, accuracy)``, the accuracy as auxiliary output for ``value_and_grad``.
    """
    l, c = per_example(model, logits(model, params, x, mask), y)
    if weight is None:
        return jnp.mean(l), jnp.mean(c)
    total = jnp.maximum(jnp.sum(weight), 1e-12)
    return jnp.sum(weight * l) / total, jnp.sum(weight * c) / total
