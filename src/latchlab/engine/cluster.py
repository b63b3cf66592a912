"""Sweeps on a Dask cluster: the plan's chunks trained by workers, results stored by the client.

``--cluster SPEC`` (``latchlab run``) and ``cluster=`` (``latchlab.sweep``) take:

* ``local`` or ``local:N``: a ``LocalCluster`` of N single-threaded worker processes on this
  machine, on the loopback interface (default N: the cores this process may use);
* ``tcp://HOST:PORT``: a running Dask scheduler (``dask scheduler`` and ``dask worker``);
* a TOML file with a ``[cluster]`` table: a dask-jobqueue cluster (``kind = "slurm"``,
  ``"pbs"``, ...), ``jobs`` batch jobs of workers, every other key a keyword argument of
  the dask-jobqueue class (``cores``, ``memory``, ``walltime``, ``account``, ...).

The unit of work is a chunk of the plan (``plan.plan``). A worker makes the chunk's data
and initial parameters from the members' seeds and trains it (``_execute``), so a chunk's
numbers do not depend on where it ran; the client alone writes the store, as results
arrive, so resuming and the store's guarantees are those of the in-process path. Each
member's worker (host, CPU, backend, gradient mode) goes to the store's ``workers`` table
(``Store.write``; ``Store.workers`` reads it).

A worker that dies mid-chunk has its chunk rerun on another (the scheduler reschedules
it); a scheduler that cannot be reached, or is lost mid-sweep, raises ``ClusterError``
(one line, exit 2 from the CLI), with every finished chunk already stored.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, cast

from latchlab.errors import ConfigError, LatchlabError

if TYPE_CHECKING:
    from latchlab.engine.plan import Chunk
    from latchlab.engine.run import ChunkResult

# dask-jobqueue's classes by the ``kind`` of a ``[cluster]`` table
JOBQUEUE = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "oar": "OARCluster",
    "moab": "MoabCluster",
    "htcondor": "HTCondorCluster",
}
# seconds to wait for a scheduler (connecting, and reconnecting after losing it)
CONNECT_TIMEOUT = 10.0


class ClusterError(LatchlabError):
    """The cluster cannot be used (unreachable, lost, or failing every attempt at a chunk)."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where chunks run: ``kind`` is ``local``, ``scheduler`` or ``jobqueue``."""

    kind: str
    workers: int = 0
    """``local``: worker processes."""
    address: str = ""
    """``scheduler``: the scheduler's address."""
    jobqueue: str = ""
    """``jobqueue``: the dask-jobqueue kind (a key of ``JOBQUEUE``)."""
    jobs: int = 1
    """``jobqueue``: batch jobs to submit."""
    options: tuple = ()
    """``jobqueue``: keyword arguments of the dask-jobqueue class, as sorted items."""
    dashboard: bool = True
    """Serve (and print) the dashboard of clusters this process starts."""


def _need(module: str, what: str) -> None:
    """A one-line error, not a traceback, when the ``cluster`` extra is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ConfigError("cluster", f"needs {what}: pip install 'latchlab[cluster]'")


def parse(text: str | Path, dashboard: bool = True) -> ClusterSpec:
    """A ``ClusterSpec`` from ``--cluster``'s text (see the module's docstring).

    Raises:
        ConfigError: the text is none of the three forms, or the TOML table is wrong.
    """
    _need("distributed", "dask distributed")
    s = str(text).strip()
    if not s:
        raise ConfigError("cluster", "is empty: give local[:N], a scheduler address tcp://HOST:PORT or a TOML file")
    if s == "local" or s.startswith("local:"):
        n = s.partition(":")[2]
        if n and not (re.fullmatch(r"[0-9]+", n) and int(n) >= 1):  # str.isdigit takes '²', which int() refuses
            raise ConfigError("cluster", f"{s!r}: the number of local workers must be a whole number >= 1")
        from latchlab import runtime

        return ClusterSpec("local", int(n) if n else runtime.cores(), dashboard=dashboard)
    if re.fullmatch(r"(tcp|tls)://[^\s/:]+:\d+", s):
        return ClusterSpec("scheduler", address=s)
    path = Path(s)
    if path.suffix == ".toml" or path.exists():
        return _parse_toml(path, dashboard)
    raise ConfigError(
        "cluster",
        f"{s!r} is neither local[:N], a scheduler address tcp://HOST:PORT nor a TOML file with a [cluster] table",
    )


def _parse_toml(path: Path, dashboard: bool) -> ClusterSpec:
    from latchlab.config import read_toml

    table = read_toml(path, "cluster").get("cluster")
    if not isinstance(table, dict):
        raise ConfigError("cluster", f"{path} has no [cluster] table")
    table = dict(table)
    kind = table.pop("kind", None)
    if kind not in JOBQUEUE:
        raise ConfigError("cluster.kind", f"{kind!r} in {path}", tuple(JOBQUEUE))
    jobs = table.pop("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError("cluster.jobs", f"{jobs!r} in {path}: a whole number of batch jobs >= 1")
    _need("dask_jobqueue", "dask-jobqueue")
    return ClusterSpec("jobqueue", jobqueue=kind, jobs=jobs, options=tuple(sorted(table.items())), dashboard=dashboard)


def jobqueue_cluster(spec: ClusterSpec):
    """The dask-jobqueue cluster of a ``jobqueue`` spec (no job submitted yet): its
    ``job_script()`` is what each of the ``spec.jobs`` batch jobs runs."""
    import dask_jobqueue

    cls = getattr(dask_jobqueue, JOBQUEUE[spec.jobqueue])
    options = dict(spec.options)
    # every worker process trains on one XLA device (``worker_setup``); say so to the job
    prologue = list(options.pop("job_script_prologue", []))
    if not spec.dashboard:  # the scheduler's HTTP server on a free loopback port, no dashboard
        options["scheduler_options"] = {
            **options.get("scheduler_options", {}),
            "dashboard": False,
            "dashboard_address": "127.0.0.1:0",
        }
    try:
        return cls(job_script_prologue=prologue + ["export LATCHLAB_DEVICES=1"], **options)
    except (TypeError, ValueError) as e:
        raise ConfigError("cluster", f"{cls.__name__}: {e}") from None


def worker_setup() -> None:
    """A worker's process set-up, before its first JAX array: one XLA host device (the
    worker is one single-threaded Dask worker: more cores, more workers), and the
    persistent compilation cache (``runtime.setup``). Idempotent; does nothing once JAX's
    backend has started."""
    from latchlab import runtime

    if runtime.is_set_up() or runtime.jax_started():
        return
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", ""))
    os.environ["XLA_FLAGS"] = flags.strip()
    os.environ["LATCHLAB_DEVICES"] = "1"
    runtime.setup()


def _warm() -> str:
    """A worker's set-up, imports and JAX backend, ahead of its first chunk (``connect``
    runs it on every worker there is): its host name."""
    worker_setup()
    import jax

    from latchlab.engine import run  # noqa: F401  (the engine's imports)

    jax.devices()
    return socket.gethostname()


def _cpu() -> str:
    from latchlab.engine import native

    fields = native._cpu_fields()
    return fields["model name"] if "model name" in fields else os.uname().machine


def worker_info(model, optimizer: str) -> dict:
    """Where a chunk trained: host, CPU, JAX backend and devices, the gradient mode, and
    why not the native kernels if they could have trained it but could not be built."""
    import jax

    from latchlab.engine import native, train

    mode = train.choose_mode(model, optimizer)
    info = {
        "host": socket.gethostname(),
        "cpu": _cpu(),
        "backend": f"{jax.default_backend()}:{jax.device_count()}",
        "mode": mode,
    }
    if mode != "native" and native.supports(model, optimizer):
        why = native.available(model, optimizer).reason or "unavailable"
        info["mode"] = f"{mode} (native kernels: {why})"
    return info


# Bytes of sequences a worker keeps between chunks (``_worker_data``)
WORKER_DATA_BYTES = 1 << 30
_families = None  # the worker's ``data.Families``, kept between chunks


def _worker_data(chunk, lengths: dict):
    """The chunk's data, cut from the worker's own ``data.Families`` where the task allows.

    ``lengths``: the longest length of each of the chunk's seed families in the whole sweep
    (``data.Families(chunks).T``), so that a worker draws a seed's sequences once for every
    chunk it trains, as the in-process path does (the same numbers: ``Families`` cuts
    prefixes of the same draws). Families are kept up to ``WORKER_DATA_BYTES``, oldest
    dropped first.
    """
    global _families
    from latchlab.engine import data as D

    if _families is None:
        _families = D.Families([])
    fam = _families
    for f, T in lengths.items():
        if f in fam.seq and fam.seq[f][0].shape[-1] < T:  # drawn for a shorter sweep
            fam.seq.pop(f)
            for k in [k for k in fam.splits if k[0] == f]:
                del fam.splits[k]
        fam.T[f] = max(fam.T.get(f, 0), T)
        fam.uses[f] = 1 << 40  # never freed by ``cut``: dropped below by size
    data = D.make_data(list(chunk.members), chunk.T_pad, fam)
    size = 0
    for f in reversed(list(fam.seq)):
        size += fam.seq[f][0].nbytes
        if size > WORKER_DATA_BYTES:
            fam.seq.pop(f)
            for k in [k for k in fam.splits if k[0] == f]:
                del fam.splits[k]
    return data


def _execute(chunk, lengths: dict | None = None):
    """Train one chunk from its members' seeds alone: ``run.execute``'s result with where it
    ran (``worker_info``).

    The one adapter between the cluster and the engine: data (``make_data``, through the
    worker's families: ``_worker_data``), initial parameters and training
    (``run.train_chunk``), as the in-process path makes them. A chunk planned for the
    native kernels on a worker that cannot build them trains on the XLA backend instead
    (equal to 1e-5, and said in the worker's provenance).
    """
    worker_setup()
    import dataclasses

    from latchlab.engine import run, train

    model, opt = chunk.members[0].run.model, chunk.members[0].run.optimizer
    if isinstance(chunk.backend, train.Native) and train.choose_mode(model, opt) != "native":
        chunk = dataclasses.replace(
            chunk, backend=train.backend(train.Spec.for_model(model, opt, chunk.members[0].run.batch_size))
        )
    t0 = time.perf_counter()
    hist = run.train_chunk(chunk, data=_worker_data(chunk, lengths or {}))
    res = run._kept(chunk, hist, time.perf_counter() - t0)
    return res._replace(worker=worker_info(model, opt))


@contextmanager
def _quiet():
    """Dask's start-up and shut-down chatter (ports, closed comms) as warnings: not errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        warnings.filterwarnings("ignore", module=r"distributed(\..*)?")
        warnings.filterwarnings("ignore", module=r"tornado(\..*)?")
        warnings.filterwarnings("ignore", module=r"bokeh(\..*)?")
        yield


def _worker_env() -> dict:
    """The environment of local worker processes: the parent's XLA flags without its
    device split (each worker is one XLA device)."""
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", "")).strip()
    return {"XLA_FLAGS": flags, "LATCHLAB_DEVICES": "1"}


@contextmanager
def _sigint_ignored():
    """SIGINT ignored while processes are started here (they inherit it), in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextmanager
def connect(spec: ClusterSpec, say: Callable[[str], None] | None = None):
    """A Dask ``Client`` on ``spec``'s cluster (started here unless a scheduler address),
    closed (and the cluster stopped) on exit. ``say`` gets the dashboard's address.

    Raises:
        ClusterError: the scheduler cannot be reached within ``CONNECT_TIMEOUT`` seconds.
    """
    import dask.config
    from distributed import Client, LocalCluster

    say = say or (lambda s: None)
    with (
        _quiet(),
        dask.config.set(
            {
                "distributed.comm.timeouts.connect": f"{CONNECT_TIMEOUT}s",
                "distributed.scheduler.allowed-failures": 3,
                "distributed.admin.system-monitor.gil.enabled": False,
            }
        ),
    ):
        cluster = None
        try:
            if spec.kind == "local":
                # the scheduler's HTTP server (and dashboard, if asked) on a free port, never 8787;
                # its processes ignore SIGINT (Python leaves an inherited SIG_IGN in place): a
                # Ctrl-C at a terminal reaches the whole process group, and this process stops
                # them, where each printed its own KeyboardInterrupt traceback
                with _sigint_ignored():
                    cluster = LocalCluster(
                        n_workers=spec.workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address="127.0.0.1:0",
                        scheduler_kwargs={"dashboard": spec.dashboard},
                        silence_logs=logging.ERROR,
                        env=_worker_env(),
                    )
                client = Client(cluster, timeout=CONNECT_TIMEOUT)
            elif spec.kind == "scheduler":
                try:
                    client = Client(spec.address, timeout=CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as e:
                    raise ClusterError(
                        f"cluster: cannot reach the Dask scheduler at {spec.address} "
                        f"within {CONNECT_TIMEOUT:g} s ({type(e).__name__})"
                    ) from None
            else:
                cluster = jobqueue_cluster(spec)
                cluster.scale(jobs=spec.jobs)
                client = Client(cluster, timeout=CONNECT_TIMEOUT)
            # (a scheduler's HTTP server always runs; the dashboard is its page when bokeh is there)
            link = client.dashboard_link if (spec.kind == "scheduler" or spec.dashboard) else None
            assert client.scheduler is not None  # connected
            try:
                # a dict by worker (a coroutine only for an asynchronous client)
                workers = len(cast(dict, client.run(_warm)))  # the workers there are now: their set-up, in parallel
            except Exception as e:  # noqa: BLE001  (whatever the workers' import raised, as one line)
                raise ClusterError(
                    f"cluster: the workers of {client.scheduler.address} cannot run latchlab ({type(e).__name__}: {e})"
                ) from None
            say(f"cluster: {client.scheduler.address}, {workers} workers now" + (f", dashboard {link}" if link else ""))
            try:
                yield client
            finally:
                client.close(timeout=CONNECT_TIMEOUT)
        finally:
            if cluster is not None:
                cluster.close(timeout=CONNECT_TIMEOUT)


def results(client, chunks: list[Chunk], retries: int = 1) -> Iterator[tuple[Chunk, ChunkResult]]:
    """``(chunk, result)`` of every chunk, in the order they finish on ``client``'s workers.

    ``retries``: reruns of a chunk whose training raised (on another worker if it can);
    a chunk whose worker died is rescheduled by Dask itself (``allowed-failures`` times).

    Raises:
        ClusterError: the scheduler was lost, or a chunk killed every worker it ran on.
    """
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    from latchlab.engine import data as D

    if not chunks:
        return
    token = f"{os.getpid()}-{time.time_ns()}"
    longest = D.Families(chunks).T

    def lengths(c):
        return {f: longest[f] for f in map(D._family, c.members) if f in longest}

    # a part's chunks to one worker (its seeds' data drawn there once), loosely: a worker
    # lost or busy, the scheduler sends them elsewhere
    addresses = sorted(client.scheduler_info()["workers"])

    def where(c):
        if len(addresses) < 2:
            return {}
        return {"workers": [addresses[c.part % len(addresses)]], "allow_other_workers": True}

    futures = {
        client.submit(
            _execute, c, lengths(c), key=f"latchlab-chunk-{i}-{token}", pure=False, retries=retries, **where(c)
        ): c
        for i, c in enumerate(chunks)
    }
    try:
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except (FutureCancelledError, OSError) as e:
                raise ClusterError(
                    f"cluster: lost the Dask scheduler at {client.scheduler.address} "
                    f"({type(e).__name__}); finished members are stored, re-run to resume"
                ) from None
            except KilledWorker:
                raise ClusterError(
                    f"cluster: a chunk of {len(futures[fut].members)} members killed every worker "
                    "it ran on (out of memory?); finished members are stored"
                ) from None
            yield futures[fut], res
            fut.release()
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()


@contextmanager
def executor(spec: ClusterSpec | str, say: Callable[[str], None] | None = None):
    """An executor for ``run.run``: ``execute(chunks)`` yields ``(chunk, run.ChunkResult)``
    as chunks finish on ``spec``'s cluster (which lives as long as the context)."""
    if not isinstance(spec, ClusterSpec):
        spec = parse(spec)
    with connect(spec, say) as client:
        yield _Executor(client)


class _Executor:
    """``run.run``'s executor on a Dask client; ``parts``: the workers there are now, one
    part of the native members (by seed) per worker (``plan.plan``)."""

    def __init__(self, client):
        self.client = client
        self.parts = max(1, len(client.scheduler_info()["workers"]))

    def __call__(self, chunks):
        return results(self.client, chunks)
