"""``latchlab explain``: answer the question with evidence, as one self-contained HTML page
and its machine-readable twin ``findings.json``.

The page runs (or reuses from a store) the seed's experiment with both splits and both gate
presets, the ablations and the phase diagram (``latchlab.experiments.phase``: the initial
retention set by hand), diagnostics of trained members (the gradient through the whole
state, the class of each trained map: bistable, a line of marginal fixed points,
monostable), what each seed starts with against whether it latches, and loss landscapes
around the best, median and worst seed of each cell by latching horizon, and lists which
cells hand-set weights show able to solve each task (capacity, apart from training). The evidence
follows ``latchlab.analysis.evidence``: the seed is the unit (a seed's members at different
lengths are nested, never pooled as independent), there is one primary hypothesis declared
on the page before its result (SRNN against LSTM, stratified split, the seed's Keras-2
gates, log-rank test on per-seed latching horizons), every other test is secondary and
Holm-adjusted within its family, and a section is "shown" only by its own declared test.
Every sentence that reports a result is computed from the data here; the background text
that explains the tests is kept visibly apart from it.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import sys
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from latchlab import provenance
from latchlab.analysis import evidence as E
from latchlab.analysis import plot
from latchlab.engine import run as runner
from latchlab.experiments import ablations, phase
from latchlab.experiments import seed as reproduce
from latchlab.experiments.experiment import check_scale

ALPHA = E.ALPHA
SUCCESS_THRESHOLD = E.SUCCESS_THRESHOLD
SCALES = tuple(reproduce.SCALES)  # the seed's scales (the ablations have the same names)
DEFAULT_SCALE = "full"  # powered: the seed's full grid, both splits, both presets, 30 seeds per point
PRESETS = ("keras2", "keras3")
PRIMARY_PRESET = "keras2"  # the seed's (2018 Keras) gates
CELLS = ("srnn", "lstm")
NAMES: dict[Hashable, str] = {"srnn": "SRNN", "lstm": "LSTM", "keras2": "Keras-2 gates", "keras3": "Keras-3 gates"}
PRIMARY = (
    "Primary hypothesis (declared before any result): under the stratified split with the seed's "
    "Keras-2 gates, the one-unit SRNN and the one-unit LSTM differ in latching horizon (the longest "
    "grid length up to which a seed's member latched at every length). Test: two-sided log-rank test "
    f"on one horizon per seed and cell, right-censored at the grid's longest length, at α = {ALPHA:g}. "
    "Effect: difference in median horizon with a bootstrap 95 % interval over seeds."
)
BACKGROUND = [
    (
        "The unit is the seed",
        "A member's initial parameters and data come from its seed, and every length of "
        "the grid reuses them: a seed that latches at T mostly latches at every shorter T. The members of one "
        "seed are therefore one unit of evidence, not one per length. Each seed and cell is reduced to its "
        "latching horizon, the longest grid length up to which it latched at every length (docs/evidence.md "
        "gives the alternatives).",
    ),
    (
        "Log-rank test",
        "Reads success against T as survival: a seed 'dies' at the first length it fails. "
        "Compares two groups' survival curves; a seed that latched at every length is censored at the grid's "
        "longest length.",
    ),
    (
        "Sign test",
        "Where two groups share seeds (same data), counts the seeds on which each group lasts longer "
        "and tests the split against 50:50 (exact binomial). Ties, including two censored horizons, carry no sign.",
    ),
    (
        "Logistic GEE",
        "A second view: the log-odds of success modelled on the group and log T, with the members "
        "of one seed as a cluster (exchangeable working correlation, robust standard errors). Its effect is an "
        "odds ratio at equal T.",
    ),
    (
        "Multiple comparisons",
        "One primary test at α. Every other test is secondary and its p-value is "
        "Holm-adjusted within its family (the family-wise error stays ≤ α); a secondary claim is shown only if "
        "its adjusted p is below α. A section is shown only by the test declared for it.",
    ),
    (
        "Effect sizes",
        "Every p-value comes with an effect and its 95 % interval: the difference in median "
        "horizon (percentile bootstrap over seeds, seeds drawn jointly when both groups share them) or an odds "
        "ratio. A verdict 'inconclusive' means the test did not reach α, not that there is no difference.",
    ),
]


@dataclass
class Finding:
    """One section: its declared hypothesis and test (written before its result), the
    claims computed from the data, figures (PNG bytes), tables and descriptive text.

    ``declared`` is the key of the claim that decides the section's verdict; a section
    without one is ``context`` (descriptive, no test)."""

    title: str
    hypothesis: str = ""
    claims: list = field(default_factory=list)  # evidence.Claim, finalized
    figures: list = field(default_factory=list)  # (caption, png bytes)
    tables: list = field(default_factory=list)  # (caption, DataFrame)
    notes: str = ""  # descriptive numbers computed from the data (no test)
    declared: str = ""

    @property
    def verdict(self) -> str:
        if not self.declared:
            return "context"
        return next(c.verdict for c in self.claims if c.key == self.declared)

    @property
    def claim(self) -> str:
        """The section's result in words: its declared claim's sentence, or its notes."""
        if not self.declared:
            return self.notes
        return next(c.text for c in self.claims if c.key == self.declared)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plot.plt.close(fig)
    return buf.getvalue()


def _pct(k, n) -> str:
    return f"{k}/{n} ({100.0 * k / n:.0f} %)" if n else "0/0"


def _finalize_sections(findings: list[Finding]) -> list[Finding]:
    """Holm-adjust every claim of the report together (per family) and put the finalized
    claims back in their sections."""
    claims = [c for f in findings for c in f.claims]
    done = iter(E.finalize(claims))
    for f in findings:
        f.claims = [next(done) for _ in f.claims]
    return findings


# ----------------------------------------------------------------------------- findings


def seed_bug(final: pd.DataFrame, N: int, val_frac: float) -> Finding:
    """The seed's ``tail`` split against the stratified one (descriptive: context)."""
    import jax

    from latchlab.core import tasks

    y = np.asarray(tasks.latch(jax.random.PRNGKey(0), N, 2)[1])
    tr, va = tasks.split_indices(jax.random.PRNGKey(1), y, val_frac, "tail")
    pos_val, pos_tr = float(y[np.asarray(va)].mean()), float(y[np.asarray(tr)].mean())
    by = [c for c in ("preset", "split", "cell") if c in final]
    g = final.groupby(by).val_acc
    t = pd.DataFrame(
        {
            "members": g.size(),
            "mean val acc": g.mean().round(3),
            "val acc < 0.05": g.apply(lambda a: int((a < 0.05).sum())),
        }
    ).reset_index()
    tail, strat = final[final.split == "tail"], final[final.split == "stratified"]
    notes = (
        f"With the seed's split (Keras' validation_split on data ordered positives first) the "
        f"validation set holds {100 * pos_val:.0f} % positives and the training set "
        f"{100 * pos_tr:.1f} %. Under it, mean validation accuracy is {tail.val_acc.mean():.3f} "
        f"and {int((tail.val_acc < 0.05).sum())} of {len(tail)} members score below 0.05; with a "
        f"stratified split the same seeds reach {strat.val_acc.mean():.3f}. A network that has "
        f"not latched predicts the training majority (positive) and scores near 0 on an "
        f"all-negative validation set: the seed's zeros measure the split, not the cells."
    )
    fig = plot.accuracy_vs_T(final)
    return Finding(
        "1. The seed's bug and its effect",
        "",
        [],
        [("final validation accuracy, both splits", _png(fig))],
        [("per gate preset, split and cell", t)],
        notes,
    )


def _horizon_table(h: pd.DataFrame, by) -> pd.DataFrame:
    g = h.groupby(list(by), sort=False)
    return pd.DataFrame(
        {
            "seeds": g.size(),
            "median horizon": g.horizon.median(),
            "median horizon, alternative: longest length latched": g.horizon_last.median(),
            "latched at every length": g.censored.sum().astype(int),
            "failed at the shortest length": g.horizon.apply(lambda x: int((x == 0).sum())),
            "nested (successes a prefix of the grid)": g.nested.mean().round(2),
        }
    ).reset_index()


def _survival_figure(h: pd.DataFrame, by: str, panel: str | None = None):
    """Fraction of seeds whose horizon is at least T (a Kaplan-Meier curve: censoring only
    at the grid's end), one line per ``by``."""
    panels = sorted(h[panel].unique()) if panel else [None]
    fig, axes = plot.plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False, sharey=True)
    for p, ax in zip(panels, axes[0]):
        x = h if p is None else h[h[panel] == p]
        grid = np.sort(np.unique(np.r_[x.horizon[x.horizon > 0], x.T_max]))
        for name, d in x.groupby(by, sort=False):
            ax.step(
                grid,
                [(d.horizon >= T).mean() for T in grid],
                where="post",
                label=NAMES.get(name, str(name)),
                color=plot._STYLE.get(name, (None,))[0],
            )
        ax.set_xscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_title(NAMES.get(p, "" if p is None else str(p)))
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("seeds latching at every length ≤ T")
    axes[0][0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def cells_compared(final: pd.DataFrame, a: str = "srnn", b: str = "lstm") -> Finding:
    """SRNN against LSTM under the stratified split, per gate preset, with the seed as the
    unit: the primary log-rank test (``PRIMARY_PRESET``) and, secondary (family "cells"),
    the paired sign test and the clustered GEE for each preset and the log-rank test for
    the other presets."""
    s = cast(pd.DataFrame, final[final.split == "stratified"])
    if "preset" not in s:
        s = s.assign(preset=PRIMARY_PRESET)
    presets = [p for p in PRESETS if p in set(s.preset)] or sorted(s.preset.unique())
    h = E.horizons(cast(pd.DataFrame, s[s.cell.isin([a, b])]), by=("preset", "cell"))
    A, B = NAMES.get(a, a), NAMES.get(b, b)
    what = "latches to longer lengths than"
    claims = []
    for preset in presets:
        hp = cast(pd.DataFrame, h[h.preset == preset])
        ha, hb = cast(pd.DataFrame, hp[hp.cell == a]), cast(pd.DataFrame, hp[hp.cell == b])
        sp = cast(pd.DataFrame, s[s.preset == preset])
        label = NAMES.get(preset, preset)
        primary = preset == PRIMARY_PRESET
        hyp = f"{A} and {B} differ in latching horizon ({label}, stratified split)"
        claims.append(
            E.Claim(
                "cells",
                f"logrank {preset}",
                hyp,
                "primary" if primary else "secondary",
                "cells",
                A,
                B,
                what,
                E.logrank(ha, hb, A, B, members=len(sp)),
            )
        )
        claims.append(
            E.Claim(
                "cells",
                f"sign {preset}",
                hyp + ", paired by seed",
                "secondary",
                "cells",
                A,
                B,
                what,
                E.sign_test(ha, hb, A, B, members=len(sp)),
            )
        )
        claims.append(
            E.Claim(
                "cells",
                f"gee {preset}",
                f"{A} and {B} differ in the odds of success at equal T ({label})",
                "secondary",
                "cells",
                A,
                B,
                "has higher odds of success than",
                E.gee(sp, "cell", a, b, SUCCESS_THRESHOLD, names=(A, B)),
            )
        )
    per_T = plot.summary(s.assign(variant=s.cell), by=("preset", "cell", "T"), threshold=SUCCESS_THRESHOLD)
    per_T["successes [Wilson 95 %]"] = [
        f"{k}/{n} [{lo:.2f}, {hi:.2f}]"
        for k, n, lo, hi in zip(per_T.successes, per_T.members, per_T.wilson_low, per_T.wilson_high)
    ]
    wide = per_T.pivot_table(index="T", columns=["preset", "cell"], values="successes [Wilson 95 %]", aggfunc="first")
    wide.columns = [f"{NAMES.get(c, c)} {NAMES.get(p, p)}" for p, c in wide.columns]
    key = f"logrank {PRIMARY_PRESET}" if PRIMARY_PRESET in presets else f"logrank {presets[0]}"
    figs = [
        (
            "seeds latching at every length up to T (stratified split), one panel per gate preset",
            _png(_survival_figure(h, "cell", "preset")),
        ),
        (
            "success frequency against T (stratified split; descriptive, Wilson 95 % bands per length)",
            _png(plot.success_vs_T(s.assign(variant=s.cell), panel="preset", threshold=SUCCESS_THRESHOLD)),
        ),
    ]
    return Finding(
        f"2. Does the one-unit {B} latch worse than the {A}?",
        PRIMARY,
        claims,
        figs,
        [
            ("latching horizon per seed, by preset and cell", _horizon_table(h, ("preset", "cell"))),
            ("successes per length (descriptive only: lengths share seeds, so no test pools them)", wide.reset_index()),
        ],
        declared=key,
    )


def diagnose_members(store, final: pd.DataFrame, T: int, N: int = 128, preset: str = PRIMARY_PRESET) -> pd.DataFrame:
    """``diagnose.summary`` rows at the first and last epoch of every stratified-split
    member at length ``T`` (gate preset ``preset``), with the member's cell and outcome."""
    from latchlab.analysis import diagnose as D

    rows = []
    sel = cast(pd.DataFrame, final[(final.split == "stratified") & (final["T"] == T)])
    if "preset" in sel:
        sel = cast(pd.DataFrame, sel[sel.preset == preset])
    for r in cast(Iterable[Any], sel.itertuples()):  # namedtuples with the frame's columns
        s = D.member(store, r.member_id, N=N, epochs=[0, int(r.epochs)]).summary
        assert s is not None  # diagnose.member computes the summary
        for when, row in zip(("init", "final"), s.itertuples()):
            rows.append(
                {
                    "member_id": r.member_id,
                    "cell": r.cell,
                    "seed": r.seed,
                    "T": T,
                    "when": when,
                    "success": bool(r.val_acc >= SUCCESS_THRESHOLD),
                    **{
                        k: getattr(row, k)
                        for k in (
                            "retention_mean",
                            "retention_geomean",
                            "half_life",
                            "grad_ratio_median",
                            "grad_ratio_state_median",
                            "bistable",
                            "marginal_line",
                            "dynamics",
                            "n_stable",
                            "recurrent",
                            "bias_retention",
                        )
                    },
                }
            )
    return pd.DataFrame(rows)


MECHANISM = (
    "Declared test of this section: at initialisation, the gradient that reaches step 1 "
    "(median ‖dL/ds_1‖ / ‖dL/ds_T‖ over a batch, s the whole state: h for the SRNN, (h, c) for the LSTM) "
    "differs between the one-unit SRNN and LSTM at the diagnosed length; Wilcoxon signed-rank test on log10 "
    "ratios paired by seed, Holm-adjusted in the family “mechanisms” with the section's other tests."
)
DYNAMICS = {
    "bistable": "bistable (two stable fixed points: a latch)",
    "marginal_line": "a line of marginal fixed points (a perfect integrator: f = 1 or z = 1)",
    "monostable": "monostable (one stable fixed point: forgets)",
    "no_attractor": "no attractor",
}
"""The classes of the input-free map after training (``diagnose.dynamics``), in the report's words."""
HOLDS = ("bistable", "marginal_line")
"""The classes of map that hold a state without input (so can hold a bit)."""


def mechanisms(d: pd.DataFrame) -> Finding:
    """What the diagnostics say at one length (one member per seed and cell): the
    gradient reaching step 1 at initialisation through the whole state (the declared
    test), and, secondary, whether members that latched built a map that holds a state
    (bistable, or a line of marginal fixed points) and the LSTM's final forget gate."""
    T = int(d["T"].iloc[0])
    init, fin = cast(pd.DataFrame, d[d.when == "init"]), cast(pd.DataFrame, d[d.when == "final"])
    li, si = (cast(pd.DataFrame, init[init.cell == c]).set_index("seed") for c in ("lstm", "srnn"))
    ratio = "grad_ratio_state_median"
    sg, lg = (cast(pd.Series, np.log10(np.maximum(x[ratio].astype(float), 1e-300))) for x in (si, li))
    claims = [
        E.Claim(
            "mechanisms",
            "gradient at init",
            MECHANISM,
            "secondary",
            "mechanisms",
            "SRNN",
            "LSTM",
            "passes more gradient to step 1 (whole state) at initialisation than",
            E.wilcoxon(sg, lg, "SRNN", "LSTM", "log10 gradient ratio", members=len(init)),
        )
    ]
    rows = []
    for cell in ("srnn", "lstm"):
        f = cast(pd.DataFrame, fin[fin.cell == cell])
        ok, bad = cast(pd.DataFrame, f[f.success]), cast(pd.DataFrame, f[~f.success])
        k_ok, k_bad = int(ok.dynamics.isin(HOLDS).sum()), int(bad.dynamics.isin(HOLDS).sum())
        r = E.fisher(
            k_ok,
            len(ok),
            k_bad,
            len(bad),
            f"{NAMES[cell]} members that latched",
            f"{NAMES[cell]} members that failed",
            "hold a state",
        )
        claims.append(
            E.Claim(
                "mechanisms",
                f"memory map {cell}",
                f"after training, {NAMES[cell]} members that latched and those that failed differ in how often "
                f"their input-free map holds a state (bistable, or a line of marginal fixed points) (T = {T})",
                "secondary",
                "mechanisms",
                f"{NAMES[cell]} members that latched",
                f"{NAMES[cell]} members that failed",
                "have a map that holds a state (bistable or a marginal line) more often than",
                r,
            )
        )
        for outcome, x in (("latched", ok), ("failed", bad)):
            rows.append(
                {
                    "cell": cell,
                    "outcome": outcome,
                    "members": len(x),
                    **{DYNAMICS[k]: int((x.dynamics == k).sum()) for k in DYNAMICS},
                }
            )
    lf = cast(pd.DataFrame, fin[fin.cell == "lstm"])
    claims.append(
        E.Claim(
            "mechanisms",
            "forget gate lstm",
            f"after training, the forget gate of LSTMs that latched differs from that of LSTMs that failed (T = {T})",
            "secondary",
            "mechanisms",
            "LSTMs that latched",
            "LSTMs that failed",
            "end with a larger mean forget gate than",
            E.mann_whitney(
                cast(pd.DataFrame, lf[lf.success]).retention_mean,
                cast(pd.DataFrame, lf[~lf.success]).retention_mean,
                "LSTMs that latched",
                "LSTMs that failed",
                "forget gate",
            ),
        )
    )
    notes = (
        f"At T = {T}, at initialisation, the LSTM's forget gate keeps a median {li.retention_mean.median():.2f} "
        f"of its cell state per step (half-life {li.half_life.median():.1f} steps); the median ratio "
        f"‖dL/ds_1‖ / ‖dL/ds_T‖ through the whole state is {li[ratio].median():.1e} for the LSTM "
        f"(through h alone: {li.grad_ratio_median.median():.1e}) and {si[ratio].median():.1e} for the SRNN."
    )
    g = d.groupby(["cell", "success", "when"])
    t = pd.DataFrame(
        {
            "members": g.size(),
            "forget gate / contraction (median)": g.retention_mean.median().round(3),
            "half-life, steps (median)": g.half_life.median().round(2),
            "‖dL/ds_1‖/‖dL/ds_T‖, whole state (median)": g[ratio].median().map(lambda v: f"{v:.1e}"),
            "‖dL/dh_1‖/‖dL/dh_T‖ (median)": g.grad_ratio_median.median().map(lambda v: f"{v:.1e}"),
            "bistable": g.dynamics.apply(lambda x: round(float((x == "bistable").mean()), 2)),
            "marginal line": g.dynamics.apply(lambda x: round(float((x == "marginal_line").mean()), 2)),
        }
    ).reset_index()
    fig, axes = plot.plt.subplots(1, 2, figsize=(8.4, 3.2))
    for k, (cell, colour) in enumerate((("srnn", "C0"), ("lstm", "C3"))):
        for when, marker in (("init", "o"), ("final", "s")):
            x = d[(d.cell == cell) & (d.when == when)]
            jitter = 0.08 * (np.arange(len(x)) % 5 - 2)
            axes[0].scatter(
                k * 2 + (when == "final") + jitter,
                np.log10(np.maximum(x[ratio], 1e-30)),
                c=np.where(x.success, colour, "0.6"),
                marker=marker,
                s=14,
            )
    axes[0].set_xticks([0, 1, 2, 3], ["SRNN\ninit", "SRNN\ntrained", "LSTM\ninit", "LSTM\ntrained"])
    axes[0].set_ylabel("log10 ‖dL/ds_1‖ / ‖dL/ds_T‖ (whole state)")
    axes[0].set_title(f"gradient reaching step 1 (T = {T}); colour: latched, grey: failed", fontsize=8)
    shades = {"bistable": 1.0, "marginal_line": 0.55, "monostable": 0.2, "no_attractor": 0.05}
    for k, cell in enumerate(("srnn", "lstm")):
        f = cast(pd.DataFrame, fin[fin.cell == cell])
        for j, ok in enumerate((True, False)):
            x = cast(pd.DataFrame, f[f.success == ok])
            bottom = 0.0
            for cls, alpha in shades.items():
                q = float((x.dynamics == cls).mean()) if len(x) else 0.0
                axes[1].bar(
                    k * 3 + j,
                    q,
                    bottom=bottom,
                    color=("C0", "C3")[k],
                    alpha=alpha,
                    edgecolor="0.3",
                    lw=0.4,
                    label=DYNAMICS[cls].split(" (")[0] if k == 0 and j == 0 else None,
                )
                bottom += q
            axes[1].text(k * 3 + j, 1.02, f"n={len(x)}", ha="center", fontsize=7)
    axes[1].set_xticks([0, 1, 3, 4], ["SRNN\nlatched", "SRNN\nfailed", "LSTM\nlatched", "LSTM\nfailed"])
    axes[1].set_ylabel("input-free map after training (fraction)")
    axes[1].set_ylim(0, 1.1)
    axes[1].legend(frameon=False, fontsize=6.5, loc="lower right")
    fig.tight_layout()
    return Finding(
        "3. Why: memory, gradients and attractors",
        MECHANISM,
        claims,
        [("per member: the gradient ratio at initialisation and after training; the trained maps", _png(fig))],
        [
            ("diagnostics by cell and outcome (first and last epoch)", t),
            ("the input-free map after training (diagnose.dynamics) against success", pd.DataFrame(rows)),
        ],
        notes,
        declared="gradient at init",
    )


ABLATION = (
    "Declared test of this section: the variant with the longest median latching horizon (ties: the "
    "larger mean) lasts longer than the runner-up; paired sign test on per-seed horizons, Holm-adjusted in "
    "the family “ablations: best variant”. Secondary, each variant against its family's Keras default "
    "(paired sign test on horizons, Holm-adjusted per family)."
)
_DEFAULTS = {
    "SRNN, recurrent weight at init": "U0 = orthogonal (±1, Keras)",
    ablations._HARD: "b_f = 1 (Keras)",
    ablations._SOFT: "b_f = 1 (Keras)",
}


def ablation_effects(df: pd.DataFrame, saturated: dict | None = None) -> Finding:
    """Each ablation against its family's Keras default, and the best variant against the
    runner-up, on per-seed latching horizons (all variants share seeds: paired).

    ``saturated``: ``{(family, variant): fraction of members with a gate saturated at
    initialisation}`` (``saturation.fraction_saturated``), shown per variant."""
    h = E.horizons(df, by=("family", "variant"))
    members = cast(
        pd.Series, df.drop_duplicates(["family", "variant", "seed", "T"]).groupby(["family", "variant"]).size()
    )
    claims, rows = [], []
    groups = cast(Iterable[tuple[tuple[str, str], pd.DataFrame]], h.groupby(["family", "variant"], sort=False))
    for (fam, var), x in groups:
        r = {
            "family": fam,
            "variant": var,
            "seeds": len(x),
            "median horizon": float(x.horizon.median()),
            "latched at every length": int(x.censored.sum()),
            "mean success over lengths": round(float((x.latched / x.lengths).mean()), 3),
        }
        if saturated is not None:
            r["members with a gate saturated at init"] = round(float(saturated.get((fam, var), np.nan)), 3)
        ref = _DEFAULTS.get(fam)
        if ref is not None and var != ref:
            hr = cast(pd.DataFrame, h[(h.family == fam) & (h.variant == ref)])
            n = cast(int, members[(fam, var)]) + cast(int, members[(fam, ref)])  # scalars: one row each
            res = E.sign_test(x, hr, var, ref, members=int(n))
            claims.append(
                E.Claim(
                    "ablations",
                    f"{fam}: {var}",
                    f"{var} and {ref} differ in latching horizon ({fam})",
                    "secondary",
                    f"ablations: {fam}",
                    var,
                    ref,
                    "latches to longer lengths than",
                    res,
                )
            )
        rows.append(r)
    t = pd.DataFrame(rows)
    rank = t.sort_values(["median horizon", "mean success over lengths"], ascending=False, kind="stable")
    (fa, va), (fb, vb) = [(r.family, r.variant) for r in rank.iloc[:2].itertuples()]
    ha = cast(pd.DataFrame, h[(h.family == fa) & (h.variant == va)])
    hb = cast(pd.DataFrame, h[(h.family == fb) & (h.variant == vb)])
    n = cast(int, members[(fa, va)]) + cast(int, members[(fb, vb)])  # scalars: one row each
    best = E.sign_test(ha, hb, f"{va} ({fa})", f"{vb} ({fb})", members=int(n))
    claims.insert(
        0,
        E.Claim(
            "ablations",
            "best variant",
            ABLATION.split(";")[0],
            "secondary",
            "ablations: best variant",
            f"{va} ({fa})",
            f"{vb} ({fb})",
            "is the best variant: it latches to longer lengths than the runner-up",
            best,
        ),
    )
    Ts = sorted(df["T"].unique())
    notes = (
        f"{len(t)} variants, {int(t.seeds.min())} seeds each, lengths {', '.join(map(str, Ts))}; every "
        f"variant runs on the same seeds, so comparisons are paired by seed."
    )
    if saturated is not None:
        dead = {k: v for k, v in saturated.items() if v > 0}
        notes += (
            " Members that start with a gate saturated (zero slope at every step of a batch of the task's "
            "sequences, so no gradient reaches it): "
            + ("; ".join(f"{v} ({fam}) {100 * q:.0f} %" for (fam, v), q in dead.items()) if dead else "none")
            + "."
        )
    fig = ablations.figure(df)
    return Finding(
        "4. Ablations: what changes the outcome",
        ABLATION,
        claims,
        [
            ("success against T per variant (descriptive), Wilson 95 % bands", _png(fig)),
            ("seeds latching at every length up to T, per variant", _png(_survival_figure(h, "variant", "family"))),
        ],
        [("latching horizon per variant (one per seed)", t)],
        notes,
        declared="best variant",
    )


LANDSCAPE_AXES = {"srnn": ("recurrent", "bias"), "lstm": ("recurrent_f", "bias_f")}
"""The two parameters each cell's surface spans: the weight and bias that set its retention."""
LANDSCAPE_SPAN = 3.0
"""The half-width of every surface, both axes, both cells: the same span for each."""


def landscapes(
    h: pd.DataFrame | None = None,
    T_list=(5, 20, 50),
    N: int = 256,
    points: int = 31,
    span: float = LANDSCAPE_SPAN,
    preset: str = PRIMARY_PRESET,
) -> Finding:
    """Loss surfaces around the initial point of the best, median and worst seed of each
    cell by latching horizon (``evidence.pick_seeds`` on ``h``, the per-seed horizons of the
    seed's experiment under ``preset``; seed 0 alone if ``h`` is None), each over the same
    span (``span`` either side of the initial value, both axes, both cells), and Pascanu
    2013's cliff; the fraction of each surface on the chance plateau."""
    from latchlab.analysis import landscape as L
    from latchlab.analysis import landscape_plot as LP

    if h is None:
        picks = pd.DataFrame(
            [{"cell": c, "role": "seed 0", "seed": 0, "horizon": np.nan, "censored": False} for c in CELLS]
        )
    else:
        picks = E.pick_seeds(cast(pd.DataFrame, h[h.cell.isin(CELLS)]), "cell")
    rows, figs = [], []
    plateau_col = "fraction on chance plateau (|L - ln 2| < 1 %)"
    for p in cast(Iterable[Any], picks.itertuples()):
        names = LANDSCAPE_AXES[p.cell]
        c = L.initial_centre(cell=p.cell, preset=preset, seed=int(p.seed))
        df = L.surface(c.model, c.params, names, span, "latch", list(T_list), points=points, N=N)
        for T, d in df.groupby("T"):
            plateau = float((np.abs(d.loss - math.log(2)) < 0.01 * math.log(2)).mean())
            at = L.center_rows(d)
            rows.append(
                {
                    "cell": p.cell,
                    "seed": f"{p.role}: seed {p.seed}",
                    "horizon": "" if pd.isna(p.horizon) else f"{p.horizon}{'+' if p.censored else ''}",
                    "T": T,
                    "x": names[0],
                    "y": names[1],
                    "min loss": round(float(d.loss.min()), 4),
                    "loss at init": round(float(at.loss.iloc[0]), 4) if len(at) else np.nan,
                    plateau_col: round(plateau, 3),
                }
            )
        hz = "" if pd.isna(p.horizon) else f", horizon {p.horizon}{' (latched at every length)' if p.censored else ''}"
        figs.append(
            (
                f"{NAMES[p.cell]} ({NAMES.get(preset, preset)}, Keras init), {p.role} seed by horizon (seed "
                f"{p.seed}{hz}): loss over ({names[0]}, {names[1]}) ± {span:g} around its initial point",
                _png(LP.surface_figure(df)),
            )
        )
    grid = L.pascanu()
    paths = L.pascanu_paths()
    figs.append(
        (
            "Pascanu et al. 2013, Fig. 6: x_t = w σ(x_{t-1}) + b, loss (σ(x_T) - 0.7)², "
            "gradient descent with and without clipping",
            _png(LP.pascanu_figure(grid, paths)),
        )
    )
    t = pd.DataFrame(rows)
    parts = []
    for cell in CELLS:
        x = cast(pd.DataFrame, t[t.cell == cell])
        if x.empty:
            continue
        per = cast(pd.Series, x.groupby("seed", sort=False)[plateau_col].mean())
        a, b = LANDSCAPE_AXES[cell]
        parts.append(
            f"the {NAMES[cell]}'s ({a}, {b}) surface: "
            + ", ".join(
                f"{100 * v:.0f} % ({str(k).split(':')[0]} seed)" for k, v in zip(per.index, per.to_numpy(float))
            )
        )
    notes = (
        f"Around the initial points of each cell's best, median and worst seed by latching horizon "
        f"({NAMES.get(preset, preset)}; descriptive), the share of the surface on the chance plateau (loss within "
        f"1 % of ln 2), averaged over T = {', '.join(map(str, T_list))}, each surface ± {span:g} on both axes: "
        + "; ".join(parts)
        + ". On a plateau the gradient carries no information about the start of the sequence; Pascanu's cliff "
        "shows the other failure: as T grows the surface becomes flat almost everywhere and a wall where the map's "
        "fixed points change."
    )
    return Finding("5. Loss landscapes", "", [], figs, [("plateau fraction per cell, seed and length", t)], notes)


# ----------------------------------------------------------------------------- what decides latching

OBSERVATIONAL = (
    "Declared test of this section: among the LSTM's seeds (Keras-2 gates), the initial retention measured "
    "along the member's own sequences (the geometric mean of its forget gate over steps 2..T at "
    "initialisation) predicts success at equal T; logistic GEE of success on the standardised retention and "
    "log T with seeds as clusters, Holm-adjusted in the family of the LSTM's initial quantities (Keras-2 "
    "gates). Secondary: every other initial quantity that varies over seeds, per cell and gate preset, in "
    "that cell's family."
)
MEASURED = "retention (measured)"
"""The initial retention measured along a member's sequences (``diagnose`` summary at epoch 0)."""


def initial_members(store, final: pd.DataFrame, T: int, N: int = 128) -> pd.DataFrame:
    """What each seed starts with, per gate preset and cell (stratified split): one row per
    preset, cell, seed and quantity (``initial.quantities`` of its epoch-0 parameters, the
    same at every length, and ``MEASURED``: ``diagnose``'s ``retention_geomean`` at epoch 0 on
    ``N`` of the length-``T`` member's validation sequences)."""
    from latchlab.analysis import diagnose as D
    from latchlab.analysis import initial

    sel = cast(pd.DataFrame, final[(final.split == "stratified") & (final["T"] == T)])
    if "preset" not in sel:
        sel = sel.assign(preset=PRIMARY_PRESET)
    rows = []
    for r in cast(Iterable[Any], sel.itertuples()):
        diag = D.member(store, r.member_id, N=N, epochs=[0])
        assert diag.summary is not None  # diagnose.member computes the summary
        q = initial.quantities(diag.model.cell, store.params(r.member_id, 0))
        q[MEASURED] = float(diag.summary.retention_geomean.iloc[0])
        rows += [
            {"preset": r.preset, "cell": r.cell, "seed": int(r.seed), "quantity": k, "value": v} for k, v in q.items()
        ]
    return pd.DataFrame(rows)


def what_decides(final: pd.DataFrame, q: pd.DataFrame) -> Finding:
    """Which initial quantity predicts latching, per cell and gate preset: for each
    quantity that varies over seeds, a logistic GEE of success on it (standardised) and
    log T, seeds as clusters (``evidence.gee_slope``; family: the cell and preset), and its
    Spearman correlation with the seed's latching horizon (descriptive). ``q``:
    ``initial_members``' rows. The declared test: the LSTM's measured initial retention
    under Keras-2 gates."""
    from latchlab.analysis.diagnose import half_life

    s = cast(pd.DataFrame, final[final.split == "stratified"])
    if "preset" not in s:
        s = s.assign(preset=PRIMARY_PRESET)
    claims, rows, best = [], [], []
    groups = cast(Iterable[tuple[tuple[str, str], pd.DataFrame]], q.groupby(["preset", "cell"], sort=False))
    for (preset, cell), x in groups:
        members = cast(pd.DataFrame, s[(s.preset == preset) & (s.cell == cell)])
        h = E.horizons(members, by=("cell",)).set_index("seed")
        fam = f"initial quantities: {NAMES.get(cell, cell)}, {NAMES.get(preset, preset)}"
        local = []
        for name, v in x.groupby("quantity", sort=False):
            per_seed = cast(pd.Series, v.set_index("seed").value)
            if name == "half-life":
                continue  # a monotone function of the retention: the same ranks and the same test
            row = {
                "preset": preset,
                "cell": cell,
                "quantity": name,
                "mean over seeds": round(float(np.mean(per_seed.to_numpy(float))), 4),
                "SD over seeds": round(float(np.std(per_seed.to_numpy(float))), 4),
            }
            if per_seed.nunique() < 2:
                rows.append({**row, "result": "the same for every seed: cannot tell seeds apart"})
                continue
            rho, p_rho = E.spearman(per_seed.to_numpy(), h.horizon.loc[per_seed.index].to_numpy())
            res = E.gee_slope(
                members.merge(per_seed.rename("q"), left_on="seed", right_index=True), "q", name=str(name)
            )
            key = f"{name} {cell} {preset}"
            declared = name == MEASURED and cell == "lstm" and preset == PRIMARY_PRESET
            local.append(
                E.Claim(
                    "initial",
                    key,
                    OBSERVATIONAL.split(";")[0]
                    if declared
                    else f"{name} at initialisation predicts success at "
                    f"equal T ({NAMES.get(cell, cell)}, {NAMES.get(preset, preset)})",
                    "secondary",
                    fam,
                    f"seeds with larger {name}",
                    f"seeds with smaller {name}",
                    "latch more often at equal T than",
                    res,
                )
            )
            rows.append({**row, "Spearman ρ with horizon": round(rho, 3), "ρ's p": p_rho, "_key": key})
        done = {c.key: c for c in E.finalize(local)}  # the same as the report's: each family lies in this section
        for r in rows:
            c = done.get(r.pop("_key", None)) if "_key" in r else None
            if c is not None:
                e = c.result.effect
                r["GEE odds ratio per SD [95 %]"] = (
                    f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}]" if np.isfinite(e.value) else "not estimable"
                )
                r["p"], r["Holm p"], r["result"] = c.result.p, c.p_adjusted, c.verdict
        shown = [c for c in done.values() if c.verdict == "shown"]
        strongest = max(
            (r for r in rows if r["cell"] == cell and r["preset"] == preset and "Spearman ρ with horizon" in r),
            key=lambda r: abs(r["Spearman ρ with horizon"]) if np.isfinite(r["Spearman ρ with horizon"]) else -1,
            default=None,
        )
        label = f"{NAMES.get(cell, cell)} ({NAMES.get(preset, preset)})"
        if shown:
            top = min(shown, key=lambda c: c.p_adjusted)
            best.append(
                f"{label}: {top.result.favours} {top.what} {top.b if top.result.favours == top.a else top.a} "
                f"(odds ratio per SD {top.result.effect.value:.2f}, Holm p = {top.p_adjusted:.2g})"
            )
        elif strongest is not None:
            best.append(
                f"{label}: no initial quantity predicts success after Holm adjustment; the one most correlated "
                f"with the horizon is {strongest['quantity']} (Spearman ρ = {strongest['Spearman ρ with horizon']:.2f})"
            )
        claims += local
    t = pd.DataFrame(rows)
    notes = (
        "Each seed starts from the same parameters at every length; its latching horizon and its members' "
        "successes are set against what it starts with. Which initial quantity predicts success, per cell: "
        + "; ".join(best)
        + "."
    )
    fig, axes = plot.plt.subplots(1, max(1, q.preset.nunique()), figsize=(4.4 * q.preset.nunique(), 3.2), squeeze=False)
    for ax, (preset, x) in zip(axes[0], q[q.quantity == MEASURED].groupby("preset", sort=False)):
        for cell, y in x.groupby("cell", sort=False):
            members = cast(pd.DataFrame, s[(s.preset == preset) & (s.cell == cell)])
            hz = E.horizons(members, by=("cell",)).set_index("seed").horizon
            hl = half_life(y.set_index("seed").value.loc[hz.index].to_numpy())
            colour, marker = plot._STYLE.get(cell, ("0.3", "o"))
            ax.scatter(
                hl,
                hz.to_numpy() + 0.6 * (np.arange(len(hz)) % 3 - 1),
                c=colour,
                marker=marker,
                s=14,
                label=NAMES.get(cell, cell),
            )
        ax.set_xscale("log")
        ax.set_xlabel("initial half-life, measured (steps)")
        ax.set_title(NAMES.get(preset, str(preset)))
    axes[0][0].set_ylabel("latching horizon (steps)")
    axes[0][0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    declared = next((c.key for c in claims if c.key == f"{MEASURED} lstm {PRIMARY_PRESET}"), "")
    return Finding(
        "6. What decides latching (observed): what each seed starts with",
        OBSERVATIONAL if declared else "",
        claims,
        [("latching horizon against the measured initial half-life, one point per seed", _png(fig))],
        [("initial quantities against success (GEE, per SD) and the horizon (Spearman ρ), per cell", t)],
        notes,
        declared=declared,
    )


PHASE = (
    "Declared test of this section: on the initial half-lives all three cells share (set by hand: the SRNN's "
    "recurrent weight, the LSTM's forget bias, the GRU's update bias), the SRNN and the LSTM differ in the odds "
    "of success at equal initial half-life and T; logistic GEE of success on the cell, log T and the log initial "
    "half-life, seeds as clusters, with the SRNN against the GRU and the LSTM against the GRU, Holm-adjusted in "
    "the family “phase”. If no pair differs, one curve of initial half-life against T is consistent with every "
    "cell."
)
PHASE_PAIRS = (("srnn", "lstm"), ("srnn", "gru"), ("lstm", "gru"))


def _favoured_odds(c: E.Claim) -> float:
    """A GEE claim's odds ratio for the group its data favour (``a`` against ``b`` is stored)."""
    v = c.result.effect.value
    return v if c.result.favours == c.a else 1.0 / v


def phase_effects(df: pd.DataFrame) -> Finding:
    """Whether one curve of initial half-life against T serves every cell (``phase``'s
    members, ``phase.label`` rows): each pair of cells on the half-lives they all share,
    logistic GEE with the log half-life and log T as covariates (family "phase"; the SRNN
    against the LSTM declared); where the cells part, from the data: each cell's 50 %
    crossing per T and the SRNN's bistable points."""
    names = {"srnn": "SRNN", "lstm": "LSTM", "gru": "GRU"}
    held = cast(pd.DataFrame, df[df.regime == "decay"])
    level = held.retention.round(6)
    shared = set.intersection(*(set(level[held.cell == c]) for c in phase.CELLS if (held.cell == c).any()))
    d = cast(pd.DataFrame, held[level.isin(shared)]).assign(log_half_life=lambda x: np.log(x.half_life))
    claims = []
    for a, b in PHASE_PAIRS:
        claims.append(
            E.Claim(
                "phase",
                f"phase {a}-{b}",
                f"{names[a]} and {names[b]} differ in the odds of success at equal initial half-life and T",
                "secondary",
                "phase",
                names[a],
                names[b],
                "latches more often at equal initial half-life and T than",
                E.gee(d, "cell", a, b, SUCCESS_THRESHOLD, names=(names[a], names[b]), adjust=("log_half_life",)),
            )
        )
    done = E.finalize(claims)  # the family "phase" lies in this section: the same as the report's
    shown = [c for c in done if c.verdict == "shown"]
    hl = sorted(np.exp(d.log_half_life.unique()))
    if shown:
        curve = "The cells part: " + " ".join(
            f"{c.result.favours} {c.what} {c.b if c.result.favours == c.a else c.a} (odds ratio "
            f"{_favoured_odds(c):.2g} in its favour, Holm p = {c.p_adjusted:.2g})."
            for c in shown
        )
    else:
        curve = (
            "One curve of initial half-life against T is consistent with every cell: no pair of cells differs "
            "at equal half-life and T after Holm adjustment (this is the absence of evidence of a difference at "
            f"{d.seed.nunique()} seeds per point, not proof of none)."
        )
    cross = phase.half_life_at(df)
    crossing = "; ".join(
        f"T = {T}: "
        + ", ".join(
            f"{names[r.cell]} {'never' if not np.isfinite(r.half_life) else f'{r.half_life:.3g}'}"
            for r in cast(Iterable[Any], x.itertuples())
        )
        for T, x in cross.groupby("T")
    )
    s = phase.summary(df)
    bi = cast(pd.DataFrame, s[s.regime == "bistable"])
    bistable = (
        ""
        if bi.empty
        else " The SRNN with U > 1 (bistable: its half-life at the attractors is "
        f"{bi.half_life.min():.2g}-{bi.half_life.max():.2g} steps) latches in "
        + ", ".join(f"{int(x.successes.sum())}/{int(x.members.sum())} members at T = {T}" for T, x in bi.groupby("T"))
        + ": it holds the sign by its attractors, not by a long half-life, so it lies off any curve of "
        "half-life against T."
    )
    gates = ", ".join(NAMES.get(p, str(p)) for p in sorted(df.preset.unique())) if "preset" in df else "?"
    notes = (
        f"{curve} Gates: {gates}. Shared half-lives: {', '.join(f'{v:.3g}' for v in hl)} steps. "
        "The initial half-life from "
        f"which on at least half of a cell's members latch, per T: {crossing}.{bistable}"
    )
    wide = s.assign(cell_=s.cell.map(names), k=[f"{a}/{b}" for a, b in zip(s.successes, s.members)]).pivot_table(
        index=["cell_", "value", "half_life", "regime"], columns="T", values="k", aggfunc="first", sort=False
    )
    wide.columns = [f"T = {T}" for T in wide.columns]
    wide = wide.reset_index().rename(columns={"cell_": "cell", "half_life": "initial half-life"})
    return Finding(
        "7. What decides latching (set by hand): success against the initial half-life",
        PHASE,
        claims,
        [
            (
                "success against the initial half-life, one panel per T, all cells on one axis (phase.png; "
                "open markers: SRNN with U > 1, bistable; ∞: r = 1)",
                _png(phase.figure(df)),
            )
        ],
        [("successes / members per configured value and T", wide)],
        notes,
        declared="phase srnn-lstm",
    )


# ----------------------------------------------------------------------------- capacity

CAPACITY_TITLE = "Capacity against trainability (background: can the cell represent the task?)"
CAPACITY_NAMES: dict[Hashable, str] = {"latch": "latch", "bit_relay": "bit relay", "gru": "GRU", "janet": "JANET"}


def capacity(lengths=(20, 100, 200), presets=("keras2", "keras3"), n: int = 1000, seed: int = 20_000) -> Finding:
    """Whether each cell *can* solve each task, apart from whether training finds it:
    ``analysis.solutions``' hand-set parameters (or its argument that none exist) for latch
    with one unit and bit relay with one and eight units, each construction's accuracy on
    fresh data at ``lengths`` through the project's forward pass. Background, no test."""
    from latchlab.analysis import solutions

    t = solutions.table(lengths, presets, n, seed)
    acc = [f"acc_T{T}" for T in lengths]
    built = t[t.solution == "constructed"]
    none = cast(pd.DataFrame, t[t.solution != "constructed"]).drop_duplicates(subset=["cell", "task", "units"])
    name = lambda c: CAPACITY_NAMES.get(c, NAMES.get(c, str(c)))  # noqa: E731
    per_case = []
    for key, d in t.groupby(["task", "units"], sort=False):
        task, units = cast(tuple, key)
        has = [name(c) for c in dict.fromkeys(d[d.solution == "constructed"].cell)]
        per_case.append(
            f"{name(task)} with {units} unit{'s' if units > 1 else ''}: "
            + (", ".join(has) if has else "no cell")
            + (f" (worst accuracy {d[acc].min().min():.3f})" if has else "")
        )
    notes = (
        "Hand-set weights, evaluated on fresh data at T = "
        + ", ".join(map(str, lengths))
        + f" ({n} sequences per length, gate presets {', '.join(presets)}), solve "
        + "; ".join(per_case)
        + ". "
        + " ".join(
            f"No one-unit {name(c)} solves {name(k)}: {why}." for c, k, why in zip(none.cell, none.task, none.solution)
        )
        + f" Every construction reaches at least {built[acc].min().min():.3f}. So where training fails on these "
        "tasks the cell could represent a solution: the failure is one of finding it (trainability), not of "
        "representing it (capacity), except where no solution exists. This is background, not a test."
    )
    table = t.assign(**{c: t[c].round(4) for c in acc + ["min_acc"]})
    return Finding(CAPACITY_TITLE, "", [], [], [("hand-set solutions: accuracy on fresh data", table)], notes)


# ----------------------------------------------------------------------------- page

_CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
.claim{background:#f6f8fa;border-left:4px solid #3a7;padding:.6em 1em;margin:.4em 0}
.claim.inconclusive{border-color:#c90}.claim.context,.notes{border-left:4px solid #58a;padding:.4em 1em}
.claim.not-estimable{border-color:#999}.tag{font-size:12px;font-weight:bold;text-transform:uppercase;color:#555}
.hypothesis{border:1px dashed #888;padding:.4em 1em;font-size:14px}
.background{background:#fffbea;border:1px solid #e6d98c;padding:.2em 1em;font-size:14px}
.background h3{font-size:14px;margin:.6em 0 .1em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}
img{max-width:100%;border:1px solid #eee}figcaption{font-size:13px;color:#555}
code,pre{background:#f3f3f3;padding:1px 3px;font-size:13px}pre{padding:.6em;overflow-x:auto}"""


def _table_html(caption: str, df: pd.DataFrame) -> str:
    return f"<p><b>{html.escape(caption)}</b></p>" + df.to_html(index=False, escape=True, border=0, na_rep="—")


def _claim_html(c: E.Claim) -> str:
    cls = c.verdict.replace(" ", "-")
    return (
        f"<div class='claim {cls}'><span class='tag'>{html.escape(c.role)} · {html.escape(c.verdict)}</span> "
        f"{html.escape(c.text)}</div>"
    )


def header(scale: str, n_seeds: int, primary: E.Claim) -> list[str]:
    """The report's first lines: the scale, the number of seeds and the primary result."""
    return [
        f"Scale: {scale}; {n_seeds} seeds per cell, length and preset in the seed's experiment.",
        PRIMARY,
        f"Primary result ({primary.verdict}): {primary.text}",
    ]


def page(
    head: list[str], answer: list[str], findings: list[Finding], prov: dict, commands: list[str], seconds: float
) -> str:
    """The report as one HTML string: images are embedded as data URIs (works offline).
    Computed claims sit in ``.claim`` boxes; the background text that explains the tests
    sits in one ``.background`` box, apart from them."""
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>latchlab: why does a one-unit "
        f"LSTM latch worse than a tanh RNN?</title><style>{_CSS}</style></head><body>",
        "<h1>Why does a one-unit LSTM latch worse than a one-unit tanh RNN?</h1>",
        "<div id='head'>" + "".join(f"<p><b>{html.escape(h)}</b></p>" for h in head) + "</div>",
        "<h2>Hypotheses declared before the results</h2><div class='hypothesis'>"
        "<p>The primary hypothesis is stated in the page's first lines, above.</p>"
        + "".join(
            f"<p>{html.escape(f.title)}: {html.escape(f.hypothesis)}</p>"
            for f in findings
            if f.hypothesis and f.hypothesis != PRIMARY
        )
        + f"<p>Success: validation accuracy ≥ {SUCCESS_THRESHOLD:g}. Sections without a declared test are "
        "context (descriptive numbers, no verdict).</p></div>",
        "<h2>Background: what the tests mean (not a result)</h2><div class='background'>"
        + "".join(f"<h3>{html.escape(t)}</h3><p>{html.escape(x)}</p>" for t, x in BACKGROUND)
        + "</div>",
        "<h2>The answer, from the evidence below</h2><div class='claim'>"
        + "".join(f"<p>{html.escape(a)}</p>" for a in answer)
        + "</div>",
    ]
    for f in findings:
        parts.append(
            f"<section class='{f.verdict}'><h2>{html.escape(f.title)} "
            f"<span class='tag'>[{html.escape(f.verdict)}]</span></h2>"
        )
        if f.notes:
            parts.append(f"<div class='notes'><span class='tag'>descriptive</span> {html.escape(f.notes)}</div>")
        parts += [_claim_html(c) for c in f.claims]
        for cap, png in f.figures:
            b64 = base64.b64encode(png).decode()
            parts.append(
                f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{b64}'>"
                f"<figcaption>{html.escape(cap)}</figcaption></figure>"
            )
        for cap, t in f.tables:
            parts.append(_table_html(cap, t))
        parts.append("</section>")
    parts.append("<h2>Reproduce every number</h2><pre>" + html.escape("\n".join(commands)) + "</pre>")
    parts.append(
        "<p><b>Provenance</b> (recorded with the runs in the store):</p><pre>"
        + html.escape(json.dumps(prov, indent=1, default=str))
        + "</pre>"
    )
    parts.append(f"<p>Built in {seconds:.0f} s.</p></body></html>")
    return "\n".join(parts)


def findings_json(head: list[str], scale: str, n_seeds: int, findings: list[Finding], seconds: float) -> dict:
    """``findings.json``: every claim (section, test, statistic, p, adjusted p, effect with
    interval, seeds, members, verdict), each section's verdict and declared test, and the
    background text, kept apart from the claims."""
    return {
        "question": "Why does a one-unit LSTM latch worse than a one-unit tanh RNN?",
        "scale": scale,
        "seeds": n_seeds,
        "alpha": ALPHA,
        "success_threshold": SUCCESS_THRESHOLD,
        "head": head,
        "primary_hypothesis": PRIMARY,
        "claims": [c.to_dict() for f in findings for c in f.claims],
        "sections": [
            {
                "title": f.title,
                "verdict": f.verdict,
                "declared_test": f.declared or None,
                "hypothesis": f.hypothesis or None,
                "descriptive": f.notes or None,
                "tables": [{"caption": c, "rows": json.loads(t.to_json(orient="records"))} for c, t in f.tables],
            }
            for f in findings
        ],
        "background": [{"title": t, "text": x} for t, x in BACKGROUND],
        "seconds": round(seconds, 1),
    }


# ----------------------------------------------------------------------------- driver


def _override(cfg, T=None, **fields):
    d = cfg.to_dict()
    if T is not None:
        d["grid"] = {**d["grid"], "T": list(T)}
    d.update(fields)
    from latchlab import config

    return config.from_dict(d)


def answer(findings: dict[str, Finding]) -> list[str]:
    """The page's summary, assembled from the findings' computed claims (each section
    below has the evidence): whether the LSTM latches worse, why, and what changes it."""
    cells, bug = findings["cells"], findings["bug"]
    out = ["Does it? " + cells.claim]
    if "diagnostics" in findings:
        out.append("Why? " + findings["diagnostics"].claim)
    abl = findings["ablations"]
    shown = [c.text for c in abl.claims if c.verdict == "shown" and c.key != "best variant"]
    out.append(
        "What changes it? "
        + (" ".join(shown) if shown else "No ablation differs from its family's Keras default after Holm adjustment.")
        + " "
        + abl.claim
    )
    if "initial" in findings and "phase" in findings:
        out.append(
            "What decides who latches? Observed, per cell: "
            + findings["initial"].notes.split("per cell: ", 1)[-1]
            + " Set by hand: "
            + findings["phase"].notes.split(" Gates: ")[0]
        )
    out.append("And the seed's accuracies of 0? " + bug.notes.split(". ")[-1])
    return out


def seed_configs(scale: str, protocol: dict | None = None) -> list:
    """The seed's experiment at ``scale`` for both splits and both gate presets."""
    out = []
    for preset in PRESETS:
        cfg = reproduce.seed_config(scale, ("stratified", "tail"), preset)
        out.append(_override(cfg, **protocol) if protocol else cfg)
    return out


def explain(
    scale: str = DEFAULT_SCALE,
    out: Path = Path("results-explain"),
    store_path: Path | None = None,
    run=None,
    protocol: dict | None = None,
    landscape: dict | None = None,
    capacity_args: dict | None = None,
) -> Path:
    """Run (or reuse from ``store_path``) what the report needs and write ``out/report.html``
    and ``out/findings.json``.

    Args:
        scale: ``full`` (default, powered: the seed's full grid, both splits, both gate
            presets, 30 seeds; ablations and the phase diagram at 30 seeds per point) or
            ``quick`` (smoke runs). Writes ``diagnostics.csv`` and ``initial.csv`` (what each
            seed starts with) beside the report.
        store_path: results store (default ``out/store.sqlite``); stored members are reused.
        run: ``(configs, store_path) -> DataFrame`` that runs sweeps (the CLI passes its
            progress-bar runner); default ``run.run`` without progress.
        protocol: overrides of the sweeps' settings (``T``, ``repeats``, ``N``, ``epochs``; tests).
        landscape: overrides of ``landscapes``' arguments (tests).
        capacity_args: overrides of ``capacity``'s arguments (tests).
    """
    from latchlab.store import Store

    check_scale(reproduce.SCALES, scale)
    t0 = time.perf_counter()
    out = Path(out)  # made once there is something to write: a refused store leaves no directory
    store_path = Path(store_path) if store_path is not None else out / "store.sqlite"
    protocol = dict(protocol or {})
    seed_cfgs = seed_configs(scale, protocol)
    parts = ablations.configs(scale, **protocol)
    phase_cfgs = phase.configs(scale, **protocol)
    if run is None:

        def default_run(cfgs, path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with Store(path) as st:
                return runner.run(cfgs, st, command=" ".join(["latchlab", *sys.argv[1:]]))

        run = default_run
    run(seed_cfgs + [c for _, _, c in parts] + phase_cfgs, store_path)
    with Store(store_path, create=False) as st:
        rows, sweeps = st.epochs(), st.sweeps()
    prov = sweeps.iloc[-1].to_dict() if len(sweeps) else provenance.collect()
    seed_ids = {m.id for c in seed_cfgs for m in c.members()}
    final = plot.final(rows[rows.member_id.isin(seed_ids)].assign(variant=lambda d: d.cell))
    abl = ablations.label(rows, parts)
    run0 = seed_cfgs[0].base
    from latchlab.analysis import saturation

    dead = {(fam, var): saturation.fraction_saturated(cfg.members(), n=32) for fam, var, cfg in parts}
    findings = {
        "bug": seed_bug(final, run0.N, run0.val_frac),
        "cells": cells_compared(final),
        "ablations": ablation_effects(abl, dead),
    }
    strat = cast(pd.DataFrame, final[final.split == "stratified"])
    Ts = sorted(strat["T"].unique())
    T_diag = 20 if 20 in Ts else Ts[len(Ts) // 2]
    with Store(store_path, create=False) as st:
        diag = diagnose_members(st, final, T_diag)
        start = initial_members(st, final, T_diag)
    findings["diagnostics"] = mechanisms(diag)
    out.mkdir(parents=True, exist_ok=True)
    diag.to_csv(out / "diagnostics.csv", index=False)
    start.to_csv(out / "initial.csv", index=False)
    h = E.horizons(cast(pd.DataFrame, strat[strat.preset == PRIMARY_PRESET]), by=("cell",))
    findings["landscapes"] = landscapes(h, **(landscape or {}))
    findings["initial"] = what_decides(final, start)
    findings["phase"] = phase_effects(phase.label(rows, phase_cfgs))
    findings["capacity"] = capacity(**(capacity_args or {}))
    keys = ("bug", "cells", "diagnostics", "ablations", "landscapes", "initial", "phase", "capacity")
    order = _finalize_sections([findings[k] for k in keys])
    primary = next(c for f in order for c in f.claims if c.role == "primary")
    n_seeds = seed_cfgs[0].repeats
    head = header(scale, n_seeds, primary)
    commands = [
        f"latchlab explain --scale {scale} --out {out}",
        f"latchlab reproduce seed --scale {scale} --out results   # sections 1-2 (one gate preset per run)",
        f"latchlab reproduce ablations --scale {scale} --out results-ablations   # section 4",
        "latchlab reproduce pascanu2013 --out results-pascanu   # section 5",
        f"latchlab reproduce phase --scale {scale} --out results-phase   # section 7 (phase.png)",
        f"latchlab export {store_path} --csv rows.csv   # every number, one row per member per epoch",
    ]
    seconds = time.perf_counter() - t0
    text = page(head, answer(findings), order, prov, commands, seconds)
    (out / "findings.json").write_text(json.dumps(findings_json(head, scale, n_seeds, order, seconds), indent=1))
    path = out / "report.html"
    path.write_text(text)
    return path
