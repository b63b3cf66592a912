"""Limits checked before work starts (``latchlab.limits``).

* The machine's memory is what the kernel reports (``os.sysconf``'s physical pages), and
  ``$LATCHLAB_MEMORY_LIMIT`` replaces it (a bad value is one line naming the variable).
* The estimate of a chunk bounds what the engine really allocates for it, within a small
  factor: the data sets ``data.make_data`` makes, the parameter snapshots ``train.fit``
  keeps and every epoch's shuffles, for the chunks ``plan.plan`` really makes (whose sizes
  the estimate's rule gives).
* Sizes that cannot fit (a length of 10^9, 2 * 10^9 sequences, a million units, 10^9
  repeats, 2 * 10^9 epochs, a batch of 2 * 10^9) are refused by ``engine.run.run`` and by
  the CLI in one line with the estimate and the limit, within seconds, nothing written;
  ``latchlab landscape`` likewise. (tests/cli/test_cli.py runs the same refusals in
  subprocesses; this file times them in process.)
* ``reproduce bengio1994`` and ``reproduce guessing`` (their own trainers, sizes from
  ``--config``) and ``reproduce pascanu2013`` (``--T``, ``--steps``) are refused the same
  way; every shipped scale of every reproduction passes.
* A limit below what a tiny sweep needs refuses it, before its store is created.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from latchlab import config, limits
from latchlab.engine import data as D
from latchlab.engine import plan as P
from latchlab.engine import run as runner
from latchlab.engine import native, train
from latchlab.errors import ConfigError, LimitError

from clitools import assert_user_error, cli_here  # noqa: E402

TINY = {"name": "tiny", "repeats": 2, "seed": 0, "N": 64, "epochs": 2}


def test_machine_memory_is_the_kernels_physical_memory(monkeypatch):
    monkeypatch.delenv(limits.ENV, raising=False)
    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup = Path("/sys/fs/cgroup/memory.max")
    cap = int(cgroup.read_text()) if cgroup.exists() and cgroup.read_text().strip().isdigit() else pages
    assert limits.memory_limit() == limits.machine_memory() == min(pages, cap)


@pytest.mark.parametrize(
    "text, want",
    [("8G", 8 * 2**30), ("512M", 512 * 2**20), ("1.5g", int(1.5 * 2**30)), ("4096", 4096), ("2GiB", 2**31)],
)
def test_the_limit_is_overridable(monkeypatch, text, want):
    monkeypatch.setenv(limits.ENV, text)
    assert limits.memory_limit() == want


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "8X"])
def test_a_bad_limit_is_one_line_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv(limits.ENV, text)
    with pytest.raises(ConfigError, match=f"^{limits.ENV}: must be a size"):
        limits.memory_limit()


@pytest.mark.parametrize(
    "over",
    [
        {"grid": {"T": [3, 9], "cell": ["srnn", "gru"], "units": [1, 3]}},
        {"task": "copy", "T": 23, "cell": "lstm", "units": 2, "batch_size": 8},
        {"task": "adding", "T": 12, "cell": "janet", "units": 4, "optimizer": "rmsprop", "repeats": 5},
    ],
)
def test_the_chunk_estimate_bounds_what_the_engine_allocates(over):
    """For every chunk ``plan`` makes: the estimate's members are at least the chunk's,
    and its parts bound the arrays the engine makes for them (data sets, snapshots,
    shuffles), by at most a factor of 10 above them."""
    cfg = config.from_dict({**TINY, **over})
    est = limits.sweep(cfg, n_devices=jax.local_device_count())
    chunks = P.plan(cfg.members())
    for chunk in chunks:
        run, R = chunk.members[0].run, len(chunk.members)
        assert R <= est.chunk_members
        parts = limits.chunk_parts(run, R, chunk.T_pad, jax.local_device_count())
        assert sum(parts.values()) <= est.chunk_bytes
        data = D.make_data(list(chunk.members), chunk.T_pad)
        x = data.x.padded() if isinstance(data.x, native.Rows) else data.x
        made = sum(np.asarray(a).nbytes for a in (x, data.y, data.train, data.val))
        assert made <= parts["data sets (N x T)"] <= 10 * made + 2**20
        hist = runner.train_chunk(chunk, data=data)
        snaps = sum(a.nbytes for p in hist.params for a in jax.tree.leaves(p))
        assert snaps <= parts["parameter snapshots (epochs x parameters)"] <= 10 * snaps
        seeds = tuple(m.seed for m in chunk.members)
        orders = train.epoch_orders(seeds, run.epochs, int(data.train.shape[1]), run.batch_size)
        shuffles = sum(a.nbytes for epoch in orders for a in epoch[:2])  # a row a seed
        shuffles += sum(a.nbytes for a in orders[0].per_member())  # an epoch's, a row a member
        assert shuffles <= parts["shuffles (epochs x N)"] <= 10 * shuffles
    assert est.members == len(cfg.members())


HUGE = {
    "a length of 10^9": ({"T": 10**9}, "T=1000000000"),
    "2 * 10^9 sequences": ({"N": 2 * 10**9}, "N=2000000000"),
    "a million units": ({"units": 10**6}, "1000000 units"),
    "10^9 repeats": ({"repeats": 10**9}, "1000000000 members"),
    "2 * 10^9 epochs": ({"epochs": 2 * 10**9}, "epochs=2000000000"),
    "a batch of 2 * 10^9": ({"batch_size": 2 * 10**9}, "batch_size=2000000000"),
    "a grid of lengths up to 10^8 on copy": ({"task": "copy", "grid": {"T": [21, 10**8]}}, "T=100000000"),
}


@pytest.mark.parametrize("case", list(HUGE))
def test_sizes_that_cannot_fit_are_refused_in_a_second(case, tmp_path, monkeypatch):
    """``engine.run.run`` and ``latchlab run`` (in process) refuse in one line giving the
    estimate and the limit, well within seconds, and create no store."""
    monkeypatch.delenv(limits.ENV, raising=False)
    over, named = HUGE[case]
    cfg = config.from_dict({**TINY, **over})
    t0 = time.perf_counter()
    with pytest.raises(LimitError) as e:
        runner.run(cfg)
    assert time.perf_counter() - t0 < 2.0
    msg = str(e.value)
    assert msg.startswith("memory: ") and "\n" not in msg
    assert named in msg and limits.size(limits.memory_limit()) in msg and limits.ENV in msg
    doc = tmp_path / "huge.toml"
    doc.write_text(_toml({**TINY, **over}))
    t0 = time.perf_counter()
    rc, out, err = cli_here("run", doc, "--store", tmp_path / "s.sqlite")
    assert time.perf_counter() - t0 < 5.0
    assert_user_error(rc, out, err, "memory", (named, "more than"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.toml"]


@pytest.mark.parametrize("repeats", [1, 2, 3])
def test_the_refusal_counts_a_chunks_padding_apart(repeats):
    """A chunk is padded with copies to a multiple of the devices: a one-member sweep's
    chunk of 2 says that 1 of them is real, and its sweep has "1 member", not "1 members"."""
    cfg = config.from_dict({**TINY, "units": 10**6, "repeats": repeats})
    est = limits.sweep(cfg, n_devices=2)
    padded = -(-repeats // 2) * 2
    assert est.chunk.startswith(f"a chunk of {padded} members (")
    assert (f"; {repeats} real, padded to a multiple of the 2 devices)" in est.chunk) == (padded > repeats)
    with pytest.raises(LimitError) as e:
        limits.check_sweep(cfg, limit=10**6)
    assert f"the sweep: {repeats} member{'s' if repeats > 1 else ''}, about" in str(e.value)


@pytest.mark.parametrize(
    "args, named",
    [
        (("--T", "1000000000"), "T=1000000000"),
        (("--units", "1000000"), "1000000 units"),
        (("--N", "2000000000"), "N=2000000000"),
    ],
)
def test_a_landscape_that_cannot_fit_is_refused_in_a_second(args, named, tmp_path, monkeypatch):
    monkeypatch.delenv(limits.ENV, raising=False)
    t0 = time.perf_counter()
    rc, out, err = cli_here("landscape", *args, "--out", tmp_path / "o")
    assert time.perf_counter() - t0 < 5.0
    assert_user_error(rc, out, err, "memory", (named, "more than"))
    assert not (tmp_path / "o").exists()


REPRODUCE = {
    "bengio1994, 10^9 test sequences": (
        ("bengio1994", "--config", "c.toml"),
        "n_test = 1000000000",
        "1000000000 sequences",
    ),
    "bengio1994, a length of 10^9": (("bengio1994", "--config", "c.toml"), "T = 1000000000", "T=1000000000"),
    "bengio1994, 2 * 10^9 overlay repeats": (
        ("bengio1994", "--config", "c.toml"),
        "seed_repeats = 2000000000",
        "members",
    ),
    "guessing, sequences of 2 * 10^9 steps": (("guessing", "--config", "c.toml"), "len_max = 2000000000", "len_max="),
    "guessing, blocks of 2 * 10^9 guesses": (("guessing", "--config", "c.toml"), "block = 2000000000", "blocks of"),
    "pascanu2013, 2 * 10^9 descent steps": (("pascanu2013", "--steps", "2000000000"), "", "2000000000 steps"),
    "pascanu2013, a length of 10^9": (("pascanu2013", "--T", "1000000000"), "", "T=1000000000"),
}


@pytest.mark.parametrize("case", list(REPRODUCE))
def test_reproductions_that_train_outside_the_engine_are_refused_too(case, tmp_path, monkeypatch):
    """``reproduce bengio1994|guessing --config`` and ``reproduce pascanu2013`` estimate their
    own trainers' memory before any work: one line, exit 2, no output directory."""
    monkeypatch.delenv(limits.ENV, raising=False)
    args, toml, named = REPRODUCE[case]
    (tmp_path / "c.toml").write_text(toml + "\n")
    args = tuple(str(tmp_path / a) if a == "c.toml" else a for a in args)
    t0 = time.perf_counter()
    rc, out, err = cli_here("reproduce", *args, "--out", tmp_path / "o")
    assert time.perf_counter() - t0 < 10.0
    assert_user_error(rc, out, err, "memory", (named, "more than"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


@pytest.mark.parametrize("name", ["bengio1994", "guessing", "pascanu2013", "seed", "ablations", "units", "answer"])
def test_every_shipped_scale_fits_this_machine(name, monkeypatch):
    """The published grids pass their checks here (24 GB): the limits refuse only the absurd."""
    import importlib

    monkeypatch.delenv(limits.ENV, raising=False)
    exp = importlib.import_module(f"latchlab.experiments.{name}").EXPERIMENT
    for scale in exp.scales:
        exp.check(scale)
        cfgs = exp.configs(scale)
        sweeps = [c[-1] if isinstance(c, tuple) else c for c in (cfgs if isinstance(cfgs, list) else [cfgs])]
        sweeps = [c for c in sweeps if isinstance(c, config.SweepConfig)]
        if sweeps:
            assert limits.check_sweep(sweeps).sweep_bytes < 4 * 2**30


def test_a_limit_below_a_tiny_sweep_refuses_it_before_its_store(tmp_path, monkeypatch):
    cfg = config.from_dict({**TINY, "grid": {"T": [2, 3]}})
    need = limits.sweep(cfg).sweep_bytes
    monkeypatch.setenv(limits.ENV, str(int(need) - 1))
    doc = tmp_path / "tiny.toml"
    doc.write_text(_toml({**TINY, "grid": {"T": [2, 3]}}))
    rc, out, err = cli_here("run", doc, "--store", tmp_path / "s.sqlite")
    assert_user_error(rc, out, err, "memory", (limits.size(int(need) - 1),))
    assert not (tmp_path / "s.sqlite").exists()
    monkeypatch.setenv(limits.ENV, str(int(need)))
    assert limits.check_sweep(cfg).sweep_bytes == need


def _toml(d: dict) -> str:
    """A flat sweep dict (and its ``grid`` table) as TOML."""
    top = [f"{k} = {_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    tables = [
        f"[{k}]\n" + "\n".join(f"{kk} = {_value(vv)}" for kk, vv in v.items())
        for k, v in d.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top + tables) + "\n"


def _value(v) -> str:
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(map(_value, v)) + "]"
    return repr(v)
