"""Plan a sweep: its members grouped into chunks, each with the backend that trains it.

Members that share every shape-defining setting (model, optimiser, batch size, epochs, N,
split) form a group, and a group's backend is chosen once (``train.choose_mode``) after
asking the native module whether its kernels are available here, building them if needed:
a kernel that fails to build is planned for (one warning line names the path that runs
instead), so chunks are always shaped for the backend that trains them. On the XLA
backends, sequence lengths are bucketed (shorter sequences are left-padded and masked) so
that a sweep compiles once per bucket, not once per length, and a bucket is cut into equal
chunks small enough to stay in cache; the native kernels take chunks of members sorted by
seed, then length.

A member's numbers depend on the chunk it trains in on the XLA backends (the padded length
and the number of members change how XLA rounds, by about 1e-7), so a resumed sweep is
planned as the original was: from all of its members, finished ones included. Chunks whose
members are all finished are left out; a chunk with some finished members trains whole and
only its unfinished members are kept (``Chunk.wanted``). The native kernels train each
member alone in its SIMD lanes, so there only the unfinished members are planned.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jax
import numpy as np

from latchlab import limits
from latchlab.config import Member, RunConfig
from latchlab.engine import native, train

log = logging.getLogger("latchlab")

# chunk sizes: rows (members x batch) per device in one compiled XLA step, and members
# per native chunk, declared with the estimate of what a chunk needs (``latchlab.limits``)
ROWS_PER_DEVICE = limits.ROWS_PER_DEVICE
# A bucket's fixed cost (its compilation, about 2 s) in member-steps of 5-epoch training.
BUCKET_COMPILE = 1500
# Members per chunk for the native kernels, which compile nothing per shape and read
# unpadded rows: lengths need no buckets. ``data.PREP_STACK`` members: the set-up functions
# (keys, initial parameters) then compile one shape for every chunk (chunks of 256 cost
# two more compilations, ~1.5 s cold, and trained no faster).
NATIVE_CHUNK = limits.NATIVE_CHUNK


@dataclass(frozen=True)
class Chunk:
    """Members trained together by one backend (``pad`` trailing duplicates), a picklable
    value: ``run.execute`` trains it from its members' seeds alone.

    Attributes:
        members: the members, padding included.
        T_pad: the length their sequences are left-padded to.
        pad: how many trailing members are copies of the last real one.
        backend: ``train.backend``'s object that trains the chunk.
        done: ids of members already finished (trained again, not kept).
        part: which of ``plan``'s ``parts`` its members' seeds belong to (a cluster sends
            a part's chunks to one worker, so that each seed's data are drawn once).
    """

    members: tuple[Member, ...]
    T_pad: int
    backend: train.XLA | train.Native
    pad: int = 0
    done: frozenset = frozenset()
    part: int = 0

    @property
    def wanted(self) -> tuple[int, ...]:
        """Positions of the members whose results are kept: real and not finished."""
        return tuple(i for i, m in enumerate(self.members[: len(self.members) - self.pad]) if m.id not in self.done)

    @property
    def data_key(self):
        """What the chunk's data depend on: equal keys, equal ``make_data`` results."""
        return (self.T_pad,) + tuple(
            (m.run.task, m.run.T, m.run.noise, m.run.signal_len, m.run.N, m.run.val_frac, m.run.split, m.seed)
            for m in self.members
        )


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
        out.append(Ts[cut[j] : j])
        j = cut[j]
    return out[::-1]


def _group_key(run: RunConfig):
    # the split changes which indices, not how many: both splits share compiled shapes
    return (run.task, run.model, run.optimizer, run.batch_size, run.epochs, run.N, run.val_frac)


def backends(runs: list[RunConfig]) -> dict:
    """``(model, optimizer, batch size) -> train.backend`` for every group of ``runs``.

    The native kernels' variants these runs could use are built first, in parallel
    (a compiler process each, ~1.1 s, nothing once cached); the choice is then
    ``train.choose_mode``'s. A variant that fails to build logs one warning line naming
    the backend that trains instead.
    """
    keys = list(dict.fromkeys((r.model, r.optimizer, r.batch_size) for r in runs))
    wanted = [(m, o) for m, o, _ in keys if native.available(m, o, build=False)]
    variants = {native.variant(m): (m, o) for m, o in wanted}
    if variants:
        with ThreadPoolExecutor(len(variants)) as pool:
            list(pool.map(lambda mo: train.native_ok(*mo), variants.values()))
    out, warned = {}, set()
    for model, optimizer, batch_size in keys:
        spec = train.Spec.for_model(model, optimizer, batch_size)
        out[(model, optimizer, batch_size)] = train.backend(spec)
        if spec.mode != "native" and (model, optimizer) in wanted and native.variant(model) not in warned:
            warned.add(native.variant(model))
            log.warning(
                "native kernels unavailable for %s (%s): %s; training with %s on XLA instead",
                model.cell.kind,
                model.cell.rsig,
                _build_error(model),
                train.BACKEND_NAMES[spec.mode],
            )
    return out


def _build_error(model) -> str:
    try:
        native.lib(native.variant(model))
    except RuntimeError as e:
        return str(e)
    return "not loaded"


def plan(
    members: list[Member], rows_per_device: int = ROWS_PER_DEVICE, done=frozenset(), parts: int = 1
) -> list[Chunk]:
    """Chunks covering the members of ``members`` not in ``done``, in a deterministic order
    that depends on ``members`` only (``done`` leaves chunks out, it does not reshape them).

    Args:
        members: every member of the sweep, finished ones included.
        rows_per_device: members x batch rows per device in one compiled step (XLA).
        done: ids of finished members.
        parts: for a cluster of that many workers: the native kernels' members are cut
            into this many parts by seed (``Chunk.part``) before chunking, so that a worker
            given one part's chunks draws only its seeds' data. A native member's numbers
            do not depend on its chunk; XLA chunks are planned as without parts (their
            padding is part of their numbers).
    """
    n_dev = jax.local_device_count()
    groups = defaultdict(list)
    for m in members:
        groups[_group_key(m.run)].append(m)
    chosen = backends([g[0].run for g in groups.values()])
    chunks = []
    for group in groups.values():
        run = group[0].run
        bk = chosen[(run.model, run.optimizer, run.batch_size)]
        if isinstance(bk, train.Native):
            for i, part in enumerate(_by_seed(group, parts)):
                chunks += _native_chunks([m for m in part if m.id not in done], bk, i)
            continue
        cap = limits.chunk_members(run.batch_size, n_dev, rows_per_device)
        counts = defaultdict(int)
        for m in group:
            counts[m.run.T] += 1
        for bucket in buckets(counts, cap, BUCKET_COMPILE * 5 / run.epochs):
            ms = [m for m in group if m.run.T in bucket]
            k = -(-len(ms) // cap)
            size = -(-len(ms) // k)  # equal chunks: one compiled shape per bucket
            size = -(-size // n_dev) * n_dev  # members split evenly over devices
            for i in range(k):
                part = ms[i * size : (i + 1) * size]
                pad = size - len(part)
                finished = frozenset(m.id for m in part if m.id in done)
                if len(finished) < len(part):
                    chunks.append(Chunk(tuple(part + [part[-1]] * pad), max(bucket), bk, pad, finished))
    # chunks that train on the same data (e.g. the same seeds and lengths for each cell)
    # run one after the other, so that ``run`` makes their data once
    first = {}
    for i, c in enumerate(chunks):
        first.setdefault(c.data_key, i)
    return sorted(chunks, key=lambda c: first[c.data_key])


def _by_seed(group: list[Member], parts: int) -> list[list[Member]]:
    """``group`` in ``parts`` parts (fewer if it has fewer seeds): the i-th smallest seed in part i mod parts."""
    seeds = sorted({m.seed for m in group})
    where = {s: i % parts for i, s in enumerate(seeds)}
    return [[m for m in group if where[m.seed] == p] for p in range(min(parts, len(seeds)) or 1)]


def _native_chunks(group: list[Member], bk: train.Native, part: int = 0) -> list[Chunk]:
    if not group:
        return []
    # a seed's members share the kernel's blocks, shortest first: they read one family of
    # sequences (``data.Families``), whose rows then stay in the TLB and caches (sorted by
    # length alone, a block read 8 seeds' rows at random: the seed sweep trained in 8.6-8.7 s
    # instead of 7.0-7.3, validated in 1.6 instead of 1.3; docs/benchmarks.md)
    ms = sorted(group, key=lambda m: (m.seed, m.run.T))
    k = -(-len(ms) // NATIVE_CHUNK)
    size = -(-len(ms) // k)
    return [
        Chunk(tuple(c), max(m.run.T for m in c), bk, part=part)
        for c in (ms[i * size : (i + 1) * size] for i in range(k))
    ]
