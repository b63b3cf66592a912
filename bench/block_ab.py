"""One block of the one-unit path in two revisions of the native kernels, side by side.

    python bench/block_ab.py --old d4e9aeb [--cells lstm,srnn] [--gates hard_sigmoid] [--length 200]
    LATCHLAB_NATIVE_MARCH=x86-64-v3 python bench/block_ab.py --old d4e9aeb ...  # AVX2 builds

Compiles ``bench/block_ab.cpp`` with ``kernels.cpp`` (and its ``simd.h``) as git revision
``--old`` has them and as the working tree has them, in one program, for each cell and this
``native.march()``, with the library's flags and block size. The program runs one block
(members of batch 16, lengths staggered by a few steps) forward and backward with either
revision in turn and prints nanoseconds a member-step of each (its fastest pass) and
whether both left the same bits. Unlike ``bench/kernel_ab.py`` (whole epochs, with the
gather, heads and optimiser), this times the recurrences alone; the speed of a change is
the ratio, never a wall-clock time.
"""

import argparse
import subprocess
import tempfile
from pathlib import Path

from latchlab.engine import native

CELLS = {  # name: (cell kind, reset_after)
    "lstm": ("lstm", False),
    "lstm_nofg": ("lstm_nofg", False),
    "srnn": ("srnn", False),
    "gru": ("gru", False),
    "gru_ra": ("gru", True),
    "janet": ("janet", False),
}
HERE = Path(__file__).resolve().parent


def source_at(rev: str | None, into: Path) -> Path:
    """kernels.cpp up to its extern "C" functions, and simd.h, of ``rev`` (None: the working
    tree), written into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for name in ("kernels.cpp", "simd.h"):
        path = f"src/latchlab/engine/native/{name}"
        if rev is None:
            text = (HERE.parent / path).read_text()
        else:
            text = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True).stdout
        if name == "kernels.cpp":
            text = text[: text.index('extern "C" {')]
        else:  # both copies are read, one into each namespace (GCC takes identical files for one)
            text = text.replace("#pragma once", "")
        (into / name).write_text(text)
    return into / "kernels.cpp"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--old", required=True, help="git revision whose kernels are the reference")
    ap.add_argument("--cells", default="lstm,lstm_nofg,srnn,gru,gru_ra,janet")
    ap.add_argument("--gates", default="hard_sigmoid", help="sigmoid, hard_sigmoid or hard_sigmoid_keras3")
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args(argv)
    print(f"{native.march()} build; old: {a.old}; new: working tree; ns a member-step (16 rows), old / new")
    with tempfile.TemporaryDirectory() as tmp:
        old, new = source_at(a.old, Path(tmp) / "old"), source_at(None, Path(tmp) / "new")
        for name in a.cells.split(","):
            kind, reset_after = CELLS[name]
            codes = native._codes(kind, "sigmoid" if kind == "srnn" else a.gates, reset_after)
            exe = Path(tmp) / f"block_ab_{name}"
            flags = [f for f in native.FLAGS if f not in ("-shared", "-fPIC")]
            cmd = [native._compiler() or "g++", *flags, f"-march={native.march()}", *native.defines(codes)]
            cmd += [f'-DKERNELS_OLD="{old}"', f'-DKERNELS_NEW="{new}"', str(HERE / "block_ab.cpp"), "-o", str(exe)]
            subprocess.run(cmd, check=True)
            out = subprocess.run([str(exe), str(a.length), str(a.rounds)], capture_output=True, text=True, check=True)
            f_old, f_new, b_old, b_new, same = _parse(out.stdout)
            print(
                f"{name}: forward {f_old:.2f} {f_new:.2f} ({f_old / f_new:.3f}), backward {b_old:.2f} {b_new:.2f} "
                f"({b_old / b_new:.3f}), both {f_old + b_old:.2f} {f_new + b_new:.2f} "
                f"({(f_old + b_old) / (f_new + b_new):.3f}); {'the same bits' if same else 'DIFFERENT bits'}",
                flush=True,
            )
    return 0


def _parse(line: str) -> tuple[float, float, float, float, bool]:
    w = line.split()  # forward OLD NEW backward OLD NEW same|different
    return float(w[1]), float(w[2]), float(w[4]), float(w[5]), w[6] == "same"


if __name__ == "__main__":
    raise SystemExit(main())
