"""The stress axes' results: which arm holds against which cause of explosion, as a matrix.

Read from the stress-axis runs alone (records whose spec names an axis: suite/stress_axes.py),
each at its arm's tuned configuration with one stress variable turned up level by level.

* A seed *tolerates* a level when neither it nor any lower level of the axis ended exploded or
  collapsed (core/taxonomy.py; a level not run above an all-exploded one counts as exploded).
  A run that never learned is under-training, not explosion: it does not end the tolerance,
  and the quality at each level shows it.
* An arm's *tolerance* on an axis is the count of levels, from the mildest, that every one of
  its seeds tolerates; its highest level tolerated is the last of them.
* Its *extra levels* are its tolerance minus baseline's, both on the seeds they share (baseline
  runs more seeds where a compared arm does, and a minimum over more seeds falls further): the
  matrix's cell.
* A pre-registered comparison (the axis's `compare` arms, on compare_seeds paired seeds) tests
  the per-seed tolerance against baseline's on the same seeds with the exact one-sided sign
  test (scipy's binomtest over the seeds that differ; the differences are small integers with
  many ties, for which a t-test's normal model does not hold), Holm-corrected over every
  comparison registered for the suite (at least those with runs). A compared arm counts as
  holding more only with more extra levels too. The other cells are descriptive and marked so.
* An axis's top group is the arms with its most extra levels (tied, so marked).
* Beside it, the stricter reading: the levels, from the mildest, at which every seed *learned*.
  A stress can stop an arm learning without an explosion (Adam stalls at a high learning rate
  or after a large gradient spike, where SGD blows up); the page shows both, named for what
  each measures.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from scipy import stats as _stats

from ..core.record import Record, latest, typed
from ..core.taxonomy import LEARNED, UNSTABLE
from . import decision
from . import markdown as md
from .stats import ALPHA, holm_adjusted


@dataclass
class Cell:
    """One arm on one axis."""

    axis: str
    vary: str
    task: str
    arm: str
    held: dict  # the variables the axis holds at one value on every level (its `set`), if any
    levels: list  # the axis's levels, mildest first (those any arm's runs reached)
    seeds: list[int]
    per_seed: dict[int, int]  # seed -> levels it tolerates, from the mildest
    learns_per_seed: dict[int, int]  # seed -> levels, from the mildest, at which it learned
    quality: dict[int, float]  # level index -> the mean test value over the seeds that ran it
    outcomes: dict[int, dict[str, int]]  # level index -> outcome -> runs
    tolerance: int = 0  # levels every seed tolerates
    learns: int = 0  # levels, from the mildest, at which every seed learned (a stricter reading)
    extra: float = math.nan  # tolerance minus baseline's
    compared: bool = False  # a pre-registered comparison (enough paired seeds to test)
    p: float = math.nan  # one-sided exact sign test, tolerance above baseline's
    p_holm: float = math.nan
    paired: int = 0  # seeds shared with baseline
    wins: int = 0  # paired seeds where the arm tolerates more levels than baseline
    losses: int = 0
    top: bool = False  # in the axis's top group

    @property
    def highest(self):
        """The highest level every seed tolerates (None: not even the mildest)."""
        return self.levels[self.tolerance - 1] if self.tolerance else None

    @property
    def significant(self) -> bool:
        """A compared arm that holds more levels than baseline: Holm-significant, and more
        levels on the seeds they share (the sign test alone passes on wins over baseline's
        worst seed that leave the minimum where it was)."""
        return self.p_holm == self.p_holm and self.p_holm <= ALPHA and self.extra > 0


@dataclass
class StressResults:
    cells: list[Cell] = field(default_factory=list)

    @property
    def axes(self) -> list[str]:
        return list(dict.fromkeys(c.axis for c in self.cells))

    @property
    def arms(self) -> list[str]:
        """Baseline first, then by the number of axes where the arm is in the top group, then by name."""
        tops = defaultdict(int)
        for c in self.cells:
            tops[c.arm] += c.top
        names = sorted({c.arm for c in self.cells}, key=lambda a: (a != "baseline", -tops[a], a))
        return names

    def cell(self, axis: str, arm: str) -> Cell | None:
        return next((c for c in self.cells if c.axis == axis and c.arm == arm), None)

    def top_group(self, axis: str) -> list[str]:
        return [c.arm for c in self.cells if c.axis == axis and c.top]


def stress_results(records: Iterable[Record | dict], family: int = 0) -> StressResults:
    """The cells of every axis in the records (a compared arm's runs say so in their place).
    `family`: the comparisons registered for the suite; Holm corrects over at least that many,
    so a partial suite (or a compared arm with no runs yet) is not corrected more leniently."""
    runs = [r for r in latest(typed(records)) if r.axis and (r.status != "skipped" or r.not_run)]
    by_cell: dict[tuple[str, str], list[Record]] = defaultdict(list)
    levels: dict[str, dict[int, object]] = defaultdict(dict)  # axis -> index -> level, over every arm's runs
    for r in runs:
        by_cell[(r.axis["name"], r.label)].append(r)
        levels[r.axis["name"]][r.axis["index"]] = r.axis["level"]
    cells = [
        _cell(axis, arm, rs, [levels[axis][i] for i in sorted(levels[axis])]) for (axis, arm), rs in by_cell.items()
    ]
    cells.sort(key=lambda c: (c.axis, c.arm != "baseline", c.arm))
    _against_baseline(cells, family)
    for axis in dict.fromkeys(c.axis for c in cells):
        mine = [c for c in cells if c.axis == axis]
        # by the extra levels (on the seeds shared with baseline), so an arm on 2 seeds is not
        # favoured over one on 8, whose minimum has more chances to fall; without baseline, by
        # the tolerance
        known = [c.extra for c in mine if c.extra == c.extra]
        if known:
            best = max(known)
            for c in mine:
                c.top = c.extra == best
        else:
            most = max(c.tolerance for c in mine)
            for c in mine:
                c.top = c.tolerance == most
    return StressResults(cells)


def _cell(axis: str, arm: str, runs: list[Record], levels: list) -> Cell:
    first = runs[0]
    seeds = sorted({r.seed for r in runs})
    unstable: dict[int, set[int]] = defaultdict(set)  # seed -> level indices where it exploded or collapsed
    unlearned: dict[int, set[int]] = defaultdict(set)  # seed -> level indices where it did not learn
    quality: dict[int, list[float]] = defaultdict(list)
    outcomes: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    chance = first.metrics.chance
    for r in runs:
        i, ended = r.axis["index"], r.ended
        outcomes[i][ended or "error"] += 1
        if ended in UNSTABLE:
            unstable[r.seed].add(i)
        if ended != LEARNED:
            unlearned[r.seed].add(i)
        test = r.metrics.test
        value = test if test is not None and math.isfinite(test) else chance
        if value is not None:
            quality[i].append(value)
    ran = {(r.seed, r.axis["index"]) for r in runs}

    def levels_until(failed: dict[int, set[int]], s: int) -> int:
        n = 0
        while n < len(levels) and (s, n) in ran and n not in failed[s]:
            n += 1
        return n

    per_seed = {s: levels_until(unstable, s) for s in seeds}
    learns_per_seed = {s: levels_until(unlearned, s) for s in seeds}
    return Cell(
        axis=axis,
        vary=first.axis["vary"],
        held=dict(first.axis.get("set", {})),
        task=first.task,
        arm=arm,
        levels=levels,
        seeds=seeds,
        per_seed=per_seed,
        learns_per_seed=learns_per_seed,
        quality={i: sum(v) / len(v) for i, v in sorted(quality.items()) if v},
        outcomes={i: dict(o) for i, o in sorted(outcomes.items())},
        tolerance=min(per_seed.values()),
        learns=min(learns_per_seed.values()),
        compared=any(r.axis.get("compared") for r in runs),
    )


def _against_baseline(cells: list[Cell], family: int = 0) -> None:
    """Each cell's extra levels over its axis's baseline, on the seeds both ran (baseline runs
    more seeds for the compared arms: its minimum over all of them would favour a 2-seed arm);
    the sign test for the compared arms, Holm over all of them and at least `family`."""
    tested = []
    for c in cells:
        base = next((b for b in cells if b.axis == c.axis and b.arm == "baseline"), None)
        if base is None or c is base:
            c.extra = 0.0 if c is base else math.nan
            continue
        shared = [s for s in c.seeds if s in base.per_seed]
        c.extra = (
            float(min(c.per_seed[s] for s in shared) - min(base.per_seed[s] for s in shared)) if shared else math.nan
        )
        c.paired = len(shared)
        c.wins = sum(c.per_seed[s] > base.per_seed[s] for s in shared)
        c.losses = sum(c.per_seed[s] < base.per_seed[s] for s in shared)
        if c.compared:
            n = c.wins + c.losses
            c.p = float(_stats.binomtest(c.wins, n, 0.5, alternative="greater").pvalue) if n else 1.0
            tested.append(c)
    missing = max(0, family - len(tested))  # registered comparisons with no runs yet: p = 1
    for c, adjusted in zip(tested, holm_adjusted([c.p for c in tested] + [1.0] * missing), strict=False):
        c.p_holm = adjusted


def matrix_rows(results: StressResults) -> list[dict]:
    """One row per arm: the extra levels it tolerates over baseline on each axis ('+2*' where a
    pre-registered comparison is Holm-significant, '+1 (d)' for a descriptive cell, '' where the
    arm did not run the axis)."""
    rows = []
    for arm in results.arms:
        row = {"arm": arm}
        for axis in results.axes:
            c = results.cell(axis, arm)
            row[axis] = "" if c is None else cell_text(c)
        rows.append(row)
    return rows


def cell_text(c: Cell) -> str:
    if c.arm == "baseline":
        return f"{c.tolerance} of {len(c.levels)} levels"
    if c.extra != c.extra:
        return "n/a"
    mark = "*" if c.significant else ("" if c.compared else " (d)")
    return f"{c.extra:+.0f}{mark}"


def heatmap_text(c: Cell) -> str:
    """A heatmap cell's text (the PNG's and the site's): baseline's levels held, else the cell."""
    return ("≈ " if c.top else "") + (f"holds {c.tolerance}" if c.arm == "baseline" else cell_text(c))


# ------------------------------------------------------------------------- the page's section

RULE = (
    "A seed tolerates a level when neither it nor a milder level of the axis exploded or collapsed "
    "(a level not run above one where every seed exploded counts as exploded; a run that never learned did not "
    "explode: it shows in the levels the arm learns at, every seed learning, and in the quality). A cell is the levels every seed of the "
    "arm tolerates minus baseline's, on the seeds both ran. * marks a pre-registered comparison that holds more "
    "levels and whose exact one-sided sign test of the per-seed tolerance against baseline's, on the same seeds, "
    f"passes Holm's correction over every registered comparison at {ALPHA:g}; (d) marks a descriptive cell, too few "
    "seeds to test. ≈ marks the arms tied at the axis's most extra levels, its top group."
)


CAUSE_HEAD = ["cause (axis)", "baseline holds", "use", "extra levels over baseline", "cost", "evidence"]
CAUSE_RULE = (
    "Per cause, the arms of the axis's top group (the most extra levels over baseline), those with a significant comparison "
    "first, then by the levels they learn at; when baseline is in the top group no arm holds longer than it does. "
    "Cost is the first arm's step time over baseline's and its extra memory on the axis's task, where measured."
)


def cause_rows(results: StressResults, costs: dict | None = None) -> list[dict]:
    """One row per axis: what holds against that cause, what it costs, how strong the evidence is."""
    rows = []
    for axis in results.axes:
        cells = [c for c in results.cells if c.axis == axis]
        base = results.cell(axis, "baseline")
        top = sorted((c for c in cells if c.top), key=lambda c: (not c.significant, -c.learns, c.arm))
        holds = base is None or base.top
        use = [] if holds else [c.arm for c in top]
        lead = None if holds or not top else top[0]
        rows.append(
            {
                "axis": axis,
                "what": axis_line(results, axis),
                "has_baseline": base is not None,
                "baseline": None if base is None else base.highest,
                "levels": len(cells[0].levels),
                "use": use,
                "extra": None if lead is None else lead.extra,
                "cost": None if lead is None else decision.cost_of(costs, lead.task, lead.arm),
                "evidence": _evidence(lead, base),
            }
        )
    return rows


def _evidence(lead: Cell | None, base: Cell | None) -> str:
    if base is None:
        return "no baseline on this axis"
    if lead is None:
        return f"{len(base.seeds)} seeds: no arm tolerates more levels than baseline"
    if lead.compared:
        verdict = "significant" if lead.significant else "not significant"
        return f"pre-registered: {lead.wins} of {lead.paired} paired seeds beat baseline, Holm p {lead.p_holm:.2g} ({verdict})"
    return f"descriptive: {len(lead.seeds)} seeds, no test"


def cause_cells(r: dict, code=md.code, text=md.esc) -> list[str]:
    """A cause row's cells: markdown by default, HTML for the site."""
    shown = r["use"][: decision.SHOWN]
    use = ", ".join(code(a) for a in shown) + (
        f" (+{len(r['use']) - len(shown)} more tied)" if len(r["use"]) > len(shown) else ""
    )
    if not r["has_baseline"]:
        holds = "no baseline runs"
    elif r["baseline"] is None:
        holds = "not the mildest level"
    else:
        holds = f"{text(r['baseline'])} ({r['levels']} levels)"
    return [
        f"{code(r['axis'])} ({text(r['what'])})",
        holds,
        use or "nothing holds longer than baseline",
        "—" if r["extra"] is None or r["extra"] != r["extra"] else f"{r['extra']:+.0f}",
        "—" if r["extra"] is None else decision.cost_text(r["cost"]),
        text(r["evidence"]),
    ]


def section(
    records: Iterable[Record | dict], costs: dict | None = None, image: str | None = None, family: int = 0
) -> dict | None:
    """The page's 'Explosion by cause' section from the stress-axis records (None without any):
    what to use per cause, the matrix (and its heatmap, `image`), the rule, and per axis its
    cells in detail (stress_verdicts.py adds the predictions' verdicts). `family`: the registered
    comparisons Holm corrects over (stress_results)."""
    results = stress_results(records, family)
    if not results.cells:
        return None
    head = ["arm"] + [md.esc(f"{a} ({axis_line(results, a)})") for a in results.axes]
    rows = []
    for row in matrix_rows(results):
        cells = [
            (("≈ " if (c := results.cell(a, row["arm"])) and c.top else "") + row[a]) if row[a] else "—"
            for a in results.axes
        ]
        rows.append([md.code(row["arm"]), *cells])
    return {
        "matrix": md.table(head, rows),
        "image": image,
        "causes": md.table(CAUSE_HEAD, [cause_cells(r) for r in cause_rows(results, costs)]),
        "cause_rule": CAUSE_RULE,
        "rule": RULE,
        "axes": [_axis_detail(results, a) for a in results.axes],
    }


def axis_line(results: StressResults, axis: str) -> str:
    c = next(c for c in results.cells if c.axis == axis)
    held = "".join(f", {k} {v}" for k, v in c.held.items())
    return f"{c.vary} on {c.task}{held}"


def _axis_detail(results: StressResults, axis: str) -> dict:
    cells = [c for c in results.cells if c.axis == axis]
    levels = cells[0].levels  # the axis's, the same in every cell
    head = [
        "arm",
        "seeds",
        "levels each seed tolerates",
        "highest tolerated",
        "vs baseline",
        "test",
        "levels it learns at",
    ]
    head += [md.esc(f"quality at {lv}") for lv in levels]
    rows = []
    for c in sorted(cells, key=lambda c: (c.arm != "baseline", -c.tolerance, c.arm)):
        if c.arm == "baseline":
            test = "—"
        elif c.compared:
            test = f"{c.wins} wins, {c.losses} losses of {c.paired}; p {c.p:.3g}, Holm {c.p_holm:.3g}"
        else:
            test = "descriptive"
        quality = [_value(c.quality.get(i)) for i in range(len(levels))]
        per_seed = ", ".join(str(c.per_seed[s]) for s in c.seeds)
        rows.append(
            [
                md.code(c.arm) + (" ≈" if c.top else ""),
                len(c.seeds),
                per_seed,
                md.esc("none" if c.highest is None else c.highest),
                "—" if c.arm == "baseline" else cell_text(c),
                test,
                f"{c.learns} of {len(c.levels)}",
                *quality,
            ]
        )
    return {
        "name": md.esc(axis),
        "what": md.esc(axis_line(results, axis)),
        "levels": md.esc(", ".join(str(lv) for lv in levels)),
        "top": ", ".join(md.code(a) for a in results.top_group(axis)),
        "table": md.table(head, rows),
    }


def _value(x: float | None) -> str:
    return "—" if x is None or x != x else f"{x:.3g}"
