"""Uncertainty of reported means: bootstrap over images, Student t over training seeds, the
crossed bootstrap over seeds x source identities for paired claims, and Holm's correction."""

from __future__ import annotations

import math
import warnings

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


def bootstrap_median_difference(a, b, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """median(a) - median(b) for paired repeats (a[i] and b[i] measured in the same round), with
    a percentile bootstrap CI that resamples the rounds. Returns ``{"estimate", "ci", "p", "n"}``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"bootstrap_median_difference: need paired, non-empty repeats, got {a.shape} and {b.shape}")
    idx = np.random.default_rng(seed).integers(0, a.size, size=(n_resamples, a.size))
    stats = np.median(a[idx], axis=1) - np.median(b[idx], axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return {"estimate": float(np.median(a) - np.median(b)), "ci": [float(lo), float(hi)], "p": bootstrap_p(stats),
            "n": int(a.size)}


def _crossed_input(values, clusters, who: str) -> tuple[np.ndarray, np.ndarray]:
    """(seeds x pairs float array, its finite mask), checked: 2-D, one label per pair, every seed a value."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError(f"{who}: expected a seeds x pairs array, got shape {v.shape}")
    if len(clusters) != v.shape[1]:
        raise ValueError(f"{who}: {len(clusters)} cluster labels for {v.shape[1]} pairs")
    finite = np.isfinite(v)
    if not finite.any(axis=1).all():
        raise ValueError(f"{who}: a seed has no finite value")
    return v, finite


def crossed_bootstrap(values, clusters, n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean over training seeds of each seed's mean over test pairs, with a CI for a crossed design.

    ``values``: seeds x pairs (every seed evaluated on the *same* pairs, in the same order; NaN
    where a pair has no value); ``clusters``: one label per pair, the person its source shows
    (pairs of one person are not independent). Each resample draws the seeds with replacement
    and, once, the people with replacement (each drawn person brings all its pairs), and that
    one set of pairs is used by every drawn seed: the pair noise is shared by the seeds, as it
    was in the experiment, rather than divided by their number. The statistic is the mean over
    the drawn seeds of their means over the drawn pairs. With seed means only (one value per
    seed) use :func:`seed_t_interval` instead.

    Returns ``{"estimate", "ci": [lo, hi], "p": two-sided bootstrap p-value of 0, "n_seeds",
    "n_pairs", "n_clusters", "method"}``.
    """
    v, finite = _crossed_input(values, clusters, "crossed_bootstrap")
    _, code = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    n_seeds, n_clusters = v.shape[0], int(code.max()) + 1
    onehot = np.zeros((v.shape[1], n_clusters))
    onehot[np.arange(v.shape[1]), code] = 1.0
    sums, counts = np.where(finite, v, 0.0) @ onehot, finite.astype(float) @ onehot  # seeds x clusters
    rng = np.random.default_rng(seed)
    drawn_seeds = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    drawn = rng.integers(0, n_clusters, size=(n_resamples, n_clusters))
    weight = np.zeros((n_resamples, n_clusters))  # how often each person was drawn, per resample
    np.add.at(weight, (np.arange(n_resamples)[:, None], drawn), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = (sums @ weight.T) / (counts @ weight.T)  # seeds x resamples
        stats = np.nanmean(per_seed[drawn_seeds, np.arange(n_resamples)[:, None]], axis=1)
    stats = stats[np.isfinite(stats)]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    estimate = float(np.mean([row[ok].mean() for row, ok in zip(v, finite)]))
    return {"estimate": estimate, "ci": [float(lo), float(hi)], "p": bootstrap_p(stats),
            "n_seeds": n_seeds, "n_pairs": int(v.shape[1]), "n_clusters": n_clusters,
            "method": "crossed bootstrap (seeds x source people)"}


def crossed_t_interval(values, clusters, level: float = 0.95) -> dict:
    """Mean over seeds of each seed's mean over the (shared) test pairs, with a CI from the crossed
    design's two variance components and a Student-t quantile: the claims' interval.

    ``values``, ``clusters``: as :func:`crossed_bootstrap`. The estimate's variance is
    ``var(seed means) / S + var(person means) / C`` (person means: each source person's mean over
    its pairs of the seed-averaged values), its degrees of freedom Welch-Satterthwaite's; so with
    3 seeds and a large seed effect the interval widens to t with 2 df, where a percentile
    bootstrap over 3 seeds cannot (measured coverage: docs/verdicts.md;
    ``benchmarks/bench_coverage.py``). One seed: the people's part alone; one person: the seeds'.

    Returns ``{"estimate", "ci", "p": two-sided t-test p-value of 0, "n_seeds", "n_pairs",
    "n_clusters", "df", "method"}``.
    """
    from scipy import stats as sps

    v, finite = _crossed_input(values, clusters, "crossed_t_interval")
    seed_means = np.array([row[ok].mean() for row, ok in zip(v, finite)])
    with warnings.catch_warnings():  # an all-NaN pair or person: nanmean warns, the NaN is dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        pair_means = np.nanmean(v, axis=0)
        labels = np.asarray(clusters, dtype=str)
        person_means = np.array([np.nanmean(pair_means[labels == c]) for c in np.unique(labels)])
    person_means = person_means[np.isfinite(person_means)]
    n_s, n_c = len(seed_means), len(person_means)
    parts = [(seed_means.var(ddof=1) / n_s, n_s - 1) if n_s > 1 else (0.0, 0),
             (person_means.var(ddof=1) / n_c, n_c - 1) if n_c > 1 else (0.0, 0)]
    var = sum(p for p, _ in parts)
    denom = sum(p * p / df for p, df in parts if df > 0 and p > 0)
    df = var * var / denom if denom > 0 else float(max(n_s - 1, n_c - 1, 1))
    estimate = float(seed_means.mean())
    if var == 0:
        ci, p = [estimate, estimate], (1.0 if estimate == 0 else 0.0)
    else:
        half = float(sps.t.ppf(0.5 + level / 2.0, df)) * math.sqrt(var)
        ci, p = [estimate - half, estimate + half], float(2 * sps.t.sf(abs(estimate) / math.sqrt(var), df))
    return {"estimate": estimate, "ci": ci, "p": p, "n_seeds": n_s, "n_pairs": int(v.shape[1]), "n_clusters": n_c,
            "df": float(df), "method": "crossed t (seeds x source people)"}


def bootstrap_p(stats) -> float:
    """Two-sided p-value of 0 from bootstrap replicates: twice the smaller tail, at least 1/(B+1)."""
    stats = np.asarray(stats, dtype=np.float64)
    tail = min(np.mean(stats <= 0), np.mean(stats >= 0))
    return float(min(1.0, max(2.0 * tail, 1.0 / (stats.size + 1))))


def seed_t_interval(values, level: float = 0.95) -> dict:
    """Student-t interval and two-sided t-test p-value of the mean of per-seed values (a metric
    with seed means only, e.g. FID). Needs two or more finite values for an interval."""
    from scipy import stats as sps

    a = mean_ci_over_seeds(values, level)
    p = None
    if a["n"] >= 2 and a["std"]:
        t = a["mean"] / (a["std"] / math.sqrt(a["n"]))
        p = float(2 * sps.t.sf(abs(t), df=a["n"] - 1))
    elif a["n"] >= 2:
        p = 0.0 if a["mean"] != 0 else 1.0
    return {"estimate": a["mean"], "ci": a["ci"], "p": p, "n_seeds": a["n"], "n_pairs": 1, "n_clusters": 0,
            "method": f"Student t over {a['n']} seed means"}


def holm(p_values) -> list[float | None]:
    """Holm-adjusted p-values (step-down, monotone), in the input order; None stays None."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    order = sorted(idx, key=lambda i: p_values[i])
    m, out, running = len(order), list(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out
