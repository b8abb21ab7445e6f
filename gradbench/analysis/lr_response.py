"""How each strategy responds to the learning rate: stability as a first-class result, read
off the stress levels (learning-rate multipliers) of a task. No torch.

Per (task, strategy), from the runs at each level of the learning-rate grid (under a tuning
protocol, the sweep: the same seeds at every level), a run that did not learn counting at
chance, a level's result being its mean final validation value:

* max stable lr: the highest level such that it and every level below it have no seed that
  exploded or collapsed (core/taxonomy.py; a run that never learned is under-trained, not
  unstable); "≥" when that is the top level run, none when the lowest level already fails.
* headroom, in octaves: log2(max stable lr / the chosen configuration's lr): how far the
  learning rate can rise above the arm's own tuned one before a seed explodes or collapses.
  Unit-free, so an Adam arm and an SGD arm compare; "≥" with a max stable lr that is the top
  level run; negative when the chosen lr is itself above the max stable one.
* stable range, in octaves: log2(highest / lowest) of the contiguous levels around the
  arm's best level whose mean validation result is within STABLE_TOLERANCE of the gap
  between chance and that best (0 when only the best level is).
* LR sensitivity (Wortsman et al., 2023): the mean, over the levels, of the gap between the
  arm's best mean result and the level's, as a share of |target - chance|.
* P(unstable) at the chosen configuration: seeds that exploded or collapsed / seeds tested
  there (the final seeds not used to choose; scoring.py), with a 95% Wilson interval.

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
    "headroom": "float",
    "unstable_k": "Int64",
    "unstable_n": "Int64",
    "unstable_p": "float",
    "unstable_lo": "float",
    "unstable_hi": "float",
}


def response(
    by_level: pd.DataFrame,
    meta: dict,
    unstable_at_chosen: pd.Series | None,
    chosen_lr: float = math.nan,
    swept: pd.DataFrame | None = None,
) -> dict:
    """The learning-rate response of one (task, strategy): from its per-level results on the
    grid (runs.level_results' columns), which of its tested runs at the chosen configuration
    exploded or collapsed (None without a chosen one), and the chosen lr multiplier. `swept`:
    the per-level results with the bracketing's levels beyond the grid too (the max stable lr
    reads them; the range and the sensitivity read the grid, which every arm of a family shares)."""
    sign = 1.0 if meta["higher_is_better"] else -1.0
    chance, target = meta["chance"], meta["target"]
    levels = list(by_level.index)
    means = by_level["value"]
    swept = by_level if swept is None or swept.empty else swept
    all_levels, unstable_at = list(swept.index), swept["unstable"]

    stable = [lr for i, lr in enumerate(all_levels) if not unstable_at[all_levels[: i + 1]].any()]
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

    if unstable_at_chosen is None:
        k = n = 0
        p, p_lo, p_hi = math.nan, math.nan, math.nan
    else:
        k, n = int(unstable_at_chosen.sum()), len(unstable_at_chosen)
        p, p_lo, p_hi = wilson(k, n)
    max_stable = float(stable[-1]) if stable else math.nan
    # some level where a seed learned, and more than one level to read a response off
    learned = not by_level["all_failed"].all() and len(levels) > 1
    return {
        "max_stable_lr": max_stable,
        "top_stable": bool(stable) and stable[-1] == all_levels[-1],
        # with no level where a seed learned, every level is "as good as the best": say nothing
        "stable_octaves": float(math.log2(levels[hi] / levels[lo])) if learned else math.nan,
        "lr_sensitivity": sensitivity if learned else math.nan,
        "headroom": math.log2(max_stable / chosen_lr) if max_stable > 0 and chosen_lr > 0 else math.nan,
        "unstable_k": k,
        "unstable_n": n,
        "unstable_p": p,
        "unstable_lo": p_lo,
        "unstable_hi": p_hi,
    }
