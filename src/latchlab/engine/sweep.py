"""The notebook entry: ``latchlab.sweep(config) -> DataFrame``, and its progress bar.

The sweep itself is planned in ``plan``, its data made in ``data``, trained in ``train``
and run chunk by chunk in ``run``.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING

from latchlab.config import SweepConfig

if TYPE_CHECKING:
    import pandas as pd


def sweep(config, store=None, progress: bool = False, cluster=None) -> pd.DataFrame:
    """Run a sweep from a notebook: ``latchlab.sweep(config) -> DataFrame``.

    Args:
        config: a ``SweepConfig``, a TOML-shaped dict (as ``config.from_dict`` takes), a
            path to a TOML file, or a list of these (run as one sweep).
        store: optional path of a results store: finished members are reused and new ones
            written (without one, results stay in memory).
        progress: show a progress bar (rich) over member-epochs.
        cluster: optional Dask cluster to train on: ``"local:N"``, ``"tcp://HOST:PORT"`` or
            a TOML file with a ``[cluster]`` table (``latchlab.engine.cluster``).
    Returns:
        one row per member per epoch, the rows a store holds (``Store.epochs``).
    """
    from pathlib import Path

    from latchlab import config as C
    from latchlab import limits, runtime
    from latchlab.engine import run
    from latchlab.store import Store

    runtime.setup()

    def load(c):
        if isinstance(c, SweepConfig):
            return c
        if isinstance(c, (str, Path)):
            return C.load(c)
        return C.from_dict(c)

    cfgs = [load(c) for c in config] if isinstance(config, list) else load(config)
    limits.check_sweep(cfgs)  # before the store is created
    with progress_bar() if progress else nullcontext() as advance:
        if store is None:
            return run.run(cfgs, None, advance, cluster=cluster, say=print)
        with Store(store) as st:
            return run.run(cfgs, st, advance, cluster=cluster, say=print)


@contextmanager
def progress_bar(console=None):
    """A rich progress bar over member-epochs; yields ``run.run``'s ``progress`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("member-epochs"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("train", total=None)
        yield lambda n, total: bar.update(task, total=total, advance=n)
