"""What the A/B scripts share (``kernel_ab.py``, ``prng_ab.py``): a revision's build against the
working tree's, the two timed in turn, reported as old over new."""

import argparse

import numpy as np

from latchlab.engine import native


def parser(doc: str, reference: str, repeats: int = 9) -> argparse.ArgumentParser:
    """The arguments every A/B script takes: the old revision, repeats, and each side's defines."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--old", required=True, help=f"git revision whose {reference} is the reference")
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--old-defines", default="")
    p.add_argument("--new-defines", default="")
    return p


def header(a: argparse.Namespace, compiler: bool = False) -> str:
    """The build and both sides, as the first line of a script's output."""
    cxx = f", {native._compiler()}" if compiler else ""
    return (
        f"{native.march()} build{cxx}; old: {a.old}{' ' + a.old_defines if a.old_defines else ''}; "
        f"new: working tree{' ' + a.new_defines if a.new_defines else ''}"
    )


def ratio(old: list[float], new: list[float]) -> str:
    """Old over new, pair by pair: the median and the range (above 1, the working tree is faster)."""
    r = np.array(old) / np.array(new)
    return f"old/new {np.median(r):.3f} [{r.min():.2f}-{r.max():.2f}]"
