"""The ``latchlab`` command line.

Verbs are thin: ``cli.commands`` (run, export, plot, explain, landscape, diagnose) and
``cli.reproduce`` (one verb per ``latchlab.experiments`` declaration) check their outputs, call
the library and print what it returns; ``cli.common`` holds the shared options, the one sweep
runner and the printing.
"""

from __future__ import annotations

import sys

from latchlab import runtime
from latchlab.cli import commands, reproduce  # noqa: F401  (registers the verbs)
from latchlab.cli.common import INTERRUPTED, app
from latchlab.cli.store import app as store_app
from latchlab.errors import LatchlabError

__all__ = ["app", "main"]

app.add_typer(store_app, name="store")


def main() -> None:
    """Entry point: user errors print one line and exit with code 2."""
    try:
        runtime.setup()
        app()
    except LatchlabError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
