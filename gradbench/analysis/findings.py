"""The README's three findings, written from the scores by code (never typed by hand), so
they change when the records do: `gradbench leaderboard ... --readme README.md` writes them
between their marker comments, and a test fails when that copy is stale.

1. Which arms beat baseline's quality after Holm's correction, task by task.
2. How many arms the held-out seeds tie with each task's leader.
3. What the literature's claims came to here, by verdict.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from . import literature
from . import markdown as md
from .scoring import Scores
from .stats import ALPHA

BASELINE = "baseline"
SHOWN = 4  # arms named per task before "and N more"
START, END = "<!-- findings:start -->", "<!-- findings:end -->"


def beats_baseline(scores: Scores) -> str:
    """The arms whose paired quality effect vs baseline is better and Holm-significant, per task."""
    with_arms, without = [], []
    for task, rows in scores.per_task.groupby("task", sort=True):
        won = rows[[_better_and_significant(r) for _, r in rows.iterrows()]]
        if won.empty:
            without.append(md.code(task))
            continue
        won = won.sort_values("effect", ascending=not bool(rows["higher_is_better"].iloc[0]))
        with_arms.append(f"{md.code(task)} ({len(won)}: {_names(list(won['strategy']))})")
    if not with_arms:
        return "No arm beats baseline's quality after Holm's correction on any task."
    head = (
        f"After Holm's correction, arms beat baseline's quality (paired, held-out seeds) on {len(with_arms)} of "
        f"{len(with_arms) + len(without)} tasks: " + "; ".join(with_arms)
    )
    return head + (f"; on {_and(without)} none does." if without else ".")


def _better_and_significant(r: pd.Series) -> bool:
    if r["strategy"] == BASELINE or pd.isna(r["effect"]) or pd.isna(r["effect_p_holm"]):
        return False
    better = r["effect"] > 0 if r["higher_is_better"] else r["effect"] < 0
    return bool(better and r["effect_p_holm"] < ALPHA)


def ties(scores: Scores) -> str:
    """How many of the arms that learned the seeds cannot tell from each task's leader."""
    parts = []
    for task, rows in scores.per_task.groupby("task", sort=True):
        learned = rows[(rows["status"] == "scored") & ~rows["failed"].astype(bool)]
        if learned.empty:
            continue
        tied = int(learned["tied"].fillna(False).astype(bool).sum())
        leader = learned.loc[learned["leader"].fillna(False).astype(bool), "strategy"]
        named = f", leader {md.code(leader.iloc[0])}" if len(leader) else ""
        parts.append(f"{tied} of {len(learned)} on {md.code(task)}{named}")
    seeds = scores.per_task["tested_seeds"].dropna()
    n = f"{int(seeds.median())} held-out seeds" if len(seeds) else "the seeds run"
    return (
        f"With {n}, many arms that learn cannot be told from each task's quality leader (tied with it, of "
        f"those that learn): {'; '.join(parts)}. Ranking them needs more paired seeds."
    )


def literature_verdicts(scores: Scores, records) -> str:
    """The literature's claims the page checks, counted by verdict, naming those that do not hold."""
    found = literature.findings(scores, records)
    if not found:
        return "No claim from the literature could be read off these records."
    counts = Counter(f.verdict for _, f in found)
    order = [literature.HOLDS, literature.IN_PART, literature.MIXED, literature.FAILS, literature.UNTESTED]
    shown = [_verdict(v, counts[v]) for v in order if counts[v]]
    failing = [c.claim for c, f in found if f.verdict == literature.FAILS]
    tail = f" Does not hold here: {'; '.join(md.esc(c) for c in failing)}." if failing else ""
    return (
        f"Of the {len(found)} claims from the literature the page checks, each read by a fixed rule: "
        f"{', '.join(shown)}.{tail}"
    )


def _verdict(v: str, n: int) -> str:
    one = n == 1
    phrase = {
        literature.HOLDS: "holds" if one else "hold",
        literature.IN_PART: "holds in part" if one else "hold in part",
        literature.MIXED: "is mixed" if one else "are mixed",
        literature.FAILS: "does not hold" if one else "do not hold",
        literature.UNTESTED: "cannot be tested here",
    }[v]
    return f"{n} {phrase}"


def findings(scores: Scores, records) -> list[str]:
    """The three findings, each one paragraph."""
    if scores.per_task.empty:
        return []
    return [beats_baseline(scores), ties(scores), literature_verdicts(scores, records)]


def block(items: list[str], command: str) -> str:
    """The README's copy: a numbered list between the markers, naming the command."""
    return md.generated(START, END, command, [f"{i}. {text}" for i, text in enumerate(items, 1)])


def write_block(readme, items: list[str], command: str) -> bool:
    """Replace the block between the markers in `readme` (a path); False when it has none."""
    return md.write_between(readme, START, END, block(items, command))


def _names(arms: list[str]) -> str:
    shown = ", ".join(md.code(a) for a in arms[:SHOWN])
    return shown + (f" and {len(arms) - SHOWN} more" if len(arms) > SHOWN else "")


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
