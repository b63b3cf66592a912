"""Plan and run a sweep: members grouped into compiled ensembles, results into a store.

Planning: members that share every shape-defining setting (model, optimiser, batch size,
epochs, N, split) form a group; within a group, sequence lengths are bucketed (shorter
sequences are left-padded and masked) so that a sweep compiles once per bucket, not once
per length; a bucket is cut into equal chunks small enough to stay in cache.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from latchlab.core import model as M
from latchlab import provenance
from latchlab.engine import native
from latchlab.core import tasks
from latchlab.engine import train
from latchlab.config import Member, RunConfig, SweepConfig

# Rows (members x batch) per device in one compiled step. Per-row cost on XLA:CPU is
# lowest up to about this many rows and grows faster than linearly beyond (bench/modes.py).
ROWS_PER_DEVICE = 512
# A bucket's fixed cost (its compilation, about 2 s) in member-steps of 5-epoch training.
BUCKET_COMPILE = 1500


@dataclass
class Chunk:
    """Members trained together in one compiled ensemble (``pad`` trailing duplicates)."""

    members: list[Member]
    T_pad: int
    pad: int = 0

    @property
    def data_key(self):
        """What the chunk's data depend on: equal keys, equal ``make_data`` results."""
        return (self.T_pad,) + tuple((m.run.task, m.run.T, m.run.noise, m.run.signal_len, m.run.N,
                                      m.run.val_frac, m.run.split, m.seed) for m in self.members)


def buckets(lengths: dict[int, int], cap: int, per_bucket: float = BUCKET_COMPILE) -> list[list[int]]:
    """Group sorted lengths into buckets minimising the modelled cost
    ``sum over buckets (per_bucket + T_max * cap * ceil(members / cap))``: every chunk of
    up to ``cap`` members costs as much as a full one, and every bucket compiles once.

    Args:
        lengths: length -> number of members with it.
        cap: members per chunk.
        per_bucket: fixed cost of a bucket in member-steps.
    Returns:
        lists of lengths, each padded to its largest.
    """
    Ts = sorted(lengths)
    best = [0.0] + [np.inf] * len(Ts)  # best[j]: cost of Ts[:j]
    cut = [0] * (len(Ts) + 1)
    for j in range(1, len(Ts) + 1):
        n = 0
        for i in range(j - 1, -1, -1):
            n += lengths[Ts[i]]
            c = best[i] + per_bucket + Ts[j - 1] * cap * -(-n // cap)
            if c < best[j]:
                best[j], cut[j] = c, i
    out, j = [], len(Ts)
    while j > 0:
        out.append(Ts[cut[j]:j])
        j = cut[j]
    return out[::-1]


def _group_key(run: RunConfig):
    # the split changes which indices, not how many: both splits share compiled shapes
    return (run.task, run.model, run.optimizer, run.batch_size, run.epochs, run.N, run.val_frac)


def plan(members: list[Member], rows_per_device: int = ROWS_PER_DEVICE) -> list[Chunk]:
    """Chunks covering ``members``, in a deterministic order."""
    n_dev = jax.local_device_count()
    groups = defaultdict(list)
    for m in members:
        groups[_group_key(m.run)].append(m)
    chunks = []
    for group in groups.values():
        run = group[0].run
        if native.supports(run.model, run.optimizer) and native.enabled():
            chunks += _native_chunks(group)
            continue
        cap = n_dev * max(1, rows_per_device // run.batch_size)
        counts = defaultdict(int)
        for m in group:
            counts[m.run.T] += 1
        for bucket in buckets(counts, cap, BUCKET_COMPILE * 5 / run.epochs):
            ms = [m for m in group if m.run.T in bucket]
            k = -(-len(ms) // cap)
            size = -(-len(ms) // k)  # equal chunks: one compiled shape per bucket
            size = -(-size // n_dev) * n_dev  # members split evenly over devices
            for i in range(k):
                part = ms[i * size:(i + 1) * size]
                pad = size - len(part)
                chunks.append(Chunk(part + [part[-1]] * pad, max(bucket), pad))
    # chunks that train on the same data (e.g. the same seeds and lengths for each cell)
    # run one after the other, so that ``run`` makes their data once
    first = {}
    for i, c in enumerate(chunks):
        first.setdefault(c.data_key, i)
    return sorted(chunks, key=lambda c: first[c.data_key])


# Members per chunk for the native kernels, which compile nothing per shape and read
# unpadded rows: lengths need no buckets. PREP_STACK members: the set-up functions
# (keys, initial parameters) then compile one shape for every chunk (chunks of 256 cost
# two more compilations, ~1.5 s cold, and trained no faster).
NATIVE_CHUNK = 64


def _native_chunks(group: list[Member]) -> list[Chunk]:
    ms = sorted(group, key=lambda m: m.run.T)  # members of a length share blocks of the kernel
    k = -(-len(ms) // NATIVE_CHUNK)
    size = -(-len(ms) // k)
    return [Chunk(part, max(m.run.T for m in part)) for part in (ms[i * size:(i + 1) * size] for i in range(k))]


def member_keys(seed: int):
    """A member's ``(data, split, init)`` PRNG keys, all derived from its seed."""
    return jax.random.split(jax.random.PRNGKey(seed), 3)


# set-up functions whose run time is negligible compile without LLVM's optimisations
# (about a third less compile time, measured on the initialiser: 0.70 against 1.04 s)
_QUICK_COMPILE = {"xla_backend_optimization_level": 0}
_member_keys_jit = jax.jit(jax.vmap(member_keys), compiler_options=_QUICK_COMPILE)
# the per-member set-up functions (keys, initial parameters, the split) run on stacks
# padded to a multiple of this, so that chunks of different sizes share one compilation
# (~1 s each)
PREP_STACK = 64


def _on_padded_stack(f, *arrays, split: bool = True):
    """``f(*arrays)`` for per-member functions ``f`` (leading axis R), run on stacks padded
    to a multiple of ``PREP_STACK`` rows, split over the devices unless ``split`` is False;
    returns host arrays of the first R rows."""
    n = len(arrays[0])
    pad = -n % PREP_STACK
    padded = [np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) for a in map(np.asarray, arrays)]
    out = f(*jax.device_put(padded, train.member_sharding(n + pad) if split else jax.devices()[0]))
    return jax.tree.map(lambda a: np.asarray(a)[:n], out)


def _member_keys(seeds) -> np.ndarray:
    """(R, 3, 2) ``member_keys`` of every seed, as a host array."""
    return _on_padded_stack(_member_keys_jit, np.asarray(seeds, np.uint32))


@partial(jax.jit, static_argnames=("task", "n", "pad_to"))
def _chunk_sequences(keys, T, noise, signal_len, task, n, pad_to):
    gen = tasks.PADDED[task]

    def one(args):
        k, T, noise, L = args
        x, y = gen(k[0], n, T, noise, L, pad_to)
        return x, y, tasks._steps(T, pad_to)[1]

    # one member at a time on each device: a vmap over all members would hold every
    # member's random bits and intermediates at once (4-5 times the data's size)
    R, D = keys.shape[0], train.devices_for(keys.shape[0])
    per_device = jax.tree.map(lambda a: a.reshape((D, R // D) + a.shape[1:]), (keys, T, noise, signal_len))
    out = jax.vmap(lambda a: jax.lax.map(one, a))(per_device)
    return jax.tree.map(lambda a: a.reshape((R,) + a.shape[2:]), out)


@partial(jax.jit, static_argnames=("n_val", "n_pos"))
def _chunk_splits(keys, y, tail, n_val, n_pos):
    # apart from the sequences: the split's shapes do not depend on the length bucket, so
    # it compiles once per sweep instead of once per bucket
    tr, va = jax.vmap(lambda k, y, t: tasks.split(k[1], y, n_val, n_pos, t))(keys, y, tail)
    return tr.astype(jnp.int32), va.astype(jnp.int32)


def _split_sizes(run: RunConfig) -> tuple[int, int]:
    """(n_val, n_pos) of a member's split: the generators make exactly N // 2 positives."""
    n, vf = run.N, run.val_frac
    n_val = n - int(n * (1.0 - vf))
    return n_val, int(round(n_val * (n // 2) / n))


def make_data(members: list[Member], T_pad: int, families: Families | None = None) -> train.Data:
    """Every member's data set, left-padded to ``T_pad``, made on the devices in one call
    (or cut on the host from ``families``, each seed's longest sequences, where the task
    allows).

    A member's sequences depend only on its (task, T, noise, signal_len, N) and seed (not on
    ``T_pad``: see ``tasks``), and its split on (val_frac, split) and seed; so members that
    differ in cell, initialisation or learning rate see the same sequences.
    """
    if families is not None and families.covers(members):
        return families.cut(members, T_pad)
    run = members[0].run
    n_val, n_pos = _split_sizes(run)
    sharding = train.member_sharding(len(members))
    col = lambda f, dt: jax.device_put(np.array([f(m) for m in members], dt), sharding)  # noqa: E731
    keys = _member_keys([m.seed for m in members])
    x, y, mask = _chunk_sequences(jax.device_put(keys, sharding), col(lambda m: m.run.T, np.int32),
                                  col(lambda m: m.run.noise, np.float32), col(lambda m: m.run.signal_len, np.int32),
                                  task=run.task, n=run.N, pad_to=T_pad)
    tail = np.array([m.run.split == "tail" for m in members])
    splits = _on_padded_stack(partial(_chunk_splits, n_val=n_val, n_pos=n_pos), keys, y, tail)
    tr, va = jax.device_put(splits, sharding)
    return train.Data(x, y, mask, tr, va)


def _host_rows(a) -> list[np.ndarray]:
    """The rows (leading axis) of a member-sharded array as host arrays, without copies: on
    a CPU each shard is host memory already (``np.asarray`` of the whole array gathered the
    shards into a new array, 0.5 s for a sweep's 240 MB of sequences)."""
    rows = [None] * a.shape[0]
    for shard in a.addressable_shards:
        part = np.asarray(shard.data)
        for i, r in enumerate(range(*shard.index[0].indices(a.shape[0]))):
            rows[r] = part[i]
    return rows


# tasks whose length-T sequences are the first T steps of the same key's longer ones
# (``tasks``: step t's noise comes from ``fold_in(key, t)``)
PREFIX_TASKS = ("latch",)


def _family(m: Member):
    r = m.run
    return (r.task, r.noise, r.signal_len, r.N, m.seed)


class Families:
    """Each seed's longest sequences, labels and splits, made once for a whole sweep.

    For ``PREFIX_TASKS`` a member's data are the first T steps of its seed's longest
    sequences, so a sweep over lengths draws each seed's noise once instead of once per
    member (and its split once per (val_frac, split)). A family is made when a chunk first
    needs it and freed after the last chunk that needs it.
    """

    def __init__(self, chunks: list[Chunk]):
        self.T, self.uses = defaultdict(int), defaultdict(int)
        last = None
        for c in chunks:
            for m in c.members:
                if m.run.task in PREFIX_TASKS:
                    self.T[_family(m)] = max(self.T[_family(m)], m.run.T)
            if c.data_key != last:  # ``run`` makes a chunk's data unless the last chunk's fit
                for f in {_family(m) for m in c.members}:
                    self.uses[f] += 1
            last = c.data_key
        self.seq, self.splits = {}, {}

    def covers(self, members: list[Member]) -> bool:
        return all(_family(m) in self.T for m in members)

    def _make(self, fams) -> None:
        by_shape = defaultdict(list)
        for f in dict.fromkeys(fams):
            if f not in self.seq:
                by_shape[f[:4] + (self.T[f],)].append(f)
        for (task, noise, signal_len, n, T), fs in by_shape.items():
            # a stack the devices divide (an odd one ran on one core): repeats of the last seed
            seeds = [f[4] for f in fs] + [fs[-1][4]] * (-len(fs) % jax.local_device_count())
            keys = _member_keys(seeds)
            sharding = train.member_sharding(len(seeds))
            put = lambda a: jax.device_put(a, sharding)  # noqa: E731
            x, y, _ = _chunk_sequences(put(keys), put(np.full(len(seeds), T, np.int32)),
                                       put(np.full(len(seeds), noise, np.float32)),
                                       put(np.full(len(seeds), signal_len, np.int32)), task=task, n=n, pad_to=T)
            x, y = _host_rows(x), _host_rows(y)
            for i, f in enumerate(fs):
                self.seq[f] = (x[i][..., 0], y[i], keys[i])

    def cut(self, members: list[Member], T_pad: int) -> train.Data:
        fams = [_family(m) for m in members]
        self._make(fams)
        lengths = np.array([m.run.T for m in members])
        x = native.Rows([self.seq[f][0] for f in fams], lengths, T_pad)  # padded by train.fit if needed
        y = np.stack([self.seq[f][1] for f in fams])
        mask = np.arange(T_pad)[None, :] >= T_pad - lengths[:, None]
        tr, va = self._splits(members, fams)
        for f in dict.fromkeys(fams):  # free what no later chunk needs
            self.uses[f] -= 1
            if self.uses[f] == 0:
                self.seq.pop(f, None)
                for k in [k for k in self.splits if k[0] == f]:
                    del self.splits[k]
        return train.Data(x, y, mask, tr, va)  # host arrays: ``train.fit`` places them

    def _splits(self, members, fams):
        keys = [(f, m.run.val_frac, m.run.split) for m, f in zip(members, fams)]
        missing = defaultdict(list)
        for k, m in zip(keys, members):
            if k not in self.splits:
                missing[_split_sizes(m.run)].append(k)
        for (n_val, n_pos), ks in missing.items():
            ks = list(dict.fromkeys(ks))
            tr, va = _on_padded_stack(partial(_chunk_splits, n_val=n_val, n_pos=n_pos),
                                      np.stack([self.seq[k[0]][2] for k in ks]),
                                      np.stack([self.seq[k[0]][1] for k in ks]), np.array([k[2] == "tail" for k in ks]))
            for i, k in enumerate(ks):
                self.splits[k] = (tr[i], va[i])
        return np.stack([self.splits[k][0] for k in keys]), np.stack([self.splits[k][1] for k in keys])


@partial(jax.jit, static_argnums=(0, 1, 2), compiler_options=_QUICK_COMPILE)
def _init(model, scheme, values, keys, t_max):
    return jax.vmap(lambda k, t: M.init(k, model, scheme, dict(values), t))(keys, t_max)


def init_members(members: list[Member]):
    """Stacked initial parameters (leading axis R), each from its member's own seed.

    Host-side numpy between the few compiled calls: eager JAX ops cost milliseconds each.
    """
    model = members[0].run.model
    keys = _member_keys([m.seed for m in members])[:, 2]
    t_max = np.array([m.run.T for m in members], np.float32)
    subsets = defaultdict(list)
    for r, m in enumerate(members):
        subsets[(m.run.init, m.run.values)].append(r)
    params = None
    for (scheme, values), rs in subsets.items():
        # on one device: split over two host devices, the orthogonal initialiser's QR (a
        # LAPACK call XLA cannot partition) deadlocked XLA:CPU from 16 units on
        part = _on_padded_stack(partial(_init, model, scheme, values), keys[rs], t_max[rs], split=False)
        if params is None:
            params = jax.tree.map(lambda a: np.zeros((len(members),) + a.shape[1:], a.dtype), part)
        for dst, src in zip(jax.tree.leaves(params), jax.tree.leaves(part)):
            dst[rs] = src
    return params


def _warm_up(chunks: list[Chunk]) -> list[threading.Thread]:
    """Start building the native kernels' variants that the chunks use (a compiler process
    each, ~1.1 s), in threads beside the main one's data making (``native_ok`` records a
    failed build instead of raising). JAX work stays in the main thread: multi-device
    programs run from two threads can wait on each other."""
    models = dict.fromkeys((c.members[0].run.model, c.members[0].run.optimizer) for c in chunks)
    threads = [threading.Thread(target=train.native_ok, args=mo, daemon=True) for mo in models]
    for t in threads:
        t.start()
    return threads


def train_chunk(chunk: Chunk, on_epoch=None, timer=None, data=None) -> train.History:
    """Train one chunk's members together (on ``data`` if given: ``make_data``'s result)."""
    members = chunk.members
    run = members[0].run
    with train.span(timer, "data"):
        if data is None:
            data = make_data(members, chunk.T_pad)
        params = init_members(members)
    spec = train.Spec.for_model(run.model, run.optimizer, run.batch_size)
    lr = np.array([m.run.lr for m in members], np.float32)
    seeds = np.array([m.seed for m in members])
    return train.fit(spec, params, data, lr, seeds, run.epochs, on_epoch, timer)


def run(cfg: SweepConfig | list[SweepConfig], store=None, progress=None, timer=None, command: str = "",
        cluster=None, say=None):
    """Run every member of ``cfg`` not yet in ``store``; return the members' epoch rows.

    Args:
        cfg: a sweep, or a list of sweeps run as one (their members share compiled
            ensembles wherever their shapes agree, e.g. initialisations of one cell).
        store: a ``Store``; finished chunks are written as they finish, and members already
            stored are skipped. Without a store, results are kept in memory only.
        progress: optional callable ``(advance_members_epochs, total)`` for progress bars.
        timer: optional ``provenance.Profile``.
        cluster: optional ``cluster.ClusterSpec`` or ``--cluster`` text: the chunks train
            on a Dask cluster (``latchlab.engine.cluster``) and this process stores them.
        say: optional callable for one-line notes (the cluster's dashboard address).
    Returns:
        a DataFrame with one row per member per epoch (those of ``cfg``'s members only).
    """
    cfgs = list(cfg) if isinstance(cfg, (list, tuple)) else [cfg]
    members = [m for c in cfgs for m in c.members()]
    done = store.done() if store is not None else set()
    todo = list({m.id: m for m in members if m.id not in done}.values())
    total = sum(m.run.epochs for m in todo)
    rows = []
    sweep_id = None
    if store is not None and todo:
        name = cfgs[0].name if len(cfgs) == 1 else "+".join(dict.fromkeys(c.name for c in cfgs))
        config = cfgs[0].to_dict() if len(cfgs) == 1 else {"name": name, "sweeps": [c.to_dict() for c in cfgs]}
        sweep_id = store.add_sweep(name, config, provenance.collect(), command)
    made = (None, None)  # the last chunk's data, reused by the next chunk if it has the same
    chunks = plan(todo)
    if cluster is not None and chunks:  # (nothing to train: no cluster started)
        from latchlab.engine import cluster as CL

        with CL.executor(cluster, say) as execute:
            for chunk, res in execute(chunks):
                real, hist = chunk.members[:len(chunk.members) - chunk.pad], train.History(*res.history)
                if progress:
                    progress(len(real) * real[0].run.epochs, total)
                with train.span(timer, "store"):
                    if store is not None:
                        CL.record(store, real, res.worker)
                        store.write(sweep_id, real, hist, res.seconds)
                    else:
                        rows.append((real, hist, res.seconds / len(real)))
        chunks = []
    families = Families(chunks)
    warm = _warm_up(chunks)
    for chunk in chunks:
        n_real = len(chunk.members) - chunk.pad
        t0 = time.perf_counter()
        if made[0] != chunk.data_key:
            with train.span(timer, "data"):
                made = (None, None)  # free the old data before making the new
                made = (chunk.data_key, make_data(chunk.members, chunk.T_pad, families))
        hist = train_chunk(chunk, (lambda e: progress(n_real, total)) if progress else None, timer, made[1])
        real = chunk.members[:n_real]
        hist = train.History(*(a[:, :n_real] for a in hist[:4]),
                             [jax.tree.map(lambda a: a[:n_real], p) for p in hist.params])
        with train.span(timer, "store"):
            if store is not None:
                store.write(sweep_id, real, hist, time.perf_counter() - t0)
            else:
                rows.append((real, hist, (time.perf_counter() - t0) / len(real)))
    for t in warm:
        t.join()
    if store is not None:
        df = store.epochs()
        return df[df.member_id.isin({m.id for m in members})].reset_index(drop=True)
    return frame(rows)


def frame(results) -> "pd.DataFrame":
    """Epoch rows (as the store holds them) from in-memory ``(members, History)`` pairs."""
    import json

    import pandas as pd

    recs = []
    for members, hist, *seconds in results:
        for r, m in enumerate(members):
            base = {"member_id": m.id, "sweep_id": None, "seed": m.seed, **m.run.to_dict(),
                    "seconds": seconds[0] if seconds else float("nan")}
            base["values"] = json.dumps(base["values"], sort_keys=True)
            for e in range(hist.val_acc.shape[0]):
                recs.append({**base, "epoch": e + 1, "train_loss": float(hist.train_loss[e, r]),
                             "train_acc": float(hist.train_acc[e, r]), "val_loss": float(hist.val_loss[e, r]),
                             "val_acc": float(hist.val_acc[e, r])})
    return pd.DataFrame.from_records(recs)


def sweep(config, store=None, progress: bool = False, cluster=None) -> "pd.DataFrame":
    """Run a sweep from a notebook: ``latchlab.sweep(config) -> DataFrame``.

    Args:
        config: a ``SweepConfig``, a TOML-shaped dict (as ``config.from_dict`` takes), a
            path to a TOML file, or a list of these (run as one sweep).
        store: optional path of a results store: finished members are reused and new ones
            written (without one, results stay in memory).
        progress: show a progress bar (rich) over member-epochs.
        cluster: optional Dask cluster to train on: ``"local:N"``, ``"tcp://HOST:PORT"`` or
            a TOML file with a ``[cluster]`` table (``latchlab.engine.cluster``).
    Returns:
        one row per member per epoch, the rows a store holds (``Store.epochs``).
    """
    from pathlib import Path

    from latchlab import config as C
    from latchlab import runtime
    from latchlab.store import Store

    runtime.setup()

    def load(c):
        if isinstance(c, SweepConfig):
            return c
        if isinstance(c, (str, Path)):
            return C.load(c)
        return C.from_dict(c)

    cfgs = [load(c) for c in config] if isinstance(config, list) else load(config)
    with progress_bar() if progress else nullcontext() as advance:
        if store is None:
            return run(cfgs, None, advance, cluster=cluster, say=print)
        with Store(store) as st:
            return run(cfgs, st, advance, cluster=cluster, say=print)


@contextmanager
def progress_bar(console=None):
    """A rich progress bar over member-epochs; yields ``run``'s ``progress`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("member-epochs"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("train", total=None)
        yield lambda n, total: bar.update(task, total=total, advance=n)
