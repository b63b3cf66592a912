"""XLA:CPU compile options against the default: how long latchlab's XLA programs take to
compile and to run, and how far their numbers move, each setting in a fresh process.

    .venv/bin/python bench/compile_flags.py                     # the settings in SETTINGS
    .venv/bin/python bench/compile_flags.py --flags=--xla_cpu_use_fusion_emitters=false

Programs: one training epoch (``train.train_epoch``) and the validation pass
(``train.evaluate``) of 24 members on latch data (T = 50, 200 sequences, batches of 16) in
the XLA modes ``choose_mode`` picks without native kernels (one-unit SRNN: rtrl, one-unit
LSTM: bptt) and in the vmap mode (one-unit LSTM, 8-unit GRU). Each setting's process
compiles each program once (no persistent cache) and runs it ``--repeats`` times; the table
prints its compile and run times (each the least over ``--rounds`` processes, the settings
taking turns) as ratios to the default's, measured in the same invocation, and the largest
difference of its outputs from the default's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# compared with the default when no --flags are given (this XLA ignores
# --xla_cpu_use_thunk_runtime, so it is not among them)
SETTINGS = [
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_llvm_disable_expensive_passes=true",
    "--xla_backend_optimization_level=1",
]


def child(out: str, repeats: int) -> None:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import numpy as np

    from latchlab import config
    from latchlab.core import model as M
    from latchlab.core.cells import Cell
    from latchlab.engine import data as D
    from latchlab.engine import train

    jax.config.update("jax_enable_compilation_cache", False)
    res: dict = {}

    def timed(name, fn, args, static):
        t = time.perf_counter()
        compiled = fn.lower(*args).compile()
        c = time.perf_counter() - t
        args = [a for i, a in enumerate(args) if i not in static]  # what the executable takes
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            y = jax.block_until_ready(compiled(*args))
            runs.append(time.perf_counter() - t)
        flat = [np.asarray(a, np.float64).ravel() for a in jax.tree.leaves(y)]
        res[name] = {"compile": c, "run": min(runs), "out": np.concatenate(flat).tolist()}

    R, N, T, B = 24, 200, 50, 16
    cfg = config.from_dict({"name": "b", "cell": "lstm", "repeats": R, "T": T, "N": N})
    members = cfg.members()
    data = D.make_data(members, T)
    for label, cell, mode in [
        ("srnn1 rtrl", Cell("srnn", 1), "rtrl"),
        ("lstm1 bptt", Cell("lstm", 1, "hard_sigmoid"), "bptt"),
        ("lstm1 vmap", Cell("lstm", 1), "vmap"),
        ("gru8 vmap", Cell("gru", 8), "vmap"),
    ]:
        model = M.Model(cell, "dense2")
        spec = train.Spec(model, "adam", B, mode)
        params = jax.vmap(lambda k: M.init(k, model))(jax.random.split(jax.random.PRNGKey(1), R))
        state = train.init_state(spec, params)
        n_train = data.train.shape[1]
        order, weight = train.epoch_order([np.random.default_rng(s) for s in range(R)], n_train, B)
        lr = np.full(R, 1e-2, np.float32)
        epoch = jax.jit(train.train_epoch.__wrapped__, static_argnums=0)  # no donation: rerun
        timed(f"epoch {label}", epoch, (spec, state, data, lr, order, weight), (0,))
        ev = jax.jit(train.evaluate.__wrapped__, static_argnums=(0, 3))
        timed(f"evaluate {label}", ev, (model, params, data, 64), (0, 3))
    with open(out, "w") as f:
        json.dump(res, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flags", action="append", help="an XLA_FLAGS setting to compare (repeatable)")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each compiled program")
    ap.add_argument("--rounds", type=int, default=3, help="processes a setting, interleaved")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.repeats)
        return
    settings = [""] + (a.flags or SETTINGS)
    results: dict = {}
    for _ in range(a.rounds):  # settings interleaved; each program's least time over rounds
        for s in settings:
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                env = dict(os.environ, XLA_FLAGS=s)
                cmd = [sys.executable, __file__, "--child", f.name, "--repeats", str(a.repeats)]
                subprocess.run(cmd, env=env, check=True)
                got = json.load(f)
            for name, r in got.items():
                old = results.setdefault(s, {}).setdefault(name, r)
                old["compile"], old["run"] = min(old["compile"], r["compile"]), min(old["run"], r["run"])
    import numpy as np

    base = results[""]
    print(f"{'program':<22}" + "".join(f" | {s or 'default':>14.14}" for s in settings))
    for name in base:
        cells = []
        for s in settings:
            r = results[s][name]
            if s == "":
                cells.append(f"{r['compile']:5.2f}s {r['run'] * 1e3:6.1f}ms")
            else:
                d = float(np.abs(np.array(r["out"]) - np.array(base[name]["out"])).max())
                cells.append(
                    f"{r['compile'] / base[name]['compile']:4.2f}c {r['run'] / base[name]['run']:4.2f}r {d:.0e}"
                )
        print(f"{name:<22}" + "".join(f" | {c:>14}" for c in cells))
    tot = {s: sum(r["compile"] for r in results[s].values()) for s in settings}
    print("total compile: " + ", ".join(f"{s or 'default'} {tot[s]:.1f}s" for s in settings))


if __name__ == "__main__":
    main()
