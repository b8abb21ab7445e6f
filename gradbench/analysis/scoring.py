"""Scores and ranks from run records (core/record.py is their schema). pandas + numpy only:
no torch, no lightning, so a leaderboard can be rebuilt on any machine from a results file.

Everything is computed per (task, strategy) across seeds and stress levels (lr_mult):

* Runs. "skipped" runs (the strategy does not apply) and "error" runs (a bug, not
  instability) are left out of every score; errors are counted in an ``errors`` column. A
  (task, strategy) whose runs are all skipped is "n/a" there; one with nothing but errors
  (and skips) is "error"; one whose runs are baseline's own (the same resolved spec at every
  seed and level) is "= baseline". None of them is ranked on that task, nor penalised for it
  (overall, an "= baseline" task counts with baseline's rank there).
* Failure: a run diverged, or collapsed (it finished, but its final validation value is no
  better than chance + COLLAPSE_SHARE of the gap to the target). A failed run counts at
  chance for validation and test and as never reaching the target.
* Grid: the runs at the learning-rate levels of the suite (under a tuning protocol, the
  sweep: every level on the same seeds; without one, every run). Extra trials and final
  seeds are not on it.
* Stability: the share of the grid's scored runs (ok + diverged) that did not fail.
  Tie-break: the spike rate, (loss_spikes + grad_spikes) per 1000 optimizer steps over the
  grid's runs; fewer is more stable. It orders rows with an equal composite and picks the
  most/least stable strategy to plot; it never changes a score, so equal composites stay
  exact ties.
* Stable region: the grid's levels at which no seed failed, out of the levels run; the
  learning-rate response (lr_response.py) reads more off the levels.
* Chosen configuration (choice.py): a level, and after a protocol's extra trials the value
  of a tuned parameter; among those tried on the tuning seeds where a seed learned, the one
  whose mean final validation value is best, failed seeds at chance; ties go to the smaller
  lr_mult. Final seeds and test metrics are never looked at to choose. No such
  configuration: the strategy failed the task; it is scored at chance and shares the task's
  last rank.
* Speed: at the chosen configuration, the median over its seeds (the tuning seeds that ran
  there and the final ones) of steps_to_target, where a seed that never reaches the target,
  or failed, counts as infinity (AlgoPerf). The score is the best median on the task divided
  by this one: 1 for the fastest, 0 for never.
* Accuracy: at the chosen configuration, the mean test metric over its seeds, a failed seed
  counting at chance (never dropped), with a 95% Student t interval (stats.py; the page
  flags it under MIN_SEEDS seeds). The tuning seeds among them were part of the choice (the
  DeepOBS/AlgoPerf pattern reuses them), which favours the chosen configuration a little;
  the page says so. Normalised to [0, 1] between chance (0) and the best strategy on the
  task (1), in the metric's direction (for mse lower is better).
* Tied group: the strategies a one-sided paired t-test over seeds (Holm-corrected over the
  other strategies that learned, ALPHA) cannot tell from the task's leader on the test metric.
* Paired comparison: P(strategy beats "baseline" on the same seed), each at its own chosen
  configuration, on the test metric (failed = chance); a tie counts 1/2, a seed where both failed
  does not count; with a Wilson interval.
  n/a without a baseline.
* Composite: weighted mean of stability share, speed ratio and normalised accuracy
  (DEFAULT_WEIGHTS, overridable; weights are normalised to sum to 1 so the composite stays
  in [0, 1]). Rank within a task: by composite, rounded to 9 decimals so float noise does
  not split ties, "min" method (equal composites share the best rank); every failed strategy
  takes the last rank (the number of strategies ranked on the task).
* Overall rank: the mean of a strategy's within-task ranks, each as a share of the task's
  field ((rank - 1) / (strategies ranked - 1): 0 first, 1 last), over the tasks where it was
  ranked (where its runs are baseline's, baseline's rank), leaving out a task where every
  strategy shares one rank; then "min"-ranked among the strategies ranked on the same set of
  tasks only (a mean over other tasks does not compare), one table per set. An arm that is
  baseline's runs on every task of its set is shown, not ranked. Why
  mean rank rather than the area under a performance profile: composites are already
  normalised per task, a suite has a handful of tasks (the profile would be a coarse step
  function whose area hinges on an arbitrary tau_max), and a mean rank over applicable
  tasks is easy to check by hand. The mean composite is shown next to it as context and
  orders rows with an equal mean rank.
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
from ..core.validation import validated
from . import lr_response
from .choice import changed_params, choose
from .runs import COLLAPSE_SHARE, GRID_PHASES, METRIC_RANGE, SCORED, level_results, outcomes, runs_frame, task_meta
from .stats import ALPHA, holm, paired_t_p, t_interval, wilson

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
    "diverged": "Int64",
    "not_run": "Int64",
    "collapsed": "Int64",
    "errors": "Int64",
    "skipped": "Int64",
    "failed": "object",  # no configuration where a seed learned (None where not scored)
    "stability": "float",
    "grid_runs": "Int64",
    "grid_failed": "Int64",
    "spike_rate": "float",
    "stable_levels": "Int64",
    "levels": "Int64",
    "chosen_lr_mult": "float",
    "chosen_params": "object",
    "chosen_key": "object",
    "configs_tried": "Int64",
    "steps_to_target": "float",
    "speed": "float",
    "accuracy": "float",
    "accuracy_lo": "float",
    "accuracy_hi": "float",
    "accuracy_norm": "float",
    "seeds_at_chosen": "Int64",
    "tied": "object",
    "tie_p": "float",
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
        row, seeds = _score_pair(task, strategy, group, task_meta(runs, task))
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


def _score_pair(task: str, strategy: str, g: pd.DataFrame, meta: dict) -> tuple[dict, dict]:
    """Scores that depend on this pair's runs only, plus its per-seed test values (for the
    paired comparison). Scores relative to other strategies are filled in by _score_task."""
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

    chance = meta["chance"]
    diverged, collapsed = outcomes(scored, meta)
    # stability is read off the learning-rate grid, where every level has the same seeds
    grid = scored[scored["phase"].isin(GRID_PHASES)]
    grid_failed = _failed(grid, meta)
    levels = level_results(grid, meta)
    steps = grid["steps"].fillna(0).astype(float).sum()
    choice = choose(scored, meta)
    not_run = scored["not_run"].astype(bool)
    row.update(
        status="scored",
        diverged=int((diverged & ~not_run).sum()),
        not_run=int(not_run.sum()),
        collapsed=int(collapsed.sum()),
        failed=choice is None,
        stability=float((~grid_failed).mean()) if len(grid_failed) else math.nan,
        grid_runs=len(grid_failed),
        grid_failed=int(grid_failed.sum()),
        spike_rate=float(grid["spikes"].sum() / steps * 1000) if steps > 0 else math.nan,
        stable_levels=int((~levels["failed"]).sum()),
        levels=len(levels),
    )
    if choice is None:  # no configuration where a seed learned: scored as failed, at chance, never dropped
        row.update(lr_response.response(levels, meta, None))
        row.update(steps_to_target=math.inf, accuracy=chance, accuracy_lo=chance, accuracy_hi=chance)
        seeds = sorted(set(scored["seed"]))
        return row, {s: chance for s in seeds}
    # the chosen configuration's runs at every seed: the tuning seeds and the final ones
    final = scored[(scored["lr_mult"] == choice.lr_mult) & (scored["params"] == choice.params)]
    final_failed = _failed(final, meta)
    # A failed seed's model is unusable: it counts at chance for test, and as never reaching
    # the target, so surviving seeds never flatter the strategy and a run that learned nothing
    # never scores above one that learned. An ok run with no finite metric recorded is treated
    # the same way (it measured nothing better).
    test = final["test"].where(~final_failed & final["test"].notna(), chance).astype(float)
    to_target = final["steps_to_target"].where(~final_failed & final["steps_to_target"].notna(), math.inf)
    seed_test = test.groupby(final["seed"]).mean()  # one value per seed
    acc, lo, hi = t_interval(seed_test.to_numpy(), METRIC_RANGE.get(meta["metric"], (-math.inf, math.inf)))
    declared = grid["params"].iloc[0] if not grid.empty else choice.params
    row.update(lr_response.response(levels, meta, final_failed))
    row.update(
        chosen_lr_mult=choice.lr_mult,
        chosen_params=changed_params(choice, json.loads(declared)),
        chosen_key=choice.params,
        configs_tried=choice.tried,
        seeds_at_chosen=len(seed_test),
        steps_to_target=float(np.median(to_target.astype(float).groupby(final["seed"]).mean())),
        accuracy=acc,
        accuracy_lo=lo,
        accuracy_hi=hi,
    )
    return row, seed_test.to_dict()


def _failed(scored: pd.DataFrame, meta: dict) -> pd.Series:
    diverged, collapsed = outcomes(scored, meta)
    return diverged | collapsed


# ------------------------------------------------------------------------ one task


def _score_task(rows: pd.DataFrame, per_seed: dict, w: dict) -> pd.DataFrame:
    """Scores relative to the other strategies on the task: speed ratio, normalised
    accuracy, paired win-rate vs baseline, composite and rank."""
    rows = rows.copy()
    ok = rows["status"] == "scored"
    if not ok.any():
        return rows
    first = rows[ok].iloc[0]
    sign = 1.0 if first["higher_is_better"] else -1.0
    chance = first["chance"]

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
    base = per_seed.get((task, BASELINE), {})
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
    failed = ok & rows["failed"].fillna(False).astype(bool)
    rows.loc[failed, "rank"] = int(ok.sum())
    _tied_with_leader(rows, ok & ~failed, per_seed, sign)
    return rows


def _tied_with_leader(rows: pd.DataFrame, contenders: pd.Series, per_seed: dict, sign: float) -> None:
    """Mark the strategies that cannot be told apart from the task's leader (rank 1): a
    one-sided paired t-test over shared seeds of the leader's test metric against theirs
    (failed seeds at chance), Holm-corrected over the other strategies that learned, ALPHA."""
    if not contenders.any():
        return
    order = rows.loc[contenders].sort_values("composite", ascending=False, kind="mergesort")
    leader = order.index[0]
    task = rows.at[leader, "task"]
    mine = per_seed.get((task, rows.at[leader, "strategy"]), {})
    others, pvalues = [], []
    for i in order.index[1:]:
        theirs = per_seed.get((task, rows.at[i, "strategy"]), {})
        seeds = sorted(set(mine) & set(theirs))
        others.append(i)
        pvalues.append(paired_t_p([sign * (mine[s] - theirs[s]) for s in seeds]) if seeds else 1.0)
    rows.loc[contenders, "tied"] = False
    rows.at[leader, "tied"] = True
    for i, p, told_apart in zip(others, pvalues, holm(pvalues, ALPHA)):
        rows.at[i, "tie_p"] = p
        rows.at[i, "tied"] = not told_apart


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
