"""What a piece of work will need, estimated before it starts, and the refusal of what cannot fit.

A sweep's memory is estimated from its configuration alone (no JAX, no member list): for
the largest chunk ``engine.plan`` will make (its data sets, every epoch's shuffles, every
epoch's parameter snapshots, a training step's activations, the optimiser's state) and for
the whole sweep (the largest chunk, plus what every member costs to track and its epoch
rows read back from the store); its time roughly, from ``STEP_SECONDS`` per member-sequence
step. ``check_sweep`` raises ``LimitError`` (one line: the estimate and the limit) when
either memory estimate exceeds ``memory_limit()``: the machine's physical memory (or the
process's cgroup limit, if lower), or ``$LATCHLAB_MEMORY_LIMIT`` (``8G``, ``512M``, bytes).
``check_landscape`` does the same for ``latchlab landscape``'s grid, and ``check`` for any
work given its memory by part (the reproductions that train outside the engine:
``bengio1994``, ``guessing``, ``pascanu2013``).

The estimates are upper bounds within a small factor (the terms below), not measurements:
they exist to stop what cannot run (a length of 10^9, 10^12 sequences, a million units) in
a second, not to pack memory tightly. ``engine.plan`` takes its chunk sizes from
``chunk_members`` here, so the estimate and the plan share one rule.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from latchlab.core import catalog
from latchlab.errors import ConfigError, LimitError

# ----------------------------------------------------------------------------- the plan's chunk sizes

ROWS_PER_DEVICE = 512
"""Rows (members x batch) per device in one compiled XLA step. Per-row cost on XLA:CPU is
lowest up to about this many rows and grows faster than linearly beyond (bench/modes.py)."""
NATIVE_CHUNK = 64
"""Members per chunk for the native kernels (``engine.plan``)."""


def chunk_members(batch_size: int, n_devices: int, rows_per_device: int = ROWS_PER_DEVICE) -> int:
    """Members per chunk on the XLA backends: ``rows_per_device`` rows (members x batch) on
    every device, and at least one member per device."""
    return n_devices * max(1, rows_per_device // batch_size)


# ----------------------------------------------------------------------------- the limit

ENV = "LATCHLAB_MEMORY_LIMIT"
_SUFFIX = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def machine_memory() -> int:
    """Physical memory in bytes (``/proc/meminfo``'s MemTotal, else ``os.sysconf``), or the
    cgroup v2 limit of this process's group where that is lower."""
    total = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if not total:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 2**40  # unknown: only the absurd is refused
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            total = min(total, int(text))
    except OSError:
        pass
    return total


def memory_limit() -> int:
    """The bytes a piece of work may plan for: ``$LATCHLAB_MEMORY_LIMIT`` if set (a number of
    bytes, or with a suffix K, M, G or T: ``8G``), else ``machine_memory()``."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return machine_memory()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, re.I)
    if m is None or float(m.group(1)) <= 0:
        raise ConfigError(ENV, f"must be a size such as 8G, 512M or a number of bytes, got {text!r}")
    return int(float(m.group(1)) * _SUFFIX[m.group(2).upper()])


def size(n: float) -> str:
    """Bytes as ``12.3 GB`` (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError


def duration(s: float) -> str:
    """Seconds as ``40 s``, ``3.2 min``, ``5.1 h`` or ``2.3e+04 days``."""
    if s < 90:
        return f"{s:.2g} s"
    if s < 5400:
        return f"{s / 60:.2g} min"
    if s < 2 * 86400:
        return f"{s / 3600:.2g} h"
    return f"{s / 86400:.2g} days"


# ----------------------------------------------------------------------------- sweeps

STEP_SECONDS = 1e-8
"""Rough seconds per member-sequence step (one step of one sequence, trained and
validated) of a cell with up to ``STEP_WORK`` multiply-adds per step, on one core of
XLA:CPU; a bigger cell costs proportionally more. Within a factor of a few (the native
kernels are faster, big batches of big cells slower)."""
STEP_WORK = 8
MEMBER_BYTES = 1024
"""What tracking one member costs in memory (its ``Member`` and id, its place in the
plan's lists and the store's sets)."""
ROW_BYTES = 512
"""One epoch row of the frame ``engine.run.run`` returns (read back from the store)."""
F32 = 4


def _n_params(cell: str, units: int, n_in: int, head_out: int, preset: str) -> int:
    G, H = len(catalog.GATES[cell]), units
    split_bias = cell == "gru" and catalog.PRESETS[preset][1]
    return G * H * (n_in + H) + G * H * (2 if split_bias else 1) + H * head_out + head_out


HEAD_OUT = {"dense2": 2, "dense1": 1, "linear": 1, "seq_softmax": catalog.COPY_CATEGORIES}


def _native_eligible(run) -> bool:
    # the native kernels' reach, which chunks by NATIVE_CHUNK: ``engine.native.available``'s
    # model checks, by name (``native.reach``; importing it loads no JAX)
    from latchlab.engine import native

    return not native.reach(run.cell, catalog.PRESETS[run.preset][0], run.head_name, run.optimizer)


@dataclass(frozen=True)
class Estimate:
    """What a sweep needs.

    Attributes:
        members: members (before removing the ones a store already holds).
        chunk_members: the most members a chunk of the plan may have.
        chunk_bytes: the largest chunk's memory; ``chunk``: a description of it.
        parts: that chunk's memory by part, ``{part: bytes}``.
        sweep_bytes: the whole sweep's memory (the largest chunk included).
        seconds: rough training time, one core.
    """

    members: int
    chunk_members: int
    chunk_bytes: float
    chunk: str
    parts: dict
    sweep_bytes: float
    seconds: float


def chunk_parts(run, R: int, T: int, n_devices: int) -> dict:
    """The memory of a chunk of ``R`` members of ``run``'s group, padded to length ``T``,
    by part (bytes)."""
    F, H, G = catalog.N_IN[run.task], run.units, len(catalog.GATES[run.cell])
    out = HEAD_OUT[run.head_name]
    P = _n_params(run.cell, H, F, out, run.preset)
    n_val = run.N - int(run.N * (1 - run.val_frac))
    B = run.batch_size
    rows = -(-(run.N - n_val) // B) * B  # an epoch's shuffled positions, padded to whole batches
    y_steps = T if run.task == "copy" else 1
    return {
        # the sequences twice (made, then placed or padded), one member at a time being
        # made on each device (4-5 times its size), labels and split indices
        "data sets (N x T)": (2 * R + 5 * n_devices) * run.N * T * F * F32 + R * run.N * (y_steps + 1) * F32,
        # every epoch's shuffles are made before the first (positions and weights, a row a
        # seed: at most one a member), and the XLA modes copy an epoch's to a row a member
        "shuffles (epochs x N)": (run.epochs + 1) * R * rows * 2 * F32,
        # every epoch's parameters, kept on the host and packed for the store
        "parameter snapshots (epochs x parameters)": 2 * (run.epochs + 1) * R * P * F32,
        # a step's inputs, the cell's gates and states at every step (reverse mode keeps
        # them), the per-step outputs of a sequence head; twice, for the backward pass
        "training step (batch_size x T x units)": 2
        * R
        * max(B, 64)
        * T
        * (F + (G + 3) * H + (out if run.task == "copy" else 0))
        * F32,
        # parameters, gradients, updates and the optimiser's two moments
        "parameters and optimiser": 5 * R * P * F32,
    }


def _group_key(run):
    # what ``engine.plan`` groups by (the model's fields, not the model: no JAX here)
    return (
        run.task,
        run.cell,
        run.units,
        run.preset,
        run.head_name,
        run.optimizer,
        run.batch_size,
        run.epochs,
        run.N,
        run.val_frac,
    )


def sweep(cfgs, n_devices: int | None = None) -> Estimate:
    """The estimate of one sweep or a list run as one (``engine.run.run``'s ``cfg``), from
    their grid points and repeats (the members are never listed)."""
    from latchlab import runtime

    D = runtime.host_devices() if n_devices is None else n_devices
    cfgs = list(cfgs) if isinstance(cfgs, (list, tuple)) else [cfgs]
    count, t_max, runs = defaultdict(int), defaultdict(int), {}
    members, epoch_rows, seconds = 0, 0, 0.0
    for cfg in cfgs:
        for run in cfg.points():
            k = _group_key(run)
            count[k] += cfg.repeats
            t_max[k] = max(t_max[k], run.T)
            runs.setdefault(k, run)
            members += cfg.repeats
            epoch_rows += cfg.repeats * run.epochs
            F, H, G = catalog.N_IN[run.task], run.units, len(catalog.GATES[run.cell])
            work = max(1.0, G * H * (F + H + 1) / STEP_WORK)
            seconds += cfg.repeats * run.epochs * run.N * run.T * work * STEP_SECONDS
    best, most = (0.0, "", {}), 0
    for k, run in runs.items():
        cap = chunk_members(run.batch_size, D)
        if _native_eligible(run):
            cap = max(cap, NATIVE_CHUNK)
        R = min(-(-count[k] // D) * D, cap)
        most = max(most, R)
        parts = chunk_parts(run, R, t_max[k], D)
        total = sum(parts.values())
        if total > best[0]:
            padded = f"; {count[k]} real, padded to a multiple of the {D} devices" if R > count[k] else ""
            what = (
                f"a chunk of {R} members ({run.task}, {run.cell}, {run.units} unit{'s' if run.units > 1 else ''}, "
                f"T={t_max[k]}, N={run.N}, batch_size={run.batch_size}, epochs={run.epochs}{padded})"
            )
            best = (total, what, parts)
    total = best[0] + members * MEMBER_BYTES + epoch_rows * ROW_BYTES
    return Estimate(members, most, best[0], best[1], best[2], total, seconds / D)


def check_sweep(cfgs, limit: int | None = None) -> Estimate:
    """The sweep's ``Estimate``, or ``LimitError`` if its largest chunk or the whole sweep
    needs more memory than ``limit`` (default ``memory_limit()``)."""
    limit = memory_limit() if limit is None else limit
    e = sweep(cfgs)
    where = f"than the {size(limit)} this machine has ({ENV} sets another limit)"
    if e.chunk_bytes > limit:
        part = max(e.parts, key=lambda k: e.parts[k])
        raise LimitError(
            "memory",
            f"{e.chunk} needs about {size(e.chunk_bytes)}, more {where}; most of it for {part}: "
            f"{size(e.parts[part])}; the sweep: {e.members} member{'s' if e.members != 1 else ''}, about {duration(e.seconds)}",
        )
    if e.sweep_bytes > limit:
        raise LimitError(
            "memory",
            f"the sweep's {e.members} members need about {size(e.sweep_bytes)} to plan, train and "
            f"read back, more {where}; about {duration(e.seconds)} of training; fewer repeats or grid points",
        )
    return e


# ----------------------------------------------------------------------------- landscapes


def landscape(cell: str, units: int, n_in: int, T_list, N: int, points: int, chunk: int = 64) -> tuple[dict, float]:
    """``latchlab landscape``'s memory by part and its rough time: ``points^2`` grid points
    evaluated ``chunk`` at a time, each on every length's batch of ``N`` sequences of
    ``max(T)`` steps."""
    G, H, T, nT = len(catalog.GATES[cell]), units, max(T_list), len(T_list)
    parts = {
        "batches (N x T)": nT * N * T * n_in * F32,
        "grid evaluation (N x T x units)": min(chunk, points * points) * nT * N * T * (n_in + (G + 1) * H) * F32,
        "parameters (units^2)": 4 * G * H * (n_in + H + 2) * F32,
        "results (points^2)": points * points * nT * 9 * 8,
    }
    work = max(1.0, G * H * (n_in + H + 1) / STEP_WORK)
    return parts, points * points * nT * N * T * work * STEP_SECONDS


def check_landscape(cell: str, units: int, n_in: int, T_list, N: int, points: int, limit: int | None = None) -> None:
    """``LimitError`` if the landscape needs more memory than ``limit`` (default
    ``memory_limit()``)."""
    parts, seconds = landscape(cell, units, n_in, T_list, N, points)
    what = (
        f"a landscape of {points}x{points} points of a {cell} with {units} unit{'s' if units > 1 else ''} "
        f"at T={max(T_list)}, N={N}"
    )
    check(what, parts, seconds, limit)


def check(what: str, parts: dict, seconds: float, limit: int | None = None) -> None:
    """``LimitError`` if the memory of ``parts`` (``{part: bytes}``) exceeds ``limit``
    (default ``memory_limit()``): one line saying ``what`` needs how much, the limit, the
    largest part and the rough time."""
    limit = memory_limit() if limit is None else limit
    need = sum(parts.values())
    if need > limit:
        part = max(parts, key=lambda k: parts[k])
        raise LimitError(
            "memory",
            f"{what} needs about {size(need)}, more than the {size(limit)} this machine has "
            f"({ENV} sets another limit); most of it for {part}: {size(parts[part])}; about {duration(seconds)}",
        )
