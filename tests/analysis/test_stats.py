"""Reference tests for ``latchlab.analysis.stats``: the Wilson interval equals scipy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from latchlab.analysis import stats

CASES = [(k, n) for n in (1, 2, 3, 5, 10, 20, 30, 37, 100) for k in range(n + 1)] + [
    (0, 1000),
    (1, 1000),
    (500, 1000),
    (999, 1000),
    (1000, 1000),
    (7, 123457),
]


def _scipy(k, n, confidence):
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return ci.low, ci.high


@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99])
def test_wilson_equals_scipy(confidence):
    for k, n in CASES:
        low, high = stats.wilson(k, n, confidence)
        want_low, want_high = _scipy(k, n, confidence)
        np.testing.assert_allclose(
            [low, high], [want_low, want_high], rtol=1e-10, atol=1e-12, err_msg=f"k={k}, n={n}, confidence={confidence}"
        )


def test_wilson_default_confidence_is_95():
    np.testing.assert_allclose(stats.wilson(3, 10), _scipy(3, 10, 0.95), rtol=1e-12)


def test_wilson_is_vectorised():
    k = np.array([k for k, _ in CASES])
    n = np.array([n for _, n in CASES])
    low, high = stats.wilson(k, n, 0.9)
    assert low.shape == high.shape == k.shape
    want = np.array([_scipy(int(a), int(b), 0.9) for a, b in zip(k, n)])
    np.testing.assert_allclose(low, want[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(high, want[:, 1], rtol=1e-10, atol=1e-12)


def test_wilson_interval_lies_in_unit_interval():
    for n in range(1, 60):
        for confidence in (0.95, 0.9):
            low, high = stats.wilson(np.arange(n + 1), n, confidence)
            assert (low >= 0.0).all() and (high <= 1.0).all(), (n, confidence, low.min(), high.max())
