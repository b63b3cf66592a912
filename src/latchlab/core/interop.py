"""Bring trained Keras 3 recurrent layers into latchlab."""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from latchlab.core import cells
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError

_KINDS = {"SimpleRNN": "srnn", "LSTM": "lstm", "GRU": "gru"}
_GATE_ACTIVATIONS = {"sigmoid": "sigmoid", "hard_sigmoid": "hard_sigmoid_keras3"}


@dataclass(frozen=True)
class KerasModel:
    """A latchlab cell with weights copied from a Keras layer; call it on (B, T, F) inputs."""

    cell: Cell
    params: dict

    def __call__(self, x) -> np.ndarray:
        """The (B, T, H) output sequence, as the layer with ``return_sequences=True``."""
        return np.asarray(_outputs(self.cell, self.params, jnp.asarray(x, jnp.float32)))


@jax.jit(static_argnums=0)
def _outputs(cell, params, x):
    return cells.scan(cell, params, x, return_sequences=True)[1]


def _name(fn) -> str:
    return getattr(fn, "__name__", str(fn))


def from_keras(layer) -> KerasModel:
    """Wrap a built Keras 3 ``SimpleRNN``, ``LSTM`` or ``GRU`` layer.

    Args:
        layer: the layer (built, so that its weights exist).
    Returns:
        a ``KerasModel`` whose call equals the layer's output sequence.
    """
    kind = _KINDS.get(type(layer).__name__)
    if kind is None:
        raise ConfigError("layer", f"unsupported layer {type(layer).__name__}", tuple(_KINDS))
    if not layer.built:
        raise ConfigError("layer", "the layer is not built yet; call it on an input first")
    if _name(layer.activation) != "tanh":
        raise ConfigError("activation", f"only tanh is supported, got {_name(layer.activation)}")
    if getattr(layer, "go_backwards", False):
        raise ConfigError("go_backwards", "reversed layers are not supported")
    rsig = "sigmoid"
    if kind != "srnn":
        rsig = _GATE_ACTIVATIONS.get(_name(layer.recurrent_activation))
        if rsig is None:
            raise ConfigError("recurrent_activation", f"unsupported {_name(layer.recurrent_activation)}",
                              tuple(_GATE_ACTIVATIONS))
    reset_after = bool(getattr(layer, "reset_after", True))
    cell = Cell(kind, int(layer.units), rsig, reset_after)
    weights = [np.asarray(w, np.float32) for w in layer.get_weights()]
    kernel, recurrent = weights[0], weights[1]
    if len(weights) > 2:
        bias = weights[2]
    else:  # use_bias=False
        bias = np.zeros((2, kernel.shape[1]) if cell.split_bias else kernel.shape[1], np.float32)
    params = {"kernel": jnp.asarray(kernel), "recurrent": jnp.asarray(recurrent), "bias": jnp.asarray(bias)}
    return KerasModel(cell, params)
