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

TUNING_PHASES = (*GRID_PHASES, "tune")


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
