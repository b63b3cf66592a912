"""Benchmark: latchlab's seed sweep against the seed's own Keras code, in one process.

Run it from the repository root::

    .venv/bin/python bench/seed_sweep.py                       # quick grid (the default)
    .venv/bin/python bench/seed_sweep.py --scale full          # the seed's whole grid
    .venv/bin/python bench/seed_sweep.py --keras-lengths 2,50,200 --keras-epochs 3

What it measures:

1. latchlab: wall time of ``run.run`` on ``reproduce.seed_config(scale,
   splits=("stratified",), preset="keras3")`` (one-unit SimpleRNN and LSTM, Dense(2)
   softmax, Adam, batch 16, 5 epochs, N = 10000, sigmoid gates), compilation included,
   with ``provenance.Profile``'s per-phase breakdown. ``--latchlab-lengths`` runs a
   subset of the grid's lengths (for a quick test on a loaded machine).
2. Keras 3 (JAX backend), the seed's code: for each cell and each of a few lengths, a
   fresh ``Input((None, 1)) -> cell(1) -> Dense(2, softmax)`` model compiled and fitted
   exactly as the seed does (``epochs``, ``shuffle=True, validation_split=0.2,
   batch_size=16, verbose=0``) for ``--keras-epochs`` epochs. Each epoch is timed by a
   callback (validation included). The steady per-epoch time is the mean of epochs
   2.. (with one epoch: the first minus the JAX compile time it contained); the
   per-model overhead is everything else (data generation, build, compile, fit-call
   setup and the first epoch's compilation).
3. Extrapolation: per cell, per-epoch time = a + b*T by least squares over the measured
   lengths, per-model overhead = its mean. A sweep costs, per model trained,
   ``epochs * (a + b*T) + overhead``; this is summed over (a) the members latchlab ran
   (same grid, like-for-like) and (b) the seed's full grid: 26 lengths (30 listed twice,
   and the seed runs it twice) x 30 repeats x 2 cells.
4. An arithmetic lower bound for the full sweep (flop and transcendental counts divided
   by the machine's rates, measured in the same process before and after latchlab's sweep,
   the faster of each: ``remeasure``); the assumptions are printed with it.

The last line is ``RESULT scale=... latchlab_s=... keras_same_grid_s=... ratio=...
keras_full_s=...`` for grepping. Run it on an otherwise idle machine for numbers worth
quoting: the load average is printed at start and end.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"  # before anything imports keras
# a fresh cache directory unless one is given: every shape is compiled within the timed run
# ("compile included"); the native kernels are there before it, as ``make`` leaves them
# (``native_as_make``)
if "LATCHLAB_CACHE" not in os.environ:
    import tempfile

    os.environ["LATCHLAB_CACHE"] = os.path.join(tempfile.mkdtemp(prefix="latchlab-bench-"), "xla")

import argparse  # noqa: E402
import functools  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from latchlab import runtime  # noqa: E402

runtime.setup()  # one XLA device per core and the compilation cache, as the CLI does

import jax  # noqa: E402
import numpy as np  # noqa: E402

from latchlab import config, provenance  # noqa: E402
from latchlab.experiments import seed as reproduce  # noqa: E402
from latchlab.engine import run as runner  # noqa: E402

CELLS = ("srnn", "lstm")  # latchlab names; Keras: SimpleRNN, LSTM
KERAS_CELL = {"srnn": "SimpleRNN", "lstm": "LSTM"}

# The seed's experiment, as its code wrote it.
SEED_LENGTHS = reproduce.SEED_LENGTHS  # 26 entries, 30 twice
SEED_REPEATS = 30
SEED_N = 10000
SEED_EPOCHS = 5
SEED_VAL_SPLIT = 0.2
SEED_BATCH = 16
SEED_NOISE = 0.1

# Arithmetic bound: work per time step per sequence for one unit with one input, forward.
# LSTM: 4 gate pre-activations w*x + u*h + b (4 flops each = 16), c = f*c + i*g (3),
# h = o*tanh(c) (1): 20 flops; 3 sigmoids + 2 tanh: 5 transcendentals.
# SimpleRNN: w*x + u*h + b (4 flops), 1 tanh.
FWD_FLOPS = {"lstm": 20, "srnn": 4}
FWD_TRANS = {"lstm": 5, "srnn": 1}
BWD_FLOP_FACTOR = 2.0  # backward ~ 2x forward flops; activations' derivatives reuse outputs
TRANS_RATE_PER_CORE = 3.5e9  # nominal transcendentals/s/core: only where trans_rate cannot measure
CORES = 2


# The fastest rates measured in this process (``remeasure``): this virtual machine's speed
# drifts by up to 1.8x within minutes (the kernels' tanh read 3.2 x 10^9 a second at the start
# of a table, and 4.8-5.7 x 10^9 in fresh processes minutes later), and a bound at a slow
# moment's rate would flatter the times beside it. A bound is a least time, so it takes the
# fastest rate the machine showed.
_RATES: dict[str, float] = {}


def remeasure() -> tuple[float, float]:
    """Measure the flop and transcendental rates now (``measure_flop_rate``,
    ``measure_trans_rate``) and keep the fastest of each seen in this process, which
    ``flop_rate`` and ``trans_rate`` return; returns this measurement's two rates."""
    f, t = measure_flop_rate(), measure_trans_rate()
    _RATES["flop"] = max(_RATES.get("flop", 0.0), f)
    _RATES["trans"] = max(_RATES.get("trans", 0.0), t)
    return f, t


def flop_rate() -> float:
    """The fastest flop rate measured in this process (measured first if none was)."""
    if not _RATES:
        remeasure()
    return _RATES["flop"]


def trans_rate() -> float:
    """The fastest transcendental rate measured in this process (measured first if none was)."""
    if not _RATES:
        remeasure()
    return _RATES["trans"]


def measure_flop_rate() -> float:
    """The machine's float32 flop rate, measured: the best of 15 2048 x 2048 matrix products
    through numpy's BLAS on every core (~300 GFLOP/s on the 2-core AVX-512 Xeon of
    docs/benchmarks.md; was a nominal 100 GFLOP/s before multi-unit cells made flops, not
    transcendentals, the bound). The best of five read 90-154 GFLOP/s within two minutes on
    a Zen 3, of 15 121-142. For AVX2 code on an AVX-512 machine, measure with
    ``OPENBLAS_CORETYPE=Haswell``.

    Where the kernels are built for AVX-512 and OpenBLAS chose another core's code for this
    CPU (it takes a Zen 5 for a Haswell: 221-246 GFLOP/s there, against 407-436 with its
    AVX-512 code), the products are also timed in a child process with
    ``OPENBLAS_CORETYPE=SkylakeX``, and the faster rate counts: the bound is the least time
    of the kernels' instruction set."""
    rate = _product_rate()
    if kernels_isa() == "avx512" and blas_core().lower() not in AVX512_BLAS_CORES:
        import inspect
        import subprocess

        # numpy alone in the child (this module would import JAX and latchlab first)
        code = f"import time\nimport numpy as np\n{inspect.getsource(_product_rate)}print(_product_rate())"
        env = {**os.environ, "OPENBLAS_CORETYPE": "SkylakeX"}
        child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if child.returncode == 0:  # else (OpenBLAS's AVX-512 code cannot run here) this process's rate stands
            rate = max(rate, float(child.stdout.split()[-1]))
    return rate


# OpenBLAS's cores whose float32 products use AVX-512
AVX512_BLAS_CORES = ("skylakex", "cooperlake", "sapphirerapids")


def _product_rate() -> float:
    """``measure_flop_rate``'s products in this process."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(15):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * 2048**3 / best


@functools.cache
def blas_core() -> str:
    """The core whose code numpy's OpenBLAS runs here ("" where it does not say)."""
    import ctypes
    import glob

    for path in glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "*openblas*")):
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            if hasattr(lib, name):
                f = getattr(lib, name)
                f.restype = ctypes.c_char_p
                return (f() or b"").decode()
    return ""


@functools.cache
def _tanh_library():
    """``bench/tanh_rate.cpp`` built as the kernels are (None where it cannot be built)."""
    import ctypes

    from latchlab.engine import native

    try:
        flags = native.FLAGS + (f"-march={native.march()}", f"-I{native.HEADER.parent}")
        return ctypes.CDLL(str(native._compile(Path(__file__).with_name("tanh_rate.cpp"), "tanh-rate", flags)))
    except (OSError, RuntimeError):
        return None


def kernels_isa() -> str:
    """The instruction set the native kernels are built for here ("" where they cannot be)."""
    import ctypes

    so = _tanh_library()
    if so is None:
        return ""
    so.tanh_isa.restype = ctypes.c_char_p
    return so.tanh_isa().decode()


def measure_trans_rate() -> float:
    """The machine's transcendental rate, measured: the native kernels' tanh (XLA:CPU's
    rational approximation, ``bench/tanh_rate.cpp``), built as the kernels are, over 4096
    independent floats in cache on every core at once, the best of 25 rounds of about 20 ms
    (each round timed by its slowest core; the best of seven read 3.4-4.9 x 10^9 a second
    within a minute on a Zen 3, of 25 4.0-4.3). Before 2026-12-02 the bound used a nominal
    3.5 x 10^9 a second a core, which an AVX2 Zen 3 does not reach (2.0-2.2 x 10^9 a core,
    docs/benchmarks.md); the nominal rate stays where the tanh cannot be built (no compiler)."""
    import ctypes
    import threading

    so = _tanh_library()
    if so is None:
        return TRANS_RATE_PER_CORE * CORES
    so.tanh_loop.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    n, reps = 4096, 10_000
    bufs = []  # per core: a 64-byte aligned view (the loop reads whole vectors)
    for k in range(CORES):
        raw = np.empty(n + 16, np.float32)
        bufs.append(raw[(-raw.ctypes.data % 64) // 4 :][:n])
        bufs[k][:] = np.random.default_rng(k).uniform(-3, 3, n)
    best = float("inf")
    for _ in range(25):
        start = threading.Barrier(CORES)
        took = [0.0] * CORES

        def one(k: int) -> None:
            start.wait()
            t = time.perf_counter()
            so.tanh_loop(bufs[k].ctypes.data, n, reps)  # ctypes lets go of the GIL
            took[k] = time.perf_counter() - t

        threads = [threading.Thread(target=one, args=(k,)) for k in range(CORES)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        best = min(best, max(took))
    return CORES * n * reps / best


_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


# ---------------------------------------------------------------------------- latchlab


def latchlab_config(scale: str, lengths: list[int] | None) -> config.SweepConfig:
    """The seed sweep as latchlab runs it, optionally restricted to some of its lengths."""
    cfg = reproduce.seed_config(scale, splits=("stratified",), preset="keras3")
    if lengths:
        d = cfg.to_dict()
        grid_T = d["grid"]["T"]
        bad = [T for T in lengths if T not in grid_T]
        if bad:
            sys.exit(f"--latchlab-lengths {bad} not in the {scale} grid {sorted(set(grid_T))}")
        d["grid"]["T"] = sorted(set(lengths))
        d["name"] = f"{d['name']}-subset"
        cfg = config.from_dict(d)
    return cfg


def distinct_members(cfg: config.SweepConfig) -> list[config.Member]:
    """The members latchlab trains: duplicates (the seed's second T=30) only once."""
    return list({m.id: m for m in cfg.members()}.values())


def run_latchlab(cfg: config.SweepConfig) -> dict:
    """Wall time of the whole sweep (compilation included) and its per-phase profile."""
    prof = provenance.Profile()
    t0 = time.perf_counter()
    df = runner.run(cfg, None, timer=prof)
    wall = time.perf_counter() - t0
    phases = prof.table()  # snapshot now: the listener would also count Keras' compiles
    final = df[df.epoch == df.epoch.max()]
    acc = final.groupby("cell").val_acc.mean().to_dict()
    return {"wall": wall, "phases": phases, "val_acc": acc, "members": len(final)}


# ---------------------------------------------------------------------------- Keras


class _CompileClock:
    """Seconds JAX reports spending on tracing, lowering and compiling (any function)."""

    def __init__(self):
        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event, duration, **kw):
        if event in _COMPILE_EVENTS:
            self.seconds += duration

    def close(self):
        try:
            jax.monitoring.unregister_event_duration_listener(self._on_event)
        except (AttributeError, ValueError, AssertionError):
            pass


def seed_data(T: int, rng: np.random.Generator, N: int = SEED_N):
    """The seed's data: +-1 at t=0 plus N(0, 0.1) noise at every step; first half positive."""
    x = rng.normal(0.0, SEED_NOISE, (N, T, 1))
    x[: N // 2, 0, 0] += 1.0
    x[N // 2 :, 0, 0] -= 1.0
    y = np.zeros(N, np.int64)
    y[: N // 2] = 1
    return x, y


def seed_model(keras, cell: str):
    """The seed's model, built and compiled as the seed does."""
    inp = keras.Input((None, 1))
    h = getattr(keras.layers, KERAS_CELL[cell])(1)(inp)
    out = keras.layers.Dense(2, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def timed_fit(
    keras,
    model,
    x,
    y,
    epochs: int,
    clock: _CompileClock,
    batch_size: int = SEED_BATCH,
    validation_split: float = SEED_VAL_SPLIT,
) -> list[tuple[float, float]]:
    """Fit as the seed does (``shuffle=True``, ``validation_split``); per epoch, its seconds
    (validation included) and the seconds JAX reported compiling within it."""
    marks = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append([time.perf_counter(), clock.seconds])

        def on_epoch_end(self, epoch, logs=None):  # called after validation
            # reading the metrics waits for the epoch's (asynchronously dispatched) work
            {k: float(v) for k, v in (logs or {}).items()}
            marks[-1] += [time.perf_counter(), clock.seconds]

    model.fit(
        x,
        y,
        epochs=epochs,
        shuffle=True,
        validation_split=validation_split,
        batch_size=batch_size,
        verbose=0,
        callbacks=[EpochTimer()],
    )
    return [(b1 - b0, k1 - k0) for b0, k0, b1, k1 in marks]


def steady_epoch(epochs: list[tuple[float, float]]) -> float:
    """The steady per-epoch seconds of ``timed_fit``'s epochs: the mean of epochs 2.., or with
    one epoch, the first minus what JAX compiled in it."""
    return float(np.mean([e for e, _ in epochs[1:]])) if len(epochs) > 1 else epochs[0][0] - epochs[0][1]


def time_keras_point(
    keras, cell: str, T: int, epochs: int, clock: _CompileClock, rng: np.random.Generator, N: int = SEED_N
) -> dict:
    """Time one fresh seed model at length T: overhead and steady per-epoch seconds."""
    c0 = clock.seconds
    t0 = time.perf_counter()
    x, y = seed_data(T, rng, N)
    t1 = time.perf_counter()
    model = seed_model(keras, cell)
    t2 = time.perf_counter()
    timed = timed_fit(keras, model, x, y, epochs, clock)
    t3 = time.perf_counter()
    steady = steady_epoch(timed)
    total = t3 - t0
    return {
        "cell": cell,
        "T": T,
        "data": t1 - t0,
        "build": t2 - t1,
        "fit": t3 - t2,
        "epochs": [e for e, _ in timed],
        "steady": steady,
        "overhead": total - epochs * steady,
        "jax_compile": clock.seconds - c0,
        "compile_first_epoch": timed[0][1],
    }


def warm_up(keras, cell: str, rng: np.random.Generator):
    """One tiny untimed fit per cell, so one-time process costs don't land on a point."""
    x, y = seed_data(2, rng, N=80)
    seed_model(keras, cell).fit(
        x, y, epochs=1, shuffle=True, validation_split=SEED_VAL_SPLIT, batch_size=SEED_BATCH, verbose=0
    )


def run_keras(lengths: list[int], epochs: int) -> tuple[list[dict], dict]:
    """Measured points, and per cell the fitted model ``(a, b, overhead)``."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    clock = _CompileClock()
    points = []
    try:
        for cell in CELLS:
            warm_up(keras, cell, rng)
            for T in lengths:
                points.append(time_keras_point(keras, cell, T, epochs, clock, rng))
    finally:
        clock.close()
    fits = {}
    for cell in CELLS:
        pts = [p for p in points if p["cell"] == cell]
        Ts = np.array([p["T"] for p in pts], float)
        e = np.array([p["steady"] for p in pts])
        if len(set(Ts)) >= 2:
            b, a = np.polyfit(Ts, e, 1)
        else:
            a, b = float(e.mean()), 0.0
        fits[cell] = (float(a), float(b), float(np.mean([p["overhead"] for p in pts])))
    return points, fits


def keras_sweep_seconds(fits: dict, runs: list[tuple[str, int]], epochs: int = SEED_EPOCHS) -> float:
    """Extrapolated Keras time for training one fresh model per ``(cell, T)`` in ``runs``."""
    total = 0.0
    for cell, T in runs:
        a, b, overhead = fits[cell]
        total += epochs * (a + b * T) + overhead
    return total


def seed_runs() -> list[tuple[str, int]]:
    """Every model the seed's code trains: 2 cells x 26 lengths x 30 repeats."""
    return [(c, T) for c in CELLS for T in SEED_LENGTHS for _ in range(SEED_REPEATS)]


# ---------------------------------------------------------------------------- bound


def arithmetic_bound(
    runs: list[tuple[str, int]], epochs: int = SEED_EPOCHS, N: int = SEED_N, val_frac: float = SEED_VAL_SPLIT
) -> dict:
    """Flops, transcendentals and the time they need at the measured rates, per cell."""
    n_val = N - int(N * (1 - val_frac))
    n_train = N - n_val
    out = {}
    for cell in CELLS:
        steps = sum(T for c, T in runs if c == cell)  # sequence length summed over models
        flops = FWD_FLOPS[cell] * steps * epochs * ((1 + BWD_FLOP_FACTOR) * n_train + n_val)
        trans = FWD_TRANS[cell] * steps * epochs * (n_train + n_val)
        t_f, t_t = flops / flop_rate(), trans / trans_rate()
        out[cell] = {"flops": flops, "trans": trans, "t_flops": t_f, "t_trans": t_t, "bound": max(t_f, t_t)}
    return out


# ---------------------------------------------------------------------------- report


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def native_as_make() -> str:
    """Every variant of the native kernels in this run's cache before anything is timed, as
    ``make`` leaves them after installing (``python -m latchlab.engine.native``): copied
    from latchlab's usual cache (``~/.cache/latchlab``) where a library of the same source,
    flags and CPU is there (its name is their hash), else built now. Returns what it did."""
    import shutil
    from pathlib import Path

    from latchlab.engine import native

    here, usual = native.cache_dir(), Path.home() / ".cache" / "latchlab" / "native"
    copied = 0
    if usual.resolve() != here.resolve() and usual.is_dir():
        here.mkdir(parents=True, exist_ok=True)
        for so in [*usual.glob("*.so"), *usual.glob("*.check")]:  # libraries, and prng's checks
            if not (here / so.name).exists():
                shutil.copy2(so, here / so.name)
                copied += so.suffix == ".so"
    t0 = time.perf_counter()
    built, failed = native.build_all()
    try:
        native.bengio94()
    except RuntimeError as e:
        failed["bengio94"] = str(e)
    if native.prng() is None:
        failed["prng"] = "unavailable"
    return (
        f"native kernels as make leaves them ({native.compiler_version()}, -march={native.march()}): "
        f"{len(built)} variants ready ({copied} libraries copied from "
        f"{usual}, the rest built in {time.perf_counter() - t0:.1f} s, untimed), {len(failed)} failed"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--scale",
        choices=tuple(reproduce.SCALES),
        default="quick",
        help="latchlab grid: quick (a subset) or full (the seed's)",
    )
    ap.add_argument(
        "--keras-lengths", default="2,50,200", help="comma-separated lengths at which to time the Keras code"
    )
    ap.add_argument(
        "--keras-epochs",
        type=int,
        default=1,
        help="epochs per timed Keras fit (>1 separates compilation from an epoch)",
    )
    ap.add_argument(
        "--latchlab-lengths", default=None, help="comma-separated subset of the grid's lengths (for testing only)"
    )
    args = ap.parse_args(argv)
    keras_lengths = sorted({int(s) for s in args.keras_lengths.split(",") if s.strip()})
    if not keras_lengths or min(keras_lengths) < 1 or args.keras_epochs < 1:
        ap.error("need lengths >= 1 and --keras-epochs >= 1")
    ll_lengths = [int(s) for s in args.latchlab_lengths.split(",") if s.strip()] if args.latchlab_lengths else None

    print("# seed sweep benchmark: latchlab vs the seed's Keras code (one process)")
    print(
        f"# python {platform.python_version()}, jax {jax.__version__} "
        f"({jax.default_backend()}:{jax.device_count()}), cpus {os.cpu_count()}, "
        f"commit {provenance.git_commit()}, load avg at start {_load()}"
    )
    print(f"# {native_as_make()}")
    print(  # measured here, before anything else runs on the cores
        f"# measured flop rate {flop_rate() / 1e9:.0f} GFLOP/s (numpy matrix product, every core), "
        f"transcendental rate {trans_rate() / 1e9:.2f} x 10^9/s (the kernels' tanh, every core)"
    )

    # --- latchlab
    cfg = latchlab_config(args.scale, ll_lengths)
    members = distinct_members(cfg)
    run_cfg = members[0].run
    grid_T = sorted({m.run.T for m in members})
    print(
        f"\n## latchlab: {cfg.name}, preset keras3, split stratified, {len(members)} members "
        f"({cfg.repeats} repeats x cells {sorted({m.run.cell for m in members})} x T {grid_T}), "
        f"{run_cfg.epochs} epochs, N {run_cfg.N}"
    )
    ll = run_latchlab(cfg)
    f, t = remeasure()  # again, once the sweep is done: the bound takes the faster of each
    print(f"# rates measured again after the sweep: {f / 1e9:.0f} GFLOP/s, {t / 1e9:.2f} x 10^9/s")
    print(f"{'phase':<10}{'seconds':>10}")
    for name, s in ll["phases"]:
        print(f"{name:<10}{s:>10.2f}")
    other = ll["wall"] - sum(s for _, s in ll["phases"])
    print(f"{'other':<10}{other:>10.2f}   (planning, tracing, results frame)")
    print(f"{'wall':<10}{ll['wall']:>10.2f}   (compilation included)")
    print("final val_acc mean: " + ", ".join(f"{c} {a:.3f}" for c, a in sorted(ll["val_acc"].items())))

    # --- Keras
    print(
        f"\n## Keras {_keras_version()} (JAX backend), the seed's code: fresh model per point, "
        f"{args.keras_epochs} epoch(s) per fit, N {SEED_N}, batch {SEED_BATCH}, "
        f"validation_split {SEED_VAL_SPLIT}"
    )
    points, fits = run_keras(keras_lengths, args.keras_epochs)
    print(f"{'cell':<6}{'T':>5}{'data':>8}{'build':>8}{'fit':>9}{'epoch1':>9}{'epoch/s':>9}{'overhd':>9}{'jaxcomp':>9}")
    for p in points:
        print(
            f"{p['cell']:<6}{p['T']:>5}{p['data']:>8.2f}{p['build']:>8.2f}{p['fit']:>9.2f}"
            f"{p['epochs'][0]:>9.2f}{p['steady']:>9.2f}{p['overhead']:>9.2f}{p['jax_compile']:>9.2f}"
        )
    print(
        "(seconds; epoch/s = steady per-epoch time incl. validation; overhd = per-model time "
        "besides steady epochs; jaxcomp = JAX-reported trace+lower+compile during the point)"
    )
    if args.keras_epochs == 1:
        print(
            "note: with 1 epoch the steady epoch is the first minus JAX's reported compile time; "
            "use --keras-epochs >= 2 to measure it directly"
        )
    if len(keras_lengths) < 2:
        print("note: one length only: per-epoch time taken as constant in T")
    for cell, (a, b, o) in fits.items():
        print(f"fit {cell:<5} per-epoch = {a:.3f} + {b * 1e3:.3f}e-3 * T s, overhead {o:.2f} s/model")

    same_runs = [(m.run.cell, m.run.T) for m in members]
    keras_same = keras_sweep_seconds(fits, same_runs, run_cfg.epochs)
    full_runs = seed_runs()
    keras_full = keras_sweep_seconds(fits, full_runs)
    ratio = keras_same / ll["wall"]

    # --- arithmetic bound
    bound_full = arithmetic_bound(full_runs)
    bound_same = arithmetic_bound(same_runs, run_cfg.epochs, run_cfg.N, run_cfg.val_frac)
    print("\n## arithmetic lower bound, full seed sweep (26 lengths x 30 repeats, 5 epochs)")
    print(
        "assumptions: per time step per sequence, forward: LSTM(1) 20 flops + 5 transcendentals "
        "(3 sigmoid, 2 tanh; a sigmoid counts as one), SimpleRNN(1) 4 flops + 1 tanh; backward = "
        f"{BWD_FLOP_FACTOR:g}x forward flops, no transcendentals (derivatives reuse the forward "
        "outputs); per epoch 8000 training sequences forward+backward and 2000 validation "
        "sequences forward only; Dense head, loss and Adam ignored (<1%); rates "
        f"{flop_rate() / 1e9:.0f} GFLOP/s for the machine (measured: numpy matrix product) and {trans_rate():.3g} "
        f"transcendentals/s (measured: the kernels' tanh on {CORES} cores), each the faster of its measurements "
        "before and after the sweep; flops and transcendentals overlap perfectly "
        "(bound = the larger time); no padding, no memory traffic, no per-step overhead."
    )
    print(f"{'half':<6}{'flops':>11}{'transc.':>11}{'t_flops':>9}{'t_trans':>9}{'bound':>8}")
    for cell, b in bound_full.items():
        print(
            f"{cell:<6}{b['flops']:>11.3e}{b['trans']:>11.3e}{b['t_flops']:>9.2f}{b['t_trans']:>9.2f}{b['bound']:>8.2f}"
        )
    total_full = sum(b["bound"] for b in bound_full.values())
    total_same = sum(b["bound"] for b in bound_same.values())
    print(
        f"lower bound full sweep: {total_full:.2f} s; for the grid latchlab ran: {total_same:.2f} s "
        f"(latchlab at {ll['wall'] / total_same:.1f}x it)"
    )

    # --- summary
    print("\n## summary (seconds)")
    print(f"{'grid':<34}{'latchlab':>10}{'keras':>11}{'keras/latchlab':>16}")
    print(f"{'same grid (' + str(len(same_runs)) + ' models)':<34}{ll['wall']:>10.1f}{keras_same:>11.1f}{ratio:>16.1f}")
    print(f"{'full seed grid (' + str(len(full_runs)) + ' models)':<34}{'-':>10}{keras_full:>11.1f}{'-':>16}")
    print(
        "keras = extrapolated from the measured points (per-epoch linear in T, mean per-model "
        "overhead); the full seed grid counts T=30 twice as the seed's code runs it, latchlab "
        "trains it once"
    )
    print(f"# load avg at end {_load()}")
    scale = args.scale + ("-subset" if ll_lengths else "")
    print(
        f"RESULT scale={scale} latchlab_s={ll['wall']:.2f} keras_same_grid_s={keras_same:.1f} "
        f"ratio={ratio:.2f} keras_full_s={keras_full:.1f}"
    )
    return 0


def _keras_version() -> str:
    import keras

    return keras.__version__


if __name__ == "__main__":
    sys.exit(main())
