"""How stable is a leaderboard's ranking under its own seed noise?

    python benchmarks/rank_stability.py RESULTS [--tasks-from RESULTS ...] [--resamples N] [--seed S]
                                                [--workers N] [--save DIR]

Re-scores the results file N times, each time with every task's seeds drawn again with
replacement, the same draw for all its strategies and levels (a paired seed bootstrap; under
a tuning protocol the sweep seeds and the final-only seeds each within their own kind), and
prints, per task and overall, the share of resamples in which the top 3 (in the page's
order) is unchanged, then per task the share in which the decision table's top group (the
arms it says to use) is the same set. With --save DIR it writes DIR/rank_stability.json, which the page in DIR
shows while its records are the ones measured. --workers N re-scores the resamples in N
processes, with the same result as one (every draw is made first, from --seed); a full
leaderboard takes about 10 s of one core per resample. No torch: gradbench/analysis/rank_stability.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.analysis import rank_stability  # noqa: E402
from gradbench.store import jsonl  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("results", help="a results file (JSON lines)")
    p.add_argument("--resamples", type=int, default=200, help="seed bootstrap resamples (default 200)")
    p.add_argument("--seed", type=int, default=0, help="the resampling RNG's seed (default 0)")
    p.add_argument("--workers", type=int, default=1, help="processes that re-score resamples (default 1)")
    p.add_argument("--save", metavar="DIR", help="write DIR/rank_stability.json for the page in DIR")
    p.add_argument(
        "--tasks-from",
        action="append",
        default=[],
        metavar="RESULTS",
        help="another suite's results scored with these, as a page composed with leaderboard --tasks-from",
    )
    args = p.parse_args(argv)
    if args.resamples < 1:
        p.error(f"--resamples: must be a positive integer, got {args.resamples}")
    if args.workers < 1:
        p.error(f"--workers: must be a positive integer, got {args.workers}")
    start = time.perf_counter()

    def progress(done: int) -> None:
        if done % 10 == 0 or done == args.resamples:
            print(f"  {done}/{args.resamples} resamples, {time.perf_counter() - start:.0f} s", file=sys.stderr)

    records = jsonl.load(args.results) + [r for f in args.tasks_from for r in jsonl.load(f)]
    measured = rank_stability.measure(records, args.resamples, args.seed, progress, args.workers)
    took = time.perf_counter() - start
    print(
        f"rank stability of {args.results}: {args.resamples} seed-bootstrap resamples (seed {args.seed}), {took:.0f} s"
    )
    top = rank_stability.TOP
    print(f"{'ranking':<14} {'top ' + str(top) + ' unchanged':>18}   top {top} as scored")
    for key, share in measured["unchanged"].items():
        print(f"{key:<14} {share:>17.0%}    {', '.join(measured['top'][key])}")
    print(f"\n{'task':<14} {'top group unchanged':>19}   the decision table's top group as scored")
    for task, g in measured["groups"].items():
        print(f"{task:<14} {g['unchanged']:>18.0%}    {', '.join(g['use'])}")
    if args.save:
        print(f"saved: {rank_stability.save(measured, args.save)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
