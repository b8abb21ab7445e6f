"""How stable is a leaderboard's ranking under its own seed noise?

    python benchmarks/rank_stability.py RESULTS [--resamples N] [--seed S]

Re-scores the results file N times, each time with every task's seeds drawn again with
replacement, the same draw for all its strategies and levels (a paired seed bootstrap), and
prints, per task and
overall, the share of resamples in which the top 3 (in the page's order) is unchanged: a
ranking whose top 3 survives in 95% of resamples means something; one that survives in 20%
is a draw. No torch: it reads records and scores them as `gradbench leaderboard` does.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.analysis.scoring import score  # noqa: E402
from gradbench.store import jsonl  # noqa: E402

TOP = 3


def top(scores) -> dict[str, tuple[str, ...]]:
    """The top-3 strategies per task and overall, in the page's order."""
    pt = scores.per_task
    out = {task: tuple(g.loc[g["status"] == "scored", "strategy"][:TOP]) for task, g in pt.groupby("task", sort=True)}
    out["overall"] = tuple(scores.overall["strategy"][:TOP])
    return out


def resample(records: list[dict], rng: random.Random) -> list[dict]:
    """One seed bootstrap: per task, the seeds drawn again with replacement, the same draw for
    every strategy and level (so comparisons stay paired); draw j of seed s becomes seed
    "s#j" in every strategy's copy of its runs (a run_id of its own: the scorer keeps one
    record per run_id)."""
    by_task = defaultdict(list)
    for r in records:
        by_task[r["task"]].append(r)
    out = []
    for runs in by_task.values():
        seeds = sorted({r["seed"] for r in runs})
        draw = [rng.choice(seeds) for _ in seeds]
        for j, seed in enumerate(draw):
            for r in runs:
                if r["seed"] == seed:
                    out.append({**r, "seed": f"{seed}#{j}", "run_id": f"{r['run_id']}#{j}"})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("results", help="a results file (JSON lines)")
    p.add_argument("--resamples", type=int, default=200, help="seed bootstrap resamples (default 200)")
    p.add_argument("--seed", type=int, default=0, help="the resampling RNG's seed (default 0)")
    args = p.parse_args(argv)
    if args.resamples < 1:
        p.error(f"--resamples: must be a positive integer, got {args.resamples}")
    records = jsonl.latest_by_run(jsonl.load(args.results))
    records = [r for r in records if r["status"] != "skipped"]
    reference = top(score(records))
    rng = random.Random(args.seed)
    same = dict.fromkeys(reference, 0)
    start = time.perf_counter()
    for _ in range(args.resamples):
        got = top(score(resample(records, rng)))
        for key, ranking in reference.items():
            same[key] += got.get(key) == ranking
    took = time.perf_counter() - start
    print(
        f"rank stability of {args.results}: {args.resamples} seed-bootstrap resamples (seed {args.seed}), {took:.0f} s"
    )
    print(f"{'ranking':<14} {'top ' + str(TOP) + ' unchanged':>18}   top {TOP} as scored")
    for key, ranking in reference.items():
        print(f"{key:<14} {same[key] / args.resamples:>17.0%}    {', '.join(ranking)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
