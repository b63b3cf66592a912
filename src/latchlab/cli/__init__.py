"""The ``latchlab`` command line.

Verbs are thin: ``cli.commands`` (run, export, plot, explain, landscape, diagnose) and
``cli.reproduce`` (one verb per ``latchlab.experiments`` declaration) check their outputs, call
the library and print what it returns; ``cli.common`` holds the shared options, the one sweep
runner and the printing.
"""

from __future__ import annotations

import os
import signal
import sys

import typer
from typer.core import TyperCommand

# typer (pinned) carries its own click; its errors are these
from typer._click import exceptions as click

from latchlab import runtime
from latchlab.cli import commands, common, reproduce  # noqa: F401  (registers the verbs)
from latchlab.cli.common import INTERRUPTED, Interrupted, app
from latchlab.cli.store import app as store_app
from latchlab.errors import LatchlabError

__all__ = ["app", "main"]

app.add_typer(store_app, name="store")
for _verbs in (app, common.reproduce_app, store_app):
    for _verb in _verbs.registered_commands:
        if _verb.cls in (None, TyperCommand):  # typer's default
            _verb.cls = common.OnceCommand


def _usage_line(e: click.UsageError) -> str:
    """A command-line error (unknown option or command, missing argument, a value that does
    not parse) as one line naming the parameter, as every other user error is."""
    param = getattr(e, "param", None)
    field = param.name if param is not None else getattr(e, "option_name", None) or "command"
    message = " ".join(e.format_message().split())
    where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
    return f"error: {field}: {message}{where}"


_signalled: list[int] = []  # the signal ``_interrupt`` took, if any


def _interrupt(signum: int, frame) -> None:
    """The first SIGINT or SIGTERM unwinds the command, whose clean-up runs (a store or
    output it was making is removed; a sweep's finished members stay in its store); another
    one while it does ends the process at once, without the tracebacks Python would print
    from the clean-up it cut short (SQLite's journal keeps every store whole either way)."""
    signal.signal(signal.SIGINT, _exit_now)
    signal.signal(signal.SIGTERM, _exit_now)
    _signalled.append(signum)
    raise Interrupted(128 + signum)


def _exit_now(signum: int, frame) -> None:
    os._exit(128 + signum)


def _unraisable(u) -> None:
    """An interrupt raised where Python ignores exceptions (JAX's garbage-collection
    callback) is kept for ``common.check_interrupt``, not printed as a traceback and lost."""
    if isinstance(u.exc_value, KeyboardInterrupt):
        common.SWALLOWED.append(u.exc_value)
        return
    sys.__unraisablehook__(u)


def main() -> None:
    """Entry point: user errors print one line and exit with code 2."""
    _signalled.clear()  # a run's state, not an earlier run's in the same process (tests call main in-process)
    common.SWALLOWED.clear()
    common.SAID.clear()
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)  # by default it killed the process before any clean-up
    hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    try:
        runtime.setup()
        code = app(standalone_mode=False)
        if _signalled:  # typer returns an interrupted command's 130 without a word (``run`` says its own)
            if not common.SAID:
                print("interrupted", file=sys.stderr)
            sys.exit(128 + _signalled[0])
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
    except KeyboardInterrupt as e:
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(getattr(e, "code", 130))
    finally:  # the signal handlers stay: a second signal while the process exits ends it at once
        sys.unraisablehook = hook


if __name__ == "__main__":
    main()
