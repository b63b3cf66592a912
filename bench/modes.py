"""Gradient layouts compared: time per training epoch of each ``train.FIT_MODES`` on one shape.

    python bench/modes.py [--cells srnn,lstm] [--shapes 200x30,20x300] [--preset keras2]

For each cell and (T x members) shape, trains the same members for one epoch (N = 10000,
batch 16, Adam) with each mode after a warm-up call that compiles, and prints seconds per
epoch and the ratio to ``vmap`` (plain vmap + reverse-mode autodiff). ``native`` is
``latchlab.engine.native``'s whole-epoch kernels (its "compile" column: the first call, which
builds the library if it is not cached). ``choose_mode``'s choice should be the fastest row.
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import latchlab  # noqa: F401  (splits the host into one device per core)
from latchlab.core import model as M
from latchlab.engine import native
from latchlab.core import tasks
from latchlab.engine import train
from latchlab.core.cells import Cell


def epoch_seconds(kind, preset, T, R, mode, units=1, N=10000, repeats=2):
    keys = jax.random.split(jax.random.PRNGKey(0), R)
    x, y = jax.vmap(lambda k: tasks.latch(k, N, T, 0.1, 1))(keys)
    tr, va = zip(*[tasks.split_indices(k, yy, 0.2) for k, yy in zip(keys, y)])
    data = train.Data(x, y, jnp.ones((R, T), bool), jnp.asarray(np.stack(tr)), jnp.asarray(np.stack(va)))
    model = M.Model(Cell.from_preset(kind, units, preset))
    params = jax.vmap(lambda k: M.init(k, model, "keras"))(jax.random.split(jax.random.PRNGKey(1), R))
    spec = train.Spec(model, "adam", 16, mode)
    if mode == "native":
        return _native_seconds(model, params, data, R, repeats)
    split = train.member_sharding(R)
    state = jax.device_put(train.init_state(spec, params), split)
    data, lr = jax.device_put((data, jnp.full(R, 1e-3, jnp.float32)), split)
    rngs = [np.random.default_rng(i) for i in range(R)]
    order, weight = jax.device_put(train.epoch_order(rngs, data.train.shape[1], 16), split)

    def one():
        nonlocal state
        state, l, _ = train.train_epoch(spec, state, data, lr, order, weight)
        jax.block_until_ready(l)

    return _timed(one, repeats)


def _native_seconds(model, params, data, R, repeats):
    ens = native.Ensemble(model, "adam", params, *data)
    lr = np.full(R, 1e-3, np.float32)
    order, weight = train.epoch_order([np.random.default_rng(i) for i in range(R)], ens.train.shape[1], 16)
    return _timed(lambda: ens.train_epoch(lr, order, weight), repeats)


def _timed(one, repeats):
    """(best of ``repeats`` calls of ``one``, first call's excess: compilation or build)."""
    t0 = time.perf_counter()
    one()
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        one()
        best = min(best, time.perf_counter() - t0)
    return best, first - best


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="srnn,lstm")
    ap.add_argument("--shapes", default="200x30,20x300")
    ap.add_argument("--preset", default="keras2")
    ap.add_argument("--units", type=int, default=1)
    ap.add_argument("--modes", default="")
    a = ap.parse_args()
    print(f"devices {jax.devices()}")
    print(f"{'cell':6s} {'T':>4s} {'R':>4s} {'mode':6s} {'s/epoch':>8s} {'compile':>8s} {'x vmap':>7s}")
    for kind in a.cells.split(","):
        for shape in a.shapes.split(","):
            T, R = map(int, shape.split("x"))
            base = None
            model = M.Model(Cell.from_preset(kind, a.units, a.preset))
            for mode in (a.modes.split(",") if a.modes else train.FIT_MODES):
                if mode not in train.modes_for(model) + (("native",) if train.native_ok(model) else ()):
                    continue
                s, c = epoch_seconds(kind, a.preset, T, R, mode, a.units)
                base = base or s
                chosen = " <- choose_mode" if mode == train.choose_mode(
                    M.Model(Cell.from_preset(kind, a.units, a.preset))) else ""
                print(f"{kind:6s} {T:4d} {R:4d} {mode:6s} {s:8.2f} {c:8.2f} {base / s:7.2f}{chosen}", flush=True)
