"""Does a task tell the strategies apart? Which arms reach its target through the protocol,
and which do not (the workloads issue asks for at least 5 of each on every task).

An arm reaches the target when its score's accuracy column, the mean test metric over the
seeds at its chosen configuration with a failed seed at chance (analysis/scoring.py), meets
the task's target. An arm n/a on the task, or the same runs as baseline, is neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.record import reaches
from .scoring import SAME_AS_BASELINE

MIN_EACH_SIDE = 5  # arms that reach the target, and arms that do not, for a task to discriminate


@dataclass(frozen=True)
class TaskSplit:
    task: str
    target: float
    higher_is_better: bool
    reached: list[str]
    missed: list[str]

    @property
    def discriminates(self) -> bool:
        return len(self.reached) >= MIN_EACH_SIDE and len(self.missed) >= MIN_EACH_SIDE


def split_by_target(per_task: pd.DataFrame) -> list[TaskSplit]:
    """Per task, in task order: the arms at or past the target at their chosen configuration,
    best first, and the others, best first (an arm that failed everywhere last)."""
    out = []
    for task, rows in per_task.groupby("task", sort=True):
        rows = rows[(rows["status"] == "scored") & (rows["reason"] != SAME_AS_BASELINE)]
        if rows.empty:
            continue
        target, hib = float(rows["target"].iloc[0]), bool(rows["higher_is_better"].iloc[0])
        value = rows["accuracy"].astype(float)
        ok = reaches(value, target, hib)
        order = rows.assign(_v=value if hib else -value).sort_values(["_v", "strategy"], ascending=[False, True])
        out.append(
            TaskSplit(
                task=task,
                target=target,
                higher_is_better=hib,
                reached=[s for s, hit in zip(order["strategy"], ok[order.index]) if hit],
                missed=[s for s, hit in zip(order["strategy"], ok[order.index]) if not hit],
            )
        )
    return out


def view(splits: list[TaskSplit], per_task: pd.DataFrame, quote: str = "`") -> pd.DataFrame:
    """One row per task: its target and the arms on each side with their values, best first;
    names in `quote` (markdown's code span; the site passes none)."""
    value = {(r.task, r.strategy): r.accuracy for r in per_task.itertuples()}

    def arms(task: str, names: list[str]) -> str:
        listed = ", ".join(f"{quote}{n}{quote} {value[(task, n)]:.3g}" for n in names) or "none"
        return f"{len(names)}: {listed}"

    return pd.DataFrame(
        {
            "task": [f"{quote}{s.task}{quote}" for s in splits],
            "target": [f"{'>=' if s.higher_is_better else '<='} {s.target:g}" for s in splits],
            "reach it (mean test metric at the chosen configuration)": [arms(s.task, s.reached) for s in splits],
            "do not": [arms(s.task, s.missed) for s in splits],
            f"at least {MIN_EACH_SIDE} each": ["yes" if s.discriminates else "no" for s in splits],
        }
    )


def markdown(splits: list[TaskSplit], per_task: pd.DataFrame) -> list[str]:
    """The view as a markdown table."""
    table = view(splits, per_task)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    return lines + ["| " + " | ".join(row) + " |" for row in table.itertuples(index=False)]
