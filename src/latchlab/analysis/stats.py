"""Statistics for success frequencies."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri  # the normal quantile (scipy.stats takes ~1 s to import)


def wilson(k, n, confidence: float = 0.95):
    """Wilson score interval for a binomial proportion ``k / n``.

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` with ``z`` the normal
    quantile of ``(1 + confidence) / 2``.

    Args:
        k: successes (scalar or array); n: trials (>= 1).
    Returns:
        ``(low, high)`` arrays.
    """
    k, n = np.asarray(k, float), np.asarray(n, float)
    z = ndtri(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
