"""Which arms would reach a task's target under a shorter training budget, read off the sweep
that was run: a tool for sizing a task's budget so that it separates the arms.

    python benchmarks/shorter_budget.py RESULTS TASK --steps 300 500 600 [--target T]

For each budget, every arm's sweep levels are read at that step of their validation curves (a
run that diverged counts at chance at every step, as the page counts it), the best level's
mean over the sweep seeds is the arm's value, and the arms are split by whether it meets the
task's target. For an arm whose learning rate does not depend on the budget (no cosine decay
to max_steps), the first S steps of a longer run are the S-step run (the same seed, data order
and schedule), so the split is what the sweep would show at S steps; for one whose schedule
depends on max_steps it is an approximation and is marked. It reads validation only, at the
steps validation ran; the protocol's final seeds and test metric need the suite run again.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.store.jsonl import latest_by_run, load  # noqa: E402


def split(records: list[dict], task: str, steps: int, target: float | None = None) -> dict:
    """{"reach": [(arm, level, value)], "miss": [...], "approximate": [arms], "target": t} at `steps`."""
    runs = [
        r
        for r in latest_by_run(records)
        if r["task"] == task
        and (r.get("spec") or {}).get("phase") in ("", "sweep")
        and r["status"] in ("ok", "diverged")
    ]
    if not runs:
        raise SystemExit(f"no sweep runs of {task!r} in these records")
    m = runs[0]["metrics"]
    target = m["target"] if target is None else target
    sign = 1.0 if m["higher_is_better"] else -1.0
    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    approximate = set()
    for r in runs:
        arm, level = r["strategy"]["label"], float(r["stress"]["lr_mult"])
        curve = {int(s): v for s, v in r["metrics"]["val_curve"] if v is not None}
        at = curve.get(steps)
        value = m["chance"] if r["status"] == "diverged" or at is None else at
        if r["status"] == "ok" and at is None and steps < r["metrics"]["steps"]:
            raise SystemExit(f"{arm}: no validation at step {steps} (validation ran at {sorted(curve)[:6]} ...)")
        values[arm][level].append(value)
        if (r.get("spec") or {}).get("schedule", {}).get("decay", "none") != "none":
            approximate.add(arm)
    out = {"reach": [], "miss": [], "approximate": sorted(approximate), "target": target}
    for arm, levels in sorted(values.items()):
        level, value = max(((lv, statistics.mean(v)) for lv, v in levels.items()), key=lambda x: (sign * x[1], -x[0]))
        out["reach" if sign * (value - target) >= 0 else "miss"].append((arm, level, value))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("task")
    ap.add_argument("--steps", type=int, nargs="+", required=True)
    ap.add_argument("--target", type=float, default=None, help="default: the task's")
    args = ap.parse_args()
    records = load(Path(args.results))
    print("| budget (steps) | reach | miss | arms that reach (best level: validation) |")
    print("|---|---|---|---|")
    for steps in args.steps:
        s = split(records, args.task, steps, args.target)
        shown = ", ".join(f"{a}{'*' if a in s['approximate'] else ''} (x{lv:g}: {v:.3g})" for a, lv, v in s["reach"])
        print(f"| {steps} | {len(s['reach'])} | {len(s['miss'])} | {shown or '—'} |")
    print("\n(* a schedule that depends on max_steps: approximate)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
