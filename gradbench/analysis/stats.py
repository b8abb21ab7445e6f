"""The statistics behind the page's intervals, tied groups and rates. scipy.stats does the
distributions; this module keeps only what scipy lacks and the project's conventions.

* t_interval: the Student t interval of a mean over seeds, cut at the metric's range.
* paired_t_p: the one-sided paired t-test of a mean difference > 0 over seeds (scipy's
  ttest_1samp). Differences that are all equal have no spread to test: p = 2^-n then, what a
  sign-flip test gives, so identical seeds never separate by themselves.
* holm: Holm's step-down correction over a family of p-values (strong control of the
  family-wise error rate).
* wilson: the Wilson score interval of a rate whose successes may be fractional (a tie in a
  paired comparison counts as half a win), which scipy's binomtest does not take.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _stats

MIN_SEEDS = 5  # fewer seeds behind an interval: it is flagged as too few
ALPHA = 0.05
Z95 = float(_stats.norm.ppf(0.975))


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with df degrees of freedom (NaN below 1)."""
    return float(_stats.t.ppf(0.975, df)) if df >= 1 else math.nan


def t_interval(values, within: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student t interval of the mean, cut at the metric's range
    `within` (an mse interval reaching below 0 says nothing below 0); one value or identical
    values: the mean itself (no spread to speak of)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2 or np.ptp(v) == 0:
        return mean, mean, mean
    half = t975(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, max(mean - half, within[0]), min(mean + half, within[1])


def paired_t_p(diffs) -> float:
    """One-sided p-value of a mean paired difference > 0 (a paired t-test); 1 with no pair."""
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0 or np.isnan(d).any():
        return 1.0
    if len(d) < 2 or np.ptp(d) == 0:
        return 2.0 ** -len(d) if d.mean() > 0 else 1.0
    return float(_stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)


def holm(pvalues: list[float], alpha: float = ALPHA) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level alpha."""
    pvalues = [1.0 if p != p else p for p in pvalues]  # a NaN p-value rejects nothing
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        rejected[i] = True
    return rejected


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float, float]:
    """(p, low, high): the Wilson score interval of k successes in n trials; k may be
    fractional (ties counted as halves)."""
    if n == 0:
        return math.nan, math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, center - half), min(1.0, center + half)
