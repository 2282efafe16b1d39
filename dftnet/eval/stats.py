"""Uncertainty of reported means: bootstrap over images, Student t over training seeds."""

from __future__ import annotations

import math

import numpy as np


def bootstrap_ci(values, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile bootstrap confidence interval ``[lo, hi]`` of the mean of ``values``.

    Resamples the items (images or pairs) with replacement; seeded, so the same values give
    the same interval. ``None`` where there are no finite values.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    # Chunked so that N x resamples index arrays stay small at N in the tens of thousands.
    chunk = max(1, 2_000_000 // max(x.size, 1))
    for start in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - start)
        means[start:start + k] = x[rng.integers(0, x.size, size=(k, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def mean_ci_over_seeds(values, level: float = 0.95) -> dict:
    """Mean over training seeds with a Student-t interval (few seeds: the t, not the normal, quantile).

    Returns ``{"mean", "std", "n", "ci": [lo, hi] | None}``; the interval needs two or more
    finite values.
    """
    from scipy import stats as sps

    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return {"mean": None, "std": None, "n": 0, "ci": None}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "std": None, "n": 1, "ci": None}
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2.0, df=n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "n": n, "ci": [mean - half, mean + half]}
