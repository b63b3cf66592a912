"""Validation from laid-out rows against each member gathering its own, in one process.

    python bench/row_layout.py [--cells lstm,srnn] [--seeds 2] [--repeats 9]
    LATCHLAB_NATIVE_MARCH=x86-64-v3 python bench/row_layout.py  # the AVX2 build

Members as a sweep over lengths has them (``data.Families``): for each seed, one array of
N = 10000 sequences of 200 steps that the seed's members at the seed sweep's 25 lengths
read, with one stratified split. Their ensemble validates (``Ensemble.evaluate``) with the
rows laid out once for every member that reads them (``native.RowLayout``) and with every
member gathering its own rows again in each pass, the two taking turns, ``--repeats`` times
after a warm-up pair. Prints the median time of each and the median and range of gathered
over laid out per pair (above 1, laying out is faster), and whether both gave the same bits.
"""

import argparse
import time

from latchlab import runtime

runtime.setup()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from latchlab.core import model as M  # noqa: E402
from latchlab.core import tasks  # noqa: E402
from latchlab.core.cells import Cell  # noqa: E402
from latchlab.engine import native  # noqa: E402
from latchlab.experiments.seed import SEED_LENGTHS  # noqa: E402

N, T = 10000, max(SEED_LENGTHS)


def ensemble(cell: Cell, seeds: int) -> native.Ensemble:
    """A seed sweep's chunk: every length of ``seeds`` seeds, each seed's members reading
    one array of rows."""
    lengths = np.array(sorted(set(SEED_LENGTHS)) * seeds)
    seed_of = np.repeat(np.arange(seeds), len(lengths) // seeds)
    fams, ys, splits = [], [], []
    for s in range(seeds):
        key = jax.random.PRNGKey(s)
        x, y = tasks.latch(key, N, T, 0.1, 1)
        fams.append(np.ascontiguousarray(np.asarray(x)[..., 0]))
        ys.append(np.asarray(y))
        splits.append(tasks.split_indices(key, y, 0.2))
    R = len(lengths)
    model = M.Model(cell)
    params = jax.tree.map(lambda *a: np.stack(a), *[M.init(jax.random.PRNGKey(r), model) for r in range(R)])
    mask = np.arange(T)[None, :] >= T - lengths[:, None]
    rows = native.Rows([fams[s] for s in seed_of], lengths, T)
    tr = np.stack([np.asarray(splits[s][0]) for s in seed_of])
    va = np.stack([np.asarray(splits[s][1]) for s in seed_of])
    return native.Ensemble(model, "adam", params, rows, np.stack([ys[s] for s in seed_of]), mask, tr, va)


def compare(cell: Cell, seeds: int, repeats: int) -> str:
    ens = ensemble(cell, seeds)
    laid = ens._val_layout()
    gathered = (None, None)
    times: dict[str, list[float]] = {"laid out": [], "gathered": []}
    out: dict[str, list] = {"laid out": [], "gathered": []}
    for rep in range(repeats + 1):
        for k in ("laid out", "gathered") if rep % 2 == 0 else ("gathered", "laid out"):
            ens.val_laid_out = (ens.lib, *(laid if k == "laid out" else gathered))
            t0 = time.perf_counter()
            out[k].append(np.concatenate(ens.evaluate()))
            if rep:  # the first pair warms up
                times[k].append(time.perf_counter() - t0)
    r = np.array(times["gathered"]) / np.array(times["laid out"])
    same = np.array_equal(out["laid out"], out["gathered"])
    return (
        f"{cell.kind}(1) {cell.rsig}, {ens.shape[0]} members of {seeds} seeds, T up to {T}: validation "
        f"laid out {np.median(times['laid out']):.4f} s, gathered {np.median(times['gathered']):.4f} s, "
        f"gathered/laid out {np.median(r):.3f} [{r.min():.2f}-{r.max():.2f}]; "
        + ("the same bits" if same else "DIFFERENT numbers")
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", default="lstm,srnn")
    p.add_argument("--gates", default="hard_sigmoid")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--repeats", type=int, default=9)
    a = p.parse_args(argv)
    print(f"{native.march()} build, {native.threads()} threads")
    for name in a.cells.split(","):
        print(compare(Cell(name, 1, a.gates), a.seeds, a.repeats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
