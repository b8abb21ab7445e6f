"""The stress axes' pre-registered predictions, each given a verdict by its fixed rule
(preregistration.CauseTest), as the literature section gives its claims one. No torch.

Each rule reads the cells of analysis/stress.py, on the tolerance (levels held without an
explosion or collapse) or on the stricter reading (levels at which every seed learned):

* more: each named arm tolerates more levels than baseline (or the arm `than` names) on the
  axis. Against baseline, a pre-registered comparison means a Holm-significant sign test; a
  descriptive cell (too few seeds to test) counts on its extra levels alone, and the verdict
  says it is descriptive. Against another arm, and on the stricter reading, there is no test:
  the differences are descriptive.
* order: the arms, in the order given, tolerate non-increasing levels, and the first more than
  the last (claim #1's "activation change > BatchNorm > clipping").
* fewer: the one arm tolerates fewer levels on the axis than on than_axis, on the seeds both
  ran (low precision narrows the stable learning rates: the same lr ladder, at bf16 and at
  fp32).

The verdict is "holds" when the rule holds for every arm it reads, "does not hold" when for
none, "mixed" otherwise, and "cannot be tested here" when an axis or arm it needs has no runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..core.record import Record
from . import markdown as md
from .literature import FAILS, HOLDS, MIXED, UNTESTED
from .preregistration import CauseTest, Prediction
from .stress import Cell, StressResults, cell_text, stress_results

DESCRIPTIVE = " (descriptive: too few seeds to test)"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    measured: str


def with_verdicts(section: dict | None, records: Iterable[Record | dict], predictions) -> dict | None:
    """The page's stress section (stress.section) with the verdicts of the pre-registered
    predictions that name a rule, as a table (None when none does)."""
    said = [p for p in predictions if p.test is not None]
    if section is None:
        return None
    rows = [
        (md.esc(p.claim), md.esc(p.predicted), md.esc(rule_text(p.test)), md.esc(v.measured), v.verdict)
        for p, v in verdicts(stress_results(records), said)
    ]
    head = ["claim or cause", "predicted", "rule", "measured", "verdict"]
    return {**section, "verdicts": md.table(head, rows) if rows else None}


def verdicts(results: StressResults, predictions: list[Prediction]) -> list[tuple[Prediction, Verdict]]:
    """Each prediction with a rule, and its verdict on these results."""
    return [(p, verdict(results, p.test)) for p in predictions if p.test is not None]


def verdict(results: StressResults, test: CauseTest) -> Verdict:
    cells = {arm: results.cell(test.axis, arm) for arm in test.arms}
    missing = [arm for arm, c in cells.items() if c is None]
    base = results.cell(test.axis, test.than if test.rule == "more" else "baseline")
    if missing or (test.rule == "more" and base is None):
        lacking = ", ".join(missing) if missing else test.than
        return Verdict(UNTESTED, f"no runs of {lacking} on the axis {test.axis}")
    if test.rule == "more":
        return _more(test, [c for c in cells.values() if c is not None], base)
    if test.rule == "order":
        return _order(test, [c for c in cells.values() if c is not None])
    other = results.cell(test.than_axis or "", test.arms[0])
    if other is None:
        return Verdict(UNTESTED, f"no runs of {test.arms[0]} on the axis {test.than_axis}")
    return _fewer(test, cells[test.arms[0]], other)


def rule_text(test: CauseTest) -> str:
    """The rule in words, as the page states it beside the verdict."""
    arms = ", ".join(test.arms)
    reading = "levels tolerated" if test.reading == "tolerance" else "levels at which every seed learned"
    if test.rule == "more":
        return f"{test.axis}: {arms} above {test.than} in {reading}"
    if test.rule == "order":
        return f"{test.axis}: {' ≥ '.join(test.arms)} in {reading}, the first above the last"
    return f"{arms}: fewer {reading} on {test.axis} than on {test.than_axis}"


def _levels(c: Cell, reading: str) -> int:
    return c.tolerance if reading == "tolerance" else c.learns


def _more(test: CauseTest, cells: list[Cell], base: Cell) -> Verdict:
    held, notes, descriptive = [], [], False
    for c in cells:
        if test.reading == "tolerance" and base.arm == "baseline":
            ok = c.significant if c.compared else c.extra > 0
            descriptive |= not c.compared
            notes.append(f"{c.arm} {cell_text(c)}")
        else:
            extra = _levels(c, test.reading) - _levels(base, test.reading)
            ok, descriptive = extra > 0, True
            verb = "holds" if test.reading == "tolerance" else "learns at"
            notes.append(f"{c.arm} {verb} {extra:+d} levels")
        held.append(ok)
    reading = "" if test.reading == "tolerance" else " (levels at which every seed learned)"
    measured = f"{base.arm} {_levels(base, test.reading)} of {len(base.levels)}{reading}; " + ", ".join(notes)
    return Verdict(_combine(held) + (DESCRIPTIVE if descriptive and any(held) else ""), measured)


def _order(test: CauseTest, cells: list[Cell]) -> Verdict:
    levels = [_levels(c, test.reading) for c in cells]
    steps = [a >= b for a, b in zip(levels, levels[1:], strict=False)]
    ok = all(steps) and levels[0] > levels[-1]
    measured = " ≥ ".join(f"{c.arm} {n}" for c, n in zip(cells, levels, strict=True))
    measured += f" of {len(cells[0].levels)} levels ({test.reading})"
    if ok:
        return Verdict(HOLDS + DESCRIPTIVE, measured)
    return Verdict(MIXED if any(steps) and levels[0] > levels[-1] else FAILS, measured)


def _fewer(test: CauseTest, cell: Cell, other: Cell) -> Verdict:
    # on the seeds both axes ran (an axis with more seeds has more chances to fail one)
    shared = [s for s in cell.seeds if s in other.seeds]
    if not shared:
        return Verdict(UNTESTED, f"{cell.arm} shares no seed between {cell.axis} and {other.axis}")
    per_seed = "per_seed" if test.reading == "tolerance" else "learns_per_seed"
    mine = min(getattr(cell, per_seed)[s] for s in shared)
    theirs = min(getattr(other, per_seed)[s] for s in shared)
    measured = (
        f"{cell.arm}: {mine} of {len(cell.levels)} levels on {cell.axis}, {theirs} of {len(other.levels)} on "
        f"{other.axis} ({test.reading}, on the {len(shared)} seeds both ran)"
    )
    return Verdict(HOLDS + DESCRIPTIVE if mine < theirs else FAILS, measured)


def _combine(held: list[bool]) -> str:
    return HOLDS if all(held) else FAILS if not any(held) else MIXED
