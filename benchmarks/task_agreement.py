"""Do two tasks rank the arms alike? Rank correlations over the arms both ran.

    python benchmarks/task_agreement.py RESULTS_A TASK_A RESULTS_B TASK_B

Scores each results file as the page does and, over the arms both tasks scored, prints
Spearman's rank correlation (scipy.stats.spearmanr) of the headroom (octaves from the tuned
lr up to the largest stable one), of the quality at the tuned configuration (each task's
metric, turned so that higher is better) and of the quality rank, with each one's p value.
A cheap task that agrees with a costly one can stand in for it; one that does not answers a
different question (or none, where its readings are all ties). Tied values share a rank; a
headroom censored by the grid's top (stable up to it) enters as its lower bound, so there an
arm tuned lower ranks higher.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.analysis.scoring import score  # noqa: E402
from gradbench.store.jsonl import latest_by_run, load  # noqa: E402

MEASURES = ("headroom", "quality", "quality_rank")


def task_rows(results: str, task: str) -> pd.DataFrame:
    """One row per scored arm of `task`: its headroom, its quality (higher is better) and its
    quality rank."""
    pt = score(latest_by_run(load(Path(results)))).per_task
    rows = pt[(pt["task"] == task) & (pt["status"] == "scored")]
    if rows.empty:
        raise ValueError(
            f"task: {task} has no scored arms in {results}; its tasks: {', '.join(sorted(set(pt['task'])))}"
        )
    sign = 1.0 if bool(rows["higher_is_better"].iloc[0]) else -1.0
    return pd.DataFrame(
        {
            "headroom": rows["headroom"].astype(float).to_numpy(),
            "quality": sign * rows["accuracy"].astype(float).to_numpy(),
            "quality_rank": -rows["quality_rank"].astype(float).to_numpy(),  # rank 1 is the best
        },
        index=rows["strategy"].to_numpy(),
    )


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, tuple[int, float, float]]:
    """measure -> (arms compared, Spearman's rho, its p) over the arms both have a value for."""
    shared = a.index.intersection(b.index)
    out = {}
    for m in MEASURES:
        x, y = a.loc[shared, m], b.loc[shared, m]
        keep = x.notna() & y.notna()
        if keep.sum() < 3 or x[keep].nunique() < 2 or y[keep].nunique() < 2:
            out[m] = (int(keep.sum()), float("nan"), float("nan"))
            continue
        rho, p = stats.spearmanr(x[keep], y[keep])
        out[m] = (int(keep.sum()), float(rho), float(p))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results_a")
    ap.add_argument("task_a")
    ap.add_argument("results_b")
    ap.add_argument("task_b")
    args = ap.parse_args(argv)
    try:
        a, b = task_rows(args.results_a, args.task_a), task_rows(args.results_b, args.task_b)
    except ValueError as e:
        print(f"task_agreement: {e}", file=sys.stderr)
        return 2
    print(f"{args.task_a} ({args.results_a}) against {args.task_b} ({args.results_b})")
    print("| measure | arms | Spearman rho | p |")
    print("|---|---|---|---|")
    for m, (n, rho, p) in agreement(a, b).items():
        shown = "— (constant on one side)" if rho != rho else f"{rho:+.2f}"
        print(f"| {m} | {n} | {shown} | {'—' if p != p else f'{p:.2g}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
