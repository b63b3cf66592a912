"""Bengio, Simard & Frasconi (1994): one tanh neuron that must latch a bit.

The model (their Section III and Fig. 2):

    a_t = w tanh(a_{t-1}) + h_t,   a_0 = 0,   x_T = tanh(a_T)

with the first ``L`` inputs ``h_1..h_L`` *trainable*, one set per class, and every later
``h_t`` Gaussian noise of variance ``s``; ``w`` is trainable and starts at ``w0``. The loss
is ``C = 1/2 sum_p (x_T^p - d^p)^2`` with targets ``d = +0.8`` (class 1) and ``-0.8``
(class 0). Training is full-batch gradient descent (or any optimiser of ``train.direction``)
on the gradient of ``C / P`` (the mean over the ``P`` training sequences, so that the
learning rate does not depend on ``P``).

Convergence: every ``check_every`` epochs (and before the first), each member is tested on
its own fresh test set of ``n_test`` sequences; it has converged when *every* test
sequence's output has its target's sign and the mean test loss ``1/2 (x_T - d)^2`` is below
``loss_threshold``. A converged member stops updating; ``epochs`` is the first check at
which it converged. A member that has not converged within ``epochs`` epochs has failed.

Training (``train_ensemble``): the native kernel ``latchlab/engine/native/bengio94.cpp``
where it can run, else ``_train`` in JAX; per member they compute the same to float32
rounding. Some trajectories (gradient descent at a large step, oscillating) amplify a
difference of one rounding ~3-5x an epoch: about 2 % of the full grid's trials end
differently under either trainer than under the other, or under the JAX trainer with its
data rounded differently, which the convergence rates do not show beyond their noise.

Fig. 1 (the dynamics behind it): for ``w > 1`` the map ``x -> tanh(w x)`` has the stable
fixed points ``±x̄`` and the unstable 0; a constant input ``h`` flips the state of
``a -> w tanh(a) + h`` out of the negative basin iff ``h > h*(w)``, where the negative
fixed point disappears in a saddle-node bifurcation (``fixed_points``, ``flip_threshold``,
``simulated_flip_threshold``).
"""

from __future__ import annotations

import ctypes
import math
from collections import deque
from functools import partial
from typing import Annotated, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import model_validator
import pandas as pd
from scipy import optimize

from latchlab.core.catalog import OPTIMIZERS
from latchlab.engine import native, train
from latchlab.errors import ConfigError
from latchlab.validate import Frozen, IntRange, NonEmpty, NumberRange, OneOf, Seed, check_seed_range
from latchlab.experiments.experiment import Experiment, Table, check_scale, figure_files, write_results


# ----------------------------------------------------------------------------- configuration


class Bengio94Config(Frozen):
    """The experiment of Bengio et al. (1994) Fig. 2 and its uncertain values.

    Values marked *(unverified)* were recalled, not read in the paper: they are defaults.
    """

    L: Annotated[int, IntRange(ge=1)] = 3
    """Trainable input steps per class (Fig. 2: 3) *(unverified)*."""
    T: Annotated[int, IntRange(ge=1)] = 20
    """Sequence length of Fig. 2a (20) *(unverified)*."""
    w0_grid: NonEmpty[Annotated[float, NumberRange()]] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
    """Initial recurrent weights ``w0`` of Fig. 2a."""
    s_grid: NonEmpty[Annotated[float, NumberRange(ge=0)]] = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    """Noise variances ``s`` of Fig. 2a."""
    T_grid: NonEmpty[Annotated[int, IntRange(ge=1)]] = (5, 10, 15, 20, 30, 50, 75, 100)
    """Sequence lengths of Fig. 2b."""
    s_fig2b: Annotated[float, NumberRange(ge=0)] = 0.2
    """Noise variance of Fig. 2b (0.2) *(unverified)*."""
    w0_fig2b: Annotated[float, NumberRange()] = 1.25
    """Initial recurrent weight of Fig. 2b (1.25) *(unverified)*."""
    target: Annotated[float, NumberRange(gt=0, lt=1)] = 0.8
    """Targets ``±target`` (0.8)."""
    h_init: Annotated[float, NumberRange(ge=0)] = 0.1
    """Initial trainable inputs uniform in ``[-h_init, h_init]``, per member *(our choice)*."""
    n_train: Annotated[int, IntRange(ge=2, even=True)] = 20
    """Training sequences per member, half per class *(our choice)*."""
    n_test: Annotated[int, IntRange(ge=1)] = 1000
    """Fresh test sequences per member for the convergence check."""
    optimizer: Annotated[str, OneOf(OPTIMIZERS)] = "sgd"
    """``sgd`` (plain gradient descent, the paper's), ``adam`` or ``rmsprop``."""
    lr: Annotated[float, NumberRange(gt=0)] = 1.0
    """Learning rate on the mean loss ``C / P`` *(our choice)*."""
    epochs: Annotated[int, IntRange(ge=1)] = 1000
    """Budget of full-batch gradient steps *(our choice)*."""
    check_every: Annotated[int, IntRange(ge=1)] = 10
    """Epochs between convergence checks on the test set; ``epochs`` is a multiple of it."""
    loss_threshold: Annotated[float, NumberRange(gt=0)] = 0.05
    """Converged: all test signs right and mean test loss ``1/2 (x_T - d)^2`` below this."""
    trials: Annotated[int, IntRange(ge=1)] = 20
    """Trials (seeds ``seed .. seed + trials - 1``) per grid point."""
    seed: Seed = 0
    """Seed of the first trial."""
    seed_repeats: Annotated[int, IntRange(ge=0)] = 5
    """Repeats per T of the seed's softmax set-up overlaid on Fig. 2b (0: none)."""
    seed_noise: Annotated[float, NumberRange(ge=0)] = 0.1
    """Noise std of the overlaid seed set-up (the seed's 0.1)."""

    @model_validator(mode="after")
    def _check(self):
        for name in ("w0_grid", "s_grid", "T_grid"):  # a value twice: the same seeds counted twice
            values = getattr(self, name)
            twice = next((v for i, v in enumerate(values) if v in values[:i]), None)  # 1 == 1.0, -0.0 == 0.0
            if twice is not None:
                raise ConfigError(name, f"lists {twice!r} more than once; give each value once")
        for name, T in [("T", self.T)] + [("T_grid", T) for T in self.T_grid]:
            if T <= self.L:
                raise ConfigError(name, f"sequence length must exceed L={self.L}, got {T}")
        if self.epochs % self.check_every:  # a budget cut to whole blocks trained less than it said, or not at all
            raise ConfigError(
                "epochs",
                f"must be a multiple of check_every={self.check_every} (checks end each block), got {self.epochs}",
            )
        check_seed_range(self.seed, self.trials)
        return self


def make_config(**overrides) -> Bengio94Config:
    """``Bengio94Config`` with ``overrides`` (e.g. from TOML); unknown names are errors."""
    return Bengio94Config.make(**overrides)


# ----------------------------------------------------------------------------- Fig. 1: dynamics


def fixed_points(w: float) -> list[tuple[float, bool]]:
    """Fixed points of ``x -> tanh(w x)`` with their stability.

    ``x = 0`` always; for ``w > 1`` also ``±x̄``, the root of ``tanh(w x) - x`` in
    ``(0, 1]`` (Brent's method). A fixed point is stable iff ``|w (1 - tanh²(w x))| < 1``.

    Returns:
        ``[(x, stable), ...]`` sorted by ``x``.
    """
    out = [(0.0, abs(w) < 1)]
    if w > 1:
        # a float: without full_output, brentq returns the root alone (the stubs' union allows both)
        xb = cast(float, optimize.brentq(lambda x: math.tanh(w * x) - x, 1e-12, 1.0, xtol=1e-15))
        stable = abs(w * (1 - math.tanh(w * xb) ** 2)) < 1
        out = [(-xb, stable)] + out + [(xb, stable)]
    return out


def flip_threshold(w):
    """The constant input ``h*`` above which ``a -> w tanh(a) + h`` has no negative fixed
    point, so that the state leaves the basin of ``-w x̄`` (``w > 1``; 0 for ``w <= 1``).

    Fixed points solve ``h = g(a) = a - w tanh(a)``; on ``a < 0``, ``g`` peaks where
    ``w (1 - tanh² a) = 1`` (the saddle-node), at ``a_c = -artanh(sqrt(1 - 1/w))``, so

        h*(w) = g(a_c) = sqrt(w (w - 1)) - artanh(sqrt(1 - 1/w)).
    """
    w = np.asarray(w, np.float64)
    r = np.sqrt(np.clip(1 - 1 / np.maximum(w, 1.0), 0.0, 1.0))
    return np.where(w > 1, np.sqrt(np.maximum(w * (w - 1), 0.0)) - np.arctanh(np.minimum(r, 1 - 1e-16)), 0.0)


@partial(jax.jit, static_argnames=("steps", "iters"))
def _simulated_threshold(w, hi, steps, iters):
    def flips(w, h):
        # from the negative attractor -w x̄ (reached from a = -w, saturated), `steps`
        # steps of constant input h, then as many without: is the state positive?
        a = jax.lax.fori_loop(0, steps, lambda _, a: w * jnp.tanh(a) + h, -w)
        a = jax.lax.fori_loop(0, steps, lambda _, a: w * jnp.tanh(a), a)
        return a > 0

    def bisect(w, hi):
        def body(_, lohi):
            lo, hi = lohi
            mid = 0.5 * (lo + hi)
            f = flips(w, mid)
            return jnp.where(f, lo, mid), jnp.where(f, mid, hi)

        lo, hi = jax.lax.fori_loop(0, iters, body, (jnp.zeros_like(hi), hi))
        return 0.5 * (lo + hi)

    return jax.vmap(bisect)(w, hi)


def simulated_flip_threshold(w, steps: int = 20000, iters: int = 40) -> np.ndarray:
    """``h*`` found by simulation alone: bisection on ``h`` for whether ``steps`` steps of
    the constant input ``h`` move the state from the negative attractor to the positive one
    (and it stays there once the input is removed). A finite ``steps`` overestimates ``h*``
    by ``O(1/steps²)`` (the bottleneck near the saddle-node).

    Args:
        w: recurrent weights (> 1).
    Returns:
        float64 array of thresholds, as ``w``.
    """
    w = np.atleast_1d(np.asarray(w, np.float64))
    with jax.enable_x64(True):
        out = _simulated_threshold(jnp.asarray(w), jnp.asarray(2 * w + 1.0), steps, iters)
        return np.asarray(out)


# ----------------------------------------------------------------------------- the model


class Params(NamedTuple):
    """``w`` () the recurrent weight; ``h`` (2, L) the trainable inputs of classes 0 and 1
    (numpy arrays, with a leading member axis, in a ``Result``)."""

    w: jax.Array | np.ndarray
    h: jax.Array | np.ndarray


def inputs(params: Params, noise, cls, start=0):
    """The input sequence ``u`` (B, T_pad) of sequences that start at step ``start``.

    ``u_t = 0`` for ``t < start`` (left-padding: ``a`` stays exactly 0 there, as
    ``w tanh(0) = 0``), ``h[cls, t - start]`` for the next ``L`` steps, ``noise[:, t]`` after.

    Args:
        noise: (B, T_pad) noise inputs (only the steps after the trainable ones are used);
        cls: (B,) 0 or 1; start: first step (``T_pad - T`` for a sequence of length T).
    """
    L = params.h.shape[1]
    rel = jnp.arange(noise.shape[1]) - start  # (T_pad,) step within the sequence
    h = params.h[cls][:, jnp.clip(rel, 0, L - 1)]  # (B, T_pad)
    return jnp.where(rel < 0, 0.0, jnp.where(rel < L, h, noise))


def forward(params: Params, noise, cls, start=0):
    """``x_T = tanh(a_T)`` of each sequence.

    ``a_t = w tanh(a_{t-1}) + u_t``, ``a_0 = 0``, with ``u = inputs(params, noise, cls, start)``.

    Args:
        noise: (B, T_pad) noise inputs; cls: (B,) 0 or 1; start: as for ``inputs``.
    Returns:
        (B,) outputs.
    """
    u = inputs(params, noise, cls, start)
    a, _ = jax.lax.scan(lambda a, u_t: (params.w * jnp.tanh(a) + u_t, None), jnp.zeros_like(u[:, 0]), u.T)
    return jnp.tanh(a)


def loss(params: Params, noise, cls, target, start=0):
    """``C / P = 1/(2P) sum_p (x_T^p - d^p)^2`` with ``d = ±target`` by class."""
    d = jnp.where(cls == 1, target, -target).astype(noise.dtype)
    return 0.5 * jnp.mean((forward(params, noise, cls, start) - d) ** 2)


def test_metrics(params: Params, noise, cls, target, start=0):
    """``(mean loss, number of sequences whose output has the wrong sign)`` on a test set."""
    x = forward(params, noise, cls, start)
    d = jnp.where(cls == 1, target, -target).astype(noise.dtype)
    return 0.5 * jnp.mean((x - d) ** 2), jnp.sum(jnp.sign(x) != jnp.sign(d))


def _aligned_noise(key, n, start, T_pad, sd):
    """(n, T_pad) noise whose step ``j`` of the sequence (column ``start + j``) is drawn from
    ``fold_in(key, j)``: a member's noise does not depend on how far it is padded."""
    rel = jnp.arange(T_pad) - start
    e = jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(key, j), (n,)))(jnp.maximum(rel, 0))
    return sd * jnp.where(rel[:, None] >= 0, e, 0.0).T


def member_data(key, n_train: int, n_test: int, T_pad: int, s, start=0):
    """A member's training and test sets: noise ``(n, T_pad)`` of variance ``s``, aligned to
    start at ``start``, and classes ``(n,)`` alternating 0, 1 (full batch: order is moot)."""
    k_tr, k_te = jax.random.split(key)
    sd = jnp.sqrt(s)
    return (
        _aligned_noise(k_tr, n_train, start, T_pad, sd),
        jnp.arange(n_train) % 2,
        _aligned_noise(k_te, n_test, start, T_pad, sd),
        jnp.arange(n_test) % 2,
    )


def init_params(key, L: int, w0, h_init):
    """``w = w0``, ``h ~ U(-h_init, h_init)`` (2, L)."""
    return Params(jnp.asarray(w0, jnp.float32), jax.random.uniform(key, (2, L), jnp.float32, -1.0, 1.0) * h_init)


def _keys(seed):
    return jax.random.split(jax.random.PRNGKey(seed), 2)  # init, data


class Result(NamedTuple):
    """Per member (leading axis R): ``converged`` (bool), ``epochs`` (first check at which it
    converged, else the budget), final ``params``, final ``train_loss``, ``test_loss`` and
    ``test_errors`` (wrong signs on the test set)."""

    converged: np.ndarray
    epochs: np.ndarray
    params: Params
    train_loss: np.ndarray
    test_loss: np.ndarray
    test_errors: np.ndarray


@partial(jax.jit, static_argnames=("T_pad", "L", "n_train", "n_test", "epochs", "check_every", "optimizer"))
def _train(
    seeds, T, w0, s, lr, h_init, target, threshold, *, T_pad, L, n_train, n_test, epochs, check_every, optimizer
):
    opt = train.direction(optimizer)
    n_checks = epochs // check_every

    def one(seed, T, w0, s):
        k_init, k_data = _keys(seed)
        start = T_pad - T
        x_tr, c_tr, x_te, c_te = member_data(k_data, n_train, n_test, T_pad, s, start)
        params = init_params(k_init, L, w0, h_init)

        def converged(p):
            tl, errs = test_metrics(p, x_te, c_te, target, start)
            return (errs == 0) & (tl < threshold)

        def gd_step(carry, _):
            p, o, done = carry
            g = jax.grad(loss)(p, x_tr, c_tr, target, start)
            u, o = opt.update(g, o, p)
            p = jax.tree.map(lambda a, b: jnp.where(done, a, a - lr * b), p, u)
            return (p, o, done), None

        def block(carry, k):
            p, o, done, at = carry
            (p, o, _), _ = jax.lax.scan(gd_step, (p, o, done), None, length=check_every)
            ok = converged(p) & ~done
            return (p, o, done | ok, jnp.where(ok, (k + 1) * check_every, at)), None

        done0 = converged(params)
        carry = (params, opt.init(params), done0, jnp.where(done0, 0, epochs))
        (p, _, done, at), _ = jax.lax.scan(block, carry, jnp.arange(n_checks))
        tl, errs = test_metrics(p, x_te, c_te, target, start)
        return done, at, p, loss(p, x_tr, c_tr, target, start), tl, errs

    return jax.vmap(one)(seeds, T, w0, s)


def train_ensemble(cfg: Bengio94Config, T, w0, s, seeds) -> Result:
    """Train every member ``(T[r], w0[r], s[r], seeds[r])``: the members of each length
    together, by the native kernel (``latchlab/engine/native/bengio94.cpp``: each thread
    trains one member per SIMD lane, a lane taking the next member when its own finishes)
    or, where it cannot run (``LATCHLAB_NATIVE=0``, no compiler, not the CPU), by ``_train``
    (one compiled, vmapped call per length). Both compute the same per member, to float32
    rounding: members are independent, and no member waits for or pads to another.

    A member's data and initial inputs come from its seed alone: members with equal seeds
    see the same noise draws (scaled by their own ``sqrt(s)``, step ``j`` of a sequence from
    ``fold_in(key, j)`` whatever its length) and start from the same inputs; the native path
    draws them once a seed (``_seed_draws``).

    Args:
        cfg: the trainer's settings (L, n_train, n_test, optimizer, lr, epochs, check_every,
            loss_threshold, target, h_init); its grids are not used here.
        T, w0, s, seeds: (R,) per member.
    """
    seeds = np.asarray(seeds, np.uint32)
    T = np.broadcast_to(np.asarray(T, np.int32), seeds.shape)
    w0, s = (np.broadcast_to(np.asarray(a, np.float32), seeds.shape) for a in (w0, s))
    if T.min() <= cfg.L:
        raise ConfigError("T", f"sequence length must exceed L={cfg.L}, got {int(T.min())}")
    try:
        lib = native.bengio94()
    except RuntimeError:
        lib = None
    so = native.prng() if lib else None
    draws = _seed_draws(so, cfg, T, seeds) if so is not None else None
    parts, order = [], []
    for length in np.unique(T):
        idx = np.flatnonzero(T == length)
        args = (cfg, int(length), w0[idx], s[idx], seeds[idx])
        parts.append(_train_native(*args, lib, draws) if lib else _train_jax(*args))
        order.append(idx)
    back = np.argsort(np.concatenate(order))  # members in their given order
    return jax.tree.map(lambda *a: np.concatenate(a)[back], *parts)


def _budget(cfg: Bengio94Config) -> int:
    """The epochs a member may train: whole blocks of ``check_every``."""
    return cfg.epochs // cfg.check_every * cfg.check_every


def _train_jax(cfg: Bengio94Config, T: int, w0, s, seeds) -> Result:
    """``_train`` on members of one length ``T``."""
    f32 = jnp.float32
    out = _train(
        jnp.asarray(seeds),
        jnp.full(seeds.shape, T, jnp.int32),
        jnp.asarray(w0),
        jnp.asarray(s),
        *(f32(v) for v in (cfg.lr, cfg.h_init, cfg.target, cfg.loss_threshold)),
        T_pad=T,
        L=cfg.L,
        n_train=cfg.n_train,
        n_test=cfg.n_test,
        epochs=_budget(cfg),
        check_every=cfg.check_every,
        optimizer=cfg.optimizer,
    )
    done, at, p, trl, tl, errs = jax.device_get(out)
    return Result(np.asarray(done, bool), np.asarray(at, np.int64), Params(*map(np.asarray, p)), trl, tl, errs)


@partial(jax.jit, static_argnames="L")
def _member_keys(seeds, w0, h_init, *, L):
    """Each member's initial inputs ``h`` (R, 2, L), as ``init_params`` draws them, and the
    keys of its training and test noise, (R, 2) each, as ``member_data`` splits them."""

    def one(seed, w0_r):
        k_init, k_data = _keys(seed)
        k_tr, k_te = jax.random.split(k_data)
        return init_params(k_init, L, w0_r, h_init).h, k_tr, k_te

    return jax.vmap(one)(seeds, w0)


@partial(jax.jit, static_argnames="n")
def _normal_rows(keys, steps, *, n):
    """(B, n): row ``b`` is ``normal(fold_in(keys[b], steps[b]), (n,))``, the draws of
    ``_aligned_noise`` before their scale."""
    return jax.vmap(lambda k, j: jax.random.normal(jax.random.fold_in(k, j), (n,)))(keys, steps)


# draws per call of ``_normal_rows``: XLA:CPU drew 3-4x fewer a second when a call's
# intermediates went to memory (a whole ensemble's at once) than when they stayed in L2
_ROW_WORDS = 1 << 16


def _time_major_noise(keys, sd, L: int, T: int, n: int) -> np.ndarray:
    """(R, T - L, n) float32: member r's noise at steps ``L+1..T`` (the steps after the
    trainable ones), as ``member_data`` draws it: step ``j``'s ``n`` draws from
    ``fold_in(keys[r], j)``, times ``sd[r]`` (rounded once: the product is taken here, as
    XLA fused into other operations rounds it differently). Made ``_ROW_WORDS // n`` rows a
    call, the last call's padded, so that every length compiles one function per ``n``."""
    R, S = len(keys), T - L
    rows = max(1, _ROW_WORDS // n)
    key_of = np.repeat(np.asarray(keys, np.uint32), S, 0)  # (R S, 2) row r S + t: member r, step L + t
    step_of = np.tile(np.arange(L, T, dtype=np.int32), R)
    scale = np.repeat(np.asarray(sd, np.float32), S)[:, None]
    out = np.empty((R * S, n), np.float32)
    pending: deque = deque()  # a few calls ahead: XLA draws while the host copies

    def copy():
        i, drawn = pending.popleft()
        m = min(rows, R * S - i)
        np.multiply(np.asarray(drawn)[:m], scale[i : i + m], out=out[i : i + m])

    for i in range(0, R * S, rows):
        idx = np.minimum(np.arange(i, i + rows), R * S - 1)
        pending.append((i, _normal_rows(key_of[idx], step_of[idx], n=n)))
        if len(pending) > 8:
            copy()
    while pending:
        copy()
    return out.reshape(R, S, n)


def _native_draws(so, cfg: Bengio94Config, T: int, sd, seeds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_member_keys``'s initial inputs and ``_time_major_noise``'s training and test noise,
    bit for bit, made by ``native.prng``'s library ``so`` (JAX's Threefry and normal, checked
    against JAX on this machine): no compilation, and every core drawing."""
    R, L = seeds.size, cfg.L
    seeds, sd = np.ascontiguousarray(seeds, np.uint32), np.ascontiguousarray(sd, np.float32)
    h0, k_tr, k_te = np.empty((R, 2, L), np.float32), np.empty((R, 2), np.uint32), np.empty((R, 2), np.uint32)
    u32 = partial(native._ptr, ctype=ctypes.c_uint32)
    so.prng_b94_members(R, u32(seeds), L, cfg.h_init, native._ptr(h0), u32(k_tr), u32(k_te))
    noise = []
    for k, n in ((k_tr, cfg.n_train), (k_te, cfg.n_test)):
        x = np.empty((R, T - L, n), np.float32)
        so.prng_b94_noise(R, u32(k), L, T, n, native._ptr(sd), native._ptr(x), native.threads())
        noise.append(x)
    return h0, *noise


class SeedDraws(NamedTuple):
    """``_native_draws`` of each distinct seed among a call's members, made once: its initial
    inputs (U, 2, L) and its unit training and test noise up to the longest length of its
    members, ``steps`` (U,) rows (steps ``L+1..``) of ``n`` each, time-major (step j's draws
    come from ``fold_in(key, j)`` whatever the length), in the order of ``seeds`` (sorted):
    at the addresses ``at_tr`` and ``at_te`` (U,), in the arrays ``drawn`` (which keeps them)."""

    seeds: np.ndarray
    h0: np.ndarray
    steps: np.ndarray
    at_tr: np.ndarray
    at_te: np.ndarray
    drawn: list


def _rows_at(x: np.ndarray) -> np.ndarray:
    """The addresses of ``x``'s (R, ...) rows, float32 and C-contiguous (R,)."""
    assert x.flags.c_contiguous and x.dtype == np.float32
    return np.uintp(x.ctypes.data) + np.arange(len(x), dtype=np.uintp) * np.uintp(x.strides[0])


def _seed_draws(so, cfg: Bengio94Config, T, seeds) -> SeedDraws:
    """``SeedDraws`` of members with lengths ``T`` and ``seeds`` (R,) each, by ``so``: the
    seeds of each longest length in one ``_native_draws`` call. Fig. 2a's 2240 trials have
    40 seeds, Fig. 2b's 800 trials 100: drawing each member's own noise made 6.4 times the
    draws needed, 40 % of the trials' time (46 % on AVX2)."""
    uniq, row = np.unique(seeds, return_inverse=True)
    longest = np.zeros(len(uniq), np.int64)
    np.maximum.at(longest, row, T)
    h0 = np.empty((len(uniq), 2, cfg.L), np.float32)
    at_tr, at_te = np.zeros(len(uniq), np.uintp), np.zeros(len(uniq), np.uintp)
    drawn = []
    for length in np.unique(longest):
        at = np.flatnonzero(longest == length)
        h, tr, te = _native_draws(so, cfg, int(length), np.ones(at.size, np.float32), uniq[at])
        h0[at], at_tr[at], at_te[at] = h, _rows_at(tr), _rows_at(te)
        drawn += [tr, te]
    return SeedDraws(uniq, h0, longest - cfg.L, at_tr, at_te, drawn)


def _member_draws(d: SeedDraws, seeds, T: int, cfg: Bengio94Config) -> tuple:
    """Members with ``seeds`` at length ``T``: their initial inputs (R, 2, L) and the
    addresses (R,) of their seeds' unit training and test noise in ``d`` (at least ``T - L``
    rows each). ``b94_train`` scales each by the member's own ``sqrt(s)``, rounded once as
    ``prng_b94_noise`` rounds its product: ``_native_draws`` of the members, bit for bit, with
    no copy a member."""
    rows = np.searchsorted(d.seeds, seeds)
    assert (d.seeds[rows] == seeds).all() and (d.steps[rows] >= T - cfg.L).all(), "a seed not drawn, or too short"
    return d.h0[rows], d.at_tr[rows], d.at_te[rows]


def _train_native(cfg: Bengio94Config, T: int, w0, s, seeds, lib, draws: SeedDraws | None) -> Result:
    """Members of one length ``T`` trained by ``bengio94.cpp``'s ``b94_train`` on every core
    this process may use; their draws from ``draws`` (``native.prng``'s), else from JAX."""
    R, L = seeds.size, cfg.L
    sd = np.sqrt(s)  # float32, correctly rounded as jnp.sqrt's
    if draws is not None:  # each seed's unit noise, scaled by the kernel
        h0, rows_tr, rows_te = _member_draws(draws, seeds, T, cfg)
        scale = np.ascontiguousarray(sd, np.float32)
    else:  # each member's noise, scaled here (x_tr and x_te keep it until the call returns)
        h0, k_tr, k_te = map(np.asarray, _member_keys(seeds, w0, jnp.float32(cfg.h_init), L=L))
        x_tr = _time_major_noise(k_tr, sd, L, T, cfg.n_train)
        x_te = _time_major_noise(k_te, sd, L, T, cfg.n_test)
        rows_tr, rows_te = _rows_at(x_tr), _rows_at(x_te)
        scale = np.ones(R, np.float32)
    h0, w0 = np.ascontiguousarray(h0, np.float32), np.ascontiguousarray(w0, np.float32)
    out = Result(
        np.zeros(R, np.int32),
        np.zeros(R, np.int32),
        Params(np.zeros(R, np.float32), np.zeros((R, 2, L), np.float32)),
        np.zeros(R, np.float32),
        np.zeros(R, np.float32),
        np.zeros(R, np.int32),
    )

    def ptr(a):
        return a.ctypes.data_as(ctypes.POINTER(ctypes.c_int32 if a.dtype == np.int32 else ctypes.c_float))

    code = lib.b94_train(
        R,
        T,
        L,
        cfg.n_train,
        cfg.n_test,
        ctypes.cast(rows_tr.ctypes.data, native._PPF),
        ctypes.cast(rows_te.ctypes.data, native._PPF),
        ptr(scale),
        ptr(w0),
        ptr(h0),
        native.OPTIMIZERS[cfg.optimizer],
        cfg.lr,
        cfg.target,
        cfg.loss_threshold,
        _budget(cfg),
        cfg.check_every,
        native.threads(),
        ptr(out.params.w),
        ptr(out.params.h),
        ptr(out.converged),
        ptr(out.epochs),
        ptr(out.train_loss),
        ptr(out.test_loss),
        ptr(out.test_errors),
    )
    if code:
        raise RuntimeError(f"the native bengio94 kernel rejected its arguments (code {code})")
    return out._replace(converged=out.converged.astype(bool), epochs=out.epochs.astype(np.int64))


# ----------------------------------------------------------------------------- the experiment

SCALES = {
    # Fig. 2a on a 6 x 6 grid with 10 trials per cell, Fig. 2b at 6 lengths with 30 trials
    "quick": {
        "w0_grid": (0.5, 1.0, 1.25, 1.5, 2.0, 3.0),
        "s_grid": (0.025, 0.05, 0.1, 0.2, 0.4, 0.8),
        "T_grid": (5, 10, 20, 30, 50, 100),
        "trials": 10,
        "fig2b_trials": 30,
        "seed_repeats": 5,
    },
    # the config's full grids, 40 trials per Fig. 2a cell, 100 per Fig. 2b length
    "full": {"trials": 40, "fig2b_trials": 100, "seed_repeats": 20},
}
RESULT_COLUMNS = [
    "figure",
    "T",
    "w0",
    "s",
    "L",
    "seed",
    "converged",
    "epochs",
    "w_final",
    "train_loss",
    "test_loss",
    "test_sign_errors",
    "optimizer",
    "lr",
]
SEED_OVERLAY_COLUMNS = ["member_id", "T", "seed", "noise", "val_acc", "val_loss"]


def experiment_config(scale: str = "quick", overrides=None) -> tuple[Bengio94Config, int]:
    """The ``Bengio94Config`` of a scale, with optional field overrides (e.g. from TOML),
    and the trials per length of Fig. 2b (``fig2b_trials``, also overridable).

    Returns:
        ``(config, fig2b_trials)``.
    """
    s = check_scale(SCALES, scale)
    fig2b_trials = (overrides or {}).get("fig2b_trials", s.pop("fig2b_trials"))
    if isinstance(fig2b_trials, bool) or not isinstance(fig2b_trials, int) or fig2b_trials < 1:
        raise ConfigError("fig2b_trials", f"must be an integer >= 1, got {fig2b_trials!r}")
    over = {k: v for k, v in (overrides or {}).items() if k != "fig2b_trials"}
    cfg = make_config(**(s | over))
    check_limits(cfg, fig2b_trials)
    return cfg, fig2b_trials


def check_limits(cfg: Bengio94Config, fig2b_trials: int) -> None:
    """``LimitError`` (``latchlab.limits``) before any work if the members of one length in
    ``trial_rows`` (``train_ensemble`` trains one length at a time, every member's data at
    once) or the overlaid seed sweep need more memory than the machine has."""
    from latchlab import limits

    lengths = {
        "Fig. 2a": [(len(cfg.w0_grid) * len(cfg.s_grid) * cfg.trials, cfg.T)],
        "Fig. 2b": [(fig2b_trials, int(T)) for T in cfg.T_grid],  # each length once (``_check``)
    }
    n = cfg.n_train + cfg.n_test
    for fig, groups in lengths.items():
        R, T = max(groups, key=lambda g: g[0] * g[1])  # the length whose sequences take the most
        parts = {
            # every member's noise: the JAX trainer's drawn step by step and transposed (about
            # three copies), or the native one's host copy where JAX draws it (the native
            # draws are a seed's, shared by its members: at most this)
            "sequences (trials x (n_train + n_test) x T)": 3 * R * n * T * limits.F32,
            # the JAX trainer's forward states and their gradients over the training set
            "training (trials x n_train x T)": 4 * R * cfg.n_train * T * limits.F32,
            # the native trainer's key, step and scale of every drawn row (training and test)
            "draws (trials x T x 2)": 2 * 4 * R * T * limits.F32,
        }
        seconds = sum(R * cfg.epochs * n * T for R, T in groups) * limits.STEP_SECONDS
        limits.check(f"{fig}'s {R} trials at T={T} with {cfg.n_train} + {cfg.n_test} sequences", parts, seconds)
    if cfg.seed_repeats:
        limits.check_sweep(seed_overlay_sweep(cfg))


def trial_rows(cfg: Bengio94Config, fig2b_trials: int):
    """Train Fig. 2a (one ensemble: every ``(w0, s)`` cell x trial at ``T``) and Fig. 2b (one
    ensemble: every ``T`` x trial at ``(w0_fig2b, s_fig2b)``); one row per trial."""
    frames = []
    w0, s = (a.ravel() for a in np.meshgrid(cfg.w0_grid, cfg.s_grid, indexing="ij"))
    seeds = cfg.seed + np.arange(cfg.trials)
    plan = [
        (
            "2a",
            np.full(w0.size * cfg.trials, cfg.T),
            np.repeat(w0, cfg.trials),
            np.repeat(s, cfg.trials),
            np.tile(seeds, w0.size),
        )
    ]
    Ts = np.asarray(cfg.T_grid)
    seeds_b = cfg.seed + np.arange(fig2b_trials)
    plan.append(
        (
            "2b",
            np.repeat(Ts, fig2b_trials),
            np.full(Ts.size * fig2b_trials, cfg.w0_fig2b),
            np.full(Ts.size * fig2b_trials, cfg.s_fig2b),
            np.tile(seeds_b, Ts.size),
        )
    )
    for fig, T, w, v, sd in plan:
        r = train_ensemble(cfg, T, w, v, sd)
        frames.append(
            pd.DataFrame(
                {
                    "figure": fig,
                    "T": T,
                    "w0": w,
                    "s": v,
                    "L": cfg.L,
                    "seed": sd,
                    "converged": r.converged.astype(int),
                    "epochs": r.epochs,
                    "w_final": r.params.w,
                    "train_loss": r.train_loss,
                    "test_loss": r.test_loss,
                    "test_sign_errors": r.test_errors,
                    "optimizer": cfg.optimizer,
                    "lr": cfg.lr,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def seed_overlay_sweep(cfg: Bengio94Config):
    """The seed's softmax set-up (``seed.PROTOCOL``: one-unit SRNN, Keras-2, Dense(2), Adam
    1e-3, batch 16, 5 epochs, N = 10000) with the stratified split, at Fig. 2b's lengths and
    ``cfg.seed_noise``, for the overlay."""
    from latchlab import config
    from latchlab.experiments.seed import PROTOCOL

    return config.from_dict(
        {
            **PROTOCOL,
            "name": "bengio1994-seed-overlay",
            "repeats": cfg.seed_repeats,
            "seed": cfg.seed,
            "cell": "srnn",
            "noise": cfg.seed_noise,
            "preset": "keras2",
            "split": "stratified",
            "grid": {"T": list(cfg.T_grid)},
        }
    )


class Reproduction(NamedTuple):
    """What ``latchlab reproduce bengio1994`` computes: the config, one row per trial, the
    seed overlay's members (or None) and the run's provenance (``config.json``)."""

    cfg: Bengio94Config
    fig2b_trials: int
    rows: pd.DataFrame
    seed_final: pd.DataFrame | None
    meta: dict


def _compute(runner, scale: str = "quick", overrides=None) -> Reproduction:
    import time
    from concurrent.futures import ThreadPoolExecutor

    from latchlab import provenance
    from latchlab.analysis import plot

    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(1)  # the versions and the commit (subprocesses) while the kernels run
    prov = pool.submit(provenance.collect)
    pool.shutdown(wait=False)
    cfg, fig2b_trials = experiment_config(scale, overrides)
    rows = trial_rows(cfg, fig2b_trials)
    seed_final = plot.final(runner(seed_overlay_sweep(cfg))) if cfg.seed_repeats else None
    meta = {
        "config": cfg.to_dict(),
        "fig2b_trials": fig2b_trials,
        "scale": scale,
        "command": runner.command,
        "seconds": round(time.perf_counter() - t0, 1),
        **prov.result(),
    }
    return Reproduction(cfg, fig2b_trials, rows, seed_final, meta)


def _outputs(r: Reproduction, out) -> list:
    import json
    from pathlib import Path

    from latchlab.analysis import plot
    from latchlab.experiments import bengio1994_figures as F

    out = Path(out)
    fig, table = F.fig1()
    paths = plot.save(fig, out / "fig1") + [
        write_results(table, out, list(table), "fig1_threshold.csv"),
        write_results(r.rows, out, RESULT_COLUMNS),
    ]
    if r.seed_final is not None:
        paths.append(write_results(r.seed_final, out, SEED_OVERLAY_COLUMNS, "seed_overlay.csv"))
    paths += plot.save(F.fig2a(r.rows, r.cfg), out / "fig2a") + plot.save(
        F.fig2b(r.rows, r.cfg, r.seed_final), out / "fig2b"
    )
    (out / "config.json").write_text(json.dumps(r.meta, indent=2))
    return paths + [out / "config.json"]


def _table(r: Reproduction):
    from latchlab.analysis.stats import wilson

    cells = []
    for T, d in r.rows[r.rows.figure == "2b"].groupby("T"):
        k, n = int(d.converged.sum()), len(d)
        lo, hi = wilson(k, n)
        med = np.median(d.epochs[d.converged == 1]) if k else float("nan")
        cells.append([str(T), f"{k}/{n} [{float(lo):.2f}, {float(hi):.2f}]", f"{med:g}"])
    frame = pd.DataFrame(cells, columns=["T", "converged [Wilson 95 %]", "median epochs (converged)"])
    a = r.rows[r.rows.figure == "2a"]
    best = a.groupby(["w0", "s"]).converged.mean()
    note = (
        f"Fig. 2a: mean convergence {a.converged.mean():.2f} over {len(best)} cells; best {best.max():.2f} at "
        f"w0 = {best.idxmax()[0]:g}, s = {best.idxmax()[1]:g}; {r.meta['seconds']} s"
    )
    return Table(f"Fig. 2b: convergence against T (s = {r.cfg.s_fig2b:g}, w0 = {r.cfg.w0_fig2b:g})", frame, note)


EXPERIMENT = Experiment(
    "bengio1994",
    SCALES,
    experiment_config,
    _compute,
    _outputs,
    _table,
    (
        *figure_files("fig1"),
        "fig1_threshold.csv",
        "results.csv",
        "seed_overlay.csv",
        *figure_files("fig2a", "fig2b"),
        "config.json",
    ),
)
