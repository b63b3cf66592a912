"""Run a sweep: its planned chunks trained, results written to a store or kept in memory.

A chunk's trip goes down the floors once: ``plan`` shapes it and picks its backend,
``data`` makes its data and initial parameters from its members' seeds, ``train`` trains
it on that backend, and ``run`` hands the result to the store. ``execute(chunk)`` is that
trip as one pure, picklable unit, so chunks can be shipped to other processes (``run``'s
``executor``); the default executor trains them here, in order, reusing data between
chunks that share them (``data.Families``). Either way a member's numbers are the same.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, NamedTuple

import jax
import numpy as np

from latchlab import limits, provenance
from latchlab.config import SweepConfig
from latchlab.engine import data as D
from latchlab.engine import plan as P
from latchlab.engine import train


if TYPE_CHECKING:
    import pandas as pd


class ChunkResult(NamedTuple):
    """What training a chunk gives: the kept members' ids (``Chunk.wanted``, in order), their
    ``train.History`` as host arrays (members axis aligned with ``ids``; ``diverged_epoch``
    marks members whose loss stopped being finite) and the wall-clock seconds it took."""

    ids: tuple[str, ...]
    history: train.History
    seconds: float
    worker: dict | None = None  # where it trained, when not in this process (``cluster.worker_info``)


Executor = Callable[[list[P.Chunk]], Iterable[tuple[P.Chunk, ChunkResult]]]


def train_chunk(chunk: P.Chunk, on_epoch=None, timer=None, data=None) -> train.History:
    """Train every member of a chunk (padding included) on its backend, on ``data`` if
    given (``data.make_data``'s result), else on data made from the members' seeds."""
    members = list(chunk.members)
    with train.span(timer, "data"):
        if data is None:
            data = D.make_data(members, chunk.T_pad)
        params = D.init_members(members)
    lr = np.array([m.run.lr for m in members], np.float32)
    seeds = np.array([m.seed for m in members])
    return train.fit_on(chunk.backend, params, data, lr, seeds, members[0].run.epochs, on_epoch, timer)


def _kept(chunk: P.Chunk, hist: train.History, seconds: float) -> ChunkResult:
    """The chunk's ``wanted`` members' part of ``hist``."""
    idx = chunk.wanted
    sel = slice(0, len(idx)) if idx == tuple(range(len(idx))) else np.array(idx)
    assert hist.diverged_epoch is not None  # ``train.fit_on`` sets it
    h = train.History(
        *(a[:, sel] for a in hist[:4]),
        params=[jax.tree.map(lambda a: a[sel], p) for p in hist.params],
        diverged_epoch=hist.diverged_epoch[sel],
    )
    return ChunkResult(tuple(chunk.members[i].id for i in idx), h, seconds)


def execute(chunk: P.Chunk) -> ChunkResult:
    """Train one chunk from its members' seeds alone: the unit another process can run.

    Pure: the result depends on ``chunk`` only (and, on the XLA backends, on the number of
    local devices, which splits the members: a fresh process calls ``runtime.setup()``
    first, as the CLI does, to get the same devices).
    """
    t0 = time.perf_counter()
    hist = train_chunk(chunk)
    return _kept(chunk, hist, time.perf_counter() - t0)


def _claimed(chunk: P.Chunk, store) -> P.Chunk | None:
    """``chunk`` with only the members this process could claim in ``store`` kept (the
    others are trained by another process running the same sweep), or None if none.
    The chunk still trains whole, so its members' numbers do not change."""
    ids = [chunk.members[i].id for i in chunk.wanted]
    got = store.claim(ids)
    if not got:
        return None
    return chunk if len(got) == len(ids) else dataclasses.replace(chunk, done=chunk.done | (set(ids) - got))


def in_process(chunks: list[P.Chunk], on_epoch=None, timer=None, claim=None) -> Iterator[tuple[P.Chunk, ChunkResult]]:
    """The default executor: ``execute`` every chunk here, in order, making a chunk's data
    only when the last chunk's differ (and latch data from ``data.Families``).

    Args:
        on_epoch: optional ``(chunk, epoch)`` callback after every epoch.
        timer: optional ``provenance.Profile``.
        claim: optional ``chunk -> chunk or None``, asked just before a chunk trains: what
            of it to keep (``_claimed``: the members this process could claim), or skip it.
    """
    families = D.Families(chunks)
    warming = D.warm(chunks, families)  # the later set-up compilations, meanwhile
    made = (None, None)  # the last chunk's data, reused by the next chunk if it has the same
    try:
        for chunk in chunks:
            if claim is not None:
                chunk = claim(chunk)
                if chunk is None:
                    continue
            t0 = time.perf_counter()
            if made[0] != chunk.data_key:
                with train.span(timer, "data"):
                    made = (None, None)  # free the old data before making the new
                    made = (chunk.data_key, D.make_data(list(chunk.members), chunk.T_pad, families))
            step = (lambda e, c=chunk: on_epoch(c, e)) if on_epoch is not None else None
            hist = train_chunk(chunk, step, timer, made[1])
            yield chunk, _kept(chunk, hist, time.perf_counter() - t0)
    finally:
        if warming is not None:  # not compiling as the process exits
            warming.join()


def run(
    cfg: SweepConfig | list[SweepConfig],
    store=None,
    progress=None,
    timer=None,
    command: str = "",
    executor: Executor | None = None,
    cluster=None,
    say=None,
):
    """Run every member of ``cfg`` not yet in ``store``; return the members' epoch rows.

    Args:
        cfg: a sweep, or a list of sweeps run as one (their members share compiled
            ensembles wherever their shapes agree, e.g. initialisations of one cell).
        store: a ``Store``; finished chunks are written as they finish, and members already
            stored are skipped. Without a store, results are kept in memory only.
        progress: optional callable ``(advance_members_epochs, total)`` for progress bars.
        timer: optional ``provenance.Profile``.
        executor: optional callable that takes the planned chunks and yields
            ``(chunk, ChunkResult)`` as they finish, in any order (e.g. ``execute`` on other
            processes); default ``in_process``.
        cluster: a Dask cluster to train on instead (``cluster.parse``'s spec or its text:
            ``local[:N]``, ``tcp://HOST:PORT``, a TOML file with a ``[cluster]`` table); the
            chunks train on its workers and this process stores them.
        say: optional callable for one-line notes (the cluster's dashboard address).
    Returns:
        a DataFrame with one row per member per epoch (those of ``cfg``'s members only).
    Raises:
        LimitError: before anything is written, if the sweep's largest chunk or the whole
            sweep needs more memory than the machine has (``limits.check_sweep``).
    """
    limits.check_sweep(cfg)  # before the cluster starts, the sweep is recorded or a member is listed
    with _older_objects_unscanned():
        if cluster is not None:
            from latchlab.engine import cluster as CL

            with CL.executor(cluster, say) as ex:
                return _run(cfg, store, progress, timer, command, ex, say)
        return _run(cfg, store, progress, timer, command, executor, say)


@contextmanager
def _older_objects_unscanned():
    """While a sweep runs, the garbage collector leaves the objects made before it (the
    imported modules', JAX's: about 200 000) out of its full collections (``gc.freeze``):
    one such collection took 0.08 s of the seed sweep's 6.5 s. Unfrozen after, unless the
    process had frozen objects of its own before."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _run(cfg, store, progress, timer, command: str, executor: Executor | None, say=None):
    """``run`` once the sweep's limits are checked and its executor is chosen."""
    cfgs = list(cfg) if isinstance(cfg, (list, tuple)) else [cfg]
    members = list({m.id: m for c in cfgs for m in c.members()}.values())
    done = store.done() if store is not None else set()
    todo = [m for m in members if m.id not in done]
    total = sum(m.run.epochs for m in todo)
    sweep_id = None
    if store is not None and todo:
        name = cfgs[0].name if len(cfgs) == 1 else "+".join(dict.fromkeys(c.name for c in cfgs))
        config = cfgs[0].to_dict() if len(cfgs) == 1 else {"name": name, "sweeps": [c.to_dict() for c in cfgs]}
        sweep_id = store.add_sweep(name, config, provenance.collect(), command)
    if store is not None and todo and executor is not None:
        # chunks sent elsewhere all at once: claim every member now (in process, each
        # chunk claims its own members when its turn comes: ``_claimed``)
        granted = store.claim([m.id for m in todo])
        done = done | {m.id for m in todo if m.id not in granted}
        todo = [m for m in todo if m.id in granted]
    # planned over every member, finished or not, so a member's padding (and so its numbers)
    # do not depend on what was already done
    finished = frozenset(m.id for m in members if m.id in done)
    # a cluster's executor asks for the native members cut by seed, a part per worker
    chunks = P.plan(members, done=finished, parts=getattr(executor, "parts", 1)) if todo else []
    if executor is None:
        on_epoch = (lambda c, e: progress(len(c.wanted), total)) if progress else None
        results = in_process(chunks, on_epoch, timer, (lambda c: _claimed(c, store)) if store is not None else None)
    else:
        results = executor(chunks)
    rows = []
    for chunk, res in results:
        kept = [chunk.members[i] for i in chunk.wanted]
        if tuple(m.id for m in kept) != res.ids:
            raise ValueError(f"the executor returned members {res.ids[:3]}... for a chunk of {kept[0].id}...")
        if executor is not None and progress:
            progress(len(kept) * chunk.members[0].run.epochs, total)
        with train.span(timer, "store"):
            if store is not None:
                store.write(sweep_id, kept, res.history, res.seconds, worker=res.worker)
            else:
                rows.append((kept, res.history, res.seconds / len(kept)))
    if store is not None:
        if store.wait({m.id for m in members}, say=say):  # members whose claiming process died: train them here
            return _run(cfg, store, progress, timer, command, executor, say)
        df = store.epochs()
        return df[df.member_id.isin({m.id for m in members})].reset_index(drop=True)
    return frame(rows)


def frame(results) -> pd.DataFrame:
    """Epoch rows (as the store holds them) from in-memory ``(members, History[, seconds])``:
    one row per member per epoch, a member's epochs together, members in the given order.

    Each member's fields are read once and repeated over its epochs, and the metrics go in
    as columns (a row at a time, the 67 500 rows of the ablations took 0.5 s)."""
    import json

    import pandas as pd

    bases, epochs, metrics = [], [], []
    runs: dict[int, dict] = {}  # a run's fields by id: a grid point's members share their run
    for members, hist, *seconds in results:
        E = hist.val_acc.shape[0]
        for m in members:
            fields = runs.get(id(m.run))
            if fields is None:
                fields = runs[id(m.run)] = m.run.to_dict()
                fields["values"] = json.dumps(fields["values"], sort_keys=True)
            base = {"member_id": m.id, "sweep_id": None, "seed": m.seed, **fields}
            base["seconds"] = seconds[0] if seconds else float("nan")
            bases.append(base)
            epochs.append(E)
        metrics.append(np.stack([np.asarray(a, np.float64) for a in hist[:4]], -1).transpose(1, 0, 2).reshape(-1, 4))
    if not bases:
        return pd.DataFrame()
    per_member = pd.DataFrame.from_records(bases)
    df = per_member.loc[per_member.index.repeat(epochs)].reset_index(drop=True)
    df["epoch"] = np.concatenate([np.arange(1, e + 1) for e in epochs])
    cols = np.concatenate(metrics)  # (rows, 4): train_loss, train_acc, val_loss, val_acc
    for k, name in enumerate(("train_loss", "train_acc", "val_loss", "val_acc")):
        df[name] = cols[:, k]
    return df
