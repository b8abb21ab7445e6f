"""The statistics behind the page's intervals and tied groups, with numpy only (no scipy).

* t_interval: the Student t interval of a mean over seeds. The quantile comes from a table
  of t(0.975, df) (exact to 3 decimals) with interpolation in 1/df beyond it.
* paired_t_p: the one-sided paired t-test of a mean difference > 0 over seeds, its p-value
  from Student's t distribution (the regularized incomplete beta function, by Lentz's
  continued fraction). Differences that are all equal have no spread to test: p = 2^-n then,
  what the sign-flip test gives, so identical seeds never separate by themselves.
* sign_flip_p: the distribution-free alternative (the share of the 2^n sign flips of the
  paired differences with a mean at least the one observed); its p-values are multiples of
  2^-n, which Holm over many strategies can never pass with few seeds.
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


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-14:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with df degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t > 0 else 1.0 - tail


def paired_t_p(diffs) -> float:
    """One-sided p-value of a mean paired difference > 0 (a paired t-test); 1 with no pair."""
    d = np.asarray(diffs, dtype=float)
    if len(d) == 0 or np.isnan(d).any():
        return 1.0
    if len(d) < 2 or np.ptp(d) == 0:
        return 2.0 ** -len(d) if d.mean() > 0 else 1.0
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    return t_sf(float(t), len(d) - 1)


def sign_flip_p(diffs) -> float:
    """One-sided p-value of a mean paired difference > 0 under random sign flips."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0 or np.isnan(d).any():
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
    pvalues = [1.0 if p != p else p for p in pvalues]  # a NaN p-value rejects nothing
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    rejected = [False] * len(pvalues)
    for rank, i in enumerate(order):
        if pvalues[i] > alpha / (len(pvalues) - rank):
            break
        rejected[i] = True
    return rejected
