"""What each mitigation costs, as the page shows it: per task and arm, its time per training
step relative to the baseline's and its peak memory over the baseline's. No torch.

The figures are measured by benchmarks/arm_cost.py (paired: in one process, on one machine,
each arm between two baseline runs) and saved beside a page as FILE with the
machine, the command and the settings they were measured with; page.write shows a saved
file as it is (the results file does not make these numbers: they are of the code, not of a
run), and site.py shows the same table.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from ..core.spec import same_step_key
from . import markdown as md
from .stats import median_interval

FILE = "arm_cost.json"


def summarize(rounds: dict[str, list[dict]]) -> dict[str, dict]:
    """One task's measurements (arm -> its runs, each {"ms_per_step", "peak_mb", "status"},
    an arm's runs also with "baseline_ms" and "baseline_mb": the figures of the two baseline
    runs that bracket it) -> arm -> {ms_per_step, baseline_ms, ratio, ratio_lo, ratio_hi,
    ratio_ci, peak_mb, extra_mb, statuses}: an arm's ratio is its time over the mean of its
    bracketing baselines' (so a drift of the machine hits both alike), and its extra memory its
    peak over theirs; the table gives the medians over rounds, the ratio's range and, from 6
    rounds on, a 95% interval for its median (stats.median_interval). baseline_ms is the median
    of the bracketing baselines' mean, so ms_per_step / baseline_ms reads about as the ratio.
    The baseline's own row is 1 and +0 MB."""
    out = {}
    for arm, ms in rounds.items():
        own = arm == "baseline"
        ratios = (
            [1.0] if own else [m["ms_per_step"] / b for m in ms if m["ms_per_step"] and (b := _mean(m, "baseline_ms"))]
        )
        # a run's own peak may be 0 MB (it fits in what the process already holds)
        extra = (
            [0.0]
            if own
            else [
                m["peak_mb"] - b for m in ms if m["peak_mb"] is not None and (b := _mean(m, "baseline_mb")) is not None
            ]
        )
        steps = [m["ms_per_step"] for m in ms if m["ms_per_step"]]
        peaks = [m["peak_mb"] for m in ms if m["peak_mb"] is not None]
        bracketing = steps if own else [b for m in ms if m["ms_per_step"] and (b := _mean(m, "baseline_ms"))]
        interval = median_interval(ratios) if ratios and steps and not own else None
        out[arm] = {
            "ms_per_step": _median(steps),
            "baseline_ms": _median(bracketing),
            "ratio": _median(ratios) if steps else None,
            "ratio_lo": min(ratios) if ratios and steps else None,
            "ratio_hi": max(ratios) if ratios and steps else None,
            "ratio_ci": list(interval) if interval else None,
            "peak_mb": _median(peaks),
            "extra_mb": _median(extra) if peaks else None,
            "statuses": sorted({m["status"] for m in ms}),
        }
    return out


def _mean(measurement: dict, key: str) -> float | None:
    """The mean of a run's bracketing baseline figures: both, or the one that was measured
    (a baseline run that stopped within its warm-up steps has no time); None without either."""
    known = [v for v in measurement.get(key) or [] if v is not None]
    return sum(known) / len(known) if known else None


TIME_FIELDS = ("ms_per_step", "baseline_ms", "ratio", "ratio_lo", "ratio_hi", "ratio_ci")
MEMORY_FIELDS = ("peak_mb", "extra_mb")


def merge(old: dict | None, new: dict, what: str) -> dict:
    """A saved file updated by a pass that measured `what` ("time", "memory" or "both"): the
    other figures, with the command and machine that measured them, stay as `old` has them.
    Memory does not depend on the machine's load, so a memory pass may run beside other work;
    time per step does, so its pass runs alone."""
    if what == "both" or not old:
        return new
    mine = TIME_FIELDS if what == "time" else MEMORY_FIELDS
    tasks = {task: {arm: dict(f) for arm, f in arms.items()} for task, arms in old.get("tasks", {}).items()}
    for task, arms in new["tasks"].items():
        for arm, figures in arms.items():
            kept = {**dict.fromkeys(TIME_FIELDS + MEMORY_FIELDS), **tasks.setdefault(task, {}).get(arm, {})}
            statuses = set(kept.get("statuses") or []) | set(figures.get("statuses") or [])
            tasks[task][arm] = {**kept, **{k: figures.get(k) for k in mine}, "statuses": sorted(statuses)}
    return {**old, **{k: v for k, v in new.items() if k != "tasks"}, "tasks": tasks}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def save(measured: dict, out_dir: str | Path) -> Path:
    path = Path(out_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def saved(out_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(out_dir) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def rows(measured: dict) -> list[dict]:
    """One row per (task, arm), tasks and arms sorted, baseline first in its task."""
    out = []
    for task in sorted(measured["tasks"]):
        arms = measured["tasks"][task]
        for arm in sorted(arms, key=lambda a: (a != "baseline", a)):
            out.append({"task": task, "arm": arm, **arms[arm]})
    return out


def same_step_arms(records) -> dict[str, set[str]]:
    """task -> the arms whose training step is the baseline's on it (core.spec.same_step_key):
    they differ from it only in the learning rate, its schedule or the initial weights, so
    they cost what it costs, and their measured ratios show the table's noise."""
    keys: dict[tuple[str, str], str] = {}
    for r in records:  # runs that trained at the task's own settings (a skipped arm's spec is baseline's)
        if r.spec and r.status != "skipped" and not r.axis:
            keys.setdefault((r.task, r.label), same_step_key(r.spec))
    out: dict[str, set[str]] = {}
    for (task, arm), key in keys.items():
        if arm != "baseline" and keys.get((task, "baseline")) == key:
            out.setdefault(task, set()).add(arm)
    return out


def noise(measured: dict, same_step: dict[str, set[str]]) -> dict | None:
    """What the arms with baseline's step read (they should read 1): {n, lo, hi, off} with off
    the largest |ratio - 1|, and {widest}: the widest of their 95% intervals, as (lo, hi), if
    any has one; None when none of them was measured."""
    measured_rows = [r for r in rows(measured) if r["arm"] in same_step.get(r["task"], set()) and r["ratio"]]
    if not measured_rows:
        return None
    ratios = [r["ratio"] for r in measured_rows]
    intervals = [r["ratio_ci"] for r in measured_rows if r.get("ratio_ci")]
    return {
        "n": len(ratios),
        "lo": min(ratios),
        "hi": max(ratios),
        "off": max(abs(x - 1) for x in ratios),
        "widest": max(intervals, key=lambda ci: ci[1] - ci[0]) if intervals else None,
    }


def bounds(r: dict) -> tuple[float | None, float | None]:
    """A row's 95% interval for its ratio, or its range over the rounds where it has none
    (fewer than 6 rounds, or a file saved before intervals were)."""
    interval = r.get("ratio_ci")
    return (interval[0], interval[1]) if interval else (r["ratio_lo"], r["ratio_hi"])


def noise_note(measured: dict, same_step: dict[str, set[str]]) -> str | None:
    """The table's noise in one sentence (the page's cost section and the README's decision
    table say it alike); None when no arm with baseline's step was measured."""
    n = noise(measured, same_step)
    if n is None:
        return None
    widest = f", their widest 95% interval [{n['widest'][0]:.2f}, {n['widest'][1]:.2f}]" if n["widest"] else ""
    return (
        f"The {n['n']} task-arm pairs with baseline's training step (they differ from it only in the learning rate, its "
        f"schedule or the initial weights, so they cost what it costs) read {n['lo']:.2f}× to {n['hi']:.2f}× "
        f"baseline, up to {100 * n['off']:.0f}% off 1{widest}: a smaller difference in cost is not read from "
        "this table."
    )


def interval_text(r: dict) -> str:
    """A row's ratio with its 95% interval, or with its range (marked) below 6 rounds."""
    if r["ratio"] is None:
        return "—"
    if r.get("ratio_ci"):
        lo, hi = bounds(r)
        return f"{r['ratio']:.2f} [{lo:.2f}, {hi:.2f}]"
    if r["arm"] == "baseline":
        return f"{r['ratio']:.2f}"
    return f"{r['ratio']:.2f} (range {r['ratio_lo']:.2f}-{r['ratio_hi']:.2f})"


def table(measured: dict, same_step: dict[str, set[str]] | None = None) -> list[str]:
    """The page's cost table (its prose is in templates/costs.md.j2): one row per (task, arm);
    an arm whose training step is the baseline's is marked so."""
    same_step = same_step or {}
    out = [
        "| task | arm | ms/step | baseline's ms/step | × baseline [95% interval] | peak MB | vs baseline MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows(measured):
        arm = md.code(r["arm"]) + (" (baseline's step)" if r["arm"] in same_step.get(r["task"], set()) else "")
        step = "—" if r["ms_per_step"] is None else f"{r['ms_per_step']:.1f}"
        own = r["arm"] == "baseline" and r["ms_per_step"] is not None
        base = f"{r['ms_per_step']:.1f}" if own else "—" if r.get("baseline_ms") is None else f"{r['baseline_ms']:.1f}"
        peak = "—" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"
        extra = "—" if r["extra_mb"] is None else f"{r['extra_mb']:+.0f}"
        out.append(f"| {md.code(r['task'])} | {arm} | {step} | {base} | {interval_text(r)} | {peak} | {extra} |")
    return out
