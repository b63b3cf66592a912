"""Reference tests for ``latchlab.analysis.evidence``: the seed is the unit.

* A frame whose seeds' outcomes are copied across 25 lengths gives the per-seed tests the
  p-value of the seeds at one length (a test pooling members over T would give < 1e-10).
* Log-rank equals scipy's and a hand-written log-rank; Holm equals statsmodels' and the
  textbook step-down; the GEE equals statsmodels' formula interface on the same frame; the
  sign test equals scipy's binomial test on hand counts.
* Claims flip with the data and are inconclusive without an effect.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from latchlab.analysis import evidence as E

GRID = [2, 5, 10, 20, 50, 100]


def _nested(latent: dict[str, list[float]], grid=GRID) -> pd.DataFrame:
    """Member rows: seed ``s`` of cell ``c`` latches at every ``T <= latent[c][s]``."""
    rows = []
    for cell, hs in latent.items():
        for s, h in enumerate(hs):
            for T in grid:
                rows.append({"cell": cell, "seed": s, "T": T, "val_acc": 1.0 if T <= h else 0.5})
    return pd.DataFrame(rows)


def _latent(rng, n, scale):
    return list(rng.exponential(scale, n))


# ----------------------------------------------------------------------------- horizons


def test_horizon_definition_by_hand():
    rows = []
    outcomes = {0: [1, 1, 1, 1, 1, 1], 1: [0, 1, 1, 1, 1, 1], 2: [1, 1, 0, 1, 0, 0], 3: [1, 1, 1, 1, 1, 0]}
    for s, ok in outcomes.items():
        for T, o in zip(GRID, ok):
            rows.append({"cell": "x", "seed": s, "T": T, "val_acc": 0.995 if o else 0.98})
    rows.append(dict(rows[0]))  # a repeated length (the seed's 30) counts once
    h = E.horizons(pd.DataFrame(rows)).set_index("seed")
    assert h.horizon.tolist() == [100, 0, 5, 50]
    assert h.censored.tolist() == [True, False, False, False]
    assert h.horizon_last.tolist() == [100, 100, 20, 50]
    assert h.nested.tolist() == [True, False, False, True]
    assert h.latched.tolist() == [6, 5, 3, 5] and (h.T_max == 100).all()


def test_horizons_refuse_an_incomplete_grid_and_conflicting_repeats():
    d = _nested({"x": [10, 20]})
    with pytest.raises(ValueError, match="lacks lengths"):
        E.horizons(d.iloc[1:])
    bad = pd.concat([d, d.iloc[[0]].assign(val_acc=0.1)])
    with pytest.raises(ValueError, match="different outcomes"):
        E.horizons(bad)


# ----------------------------------------------------------------------------- the unit is the seed


def test_outcomes_copied_across_lengths_count_once():
    """30 seeds per cell, each seed's outcome copied across 25 lengths."""
    grid = list(range(10, 260, 10))
    ok = {"srnn": [1] * 20 + [0] * 10, "lstm": [1] * 9 + [0] * 21}
    latent = {c: [1e9 if o else 0 for o in v] for c, v in ok.items()}
    many, one = _nested(latent, grid), _nested(latent, grid[:1])
    hm = {c: E.horizons(many[many.cell == c]) for c in ok}
    h1 = {c: E.horizons(one[one.cell == c]) for c in ok}
    lr_many, lr_one = E.logrank(hm["srnn"], hm["lstm"]), E.logrank(h1["srnn"], h1["lstm"])
    assert lr_many.p == pytest.approx(lr_one.p, rel=1e-12) and lr_many.n_seeds == 30
    st_many, st_one = E.sign_test(hm["srnn"], hm["lstm"]), E.sign_test(h1["srnn"], h1["lstm"])
    assert st_many.p == pytest.approx(st_one.p, rel=1e-12)
    assert 1e-4 < lr_many.p < 0.05  # a real but moderate effect on 30 seeds
    k = {c: int((many[many.cell == c].val_acc >= E.SUCCESS_THRESHOLD).sum()) for c in ok}
    pooled = stats.fisher_exact([[k["srnn"], 750 - k["srnn"]], [k["lstm"], 750 - k["lstm"]]]).pvalue
    assert pooled < 1e-10  # what pooling members over T would claim
    assert lr_many.n_members == 1500


# ----------------------------------------------------------------------------- references


def _logrank_by_hand(ta, ea, tb, eb):
    """The log-rank z of group a: (O_a - E_a) / sqrt(V) over distinct event times."""
    t, e = np.concatenate([ta, tb]), np.concatenate([ea, eb])
    g = np.r_[np.ones(len(ta)), np.zeros(len(tb))]
    o_minus_e = var = 0.0
    for u in np.unique(t[e]):
        at_risk = t >= u
        n, na = at_risk.sum(), (at_risk & (g == 1)).sum()
        d = ((t == u) & e).sum()
        da = ((t == u) & e & (g == 1)).sum()
        o_minus_e += da - d * na / n
        var += d * (na / n) * (1 - na / n) * (n - d) / max(n - 1, 1)
    return o_minus_e / np.sqrt(var)


def test_logrank_equals_scipy_and_the_formula():
    rng = np.random.default_rng(3)
    d = _nested({"a": _latent(rng, 30, 40), "b": _latent(rng, 30, 12)})
    ha, hb = E.horizons(d[d.cell == "a"]), E.horizons(d[d.cell == "b"])
    r = E.logrank(ha, hb, "a", "b")
    want = stats.logrank(
        stats.CensoredData(uncensored=ha.horizon[~ha.censored], right=ha.horizon[ha.censored]),
        stats.CensoredData(uncensored=hb.horizon[~hb.censored], right=hb.horizon[hb.censored]),
    )
    assert r.statistic == pytest.approx(want.statistic, rel=1e-12) and r.p == pytest.approx(want.pvalue, rel=1e-12)
    z = _logrank_by_hand(ha.horizon.to_numpy(), ~ha.censored.to_numpy(), hb.horizon.to_numpy(), ~hb.censored.to_numpy())
    assert r.statistic == pytest.approx(z, rel=1e-9)
    assert r.favours == "a" and r.p < 0.05


def test_sign_test_counts_pairs_and_ignores_double_censoring():
    h = pd.DataFrame(
        {
            "seed": range(8),
            "horizon": [100, 100, 50, 20, 5, 0, 10, 100],
            "censored": [True, True, False, False, False, False, False, True],
            "lengths": 6,
        }
    )
    g = pd.DataFrame(
        {
            "seed": range(8),
            "horizon": [100, 20, 50, 10, 10, 0, 2, 5],
            "censored": [True, False, False, False, False, False, False, False],
            "lengths": 6,
        }
    )
    r = E.sign_test(h, g, "h", "g")
    # pairs: tie (both censored), h, tie, h, g, tie, h, h -> 4 for h, 1 for g
    assert r.summary["seeds where h lasts longer"] == 4 and r.summary["seeds where g lasts longer"] == 1
    assert r.p == pytest.approx(stats.binomtest(4, 5, 0.5).pvalue, rel=1e-12)
    with pytest.raises(ValueError, match="same seeds"):
        E.sign_test(h, g.iloc[1:])


def test_holm_equals_statsmodels_and_the_step_down():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    p = np.r_[rng.uniform(0, 0.1, 7), 0.8, 1e-5]
    got = E.holm(p)
    np.testing.assert_allclose(got, multipletests(p, method="holm")[1], rtol=1e-12)
    order = np.argsort(p)
    step = np.minimum(1, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    want = np.empty_like(p)
    want[order] = step
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with_nan = E.holm(np.r_[p, np.nan])
    assert np.isnan(with_nan[-1]) and np.allclose(with_nan[:-1], got)


def test_gee_equals_statsmodels_formula_fit():
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(1)
    d = _nested({"srnn": _latent(rng, 30, 40), "lstm": _latent(rng, 30, 15)})
    d["val_acc"] = np.where(rng.uniform(size=len(d)) < 0.1, 1.5 - d.val_acc, d.val_acc)  # not only nested
    r = E.gee(d, "cell", "srnn", "lstm")
    frame = d.assign(success=(d.val_acc >= 0.99).astype(float), lstm=(d.cell == "lstm").astype(float))
    fit = smf.gee(
        "success ~ lstm + np.log(T)",
        groups="seed",
        data=frame,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    ).fit()
    beta, se = -fit.params["lstm"], fit.bse["lstm"]  # srnn against lstm
    assert np.log(r.effect.value) == pytest.approx(beta, rel=1e-6)
    assert r.statistic == pytest.approx(beta / se, rel=1e-6)
    assert r.p == pytest.approx(fit.pvalues["lstm"], rel=1e-6)
    assert r.effect.low == pytest.approx(np.exp(beta - 1.959963985 * se), rel=1e-6)
    assert r.n_seeds == 30 and r.n_members == len(d) and r.favours == "srnn"


def test_gee_without_variation_is_not_estimable():
    d = _nested({"srnn": [1e9] * 10, "lstm": [0] * 10})
    r = E.gee(d, "cell", "srnn", "lstm")
    assert np.isnan(r.p) and np.isnan(r.effect.value)
    c = E.finalize([E.Claim("s", "k", "h", "secondary", "f", "srnn", "lstm", "lasts longer than", r)])[0]
    assert c.verdict == "not estimable"


def _quasi_separated() -> pd.DataFrame:
    """Cell a latches at every length but seed 0's longest; cell b at the shortest length
    only, on one seed in three: separated quasi-completely (log T at 50 splits them), which
    statsmodels fits without a warning to coefficients of 10^2 with errors of 10^5."""
    rows = []
    for s in range(30):
        for cell in ("a", "b"):
            for T in (5, 10, 20, 50):
                ok = (cell == "a" and not (T == 50 and s == 0)) or (cell == "b" and T == 5 and s % 3 == 0)
                rows.append({"seed": s, "T": T, "cell": cell, "val_acc": 1.0 if ok else 0.5})
    return pd.DataFrame(rows)


def test_separated_data_are_not_estimable_and_never_crash():
    """A GEE on separated outcomes has no finite estimate: ``gee`` says "not estimable"
    (it raised OverflowError from ``exp`` of a diverged coefficient and aborted the
    report). ``separated`` agrees with an ordinary logistic fit, whose coefficients grow
    without end on separated data and stay put otherwise."""
    import statsmodels.api as sm

    d = _quasi_separated()
    r = E.gee(d, "cell", "a", "b")
    assert np.isnan(r.p) and np.isnan(r.effect.value)
    f = E.gee_frame(d, "cell", "a", "b")
    exog = np.column_stack([np.ones(len(f)), f.is_a, f.log_T])
    assert E.separated(f.success.to_numpy(), exog)
    rng = np.random.default_rng(3)
    ok = _per_seed_frame(rng)
    exog_ok = np.column_stack([np.ones(len(ok)), ok.q, np.log(ok["T"])])
    assert not E.separated((ok.val_acc >= 0.99).to_numpy(), exog_ok)
    complete = np.r_[np.zeros(20), np.ones(20)]
    assert E.separated(complete, np.column_stack([np.ones(40), np.arange(40.0)]))
    # the reference: an ordinary logistic fit's coefficients keep growing with its
    # iteration budget on separated data, and stay put otherwise
    for y, X, diverges in [(f.success.to_numpy(), exog, True), ((ok.val_acc >= 0.99).to_numpy(), exog_ok, False)]:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            glm = sm.GLM(y, X, family=sm.families.Binomial())
            size = [np.abs(glm.fit(maxiter=k, tol=0).params).max() for k in (20, 40)]
        assert (size[1] > size[0] + 1) == diverges, size


def test_wilcoxon_equals_scipy_and_favours_what_its_signed_ranks_favour():
    """p is scipy's signed-rank test on the non-zero paired differences; ``favours`` and the
    effect follow the signed ranks: the Hodges-Lehmann estimate (a Python loop over Walsh
    averages here). Skewed differences whose median is negative while the ranks lean
    positive favoured the wrong group before: the report said the LSTM passes more gradient
    where the test showed the SRNN does."""
    d = np.r_[np.full(16, -0.1) + np.linspace(0, 0.01, 16), np.full(14, 10.0) + np.linspace(0, 1, 14), [0.0, 0.0]]
    xa, xb = pd.Series(d + 3.0), pd.Series(np.full(len(d), 3.0))
    r = E.wilcoxon(xa, xb, "SRNN", "LSTM", "x")
    nz = d[d != 0]
    assert r.p == pytest.approx(stats.wilcoxon(nz).pvalue, rel=1e-12)
    assert stats.wilcoxon(nz, alternative="greater").pvalue < 0.05 < stats.wilcoxon(nz, alternative="less").pvalue
    assert np.median(d) < 0 and r.favours == "SRNN"
    walsh = [(nz[i] + nz[j]) / 2 for i in range(len(nz)) for j in range(i, len(nz))]
    assert r.effect.value == pytest.approx(np.median(walsh), abs=1e-12) and r.effect.value > 0
    assert r.effect.low <= r.effect.value <= r.effect.high
    flipped = E.wilcoxon(xb, xa, "LSTM", "SRNN", "x")
    assert flipped.favours == "SRNN" and flipped.effect.value == pytest.approx(-r.effect.value)
    assert flipped.p == pytest.approx(r.p)
    text = E.finalize([E.Claim("m", "k", "h", "secondary", "f", "SRNN", "LSTM", "passes more than", r)])[0].text
    assert text.startswith("SRNN passes more than LSTM")
    xa[4] = np.nan  # a seed without a value in one group is left out, not an error
    assert E.wilcoxon(xa, xb, "SRNN", "LSTM", "x").n_seeds == len(d) - 1
    with pytest.raises(ValueError, match="same seeds"):
        E.wilcoxon(xa, xb.iloc[1:], "SRNN", "LSTM", "x")


def test_mann_whitney_equals_scipy_and_its_shift_points_its_way():
    """p is scipy's; the effect is the Hodges-Lehmann shift (every ``a_i - b_j``, by a
    Python loop here), which points where U does; the difference in medians (-1 here) did
    not."""
    xa, xb = np.r_[np.zeros(6), np.full(5, 10.0)], np.r_[np.ones(6), np.full(5, -5.0)]
    r = E.mann_whitney(xa, xb, "A", "B", "x")
    assert r.p == pytest.approx(stats.mannwhitneyu(xa, xb).pvalue, rel=1e-12)
    assert np.median(xa) - np.median(xb) < 0 and r.favours == "A"
    assert r.effect.value == np.median([x - y for x in xa for y in xb]) > 0
    assert r.effect.low <= r.effect.value <= r.effect.high
    assert E.mann_whitney(xb, xa, "B", "A", "x").effect.value == -r.effect.value


def test_fisher_equals_scipy_and_keeps_an_infinite_odds_ratios_bound():
    """Every member that latched holds a state and none that failed does: the odds ratio is
    infinite and its exact interval's lower bound is the information; the sentence said
    "not estimable" and ``findings.json`` dropped both."""
    from scipy.stats.contingency import odds_ratio

    r = E.fisher(12, 12, 0, 18, "latched", "failed", "hold a state")
    assert r.p == pytest.approx(stats.fisher_exact([[12, 0], [0, 18]]).pvalue, rel=1e-12)
    low = odds_ratio([[12, 0], [0, 18]]).confidence_interval(0.95).low
    assert np.isinf(r.effect.value) and r.effect.low == pytest.approx(low) and r.favours == "latched"
    c = E.finalize([E.Claim("m", "k", "h", "secondary", "f", "latched", "failed", "holds more than", r)])[0]
    assert f"odds ratio ∞ [{low:.3g}, ∞], 95 % interval" in c.text and c.verdict == "shown"
    effect = c.to_dict()["effect"]
    assert (effect["value"], effect["high"]) == ("inf", "inf") and effect["low"] == pytest.approx(low)
    assert E.Effect("odds ratio", float("nan"), 0.0, float("inf")).text() == "odds ratio: not estimable"


def _per_seed_frame(rng, n=30, grid=GRID):
    """Member rows whose success depends on a per-seed quantity ``q`` and on ``T``."""
    q = rng.normal(0.0, 2.0, n)
    rows = []
    for s in range(n):
        for T in grid:
            p = 1 / (1 + np.exp(-(0.8 * q[s] - 0.7 * np.log(T) + 2.0 + rng.normal(0, 0.5))))
            rows.append({"seed": s, "T": T, "q": q[s], "val_acc": 1.0 if rng.uniform() < p else 0.5})
    return pd.DataFrame(rows)


def test_gee_slope_equals_statsmodels_formula_fit():
    """The observational GEE: success on a standardised per-seed quantity and log T."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    d = _per_seed_frame(np.random.default_rng(3))
    r = E.gee_slope(d, "q", name="retention")
    per_seed = d.drop_duplicates("seed").q
    frame = d.assign(success=(d.val_acc >= 0.99).astype(float), z=(d.q - per_seed.mean()) / per_seed.std(ddof=0))
    fit = smf.gee(
        "success ~ z + np.log(T)",
        groups="seed",
        data=frame,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    ).fit()
    beta, se = fit.params["z"], fit.bse["z"]
    assert np.log(r.effect.value) == pytest.approx(beta, rel=1e-6)
    assert r.statistic == pytest.approx(beta / se, rel=1e-6) and r.p == pytest.approx(fit.pvalues["z"], rel=1e-6)
    assert r.effect.high == pytest.approx(np.exp(beta + 1.959963985 * se), rel=1e-6)
    assert r.favours == "seeds with larger retention" and r.n_seeds == 30 and r.n_members == len(d)
    flipped = E.gee_slope(d.assign(q=-d.q), "q", name="retention")
    assert flipped.favours == "seeds with smaller retention" and flipped.p == pytest.approx(r.p, rel=1e-6)
    constant = E.gee_slope(d.assign(q=1.0), "q")
    assert np.isnan(constant.p) and constant.favours == ""
    with pytest.raises(ValueError, match="one value per seed"):
        E.gee_slope(d.assign(q=np.arange(len(d), dtype=float)), "q")


def test_gee_with_a_covariate_equals_statsmodels():
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(4)
    rows = []
    for s in range(30):
        for cell in ("srnn", "lstm"):
            for hl in (1.0, 3.0, 10.0, 30.0):
                for T in (20, 50, 100):
                    p = 1 / (1 + np.exp(-(1.5 * np.log(hl) - 1.2 * np.log(T) + 2.5 + 0.5 * (cell == "srnn"))))
                    rows.append(
                        {"cell": cell, "seed": s, "T": T, "lhl": np.log(hl), "val_acc": float(rng.uniform() < p)}
                    )
    d = pd.DataFrame(rows)
    r = E.gee(d, "cell", "srnn", "lstm", adjust=("lhl",))
    frame = d.assign(success=(d.val_acc >= 0.99).astype(float), is_srnn=(d.cell == "srnn").astype(float))
    fit = smf.gee(
        "success ~ is_srnn + np.log(T) + lhl",
        groups="seed",
        data=frame,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    ).fit()
    assert np.log(r.effect.value) == pytest.approx(fit.params["is_srnn"], rel=1e-6)
    assert r.p == pytest.approx(fit.pvalues["is_srnn"], rel=1e-6) and r.n_members == len(d) == 720
    assert "+ lhl" in r.test


def test_pick_seeds_takes_the_best_median_and_worst_horizon():
    h = pd.DataFrame(
        {
            "cell": ["a"] * 5 + ["b"] * 4,
            "seed": [0, 1, 2, 3, 4, 0, 1, 2, 3],
            "horizon": [5, 50, 20, 50, 2, 10, 10, 30, 0],
            "censored": [False, False, False, True, False, False, False, True, False],
        }
    )
    p = E.pick_seeds(h).set_index(["cell", "role"]).seed
    # a: sorted 2 (s4), 5 (s0), 20 (s2), 50 (s1), 50+ (s3): a censored 50 outlasts an observed one
    assert (p["a", "best"], p["a", "median"], p["a", "worst"]) == (3, 2, 4)
    # b: sorted 0 (s3), 10 (s0), 10 (s1), 30+ (s2): the lower middle of four, ties to the lower seed
    assert (p["b", "best"], p["b", "median"], p["b", "worst"]) == (2, 0, 3)


def test_spearman_equals_scipy_and_is_nan_for_a_constant():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=20), rng.normal(size=20)
    r = stats.spearmanr(x, y)
    assert E.spearman(x, y) == pytest.approx((r.statistic, r.pvalue), rel=1e-12)
    assert np.isnan(E.spearman(np.ones(20), y)[0])


def test_bootstrap_interval_covers_the_estimate_and_pairs_seeds():
    rng = np.random.default_rng(2)
    d = _nested({"a": _latent(rng, 40, 50), "b": _latent(rng, 40, 10)})
    ha, hb = E.horizons(d[d.cell == "a"]), E.horizons(d[d.cell == "b"])
    e = E.bootstrap_median_difference(ha, hb)
    assert e.low <= e.value <= e.high and e.value == np.median(ha.horizon) - np.median(hb.horizon)
    same = E.bootstrap_median_difference(ha, ha)  # paired: one draw of seeds for both groups
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)
    other = E.bootstrap_median_difference(ha, ha.assign(seed=ha.seed + 100))  # unpaired: other seeds
    assert other.value == 0.0 and other.low < 0 < other.high


# ----------------------------------------------------------------------------- claims flip


def _claims(d):
    ha, hb = E.horizons(d[d.cell == "srnn"]), E.horizons(d[d.cell == "lstm"])

    def claim(key, role, r):
        return E.Claim(
            "cells", key, "SRNN and LSTM differ", role, "cells", "SRNN", "LSTM", "latches to longer lengths than", r
        )

    return E.finalize(
        [
            claim("logrank", "primary", E.logrank(ha, hb, "SRNN", "LSTM")),
            claim("sign", "secondary", E.sign_test(ha, hb, "SRNN", "LSTM")),
            claim("gee", "secondary", E.gee(d, "cell", "srnn", "lstm", names=("SRNN", "LSTM"))),
        ]
    )


@pytest.mark.parametrize(
    "scale_srnn, scale_lstm, verdict, favours",
    [(80, 8, "shown", "SRNN"), (8, 80, "shown", "LSTM"), (20, 20, "inconclusive", None)],
)
def test_claims_flip_with_the_data(scale_srnn, scale_lstm, verdict, favours):
    rng = np.random.default_rng(5)
    latent = _latent(rng, 30, 1.0)
    d = _nested({"srnn": [scale_srnn * x for x in latent], "lstm": [scale_lstm * x for x in latent[::-1]]})
    if verdict == "inconclusive":  # the same horizons, seeds swapped: no effect at all
        d = _nested({"srnn": [20 * x for x in latent], "lstm": [20 * x for x in latent[::-1]]})
    for c in _claims(d):
        assert c.verdict == verdict, (c.key, c.result.p, c.p_adjusted)
        d_ = c.to_dict()
        assert d_["verdict"] == verdict and d_["n_seeds"] == 30
        if verdict == "shown":
            other = "LSTM" if favours == "SRNN" else "SRNN"
            assert c.text.startswith(f"{favours} latches to longer lengths than {other}")
        else:
            assert "inconclusive" in c.text


def test_finalize_holm_adjusts_secondaries_per_family_only():
    def r(p):
        return E.Result("t", 1.0, p, E.Effect("e", 1.0, 0.5, 1.5), 30, 60, "a")

    claims = [
        E.Claim("s", "p", "h", "primary", "main", "a", "b", "beats", r(0.03)),
        E.Claim("s", "x", "h", "secondary", "f1", "a", "b", "beats", r(0.02)),
        E.Claim("s", "y", "h", "secondary", "f1", "a", "b", "beats", r(0.04)),
        E.Claim("s", "z", "h", "secondary", "f2", "a", "b", "beats", r(0.04)),
    ]
    out = E.finalize(claims)
    assert [c.p_adjusted for c in out] == pytest.approx([0.03, 0.04, 0.04, 0.04])
    assert [c.verdict for c in out] == ["shown"] * 4
    out = E.finalize(claims[:1] + [claims[1], claims[2], dataclass_replace(claims[2], key="w")])
    assert out[1].p_adjusted == pytest.approx(0.06) and out[1].verdict == "inconclusive"
    with pytest.raises(ValueError, match="one primary"):
        E.finalize(claims + claims[:1])


def dataclass_replace(c, **kw):
    import dataclasses

    return dataclasses.replace(c, **kw)
