"""``latchlab store check|salvage|merge|release``: look after results stores."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

app = typer.Typer(no_args_is_help=True, help="Check, salvage, merge results stores, and release dead runs' claims.")


@app.command()
def check(store: Path = typer.Argument(..., help="A results store.")):
    """Check a store thoroughly (every page and every parameter snapshot); exit 1 if damaged."""
    from latchlab import store as S

    problems = S.check(store)
    if problems:
        for p in problems[:20]:
            print(f"damaged: {p}")
        if len(problems) > 20:
            print(f"damaged: ... and {len(problems) - 20} more")
        print(f"salvage the readable members with: latchlab store salvage {store} NEW.sqlite")
        raise typer.Exit(1)
    with S.Store(store, create=False) as st:
        n_members = len(st.done())
        n_sweeps = len(st.sweeps())
    print(f"ok: {store}: {n_members} members from {n_sweeps} sweeps")


@app.command()
def salvage(
    store: Path = typer.Argument(..., help="A (damaged) results store, only read."),
    out: Path = typer.Argument(..., help="The new store to write."),
):
    """Copy every readable, complete member (and the sweeps' provenance) into a new store."""
    from latchlab import store as S

    got = S.salvage(store, out)
    for mid, why in list(got["dropped"].items())[:20]:
        print(f"dropped {mid}: {why}")
    for e in got["errors"]:
        print(f"unreadable: {e}")
    print(f"salvaged {got['members']} members ({len(got['dropped'])} dropped) and {got['sweeps']} sweeps into {out}")
    print(f"re-run the sweeps on {out} to train the dropped members again")


@app.command()
def merge(
    out: Path = typer.Argument(..., help="The store to merge into (created if missing)."),
    stores: List[Path] = typer.Argument(..., help="Stores to merge (e.g. one per worker)."),
):
    """Merge stores into one: members deduplicated by id, every sweep's provenance kept.
    Members stored twice with different numbers refuse the merge (nothing is written)."""
    from latchlab import store as S

    got = S.merge(out, stores)
    print(
        f"merged {len(stores)} stores into {out}: {got['members']} members added, "
        f"{got['duplicates']} duplicates skipped, {got['sweeps']} sweeps added"
    )


@app.command()
def release(store: Path = typer.Argument(..., help="A results store.")):
    """Free the claims of runs that are gone, on this machine or another, so that a re-run
    trains their members now rather than waiting up to 6 hours for the claims to end."""
    from latchlab import store as S

    with S.Store(store, create=False) as st:
        freed = st.free()
    if not freed:
        print(f"no claims to release in {store}")
        return
    per = ", ".join(f"{n} of {host}" for host, n in freed.items())
    print(f"released {sum(freed.values())} claims in {store} ({per}); a re-run trains those members")
