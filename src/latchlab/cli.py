"""The ``latchlab`` command line."""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from latchlab.errors import ConfigError, LatchlabError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Why can (or can't) a recurrent network carry information across time?")
reproduce_app = typer.Typer(no_args_is_help=True, help="Reproduce a published experiment.")
app.add_typer(reproduce_app, name="reproduce")
console = Console(stderr=True)
_INTERRUPTED = "interrupted: finished members are in the store; re-run the same command to resume"


def _setup_jax() -> None:
    """Persistent compilation cache: a sweep's shapes compile once per machine, not per run."""
    import jax

    cache = os.environ.get("LATCHLAB_CACHE", str(Path.home() / ".cache" / "latchlab" / "xla"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


@contextmanager
def _progress(enabled: bool = True):
    """A rich progress bar over member-epochs; yields the sweep's progress callback."""
    if not enabled or not sys.stderr.isatty() and os.environ.get("LATCHLAB_PROGRESS") != "1":
        yield None
        return
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("member-epochs"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("train", total=None)

        def advance(n, total):
            bar.update(task, total=total, advance=n)

        yield advance


def _print_profile(timer, wall: float) -> None:
    t = Table(title=f"where the time went ({wall:.1f} s wall)")
    t.add_column("phase")
    t.add_column("seconds", justify="right")
    for name, s in timer.table():
        t.add_row(name, f"{s:.2f}")
    t.add_row("other", f"{max(wall - sum(s for _, s in timer.table()), 0.0):.2f}")
    Console().print(t)


def _run_sweep(cfg, store_path: Path, profile: bool):
    from latchlab import provenance, sweep
    from latchlab.store import Store

    timer = provenance.Profile() if profile else None
    t0 = time.perf_counter()
    try:
        with Store(store_path) as store, _progress() as advance:
            df = sweep.run(cfg, store, advance, timer, command=" ".join(["latchlab", *sys.argv[1:]]))
    except KeyboardInterrupt:  # typer would turn it into a silent exit
        print(_INTERRUPTED, file=sys.stderr)
        raise typer.Exit(130) from None
    if timer is not None:
        _print_profile(timer, time.perf_counter() - t0)
    return df


@app.command()
def run(config: Path = typer.Argument(..., help="A sweep TOML file (see experiments/)."),
        store: Path = typer.Option(..., "--store", help="SQLite results store (created if missing)."),
        profile: bool = typer.Option(False, "--profile", help="Print where the time went.")):
    """Run a sweep; finished members already in the store are skipped."""
    from latchlab import config as C

    cfg = C.load(config)
    df = _run_sweep(cfg, store, profile)
    console.print(f"{df.member_id.nunique()} members in {store}")


@app.command()
def export(store: Path = typer.Argument(..., help="A results store."),
           csv: Optional[Path] = typer.Option(None, "--csv", help="Write a CSV file."),
           parquet: Optional[Path] = typer.Option(None, "--parquet", help="Write a Parquet file."),
           per: str = typer.Option("epoch", "--per", help="Rows per 'epoch' or per 'member' (final epoch).")):
    """Export a store's rows to CSV and/or Parquet."""
    from latchlab.store import Store

    if per not in ("epoch", "member"):
        raise ConfigError("per", f"unknown row kind {per!r}", ("epoch", "member"))
    if csv is None and parquet is None:
        raise ConfigError("export", "give --csv FILE and/or --parquet FILE")
    with Store(store, create=False) as st:
        df = st.epochs() if per == "epoch" else st.members()
    for field, path, write in (("csv", csv, df.to_csv), ("parquet", parquet, df.to_parquet)):
        if path is None:
            continue
        try:
            write(path, index=False)
        except OSError as e:
            raise ConfigError(field, f"cannot write {path}: {e}") from None
    console.print(f"{len(df)} rows exported")


@app.command()
def plot(store: Path = typer.Argument(..., help="A results store."),
         out: Path = typer.Option(..., "--out", help="Directory for the figures.")):
    """Redraw the accuracy and success figures from a store alone."""
    from latchlab import plot as P
    from latchlab.store import Store

    with Store(store, create=False) as st:
        df = st.members()
    if df.empty:
        raise LatchlabError(f"store: {store} holds no finished members")
    for p in P.seed_figures(df, out):
        console.print(f"wrote {p}")


@reproduce_app.command("seed")
def reproduce_seed(
        scale: str = typer.Option("quick", "--scale", help="quick (about a minute) or full (the seed's grid)."),
        split: List[str] = typer.Option(["stratified", "tail"], "--split",
                                        help="stratified (fixed) and/or tail (the seed's bug); repeatable."),
        preset: str = typer.Option("keras2", "--preset", help="keras2 (the seed's 2018 Keras) or keras3."),
        out: Path = typer.Option(Path("results"), "--out", help="Output directory."),
        profile: bool = typer.Option(False, "--profile", help="Print where the time went.")):
    """The question's experiment: one-unit SRNN vs LSTM latching, buggy and fixed splits."""
    from latchlab import plot as P
    from latchlab import reproduce as R

    cfg = R.seed_config(scale, tuple(dict.fromkeys(split)), preset)
    out.mkdir(parents=True, exist_ok=True)
    df = _run_sweep(cfg, out / "store.sqlite", profile)
    paths = [R.write_results(df, out), *P.seed_figures(df, out)]
    _print_summary(P.summary(df))
    for p in paths:
        console.print(f"wrote {p}")


def _print_summary(s) -> None:
    t = Table(title="final validation accuracy and success (val acc ≥ 0.99)")
    for c in ("split", "variant", "T", "members", "mean ± std", "success [Wilson 95 %]"):
        t.add_column(c)
    for r in s.itertuples():
        t.add_row(r.split, r.variant, str(r.T), str(r.members), f"{r.mean_val_acc:.3f} ± {r.std_val_acc:.3f}",
                  f"{r.successes}/{r.members} [{r.wilson_low:.2f}, {r.wilson_high:.2f}]")
    Console().print(t)


def main() -> None:
    """Entry point: user errors print one line and exit with code 2."""
    try:
        _setup_jax()
        app()
    except LatchlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(_INTERRUPTED, file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
