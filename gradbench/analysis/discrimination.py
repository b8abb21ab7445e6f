"""Does a task tell the strategies apart? Which arms reach its target through the protocol,
and which do not (the workloads issue asks for at least 5 of each on every task).

An arm reaches the target when its quality, the mean test metric over the tested seeds at
its chosen configuration (the seeds not used to choose it; a seed's value as measured when
finite, never worse than chance: analysis/scoring.py), meets the task's target. An arm n/a on the task, the same runs as baseline, or in error there, is
neither; a task where no arm is scored is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from ..core.record import reaches
from . import markdown as md

MIN_EACH_SIDE = 5  # arms that reach the target, and arms that do not, for a task to discriminate

# the rule as the page and the site state it
RULE = (
    "An arm reaches the target when its mean test metric over the tested seeds at its chosen configuration "
    "(those not used to choose it; a seed's value as measured when finite, never worse than chance) meets it. "
    f"A task tells the strategies apart when at least {MIN_EACH_SIDE} "
    "arms reach it and as many do not; an arm n/a on the task, the same runs as baseline, or in error there "
    "counts on neither side"
)


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
        rows = rows[rows["status"] == "scored"]  # not n/a, = baseline or error
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


def shown(value: float, target: float, higher_is_better: bool) -> str:
    """`value` to 3 significant digits, or as many more as it takes to show which side of the
    target it lies on (0.95 would read the same as a target of 0.95 for 0.9498 and 0.9504)."""
    hit = reaches(value, target, higher_is_better)
    for digits in range(3, 10):
        text = f"{value:.{digits}g}"
        rounded = float(text)
        if reaches(rounded, target, higher_is_better) == hit and (rounded != target or value == target):
            return text
    return repr(value)


def view(splits: list[TaskSplit], per_task: pd.DataFrame, name: Callable[[str], str] = md.code) -> pd.DataFrame:
    """One row per task: its target, how many arms reach it and how many do not (numbers, so
    that the site sorts them), and each side's arms with their values, best first; names in
    `name` (markdown's code span; the site passes str and escapes its HTML itself)."""
    value = {(r.task, r.strategy): r.accuracy for r in per_task.itertuples()}

    def arms(s: TaskSplit, names: list[str]) -> str:
        listed = (f"{name(n)} {shown(value[(s.task, n)], s.target, s.higher_is_better)}" for n in names)
        return ", ".join(listed) or "none"

    return pd.DataFrame(
        {
            "task": [name(s.task) for s in splits],
            "target": [f"{'>=' if s.higher_is_better else '<='} {s.target:g}" for s in splits],
            "reach": [len(s.reached) for s in splits],
            "the arms that reach it (mean test metric on the tested seeds)": [arms(s, s.reached) for s in splits],
            "miss": [len(s.missed) for s in splits],
            "the arms that do not": [arms(s, s.missed) for s in splits],
            f"at least {MIN_EACH_SIDE} each": ["yes" if s.discriminates else "no" for s in splits],
        }
    )


def markdown(splits: list[TaskSplit], per_task: pd.DataFrame) -> list[str]:
    """The view as a markdown table, each side's count before its arms."""
    table = view(splits, per_task)
    head = (
        f"| task | target | reach it (mean test metric on the tested seeds) | do not | at least {MIN_EACH_SIDE} each |"
    )
    lines = [head, "|---|---|---|---|---|"]
    for row in table.itertuples(index=False):
        task, target, reach, reached, miss, missed, enough = row
        lines.append(f"| {task} | {target} | {reach}: {reached} | {miss}: {missed} | {enough} |")
    return lines
