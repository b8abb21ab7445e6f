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


def family(predictions) -> int:
    """The comparisons the predictions register: each arm a `more` rule tests against baseline
    on the tolerance (the sign-tested ones), counted once; Holm corrects over at least these."""
    return len(
        {
            (p.test.axis, arm)
            for p in predictions
            if p.test is not None
            and p.test.rule == "more"
            and p.test.than == "baseline"
            and p.test.reading == "tolerance"
            for arm in p.test.arms
        }
    )


def with_verdicts(section: dict | None, records: Iterable[Record | dict], predictions) -> dict | None:
    """The page's stress section (stress.section) with the verdicts of the pre-registered
    predictions that name a rule, as a table (None when none does)."""
    said = [p for p in predictions if p.test is not None]
    if section is None:
        return None
    rows = [
        (md.esc(p.claim), md.esc(p.predicted), md.esc(rule_text(p.test)), md.esc(v.measured), v.verdict)
        for p, v in verdicts(stress_results(records, family(said)), said)
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
            # a compared arm: Holm-significant and more levels (Cell.significant); else descriptive
            ok = c.significant if c.compared else c.extra > 0
            descriptive |= not c.compared
            paired = f" ({c.wins} of {c.paired} paired seeds beat baseline)" if c.compared else ""
            notes.append(f"{c.arm} {cell_text(c)}{paired}")
        else:
            mine, theirs, n = _on_shared([c, base], test.reading)
            extra = mine - theirs
            ok, descriptive = extra > 0, True
            verb = "holds" if test.reading == "tolerance" else "learns at"
            notes.append(f"{c.arm} {verb} {extra:+d} levels (on the {n} seeds both ran)")
        held.append(ok)
    reading = "" if test.reading == "tolerance" else " (levels at which every seed learned)"
    measured = f"{base.arm} {_levels(base, test.reading)} of {len(base.levels)}{reading}; " + ", ".join(notes)
    return Verdict(_combine(held) + (DESCRIPTIVE if descriptive and any(held) else ""), measured)


def _on_shared(cells: list[Cell], reading: str) -> tuple:
    """Each cell's levels on the seeds every one of them ran (an arm on more seeds has more
    chances to fail one), then how many seeds that is."""
    shared = [s for s in cells[0].seeds if all(s in c.seeds for c in cells)]
    per_seed = "per_seed" if reading == "tolerance" else "learns_per_seed"
    levels = [min(getattr(c, per_seed)[s] for s in shared) if shared else 0 for c in cells]
    return (*levels, len(shared))


def _order(test: CauseTest, cells: list[Cell]) -> Verdict:
    *levels, n = _on_shared(cells, test.reading)
    if not n:
        return Verdict(UNTESTED, f"{', '.join(c.arm for c in cells)} share no seed on {test.axis}")
    steps = [a >= b for a, b in zip(levels, levels[1:], strict=False)]
    ok = all(steps) and levels[0] > levels[-1]
    measured = f"{cells[0].arm} {levels[0]}"
    for c, step, n_levels in zip(cells[1:], steps, levels[1:], strict=True):
        measured += f" {'≥' if step else '<'} {c.arm} {n_levels}"
    measured += f" of {len(cells[0].levels)} levels ({test.reading}, on the {n} seeds all ran)"
    if ok:
        return Verdict(HOLDS + DESCRIPTIVE, measured)
    return Verdict(MIXED if any(steps) and levels[0] > levels[-1] else FAILS, measured)


def _fewer(test: CauseTest, cell: Cell, other: Cell) -> Verdict:
    if cell.levels != other.levels:
        return Verdict(UNTESTED, f"{cell.axis} and {other.axis} ran different levels: their counts do not compare")
    mine, theirs, n = _on_shared([cell, other], test.reading)
    if not n:
        return Verdict(UNTESTED, f"{cell.arm} shares no seed between {cell.axis} and {other.axis}")
    measured = (
        f"{cell.arm}: {mine} of {len(cell.levels)} levels on {cell.axis}, {theirs} of {len(other.levels)} on "
        f"{other.axis} ({test.reading}, on the {n} seeds both ran)"
    )
    return Verdict(HOLDS + DESCRIPTIVE if mine < theirs else FAILS, measured)


def _combine(held: list[bool]) -> str:
    return HOLDS if all(held) else FAILS if not any(held) else MIXED
