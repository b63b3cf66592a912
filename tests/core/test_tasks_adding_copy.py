"""Reference tests for the tasks ``adding`` (H&S 1997 exp. 4, as in Le et al. 2015 and
Arjovsky et al. 2016) and ``copy`` (Arjovsky et al. 2016 copy memory), and the heads they need.

* Generators against their definitions written out in numpy: the adding problem's two
  markers (one per half), its target ``v_a + v_b`` and its baseline MSE 1/6; the copy
  task's layout (10 symbols, T - 21 blanks, delimiter, 10 blanks; target blanks then the
  symbols) and its baseline loss ``10 log 8 / T``; left-padding changes no value.
* Heads ``linear`` and ``seq_softmax``: ``model.loss`` against a numpy SRNN and a numpy
  head; every gradient mode that accepts a head agrees with ``vmap`` autodiff.
* The split of non-label targets, the config's head resolution and validation.
* The engine: a tiny sweep of every cell on both tasks runs on exactly the generators'
  data, its stored val metrics equal the stored parameters' metrics recomputed here, and
  an 8-unit LSTM learns the adding problem at T = 10 well below the baseline.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references

from latchlab import config
from latchlab.core import cells
from latchlab.engine import run as runner
from latchlab.engine import data as sweep_data
from latchlab.core import tasks
from latchlab.engine import train
from latchlab.core import model as M
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError
from latchlab.store import Store

KEY = jax.random.PRNGKey(11)


# ----------------------------------------------------------------------------- adding


@pytest.mark.parametrize("T", [2, 3, 10, 51])
def test_adding_matches_its_definition(T):
    n = 4000
    x, y = map(np.asarray, tasks.adding(KEY, n, T))
    assert x.shape == (n, T, 2) and x.dtype == np.float32 and y.shape == (n,) and y.dtype == np.float32
    v, m = x[..., 0], x[..., 1]
    assert set(np.unique(m)) <= {0.0, 1.0} and (m.sum(1) == 2).all()  # exactly two markers
    half = T // 2
    a = np.argmax(m[:, :half], 1)
    b = half + np.argmax(m[:, half:], 1)
    assert (m[:, :half].sum(1) == 1).all() and (m[:, half:].sum(1) == 1).all()  # one per half
    rows = np.arange(n)
    np.testing.assert_array_equal(y, v[rows, a] + v[rows, b])  # float32, exact
    assert v.min() >= 0.0 and v.max() < 1.0
    # the positions are uniform over each half (5-sigma binomial bounds per position)
    for pos, lo, hi in ((a, 0, half), (b, half, T)):
        counts = np.bincount(pos, minlength=T)[lo:hi]
        p = 1.0 / (hi - lo)
        assert (np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1e-9).all()
    # values U[0, 1]: mean 1/2, variance 1/12; so the baseline "predict 1" has MSE 1/6
    se = 5 * np.sqrt(1 / 12 / v.size)
    assert abs(v.mean() - 0.5) < se and abs(v.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / v.size)
    mse_baseline = np.mean((y - 1.0) ** 2)
    assert abs(mse_baseline - tasks.ADDING_BASELINE) < 5 * np.sqrt(np.var((y - 1.0) ** 2) / n)
    assert tasks.baseline_loss("adding", T) == pytest.approx(1 / 6)


def test_adding_values_do_not_depend_on_T():
    # value t is drawn from fold_in(key, t): the length-10 values are the first 10 of length 30
    x10, _ = tasks.adding(KEY, 50, 10)
    x30, _ = tasks.adding(KEY, 50, 30)
    np.testing.assert_array_equal(np.asarray(x30)[:, :10, 0], np.asarray(x10)[:, :, 0])


# ----------------------------------------------------------------------------- copy


def _copy_reference(d, T):
    """Arjovsky et al. 2016 from the 10 symbols ``d`` (n, 10): input categories and targets."""
    n, D = len(d), T - 20
    x = np.zeros((n, T), np.int64)
    y = np.zeros((n, T), np.int64)
    for i in range(n):
        x[i] = np.concatenate([d[i], [0] * (D - 1), [9], [0] * 10])
        y[i] = np.concatenate([[0] * (D + 10), d[i]])
    return x, y


@pytest.mark.parametrize("T", [21, 25, 60])
def test_copy_matches_its_definition(T):
    n = 3000
    x, y = map(np.asarray, tasks.copy(KEY, n, T))
    assert x.shape == (n, T, 10) and x.dtype == np.float32 and y.shape == (n, T) and y.dtype == np.int32
    assert set(np.unique(x)) == {0.0, 1.0} and (x.sum(-1) == 1).all()  # one-hot
    d = x[:, :10].argmax(-1)
    x_want, y_want = _copy_reference(d, T)
    np.testing.assert_array_equal(x.argmax(-1), x_want)
    np.testing.assert_array_equal(y, y_want)
    assert len(x_want[0]) == T  # the paper's T + 20 with its T = our T - 20
    counts = np.bincount(d.ravel(), minlength=10)  # symbols uniform over 1..8
    assert counts[0] == 0 and counts[9] == 0
    p = 1 / 8
    assert (np.abs(counts[1:9] - d.size * p) <= 5 * np.sqrt(d.size * p * (1 - p))).all()


@pytest.mark.parametrize("T", [21, 40])
def test_copy_baseline_is_the_loss_of_the_blind_predictor(T):
    """The predictor that outputs blank with certainty for T - 10 steps, then 1/8 on each
    symbol, through the seq_softmax head's per-example loss: ``10 log 8 / T``; a numpy
    cross-entropy of the same probabilities gives the same."""
    n = 16
    _, y = tasks.copy(KEY, n, T)
    z = np.full((n, T, 10), -1e4, np.float32)
    z[:, : T - 10, 0] = 0.0
    z[:, T - 10 :, 1:9] = 0.0
    model = M.Model(Cell("srnn", 1), "seq_softmax", 10)
    loss, acc = M.per_example(model, jnp.asarray(z), y)
    np.testing.assert_allclose(loss, tasks.copy_baseline(T), rtol=1e-6)
    assert tasks.copy_baseline(T) == pytest.approx(10 * np.log(8) / T)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    ce = -np.log(np.take_along_axis(p, np.asarray(y)[..., None], -1)[..., 0]).mean(-1)
    np.testing.assert_allclose(loss, ce, rtol=1e-5)


@pytest.mark.parametrize("task, T", [("adding", 10), ("adding", 23), ("copy", 21), ("copy", 33)])
def test_left_padding_changes_no_value(task, T):
    gen = tasks.GENERATORS[task]
    x, y = map(np.asarray, gen(KEY, 40, T))
    xp, yp = map(np.asarray, gen(KEY, 40, T, pad_to=T + 7))
    np.testing.assert_array_equal(xp[:, 7:], x)
    np.testing.assert_array_equal(xp[:, :7], 0.0)  # zero vectors, not blanks
    if task == "copy":
        np.testing.assert_array_equal(yp[:, 7:], y)
        np.testing.assert_array_equal(yp[:, :7], -1)  # no target on padding steps
    else:
        np.testing.assert_array_equal(yp, y)
    # and the compiled form with a traced T (what the sweep calls) gives the same
    xt, yt = jax.jit(lambda T: tasks.PADDED[task](KEY, 40, T, 0.1, 1, xp.shape[1]))(jnp.int32(T))
    np.testing.assert_array_equal(np.asarray(xt), xp)
    np.testing.assert_array_equal(np.asarray(yt), yp)


# ----------------------------------------------------------------------------- heads


def _np_srnn_states(p, x, mask):
    """Every step's state of a tanh RNN in numpy, masked steps keeping the state."""
    W, U, b = (np.asarray(p[k], np.float64) for k in ("kernel", "recurrent", "bias"))
    h = np.zeros((x.shape[0], U.shape[0]))
    hs = []
    for t in range(x.shape[1]):
        if mask[t]:
            h = np.tanh(x[:, t] @ W + h @ U + b)
        hs.append(h)
    return np.stack(hs, 1)  # (B, T, H)


def _head_problem(head, n_in, T=8, pad=3, B=7, seed=0):
    model = M.Model(Cell("srnn", 3), head, n_in)
    params = M.init(jax.random.PRNGKey(seed), model, "torch")
    rng = np.random.default_rng(seed)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(scale=0.8, size=a.shape), jnp.float32), params)
    x = rng.normal(size=(B, T, n_in)).astype(np.float32)
    mask = np.arange(T) >= pad
    w = rng.uniform(0.5, 1.5, B).astype(np.float32)
    return model, params, x, mask, w


def test_linear_head_loss_is_the_mse_of_a_numpy_model():
    model, params, x, mask, w = _head_problem("linear", 2)
    h = _np_srnn_states(params["cell"], x, mask)[:, -1]
    pred = h @ np.asarray(params["head"]["kernel"], np.float64)[:, 0] + float(params["head"]["bias"][0])
    offsets = np.array([0.0, 0.01, -0.03, 0.039, 0.05, -0.3, 1.0])  # |err| < 0.04 for the first four
    y = (pred + offsets).astype(np.float32)
    loss, acc = M.loss(model, params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(w), jnp.asarray(mask))
    err = pred - y
    np.testing.assert_allclose(loss, np.sum(w * err**2) / w.sum(), rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(acc, np.sum(w * (np.abs(err) < 0.04)) / w.sum(), rtol=1e-6)
    assert 0 < float(acc) < 1


def test_seq_softmax_head_loss_is_the_per_step_cross_entropy_of_a_numpy_model():
    T, pad = 9, 3
    model, params, x, mask, w = _head_problem("seq_softmax", 10, T=T, pad=pad)
    assert model.n_out == 10
    hs = _np_srnn_states(params["cell"], x, mask)
    z = hs @ np.asarray(params["head"]["kernel"], np.float64) + np.asarray(params["head"]["bias"], np.float64)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, size=(len(x), T))
    y[:, :pad] = -1  # padding
    y[:, pad : pad + 2] = 0  # some blank targets
    y[0, -4:] = z[0, -4:].argmax(-1)  # some hits
    y[0, -4] = max(y[0, -4], 1)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    valid = y >= 0
    ce = -np.where(valid, np.take_along_axis(logp, np.maximum(y, 0)[..., None], -1)[..., 0], 0).sum(1)
    ce /= valid.sum(1)
    sym = y > 0
    acc_ex = (sym & (z.argmax(-1) == y)).sum(1) / sym.sum(1)
    loss, acc = M.loss(model, params, jnp.asarray(x), jnp.asarray(y, jnp.int32), jnp.asarray(w), jnp.asarray(mask))
    np.testing.assert_allclose(loss, np.sum(w * ce) / w.sum(), rtol=2e-5)
    np.testing.assert_allclose(acc, np.sum(w * acc_ex) / w.sum(), rtol=1e-5)
    assert float(acc) > 0


@pytest.mark.parametrize("task, cell", [("adding", Cell("srnn", 1)), ("copy", Cell("lstm", 2))])
def test_every_allowed_gradient_mode_equals_vmap(task, cell):
    """``train.loss_and_grads`` in each mode ``modes_for`` allows (rtrl for the linear head,
    not for seq_softmax; never bptt on multi-channel inputs) equals vmap autodiff."""
    model = M.Model(
        cell, M.HEADS_FOR[tasks.TARGETS[task]][0], tasks.N_IN[task], tasks.COPY_CATEGORIES if task == "copy" else None
    )
    modes = train.modes_for(model)
    assert ("rtrl" in modes) == (task == "adding") and "bptt" not in modes
    R, B, T_task = 2, 5, {"adding": 10, "copy": 21}[task]
    T = T_task + 3
    params = jax.vmap(lambda k: M.init(k, model, "torch"))(jax.random.split(KEY, R))
    x, y = tasks.GENERATORS[task](KEY, R * B, T_task, pad_to=T)
    x = jnp.asarray(x).reshape(R, B, T, -1)
    y = jnp.asarray(y).reshape((R, B) + y.shape[1:])
    w = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, (R, B)), jnp.float32)
    mask = jnp.broadcast_to(jnp.arange(T) >= 3, (R, T))
    ref = references.jit(partial(train.loss_and_grads, model, "vmap"))(params, x, y, w, mask)
    for mode in modes:
        out = jax.jit(partial(train.loss_and_grads, model, mode))(params, x, y, w, mask)
        for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref)):
            np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-6, err_msg=mode)
    # the native kernels train both tasks where they are available (tests/engine/test_native.py)
    assert train.choose_mode(model) in modes + ("native",) * train.native_ok(model)
    if task == "copy":
        with pytest.raises(ConfigError) as info:
            train.loss_and_grads(model, "rtrl", params, x, y, w, mask)
        assert info.value.field == "mode"


def test_one_unit_lstm_classifier_keeps_its_fast_path(monkeypatch):
    adding = M.Model(Cell("lstm", 1), "linear", 2)  # two input channels
    native = train.native_ok(M.Model(Cell("lstm", 1)))
    assert train.choose_mode(M.Model(Cell("lstm", 1))) == ("native" if native else "bptt")
    assert train.choose_mode(adding) == ("native" if native else "vmap")
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")  # the XLA modes (as on a GPU)
    assert train.choose_mode(M.Model(Cell("lstm", 1))) == "bptt"
    assert train.choose_mode(M.Model(Cell("srnn", 1))) == "rtrl"
    assert train.choose_mode(adding) == "vmap"
    assert train.choose_mode(M.Model(Cell("lstm", 1), "seq_softmax", 10)) == "vmap"


# ----------------------------------------------------------------------------- split, config


@pytest.mark.parametrize("task, n", [("adding", 101), ("copy", 64)])
def test_split_of_non_label_targets_is_a_shuffled_partition(task, n):
    _, y = tasks.GENERATORS[task](KEY, n, 21)
    n_val = n - int(n * 0.8)
    tr, va = tasks.split_indices(jax.random.PRNGKey(0), y, 0.2)
    _, va1 = tasks.split_indices(jax.random.PRNGKey(1), y, 0.2)
    assert len(va) == n_val and len(np.intersect1d(tr, va)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))
    assert not np.array_equal(va, va1)
    # the traced form, as the sweep calls it (n_pos ignored): the first n_val of a permutation
    tr2, va2 = tasks.split(jax.random.PRNGKey(0), jnp.asarray(y), n_val, 7, False)
    np.testing.assert_array_equal(np.asarray(va2), va)
    perm = np.asarray(jax.random.permutation(jax.random.PRNGKey(0), n))
    np.testing.assert_array_equal(va, np.sort(perm[:n_val]))
    _, tail = tasks.split_indices(KEY, y, 0.2, "tail")  # Keras' validation_split: the last n_val
    np.testing.assert_array_equal(tail, np.arange(n - n_val, n))


def test_head_follows_the_task_and_member_ids_do_not_change():
    for task, head, n_in, n_out in [
        ("latch", "dense2", 1, 2),
        ("adding", "linear", 2, 1),
        ("copy", "seq_softmax", 10, 10),
    ]:
        run = config.RunConfig(task=task, T=25)
        assert run.head == "auto" and run.to_dict()["head"] == head
        assert (run.model.head, run.model.n_in, run.model.n_out) == (head, n_in, n_out)
    # the default head is dense2 for latch: same member id as an explicit dense2
    assert config.Member(config.RunConfig(), 0).id == config.Member(config.RunConfig(head="dense2"), 0).id
    # a grid over tasks gives each task its own head, and the sweep round-trips
    cfg = config.from_dict({"T": 21, "grid": {"task": ["latch", "adding", "copy"]}})
    assert [p.model.head for p in cfg.points()] == ["dense2", "linear", "seq_softmax"]
    assert config.from_dict(cfg.to_dict()).members() == cfg.members()


@pytest.mark.parametrize(
    "d, field",
    [
        ({"task": "adding", "head": "dense2"}, "head"),
        ({"task": "latch", "head": "linear"}, "head"),
        ({"task": "copy", "T": 20}, "T"),
        ({"task": "adding", "T": 1}, "T"),
        ({"task": "copy", "head": "softmax"}, "head"),
        ({"T": 21, "grid": {"task": ["latch", "adding"]}, "head": "dense1"}, "head"),
    ],
)
def test_bad_values_raise_config_error(d, field):
    with pytest.raises(ConfigError) as info:
        config.from_dict(d)
    assert info.value.field == field
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- the engine


def _val_metrics(run, seed, params):
    """A member's validation loss and metric from its stored parameters, recomputed from the
    generator's data and split (the engine's keys), unpadded, with ``model.loss``."""
    k_data, k_split, _ = sweep_data.member_keys(seed)
    x, y = tasks.generate(run.task, k_data, run.N, run.T, run.noise, run.signal_len)
    _, val = tasks.split_indices(k_split, y, run.val_frac, run.split)
    p = jax.tree.map(jnp.asarray, params)
    return M.loss(run.model, p, x[val], jnp.asarray(y)[val])


def test_tiny_sweep_on_both_tasks_stores_the_true_metrics(tmp_path):
    cfg = config.from_dict(
        {
            "name": "t",
            "cell": "srnn",
            "units": 3,
            "T": 21,
            "N": 48,
            "epochs": 1,
            "batch_size": 8,
            "grid": {"task": ["adding", "copy"]},
        }
    )
    members = cfg.members()
    for m in members:  # the engine's data are the generators'
        data = sweep_data.make_data([m], 21)
        x, y = tasks.generate(m.run.task, sweep_data.member_keys(m.seed)[0], 48, 21)
        np.testing.assert_array_equal(np.asarray(data.x[0]), np.asarray(x))
        np.testing.assert_array_equal(np.asarray(data.y[0]), np.asarray(y))
    with Store(tmp_path / "s.sqlite") as st:
        runner.run(cfg, st)
        final = st.members()
        assert list(final["head"]) == ["linear", "seq_softmax"]
        for m in members:  # stored metrics = recomputed from the stored parameters
            row = final[final.member_id == m.id].iloc[0]
            loss, acc = _val_metrics(m.run, m.seed, st.params(m.id))
            np.testing.assert_allclose(row.val_loss, float(loss), rtol=1e-4)
            np.testing.assert_allclose(row.val_acc, float(acc), atol=1e-6)


@pytest.mark.slow
def test_tiny_sweep_runs_every_cell_on_both_tasks():
    cells_ = [c for c in cells.CELLS if c != "srnn"]  # the srnn is the test above
    cfg = config.from_dict(
        {
            "name": "t",
            "units": 2,
            "T": 21,
            "N": 24,
            "epochs": 1,
            "batch_size": 8,
            "grid": {"task": ["adding", "copy"], "cell": cells_},
        }
    )
    df = runner.run(cfg)
    assert len(df) == 2 * len(cells_) and set(df.cell) == set(cells_)
    assert np.isfinite(df.val_loss).all() and df.val_acc.between(0, 1).all()
    copy_loss = df[df.task == "copy"].val_loss  # untrained: near the uniform guess, log 10
    assert (np.abs(copy_loss - np.log(10)) < 0.5).all()


def test_lstm_learns_adding_below_the_baseline():
    """An 8-unit LSTM, T = 10, Adam lr 1e-2, batch 16, 1600 training sequences, 4 epochs:
    both seeds end with validation MSE below a quarter of the baseline 1/6 (measured when
    written: 0.0026 and 0.0053, i.e. 0.02-0.03 of the baseline)."""
    cfg = config.from_dict(
        {
            "name": "learn",
            "repeats": 2,
            "task": "adding",
            "cell": "lstm",
            "units": 8,
            "T": 10,
            "N": 2000,
            "epochs": 4,
            "lr": 1e-2,
            "batch_size": 16,
        }
    )
    df = runner.run(cfg)
    last = df[df.epoch == 4]
    assert len(last) == 2
    assert (last.val_loss < 0.25 * tasks.ADDING_BASELINE).all(), last.val_loss.tolist()
    first = df[df.epoch == 1]
    assert (last.val_loss.values < first.val_loss.values).all()
