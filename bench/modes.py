"""Gradient layouts compared: time per training epoch of each ``train.FIT_MODES`` on one shape.

    python bench/modes.py [--cells srnn,lstm] [--shapes 200x30,20x300] [--preset keras2] [--repeats 2]
    LATCHLAB_NATIVE_MARCH=x86-64-v3 python bench/modes.py ...  # the native kernels' AVX2 build

For each cell and (T x members) shape, trains the same members for one epoch (N = 10000,
batch 16, Adam) with each mode after a warm-up call that compiles, the modes taking turns
epoch by epoch (a shared machine's load slows them alike), and prints the best of
``--repeats`` epochs' seconds and the speed against the first mode listed (``vmap``, plain
vmap + reverse-mode autodiff, by default). ``native`` is ``latchlab.engine.native``'s
whole-epoch kernels (its "compile" column: the first call, which builds the library if it
is not cached; its instruction set, floats per vector and members per block are printed).
``choose_mode``'s choice should be the fastest row.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import latchlab
from latchlab.core import model as M
from latchlab.engine import native
from latchlab.core import tasks
from latchlab.engine import train
from latchlab.core.cells import Cell

latchlab.setup()  # one XLA device per core, before JAX's backend starts (importing latchlab does not)


def epoch_runner(kind, preset, T, R, mode, units=1, N=10000):
    """A function that trains the same members for one epoch with ``mode``."""
    keys = jax.random.split(jax.random.PRNGKey(0), R)
    x, y = jax.vmap(lambda k: tasks.latch(k, N, T, 0.1, 1))(keys)
    tr, va = zip(*[tasks.split_indices(k, yy, 0.2) for k, yy in zip(keys, y)])
    data = train.Data(x, y, jnp.ones((R, T), bool), jnp.asarray(np.stack(tr)), jnp.asarray(np.stack(va)))
    model = M.Model(Cell.from_preset(kind, units, preset))
    params = jax.vmap(lambda k: M.init(k, model, "keras"))(jax.random.split(jax.random.PRNGKey(1), R))
    spec = train.Spec(model, "adam", 16, mode)
    if mode == "native":
        return _native_runner(model, params, data, R)
    split = train.member_sharding(R)
    state = jax.device_put(train.init_state(spec, params), split)
    data, lr = jax.device_put((data, jnp.full(R, 1e-3, jnp.float32)), split)
    rngs = [np.random.default_rng(i) for i in range(R)]
    order, weight = jax.device_put(train.epoch_order(rngs, data.train.shape[1], 16), split)

    def one():
        nonlocal state
        state, loss, _ = train.train_epoch(spec, state, data, lr, order, weight)
        jax.block_until_ready(loss)

    return one


def _native_runner(model, params, data, R):
    ens = native.Ensemble(model, "adam", params, *data)
    info = native.build_info(ens.lib)
    print(
        f"native kernels: -march={native.march()}, {info['isa']}, {info['lanes']} floats a vector, "
        f"{info['per_block']} members a block",
        flush=True,
    )
    lr = np.full(R, 1e-3, np.float32)
    order, weight = train.epoch_order([np.random.default_rng(i) for i in range(R)], ens.train.shape[1], 16)
    return lambda: ens.train_epoch(lr, order, weight)


def _seconds(one) -> float:
    t0 = time.perf_counter()
    one()
    return time.perf_counter() - t0


def timed(runners: dict, repeats: int) -> dict:
    """``{mode: (best of repeats epochs, first call's excess: compilation or build)}``. The
    modes' epochs take turns (round-robin), so a busy neighbour on a shared machine slows
    them alike."""
    first = {mode: _seconds(one) for mode, one in runners.items()}
    times = {mode: [] for mode in runners}
    for _ in range(repeats):
        for mode, one in runners.items():
            times[mode].append(_seconds(one))
    return {mode: (min(ts), first[mode] - min(ts)) for mode, ts in times.items()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="srnn,lstm")
    ap.add_argument("--shapes", default="200x30,20x300")
    ap.add_argument("--preset", default="keras2")
    ap.add_argument("--units", type=int, default=1)
    ap.add_argument("--modes", default="")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    print(f"devices {jax.devices()}")
    print(f"{'cell':6s} {'T':>4s} {'R':>4s} {'mode':6s} {'s/epoch':>8s} {'compile':>8s} {'ratio':>7s}")
    for kind in a.cells.split(","):
        model = M.Model(Cell.from_preset(kind, a.units, a.preset))
        modes = [
            m
            for m in (a.modes.split(",") if a.modes else train.FIT_MODES)
            if m in train.modes_for(model) + (("native",) if native.available(model) else ())
        ]
        chosen = train.choose_mode(model)
        for shape in a.shapes.split(","):
            T, R = map(int, shape.split("x"))
            res = timed({mode: epoch_runner(kind, a.preset, T, R, mode, a.units) for mode in modes}, a.repeats)
            base = res[modes[0]][0]
            for mode, (s, c) in res.items():
                mark = " <- choose_mode" if mode == chosen else ""
                print(f"{kind:6s} {T:4d} {R:4d} {mode:6s} {s:8.2f} {c:8.2f} {base / s:7.2f}{mark}", flush=True)
