"""The one shape every reproduction has, and the pieces they share.

An ``Experiment`` declares, once: its scales, the configurations a scale gives (checked
before anything runs), how it computes its result (given a ``Runner`` for its sweeps), the
files it writes and the table it prints. ``Experiment.reproduce`` runs all of it; the CLI's
``reproduce`` verbs are thin calls of it.

Shared here: ``check_scale`` (the one scale check), ``write_results`` (the one writer of
``results.csv``) and ``Runner`` (how an experiment's sweeps reach the engine and a store).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from latchlab.errors import ConfigError
from latchlab.outputs import Table, figure_files

__all__ = ["Experiment", "Runner", "Table", "check_scale", "figure_files", "member_ids", "scale_with", "write_results"]


def check_scale(scales: Mapping[str, Mapping[str, Any]], scale: str) -> dict:
    """The settings of ``scale`` (a copy), or ``ConfigError("scale", ...)`` naming the scales."""
    if scale not in scales:
        raise ConfigError("scale", f"unknown scale {scale!r}", tuple(scales))
    return dict(scales[scale])


def scale_with(scales: Mapping[str, Mapping[str, Any]], scale: str, over: Mapping[str, Any]) -> tuple[dict, dict]:
    """``scale``'s settings with the keys of ``over`` that belong to it replaced, and the
    rest of ``over`` (protocol fields; tests use both to run tiny versions)."""
    s = check_scale(scales, scale)
    rest = dict(over)
    for k in list(rest):
        if k in s:
            s[k] = rest.pop(k)
    return s, rest


def write_results(df, out: str | Path, columns: Sequence[str], name: str = "results.csv") -> Path:
    """``out/name``: the listed ``columns`` that ``df`` has, in that order, one row per frame row."""
    path = Path(out) / name
    df[[c for c in columns if c in df]].to_csv(path, index=False)
    return path


def member_ids(cfgs) -> set[str]:
    """The ids of every member of ``cfgs`` (one sweep or a list)."""
    cfgs = cfgs if isinstance(cfgs, (list, tuple)) else [cfgs]
    return {m.id for c in cfgs for m in c.members()}


@dataclass(frozen=True)
class Runner:
    """How an experiment runs its sweeps: ``runner(cfgs) -> epoch rows`` (one sweep or a
    list), into one store; ``command`` is recorded with them.

    ``Runner.at(path)`` runs ``latchlab.engine.run.run`` into the store at ``path``
    (``None``: no store), after ``runtime.setup()``; the CLI passes its own, with a
    progress bar and a profile.
    """

    run: Callable[[Any], Any]
    command: str = ""

    def __call__(self, cfgs):
        return self.run(cfgs)

    @classmethod
    def at(cls, store: str | Path | None = None, command: str = "") -> "Runner":
        def run(cfgs):
            from latchlab import limits, runtime
            from latchlab.engine import run as runner
            from latchlab.store import Store

            runtime.setup()  # host devices and the compilation cache, as the CLI has them
            if store is None:
                return runner.run(cfgs, command=command)
            limits.check_sweep(cfgs)  # before the store is created
            Path(store).parent.mkdir(parents=True, exist_ok=True)
            with Store(store) as st:
                return runner.run(cfgs, st, command=command)

        return cls(run, command)


@dataclass(frozen=True)
class Experiment:
    """One reproduction, declared once.

    Attributes:
        name: the ``latchlab reproduce`` verb.
        scales: ``{scale: settings}``; ``quick`` is the default.
        configs: ``(scale, **options) -> what it trains``; raises ``ConfigError`` for any bad
            scale or option, before anything is created.
        compute: ``(runner, scale, **options) -> result``, the training and analysis.
        outputs: ``(result, out) -> [Path]``, every file written into ``out``.
        table: ``(result) -> Table``, the summary printed after a run.
        files: the name of every file ``outputs`` may write (a run writes these or fewer).
        store: whether it runs sweeps (and so has a ``store.sqlite``).
    """

    name: str
    scales: Mapping[str, Mapping[str, Any]]
    configs: Callable[..., Any]
    compute: Callable[..., Any]
    outputs: Callable[[Any, Path], list]
    table: Callable[[Any], Table]
    files: tuple[str, ...]
    store: bool = True

    def check(self, scale: str = "quick", **options) -> None:
        """Every ``ConfigError`` a run would raise about its scale and options, now."""
        self.configs(scale, **options)

    def reproduce(
        self, out: str | Path, scale: str = "quick", runner: Runner | None = None, **options
    ) -> tuple[Any, list[Path]]:
        """Check, compute, then write into ``out`` (created only now, unless the runner's
        store lives there); ``(result, written paths)``.

        Args:
            runner: how to run sweeps (default: ``Runner.at(out / "store.sqlite")``).
        """
        self.check(scale, **options)
        out = Path(out)
        runner = runner or Runner.at(out / "store.sqlite" if self.store else None)
        result = self.compute(runner, scale, **options)
        out.mkdir(parents=True, exist_ok=True)
        return result, self.outputs(result, out)
