"""Native kernels of two revisions compared: one epoch's training and validation time.

    python bench/kernel_ab.py --old d28f7b3 [--cells lstm,srnn] [--units 1] [--length 200] [--repeats 9]
    python bench/kernel_ab.py --old d28f7b3 --chunk seed [--cells lstm,srnn]  # the seed sweep's own chunks
    LATCHLAB_NATIVE_MARCH=x86-64-v3 python bench/kernel_ab.py --old d28f7b3 ...  # AVX2 builds

Builds ``latchlab/engine/native/kernels.cpp`` as git revision ``--old`` has it and as the
working tree has it (each with ``--old-defines`` / ``--new-defines``, e.g.
``-DLATCH_BWD_VECTORS=1``), for the instruction set ``native.march()`` names. For each cell,
the same members (latch task, N = 10000, batch 16, Adam, hard-sigmoid gates unless
``--gates``) train for one epoch and validate with either library, the two taking turns
(a shared machine's load slows them alike), ``--repeats`` times after a warm-up pair. Prints
the median time of each and the median and range of old over new per pair: above 1, the
working tree is faster. With ``--chunk seed`` the members are instead the first chunk that
the seed's full sweep (one split, Keras 2's gates) plans for each cell: two seeds' members at
every length, reading their seeds' shared sequences in the sweep's shuffles, as a sweep's
blocks do (``--units``, ``--length``, ``--members`` and ``--gates`` do not apply). The speed
of a change is this ratio, never a wall-clock time (docs/benchmarks.md says which CPU each
ratio was measured on).
"""

import subprocess
import tempfile
import time
from pathlib import Path

from ab import header, parser, ratio

from latchlab import runtime

runtime.setup()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from latchlab.core import model as M  # noqa: E402
from latchlab.core import tasks  # noqa: E402
from latchlab.core.cells import Cell  # noqa: E402
from latchlab.engine import native, train  # noqa: E402


def source_at(rev: str, into: Path) -> Path:
    """kernels.cpp and simd.h as revision ``rev`` has them, written into ``into``."""
    for name in ("kernels.cpp", "simd.h"):
        text = subprocess.run(
            ["git", "show", f"{rev}:src/latchlab/engine/native/{name}"], capture_output=True, text=True, check=True
        ).stdout
        (into / name).write_text(text)
    return into / "kernels.cpp"


def library(source: Path, tag: str, model, defines: tuple[str, ...]):
    """The kernels of ``source``, built and typed. An older revision's library may lack
    entries added since (``latch_batch_rows``: its ensembles then gather every row) and take
    fewer trailing arguments (the x86-64 calling convention lets it ignore the rest)."""
    import ctypes

    v = native.variant(model)
    flags = native.FLAGS + (f"-march={native.march()}",) + defines + native.defines(v)
    path = native._compile(source, f"ab-{tag}-{''.join(map(str, v))}", flags)
    so = ctypes.CDLL(str(path))
    signatures = {k: s for k, s in native.SIGNATURES.items() if hasattr(so, k)}
    if "prow" in source.read_text():
        return native._typed(path, signatures)
    res, args = signatures["latch_train_epoch"]
    signatures["latch_train_epoch"] = (res, args[:PROW] + args[PROW + 1 :])
    return OneRowAMember(native._typed(path, signatures))


PROW = 23  # latch_train_epoch's argument: each member's row of the shuffles


class OneRowAMember:
    """A library from before members could share their shuffles' rows (``prow``): its
    ``latch_train_epoch`` takes one row a member, and no ``prow``."""

    shares_rows = False

    def __init__(self, lib):
        self._lib = lib

    def __getattr__(self, name: str):
        return getattr(self._lib, name)

    def latch_train_epoch(self, *a):
        assert a[PROW] is not None
        return self._lib.latch_train_epoch(*a[:PROW], *a[PROW + 1 :])


def own_data(cell: Cell, T: int, R: int, epochs: int, N: int = 10000):
    """R members of ``cell`` at length T, each with sequences of its own: (model, initial
    parameters, ``Ensemble``'s data arguments, each of ``epochs`` epochs' shuffles)."""
    model = M.Model(cell)
    keys = jax.random.split(jax.random.PRNGKey(0), R)
    x, y = jax.vmap(lambda k: tasks.latch(k, N, T, 0.1, 1))(keys)
    tr, va = zip(*[tasks.split_indices(k, yy, 0.2) for k, yy in zip(keys, y)])
    params = jax.tree.map(lambda *a: jnp.stack(a), *[M.init(k, model) for k in keys])
    args = (np.asarray(x), np.asarray(y), np.ones((R, T), bool), np.stack(tr), np.stack(va))
    orders = [
        train.epoch_order([np.random.default_rng([s, rep]) for s in range(R)], len(tr[0]), 16) for rep in range(epochs)
    ]
    return model, params, args, orders


def seed_chunk(kind: str, epochs: int):
    """The first chunk the seed's full sweep (one split, Keras 2's gates) plans for ``kind``,
    as ``own_data`` returns its members, with its data, initial parameters and shuffles made
    as the sweep makes them."""
    from latchlab.engine import data as D
    from latchlab.engine import plan as P
    from latchlab.experiments import seed

    cfg = seed.seed_config("full", splits=("stratified",), cells=(kind,))
    chunks = P.plan(list({m.id: m for m in cfg.members()}.values()))[:1]
    members = list(chunks[0].members)
    d = D.make_data(members, chunks[0].T_pad, D.Families(chunks))  # rows shared as in a sweep
    run = members[0].run
    orders = train.epoch_orders(tuple(m.seed for m in members), epochs, int(d.train.shape[1]), run.batch_size)
    return run.model, D.init_members(members), (d.x, d.y, d.mask, d.train, d.val), orders


def compare(name: str, cell: Cell | None, T: int, R: int, repeats: int, old, new, N: int = 10000) -> str:
    """Old against new on ``own_data``'s members, or (``cell`` None) on ``seed_chunk(name)``."""
    epochs = repeats + 1
    model, params, args, orders = own_data(cell, T, R, epochs, N) if cell is not None else seed_chunk(name, epochs)
    R = len(args[3])
    libs = {"old": library(old[0], "old", model, old[1]), "new": library(new[0], "new", model, new[1])}
    ens = {k: native.Ensemble(model, "adam", params, *args) for k in libs}
    for k, lib in libs.items():
        ens[k].lib = lib
    lr = np.full(R, 1e-3, np.float32)
    t_train: dict[str, list[float]] = {k: [] for k in libs}
    t_val: dict[str, list[float]] = {k: [] for k in libs}
    metrics: dict[str, list] = {k: [] for k in libs}
    for rep in range(repeats + 1):
        for k in ("old", "new") if rep % 2 == 0 else ("new", "old"):
            order = orders[rep]
            if isinstance(order, train.Shuffles) and not getattr(ens[k].lib, "shares_rows", True):
                order = order.per_member()
            t0 = time.perf_counter()
            trained = ens[k].train_epoch(lr, *order)
            t1 = time.perf_counter()
            validated = ens[k].evaluate()
            t2 = time.perf_counter()
            metrics[k].append(np.concatenate([*trained, *validated]))
            if rep:  # the first pair warms up
                t_train[k].append(t1 - t0)
                t_val[k].append(t2 - t1)
    same = np.array_equal(ens["old"].params, ens["new"].params) and np.array_equal(metrics["old"], metrics["new"])
    return (
        f"{name}({model.cell.units}) {model.cell.rsig} {f'T={T}' if cell is not None else 'seed chunk'} R={R}: train old {np.median(t_train['old']):.4f} "
        f"new {np.median(t_train['new']):.4f} s, {ratio(t_train['old'], t_train['new'])}; "
        f"validate {ratio(t_val['old'], t_val['new'])}; "
        f"parameters and metrics after {repeats + 1} epochs {'the same bits' if same else 'DIFFERENT'}"
    )


def main() -> None:
    p = parser(__doc__ or "", "kernels")
    p.add_argument("--cells", default="lstm,srnn,gru,janet", help="lstm, lstm_nofg, srnn, gru, gru_ra, janet")
    p.add_argument("--gates", default="hard_sigmoid")
    p.add_argument("--units", type=int, default=1)
    p.add_argument("--length", type=int, default=200)
    p.add_argument("--members", type=int, default=64)
    p.add_argument(
        "--chunk", choices=("own", "seed"), default="own", help="members with data of their own, or the seed sweep's"
    )
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = (source_at(a.old, Path(tmp)), tuple(a.old_defines.split()))
        new = (native.SOURCE, tuple(a.new_defines.split()))
        print(header(a), flush=True)
        for kind in a.cells.split(","):
            rsig = "sigmoid" if kind == "srnn" else a.gates
            cell = (
                Cell("gru", a.units, rsig, reset_after=kind == "gru_ra")
                if kind.startswith("gru")
                else Cell(kind, a.units, rsig)
            )
            if a.chunk == "seed":
                cell = None
            print(compare(kind, cell, a.length, a.members, a.repeats, old, new), flush=True)


if __name__ == "__main__":
    main()
