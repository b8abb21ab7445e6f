"""The statistics behind the page's intervals, tied groups and rates. scipy.stats does the
distributions; this module keeps only what scipy lacks and the project's conventions.

* t_interval: the Student t interval of a mean over seeds, cut at the metric's range.
* paired_t_p: the one-sided paired t-test of a mean difference > 0 over seeds (scipy's
  ttest_1samp). Differences that are all equal have no spread to test: p = 2^-n then, what a
  sign-flip test gives, so identical seeds never separate by themselves.
* paired_effect: the mean paired difference over seeds with its 95% t interval and the
  two-sided paired t-test's p-value (scipy's ttest_1samp; all-equal differences: 2 x 2^-n).
* holm, holm_adjusted: Holm's step-down correction over a family of p-values (strong control
  of the family-wise error rate), as decisions and as adjusted p-values.
* wilson: the Wilson score interval of a rate whose successes may be fractional (a tie in a
  paired comparison counts as half a win), which scipy's binomtest does not take.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as _stats

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
    return _quiet_ttest(d, "greater")


def paired_effect(diffs) -> tuple[float, float, float, float]:
    """(mean, low, high, p): the mean of paired differences over seeds, its 95% Student t
    interval, and the two-sided paired t-test's p-value of a mean difference of 0. All-equal
    differences have no spread to test: p = 2 x 2^-n (a two-sided sign-flip test), 1 when they
    are 0; no pair: NaN throughout."""
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0 or np.isnan(d).any():
        return math.nan, math.nan, math.nan, math.nan
    mean, lo, hi = t_interval(d)
    if len(d) < 2 or np.ptp(d) == 0:
        return mean, lo, hi, (min(1.0, 2.0 ** (1 - len(d))) if mean != 0 else 1.0)
    return mean, lo, hi, _quiet_ttest(d, "two-sided")


def _quiet_ttest(d: np.ndarray, alternative: str) -> float:
    """scipy's one-sample t-test p-value of a mean of 0; its warning on nearly equal values (a
    precision note, not an error: the p-value stands) is not printed on every page build."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(_stats.ttest_1samp(d, 0.0, alternative=alternative).pvalue)


def holm_adjusted(pvalues: list[float]) -> list[float]:
    """Holm's adjusted p-values: p_(i) x (m - i + 1) for the i-th smallest, made monotone by a
    running maximum and capped at 1; a hypothesis is rejected at level alpha when its adjusted
    p-value is at most alpha. A NaN p-value stays NaN and takes no place in the family."""
    known = [i for i, p in enumerate(pvalues) if p == p]
    order = sorted(known, key=lambda i: pvalues[i])
    out = [math.nan] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, pvalues[i] * (len(order) - rank)))
        out[i] = running
    return out


def holm(pvalues: list[float], alpha: float = ALPHA) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level alpha (a NaN
    p-value, no test at all, rejects nothing and takes no place in the family, as in
    holm_adjusted)."""
    return [adjusted <= alpha for adjusted in holm_adjusted(pvalues)]


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


def median_interval(values, level: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free interval for the median (order statistics, from the binomial): the
    k-th smallest and k-th largest value, k the largest with P(Binomial(n, 1/2) < k) <= (1 -
    level) / 2. No assumption on the spread, so one slow outlier cannot widen it past its
    neighbours. None below 6 values, where even the range covers the median with less than 95%."""
    x = sorted(values)
    n = len(x)
    k = 0
    while _stats.binom.cdf(k, n, 0.5) <= (1 - level) / 2:
        k += 1
    if k == 0:
        return None
    return x[k - 1], x[n - k]
