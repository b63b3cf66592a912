"""Running the ``latchlab`` console script as a user does (or its entry point in this
process, without an interpreter's start-up), and checking its user errors."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

LATCHLAB = Path(sys.executable).with_name("latchlab")


def cli(*args, cwd, cache, timeout=300):
    """Run the console script; ``(returncode, stdout, stderr)``."""
    e = {**os.environ, "LATCHLAB_CACHE": str(cache)}
    e.pop("LATCHLAB_PROGRESS", None)
    p = subprocess.run(
        [str(LATCHLAB), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout
    )
    return p.returncode, p.stdout, p.stderr


def cli_here(*args) -> tuple[int, str, str]:
    """``latchlab.cli.main`` with ``args`` in this process: ``(returncode, stdout, stderr)``.

    Paths should be absolute (the working directory is this process's). An exception that
    escapes ``main`` (what a user would see as a traceback) is raised here, failing the test.
    """
    from latchlab import cli

    out, err = io.StringIO(), io.StringIO()
    argv, code = sys.argv, 0
    sys.argv = ["latchlab", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def assert_user_error(rc, out, err, field, allowed=()):
    """Exit 2, no traceback, exactly one stderr line ``error: <field>: ...`` naming ``allowed``."""
    assert "Traceback" not in out + err, err
    assert rc == 2, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {field}: "), lines[0]
    for a in allowed:
        assert a in lines[0], (a, lines[0])
