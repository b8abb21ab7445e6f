"""The statistics behind the page's intervals and tied groups, with numpy only (no scipy).

* t_interval: the Student t interval of a mean over seeds. The quantile comes from a table
  of t(0.975, df) (exact to 3 decimals) with interpolation in 1/df beyond it.
* sign_flip_p: a paired test that assumes nothing about the distribution: the share of the
  2^n ways of flipping the signs of the n paired differences whose mean is at least the one
  observed (exact up to n = 16, a fixed-seed Monte Carlo estimate of 2^16 draws beyond).
  With n seeds its smallest p-value is 2^-n: 2 seeds can never separate two strategies, 5
  can at alpha 0.05 (1/32).
* holm: Holm's step-down correction over a family of p-values (strong control of the
  family-wise error rate).
"""

from __future__ import annotations

import math

import numpy as np

MIN_SEEDS = 5  # fewer seeds behind an interval: it is flagged as too few
ALPHA = 0.05

# t(0.975, df) for df = 1..30, then 40, 60, 120; infinity is the normal quantile
_T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]
_T975_TAIL = [(40, 2.021), (60, 2.000), (120, 1.980), (math.inf, 1.960)]


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with df degrees of freedom."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    points = [(30, _T975[-1]), *_T975_TAIL]
    for (d0, t0), (d1, t1) in zip(points, points[1:]):
        if df <= d1:  # linear in 1/df between the table's points
            x0, x1, x = 1 / d0, (0.0 if math.isinf(d1) else 1 / d1), 1 / df
            return t0 + (t1 - t0) * (x0 - x) / (x0 - x1)
    return 1.960


def t_interval(values) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student t interval of the mean; one value or identical values:
    the mean itself (no spread to speak of)."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2 or np.ptp(v) == 0:
        return mean, mean, mean
    half = t975(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
    return mean, mean - half, mean + half


def sign_flip_p(diffs) -> float:
    """One-sided p-value of a mean paired difference > 0 under random sign flips."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0:
        return 1.0
    observed = d.mean()
    if n <= 16:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(2**16, n))
    means = (signs * d).mean(axis=1)
    return float(np.mean(means >= observed - 1e-12))


def holm(pvalues: list[float], alpha: float = ALPHA) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        rejected[i] = True
    return rejected
