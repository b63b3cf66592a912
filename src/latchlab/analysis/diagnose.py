"""Diagnostics: why a recurrent cell does, or does not, carry a bit across time.

Measurements of one model (a cell and its head) on a batch of sequences, each a tidy
DataFrame that a reader can check and a report can aggregate:

* ``gradient_through_time``: ``||dL/dh_t||`` against ``t`` (and, for an LSTM,
  ``||dL/dc_t||`` and the whole state's ``||dL/d(h_t, c_t)||``), per class: where the
  gradient of the loss vanishes on its way back to the step that carried the label.
* ``retention``: the per-step retention of the state: the LSTM forget gate ``f_t``, the GRU
  update gate ``z_t`` (``h_t = z_t h_{t-1} + (1 - z_t) h~_t``), JANET's forget gate, and
  for the SRNN the local contraction ``|U (1 - h_t^2)|`` (its exact ``dh_t/dh_{t-1}`` for
  one unit); every gate's value along positive and negative sequences; and
  ``half_life(f) = ln 0.5 / ln f``, the steps after which a retention ``f`` keeps half.
* ``fixed_points``: the fixed points of the input-free map ``s -> step(s, x = 0)`` and
  their stability (spectral radius of the map's Jacobian; ``KINDS``, with a class for a
  line of marginal fixed points), and the map's class (``dynamics``: bistable, a
  marginal line, monostable, none of them); ``trajectories``: the states
  of positive and negative sequences; ``boundary``: the head's decision boundary.
* ``analyse``: all of these for a list of parameters (e.g. a member after every epoch),
  every epoch one vmapped array axis in one compiled call; ``member``: the same for a
  stored member, on its own validation data regenerated as the sweep made it;
  ``summary``: one row of summary numbers per epoch. All of it is per class: a model with
  a classification head (``dense2``, ``dense1``), a member of a classification task
  (``catalog.CLASS_TASKS``); ``adding`` and ``copy`` members are refused in one line.

Keras 3 models come in through ``latchlab.core.interop.from_keras`` (its ``model`` and
``params``); the cell's update and the head are ``latchlab.core``'s own (``cells.step_gates``,
``model.read_out``), so the states measured here are the model's.

Conventions: ``t = 1 .. T`` counts steps, ``h_t`` is the state after step ``t`` (``h_0 = 0``);
classes are the labels ``y`` (``1``: positive, the latch task's ``s_0 = +1``).
Figures are drawn from the frames alone by ``latchlab.analysis.diagnose_plot``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple, Sequence, cast

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from latchlab.analysis import members
from latchlab.core import catalog, cells
from latchlab.core import model as M
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError

RETENTION = {"srnn": "contraction", "lstm": "f", "lstm_nofg": "f", "gru": "z", "janet": "f"}
"""The per-step retention factor of each cell, as named in ``retention`` frames."""
LSTMS = ("lstm", "lstm_nofg")
"""The cells whose state is ``(h, c)``."""


# ----------------------------------------------------------------------------- traced scan


def gate_names(cell: Cell) -> tuple[str, ...]:
    """The per-step factors ``measure`` records for ``cell`` (the ``gates`` axis), in order:

    srnn:      contraction = |U_jj (1 - h_j^2)| (unit j's self-feedback factor; for one
               unit exactly |dh_t / dh_{t-1}|)
    lstm:      i, f, o (the gates of ``cells.step_gates``)
    lstm_nofg: i, o, and f = 1
    gru:       z, r (h = z h_prev + (1 - z) h~: z retains)
    janet:     f = rsig(s), i = rsig(1 - s)
    """
    return {
        "srnn": ("contraction",),
        "lstm": ("i", "f", "o"),
        "lstm_nofg": ("i", "f", "o"),
        "gru": ("z", "r"),
        "janet": ("f", "i"),
    }[cell.kind]


def _factors(cell: Cell, cp, new, blocks):
    """``gate_names(cell)``'s values (B, G, H) after a step, from ``cells.step_gates``' output."""
    if cell.kind == "srnn":
        diag = cells.lead(jnp.diagonal(cp["recurrent"]), 2)
        blocks = {"contraction": jnp.abs(diag * (1.0 - new * new))}
    elif cell.kind == "lstm_nofg":
        blocks = {**blocks, "f": jnp.ones_like(blocks["i"])}
    return jnp.stack([blocks[g] for g in gate_names(cell)], 1)


class Measures(NamedTuple):
    """Everything measured on one batch (arrays; an extra leading axis E over epochs).

    Attributes:
        h: (B, T, H) states after each step; c: (B, T, H) LSTM cell states (zeros otherwise).
        gates: (B, T, G, H) gate values, G in ``gate_names(cell)`` order.
        grad_h: (B, T, H) ``dl_b/dh_t`` of each example's own loss ``l_b`` (``c_t`` held).
        grad_c: (B, T, H) ``dl_b/dc_t`` (``h_t`` held; zeros for cells without ``c``).
        loss: (B,) cross-entropy; correct: (B,) 1 where the prediction is right.
    """

    h: jax.Array
    c: jax.Array
    gates: jax.Array
    grad_h: jax.Array
    grad_c: jax.Array
    loss: jax.Array
    correct: jax.Array


def measure(model: M.Model, params, x, y) -> Measures:
    """Run the model over ``x`` recording states and gates, and back-propagate each
    example's loss to every state.

    ``dl/dh_t`` is the gradient of the example's loss with respect to a perturbation
    ``e_t`` added to the state after step ``t`` (``h_t <- h_t + e_t``), at ``e = 0``: the
    derivative with respect to ``h_t`` as a state variable, holding ``c_t`` (the LSTM's
    other state) fixed; likewise ``dl/dc_t``. At ``t = T``, ``dl/dh_T`` is the head's own
    gradient and ``dl/dc_T = 0`` (the head reads ``h_T`` only).

    Args:
        model: cell and head. params: ``{"cell", "head"}``.
        x: (B, T, F) inputs (unpadded). y: (B,) integer labels.
    Returns:
        ``Measures``.
    """
    cell, cp = model.cell, params["cell"]
    xw = jnp.swapaxes(cells.input_projection(cell, cp, x), 0, 1)  # (T, B, G*H)
    B, T, H = x.shape[0], x.shape[1], cell.units
    lstm = cell.kind in LSTMS

    def run(eh, ec):
        def body(carry, inp):
            xw_t, eh_t, ec_t = inp
            new, blocks = cells.step_gates(cell, cp, carry, xw_t)
            g = _factors(cell, cp, new, blocks)
            new = (new[0] + eh_t, new[1] + ec_t) if lstm else new + eh_t
            h, c = new if lstm else (new, jnp.zeros_like(cast(jax.Array, new)))
            return new, (h, c, g)

        carry0 = cells.initial_carry(cell, B, xw.dtype)
        carry, (h, c, g) = jax.lax.scan(body, carry0, (xw, eh, ec))
        loss_b, ok = M.per_example(model, M.read_out(model, params["head"], cells.output(cell, carry)), y)
        return jnp.sum(loss_b), (h, c, g, loss_b, ok)

    zeros = jnp.zeros((T, B, H), xw.dtype)
    (gh, gc), (h, c, g, loss_b, ok) = jax.grad(run, argnums=(0, 1), has_aux=True)(zeros, zeros)
    bt = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731  (T, B, ...) -> (B, T, ...)
    return Measures(bt(h), bt(c), bt(g), bt(gh), bt(gc), loss_b, ok)


@partial(jax.jit, static_argnums=0)
def _measure_epochs(model, params, x, y):
    return jax.vmap(lambda p: measure(model, p, x, y))(params)


def _stack(params_list):
    return jax.tree.map(lambda *a: jnp.stack([jnp.asarray(v, jnp.float32) for v in a]), *params_list)


def _as_list(params):
    return list(params) if isinstance(params, (list, tuple)) else [params]


def _check_batch(model: M.Model, x, y):
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    if x.ndim != 3 or x.shape[2] != model.n_in or y.shape != (x.shape[0],):
        raise ConfigError("x", f"need x (B, T, {model.n_in}) and y (B,), got {tuple(x.shape)} and {tuple(y.shape)}")
    return x, y


# ----------------------------------------------------------------------------- frames


def half_life(f):
    """The memory half-life ``ln 0.5 / ln f`` in steps of a per-step retention ``f``:
    ``f^n = 0.5`` at ``n`` steps (``inf`` for ``f >= 1``, ``0`` for ``f = 0``)."""
    f = np.asarray(f, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(0.5) / np.log(np.clip(f, 0.0, None))
    return np.where(f >= 1.0, np.inf, np.where(f <= 0.0, 0.0, out))


def _per_class(values, y, epochs):
    """Rows ``epoch, t, class`` with mean / median / std over each class's examples.

    ``values``: (E, B, T) per-example values.
    """
    rows = []
    for e, ep in enumerate(epochs):
        for k in (0, 1):
            v = values[e][y == k]  # (n_k, T)
            if v.shape[0] == 0:
                continue
            T = v.shape[1]
            rows.append(
                pd.DataFrame(
                    {
                        "epoch": ep,
                        "t": np.arange(1, T + 1),
                        "class": k,
                        "mean": v.mean(0),
                        "median": np.median(v, 0),
                        "std": v.std(0),
                        "n": v.shape[0],
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def state_gradient_norms(m: Measures) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per example and step (..., B, T): ``||dl/dh_t||``, ``||dl/dc_t||`` (0 without ``c``)
    and the whole state's ``||dl/ds_t|| = sqrt(||dl/dh_t||^2 + ||dl/dc_t||^2)``, ``s_t = (h_t, c_t)``
    (for an LSTM; ``= ||dl/dh_t||`` for the other cells, whose state is ``h``), float64."""
    gh = np.linalg.norm(np.asarray(m.grad_h, np.float64), axis=-1)
    gc = np.linalg.norm(np.asarray(m.grad_c, np.float64), axis=-1)
    return gh, gc, np.sqrt(gh * gh + gc * gc)


def _grad_frame(m: Measures, y, epochs, lstm: bool) -> pd.DataFrame:
    gh, gc, gs = state_gradient_norms(m)  # (E, B, T)
    parts = [("h", gh), ("c", gc), ("whole", gs)] if lstm else [("h", gh), ("whole", gs)]
    frames = []
    for state, v in parts:
        d = _per_class(v, y, epochs).rename(
            columns={"mean": "grad_norm", "median": "grad_norm_median", "std": "grad_norm_std"}
        )
        d.insert(3, "state", state)
        frames.append(d)
    return pd.concat(frames, ignore_index=True)


def _retention_frame(m: Measures, y, epochs, cell: Cell) -> pd.DataFrame:
    g = np.asarray(m.gates, np.float64)  # (E, B, T, G, H)
    frames = []
    for k, name in enumerate(gate_names(cell)):
        for u in range(cell.units):
            d = _per_class(g[:, :, :, k, u], y, epochs).rename(
                columns={"mean": "value", "median": "value_median", "std": "value_std"}
            )
            d.insert(3, "gate", name)
            d.insert(4, "unit", u)
            d.insert(5, "retention", name == RETENTION[cell.kind])
            frames.append(d)
    return pd.concat(frames, ignore_index=True)


def _trajectory_frame(m: Measures, y, epochs, n_examples: int, lstm: bool) -> pd.DataFrame:
    h, c = np.asarray(m.h), np.asarray(m.c)  # (E, B, T, H)
    E, B, T, H = h.shape
    rows = []
    for e, ep in enumerate(epochs):
        for k in (0, 1):
            idx = np.flatnonzero(y == k)
            if idx.size == 0:
                continue
            pick = [(j, h[e, i], c[e, i]) for j, i in enumerate(idx[:n_examples])]
            pick.append((-1, h[e, idx].mean(0), c[e, idx].mean(0)))
            for j, hh, cc in pick:
                for u in range(H):
                    rows.append(
                        pd.DataFrame(
                            {
                                "epoch": ep,
                                "t": np.arange(T + 1),
                                "class": k,
                                "example": j,
                                "unit": u,
                                "h": np.concatenate([[0.0], hh[:, u]]),
                                "c": np.concatenate([[0.0], cc[:, u]]) if lstm else np.nan,
                            }
                        )
                    )
    return pd.concat(rows, ignore_index=True)


def gradient_through_time(model: M.Model, params, x, y) -> pd.DataFrame:
    """``||dl/dh_t||`` and the whole state's ``||dl/ds_t||`` against ``t``, per class, over a
    batch (see ``measure`` and ``state_gradient_norms``).

    Args:
        model: cell and head. params: ``{"cell", "head"}``.
        x: (B, T, F) inputs; y: (B,) labels.
    Returns:
        one row per ``(t, class, state)``: columns ``epoch`` (0), ``t`` (1..T), ``class``,
        ``state`` (``h``; ``c`` for LSTMs; ``whole``: the whole state ``(h, c)`` of an LSTM,
        ``h`` for the other cells), ``grad_norm`` (mean over the class's examples of the
        Euclidean norm over units), ``grad_norm_median``, ``grad_norm_std``, ``n`` (examples).
    """
    out = analyse(model, [params], x, y, parts=("gradients",)).gradients
    assert out is not None  # analyse computes every part asked for
    return out


def retention(model: M.Model, params, x, y) -> pd.DataFrame:
    """Every gate's value along the sequences, per class (see ``gate_names``).

    Returns:
        one row per ``(t, class, gate, unit)``: columns ``epoch`` (0), ``t``, ``class``,
        ``gate``, ``unit``, ``retention`` (True for the cell's retention factor,
        ``RETENTION``), ``value`` (mean over the class), ``value_median``, ``value_std``, ``n``.
    """
    out = analyse(model, [params], x, y, parts=("retention",)).retention
    assert out is not None  # analyse computes every part asked for
    return out


def trajectories(model: M.Model, params, x, y, n_examples: int = 5) -> pd.DataFrame:
    """The states of the first ``n_examples`` sequences of each class and the class mean.

    Returns:
        one row per ``(class, example, unit, t)``, ``t = 0 .. T`` (``h_0 = 0``): columns
        ``epoch`` (0), ``t``, ``class``, ``example`` (index within the class; ``-1`` for the
        class mean), ``unit``, ``h``, ``c`` (LSTMs; NaN otherwise).
    """
    out = analyse(model, [params], x, y, n_examples=n_examples, parts=("trajectories",)).trajectories
    assert out is not None  # analyse computes every part asked for
    return out


# ----------------------------------------------------------------------------- head


class Boundary(NamedTuple):
    """A one-unit head's decision boundary: it predicts class 1 where ``h > h`` if
    ``positive_above`` else where ``h < h``. ``h`` is NaN (and every state gets one
    class) when the head's weight difference is 0, and NaN for more than one unit."""

    h: float
    positive_above: bool


def boundary(model: M.Model, params) -> Boundary:
    """The state at which the head's prediction flips (one unit).

    dense2: logits ``h k_j + b_j`` are equal at ``h* = (b_0 - b_1) / (k_1 - k_0)``, class 1
    above it iff ``k_1 > k_0``. dense1: the logit ``h k + b`` is 0 at ``h* = -b / k``, class
    1 above it iff ``k > 0``.
    """
    k = np.asarray(params["head"]["kernel"], np.float64)
    b = np.asarray(params["head"]["bias"], np.float64)
    if model.cell.units != 1:
        return Boundary(math.nan, True)
    slope, offset = (k[0, 1] - k[0, 0], b[1] - b[0]) if model.head == "dense2" else (k[0, 0], b[0])
    if slope == 0:
        return Boundary(math.nan, offset > 0)
    return Boundary(float(-offset / slope), bool(slope > 0))


# ----------------------------------------------------------------------------- fixed points


def _free_map(cell: Cell, cp):
    """The input-free map on one state, ``carry (1, H) -> carry`` with ``x = 0``."""
    n_in = cp["kernel"].shape[0]
    xw = cells.input_projection(cell, cp, jnp.zeros((1, n_in), jnp.float32))  # (1, G*H)
    return lambda carry: cells.step(cell, cp, carry, xw)


def _flat_map(cell: Cell, cp):
    """The input-free map on a flat state vector ``s`` (H or 2H for LSTMs)."""
    F, H, lstm = _free_map(cell, cp), cell.units, cell.kind in LSTMS

    def f(s):
        carry = (s[None, :H], s[None, H:]) if lstm else s[None, :]
        new = F(carry)
        return jnp.concatenate([new[0][0], new[1][0]]) if lstm else new[0]

    return f


@partial(jax.jit, static_argnums=0)
def _jacobian(cell, cp, s):
    return jax.jacfwd(_flat_map(cell, cp))(s)


@partial(jax.jit, static_argnums=0)
def _residual_1d(cell, cp, hs):
    """For one unit, fixed points are the roots of a function of the state ``h`` alone
    (the gates of ``cells.step_gates`` at ``x = 0`` depend on ``h`` only):

    srnn:      ``r(h) = tanh(b + U h) - h``.
    gru:       ``r(h) = (1 - z)(h~ - h)`` (``h = z h + (1 - z) h~``); 0 on a whole interval
               where ``z`` is 1 (a line of fixed points: the state is kept as it is).
    janet:     ``r(c) = -(1 - f) c + i tanh(g)`` (``h = c``, not bounded by 1).
    lstm:      where ``f < 1`` a fixed point has ``c = f c + i g``, so ``c*(h) = i g / (1 - f)``
               and ``h = o tanh(c*)``: ``r(h) = o tanh(c*(h)) - h``, state ``(h, c*(h))``.
               Where ``f = 1`` (a saturated gate: a perfect integrator) it is ``lstm_nofg``'s.
    lstm_nofg: ``c = c + i g`` needs ``r(h) = i(h) g(h) = 0``; then ``c = atanh(h / o)``; 0 on
               a whole interval where ``i g`` is 0 (a line of fixed points).
    ``1 - f``, ``1 - z`` are those of the float32 gates the step multiplies by, so a gate
    that rounds to 1 is the integrator the step computes.

    Returns ``r`` (n,), the candidate state (n, S) at each ``h``, and ``piece`` (n,): which
    formula gave ``r`` (0, or 1 where an LSTM's ``f = 1``); ``r`` is continuous within a piece.
    """
    n_in = cp["kernel"].shape[0]
    h = hs[:, None]  # (n, 1)
    xw = jnp.tile(cells.input_projection(cell, cp, jnp.zeros((1, n_in), hs.dtype)), (h.shape[0], 1))
    piece = jnp.zeros(hs.shape, jnp.int32)
    if cell.kind == "srnn":
        return (cells.step(cell, cp, h, xw) - h)[:, 0], h, piece
    if cell.kind == "janet":
        _, b = cells.step_gates(cell, cp, h, xw)
        return (-(1.0 - b["f"]) * h + b["i"] * b["c"])[:, 0], h, piece
    if cell.kind == "gru":
        _, b = cells.step_gates(cell, cp, h, xw)
        return ((1.0 - b["z"]) * (b["h"] - h))[:, 0], h, piece
    _, b = cells.step_gates(cell, cp, (h, jnp.zeros_like(h)), xw)
    i, g, o = b["i"], b["c"], b["o"]
    ratio = h / o
    c_free = jnp.where(jnp.abs(ratio) < 1.0, jnp.arctanh(jnp.clip(ratio, -0.999999, 0.999999)), jnp.nan)
    integrate = jnp.where(jnp.isnan(c_free), jnp.nan, i * g)  # no fixed point where |h| >= o
    if cell.kind == "lstm_nofg":
        return integrate[:, 0], jnp.concatenate([h, c_free], 1), piece
    one_minus_f = 1.0 - b["f"]
    held = one_minus_f > 0
    c = jnp.where(held, i * g / jnp.where(held, one_minus_f, 1.0), c_free)
    r = jnp.where(held, o * jnp.tanh(c) - h, integrate)
    return r[:, 0], jnp.concatenate([h, c], 1), (~held[:, 0]).astype(jnp.int32)


def _roots_1d(fn, grid, piece=None) -> list[tuple[float, float, float]]:
    """Roots of a scalar function as ``(root, lo, hi)``: ``brentq`` in every grid interval
    where the sign changes (``lo = hi = root``; a root where the function only touches 0
    is missed), and each run of grid points where it is exactly 0 (``lo``, ``hi``: the
    run's ends; the root: its middle point), e.g. a line of fixed points. ``piece`` (one
    label per grid point): the function is continuous only within a piece, so intervals
    that cross from one piece to another are not searched."""
    from scipy.optimize import brentq

    r = np.asarray(fn(grid), np.float64)
    piece = np.zeros(len(grid), int) if piece is None else np.asarray(piece)
    out = []
    zero = np.r_[False, r == 0.0, False]
    starts, ends = np.flatnonzero(~zero[:-1] & zero[1:]), np.flatnonzero(zero[:-1] & ~zero[1:])
    for a, b in zip(starts, ends):  # grid[a:b] == 0
        out.append((float(grid[(a + b - 1) // 2]), float(grid[a]), float(grid[b - 1])))
    same = piece[:-1] == piece[1:]
    for a, b, ra, rb, ok in zip(grid[:-1], grid[1:], r[:-1], r[1:], same):
        if ok and np.isfinite(ra) and np.isfinite(rb) and ra * rb < 0:
            v = brentq(lambda v: float(fn(np.array([v]))[0]), float(a), float(b), xtol=1e-9)
            out.append((v, v, v))
    return sorted(out)


def _classify(cell: Cell, cp, s, tol: float = 1e-4):
    J = np.asarray(_jacobian(cell, cp, jnp.asarray(s, jnp.float32)), np.float64)
    eig = np.linalg.eigvals(J)
    lead = eig[np.argmax(np.abs(eig))]
    radius = float(np.abs(lead))
    kind = "stable" if radius < 1 - tol else "unstable" if radius > 1 + tol else "marginal"
    return float(lead.real), radius, kind


KINDS = ("stable", "unstable", "marginal", "marginal_line")
"""The ``kind`` of a fixed point (``fixed_points``)."""


def fixed_points(model: M.Model | Cell, params, grid: int = 4001, starts: int = 400, seed: int = 0) -> pd.DataFrame:
    """Fixed points ``s* = F(s*)`` of the input-free map ``F(s) = step(s, x = 0)`` and their
    stability.

    One unit: the roots of ``_residual_1d`` over ``h`` in ``(-1, 1)`` (``grid`` points,
    refined by ``brentq``; JANET's unbounded state over ``tan(pi u / 2)``, ``u`` in
    ``(-1, 1)``): every fixed point where the residual changes sign. More
    units: Newton's method on ``F(s) - s`` from ``starts`` random states, deduplicated
    (may miss fixed points). Stability from the eigenvalues of ``dF/ds`` at ``s*``: stable
    if the spectral radius is below 1, unstable above, marginal at 1 (``1e-4`` tolerance);
    ``marginal_line`` for a line of fixed points (one unit: a run of grid points where the
    residual is exactly 0), e.g. a gate saturated at exactly 1 by a hard sigmoid (an LSTM or
    JANET with ``f = 1``, a GRU with ``z = 1``: a perfect integrator, every state on the
    line stays where it is) or an lstm_nofg whose input gate is shut. ``KINDS`` lists them.

    For the one-unit SRNN ``h = tanh(w h + b)``, the slope is ``w (1 - h*^2)``; with ``b = 0``
    the map has the fixed point 0, stable iff ``|w| < 1``, and for ``w > 1`` two more
    stable ones ``±h̄`` (bistable: Bengio et al. 1994, Fig. 1).

    Args:
        model: the model (or its cell). params: ``{"cell", "head"}`` (or the cell's).
    Returns:
        one row per fixed point: columns ``h``, ``c`` (LSTMs; NaN otherwise), ``slope``
        (the eigenvalue of largest modulus, real part; for a one-dimensional state the
        derivative ``F'(h*)``), ``radius``, ``stable`` (bool), ``kind``, ``h_lo``, ``h_hi``
        (equal to ``h``, except for a line of fixed points: a run of grid points where the
        residual is exactly 0, e.g. a saturated hard-sigmoid gate; ``h`` is then its middle
        and ``kind`` "marginal_line"), ``state`` (the whole state vector); rows sorted by ``h``
        (unit 0). More units: ``h`` and ``c`` hold unit 0.
    """
    cell = model.cell if isinstance(model, M.Model) else model
    cp = params["cell"] if "cell" in params else params
    cp = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), cp)
    lstm, H = cell.kind in LSTMS, cell.units
    states = []
    if H == 1:
        hs = np.linspace(-1.0, 1.0, grid)[1:-1]
        if cell.kind == "janet":  # its state c = h is not bounded by tanh: search all of R
            hs = np.tan(0.5 * np.pi * hs)
        else:  # a strong latch's attractors lie within 1e-3 of ±1 (U + b > 4.15: tanh(4.15) = 0.9995),
            # past the last grid point: points towards ±1 at 3e-4 ... 1e-7 (float32's ulp there), and ±1
            edge = 1.0 - np.logspace(-3.5, -7.0, 8)
            hs = np.unique(np.r_[-1.0, -edge, hs, edge, 1.0].astype(np.float32)).astype(np.float64)
        fn = lambda v: np.asarray(_residual_1d(cell, cp, jnp.asarray(v, jnp.float32))[0])  # noqa: E731
        piece = np.asarray(_residual_1d(cell, cp, jnp.asarray(hs, jnp.float32))[2])
        for h, lo, hi in _roots_1d(fn, hs, piece):
            s = np.asarray(_residual_1d(cell, cp, jnp.asarray([h], jnp.float32))[1][0], np.float64)
            if np.all(np.isfinite(s)):
                states.append((s, lo, hi))
    else:
        states = [(s, s[0], s[0]) for s in _newton_points(cell, cp, starts, seed)]
    rows = []
    for s, lo, hi in states:
        slope, radius, kind = _classify(cell, cp, s)
        if hi > lo:
            kind = "marginal_line"  # a line of fixed points: neutral along it
        rows.append(
            {
                "h": float(s[0]),
                "c": float(s[H]) if lstm else math.nan,
                "slope": slope,
                "radius": radius,
                "stable": kind == "stable",
                "kind": kind,
                "h_lo": float(lo),
                "h_hi": float(hi),
                "state": tuple(float(v) for v in s),
            }
        )
    cols = ["h", "c", "slope", "radius", "stable", "kind", "h_lo", "h_hi", "state"]
    return pd.DataFrame(rows, columns=cols).sort_values("h", ignore_index=True)


@partial(jax.jit, static_argnums=(0, 3))
def _newton(cell, cp, s0, iters=60):
    f = _flat_map(cell, cp)

    def one(s):
        def body(s, _):
            J = jax.jacfwd(f)(s)
            r = f(s) - s
            step = jnp.linalg.solve(J - jnp.eye(s.shape[0], dtype=s.dtype), r)
            return s - jnp.clip(step, -0.5, 0.5), None

        s, _ = jax.lax.scan(body, s, None, length=iters)
        return s, jnp.max(jnp.abs(f(s) - s))

    return jax.vmap(one)(s0)


def _newton_points(cell: Cell, cp, starts: int, seed: int, tol: float = 1e-5) -> list[np.ndarray]:
    H = cell.units
    S = 2 * H if cell.kind in LSTMS else H
    lo = np.r_[-np.ones(H), -3 * np.ones(S - H)]
    s0 = lo + (-2 * lo) * np.random.default_rng(seed).random((starts, S))
    s, res = _newton(cell, cp, jnp.asarray(s0, jnp.float32))
    s, res = np.asarray(s, np.float64), np.asarray(res)
    out: list[np.ndarray] = []
    for v in s[(res < tol) & np.all(np.isfinite(s), 1)]:
        if all(np.max(np.abs(v - w)) > 1e-3 for w in out):
            out.append(v)
    return out


# ----------------------------------------------------------------------------- everything


@dataclass
class Diagnostics:
    """All frames of ``analyse`` (each with an ``epoch`` column) and their summary.

    Attributes:
        model: the model. epochs: the epoch labels.
        gradients, retention, trajectories: per-step frames (see the functions of those names).
        fixed_points: ``fixed_points`` rows with an ``epoch`` column.
        boundary: one row per epoch: ``epoch, h, positive_above``.
        summary: ``summary`` rows, one per epoch.
        info: what was diagnosed (member id, configuration, data), for titles and reports.
    """

    model: M.Model
    epochs: list
    gradients: pd.DataFrame | None = None
    retention: pd.DataFrame | None = None
    trajectories: pd.DataFrame | None = None
    fixed_points: pd.DataFrame | None = None
    boundary: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    info: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.info.get("label", f"{self.model.cell.kind} ({self.model.cell.units} unit(s))")


PARTS = ("gradients", "retention", "trajectories", "fixed_points", "boundary", "summary")


def analyse(
    model: M.Model, params, x, y, epochs: Sequence | None = None, n_examples: int = 5, parts: Sequence[str] = PARTS
) -> Diagnostics:
    """Every diagnostic of ``model`` at each of a list of parameter sets, on one batch.

    The parameter sets are one array axis of a single compiled, vmapped ``measure``.

    Args:
        model: cell and head.
        params: ``{"cell", "head"}``, or a list of them (e.g. after each epoch).
        x: (B, T, F) inputs; y: (B,) labels (0/1).
        epochs: a label per parameter set (default 0, 1, ...).
        n_examples: sequences per class in ``trajectories``.
        parts: which frames to compute (``PARTS``).
    Returns:
        ``Diagnostics``.
    """
    if model.head not in catalog.HEADS:
        raise ConfigError(
            "head",
            f"diagnostics measure a classifier (a 0/1 label per sequence, per class), not head {model.head!r}",
            catalog.HEADS,
        )
    plist = _as_list(params)
    epochs = list(range(len(plist))) if epochs is None else list(epochs)
    if len(epochs) != len(plist):
        raise ConfigError("epochs", f"{len(epochs)} labels for {len(plist)} parameter sets")
    bad = [p for p in parts if p not in PARTS]
    if bad:
        raise ConfigError("parts", f"unknown {bad}", PARTS)
    x, y = _check_batch(model, x, y)
    yn = np.asarray(y)
    out = Diagnostics(model, epochs)
    lstm = model.cell.kind in LSTMS
    need = {"gradients", "retention", "trajectories", "summary"} & set(parts)
    m = jax.device_get(_measure_epochs(model, _stack(plist), x, y)) if need else None
    if "gradients" in parts:
        assert m is not None  # computed whenever gradients, retention, trajectories or summary are asked for
        out.gradients = _grad_frame(m, yn, epochs, lstm)
    if "retention" in parts:
        assert m is not None
        out.retention = _retention_frame(m, yn, epochs, model.cell)
    if "trajectories" in parts:
        assert m is not None
        out.trajectories = _trajectory_frame(m, yn, epochs, n_examples, lstm)
    if {"fixed_points", "summary"} & set(parts):
        fps = [fixed_points(model, p).assign(epoch=e) for e, p in zip(epochs, plist)]
        fp = pd.concat(fps, ignore_index=True)
        out.fixed_points = cast(pd.DataFrame, fp[["epoch", *[c for c in fp.columns if c != "epoch"]]])
    if {"boundary", "summary"} & set(parts):
        bs = [boundary(model, p) for p in plist]
        out.boundary = pd.DataFrame(
            {"epoch": epochs, "h": [b.h for b in bs], "positive_above": [b.positive_above for b in bs]}
        )
    if "summary" in parts:
        assert m is not None
        out.summary = _summary(model, plist, epochs, m, yn, out.fixed_points, out.boundary)
    return out


def _summary(model, plist, epochs, m: Measures, y, fp, bd) -> pd.DataFrame:
    cell = model.cell
    lstm = cell.kind in LSTMS
    g_h, _, g_s = state_gradient_norms(m)  # (E, B, T)
    k = gate_names(cell).index(RETENTION[cell.kind])
    ret = np.asarray(m.gates, np.float64)[:, :, 1:, k, :]  # (E, B, T-1, H): steps 2..T
    h = np.asarray(m.h, np.float64)
    blk = {"srnn": "h", "lstm": "c", "lstm_nofg": "c", "gru": "h", "janet": "c"}[cell.kind]
    kb = cell.gates.index(blk) * cell.units
    kr = cell.gates.index(RETENTION[cell.kind]) * cell.units if RETENTION[cell.kind] in cell.gates else None
    rows = []
    for e, ep in enumerate(epochs):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = g_h[e, :, 0] / g_h[e, :, -1]
            ratio_s = g_s[e, :, 0] / g_s[e, :, -1]
            logr = np.log(np.clip(ret[e], 1e-300, None))  # (B, T-1, H)
        # over batch, steps and units, as retention_mean is (SUMMARY_COLUMNS); it was a mean over
        # units of each unit's geometric mean, and the half-life a mean of the units' half-lives,
        # which one slow unit of eight dominated (10x the half-life of the documented rate)
        geo = float(np.exp(logr.mean())) if ret.shape[2] else math.nan
        fpe = fp[fp.epoch == ep]
        b = bd[bd.epoch == ep].iloc[0]
        cp = plist[e]["cell"]
        bias = np.asarray(cp["bias"])
        bias = bias[0] if cell.split_bias else bias
        row = {
            "epoch": ep,
            "loss": float(np.mean(m.loss[e])),
            "accuracy": float(np.mean(m.correct[e])),
            "grad_first": float(np.mean(g_h[e, :, 0])),
            "grad_last": float(np.mean(g_h[e, :, -1])),
            "grad_first_state": float(np.mean(g_s[e, :, 0])),
            "grad_last_state": float(np.mean(g_s[e, :, -1])),
            "grad_ratio_median": float(np.median(ratio)),
            "grad_ratio_state_median": float(np.median(ratio_s)),
            "retention_gate": RETENTION[cell.kind],
            "retention_mean": float(ret[e].mean()) if ret.shape[2] else math.nan,
            "retention_geomean": geo,
            "half_life": float(half_life(geo)),
            "retained_median": float(np.median(np.exp(logr.sum(1)).mean(-1))) if ret.shape[2] else math.nan,
            "recurrent": float(np.asarray(cp["recurrent"])[0, kb]),
            "bias_retention": float(bias[kr]) if kr is not None else math.nan,
            "n_fixed": len(fpe),
            "n_stable": int(fpe.stable.sum()),
            "bistable": bool(fpe.stable.sum() >= 2),
            "marginal_line": bool((fpe.kind == "marginal_line").any()),
            "dynamics": dynamics(fpe),
            "stable_h": ";".join(f"{v:.4g}" for v in fpe.h[fpe.stable]),
            "boundary_h": float(b.h),
            "positive_above": bool(b.positive_above),
            "hT_pos": float(h[e, y == 1, -1, 0].mean()) if (y == 1).any() else math.nan,
            "hT_neg": float(h[e, y == 0, -1, 0].mean()) if (y == 0).any() else math.nan,
        }
        if not lstm:  # the state is h: equal, without the rounding of the square root
            row["grad_ratio_state_median"] = row["grad_ratio_median"]
            row["grad_first_state"], row["grad_last_state"] = row["grad_first"], row["grad_last"]
        rows.append(row)
    return pd.DataFrame(rows)


DYNAMICS = ("bistable", "marginal_line", "monostable", "no_attractor")
"""The classes of an input-free map, by its fixed points (``dynamics``)."""


def dynamics(fp: pd.DataFrame) -> str:
    """The class of a map from its ``fixed_points`` rows, the first that applies: ``bistable``
    (two or more stable fixed points: a latch, Bengio 1994 Fig. 1), ``marginal_line`` (a line
    of marginal fixed points: a perfect integrator holds any state on it, so it can hold a
    bit too, without attractors), ``monostable`` (one stable fixed point: every state is
    forgotten towards it), ``no_attractor`` (none of these: e.g. only unstable or isolated
    marginal points)."""
    n_stable = int(fp.stable.sum())
    if n_stable >= 2:
        return "bistable"
    if (fp.kind == "marginal_line").any():
        return "marginal_line"
    return "monostable" if n_stable == 1 else "no_attractor"


def summary(model: M.Model, params, x, y, epochs: Sequence | None = None) -> pd.DataFrame:
    """One row per parameter set of summary numbers (``SUMMARY_COLUMNS`` documents them)."""
    out = analyse(model, params, x, y, epochs, parts=("summary",)).summary
    assert out is not None  # analyse computes every part asked for
    return out


SUMMARY_COLUMNS = {
    "epoch": "the epoch (0 = initial parameters)",
    "loss": "mean cross-entropy on the diagnostic batch",
    "accuracy": "accuracy on the diagnostic batch",
    "grad_first": "mean ||dl/dh_1|| over the batch",
    "grad_last": "mean ||dl/dh_T|| over the batch",
    "grad_first_state": "mean ||dl/ds_1|| over the batch, s = (h, c) the LSTM's whole state (= grad_first otherwise)",
    "grad_last_state": "mean ||dl/ds_T|| (= grad_last: the head reads h_T only)",
    "grad_ratio_median": "median over examples of ||dl/dh_1|| / ||dl/dh_T||: < 1 the gradient vanishes going back",
    "grad_ratio_state_median": "the same with the whole state (h, c) of an LSTM (= grad_ratio_median otherwise)",
    "retention_gate": "which factor retains the state: f (LSTM, JANET), z (GRU), contraction (SRNN)",
    "retention_mean": "its mean over the batch and steps 2..T (after the step that writes the signal)",
    "retention_geomean": "its geometric mean over the same (the constant rate with the same product)",
    "half_life": "ln 0.5 / ln retention_geomean: steps until half is kept",
    "retained_median": "median over examples of the product of the retention over steps 2..T",
    "recurrent": "the self-connection of the candidate block (SRNN/GRU h, LSTM/JANET c), unit 0",
    "bias_retention": "the bias of the retention gate (LSTM b_f, GRU b_z, JANET b_f), unit 0",
    "n_fixed": "fixed points of the input-free map",
    "n_stable": "of them stable",
    "bistable": "two or more stable fixed points (a latch: Bengio 1994 Fig. 1)",
    "marginal_line": "the map has a line of marginal fixed points (a gate at exactly 1: a perfect integrator)",
    "dynamics": "bistable, marginal_line (not bistable, but a line of fixed points), monostable (one stable "
    "fixed point) or no_attractor (``DYNAMICS``)",
    "stable_h": "the stable fixed points' h, ';'-separated",
    "boundary_h": "the head's decision boundary h* (one unit)",
    "positive_above": "the head predicts class 1 above h*",
    "hT_pos": "mean h_T of the positive sequences (unit 0)",
    "hT_neg": "mean h_T of the negative sequences (unit 0)",
}
"""The columns of ``summary`` frames and what they mean."""


# ----------------------------------------------------------------------------- stored members


def member_data(row: pd.Series, N: int = 256):
    """A stored member's own data set, made exactly as the sweep made it, and ``N`` of its
    validation sequences (half of each class, in index order).

    The seed's ``tail`` split has a one-class validation set; a class missing from it
    is taken from the training set instead (``source`` says which).

    Returns:
        ``x`` (N, T, 1), ``y`` (N,), and ``source``: ``"validation"`` or
        ``"validation+training"``.
    """
    from latchlab.engine import data as D

    if isinstance(N, bool) or not isinstance(N, int) or N < 2 or N % 2:
        raise ConfigError("N", f"must be an even integer >= 2 (half of it a class), got {N!r}")
    member = members.member_from_row(row)
    data = D.stored_data([member], member.run.T)
    x, y = data.x[0], data.y[0]
    val, tr = np.asarray(data.val[0]), np.asarray(data.train[0])
    pick, source = [], "validation"
    for k, n in ((0, N // 2), (1, N // 2)):
        idx = val[y[val] == k][:n]
        if idx.size < n:
            source = "validation+training"
            idx = np.concatenate([idx, tr[y[tr] == k][: n - idx.size]])
        pick.append(idx)
    idx = np.sort(np.concatenate(pick))
    return x[idx], y[idx], source


def member(
    store, member_id: str, N: int = 256, epochs: Sequence[int] | None = None, n_examples: int = 5
) -> Diagnostics:
    """Every diagnostic of a stored member after each stored epoch (0 = initial), on
    ``N`` sequences of its own validation set (``member_data``).

    Args:
        store: an open ``latchlab.store.Store``.
        member_id: the id or a unique prefix.
        N: sequences (half per class).
        epochs: which epochs (default: all stored).
        n_examples: sequences per class in the trajectories.
    Returns:
        ``Diagnostics`` whose ``info`` holds the member's configuration, its stored
        per-epoch validation accuracy and a label.
    Raises:
        ConfigError: ``task`` for a member of a task outside ``catalog.CLASS_TASKS``.
    """
    row = store.member(member_id)
    mid = row.member_id
    epochs = members.checked_epochs(row, range(int(row.epochs) + 1) if epochs is None else list(epochs))
    run = members.member_from_row(row).run
    if catalog.TARGETS[run.task] != "class":
        raise ConfigError(
            "task",
            f"member {mid} trained on {run.task} ({catalog.TARGETS[run.task]} targets); diagnose measures "
            "members of the classification tasks (gradients, retention and states per class)",
            catalog.CLASS_TASKS,
        )
    plist = [store.params(mid, e) for e in epochs]
    x, y, source = member_data(row, N)
    out = analyse(run.model, plist, x, y, epochs, n_examples)
    ep = store.epochs([mid])[["epoch", "val_acc", "val_loss"]]
    assert out.summary is not None  # analyse computed every part
    out.summary = out.summary.merge(ep, on="epoch", how="left")
    out.info = {
        "member_id": mid,
        "seed": int(row.seed),
        **run.to_dict(),
        "data": source,
        "N": len(y),
        "label": members.label(row),
    }
    return out


def parse_epochs(text: str, last: int) -> list[int]:
    """``--epochs``: ``all`` (0 .. last) or comma-separated epochs in ``[0, last]``."""
    if text.strip() == "all":
        return list(range(last + 1))
    try:
        out = [int(t) for t in text.split(",")]  # an empty item ("0,,1") is no integer, as in every list option
    except ValueError:
        out = []
    if not out or any(not 0 <= e <= last for e in out):
        raise ConfigError("epochs", f"must be 'all' or comma-separated integers in [0, {last}], got {text!r}")
    return sorted(dict.fromkeys(out))
