"""``latchlab run | export | plot | explain | landscape | diagnose``: each checks its outputs
against its inputs, calls the library and prints what it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from latchlab.cli.common import (
    Cluster,
    ExplainScale,
    Profile,
    StoreOpt,
    app,
    cluster_spec,
    console,
    float_list,
    int_list,
    out_option,
    run_sweep,
    show,
)
from latchlab.errors import ConfigError, LatchlabError

PER = ("epoch", "member")


@app.command()
def run(
    config: Path = typer.Argument(..., help="A sweep TOML file (see experiments/)."),
    store: Path = typer.Option(..., "--store", help="SQLite results store (created if missing)."),
    profile: Profile = False,
    cluster: Cluster = None,
):
    """Run a sweep; finished members already in the store are skipped."""
    from latchlab import config as C
    from latchlab import outputs

    cfg = C.load(config)
    spec = cluster_spec(cluster)
    outputs.check_file(store, "store", [config], store=True)
    df = run_sweep(cfg, store, profile, spec)
    console.print(f"{df.member_id.nunique()} members in {store}")


@app.command()
def export(
    store: Path = typer.Argument(..., help="A results store."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write a CSV file."),
    parquet: Optional[Path] = typer.Option(None, "--parquet", help="Write a Parquet file."),
    per: str = typer.Option("epoch", "--per", help="Rows per 'epoch' or per 'member' (final epoch)."),
):
    """Export a store's rows to CSV and/or Parquet (both written, or neither)."""
    from latchlab import outputs
    from latchlab.store import Store

    if per not in PER:
        raise ConfigError("per", f"unknown row kind {per!r}", PER)
    if csv is None and parquet is None:
        raise ConfigError("export", "give --csv FILE and/or --parquet FILE")
    paths = outputs.check_files({"csv": csv, "parquet": parquet}, [store])
    with Store(store, create=False) as st:
        df = st.epochs() if per == "epoch" else st.members()
    write = {"csv": lambda p: df.to_csv(p, index=False), "parquet": lambda p: df.to_parquet(p, index=False)}
    outputs.write_all([(field, path, write[field]) for field, path in paths.items()])
    console.print(f"{len(df)} rows exported")


@app.command()
def plot(
    store: Path = typer.Argument(..., help="A results store."),
    out: Path = typer.Option(..., "--out", help="Directory for the figures."),
):
    """Redraw the accuracy and success figures from a store alone."""
    from latchlab import outputs
    from latchlab.analysis import plot as P
    from latchlab.store import Store

    outputs.check_dir(out, "out", [store], P.SEED_FIGURES)
    with Store(store, create=False) as st:
        df = st.members()
    if df.empty:
        raise LatchlabError(f"store: {store} holds no finished members")
    for p in P.seed_figures(df, out):
        console.print(f"wrote {p}")


@app.command()
def explain(
    scale: ExplainScale = "full",
    out: Path = out_option("results-explain", "Output directory for report.html."),
    store: StoreOpt = None,
    cluster: Cluster = None,
):
    """Answer the question with evidence: one self-contained HTML report (figures embedded)."""
    from latchlab import outputs
    from latchlab.experiments import explain as report

    outputs.check_dir(
        out,
        "out",
        [store] if store is not None else [],
        ("report.html", "findings.json", "diagnostics.csv", "initial.csv"),
    )
    outputs.check_store(store if store is not None else out / "store.sqlite")
    spec = cluster_spec(cluster)
    path = report.explain(scale, out, store, lambda cfgs, p: run_sweep(cfgs, p, cluster=spec))
    console.print(f"wrote {path}")


@app.command("landscape")
def landscape(
    cell: Optional[str] = typer.Option(None, "--cell", help="srnn, lstm, gru, lstm_nofg, janet (default: srnn)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="keras2 or keras3 (default: keras3)."),
    task: Optional[str] = typer.Option(None, "--task", help="Task (default: latch)."),
    units: Optional[int] = typer.Option(None, "--units", help="Hidden units (default: 1)."),
    head: Optional[str] = typer.Option(
        None, "--head", help="dense2, dense1 or auto (the task's own: dense2) (default: dense2)."
    ),
    init: Optional[str] = typer.Option(None, "--init", help="keras, torch or chrono (default: keras)."),
    seed: Optional[int] = typer.Option(
        None, "--seed", help="The member seed whose initial point and data to use (default: 0)."
    ),
    noise: Optional[float] = typer.Option(None, "--noise", help="Task noise std (default: the task's default)."),
    x: Optional[str] = typer.Option(
        None, "--x", help="First parameter, e.g. recurrent[0,0], bias_f, head.bias[0] (default: per cell)."
    ),
    y: Optional[str] = typer.Option(None, "--y", help="Second parameter (default: per cell)."),
    span: str = typer.Option("3", "--span", help="Half-width around the centre: one number, or x,y."),
    points: int = typer.Option(41, "--points", help="Grid points per axis."),
    T: str = typer.Option("5,20,50", "--T", help="Sequence lengths, comma-separated (one panel each)."),
    N: int = typer.Option(256, "--N", help="Sequences in the fixed batch per length."),
    store: Optional[Path] = typer.Option(None, "--store", help="Centre on a stored member: its store."),
    member: Optional[str] = typer.Option(None, "--member", help="The member's id (or a unique prefix)."),
    epoch: Optional[int] = typer.Option(None, "--epoch", help="The member's epoch (default: last; 0 = initial)."),
    out: Path = out_option("results/landscape"),
):
    """The loss of any cell and task over two named parameters, around an initial or trained point."""
    from latchlab.analysis import verbs

    show(
        *verbs.landscape(
            out,
            int_list(T, "T"),
            float_list(span, "span", (1, 2)),
            points,
            N,
            x,
            y,
            store,
            member,
            epoch,
            cell=cell,
            preset=preset,
            task=task,
            units=units,
            head=head,
            init=init,
            seed=seed,
            noise=noise,
        )
    )


@app.command("diagnose")
def diagnose(
    store: Path = typer.Argument(..., help="A results store."),
    member: str = typer.Option(
        ...,
        "--member",
        help="The member's id (or a unique prefix); list ids with `latchlab export STORE --per member --csv FILE`.",
    ),
    out: Path = out_option("results/diagnose"),
    N: int = typer.Option(256, "--N", help="Sequences of the member's validation set (half per class)."),
    epochs: str = typer.Option("all", "--epochs", help="'all' stored epochs, or a comma-separated list (0 = initial)."),
    examples: int = typer.Option(5, "--examples", help="Example trajectories drawn per class."),
):
    """Gradient through time, retention and dynamics of a stored member after every epoch."""
    from latchlab.analysis import verbs

    show(*verbs.diagnose(store, member, out, N, epochs, examples))


@app.command()
def schema(out: Optional[Path] = typer.Option(None, "--out", help="Write the schema here (default: stdout).")):
    """The JSON Schema of a sweep TOML file, for editors that check TOML as it is typed (docs/config.md)."""
    import json
    import sys

    from latchlab import config as C
    from latchlab import outputs

    text = json.dumps(C.json_schema(), indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    outputs.write_all([("out", outputs.check_file(out, "out"), lambda p: p.write_text(text))])
    console.print(f"wrote {out}")
