"""Running the ``latchlab`` console script as a user does, and checking its user errors."""

from __future__ import annotations

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


def assert_user_error(rc, out, err, field, allowed=()):
    """Exit 2, no traceback, exactly one stderr line ``error: <field>: ...`` naming ``allowed``."""
    assert "Traceback" not in out + err, err
    assert rc == 2, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {field}: "), lines[0]
    for a in allowed:
        assert a in lines[0], (a, lines[0])
