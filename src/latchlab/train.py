"""The ensemble trainer: every member of a group trains in lockstep in one compiled epoch.

Members are a leading array axis R. Each member has its own data (an index into a shared
data array, so members that differ only in cell or learning rate share sequences), its
own initial parameters, its own learning rate and its own shuffling. One epoch is one
``jit``: a ``lax.scan`` over minibatches whose body ``vmap``s a per-member step.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from latchlab import model as M
from latchlab.errors import ConfigError

OPTIMIZERS = ("adam", "sgd", "rmsprop")


def direction(name: str) -> optax.GradientTransformation:
    """The optimiser without its learning rate (applied per member as ``-lr * u``).

    adam: Keras' defaults, betas 0.9 / 0.999, eps 1e-7 (optax places eps after the bias
          correction, Keras before: a difference below 1e-7 in the step).
    sgd: the plain gradient. rmsprop: Keras' defaults, rho 0.9, eps 1e-7.
    """
    if name == "adam":
        return optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7)
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


class TrainState(NamedTuple):
    params: dict
    opt_state: optax.OptState


class Data(NamedTuple):
    """Sequences shared by the members of a group.

    x: (D, N, T, F) data sets, left-padded to a common T; y: (D, N) labels;
    mask: (D, T) valid steps; train: (D, Ntr) and val: (D, Nv) indices into N.
    """

    x: jax.Array
    y: jax.Array
    mask: jax.Array
    train: jax.Array
    val: jax.Array


def init_state(spec: Spec, params) -> TrainState:
    """Optimiser state for a stack of members' parameters (leading axis R)."""
    return TrainState(params, jax.vmap(direction(spec.optimizer).init)(params))


def flat_layout(model: M.Model) -> bool:
    """Whether to run members x batch as one flat row axis with per-row weights.

    For tiny cells (every matmul has at most 4 terms) the time loop is then elementwise over
    (R*B, G*H) arrays, which XLA:CPU fuses far better than vmap's (R, B, ...) batched dots;
    for larger cells a batched matmul per member wins.
    """
    return max(model.cell.units, model.n_in) <= 4


def ensemble_loss(model: M.Model, params, x, y, w, mask):
    """Sum over members of each member's weighted mean loss (its gradient is per member).

    Args:
        params: leading axis R; x: (R, B, T, F); y, w: (R, B); mask: (R, T).
    Returns:
        the summed loss, and (R,) losses and accuracies as auxiliary output.
    """
    R, B = y.shape
    if flat_layout(model):
        rows = jax.tree.map(lambda p: jnp.repeat(p, B, axis=0), params)  # (R*B, ...)
        xf = x.reshape((R * B,) + x.shape[2:])
        mf = jnp.repeat(mask, B, axis=0)  # (R*B, T)
        z = jax.vmap(lambda p, xi, m: M.logits(model, p, xi[None], m)[0])(rows, xf, mf)
        l, c = M.per_example(model, z, y.reshape(-1))
        n = jnp.maximum(w.sum(-1), 1e-12)
        l = (l.reshape(R, B) * w).sum(-1) / n
        a = (c.reshape(R, B) * w).sum(-1) / n
    else:
        l, a = jax.vmap(partial(M.loss, model))(params, x, y, w, mask)
    return l.sum(), (l, a)


def _update(spec: Spec, state: TrainState, grads, lr):
    u, opt_state = jax.vmap(direction(spec.optimizer).update)(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, d: p - lr.reshape((-1,) + (1,) * (d.ndim - 1)) * d, state.params, u)
    return TrainState(params, opt_state)


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def train_epoch(spec: Spec, state: TrainState, data: Data, member_data, lr, order, weight):
    """One epoch for every member.

    Args:
        state: members' parameters and optimiser states, leading axis R.
        data: the shared data sets.
        member_data: (R,) which data set each member trains on.
        lr: (R,) learning rates.
        order: (R, S, B) positions into ``data.train`` of each step's minibatch.
        weight: (R, S, B) 1 for real examples, 0 for the padding of a short last batch.
    Returns:
        the new state and the epoch's (R,) mean training loss and accuracy, each batch
        measured before its update (as Keras reports them).
    """
    mask = data.mask[member_data]  # (R, T)
    rows = data.train[member_data]  # (R, Ntr)

    def body(state, inp):
        pos, w = inp  # (R, B)
        ex = jnp.take_along_axis(rows, pos, axis=1)  # (R, B) example indices
        x = data.x[member_data[:, None], ex]  # (R, B, T, F)
        y = data.y[member_data[:, None], ex]  # (R, B)
        (_, (l, a)), g = jax.value_and_grad(partial(ensemble_loss, spec.model), has_aux=True)(
            state.params, x, y, w, mask)
        state = _update(spec, state, g, lr)
        n = w.sum(-1)
        return state, (l * n, a * n)

    state, (l, a) = jax.lax.scan(body, state, (order.swapaxes(0, 1), weight.swapaxes(0, 1)))
    n = weight.sum((1, 2))
    return state, l.sum(0) / n, a.sum(0) / n


@partial(jax.jit, static_argnums=0)
def evaluate(model: M.Model, params, data: Data, member_data):
    """(R,) validation loss and accuracy of every member on its own validation set."""

    def one(p, d):
        idx = data.val[d]
        return M.loss(model, p, data.x[d][idx], data.y[d][idx], None, data.mask[d])

    return jax.vmap(one)(params, member_data)


def epoch_order(rngs, n_train: int, batch_size: int):
    """Host-side shuffles: (R, S, B) positions and weights, one permutation per member.

    Shuffling on the host costs far less than ``jax.random.permutation`` inside the
    compiled epoch; each member draws from its own generator, so a member's batches do
    not depend on which other members share its group.
    """
    steps = -(-n_train // batch_size)
    pad = steps * batch_size - n_train
    order = np.zeros((len(rngs), steps * batch_size), np.int32)
    for r, rng in enumerate(rngs):
        order[r, :n_train] = rng.permutation(n_train)
    weight = np.ones_like(order, dtype=np.float32)
    if pad:
        weight[:, n_train:] = 0.0
    shape = (len(rngs), steps, batch_size)
    return order.reshape(shape), weight.reshape(shape)


class History(NamedTuple):
    """Per-epoch metrics, each (E, R); ``params[e]`` the members' parameters after epoch e
    (``params[0]`` the initial ones)."""

    train_loss: np.ndarray
    train_acc: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    params: list


def fit(spec: Spec, params, data: Data, member_data, lr, seeds, epochs: int, on_epoch=None,
        timer=None) -> History:
    """Train a stack of members for ``epochs`` epochs.

    Args:
        params: initial parameters, leading axis R.
        member_data: (R,) data set per member; lr: (R,) learning rates.
        seeds: (R,) member seeds; they seed the members' shuffling generators.
        on_epoch: called with the epoch number after each epoch.
        timer: optional ``Profile`` collecting where time goes.
    """
    member_data = jnp.asarray(member_data, jnp.int32)
    lr = jnp.asarray(lr, jnp.float32)
    rngs = [np.random.default_rng([int(s), 0x5EED]) for s in seeds]
    state = init_state(spec, params)
    n_train = data.train.shape[1]
    snaps, hist = [jax.device_get(params)], {k: [] for k in ("tl", "ta", "vl", "va")}
    for e in range(epochs):
        with _span(timer, "data"):
            order, weight = epoch_order(rngs, n_train, spec.batch_size)
        with _span(timer, "train"):
            state, tl, ta = train_epoch(spec, state, data, member_data, lr, order, weight)
            tl = jax.block_until_ready(tl)
        with _span(timer, "validate"):
            vl, va = evaluate(spec.model, state.params, data, member_data)
            vl = jax.block_until_ready(vl)
        for k, v in zip(("tl", "ta", "vl", "va"), (tl, ta, vl, va)):
            hist[k].append(np.asarray(v))
        snaps.append(jax.device_get(state.params))
        if on_epoch is not None:
            on_epoch(e)
    return History(*(np.stack(hist[k]) for k in ("tl", "ta", "vl", "va")), snaps)


class _span:
    def __init__(self, timer, name):
        self.timer, self.name = timer, name

    def __enter__(self):
        if self.timer is not None:
            self.timer.start(self.name)

    def __exit__(self, *exc):
        if self.timer is not None:
            self.timer.stop(self.name)
