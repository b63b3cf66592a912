"""A model is a cell and a read-out head; its loss is a pure function of parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from latchlab.core import cells
from latchlab.core.cells import Cell
from latchlab.core.catalog import ALL_HEADS, HEADS, HEADS_FOR  # noqa: F401 (re-exported)
from latchlab.errors import ConfigError

LAST_STATE_HEADS = ("dense2", "dense1", "linear")  # heads that read only the final state
# adding: a sequence counts as solved when |y_hat - y| < this (H&S 1997's criterion)
REGRESSION_TOLERANCE = 0.04


@dataclass(frozen=True)
class Model:
    """A recurrent cell read out by a head.

    Heads (``h_T`` the last state, ``h_t`` every step's; ``l`` a sequence's loss, ``c`` its
    metric, which the trainers report as "accuracy"):
        dense2: ``z = Dense(2)(h_T)``, softmax cross-entropy (the seed's);
                ``c = [argmax z == y]``.
        dense1: ``z = Dense(1)(h_T)``, sigmoid binary cross-entropy (equivalent in law,
                not in parameters); ``c = [(z > 0) == y]``.
        linear: ``z = Dense(1)(h_T)``, squared error ``l = (z - y)^2`` (so the mean is
                the MSE); ``c = [|z - y| < REGRESSION_TOLERANCE]``.
        seq_softmax: ``z_t = Dense(K)(h_t)`` at every step, ``l`` the mean over the
                sequence's steps of ``-log softmax(z_t)[y_t]`` (steps with ``y_t < 0``,
                the left padding, do not count); ``c`` the fraction of the steps with a
                symbol target (``y_t > 0``: copy's recall steps) where ``argmax z_t == y_t``.
                Over equally many such steps per sequence, the mean of ``c`` is the
                per-symbol accuracy.

    Attributes:
        cell: the recurrent cell. head: one of ``ALL_HEADS``. n_in: input width F.
        n_classes: seq_softmax's K (default: ``n_in``, one output per input category).
    """

    cell: Cell
    head: str = "dense2"
    n_in: int = 1
    n_classes: int | None = None

    def __post_init__(self):
        if self.head not in ALL_HEADS:
            raise ConfigError("head", f"unknown head {self.head!r}", ALL_HEADS)

    @property
    def n_out(self) -> int:
        if self.head == "seq_softmax":
            return self.n_classes or self.n_in
        return 2 if self.head == "dense2" else 1


def init(key, model: Model, scheme: str = "keras", values=None, t_max=None):
    """``{"cell": ..., "head": {"kernel", "bias"}}``; the head is glorot_uniform, bias 0."""
    k_cell, k_head = jax.random.split(key)
    H, n_out = model.cell.units, model.n_out
    limit = math.sqrt(6.0 / (H + n_out))
    head = {
        "kernel": jax.random.uniform(k_head, (H, n_out), jnp.float32, -limit, limit),
        "bias": jnp.zeros((n_out,), jnp.float32),
    }
    return {"cell": cells.init_params(k_cell, model.cell, model.n_in, scheme, values, t_max), "head": head}


def read_out(model: Model, head, h):
    """The head's logits from states ``h`` (..., H): (..., 2) for dense2, (..., K) for
    seq_softmax, (...) for the one-output heads."""
    out = cells._dot(h, head["kernel"]) + cells.lead(head["bias"], h.ndim)
    return out if model.head in ("dense2", "seq_softmax") else out[..., 0]


def logits(model: Model, params, x, mask=None):
    """Head logits: (B, 2) for dense2, (B,) for dense1 and linear (from the last state),
    (B, T, K) for seq_softmax (from every step's state)."""
    if model.head == "seq_softmax":
        _, hs = cells.scan(model.cell, params["cell"], x, mask, return_sequences=True)
        return read_out(model, params["head"], hs)
    h = cells.output(model.cell, cells.scan(model.cell, params["cell"], x, mask))
    return read_out(model, params["head"], h)


def per_example(model: Model, z, y):
    """Loss and metric per sequence from logits ``z`` and targets ``y`` (see ``Model``).

    Args:
        z: ``logits``' output; y: (B,) int labels (dense2, dense1), (B,) float targets
        (linear) or (B, T) int categories, -1 where there is none (seq_softmax).
    Returns:
        ``(loss (B,), metric (B,))`` float.
    """
    if model.head == "dense2":
        loss = jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]
        correct = jnp.argmax(z, axis=-1) == y
    elif model.head == "dense1":
        yf = y.astype(z.dtype)
        loss = jnp.logaddexp(0.0, z) - yf * z  # -log sigmoid(z) for y=1, -log(1-sigmoid(z)) for 0
        correct = (z > 0) == (y == 1)
    elif model.head == "linear":
        err = z - y.astype(z.dtype)
        loss = err * err
        correct = jnp.abs(err) < REGRESSION_TOLERANCE
    else:
        steps = y >= 0  # (B, T)
        yc = jnp.maximum(y, 0)
        ce = jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, yc[..., None], axis=-1)[..., 0]
        loss = jnp.where(steps, ce, 0.0).sum(-1) / jnp.maximum(steps.sum(-1), 1).astype(z.dtype)
        symbols = y > 0
        hits = (symbols & (jnp.argmax(z, axis=-1) == y)).sum(-1).astype(z.dtype)
        return loss, hits / jnp.maximum(symbols.sum(-1), 1).astype(z.dtype)
    return loss, correct.astype(jnp.float32)


def loss(model: Model, params, x, y, weight=None, mask=None):
    """Weighted mean loss ``L = sum_b w_b l_b / sum_b w_b`` and the same mean of the metric.

    Args:
        x: (B, T, F) inputs; y: (B,) or (B, T) targets (see ``per_example``); weight: (B,)
        example weights (0 pads a short last batch); mask: (T,) valid steps of
        left-padded sequences.
    Returns:
        ``(loss, metric)``, the metric (accuracy) as auxiliary output for ``value_and_grad``.
    """
    losses, c = per_example(model, logits(model, params, x, mask), y)
    if weight is None:
        return jnp.mean(losses), jnp.mean(c)
    return weighted_mean(losses, c, weight)


def weighted_mean(losses, c, weight):
    """``sum_b w_b l_b / sum_b w_b`` and the same mean of ``c``, over the last axis."""
    n = jnp.maximum(weight.sum(-1), 1e-12)
    return (losses * weight).sum(-1) / n, (c * weight).sum(-1) / n


def head_loss(model: Model, head, h, y, weight):
    """``loss``'s weighted mean loss and metric from final states ``h`` (B, H): the part of
    the loss after the recurrence (for trainers that run the recurrence themselves)."""
    return weighted_mean(*per_example(model, read_out(model, head, h), y), weight)
