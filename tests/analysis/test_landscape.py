"""Loss landscapes, each checked against a reference.

* Pascanu's surface equals a float64 numpy loop of ``x_t = w sigmoid(x_{t-1}) + b``.
* Its gradients, and every step of a descent path, equal central finite differences
  (float64); clipping bounds every step by ``lr * clip`` and leaves small gradients alone.
* A model surface (one vmapped evaluation over the grid and the lengths) equals a Python
  loop of ``model.loss`` on unpadded data, with the parameters set by hand.
* Parameter names map to Keras' gate blocks as ``cells.init_params`` sets them.
* The CLI: a bad name, option or size is one line and exit 2, nothing written; tiny ``landscape`` and ``reproduce
  pascanu2013`` runs write their files, with numbers equal to in-process references.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import references
from scipy.optimize import brentq

from latchlab import config
from latchlab.core import cells
from latchlab.analysis import landscape as L
from latchlab.core import model as M
from latchlab.engine import run as runner
from latchlab.engine import data as sweep_data
from latchlab.core import tasks
from latchlab.core.cells import Cell
from latchlab.errors import ConfigError
from latchlab.store import Store

from clitools import assert_user_error, cli  # noqa: E402


# ----------------------------------------------------------------------------- references


def numpy_pascanu(w, b, T, x0=0.5, target=0.7):
    """``(sigmoid(x_T) - target)^2`` by a plain float64 loop."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    x = np.full(np.broadcast(w, b).shape, x0, np.float64)
    for _ in range(T):
        x = w * sig(x) + b
    return (sig(x) - target) ** 2


def fd_grad(f, theta, h=1e-6):
    """Central finite differences of a scalar function of a float64 vector."""
    theta = np.asarray(theta, np.float64)
    g = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (float(f(theta + e)) - float(f(theta - e))) / (2 * h)
    return g


# ----------------------------------------------------------------------------- Pascanu


def test_pascanu_surface_equals_numpy_loop():
    """float32 surface vs float64 loop, T = 1..10 on a grid through the cliff: atol 2e-5."""
    w, b = np.linspace(0.0, 10.0, 23), np.linspace(-8.0, 2.0, 19)
    df = L.pascanu((1, 2, 5, 10), w, b)
    assert len(df) == 4 * 23 * 19
    W, B = np.meshgrid(w, b)
    for T, d in df.groupby("T"):
        got = d.pivot_table(index="b", columns="w", values="loss").to_numpy()
        np.testing.assert_allclose(got, numpy_pascanu(W, B, T), atol=2e-5, err_msg=f"T={T}")


def test_pascanu_long_T_equals_numpy_loop_in_float64(x64):
    """T = 20 and 50 in float64 (in float32 the cliff amplifies rounding by ~f'(x)^T)."""
    w, b = np.linspace(0.0, 10.0, 17), np.linspace(-8.0, 2.0, 13)
    got = np.asarray(L._pascanu_grid(jnp.asarray([20, 50]), jnp.asarray(w), jnp.asarray(b), 50))
    W, B = np.meshgrid(w, b)
    assert got.dtype == np.float64
    for i, T in enumerate((20, 50)):
        np.testing.assert_allclose(got[i], numpy_pascanu(W, B, T), rtol=1e-9, atol=1e-12)
    # the cliff is there: both plateaus, 0.49 (sigmoid -> 0) and 0.09 (sigmoid -> 1), are reached
    assert got[1].max() > 0.489 and np.isclose(got[1], 0.09, atol=1e-3).any()


def test_pascanu_cliff_separates_the_attractors_at_large_T():
    """Just below ``pascanu_cliff`` the orbit from x_0 ends on the map's lowest fixed point,
    just above on its highest (fixed points by scipy's brentq): a jump of the loss as T -> inf."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    for w in (5.0, 7.0, 9.0):
        b = float(L.pascanu_cliff(np.array([w]))[0])
        f = lambda x, b=b: w * sig(x) + b - x  # noqa: E731
        xs = np.linspace(-50, 50, 20001) + 1.234e-4  # no grid point on a root
        roots = [brentq(f, lo, hi) for lo, hi in zip(xs[:-1], xs[1:]) if f(lo) * f(hi) < 0]
        assert len(roots) == 3 and roots[1] == pytest.approx(0.5, abs=1e-9)  # unstable one at x_0
        for db, want in ((-0.02, roots[0]), (0.02, roots[2])):
            x = 0.5
            for _ in range(400):
                x = w * sig(x) + b + db
            g = lambda x, db=db: f(x) + db  # noqa: E731
            fixed = [brentq(g, lo, hi) for lo, hi in zip(xs[:-1], xs[1:]) if g(lo) * g(hi) < 0]
            assert x == pytest.approx(fixed[0] if db < 0 else fixed[-1], abs=1e-6)
            assert x == pytest.approx(want, abs=0.5)
        assert numpy_pascanu(w, b + 0.02, 400) < 0.09 + 1e-3 < 0.3 < numpy_pascanu(w, b - 0.02, 400)
    assert np.isnan(L.pascanu_cliff(np.array([3.0, 4.2]))).all()  # no cliff through x_0 for w < 4.255


@pytest.mark.parametrize("T", [1, 5, 20])
def test_pascanu_gradient_equals_finite_differences(x64, T):
    rng = np.random.default_rng(T)
    f_jax = jax.jit(lambda th: L.pascanu_loss(th, T, 20))
    f = lambda th: f_jax(jnp.asarray(th))  # noqa: E731
    for theta in rng.uniform([1.0, -5.0], [8.0, 1.0], (6, 2)):
        g = np.asarray(jax.jit(jax.grad(f_jax))(jnp.asarray(theta)))
        np.testing.assert_allclose(g, fd_grad(f, theta), rtol=1e-5, atol=1e-9, err_msg=str(theta))


def test_descent_path_steps_equal_finite_difference_updates(x64):
    """Every update of ``descend`` is ``-lr clip(g)`` with ``g`` by finite differences, for
    plain and clipped descent; the recorded loss and gradient norm agree too."""
    T, lr, clip = 10, 3.0, 0.1
    f = jax.jit(lambda th: L.pascanu_loss(th, T, T))
    for c in (jnp.inf, clip):
        p = jax.tree.map(np.asarray, L.descend(f, jnp.asarray([6.0, -2.5]), lr, 12, c))
        f_np = lambda th: f(jnp.asarray(th))  # noqa: E731
        assert p.theta.dtype == np.float64
        for k in range(12):
            g = fd_grad(f_np, p.theta[k])
            n = np.linalg.norm(g)
            step = -lr * g * min(1.0, c / n)
            np.testing.assert_allclose(p.theta[k + 1] - p.theta[k], step, rtol=1e-5, atol=1e-10, err_msg=f"{c} {k}")
            np.testing.assert_allclose(p.grad_norm[k], n, rtol=1e-5)
            np.testing.assert_allclose(p.loss[k], float(f_np(p.theta[k])), rtol=1e-12)
            np.testing.assert_allclose(p.step_norm[k], np.linalg.norm(step), rtol=1e-5)


def test_clip_by_norm_equals_its_definition():
    rng = np.random.default_rng(0)
    for g in rng.normal(size=(20, 3)) * rng.uniform(0.01, 100, (20, 1)):
        n = np.linalg.norm(g)
        want = g * 2.0 / n if n > 2.0 else g
        np.testing.assert_allclose(np.asarray(L.clip_by_norm(jnp.asarray(g, jnp.float32), 2.0)), want, rtol=1e-6)


def test_clipping_bounds_every_step_and_plain_descent_does_not():
    Ts, lr, clip = (2, 10, 50), 3.0, 0.1
    p = L.pascanu_paths(Ts, L.PASCANU_STARTS, lr, 100, clip)
    assert len(p) == len(Ts) * len(L.PASCANU_STARTS) * 2 * 101
    c, g = p[p.kind == "clipped"], p[p.kind == "gd"]
    assert (c.step_norm <= lr * clip * (1 + 1e-5)).all()
    # below the threshold a clipped step is the plain step lr * ||g||
    small = c[(c.grad_norm < 0.9 * clip) & (c.step < 100)]
    assert len(small) > 0
    np.testing.assert_allclose(small.step_norm, lr * small.grad_norm, rtol=1e-5)
    # the cliff: plain descent takes steps far longer than the bound, and more so as T grows
    longest = g.groupby("T").step_norm.max()
    assert longest[2] < 1.0 < 10 * lr * clip < longest[10]
    # with the start fixed, identical rows until the gradient first exceeds the threshold
    first = p[(p["T"] == 2) & (p.start == 0)]
    np.testing.assert_array_equal(
        first[first.kind == "gd"][["w", "b"]].to_numpy(), first[first.kind == "clipped"][["w", "b"]].to_numpy()
    )


def test_pascanu_bad_arguments_are_config_errors():
    for kw, field in [
        ({"lr": 0.0}, "lr"),
        ({"clip": -1.0}, "clip"),
        ({"steps": 0}, "steps"),
        ({"T_list": (0, 5)}, "T"),
        ({"starts": [(1.0, 2.0, 3.0)]}, "starts"),
    ]:
        with pytest.raises(ConfigError, match=f"^{field}: "):
            L.pascanu_paths(**kw)


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "cell",
    [
        Cell("lstm", 2),
        Cell("gru", 2, reset_after=True),
        Cell("gru", 2, reset_after=False),
        Cell("srnn", 3),
        Cell("janet", 2),
        Cell("lstm_nofg", 2),
    ],
    ids=lambda c: f"{c.kind}{c.units}-ra{int(c.reset_after)}",
)
def test_gate_names_address_the_blocks_cells_sets(cell):
    """``cells.init_params(values={name: v})`` writes gate blocks in Keras' order; the name
    must read back ``v`` from the first unit's entry of that block, for every gate."""
    model = M.Model(cell)
    values = {
        f"{b}_{g}": 10.0 * (j + 1) + k
        for j, b in enumerate(("kernel", "recurrent", "bias"))
        for k, g in enumerate(cell.gates)
    }
    params = {
        "cell": cells.init_params(jax.random.PRNGKey(0), cell, 1, "keras", values),
        "head": {"kernel": jnp.zeros((cell.units, 2)), "bias": jnp.zeros(2)},
    }
    for name, v in values.items():
        c = L.parse_name(model, params, name)
        assert float(L.get(params, c)) == v, name
    if cell.kind == "lstm":  # Keras order i f c o: bias_f is entry H of the bias, its recurrent entry (0, H)
        assert L.parse_name(model, params, "bias_f").index == (cell.units,)
        assert L.parse_name(model, params, "recurrent_f").index == (0, cell.units)


def test_indexed_and_head_names():
    model = M.Model(Cell("lstm", 1))
    params = M.init(jax.random.PRNGKey(0), model)
    assert L.parse_name(model, params, "recurrent[0,3]") == L.Coord("recurrent[0,3]", "cell", "recurrent", (0, 3))
    assert L.parse_name(model, params, "cell.bias[1]").index == (1,)
    assert L.parse_name(model, params, "head.kernel[0,1]")[1:] == ("head", "kernel", (0, 1))
    assert L.parse_name(model, params, "head.bias[1]")[1:] == ("head", "bias", (1,))
    srnn = M.Model(Cell("srnn", 1))
    assert L.parse_name(srnn, M.init(jax.random.PRNGKey(0), srnn), "recurrent").index == (0, 0)
    p2 = L.put(params, L.parse_name(model, params, "head.bias[1]"), 4.5)
    assert float(p2["head"]["bias"][1]) == 4.5 and float(params["head"]["bias"][1]) == 0.0


def test_a_span_below_float32s_resolution_at_the_centre_is_refused():
    srnn = M.Model(Cell("srnn", 1))
    params = M.init(jax.random.PRNGKey(0), srnn)
    with pytest.raises(ConfigError, match="span: 1e-30 around .* below float32's resolution"):
        L.surface(srnn, params, ("bias[0]", "recurrent[0,0]"), (1.0, 1e-30), "latch", [3], points=3, N=8)


def test_head_auto_is_the_tasks_own_head():
    assert L.initial_centre(head="auto", task="latch").model.head == L.initial_centre(head="dense2").model.head


@pytest.mark.parametrize("y", ["recurrent[0, 0]", "recurrent", "recurrent_h", "cell.recurrent[0,0]"])
def test_two_spellings_of_one_parameter_are_refused(y):
    """Every name here is the one-unit SRNN's recurrent weight: on both axes y would overwrite x."""
    srnn = M.Model(Cell("srnn", 1))
    params = M.init(jax.random.PRNGKey(0), srnn)
    with pytest.raises(ConfigError, match="names: .* are the same parameter"):
        L.surface(srnn, params, ("recurrent[0,0]", y), 1.0, "latch", [3], points=3, N=8)


@pytest.mark.parametrize(
    "name", ["bias_q", "gate_f", "recurrent[0,4]", "bias[0,0]", "head.kernel[1,0]", "recurrent", "foo", "head.bias_f"]
)
def test_unknown_names_list_the_valid_ones(name):
    model = M.Model(Cell("lstm", 1))
    params = M.init(jax.random.PRNGKey(0), model)
    with pytest.raises(ConfigError) as e:
        L.parse_name(model, params, name, "x")
    msg = str(e.value)
    assert msg.startswith("x: ") and "\n" not in msg
    for valid in ("bias_f", "recurrent[0,0]", "head.kernel[0,1]", "head.bias[0]"):
        assert valid in msg


# ----------------------------------------------------------------------------- model surfaces

_jit_loss = references.jit(M.loss, static_argnums=0)


def _loop_reference(model, params, coords, values, data):
    """``model.loss`` on unpadded data, with the two entries written by numpy indexing."""
    p = jax.tree.map(lambda a: np.array(a, np.float32), params)
    for (group, leaf, index), v in zip(coords, values):
        p[group][leaf][index] = v
    return float(_jit_loss(model, p, *data)[0])


@pytest.mark.parametrize(
    "cell, names, coords, task",
    [
        (
            Cell("lstm", 1, "hard_sigmoid"),
            ("bias_f", "recurrent[0,2]"),
            (("cell", "bias", (1,)), ("cell", "recurrent", (0, 2))),
            "latch",
        ),
        (
            Cell("gru", 2, reset_after=True),
            ("bias_z", "head.kernel[1,0]"),
            (("cell", "bias", (0, 0)), ("head", "kernel", (1, 0))),
            "bit_relay",
        ),
    ],
)
def test_surface_equals_loop_of_model_loss(cell, names, coords, task):
    model = M.Model(cell)
    params = jax.device_get(M.init(jax.random.PRNGKey(3), model))
    key = jax.random.PRNGKey(11)
    Ts, N, P = (4, 9), 16, 5
    df = L.surface(model, params, names, (1.5, 0.5), task, Ts, points=P, N=N, key=key, chunk=7)
    assert len(df) == len(Ts) * P * P
    centre = [float(params[g][leaf][i]) for g, leaf, i in coords]
    assert df.attrs["center"] == pytest.approx(centre)
    rng = np.random.default_rng(0)
    rows = df.iloc[np.r_[0, len(df) - 1, rng.choice(len(df), 6, replace=False)]]
    rows = pd.concat([rows, L.center_rows(df)])
    data = {T: tasks.generate(task, key, N, T, 0.1) for T in Ts}  # unpadded, one batch per length
    for r in rows.itertuples():
        want = _loop_reference(model, params, coords, (r.x, r.y), data[int(r.T)])
        assert r.loss == pytest.approx(want, rel=1e-5, abs=1e-6), (r.T, r.x, r.y)
    np.testing.assert_allclose(L.center_rows(df).x, centre[0], rtol=0, atol=1e-6)
    # the offsets cover the span
    assert df.dx.min() == pytest.approx(-1.5) and df.dy.max() == pytest.approx(0.5)
    assert df.loss.std() > 1e-4  # a surface, not a constant


def test_surface_bad_arguments_are_config_errors():
    model = M.Model(Cell("srnn", 1))
    params = M.init(jax.random.PRNGKey(0), model)
    for kw, field in [
        ({"names": ("bias_h", "bias_h")}, "names"),
        ({"spans": 0.0}, "span"),
        ({"points": 2}, "points"),
        ({"task": "nope"}, "task"),
        ({"T_list": (0,)}, "T"),
        ({"names": ("bias_h", "nope")}, "y"),
    ]:
        args = {"names": ("recurrent_h", "bias_h"), "spans": 1.0, "task": "latch", "T_list": (3,), "points": 3, "N": 8}
        with pytest.raises(ConfigError, match=f"^{field}: "):
            L.surface(model, params, **{**args, **kw})


@pytest.mark.slow
def test_member_centre_is_the_members_parameters_and_data(tmp_path):
    """A stored member: the centre is its stored parameters, the trajectory every epoch's,
    and ``task_batch`` with its N and data key is the data set the sweep trained it on."""
    cfg = config.from_dict(
        {"name": "t", "repeats": 1, "seed": 4, "N": 32, "epochs": 2, "T": 6, "cell": "srnn", "batch_size": 8}
    )
    with Store(tmp_path / "s.sqlite") as st:
        runner.run(cfg, st)
        mid = st.members().member_id.iloc[0]
        c = L.member_centre(st, mid[:6], epoch=1)
        want = st.params(mid, 1)
        with pytest.raises(ConfigError, match="^epoch: "):
            L.member_centre(st, mid, epoch=3)
        with pytest.raises(ConfigError, match="^member: "):
            L.member_centre(st, "zzzz")
    for g in ("cell", "head"):
        for k in want[g]:
            np.testing.assert_array_equal(c.params[g][k], want[g][k])
    assert [e for e, _ in c.trajectory] == [0, 1, 2]
    traj = L.trajectory_frame(c, ("recurrent_h", "bias_h"))
    assert traj.x.iloc[1] == pytest.approx(float(want["cell"]["recurrent"][0, 0]))
    x, y, mask = L.task_batch(c.task, c.key, 32, [6], c.noise, c.signal_len)
    data = sweep_data.make_data(cfg.members(), 6)
    np.testing.assert_array_equal(np.asarray(x[0]), np.asarray(data.x[0]))
    np.testing.assert_array_equal(np.asarray(y[0]), np.asarray(data.y[0]))


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "args, field, allowed",
    [
        (("--cell", "lstm", "--x", "bias_q"), "x", ("bias_f", "recurrent[0,0]", "head.bias[0]")),
        (("--member", "abc"), "member", ()),
    ],
)
def test_landscape_bad_input_is_one_line_exit_2(tmp_path, xla_cache, args, field, allowed):
    """As a user runs it: the console script in a subprocess."""
    rc, out, err = cli("landscape", *args, "--out", tmp_path / "o", cwd=tmp_path, cache=xla_cache)
    assert_user_error(rc, out, err, field, allowed)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, field",
    [
        (("landscape", "--cell", "gru", "--y", "recurrent[0,9]"), "y"),
        (("landscape", "--cell", "gru", "--x", "bias[1]"), "x"),
        (("landscape", "--T", "5,zero"), "T"),
        (("landscape", "--span", "1,2,3"), "span"),
        (("landscape", "--span", "-1"), "span"),
        (("landscape", "--points", "2"), "points"),
        (("landscape", "--cell", "rnn"), "cell"),
        (("landscape", "--task", "copy"), "task"),  # a regression/sequence task has no class loss surface
        (("landscape", "--epoch", "2"), "epoch"),
        # a fresh centre's options are checked as a sweep member's fields, before any work
        (("landscape", "--head", "linear"), "head"),  # a regression head on a classification task
        (("landscape", "--cell", "lstm", "--init", "chrono", "--preset", "keras2"), "init"),
        (("landscape", "--task", "adding"), "task"),
        (("landscape", "--seed", "4294967296"), "seed"),
        (("landscape", "--units", "0"), "units"),
        (("landscape", "--noise", "inf"), "noise"),
        (("landscape", "--N", "3"), "N"),
        (("landscape", "--T", "5,2147483648"), "T"),
        (("landscape", "--units", "1000000"), "memory"),
        (("reproduce", "pascanu2013", "--w", "3,1"), "w"),
        (("reproduce", "pascanu2013", "--b", "x"), "b"),
        (("reproduce", "pascanu2013", "--clip", "0"), "clip"),
        (("reproduce", "pascanu2013", "--points", "1"), "points"),
    ],
)
def test_bad_options_raise_config_errors_naming_the_field(tmp_path, args, field):
    """In process (``main`` turns a ``ConfigError`` into one line and exit 2, tested above)."""
    from typer.testing import CliRunner

    from latchlab.cli import app

    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, ConfigError), (res.exception, res.output)
    assert str(res.exception).startswith(f"{field}: ") and "\n" not in str(res.exception)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_landscape_tiny_run_writes_its_files(tmp_path, xla_cache):
    rc, out, err = cli(
        "landscape",
        "--cell",
        "srnn",
        "--seed",
        "2",
        "--T",
        "3,6",
        "--points",
        "5",
        "--N",
        "8",
        "--span",
        "1",
        "--out",
        tmp_path / "o",
        cwd=tmp_path,
        cache=xla_cache,
    )
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "o" / "landscape.csv")
    assert len(df) == 2 * 25 and set(df.x_name) == {"recurrent_h"} and set(df.y_name) == {"bias_h"}
    assert (tmp_path / "o" / "landscape.png").stat().st_size > 0
    # the centre is member seed 2's initial point, and its loss is model.loss on that seed's data
    c = L.initial_centre("srnn", seed=2)
    model = c.model
    for T in (3, 6):
        x, y = tasks.generate("latch", c.key, 8, T)
        want = float(M.loss(model, c.params, x, y)[0])
        got = L.center_rows(df[df["T"] == T]).loss.iloc[0]
        assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.slow
def test_reproduce_pascanu2013_tiny_run_writes_its_files(tmp_path, xla_cache):
    rc, out, err = cli(
        "reproduce",
        "pascanu2013",
        "--T",
        "2,5",
        "--points",
        "9",
        "--steps",
        "5",
        "--out",
        tmp_path / "o",
        cwd=tmp_path,
        cache=xla_cache,
    )
    assert rc == 0, err
    grid = pd.read_csv(tmp_path / "o" / "landscape.csv")
    paths = pd.read_csv(tmp_path / "o" / "paths.csv")
    assert len(grid) == 2 * 81 and list(grid.columns) == ["T", "w", "b", "loss"]
    want = [numpy_pascanu(w, b, T) for T, w, b in zip(grid["T"], grid.w, grid.b)]
    np.testing.assert_allclose(grid.loss, want, atol=2e-5)
    assert set(paths.kind) == {"gd", "clipped"} and len(paths) == 2 * len(L.PASCANU_STARTS) * 2 * 6
    assert (tmp_path / "o" / "fig6.png").stat().st_size > 0


def test_a_gradient_whose_square_overflows_still_steps():
    """On a long orbit at an unstable fixed point the gradient passes 1.8e19, its squared norm
    overflows float32, and both paths stopped (clipping scaled the step by 0.1 / inf = 0; the
    plain step was NaN) though the gradient was finite. At w = 9 with ``b`` the float32 fixed
    point of x0 = 0.5, the clipped first step is ``lr * clip`` at T = 100 as at T = 50, and
    the plain path moves."""
    w = np.float32(9.0)
    b = np.float32(np.float32(0.5) - w * np.asarray(jax.nn.sigmoid(jnp.float32(0.5))))
    theta = jnp.array([w, b])
    first = {}
    for T in (50, 100):
        g = jax.grad(lambda t: L.pascanu_loss(t, T, T))(theta)
        assert np.all(np.isfinite(np.asarray(g)))
        clipped = L.descend(lambda t: L.pascanu_loss(t, T, T), theta, 3.0, 2, 0.1)
        plain = L.descend(lambda t: L.pascanu_loss(t, T, T), theta, 3.0, 2, jnp.inf)
        first[T] = np.asarray(clipped.theta[1])
        assert float(clipped.step_norm[0]) == pytest.approx(0.3, rel=1e-6)
        assert np.isfinite(float(clipped.grad_norm[0])) and float(clipped.grad_norm[0]) > 1e14
        assert not np.array_equal(np.asarray(plain.theta[1]), np.asarray(theta))
    np.testing.assert_allclose(first[100], first[50], rtol=1e-6)  # the same direction, the same clipped step
