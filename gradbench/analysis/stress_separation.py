"""Does each cause separate the arms? Per stress axis: where baseline first fails, the arms
that tolerate at least 2 levels more, and those that tolerate no more.

The causes issue asks this of every axis before its matrix means anything: an axis where
every arm holds as long as baseline (or every arm longer) ranks nothing. The table is read
off the cells of stress.py (tolerance on the seeds shared with baseline) and goes into the
README between its markers (`benchmarks/stress_table.py RESULTS --readme README.md`), so no
figure in it is typed by hand.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..core.record import Record
from . import markdown as md
from .stress import Cell, StressResults, axis_line, cell_text, stress_results

MORE = 2  # levels over baseline that count as "holds longer"
# the remade leaderboard's stricter bar: at least this many arms tolerate more levels than
# baseline (any more), and at least this many no more
EACH_SIDE = 3
HEAD = [
    "cause (axis)",
    "levels",
    "baseline first fails at",
    f"≥ {MORE} levels more than baseline",
    "no more than baseline",
    "separates",
    f"{EACH_SIDE} more, {EACH_SIDE} no more",
]
START, END = "<!-- stress-separation:start -->", "<!-- stress-separation:end -->"
RULE = (
    "A level fails for a seed when it or a milder level of the axis exploded or collapsed; baseline first fails "
    "at the mildest level where any of its seeds does. An arm's levels over baseline are read on the seeds both "
    f"ran (the matrix's cells: * a Holm-significant pre-registered comparison, (d) descriptive). An axis separates "
    f"the arms when at least one holds {MORE} or more levels longer than baseline and at least one no longer; "
    f"the last column reads the stricter bar of the remade leaderboard: at least {EACH_SIDE} arms hold any level "
    f"longer than baseline and at least {EACH_SIDE} no longer (counts of arms on each side)."
)


def rows(results: StressResults) -> list[dict]:
    """One row per axis with a baseline: its levels, baseline's first failed level (None: it
    held every level), the arms holding MORE or more extra levels (most first) and those
    holding none."""
    out = []
    for axis in results.axes:
        base = results.cell(axis, "baseline")
        if base is None:
            continue
        others = [c for c in results.cells if c.axis == axis and c.arm != "baseline" and c.extra == c.extra]
        more = sorted((c for c in others if c.extra >= MORE), key=lambda c: (-c.extra, c.arm))
        none = sorted((c for c in others if c.extra <= 0), key=lambda c: (c.extra, c.arm))
        out.append(
            {
                "axis": axis,
                "what": axis_line(results, axis),
                "levels": base.levels,
                "first_fail": base.levels[base.tolerance] if base.tolerance < len(base.levels) else None,
                "more": more,
                "none": none,
                "separates": bool(more) and bool(none),
                "longer": sum(c.extra >= 1 for c in others),
            }
        )
    return out


def _arms(cells: list[Cell]) -> str:
    return ", ".join(f"{md.code(c.arm)} {cell_text(c)}" for c in cells) or "none"


def table(records: Iterable[Record | dict], family: int = 0) -> list[str]:
    """The markdown table of every axis in the records (`family`: stress_results' Holm family)."""
    body = [
        [
            f"{md.code(r['axis'])} ({md.esc(r['what'])})",
            md.esc(", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in r["levels"])),
            "held every level" if r["first_fail"] is None else md.esc(f"{r['first_fail']}"),
            _arms(r["more"]),
            _arms(r["none"]),
            "yes" if r["separates"] else "no",
            f"{'yes' if r['longer'] >= EACH_SIDE and len(r['none']) >= EACH_SIDE else 'no'} "
            f"({r['longer']} more, {len(r['none'])} no more)",
        ]
        for r in rows(stress_results(records, family))
    ]
    return md.table(HEAD, body).splitlines()


def block(lines: list[str], command: str) -> str:
    """The README's copy between the markers, naming the command that wrote it."""
    return md.generated(START, END, command, [*lines, "", RULE])


def write_block(readme, lines: list[str], command: str) -> bool:
    """Replace the block between the markers in `readme` (a path); False when it has none."""
    return md.write_between(readme, START, END, block(lines, command))
