"""The statistics behind the leaderboard's verdicts, in one place for the page and for reports.

A verdict compares an entry's runs with a reference optimizer's runs on the same problem: two
one-sided Mann-Whitney U tests (H1 "lower", H1 "higher"; lower regret and lower AUC are better),
with every p-value of the table adjusted together by Holm's step-down method, so the chance of
any false verdict on the page stays at most ``ALPHA``. Intervals are percentile bootstrap
intervals (``scipy.stats.bootstrap``) from a fixed seed, so a page is the same when rebuilt.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap, friedmanchisquare, mannwhitneyu, rankdata, studentized_range

ALPHA = 0.05
RESAMPLES = 10_000
BETTER, WORSE, NO_EVIDENCE, REFERENCE = "better", "worse", "no evidence", "reference"


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values: the i-th smallest of m is multiplied by ``m - i + 1``
    (i from 1), made non-decreasing in that order, and capped at 1. NaN stays NaN and does not
    count towards m."""
    p = np.asarray(p, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    steps = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps)) if m else steps
    return adjusted


def one_sided_p(x, y) -> tuple[float, float]:
    """p-values of the one-sided Mann-Whitney U tests of "x is lower than y" and of "x is higher"
    (scipy's exact or asymptotic method by sample size, ties corrected); NaN without data."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) == 0 or len(y) == 0:
        return float("nan"), float("nan")
    return (float(mannwhitneyu(x, y, alternative="less").pvalue),
            float(mannwhitneyu(x, y, alternative="greater").pvalue))


def verdict(p_lower: float, p_higher: float, alpha: float = ALPHA) -> str:
    """From Holm-adjusted p-values: "better" (significantly lower), "worse", or "no evidence"."""
    if p_lower < alpha:
        return BETTER
    if p_higher < alpha:
        return WORSE
    return NO_EVIDENCE


def bootstrap_interval(values, statistic=np.median, level: float = 0.95, seed: int = 0,
                       resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values``; NaN for fewer than two."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    if np.all(values == values[0]):  # every resample is the same: the interval is the value
        return float(values[0]), float(values[0])
    result = bootstrap((values,), statistic, confidence_level=level, n_resamples=resamples,
                       method="percentile", vectorized=True,
                       random_state=np.random.default_rng(seed))
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def difference_interval(x, y, statistic=np.median, level: float = 0.95, seed: int = 0,
                        resamples: int = RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x) - statistic(y)``, each sample resampled on
    its own (the two arms' runs are independent; neither is paired with the other)."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    draws = (statistic(rng.choice(x, (resamples, len(x))), axis=1)
             - statistic(rng.choice(y, (resamples, len(y))), axis=1))
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def average_ranks(scores) -> np.ndarray:
    """Mean rank of each column of ``scores`` ``(problems, entries)`` over the rows, rank 1 the
    lowest score in a row and ties sharing the mean of their ranks."""
    return rankdata(np.asarray(scores, dtype=float), axis=1).mean(axis=0)


def friedman_p(scores) -> float:
    """p-value of Friedman's test that all entries (columns) rank alike over the problems (rows);
    NaN with fewer than 3 entries or 2 problems, where the test is undefined or empty."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.shape[1] < 3 or scores.shape[0] < 2:
        return float("nan")
    if np.all(scores == scores[:, :1]):  # every row one tie: no evidence of any difference
        return 1.0
    return float(friedmanchisquare(*scores.T).pvalue)


def nemenyi_critical_difference(entries: int, problems: int, alpha: float = ALPHA) -> float:
    """The Nemenyi test's critical difference of average ranks (Demsar 2006): two entries differ
    when their average ranks differ by at least ``q_alpha * sqrt(k (k + 1) / (6 N))``, with
    ``q_alpha`` the studentized range quantile for k groups over sqrt(2)."""
    k, n = entries, problems
    q = studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6 * n)))
