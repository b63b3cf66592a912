"""Which kernels of a compiled training epoch's time loops did XLA:CPU vectorise?

    python bench/vectorised.py [--cell lstm] [--mode auto] [--T 200] [--members 60]

Compiles ``train.train_epoch`` for one shape with XLA's dumps switched on, finds the while
loops that run over time (trip count ``T``), and prints, for every kernel in their bodies,
how many SIMD vector values (``<k x float>``) LLVM emitted. A kernel with none runs one
row at a time. This is how docs/benchmarks.md found that a ``select`` on a per-member mask,
gates stacked on the minor axis and batch reductions inside the loop gave scalar kernels.
"""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

DUMP = tempfile.mkdtemp(prefix="latchlab-xla-dump-")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text"
    + " --xla_dump_hlo_module_re=.*train_epoch.*"
).strip()

from latchlab import runtime  # noqa: E402

runtime.setup()  # one XLA device per core, as the CLI does

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from latchlab.core import model as M  # noqa: E402
from latchlab.engine import train  # noqa: E402
from latchlab.core.cells import Cell  # noqa: E402

VECTOR = re.compile(r"<\d+ x (float|i32|i1)>")


def loop_kernels(hlo: str, T: int) -> dict[str, list[str]]:
    """``{while body: [fusion instruction names]}`` for the loops with trip count ``T``."""
    bodies = re.findall(r'while\(.*body=(%[\w.\-]+).*"known_trip_count":\{"n":"' + str(T) + '"', hlo)
    out = {}
    for body in dict.fromkeys(bodies):
        m = re.search("^" + re.escape(body) + r" .*?\n\}", hlo, re.S | re.M)
        out[body] = re.findall(r"^\s*(?:ROOT )?%([\w.\-]+) = .*? fusion\(", m.group(0), re.M) if m else []
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--mode", default="auto", help="auto: the XLA mode choose_mode takes without native kernels")
    ap.add_argument("--preset", default="keras2")
    ap.add_argument("--T", type=int, default=200)
    ap.add_argument("--members", type=int, default=60)
    a = ap.parse_args(argv)
    R, N, B = a.members, 1000, 16
    model = M.Model(Cell.from_preset(a.cell, 1, a.preset))
    if a.mode == "auto":  # the native kernels are not XLA: the mode XLA would run
        os.environ["LATCHLAB_NATIVE"] = "0"
    spec = train.Spec.for_model(model, mode=a.mode)
    split = train.member_sharding(R)
    params = jax.vmap(lambda k: M.init(k, model, "keras"))(jax.random.split(jax.random.PRNGKey(0), R))
    state = jax.device_put(train.init_state(spec, params), split)
    data = jax.device_put(
        train.Data(
            jnp.zeros((R, N, a.T, 1)),
            jnp.zeros((R, N), jnp.int32),
            jnp.ones((R, a.T), bool),
            jnp.zeros((R, 800), jnp.int32),
            jnp.zeros((R, 200), jnp.int32),
        ),
        split,
    )
    order, weight = train.epoch_order([np.random.default_rng(i) for i in range(R)], 800, B)
    jax.block_until_ready(
        train.train_epoch(
            spec, state, data, jax.device_put(jnp.full(R, 1e-3), split), *jax.device_put((order, weight), split)
        )
    )
    dump = Path(DUMP)
    hlo_file = sorted(dump.glob("*jit_train_epoch*cpu_after_optimizations.txt"))[-1]
    prefix = hlo_file.name.split(".cpu_after")[0]
    print(f"{a.cell} mode {spec.mode}, T {a.T}, {R} members on {train.devices_for(R)} device(s); dump {DUMP}")
    scalar = 0
    for body, kernels in loop_kernels(hlo_file.read_text(), a.T).items():
        print(f"time loop {body}: {len(kernels)} kernels per step")
        for k in kernels:
            ir = dump / f"{prefix}.{k}_kernel_module.ir-with-opt.ll"
            n = len(VECTOR.findall(ir.read_text())) if ir.exists() else None
            scalar += n == 0
            print(
                f"  {k:48s} {'(code shared with another kernel, or a copy)' if n is None else f'{n:5d} vector values'}"
                f"{'  <- scalar' if n == 0 else ''}"
            )
    print(f"{scalar} scalar kernel(s) in the time loops")
    return scalar


if __name__ == "__main__":
    sys.exit(0 if main() == 0 else 1)
