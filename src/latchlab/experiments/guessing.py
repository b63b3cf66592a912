"""Random weight guessing (Hochreiter & Schmidhuber 1996): the baseline of every latching claim.

    REPEAT draw every weight uniformly in [-a, a] UNTIL the net classifies all training
    sequences correctly; then test it on a separate test set.

A *run* is one such search on its own training set; its *trials* is the index (from 1) of
the first guess that solves. Guesses are evaluated in blocks, all active runs at once (every
run's next ``block`` guesses). On the CPU the native kernel (``native.guessing``,
``latchlab/engine/native/guessing.cpp``, the same outputs as ``outputs`` bit for bit) runs a
guess on a training sequence only if it passed every one before; elsewhere (a GPU, no
compiler, ``LATCHLAB_NATIVE=0``) XLA screens a block on the first ``screen`` training
sequences (a guess that fails one of them cannot solve) and evaluates only the survivors on
the whole training set. Either way the result is exactly that of trying the guesses one at a
time in order.

Beside the search, ``success_probability`` estimates the probability ``p`` that one guess
solves, from ``probes`` further guesses per run drawn from a stream of their own (none of
them is a search's guess) and evaluated on that run's training set. Trials are geometric,
so the expected number of trials is ``1/p``: ``table`` prints it (with the exact binomial
95 % interval of ``p`` inverted) beside the measured mean, so that the two can be compared.

Problems (H&S 1996 / their 2001 technical report "Evaluating long-term dependency benchmark
problems by random guessing", set-up read there: weights in [-100, 100], activations 0 at
each sequence's start, sequence lengths uniform in [500, 600], 100 training and 100 test
sequences, half per class, correct = absolute error at the end below 0.1):

* ``latch1``: one tanh unit ``y_t = tanh(w y_{t-1} + u_t)``, ``u_1 = h_c`` (a free input per
  class c), ``u_t ~ N(0, 0.2)`` after; 3 free parameters ``(w, h_0, h_1)``; targets ±0.8.
  Published: 6 trials (mean of 40 runs).
* ``latch2``: one tanh unit ``y_t = tanh(w y_{t-1} + v x_t + b)`` whose sequence elements are
  ``x_1 = ±1`` by class and ``x_t ~ N(0, 0.2)`` after: the noise is part of the sequence and
  enters through the input weight ``v`` like the first element (the literal reading, the
  default; ``noise_into = "net"`` adds it to the net input instead, as in latch1); 3 free
  weights ``(w, v, b)``; targets ±1. Published: 22.
* ``parity``: H&S's architecture A1 with one hidden unit: a fully connected net of an
  input, a hidden unit ``h`` and an output ``o`` (logistic), each of ``h`` and ``o`` fed by
  the input, ``h`` and ``o``; the hidden unit has a bias, the output none (A1's "biased
  hidden units"; ``biases = "all"`` gives the output one too); 7 weights. The update is the
  standard synchronous one: every unit's new activation is computed from the previous
  step's activations (``update = "layered"``: the output sees the hidden unit's new
  activation). Inputs ±1, no noise; target 1 if the number of +1 is odd, else 0.
  Published: 2906 trials. Under the synchronous update the output at the last step is
  ``sigmoid(w_ox x_T + c)``, ``c`` a function of the previous steps alone: a monotone
  function of the last input, in the same direction whatever the parity before it, while
  the target's dependence on the last input flips with that parity. So for every prefix of
  one of the two parities one of its two continuations is misclassified (at most 3 of any
  4 such sequences right): the literal net cannot solve parity except by a fit to the
  particular training set that is exponentially unlikely in its size
  (``last_step_pairs_correct`` computes the quantity; a test checks the bound).

Success criteria (``GuessConfig.criterion``): ``abs`` is H&S's general one (|error| < 0.1
on every training sequence). With targets ±0.8 it cannot be met by ``latch1``: the last
step's noise (std 0.45) enters the output's net input directly, so no weights keep 100
outputs inside (0.7, 0.9). ``sign`` (every output on its target's side of the midpoint of
the two targets) is the classification criterion that H&S's count for the latch problems
implies (their remark that it "almost suffices to get the parameter signs right").
"""

from __future__ import annotations

import ctypes
import math
import time
from functools import partial
from typing import Annotated, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from pydantic import model_validator
import pandas as pd

from latchlab.core import tasks
from latchlab.core.catalog import INDEX_MAX
from latchlab.errors import ConfigError
from latchlab.validate import Frozen, IntRange, NumberRange, OneOf, check_seed_range
from latchlab.experiments.experiment import Experiment, Table, check_scale, write_results

PROBLEMS = ("latch1", "latch2", "parity", "two_sequence")
PUBLISHED = {"latch1": 6, "latch2": 22, "parity": 2906}
CRITERIA = ("abs", "sign")
HIDDEN = ("sigmoid", "tanh")
UPDATES = ("sync", "layered")
NOISE_INTO = ("input", "net")
BIASES = ("hidden", "all")


class GuessConfig(Frozen):
    """One guessing experiment (defaults: H&S's set-up as read in their 2001 report, the
    literal reading where the text leaves a choice)."""

    problem: Annotated[str, OneOf(PROBLEMS)] = "latch1"
    """``latch1``, ``latch2``, ``parity`` or ``two_sequence`` (H&S 1997 task 3a, N = 1,
    with latch2's one-unit net; lengths as ``tasks.two_sequence``)."""
    a: Annotated[float, NumberRange(gt=0, le=1e38)] = 100.0
    """Weights uniform in ``[-a, a]`` (H&S: 100); at most 1e38, so that ``2a`` (the
    interval's width, in float32) is finite."""
    len_min: Annotated[int, IntRange(ge=2)] = 500
    """Shortest sequence (H&S: 500)."""
    len_max: Annotated[int, IntRange(ge=2)] = 600
    """Longest sequence (H&S: 600)."""
    n_train: Annotated[int, IntRange(ge=2, even=True)] = 100
    """Training sequences per run, half per class (H&S: 100)."""
    n_test: Annotated[int, IntRange(ge=2, even=True)] = 100
    """Test sequences per run (H&S: 100)."""
    noise_var: Annotated[float, NumberRange(ge=0)] = 0.2
    """Variance of the Gaussian noise of the latch problems (H&S: 0.2)."""
    tol: Annotated[float, NumberRange(gt=0)] = 0.1
    """``abs`` criterion: |output - target| < tol at the end (H&S: 0.1)."""
    criterion: Annotated[str, OneOf(CRITERIA)] = "abs"
    """``abs`` (|error| < tol) or ``sign`` (on the target's side of the targets' midpoint)."""
    hidden: Annotated[str, OneOf(HIDDEN)] = "sigmoid"
    """Parity: the hidden unit's activation, ``sigmoid`` (logistic, like the output) or ``tanh``."""
    update: Annotated[str, OneOf(UPDATES)] = "sync"
    """Parity: ``sync`` (the standard synchronous update: every unit from the previous
    step's activations) or ``layered`` (the output sees the hidden unit's current activation)."""
    biases: Annotated[str, OneOf(BIASES)] = "hidden"
    """Parity: ``hidden`` (A1: the hidden unit has a bias, the output none; 7 weights) or
    ``all`` (the output has one too; 8 weights)."""
    noise_into: Annotated[str, OneOf(NOISE_INTO)] = "input"
    """latch2: the noise is a sequence element fed through the input weight ``v`` like the
    first element (``input``, the literal reading) or is added to the unit's net input
    (``net``, as in latch1)."""
    runs: Annotated[int, IntRange(ge=1)] = 40
    """Independent searches, each on its own data (H&S: 40 for the latch)."""
    block: Annotated[int, IntRange(ge=1)] = 256
    """Guesses per run evaluated at once."""
    screen: Annotated[int, IntRange(ge=1)] = 10
    """Training sequences of the XLA path's first screening pass (the native kernel screens on
    every sequence in turn); the results do not depend on it."""
    max_trials: Annotated[int, IntRange(ge=1)] = 200_000
    """Budget of guesses per run; a run that spends it has failed."""
    probes: Annotated[int, IntRange(ge=0)] = 2000
    """Guesses per run, independent of the search's, that estimate the success probability
    of one guess (``success_probability``; 0: no estimate)."""
    seed: Annotated[int, IntRange(ge=0, le=INDEX_MAX)] = 0
    """Run r uses seed ``seed + r`` (``seed + runs - 1`` at most 2^31 - 1: the runs' seeds
    are an int32 range)."""

    @model_validator(mode="after")
    def _check(self):
        if self.len_max < self.len_min:
            raise ConfigError("len_max", f"need 2 <= len_min <= len_max, got {self.len_min}, {self.len_max}")
        check_seed_range(self.seed, self.runs, high=INDEX_MAX)
        return self


def make_config(**overrides) -> GuessConfig:
    """``GuessConfig`` with ``overrides``; unknown names are errors."""
    return GuessConfig.make(**overrides)


# ----------------------------------------------------------------------------- data


class Data(NamedTuple):
    """A run's sequences, left-padded to ``len_max``: x (n, T) inputs; valid (n, T) steps
    that belong to the sequence (each ends at the last step); y (n,) class 0/1."""

    x: jax.Array
    valid: jax.Array
    y: jax.Array


def n_params(cfg: GuessConfig) -> int:
    """Free weights per guess: 3 for the latch problems; parity 7 (A1) or 8 (``biases = "all"``)."""
    if cfg.problem == "parity":
        return 8 if cfg.biases == "all" else 7
    return 3


@partial(jax.jit, static_argnames=("problem", "n", "len_min", "len_max"))
def _data(key, noise_sd, *, problem, n, len_min, len_max):
    k_len, k_x, k_e = jax.random.split(key, 3)
    if problem == "two_sequence":
        # H&S 3a as tasks.two_sequence makes it; its lengths are [T - T//11, T] with T = len_max
        x, y = tasks.two_sequence(k_x, n, len_max, noise_sd, 1)
        return Data(x[..., 0], tasks.two_sequence_valid(k_x, n, len_max), y)
    y = jnp.arange(n, dtype=jnp.int32) % 2
    length = jax.random.randint(k_len, (n,), len_min, len_max + 1)
    rel = jnp.arange(len_max)[None, :] - (len_max - length)[:, None]  # step within the sequence
    valid = rel >= 0
    if problem == "parity":
        bits = jax.random.bernoulli(k_x, 0.5, (n, len_max)) & valid
        free = valid & (rel < length[:, None] - 1)  # the last bit sets the class's parity
        odd = (jnp.sum(bits & free, axis=1) % 2) == 1
        bits = jnp.where(rel == (length - 1)[:, None], (odd != (y == 1))[:, None], bits)
        return Data(jnp.where(valid, jnp.where(bits, 1.0, -1.0), 0.0), valid, y)
    sign = (2.0 * y - 1.0)[:, None]
    e = noise_sd * jax.random.normal(k_e, (n, len_max))
    return Data(jnp.where(rel == 0, sign, jnp.where(valid, e, 0.0)), valid, y)


def make_data(cfg: GuessConfig, key, n: int) -> Data:
    """``n`` sequences of ``cfg.problem`` (half per class) from ``key``."""
    return _data(
        key, jnp.float32(math.sqrt(cfg.noise_var)), problem=cfg.problem, n=n, len_min=cfg.len_min, len_max=cfg.len_max
    )


# ----------------------------------------------------------------------------- the nets


def targets(problem: str):
    """``(target of class 0, target of class 1)``."""
    return {"latch1": (-0.8, 0.8), "latch2": (-1.0, 1.0), "two_sequence": (-1.0, 1.0), "parity": (0.0, 1.0)}[problem]


def outputs(cfg: GuessConfig, theta, data: Data):
    """The net's output at the end of every sequence, for every guess.

    latch1: ``y_t = tanh(w y_{t-1} + u_t)``, ``u`` the class's free input at the first step
        and the noise after; ``theta = (w, h_0, h_1)``.
    latch2, two_sequence: ``y_t = tanh(w y_{t-1} + v x_t + b)``; ``theta = (w, v, b)``.
    parity: ``h_t = f(w_hx x_t + w_hh h_{t-1} + w_ho o_{t-1} + b_h)``,
        ``o_t = sigmoid(w_ox x_t + w_oh h_{t'} + w_oo o_{t-1} [+ b_o])`` with ``t' = t-1``
        (``sync``) or ``t`` (``layered``); ``theta = (w_hx, w_hh, w_ho, b_h, w_ox, w_oh,
        w_oo)``, and ``b_o`` last with ``biases = "all"``.
    States start at 0 and stay there on the steps before a sequence starts.

    Args:
        theta: (G, P) guesses; data: a ``Data`` of n sequences.
    Returns:
        (G, n) outputs at the last step.
    """
    x, valid = data.x.T[:, None, :], data.valid.T[:, None, :]  # (T, 1, n)
    th = [theta[:, i : i + 1] for i in range(theta.shape[1])]  # each (G, 1)
    G, n = theta.shape[0], data.x.shape[0]
    zero = jnp.zeros((G, n), theta.dtype)
    if cfg.problem == "parity":
        f = jax.nn.sigmoid if cfg.hidden == "sigmoid" else jnp.tanh
        whx, whh, who, bh, wox, woh, woo = th[:7]
        bo = th[7] if cfg.biases == "all" else jnp.zeros_like(bh)

        def parity_step(c, inp):
            h, o = c
            x_t, m_t = inp
            h_new = f(whx * x_t + whh * h + who * o + bh)
            o_new = jax.nn.sigmoid(wox * x_t + woh * (h_new if cfg.update == "layered" else h) + woo * o + bo)
            return (jnp.where(m_t, h_new, h), jnp.where(m_t, o_new, o)), None

        (_, o), _ = jax.lax.scan(parity_step, (zero, zero), (x, valid))
        return o
    if cfg.problem == "latch1":
        w, h0, h1 = th
        first = (data.valid & ~jnp.pad(data.valid[:, :-1], ((0, 0), (1, 0)))).T[:, None, :]  # (T, 1, n)

        def step(y, inp):
            x_t, m_t, f_t = inp
            u = jnp.where(f_t, jnp.where(x_t > 0, h1, h0), x_t)  # (G, n)
            return jnp.where(m_t, jnp.tanh(w * y + u), y), None

        y, _ = jax.lax.scan(step, zero, (x, valid, first))
        return y
    w, v, b = th
    # latch2 with noise_into = "net": the first step's input goes through v, the noise not
    through_v = (
        jnp.ones_like(data.valid)
        if cfg.problem != "latch2" or cfg.noise_into == "input"
        else data.valid & ~jnp.pad(data.valid[:, :-1], ((0, 0), (1, 0)))
    ).T[:, None, :]

    def step(y, inp):
        x_t, m_t, v_t = inp
        return jnp.where(m_t, jnp.tanh(w * y + jnp.where(v_t, v * x_t, x_t) + b), y), None

    y, _ = jax.lax.scan(step, zero, (x, valid, through_v))
    return y


def solved(cfg: GuessConfig, theta, data: Data):
    """(G,) bool: the guess classifies every sequence of ``data`` correctly (``cfg.criterion``)."""
    lo, hi = targets(cfg.problem)
    out = outputs(cfg, theta, data)
    d = jnp.where(data.y == 1, hi, lo)[None, :]
    if cfg.criterion == "abs":
        ok = jnp.abs(out - d) < cfg.tol
    else:
        ok = (out > 0.5 * (lo + hi)) == (data.y == 1)[None, :]
    return jnp.all(ok, axis=1)


def correct_fraction(cfg: GuessConfig, theta, data: Data):
    """(G,) fraction of ``data``'s sequences classified correctly by each guess."""
    lo, hi = targets(cfg.problem)
    out = outputs(cfg, theta, data)
    d = jnp.where(data.y == 1, hi, lo)[None, :]
    ok = jnp.abs(out - d) < cfg.tol if cfg.criterion == "abs" else (out > 0.5 * (lo + hi)) == (data.y == 1)[None, :]
    return jnp.mean(ok, axis=1)


# ----------------------------------------------------------------------------- the search


def guesses(cfg: GuessConfig, run_keys, first: int, count: int):
    """Guesses ``first .. first + count - 1`` of each run: (R, count, P), uniform in
    ``[-a, a]``, guess ``j`` of a run from ``fold_in(run_key, j)`` (independent of blocking)."""
    from latchlab.engine import data

    return data.jax_guesses(run_keys, first, count, n_params(cfg), cfg.a)


@partial(jax.jit, static_argnums=(0, 3))
def _screen(cfg, run_keys, first, count, data: Data):
    theta = guesses(cfg, run_keys, first, count)  # (R, B, P)
    part = Data(*(a[:, : cfg.screen] for a in data))
    return jax.vmap(lambda t, d: solved(cfg, t, d))(theta, part), theta


@partial(jax.jit, static_argnums=0)
def _full(cfg, theta, data: Data):
    # theta (S, P) with data (S, n, T): each candidate on its own run's training set
    return jax.vmap(lambda t, d: solved(cfg, t[None], d)[0])(theta, data)


@partial(jax.jit, static_argnums=0)
def _test(cfg, theta, data: Data):
    return jax.vmap(lambda t, d: correct_fraction(cfg, t[None], d)[0])(theta, data)


FULL_CHUNK = 64  # candidates per compiled full-training-set evaluation


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


class RunResult(NamedTuple):
    """Per run: ``trials`` to the first solver (``max_trials + 1`` if none), ``solved``,
    the solver's weights (NaN if none) and its fraction correct on the test set."""

    trials: np.ndarray
    solved: np.ndarray
    theta: np.ndarray
    test_correct: np.ndarray
    seconds: float


def check_limits(cfg: GuessConfig) -> None:
    """``LimitError`` (``latchlab.limits``) before any work if a search needs more memory
    than the machine has: every run's training and test sets, and a block of guesses for
    every active run screened at once."""
    from latchlab import limits

    R, P, T = cfg.runs, n_params(cfg), cfg.len_max
    A = max(8, _pow2(R))
    parts = {
        # inputs, valid steps and their draws (about three copies), kept on the host and placed
        "training sets (runs x n_train x len_max)": 6 * R * cfg.n_train * T * limits.F32,
        "test sets (runs x n_test x len_max)": 3 * R * cfg.n_test * T * limits.F32,
        # every active run's guesses, screened on ``screen`` sequences, and the survivors'
        # whole training sets
        "guesses (runs x block x screen)": A * cfg.block * (P + 4 * min(cfg.screen, cfg.n_train)) * limits.F32,
        "survivors (n_train x len_max)": FULL_CHUNK * cfg.n_train * T * 2 * limits.F32,
    }
    seconds = R * cfg.max_trials * min(cfg.screen, cfg.n_train) * T * limits.STEP_SECONDS
    limits.check(f"{cfg.problem}'s {R} runs of blocks of {cfg.block} guesses at len_max={T}", parts, seconds)


class Kernel(NamedTuple):
    """The native guessing kernel (``latchlab/engine/native/guessing.cpp``) and a search's
    training sets as it reads them: x (R, n, T), each sequence's first step (R, n), classes (R, n)."""

    lib: object
    net: int
    flags: int
    x: np.ndarray
    start: np.ndarray
    y: np.ndarray


def kernel(cfg: GuessConfig, data: Data) -> Kernel | None:
    """``data`` (every run's sets: arrays (R, n, T)) laid out for the native kernel, or None
    where it cannot run (``native.guessing``'s reasons) or a sequence's steps are not one
    run to the end (the kernel starts each at its first step)."""
    from latchlab.engine import native

    try:
        lib = native.guessing()
    except RuntimeError:
        return None
    valid = np.asarray(data.valid)
    T = valid.shape[-1]
    start = (T - valid.sum(-1)).astype(np.int32)
    if not np.array_equal(valid, np.arange(T) >= start[..., None]):
        return None
    if cfg.problem == "parity":
        bits = {
            "hidden_tanh": cfg.hidden == "tanh",
            "layered": cfg.update == "layered",
            "output_bias": cfg.biases == "all",
        }
        net, flags = "parity", sum(native.GUESS_FLAGS[k] for k, on in bits.items() if on)
    else:
        net = "latch2_net" if cfg.problem == "latch2" and cfg.noise_into == "net" else cfg.problem
        net, flags = ("latch2" if net == "two_sequence" else net), 0
    x = np.ascontiguousarray(data.x, np.float32)
    return Kernel(lib, native.GUESS_NETS[net], flags, x, start, np.ascontiguousarray(data.y, np.int32))


def _native_call(k: Kernel, entry: str, theta: np.ndarray, run: np.ndarray, *tail) -> None:
    """``k``'s kernel entry ``entry`` on guesses ``theta`` (S, B, P) of runs ``run`` (S,), then
    ``tail``'s arguments; RuntimeError if it rejects them."""
    from latchlab.engine import native

    S, B, P = theta.shape
    n, T = k.x.shape[-2:]
    i32 = partial(native._ptr, ctype=ctypes.c_int32)
    args = (k.net, k.flags, S, B, P, native._ptr(theta), i32(run), n, T, native._ptr(k.x), i32(k.start), i32(k.y))
    if code := getattr(k.lib, entry)(*args, *tail):
        raise RuntimeError(f"the native guessing kernel rejected its arguments (code {code})")


def native_solved(cfg: GuessConfig, k: Kernel, theta, run) -> np.ndarray:
    """(S, B) bool: whether guess ``theta[s, g]`` (S, B, P) classifies every training sequence of
    run ``run[s]`` (``cfg.criterion``): ``solved``'s verdict by the native kernel, which runs a
    guess on a sequence only if it passed every one before."""
    from latchlab.engine import native

    theta = np.ascontiguousarray(theta, np.float32)
    out = np.zeros(theta.shape[:2], np.uint8)
    lo, hi = targets(cfg.problem)
    sign = int(cfg.criterion == "sign")
    tail = (lo, hi, cfg.tol, sign, native.threads(), native._ptr(out, ctypes.c_uint8))
    _native_call(k, "guess_solved", theta, np.ascontiguousarray(run, np.int32), *tail)
    return out.astype(bool)


def native_outputs(cfg: GuessConfig, theta, data: Data) -> np.ndarray:
    """``outputs`` by the native kernel: (G, n) every guess's output at the end of every
    sequence (the same bits as JAX's); raises RuntimeError where the kernel cannot run."""
    from latchlab.engine import native

    k = kernel(cfg, Data(*(jnp.asarray(a)[None] for a in data)))
    if k is None:
        raise RuntimeError("the native guessing kernel cannot run here")
    theta = np.ascontiguousarray(np.asarray(theta)[None], np.float32)
    out = np.zeros((theta.shape[1], k.x.shape[-2]), np.float32)
    _native_call(k, "guess_outputs", theta, np.zeros(1, np.int32), native.threads(), native._ptr(out))
    return out


def _drawn(cfg: GuessConfig, keys, first: int, count: int) -> np.ndarray:
    """``guesses`` as a host array: by the native generator (``native.prng``: the same bits,
    nothing to compile) where it runs, else by JAX."""
    from latchlab.engine import data, native

    if (so := native.prng()) is not None:
        return data.uniform_guesses(so, np.asarray(keys), first, count, n_params(cfg), cfg.a)
    return np.asarray(data.jax_guesses_jit(keys, first, count, n_params(cfg), cfg.a))


def _solved_block(cfg: GuessConfig, k: Kernel | None, keys, first: int, count: int, data: Data, idx, S: int):
    """Guesses ``first .. first + count - 1`` of the runs ``idx[:S]`` (``idx`` padded to a
    power of two, ``keys`` and ``data`` its rows), and which of them solve their run's training
    set: ((S, count) bool, (S, count, P) weights). Natively where ``k`` is given; else on XLA,
    screened on the first ``cfg.screen`` sequences, the survivors then on the whole set in
    chunks of one compiled shape."""
    if k is not None:
        th = _drawn(cfg, keys[:S], first, count)
        return native_solved(cfg, k, th, idx[:S]), th
    passed, th = _screen(cfg, keys, first, count, data)
    th = np.asarray(th)[:S]
    ok = np.zeros((S, count), bool)
    cand = np.argwhere(np.asarray(passed)[:S])  # (k, 2) rows (task, guess index)
    for c0 in range(0, len(cand), FULL_CHUNK):
        chunk = cand[c0 : c0 + FULL_CHUNK]
        pick = np.concatenate([chunk, np.repeat(chunk[:1], FULL_CHUNK - len(chunk), axis=0)])
        good = np.asarray(_full(cfg, th[pick[:, 0], pick[:, 1]], Data(*(a[pick[:, 0]] for a in data))))
        ok[chunk[:, 0], chunk[:, 1]] = good[: len(chunk)]
    return ok, th


def search(cfg: GuessConfig) -> RunResult:
    """Run ``cfg.runs`` independent guessing searches; see the module docstring. A search
    that cannot fit in memory is refused first (``check_limits``)."""
    check_limits(cfg)
    t0 = time.perf_counter()
    R, P = cfg.runs, n_params(cfg)
    keys = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s), 3))(jnp.arange(cfg.seed, cfg.seed + R))
    train_keys, test_keys, guess_keys = keys[:, 0], keys[:, 1], keys[:, 2]
    make = jax.vmap(lambda k: make_data(cfg, k, cfg.n_train))
    train_data = jax.device_get(make(train_keys))
    k = kernel(cfg, train_data)
    trials = np.full(R, cfg.max_trials + 1, np.int64)
    theta = np.full((R, P), np.nan, np.float32)
    active = np.arange(R)
    first = 0
    while active.size and first < cfg.max_trials:
        count = min(cfg.block, cfg.max_trials - first)
        count = _pow2(count) if count < cfg.block else count
        A = max(8, _pow2(active.size))
        idx = np.concatenate([active, np.full(A - active.size, active[0])])
        data = Data(*(a[idx] for a in train_data)) if k is None else train_data
        ok, th = _solved_block(cfg, k, guess_keys[idx], first, count, data, idx, active.size)
        within = cfg.max_trials - first  # a block rounded up to a power of two holds guesses past the budget
        for pos, r in enumerate(active):
            if (hit := np.flatnonzero(ok[pos, :within])).size:  # the run's earliest solver in the block
                trials[r], theta[r] = first + hit[0] + 1, th[pos, hit[0]]
        active = active[trials[active] > cfg.max_trials]
        first += count
    solved_ = trials <= cfg.max_trials
    test_correct = np.full(R, np.nan)
    if solved_.any():
        rs = np.flatnonzero(solved_)
        test = jax.vmap(lambda k: make_data(cfg, k, cfg.n_test))(test_keys[rs])
        test_correct[rs] = np.asarray(_test(cfg, jnp.asarray(theta[rs]), test))
    return RunResult(trials, solved_, theta, test_correct, time.perf_counter() - t0)


PROBE_STREAM = 3
"""``fold_in(PRNGKey(seed + r), PROBE_STREAM)`` seeds run r's probe guesses: a stream apart
from the search's (``split(PRNGKey(seed + r), 3)``: training data, test data, guesses). In
JAX's partitionable threefry ``fold_in(key, i)`` is ``split(key, n)[i]``, so streams 0-2 are
the search's: the probes took stream 1 until 2026-12-06, the test data's key (probe guesses
0-2 were drawn from the keys of the test set's lengths, signs and noise; the probes are
evaluated on the training set only, so no estimate was biased, but the streams were not
apart as said). ``test_probe_keys_are_no_key_of_the_search`` checks it."""


def probe_keys(cfg: GuessConfig):
    """(R, 2) the keys of each run's probe guesses (``success_probability``)."""
    return jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(s), PROBE_STREAM))(
        jnp.arange(cfg.seed, cfg.seed + cfg.runs)
    )


def success_probability(cfg: GuessConfig) -> np.ndarray:
    """(R,) how many of run r's ``cfg.probes`` probe guesses solve its training set.

    The probes are drawn like the search's guesses (uniform in ``[-a, a]``, guess ``j`` from
    ``fold_in(probe_key, j)``) but from ``probe_keys``, so none of them is a guess of the
    search; each is evaluated on its run's training set (screened, then on the whole set,
    as in ``search``), every one of them, not only up to the first solver. The pooled
    ``sum / (R * probes)`` estimates the probability ``p`` that one guess solves; trials
    are geometric, so the expected number of trials is ``1/p``.
    """
    R = cfg.runs
    keys = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s), 3))(jnp.arange(cfg.seed, cfg.seed + R))
    train = jax.device_get(jax.vmap(lambda k: make_data(cfg, k, cfg.n_train))(keys[:, 0]))
    k = kernel(cfg, train)
    A = max(8, _pow2(R))
    idx = np.concatenate([np.arange(R), np.zeros(A - R, np.int64)])
    data = Data(*(a[idx] for a in train)) if k is None else train
    pk = probe_keys(cfg)[idx]
    hits = np.zeros(R, np.int64)
    first = 0
    while first < cfg.probes:
        left = cfg.probes - first
        count = cfg.block if left >= cfg.block else _pow2(left)
        ok, _ = _solved_block(cfg, k, pk, first, count, data, idx, R)
        hits += ok[:, :left].sum(axis=1)
        first += count
    return hits


class Expected(NamedTuple):
    """The success probability of one guess, pooled over runs (``hits / probes``), and the
    expected number of trials ``1/p``, each with its exact (Clopper-Pearson) 95 % interval;
    ``inf`` where no probe solved."""

    hits: int
    probes: int
    p: float
    p_lo: float
    p_hi: float
    trials: float
    trials_lo: float
    trials_hi: float


def expected_trials(hits: int, probes: int) -> Expected:
    """``Expected`` from ``hits`` solvers among ``probes`` independent guesses."""
    from scipy.stats import binomtest

    if probes < 1:
        nan = float("nan")
        return Expected(hits, probes, nan, nan, nan, nan, nan, nan)
    ci = binomtest(int(hits), int(probes)).proportion_ci(0.95, method="exact")
    inv = lambda q: 1.0 / q if q > 0 else float("inf")  # noqa: E731
    p = hits / probes
    return Expected(int(hits), int(probes), p, float(ci.low), float(ci.high), inv(p), inv(ci.high), inv(ci.low))


def last_step_pairs_correct(cfg: GuessConfig, theta, prefixes) -> jax.Array:
    """For parity under ``cfg``: append both last inputs (+1, -1) to each of ``prefixes``
    (n, T) (±1) and count, per guess in ``theta`` (G, P), how many of the 2n sequences the
    net gets right under ``cfg.criterion``. With the synchronous update and one prefix of
    each parity, at most 3 of the 4 (the module docstring's argument)."""
    n, T = prefixes.shape
    x = jnp.concatenate([jnp.concatenate([prefixes, jnp.full((n, 1), v)], axis=1) for v in (1.0, -1.0)])
    odd = jnp.sum(x > 0, axis=1) % 2 == 1
    data = Data(x, jnp.ones_like(x, dtype=bool), odd.astype(jnp.int32))
    lo, hi = targets(cfg.problem)
    out = outputs(cfg, theta, data)
    d = jnp.where(data.y == 1, hi, lo)[None, :]
    ok = jnp.abs(out - d) < cfg.tol if cfg.criterion == "abs" else (out > 0.5 * (lo + hi)) == (data.y == 1)[None, :]
    return jnp.sum(ok, axis=1)


# ----------------------------------------------------------------------------- the experiment

SCALES = {
    # runs per problem for the default reading and for each alternative; parity takes ~3000
    # guesses of 100 sequences of 500-600 steps per solving run, and under the synchronous
    # update every run spends its whole budget
    "quick": {"latch1": 40, "latch2": 40, "parity": 10, "alternatives": 10},
    "full": {"latch1": 40, "latch2": 40, "parity": 40, "alternatives": 40},
}
SET_UP = {
    # the default reading of each problem: the literal one (latch II's noise is a sequence
    # element; A1 has a bias on its hidden unit only and the synchronous update); latch I's
    # criterion is the one its count implies (``abs`` is unattainable, module docstring)
    "latch1": {"problem": "latch1", "criterion": "sign", "block": 32, "probes": 500},
    "latch2": {"problem": "latch2", "criterion": "abs", "noise_into": "input", "block": 64},
    "parity": {
        "problem": "parity",
        "criterion": "abs",
        "hidden": "sigmoid",
        "update": "sync",
        "biases": "hidden",
        "block": 1024,
        "probes": 20_000,
    },
}
ALTERNATIVES = [
    # other readings of the same text, measured beside the default; none is chosen by its
    # distance to a published count
    {"problem": "latch2", "noise_into": "net"},
    {"problem": "parity", "update": "layered"},
    {"problem": "parity", "update": "layered", "biases": "all"},
    {"problem": "parity", "update": "layered", "biases": "all", "hidden": "tanh"},
]
READING = {"latch1": ("criterion",), "latch2": ("noise_into",), "parity": ("update", "biases", "hidden")}
"""The settings that make a problem's reading, compared with ``SET_UP`` by ``reading``."""
TABLE_COLUMNS = [
    "problem",
    "reading",
    "runs",
    "solved",
    "mean_trials",
    "mean_trials_lo",
    "mean_trials_hi",
    "median_trials",
    "expected_trials",
    "expected_trials_lo",
    "expected_trials_hi",
    "p_one_guess",
    "probe_hits",
    "probes",
    "published_mean_trials",
    "criterion",
    "a",
    "test_correct",
    "seconds",
]


def reading(cfg: GuessConfig) -> str:
    """``default`` for ``SET_UP``'s reading of ``cfg.problem``, else the settings that differ
    (``update=layered, biases=all``)."""
    base = SET_UP.get(cfg.problem, {})
    diff = [f"{k}={getattr(cfg, k)}" for k in READING.get(cfg.problem, ()) if getattr(cfg, k) != base.get(k)]
    return ", ".join(diff) or "default"


def experiment_configs(scale: str = "quick", overrides=None) -> list[GuessConfig]:
    """The three H&S problems' default readings, then ``ALTERNATIVES``, as ``GuessConfig``
    at a scale; ``overrides`` apply to all."""
    runs = check_scale(SCALES, scale)
    over = dict(overrides or {})
    cfgs = [make_config(**(SET_UP[p] | {"runs": runs[p]} | over)) for p in SET_UP]
    for alt in ALTERNATIVES:
        cfgs.append(make_config(**(SET_UP[alt["problem"]] | alt | {"runs": runs["alternatives"]} | over)))
    for cfg in cfgs:
        check_limits(cfg)
    return cfgs


def _interval(t: np.ndarray) -> tuple[float, float]:
    """95 % interval of a mean of trials (normal, with the sample standard deviation)."""
    if t.size < 2:
        return float("nan"), float("nan")
    half = 1.959964 * float(t.std(ddof=1)) / math.sqrt(t.size)
    return float(t.mean()) - half, float(t.mean()) + half


def table(results) -> pd.DataFrame:
    """``guessing.csv``: one row per problem and reading: the measured trials and, beside
    them, the trials expected from the success probability of one guess.

    ``mean_trials`` (with a normal 95 % interval) and ``median_trials`` are over the runs
    that solved within the budget (``solved`` says how many). ``expected_trials = 1/p``
    with ``p = probe_hits / probes`` from ``success_probability`` (independent guesses),
    ``expected_trials_lo/hi`` its exact 95 % interval (``inf``: no probe solved).

    Args:
        results: ``[(GuessConfig, RunResult, probe hits per run), ...]``.
    """
    rows = []
    for cfg, r, hits in results:
        t = r.trials[r.solved]
        lo, hi = _interval(t)
        e = expected_trials(int(np.sum(hits)), cfg.probes * cfg.runs)
        rows.append(
            {
                "problem": cfg.problem,
                "reading": reading(cfg),
                "runs": cfg.runs,
                "solved": int(r.solved.sum()),
                "mean_trials": float(t.mean()) if t.size else float("nan"),
                "mean_trials_lo": lo,
                "mean_trials_hi": hi,
                "median_trials": float(np.median(t)) if t.size else float("nan"),
                "expected_trials": e.trials,
                "expected_trials_lo": e.trials_lo,
                "expected_trials_hi": e.trials_hi,
                "p_one_guess": e.p,
                "probe_hits": e.hits,
                "probes": e.probes,
                "published_mean_trials": PUBLISHED.get(cfg.problem, float("nan")),
                "criterion": cfg.criterion,
                "a": cfg.a,
                "test_correct": float(np.nanmean(r.test_correct)) if r.solved.any() else float("nan"),
                "seconds": round(r.seconds, 2),
            }
        )
    return pd.DataFrame(rows)


def run_rows(results) -> pd.DataFrame:
    """``guessing_runs.csv``: one row per run: its seed, trials to the first solver, whether
    it solved, the solver's fraction correct on the test set, and how many of its probe
    guesses solved."""
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "problem": cfg.problem,
                    "reading": reading(cfg),
                    "run": range(cfg.runs),
                    "seed": cfg.seed + pd.RangeIndex(cfg.runs),
                    "trials": r.trials,
                    "solved": r.solved.astype(int),
                    "test_correct": r.test_correct,
                    "probe_hits": hits,
                    "probes": cfg.probes,
                }
            )
            for cfg, r, hits in results
        ],
        ignore_index=True,
    )


class Reproduction(NamedTuple):
    """What ``latchlab reproduce guessing`` computes: ``[(GuessConfig, RunResult, probe hits
    per run)]`` and the run's provenance (``config.json``)."""

    results: list
    meta: dict


def paths() -> dict[str, str]:
    """What evaluates the guesses here (``evaluation``: the native kernel with its instruction
    set, or XLA and why) and what draws them (``guesses``), for ``config.json``: either way the
    numbers are the same bit for bit, and the record says which ran."""
    from latchlab.engine import native

    try:
        evaluation = f"native kernel guessing.cpp ({native.guessing().guess_isa().decode()}, -march={native.march()})"
    except RuntimeError as e:
        evaluation = f"XLA ({e})"
    native_draws = native.prng() is not None
    guesses = "latchlab's prng.cpp (JAX's threefry2x32 bits)" if native_draws else "JAX threefry2x32"
    return {"evaluation": evaluation, "guesses": guesses}


def _compute(runner, scale: str = "quick", overrides=None) -> Reproduction:
    from latchlab import provenance

    cfgs = experiment_configs(scale, overrides)
    results = [(cfg, search(cfg), success_probability(cfg)) for cfg in cfgs]
    meta = {"configs": [c.to_dict() for c in cfgs], "scale": scale, "command": runner.command}
    return Reproduction(results, meta | paths() | provenance.collect())


def _outputs(r: Reproduction, out) -> list:
    import json
    from pathlib import Path

    out = Path(out)
    paths = [
        write_results(table(r.results), out, TABLE_COLUMNS, "guessing.csv"),
        write_results(
            run_rows(r.results),
            out,
            ["problem", "reading", "run", "seed", "trials", "solved", "test_correct", "probe_hits", "probes"],
            "guessing_runs.csv",
        ),
    ]
    (out / "config.json").write_text(json.dumps(r.meta, indent=2))
    return paths + [out / "config.json"]


def _num(x: float) -> str:
    return "inf" if x == float("inf") else "—" if x != x else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _table(r: Reproduction) -> Table:
    t = table(r.results)
    frame = pd.DataFrame(
        {
            "problem": t.problem,
            "reading": t.reading,
            "runs solved": [f"{k}/{n}" for k, n in zip(t.solved, t.runs)],
            "mean trials [95 %]": [
                f"{_num(m)} [{_num(a)}, {_num(b)}]"
                for m, a, b in zip(t.mean_trials, t.mean_trials_lo, t.mean_trials_hi)
            ],
            "expected 1/p [95 %]": [
                f"{_num(m)} [{_num(a)}, {_num(b)}]"
                for m, a, b in zip(t.expected_trials, t.expected_trials_lo, t.expected_trials_hi)
            ],
            "published mean": [f"{x:g}" for x in t.published_mean_trials],
            "test correct": [f"{x:.3f}" for x in t.test_correct],
            "s": [f"{x:.1f}" for x in t.seconds],
        }
    )
    return Table(
        "random weight guessing: trials to the first solver, and 1/p from independent guesses (H&S 1996)", frame
    )


EXPERIMENT = Experiment(
    "guessing",
    SCALES,
    experiment_configs,
    _compute,
    _outputs,
    _table,
    ("guessing.csv", "guessing_runs.csv", "config.json"),
    store=False,
)
