"""``latchlab explain``: answer the question with evidence, as one self-contained HTML page.

The page runs (or reuses from a store) the seed's experiment with both splits, the
ablations, diagnostics of trained members and loss landscapes, and states each conclusion
next to the figure and table it comes from. Every sentence that reports a result is
computed from the measured data here (counts, exact tests, intervals): nothing about the
outcome is written in advance, and a comparison whose test does not reach the stated level
is reported as inconclusive.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from latchlab import provenance
from latchlab.experiments import ablations
from latchlab.analysis import plot
from latchlab.experiments import seed as reproduce
from latchlab.engine import run as runner
from latchlab.errors import ConfigError
from latchlab.analysis.stats import wilson

ALPHA = 0.05
SCALES = ("quick", "full")


@dataclass
class Finding:
    """One claim with its evidence: a figure (PNG bytes), tables and the numbers behind it."""

    title: str
    claim: str
    figures: list = field(default_factory=list)  # (caption, png bytes)
    tables: list = field(default_factory=list)  # (caption, DataFrame)
    verdict: str = "shown"  # shown | inconclusive | context


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plot.plt.close(fig)
    return buf.getvalue()


def _pct(k, n) -> str:
    return f"{k}/{n} ({100.0 * k / n:.0f} %)" if n else "0/0"


def fisher(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher exact test of equal success rates ``k1/n1`` and ``k2/n2``."""
    return float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


def _p(p: float) -> str:
    return f"p = {p:.2g}" if p >= 1e-4 else "p < 1e-4"


# ----------------------------------------------------------------------------- findings

def seed_bug(final: pd.DataFrame, N: int, val_frac: float) -> Finding:
    """The seed's ``tail`` split against the stratified one."""
    import jax

    from latchlab.core import tasks

    y = np.asarray(tasks.latch(jax.random.PRNGKey(0), N, 2)[1])
    tr, va = tasks.split_indices(jax.random.PRNGKey(1), y, val_frac, "tail")
    pos_val, pos_tr = float(y[np.asarray(va)].mean()), float(y[np.asarray(tr)].mean())
    g = final.groupby(["split", "cell"]).val_acc
    t = pd.DataFrame({"members": g.size(), "mean val acc": g.mean().round(3),
                      "val acc < 0.05": g.apply(lambda a: int((a < 0.05).sum()))}).reset_index()
    tail, strat = final[final.split == "tail"], final[final.split == "stratified"]
    claim = (f"With the seed's split (Keras' validation_split on data ordered positives first) the "
             f"validation set holds {100 * pos_val:.0f} % positives and the training set "
             f"{100 * pos_tr:.1f} %. Under it, mean validation accuracy is {tail.val_acc.mean():.3f} "
             f"and {int((tail.val_acc < 0.05).sum())} of {len(tail)} members score below 0.05; with a "
             f"stratified split the same members reach {strat.val_acc.mean():.3f}. A network that has "
             f"not latched predicts the training majority (positive) and scores near 0 on an "
             f"all-negative validation set: the seed's zeros measure the split, not the cells.")
    fig = plot.accuracy_vs_T(final)
    return Finding("1. The seed's bug and its effect", claim, [("final validation accuracy, both splits", _png(fig))],
                   [("per split and cell", t)])


def cells_compared(final: pd.DataFrame, a: str = "srnn", b: str = "lstm") -> Finding:
    """Success of two cells under the fixed split: pooled over T (Fisher) and per T."""
    s = final[final.split == "stratified"]
    ka, na = int((s[s.cell == a].val_acc >= plot.SUCCESS).sum()), int((s.cell == a).sum())
    kb, nb = int((s[s.cell == b].val_acc >= plot.SUCCESS).sum()), int((s.cell == b).sum())
    p = fisher(ka, na, kb, nb)
    per_T = plot.summary(s, by=("cell", "T"))
    rows = []
    for T, d in per_T.groupby("T"):
        r = {"T": T}
        for c in (a, b):
            x = d[d.cell == c]
            if len(x):
                r[c] = f"{int(x.successes.iloc[0])}/{int(x.members.iloc[0])} [{x.wilson_low.iloc[0]:.2f}, {x.wilson_high.iloc[0]:.2f}]"
        if len(d) == 2:
            ka_t, kb_t = (int(d[d.cell == c].successes.iloc[0]) for c in (a, b))
            na_t, nb_t = (int(d[d.cell == c].members.iloc[0]) for c in (a, b))
            r["Fisher p"] = f"{fisher(ka_t, na_t, kb_t, nb_t):.2g}"
        rows.append(r)
    if p < ALPHA:
        better, worse = (a, b) if ka / na > kb / nb else (b, a)
        claim = (f"Under the fixed split the one-unit {better.upper()} latches more often than the "
                 f"{worse.upper()}: {a.upper()} {_pct(ka, na)} against {b.upper()} {_pct(kb, nb)} of members "
                 f"reach validation accuracy ≥ {plot.SUCCESS:g}, pooled over lengths (Fisher exact test, {_p(p)}).")
        verdict = "shown"
    else:
        claim = (f"Under the fixed split the two cells' success rates do not differ at the {ALPHA:g} level: "
                 f"{a.upper()} {_pct(ka, na)}, {b.upper()} {_pct(kb, nb)} (Fisher exact test, {_p(p)}). "
                 f"At this scale the comparison is inconclusive.")
        verdict = "inconclusive"
    fig = plot.success_vs_T(s)
    return Finding(f"2. Does the one-unit {b.upper()} latch worse than the {a.upper()}?", claim,
                   [("success frequency against T (stratified split), Wilson 95 % bands", _png(fig))],
                   [("successes per length [Wilson 95 %]", pd.DataFrame(rows))], verdict)


def _mw(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    return float(stats.mannwhitneyu(a, b).pvalue) if len(a) and len(b) else float("nan")


def diagnose_members(store, final: pd.DataFrame, T: int, N: int = 128) -> pd.DataFrame:
    """``diagnose.summary`` rows at the first and last epoch of every stratified-split
    member at length ``T``, with the member's cell and outcome."""
    from latchlab.analysis import diagnose as D

    rows = []
    sel = final[(final.split == "stratified") & (final["T"] == T)]
    for r in sel.itertuples():
        s = D.member(store, r.member_id, N=N, epochs=[0, int(r.epochs)]).summary
        for when, row in zip(("init", "final"), s.itertuples()):
            rows.append({"member_id": r.member_id, "cell": r.cell, "seed": r.seed, "T": T, "when": when,
                         "success": bool(r.val_acc >= plot.SUCCESS), **{k: getattr(row, k) for k in (
                             "retention_mean", "half_life", "grad_ratio_median", "bistable", "n_stable",
                             "recurrent", "bias_retention")}})
    return pd.DataFrame(rows)


def mechanisms(d: pd.DataFrame) -> Finding:
    """What the diagnostics say: memory at initialisation, the gradient reaching step 1,
    and whether the members that latched built a bistable map (Bengio 1994 Fig. 1)."""
    T = int(d["T"].iloc[0])
    init, fin = d[d.when == "init"], d[d.when == "final"]
    li, si = init[init.cell == "lstm"], init[init.cell == "srnn"]
    p_grad = _mw(li.grad_ratio_median, si.grad_ratio_median)
    sentences = [f"At T = {T}, at initialisation, the LSTM's forget gate keeps a median "
                 f"{li.retention_mean.median():.2f} of its cell state per step (half-life "
                 f"{li.half_life.median():.1f} steps), and the median ratio ‖dL/dh_1‖ / ‖dL/dh_T‖ is "
                 f"{li.grad_ratio_median.median():.1e} for the LSTM against {si.grad_ratio_median.median():.1e} "
                 f"for the SRNN (Mann-Whitney {_p(p_grad)})."]
    verdicts = [p_grad < ALPHA]
    rows = []
    for cell in ("srnn", "lstm"):
        f = fin[fin.cell == cell]
        if not len(f):
            continue
        a, b = int((f.success & f.bistable).sum()), int((f.success & ~f.bistable).sum())
        c, e = int((~f.success & f.bistable).sum()), int((~f.success & ~f.bistable).sum())
        p = float(stats.fisher_exact([[a, b], [c, e]]).pvalue)
        rows.append({"cell": cell, "succeeded: bistable": f"{a}/{a + b}", "failed: bistable": f"{c}/{c + e}",
                     "Fisher p": f"{p:.2g}"})
        if p < ALPHA:
            sentences.append(f"After training, {cell.upper()} members that latched are bistable (two stable fixed "
                             f"points of the input-free map) in {a} of {a + b} cases, those that failed in {c} of "
                             f"{c + e} (Fisher {_p(p)}): the bit is held by which attractor the state sits in.")
            verdicts.append(True)
        else:
            sentences.append(f"For the {cell.upper()}, bistability after training and success are not linked at the "
                             f"{ALPHA:g} level ({a}/{a + b} successes vs {c}/{c + e} failures bistable, {_p(p)}): "
                             f"inconclusive here.")
            verdicts.append(False)
    lf = fin[fin.cell == "lstm"]
    if lf.success.any() and (~lf.success).any():
        p = _mw(lf[lf.success].retention_mean, lf[~lf.success].retention_mean)
        verdicts.append(p < ALPHA)
        sentences.append(f"The LSTMs that latched end with mean forget gate "
                         f"{lf[lf.success].retention_mean.median():.2f} (median), those that failed "
                         f"{lf[~lf.success].retention_mean.median():.2f} (Mann-Whitney {_p(p)}).")
    g = d.groupby(["cell", "success", "when"])
    t = pd.DataFrame({"members": g.size(), "forget gate / contraction (median)": g.retention_mean.median().round(3),
                      "half-life, steps (median)": g.half_life.median().round(2),
                      "‖dL/dh_1‖/‖dL/dh_T‖ (median)": g.grad_ratio_median.median().map(lambda v: f"{v:.1e}"),
                      "bistable": g.bistable.mean().round(2)}).reset_index()
    fig, axes = plot.plt.subplots(1, 2, figsize=(8.4, 3.2))
    for k, (cell, colour) in enumerate((("srnn", "C0"), ("lstm", "C3"))):
        for when, marker in (("init", "o"), ("final", "s")):
            x = d[(d.cell == cell) & (d.when == when)]
            jitter = 0.08 * (np.arange(len(x)) % 5 - 2)
            axes[0].scatter(k * 2 + (when == "final") + jitter, np.log10(np.maximum(x.grad_ratio_median, 1e-30)),
                            c=np.where(x.success, colour, "0.6"), marker=marker, s=14)
    axes[0].set_xticks([0, 1, 2, 3], ["SRNN\ninit", "SRNN\ntrained", "LSTM\ninit", "LSTM\ntrained"])
    axes[0].set_ylabel("log10 ‖dL/dh_1‖ / ‖dL/dh_T‖")
    axes[0].set_title(f"gradient reaching step 1 (T = {T}); colour: latched, grey: failed", fontsize=8)
    for k, cell in enumerate(("srnn", "lstm")):
        f = fin[fin.cell == cell]
        for j, ok in enumerate((True, False)):
            x = f[f.success == ok]
            axes[1].bar(k * 3 + j, x.bistable.mean() if len(x) else 0, color=("C0", "C3")[k], alpha=1.0 if ok else 0.4)
            axes[1].text(k * 3 + j, 0.02, f"n={len(x)}", ha="center", fontsize=7)
    axes[1].set_xticks([0, 1, 3, 4], ["SRNN\nlatched", "SRNN\nfailed", "LSTM\nlatched", "LSTM\nfailed"])
    axes[1].set_ylabel("fraction bistable after training")
    axes[1].set_ylim(0, 1.05)
    fig.tight_layout()
    return Finding("3. Why: memory, gradients and attractors", " ".join(sentences),
                   [("per member: the gradient ratio at initialisation and after training; bistable maps", _png(fig))],
                   [("diagnostics by cell and outcome (first and last epoch)", t),
                    ("success against bistability after training", pd.DataFrame(rows))],
                   "shown" if any(verdicts) else "inconclusive")


def ablation_effects(df: pd.DataFrame) -> Finding:
    """Each ablation against its family's Keras default (pooled over T, Fisher)."""
    base = {"SRNN, recurrent weight at init": "U0 = orthogonal (±1, Keras)",
            ablations._HARD: "b_f = 1 (Keras)", ablations._SOFT: "b_f = 1 (Keras)",
            "other gated cells": None}
    counts = (df.assign(ok=df.val_acc >= plot.SUCCESS).groupby(["family", "variant"], sort=False)
              .ok.agg(["sum", "count"]).astype(int))  # successes and members per variant
    rows, sentences = [], []
    for (fam, var), (k, n) in counts.iterrows():
        lo, hi = wilson(k, n)
        r = {"family": fam, "variant": var, "success": f"{k}/{n}", "Wilson 95 %": f"[{float(lo):.2f}, {float(hi):.2f}]",
             "mean val acc": round(float(df[(df.family == fam) & (df.variant == var)].val_acc.mean()), 3)}
        ref = base.get(fam)
        if ref is not None and var != ref:
            kr, nr = counts.loc[(fam, ref)]
            p = fisher(k, n, kr, nr)
            r["vs default: Fisher p"] = f"{p:.2g}"
            if p < ALPHA:
                sentences.append(f"{fam}: {var} {'raises' if k / n > kr / nr else 'lowers'} success from "
                                 f"{_pct(kr, nr)} ({ref}) to {_pct(k, n)} ({_p(p)}).")
        rows.append(r)
    best = (counts["sum"] / counts["count"]).idxmax()
    claim = (" ".join(sentences) if sentences else
             f"No ablation changes success against its family's Keras default at the {ALPHA:g} level: inconclusive at this scale.")
    claim += (f" The most successful variant overall is “{best[1]}” ({best[0]}). Successes are pooled over "
              f"T = {', '.join(map(str, sorted(df['T'].unique())))}; {counts['count'].iloc[0]} "
              f"members per variant.")
    fig = ablations.figure(df)
    return Finding("4. Ablations: what changes the outcome", claim,
                   [("success against T per variant, Wilson 95 % bands", _png(fig))],
                   [("success pooled over lengths, against the family's Keras default", pd.DataFrame(rows))],
                   "shown" if sentences else "inconclusive")


def landscapes(T_list=(5, 20, 50), N: int = 256, points: int = 31) -> Finding:
    """Loss surfaces around the Keras initialisation of a one-unit SRNN and LSTM (keras2),
    and Pascanu 2013's cliff; the fraction of each surface on the chance plateau."""
    from latchlab.analysis import landscape as L
    from latchlab.analysis import landscape_plot as LP

    rows, figs = [], []
    for cell, names, span in (("srnn", ("recurrent", "bias"), 2.0), ("lstm", ("recurrent_f", "bias_f"), 4.0)):
        c = L.initial_centre(cell=cell, preset="keras2", seed=0)
        df = L.surface(c.model, c.params, names, span, "latch", list(T_list), points=points, N=N)
        for T, d in df.groupby("T"):
            plateau = float((np.abs(d.loss - math.log(2)) < 0.01 * math.log(2)).mean())
            rows.append({"cell": cell, "T": T, "x": names[0], "y": names[1], "min loss": round(float(d.loss.min()), 4),
                         "loss at init": round(float(L.center_rows(d).loss.iloc[0]), 4) if len(L.center_rows(d)) else np.nan,
                         "fraction on chance plateau (|L - ln 2| < 1 %)": round(plateau, 3)})
        figs.append((f"{cell.upper()} (Keras 2 gates, Keras init, seed 0): loss over ({names[0]}, {names[1]})",
                     _png(LP.surface_figure(df))))
    grid = L.pascanu(); paths = L.pascanu_paths()
    figs.append(("Pascanu et al. 2013, Fig. 6: x_t = w σ(x_{t-1}) + b, loss (σ(x_T) - 0.7)², "
                 "gradient descent with and without clipping", _png(LP.pascanu_figure(grid, paths))))
    t = pd.DataFrame(rows)
    by = t.groupby("cell")["fraction on chance plateau (|L - ln 2| < 1 %)"].mean()
    claim = (f"Around their Keras initialisations, {100 * by.get('lstm', np.nan):.0f} % of the LSTM's "
             f"(recurrent_f, bias_f) surface and {100 * by.get('srnn', np.nan):.0f} % of the SRNN's "
             f"(recurrent, bias) surface lie on the chance plateau (loss within 1 % of ln 2), averaged over "
             f"T = {', '.join(map(str, T_list))}. On a plateau the gradient carries no information about the "
             f"start of the sequence; Pascanu's cliff shows the other failure: as T grows the surface "
             f"becomes flat almost everywhere and a wall where the map's fixed points change.")
    return Finding("5. Loss landscapes", claim, figs, [("plateau fraction per cell and length", t)], "context")


# ----------------------------------------------------------------------------- page

_CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
.claim{background:#f6f8fa;border-left:4px solid #3a7;padding:.6em 1em}
.inconclusive .claim{border-color:#c90}.context .claim{border-color:#58a}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}
img{max-width:100%;border:1px solid #eee}figcaption{font-size:13px;color:#555}
code,pre{background:#f3f3f3;padding:1px 3px;font-size:13px}pre{padding:.6em;overflow-x:auto}"""


def _table_html(caption: str, df: pd.DataFrame) -> str:
    return f"<p><b>{html.escape(caption)}</b></p>" + df.to_html(index=False, escape=True, border=0, na_rep="—")


def page(answer: list[str], findings: list[Finding], prov: dict, commands: list[str], seconds: float) -> str:
    """The report as one HTML string: images are embedded as data URIs (works offline)."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>latchlab: why does a one-unit "
             f"LSTM latch worse than a tanh RNN?</title><style>{_CSS}</style></head><body>",
             "<h1>Why does a one-unit LSTM latch worse than a one-unit tanh RNN?</h1>",
             "<p>Every statement in a box below is computed from the runs on this page by "
             "<code>latchlab explain</code>; the tests (Fisher exact, Wilson 95 % intervals) and the success "
             f"threshold (validation accuracy ≥ {plot.SUCCESS:g}) are fixed in advance, and a comparison that "
             f"does not reach p &lt; {ALPHA:g} is labelled inconclusive.</p>",
             "<h2>The answer, from the evidence below</h2><div class='claim'>"
             + "".join(f"<p>{html.escape(a)}</p>" for a in answer) + "</div>"]
    for f in findings:
        parts.append(f"<section class='{f.verdict}'><h2>{html.escape(f.title)}</h2>"
                     f"<div class='claim'>{html.escape(f.claim)}</div>")
        for cap, png in f.figures:
            b64 = base64.b64encode(png).decode()
            parts.append(f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{html.escape(cap)}</figcaption></figure>")
        for cap, t in f.tables:
            parts.append(_table_html(cap, t))
        parts.append("</section>")
    parts.append("<h2>Reproduce every number</h2><pre>" + html.escape("\n".join(commands)) + "</pre>")
    parts.append("<p><b>Provenance</b> (recorded with the runs in the store):</p><pre>"
                 + html.escape(json.dumps(prov, indent=1, default=str)) + "</pre>")
    parts.append(f"<p>Built in {seconds:.0f} s.</p></body></html>")
    return "\n".join(parts)


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
    below has the evidence): whether the LSTM latches worse, why, and what fixes it."""
    cells, bug = findings["cells"], findings["bug"]
    out = ["Does it? " + cells.claim]
    if "diagnostics" in findings:
        out.append("Why? " + findings["diagnostics"].claim)
    out.append("What changes it? " + findings["ablations"].claim)
    out.append("And the seed's accuracies of 0? " + bug.claim.split(". ")[-1])
    return out


def explain(scale: str, out: Path, store_path: Path | None = None, run=None, protocol: dict | None = None,
            landscape: dict | None = None) -> Path:
    """Run (or reuse from ``store_path``) what the report needs and write ``out/report.html``.

    Args:
        scale: ``quick`` or ``full`` (the seed's grid and the ablations at that scale).
        store_path: results store (default ``out/store.sqlite``); stored members are reused.
        run: ``(configs, store_path) -> DataFrame`` that runs sweeps (the CLI passes its
            progress-bar runner); default ``run.run`` without progress.
        protocol: overrides of the sweeps' settings (``T``, ``repeats``, ``N``, ``epochs``; tests).
        landscape: overrides of ``landscapes``' arguments (tests).
    """
    from latchlab.store import Store

    if scale not in SCALES:
        raise ConfigError("scale", f"unknown scale {scale!r}", SCALES)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store_path = Path(store_path) if store_path is not None else out / "store.sqlite"
    protocol = dict(protocol or {})
    seed_cfg = reproduce.seed_config(scale, ("stratified", "tail"), "keras2")
    if protocol:
        seed_cfg = _override(seed_cfg, **protocol)
    parts = ablations.configs(scale, **protocol)
    if run is None:
        def run(cfgs, path):
            with Store(path) as st:
                return runner.run(cfgs, st, command=" ".join(["latchlab", *sys.argv[1:]]))
    run([seed_cfg] + [c for _, _, c in parts], store_path)
    with Store(store_path, create=False) as st:
        rows, sweeps = st.epochs(), st.sweeps()
    prov = sweeps.iloc[-1].to_dict() if len(sweeps) else provenance.collect()
    seed_ids = {m.id for m in seed_cfg.members()}
    final = plot.final(rows[rows.member_id.isin(seed_ids)].assign(variant=lambda d: d.cell))
    abl = ablations.label(rows, parts)
    run0 = seed_cfg.base
    findings = {"bug": seed_bug(final, run0.N, run0.val_frac), "cells": cells_compared(final),
                "ablations": ablation_effects(abl)}
    strat = final[final.split == "stratified"]
    Ts = sorted(strat["T"].unique())
    T_diag = 20 if 20 in Ts else Ts[len(Ts) // 2]
    with Store(store_path, create=False) as st:
        diag = diagnose_members(st, final, T_diag)
    findings["diagnostics"] = mechanisms(diag)
    diag.to_csv(out / "diagnostics.csv", index=False)
    findings["landscapes"] = landscapes(**(landscape or {}))
    commands = [f"latchlab explain --scale {scale} --out {out}",
                f"latchlab reproduce seed --scale {scale} --out results   # section 1-2",
                f"latchlab reproduce ablations --scale {scale} --out results-ablations   # section 4",
                "latchlab reproduce pascanu2013 --out results-pascanu   # section 5",
                f"latchlab export {store_path} --csv rows.csv   # every number, one row per member per epoch"]
    order = [findings[k] for k in ("bug", "cells", "diagnostics", "ablations", "landscapes") if k in findings]
    text = page(answer(findings), order, prov, commands, time.perf_counter() - t0)
    path = out / "report.html"
    path.write_text(text)
    return path
