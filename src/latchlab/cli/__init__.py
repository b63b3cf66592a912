"""The ``latchlab`` command line.

Verbs are thin: ``cli.commands`` (run, export, plot, explain, landscape, diagnose) and
``cli.reproduce`` (one verb per ``latchlab.experiments`` declaration) check their outputs, call
the library and print what it returns; ``cli.common`` holds the shared options, the one sweep
runner and the printing.
"""

from __future__ import annotations

import sys

import typer

# typer (pinned) carries its own click; its errors are these
from typer._click import exceptions as click

from latchlab import runtime
from latchlab.cli import commands, reproduce  # noqa: F401  (registers the verbs)
from latchlab.cli.common import INTERRUPTED, app
from latchlab.cli.store import app as store_app
from latchlab.errors import LatchlabError

__all__ = ["app", "main"]

app.add_typer(store_app, name="store")


def _usage_line(e: click.UsageError) -> str:
    """A command-line error (unknown option or command, missing argument, a value that does
    not parse) as one line naming the parameter, as every other user error is."""
    param = getattr(e, "param", None)
    field = param.name if param is not None else getattr(e, "option_name", None) or "command"
    message = " ".join(e.format_message().split())
    where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
    return f"error: {field}: {message}{where}"


def main() -> None:
    """Entry point: user errors print one line and exit with code 2."""
    try:
        runtime.setup()
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.NoArgsIsHelpError:
        app()  # a group given no command: its help, as typer draws it (exit 2)
    except click.UsageError as e:
        print(_usage_line(e), file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except LatchlabError as e:
        print(" ".join(f"error: {e}".splitlines()), file=sys.stderr)  # one line, whatever a path holds
        sys.exit(2)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
