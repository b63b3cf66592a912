"""docs/tutorial.md works as written: every ```python block runs, in order, in one
namespace, and every ```sh block runs in bash (with this environment's ``latchlab`` first
on PATH), all in one empty folder. Then the results it claims exist are checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial.md"


def blocks(text: str):
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(python|sh)\n(.*?)```", text, re.S)]


def test_every_block_runs(tmp_path, monkeypatch, xla_cache):
    bs = blocks(TUTORIAL.read_text())
    assert [k for k, _ in bs].count("python") >= 4 and [k for k, _ in bs].count("sh") >= 1
    monkeypatch.chdir(tmp_path)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LATCHLAB_CACHE": str(xla_cache),
    }
    ns: dict = {"__name__": "tutorial"}
    for i, (kind, code) in enumerate(bs):
        if kind == "python":
            exec(compile(code, f"tutorial block {i}", "exec"), ns)
        else:
            p = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code], env=env, capture_output=True, text=True, timeout=600
            )
            assert p.returncode == 0, f"block {i}:\n{code}\n{p.stderr}"
    # what the blocks claim to have made
    assert (tmp_path / "figs" / "success_vs_T.png").exists() and (tmp_path / "figs-cli" / "success_vs_T.png").exists()
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert len(rows) == 2 * 2 * 6 + 2 * 8 + 2 * 4  # the three sweeps' members, one row each
    assert ns["p"]["cell"]["bias"][1] == 5.0  # the stored initial parameters of a bias_f = 5 member
