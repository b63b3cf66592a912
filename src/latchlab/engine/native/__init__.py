"""Native CPU kernels for recurrent cells of any size (``kernels.cpp``), built on first use.

The LSTM (with or without forget gate), SRNN, GRU (either ``reset_after``) and JANET, of
any number of units, on inputs of any number of channels, with any head of
``latchlab.core.model`` (dense2, dense1, linear, seq_softmax) train here a whole epoch
per call: sequences run with rows in the lanes of SIMD vectors (one-unit cells on scalar
inputs with a dense head pack several members into a vector and keep the state in
registers; the others give each member vectors of its own and broadcast its weights), a
hand-derived backward pass (the LSTM's is ``latchlab.engine.bptt``'s; the update rules are
``latchlab.core.cells``') and the optimisers of ``latchlab.engine.train`` (Adam, SGD,
RMSprop as optax defines them). Same numbers as the JAX modes to float32 rounding
(tests/engine/test_native.py); several times faster on a CPU (docs/benchmarks.md).

The library is compiled with the system's C++ compiler (``$CXX``, else ``g++``: GCC or
clang, whose builds agree to float32 rounding but not bit for bit) for this machine's
instruction set (``-march=native``, or on an ARM CPU whose clang rejects it, ``-mcpu=native``;
``LATCHLAB_NATIVE_MARCH=x86-64-v3`` builds AVX2 code, for instance) into the cache directory,
one shared object per (cell kind, gate activation, GRU ``reset_after``) and per source,
compiler, flags and CPU: on first use, or ahead of it with
``python -m latchlab.engine.native`` (which ``make`` runs after installing). The C++ picks
its vector width and block size from the instruction set (AVX-512, AVX2, else 16-byte
vectors: NEON, SSE); ``tuning`` adds what a CPU measured to want beyond its instruction
set's defaults. ``available(model, optimizer)`` says whether the kernels can train a
model here, and if not, why: without a compiler, with ``LATCHLAB_NATIVE=0`` or on a GPU
the trainer uses its JAX modes.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

SOURCE = Path(__file__).with_name("kernels.cpp")
HEADER = Path(__file__).with_name("simd.h")  # included by every source: part of each build's hash
# -O3: the full sweep trained in 7.1-7.7 s against 8.7-9.1 s with -O2 (which builds a
# variant in 0.7 s instead of 1.1 s)
FLAGS = ("-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-shared", "-fPIC")
# The codes the kernels take, defined here only: the build passes them to the C++ as
# -DLATCH_<GROUP>_<NAME>=code, and the library hands back its (group, name, code) table
# (``library_codes``) for tests/engine/test_native.py to compare.
KINDS = {"srnn": 0, "lstm": 1, "lstm_nofg": 2, "gru": 3, "janet": 4}
RSIGS = {"sigmoid": 0, "hard_sigmoid": 1, "hard_sigmoid_keras3": 2}
HEADS = {"dense2": 0, "dense1": 1, "linear": 2, "seq_softmax": 3}
OPTIMIZERS = {"adam": 0, "sgd": 1, "rmsprop": 2}
CODES = {"kind": KINDS, "rsig": RSIGS, "head": HEADS, "optimizer": OPTIMIZERS}

_locks: dict = defaultdict(threading.Lock)  # per (variant, ``_target()``)
_libs: dict = {}
_errors: dict = {}


def cache_dir() -> Path:
    """Where built variants live: ``native/`` in latchlab's cache (``runtime.cache_root``)."""
    from latchlab import runtime

    return runtime.cache_root() / "native"


def _cpuinfo() -> str:
    """/proc/cpuinfo's text ("" where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_id() -> str:
    info = _cpuinfo()
    lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(dict.fromkeys(lines))


def _codes(kind: str, rsig: str, reset_after: bool) -> tuple[int, int, int]:
    # an SRNN has no gates; only a GRU has reset_after
    return KINDS[kind], (RSIGS[rsig] if kind != "srnn" else 0), int(kind == "gru" and reset_after)


def variant(model) -> tuple[int, int, int]:
    """The library variant that trains ``model``: (cell kind, gate activation, GRU
    reset_after) codes; one shared-object file each, so a sweep builds only what it uses
    (~1 s each)."""
    return _codes(model.cell.kind, model.cell.rsig, model.cell.reset_after)


VARIANTS = tuple(dict.fromkeys(_codes(k, r, a) for k in KINDS for r in RSIGS for a in (False, True)))


def march() -> str:
    """The instruction set the kernels are built for: ``-march=native`` unless
    ``LATCHLAB_NATIVE_MARCH`` names another (``x86-64-v3``: AVX2 code on any x86 machine;
    ``x86-64``: the portable 16-byte vectors)."""
    return os.environ.get("LATCHLAB_NATIVE_MARCH", "native")


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def compiler_version() -> str:
    """The compiler's name and version (the first line of its ``--version``), "" without one:
    GCC's and clang's builds agree to float32 rounding, not bit for bit."""
    cxx = _compiler()
    return _version_of(cxx) if cxx else ""


@functools.lru_cache(maxsize=None)
def _version_of(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return cxx
    return next(iter(out.strip().splitlines()), cxx)


def _target() -> tuple[str, str]:
    """What a loaded library is kept under beside its source and variant: this ``march()``
    and compiler (a process may build with several: the tests do)."""
    return march(), _compiler() or ""


def defines(v: tuple[int, int, int]) -> tuple[str, ...]:
    """The compiler's -D flags for variant ``v``: every code of ``CODES``, the linear head's
    ``model.REGRESSION_TOLERANCE`` (a hexadecimal literal: the same double, which the C++
    rounds to float as JAX does) and the variant."""
    from latchlab.core.model import REGRESSION_TOLERANCE

    codes = tuple(
        f"-DLATCH_{group.upper()}_{name.upper()}={code}"
        for group, table in CODES.items()
        for name, code in table.items()
    )
    tolerance = f"-DLATCH_REGRESSION_TOLERANCE={float(REGRESSION_TOLERANCE).hex()}"
    return codes + (tolerance, f"-DVARIANT_KIND={v[0]}", f"-DVARIANT_RSIG={v[1]}", f"-DVARIANT_RESET_AFTER={v[2]}")


def _cpu_fields(info: str | None = None) -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (or in its text ``info``; empty where
    there is none)."""
    fields: dict[str, str] = {}
    for line in (_cpuinfo() if info is None else info).split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def tuning() -> tuple[str, ...]:
    """The -D flags with which this CPU's ``-march=native`` kernels leave their instruction
    set's defaults, where two CPUs of one instruction set were measured to want different
    code (docs/benchmarks.md): on AMD's Zen 5 (family 26) the one-unit LSTM's backward pass
    takes two vectors at a time (``LATCH_BWD_VECTORS``: its epochs on the seed sweep's
    chunks 1.07-1.11 times faster there, 0.88 on the Zen 4, which has AVX-512 too). None
    for other ``march()`` values: their code is the instruction set's, on any CPU."""
    if march() != "native":
        return ()
    cpu = _cpu_fields()
    if cpu.get("vendor_id") == "AuthenticAMD" and cpu.get("cpu family") == "26":
        return ("-DLATCH_BWD_VECTORS=2",)
    return ()


def _build(v: tuple[int, int, int]) -> Path:
    flags = FLAGS + (f"-march={march()}",) + tuning() + defines(v)
    return _compile(SOURCE, f"kernels-{''.join(map(str, v))}", flags)


def _compile(source: Path, stem: str, flags: tuple[str, ...]) -> Path:
    """``source`` built with ``flags`` into the cache directory, once per source, flags,
    compiler and CPU (``stem-<hash>.so``)."""
    cxx = _compiler()
    if not cxx:
        raise RuntimeError("no C++ compiler (g++) found")
    src = source.read_bytes() + HEADER.read_bytes()
    tag = hashlib.sha256(src + " ".join((cxx,) + flags).encode() + _cpu_id().encode()).hexdigest()[:16]
    out = cache_dir() / f"{stem}-{tag}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            tmp_so = Path(tmp) / out.name
            errors: list[str] = []  # each attempt's
            for attempt in _arch_attempts(flags):
                r = subprocess.run([cxx, *attempt, "-o", str(tmp_so), str(source)], capture_output=True, text=True)
                if not r.returncode:
                    break
                errors.append(r.stderr)
                if "-march=native" not in errors[0]:  # failed for another reason
                    break
            if r.returncode:
                first = errors[0].strip().splitlines()
                raise RuntimeError(f"{cxx} failed: {first[-1] if first else f'exit status {r.returncode}'}")
            os.replace(tmp_so, out)  # atomic: concurrent builders leave one whole library
    return out


def _arch_attempts(flags: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``flags``, then, where they ask for ``-march=native``, the same with ``-mcpu=native``
    and with neither: the compiler's flags to try in turn while it rejects ``-march=native``
    (clang before 15 on ARM CPUs, Apple's among them, whose default target is the host's
    NEON)."""
    if "-march=native" not in flags:
        return [flags]
    i = flags.index("-march=native")
    return [flags, flags[:i] + ("-mcpu=native",) + flags[i + 1 :], flags[:i] + flags[i + 1 :]]


def build_all(variants=VARIANTS) -> tuple[dict, dict]:
    """Build ``variants`` (default: all of them) in parallel compiler processes; returns
    ``({variant: path}, {variant: error})``."""
    from concurrent.futures import ThreadPoolExecutor

    def one(v):
        try:
            return v, _build(v), None
        except RuntimeError as e:
            return v, None, str(e)

    with ThreadPoolExecutor(threads()) as pool:
        done = list(pool.map(one, variants))
    return {v: p for v, p, e in done if p}, {v: e for v, p, e in done if e}


_I, _F = ctypes.c_int, ctypes.c_float
_PI, _PF, _PI64 = ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(_F), ctypes.POINTER(ctypes.c_int64)
_PPF = ctypes.POINTER(_PF)
# every entry of kernels.cpp's extern "C" block: (result, argument types)
SIGNATURES = {
    # kind, rsig, reset_after, units, inputs, head, outputs, opt, R, T, xrow, xstride, t0, S,
    # B, pos, Ntr, train, y (labels), yv (values), N, ysteps (categories per step), weight,
    # prow (each member's row of pos and weight), params, mu, nu, count, lr, loss, acc,
    # per_block, next_block
    "latch_train_epoch": (
        _I,
        [*[_I] * 10, _PPF, _PI64, _PI, _I, _I, _PI, _I, _PI, _PI, _PF, _I, _PI, _PF, _PI]
        + [_PF, _PF, _PF, _PI, _PF, _PF, _PF]
        + [_I]
        + [ctypes.POINTER(_I)],
    ),
    # kind, rsig, reset_after, units, inputs, head, outputs, R, T, xrow, xstride, t0, Nv, val,
    # yv (labels), yvv (values), N, ysteps (categories per step), params, loss, acc, per_block,
    # next_block, brow, bsteps
    "latch_evaluate": (
        _I,
        [*[_I] * 9, _PPF, _PI64, _PI, _I, _PI, _PI, _PF, _I, _PI, _PF, _PF, _PF, _I, ctypes.POINTER(_I), _PPF, _PI],
    ),
    # x, xstride, Tf, ex, n, B, out
    "latch_batch_rows": (_I, [_PF, ctypes.c_int64, _I, _PI, _I, _I, _PF]),
    "latch_eval_rows": (_I, []),
    "latch_code": (_I, [_I, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p)]),
    "latch_lanes": (_I, []),
    "latch_per_block": (_I, []),
    "latch_isa": (ctypes.c_char_p, []),
}


def _load(key, what: str, open_library):
    """The library of ``key``, opened by ``open_library()`` on first use (once per process:
    a failure is remembered); raises RuntimeError naming ``what`` if it cannot be."""
    with _locks[key]:
        if key not in _libs and key not in _errors:
            try:
                _libs[key] = open_library()
            except (OSError, AttributeError, RuntimeError) as e:
                _errors[key] = str(e)
        if key not in _libs:
            raise RuntimeError(f"latchlab's native {what} unavailable: {_errors[key]}")
        return _libs[key]


def _typed(path: Path, signatures: dict | None = None):
    """The library at ``path``, loaded, its entries typed by ``signatures`` (default the
    kernels' ``SIGNATURES``)."""
    so = ctypes.CDLL(str(path))
    for name, (res, args) in (SIGNATURES if signatures is None else signatures).items():
        fn = getattr(so, name)
        fn.restype, fn.argtypes = res, args
    return so


def lib(v: tuple[int, int, int] = (1, 1, 0)):
    """The loaded library for variant ``v``, this ``march()`` and compiler (built on first
    use), its entries typed by ``SIGNATURES``; raises RuntimeError if it cannot be built."""
    return _load((v, _target()), "kernels are", lambda: _typed(_build(v)))


B94_SOURCE = Path(__file__).with_name("bengio94.cpp")
_PI32 = ctypes.POINTER(ctypes.c_int32)
# R, T, L, n_train, n_test, x_train, x_test (R rows each), scale, w0, h0, optimizer, lr, target,
# threshold, budget, check_every, threads, w, h, converged, epochs, train_loss, test_loss, test_errors
B94_SIGNATURE = (
    _I,
    [*[_I] * 5, _PPF, _PPF, *[_PF] * 3, _I, _F, _F, _F, *[_I] * 3, _PF, _PF, _PI32, _PI32, _PF, _PF, _PI32],
)


def bengio94():
    """The loaded ``bengio94.cpp`` (the one-neuron latch of Bengio et al. 1994, trained for
    ``latchlab.experiments.bengio1994``) for this ``march()``, built on first use (``-pthread``:
    it runs its own threads); raises RuntimeError if the host cannot run it (``LATCHLAB_NATIVE=0``,
    not the CPU backend) or it cannot be built."""
    if reason := _host_reason():
        raise RuntimeError(f"latchlab's native bengio94 kernel is unavailable: {reason}")

    def open_library():
        codes = tuple(f"-DLATCH_OPTIMIZER_{name.upper()}={code}" for name, code in OPTIMIZERS.items())
        so = ctypes.CDLL(str(_compile(B94_SOURCE, "bengio94", FLAGS + ("-pthread", f"-march={march()}") + codes)))
        so.b94_train.restype, so.b94_train.argtypes = B94_SIGNATURE
        return so

    return _load(("bengio94", _target()), "bengio94 kernel is", open_library)


GUESS_SOURCE = Path(__file__).with_name("guessing.cpp")
# the nets of ``latchlab.experiments.guessing`` (latch2_net: latch II with its noise added to
# the net input), and parity's options as bits of the kernel's ``flags``
GUESS_NETS = {"latch1": 0, "latch2": 1, "latch2_net": 2, "parity": 3}
GUESS_FLAGS = {"hidden_tanh": 1, "layered": 2, "output_bias": 4}
_PU8 = ctypes.POINTER(ctypes.c_uint8)
# net, flags, S, B, P, theta, run, n, T, x, start, y, then guess_solved's lo, hi, tol, sign,
# threads, solved; guess_outputs' threads, out
_GUESS_ARGS = [*[_I] * 5, _PF, _PI32, _I, _I, _PF, _PI32, _PI32]
GUESS_SIGNATURES = {
    "guess_solved": (_I, _GUESS_ARGS + [_F, _F, _F, _I, _I, _PU8]),
    "guess_outputs": (_I, _GUESS_ARGS + [_I, _PF]),
    "guess_hardware_fma": (_I, []),
    "guess_isa": (ctypes.c_char_p, []),
}


def guessing():
    """The loaded ``guessing.cpp`` (random weight guessing's nets, for
    ``latchlab.experiments.guessing``: the same outputs as its JAX definition bit for bit) for
    this ``march()``, built on first use; raises RuntimeError if the host cannot run it
    (``LATCHLAB_NATIVE=0``, not the CPU backend), it cannot be built, or the instruction set
    has no fused multiply-add (x86-64 before AVX2)."""
    if reason := _host_reason():
        raise RuntimeError(f"latchlab's native guessing kernel is unavailable: {reason}")

    def open_library():
        codes = tuple(f"-DLATCH_NET_{name.upper()}={code}" for name, code in GUESS_NETS.items())
        so = _typed(
            _compile(GUESS_SOURCE, "guessing", FLAGS + ("-pthread", f"-march={march()}") + codes), GUESS_SIGNATURES
        )
        if not so.guess_hardware_fma():
            raise RuntimeError(f"-march={march()} has no fused multiply-add instruction")
        return so

    return _load(("guessing", _target()), "guessing kernel is", open_library)


PRNG_SOURCE = Path(__file__).with_name("prng.cpp")
# without contraction: prng.cpp writes each fused multiply-add XLA's code generator makes
PRNG_FLAGS = tuple(f for f in FLAGS if not f.startswith("-ffp-contract")) + ("-ffp-contract=off", "-pthread")
_U32 = ctypes.POINTER(ctypes.c_uint32)
PRNG_SIGNATURES = {
    "prng_hardware_fma": (_I, []),
    "prng_member_keys": (None, [_I, _U32, _U32]),
    "prng_normal": (None, [ctypes.c_int64, _U32, _PF]),
    "prng_normal_unfused": (None, [ctypes.c_int64, _U32, _PF]),
    "prng_log_uniform": (None, [_I, _U32, _I, ctypes.c_float, _PF, _PF]),
    "prng_children": (None, [_I, _U32, _I, _U32]),
    "prng_bits": (None, [_I, _U32, _I, _U32]),
    "prng_latch": (None, [_I, _U32, _I, _I, _PF, _PI, _I, _PF, _PI, _I]),
    "prng_bit_relay": (None, [_I, _U32, _I, _I, _I, _PF, _PF, _PI, _I]),
    "prng_b94_members": (None, [_I, _U32, _I, ctypes.c_float, _PF, _U32, _U32]),
    "prng_b94_noise": (None, [_I, _U32, _I, _I, _I, _PF, _PF, _I]),
    "prng_split": (None, [_I, _U32, _PI, _I, _I, _I, ctypes.POINTER(ctypes.c_uint8), _I, _PI, _PI, _I]),
    "prng_guesses": (None, [_I, _U32, _I, _I, _I, ctypes.c_float, ctypes.c_float, _PF, _I]),
}


def prng(*, loaded: bool = False):
    """The loaded ``prng.cpp`` (JAX's keys, latch and bit relay sequences and splits, the draws
    of the members' initial parameters, and random guessing's guesses, made here bit for bit)
    for this ``march()``, or
    None where it cannot be used: not on the CPU, ``LATCHLAB_NATIVE=0``, no compiler, no fused
    multiply-add instruction (x86-64 before AVX2), or its numbers differ from JAX's on this
    machine.

    Before its first use with a JAX version, the library is checked against JAX
    (``data.prng_differences``: every one of the 2^23 normal values, optimised and not,
    sequences, labels and splits of both tasks, initial parameters, and guesses); the verdict is kept beside the library, so the check runs once per
    library, JAX version and ``XLA_FLAGS`` (``python -m latchlab.engine.native`` runs it with
    the builds). ``loaded=True``: only if this process has loaded it already (never builds
    or checks it)."""
    if loaded:
        return _libs.get(("prng", _target()))
    if _host_reason():
        return None

    def open_library():
        path = _compile(PRNG_SOURCE, "prng", PRNG_FLAGS + (f"-march={march()}",))
        so = _typed(path, PRNG_SIGNATURES)
        if not so.prng_hardware_fma():
            raise RuntimeError(f"-march={march()} has no fused multiply-add instruction")
        from importlib.metadata import version

        # XLA's flags may change its code (but not the split into host devices)
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
        xla = f"-{hashlib.sha256(' '.join(flags).encode()).hexdigest()[:8]}" if flags else ""
        verdict = path.with_name(f"{path.stem}.jax-{version('jax')}-{version('jaxlib')}{xla}.check")
        if not verdict.exists():
            from latchlab.engine import data

            tmp = verdict.with_name(f"{verdict.name}.{os.getpid()}")
            tmp.write_text(data.prng_differences(so) or "same")
            os.replace(tmp, verdict)
        if (why := verdict.read_text()) != "same":
            raise RuntimeError(f"its numbers differ from JAX's here ({why})")
        return so

    try:
        return _load(("prng", _target()), "random number generator is", open_library)
    except RuntimeError:
        return None


def library_codes(so) -> dict[str, dict[str, int]]:
    """The (group, name, code) table library ``so`` was built with, as ``CODES`` is laid out."""
    out: dict = defaultdict(dict)
    group, name = ctypes.c_char_p(), ctypes.c_char_p()
    i = 0
    while (code := so.latch_code(i, ctypes.byref(group), ctypes.byref(name))) >= 0:
        assert group.value is not None and name.value is not None  # set for every code >= 0
        out[group.value.decode()][name.value.decode()] = code
        i += 1
    return dict(out)


def build_info(so) -> dict:
    """What library ``so`` chose for its instruction set: its name, floats per SIMD vector
    and members per block."""
    return {"isa": so.latch_isa().decode(), "lanes": so.latch_lanes(), "per_block": so.latch_per_block()}


@dataclass(frozen=True)
class Availability:
    """``available``'s answer: true when the kernels can train, else false with the reason."""

    reason: str = ""

    def __bool__(self) -> bool:
        return not self.reason


def _model_reason(model, optimizer: str) -> str:
    return reach(model.cell.kind, model.cell.rsig, model.head, optimizer)


def reach(kind: str, rsig: str, head: str, optimizer: str) -> str:
    """Why the kernels cannot train a (cell kind, gate activation, head, optimiser), or ""
    if they can: ``available``'s model checks by name (``latchlab.limits`` asks them of a
    configuration without building a model). Any number of units and input channels."""
    checks = (
        (kind in KINDS, f"cell {kind}: the kernels train {', '.join(KINDS)}"),
        (head in HEADS, f"head {head}: the kernels train {', '.join(HEADS)}"),
        (rsig in RSIGS, f"gate activation {rsig}: the kernels have {', '.join(RSIGS)}"),
        (optimizer in OPTIMIZERS, f"optimizer {optimizer}: the kernels have {', '.join(OPTIMIZERS)}"),
    )
    return next((reason for ok, reason in checks if not ok), "")


def _host_reason() -> str:
    import jax

    if os.environ.get("LATCHLAB_NATIVE", "1") == "0":
        return "disabled by LATCHLAB_NATIVE=0"
    if jax.default_backend() != "cpu":
        return f"the JAX backend is {jax.default_backend()}, not the CPU"
    if not _compiler() and not any(key[1][0] == march() for key in _libs):
        return "no C++ compiler (g++) found"
    return ""


def available(model, optimizer: str = "adam", *, build: bool = True) -> Availability:
    """Whether the native kernels can train ``model`` with ``optimizer`` here, and if not,
    why (``.reason``): an srnn/lstm/lstm_nofg/gru/janet of any size on inputs of any width with
    any head (dense2, dense1, linear, seq_softmax), on the CPU backend, not disabled
    (``LATCHLAB_NATIVE=0``), and the model's variant built. With ``build=False`` a compiler
    (or an already loaded library) suffices: cheap, never runs the compiler."""
    reason = _model_reason(model, optimizer) or _host_reason()
    if reason or not build:
        return Availability(reason)
    try:
        lib(variant(model))
    except RuntimeError as e:
        return Availability(str(e))
    return Availability()


# Old names, thin aliases: the engine asks ``available(model, optimizer, build=False)``
# instead of ``supports(...) and enabled()``; kept for callers and tests that still use them.
def supports(model, optimizer: str = "adam") -> bool:
    return not _model_reason(model, optimizer)


def enabled() -> bool:
    return not _host_reason()


def flatten(params) -> np.ndarray:
    """(R, P) float32: cell kernel, recurrent, bias (a reset_after GRU's: input then
    recurrent), head kernel, head bias (each member; each array row-major)."""
    c, h = params["cell"], params["head"]
    parts = [c["kernel"], c["recurrent"], c["bias"], h["kernel"], h["bias"]]
    R = np.shape(parts[0])[0]
    return np.ascontiguousarray(np.concatenate([np.asarray(p, np.float32).reshape(R, -1) for p in parts], 1))


def unflatten(flat: np.ndarray, like) -> dict:
    """``flatten``'s inverse, shaped as the pytree ``like``."""
    c, h = like["cell"], like["head"]
    out, i = {"cell": {}, "head": {}}, 0
    for group, name in (
        ("cell", "kernel"),
        ("cell", "recurrent"),
        ("cell", "bias"),
        ("head", "kernel"),
        ("head", "bias"),
    ):
        shape = np.shape((c if group == "cell" else h)[name])
        n = int(np.prod(shape[1:]))
        out[group][name] = flat[:, i : i + n].reshape(shape).copy()
        i += n
    return out


def first_steps(mask) -> np.ndarray:
    """(R,) int32 first valid step of each member's left-padded mask (R, T)."""
    m = np.asarray(mask, bool)
    t0 = m.shape[1] - m.sum(1)
    if not (m == (np.arange(m.shape[1])[None, :] >= t0[:, None])).all():
        raise ValueError("native kernels need left-padded masks (every valid step after every padded one)")
    return t0.astype(np.int32)


class Rows(NamedTuple):
    """Members' sequences without their left padding: member r's example e is
    ``arrays[r][e, :lengths[r]]`` (arrays may be shared by members and longer than needed:
    a seed's longest sequences serve every length, ``sweep.Families``)."""

    arrays: list
    lengths: np.ndarray
    T_pad: int

    @property
    def shape(self):
        return (len(self.arrays), self.arrays[0].shape[0], self.T_pad, 1)

    def padded(self) -> np.ndarray:
        """(R, N, T_pad, 1) float32, left-padded with zeros (what the XLA modes take)."""
        x = np.zeros(self.shape, np.float32)
        for r, (a, T) in enumerate(zip(self.arrays, self.lengths)):
            x[r, :, self.T_pad - T :, 0] = a[:, :T]
        return x


def _ptr(a, ctype: type[ctypes._SimpleCData] = ctypes.c_float):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


def threads() -> int:
    """The cores this process may run on (the kernels' threads)."""
    from latchlab import runtime

    return runtime.cores()


_helpers: tuple[int, ThreadPoolExecutor] | None = None  # the cores' other threads, kept between calls
_helpers_lock = threading.Lock()


def _helper_pool(n: int) -> ThreadPoolExecutor:
    """A pool of ``n`` threads kept for every call: starting threads for each call cost
    the caller 0.2-0.3 ms each, 0.12-0.15 s of the seed sweep's 480 calls."""
    global _helpers
    with _helpers_lock:
        if _helpers is None or _helpers[0] < n:
            if _helpers is not None:  # fewer threads than the cores now allowed: its idle ones end
                _helpers[1].shutdown(wait=False)
            _helpers = (n, ThreadPoolExecutor(n, thread_name_prefix="latchlab-kernel"))
        return _helpers[1]


def _forget_helpers() -> None:
    """In a forked child: the parent's pool's threads do not exist there."""
    global _helpers
    _helpers = None


os.register_at_fork(after_in_child=_forget_helpers)


def _parallel(call, R: int, per_block: int) -> None:
    """Run ``call(next_block)`` on every core; the calls share the blocks of ``per_block``
    members through a counter, so a helper that starts late only finds fewer blocks left."""
    counter = (ctypes.c_int * 16)()  # one int, padded to its own cache line
    n = min(threads(), -(-R // per_block))
    codes = [0] * n

    def one(i):
        codes[i] = call(ctypes.cast(counter, ctypes.POINTER(ctypes.c_int)))

    pool = _helper_pool(n - 1) if n > 1 else None
    helpers = [pool.submit(one, i) for i in range(1, n)] if pool is not None else []
    try:
        one(0)
    finally:
        for h in helpers:
            h.result()
    if any(codes):
        raise RuntimeError(f"native kernel rejected its arguments (code {max(codes, key=abs)})")


def per_block(one_unit: int, units: int, vectors: int = 1) -> int:
    """Members a thread trains together: the build's block for one-unit cells (members in
    each other's lanes hide the latency of a step), fewer as a member's own step has more
    independent work: ``units`` of it, in ``vectors`` vectors of its batch's rows
    (``one_unit // (units * vectors)``, at least 1). A block's step records then stay in
    the core's L2 (at batch 256 a block of 8 one-unit members had 128 vectors: 5.7 MB of
    records at T = 100, and its epoch took 1.5 times batch 16's)."""
    return max(1, one_unit // (units * vectors))


def train_block(one_unit: int, steps) -> int:
    """Members a training call's blocks take, for one-unit members of one vector each that run
    ``steps`` (R,) steps, in call order (a block is consecutive members; all end at the last
    step). A forward step waits on its tanh unless about ``one_unit`` vectors are in flight,
    and a block's shorter members start later, so its first steps have few. Where blocks of
    ``one_unit`` keep fewer than half of their vectors busy (``busy_vectors``), blocks are made
    2 or 4 times larger, to bring that to ``one_unit``, but no larger than every thread's share
    of the call: bengio1994's seed overlay, one seed's 8 lengths from 5 to 100 steps a block,
    kept 3 of 8 busy (in blocks of 27 it took 0.173-0.178 s instead of 0.190-0.198). Elsewhere a
    larger block did not pay: the seed's grid (5.8-7 of 8 busy) took 2-6 % longer in blocks of
    16, the answer's one-unit chunks (4.2) as long (docs/benchmarks.md). A member's numbers do
    not depend on it."""
    steps = np.asarray(steps, np.int64)
    busy = busy_vectors(steps, one_unit)
    if not busy or busy >= one_unit / 2:
        return one_unit
    larger = one_unit * min(4, 1 << int(np.ceil(np.log2(one_unit / busy))))
    return max(one_unit, min(larger, -(-len(steps) // threads())))


def busy_vectors(steps, size: int) -> float:
    """The vectors a step keeps busy in blocks of ``size`` consecutive members that run ``steps``
    (R,) steps each and end together, on average over every block's steps, weighted by its work
    (0 if there is none)."""
    steps = np.asarray(steps, np.int64)
    blocks = [steps[m0 : m0 + size] for m0 in range(0, len(steps), size)]
    total = float(steps.sum())
    return sum(float(b.sum()) ** 2 / b.max() for b in blocks if b.max() > 0) / total if total > 0 else 0.0


def _channel_major(x) -> np.ndarray:
    """(F, R, N, T) float32 copy of inputs ``x`` (R, N, T, F), member by member: a device
    array's shards are read where they are (host memory on a CPU), so that besides ``x``
    only the copy is held, not a gathered (R, N, T, F) one too (the data sets are counted
    twice in ``latchlab.limits``)."""
    R, N, T, F = np.shape(x)
    out = np.empty((F, R, N, T), np.float32)
    if isinstance(x, np.ndarray):
        rows = enumerate(x)
    else:
        rows = (
            (r, part[i])
            for shard in x.addressable_shards
            for part in (np.asarray(shard.data),)
            for i, r in enumerate(range(*shard.index[0].indices(R)))
        )
    for r, row in rows:
        out[:, r] = np.moveaxis(row, -1, 0)
    return out


def _lays_out(model) -> bool:
    """Whether the kernels read ``model``'s rows as ``RowLayout`` lays them out (their
    one-unit path: one input channel, a dense head)."""
    return model.cell.units == 1 and model.n_in == 1 and model.head in ("dense2", "dense1")


ROW_LAYOUT_BYTES = 1 << 28
"""At most this many bytes of rows an ensemble lays out (``RowLayout``); further members
gather their rows themselves."""


def _aligned(shape: tuple, align: int = 64) -> np.ndarray:
    """An uninitialised float32 array whose data start on an ``align``-byte boundary (the
    kernels read laid-out rows as whole vectors)."""
    n = int(np.prod(shape))
    raw = np.empty(n + align // 4, np.float32)
    skip = (-raw.ctypes.data % align) // 4
    return raw[skip : skip + n].reshape(shape)


class RowLayout:
    """Validation rows that several members read alike, laid out once for all of them.

    Members that read the same rows in the same passes (the same array, stride and
    examples: a seed's members at every length, with one split) get them laid out
    time-major by ``latch_batch_rows`` into one buffer that each of them reads in every
    epoch (the kernels' ``brow`` and ``bsteps``), instead of each member's transposing them
    again in every pass: the seed sweep validated in 2.18-2.38 s instead of 2.51-2.82 s
    (docs/benchmarks.md). Laid out an epoch, the shuffled training rows cost about as much
    time as they saved, and are not.

    Args:
        xrow, xstride: each member's rows (pointers and strides, as the kernels take them).
        steps: each member's number of steps.
    """

    def __init__(self, xrow: np.ndarray, xstride: np.ndarray, steps: np.ndarray):
        self.xrow, self.xstride, self.steps = xrow, xstride, np.asarray(steps, np.int32)
        self.held: list = []  # the buffers and pointers, alive while the kernels read them

    def groups(self, ex: np.ndarray) -> list[list[int]]:
        """The groups of two or more members whose examples ``ex`` (R, ...) and rows agree."""
        near: dict = defaultdict(list)  # (rows, stride) -> groups
        for r in range(len(ex)):
            gs = near[(int(self.xrow[r]), int(self.xstride[r]))]
            g = next((g for g in gs if np.array_equal(ex[g[0]], ex[r])), None)
            if g is None:
                gs.append([r])
            else:
                g.append(r)
        return [g for gs in near.values() for g in gs if len(g) > 1]

    def lay_out(self, build, ex: np.ndarray) -> tuple:
        """The kernels' (brow, bsteps) for examples ``ex`` (R, S, B): each group's rows in S
        batches of B, laid out by ``build`` (``latch_batch_rows``); (None, None) if no
        members read alike."""
        R, S, B = ex.shape
        brow, bsteps = np.zeros(R, np.uint64), np.zeros(R, np.int32)
        self.held, total = [brow, bsteps], 0
        for g in self.groups(ex):
            Tf = int(self.steps[g].max())
            if total + 4 * S * B * Tf > ROW_LAYOUT_BYTES:
                continue
            out = _aligned((S, Tf, B))
            rows = np.ascontiguousarray(ex[g[0]], np.int32)
            x = ctypes.cast(ctypes.c_void_p(int(self.xrow[g[0]])), _PF)
            if build(x, int(self.xstride[g[0]]), Tf, _ptr(rows, ctypes.c_int32), S * B, B, _ptr(out)):
                raise RuntimeError("native kernel rejected its arguments (latch_batch_rows)")
            self.held.append(out)
            total += out.nbytes
            brow[g], bsteps[g] = out.ctypes.data, Tf
        if not total:
            return None, None
        return ctypes.cast(brow.ctypes.data, _PPF), _ptr(bsteps, ctypes.c_int32)


class Ensemble:
    """Members' host-side state for the native trainer: flat parameters and optimiser moments."""

    def __init__(self, model, optimizer: str, params, x, y, mask, train_idx, val_idx):
        self.optimizer = optimizer
        self.like = params
        self.params = flatten(params)
        R, P = self.params.shape
        self.mu, self.nu = np.zeros((R, P), np.float32), np.zeros((R, P), np.float32)
        self.count = np.zeros(R, np.int32)
        self.t0 = first_steps(mask)
        R, T = self.t0.shape[0], np.shape(mask)[1]
        F = model.n_in
        if np.shape(x)[3] != F:
            raise ValueError(f"inputs of {np.shape(x)[3]} channels for a model of {F}")
        if isinstance(x, Rows):  # every member reads its own array from step 0
            self.keep = [np.ascontiguousarray(a, np.float32) for a in x.arrays]
            ptrs = [a.ctypes.data for a in self.keep]
            self.xstride = np.array([a.shape[1] for a in self.keep], np.int64)
        else:  # (R, N, T, F) left-padded: member r's rows start at step t0[r] of x[r]
            # channel-major (F, R, N, T): the kernels gather each channel as one scalar input
            # (entry f R + r of xrow is member r's channel f)
            if F > 1:
                xc = _channel_major(x)
            else:  # a view of a host array
                xc = np.ascontiguousarray(np.asarray(x, np.float32).reshape((1,) + np.shape(x)[:3]))
            self.keep = [xc]
            N = xc.shape[2]
            ptrs = [xc.ctypes.data + 4 * (((f * R + r) * N) * T + int(self.t0[r])) for f in range(F) for r in range(R)]
            self.xstride = np.full(F * R, T, np.int64)
        self.xrow = np.array(ptrs, np.uint64)
        # targets: labels (dense2, dense1), values (linear) per example, or categories per step
        # (seq_softmax, (R, N, T): the kernels read an example's row)
        self.head = model.head
        self.y = np.ascontiguousarray(np.asarray(y), np.float32 if model.head == "linear" else np.int32)
        if self.head == "seq_softmax" and self.y.shape[2] != T:
            raise ValueError(f"seq_softmax targets of {self.y.shape[2]} steps for sequences of {T}")
        self.shape = (R, self.y.shape[1], T)
        self.train = np.ascontiguousarray(np.asarray(train_idx), np.int32)
        self.val = np.ascontiguousarray(np.asarray(val_idx), np.int32)
        self.y_val = None if self.per_step else np.ascontiguousarray(np.take_along_axis(self.y, self.val, 1))
        self.val_rows = RowLayout(self.xrow, self.xstride, T - self.t0) if _lays_out(model) else None
        self.val_laid_out: tuple = (None, None, None)  # (the library it was laid out for, brow, bsteps)
        self.codes = (*variant(model), model.cell.units, F, HEADS[model.head], model.n_out)
        self.lib = lib(variant(model))  # built for this ``march()``
        self.per_block = per_block(self.lib.latch_per_block(), model.cell.units)

    @property
    def per_step(self) -> bool:
        return self.head == "seq_softmax"

    def _inputs(self):
        return (
            ctypes.cast(self.xrow.ctypes.data, ctypes.POINTER(ctypes.POINTER(ctypes.c_float))),
            _ptr(self.xstride, ctypes.c_int64),
        )

    def _targets(self, y):
        """The kernels' target arguments (labels, values, N, categories per step) from
        targets ``y`` (per example in training, per validation slot in validation; unused
        for per-step targets, read by example)."""
        I = ctypes.c_int32  # noqa: E741
        if self.per_step:
            return None, None, self.shape[1], _ptr(self.y, I)
        if self.head == "linear":
            return None, _ptr(y), self.shape[1], None
        return _ptr(y, I), None, self.shape[1], None

    def train_epoch(self, lr, order, weight, row=None):
        """One epoch (``train.train_epoch``'s contract): returns (R,) mean loss and accuracy.
        Member r takes row ``row[r]`` of ``order`` and ``weight`` (default: row r), so
        members that shuffle alike can share one (``train.Shuffles``)."""
        R, N, T = self.shape
        D, S, B = order.shape
        # positions into each member's training examples: the kernel looks up the examples
        # and their targets (each thread its block's), and refuses a position out of range
        order = np.ascontiguousarray(order, np.int32)
        weight = np.ascontiguousarray(weight, np.float32)
        row = np.arange(R, dtype=np.int32) if row is None else np.ascontiguousarray(row, np.int32)
        if weight.shape != order.shape or row.shape != (R,) or (R and not 0 <= row.min() <= row.max() < D):
            raise ValueError(f"shuffles {order.shape}, weights {weight.shape} and rows {row.shape} for {R} members")
        lr = np.ascontiguousarray(lr, np.float32)
        loss, acc = np.zeros(R, np.float32), np.zeros(R, np.float32)
        k, rs, ra, H, F, hd, n_out = self.codes
        I = ctypes.c_int32  # noqa: E741
        vectors = -(-B // self.lib.latch_lanes())
        block = per_block(self.lib.latch_per_block(), H, vectors)
        if H * vectors == 1:
            block = train_block(block, T - self.t0)

        def call(counter):
            return self.lib.latch_train_epoch(
                k,
                rs,
                ra,
                H,
                F,
                hd,
                n_out,
                OPTIMIZERS[self.optimizer],
                R,
                T,
                *self._inputs(),
                _ptr(self.t0, I),
                S,
                B,
                _ptr(order, I),
                self.train.shape[1],
                _ptr(self.train, I),
                *self._targets(self.y),
                _ptr(weight),
                _ptr(row, I),
                _ptr(self.params),
                _ptr(self.mu),
                _ptr(self.nu),
                _ptr(self.count, I),
                _ptr(lr),
                _ptr(loss),
                _ptr(acc),
                block,
                counter,
            )

        _parallel(call, R, block)
        return loss, acc

    def _val_layout(self) -> tuple:
        """The kernel's (brow, bsteps) for validation: the rows of members that share them,
        laid out at the first call and kept (they do not change between epochs), for the
        library in use (its vectors set the passes)."""
        if self.val_laid_out[0] is not self.lib:
            build = getattr(self.lib, "latch_batch_rows", None)  # not in tests' emulated ARM kernels
            laid: tuple = (None, None)
            if self.val_rows is not None and build is not None and self.val.shape[1]:
                Bv = self.lib.latch_eval_rows()
                R, Nv = self.val.shape
                at = np.arange(-(-Nv // Bv) * Bv)
                ex = self.val[:, np.where(at < Nv, at, 0)]  # the last pass padded as the kernel pads it
                laid = self.val_rows.lay_out(build, ex.reshape(R, -1, Bv))
            self.val_laid_out = (self.lib, *laid)
        return self.val_laid_out[1:]

    def evaluate(self):
        """(R,) validation loss and accuracy (``train.evaluate``'s contract: the head's loss
        and metric, ``model.per_example``, averaged over each member's validation set)."""
        R, N, T = self.shape
        loss, acc = np.zeros(R, np.float32), np.zeros(R, np.float32)
        k, rs, ra, H, F, hd, n_out = self.codes
        I = ctypes.c_int32  # noqa: E741

        def call(counter):
            return self.lib.latch_evaluate(
                k,
                rs,
                ra,
                H,
                F,
                hd,
                n_out,
                R,
                T,
                *self._inputs(),
                _ptr(self.t0, I),
                self.val.shape[1],
                _ptr(self.val, I),
                *self._targets(self.y_val),
                _ptr(self.params),
                _ptr(loss),
                _ptr(acc),
                self.per_block,
                counter,
                *laid_out,
            )

        laid_out = self._val_layout()
        _parallel(call, R, self.per_block)
        return loss, acc

    def snapshot(self):
        return unflatten(self.params, self.like)
