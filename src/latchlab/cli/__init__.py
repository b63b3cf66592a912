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
from rich.table import Table

from latchlab import runtime
from latchlab.errors import ConfigError, LatchlabError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Why can (or can't) a recurrent network carry information across time?")
reproduce_app = typer.Typer(no_args_is_help=True, help="Reproduce a published experiment.")
app.add_typer(reproduce_app, name="reproduce")
console = Console(stderr=True)
_INTERRUPTED = "interrupted: finished members are in the store; re-run the same command to resume"


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
    Console().print(t)


def _run_sweep(cfg, store_path: Path, profile: bool, cluster=None):
    from latchlab import provenance
    from latchlab.engine import sweep
    from latchlab.store import Store

    timer = provenance.Profile() if profile else None
    t0 = time.perf_counter()
    try:
        with Store(store_path) as store, _progress() as advance:
            df = sweep.run(cfg, store, advance, timer, command=" ".join(["latchlab", *sys.argv[1:]]),
                           cluster=cluster, say=console.print)
    except KeyboardInterrupt:  # typer would turn it into a silent exit
        print(_INTERRUPTED, file=sys.stderr)
        raise typer.Exit(130) from None
    if timer is not None:
        _print_profile(timer, time.perf_counter() - t0)
    return df


@app.command()
def run(config: Path = typer.Argument(..., help="A sweep TOML file (see experiments/)."),
        store: Path = typer.Option(..., "--store", help="SQLite results store (created if missing)."),
        profile: bool = typer.Option(False, "--profile", help="Print where the time went."),
        cluster: Optional[str] = typer.Option(None, "--cluster", help="Train on a Dask cluster: local[:N], "
                                              "tcp://HOST:PORT or a TOML file with a [cluster] table.")):
    """Run a sweep; finished members already in the store are skipped."""
    from latchlab import config as C

    cfg = C.load(config)
    if cluster is not None:
        from latchlab.engine import cluster as CL

        cluster = CL.parse(cluster)  # before anything is created
    df = _run_sweep(cfg, store, profile, cluster)
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
    from latchlab.analysis import plot as P
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
    from latchlab.analysis import plot as P
    from latchlab.experiments import seed as R

    cfg = R.seed_config(scale, tuple(dict.fromkeys(split)), preset)
    out.mkdir(parents=True, exist_ok=True)
    df = _run_sweep(cfg, out / "store.sqlite", profile)
    paths = [R.write_results(df, out), *P.seed_figures(df, out)]
    _print_summary(P.summary(df))
    for p in paths:
        console.print(f"wrote {p}")


@reproduce_app.command("ablations")
def reproduce_ablations(
        scale: str = typer.Option("quick", "--scale", help="quick (4 lengths x 10 repeats) or full (the seed's grid)."),
        out: Path = typer.Option(Path("results-ablations"), "--out", help="Output directory."),
        profile: bool = typer.Option(False, "--profile", help="Print where the time went.")):
    """Initialisation and cell ablations (SRNN U0, LSTM forget bias and gates, no forget gate, JANET, GRU)."""
    from latchlab.experiments import ablations as A
    from latchlab.analysis import plot as P

    parts = A.configs(scale)
    out.mkdir(parents=True, exist_ok=True)
    df = A.label(_run_sweep([cfg for _, _, cfg in parts], out / "store.sqlite", profile), parts)
    paths = [A.write_results(df, out), *P.save(A.figure(df), out / "success_vs_T")]
    t = Table(title="ablations: success (val acc ≥ 0.99) over all lengths")
    for c in ("family", "variant", "members", "success", "mean val acc"):
        t.add_column(c)
    for r in A.table(df).itertuples():
        t.add_row(r.family, r.variant, str(r.members), f"{r.success_rate:.2f}", f"{r.mean_val_acc:.3f}")
    _show(t, paths)


@reproduce_app.command("followups")
def reproduce_followups(
        scale: str = typer.Option("quick", "--scale", help="quick (5 lengths x 5 repeats) or full (the asker's protocol)."),
        preset: str = typer.Option("keras2", "--preset", help="keras2 (the asker's 2018 Keras) or keras3."),
        out: Path = typer.Option(Path("results/followups"), "--out", help="Output directory."),
        profile: bool = typer.Option(False, "--profile", help="Print where the time went.")):
    """The asker's follow-ups: task 1 latching (1 unit) and task 2 bit relay (8 units), SRNN, LSTM, GRU."""
    from latchlab.experiments import followups as F
    from latchlab.analysis import plot as P

    cfgs = F.followup_configs(scale, preset)
    out.mkdir(parents=True, exist_ok=True)
    df = F.final_rows(_run_sweep(cfgs, out / "store.sqlite", profile), cfgs)
    paths = [F.write_results(df, out)]
    for k, task in enumerate(F.TASK_UNITS, 1):
        paths += P.save(F.followup_figure(df, task), out / f"task{k}")
    s = F.followup_table(df)
    t = Table(title="final validation accuracy, mean ± std, and success (val acc ≥ 0.99)")
    for c in ("task", "cell", "T", "members", "mean ± std", "success"):
        t.add_column(c)
    for r in s.itertuples():
        t.add_row(r.task, r.cell, str(r.T), str(r.members), f"{r.mean_val_acc:.3f} ± {r.std_val_acc:.3f}",
                  f"{r.successes}/{r.members}")
    _show(t, paths)


@reproduce_app.command("answer")
def reproduce_answer(
        scale: str = typer.Option("quick", "--scale", help="quick (2x2x2 grid, N = 2000) or full (4x3x3 grid, N = 10000)."),
        preset: str = typer.Option("keras2", "--preset", help="keras2 (2018 Keras) or keras3."),
        out: Path = typer.Option(Path("results/answer"), "--out", help="Output directory."),
        profile: bool = typer.Option(False, "--profile", help="Print where the time went.")):
    """The answer's reruns at T = 5 and 100, both tasks, all cells: lr, batch size and epochs tuned on
    separate tuning members, reported on fresh members."""
    from latchlab.experiments import followups as F
    from latchlab.analysis import plot as P

    F.tune_configs(scale, preset)  # validates before anything is created
    out.mkdir(parents=True, exist_ok=True)
    rows, chosen = F.answer(lambda cfgs: _run_sweep(cfgs, out / "store.sqlite", profile), scale, preset)
    table = F.answer_table(rows)
    table.to_csv(out / "summary.csv", index=False)
    paths = [F.write_results(rows, out, F.ANSWER_COLUMNS), out / "summary.csv", *P.save(F.answer_figure(rows),
                                                                                         out / "answer")]
    t = Table(title="chosen on tuning members, reported on fresh ones; grid: tuning means over settings")
    for c in ("task", "cell", "T", "lr/batch/ep", "reported", "succ.", "grid min-max", "protocol"):
        t.add_column(c, no_wrap=True)
    for r in table.itertuples():
        t.add_row(r.task, r.cell, str(r.T), f"{r.lr:g}/{r.batch_size}/{r.epochs}",
                  f"{r.mean_val_acc:.3f}±{r.std_val_acc:.3f}", f"{r.successes}/{r.members}",
                  f"{r.grid_min:.2f}-{r.grid_max:.2f}", f"{r.protocol_tune_mean:.2f}")
    _show(t, paths)


@reproduce_app.command("units")
def reproduce_units(
        scale: str = typer.Option("quick", "--scale", help="quick (units 1, 4, 16, 100; T 5, 20; 4 repeats; N = 2000) or full."),
        preset: str = typer.Option("keras2", "--preset", help="keras2 (2018 Keras) or keras3."),
        out: Path = typer.Option(Path("results/units"), "--out", help="Output directory."),
        profile: bool = typer.Option(False, "--profile", help="Print where the time went.")):
    """Success frequency against the number of units (1 ... 100) for SRNN, LSTM and GRU on both tasks."""
    from latchlab.experiments import followups as F
    from latchlab.analysis import plot as P

    cfgs = F.units_configs(scale, preset)
    out.mkdir(parents=True, exist_ok=True)
    df = F.final_rows(_run_sweep(cfgs, out / "store.sqlite", profile), cfgs)
    paths = [F.write_results(df, out), *P.save(F.units_figure(df), out / "units")]
    s = F.units_table(df)
    units = sorted(s.units.unique())
    t = Table(title="successes (val acc ≥ 0.99) / members, by hidden units")
    for c in ("task", "T", "cell", *map(str, units)):
        t.add_column(c)
    for (task, T, cell), d in s.groupby(["task", "T", "cell"], sort=True):
        by = dict(zip(d.units, zip(d.successes, d.members)))
        t.add_row(task, str(T), cell, *(f"{by[u][0]}/{by[u][1]}" if u in by else "" for u in units))
    _show(t, paths)


@app.command()
def explain(
        scale: str = typer.Option("quick", "--scale", help="quick (a few minutes) or full (the seed's grid and full ablations)."),
        out: Path = typer.Option(Path("results-explain"), "--out", help="Output directory for report.html."),
        store: Optional[Path] = typer.Option(None, "--store", help="Results store to reuse and extend (default OUT/store.sqlite).")):
    """Answer the question with evidence: one self-contained HTML report (figures embedded)."""
    from latchlab.experiments import explain as report

    def run(cfgs, path):
        return _run_sweep(cfgs, path, profile=False)

    path = report.explain(scale, out, store, run)
    console.print(f"wrote {path}")


def _show(table, paths) -> None:
    """Print a reproduction's result table (stdout) and the files it wrote (stderr)."""
    Console().print(table)
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


def _int_list(text: str, field: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        out = []
    if not out or any(t < 1 for t in out):
        raise ConfigError(field, f"must be comma-separated integers >= 1, got {text!r}")
    return list(dict.fromkeys(out))


def _float_list(text: str, field: str, n: tuple[int, ...]) -> list[float]:
    try:
        out = [float(t) for t in text.split(",")]
    except ValueError:
        out = []
    if len(out) not in n:
        raise ConfigError(field, f"must be {' or '.join(map(str, n))} comma-separated numbers, got {text!r}")
    return out


@reproduce_app.command("pascanu2013")
def reproduce_pascanu2013(
        out: Path = typer.Option(Path("results/pascanu2013"), "--out", help="Output directory."),
        T: str = typer.Option("2,5,10,20,50", "--T", help="Sequence lengths, comma-separated (one panel each)."),
        points: int = typer.Option(201, "--points", help="Grid points per axis."),
        w_range: str = typer.Option("1,9", "--w", help="w range: lo,hi."),
        b_range: str = typer.Option("-6,1", "--b", help="b range: lo,hi."),
        lr: float = typer.Option(3.0, "--lr", help="Gradient-descent learning rate."),
        clip: float = typer.Option(0.1, "--clip", help="Norm-clipping threshold of the clipped paths."),
        steps: int = typer.Option(100, "--steps", help="Gradient-descent steps per path.")):
    """Pascanu et al. (2013) Fig. 6: the loss cliff of x_t = w sigmoid(x_{t-1}) + b sharpening with T,
    with gradient-descent paths with and without norm clipping."""
    import numpy as np

    from latchlab.analysis import landscape as L
    from latchlab.analysis import landscape_plot as LP
    from latchlab.analysis import plot as P

    Ts = _int_list(T, "T")
    if not 3 <= points <= 2001:
        raise ConfigError("points", f"must be in [3, 2001], got {points}")
    grids = []
    for name, text in (("w", w_range), ("b", b_range)):
        lo, hi = _float_list(text, name, (2,))
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ConfigError(name, f"range must be finite lo,hi with lo < hi, got {text!r}")
        grids.append(np.linspace(lo, hi, points))
    grid = L.pascanu(Ts, *grids)
    paths = L.pascanu_paths(Ts, L.PASCANU_STARTS, lr, steps, clip)
    out.mkdir(parents=True, exist_ok=True)
    grid.to_csv(out / "landscape.csv", index=False)
    paths.to_csv(out / "paths.csv", index=False)
    figs = P.save(LP.pascanu_figure(grid, paths), out / "fig6")
    s = L.path_summary(paths)
    t = Table(title=f"gradient descent from {len(L.PASCANU_STARTS)} starts, lr {lr:g}, clip {clip:g}, {steps} steps")
    for c in ("T", "start", "kind", "final loss", "longest step", "max ||g||"):
        t.add_column(c)
    for r in s.itertuples():
        t.add_row(str(r.T), str(L.PASCANU_STARTS[r.start]), r.kind, f"{r.final_loss:.4f}", f"{r.longest_step:.3g}",
                  f"{r.max_grad_norm:.3g}")
    Console().print(t)
    for p in [out / "landscape.csv", out / "paths.csv", *figs]:
        console.print(f"wrote {p}")


@app.command("landscape")
def landscape_cmd(
        cell: Optional[str] = typer.Option(None, "--cell", help="srnn, lstm, gru, lstm_nofg, janet (default: srnn)."),
        preset: Optional[str] = typer.Option(None, "--preset", help="keras2 or keras3 (default: keras3)."),
        task: Optional[str] = typer.Option(None, "--task", help="Task (default: latch)."),
        units: Optional[int] = typer.Option(None, "--units", help="Hidden units (default: 1)."),
        head: Optional[str] = typer.Option(None, "--head", help="dense2 or dense1 (default: dense2)."),
        init: Optional[str] = typer.Option(None, "--init", help="keras, torch or chrono (default: keras)."),
        seed: Optional[int] = typer.Option(None, "--seed",
                                           help="The member seed whose initial point and data to use (default: 0)."),
        noise: Optional[float] = typer.Option(None, "--noise", help="Task noise std (default: the task's default)."),
        x: Optional[str] = typer.Option(None, "--x",
                                        help="First parameter, e.g. recurrent[0,0], bias_f, head.bias[0] "
                                             "(default: per cell)."),
        y: Optional[str] = typer.Option(None, "--y", help="Second parameter (default: per cell)."),
        span: str = typer.Option("3", "--span", help="Half-width around the centre: one number, or x,y."),
        points: int = typer.Option(41, "--points", help="Grid points per axis."),
        T: str = typer.Option("5,20,50", "--T", help="Sequence lengths, comma-separated (one panel each)."),
        N: int = typer.Option(256, "--N", help="Sequences in the fixed batch per length."),
        store: Optional[Path] = typer.Option(None, "--store", help="Centre on a stored member: its store."),
        member: Optional[str] = typer.Option(None, "--member", help="The member's id (or a unique prefix)."),
        epoch: Optional[int] = typer.Option(None, "--epoch", help="The member's epoch (default: last; 0 = initial)."),
        out: Path = typer.Option(Path("results/landscape"), "--out", help="Output directory.")):
    """The loss of any cell and task over two named parameters, around an initial or trained point."""
    from latchlab.analysis import landscape as L
    from latchlab.analysis import landscape_plot as LP
    from latchlab.analysis import plot as P
    from latchlab.store import Store

    Ts = _int_list(T, "T")
    spans = _float_list(span, "span", (1, 2))
    given = {"--cell": cell, "--preset": preset, "--task": task, "--units": units, "--head": head,
             "--init": init, "--seed": seed, "--noise": noise}
    if (store is None) != (member is None):
        raise ConfigError("member", "give --store and --member together")
    if epoch is not None and member is None:
        raise ConfigError("epoch", "--epoch needs --store and --member")
    if member is not None:
        clash = [k for k, v in given.items() if v is not None]
        if clash:
            raise ConfigError("member", f"the stored member fixes {', '.join(clash)}; drop them")
        with Store(store, create=False) as st:
            centre = L.member_centre(st, member, epoch)
    else:
        centre = L.initial_centre(cell or "srnn", preset or "keras3", 1 if units is None else units,
                                  head or "dense2", init or "keras", 0 if seed is None else seed,
                                  task or "latch", noise, 1, max(Ts))
    dx, dy = L.DEFAULT_AXES.get(centre.model.cell.kind, ("recurrent[0,0]", "bias[0]"))
    names = [x or dx, y or dy]
    L.parse_name(centre.model, centre.params, names[0], "x")  # name errors before any work
    L.parse_name(centre.model, centre.params, names[1], "y")
    df = L.surface(centre.model, centre.params, names, spans[0] if len(spans) == 1 else spans, centre.task, Ts,
                   points, N, centre.key, centre.noise, centre.signal_len)
    traj = L.trajectory_frame(centre, names) if centre.trajectory else None
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "landscape.csv", index=False)
    written = [out / "landscape.csv"]
    if traj is not None:
        traj.to_csv(out / "trajectory.csv", index=False)
        written.append(out / "trajectory.csv")
    fig = LP.surface_figure(df, traj)
    fig.suptitle(centre.label, fontsize=8)
    written += P.save(fig, out / "landscape")
    t = Table(title=centre.label)
    for c in ("T", "centre loss", "centre acc", "min loss", f"at ({names[0]}, {names[1]})"):
        t.add_column(c)
    for T_, d in df.groupby("T"):
        c, m = L.center_rows(d).iloc[0], d.loc[d.loss.idxmin()]
        t.add_row(str(T_), f"{c.loss:.4f}", f"{c.accuracy:.3f}", f"{m.loss:.4f}", f"({m.x:.3g}, {m.y:.3g})")
    Console().print(t)
    for p in written:
        console.print(f"wrote {p}")


@app.command("diagnose")
def diagnose_cmd(
        store: Path = typer.Argument(..., help="A results store."),
        member: str = typer.Option(..., "--member", help="The member's id (or a unique prefix); list ids with "
                                                         "`latchlab export STORE --per member --csv FILE`."),
        out: Path = typer.Option(Path("results/diagnose"), "--out", help="Output directory."),
        N: int = typer.Option(256, "--N", help="Sequences of the member's validation set (half per class)."),
        epochs: str = typer.Option("all", "--epochs", help="'all' stored epochs, or a comma-separated list (0 = initial)."),
        examples: int = typer.Option(5, "--examples", help="Example trajectories drawn per class.")):
    """Gradient through time, retention and dynamics of a stored member after every epoch."""
    from latchlab.analysis import diagnose as D
    from latchlab.analysis import diagnose_plot as DP
    from latchlab.store import Store

    if not 2 <= N <= 100000:
        raise ConfigError("N", f"must be an integer in [2, 100000], got {N}")
    if not 0 <= examples <= 50:
        raise ConfigError("examples", f"must be an integer in [0, 50], got {examples}")
    with Store(store, create=False) as st:
        row = st.member(member)
        d = D.member(st, row.member_id, N, D.parse_epochs(epochs, int(row.epochs)), examples)
    paths = DP.write(d, out)
    s = d.summary
    t = Table(title=d.label)
    gate = "contr." if s.retention_gate.iloc[0] == "contraction" else s.retention_gate.iloc[0]
    for c in ("epoch", "val acc", "grad h1/hT", f"mean {gate}", "half-life", "U", "stable fp", "h*"):
        t.add_column(c)
    for r in s.itertuples():
        acc = "" if not r.val_acc == r.val_acc else f"{r.val_acc:.3f}"
        t.add_row(str(r.epoch), acc, f"{r.grad_ratio_median:.3g}", f"{r.retention_mean:.3f}", f"{r.half_life:.3g}",
                  f"{r.recurrent:.3g}", str(r.n_stable), f"{r.boundary_h:+.2f}")
    _show(t, paths)


def _overrides(path: Optional[Path]) -> dict:
    """Field overrides from a TOML file (``--config``), or none."""
    if path is None:
        return {}
    import tomllib

    try:
        return tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError("config", f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"{path} is not valid TOML: {e}") from None


@reproduce_app.command("bengio1994")
def reproduce_bengio1994(
        scale: str = typer.Option("quick", "--scale", help="quick (about a minute) or full (a few minutes)."),
        out: Path = typer.Option(Path("results/bengio1994"), "--out", help="Output directory."),
        config_file: Optional[Path] = typer.Option(None, "--config", help="TOML of Bengio94Config fields to override.")):
    """Bengio, Simard & Frasconi (1994) Fig. 1 and Fig. 2: one tanh neuron with trainable inputs."""
    import json

    import numpy as np

    from latchlab.experiments import bengio1994_figures as F
    from latchlab.analysis import plot as P
    from latchlab import provenance
    from latchlab.experiments import seed as R
    from latchlab.analysis.stats import wilson

    cfg, fig2b_trials = R.bengio_config(scale, _overrides(config_file))
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    fig, table = F.fig1()
    paths = P.save(fig, out / "fig1") + [out / "fig1_threshold.csv"]
    table.to_csv(out / "fig1_threshold.csv", index=False)
    rows = R.bengio_rows(cfg, fig2b_trials)
    rows.to_csv(out / "results.csv", index=False)
    paths.append(out / "results.csv")
    seed_final = None
    if cfg.seed_repeats:
        seed_final = P.final(_run_sweep(R.bengio_seed_sweep(cfg), out / "store.sqlite", False))
        seed_final[["member_id", "T", "seed", "noise", "val_acc", "val_loss"]].to_csv(out / "seed_overlay.csv",
                                                                                       index=False)
        paths.append(out / "seed_overlay.csv")
    paths += P.save(F.fig2a(rows, cfg), out / "fig2a") + P.save(F.fig2b(rows, cfg, seed_final), out / "fig2b")
    meta = {"config": cfg.to_dict(), "fig2b_trials": fig2b_trials, "scale": scale,
            "command": " ".join(["latchlab", *sys.argv[1:]]), "seconds": round(time.perf_counter() - t0, 1),
            **provenance.collect()}
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    paths.append(out / "config.json")
    t = Table(title=f"Fig. 2b: convergence against T (s = {cfg.s_fig2b:g}, w0 = {cfg.w0_fig2b:g})")
    for c in ("T", "converged [Wilson 95 %]", "median epochs (converged)"):
        t.add_column(c)
    for T, d in rows[rows.figure == "2b"].groupby("T"):
        k, n = int(d.converged.sum()), len(d)
        lo, hi = wilson(k, n)
        med = np.median(d.epochs[d.converged == 1]) if k else float("nan")
        t.add_row(str(T), f"{k}/{n} [{float(lo):.2f}, {float(hi):.2f}]", f"{med:g}")
    Console().print(t)
    a = rows[rows.figure == "2a"]
    best = a.groupby(["w0", "s"]).converged.mean()
    console.print(f"Fig. 2a: mean convergence {a.converged.mean():.2f} over {len(best)} cells; best "
                  f"{best.max():.2f} at w0 = {best.idxmax()[0]:g}, s = {best.idxmax()[1]:g}; {meta['seconds']} s")
    for p in paths:
        console.print(f"wrote {p}")


@reproduce_app.command("guessing")
def reproduce_guessing(
        scale: str = typer.Option("quick", "--scale", help="quick (10 parity runs) or full (40)."),
        out: Path = typer.Option(Path("results/guessing"), "--out", help="Output directory."),
        config_file: Optional[Path] = typer.Option(None, "--config", help="TOML of GuessConfig fields to override.")):
    """Hochreiter & Schmidhuber (1996): random weight guessing on latch I, latch II and parity."""
    import json

    import pandas as pd

    from latchlab import provenance
    from latchlab.experiments import guessing as guess
    from latchlab.experiments import seed as R

    cfgs = R.guess_configs(scale, _overrides(config_file))
    out.mkdir(parents=True, exist_ok=True)
    results, runs = [], []
    for cfg in cfgs:
        r = guess.search(cfg)
        results.append((cfg, r))
        runs.append(pd.DataFrame({"problem": cfg.problem, "run": range(cfg.runs), "seed": cfg.seed + pd.RangeIndex(cfg.runs),
                                  "trials": r.trials, "solved": r.solved.astype(int), "test_correct": r.test_correct}))
    table = R.guessing_table(results)
    table[["problem", "runs", "mean_trials", "median_trials", "published_mean_trials", "solved", "criterion", "a",
           "test_correct", "seconds"]].to_csv(out / "guessing.csv", index=False)
    pd.concat(runs, ignore_index=True).to_csv(out / "guessing_runs.csv", index=False)
    meta = {"configs": [c.to_dict() for c in cfgs], "scale": scale,
            "command": " ".join(["latchlab", *sys.argv[1:]]), **provenance.collect()}
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    t = Table(title="random weight guessing: trials to the first solver (H&S 1996)")
    for c in ("problem", "runs solved", "mean trials", "median", "published mean", "criterion", "test correct", "s"):
        t.add_column(c)
    for r in table.itertuples():
        t.add_row(r.problem, f"{r.solved}/{r.runs}", f"{r.mean_trials:.1f}", f"{r.median_trials:g}",
                  f"{r.published_mean_trials:g}", r.criterion, f"{r.test_correct:.3f}", f"{r.seconds:.1f}")
    Console().print(t)
    for p in ("guessing.csv", "guessing_runs.csv", "config.json"):
        console.print(f"wrote {out / p}")


def main() -> None:
    """Entry point: user errors print one line and exit with code 2."""
    try:
        runtime.setup()
        app()
    except LatchlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(_INTERRUPTED, file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
