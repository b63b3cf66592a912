"""The ensemble trainer: every member of a group trains in lockstep in one compiled epoch.

Members are a leading array axis R, split over the local devices. Each member has its own
data set, initial parameters, learning rate and shuffling. One epoch is one
``jit``: a ``lax.scan`` over minibatches whose body ``vmap``s a per-member step.

Two backends train a stack of members with one contract (``init``, ``epoch``,
``evaluate``, ``params``): ``XLA``, those compiled epochs in one of the gradient modes
(autodiff, rtrl, bptt), and ``Native``, the native CPU kernels. ``choose_mode`` picks
one, ``backend`` builds it and ``fit`` runs it, marking members that diverge.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, ClassVar, NamedTuple, cast

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from latchlab.engine import bptt
from latchlab.core import cells
from latchlab.engine import native
from latchlab.core import model as M
from latchlab.core.catalog import OPTIMIZERS
from latchlab.errors import ConfigError


ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-7  # Keras' defaults (keras.optimizers.Adam)


def scale_by_keras_adam(
    b1: float = ADAM_B1, b2: float = ADAM_B2, eps: float = ADAM_EPS
) -> optax.GradientTransformation:
    """Adam as Keras (2 and 3) computes it, without the learning rate: ``m += (g - m) (1 -
    b1)``, ``v += (g^2 - v) (1 - b2)``, ``u = m a / (sqrt(v) + eps)`` with ``a = sqrt(1 -
    b2^n) / (1 - b1^n)`` at step ``n``.

    Keras adds ``eps`` to ``sqrt(v)`` before the bias correction; optax's ``scale_by_adam``
    (and PyTorch's Adam) after it, to ``sqrt(v / (1 - b2^n))``: in Keras' terms an epsilon
    ``sqrt(1 - b2^n)`` times smaller, 3e-9 at step 1 and 3e-8 at step 100. That is no small
    difference where it matters here: a parameter whose gradients are 1e-6 to 1e-8 (the
    one-unit LSTM's input gate at long T) moves 2.7 to 17 times further under optax's Adam.
    The state is optax's ``ScaleByAdamState`` (count, mu, nu)."""

    def init(params):
        return optax.ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=jax.tree.map(jnp.zeros_like, params),
            nu=jax.tree.map(jnp.zeros_like, params),
        )

    def update(
        updates: optax.Updates, state: optax.OptState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.OptState]:
        del params
        state = cast(optax.ScaleByAdamState, state)
        mu = jax.tree.map(lambda m, g: m + (g - m) * (1 - b1), state.mu, updates)  # updates: the gradients
        nu = jax.tree.map(lambda v, g: v + (g * g - v) * (1 - b2), state.nu, updates)
        count = optax.safe_int32_increment(state.count)
        n = jnp.asarray(count, jnp.float32)
        a = jnp.sqrt(1 - jnp.float32(b2) ** n) / (1 - jnp.float32(b1) ** n)
        u = jax.tree.map(lambda m, v: (m * a) / (jnp.sqrt(v) + eps), mu, nu)
        return u, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


def direction(name: str) -> optax.GradientTransformation:
    """The optimiser without its learning rate (applied per member as ``-lr * u``).

    adam: Keras' Adam and defaults, betas 0.9 / 0.999, eps 1e-7 (``scale_by_keras_adam``).
    sgd: the plain gradient. rmsprop: Keras' RMSprop and defaults, rho 0.9, eps 1e-7 (eps
    inside the square root, as optax's ``scale_by_rms`` with ``initial_scale=0``).
    """
    if name == "adam":
        return scale_by_keras_adam()
    if name == "sgd":
        return optax.identity()
    if name == "rmsprop":
        return optax.scale_by_rms(decay=0.9, eps=1e-7, initial_scale=0.0)
    raise ConfigError("optimizer", f"unknown optimizer {name!r}", OPTIMIZERS)


class Spec(NamedTuple):
    """What a compiled epoch depends on besides array shapes."""

    model: M.Model
    optimizer: str = "adam"
    batch_size: int = 16
    mode: str = "vmap"
    """Gradient layout, one of ``MODES``; ``Spec.for_model`` picks it from the shapes."""

    @classmethod
    def for_model(cls, model: M.Model, optimizer: str = "adam", batch_size: int = 16, mode: str = "auto"):
        return cls(model, optimizer, batch_size, choose_mode(model, optimizer) if mode == "auto" else mode)


class TrainState(NamedTuple):
    params: dict
    opt_state: optax.OptState


class Data(NamedTuple):
    """Each member's data set (leading axis R, aligned with the members).

    x: (R, N, T, F) sequences, left-padded to a common T; y: (R, N) labels or regression
    targets, or (R, N, T) per-step targets (-1 on padding steps); mask: (R, T) valid steps;
    train: (R, Ntr) and val: (R, Nv) indices into N. Device arrays, or host arrays (and
    ``x`` as ``native.Rows``) that the backends place.
    """

    x: jax.Array | np.ndarray | native.Rows
    y: jax.Array | np.ndarray
    mask: jax.Array | np.ndarray
    train: jax.Array | np.ndarray
    val: jax.Array | np.ndarray


@partial(jax.jit, static_argnums=0)
def init_state(spec: Spec, params) -> TrainState:
    """Optimiser state for a stack of members' parameters (leading axis R)."""
    return TrainState(params, jax.vmap(direction(spec.optimizer).init)(params))


MODES = ("vmap", "flat", "rtrl", "bptt")
# ``native``: whole epochs in ``latchlab.engine.native``'s kernels, outside XLA (``fit`` only)
FIT_MODES = MODES + ("native",)


def modes_for(model: M.Model) -> tuple[str, ...]:
    """The gradient modes that can train ``model``: ``bptt`` is one-unit LSTMs with a
    classification head only, ``rtrl`` needs a head on the last state (not seq_softmax)."""
    out = ("vmap", "flat")
    if model.head in M.LAST_STATE_HEADS:
        out += ("rtrl",)
    if bptt.supports(model) and model.head in M.HEADS:
        out += ("bptt",)
    return out


def native_ok(model: M.Model, optimizer: str = "adam") -> bool:
    """Whether ``fit`` can train ``model`` with the native kernels here: SRNNs, LSTMs (with
    or without forget gate), GRUs and JANETs of any size, any input width and any head
    (``native.available``), on the CPU backend, with a C++ compiler."""
    return bool(native.available(model, optimizer))


def choose_mode(model: M.Model, optimizer: str = "adam") -> str:
    """The gradient layout for a model's shapes and the backend (see ``loss_and_grads``):
    the one place a backend is chosen (``Spec.for_model``; ``plan.backends`` once per group
    of a sweep, after building the native kernels' variants it may use).

    Measured with bench/modes.py on 2-core XLA:CPU (docs/benchmarks.md): the ``native``
    kernels, where they apply (CPU backend, SRNN, LSTM, lstm_nofg, GRU or JANET of any size,
    inputs and head), are several times faster than any XLA mode (5-14x ``vmap`` from 2 to
    33 units, 3.6-4.9x at 100; 8-15x on the adding and copy tasks). Otherwise, for a one-unit SRNN (3 cell parameters) forward
    mode (``rtrl``) is 1.2-2x faster than ``vmap``; for a one-unit LSTM (12 parameters)
    it is 2-2.5x slower, as is ``flat``, and the hand-derived ``bptt`` is faster than
    ``vmap``. Forward mode costs one tangent per parameter, so it wins only for the
    smallest cells. Heads outside a mode's reach (``modes_for``) fall back to ``vmap``.
    """
    if native_ok(model, optimizer):
        return "native"
    allowed = modes_for(model)
    if "bptt" in allowed:
        return "bptt"
    if "rtrl" in allowed and max(model.cell.units, model.n_in) <= 4 and n_cell_params(model) <= 6:
        return "rtrl"
    return "vmap"


def n_cell_params(model: M.Model) -> int:
    H, F, G = model.cell.units, model.n_in, len(model.cell.gates)
    return G * H * (F + H) + G * H * (2 if model.cell.split_bias else 1)


def _rows(tree, B):
    return jax.tree.map(lambda p: jnp.repeat(p, B, axis=0), tree)


def loss_and_grads(model: M.Model, mode: str, params, x, y, w, mask):
    """Per-member losses, accuracies and parameter gradients of a minibatch.

    Modes (all exact; they differ in speed only):
        vmap: reverse-mode autodiff of each member's loss, vmapped over members;
              (R, B, ...) arrays inside the time loop.
        flat: reverse mode over one flat (R*B) row axis with per-row copies of the weights,
              so the time loop is elementwise for tiny cells.
        rtrl: forward mode (real-time recurrent learning): each row carries
              ``d state / d theta`` for the P cell parameters along the sequence, so there is
              no backward pass through time and no stored residuals; cost grows with P.
        bptt: reverse mode derived by hand for one-unit LSTMs (``latchlab.engine.bptt``): the
              forward pass stores only the states, the backward pass recomputes the gates.

    Args:
        params: leading axis R; x: (R, B, T, F); y: (R, B) or (R, B, T); w: (R, B);
        mask: (R, T).
    Returns:
        ``(loss (R,), accuracy (R,), grads)`` with grads shaped like ``params``.
    """
    R, B = w.shape
    if mode not in modes_for(model):
        raise ConfigError(
            "mode", f"unknown gradient mode {mode!r} for {model.cell.kind} with head {model.head}", modes_for(model)
        )
    if mode == "vmap":

        def member(p, x, y, w, m):
            return jax.value_and_grad(partial(M.loss, model), has_aux=True)(p, x, y, w, m)

        (loss, a), g = jax.vmap(member)(params, x, y, w, mask)
        return loss, a, g
    if mode == "flat":

        def total(params):
            rows = _rows(params, B)
            xf = x.reshape((R * B,) + x.shape[2:])
            z = jax.vmap(lambda p, xi, m: M.logits(model, p, xi[None], m)[0])(rows, xf, _rows(mask, B))
            loss, c = M.per_example(model, z, y.reshape((R * B,) + y.shape[2:]))
            loss, a = M.weighted_mean(loss.reshape(R, B), c.reshape(R, B), w)
            return loss.sum(), (loss, a)

        (_, (loss, a)), g = jax.value_and_grad(total, has_aux=True)(params)
        return loss, a, g
    if mode == "rtrl":
        return _rtrl(model, params, x, y, w, mask)
    return bptt.loss_and_grads(model, params, x, y, w, mask)


def _rtrl(model: M.Model, params, x, y, w, mask):
    cell = model.cell
    R, B = w.shape
    one = jax.tree.map(lambda p: p[0], params["cell"])
    _, unravel = jax.flatten_util.ravel_pytree(one)
    theta = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(params["cell"])  # (R, P)
    P = theta.shape[1]
    basis = jnp.eye(P, dtype=theta.dtype)

    def f(th, carry, x_t):  # one row, one step: carry leaves (1, H), x_t (1, F)
        p = unravel(th)
        return cells.step(cell, p, carry, cells.input_projection(cell, p, x_t))

    def row(th, x_r, m_r):  # th (P,), x_r (T, F), m_r (T,)
        carry0 = cells.initial_carry(cell, 1, theta.dtype)
        tan0 = jax.tree.map(lambda c: jnp.zeros((P,) + c.shape, c.dtype), carry0)

        def body(state, inp):
            carry, tan = state
            x_t, m_t = inp
            new, dnew = jax.vmap(
                lambda e, dc: jax.jvp(lambda t, c: f(t, c, x_t[None]), (th, carry), (e, dc)), out_axes=(None, 0)
            )(basis, tan)
            keep = lambda a, b: jnp.where(m_t, a, b)  # noqa: E731
            return (jax.tree.map(keep, new, carry), jax.tree.map(keep, dnew, tan)), None

        (carry, tan), _ = jax.lax.scan(body, (carry0, tan0), (x_r, m_r))
        return cells.output(cell, carry)[0], cells.output(cell, tan)[:, 0]  # (H,), (P, H)

    xf = x.reshape((R * B,) + x.shape[2:])
    h, dh = jax.vmap(row)(jnp.repeat(theta, B, axis=0), xf, jnp.repeat(mask, B, axis=0))
    h, dh = h.reshape(R, B, -1), dh.reshape(R, B, P, -1)

    (loss, a), (g_head, g_h) = jax.vmap(jax.value_and_grad(partial(M.head_loss, model), argnums=(0, 1), has_aux=True))(
        params["head"], h, y, w
    )
    g_theta = jnp.einsum("rbph,rbh->rp", dh, g_h)
    g_cell = jax.vmap(unravel)(g_theta)
    return loss, a, {"cell": g_cell, "head": g_head}


def _update(spec: Spec, state: TrainState, grads, lr):
    u, opt_state = jax.vmap(direction(spec.optimizer).update)(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, d: p - lr.reshape((-1,) + (1,) * (d.ndim - 1)) * d, state.params, u)
    return TrainState(params, opt_state)


def _take(x, idx):
    """Per-member rows: ``x`` (R, N, ...), ``idx`` (R, ...) -> (R, ..., ...)."""
    return jax.vmap(lambda a, i: a[i])(x, idx)


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def train_epoch(spec: Spec, state: TrainState, data: Data, lr, order, weight):
    """One epoch for every member.

    Args:
        state: members' parameters and optimiser states, leading axis R.
        data: the members' data sets.
        lr: (R,) learning rates.
        order: (R, S, B) positions into ``data.train`` of each step's minibatch.
        weight: (R, S, B) 1 for real examples, 0 for the padding of a short last batch.
    Returns:
        the new state and the epoch's (R,) mean training loss and accuracy, each batch
        measured before its update (as Keras reports them).
    """

    def body(state, inp):
        pos, w = inp  # (R, B)
        ex = jnp.take_along_axis(data.train, pos, axis=1)  # (R, B) example indices
        x, y = _take(data.x, ex), _take(data.y, ex)  # (R, B, T, F), (R, B)
        loss, a, g = loss_and_grads(spec.model, spec.mode, state.params, x, y, w, data.mask)
        state = _update(spec, state, g, lr)
        n = w.sum(-1)
        return state, (loss * n, a * n)

    state, (loss, a) = jax.lax.scan(body, state, (order.swapaxes(0, 1), weight.swapaxes(0, 1)))
    n = weight.sum((1, 2))
    return state, loss.sum(0) / n, a.sum(0) / n


@partial(jax.jit, static_argnums=(0, 3))
def evaluate(model: M.Model, params, data: Data, block: int = 64):
    """(R,) validation loss and accuracy of every member on its own validation set (the
    head's loss and metric, ``model.per_example``: for ``linear`` the MSE and the fraction
    within 0.04, for ``seq_softmax`` the per-step cross-entropy and per-symbol accuracy).

    The validation set is scanned in blocks of ``block`` sequences, which keeps the rows
    in flight per step as small as a training step's.
    """
    R, n_val = data.val.shape
    nb = -(-n_val // block)
    idx = jnp.pad(data.val, ((0, 0), (0, nb * block - n_val)))  # pads with index 0, weight 0
    w = (jnp.arange(nb * block) < n_val).astype(jnp.float32)

    def body(acc, b):
        ex = jax.lax.dynamic_slice_in_dim(idx, b * block, block, axis=1)  # (R, block)
        wb = jnp.broadcast_to(jax.lax.dynamic_slice_in_dim(w, b * block, block)[None, :], (R, block))
        xb = _take(data.x, ex)
        if bptt.supports(model) and model.head in M.LAST_STATE_HEADS:  # bptt's forward pass
            h = bptt.final_state(model, params, xb, data.mask)
            z = jax.vmap(partial(M.read_out, model))(params["head"], h[..., None])
        else:
            z = jax.vmap(partial(M.logits, model))(params, xb, data.mask)
        loss, c = jax.vmap(partial(M.per_example, model))(z, _take(data.y, ex))
        return (acc[0] + (loss * wb).sum(-1), acc[1] + (c * wb).sum(-1)), None

    zero = jnp.zeros((R,), jnp.float32)
    (loss, c), _ = jax.lax.scan(body, (zero, zero), jnp.arange(nb))
    return loss / n_val, c / n_val


def epoch_order(rngs, n_train: int, batch_size: int):
    """Host-side shuffles: (R, S, B) positions and weights, one permutation per member.

    Shuffling on the host costs far less than ``jax.random.permutation`` inside the
    compiled epoch; each member draws from its own generator, so a member's batches do
    not depend on which other members share its group.
    """
    return _batches(_draw(rngs, n_train), batch_size)


def _draw(rngs, n_train: int) -> np.ndarray:
    """(R, n_train) int32: one permutation from each generator of ``rngs``."""
    return np.array([rng.permutation(n_train) for rng in rngs], np.int32).reshape(len(rngs), n_train)


def _batches(perm: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutations ``perm`` (R, n_train) cut into (R, S, B) batches of positions, the last
    padded with weight 0."""
    R, n_train = perm.shape
    steps = -(-n_train // batch_size)
    order = np.zeros((R, steps * batch_size), np.int32)
    order[:, :n_train] = perm
    weight = np.ones_like(order, dtype=np.float32)
    weight[:, n_train:] = 0.0
    shape = (R, steps, batch_size)
    return order.reshape(shape), weight.reshape(shape)


@lru_cache(maxsize=2)
def _permutations(seeds: tuple, epochs: int, n_train: int) -> tuple[np.ndarray, ...]:
    """Each epoch's (D, n_train) permutations of distinct ``seeds``' generators (any batch
    size cuts them alike: the answer's three batch sizes and two tasks draw once)."""
    rngs = [np.random.default_rng([s, 0x5EED]) for s in seeds]
    return tuple(_draw(rngs, n_train) for _ in range(epochs))


class Shuffles(NamedTuple):
    """One epoch's shuffles of a chunk's members: ``order`` and ``weight`` (D, S, B), the
    ``epoch_order`` of each of their D distinct seeds, and ``row`` (R,), the one member r
    takes (members of one seed shuffle alike)."""

    order: np.ndarray
    weight: np.ndarray
    row: np.ndarray

    def per_member(self) -> tuple[np.ndarray, np.ndarray]:
        """(R, S, B) positions and weights: each member's row, copied."""
        return self.order[self.row], self.weight[self.row]


@lru_cache(maxsize=2)
def epoch_orders(seeds: tuple, epochs: int, n_train: int, batch_size: int) -> tuple[Shuffles, ...]:
    """Every epoch's ``epoch_order`` for members seeded ``seeds`` (each member's generator
    ``default_rng([seed, 0x5EED])``, one permutation per epoch). Kept for the next call: a
    sweep's chunks of different cells with the same seeds shuffle alike (0.3 s of the full
    seed sweep). The arrays are shared: do not write to them.

    Members of one seed shuffle alike, so each distinct seed draws once and its members
    share its rows (a chunk of the seed sweep holds 63 members of 2 seeds; copying them a
    member took 0.7 s of the answer's 26 s)."""
    distinct = {s: i for i, s in enumerate(dict.fromkeys(seeds))}
    row = np.array([distinct[s] for s in seeds], np.int32)
    perms = _permutations(tuple(distinct), epochs, n_train)
    out = tuple(Shuffles(*_batches(p, batch_size), row) for p in perms)
    for a in (a for shuffles in out for a in shuffles):
        a.flags.writeable = False
    return out


class History(NamedTuple):
    """Per-epoch metrics, each (E, R); ``params[e]`` the members' parameters after epoch e
    (``params[0]`` the initial ones; a diverged member's last finite ones from its
    ``diverged_epoch`` on)."""

    train_loss: np.ndarray
    train_acc: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    params: list
    diverged_epoch: np.ndarray | None = None
    """(R,) the epoch (1-based) in which a member's loss or parameters stopped being
    finite, -1 for members that stayed finite; ``fit`` sets it."""


def devices_for(n_members: int) -> int:
    """Devices to split members over: every local device when they divide the members.

    On a CPU, XLA runs a while loop on one core; with the host platform split into one
    device per core (see ``latchlab/__init__.py``) the halves of an ensemble run in parallel.
    """
    n = jax.local_device_count()
    return n if n > 1 and n_members % n == 0 else 1


def member_sharding(n_members: int):
    """The sharding of member-axis arrays: split over ``devices_for(n_members)`` devices."""
    n = devices_for(n_members)
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:n]), ("m",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("m"))


# ----------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class XLA:
    """Whole epochs as compiled XLA programs (``train_epoch``, ``evaluate``) in one of the
    gradient ``MODES``, members split over the local devices."""

    spec: Spec

    @property
    def name(self) -> str:
        return BACKEND_NAMES[self.spec.mode]

    def init(self, params, data: Data, lr) -> _XLAState:
        """Place the members' parameters, optimiser states, data and learning rates."""
        if isinstance(data.x, native.Rows):
            data = data._replace(x=data.x.padded())
        split = member_sharding(len(lr))
        state = jax.device_put(init_state(self.spec, params), split)
        data, lr = jax.device_put((data, jnp.asarray(lr, jnp.float32)), split)
        return _XLAState(state, data, lr, split)

    def epoch(self, s: _XLAState, shuffles: Shuffles):
        """One epoch: ``(state, (R,) training loss, (R,) training accuracy)``."""
        order, weight = jax.device_put(shuffles.per_member(), s.split)
        state, tl, ta = train_epoch(self.spec, s.state, s.data, s.lr, order, weight)
        return s._replace(state=state), jax.block_until_ready(tl), ta

    def evaluate(self, s: _XLAState):
        """(R,) validation loss and accuracy."""
        vl, va = evaluate(self.spec.model, s.state.params, s.data)
        return jax.block_until_ready(vl), va

    def params(self, s: _XLAState):
        """The members' parameters as host arrays."""
        return jax.device_get(s.state.params)


class _XLAState(NamedTuple):
    state: TrainState
    data: Data
    lr: jax.Array
    split: jax.sharding.Sharding


@dataclass(frozen=True)
class Native:
    """Whole epochs in ``latchlab.engine.native``'s kernels, outside XLA (the same shuffles,
    metrics and snapshots as ``XLA``)."""

    spec: Spec
    name: ClassVar[str] = "native"

    def init(self, params, data: Data, lr) -> tuple:
        if not native_ok(self.spec.model, self.spec.optimizer):
            m = self.spec.model
            raise ConfigError(
                "mode",
                f"the native kernels cannot train {m.cell.kind} ({m.cell.units} units, head "
                f"{m.head}, {self.spec.optimizer}) here",
                MODES,
            )
        ens = native.Ensemble(
            self.spec.model, self.spec.optimizer, params, data.x, data.y, data.mask, data.train, data.val
        )
        return ens, np.asarray(lr, np.float32)

    def epoch(self, s: tuple, shuffles: Shuffles):
        tl, ta = s[0].train_epoch(s[1], *shuffles)
        return s, tl, ta

    def evaluate(self, s: tuple):
        return s[0].evaluate()

    def params(self, s: tuple):
        return s[0].snapshot()


# what each gradient layout is called as a backend (``vmap`` and ``flat`` are both
# reverse-mode autodiff, differing in layout only)
BACKEND_NAMES = {"vmap": "autodiff", "flat": "autodiff (flat)", "rtrl": "rtrl", "bptt": "bptt", "native": "native"}


def backend(spec: Spec) -> XLA | Native:
    """The backend that trains with ``spec.mode``: every backend has the same contract,
    ``init(params, data, lr) -> state``, ``epoch(state, shuffles) -> (state, loss, acc)``,
    ``evaluate(state) -> (loss, acc)`` and ``params(state)``; both are picklable values."""
    if spec.mode == "native":
        return Native(spec)
    if spec.mode not in MODES:
        raise ConfigError("mode", f"unknown gradient mode {spec.mode!r}", FIT_MODES)
    return XLA(spec)


def fit(spec: Spec, params, data: Data, lr, seeds, epochs: int, on_epoch=None, timer=None) -> History:
    """Train a stack of members for ``epochs`` epochs on ``backend(spec)``.

    Args:
        params: initial parameters, leading axis R.
        data: the members' data sets (leading axis R).
        lr: (R,) learning rates.
        seeds: (R,) member seeds; they seed the members' shuffling generators.
        on_epoch: called with the epoch number after each epoch.
        timer: optional ``Profile`` collecting where time goes.
    Returns:
        the ``History``; a member whose loss or parameters stop being finite is marked
        diverged (``History.diverged_epoch``) and keeps its last finite parameters.
    """
    return fit_on(backend(spec), params, data, lr, seeds, epochs, on_epoch, timer)


def fit_on(bk: XLA | Native, params, data: Data, lr, seeds, epochs: int, on_epoch=None, timer=None) -> History:
    """``fit`` on a given backend (``backend(spec)``, or the one a plan chose)."""
    with span(timer, "data"):
        orders = epoch_orders(tuple(int(s) for s in seeds), epochs, int(data.train.shape[1]), bk.spec.batch_size)
        state: Any = bk.init(params, data, lr)  # opaque: whichever state ``bk`` keeps
    snaps, rows = [jax.device_get(params)], []
    for e in range(epochs):
        with span(timer, "train"):
            state, tl, ta = bk.epoch(state, orders[e])
        with span(timer, "validate"):
            vl, va = bk.evaluate(state)
        rows.append([np.asarray(v) for v in (tl, ta, vl, va)])
        snaps.append(bk.params(state))
        if on_epoch is not None:
            on_epoch(e)
    return _diverged(History(*(np.stack(col) for col in zip(*rows)), params=snaps))


def _diverged(h: History) -> History:
    """``h`` with ``diverged_epoch`` set: the first epoch (1-based) after which a member's
    training or validation loss, or one of its parameters, is not finite (-1 if none); from
    that epoch on, the member's snapshots are its last finite parameters."""
    E, R = h.val_loss.shape
    finite = np.stack(
        [np.ones(R, bool)]
        + [
            np.logical_and.reduce([np.isfinite(a).reshape(R, -1).all(1) for a in jax.tree.leaves(p)])
            for p in h.params[1:]
        ]
    )  # (E + 1, R): parameters finite after each epoch
    ok = np.isfinite(h.train_loss) & np.isfinite(h.val_loss) & finite[1:]  # (E, R)
    bad = ~ok
    first = np.where(bad.any(0), bad.argmax(0), -1)  # 0-based epoch, -1: never
    if (first < 0).all():
        return h._replace(diverged_epoch=np.full(R, -1))
    params = list(h.params)
    for r in np.flatnonzero(first >= 0):
        last = max(e for e in range(first[r] + 2) if finite[e, r])  # the last finite snapshot
        for e in range(last + 1, E + 1):
            params[e] = jax.tree.map(lambda a, b, r=r: _set_row(a, r, b[r]), params[e], params[last])
    return h._replace(params=params, diverged_epoch=np.where(first >= 0, first + 1, -1))


def _set_row(a, r, row):
    out = np.array(a)  # snapshots may be shared or read-only: copy before writing
    out[r] = row
    return out


class span:
    """``with span(timer, "train"):`` charges the block's time to a phase of ``timer``
    (a ``provenance.Profile``); does nothing when ``timer`` is None."""

    def __init__(self, timer, name):
        self.timer, self.name = timer, name

    def __enter__(self):
        if self.timer is not None:
            self.timer.start(self.name)

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.stop(self.name)
