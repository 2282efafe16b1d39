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


def hierarchical_bootstrap(groups, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean over groups of each group's mean, with a two-level percentile bootstrap CI.

    ``groups``: one sequence per training seed of values per test pair (for a paired
    difference: reference minus other, pair by pair). Each resample draws the seeds with
    replacement, then, independently for every drawn seed, its pairs with replacement; the
    statistic is the mean over the drawn seeds of their resampled pair means. So the interval
    carries both sources of noise: which seeds were trained and which pairs were tested.

    Returns ``{"estimate", "ci": [lo, hi], "n_seeds", "n_pairs": [per seed]}``; a group with a
    single value (a metric without per-pair values) contributes only its seed-level noise.
    """
    arrays = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    if not arrays or any(a.size == 0 or not np.isfinite(a).all() for a in arrays):
        raise ValueError("hierarchical_bootstrap: every group needs one or more finite values")
    n_seeds = len(arrays)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))  # which seed fills each slot
    # means[s][b, j]: seed s's pairs resampled for slot j of resample b (fresh draws per slot).
    means = [a[rng.integers(0, a.size, size=(n_resamples, n_seeds, a.size))].mean(axis=2) for a in arrays]
    stacked = np.stack(means)  # seeds x resamples x slots
    stats = stacked[drawn, np.arange(n_resamples)[:, None], np.arange(n_seeds)[None, :]].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return {"estimate": float(np.mean([a.mean() for a in arrays])), "ci": [float(lo), float(hi)],
            "n_seeds": n_seeds, "n_pairs": [int(a.size) for a in arrays]}


def bootstrap_median_difference(a, b, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """median(a) - median(b) for paired repeats (a[i] and b[i] measured in the same round), with
    a percentile bootstrap CI that resamples the rounds. Returns ``{"estimate", "ci", "n"}``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"bootstrap_median_difference: need paired, non-empty repeats, got {a.shape} and {b.shape}")
    idx = np.random.default_rng(seed).integers(0, a.size, size=(n_resamples, a.size))
    stats = np.median(a[idx], axis=1) - np.median(b[idx], axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return {"estimate": float(np.median(a) - np.median(b)), "ci": [float(lo), float(hi)], "n": int(a.size)}
