"""Would a suite lose anything by not running the levels above one where every seed diverged?

    python benchmarks/diverged_above.py RESULTS [RESULTS ...] [--failed]

A budget rule for long suites: once every seed of an arm diverged at a learning-rate level,
the levels above it are not run. Before a suite relies on it, this checks it on records that
ran every level anyway: per results file, each (task, arm) whose grid has a level where all
seeds diverged, and at each higher level whether a seed learned there (what the rule would
have hidden) or every seed failed. Reads the grid as the page does (analysis/runs.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.analysis.runs import level_results, runs_frame, task_meta  # noqa: E402
from gradbench.store.jsonl import latest_by_run, load  # noqa: E402


def above_all_diverged(records: list[dict], failed: bool = False) -> list[tuple[str, str, float, float, bool]]:
    """(task, arm, first all-diverged level, a level above it, whether every seed failed there);
    with `failed`, levels above one where every seed failed (diverged or collapsed) instead."""
    frame = runs_frame(latest_by_run(records))
    frame = frame[~frame["not_run"]]  # a level the budget rule did not run tells nothing here
    out = []
    for (task, arm), runs in frame.groupby(["task", "strategy"], sort=True):
        levels = level_results(runs, task_meta(frame, task))
        if levels.empty:
            continue
        dead = [lr for lr in levels.index if (levels.loc[lr, "all_failed"] if failed else _all_diverged(runs, lr))]
        if not dead:
            continue
        first = min(dead)
        for lr, row in levels.iterrows():
            if lr > first:
                out.append((task, arm, first, lr, bool(row["all_failed"])))
    return out


def _all_diverged(runs, lr: float) -> bool:
    grid = runs[(runs["lr_mult"] == lr) & runs["phase"].isin(("", "sweep"))]
    return len(grid) > 0 and bool((grid["status"] == "diverged").all())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument(
        "--failed", action="store_true", help="levels above one where every seed failed (diverged or collapsed)"
    )
    args = ap.parse_args()
    what = "failed" if args.failed else "diverged"
    for path in args.results:
        rows = above_all_diverged(load(Path(path)), failed=args.failed)
        hidden = [r for r in rows if not r[4]]
        print(
            f"{path}: {len(rows)} (task, arm, level) above a level where every seed {what}; "
            f"{len(rows) - len(hidden)} failed on every seed there, {len(hidden)} had a seed that learned"
        )
        for task, arm, first, lr, _ in hidden:
            print(f"  a seed learned: {task} {arm} at lr x{lr:g}, above x{first:g} where every seed {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
