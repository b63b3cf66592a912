"""The names a configuration may use, and the limits of its integers, without JAX.

One definition of each catalogue: ``cells``, ``tasks``, ``model`` and ``engine.train``
import these names from here, and ``latchlab.config`` validates against them without
importing the numerical code (importing a config or a store does not load JAX).
"""

from __future__ import annotations

from latchlab.errors import ConfigError

# ----------------------------------------------------------------------------- integer limits

SEED_MAX = 2**32 - 1
"""The largest PRNG seed: seeds are stored as uint32 (``jax.random.PRNGKey``'s range)."""
INDEX_MAX = 2**31 - 1
"""The largest size or count: XLA and the data generators index with int32."""

# ----------------------------------------------------------------------------- cells

GATES = {
    "srnn": ("h",),
    "lstm": ("i", "f", "c", "o"),
    "gru": ("z", "r", "h"),
    "lstm_nofg": ("i", "c", "o"),
    "janet": ("f", "c"),
}
"""Each cell's gate blocks, in Keras' stacking order."""
CELLS = tuple(GATES)
PRESETS = {  # preset -> (recurrent activation, GRU reset_after)
    "keras2": ("hard_sigmoid", False),
    "keras3": ("sigmoid", True),
}
INITS = ("keras", "torch", "chrono")
CHRONO_CELLS = ("lstm", "gru", "janet")
"""The cells with a forget (or update) gate, the ones chrono initialisation applies to."""
PARAMETERS = ("kernel", "recurrent", "bias")


def parameter_names(cell: str) -> tuple[str, ...]:
    """The names ``values`` may set for ``cell``: a whole parameter or one gate's block."""
    return PARAMETERS + tuple(f"{p}_{g}" for p in PARAMETERS for g in GATES[cell])


ALL_PARAMETER_NAMES = tuple(dict.fromkeys(n for c in CELLS for n in parameter_names(c)))

# ----------------------------------------------------------------------------- tasks

TASKS = ("latch", "bit_relay", "two_sequence", "two_sequence_3b", "parity", "adding", "copy")
SPLITS = ("stratified", "tail")
# what a task's y is: ``class`` (N,) int labels 0/1, ``regression`` (N,) float,
# ``sequence`` (N, T) int categories per step
TARGETS = {
    "latch": "class",
    "bit_relay": "class",
    "two_sequence": "class",
    "two_sequence_3b": "class",
    "parity": "class",
    "adding": "regression",
    "copy": "sequence",
}
CLASS_TASKS = tuple(t for t, kind in TARGETS.items() if kind == "class")
"""The classification tasks (a 0/1 label per sequence): what diagnostics and landscapes measure."""
N_IN = {t: 1 for t in TARGETS} | {"adding": 2, "copy": 10}  # input channels F
NOISE = {
    "latch": 0.1,
    "bit_relay": 0.1,
    "two_sequence": 0.2**0.5,  # H&S 1997's variance 0.2
    "two_sequence_3b": 0.2**0.5,
    "parity": 0.0,  # noise-free (Bengio 1994's noisy variant: 0.2)
    "adding": 0.0,  # ignored
    "copy": 0.0,  # ignored
}
"""Each task's default noise (a std; ``parity``: the half-width of uniform noise): the
generators' defaults, and a config's when its ``noise`` is ``auto``."""
# copy memory (Arjovsky et al. 2016): 8 data symbols, 10 of them to copy
COPY_SYMBOLS, COPY_LEN = 8, 10
COPY_BLANK, COPY_DELIMITER = 0, COPY_SYMBOLS + 1  # data symbols are 1..8
COPY_CATEGORIES = COPY_SYMBOLS + 2  # blank, 8 symbols, delimiter: the one-hot width


def two_sequence_min_length(T):
    """The shortest length of a ``two_sequence`` data set whose longest is ``T``:
    ``T - floor(T / 11)``, so that H&S's lengths ``[T0, T0 + T0/10]`` are ``T = 1.1 T0``
    (exactly when ``T0`` is a multiple of 10: ``T0 = 100`` is ``T = 110``)."""
    return T - T // 11


def check(task: str, T: int, noise: float, signal_len: int, n: int | None = None) -> None:
    """Raise ``ConfigError`` naming the first field out of range."""
    if task not in TASKS:
        raise ConfigError("task", f"unknown task {task!r}", TASKS)
    if isinstance(T, bool) or not isinstance(T, int) or not 1 <= T <= INDEX_MAX:
        raise ConfigError("T", f"sequence length must be an integer >= 1, got {T!r}")
    if not 0 <= noise < float("inf"):  # also refuses NaN
        raise ConfigError("noise", f"noise std must be a finite number >= 0, got {noise!r}")
    if isinstance(signal_len, bool) or not isinstance(signal_len, int) or not 1 <= signal_len <= INDEX_MAX:
        raise ConfigError("signal_len", f"must be an integer >= 1, got {signal_len!r}")
    if task == "copy" and T < 2 * COPY_LEN + 1:
        raise ConfigError(
            "T",
            f"copy needs T >= {2 * COPY_LEN + 1} (T is the total length: {COPY_LEN} "
            f"symbols, a delay T - {2 * COPY_LEN} >= 1, {COPY_LEN} recall steps), got {T}",
        )
    need = {"latch": signal_len, "bit_relay": max(2 * signal_len, 2), "parity": 1, "adding": 2}.get(task)
    if task.startswith("two_sequence") and two_sequence_min_length(T) < signal_len:
        raise ConfigError("T", f"{task} with signal_len={signal_len} needs T - T // 11 >= {signal_len}, got T={T}")
    if need is not None and T < need:
        raise ConfigError("T", f"{task} with signal_len={signal_len} needs T >= {need}, got {T}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 4 <= n <= INDEX_MAX):
        raise ConfigError("N", f"number of sequences must be an integer >= 4, got {n!r}")


# ----------------------------------------------------------------------------- heads, optimisers

# the classification heads (a 0/1 label per sequence); ``ALL_HEADS`` has every head
HEADS = ("dense2", "dense1")
ALL_HEADS = HEADS + ("linear", "seq_softmax")
# the heads that fit each kind of target (``TARGETS``); the first is the default
HEADS_FOR = {"class": HEADS, "regression": ("linear",), "sequence": ("seq_softmax",)}
OPTIMIZERS = ("adam", "sgd", "rmsprop")
