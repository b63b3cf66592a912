"""Benchmark: every reproduction at full scale against Keras 3 and against its arithmetic bound.

Run it from the repository root::

    .venv/bin/python bench/experiments.py                                  # every experiment, 1/10 of its seeds
    .venv/bin/python bench/experiments.py --experiments followups --fraction 1

For each experiment (``seed``, ``ablations``, ``phase``, ``followups``, ``answer``, ``units``,
``bengio1994``; ``explain``, the explain report's default, is the seed's grid twice, both
gate presets, plus the ablations and the phase diagram):

1. latchlab: ``run.run`` (no store) on the experiment's full-scale sweeps with only the first
   ``ceil(fraction x repeats)`` seeds of each (the same members the full run trains for
   those seeds), compilation included (a fresh JAX cache; the native kernels in place
   before, as ``make`` leaves them: ``seed_sweep.native_as_make``), in this process; then
   the same share again with other seeds (every shape compiled: the steady rate). The whole grid's time is the first
   run plus the steady rate times the rest of the work (sequence steps x samples x
   epochs); the share run is printed. With ``--fraction 1`` it is the measured time.
   Beside it, the share of the cores the first run kept busy (the process's CPU time, every
   thread's, over its wall time on every core): below 100 %, cores waited, and a faster kernel
   is not the only way to a shorter time.
2. Keras 3 (JAX backend), the seed's protocol on the same models: for each kind of model in
   the grid (cell, units, inputs, gate activation) a fresh ``Input -> layer(units) ->
   Dense(2, softmax)`` (``Dense(1, sigmoid)`` for ``dense1``) compiled and fitted at each
   of ``--keras-lengths`` within the grid's range (``validation_split``, ``shuffle``,
   batch size and samples as the members have them), for ``--keras-epochs`` epochs; per
   kind, epoch time = a + b T by least squares and a per-model overhead, summed over every
   member of the grid (as ``bench/seed_sweep.py`` does for the seed). Keras has no JANET
   and no LSTM without forget gate: an ``LSTM`` of the same size stands in (more work).
3. The arithmetic bound of the whole grid (flops and transcendentals, forward and backward,
   at the flop rate and the transcendental rate measured here, ``seed_sweep.remeasure``:
   before the first run and after each experiment's, every bound at the fastest of each
   rate, since this machine's speed drifts; a hard-sigmoid gate counts as ``HARD_GATE``
   flops, a sigmoid gate or a tanh as a transcendental), and latchlab's time over it. The
   bound takes the longer of the flop time and the transcendental time, as if a core could
   overlap them. On a CPU it cannot: the kernels' tanh is a rational polynomial, mostly
   multiply-adds on the units the products use. Their sum (``serial_bound_of``) is printed
   beside it, with Keras' time over it: the most that any code reaching that sum could be
   faster than Keras 3.

4. With ``--groups``, each group of the grid's members (task, cell, units, T) alone: its
   sweeps cut to it, on other seeds than the first run's, at the same fraction of them,
   every shape compiled by then; its time against its own flops-then-transcendentals time.

5. For ``explain`` at ``--fraction 1``, the whole report as its command makes it
   (``explain_command``: the sweeps stored, then the diagnostics, saturation, landscapes and
   the page), after the row's run.

``bengio1994`` is not a sweep of cells: its whole full-scale computation is timed once
(``bengio1994_row``), with no Keras counterpart.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"  # before anything imports keras
sys.path.insert(0, str(Path(__file__).parent))

# first: it points LATCHLAB_CACHE at a fresh directory, then calls ``runtime.setup()`` (one XLA
# device per core and the compilation cache, as the CLI does). Before 2026-12-05 this file
# called ``runtime.setup()`` itself before that import, so JAX's cache was the usual
# ~/.cache/latchlab/xla, warm from earlier runs, and "cold" held for the native kernels only.
import seed_sweep as SS  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from latchlab import config, provenance, runtime  # noqa: E402
from latchlab.engine import run as runner  # noqa: E402

EXPERIMENTS = ("seed", "ablations", "phase", "followups", "answer", "units", "bengio1994")

# per unit and time step, forward: pre-activations (2 (F + H) flops each, plus the bias),
# the elementwise update (flops per unit), the gate activations and the tanh. A sigmoid
# gate counts as one transcendental; a hard sigmoid (Keras 2's and 3's) as HARD_GATE flops
# (a multiply-add and a clip), no transcendental.
GATES = {"srnn": 1, "lstm": 4, "lstm_nofg": 3, "gru": 3, "janet": 2}
ELEMENTWISE = {"srnn": 0, "lstm": 4, "lstm_nofg": 3, "gru": 6, "janet": 4}
SIGMOIDS = {"srnn": 0, "lstm": 3, "lstm_nofg": 2, "gru": 2, "janet": 2}  # JANET: rsig(s) and rsig(1 - s)
TANHS = {"srnn": 1, "lstm": 2, "lstm_nofg": 2, "gru": 1, "janet": 1}
HARD_GATE = 4


def sweeps(name: str) -> list[config.SweepConfig]:
    """The experiment's full-scale sweeps."""
    from importlib import import_module

    if name == "explain":
        from latchlab.experiments import ablations, explain, phase

        return explain.seed_configs("full") + [c for _, _, c in ablations.configs("full")] + phase.configs("full")
    cfgs = import_module(f"latchlab.experiments.{name}").EXPERIMENT.configs("full")
    cfgs = cfgs if isinstance(cfgs, (list, tuple)) else [cfgs]
    return [c[-1] if isinstance(c, tuple) else c for c in cfgs]


def members(cfgs) -> list[config.Member]:
    return list({m.id: m for c in cfgs for m in c.members()}.values())


def work(ms) -> float:
    return float(sum(m.run.T * m.run.N * m.run.epochs for m in ms))


def fraction_of(cfgs, fraction: float, other_seeds: bool = False) -> list[config.SweepConfig]:
    """Each sweep with the first ``ceil(fraction x repeats)`` of its seeds (or as many seeds
    past its last, ``other_seeds``: the same shapes, members not trained before)."""
    out = []
    for c in cfgs:
        d = c.to_dict()
        d["repeats"] = max(1, math.ceil(fraction * c.repeats))
        if other_seeds:
            d["seed"] = c.seed + c.repeats
        out.append(config.from_dict(d))
    return out


GROUP = ("task", "cell", "units", "T")


def group_of(m: config.Member) -> tuple:
    """The member's group: its task, cell, units and length (``--groups``)."""
    return tuple(getattr(m.run, k) for k in GROUP)


def restricted(cfgs, key: tuple) -> list[config.SweepConfig]:
    """The sweeps of ``cfgs`` cut to the members of group ``key`` (``group_of``)."""
    out = []
    for c in cfgs:
        d = c.to_dict()
        grid, keep = dict(d.get("grid") or {}), True
        for k, v in zip(GROUP, key):
            if k in grid:
                keep &= v in grid[k]
                grid[k] = [v]
            else:
                keep &= d.get(k) == v
        if keep:
            out.append(config.from_dict({**d, "grid": grid}))
    return out


def group_rows(cfgs, fraction: float) -> list[tuple]:
    """Each group's time (``group_of``: the sweeps cut to it, at ``fraction`` of their seeds,
    on other seeds than the first run's, every shape compiled by then), its members and its
    flops-then-transcendentals time (``serial_bound_of``): where an experiment's time goes."""
    other = fraction_of(cfgs, fraction, other_seeds=True)
    rows = []
    for key in sorted({group_of(m) for m in members(other)}, key=str):
        part = restricted(other, key)
        t0 = time.perf_counter()
        runner.run(part)
        ms = members(part)
        rows.append((key, len(ms), time.perf_counter() - t0, work_counts(ms)))
    return rows


def explain_command() -> float:
    """Seconds of the explain report as its command makes it (``explain.explain`` into a new
    directory: its sweeps stored, then every analysis and the page), its shapes compiled by
    the sweeps' run before: what a user waits for, where the table's row is the sweeps."""
    import tempfile

    from latchlab.experiments import explain

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        explain.explain(out=Path(out))
        return time.perf_counter() - t0


# ---------------------------------------------------------------------------- Keras


def kind(m: config.Member) -> tuple:
    """What a Keras model of the member depends on (besides T)."""
    r = m.run
    mod = r.model
    return (r.cell, r.units, mod.n_in, mod.cell.rsig, mod.cell.reset_after, r.head, r.N, r.batch_size, r.val_frac)


def keras_model(keras, k: tuple):
    cell, units, n_in, rsig, reset_after, head, *_ = k
    act = "sigmoid" if rsig == "sigmoid" else "hard_sigmoid"
    inp = keras.Input((None, n_in))
    if cell == "srnn":
        layer = keras.layers.SimpleRNN(units)
    elif cell == "gru":
        layer = keras.layers.GRU(units, recurrent_activation=act, reset_after=reset_after)
    else:  # lstm; lstm_nofg and janet have no Keras layer: an LSTM of the same size stands in
        layer = keras.layers.LSTM(units, recurrent_activation=act)
    h = layer(inp)
    if head == "dense1":
        out = keras.layers.Dense(1, activation="sigmoid")(h)
        loss = "binary_crossentropy"
    else:
        out = keras.layers.Dense(2, activation="softmax")(h)
        loss = "sparse_categorical_crossentropy"
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


def time_keras(keras, k: tuple, T: int, epochs: int, clock, rng) -> tuple[float, float]:
    """(steady seconds per epoch, per-model overhead) of one fresh model at length T."""
    *_, N, batch, val_frac = k
    t0 = time.perf_counter()
    x = rng.normal(0.0, 0.1, (N, T, k[2])).astype(np.float32)
    y = rng.integers(0, 2, N)
    timed = SS.timed_fit(keras, keras_model(keras, k), x, y, epochs, clock, batch, val_frac)
    steady = SS.steady_epoch(timed)
    return steady, time.perf_counter() - t0 - epochs * steady


def keras_seconds(ms, lengths: list[int], epochs: int) -> tuple[float, int]:
    """Keras' extrapolated time for every member of ``ms``, and the models it timed."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    clock = SS._CompileClock()
    by_kind = defaultdict(list)
    for m in ms:
        by_kind[kind(m)].append(m)
    total, timed = 0.0, 0
    try:
        for k, group in by_kind.items():
            Ts = sorted({m.run.T for m in group})
            points = sorted({min(max(T, Ts[0]), Ts[-1]) for T in lengths})
            keras_model(keras, k)  # one untimed build of the kind: the process's one-time costs
            got = [time_keras(keras, k, T, epochs, clock, rng) for T in points]
            timed += len(points)
            e = np.array([g[0] for g in got])
            b, a = np.polyfit(points, e, 1) if len(points) > 1 else (0.0, float(e[0]))
            over = float(np.mean([g[1] for g in got]))
            total += sum(m.run.epochs * (a + b * m.run.T) + over for m in group)
    finally:
        clock.close()
    return total, timed


# ---------------------------------------------------------------------------- bound


def work_counts(ms) -> tuple[float, float]:
    """Flops and transcendentals of training and validating every member (hard-sigmoid gates
    are flops, sigmoid gates and tanh transcendentals)."""
    flops = trans = 0.0
    for m in ms:
        r = m.run
        H, F = r.units, r.model.n_in
        n_val = r.N - int(r.N * (1 - r.val_frac))
        n_train = r.N - n_val
        seqs = r.epochs * ((1 + SS.BWD_FLOP_FACTOR) * n_train + n_val)
        soft = r.model.cell.rsig == "sigmoid"
        per_step = GATES[r.cell] * H * (2 * (F + H) + 1) + ELEMENTWISE[r.cell] * H
        per_step += 0 if soft else HARD_GATE * SIGMOIDS[r.cell] * H
        flops += per_step * r.T * seqs
        trans += (TANHS[r.cell] + (SIGMOIDS[r.cell] if soft else 0)) * H * r.T * r.epochs * r.N
    return flops, trans


def bound_of(*parts: tuple[float, float]) -> float:
    """The least time of ``parts`` (each ``(flops, transcendentals)``, done one after the
    other) at the fastest flop and transcendental rates measured in this process
    (``seed_sweep.flop_rate``, ``seed_sweep.trans_rate``)."""
    return sum(max(f / SS.flop_rate(), t / SS.trans_rate()) for f, t in parts)


def serial_bound_of(*parts: tuple[float, float]) -> float:
    """``bound_of`` with each part's flops and transcendentals one after the other: the least
    time where both take the same execution units (a CPU's multiply-add units do both)."""
    return sum(f / SS.flop_rate() + t / SS.trans_rate() for f, t in parts)


def started() -> tuple[float, float]:
    """The wall clock and this process's CPU time (every thread's), now."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """Seconds since ``start`` (``started``), and the share of the process's cores it kept busy
    meanwhile: its CPU time over that time on every core. Below 1, cores waited: on one
    thread's work, on each other, or on memory the system had to provide."""
    wall = time.perf_counter() - start[0]
    return wall, (time.process_time() - start[1]) / (wall * runtime.cores())


def bengio1994_row() -> tuple:
    """``reproduce bengio1994 --scale full``'s computation, timed (no store), and its bound:
    the work any trainer of its trials must do, plus the overlaid seed sweep's, as ``(flops,
    transcendentals)`` parts for ``bound_of``. A step of a_t = w tanh(a_{t-1}) + h_t is 2 flops
    and one tanh, and the first L steps of a sequence depend only on its class (the trainable
    inputs h), so a pass over n sequences takes 2 L + (T - L) n steps (``b94_steps``). A trial
    trains ``steps`` full-batch steps (until it converged, or its whole budget), forward and
    backward over its training set; is checked before the first step and every ``check_every``
    after; and reports its final loss on both sets. A check that fails may stop at the first
    sequence that fails it, so it counts T steps; a whole pass over the test set counts once
    (the check that passes is one over the final parameters). Keras has no model of one
    neuron with trainable inputs trained full-batch, so there is no Keras time for it."""
    # the modules its computation imports on first use (matplotlib among them), imported
    # before the timer as a sweep's row has them by then: the row times the same alone
    # (``--experiments bengio1994``) as after the others
    import latchlab.analysis.plot  # noqa: F401
    import latchlab.engine.run  # noqa: F401
    import latchlab.experiments.seed  # noqa: F401
    import latchlab.store  # noqa: F401
    from latchlab.experiments import bengio1994 as B
    from latchlab.experiments.experiment import Runner

    start = started()
    r = B.EXPERIMENT.compute(Runner.at(None), "full")
    seconds, busy = since(start)
    cfg, rows = r.cfg, r.rows
    overlay = members([B.seed_overlay_sweep(cfg)]) if cfg.seed_repeats else []
    parts = [b94_work(cfg, rows)] + ([work_counts(overlay)] if overlay else [])
    return len(rows) + len(overlay), seconds, busy, parts


def b94_steps(T, L: int, n: int):
    """Recurrence steps of a pass over ``n`` sequences of length ``T`` whose first ``L`` steps
    depend only on their class (two classes)."""
    return 2 * np.minimum(T, L) + np.maximum(T - L, 0) * n


def b94_work(cfg, rows) -> tuple[float, float]:
    """``bengio1994_row``'s ``(flops, transcendentals)`` for the trials in ``rows``."""
    T = rows["T"].to_numpy(float)
    done = rows.converged.to_numpy(bool)
    steps = np.where(done, rows.epochs.to_numpy(float), cfg.epochs // cfg.check_every * cfg.check_every)
    checks = steps // cfg.check_every + 1
    train, test = b94_steps(T, cfg.L, cfg.n_train), b94_steps(T, cfg.L, cfg.n_test)
    # the training steps and the final training loss; the checks that fail; one whole test
    # pass (the check that passes, whose parameters are the final ones, or the final metrics)
    forward = (steps + 1) * train + (checks - done) * T + test
    trans = float(forward.sum())
    flops = float((2 * forward + 2 * SS.BWD_FLOP_FACTOR * steps * train).sum())
    return flops, trans


# ---------------------------------------------------------------------------- main


def _rates(rates: tuple[float, float]) -> str:
    return f"rates after it {rates[0] / 1e9:.0f} GFLOP/s, {rates[1] / 1e9:.2f} x 10^9/s"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiments", default=",".join(EXPERIMENTS), help="comma-separated; also: explain")
    ap.add_argument("--fraction", type=float, default=0.1, help="share of each sweep's seeds latchlab runs")
    ap.add_argument("--keras-lengths", default="2,100,200", help="lengths at which to time Keras (within each grid)")
    ap.add_argument("--keras-epochs", type=int, default=2)
    ap.add_argument("--no-keras", action="store_true", help="latchlab and the bound only")
    ap.add_argument(
        "--groups", action="store_true", help="also each (task, cell, units, T) group's time against its bound"
    )
    a = ap.parse_args(argv)
    names = [s.strip() for s in a.experiments.split(",") if s.strip()]
    lengths = sorted({int(s) for s in a.keras_lengths.split(",") if s.strip()})
    if not 0 < a.fraction <= 1 or not lengths or a.keras_epochs < 1:
        ap.error("need 0 < --fraction <= 1, lengths and --keras-epochs >= 1")
    print("# every experiment: latchlab against Keras 3 and the arithmetic bound (one process)")
    print(
        f"# jax {jax.__version__} ({jax.default_backend()}:{jax.device_count()}), cpus {os.cpu_count()}, "
        f"commit {provenance.git_commit()}, load avg at start {SS._load()}"
    )
    print(f"# {SS.native_as_make()}")
    print(
        f"# measured flop rate {SS.flop_rate() / 1e9:.0f} GFLOP/s (numpy matrix product, every core), "
        f"transcendental rate {SS.trans_rate() / 1e9:.2f} x 10^9/s (the kernels' tanh, every core)"
    )
    rows = []
    for name in names:
        if name == "bengio1994":
            n, t_ll, busy, parts = bengio1994_row()
            rates = SS.remeasure()
            rows.append((name, n, 1.0, t_ll, busy, t_ll, float("nan"), parts))
            print(
                f"{name}: {n} trials and members in {t_ll:.2f} s, cores {busy:.0%} busy; no Keras model; "
                f"{_rates(rates)}",
                flush=True,
            )
            continue
        cfgs = sweeps(name)
        full = members(cfgs)
        part_cfgs = fraction_of(cfgs, a.fraction)
        part = members(part_cfgs)
        share = work(part) / work(full)
        start = started()
        runner.run(part_cfgs)
        t_part, busy = since(start)
        t_ll = t_part
        if share < 1:  # the rest at the steady rate: the same share, other seeds, shapes compiled
            t0 = time.perf_counter()
            runner.run(fraction_of(cfgs, a.fraction, other_seeds=True))
            t_ll += (time.perf_counter() - t0) * (1 / share - 1)
        rates = SS.remeasure()  # right after latchlab's run, before Keras'
        t_k, timed = (float("nan"), 0) if a.no_keras else keras_seconds(full, lengths, a.keras_epochs)
        rows.append((name, len(full), share, t_part, busy, t_ll, t_k, [work_counts(full)]))
        print(
            f"{name}: {len(full)} members; latchlab ran {len(part)} ({share:.1%} of the work) in {t_part:.1f} s "
            f"(cores {busy:.0%} busy) "
            f"-> {t_ll:.1f} s for the grid; Keras {t_k:.1f} s ({timed} models timed); {_rates(rates)}; "
            f"load {SS._load()}",
            flush=True,
        )
        if name == "explain" and a.fraction == 1:
            t_cmd = explain_command()
            print(f"explain: the whole report (its sweeps into a new store, the analyses, the page) {t_cmd:.1f} s")
        if a.groups:
            for key, n, t, counts in group_rows(cfgs, a.fraction):
                serial = serial_bound_of(counts)
                print(
                    f"  {name} group {'/'.join(map(str, key))}: {n} members in {t:.2f} s; flops then "
                    f"transcendentals {serial:.2f} s, {t / serial:.2f}x",
                    flush=True,
                )
    # every bound at the fastest rates measured in the process (before the first run and
    # after each): a bound is a least time, and this machine's speed drifts
    print(
        f"\n# bounds at the fastest rates measured: {SS.flop_rate() / 1e9:.0f} GFLOP/s, "
        f"{SS.trans_rate() / 1e9:.2f} x 10^9 transcendentals/s"
    )
    print(
        "\n| experiment | members | latchlab ran | cores busy | latchlab, whole grid | Keras 3 | Keras / latchlab "
        "| bound | latchlab / bound | flops then transcendentals | latchlab / it | Keras / it |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    table = [
        (name, n, share, t_part, busy, t_ll, t_k, bound_of(*parts), serial_bound_of(*parts))
        for name, n, share, t_part, busy, t_ll, t_k, parts in rows
    ]
    for name, n, share, t_part, busy, t_ll, t_k, bound, serial in table:
        keras = f"{t_k:.0f} s | {t_k / t_ll:.0f}x" if np.isfinite(t_k) else "n/a | n/a"
        ceiling = f"{t_k / serial:.0f}x" if np.isfinite(t_k) else "n/a"
        print(
            f"| {name} | {n} | {share:.0%} of the work, {t_part:.1f} s | {busy:.0%} | {t_ll:.1f} s | {keras} | "
            f"{bound:.2f} s | {t_ll / bound:.1f}x | {serial:.2f} s | {t_ll / serial:.1f}x | {ceiling} |"
        )
    for name, n, share, t_part, busy, t_ll, t_k, bound, serial in table:
        print(
            f"RESULT experiment={name} members={n} fraction={share:.3f} busy={busy:.2f} latchlab_s={t_ll:.1f} "
            f"keras_s={t_k:.0f} "
            f"ratio={t_k / t_ll:.1f} bound_s={bound:.2f} over_bound={t_ll / bound:.1f} serial_bound_s={serial:.2f} "
            f"over_serial_bound={t_ll / serial:.1f} keras_over_serial_bound={t_k / serial:.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
