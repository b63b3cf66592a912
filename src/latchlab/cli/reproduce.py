"""``latchlab reproduce ...``: each verb a thin call of its experiment's declaration
(``latchlab.experiments.<name>.EXPERIMENT``) through ``common.reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from latchlab.cli.common import (
    Cluster,
    ConfigFile,
    Preset,
    Profile,
    Scale,
    StoreOpt,
    float_list,
    int_list,
    out_option,
    read_config,
    reproduce,
)
from latchlab.cli.common import reproduce_app as app


@app.command("seed")
def seed(
    scale: Scale = "quick",
    preset: Preset = "keras2",
    split: List[str] = typer.Option(
        ["stratified", "tail"], "--split", help="stratified (fixed) and/or tail (the seed's bug); repeatable."
    ),
    out: Path = out_option("results"),
    store: StoreOpt = None,
    profile: Profile = False,
    cluster: Cluster = None,
):
    """The question's experiment: one-unit SRNN vs LSTM latching, buggy and fixed splits."""
    reproduce("seed", scale, out, store, profile, cluster, splits=tuple(split), preset=preset)


@app.command("ablations")
def ablations(
    scale: Scale = "quick",
    out: Path = out_option("results-ablations"),
    store: StoreOpt = None,
    profile: Profile = False,
    cluster: Cluster = None,
):
    """Initialisation and cell ablations (SRNN U0, LSTM forget bias and gates, no forget gate, JANET, GRU)."""
    reproduce("ablations", scale, out, store, profile, cluster)


def _preset_verb(name: str, preset_default: str, out_default: str, doc: str) -> None:
    """Register ``latchlab reproduce NAME``: an experiment whose one option beside the common
    ones is its gate preset."""

    def verb(
        scale: Scale = "quick",
        preset: Preset = preset_default,
        out: Path = out_option(out_default),
        store: StoreOpt = None,
        profile: Profile = False,
        cluster: Cluster = None,
    ):
        reproduce(name, scale, out, store, profile, cluster, preset=preset)

    app.command(name, help=doc)(verb)


_preset_verb(
    "phase",
    "keras3",
    "results/phase",
    "Success against the initial half-life: SRNN recurrent weight, LSTM forget bias and GRU "
    "update bias swept at T = 20, 50, 100, 200 (phase.png).",
)
_preset_verb(
    "followups",
    "keras2",
    "results/followups",
    "The asker's follow-ups: task 1 latching (1 unit) and task 2 bit relay (8 units), SRNN, LSTM, GRU.",
)
_preset_verb(
    "answer",
    "keras2",
    "results/answer",
    "The answer's reruns at T = 5 and 100, both tasks, all cells: lr, batch size and "
    "epochs tuned on separate tuning members, reported on fresh members.",
)
_preset_verb(
    "units",
    "keras2",
    "results/units",
    "Success frequency against the number of units (1 ... 100) for SRNN, LSTM and GRU on both tasks.",
)


@app.command("bengio1994")
def bengio1994(
    scale: Scale = "quick",
    out: Path = out_option("results/bengio1994"),
    store: StoreOpt = None,
    profile: Profile = False,
    cluster: Cluster = None,
    config_file: ConfigFile = None,
):
    """Bengio, Simard & Frasconi (1994) Fig. 1 and Fig. 2: one tanh neuron with trainable inputs."""
    reproduce("bengio1994", scale, out, store, profile, cluster, overrides=read_config(config_file))


@app.command("guessing")
def guessing(scale: Scale = "quick", out: Path = out_option("results/guessing"), config_file: ConfigFile = None):
    """Hochreiter & Schmidhuber (1996): random weight guessing on latch I, latch II and parity."""
    reproduce("guessing", scale, out, overrides=read_config(config_file))


@app.command(
    "pascanu2013",
    help="Pascanu et al. (2013) Fig. 6: the loss cliff of x_t = w sigmoid(x_{t-1}) + b "
    "sharpening with T, with gradient-descent paths with and without norm clipping.",
)
def pascanu2013(
    out: Path = out_option("results/pascanu2013"),
    T: Optional[str] = typer.Option(
        None, "--T", help="Sequence lengths, comma-separated, one panel each (default: analysis.landscape.PASCANU_T)."
    ),
    points: Optional[int] = typer.Option(None, "--points", help="Grid points per axis (default: 201)."),
    w: Optional[str] = typer.Option(None, "--w", help="w range: lo,hi (default: PASCANU_W)."),
    b: Optional[str] = typer.Option(None, "--b", help="b range: lo,hi (default: PASCANU_B)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Gradient-descent learning rate (default: PASCANU_LR)."),
    clip: Optional[float] = typer.Option(
        None, "--clip", help="Norm-clipping threshold of the clipped paths (default: PASCANU_CLIP)."
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", help="Gradient-descent steps per path (default: PASCANU_STEPS)."
    ),
):
    given = {
        "T": None if T is None else int_list(T, "T"),
        "points": points,
        "w": None if w is None else float_list(w, "w", (2,)),  # '' too: one line, not a traceback
        "b": None if b is None else float_list(b, "b", (2,)),
        "lr": lr,
        "clip": clip,
        "steps": steps,
    }
    reproduce("pascanu2013", "quick", out, **{k: v for k, v in given.items() if v is not None})
