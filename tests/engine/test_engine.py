"""Reference tests for the ensemble trainer (``latchlab.engine.train``) and the sweep's plan,
data and run loop (``latchlab.engine.plan``, ``data``, ``run``; ``tests/engine/test_engine_run.py``
follows a chunk's trip through them).

* The vmapped, left-padded ensemble equals a plain Python loop over members, each trained
  alone on its own unpadded data with ``jax.grad`` and Keras 3's Adam (``keras.optimizers.Adam``).
* Masked left-padding is exact (loss and gradients), for every cell and in every gradient
  mode of ``train.loss_and_grads`` (vmap, flat, rtrl, bptt), short batches included.
* The fast paths ``choose_mode`` picks train to the same parameters as plain vmap +
  reverse-mode autodiff (1e-5).
* Gradients equal central finite differences in float64, for every cell and head.
* A compiled epoch is not compiled again for the same shapes; a sweep compiles once per
  distinct shape (once per bucket).
* A one-unit SRNN learns the latch task at T = 10 under the seed's protocol, and a sweep is
  deterministic.
"""

from __future__ import annotations

import functools
import os
import threading
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references
from jax.flatten_util import ravel_pytree

from latchlab import config
from latchlab.engine import native
from latchlab.engine import run as runner
from latchlab.engine import data as sweep_data
from latchlab.engine import plan as sweep_plan
from latchlab.core import tasks
from latchlab.engine import train
from latchlab.core import model as M
from latchlab.core.cells import Cell

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


# ----------------------------------------------------------------------------- helpers


def _stack(trees):
    """The members' trees stacked on a leading axis, on the host: ``jnp.stack`` compiled a
    program for every count and shape (107 compilations in test_engine and test_native)."""
    return jax.tree.map(lambda *a: jax.device_put(np.stack(a)), *trees)


def _member(tree, r):
    return jax.tree.map(lambda a: a[r], tree)


def _random_params(seed, model, scale=0.5, dtype=np.float32):
    """Parameters in the model's layout with random normal entries (no symmetric zeros),
    drawn by numpy: the layout is traced (``jax.eval_shape``), nothing is compiled."""
    leaves, tree = jax.tree.flatten(jax.eval_shape(lambda: M.init(jax.random.PRNGKey(0), model)))
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(scale * rng.normal(size=a.shape), dtype) for a in leaves])


@functools.lru_cache
def _padded_data(Ts, T_pad, n, val_frac=0.2, how="stratified", noise=0.5):
    """Latch data sets of lengths ``Ts`` left-padded to ``T_pad``, and the unpadded ones.

    Returns:
        ``train.Data`` with D = len(Ts) data sets, and a list of ``(x, y, train, val)`` per set.
    """
    xs, ys, masks, trs, vas, raw = [], [], [], [], [], []
    for d, T in enumerate(Ts):
        x, y = tasks.latch(jax.random.PRNGKey(100 + d), n, T, noise)
        tr, va = tasks.split_indices(jax.random.PRNGKey(200 + d), y, val_frac, how)
        x, y = np.asarray(x), np.asarray(y)
        xp = np.zeros((n, T_pad, 1), np.float32)
        xp[:, T_pad - T :] = x
        xs.append(xp)
        ys.append(y)
        masks.append(np.arange(T_pad) >= T_pad - T)
        trs.append(tr)
        vas.append(va)
        raw.append((x, y, tr, va))
    data = train.Data(
        jnp.asarray(np.stack(xs)),
        jnp.asarray(np.stack(ys)),
        jnp.asarray(np.stack(masks)),
        jnp.asarray(np.stack(trs).astype(np.int32)),
        jnp.asarray(np.stack(vas).astype(np.int32)),
    )
    return data, raw


class _KerasAdam:
    """Keras 3's own Adam (``keras.optimizers.Adam``, its defaults: the seed's optimiser),
    stepped statelessly over a parameter pytree: the reference for ``train.direction("adam")``."""

    def __init__(self, lr, params):
        import keras

        self.treedef = jax.tree.structure(params)
        self.opt = keras.optimizers.Adam(learning_rate=float(lr), beta_1=0.9, beta_2=0.999, epsilon=1e-7)
        self.opt.build([keras.Variable(np.asarray(p)) for p in jax.tree.leaves(params)])

    def init(self):
        return [v.value for v in self.opt.variables]

    def update(self, grads, state, params):
        new, state = self.opt.stateless_apply(state, jax.tree.leaves(grads), jax.tree.leaves(params))
        return jax.tree.unflatten(self.treedef, new), state


def _reference_step(model, params, opt, opt_state, x, y):
    (loss, a), g = jax.value_and_grad(partial(M.loss, model), has_aux=True)(params, x, y)
    params, opt_state = opt.update(g, opt_state, params)
    return params, opt_state, loss, a


_jit_loss = references.jit(M.loss, static_argnums=0)


def _reference_member(model, params, x, y, tr, va, lr, seed, batch_size, epochs):
    """One member trained alone: plain Python loop, ``jax.grad`` and Keras' Adam.

    The minibatches follow the member's own shuffling generator, as ``train.fit`` documents:
    ``np.random.default_rng([seed, 0x5EED]).permutation(n_train)`` once per epoch.
    Returns the final parameters and per-epoch (train loss, train acc, val loss, val acc),
    the training metrics measured on each batch before its update, weighted by batch size.
    """
    opt = _KerasAdam(lr, params)
    opt_state = opt.init()
    rng = np.random.default_rng([seed, 0x5EED])
    metrics = []
    for _ in range(epochs):
        perm = rng.permutation(len(tr))
        tl = ta = 0.0
        for s in range(0, len(tr), batch_size):
            ex = tr[perm[s : s + batch_size]]
            params, opt_state, loss, a = _reference_step(model, params, opt, opt_state, x[ex], y[ex])
            tl, ta = tl + float(loss) * len(ex), ta + float(a) * len(ex)
        vl, vacc = _jit_loss(model, params, x[va], y[va])
        metrics.append((tl / len(tr), ta / len(tr), float(vl), float(vacc)))
    return params, np.array(metrics)


# ----------------------------------------------------------------------------- 1. ensemble == loop


@pytest.mark.parametrize(
    "kind, units, mode",
    [
        ("srnn", 1, "native"),  # the mode train.Spec.for_model picks for one-unit cells on a CPU
        ("lstm", 1, "native"),
        ("srnn", 1, "rtrl"),  # the XLA modes picked without native kernels (e.g. on a GPU)
        ("lstm", 1, "bptt"),
        ("gru", 5, "vmap"),  # the mode picked for larger cells: vmapped batched matmuls
    ],
)
def test_ensemble_equals_python_loop(kind, units, mode):
    """R = 4 members: own seeds, learning rates and lengths (4, 6, 8, 8 left-padded to 8).

    Two members share a data set; 2 epochs of 51 training examples in batches of 16, so
    every epoch ends on a short batch (weights 0 on its padding). Each gradient mode of
    ``train.loss_and_grads`` is trained once; all three are checked against one another
    on single batches in ``test_loss_and_grads_equal_each_members_unpadded_loss``.
    """
    model = M.Model(Cell(kind, units), "dense2")
    data_T = (8, 4, 6)  # data sets; the members below use them in another order
    member_data = np.array([1, 2, 0, 0])  # member T = 4, 6, 8, 8
    seeds = np.array([11, 12, 13, 14])
    lr = np.array([1e-3, 3e-3, 1e-2, 3e-2], np.float32)
    N, B, E = 64, 16, 2
    data, raw = _padded_data(data_T, 8, N)
    init = [M.init(jax.random.PRNGKey(int(s)), model) for s in seeds]

    data = train.Data(*(np.asarray(a)[member_data] for a in data))  # one data set per member
    hist = train.fit(train.Spec(model, "adam", B, mode), _stack(init), data, lr, seeds, E)

    for r in range(len(seeds)):
        x, y, tr, va = raw[member_data[r]]
        assert len(tr) % B != 0
        want_p, want_m = _reference_member(model, init[r], x, y, tr, va, lr[r], int(seeds[r]), B, E)
        got_p = _member(hist.params[-1], r)
        for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(got_p)[0], jax.tree.leaves(want_p)):
            np.testing.assert_allclose(g, w, atol=1e-5, err_msg=f"member {r} {jax.tree_util.keystr(path)}")
        got_m = np.stack([hist.train_loss[:, r], hist.train_acc[:, r], hist.val_loss[:, r], hist.val_acc[:, r]], 1)
        np.testing.assert_allclose(got_m, want_m, atol=1e-5, err_msg=f"member {r} metrics (tl, ta, vl, va)")
        # the reference actually moved: the comparison is not between two copies of the init
        assert (
            max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(want_p), jax.tree.leaves(init[r]))) > 1e-3
        )


@pytest.mark.parametrize("cell", [Cell("srnn", 1), Cell("lstm", 1, "hard_sigmoid")])
def test_fast_path_equals_plain_vmap_autodiff(cell):
    """The mode ``Spec.for_model`` picks (rtrl for the one-unit SRNN, the hand-derived bptt
    for the one-unit LSTM) trains the same members, on mixed left-padded lengths over 3
    epochs, to the same parameters and metrics as plain vmap + reverse-mode autodiff."""
    model = M.Model(cell, "dense2")
    fast = train.Spec.for_model(model)
    assert fast.mode != "vmap"
    data, _ = _padded_data((8, 4, 6), 8, 64)
    seeds = np.array([1, 2, 3])
    init = _stack([M.init(jax.random.PRNGKey(int(s)), model) for s in seeds])
    lr = np.full(3, 1e-2, np.float32)
    got = train.fit(fast, init, data, lr, seeds, 3)
    want = references.vmap_fit(fast, init, data, lr, seeds, 3)
    for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(got.params[-1])[0], jax.tree.leaves(want.params[-1])):
        np.testing.assert_allclose(g, w, atol=1e-5, err_msg=jax.tree_util.keystr(path))
    for a, b in zip(got[:4], want[:4]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert (
        max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(want.params[-1]), jax.tree.leaves(init))) > 1e-2
    )


# ----------------------------------------------------------------------------- 2. padding is exact

# lstm and gru are also covered, in every gradient mode, by
# test_loss_and_grads_equal_each_members_unpadded_loss
PAD_MODELS = tuple(
    M.Model(Cell(kind, 2), head)
    for kind, head in [
        ("srnn", "dense1"),
        ("lstm", "dense2"),
        ("gru", "dense2"),
        ("lstm_nofg", "dense2"),
        ("janet", "dense2"),
    ]
)


@partial(jax.jit, static_argnums=0)
def _padded_and_unpadded(models, params, x, xp, y, w, mask):
    # one compilation for every model (compiling each separately dominates the test's time)
    vg = lambda m: jax.value_and_grad(partial(M.loss, m), has_aux=True)  # noqa: E731
    return [(vg(m)(p, x, y, w), vg(m)(p, xp, y, w, mask)) for m, p in zip(models, params)]


def test_left_padding_is_exact(subtests):
    """T = 5 padded to T_pad = 9 with junk in the padding equals the unpadded sequence:
    loss, accuracy and gradients (atol 1e-6), for every cell (and the dense1 head)."""
    params = [_random_params(3, m) for m in PAD_MODELS]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5, 1)).astype(np.float32)
    y = jnp.asarray(rng.integers(0, 2, 6), jnp.int32)
    w = jnp.asarray(rng.uniform(0.5, 1.5, 6), jnp.float32)
    xp = np.concatenate([rng.normal(size=(6, 4, 1)).astype(np.float32), x], 1)  # junk, then x
    mask = jnp.arange(9) >= 4
    out = _padded_and_unpadded(PAD_MODELS, params, jnp.asarray(x), jnp.asarray(xp), y, w, mask)
    for m, (((l0, a0), g0), ((l1, a1), g1)) in zip(PAD_MODELS, out):
        with subtests.test(cell=m.cell.kind, head=m.head):
            np.testing.assert_allclose(l1, l0, atol=1e-6)
            np.testing.assert_allclose(a1, a0, atol=1e-6)
            for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
                np.testing.assert_allclose(a, b, atol=1e-6)
            assert max(float(jnp.abs(a).max()) for a in jax.tree.leaves(g0)) > 1e-3


@pytest.mark.parametrize(
    "cell, head",
    [
        (Cell("lstm", 1), "dense2"),
        (Cell("lstm", 1, "hard_sigmoid"), "dense1"),  # the seed's gates; bptt's piecewise derivative
        (Cell("lstm_nofg", 1, "hard_sigmoid_keras3"), "dense2"),
        (Cell("gru", 5), "dense2"),
    ],
)
def test_loss_and_grads_equal_each_members_unpadded_loss(cell, head):
    """``train.loss_and_grads`` in every mode the model allows: (R,) losses, accuracies and
    gradients on left-padded data (junk in the padding) with short batches (zero weights),
    against ``model.loss`` and ``jax.grad`` of each member alone on its unpadded real
    examples."""
    model = M.Model(cell, head)
    R, Bsz, T_pad, Ts, n = 3, 5, 9, (5, 9, 7), (5, 2, 4)
    rng = np.random.default_rng(1)
    scale = 0.5 if cell.rsig == "sigmoid" else 2.0  # large enough to saturate hard sigmoids
    params = _stack([_random_params(r, model, scale) for r in range(R)])
    xs = [rng.normal(size=(Bsz, T, 1)).astype(np.float32) for T in Ts]
    x = np.stack([np.concatenate([np.full((Bsz, T_pad - T, 1), 7.0, np.float32), xi], 1) for xi, T in zip(xs, Ts)])
    mask = jnp.asarray(np.stack([np.arange(T_pad) >= T_pad - T for T in Ts]))
    y = jnp.asarray(rng.integers(0, 2, (R, Bsz)), jnp.int32)
    w = jnp.asarray(np.arange(Bsz)[None, :] < np.array(n)[:, None], jnp.float32)  # short batches

    @jax.jit
    def every_mode_and_alone(params, x, y, w, mask, xs, ys):  # one compilation
        modes = {mode: train.loss_and_grads(model, mode, params, x, y, w, mask) for mode in train.modes_for(model)}
        alone = [
            jax.value_and_grad(partial(M.loss, model), has_aux=True)(_member(params, r), xs[r], ys[r]) for r in range(R)
        ]
        return modes, alone

    modes, alone = every_mode_and_alone(
        params,
        jnp.asarray(x),
        y,
        w,
        mask,
        [jnp.asarray(xs[r][: n[r]]) for r in range(R)],
        [y[r, : n[r]] for r in range(R)],
    )
    assert set(modes) == ({"vmap", "flat", "rtrl", "bptt"} if cell.units == 1 else {"vmap", "flat", "rtrl"})
    for mode, (loss, a, g) in modes.items():
        for r, ((lr_, ar), gr) in enumerate(alone):
            np.testing.assert_allclose(loss[r], lr_, atol=1e-6, err_msg=f"{mode} member {r}")
            np.testing.assert_allclose(a[r], ar, atol=1e-6, err_msg=f"{mode} member {r}")
            for (path, got), want in zip(jax.tree_util.tree_flatten_with_path(_member(g, r))[0], jax.tree.leaves(gr)):
                np.testing.assert_allclose(
                    got, want, atol=1e-6, err_msg=f"{mode} member {r} {jax.tree_util.keystr(path)}"
                )


# ----------------------------------------------------------------------------- 3. finite differences


FD_CELLS = [
    Cell("srnn", 2),
    Cell("lstm", 2),
    Cell("lstm", 2, "hard_sigmoid"),
    Cell("gru", 2, reset_after=True),
    Cell("gru", 2, reset_after=False),
    Cell("gru", 5, reset_after=True),  # the matmul branch of cells._dot
    Cell("janet", 2),
    Cell("lstm_nofg", 2),
]


def _fd_problem(model):
    rng = np.random.default_rng(5)
    params = _random_params(7, model, 0.7, np.float64)
    x = jnp.asarray(rng.normal(size=(6, 7, 1)))  # float64
    y = jnp.asarray(rng.integers(0, 2, 6), jnp.int32)
    w = jnp.asarray(rng.uniform(0.5, 1.5, 6))
    mask = jnp.arange(7) >= 2  # two left-padded steps
    return params, x, y, w, mask


def test_float64_propagates(x64):
    model = M.Model(Cell("srnn", 2), "dense2")
    params, x, y, w, mask = _fd_problem(model)
    loss, _ = M.loss(model, params, x, y, w, mask)
    assert loss.dtype == jnp.float64


@pytest.mark.parametrize("cell", FD_CELLS, ids=lambda c: f"{c.kind}{c.units}-{c.rsig}-ra{int(c.reset_after)}")
def test_gradient_equals_finite_differences(x64, cell):
    """Every entry of ``jax.grad(model.loss)`` against ``(L(p+h) - L(p-h)) / 2h``, h = 1e-6,
    rtol 1e-5 / atol 1e-8, for both heads, with example weights and two masked
    (left-padded) steps.
    """
    problems = []
    for head in M.HEADS:
        model = M.Model(cell, head)
        params, x, y, w, mask = _fd_problem(model)
        flat, unravel = ravel_pytree(params)
        assert flat.dtype == jnp.float64
        problems.append(
            (
                head,
                flat,
                partial(
                    lambda model, unravel, x, y, w, mask, v: M.loss(model, unravel(v), x, y, w, mask)[0],
                    model,
                    unravel,
                    x,
                    y,
                    w,
                    mask,
                ),
            )
        )

    @jax.jit
    def grad_and_fd(flats, h):  # one compilation for both heads
        out = []
        for (_, _, L), v in zip(problems, flats):
            eye = h * jnp.eye(v.size, dtype=v.dtype)
            shifted = jax.vmap(L)(jnp.concatenate([v[None, :] + eye, v[None, :] - eye]))  # (2P,)
            out.append(jax.value_and_grad(L)(v) + ((shifted[: v.size] - shifted[v.size :]) / (2 * h),))
        return out

    for (head, _, _), (loss, grad, fd) in zip(problems, grad_and_fd([f for _, f, _ in problems], 1e-6)):
        assert loss.dtype == jnp.float64 and grad.dtype == jnp.float64
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8, err_msg=head)
        assert float(jnp.abs(grad).max()) > 1e-3, head  # a non-trivial gradient


# ----------------------------------------------------------------------------- 4. compilation


class _Compiles:
    """Counts XLA backend compilations by function name while active."""

    def __init__(self):
        self.names = []

    def __call__(self, event, secs, **kw):
        if event == COMPILE_EVENT:
            self.names.append(kw.get("fun_name", ""))

    def count(self, fun):
        return sum(n == f"jit({fun})" for n in self.names)

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


def test_train_epoch_compiles_once_for_same_shapes():
    model = M.Model(Cell("srnn", 1))
    spec = train.Spec(model, "adam", 8)
    data, _ = _padded_data((5, 7), 7, 24)  # unique shapes: no other test compiles these
    data = train.Data(*(np.asarray(a)[[0, 1, 1]] for a in data))  # one data set per member
    params = _stack([M.init(jax.random.PRNGKey(s), model) for s in range(3)])
    rngs = [np.random.default_rng(s) for s in range(3)]
    n_train = data.train.shape[1]
    c0 = train.train_epoch._cache_size()
    with _Compiles() as seen:
        state = train.init_state(spec, params)
        order, weight = train.epoch_order(rngs, n_train, 8)
        lr = jnp.asarray([1e-3, 1e-3, 1e-3], jnp.float32)
        state, l1, _ = train.train_epoch(spec, state, data, lr, order, weight)
        jax.block_until_ready(l1)
        assert seen.count("train_epoch") == 1
        assert train.train_epoch._cache_size() == c0 + 1
        # new values (learning rates, shuffles, parameters), same shapes: no new compilation
        order, weight = train.epoch_order(rngs, n_train, 8)
        lr = jnp.asarray([1e-2, 1e-3, 3e-3], jnp.float32)
        state, l2, _ = train.train_epoch(spec, state, data, lr, order, weight)
        jax.block_until_ready(l2)
    assert seen.count("train_epoch") == 1
    assert train.train_epoch._cache_size() == c0 + 1
    assert not np.allclose(l1, l2)  # it did train


def test_epoch_orders_draw_once_per_seed_as_a_generator_per_member_would():
    # reference: every member its own generator, as a member trained alone would shuffle
    seeds = (3, 3, 1, 7, 1, 3, 0, 2**40 + 5)
    for batch_size in (16, 7, 801):  # one draw cut into batches of each size
        rngs = [np.random.default_rng([s, 0x5EED]) for s in seeds]
        ref = [_padded_batches([rng.permutation(801) for rng in rngs], batch_size) for _ in range(3)]
        got = train.epoch_orders(seeds, 3, 801, batch_size)
        _assert_shuffles_equal(got, ref, len(set(seeds)))
    assert not np.array_equal(got[0].order[0], got[0].order[1])  # different seeds shuffle differently


def _padded_batches(perms, batch_size: int):
    """Each permutation in (S, B) batches, the last padded with position 0 at weight 0."""
    S = -(-len(perms[0]) // batch_size)
    order, weight = [], []
    for p in perms:
        pad = S * batch_size - len(p)
        order.append(np.concatenate([p, np.zeros(pad, int)]).reshape(S, batch_size).astype(np.int32))
        weight.append(np.concatenate([np.ones(len(p)), np.zeros(pad)]).reshape(S, batch_size).astype(np.float32))
    return np.stack(order), np.stack(weight)


def _assert_shuffles_equal(got, ref, distinct: int):
    for shuffles, (ro, rw) in zip(got, ref, strict=True):
        o, w = shuffles.per_member()
        np.testing.assert_array_equal(o, ro)
        np.testing.assert_array_equal(w, rw)
        assert o.dtype == ro.dtype and w.dtype == rw.dtype and not shuffles.order.flags.writeable
        assert len(shuffles.order) == distinct  # one row a seed, shared by its members


def _shape_of(chunk):
    data = sweep_data.make_data(chunk.members, chunk.T_pad)
    return (len(chunk.members), chunk.T_pad) + tuple(a.shape for a in data)


def test_sweep_compiles_once_per_bucket(monkeypatch):
    """Lengths 3, 4, 5, 6 in one bucket (padded to 6), cut into two chunks that mix lengths:
    one shape per bucket, one ``train_epoch`` (and ``evaluate``) compilation per bucket,
    and none at all when the sweep is run again (the XLA modes; the native kernels, which
    train this one-unit LSTM where they can, compile no epoch at all)."""
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    n_dev, B = jax.local_device_count(), 4
    # 2 * n_dev members per chunk whatever the core count: 4 * n_dev members make 2 chunks
    monkeypatch.setattr(sweep_plan, "plan", partial(sweep_plan.plan, rows_per_device=2 * B))
    cfg = config.from_dict(
        {
            "name": "compile",
            "repeats": n_dev,
            "seed": 0,
            "N": 20,
            "epochs": 2,
            "batch_size": B,
            "grid": {"T": [3, 4, 5, 6]},
        }
    )
    chunks = sweep_plan.plan(cfg.members())
    by_bucket = {}
    for c in chunks:
        assert c.pad == 0
        by_bucket.setdefault(c.T_pad, set()).add(_shape_of(c))
    assert sum(len(c.members) for c in chunks) == 4 * n_dev
    assert len(chunks) > len(by_bucket)  # a bucket cut into several chunks
    assert all(len({m.run.T for m in c.members}) > 1 for c in chunks)  # chunks mix lengths
    assert all(len(shapes) == 1 for shapes in by_bucket.values()), by_bucket  # one shape per bucket
    with _Compiles() as first:
        df = runner.run(cfg, None)
    assert len(df) == 4 * n_dev * 2
    assert first.count("train_epoch") == len(by_bucket), first.names
    assert first.count("evaluate") == len(by_bucket), first.names
    with _Compiles() as second:
        df2 = runner.run(cfg, None)
    assert second.count("train_epoch") == 0 and second.count("evaluate") == 0, second.names
    assert df2.drop(columns="seconds").equals(df.drop(columns="seconds"))  # wall-clock time differs
    monkeypatch.delenv("LATCHLAB_NATIVE")
    if train.native_ok(cfg.members()[0].run.model):
        with _Compiles() as native:
            df3 = runner.run(cfg, None)
        assert native.count("train_epoch") == 0 and native.count("evaluate") == 0, native.names
        by_member = lambda d: d.sort_values(["member_id", "epoch"]).val_acc.to_numpy()  # noqa: E731 (chunks differ)
        np.testing.assert_allclose(by_member(df3), by_member(df), atol=1e-5)


@pytest.mark.parametrize("n_dev", [1, 2, 3])
@pytest.mark.parametrize(
    "repeats, Ts, rows", [(5, [4, 6, 8], 16), (3, [40], 4), (7, [2, 3, 50, 200], 8), (1, [5], 512)]
)
def test_plan_covers_every_member_once_in_equal_chunks(monkeypatch, n_dev, repeats, Ts, rows):
    """The XLA modes' plan: bucketed lengths, equal chunks split evenly over the devices."""
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    monkeypatch.setattr(jax, "local_device_count", lambda *a, **k: n_dev)
    cfg = config.from_dict({"name": "p", "repeats": repeats, "seed": 0, "N": 20, "batch_size": 4, "grid": {"T": Ts}})
    members = cfg.members()
    chunks = sweep_plan.plan(members, rows_per_device=rows)
    real = [m for c in chunks for m in c.members[: len(c.members) - c.pad]]
    assert sorted(m.id for m in real) == sorted(m.id for m in members)
    for c in chunks:
        assert len(c.members) % n_dev == 0 and c.pad < len(c.members)
        assert c.T_pad >= max(m.run.T for m in c.members)
        assert all(m is c.members[len(c.members) - c.pad - 1] for m in c.members[len(c.members) - c.pad :])
    for t in {c.T_pad for c in chunks}:
        assert len({len(c.members) for c in chunks if c.T_pad == t}) == 1  # equal chunks per bucket
        assert max(m.run.T for c in chunks if c.T_pad == t for m in c.members) == t  # no excess padding


def test_native_plan_sorts_seeds_then_lengths_into_few_chunks(monkeypatch):
    """With the native kernels, no buckets and no padding members: every member once, in
    chunks of at most ``NATIVE_CHUNK`` sorted by seed, then length (a seed's members share
    the kernel's blocks and read one family of sequences); chunks of other cells stay apart."""
    monkeypatch.setattr(sweep_plan, "NATIVE_CHUNK", 10)
    cfg = config.from_dict(
        {
            "name": "n",
            "repeats": 7,
            "seed": 0,
            "N": 20,
            "cell": "lstm",
            "units": 1,
            "grid": {"T": [50, 2, 9], "cell": ["lstm", "gru"]},
        }
    )
    members = cfg.members()
    chunks = sweep_plan.plan(members)
    real = [m for c in chunks for m in c.members[: len(c.members) - c.pad]]  # the GRU's chunks are padded
    assert sorted(m.id for m in real) == sorted(m.id for m in members)
    lstm = [c for c in chunks if c.members[0].run.cell == "lstm"]
    assert [len(c.members) for c in lstm] == [7, 7, 7] and all(c.pad == 0 for c in lstm)
    order = [(m.seed, m.run.T) for c in lstm for m in c.members]
    assert order == sorted(order) and [c.T_pad for c in lstm] == [50, 50, 50]
    assert [m.seed for m in lstm[0].members] == [0, 0, 0, 1, 1, 1, 2]
    assert all(len({m.run.cell for m in c.members}) == 1 for c in chunks)


def test_padded_chunk_keeps_the_bucket_shape(monkeypatch):
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    monkeypatch.setattr(jax, "local_device_count", lambda *a, **k: 2)  # plan only; no device use
    cfg = config.from_dict(
        {"name": "pad", "repeats": 5, "seed": 0, "N": 20, "epochs": 1, "batch_size": 4, "grid": {"T": [4, 6, 8]}}
    )
    chunks = sweep_plan.plan(cfg.members(), rows_per_device=8)  # 15 members: chunks of 4, the last padded
    assert [len(c.members) for c in chunks] == [4, 4, 4, 4] and chunks[-1].pad == 1
    assert len({c.T_pad for c in chunks}) == 1
    assert len({_shape_of(c) for c in chunks}) == 1, [_shape_of(c) for c in chunks]


# ----------------------------------------------------------------------------- 5, 6. end to end

SEED_PROTOCOL = {
    "name": "latch-srnn",
    "repeats": 10,
    "seed": 0,
    "task": "latch",
    "cell": "srnn",
    "units": 1,
    "T": 10,
    "N": 10000,
    "noise": 0.1,
    "init": "keras",
    "head": "dense2",
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 16,
    "epochs": 5,
}


@pytest.fixture(scope="module")
def seed_run():
    return runner.run(config.from_dict(SEED_PROTOCOL), None)


def test_one_unit_srnn_latches_at_T10(seed_run):
    """The seed's protocol (N = 10000, 5 epochs, Adam 1e-3, batch 16): most seeds succeed."""
    df = seed_run
    assert len(df) == 10 * 5 and set(df.seed) == set(range(10))
    assert (df["T"] == 10).all() and (df.cell == "srnn").all() and (df.epochs == 5).all()
    final = df[df.epoch == 5].set_index("seed").val_acc
    wins = int((final >= 0.99).sum())
    assert wins >= 6, f"{wins}/10 seeds reached val_acc >= 0.99: {final.round(3).to_dict()}"


def test_sweep_is_deterministic(seed_run):
    again = runner.run(config.from_dict(SEED_PROTOCOL), None)
    cols = ["member_id", "seed", "epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
    assert again[cols].equals(seed_run[cols])


@pytest.mark.parametrize("made", ["native", "jax"])
@pytest.mark.parametrize(
    "task, signal_len, Ts, N",
    [
        ("latch", 1, [2, 3, 7, 12], 40),
        ("bit_relay", 1, [2, 3, 7, 12], 40),
        ("bit_relay", 2, [4, 5, 13], 40),
        ("latch", 3, [5, 9], 2000),  # two sorts a permutation (one below 1626 elements)
    ],
)
def test_families_cut_the_same_data_as_make_data(task, signal_len, Ts, N, made, monkeypatch):
    """``sweep_data.Families`` (each seed's longest latch sequences, or bit relay's draws, cut
    for every length) gives every member the same sequences, bit for bit, labels, mask and
    split as making its data directly (bit relay's second sign moves with T: at T = 2 and 3
    it is the step after the first; with signal_len 2, at T = 4 and 5 the signs are adjacent);
    whether the families are drawn by ``native.prng``'s library or by JAX."""
    if made == "jax":
        monkeypatch.setattr(native, "prng", lambda **kw: None)
    elif native.prng() is None:
        pytest.skip("native.prng is unavailable here")
    cfg = config.from_dict(
        {
            "name": "fam",
            "task": task,
            "signal_len": signal_len,
            "repeats": 3,
            "seed": 5,
            "N": N,
            "noise": 0.3,
            "grid": {"T": Ts, "split": ["stratified", "tail"]},
        }
    )
    members = cfg.members()
    chunks = sweep_plan.plan(members)
    families = sweep_data.Families(chunks)
    assert (families.prng is not None) == (made == "native")
    for c in chunks:
        got = families.cut(c.members, c.T_pad)
        want = sweep_data.make_data(c.members, c.T_pad)
        assert isinstance(got.x, native.Rows)
        np.testing.assert_array_equal(got.x.padded().view(np.int32), np.asarray(want.x).view(np.int32))
        for a, b in zip(got[1:], want[1:]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not families.seq and not families.splits  # freed after the last chunk that needs them


@pytest.mark.parametrize("made", ["native", "jax"])
@pytest.mark.parametrize("task", ["latch", "bit_relay", "parity"])
def test_stored_data_and_latch_draws_are_make_datas_and_the_generators(task, made, monkeypatch):
    """``stored_data`` (an analysis's few members, from their families where the task has
    them) gives each member ``make_data``'s sequences, labels, mask and split bit for bit,
    as host arrays, for members of mixed lengths and for a task without families; and
    ``latch_draws`` gives each member ``tasks.latch``'s sequences of its data key; both
    whether ``native.prng``'s library or JAX makes them."""
    if made == "jax":
        monkeypatch.setattr(native, "prng", lambda **kw: None)
    elif native.prng() is None:
        pytest.skip("native.prng is unavailable here")
    cfg = config.from_dict(
        {"name": "one", "task": task, "repeats": 2, "seed": 9, "N": 48, "noise": 0.4, "grid": {"T": [3, 11]}}
    )
    members = cfg.members()
    for ms in ([members[0]], members):
        got, want = sweep_data.stored_data(ms, 11), sweep_data.make_data(ms, 11)
        assert all(isinstance(a, np.ndarray) for a in got)
        np.testing.assert_array_equal(got.x.view(np.int32), np.asarray(want.x).view(np.int32))
        for a, b in zip(got[1:], want[1:]):
            np.testing.assert_array_equal(a, np.asarray(b))
    if task == "latch":
        for T in (3, 11):
            ms = [m for m in members if m.run.T == T]
            got = sweep_data.latch_draws(ms, 7, T)
            for r, m in enumerate(ms):
                x = tasks.latch(sweep_data.member_keys(m.seed)[0], 7, T, m.run.noise, m.run.signal_len)[0]
                np.testing.assert_array_equal(got[r].view(np.int32), np.asarray(x)[..., 0].view(np.int32))


def test_native_families_are_made_a_few_seeds_at_a_time(monkeypatch):
    """From the native generator, ``Families`` makes a chunk's families with those of the
    next chunks up to ``NATIVE_FAMILY_BATCH_BYTES`` only (so the memory of the families
    freed is reused), not every seed's at the first chunk; the members' data are the same,
    bit for bit, as ``make_data``'s."""
    if native.prng() is None:
        pytest.skip("native.prng is unavailable here")
    cfg = config.from_dict({"name": "fam", "repeats": 40, "seed": 2, "N": 40, "noise": 0.3, "grid": {"T": [5, 12]}})
    chunks = sweep_plan.plan(cfg.members())
    assert len(chunks) >= 2
    monkeypatch.setattr(sweep_data, "NATIVE_FAMILY_BATCH_BYTES", 3 * 4 * 40 * 12)  # 3 seeds a call
    families = sweep_data.Families(chunks)
    alive = []
    for c in chunks:
        got = families.cut(c.members, c.T_pad)
        alive.append(len(families.seq) + len({m.seed for m in c.members} - {f[4] for f in families.seq}))
        want = sweep_data.make_data(c.members, c.T_pad)
        np.testing.assert_array_equal(got.x.padded().view(np.int32), np.asarray(want.x).view(np.int32))
        for a, b in zip(got[1:], want[1:]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    first = len({m.seed for m in chunks[0].members})
    assert first < 40 and alive[0] <= first + 3  # not the 40 seeds at once
    assert not families.seq


@pytest.mark.parametrize("task", sorted(tasks.PADDED))
def test_make_data_gives_each_task_its_generators_sequences(task):
    """The engine's sequences (compiled at LLVM's first optimisation level, to compile in less
    time) are the generator's own, bit for bit, for every task: the level changed no
    rounding."""
    cfg = config.from_dict({"name": "gen", "task": task, "T": 21, "N": 48, "noise": 0.3, "repeats": 2, "seed": 3})
    members = cfg.members()
    data = sweep_data.make_data(members, 21)
    for r, m in enumerate(members):
        x, y = tasks.generate(task, sweep_data.member_keys(m.seed)[0], 48, 21, 0.3)
        np.testing.assert_array_equal(np.asarray(data.x[r]).view(np.int32), np.asarray(x).view(np.int32))
        np.testing.assert_array_equal(np.asarray(data.y[r]), np.asarray(y))


@pytest.mark.parametrize("maker", ["native", "jax"])
def test_set_up_functions_compile_once_ahead_in_a_background_thread(maker, monkeypatch):
    """A sweep's later set-up compilations (its splits and each cell's initial parameters)
    are made by ``data.warm``'s thread while the first chunk's data are made, and none is
    made twice: the sweep's calls find them made, or wait for them. The first chunk's at the
    sweep's priority (its training waits for them), the later ones at the lowest. With
    ``native.prng``, the latch sequences, the splits and the initial parameters
    (``data.native_init``) compile nothing."""
    if maker == "jax":
        monkeypatch.setattr(native, "prng", lambda **kw: None)
    elif native.prng() is None:
        pytest.skip("native.prng is unavailable here")
    for f in (sweep_data._chunk_splits, sweep_data._init, sweep_data._chunk_sequences):
        f.clear_cache()
    sweep_data._compiles.clear()
    made, niceness = [], []
    base = os.getpriority(os.PRIO_PROCESS, 0)
    # The sweep's later inits wait for the warm thread: at the lowest priority, with the
    # other core busy (pytest-xdist's other worker), it could be starved long enough for the
    # sweep to claim the second cell's init itself, a legitimate order this test would fail
    threads, inits = [], []
    warm, call = sweep_data.warm, sweep_data._call

    def warm_kept(*a, **kw):
        threads.append(warm(*a, **kw))
        return threads[-1]

    def call_after_warm(f, args, static):
        if f is sweep_data._init:
            inits.append(f)
            if len(inits) > 1 and threads[0] is not None:
                threads[0].join()
        return call(f, args, static)

    monkeypatch.setattr(sweep_data, "warm", warm_kept)
    monkeypatch.setattr(sweep_data, "_call", call_after_warm)

    def on_event(event, secs, fun_name="", **kw):
        if event == COMPILE_EVENT and any(n in fun_name for n in ("_chunk_splits", "_init", "_chunk_sequences")):
            made.append((fun_name, threading.current_thread().name))
            niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        cfg = config.from_dict(
            {"name": "warm", "N": 64, "epochs": 1, "repeats": 2, "grid": {"cell": ["srnn", "lstm"], "T": [3, 9]}}
        )
        runner.run(cfg)
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    names = [n for n, _ in made]
    if maker == "native":
        assert names == [], made
        return
    # one sequence call for the seeds' longest latch sequences, one split, one init per cell
    assert sorted(names) == ["jit(_chunk_sequences)", "jit(_chunk_splits)", "jit(_init)", "jit(_init)"], made
    assert ("jit(_init)", "latchlab-warm") in made, made
    # the warm thread's: the first chunk's init (unless the sweep made it first), then the second's
    by_warm = [p for (n, t), p in zip(made, niceness) if t == "latchlab-warm" and n == "jit(_init)"]
    assert threads and by_warm[-1] == 19 and (len(by_warm) == 1 or by_warm[0] == base), (made, niceness)


def test_members_setting_other_numbers_share_one_init_compilation(monkeypatch):
    """Members whose ``values`` set the same parameters to other numbers (the ablations' and
    the phase diagram's variants) are initialised by one compilation where JAX makes them
    (without ``native.prng``), and each gets its own numbers: the set entries exactly, the
    rest as ``M.init`` with its values gives them."""
    monkeypatch.setattr(native, "prng", lambda **kw: None)
    cfgs = [
        config.from_dict({"name": "v", "cell": "lstm", "repeats": 2, "T": 5, "N": 20, "values": {"bias_f": b}})
        for b in (0.0, -2.5, 3.0)
    ] + [config.from_dict({"name": "v", "cell": "lstm", "repeats": 2, "T": 7, "N": 20})]
    members = [m for c in cfgs for m in c.members()]
    sweep_data._init.clear_cache()
    compiled = []

    def on_event(event, secs, fun_name="", **kw):
        if event == COMPILE_EVENT and fun_name == "jit(_init)":
            compiled.append(fun_name)

    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        got = sweep_data.init_members(members)
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    assert len(compiled) == 2, compiled  # bias_f set (three numbers), and nothing set
    f = slice(1, 2)  # the forget gate's column of a one-unit LSTM (gates i, f, c, o)
    assert got["cell"]["bias"][:, f].ravel().tolist() == [0.0, 0.0, -2.5, -2.5, 3.0, 3.0, 1.0, 1.0]
    for r, m in enumerate(members):
        want = M.init(sweep_data.member_keys(m.seed)[2], m.run.model, m.run.init, dict(m.run.values), float(m.run.T))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a[r], b, atol=1e-6)


def test_init_members_of_a_16_unit_lstm_equal_each_members_own_init():
    """Each member's initial parameters come from its own seed alone (the keys ``member_keys``
    gives it), for a cell wide enough that the orthogonal initialiser's QR is a LAPACK call
    (split over two host devices, that call once deadlocked XLA:CPU)."""
    cfg = config.from_dict({"name": "wide", "cell": "lstm", "units": 16, "repeats": 3, "T": 5, "N": 20})
    members = cfg.members()
    got = sweep_data.init_members(members)
    for r, m in enumerate(members):
        want = M.init(sweep_data.member_keys(m.seed)[2], m.run.model, m.run.init, dict(m.run.values), float(m.run.T))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a[r], b, atol=1e-6)


# ----------------------------------------------------------------------------- the optimiser


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e-6, 1e-8])
def test_adam_is_keras_adam_at_every_gradient_scale(scale):
    """``train.direction("adam")`` steps as ``keras.optimizers.Adam`` does, 200 steps of
    gradients of every size: Keras adds eps to sqrt(v) before the bias correction. optax's
    ``scale_by_adam`` (the optimiser until 2026-12-06) adds it after, and at gradients of
    1e-6 (a one-unit LSTM's input gate at long T) moves the parameters 15 % off Keras'."""
    rng = np.random.default_rng(0)
    grads = (rng.normal(size=(200, 5)) * scale).astype(np.float32)
    p0 = {"w": jnp.asarray(rng.normal(size=5).astype(np.float32))}
    ref = _KerasAdam(1e-3, p0)
    want, st = p0, ref.init()
    for g in grads:
        want, st = ref.update({"w": jnp.asarray(g)}, st, want)
    moved = np.asarray(want["w"]) - np.asarray(p0["w"])
    for d, agrees in ((train.direction("adam"), True), (optax.scale_by_adam(eps=1e-7), scale >= 1.0)):
        p, s = p0, d.init(p0)
        update = jax.jit(d.update)
        for g in grads:
            u, s = update({"w": jnp.asarray(g)}, s, p)
            p = jax.tree.map(lambda a, b: a - 1e-3 * b, p, u)
        err = np.abs(np.asarray(p["w"]) - np.asarray(p0["w"]) - moved).max() / np.abs(moved).max()
        assert (err < 1e-4) == agrees, err
