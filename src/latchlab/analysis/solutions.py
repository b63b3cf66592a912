"""Capacity apart from trainability: hand-set parameters that solve latch and bit relay.

Before saying that a cell "cannot" do a task, construct weights that do it, or argue that
none exist; "training did not find them" is a different claim. This module holds, for every
cell the experiments use (``srnn``, ``lstm``, ``gru``, ``janet``, each under both gate
presets) and each task (``latch`` with 1 unit; ``bit_relay`` with 1 and 8 units), either a
parameter set for ``core.model`` (cell and ``dense2`` head, Keras layout) or the argument
that none exists. ``accuracy`` evaluates a construction on fresh data from the project's
own task generators through the project's own forward pass (``model.logits``).

Conventions: ``x_t`` the input (``±1 + e`` on a sign step, ``e`` elsewhere, ``e ~ N(0,
0.1^2)``), ``s_1`` the first sign, ``s_2`` bit relay's second (at ``t = floor(T/2)``); bit
relay's label is 1 iff ``s_1 = s_2``. Gate pre-activations are set to ``±10`` or more
(``GATE``) wherever a gate must be open or shut: the sigmoid is then within 5e-5 of 0 or 1,
and the Keras-2 hard sigmoid (which saturates at ``|z| >= 2.5``) exactly 0 or 1, so every
construction holds under both presets (and for a GRU with either reset convention, since
its reset gate is held open, ``r = 1``).

Latch, one unit (every cell). The SRNN ``h_t = tanh(2 x_t + 3 h_{t-1})`` is bistable:
``tanh(3h)`` has stable fixed points ``±0.995``; the first step writes ``h_0 = tanh(±2)
= ±0.96`` into the basin of its sign, and a noise step moves the net input by ``2e`` (std
0.2) where leaving the basin needs about 3: the state keeps the sign for any ``T``. The
head reads ``sign(h_T)``.
  * GRU: update gate shut (``z = rsig(-10) ~ 0``), reset open, candidate ``tanh(2x + 3h)``:
    ``h = h~``, the same bistable map.
  * JANET: forget pre-activation ``s = -10`` (``f ~ 0``, input gate ``rsig(1 - s) ~ 1``),
    candidate ``tanh(2x + 3c)``: the same map on ``c = h``.
  * LSTM: ``i = f = o = 1`` (biases 10), ``g = tanh(2x + 3h)``: after the first step
    ``c = ±0.96`` and ``h = tanh(c)``; every later step adds ``g``, of the sign of ``h``
    (``3|h| >= 2.2`` outweighs ``2e``), so ``|c|`` grows and ``h_T`` keeps the sign.

Bit relay, one unit.
  * SRNN: **none exists** (``one_unit_srnn_cannot_relay``). Fix the noise. Before
    ``t2 = floor(T/2)`` the state ``h_{t2-1}`` is a function of ``s_1`` alone, say ``a(s_1)``;
    at ``t2`` the net input is ``z = w s_2 + u a(s_1) + (w e + b)``, a sum of a function of
    ``s_2`` and a function of ``s_1``. Every later step applies ``h -> tanh(w x_t + u h + b)``,
    monotone in ``h``, and the head thresholds a linear function of ``h_T``; so the
    predicted class is a threshold of a monotone function of ``z``, i.e. ``z > c`` or
    ``z < c`` for some ``c``. Agreement is XOR-like: it needs ``z(+,+), z(-,-)`` on one
    side of ``c`` and ``z(+,-), z(-,+)`` on the other, but ``z(+,+) + z(-,-) = z(+,-) +
    z(-,+)`` (additivity), so the two pairs cannot be separated. For every noise path at
    least one of the four sign pairs is misclassified: accuracy at most 3/4 on balanced
    data, whatever the weights. (The test checks the key step on the project's forward
    pass: over thousands of random weight sets, never more than 3 of the 4 pairs right.)
  * GRU, LSTM, JANET: their gates multiply, which breaks the additivity. One construction,
    the same for all three: *keep unless a +1 arrives*. The retention gate is a steep
    function of the input alone, open (keep) for ``x < 0.5`` and shut (overwrite) for
    ``x > 0.5`` (GRU ``z = rsig(40 (0.5 - x))``; LSTM ``f = rsig(40 (0.5 - x))`` with the
    input gate ``i = rsig(40 (x - 0.5))``; JANET ``s = 40 (0.5 - x)``), and the candidate is
    ``tanh(3 - 20 h)`` (LSTM: ``g``; JANET: ``tanh(3 - 20 c)``). The state starts at 0.
    - ``s_1 = -1``: nothing written, the state stays ``0``.
    - ``s_1 = +1``: overwritten with ``tanh(3 - 20 * 0) = v = 0.995`` (LSTM: ``c = v``,
      ``h = tanh(v) = 0.76``).
    - ``s_2 = -1``: kept: ``v`` (disagree) or ``0`` (agree).
    - ``s_2 = +1``: overwritten with ``tanh(3 - 20 h)``: from ``0``, ``v`` (disagree); from
      ``v`` (or the LSTM's 0.76), ``-1`` (agree).
    Disagreement ends at ``v``, agreement at ``0`` or ``-1``; the head says "agree" below
    ``v / 2`` (LSTM: below ``tanh(v) / 2`` of ``h = o tanh(c)``, ``o = 1``). Leaks: a noise
    step with ``x < 0.3`` moves the gate by less than ``rsig``'s distance from 1 at 8,
    ``3e-4`` (sigmoid; exactly 0 under the hard sigmoid), so 200 steps move the state by
    well under the margin.

Bit relay, eight units. LSTM, GRU, JANET: the one-unit construction in unit 0, every other
weight 0 (a unit with zero weights stays at 0: its candidate is ``tanh(0) = 0``). SRNN:
five units, ``k = 10`` (weights into a unit, from the previous step's states):
    A = tanh(2 x + 4 A)                     latches ``s_1`` (and keeps it when ``s_2``
                                            opposes it: ``4 * 0.999 - 2 > 0``)
    B = tanh(k (x + A - 1.5))               +1 only at ``t2`` when ``s_2 = s_1 = +1``
    C = tanh(k (-x - A - 1.5))              +1 only at ``t2`` when ``s_2 = s_1 = -1``
    F = tanh(10)                            1 from step 0 on (0 before: marks the start)
    D = tanh(10 D + 10 (B + C) + 30 F - 10) latches "agree"
Normally ``B + C = -2`` and ``D``'s net input is ``±10 - 20 + 20``: it stays where it is;
at step 0 (``B = C = F = 0`` before) it is ``-10``: ``D`` starts off; one step after an
agreeing pair ``B + C = 0`` and ``D`` switches on (net input ``-10 + 20``) and stays on
(``10 - 20 + 20``). The head reads ``sign(D)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from latchlab.core import model as M
from latchlab.core import tasks
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError

CELLS = ("srnn", "lstm", "gru", "janet")
PRESETS = ("keras2", "keras3")
CASES = (("latch", 1), ("bit_relay", 1), ("bit_relay", 8))
"""The (task, units) pairs the experiments use: latch with one unit, bit relay with one and eight."""
LENGTHS = (20, 100, 200)
GATE = 10.0  # a gate pre-activation that holds the gate open (or, negated, shut) under both presets
HEAD = 10.0  # the head's gain: logits far from the decision boundary
STEEP = 40.0  # the input-driven gates' slope: they switch at x = 0.5, between noise and a +1

NO_SOLUTION = {
    ("srnn", "bit_relay", 1): (
        "none exists: one tanh unit's net input at the second sign is a sum of a function of "
        "each sign, later steps and the head are monotone, so agreement (XOR-like) cannot be "
        "thresholded; at most 3 of the 4 sign pairs are right for every noise path"
    ),
}
"""The (cell, task, units) without a construction, each with the argument that none exists."""


@dataclass(frozen=True)
class Solution:
    """A hand-set parameter set and why it works (``None`` params: the argument that none exists)."""

    cell: str
    task: str
    units: int
    preset: str
    params: dict | None
    why: str

    @property
    def model(self) -> M.Model:
        return M.Model(Cell.from_preset(self.cell, self.units, self.preset), head="dense2")


def _pack(cell: Cell, blocks: dict, read: np.ndarray, threshold: float):
    """Model parameters from per-gate blocks.

    Args:
        blocks: gate -> ``(w, U, b)``: input weights (H,), recurrent weights (H, H) (row
            ``j`` is the weight *from* unit ``j``) and biases (H,); missing gates are 0.
        read: (H,) the head's readout direction; class 1 when ``read . h > threshold``.
    """
    H, G = cell.units, len(cell.gates)
    kernel = np.zeros((1, G * H), np.float32)
    recurrent = np.zeros((H, G * H), np.float32)
    bias = np.zeros((G * H,), np.float32)
    for k, gate in enumerate(cell.gates):
        if gate in blocks:
            w, U, b = blocks[gate]
            kernel[0, k * H : (k + 1) * H] = w
            recurrent[:, k * H : (k + 1) * H] = U
            bias[k * H : (k + 1) * H] = b
    cell_params = {"kernel": kernel, "recurrent": recurrent, "bias": bias}
    if cell.split_bias:  # a reset_after GRU: input bias, recurrent bias (0)
        cell_params["bias"] = np.stack([bias, np.zeros_like(bias)])
    head_kernel = np.zeros((H, 2), np.float32)
    head_kernel[:, 1] = HEAD * read
    head = {"kernel": head_kernel, "bias": np.array([0.0, -HEAD * threshold], np.float32)}
    return jax.tree.map(jnp.asarray, {"cell": cell_params, "head": head})


def _unit0(H: int, w=0.0, u=0.0, b=0.0):
    """``(w, U, b)`` for unit 0 only: input weight ``w``, self-weight ``u``, bias ``b``."""
    wv, bv, U = np.zeros(H), np.zeros(H), np.zeros((H, H))
    wv[0], U[0, 0], bv[0] = w, u, b
    return wv, U, bv


def _latch(cell: Cell):
    """Latch, one unit: the bistable map ``tanh(2x + 3h)`` (see the module docstring)."""
    H = cell.units
    cand = _unit0(H, 2.0, 3.0)
    open_, shut = _unit0(H, b=GATE), _unit0(H, b=-GATE)
    read = np.eye(H)[0]
    if cell.kind == "srnn":
        return _pack(cell, {"h": cand}, read, 0.0)
    if cell.kind == "gru":
        return _pack(cell, {"z": shut, "r": open_, "h": cand}, read, 0.0)
    if cell.kind == "janet":
        return _pack(cell, {"f": shut, "c": cand}, read, 0.0)
    return _pack(cell, {"i": open_, "f": open_, "c": cand, "o": open_}, read, 0.0)  # lstm


def _relay_gated(cell: Cell):
    """Bit relay by a gated cell: keep unless a +1 arrives; candidate ``tanh(3 - 20 h)``."""
    H = cell.units
    keep = _unit0(H, -STEEP, 0.0, STEEP / 2)  # rsig(40 (0.5 - x)): 1 unless x > 0.5
    write = _unit0(H, STEEP, 0.0, -STEEP / 2)
    cand = _unit0(H, 0.0, -20.0, 3.0)
    v = float(np.tanh(3.0))
    read = -np.eye(H)[0]  # class 1 (agree) when the state is low
    if cell.kind == "gru":
        return _pack(cell, {"z": keep, "r": _unit0(H, b=GATE), "h": cand}, read, -v / 2)
    if cell.kind == "janet":
        return _pack(cell, {"f": keep, "c": cand}, read, -v / 2)
    if cell.kind == "lstm":
        blocks = {"i": write, "f": keep, "c": cand, "o": _unit0(H, b=GATE)}
        return _pack(cell, blocks, read, -float(np.tanh(v)) / 2)
    raise ConfigError("cell", f"no gated bit-relay construction for {cell.kind!r}", ("lstm", "gru", "janet"))


def _relay_srnn(cell: Cell):
    """Bit relay by an SRNN of >= 5 units: A latches s_1, B and C detect an agreeing pair,
    F marks the start, D latches "agree" (see the module docstring)."""
    H, k = cell.units, 10.0
    A, B, C, D, F = range(5)
    w, U, b = np.zeros(H), np.zeros((H, H)), np.zeros(H)
    w[A], U[A, A] = 2.0, 4.0
    w[B], U[A, B], b[B] = k, k, -1.5 * k
    w[C], U[A, C], b[C] = -k, -k, -1.5 * k
    b[F] = 10.0
    U[D, D], U[B, D], U[C, D], U[F, D], b[D] = 10.0, 10.0, 10.0, 30.0, -10.0
    return _pack(cell, {"h": (w, U, b)}, np.eye(H)[D], 0.0)


def construct(cell: str, task: str, units: int, preset: str = "keras2") -> Solution:
    """The construction for ``cell`` on ``task`` with ``units`` units (or the argument that
    none exists: ``params`` is then ``None``)."""
    if cell not in CELLS:
        raise ConfigError("cell", f"no construction for {cell!r}", CELLS)
    if (task, units) not in CASES:
        raise ConfigError("task", f"no construction for {task!r} with {units} units", tuple(map(str, CASES)))
    c = Cell.from_preset(cell, units, preset)
    if (cell, task, units) in NO_SOLUTION:
        return Solution(cell, task, units, preset, None, NO_SOLUTION[(cell, task, units)])
    if task == "latch":
        return Solution(cell, task, units, preset, _latch(c), "bistable map tanh(2x + 3h) in unit 0")
    if cell == "srnn":
        return Solution(cell, task, units, preset, _relay_srnn(c), "latch s_1, detect an agreeing pair, latch it")
    return Solution(cell, task, units, preset, _relay_gated(c), "keep unless a +1 arrives; candidate tanh(3 - 20 h)")


@partial(jax.jit, static_argnums=0)
def _correct(model: M.Model, params, x, y, mask):
    return M.per_example(model, M.logits(model, params, x, mask), y)[1]


def accuracy(sol: Solution, T: int, seed: int, n: int = 1000, pad_to: int = max(LENGTHS)) -> float:
    """Fraction of ``n`` fresh ``sol.task`` sequences of length ``T`` (noise 0.1, the
    generator's default, from ``PRNGKey(seed)``) that ``sol`` classifies correctly, through
    ``model.logits``. Sequences are left-padded to ``pad_to`` and the padding masked (the
    state stays 0 there: one compilation for every ``T``)."""
    if sol.params is None:
        raise ConfigError("cell", f"{sol.cell} has no construction for {sol.task} with {sol.units} units")
    make = {"latch": tasks.latch, "bit_relay": tasks.bit_relay}[sol.task]
    pad_to = max(pad_to, T)
    x, y = make(jax.random.PRNGKey(seed), n, T, pad_to=pad_to)
    mask = jnp.arange(pad_to) >= pad_to - T
    return float(jnp.mean(_correct(sol.model, sol.params, x, y, mask)))


def four_pairs_correct(sol: Solution, params, T: int, key) -> jax.Array:
    """For each of ``params``' weight sets (a pytree with a leading axis), how many of bit
    relay's four sign pairs ``(s_1, s_2)`` its model classifies correctly on one shared
    noise path from ``key``: the quantity the one-unit SRNN argument bounds by 3."""
    e = 0.1 * jax.random.normal(key, (T,))
    s = jnp.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])  # (4, 2) pairs
    x = jnp.zeros((4, T)).at[:, 0].set(s[:, 0]).at[:, T // 2].set(s[:, 1]) + e[None, :]
    y = jnp.array([1, 1, 0, 0], jnp.int32)
    model = sol.model
    one = lambda p: jnp.sum(M.per_example(model, M.logits(model, p, x[..., None]), y)[1])  # noqa: E731
    return jax.vmap(one)(params)


def table(lengths=LENGTHS, presets=PRESETS, n: int = 1000, seed: int = 20_000) -> pd.DataFrame:
    """One row per cell, task, units and preset: whether a solution exists and, for a
    construction, its accuracy at each of ``lengths`` on fresh data (seed ``seed + T``).

    Columns: ``cell, task, units, preset, solution`` (``constructed`` or the argument that
    none exists), ``acc_T<T>`` per length (NaN without a construction), ``min_acc``.
    """
    rows = []
    for task, units in CASES:
        for cell in CELLS:
            for preset in presets:
                sol = construct(cell, task, units, preset)
                row = {"cell": cell, "task": task, "units": units, "preset": preset}
                accs = [accuracy(sol, T, seed + T, n) if sol.params is not None else np.nan for T in lengths]
                row["solution"] = "constructed" if sol.params is not None else sol.why
                row |= {f"acc_T{T}": a for T, a in zip(lengths, accs)}
                row["min_acc"] = min(accs) if sol.params is not None else np.nan
                rows.append(row)
    return pd.DataFrame(rows)
