"""Choosing each arm's configuration on validation: the torch-free step of a tuning protocol
between its sweep and its final seeds, and the rule the scores read. It is one function, so
the page shows exactly what the runner chose.

A configuration is a learning-rate multiplier and the arm's strategy parameters (a tuning
trial may change a threshold). Per (task, strategy), among the configurations the tuning
runs tried (phases sweep and tune; every run of a suite without a protocol) where at least
one seed learned, the chosen one has the best mean final validation value over its seeds, a
failed seed (diverged or collapsed, runs.py) counting at chance. Ties go to the smaller
learning rate, then to the arm's declared parameters. The final seeds' runs (phase final)
and test metrics are never read: a choice cannot see what it will be judged on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from ..core.record import Record
from .runs import GRID_PHASES, SCORED, per_config, runs_frame, task_meta

# the bracketing's levels beyond the declared grid (protocol.bracket_octaves) are on the sweep's
# seeds: the choice reads them, the grid's shares (stability, levels) do not
BRACKET = "bracket"
SWEEP_PHASES = (*GRID_PHASES, BRACKET)
TUNING_PHASES = (*SWEEP_PHASES, "tune")


@dataclass(frozen=True)
class Choice:
    lr_mult: float
    params: str  # the arm's strategy parameters, canonical JSON (runs.canonical)
    value: float  # mean final validation value over the tuning seeds, failed seeds at chance
    tried: int  # configurations tried

    @property
    def strategy_params(self) -> dict:
        return json.loads(self.params)


def choose(runs: pd.DataFrame, meta: dict, *, or_best_failed: bool = False) -> Choice | None:
    """The chosen configuration of one (task, strategy)'s runs (runs_frame rows); None when no
    configuration tried has a seed that learned: the arm failed the task. With
    `or_best_failed`, such an arm gets its best configuration all the same (failed seeds at
    chance, collapsed ones by what they reached): where a protocol spends its extra trials,
    so that an arm that failed the sweep gets the same budget as every other."""
    tuning = runs[runs["status"].isin(SCORED) & runs["phase"].isin(TUNING_PHASES)]
    if tuning.empty:
        return None
    table = per_config(tuning, meta, ["lr_mult", "params"])
    declared = set(tuning.loc[tuning["phase"].isin(GRID_PHASES), "params"])
    candidates, column = table[~table["all_failed"]], "value"
    if candidates.empty:
        if not or_best_failed:
            return None
        candidates, column = table, "reached"
    sign = 1.0 if meta["higher_is_better"] else -1.0
    # rounded so float noise in equal means does not break the tie rules
    lr, params = max(
        candidates.index,
        key=lambda k: (round(sign * candidates.at[k, column], 12), -k[0], k[1] in declared, _neg(k[1])),
    )
    return Choice(lr_mult=float(lr), params=params, value=float(candidates.at[(lr, params), "value"]), tried=len(table))


def sweep_table(runs: pd.DataFrame, meta: dict) -> pd.DataFrame | None:
    """One (task, strategy)'s sweep levels (the grid and the bracketing's) as per_config rows by
    lr_mult; None when it has no scored sweep run."""
    sweep = runs[runs["status"].isin(SCORED) & runs["phase"].isin(SWEEP_PHASES)]
    return None if sweep.empty else per_config(sweep, meta, ["lr_mult"])


def best_sweep_level(runs: pd.DataFrame, meta: dict) -> tuple[float, list[float]] | None:
    """(the best sweep level, every sweep level run, ascending) of one (task, strategy)'s runs by
    the choice's rule (a seed that did not learn at chance; ties to the smaller lr); None when
    no sweep level has a seed that learned."""
    table = sweep_table(runs, meta)
    if table is None or table["all_failed"].all():
        return None
    return bracketed(table, meta)[1], [float(x) for x in table.index]


def bracketed(table: pd.DataFrame, meta: dict) -> tuple[bool, float]:
    """(whether the best value of a per-level table (per_config by lr_mult) is bracketed, the
    best level by the choice's rule): some level with that value, rounded, has a measured
    level on each side. A plateau of equal values that reaches an edge is bracketed where it
    also holds an inner level: nothing beyond the edge can beat the best value already found
    inside (a saturated task, two levels at chance ...). The levels where no seed learned
    count as measured and worse."""
    candidates = table[~table["all_failed"]]
    sign = 1.0 if meta["higher_is_better"] else -1.0
    key = {lr: round(sign * candidates.at[lr, "value"], 12) for lr in candidates.index}
    top = max(key.values())
    best = max(candidates.index, key=lambda lr: (key[lr], -lr))
    levels = list(table.index)
    inner = levels[1:-1]
    return any(key[lr] == top for lr in inner if lr in key), float(best)


def bracket_edges(records: Iterable[Record | dict]) -> dict[tuple[str, str], tuple[float, ...]]:
    """(task, strategy) -> the levels an octave beyond its best sweep level, where that level is
    the lowest or the highest of the levels run and the optimum is not bracketed (the
    protocol's bracketing adds them; the suite caps how far). An arm with no sweep level where
    a seed learned proposes none."""
    runs = runs_frame(records)
    out = {}
    for (task, strategy), group in runs.groupby(["task", "strategy"], sort=True):
        meta = task_meta(runs, task)
        table = sweep_table(group, meta)
        if table is None or table["all_failed"].all():
            continue
        inside, best = bracketed(table, meta)
        if inside:
            continue
        levels = list(table.index)
        beyond = ([best / 2] if best == levels[0] else []) + ([best * 2] if best == levels[-1] else [])
        if beyond:
            out[(task, strategy)] = tuple(beyond)
    return out


def _neg(text: str) -> tuple:
    """Orders strings descending inside max(): the alphabetically first wins a full tie."""
    return tuple(-ord(c) for c in text)


def chosen_configs(
    records: Iterable[Record | dict], *, or_best_failed: bool = False
) -> dict[tuple[str, str], Choice | None]:
    """(task, strategy) -> its Choice (choose), over every pair with scored runs in the records."""
    runs = runs_frame(records)
    out = {}
    for (task, strategy), group in runs.groupby(["task", "strategy"], sort=True):
        if group["status"].isin(SCORED).any():
            out[(task, strategy)] = choose(group, task_meta(runs, task), or_best_failed=or_best_failed)
    return out


def changed_params(choice: Choice, declared: dict) -> str:
    """The parameters a tuning trial changed, e.g. 'max_norm=0.5' ('' when none did)."""
    chosen = choice.strategy_params
    parts = []
    for name, params in chosen.items():
        for key, value in params.items():
            if declared.get(name, {}).get(key) != value:
                shown = f"{value:g}" if isinstance(value, float) and math.isfinite(value) else value
                parts.append(f"{key}={shown}")
    return ", ".join(parts)
