"""Sweeps on a Dask cluster, on the loopback interface of this machine: the same stored numbers
as in-process, faults (a worker killed mid-sweep, an unreachable or lost scheduler, a client
killed and rerun) and a Slurm job script built without a batch system."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed
import pytest

from latchlab import config as C
from latchlab.engine import cluster as CL
from latchlab.engine import run as runner
from latchlab.engine import plan
from latchlab.errors import ConfigError
from latchlab.store import Store

METRICS = ["member_id", "epoch", "train_loss", "train_acc", "val_loss", "val_acc"]


def tiny(cells=("srnn", "lstm"), repeats=4) -> C.SweepConfig:
    """One-unit cells (the native kernels' by default), 2 lengths: N = 64, T <= 5, one epoch."""
    return C.from_dict(
        {
            "name": "tiny",
            "repeats": repeats,
            "seed": 0,
            "task": "latch",
            "units": 1,
            "N": 64,
            "epochs": 1,
            "batch_size": 16,
            "grid": {"cell": list(cells), "T": [3, 5]},
        }
    )


TINY_TOML = """name = "tiny"
repeats = 4
seed = 0
task = "latch"
units = 1
N = 64
epochs = 1
batch_size = 16
[grid]
cell = ["srnn", "lstm"]
T = [3, 5]
"""


def rows(df):
    return df[METRICS].sort_values(["member_id", "epoch"]).reset_index(drop=True)


@pytest.fixture
def small_chunks(monkeypatch):
    """Two members per native chunk: a sweep of a few members is several chunks."""
    monkeypatch.setattr(plan, "NATIVE_CHUNK", 2)


@pytest.fixture(scope="module")
def reference():
    """The in-process results of ``tiny()`` (native-kernel cells)."""
    return rows(runner.run(tiny()))


@pytest.fixture(scope="module")
def local2():
    """A LocalCluster of two single-threaded worker processes; its scheduler's address."""
    spec = CL.ClusterSpec("local", 2, dashboard=False)
    with CL.connect(spec) as client:
        yield client.scheduler.address


def _children() -> set[int]:
    """This process's children, but multiprocessing's resource tracker (one per process,
    started with the first worker process, ending with this one)."""
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True) if "resource_tracker" not in " ".join(p.cmdline())}


# ----------------------------------------------------------------------------- the spec


def test_parse_the_three_forms(tmp_path):
    assert CL.parse("local:3") == CL.ClusterSpec("local", 3)
    assert CL.parse("local").workers == len(os.sched_getaffinity(0))
    assert CL.parse("tcp://10.0.0.1:8786") == CL.ClusterSpec("scheduler", address="tcp://10.0.0.1:8786")
    p = tmp_path / "c.toml"
    p.write_text('[cluster]\nkind = "slurm"\njobs = 3\ncores = 4\nmemory = "8GB"\n')
    assert CL.parse(p) == CL.ClusterSpec(
        "jobqueue", jobqueue="slurm", jobs=3, options=(("cores", 4), ("memory", "8GB"))
    )


def test_without_a_cpu_affinity_every_core_counts(monkeypatch):
    """macOS keeps no CPU affinity (no ``os.sched_getaffinity``): the cores a process may use
    are then all of them, for local workers, the kernels' threads and JAX's host devices."""
    from latchlab import runtime
    from latchlab.engine import native

    assert runtime.cores() == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.delenv("LATCHLAB_DEVICES", raising=False)
    n = os.cpu_count()
    assert runtime.cores() == native.threads() == runtime.host_devices() == CL.parse("local").workers == n


@pytest.mark.parametrize(
    "text,field",
    [
        ("local:0", "cluster"),
        ("local:x", "cluster"),
        ("tcp://host", "cluster"),
        ("missing.toml", "cluster"),
        ("kind.toml", "cluster.kind"),
        ("jobs.toml", "cluster.jobs"),
        ("none.toml", "cluster"),
        ("local:\u00b2", "cluster"),  # a digit to str.isdigit, not to int()
        ("", "cluster"),
        ("latin1.toml", "cluster"),  # not UTF-8
    ],
)
def test_parse_errors_name_the_field(tmp_path, text, field):
    (tmp_path / "latin1.toml").write_bytes(b'[cluster]\nkind = "sl\xe9rm"\n')
    (tmp_path / "kind.toml").write_text('[cluster]\nkind = "kubernetes"\n')
    (tmp_path / "jobs.toml").write_text('[cluster]\nkind = "pbs"\njobs = 0\n')
    (tmp_path / "none.toml").write_text('name = "x"\n')
    path = tmp_path / text if text.endswith(".toml") else text
    with pytest.raises(ConfigError) as e:
        CL.parse(path)
    assert e.value.field == field


@pytest.mark.parametrize(
    "spec, line",
    [
        ("local:0", "error: cluster: 'local:0'"),
        # refused only once the run builds the cluster, after it made the store: removed again
        ("bogus.toml", "error: cluster: SLURMCluster: Got unexpected keyword argument 'bogus_option'"),
    ],
)
def test_a_bad_cluster_spec_is_one_line_exit_2_and_creates_nothing(tmp_path, spec, line):
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    (tmp_path / "bogus.toml").write_text('[cluster]\nkind = "slurm"\njobs = 1\nbogus_option = 1\n')
    p = subprocess.run(
        [
            str(Path(sys.executable).with_name("latchlab")),
            "run",
            "tiny.toml",
            "--store",
            "s.sqlite",
            "--cluster",
            spec,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0].startswith(line), lines[0]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["bogus.toml", "tiny.toml"]


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_slurm_job_script_from_a_cluster_table(tmp_path):
    """dask-jobqueue's Slurm script from ``experiments/cluster/slurm.toml``'s table (the
    scheduler it starts listens on the loopback interface; no job is submitted)."""
    example = Path(__file__).parents[2] / "experiments" / "cluster" / "slurm.toml"
    text = example.read_text().replace('interface = "ib0"', 'interface = "lo"')
    (tmp_path / "c.toml").write_text(text)
    spec = CL.parse(tmp_path / "c.toml", dashboard=False)
    cluster = CL.jobqueue_cluster(spec)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert script.startswith("#!/usr/bin/env bash")
    for line in (
        "#SBATCH -p short",
        "#SBATCH -A latching",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=15G",
        "#SBATCH -t 02:00:00",
        "export LATCHLAB_DEVICES=1",
        "--nthreads 1",
        "--nworkers 8",
        "tcp://127.0.0.1:",
    ):
        assert line in script, (line, script)
    assert spec.jobs == 4


def test_a_worker_without_a_compiler_trains_on_xla_and_says_so(monkeypatch, tmp_path):
    """No C++ compiler (and no library built): the XLA modes, and the reason in the record."""
    from latchlab.engine import native, train

    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("LATCHLAB_CACHE", str(tmp_path / "xla"))  # no library built here
    monkeypatch.setattr(native, "_libs", {})
    monkeypatch.setattr(native, "_errors", {})
    model = tiny(("lstm",)).members()[0].run.model
    info = CL.worker_info(model, "adam")
    assert not train.native_ok(model, "adam")
    assert info["mode"].startswith(f"{train.choose_mode(model, 'adam')} (native kernels: ")
    assert "no-such-compiler" in info["mode"]
    assert info["backend"].startswith("cpu:") and info["host"] and info["cpu"]
    monkeypatch.setattr(native, "_compiler", lambda: None)  # none at all
    assert CL.worker_info(model, "adam")["mode"].endswith("(native kernels: no C++ compiler (g++) found)")
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")
    assert CL.worker_info(model, "adam")["mode"].endswith("(native kernels: disabled by LATCHLAB_NATIVE=0)")


# ----------------------------------------------------------------------------- identical numbers


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_plan_in_parts_cuts_the_native_members_by_seed(monkeypatch):
    """A cluster's plan (a part per worker): each seed's members in one part, every member once,
    the parts' sizes within a seed of each other; one part is the in-process plan."""
    d = tiny(repeats=5).to_dict()
    d["grid"]["units"] = [1, 2]
    native_ok = runner.train.native_ok  # two units on the XLA modes here: a plan with both backends
    monkeypatch.setattr(runner.train, "native_ok", lambda m, o="adam": m.cell.units == 1 and native_ok(m, o))
    members = C.from_dict(d).members()
    one = plan.plan(members)
    assert plan.plan(members, parts=1) == one
    two = plan.plan(members, parts=2)
    native = [c for c in two if isinstance(c.backend, runner.train.Native)]
    assert native and {c.part for c in native} == {0, 1}
    seeds = [{m.seed for c in native if c.part == p for m in c.members} for p in (0, 1)]
    assert not seeds[0] & seeds[1] and len(seeds[0]) - len(seeds[1]) in (0, 1)
    assert sorted(m.id for c in two for m in c.members[: len(c.members) - c.pad]) == sorted(m.id for m in members)
    # the XLA cells' chunks (their padding is part of their numbers) are those of the in-process plan
    xla = [c for c in one if not isinstance(c.backend, runner.train.Native)]
    assert xla and [c for c in two if not isinstance(c.backend, runner.train.Native)] == xla


def test_two_workers_store_the_in_process_numbers(local2, reference, small_chunks, tmp_path):
    """Same exported metrics as in-process, to the bit; each member's worker recorded."""
    with Store(tmp_path / "s.sqlite") as st:
        got = runner.run(tiny(), st, cluster=local2)
        assert len(st.done()) == 16
        w = st.workers()
    assert rows(got).equals(reference)
    assert sorted(w.member_id) == sorted(reference.member_id.unique())
    assert set(w.backend) == {"cpu:1"}  # one XLA device per worker process
    assert set(w["mode"]) == {"native"}


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_connecting_says_where_and_sets_every_worker_up(local2):
    """The one line a sweep prints first; every worker set up (one XLA device) before any chunk."""
    lines = []
    with CL.connect(CL.parse(local2), lines.append) as client:
        devices = client.run(lambda: __import__("jax").device_count())
    # a scheduler's HTTP address (the dashboard's where bokeh serves one), on a free port
    assert len(lines) == 1 and lines[0].startswith(f"cluster: {local2}, 2 workers now, dashboard http://127.0.0.1:")
    assert ":8787/" not in lines[0]
    assert list(devices.values()) == [1, 1]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_xla_cells_on_two_workers_store_the_in_process_numbers(local2, tmp_path, monkeypatch):
    """A GRU and a two-unit LSTM on the XLA modes (compiled on each worker for one device):
    the in-process numbers (compiled for this process's devices), to the bit."""
    monkeypatch.setenv("LATCHLAB_NATIVE", "0")  # the plan, made here, sends XLA chunks
    cfg = C.from_dict(
        {
            "name": "xla",
            "repeats": 3,
            "seed": 0,
            "task": "latch",
            "N": 64,
            "epochs": 2,
            "batch_size": 16,
            "grid": {"cell": ["gru", "lstm"], "units": [2], "T": [3, 5]},
        }
    )
    ref = rows(runner.run(cfg))
    with Store(tmp_path / "s.sqlite") as st:
        got = runner.run(cfg, st, cluster=local2)
        w = st.workers()
    assert rows(got).equals(ref)
    model = cfg.members()[0].run.model
    assert runner.train.choose_mode(model) != "native" and len(w) == 12


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_four_local_workers_store_the_in_process_numbers(reference, small_chunks, tmp_path):
    """``cluster="local:4"`` starts (and stops) its own LocalCluster: same numbers, no process left."""
    before = _children()
    got = runner.run(tiny(), cluster="local:4")
    assert rows(got).equals(reference[reference.member_id.isin(set(got.member_id))].reset_index(drop=True))
    assert len(got) == 16
    time.sleep(0.5)
    assert _children() <= before


# ----------------------------------------------------------------------------- faults


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::UserWarning:distributed")
def test_worker_killed_mid_sweep_loses_and_duplicates_nothing(local2, reference, small_chunks, tmp_path):
    """SIGKILL to a worker while it trains a chunk: the chunk reruns on the other worker;
    every member stored once, with the in-process numbers."""
    client = distributed.Client(local2, timeout=10)
    killed = []

    def kill_one_busy_worker():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            busy = [w for w, keys in client.processing().items() if any("latchlab-chunk" in str(k) for k in keys)]
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.005)

    t = threading.Thread(target=kill_one_busy_worker)
    try:
        t.start()
        with Store(tmp_path / "s.sqlite") as st:
            got = runner.run(tiny(), st, cluster=local2)
            epochs = st.db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
        t.join()
        assert killed, "no worker was busy"
        with pytest.raises(ProcessLookupError):
            os.kill(killed[0], 0)
        assert got.member_id.nunique() == 16 and epochs == 16
        assert rows(got).equals(reference[reference.member_id.isin(set(got.member_id))].reset_index(drop=True))
        client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker
    finally:
        client.close()


def test_unreachable_scheduler_is_one_line_exit_2(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "tiny.toml").write_text('name = "t"\ntask = "latch"\nN = 64\nepochs = 1\n[grid]\nT = [3]\n')
    code = (
        "import sys; from latchlab.engine import cluster; cluster.CONNECT_TIMEOUT = 1.0\n"
        "from latchlab import cli\n"
        f"sys.argv = ['latchlab', 'run', 'tiny.toml', '--store', 's.sqlite', '--cluster', 'tcp://127.0.0.1:{port}']\n"
        "cli.main()\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    assert lines[0] == f"error: cluster: cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 1 s (OSError)"
    with Store(tmp_path / "s.sqlite") as st:
        assert not st.done()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_client_killed_mid_sweep_resumes_on_rerun(local2, reference, small_chunks, tmp_path):
    """``latchlab run --cluster`` killed (SIGKILL) after its first chunks: the rerun trains
    the rest, and the store holds every member once, with the in-process numbers."""
    (tmp_path / "tiny.toml").write_text(TINY_TOML)
    code = (
        "import sys; from latchlab.engine import plan; plan.NATIVE_CHUNK = 1\n"
        "from latchlab import cli\n"
        f"sys.argv = ['latchlab', 'run', 'tiny.toml', '--store', 's.sqlite', '--cluster', '{local2}']\n"
        "cli.main()\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    db, n = tmp_path / "s.sqlite", 0
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
                        n = c.execute("SELECT COUNT(*) FROM members").fetchone()[0]
                except sqlite3.OperationalError:  # not created yet
                    n = 0
                if n:
                    break
            time.sleep(0.002)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert 0 < n < 16, n
    with Store(db) as st:
        assert 0 < len(st.done()) < 16
        got = runner.run(tiny(), st, cluster=local2)
        assert len(st.done()) == 16
    assert rows(got).equals(reference[reference.member_id.isin(set(got.member_id))].reset_index(drop=True))


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::UserWarning:distributed")
def test_scheduler_lost_mid_sweep_keeps_what_finished(small_chunks, tmp_path, monkeypatch):
    """A scheduler killed (SIGKILL) after the first chunk: ``ClusterError`` naming it, every
    chunk that arrived before stored."""
    monkeypatch.setattr(CL, "CONNECT_TIMEOUT", 3.0)
    dask = Path(sys.executable).with_name("dask")
    env = {**os.environ, **CL._worker_env()}
    sched = subprocess.Popen(
        [
            str(dask),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(tmp_path / "s.json"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        for _ in range(600):
            if (tmp_path / "s.json").exists() and (tmp_path / "s.json").stat().st_size:
                break
            time.sleep(0.05)
        import json

        address = json.loads((tmp_path / "s.json").read_text())["address"]
        worker = subprocess.Popen(
            [str(dask), "worker", address, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        with distributed.Client(address, timeout=10) as c:
            c.wait_for_workers(1, timeout=60)

        def kill_scheduler(n, total):
            if sched.poll() is None:
                sched.send_signal(signal.SIGKILL)
                sched.wait()

        with Store(tmp_path / "s.sqlite") as st:
            with pytest.raises(CL.ClusterError, match=f"lost the Dask scheduler at {address}"):
                runner.run(tiny(), st, progress=kill_scheduler, cluster=address)
            assert 0 < len(st.done()) < 16
    finally:
        for proc in (worker, sched):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL) if proc is worker else proc.kill()
                proc.wait()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_local_workers_ignore_a_terminals_ctrl_c_and_this_process_keeps_its_handler():
    """A terminal's Ctrl-C reaches the whole process group: a local cluster's processes
    ignore it and this one stops them (each printed its own KeyboardInterrupt traceback, 69
    lines for two workers); this process's own handler is as it was."""
    import signal

    before = signal.getsignal(signal.SIGINT)
    with CL.connect(CL.parse("local:1")) as client:
        ignored = client.run(lambda: __import__("signal").getsignal(2) == __import__("signal").SIG_IGN)
        assert signal.getsignal(signal.SIGINT) is before
    assert list(ignored.values()) == [True]
