"""The protocol's seed rule: which arms get more final seeds (protocol.contender_seeds), decided
from the scores of the seeds run so far, by a rule written down before the runs. No torch.

Per task, the contenders are the leader (the best quality among arms that learned), baseline,
and every arm whose 95% t interval of quality on the tested seeds overlaps the leader's or
baseline's: the comparisons a few more seeds can still decide. An arm whose interval is clear
of both is already told apart, and an arm that failed the task has nothing to add.
"""

from __future__ import annotations

import pandas as pd

from .scoring import BASELINE


def contenders(per_task: pd.DataFrame) -> dict[str, list[str]]:
    """task -> its contenders, in the per-task table's order."""
    out = {}
    for task, rows in per_task.groupby("task", sort=True):
        learned = rows[(rows["status"] == "scored") & ~rows["failed"].fillna(True).astype(bool)]
        if learned.empty:
            continue
        leader = learned[learned["leader"].astype(object) == True].iloc[0]  # noqa: E712 (a nullable column)
        anchors = [leader] + [r for _, r in learned[learned["strategy"] == BASELINE].iterrows()]
        picked = []
        for _, r in learned.iterrows():
            if r["strategy"] in (leader["strategy"], BASELINE) or any(_overlap(r, a) for a in anchors):
                picked.append(r["strategy"])
        out[task] = picked
    return out


def _overlap(a: pd.Series, b: pd.Series) -> bool:
    return float(a["accuracy_lo"]) <= float(b["accuracy_hi"]) and float(b["accuracy_lo"]) <= float(a["accuracy_hi"])
