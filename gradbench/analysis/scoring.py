"""Scores and ranks from run records (core/record.py is their schema). pandas + numpy only:
no torch, no lightning, so a leaderboard can be rebuilt on any machine from a results file.

Everything is computed per (task, strategy) across seeds and stress levels (lr_mult). Three
headline measures, each named for what it measures, and a composite kept as an optional view:

* Quality at the tuned configuration: the mean test metric over the tested seeds, and the
  paired effect vs baseline's tuned configuration on the same seeds (arm - baseline, in the
  metric's units), with its 95% t interval and a two-sided paired t-test, Holm-corrected
  over the task's arms.
* Explosion tolerance: headroom, the octaves between the arm's max stable lr and its own
  tuned lr (lr_response.py), counting only runs that exploded or collapsed; the absolute max
  stable lr beside it, comparable within an optimizer family.
* Cost: step time and memory, measured apart (arm_cost.py), shown where they are saved.

The rules:

* Runs. "skipped" runs (the strategy does not apply) and "error" runs (a bug, not
  instability) are left out of every score; errors are counted in an ``errors`` column. A
  (task, strategy) whose runs are all skipped is "n/a" there; one with nothing but errors
  (and skips) is "error"; one whose runs are baseline's own (the same resolved spec at every
  seed and level) is "= baseline". None of them is ranked on that task, nor penalised for it
  (overall, an "= baseline" task counts with baseline's rank there).
* How a run ended (core/taxonomy.py): exploded, collapsed (after progress), never learned,
  or learned; recorded, or inferred from the curves of a record made before the field
  (counted in ``outcomes_inferred``). Only exploded and collapsed count against stability.
* Grid: the runs at the learning-rate levels of the suite (under a tuning protocol, the
  sweep: every level on the same seeds; without one, every run). Extra trials and final
  seeds are not on it.
* Stability: the share of the grid's scored runs that neither exploded nor collapsed.
  Tie-break: the spike rate, (loss_spikes + grad_spikes) per 1000 optimizer steps over the
  grid's runs; fewer is more stable. It orders rows with an equal composite and picks the
  most/least stable strategy to plot; it never changes a score.
* Chosen configuration (choice.py): a level, and after a protocol's extra trials the value
  of a tuned parameter, chosen on the tuning seeds' validation values only. No such
  configuration (no seed learned anywhere): the strategy failed the task; it is scored at
  chance and shares the task's last rank.
* Tested seeds: the seeds at the chosen configuration that were not used to choose it (under
  a protocol, the final seeds beyond the sweep's); where the choice had one configuration to
  choose from, or no such seed exists yet, every seed there (``tested_on`` says which).
  Quality, effects, ties and P(unstable) read the tested seeds only.
* A seed's value: its test metric as measured when finite, whatever its outcome (a run
  that collapsed at an mse of 0.15 scores 0.15), never worse than chance; chance when none
  is finite (a run that exploded). ``failed_seeds`` names the tested seeds that did not learn.
* Tied group: one rule, monotone in the quality gap to the task's leader (the best mean over
  tested seeds among arms that learned): a one-sided paired t-test of the leader against each
  other arm, Holm-corrected (ALPHA), tells some arms apart; every arm whose gap to the
  leader is smaller than the smallest gap told apart is tied. So an arm further from the
  leader is never tied while a closer one is not.
* Paired comparison: P(strategy beats baseline on the same tested seed), a tie counting 1/2,
  a seed where both sit at chance not counting; with a Wilson interval. n/a without a baseline.
* Speed (composite only): at the chosen configuration, the median over its seeds of
  steps_to_target, a seed that did not learn counting as never (AlgoPerf). The score is the
  best median on the task divided by this one: 1 for the fastest, 0 for never.
* Composite (an optional view, its weights shown): weighted mean of stability share, speed
  ratio and normalised quality (DEFAULT_WEIGHTS, overridable; normalised to sum to 1).
  Normalised quality is the mean over tested seeds between chance (0) and the task's best
  strategy (1). Rank within a task: by composite, rounded to 9 decimals so float noise does
  not split ties, "min" method; every failed strategy takes the last rank.
* Overall rank (of the composite view): the mean of a strategy's within-task ranks, each as
  a share of the task's field ((rank - 1) / (strategies ranked - 1): 0 first, 1 last), over
  the tasks where it was ranked (where its runs are baseline's, baseline's rank), leaving out
  a task where every strategy shares one rank; then "min"-ranked among the strategies ranked
  on the same set of tasks only (a mean over other tasks does not compare), one table per
  set. An arm that is baseline's runs on every task of its set is shown, not ranked.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.record import Record
from ..core.settings import Weights
from ..core.taxonomy import COLLAPSE_SHARE, COLLAPSED, EXPLODED, LEARNED, NEVER_LEARNED
from ..core.validation import validated
from . import lr_response
from .choice import SWEEP_PHASES, TUNING_PHASES, bracketed, changed_params, choose
from .runs import (
    GRID_PHASES,
    METRIC_RANGE,
    SCORED,
    did_not_learn,
    level_results,
    per_config,
    runs_frame,
    task_meta,
    unstable,
)
from .stats import ALPHA, holm, holm_adjusted, paired_effect, paired_t_p, t_interval, wilson

__all__ = ["COLLAPSE_SHARE", "SCORED", "level_results", "runs_frame", "score"]

DEFAULT_WEIGHTS = {"stability": 0.4, "speed": 0.2, "accuracy": 0.4}
BASELINE = "baseline"
RANK_DECIMALS = 9  # composites equal to this many decimals are ties
SAME_AS_BASELINE = "= baseline"

# The score tables' columns, each with its dtype, declared once: "Int64" and "float" columns are
# cast so (a missing value is <NA> or NaN), "object" ones hold text, bools and mixed values.
PER_TASK_SCHEMA: dict[str, str] = {
    "task": "object",
    "strategy": "object",
    "status": "object",  # scored, n/a, error or "= baseline"
    "reason": "object",
    "metric": "object",
    "higher_is_better": "object",
    "target": "float",
    "chance": "float",
    "runs": "Int64",
    "scored": "Int64",
    "diverged": "Int64",  # runs the monitor stopped (status diverged)
    "not_run": "Int64",
    # how the scored runs ended (core/taxonomy.py); outcomes_inferred: of them, read off the curves
    "exploded": "Int64",
    "collapsed": "Int64",
    "never_learned": "Int64",
    "outcomes_inferred": "Int64",
    "errors": "Int64",
    "skipped": "Int64",
    "failed": "object",  # no configuration where a seed learned (None where not scored)
    "stability": "float",
    "grid_runs": "Int64",
    "grid_unstable": "Int64",
    "spike_rate": "float",
    "stable_levels": "Int64",
    "levels": "Int64",
    "chosen_lr_mult": "float",
    "chosen_params": "object",
    "chosen_key": "object",
    "configs_tried": "Int64",
    # the lr optimum at the declared parameters has a measured lr below and above it (sweep and lr
    # trials); bracket: why not, e.g. "best at the highest lr run (x4)"; None for an arm that failed
    "bracketed": "object",
    "bracket": "object",
    "optimizer": "object",
    "lr_chosen": "float",  # the chosen configuration's peak lr, absolute
    "lr_max_stable": "float",  # the max stable level's, absolute
    "tested_on": "object",  # "held-out": seeds not used to choose; "tuning": no such seed, every seed there
    "tested_seeds": "Int64",
    "failed_seeds": "object",  # the tested seeds that did not learn, with how they ended and their value
    "steps_to_target": "float",
    "speed": "float",
    "accuracy": "float",
    "accuracy_lo": "float",
    "accuracy_hi": "float",
    "accuracy_norm": "float",
    "seeds_at_chosen": "Int64",
    # the mean over the tested seeds every arm that learned on the task shares: what ranks them
    # (the seed rule gives some arms more seeds; a mean over other seeds does not compare)
    "quality_shared": "float",
    "quality_rank": "Int64",  # by quality_shared; arms that failed last
    "leader": "object",  # the arm the tied group is read against
    "tied": "object",
    "tie_p": "float",
    # the paired effect vs baseline on the tested seeds: arm - baseline, in the metric's units
    "effect": "float",
    "effect_lo": "float",
    "effect_hi": "float",
    "effect_p": "float",  # two-sided paired t-test
    "effect_p_holm": "float",  # Holm-adjusted over the task's arms
    "win_rate": "float",
    "win_lo": "float",
    "win_hi": "float",
    "paired_seeds": "Int64",
    "composite": "float",
    "rank": "Int64",
    **lr_response.SCHEMA,
}
PER_TASK_COLUMNS = list(PER_TASK_SCHEMA)
OVERALL_SCHEMA: dict[str, str] = {
    "strategy": "object",
    "rank": "Int64",
    "compared_on": "object",  # the tasks it was ranked on, comma-separated: it is ranked against those with the same
    "mean_rank": "float",
    # a smaller field's arm placed among every arm ranked on its tasks (the all-task arms too,
    # their mean taken over those tasks): batchnorm against adamw on the two image tasks
    "place_wide": "Int64",
    "wide_field": "Int64",
    "tasks_ranked": "Int64",
    "tasks_na": "Int64",
    "tasks_same": "Int64",
    "tasks_error": "Int64",
    "mean_composite": "float",
    "mean_stability": "float",
    "runs": "Int64",
    "diverged": "Int64",
    "exploded": "Int64",
    "errors": "Int64",
}
OVERALL_COLUMNS = list(OVERALL_SCHEMA)


def typed_columns(df: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    """`df` with its numeric columns cast to the schema's dtypes."""
    return df.astype({c: t for c, t in schema.items() if t != "object"})


@dataclass(frozen=True)
class Scores:
    """per_task: one row per (task, strategy) that has records; status is "scored", "n/a"
    or "error" (the last two have no scores and no rank). overall: one row per strategy."""

    per_task: pd.DataFrame
    overall: pd.DataFrame
    weights: dict[str, float] = field(default_factory=dict)


def resolve_weights(weights: Weights | Mapping | None = None) -> dict[str, float]:
    """DEFAULT_WEIGHTS updated with `weights` (the suite's `scoring: {weights: ...}`, checked
    by the suite file's own model, core.settings.Weights), normalised to sum to 1. Bad keys or
    values are a UserError naming the field."""
    given = weights if isinstance(weights, Weights) else validated(Weights, weights or {}, "scoring.weights")
    merged = {k: default if (v := getattr(given, k)) is None else v for k, default in DEFAULT_WEIGHTS.items()}
    total = sum(merged.values())  # > 0: the model refuses all three at 0
    return {k: v / total for k, v in merged.items()}


def score(records: Iterable[Record | dict], weights: Mapping | None = None) -> Scores:
    """Score the records (the last record of each run_id counts; see module docstring)."""
    w = resolve_weights(weights)
    runs = runs_frame(records)
    rows, per_seed = [], {}
    for (task, strategy), group in runs.groupby(["task", "strategy"], sort=True):
        every_seed = sorted(set(runs.loc[runs["task"] == task, "seed"]))
        row, seeds = _score_pair(task, strategy, group, task_meta(runs, task), every_seed)
        rows.append(row)
        per_seed[(task, strategy)] = seeds
    per_task = _mark_same_as_baseline(pd.DataFrame(rows, columns=PER_TASK_COLUMNS), runs)
    if not per_task.empty:
        per_task = pd.concat(
            [_score_task(g, per_seed, w) for _, g in per_task.groupby("task", sort=True)], ignore_index=True
        )
    per_task = _sort_per_task(per_task)
    return Scores(per_task=per_task, overall=_overall(per_task), weights=w)


def _mark_same_as_baseline(per_task: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """An arm whose every run on a task is baseline's run at the same seed and level (the same
    spec but for its name: relu on a ReLU model, sgd_momentum on an SGD+momentum task) is
    "= baseline" there: shown, not ranked as a row of its own."""
    per_task = per_task.copy()
    base = runs[runs["strategy"] == BASELINE]
    base_keys = {(t, s, lr): k for t, s, lr, k in zip(base["task"], base["seed"], base["lr_mult"], base["spec_key"])}
    for i, row in per_task.iterrows():
        if row["strategy"] == BASELINE or row["status"] != "scored":
            continue
        mine = runs[(runs["task"] == row["task"]) & (runs["strategy"] == row["strategy"])]
        mine = mine[mine["status"] != "skipped"]
        same = [
            k is not None and base_keys.get((row["task"], s, lr)) == k
            for s, lr, k in zip(mine["seed"], mine["lr_mult"], mine["spec_key"])
        ]
        if same and all(same):
            per_task.at[i, "status"] = SAME_AS_BASELINE
            per_task.at[i, "reason"] = "its runs are baseline's: the resolved spec is the same"
    return per_task


# ------------------------------------------------------------------- one (task, strategy)


def _score_pair(task: str, strategy: str, g: pd.DataFrame, meta: dict, every_seed: list) -> tuple[dict, dict]:
    """Scores that depend on this pair's runs only, plus its per-seed test values on the tested
    seeds (for the paired comparisons; an arm that failed the task is at chance on every seed
    of the task, `every_seed`, final seeds included, which it never ran). Scores relative to
    other strategies are filled in by _score_task."""
    counts = Counter(g["status"])
    scored = g[g["status"].isin(SCORED)]
    row = {c: None for c in PER_TASK_COLUMNS}
    row.update(
        task=task,
        strategy=strategy,
        **meta,
        runs=len(g),
        scored=len(scored),
        diverged=counts["diverged"],
        errors=counts["error"],
        skipped=counts["skipped"],
    )
    if scored.empty:
        row["status"] = "error" if counts["error"] else "n/a"
        bad = g[g["status"] == ("error" if counts["error"] else "skipped")]
        row["reason"] = "; ".join(sorted({str(x) for x in bad["reason"] if x is not None})) or None
        return row, {}

    ended = Counter(scored["outcome"])
    # stability is read off the learning-rate grid, where every level has the same seeds
    grid = scored[scored["phase"].isin(GRID_PHASES)]
    grid_unstable = unstable(grid)
    levels = level_results(grid, meta)
    # the max stable lr also reads the bracketing's levels (the same seeds, beyond the grid)
    swept = level_results(scored[scored["phase"].isin(SWEEP_PHASES)], meta, SWEEP_PHASES)
    steps = grid["steps"].fillna(0).astype(float).sum()
    choice = choose(scored, meta)
    not_run = scored["not_run"].astype(bool)
    row.update(
        status="scored",
        diverged=int(((scored["status"] == "diverged") & ~not_run).sum()),
        not_run=int(not_run.sum()),
        exploded=ended[EXPLODED],
        collapsed=ended[COLLAPSED],
        never_learned=ended[NEVER_LEARNED],
        outcomes_inferred=int(scored["outcome_inferred"].astype(bool).sum()),
        failed=choice is None,
        stability=float((~grid_unstable).mean()) if len(grid_unstable) else math.nan,
        grid_runs=len(grid_unstable),
        grid_unstable=int(grid_unstable.sum()),
        spike_rate=float(grid["spikes"].sum() / steps * 1000) if steps > 0 else math.nan,
        stable_levels=int((~levels["unstable"]).sum()),
        levels=len(levels),
        optimizer=_one(scored["optimizer"]),
    )
    if choice is None:  # no configuration where a seed learned: scored as failed, at chance, never dropped
        response = lr_response.response(levels, meta, None, swept=swept)
        row.update(response, lr_max_stable=_rate_at(scored, response["max_stable_lr"]))
        row.update(steps_to_target=math.inf, accuracy=meta["chance"], accuracy_lo=meta["chance"])
        row.update(accuracy_hi=meta["chance"])
        return row, {s: meta["chance"] for s in every_seed}
    # the chosen configuration's runs at every seed: the tuning seeds and the final ones
    at = scored[(scored["lr_mult"] == choice.lr_mult) & (scored["params"] == choice.params)]
    tested, tested_on = _tested(at, scored, choice.tried)
    seed_test = _seed_values(tested, meta).groupby(tested["seed"]).mean()  # one value per seed
    acc, lo, hi = t_interval(seed_test.to_numpy(), METRIC_RANGE.get(meta["metric"], (-math.inf, math.inf)))
    # speed (the composite's): a seed that did not learn never reaches the target
    failed_at = did_not_learn(at, meta)
    to_target = at["steps_to_target"].where(~failed_at & at["steps_to_target"].notna(), math.inf)
    declared = grid["params"].iloc[0] if not grid.empty else choice.params
    row["bracketed"], row["bracket"] = _bracket(scored, meta, declared)
    response = lr_response.response(levels, meta, unstable(tested), choice.lr_mult, swept=swept)
    row.update(response)
    row.update(
        chosen_lr_mult=choice.lr_mult,
        chosen_params=changed_params(choice, json.loads(declared)),
        chosen_key=choice.params,
        configs_tried=choice.tried,
        lr_chosen=float(_one(at["lr"]) or math.nan),
        lr_max_stable=_rate_at(scored, response["max_stable_lr"]),
        tested_on=tested_on,
        tested_seeds=len(seed_test),
        failed_seeds=_failed_seeds(tested),
        seeds_at_chosen=int(at["seed"].nunique()),
        steps_to_target=float(np.median(to_target.astype(float).groupby(at["seed"]).mean())),
        accuracy=acc,
        accuracy_lo=lo,
        accuracy_hi=hi,
    )
    return row, seed_test.to_dict()


def _bracket(scored: pd.DataFrame, meta: dict, declared: str) -> tuple[bool, str]:
    """Whether the best learning rate at the declared parameters (over the sweep, the
    bracketing and the lr trials, by the choice's rule) is bracketed (choice.bracketed: a
    measured rate on each side of some rate with the best value); else the edge it sits on."""
    tuning = scored[scored["phase"].isin(TUNING_PHASES) & (scored["params"] == declared)]
    table = per_config(tuning, meta, ["lr_mult"])
    if table["all_failed"].all():
        return False, "no lr at the declared parameters where a seed learned"
    inside, best = bracketed(table, meta)
    if inside:
        return True, ""
    levels = list(table.index)
    if len(levels) == 1:
        return False, f"one lr run ({_lr_label(best)})"
    edge = "lowest" if best == levels[0] else "highest"
    return False, f"best at the {edge} lr run ({_lr_label(best)})"


def _lr_label(m: float) -> str:
    """A level as the bracket reason names it (plots.lr_label draws matplotlib in)."""
    return f"x{m:.3g}"


def _rate_at(scored: pd.DataFrame, lr_mult: float) -> float:
    """The absolute peak rate of the sweep's runs at a level (NaN for none, or no rate known)."""
    at = scored[scored["phase"].isin(SWEEP_PHASES) & (scored["lr_mult"] == lr_mult)]
    return float(_one(at["lr"]) or math.nan)


def _tested(at: pd.DataFrame, scored: pd.DataFrame, tried: int) -> tuple[pd.DataFrame, str]:
    """The runs at the chosen configuration whose seeds were not used to choose it ("held-out"),
    or, when the choice had one configuration to choose from or no such seed exists yet, all of
    them ("tuning")."""
    tuning_seeds = set(scored.loc[scored["phase"].isin(TUNING_PHASES), "seed"]) if tried > 1 else set()
    held = at[~at["seed"].isin(tuning_seeds)]
    return (held, "held-out") if len(held) else (at, "tuning")


def _seed_values(runs: pd.DataFrame, meta: dict) -> pd.Series:
    """Each run's test value as measured when finite, whatever its outcome, never worse than
    chance; chance without a finite one (a run that exploded)."""
    chance = meta["chance"]
    test = runs["test"].astype(float)
    test = test.where(np.isfinite(test), chance)
    if chance is None or math.isnan(chance):
        return test
    sign = 1.0 if meta["higher_is_better"] else -1.0
    return test.where(sign * (test - chance) >= 0, chance)


def _failed_seeds(tested: pd.DataFrame) -> str:
    """The tested seeds that did not learn: 'seed 4 never learned (0.152)' ... ('' when none)."""
    parts = []
    for seed, outcome, value in zip(tested["seed"], tested["outcome"], tested["test"]):
        if outcome == LEARNED:
            continue
        shown = f" ({value:.4g})" if value is not None and not pd.isna(value) else ""
        parts.append(f"seed {seed} {str(outcome).replace('_', ' ')}{shown}")
    return "; ".join(parts)


def _one(values: pd.Series):
    """The value a column holds for every run of a pair (the optimizer's name ...); None for none."""
    known = values.dropna()
    return known.iloc[0] if len(known) else None


# ------------------------------------------------------------------------ one task


def _score_task(rows: pd.DataFrame, per_seed: dict, w: dict) -> pd.DataFrame:
    """Scores relative to the other strategies on the task: the quality rank, the paired
    effects vs baseline, the tied group, the paired win-rate vs baseline, and the composite
    view (speed ratio, normalised quality, composite and its rank)."""
    rows = rows.copy()
    ok = rows["status"] == "scored"
    if not ok.any():
        return rows
    first = rows[ok].iloc[0]
    sign = 1.0 if first["higher_is_better"] else -1.0
    chance = first["chance"]
    failed = ok & rows["failed"].fillna(False).astype(bool)
    learned = ok & ~failed

    steps = rows.loc[ok, "steps_to_target"].astype(float)
    fastest = steps.min()
    rows.loc[ok, "speed"] = [_speed_ratio(fastest, s) for s in steps]

    acc = rows.loc[ok, "accuracy"].astype(float)
    best = acc.max() if sign > 0 else acc.min()
    span = sign * (best - chance)
    # Nobody beat chance -> nothing to normalise by: every strategy scores 0.
    norm = (sign * (acc - chance) / span).clip(0, 1) if span > 0 else acc * 0.0
    rows.loc[ok, "accuracy_norm"] = norm
    task = first["task"]
    shared = (
        set.intersection(*(set(per_seed[(task, s)]) for s in rows.loc[learned, "strategy"])) if learned.any() else set()
    )
    for i in rows.index[learned]:
        mine = per_seed[(task, rows.at[i, "strategy"])]
        rows.at[i, "quality_shared"] = (
            float(np.mean([mine[s] for s in sorted(shared)])) if shared else float(rows.at[i, "accuracy"])
        )
    quality = (sign * rows.loc[learned, "quality_shared"].astype(float)).round(RANK_DECIMALS)
    rows.loc[learned, "quality_rank"] = quality.rank(method="min", ascending=False)
    rows.loc[failed, "quality_rank"] = int(ok.sum())

    base = per_seed.get((task, BASELINE), {})
    _effects_vs_baseline(rows, ok, per_seed, base, task)
    for i in rows.index[ok]:
        if rows.at[i, "strategy"] != BASELINE and base:
            rate, lo, hi, n = _win_rate(per_seed[(task, rows.at[i, "strategy"])], base, sign, chance)
            rows.at[i, "win_rate"], rows.at[i, "win_lo"], rows.at[i, "win_hi"], rows.at[i, "paired_seeds"] = (
                rate,
                lo,
                hi,
                n,
            )

    comp = (
        w["stability"] * rows.loc[ok, "stability"].astype(float)
        + w["speed"] * rows.loc[ok, "speed"].astype(float)
        + w["accuracy"] * rows.loc[ok, "accuracy_norm"].astype(float)
    )
    rows.loc[ok, "composite"] = comp
    rows.loc[ok, "rank"] = comp.round(RANK_DECIMALS).rank(method="min", ascending=False)
    # an arm that failed on the task (no level where a seed learned) ranks with the failures:
    # all of them share the last rank, below every arm that learned, even when none did
    rows.loc[failed, "rank"] = int(ok.sum())
    _tied_with_leader(rows, learned, per_seed, sign)
    return rows


def _effects_vs_baseline(rows: pd.DataFrame, ok: pd.Series, per_seed: dict, base: dict, task: str) -> None:
    """Each arm's paired effect vs baseline over their shared tested seeds (arm - baseline, in
    the metric's units), its 95% t interval, the two-sided paired t-test, Holm-adjusted over
    the task's arms."""
    if not base:
        return
    arms = [i for i in rows.index[ok] if rows.at[i, "strategy"] != BASELINE]
    pvalues = []
    for i in arms:
        mine = per_seed.get((task, rows.at[i, "strategy"]), {})
        seeds = sorted(set(mine) & set(base))
        effect, lo, hi, p = paired_effect([mine[s] - base[s] for s in seeds])
        rows.at[i, "effect"], rows.at[i, "effect_lo"], rows.at[i, "effect_hi"], rows.at[i, "effect_p"] = (
            effect,
            lo,
            hi,
            p,
        )
        pvalues.append(p)
    for i, adjusted in zip(arms, holm_adjusted(pvalues)):
        rows.at[i, "effect_p_holm"] = adjusted


def _tied_with_leader(rows: pd.DataFrame, contenders: pd.Series, per_seed: dict, sign: float) -> None:
    """Mark the strategies tied with the task's leader (the best mean test metric over the tested
    seeds they all share; equal means: the higher composite, then the name): a one-sided paired t-test of the leader against each other arm that learned,
    Holm-corrected (ALPHA), tells some apart; an arm is tied when its gap to the leader is
    smaller than the smallest gap told apart. Monotone in the gap by construction: a
    noisy arm far behind is never tied while a steady one close by is not."""
    if not contenders.any():
        return
    gap = -sign * rows.loc[contenders, "quality_shared"].astype(float)
    order = rows.loc[contenders].assign(_gap=gap.round(RANK_DECIMALS), _c=-rows.loc[contenders, "composite"])
    order = order.sort_values(["_gap", "_c", "strategy"], kind="mergesort")
    leader = order.index[0]
    task = rows.at[leader, "task"]
    mine = per_seed.get((task, rows.at[leader, "strategy"]), {})
    others, pvalues = list(order.index[1:]), []
    for i in others:
        theirs = per_seed.get((task, rows.at[i, "strategy"]), {})
        seeds = sorted(set(mine) & set(theirs))
        pvalues.append(paired_t_p([sign * (mine[s] - theirs[s]) for s in seeds]) if seeds else 1.0)
    gaps = {i: float(order.at[i, "_gap"] - order.at[leader, "_gap"]) for i in others}
    apart = [gaps[i] for i, told in zip(others, holm(pvalues, ALPHA)) if told]
    bound = min(apart) if apart else math.inf
    rows.loc[contenders, "tied"] = False
    rows.loc[contenders, "leader"] = False
    rows.at[leader, "tied"] = True
    rows.at[leader, "leader"] = True
    for i, p in zip(others, pvalues):
        rows.at[i, "tie_p"] = p
        rows.at[i, "tied"] = gaps[i] < bound


def _speed_ratio(fastest: float, steps: float) -> float:
    if math.isinf(steps):
        return 0.0  # never reached (also covers "nobody reached it": all score 0)
    return 1.0 if steps == fastest else fastest / steps


def _win_rate(mine: dict, base: dict, sign: float, chance: float) -> tuple[float, float, float, int]:
    """(P, low, high, n): the probability that mine beats baseline on the same seed (the paired
    form of rliable's probability of improvement; a tie counts 1/2), with a 95% Wilson interval
    over the shared seeds (a bootstrap gives [1, 1] for 3 wins of 3). NaN when no seed is shared."""
    seeds = sorted(set(mine) & set(base))
    # a seed where both sit at chance (both failed) says nothing about which is better
    seeds = [s for s in seeds if not (mine[s] == base[s] == chance)]
    if not seeds:
        return math.nan, math.nan, math.nan, 0
    wins = [1.0 if sign * (mine[s] - base[s]) > 0 else 0.5 if mine[s] == base[s] else 0.0 for s in seeds]
    p, lo, hi = wilson(sum(wins), len(wins))
    return p, lo, hi, len(seeds)


def _sort_per_task(df: pd.DataFrame) -> pd.DataFrame:
    """Task, then ranked rows by rank (equal ranks: more stable, fewer spikes, then name),
    then "error" rows, then "n/a" rows."""
    df = df.copy()
    df["_group"] = df["status"].map({"scored": 0, SAME_AS_BASELINE: 1, "error": 2, "n/a": 3})
    df["_stab"] = -df["stability"].astype(float)
    df["_spikes"] = df["spike_rate"].astype(float)
    df = df.sort_values(
        ["task", "_group", "rank", "_stab", "_spikes", "strategy"],
        kind="mergesort",
        na_position="last",
        ignore_index=True,
    )
    return typed_columns(df.drop(columns=["_group", "_stab", "_spikes"]), PER_TASK_SCHEMA)


# ------------------------------------------------------------------------- overall


def uninformative_tasks(per_task: pd.DataFrame) -> list[str]:
    """Tasks whose ranked strategies all share one rank (every one failed there, say), or that
    rank fewer than two: they tell no strategy from another, so the overall rank leaves them out."""
    ranked = per_task[per_task["status"] == "scored"]
    return sorted(t for t, g in ranked.groupby("task") if g["rank"].nunique() <= 1)


def task_shares(per_task: pd.DataFrame, tasks: list[str] | None = None) -> pd.DataFrame:
    """Each strategy's standing per task, the overall rank's input: one row per (strategy,
    task) where it is ranked, with its rank as a share of the task's field (0 first, 1 last;
    tasks rank different numbers of strategies, and the last of 31 must weigh what the last of
    43 weighs), its composite and stability, and `own` (False where its runs are baseline's:
    it stands where baseline stands). `tasks`: these tasks (a resample's, say), else every
    task but those where all strategies share one rank."""
    if tasks is None:
        flat = set(uninformative_tasks(per_task))
        tasks = sorted(t for t in per_task["task"].unique() if t not in flat)
    pt = per_task[per_task["task"].isin(tasks)]
    scored = pt[pt["status"] == "scored"]
    counts = scored.groupby("task")["rank"].count()
    own = scored.assign(own=True)
    base = scored[scored["strategy"] == BASELINE].set_index("task")
    same = pt[(pt["status"] == SAME_AS_BASELINE) & pt["task"].isin(base.index)]
    copies = base.loc[same["task"]].reset_index().assign(strategy=same["strategy"].to_numpy(), own=False)
    rows = pd.concat([own, copies], ignore_index=True) if len(copies) else own
    n = rows["task"].map(counts).astype(float)
    share = (rows["rank"].astype(float) - 1) / (n - 1).where(n > 1)
    out = pd.DataFrame(
        {
            "strategy": rows["strategy"],
            "task": rows["task"],
            "share": share.fillna(0.0),
            "composite": rows["composite"].astype(float),
            "stability": rows["stability"].astype(float),
            "own": rows["own"].astype(bool),
        }
    )
    return out.sort_values(["strategy", "task"], ignore_index=True)


_DERIVED = ("rank", "place_wide", "wide_field")


def _wide_places(df: pd.DataFrame, shares: pd.DataFrame) -> tuple[list, list]:
    """Per row of a field that other arms' fields contain: its place (equal means share the
    better place) among every arm ranked on all of the field's tasks, each by its mean share
    over those tasks only, and how many they are. An arm that is baseline's copy on all of
    those tasks stands where baseline does and is left out of the count. None elsewhere."""
    # plain dicts, not a frame per arm: this runs for every arm against every arm, and
    # rank_stability re-scores a suite hundreds of times
    by_arm: dict[str, dict[str, tuple[float, bool]]] = defaultdict(dict)
    for arm, task, share, own_runs in zip(shares["strategy"], shares["task"], shares["share"], shares["own"]):
        by_arm[arm][task] = (float(share), bool(own_runs))
    places, sizes = [], []
    for strategy, compared_on, own in zip(df["strategy"], df["compared_on"], df["_own"]):
        tasks = compared_on.split(", ") if compared_on else []
        means = {
            a: round(sum(on[t][0] for t in tasks) / len(tasks), RANK_DECIMALS)
            for a, on in by_arm.items()
            if tasks and set(tasks) <= on.keys() and any(on[t][1] for t in tasks)
        }
        wider = any(len(by_arm[a]) > len(tasks) for a in means)
        if not own or strategy not in means or not wider:
            places.append(None)
            sizes.append(None)
            continue
        places.append(1 + sum(m < means[strategy] for m in means.values()))
        sizes.append(len(means))
    return places, sizes


def overall_order_key(mean_rank: float, mean_composite: float, strategy: str) -> tuple:
    """An overall table's order within one field: the mean rank as ranked (rounded), then the
    higher mean composite, then the name. rank_stability reads the top 3 in the same order."""
    rank = round(mean_rank, RANK_DECIMALS) if not math.isnan(mean_rank) else math.inf
    composite = -mean_composite if not math.isnan(mean_composite) else math.inf
    return rank, composite, strategy


def _overall(per_task: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy: its mean within-task rank over the tasks it was ranked on (its
    field), ranked only against the strategies with the same field. A mean over different
    sets of tasks does not compare: an arm that applies to one task and wins it would outrank
    one that comes second on all four. Rows come field by field, the largest first. An arm
    that is baseline's own runs on every task of its field is shown, not ranked (a copy of
    baseline would push the arms below it down)."""
    rows = []
    shares = task_shares(per_task)
    for strategy, g in per_task.groupby("strategy", sort=True):
        ranked = shares[shares["strategy"] == strategy]
        rows.append(
            {
                "strategy": strategy,
                "compared_on": ", ".join(ranked["task"]),
                "mean_rank": float(ranked["share"].mean()) if len(ranked) else math.nan,
                "tasks_ranked": len(ranked),
                "tasks_na": int((g["status"] == "n/a").sum()),
                "tasks_same": int((g["status"] == SAME_AS_BASELINE).sum()),
                "tasks_error": int((g["status"] == "error").sum()),
                "mean_composite": float(ranked["composite"].mean()) if len(ranked) else math.nan,
                "mean_stability": float(ranked["stability"].mean()) if len(ranked) else math.nan,
                "runs": int(g["runs"].sum()),
                "diverged": int(g["diverged"].sum()),
                "exploded": int(g["exploded"].fillna(0).sum()),
                "errors": int(g["errors"].sum()),
                "_own": bool(ranked["own"].any()),
            }
        )
    df = pd.DataFrame(rows, columns=[c for c in OVERALL_COLUMNS if c not in _DERIVED] + ["_own"])
    mean = df["mean_rank"].where(df["_own"]).round(RANK_DECIMALS)
    df["rank"] = mean.groupby(df["compared_on"]).rank(method="min").astype("Int64")
    # a field of one strategy, or one where all share a mean rank (all failed, say), tells none
    # from another: no rank
    alike = mean.groupby(df["compared_on"]).transform(lambda m: m.nunique() <= 1)
    df.loc[alike, "rank"] = pd.NA
    df["place_wide"], df["wide_field"] = _wide_places(df, shares)
    # field by field, the largest first; in a field the ranked arms, then the unranked copies
    order = sorted(
        df.index,
        key=lambda i: (
            -df.at[i, "tasks_ranked"],
            df.at[i, "compared_on"],
            not df.at[i, "_own"],
            *overall_order_key(df.at[i, "mean_rank"], df.at[i, "mean_composite"], df.at[i, "strategy"]),
        ),
    )
    df = df.loc[order].reset_index(drop=True).drop(columns=["_own"])
    return typed_columns(df[OVERALL_COLUMNS], OVERALL_SCHEMA)
