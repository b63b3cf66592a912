"""Evidence with the seed as the unit: latching horizons, tests on them, and claim records.

A member's key comes from its seed, so one seed's initial parameters and data are shared by
every length ``T`` of a grid (and its data by every cell): a seed's outcomes across ``T``
are nested, not independent draws. Nothing here pools members over ``T`` in a test that
assumes independence. Instead:

* ``horizons`` reduces each (group, seed) to one number, its **latching horizon**: the
  longest grid length up to which the member latched at *every* length (0 if it failed at
  the shortest). A seed that latched at every length is right-censored at the grid's
  longest length (its horizon is at least that). ``horizon_last`` is the alternative
  "longest length that latched at all", kept for comparison; ``nested`` says whether a
  seed's successes form a prefix of the grid (then the two agree).
* ``logrank`` compares two groups' horizons as survival times (success against ``T``
  read as survival, ``scipy.stats.logrank``); ``sign_test`` is the paired per-seed test
  for groups that share seeds; ``wilcoxon`` the paired test of a continuous per-seed
  quantity; ``gee`` a logistic model of success on group and ``log T`` (and optional
  covariates) with seeds as clusters (statsmodels GEE, exchangeable working correlation,
  robust errors); ``gee_slope`` the same model on a per-seed quantity instead of a group
  (does what a seed starts with predict whether it latches?). ``spearman`` is a
  descriptive rank correlation of two per-seed quantities; ``pick_seeds`` the best, median
  and worst seed of each group by horizon.
* Every test returns a ``Result`` with an effect size and its 95 % interval (median
  horizon difference, bootstrap over seeds; odds ratio). ``Claim`` is one claim of the
  report; ``finalize`` Holm-adjusts the secondary claims per family
  (``statsmodels.stats.multitest``), sets each verdict from its own test and writes the
  sentence from the numbers.

The methods, the horizon's definition and its alternatives are explained in
``docs/evidence.md``.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import stats

from latchlab.analysis.success import SUCCESS_THRESHOLD

ALPHA = 0.05
CONFIDENCE = 0.95
BOOTSTRAP = 2000  # resamples of seeds for bootstrap intervals
VERDICTS = ("shown", "inconclusive", "not estimable")


# ----------------------------------------------------------------------------- horizons


def horizons(final: pd.DataFrame, by=("cell",), threshold: float = SUCCESS_THRESHOLD) -> pd.DataFrame:
    """One row per group and seed: the seed's latching horizon on the group's grid.

    Args:
        final: one row per member with ``by`` columns, ``seed``, ``T`` and ``val_acc``.
            A (group, seed, T) that appears twice must be the same member (the seed's grid
            lists 30 twice); it counts once.
        by: the columns that define a group (e.g. cell, or family and variant).
    Returns:
        columns ``*by, seed, horizon, censored, horizon_last, latched, lengths, nested,
        T_max``: ``horizon`` is the longest grid length ``T`` such that the member latched
        at every grid length ``<= T`` (0 if it failed at the shortest), ``censored`` that
        it latched at every length (so its true horizon is ``>= T_max``).
    Raises:
        ValueError: if a seed lacks a length of its group's grid, or a repeated
            (group, seed, T) has different outcomes.
    """
    by = list(by)
    d = cast(pd.DataFrame, final[by + ["seed", "T", "val_acc"]]).copy()
    d["ok"] = d.val_acc >= threshold
    keys = by + ["seed", "T"]
    if (d.groupby(keys).ok.nunique() > 1).any():
        raise ValueError("a (group, seed, T) appears twice with different outcomes: not the same member")
    d = d.drop_duplicates(keys)
    rows = []
    for g, x in d.groupby(by, sort=False):
        g = g if isinstance(g, tuple) else (g,)
        grid = np.sort(cast(np.ndarray, x["T"].unique()))
        for s, y in x.groupby("seed", sort=True):
            if len(y) != len(grid):
                missing = sorted(set(grid) - set(y["T"]))
                raise ValueError(f"group {g}, seed {s} lacks lengths {missing} of its grid")
            ok = y.sort_values("T").ok.to_numpy()
            first_fail = int(np.argmin(ok)) if not ok.all() else len(ok)
            horizon = int(grid[first_fail - 1]) if first_fail else 0
            last = int(grid[np.flatnonzero(ok)[-1]]) if ok.any() else 0
            rows.append(
                {
                    **dict(zip(by, g)),
                    "seed": int(cast(int, s)),
                    "horizon": horizon,
                    "censored": bool(ok.all()),
                    "horizon_last": last,
                    "latched": int(ok.sum()),
                    "lengths": len(grid),
                    "nested": bool(ok.sum() == first_fail),
                    "T_max": int(grid[-1]),
                }
            )
    return pd.DataFrame(rows)


def _censored(h: pd.DataFrame) -> stats.CensoredData:
    x = h.horizon.to_numpy(float)
    c = h.censored.to_numpy(bool)
    return stats.CensoredData(uncensored=x[~c], right=x[c])


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Effect:
    """An effect size with its interval (``low``, ``high`` at ``CONFIDENCE``)."""

    name: str
    value: float
    low: float
    high: float

    def text(self, digits: int = 3) -> str:
        """``name value [low, high], 95 % interval``; an infinite value or bound (an odds
        ratio with an empty cell: every member of one group and none of the other) is
        printed as ``∞``, its finite bound kept: ``odds ratio ∞ [25.5, ∞]``."""
        if np.isnan(self.value):
            return f"{self.name}: not estimable"

        def f(x: float) -> str:
            return ("-" if x < 0 else "") + "∞" if np.isinf(x) else f"{x:.{digits}g}"

        return f"{self.name} {f(self.value)} [{f(self.low)}, {f(self.high)}], {100 * CONFIDENCE:.0f} % interval"


@dataclass(frozen=True)
class Result:
    """One test of "``a`` differs from ``b``".

    ``favours`` is ``a`` or ``b`` (the group the data lean to; ``""`` if neither), taken
    from the test's own statistic. ``summary`` holds per-group descriptions for the
    sentence (e.g. median horizons)."""

    test: str
    statistic: float
    p: float
    effect: Effect
    n_seeds: int
    n_members: int
    favours: str
    summary: dict = field(default_factory=dict)


def _median_horizon(h: np.ndarray) -> float:
    # censoring only at the grid's longest length, so the sample median equals the
    # Kaplan-Meier median whenever it is below that length (and is a lower bound otherwise)
    return float(np.median(h))


def bootstrap_median_difference(
    ha: pd.DataFrame,
    hb: pd.DataFrame,
    B: int = BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    column: str = "horizon",
) -> Effect:
    """Median of ``a``'s minus median of ``b``'s per-seed values, with a percentile
    bootstrap interval over seeds. Groups on the same seeds are resampled jointly (one
    draw of seeds for both), otherwise each group's seeds separately."""
    a, b = ha.set_index("seed")[column], hb.set_index("seed")[column]
    value = _median_horizon(a.to_numpy(float)) - _median_horizon(b.to_numpy(float))
    rng = np.random.default_rng(seed)
    if set(a.index) == set(b.index):
        b = b.loc[a.index]
        i = rng.integers(0, len(a), size=(B, len(a)))
        diff = np.median(a.to_numpy(float)[i], axis=1) - np.median(b.to_numpy(float)[i], axis=1)
    else:
        ia, ib = rng.integers(0, len(a), size=(B, len(a))), rng.integers(0, len(b), size=(B, len(b)))
        diff = np.median(a.to_numpy(float)[ia], axis=1) - np.median(b.to_numpy(float)[ib], axis=1)
    q = (1 - confidence) / 2
    return Effect(f"median {column} difference", value, float(np.quantile(diff, q)), float(np.quantile(diff, 1 - q)))


def _summary(h: pd.DataFrame, name: str) -> dict:
    return {
        f"median horizon {name}": _median_horizon(h.horizon.to_numpy(float)),
        f"seeds latching at every length {name}": f"{int(h.censored.sum())}/{len(h)}",
    }


def logrank(ha: pd.DataFrame, hb: pd.DataFrame, a: str = "a", b: str = "b", members: int | None = None) -> Result:
    """Log-rank test of two groups' latching horizons (one row per seed each, from
    ``horizons``), right-censored at the grid's longest length. ``favours`` the group with
    fewer failures than expected."""
    r = stats.logrank(_censored(ha), _censored(hb))
    stat = float(r.statistic)  # > 0: ``a`` fails more often than expected
    favours = "" if stat == 0 or not np.isfinite(stat) else (b if stat > 0 else a)
    seeds = len(set(ha.seed) | set(hb.seed))
    n = members if members is not None else int(ha.lengths.sum() + hb.lengths.sum())
    return Result(
        "log-rank test on latching horizons",
        stat,
        float(r.pvalue),
        bootstrap_median_difference(ha, hb),
        seeds,
        n,
        favours,
        {**_summary(ha, a), **_summary(hb, b)},
    )


def _paired(ha: pd.DataFrame, hb: pd.DataFrame) -> pd.DataFrame:
    m = ha.merge(hb, on="seed", suffixes=("_a", "_b"))
    if len(m) != len(ha) or len(m) != len(hb):
        raise ValueError("a paired test needs the same seeds in both groups")
    return m


def sign_test(ha: pd.DataFrame, hb: pd.DataFrame, a: str = "a", b: str = "b", members: int | None = None) -> Result:
    """Exact two-sided sign test of paired per-seed horizons (groups on the same seeds).

    A pair counts for ``a`` if ``a``'s horizon is longer; pairs with equal horizons (in
    particular both censored) carry no sign and drop out. Censoring never changes a sign
    that is counted: a censored horizon is only ever compared with a shorter one."""
    m = _paired(ha, hb)
    d = m.horizon_a.to_numpy(float) - m.horizon_b.to_numpy(float)
    both = m.censored_a.to_numpy(bool) & m.censored_b.to_numpy(bool)
    d[both] = 0.0
    pos, neg = int((d > 0).sum()), int((d < 0).sum())
    p = float(stats.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else 1.0
    favours = a if pos > neg else b if neg > pos else ""
    n = members if members is not None else int(m.lengths_a.sum() + m.lengths_b.sum())
    return Result(
        "sign test on paired per-seed horizons",
        float(pos - neg),
        p,
        bootstrap_median_difference(ha, hb),
        len(m),
        n,
        favours,
        {
            **_summary(ha, a),
            **_summary(hb, b),
            f"seeds where {a} lasts longer": pos,
            f"seeds where {b} lasts longer": neg,
            "ties": int(len(m) - pos - neg),
        },
    )


def _walsh_median(d: np.ndarray) -> np.ndarray:
    """The Hodges-Lehmann estimate of each row of ``d``: the median of its Walsh averages
    ``(d_i + d_j) / 2``, ``i <= j``, over the row's values that are not NaN (NaN for a row
    of NaNs); rows a few at a time, to keep memory bounded."""
    d = np.atleast_2d(d)
    i, j = np.triu_indices(d.shape[1])
    step = max(1, 2**22 // max(len(i), 1))
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row of NaNs: its estimate is NaN
        for x in np.split(d, range(step, len(d), step)):
            out.append(np.nanmedian((x[:, i] + x[:, j]) / 2, axis=1))
    return np.concatenate(out)


def wilcoxon(
    xa: pd.Series, xb: pd.Series, a: str = "a", b: str = "b", quantity: str = "value", members: int | None = None
) -> Result:
    """Two-sided Wilcoxon signed-rank test of a per-seed quantity in two groups (both
    indexed by seed, same seeds; a seed whose value is missing or not finite in either
    group is left out). ``favours`` the group whose values the signed ranks favour (the
    larger sum of ranks, zero differences dropped as the test drops them); the effect is the
    test's own estimate of the paired difference, the Hodges-Lehmann estimate (the median of
    the Walsh averages of the non-zero differences, whose sign is the signed ranks'), with a
    percentile bootstrap interval over seeds. The median paired difference can point the
    other way when the differences are skewed, so it is not the effect; both groups'
    medians are in ``summary``."""
    if set(xa.index) != set(xb.index):
        raise ValueError("a paired test needs the same seeds in both groups")
    m = pd.concat({"a": xa, "b": xb}, axis=1, join="inner").astype(float)
    m = m[np.isfinite(m.a) & np.isfinite(m.b)]
    d = (m.a - m.b).to_numpy(float)
    nz = d[d != 0]
    effect = f"Hodges-Lehmann paired difference in {quantity}"
    if not len(nz):
        p, stat, favours, value, low, high = 1.0, 0.0, "", 0.0, 0.0, 0.0
        if not len(d):
            p = stat = value = low = high = float("nan")
    else:
        r = cast(Any, stats.wilcoxon(nz))  # scipy: a result object; zero differences dropped ("wilcox")
        p, stat = float(r.pvalue), float(r.statistic)
        ranks = stats.rankdata(np.abs(nz))
        w_plus, w_minus = float(ranks[nz > 0].sum()), float(ranks[nz < 0].sum())
        favours = a if w_plus > w_minus else b if w_minus > w_plus else ""
        value = float(_walsh_median(nz)[0])
        rng = np.random.default_rng(0)
        boot = d[rng.integers(0, len(d), size=(BOOTSTRAP, len(d)))]
        q = (1 - CONFIDENCE) / 2
        walsh = _walsh_median(np.where(boot == 0, np.nan, boot))  # as the estimate: zero differences out
        walsh = walsh[np.isfinite(walsh)]  # a resample of zero differences only has none
        low, high = float(np.quantile(walsh, q)), float(np.quantile(walsh, 1 - q))
    return Result(
        "Wilcoxon signed-rank test, paired by seed",
        stat,
        p,
        Effect(effect, value, low, high),
        len(m),
        members if members is not None else 2 * len(m),
        favours,
        {f"median {quantity} {a}": float(m.a.median()), f"median {quantity} {b}": float(m.b.median())},
    )


def gee_frame(
    final: pd.DataFrame, group: str, a: str, b: str, threshold: float = SUCCESS_THRESHOLD, adjust: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Member rows of groups ``a`` and ``b`` (column ``group``) as the GEE's data:
    ``success`` (0/1), ``is_a`` (0/1), ``log_T``, ``seed`` (the cluster), and the
    ``adjust`` columns (a member is one ``group, seed, T`` and ``adjust`` values)."""
    d = cast(pd.DataFrame, final[final[group].isin([a, b])]).drop_duplicates([group, "seed", "T", *adjust])
    return pd.DataFrame(
        {
            "success": (d.val_acc >= threshold).astype(float).to_numpy(),
            "is_a": (d[group] == a).astype(float).to_numpy(),
            "log_T": np.log(d["T"].to_numpy(float)),
            "seed": d.seed.to_numpy(int),
            **{c: d[c].to_numpy(float) for c in adjust},
        }
    )


def separated(success: np.ndarray, exog: np.ndarray) -> bool:
    """Whether the outcomes are separated, completely or quasi-completely: some direction
    ``beta`` has ``exog @ beta >= 0`` at every success and ``<= 0`` at every failure, not
    0 at all of them, so the likelihood grows without end along it and no finite fit
    exists (the linear program of Konis 2007: maximise the sum of the signed ``exog @
    beta`` with every term ``>= 0`` and ``beta`` in ``[-1, 1]``; it is 0 iff not separated).
    Quasi-complete separation (e.g. one cell latching at every length but one seed's
    longest, the other at the shortest length only) escapes statsmodels' own checks: its
    fit "converges" to coefficients of 10^2 with errors of 10^5."""
    from scipy.optimize import linprog

    sign = np.where(np.asarray(success) > 0, 1.0, -1.0)
    A = sign[:, None] * np.asarray(exog, float)
    A = A / np.maximum(np.abs(A).max(axis=0), 1e-300)  # columns on one scale, for the tolerance
    r = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(len(A)), bounds=[(-1, 1)] * A.shape[1], method="highs")
    return bool(r.status == 0 and -r.fun > 1e-7 * len(A))


def _logistic_gee(success: np.ndarray, exog: np.ndarray, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(params, bse)`` of a logistic GEE of ``success`` on ``exog`` (with its own
    intercept column) with ``seeds`` as clusters (exchangeable working correlation, robust
    sandwich errors), or ``None`` if the outcomes are ``separated`` (no finite estimate
    exists) or statsmodels cannot estimate it or warns (no convergence): a number from a
    diverged fit is not reported."""
    from statsmodels.genmod import cov_struct, families
    from statsmodels.genmod.generalized_estimating_equations import GEE

    if separated(success, exog):
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = GEE(success, exog, groups=seeds, family=families.Binomial(), cov_struct=cov_struct.Exchangeable()).fit()
        if fit is None:  # statsmodels returns None (and warns) when it cannot estimate the parameters
            return None
        params, bse = np.asarray(fit.params, float), np.asarray(fit.bse, float)
    trouble = [
        w
        for w in caught
        if issubclass(w.category, (RuntimeWarning, UserWarning))
        or "converge" in str(w.message).lower()
        or "separation" in str(w.message).lower()
    ]
    if trouble or not (np.all(np.isfinite(params)) and np.all(np.isfinite(bse))) or bse[1] == 0:
        return None
    return params, bse


# Fewest seeds (clusters) for a GEE's robust (sandwich) errors to be reported: with fewer,
# they are too small and the test too liberal (a tiny report called a pair "shown" at 3
# seeds); the GEE is then "not estimable" and the report says so instead of a p.
MIN_GEE_SEEDS = 20


def _exp(*x: float) -> tuple[float, ...]:
    with np.errstate(over="ignore"):  # an odds ratio beyond float range is inf
        return tuple(float(v) for v in np.exp(np.asarray(x, float)))


def _gee_result(test: str, fitted, n_seeds: int, n_members: int, a: str, b: str, effect: str, summary=None) -> Result:
    """A ``Result`` from the coefficient at index 1 of ``_logistic_gee``'s fit (NaN if none,
    or with fewer than ``MIN_GEE_SEEDS`` seeds): Wald z, two-sided p, ``exp(beta)`` with its
    95 % interval, favouring ``a`` if ``beta > 0``."""
    if fitted is None or n_seeds < MIN_GEE_SEEDS:
        nan = float("nan")
        return Result(test, nan, nan, Effect(effect, nan, nan, nan), n_seeds, n_members, "")
    params, bse = fitted
    beta, se = float(params[1]), float(bse[1])
    q = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    return Result(
        test,
        beta / se,
        float(2 * stats.norm.sf(abs(beta / se))),
        Effect(effect, *_exp(beta, beta - q * se, beta + q * se)),
        n_seeds,
        n_members,
        a if beta > 0 else b if beta < 0 else "",
        dict(summary or {}),
    )


def gee(
    final: pd.DataFrame,
    group: str,
    a: str,
    b: str,
    threshold: float = SUCCESS_THRESHOLD,
    names: tuple[str, str] | None = None,
    adjust: tuple[str, ...] = (),
) -> Result:
    """Logistic GEE of success on ``is_a`` and ``log T`` with seeds as clusters
    (exchangeable working correlation, robust sandwich errors). The effect is the odds
    ratio of success for ``a`` against ``b`` at equal ``T``. If the fit does not converge
    or the data separate (e.g. one group never latches), the result is not estimable
    (p and effect NaN) rather than a number from a diverged fit. ``names`` are the groups'
    names in the result (default ``a`` and ``b``); ``adjust`` names further numeric columns
    of ``final`` entered as covariates after ``log T`` (e.g. a log initial half-life: the
    odds ratio is then at equal ``T`` and equal covariates)."""
    d = gee_frame(final, group, a, b, threshold, adjust)
    name_a, name_b = names or (a, b)
    exog = np.column_stack([np.ones(len(d)), d.is_a, d.log_T, *(d[c] for c in adjust)])
    test = "logistic GEE (success ~ group + log T" + "".join(f" + {c}" for c in adjust) + ", seeds as clusters)"
    fitted = None
    if d.success.nunique() == 2 and d.groupby("is_a").success.nunique().min() == 2:
        fitted = _logistic_gee(d.success.to_numpy(), exog, d.seed.to_numpy())  # else: an odds ratio of 0 or inf
    summary = {"coefficient of log T": float(fitted[0][2])} if fitted is not None else {}
    return _gee_result(test, fitted, int(d.seed.nunique()), len(d), name_a, name_b, "odds ratio", summary)


def gee_slope(
    final: pd.DataFrame, column: str, threshold: float = SUCCESS_THRESHOLD, name: str | None = None
) -> Result:
    """Logistic GEE of success on a per-seed quantity ``column`` (standardised over seeds:
    ``(x - mean) / sd``, one value per seed) and ``log T``, with seeds as clusters
    (exchangeable working correlation, robust errors): does the quantity a seed starts
    with predict whether it latches, at equal ``T``?

    Args:
        final: one row per member: ``seed``, ``T``, ``val_acc`` and ``column`` (constant
            within a seed).
        name: the quantity's name in the result (default ``column``).
    Returns:
        a ``Result`` whose effect is the odds ratio of success per standard deviation of
        the quantity; it favours "seeds with larger <name>" (``a``) if the odds rise with
        it, "seeds with smaller <name>" (``b``) if they fall. Not estimable (NaN) when the
        quantity is constant over seeds, success does not vary, or the fit fails.
    """
    name = name or column
    d = cast(pd.DataFrame, final[["seed", "T", "val_acc", column]]).drop_duplicates(["seed", "T"])
    per_seed = d.groupby("seed")[column]
    if bool(np.any(per_seed.nunique().to_numpy() > 1)):
        raise ValueError(f"{column} must be one value per seed")
    x = per_seed.first().to_numpy(float)
    a, b = f"seeds with larger {name}", f"seeds with smaller {name}"
    success = (d.val_acc >= threshold).to_numpy(float)
    sd = float(np.std(x))
    fitted = None
    if len(np.unique(x)) > 1 and np.isfinite(sd) and len(np.unique(success)) == 2:
        z = (d[column].to_numpy(float) - float(np.mean(x))) / sd
        exog = np.column_stack([np.ones(len(d)), z, np.log(d["T"].to_numpy(float))])
        fitted = _logistic_gee(success, exog, d.seed.to_numpy(int))
    return _gee_result(
        f"logistic GEE (success ~ {name} per SD + log T, seeds as clusters)",
        fitted,
        int(d.seed.nunique()),
        len(d),
        a,
        b,
        "odds ratio per SD",
        {f"{name}: mean over seeds": float(np.mean(x)), f"{name}: SD over seeds": sd},
    )


def spearman(x, y) -> tuple[float, float]:
    """Spearman's rank correlation of two per-seed quantities and its two-sided p
    (``scipy.stats.spearmanr``); NaN when either is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    r = cast(Any, stats.spearmanr(x, y))  # scipy: a result object
    return float(r.statistic), float(r.pvalue)


def pick_seeds(h: pd.DataFrame, by: str = "cell") -> pd.DataFrame:
    """The best, median and worst seed of each group by latching horizon (``horizons``'
    rows): the longest horizon (a censored one counts as longer than an uncensored one
    of the same length), the median (the lower middle seed when sorted by horizon, then
    censoring, then seed) and the shortest. Ties go to the lowest seed.

    Returns:
        one row per group and role: ``by``, ``role`` (``best``, ``median``, ``worst``),
        ``seed``, ``horizon``, ``censored``.
    """
    rows = []
    for g, x in h.groupby(by, sort=False):
        order = x.assign(_c=x.censored.astype(int)).sort_values(["horizon", "_c", "seed"], kind="stable")
        best = order.sort_values(["horizon", "_c", "seed"], ascending=[False, False, True], kind="stable").iloc[0]
        picks = {"best": best, "median": order.iloc[(len(order) - 1) // 2], "worst": order.iloc[0]}
        for role, r in picks.items():
            rows.append(
                {by: g, "role": role, "seed": int(r.seed), "horizon": int(r.horizon), "censored": bool(r.censored)}
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Claim:
    """One claim of the report: its hypothesis (declared before its result), its test and
    the verdict that test gives.

    ``role`` is ``primary`` (the one hypothesis of the report, tested at ``ALPHA``) or
    ``secondary`` (Holm-adjusted within ``family``). ``p_adjusted``, ``verdict`` and
    ``text`` are set by ``finalize``."""

    section: str
    key: str
    hypothesis: str
    role: str
    family: str
    a: str
    b: str
    what: str  # e.g. "latches to longer lengths than": "{favoured} {what} {other}"
    result: Result
    p_adjusted: float = float("nan")
    verdict: str = "inconclusive"
    text: str = ""

    def to_dict(self) -> dict:
        r, e = self.result, self.result.effect
        return {
            "section": self.section,
            "key": self.key,
            "hypothesis": self.hypothesis,
            "role": self.role,
            "family": self.family,
            "test": r.test,
            "statistic": _num(r.statistic),
            "p": _num(r.p),
            "p_adjusted": _num(self.p_adjusted),
            "effect": {
                "name": e.name,
                "value": _num(e.value),
                "low": _num(e.low),
                "high": _num(e.high),
                "confidence": CONFIDENCE,
            },
            "n_seeds": r.n_seeds,
            "n_members": r.n_members,
            "favours": r.favours or None,
            "verdict": self.verdict,
            "claim": self.text,
            "summary": {k: _num(v) if isinstance(v, float) else v for k, v in r.summary.items()},
        }


def _num(v):
    """A float for JSON: ``None`` for NaN (not estimable), ``"inf"`` / ``"-inf"`` for an
    infinite odds ratio or bound (JSON has no infinity)."""
    v = float(v)
    return v if np.isfinite(v) else None if np.isnan(v) else ("inf" if v > 0 else "-inf")


def p_text(p: float) -> str:
    if not np.isfinite(p):
        return "p not estimable"
    return f"p = {p:.2g}" if p >= 1e-4 else f"p = {p:.1e}"


def _text(c: Claim, alpha: float) -> str:
    r = c.result
    adj = "" if c.role == "primary" else f", Holm-adjusted in “{c.family}” {p_text(c.p_adjusted)}"
    nums = f"{r.test}, {p_text(r.p)}{adj}; {r.effect.text()}; {r.n_seeds} seeds, {r.n_members} members"
    if c.verdict == "not estimable":
        return f"{c.a} against {c.b}: not estimable ({nums})."
    if c.verdict == "shown":
        other = c.b if r.favours == c.a else c.a
        return f"{r.favours} {c.what} {other} ({nums})."
    return f"{c.a} and {c.b} do not differ at the {alpha:g} level; inconclusive ({nums})."


def holm(p) -> np.ndarray:
    """Holm-adjusted p-values (``statsmodels.stats.multitest.multipletests``); NaNs stay
    NaN and do not count as tests."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def finalize(claims: list[Claim], alpha: float = ALPHA) -> list[Claim]:
    """Holm-adjust secondary claims per family (the primary keeps its p), then set each
    claim's verdict (``shown`` iff its own adjusted p < ``alpha`` and the data favour a
    group) and sentence."""
    if sum(c.role == "primary" for c in claims) > 1:
        raise ValueError("one primary hypothesis per report")
    adjusted = {}
    for fam in dict.fromkeys(c.family for c in claims if c.role == "secondary"):
        idx = [i for i, c in enumerate(claims) if c.role == "secondary" and c.family == fam]
        for i, q in zip(idx, holm([claims[i].result.p for i in idx])):
            adjusted[i] = q
    out = []
    for i, c in enumerate(claims):
        if c.result.favours not in ("", c.a, c.b):
            raise ValueError(f"claim {c.key!r}: the test favours {c.result.favours!r}, neither {c.a!r} nor {c.b!r}")
        q = c.result.p if c.role == "primary" else adjusted[i]
        verdict = (
            "not estimable" if not np.isfinite(q) else "shown" if q < alpha and c.result.favours else "inconclusive"
        )
        c = dataclasses.replace(c, p_adjusted=float(q), verdict=verdict)
        out.append(dataclasses.replace(c, text=_text(c, alpha)))
    return out


# ----------------------------------------------------------------------------- one length, one row per seed


def _shift(xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """The Hodges-Lehmann shift of each row pair: the median of ``xa_i - xb_j`` over every
    pair (rows a few at a time, to keep memory bounded)."""
    xa, xb = np.atleast_2d(xa), np.atleast_2d(xb)
    step = max(1, 2**22 // (xa.shape[1] * xb.shape[1]))
    return np.concatenate(
        [
            np.median(
                (xa[k : k + step, :, None] - xb[k : k + step, None, :]).reshape(len(xa[k : k + step]), -1), axis=1
            )
            for k in range(0, len(xa), step)
        ]
    )


def mann_whitney(xa, xb, a: str = "a", b: str = "b", quantity: str = "value") -> Result:
    """Two-sided Mann-Whitney U test of two groups of *different* seeds at one length (one
    value per seed, e.g. members that latched against those that failed). ``favours`` the
    group U favours (more pairs in which its value is the larger); the effect is the test's
    own estimate of the shift, the Hodges-Lehmann estimate (the median of every difference
    ``a_i - b_j``, positive when more of them are), with a percentile bootstrap interval
    (each group resampled). The difference in medians can point the other way, so it is not
    the effect; both medians are in ``summary``."""
    xa, xb = np.asarray(xa, float), np.asarray(xb, float)
    xa, xb = xa[np.isfinite(xa)], xb[np.isfinite(xb)]
    if not (len(xa) and len(xb)):
        return Result(
            "Mann-Whitney U test",
            float("nan"),
            float("nan"),
            Effect(f"Hodges-Lehmann shift in {quantity}", float("nan"), float("nan"), float("nan")),
            len(xa) + len(xb),
            len(xa) + len(xb),
            "",
        )
    r = stats.mannwhitneyu(xa, xb)
    u = float(r.statistic)
    rng = np.random.default_rng(0)
    ia, ib = rng.integers(0, len(xa), size=(BOOTSTRAP, len(xa))), rng.integers(0, len(xb), size=(BOOTSTRAP, len(xb)))
    boot, q = _shift(xa[ia], xb[ib]), (1 - CONFIDENCE) / 2
    favours = a if u > len(xa) * len(xb) / 2 else b if u < len(xa) * len(xb) / 2 else ""
    return Result(
        "Mann-Whitney U test",
        u,
        float(r.pvalue),
        Effect(
            f"Hodges-Lehmann shift in {quantity}",
            float(_shift(xa, xb)[0]),
            float(np.quantile(boot, q)),
            float(np.quantile(boot, 1 - q)),
        ),
        len(xa) + len(xb),
        len(xa) + len(xb),
        favours,
        {f"median {quantity} {a}": float(np.median(xa)), f"median {quantity} {b}": float(np.median(xb))},
    )


def fisher(k_a: int, n_a: int, k_b: int, n_b: int, a: str = "a", b: str = "b", what: str = "yes") -> Result:
    """Fisher's exact test of ``k_a / n_a`` against ``k_b / n_b`` where every count is one
    seed (one length, different seeds in the two groups); the effect is the conditional
    maximum-likelihood odds ratio with its exact interval (``scipy.stats.contingency``)."""
    from scipy.stats.contingency import odds_ratio

    if not (n_a and n_b):
        return Result(
            "Fisher exact test",
            float("nan"),
            float("nan"),
            Effect("odds ratio", float("nan"), float("nan"), float("nan")),
            n_a + n_b,
            n_a + n_b,
            "",
        )
    table = [[k_a, n_a - k_a], [k_b, n_b - k_b]]
    r = cast(Any, stats.fisher_exact(table))  # scipy: a result object
    o = odds_ratio(table)
    ci = o.confidence_interval(CONFIDENCE)
    fa, fb = k_a / n_a, k_b / n_b
    return Result(
        "Fisher exact test",
        float(o.statistic),
        float(r.pvalue),
        Effect("odds ratio", float(o.statistic), float(ci.low), float(ci.high)),
        n_a + n_b,
        n_a + n_b,
        a if fa > fb else b if fb > fa else "",
        {f"{what} {a}": f"{k_a}/{n_a}", f"{what} {b}": f"{k_b}/{n_b}"},
    )
