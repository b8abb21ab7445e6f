"""Run records as a table, and what each run's outcome was: the facts every score, the choice
of configuration and the plots read. pandas only (no torch).

Two readings of a run's end, each for its own question:

* How it ended (`outcome`, core/taxonomy.py): exploded, collapsed, never learned or learned.
  Stability counts the first two only: a run that never learned was under-trained (a
  learning rate too low for the budget), not unstable.
* Whether it learned (`learned`): its final validation value is past chance plus
  COLLAPSE_SHARE of the gap from chance to the target. A configuration is chosen only where
  a seed learned, and a seed that did not learn counts at chance in the choice's mean.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

import pandas as pd

from ..core.errors import UserError
from ..core.record import Record, latest, typed
from ..core.spec import same_run_key
from ..core.taxonomy import COLLAPSE_SHARE, COLLAPSED, EXPLODED, UNSTABLE

SCORED = ("ok", "diverged")  # skipped and error runs say nothing about a strategy's stability
# the phases whose runs lie on the learning-rate grid (the sweep; "" is a suite without a
# tuning protocol, where every seed runs at every level)
GRID_PHASES = ("", "sweep")

COLUMNS = [
    "run_id",
    "task",
    "strategy",
    "params",
    "phase",
    "seed",
    "lr_mult",
    "status",
    "reason",
    "metric",
    "higher_is_better",
    "target",
    "chance",
    "test",
    "best_val",
    "final_val",
    "spec_key",
    "steps_to_target",
    "steps",
    "spikes",
    "not_run",
    "outcome",
    "outcome_inferred",
    "optimizer",
    "lr",
]


def runs_frame(records: Iterable[Record | dict]) -> pd.DataFrame:
    """One row per run (last record per run_id), sorted deterministically. `params` is the
    arm's strategy parameters as canonical JSON (a tuning trial changes them), `phase` the
    tuning-protocol phase that asked for the run. A stress-axis run (analysis/stress.py reads
    them) is left out: it trains a configuration other than the task's."""
    rows = []
    for r in latest(typed(records)):
        if r.axis:
            continue
        m, st = r.metrics, r.stability
        rows.append(
            {
                "run_id": r.run_id,
                "task": r.task,
                "strategy": r.label,
                "params": canonical(r.strategy.params),
                "phase": r.phase,
                "seed": r.seed,
                "lr_mult": r.lr_mult,
                # a sweep run not trained because a lower level diverged on every seed counts as
                # diverged (protocol.skip_above_diverged); `not_run` tells it from a real divergence
                "status": "diverged" if r.not_run else r.status,
                "reason": r.reason,
                "metric": m.name,
                "higher_is_better": m.higher_is_better,
                "target": m.target,
                "chance": m.chance,
                "test": m.test,
                "best_val": m.best_val,
                "final_val": m.final_val,
                "spec_key": spec_key(r.spec),
                "steps_to_target": m.steps_to_target,
                "steps": m.steps,
                "spikes": st.loss_spikes + st.grad_spikes if st else 0,
                "not_run": bool(r.not_run),
                "outcome": r.ended,
                "outcome_inferred": r.outcome_inferred,
                "optimizer": r.optimizer_name,
                "lr": r.peak_lr,
            }
        )
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(
        ["task", "strategy", "lr_mult", "params", "seed", "run_id"], kind="mergesort", ignore_index=True
    )


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def spec_key(spec: dict) -> str | None:
    """What determines the run apart from its name: the spec without the arm's label and
    parameters, the suite and the phase (two arms with one key on a seed and level ran the
    same run); None for an empty spec."""
    return same_run_key(spec) if spec else None


# The values each task metric can take (catalogue/tasks.py's METRICS): an interval is cut there.
METRIC_RANGE = {"accuracy": (0.0, 1.0), "mse": (0.0, math.inf)}


def task_meta(runs: pd.DataFrame, task: str) -> dict:
    """The task's metric (name, direction, target, chance), the same in every record of the
    task; a disagreement in name or direction would make scores meaningless, so it stops."""
    known = runs[(runs["task"] == task) & runs["metric"].notna()]
    if known.empty:
        return {"metric": None, "higher_is_better": True, "target": None, "chance": None}
    pairs = set(zip(known["metric"], known["higher_is_better"]))
    if len(pairs) > 1:
        raise UserError(
            f"task {task!r}: records disagree on the metric "
            f"({', '.join(sorted(f'{n} higher_is_better={h}' for n, h in pairs))})"
        )
    first = known.iloc[0]
    return {
        "metric": first["metric"],
        "higher_is_better": bool(first["higher_is_better"]),
        "target": _num(first["target"]),
        "chance": _num(first["chance"]),
    }


def _num(x) -> float:
    return float("nan") if x is None or pd.isna(x) else float(x)


def unstable(scored: pd.DataFrame) -> pd.Series:
    """Whether each run exploded or collapsed (core/taxonomy.py): what counts against stability."""
    return scored["outcome"].isin(UNSTABLE)


def outcomes(scored: pd.DataFrame, meta: dict) -> tuple[pd.Series, pd.Series]:
    """(diverged, did not learn) for each scored run: what the choice reads (a run did not
    learn when it did not diverge and its final value is not past the `learned` bar)."""
    diverged = scored["status"] == "diverged"
    return diverged, ~diverged & ~learned(scored["final_val"], meta)


def did_not_learn(scored: pd.DataFrame, meta: dict) -> pd.Series:
    """Whether each scored run diverged or ended short of the `learned` bar: a seed the choice
    and the speed count at chance (or never at the target)."""
    diverged, no_learning = outcomes(scored, meta)
    return diverged | no_learning


def learned(final_val: pd.Series, meta: dict) -> pd.Series:
    """Whether each run's final validation value is better than chance plus COLLAPSE_SHARE of
    the gap to the target (in the metric's direction); no value: it did not learn. Without a
    target and chance, every run counts as having learned."""
    chance, target = meta["chance"], meta["target"]
    if chance is None or target is None or math.isnan(chance) or math.isnan(target):
        return pd.Series(True, index=final_val.index)
    bar = chance + COLLAPSE_SHARE * (target - chance)
    sign = 1.0 if meta["higher_is_better"] else -1.0
    values = final_val.astype(float)
    return values.notna() & (sign * (values - bar) > 0)


def per_config(scored: pd.DataFrame, meta: dict, keys: list[str]) -> pd.DataFrame:
    """Per configuration (a group of `keys`, ascending): the mean final validation value over
    its seeds with seeds that did not learn at chance (what a choice compares, and the
    dose-response curve), the same with only diverged seeds at chance (how close the others
    came), whether any seed did not learn (`failed`) and whether every seed failed; whether any
    seed exploded or collapsed (core/taxonomy.py; `unstable`: either); whether none was run
    (above a diverged level), and how many seeds there are."""
    diverged, no_learning = outcomes(scored, meta)
    failed = diverged | no_learning
    value = scored["final_val"].where(~failed & scored["final_val"].notna(), meta["chance"])
    reached = scored["final_val"].where(~diverged & scored["final_val"].notna(), meta["chance"])
    by = [scored[k] for k in keys]
    return pd.DataFrame(
        {
            "value": value.astype(float).groupby(by).mean(),
            "reached": reached.astype(float).groupby(by).mean(),
            "failed": failed.groupby(by).any(),
            "all_failed": failed.groupby(by).all(),
            "exploded": (scored["outcome"] == EXPLODED).groupby(by).any(),
            "collapsed": (scored["outcome"] == COLLAPSED).groupby(by).any(),
            "unstable": unstable(scored).groupby(by).any(),
            "not_run": scored["not_run"].astype(bool).groupby(by).all(),
            "seeds": scored["seed"].groupby(by).nunique(),
        }
    ).sort_index()


def level_results(runs: pd.DataFrame, meta: dict, phases: tuple[str, ...] = GRID_PHASES) -> pd.DataFrame:
    """Per learning-rate level of one (task, strategy)'s runs on the grid (the sweep's seeds
    only, so every level has the same seeds; `phases`: the grid's by default): the
    dose-response curve."""
    scored = runs[runs["status"].isin(SCORED) & runs["phase"].isin(phases)]
    return per_config(scored, meta, ["lr_mult"])


def spent(records: Iterable[Record | dict], causes: Iterable[Record | dict] = ()) -> str:
    """What the records behind an answer cost to run, as the README names it: the runs trained
    (a copy of another arm's run and a run not trained count nothing) and their summed run time
    in run-hours (one core-hour per run on CPU), the causes part's apart where there is one."""

    def hours(rs: list[Record]) -> tuple[int, float]:
        trained = [r for r in rs if r.status != "skipped" and not r.copy_of and r.timings.wall_s]
        return len(trained), sum(r.timings.wall_s for r in trained) / 3600

    n, h = hours(typed(records))
    text = f"These records took {h:.1f} run-hours: {n:,} trained runs, their summed run time"
    causes = typed(causes)
    if causes:
        m, g = hours(causes)
        text += f"; the causes part another {g:.1f} ({m:,} run{'' if m == 1 else 's'})"
    return text + "."
