"""What every verb shares: the apps, the options, the one sweep runner, the one way to show results.

Nothing here computes a result: verbs check their outputs (``latchlab.outputs``), call the
library, and print what it returns.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from typer._click import exceptions as click_errors
from typer.core import TyperCommand, TyperOption

from latchlab.errors import ConfigError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Why can (or can't) a recurrent network carry information across time?",
)
reproduce_app = typer.Typer(no_args_is_help=True, help="Reproduce a published experiment.")
app.add_typer(reproduce_app, name="reproduce")


def _console(stderr: bool = False) -> Console:
    """A console that prints text as given: no markup (rich took ``[old]`` in a path
    ``results[old]`` or a cell ``init[orthogonal]`` for a style and dropped it) and no
    highlighting; stderr's lines are not broken at the terminal's width (a path or a
    command in them stays whole to copy)."""
    return Console(stderr=stderr, markup=False, highlight=False, soft_wrap=stderr)


console = _console(stderr=True)


class OnceCommand(TyperCommand):
    """A verb whose options that take one value are each given at most once (flags and
    lists such as ``--split`` may repeat): click kept the last of two in silence (``export
    --csv a.csv --csv b.csv`` wrote b.csv alone). ``latchlab.cli`` makes it every verb's class."""

    def parse_args(self, ctx, args):
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        once = [p for p in order if isinstance(p, TyperOption) and not (p.multiple or p.is_flag or p.count)]
        for p in dict.fromkeys(once):
            if (n := once.count(p)) > 1:
                raise click_errors.BadOptionUsage(str(p.name), f"{p.opts[-1]} is given {n} times; give it once", ctx)
        return super().parse_args(ctx, args)


INTERRUPTED = "interrupted: finished members are in the store; re-run the same command to resume"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM (``cli.main``'s handler): ``code`` is the exit code, 128 + the signal."""

    def __init__(self, code: int = 130):
        super().__init__()
        self.code = code


SWALLOWED: list[KeyboardInterrupt] = []
"""Interrupts raised where Python ignores exceptions (a garbage-collection callback of JAX's,
a ``__del__``): ``cli.main``'s ``sys.unraisablehook`` keeps them here, and ``check_interrupt``
raises them where the command can act on them. Before, such a Ctrl-C printed a traceback and
the sweep trained on to its end."""

SAID: list[bool] = []
"""Whether the command has said it was interrupted (``run_sweep``), so ``cli.main`` does not."""


def check_interrupt() -> None:
    """Raise an interrupt that arrived where it could not be raised (``SWALLOWED``)."""
    if SWALLOWED:
        raise SWALLOWED.pop()


# ----------------------------------------------------------------------------- shared options

Scale = Annotated[str, typer.Option("--scale", help="quick (minutes on a laptop) or full (the published grid).")]
ExplainScale = Annotated[
    str,
    typer.Option(
        "--scale",
        help="full (default: powered, the seed's grid with both splits and presets and ablations at 30 seeds a point) or quick (smoke runs).",
    ),
]
Preset = Annotated[str, typer.Option("--preset", help="keras2 (the 2018 Keras: hard-sigmoid gates) or keras3.")]
Profile = Annotated[bool, typer.Option("--profile", help="Print where the time went.")]
StoreOpt = Annotated[
    Optional[Path], typer.Option("--store", help="Results store to reuse and extend (default OUT/store.sqlite).")
]
Cluster = Annotated[
    Optional[str],
    typer.Option(
        "--cluster",
        help="Train on a Dask cluster: local[:N] (N worker "
        "processes here), tcp://HOST:PORT (a running scheduler) or a TOML "
        "file with a \\[cluster] table (dask-jobqueue: Slurm, PBS, ...).",  # "\\[": rich would take [cluster] for markup
    ),
]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="TOML of config fields to override.")]


def out_option(default: str, help: str = "Output directory."):
    """``--out`` with a verb's own default."""
    return typer.Option(Path(default), "--out", help=help)


def command() -> str:
    """The command line as the user typed it (recorded with every sweep)."""
    return " ".join(["latchlab", *sys.argv[1:]])


# ----------------------------------------------------------------------------- running sweeps


@contextmanager
def _progress(enabled: bool = True):
    """``sweep.progress_bar`` on stderr when it is a terminal (or LATCHLAB_PROGRESS=1)."""
    if not enabled or not sys.stderr.isatty() and os.environ.get("LATCHLAB_PROGRESS") != "1":
        yield None
        return
    from latchlab.engine import sweep

    with sweep.progress_bar(console) as advance:
        yield advance


def _print_profile(timer, wall: float) -> None:
    t = Table(title=f"where the time went ({wall:.1f} s wall)")
    t.add_column("phase")
    t.add_column("seconds", justify="right")
    for name, s in timer.table():
        t.add_row(name, f"{s:.2f}")
    t.add_row("other", f"{max(wall - sum(s for _, s in timer.table()), 0.0):.2f}")
    if timer.background:
        t.caption = f"and {timer.background:.2f} s compiling in background threads, overlapped"
    _console().print(t)


def run_sweep(cfgs, store_path: Path, profile: bool = False, cluster=None):
    """The one way the CLI trains: ``latchlab.engine.run.run`` into the store at
    ``store_path``, with a progress bar on a terminal and, with ``profile``, the time per
    phase. An interrupt prints how to resume and exits with code 130.

    ``cluster``: a ``--cluster`` value (checked by ``cluster_spec``): the chunks train there.
    """
    from latchlab import limits, provenance
    from latchlab.engine import run as runner
    from latchlab.store import Store, new_or_nothing

    limits.check_sweep(cfgs)  # before the store is created (``runner.run`` checks again, for Python callers)
    timer = provenance.Profile() if profile else None
    t0 = time.perf_counter()
    try:
        # a new store (and OUT, made for it) that failed before holding a member is removed:
        # a cluster that cannot be reached leaves nothing
        with new_or_nothing(store_path, keep_members=True):
            Path(store_path).parent.mkdir(parents=True, exist_ok=True)  # OUT/store.sqlite before OUT's files
            with Store(store_path) as store, _progress() as advance:

                def progress(n, total):  # after every epoch of every chunk
                    check_interrupt()
                    if advance is not None:
                        advance(n, total)

                df = runner.run(cfgs, store, progress, timer, command=command(), cluster=cluster, say=console.print)
            check_interrupt()
    except KeyboardInterrupt as e:  # typer would turn it into a silent exit
        print(INTERRUPTED, file=sys.stderr)
        SAID.append(True)
        raise typer.Exit(getattr(e, "code", 130)) from None
    if timer is not None:
        _print_profile(timer, time.perf_counter() - t0)
    return df


def cluster_spec(text: Optional[str]):
    """A ``--cluster`` value parsed (``engine.cluster.parse``) before anything is created."""
    if text is None:
        return None
    from latchlab.engine import cluster

    return cluster.parse(text)


def runner(store_path: Path, profile: bool = False, cluster=None):
    """An experiment's ``Runner`` over ``run_sweep``."""
    from latchlab.experiments.experiment import Runner

    return Runner(lambda cfgs: run_sweep(cfgs, store_path, profile, cluster), command())


# ----------------------------------------------------------------------------- output


def _rich_table(table, no_wrap: bool) -> Table:
    t = Table(title=table.title)
    for c in table.frame.columns:
        t.add_column(str(c), no_wrap=no_wrap, overflow="ellipsis" if no_wrap else "fold")
    for row in table.frame.itertuples(index=False):
        t.add_row(*map(str, row))
    return t


def show(table, paths=()) -> None:
    """Print a ``latchlab.outputs.Table`` (stdout), its note and the files written (stderr).

    No cell is ever cut short: into a file or a pipe the table is printed as wide as it
    needs (rich took 80 columns there and cropped ``T = 100`` of the answer's table to
    ``1…``); on a terminal too narrow for a table whose cells keep to one line, they wrap.
    """
    out = _console()
    t = _rich_table(table, table.no_wrap)
    natural = Console(width=10_000).measure(t).maximum
    if not out.is_terminal:
        out.width = max(out.width, natural)
    elif natural > out.width:
        t = _rich_table(table, False)
    out.print(t)
    if table.note:
        console.print(table.note)
    for p in paths:
        console.print(f"wrote {p}")


def reproduce(
    name: str,
    scale: str,
    out: Path,
    store: Optional[Path] = None,
    profile: bool = False,
    cluster: Optional[str] = None,
    **options,
) -> None:
    """The body of every ``latchlab reproduce`` verb: check the experiment's options and
    outputs, run it (sweeps into ``store``, default ``OUT/store.sqlite``), print its table
    and the files it wrote."""
    from latchlab import outputs

    exp = importlib.import_module(f"latchlab.experiments.{name}").EXPERIMENT
    exp.check(scale, **options)
    spec = cluster_spec(cluster)
    store = store if store is not None else out / "store.sqlite"
    outputs.check_dir(out, "out", [store] if exp.store else [], exp.files)
    if exp.store:
        outputs.check_store(store)
    result, paths = exp.reproduce(out, scale, runner(store, profile, spec), **options)
    show(exp.table(result), paths)


def read_config(path: Optional[Path]) -> dict:
    """Field overrides from a TOML file (``--config``), or none."""
    if path is None:
        return {}
    from latchlab import config

    return config.read_toml(path)


def int_list(text: str, field: str) -> list[int]:
    """``"5,20,50"`` as distinct integers >= 1, or ``ConfigError(field, ...)``."""
    try:
        out = [int(t) for t in text.split(",")]  # an empty item ("3,,4") is no integer
    except ValueError:
        out = []
    if not out or any(t < 1 for t in out):
        raise ConfigError(field, f"must be comma-separated integers >= 1, got {text!r}")
    return list(dict.fromkeys(out))


def float_list(text: str, field: str, n: tuple[int, ...]) -> list[float]:
    """``"1,9"`` as ``n[0]`` (or ``n[1]``, ...) numbers, or ``ConfigError(field, ...)``."""
    try:
        out = [float(t) for t in text.split(",")]
    except ValueError:
        out = []
    if len(out) not in n:
        raise ConfigError(field, f"must be {' or '.join(map(str, n))} comma-separated numbers, got {text!r}")
    return out
