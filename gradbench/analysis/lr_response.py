"""How each strategy responds to the learning rate: stability as a first-class result, read
off the stress levels (learning-rate multipliers) of a task. No torch.

Per (task, strategy), from the runs at each level of the learning-rate grid (under a tuning
protocol, the sweep: the same seeds at every level), a failed run (diverged, or collapsed:
runs.py) counting at chance, a level's result being its mean final validation value:

* max stable lr: the highest level such that it and every level below it have no failed
  seed; "≥" when that is the top level run, none when the lowest level already fails.
* stable range, in octaves: log2(highest / lowest) of the contiguous levels around the
  arm's best level whose mean validation result is within STABLE_TOLERANCE of the gap
  between chance and that best (0 when only the best level is).
* LR sensitivity (Wortsman et al., 2023): the mean, over the levels, of the gap between the
  arm's best mean result and the level's, as a share of |target - chance|.
* P(fail) at the chosen configuration: failed seeds (diverged or collapsed) / seeds there
  (the tuning seeds and the final ones), with a 95% Wilson interval.

A strategy with no level where a seed learned has no stable range, sensitivity or chosen
level (—), and neither has one run at a single level a range or a sensitivity.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .stats import wilson

STABLE_TOLERANCE = 0.1  # within 10% of the chance-to-best gap counts as "as good as the best"

# the columns response() fills in the per-task table, with their dtypes (scoring.PER_TASK_SCHEMA)
SCHEMA = {
    "max_stable_lr": "float",
    "top_stable": "object",
    "stable_octaves": "float",
    "lr_sensitivity": "float",
    "fail_k": "Int64",
    "fail_n": "Int64",
    "fail_p": "float",
    "fail_lo": "float",
    "fail_hi": "float",
}


def response(by_level: pd.DataFrame, meta: dict, failed_at_chosen: pd.Series | None) -> dict:
    """The learning-rate response of one (task, strategy): from its per-level results on the
    grid (runs.level_results' columns), and which of its runs at the chosen configuration
    failed (None without a chosen one)."""
    sign = 1.0 if meta["higher_is_better"] else -1.0
    chance, target = meta["chance"], meta["target"]
    levels = list(by_level.index)
    failed_at, means = by_level["failed"], by_level["value"]

    stable = [lr for i, lr in enumerate(levels) if not failed_at[levels[: i + 1]].any()]
    best_lr = max(levels, key=lambda lr: (round(sign * means[lr], 12), -lr))
    best = means[best_lr]
    gap = abs(best - chance) if chance is not None and not math.isnan(chance) else math.nan
    close = [lr for lr in levels if abs(best - means[lr]) <= STABLE_TOLERANCE * gap] if gap == gap else [best_lr]
    lo = hi = levels.index(best_lr)  # the contiguous run of close levels around the best
    while lo > 0 and levels[lo - 1] in close:
        lo -= 1
    while hi < len(levels) - 1 and levels[hi + 1] in close:
        hi += 1
    scale = abs(target - chance) if target is not None and chance is not None else math.nan
    sensitivity = float(np.mean([sign * (best - means[lr]) for lr in levels]) / scale) if scale else math.nan

    if failed_at_chosen is None:
        k = n = 0
        p, p_lo, p_hi = math.nan, math.nan, math.nan
    else:
        k, n = int(failed_at_chosen.sum()), len(failed_at_chosen)
        p, p_lo, p_hi = wilson(k, n)
    # some level where a seed learned, and more than one level to read a response off
    learned = not by_level["all_failed"].all() and len(levels) > 1
    return {
        "max_stable_lr": float(stable[-1]) if stable else math.nan,
        "top_stable": bool(stable) and stable[-1] == levels[-1],
        # with no level where a seed learned, every level is "as good as the best": say nothing
        "stable_octaves": float(math.log2(levels[hi] / levels[lo])) if learned else math.nan,
        "lr_sensitivity": sensitivity if learned else math.nan,
        "fail_k": k,
        "fail_n": n,
        "fail_p": p,
        "fail_lo": p_lo,
        "fail_hi": p_hi,
    }
