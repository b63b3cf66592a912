"""Benchmark: a sweep on a Dask ``LocalCluster`` against the same sweep in-process, and what a
single client and store can feed.

Run it from the repository root::

    .venv/bin/python bench/cluster.py                          # the seed's full sweep, 2 workers
    .venv/bin/python bench/cluster.py --lengths 2,50,100 --repeats 10   # a quick look

What it measures (docs/scale.md reports the numbers):

1. The sweep (``experiments/seed.toml``, or ``--config``) in-process (``run.run``),
   then on a ``LocalCluster`` of ``--workers`` single-threaded worker processes: the
   cluster's start, and the sweep through it (``runner.run(..., cluster=address)``), each
   with a fresh store; then the sweep once more on the same workers (warm: their seed
   sequences drawn, their set-up functions loaded). The in-process run goes first, so
   every run finds the compilation cache warm. The stored metrics are compared. Each
   run's CPU seconds (this process's, and the workers' summed) are printed beside its
   wall time: on a shared machine they move less with the neighbours than wall time.
2. The scheduler's overhead per chunk: ``--tasks`` tasks that return a real chunk's result
   at once, submitted and gathered as ``cluster.results`` does; wall time / tasks.
3. The store's ingestion rate: that chunk's result written ``--writes`` times
   (``Store.write`` and the worker record), members per second.
4. On paper: for a sweep of a million members in chunks like the sweep's, the workers a
   client can feed before it (2 and 3 together) is the bottleneck.

The last line is ``RESULT ...`` for grepping. The load average is printed at start and end:
on a shared machine the numbers move with the neighbours.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _fake_execute(result):
    """A task that does no training: the scheduler's and the client's cost of one chunk."""
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path("experiments/seed.toml"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lengths", default="", help="a subset of the grid's lengths, e.g. 2,50,100")
    ap.add_argument("--repeats", type=int, default=0, help="members per grid point (default: the config's)")
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--writes", type=int, default=50)
    a = ap.parse_args()

    from latchlab import runtime

    runtime.setup()
    from dataclasses import replace

    from distributed import as_completed

    from latchlab import config as C
    from latchlab.engine import cluster as CL
    from latchlab.engine import plan, run as runner
    from latchlab.store import Store

    cfg = C.load(a.config)
    if a.repeats:
        cfg = replace(cfg, repeats=a.repeats)
    if a.lengths:
        keep = {int(t) for t in a.lengths.split(",")}
        cfg = replace(cfg, grid=tuple((n, tuple(v for v in vs if n != "T" or v in keep)) for n, vs in cfg.grid))
    members = cfg.members()
    chunks = plan.plan(list({m.id: m for m in members}.values()))
    print(f"load {_load()} | {len(members)} members, {len(chunks)} chunks, {a.workers} workers", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="latchlab-bench-cluster-"))

    t, c = time.perf_counter(), time.process_time()
    with Store(tmp / "inproc.sqlite") as st:
        ref = runner.run(cfg, st)
    t_in, c_in = time.perf_counter() - t, time.process_time() - c
    print(f"in-process: {t_in:.1f} s, {c_in:.1f} CPU s", flush=True)

    t = time.perf_counter()
    with CL.connect(CL.ClusterSpec("local", a.workers), print) as client:
        t_start = time.perf_counter() - t
        print(f"cluster start: {t_start:.1f} s", flush=True)
        cols = ["member_id", "epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
        walls, same = [], True
        for run in ("cold", "warm"):
            w0, c0, t = client.run(time.process_time), time.process_time(), time.perf_counter()
            with Store(tmp / f"cluster-{run}.sqlite") as st:
                got = runner.run(cfg, st, cluster=client.scheduler.address)
            walls.append(time.perf_counter() - t)
            c_cl, w1 = time.process_time() - c0, client.run(time.process_time)
            w_cl = sum(w1[k] - w0[k] for k in w0)
            same = same and ref[cols].sort_values(["member_id", "epoch"]).reset_index(drop=True).equals(
                got[cols].sort_values(["member_id", "epoch"]).reset_index(drop=True)
            )
            print(
                f"cluster sweep, {run} workers: {walls[-1]:.1f} s ({walls[-1] / t_in - 1:+.0%} against in-process"
                + (f"; with the start {(walls[-1] + t_start) / t_in - 1:+.0%}" if run == "cold" else "")
                + f"), CPU s: client {c_cl:.1f}, workers {w_cl:.1f} ({(c_cl + w_cl) / c_in - 1:+.0%}); "
                f"stored metrics identical: {same}",
                flush=True,
            )
        t_cl = walls[0]

        # 2. the scheduler's and the client's cost of a chunk: tasks that train nothing
        big = max(chunks, key=lambda c: len(c.members))
        res = CL._execute(big)
        n_real = len(big.members) - big.pad
        payload = client.scatter(res, broadcast=True)
        t = time.perf_counter()
        futures = [client.submit(_fake_execute, payload, pure=False) for _ in range(a.tasks)]
        for f in as_completed(futures):
            f.result()
        per_chunk = (time.perf_counter() - t) / a.tasks
        print(f"scheduler + client: {per_chunk * 1e3:.2f} ms a chunk ({a.tasks} tasks)", flush=True)

    # 3. the store's ingestion rate
    from latchlab.engine import train

    hist = train.History(*res.history)
    real = big.members[:n_real]
    with Store(tmp / "ingest.sqlite") as st:
        sid = st.add_sweep("ingest", {}, {"git_commit": "", "versions": {}, "prng": "", "device": ""})
        t = time.perf_counter()
        for i in range(a.writes):
            ms = [replace(m, seed=m.seed + 10**6 * (i + 1)) for m in real]  # new ids: inserts, not replaces
            st.write(sid, ms, hist, res.seconds, worker=res.worker)
        per_write = (time.perf_counter() - t) / a.writes
    rate = n_real / per_write
    print(
        f"store: {per_write * 1e3:.1f} ms a chunk of {n_real} members, {rate:.0f} members/s "
        f"({cfg.base.epochs} epochs, parameters after each)",
        flush=True,
    )

    # 4. on paper: a million members
    worker_s = res.seconds  # the largest chunk, made and trained in this process (warm)
    client_s = per_chunk + per_write
    W = worker_s / client_s
    M = 10**6
    print(
        f"on paper: a chunk of {n_real} members trains in {worker_s:.2f} s on one worker; the client spends "
        f"{client_s * 1e3:.1f} ms on it: it feeds about {W:.0f} workers; {M} members = {M // n_real} chunks: "
        f"{M // n_real * worker_s / W / 3600:.2f} h at that width",
        flush=True,
    )
    print(f"load {_load()}")
    print(
        f"RESULT members={len(members)} workers={a.workers} inproc_s={t_in:.1f} cluster_s={t_cl:.1f} "
        f"warm_cluster_s={walls[1]:.1f} "
        f"start_s={t_start:.1f} ratio={t_cl / t_in:.3f} identical={same} chunk_ms={per_chunk * 1e3:.2f} "
        f"store_members_per_s={rate:.0f} chunk_train_s={worker_s:.2f} max_workers={W:.0f}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
