"""Bring trained Keras 3 recurrent layers (and their Dense heads) into latchlab."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from latchlab.core import cells
from latchlab.core import model as M
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError

_KINDS = {"SimpleRNN": "srnn", "LSTM": "lstm", "GRU": "gru"}
_GATE_ACTIVATIONS = {"sigmoid": "sigmoid", "hard_sigmoid": "hard_sigmoid_keras3"}
_HEADS = {2: ("dense2", ("softmax", "linear")), 1: ("dense1", ("sigmoid", "linear"))}


@dataclass(frozen=True)
class KerasModel:
    """A Keras layer's cell with its weights, and the Dense head if one was given.

    Call it on (B, T, F) inputs for the layer's output sequence. With a head, ``model``
    and ``params`` are what every latchlab function of a model takes
    (``latchlab.analysis.diagnose.analyse(km.model, km.params, x, y)``, ``model.loss``).

    Attributes:
        cell: the cell (kind, units, gate activation, GRU reset_after) of the layer.
        params: ``{"cell": {"kernel", "recurrent", "bias"}}``, and ``"head": {"kernel",
            "bias"}`` when a head was given.
        head: ``dense2`` (a ``Dense(2)`` softmax or linear head), ``dense1`` (``Dense(1)``
            sigmoid or linear), or None (the layer alone).
    """

    cell: Cell
    params: dict
    head: str | None = None

    @property
    def n_in(self) -> int:
        return int(self.params["cell"]["kernel"].shape[0])

    @property
    def model(self) -> M.Model:
        """The latchlab model: its logits are the Dense layer's pre-activations."""
        if self.head is None:
            raise ConfigError(
                "head",
                "this layer came without a Dense head: give from_keras the Keras "
                "model, or the layer and its Dense(2) softmax or Dense(1) sigmoid head",
            )
        return M.Model(self.cell, self.head, self.n_in)

    def __call__(self, x) -> np.ndarray:
        """The (B, T, H) output sequence, as the layer with ``return_sequences=True``."""
        return np.asarray(_outputs(self.cell, self.params["cell"], jnp.asarray(x, jnp.float32)))


@jax.jit(static_argnums=0)
def _outputs(cell, params, x):
    return cells.scan(cell, params, x, return_sequences=True)[1]


def _name(fn) -> str:
    return getattr(fn, "__name__", str(fn))


def from_keras(layer, head=None) -> KerasModel:
    """A built Keras 3 ``SimpleRNN``, ``LSTM`` or ``GRU`` layer, with or without its head.

    Args:
        layer: the layer (built, so that its weights exist), or a Keras model whose layers
            hold exactly one such layer and at most one ``Dense`` layer (its head).
        head: the head, when ``layer`` is a layer: a built ``Dense(2)`` (softmax or linear:
            the ``dense2`` head) or ``Dense(1)`` (sigmoid or linear: ``dense1``), or
            ``{"kernel": (H, O), "bias": (O,)}`` with ``O`` 2 or 1.
    Returns:
        a ``KerasModel``: called on inputs it equals the layer's output sequence; with a
        head, its ``model``'s logits equal the Dense layer's pre-activations.
    Raises:
        ConfigError: an unsupported layer, setting or head (one line naming it).
    """
    if hasattr(layer, "layers") and not hasattr(layer, "units"):
        layers = list(layer.layers)
        rec = [L for L in layers if type(L).__name__ in _KINDS]
        dense = [L for L in layers if type(L).__name__ == "Dense"]
        if len(rec) != 1 or (head is None and len(dense) > 1):
            raise ConfigError(
                "model",
                "need exactly one SimpleRNN/LSTM/GRU layer and at most one Dense head "
                f"(found {len(rec)} and {len(dense)})",
            )
        layer, head = rec[0], head if head is not None or not dense else dense[0]
    cell, cell_params = _cell(layer)
    if head is None:
        return KerasModel(cell, {"cell": cell_params})
    name, head_params = _head(head, cell.units)
    return KerasModel(cell, {"cell": cell_params, "head": head_params}, name)


def _cell(layer):
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
            raise ConfigError(
                "recurrent_activation", f"unsupported {_name(layer.recurrent_activation)}", tuple(_GATE_ACTIVATIONS)
            )
    reset_after = bool(getattr(layer, "reset_after", True))
    cell = Cell(kind, int(layer.units), rsig, reset_after)
    weights = [np.asarray(w, np.float32) for w in layer.get_weights()]
    kernel, recurrent = weights[0], weights[1]
    if len(weights) > 2:
        bias = weights[2]
    else:  # use_bias=False
        bias = np.zeros((2, kernel.shape[1]) if cell.split_bias else kernel.shape[1], np.float32)
    return cell, {"kernel": jnp.asarray(kernel), "recurrent": jnp.asarray(recurrent), "bias": jnp.asarray(bias)}


def _head(head, units: int):
    """The head's name and ``{"kernel", "bias"}`` from a Dense layer or a dict."""
    if isinstance(head, dict):
        k, b = np.asarray(head["kernel"], np.float32), np.asarray(head["bias"], np.float32)
        act = None
    else:
        if type(head).__name__ != "Dense" or not head.built:
            raise ConfigError("head", f"need a built Dense layer, got {type(head).__name__}")
        act = _name(head.activation)
        ws = [np.asarray(w, np.float32) for w in head.get_weights()]
        k = ws[0]
        b = ws[1] if len(ws) > 1 else np.zeros(k.shape[1], np.float32)
    if k.ndim != 2 or k.shape[1] not in _HEADS or k.shape[0] != units or b.shape != (k.shape[1],):
        raise ConfigError("head", f"need kernel ({units}, 1 or 2) and bias (1 or 2,), got {k.shape} and {b.shape}")
    name, activations = _HEADS[k.shape[1]]
    if act is not None and act not in activations:
        raise ConfigError("head", f"a Dense({k.shape[1]}) head needs activation {' or '.join(activations)}, got {act}")
    return name, {"kernel": jnp.asarray(k), "bias": jnp.asarray(b)}
