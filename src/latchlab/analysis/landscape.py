"""Loss landscapes: Pascanu et al. (2013) Fig. 6, and any model's loss over two parameters.

Two pieces, each a pure function of arrays evaluated over a whole grid in one compiled,
vmapped call, returned as a tidy DataFrame (one row per grid point per sequence length):

* ``pascanu``: the single-unit map ``x_t = w sigmoid(x_{t-1}) + b``, ``x_0 = 0.5``, error
  ``(sigmoid(x_T) - 0.7)^2`` over a ``(w, b)`` grid for several ``T`` (Pascanu, Mikolov &
  Bengio 2013, "On the difficulty of training recurrent neural networks", Fig. 6), and
  ``pascanu_paths``: gradient-descent paths on it with and without norm clipping.
* ``surface``: ``latchlab.core.model.loss`` of any cell and head on a fixed batch of a task,
  over two named parameters (``recurrent[0,0]``, ``bias_f``, ``head.kernel[0,1]``, ...)
  around a centre point, all other parameters held at the centre's values.

Sequence lengths are a batch axis too: every ``T`` runs ``max(T)`` steps, and steps past
``T`` (Pascanu) or before ``max(T) - T`` (left-padded model inputs) leave the state
unchanged, which is exact (see ``latchlab.core.tasks`` and ``latchlab.core.cells.scan``).

Figures are drawn from the frames alone by ``latchlab.analysis.landscape_plot``.
"""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Callable, NamedTuple, Sequence, cast

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from latchlab.analysis import members
from latchlab.core import catalog, tasks
from latchlab.core import model as M
from latchlab.engine.data import member_keys
from latchlab.errors import ConfigError
from latchlab.validate import Number, checked

# ----------------------------------------------------------------------------- Pascanu 2013

X0 = 0.5
"""Pascanu's initial state ``x_0``."""
TARGET = 0.7
"""Pascanu's target for ``sigmoid(x_T)``."""
PASCANU_T = (2, 5, 10, 20, 50)
"""The lengths drawn by ``latchlab reproduce pascanu2013`` (Pascanu's panel is T = 50)."""
PASCANU_W = (1.0, 9.0)
"""The ``w`` range of ``reproduce pascanu2013``: the cliff starts at ``w = 4`` (see ``pascanu_cliff``)."""
PASCANU_B = (-6.0, 1.0)
"""The ``b`` range of ``reproduce pascanu2013``."""
PASCANU_STARTS = ((6.0, -2.5), (7.0, -3.0), (7.0, -4.0))
"""Gradient descent's documented starts ``(w, b)``: on the slope above the cliff, where
descent walks downhill into it (on the plateaus either side the gradient is ~0)."""
PASCANU_LR = 3.0
"""Gradient descent's learning rate."""
PASCANU_CLIP = 0.1
"""Pascanu's clipping threshold on ``||g||``: a clipped step is at most ``lr * clip = 0.3`` long."""
PASCANU_STEPS = 100
"""Gradient-descent steps per path."""


def pascanu_state(w, b, T, T_max: int, x0=X0):
    """``x_T`` of the single-unit map ``x_t = w sigmoid(x_{t-1}) + b`` from ``x_0 = x0``.

    Runs ``T_max`` steps; steps ``t >= T`` leave ``x`` unchanged, so ``T`` may be traced
    (a batch axis) while ``T_max`` fixes the compiled loop.

    Args:
        w, b: scalar weight and bias (any float dtype; the result has their dtype).
        T: the number of steps (int, may be traced), ``0 <= T <= T_max``.
        T_max: static loop length.
        x0: initial state.
    Returns:
        ``x_T``.
    """
    x = jnp.asarray(x0, jnp.result_type(w, b))

    def body(x, t):
        return jnp.where(t < T, w * jax.nn.sigmoid(x) + b, x), None

    x, _ = jax.lax.scan(body, x, jnp.arange(T_max))
    return x


def pascanu_loss(theta, T, T_max: int, x0=X0, target=TARGET):
    """Pascanu's error ``E_T(w, b) = (sigmoid(x_T) - target)^2`` at ``theta = (w, b)``."""
    return (jax.nn.sigmoid(pascanu_state(theta[0], theta[1], T, T_max, x0)) - target) ** 2


@partial(jax.jit, static_argnames=("T_max",))
def _pascanu_grid(Ts, w, b, T_max: int):
    # (nT, nb, nw): T outermost, then b (rows), then w (columns)
    def at(T, bb, ww):
        return pascanu_loss(jnp.stack([ww, bb]), T, T_max)

    return jax.vmap(lambda T: jax.vmap(lambda bb: jax.vmap(lambda ww: at(T, bb, ww))(w))(b))(Ts)


def pascanu(T_list: Sequence[int] = PASCANU_T, w_grid=None, b_grid=None) -> pd.DataFrame:
    """Pascanu's error surface ``E_T(w, b)`` over a grid, for every ``T``, in one compiled call.

    Args:
        T_list: sequence lengths (integers >= 1).
        w_grid, b_grid: 1-D grids (default 201 points over ``PASCANU_W`` and ``PASCANU_B``).
    Returns:
        one row per ``(T, b, w)``: columns ``T, w, b, loss``.
    """
    Ts = _lengths(T_list)
    w = np.asarray(np.linspace(*PASCANU_W, 201) if w_grid is None else w_grid, np.float32)
    b = np.asarray(np.linspace(*PASCANU_B, 201) if b_grid is None else b_grid, np.float32)
    loss = np.asarray(_pascanu_grid(jnp.asarray(Ts, jnp.int32), jnp.asarray(w), jnp.asarray(b), max(Ts)))
    T_col, b_col, w_col = np.meshgrid(Ts, b, w, indexing="ij")
    return pd.DataFrame({"T": T_col.ravel(), "w": w_col.ravel(), "b": b_col.ravel(), "loss": loss.ravel()})


def pascanu_cliff(w, x0=X0):
    """Where the large-``T`` surface is discontinuous, for ``w > 0``.

    For ``w > 0`` the map ``f(x) = w sigmoid(x) + b`` is increasing, so the orbit from ``x_0``
    moves monotonically to the nearest fixed point in the direction of ``f(x_0) - x_0``.
    The limit ``x_inf`` jumps from the low attractor to the high one where an *unstable*
    fixed point crosses ``x_0``: ``f(x_0) = x_0``, i.e. ``b = x_0 - w sigmoid(x_0)``, with
    ``f'(x_0) = w sigmoid'(x_0) > 1``, i.e. ``w > 1 / sigmoid'(x_0)`` (4.255 for
    ``x_0 = 0.5``). (Between ``w = 4``, where the two attractors are born, and 4.255 the
    jump runs along a short stretch of the saddle-node curve instead; not returned.)

    Args:
        w: array of weights.
    Returns:
        ``b`` on the cliff, NaN where ``w <= 1 / sigmoid'(x_0)`` (no cliff through ``x_0``).
    """
    w = np.asarray(w, float)
    s = 1.0 / (1.0 + math.exp(-x0))
    return np.where(w * s * (1.0 - s) > 1.0, x0 - w * s, np.nan)


class Path(NamedTuple):
    """A descent path of ``steps`` updates: arrays with a leading axis ``steps + 1``.

    Attributes:
        theta: (S+1, P) the parameters before each step (the last row: after the last).
        loss: (S+1,) the loss at ``theta``.
        grad_norm: (S+1,) ``||dL/dtheta||`` at ``theta``.
        step_norm: (S+1,) the length of the update taken from ``theta`` (0 on the last row).
    """

    theta: jax.Array
    loss: jax.Array
    grad_norm: jax.Array
    step_norm: jax.Array


def clip_by_norm(g, threshold):
    """Pascanu's clipping: ``g <- threshold g / ||g||`` if ``||g|| > threshold``, else ``g``.

    ``threshold = inf`` leaves ``g`` unchanged (plain gradient descent).
    """
    norm = _norm(g)
    return g * jnp.minimum(1.0, threshold / jnp.maximum(norm, jnp.finfo(g.dtype).tiny))


def _norm(v):
    """``||v||``, also where ``sum(v^2)`` overflows float32 (``|v| > 1.8e19``, a gradient on a
    long orbit near an unstable point): then it is taken as ``max|v| ||v / max|v|||``. The
    plain norm gave inf there, so the clipped step was 0 and the plain one NaN: both paths
    stopped, though ``g`` was finite."""
    plain = jnp.sqrt(jnp.sum(v * v))
    m = jnp.max(jnp.abs(v))
    scaled = m * jnp.sqrt(jnp.sum(jnp.square(v / jnp.where(m > 0, m, 1.0))))
    return jnp.where(jnp.isfinite(plain), plain, scaled)


def descend(loss: Callable, theta0, lr, steps: int, clip=jnp.inf) -> Path:
    """Gradient descent ``theta <- theta - lr clip(dL/dtheta)`` for ``steps`` steps.

    Pure and traceable (``lr`` and ``clip`` may be traced, e.g. vmapped); a non-finite
    update stops the path where it is (the state stays put), so that a path thrown off a
    cliff to overflow ends visibly instead of turning into NaNs.

    Args:
        loss: ``theta (P,) -> scalar``.
        theta0: (P,) start.
        lr: learning rate.
        steps: number of updates (static).
        clip: norm threshold (``inf``: none).
    Returns:
        the ``Path``.
    """
    vg = jax.value_and_grad(loss)

    def body(theta, _):
        value, g = vg(theta)
        upd = lr * clip_by_norm(g, clip)
        new = theta - upd
        ok = jnp.all(jnp.isfinite(new))
        new = jnp.where(ok, new, theta)
        step = jnp.where(ok, _norm(upd), 0.0)
        return new, (theta, value, _norm(g), step)

    last, (th, values, gn, sn) = jax.lax.scan(body, jnp.asarray(theta0), None, length=steps)
    l_end, g_end = vg(last)
    cat = lambda a, v: jnp.concatenate([a, v[None]])  # noqa: E731
    return Path(cat(th, last), cat(values, l_end), cat(gn, _norm(g_end)), cat(sn, jnp.zeros((), sn.dtype)))


@partial(jax.jit, static_argnames=("T_max", "steps"))
def _pascanu_paths(Ts, starts, lr, clips, T_max: int, steps: int):
    # (nT, nS, nK, ...): lengths x starts x clipping kinds
    def one(T, start, clip):
        return descend(lambda th: pascanu_loss(th, T, T_max), start, lr, steps, clip)

    return jax.vmap(lambda T: jax.vmap(lambda s: jax.vmap(lambda c: one(T, s, c))(clips))(starts))(Ts)


PATH_KINDS = ("gd", "clipped")


def pascanu_paths(
    T_list: Sequence[int] = PASCANU_T,
    starts=PASCANU_STARTS,
    lr: float = PASCANU_LR,
    steps: int = PASCANU_STEPS,
    clip: float = PASCANU_CLIP,
) -> pd.DataFrame:
    """Gradient-descent paths on Pascanu's surface, plain and with norm clipping.

    For every ``T`` and start, two paths of ``descend``: ``gd`` (``clip = inf``) and
    ``clipped`` (threshold ``clip``); all of them one vmapped, compiled call.

    Args:
        T_list: sequence lengths.
        starts: ``(w, b)`` pairs where paths start (one pair or a list).
        lr: learning rate.
        steps: updates per path.
        clip: the clipping threshold of the ``clipped`` paths.
    Returns:
        one row per ``(T, start, kind, step)``, ``kind`` in ``PATH_KINDS``: columns ``T,
        start, kind, step, w, b, loss, grad_norm, step_norm`` (``start``: the start's index;
        ``step_norm``: the length of the update taken from this row's point).
    """
    Ts = _lengths(T_list)
    starts = np.atleast_2d(np.asarray(starts, np.float32))
    if starts.ndim != 2 or starts.shape[1] != 2 or not np.isfinite(starts).all():
        raise ConfigError("starts", f"must be (w, b) pairs, got {starts.tolist()!r}")
    checked(Number(gt=0), lr, "lr")
    checked(Number(gt=0), clip, "clip")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError("steps", f"must be an integer >= 1, got {steps!r}")
    p = _pascanu_paths(
        jnp.asarray(Ts, jnp.int32),
        jnp.asarray(starts),
        jnp.float32(lr),
        jnp.asarray([jnp.inf, clip], jnp.float32),
        max(Ts),
        steps,
    )
    p = jax.tree.map(np.asarray, p)
    rows = []
    for i, T in enumerate(Ts):
        for s in range(len(starts)):
            for k, kind in enumerate(PATH_KINDS):
                rows.append(
                    pd.DataFrame(
                        {
                            "T": T,
                            "start": s,
                            "kind": kind,
                            "step": np.arange(steps + 1),
                            "w": p.theta[i, s, k, :, 0],
                            "b": p.theta[i, s, k, :, 1],
                            "loss": p.loss[i, s, k],
                            "grad_norm": p.grad_norm[i, s, k],
                            "step_norm": p.step_norm[i, s, k],
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def path_summary(paths: pd.DataFrame) -> pd.DataFrame:
    """Per ``(T, start, kind)``: the final loss, the longest step and the largest gradient
    norm met on the way."""
    g = paths.groupby(["T", "start", "kind"], sort=True)
    return pd.DataFrame(
        {
            "final_loss": g.loss.last(),
            "longest_step": g.step_norm.max(),
            "max_grad_norm": g.grad_norm.max(),
            "final_w": g.w.last(),
            "final_b": g.b.last(),
        }
    ).reset_index()


def _lengths(T_list) -> list[int]:
    Ts = [int(t) for t in T_list]
    if not Ts or any(t < 1 or t != tt for t, tt in zip(Ts, T_list)):
        raise ConfigError("T", f"sequence lengths must be integers >= 1, got {list(T_list)!r}")
    return Ts


# ----------------------------------------------------------------------------- parameter names

_GATE_BASES = ("kernel", "recurrent", "bias")
_INDEXED = re.compile(r"^(?:(cell|head)\.)?([a-z]+)(?:\[\s*(\d+(?:\s*,\s*\d+)*)\s*\])?$")


class Coord(NamedTuple):
    """One scalar parameter: ``params[group][leaf][index]``."""

    name: str
    group: str
    leaf: str
    index: tuple


def parameter_names(model: M.Model, params) -> list[str]:
    """Every name ``parse_name`` accepts for ``model``: gate blocks, then indexed entries
    (written out when a leaf has at most 16 entries, else as a pattern)."""
    out = [f"{b}_{g}" for b in _GATE_BASES for g in model.cell.gates]
    for group in ("cell", "head"):
        for leaf, a in params[group].items():
            prefix = "" if group == "cell" else "head."
            shape = np.shape(a)
            if np.prod(shape) <= 16:
                out += [f"{prefix}{leaf}[{','.join(map(str, i))}]" for i in np.ndindex(shape)]
            else:
                dims = ", ".join(f"{c}<{n}" for c, n in zip("ijk", shape))
                out.append(f"{prefix}{leaf}[{','.join('ijk'[: len(shape)])}] ({dims})")
    return out


def parse_name(model: M.Model, params, name: str, field: str = "names") -> Coord:
    """Resolve a parameter name to its leaf and index.

    Names:
        ``kernel[i,j]``, ``recurrent[i,j]``, ``bias[j]`` (``bias[r,j]`` for a reset_after
        GRU: row 0 input bias, row 1 recurrent bias): one entry of the cell's parameters in
        Keras' layout (``cell.`` may prefix them). ``head.kernel[i,k]``, ``head.bias[k]``:
        the head. A leaf with a single entry may omit its index (``recurrent`` for a
        one-unit SRNN).
        ``kernel_g``, ``recurrent_g``, ``bias_g`` for a gate ``g`` of the cell (Keras order,
        ``cells.GATES``: LSTM ``i f c o``, GRU ``z r h``, SRNN ``h``): the first unit's entry
        of that gate's block: ``kernel[0, k H]``, ``recurrent[0, k H]`` (unit 0's
        self-connection), ``bias[k H]`` (a reset_after GRU: the input bias ``bias[0, k H]``),
        with ``k`` the gate's position.
    Raises:
        ConfigError naming ``field`` and listing the valid names.
    """

    def bad(problem):
        return ConfigError(
            field, f"{problem} for a {model.cell.kind} with {model.cell.units} unit(s)", parameter_names(model, params)
        )

    cell, H = model.cell, model.cell.units
    base, _, gate = name.partition("_")
    if gate:
        if base not in _GATE_BASES or gate not in cell.gates:
            raise bad(f"unknown parameter {name!r}")
        k = cell.gates.index(gate) * H
        if base == "bias":
            index = (0, k) if cell.split_bias else (k,)
        else:
            index = (0, k)
        return Coord(name, "cell", base, index)
    m = _INDEXED.match(name.strip())
    if m is None:
        raise bad(f"unknown parameter {name!r}")
    group, leaf, idx = m.group(1) or "cell", m.group(2), m.group(3)
    if leaf not in params[group]:
        raise bad(f"unknown parameter {name!r}")
    shape = np.shape(params[group][leaf])
    if idx is None:
        if int(np.prod(shape)) != 1:
            raise bad(f"{name!r} has {int(np.prod(shape))} entries: give an index")
        return Coord(name, group, leaf, (0,) * len(shape))
    index = tuple(int(i) for i in idx.split(","))
    if len(index) != len(shape):
        raise bad(f"{name!r}: {group}.{leaf} has shape {shape}, give {len(shape)} indices")
    if any(i >= n for i, n in zip(index, shape)):
        raise bad(f"index {list(index)} out of range for {group}.{leaf} of shape {shape}")
    return Coord(name, group, leaf, index)


def get(params, c: Coord):
    """The value of one named parameter."""
    return params[c.group][c.leaf][c.index]


def put(params, c: Coord, value):
    """``params`` with one named parameter replaced (pure; traceable ``value``)."""
    leaf = jnp.asarray(params[c.group][c.leaf])
    new = leaf.at[c.index].set(jnp.asarray(value, leaf.dtype))
    return {**params, c.group: {**params[c.group], c.leaf: new}}


# ----------------------------------------------------------------------------- any model


def task_noise(task: str) -> float:
    """The task's default noise (``catalog.NOISE``: 0.1 for ``latch``)."""
    if task not in catalog.CLASS_TASKS:
        raise ConfigError("task", f"unknown or not a classification task {task!r}", catalog.CLASS_TASKS)
    return catalog.NOISE[task]


def task_batch(task: str, key, N: int, T_list: Sequence[int], noise: float | None = None, signal_len: int = 1):
    """One fixed batch per length, left-padded to ``max(T)``, made in one compiled call.

    With the same ``key`` and ``N`` the length-T batch is exactly ``tasks.generate(task,
    key, N, T, ...)`` (``latchlab.core.tasks`` draws step ``t``'s noise from ``fold_in(key, t)``),
    and a member's whole data set when ``key`` is its data key and ``N`` its ``N``.

    Returns:
        ``x`` (nT, N, T_max, 1), ``y`` (nT, N), ``mask`` (nT, T_max) valid steps.
    """
    Ts = _lengths(T_list)
    noise = task_noise(task) if noise is None else noise
    for T in Ts:
        tasks.check(task, T, noise, signal_len, N)
    return _task_batch(key, jnp.asarray(Ts, jnp.int32), noise, signal_len, task, N, max(Ts))


@partial(jax.jit, static_argnames=("task", "N", "T_max"))
def _task_batch(key, Ts, noise, signal_len, task, N, T_max):
    gen = tasks.PADDED[task]
    x, y = jax.vmap(lambda T: gen(key, N, T, noise, signal_len, T_max))(Ts)
    mask = jnp.arange(T_max)[None, :] >= (T_max - Ts)[:, None]
    return x, y, mask


@partial(jax.jit, static_argnames=("model", "coords", "chunk"))
def _surface(model, params, coords, xs, ys, x, y, mask, chunk):
    # xs, ys: (G,) the grid's coordinates; x: (nT, N, T_max, 1). Returns (G, nT) loss, acc.
    def at(vx, vy):
        p = put(put(params, coords[0], vx), coords[1], vy)
        return jax.vmap(lambda x, y, m: M.loss(model, p, x, y, mask=m))(x, y, mask)

    return jax.lax.map(lambda v: at(v[0], v[1]), jnp.stack([xs, ys], 1), batch_size=chunk)


def surface(
    model: M.Model,
    params,
    names: Sequence[str],
    spans,
    task: str,
    T_list: Sequence[int],
    points: int = 41,
    N: int = 256,
    key=None,
    noise: float | None = None,
    signal_len: int = 1,
    chunk: int = 64,
) -> pd.DataFrame:
    """``model.loss`` over two named parameters around ``params``, for every ``T``.

    ``L_T(u, v) = loss(params with names[0] = c_0 + u, names[1] = c_1 + v; x_T, y_T)`` for
    ``u, v`` on a ``points x points`` grid over ``[-span, span]``, ``c`` the centre's values,
    every other parameter at the centre's value, and ``(x_T, y_T)`` one fixed batch of ``N``
    sequences of the task per length (``task_batch``: the same data at every grid point).
    The whole grid and every ``T`` are one compiled evaluation: a vmap over lengths inside
    a ``lax.map`` over the grid in vmapped chunks of ``chunk`` points (to bound memory).

    Args:
        model: the model (cell and head).
        params: the centre, ``{"cell": ..., "head": ...}`` (numpy or jax arrays).
        names: two parameter names (see ``parse_name``).
        spans: half-widths, one number for both axes or a pair.
        task: task name. T_list: lengths. points: grid points per axis (odd keeps the
        centre on the grid). N: sequences per batch. key: the data's PRNG key (default
        ``PRNGKey(0)``). noise: the task's noise std (default: the generator's).
        signal_len: signal steps.
    Returns:
        one row per ``(T, y, x)``: columns ``T, x_name, y_name, x, y, dx, dy, loss,
        accuracy``, with ``x, y`` the parameters' values and ``dx, dy`` their offsets from the
        centre; ``attrs["center"]`` holds the centre's two values.
    """
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError("names", f"give two different parameter names, got {list(names)!r}")
    spans = (spans, spans) if np.ndim(spans) == 0 else tuple(spans)
    if len(spans) != 2:
        raise ConfigError("span", f"must be one or two numbers > 0, got {spans!r}")
    for s in spans:
        checked(Number(gt=0), s, "span")
    if not isinstance(points, int) or not 3 <= points <= 1001:
        raise ConfigError("points", f"must be an integer in [3, 1001], got {points!r}")
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    fields = ("x", "y")
    coords = tuple(parse_name(model, params, n, f) for n, f in zip(names, fields))
    if coords[0][1:] == coords[1][1:]:  # two spellings of one entry: y would overwrite x
        raise ConfigError(
            "names", f"{names[0]!r} and {names[1]!r} are the same parameter; give two different parameters"
        )
    key = jax.random.PRNGKey(0) if key is None else key
    Ts = _lengths(T_list)
    x, y, mask = task_batch(task, key, N, Ts, noise, signal_len)
    center = [float(get(params, c)) for c in coords]
    du = np.linspace(-spans[0], spans[0], points, dtype=np.float32)
    dv = np.linspace(-spans[1], spans[1], points, dtype=np.float32)
    DV, DU = np.meshgrid(dv, du, indexing="ij")  # rows: y, columns: x
    xs = (center[0] + DU).ravel().astype(np.float32)
    ys = (center[1] + DV).ravel().astype(np.float32)
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ConfigError("span", f"the centre {center} +- {spans} leaves float32's range; give a smaller span")
    for axis, v, sp in ((0, xs, spans[0]), (1, ys, spans[1])):
        if len(np.unique(v)) < points:  # float32 cannot tell the centre's neighbours apart
            raise ConfigError(
                "span",
                f"{sp:g} around {center[axis]:g} is below float32's resolution there: the grid's points "
                "coincide; give a larger span",
            )
    loss, acc = _surface(model, params, coords, jnp.asarray(xs), jnp.asarray(ys), x, y, mask, chunk)
    loss, acc = np.asarray(loss), np.asarray(acc)  # (G, nT)
    G = xs.size
    df = pd.DataFrame(
        {
            "T": np.repeat(Ts, G),
            "x_name": names[0],
            "y_name": names[1],
            "x": np.tile(xs, len(Ts)),
            "y": np.tile(ys, len(Ts)),
            "dx": np.tile(DU.ravel(), len(Ts)),
            "dy": np.tile(DV.ravel(), len(Ts)),
            "loss": loss.T.ravel(),
            "accuracy": acc.T.ravel(),
        }
    )
    df.attrs["center"] = tuple(center)
    return df


def center_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of a ``surface`` frame at the centre (``dx = dy = 0``), one per ``T``."""
    return cast(pd.DataFrame, df[(df.dx == 0) & (df.dy == 0)]).reset_index(drop=True)


# ----------------------------------------------------------------------------- centres

DEFAULT_AXES = {
    "srnn": ("recurrent_h", "bias_h"),
    "lstm": ("recurrent_c", "bias_f"),
    "gru": ("recurrent_h", "bias_z"),
    "lstm_nofg": ("recurrent_c", "bias_i"),
    "janet": ("recurrent_c", "bias_f"),
}
"""The two parameters ``latchlab landscape`` draws by default, per cell: the self-connection
of the candidate (or only) block, and the bias of the gate that decides retention."""


class Centre(NamedTuple):
    """Where a surface is centred, and what its loss is evaluated on.

    Attributes:
        model: the model.
        params: the centre's parameters ``{"cell", "head"}``.
        task, noise, signal_len: the task's data.
        key: the data's PRNG key (``task_batch``).
        label: a one-line description for titles and logs.
        trajectory: ``[(epoch, params), ...]`` of a stored member (empty otherwise).
    """

    model: M.Model
    params: dict
    task: str
    noise: float
    signal_len: int
    key: jax.Array
    label: str
    trajectory: tuple = ()


def initial_centre(
    cell: str = "srnn",
    preset: str = "keras3",
    units: int = 1,
    head: str = "dense2",
    init: str = "keras",
    seed: int = 0,
    task: str = "latch",
    noise: float | None = None,
    signal_len: int = 1,
    t_max: int = 50,
    values=None,
) -> Centre:
    """The initial parameters a sweep member with this configuration and ``seed`` starts
    from (same init key), and that member's data key.

    ``t_max`` is chrono's longest dependency (use the largest ``T`` drawn).
    """
    from latchlab.core.cells import Cell

    if head == "auto":  # the task's own head, as a sweep member's
        head = catalog.HEADS_FOR[catalog.TARGETS[task]][0]
    model = M.Model(Cell.from_preset(cell, units, preset), head)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", f"must be an integer >= 0, got {seed!r}")
    k_data, _, k_init = member_keys(seed)
    params = M.init(k_init, model, init, values, jnp.float32(t_max))
    noise = task_noise(task) if noise is None else float(noise)
    plural = "s" if units > 1 else ""
    label = f"{cell} ({units} unit{plural}, {preset}, {head}), {init} init, seed {seed}: initial point"
    return Centre(model, jax.device_get(params), task, noise, signal_len, k_data, label)


def member_centre(store, member_id: str, epoch: int | None = None) -> Centre:
    """A stored member's parameters after ``epoch`` (default: its last), its task and data key,
    and its whole trajectory (parameters after every stored epoch, 0 = initial).

    Args:
        store: an open ``latchlab.store.Store``.
        member_id: the member's id, or a unique prefix of it.
        epoch: the epoch to centre on.
    """
    r = store.member(member_id)
    epoch = int(r.epochs) if epoch is None else members.checked_epochs(r, [epoch], "epoch")[0]
    run = members.member_from_row(r).run
    trajectory = tuple((e, store.params(r.member_id, e)) for e in range(int(r.epochs) + 1))
    return Centre(
        run.model,
        trajectory[epoch][1],
        run.task,
        float(run.noise),
        run.signal_len,
        member_keys(int(r.seed))[0],
        f"{members.label(r)}, epoch {epoch}",
        trajectory,
    )


def trajectory_frame(centre: Centre, names: Sequence[str]) -> pd.DataFrame:
    """The two named parameters of a member after every stored epoch: ``epoch, x, y``."""
    coords = [parse_name(centre.model, centre.params, n, f) for n, f in zip(names, ("x", "y"))]
    rows = [(e, float(get(p, coords[0])), float(get(p, coords[1]))) for e, p in centre.trajectory]
    return pd.DataFrame(rows, columns=["epoch", "x", "y"])
