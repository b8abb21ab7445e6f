"""How long a protocol suite takes before it is run: its runs per task, priced at the step rate
its tasks reached in recorded runs.

    python benchmarks/suite_cost.py SUITE RATES [RATES ...] [--workers 2] [--reuse RESULTS ...]

The sweep is counted exactly (the suite's expansion: applicable runs, n/a arms left out); the
extra trials and final seeds are counted as every applicable arm getting them (protocol
extra_trials x sweep_seeds, then seeds - sweep_seeds), an upper bound: an arm that shares a
sweep run with its final seeds, or an arm the budget rule stops early, costs less. Each run is
priced at max_steps / (the task's median steps per second over the ok runs in RATES, made one
run per core as a suite runs them) plus its share of evaluations, both read off those records'
wall time; a task without records in RATES is priced at its catalogue guess (cpu_ms_per_step)
and flagged. The stress axes (stress_axes) are priced after the tasks, one row each: every arm
at every level and seed, a level priced in proportion to depth or sequence length where it
sets one. Prints per task and axis: arm-tasks, runs, core-hours; then wall hours on --workers
cores. With --reuse (the files a suite reuses, gradbench run --reuse), a sweep run they hold
trained under this numerics version costs nothing and is counted apart; the extra trials and
final seeds stay an upper bound (which of them a reuse file holds depends on the choices).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.catalogue.tasks import TASKS  # noqa: E402
from gradbench.core.numerics import NUMERICS, numerics_of  # noqa: E402
from gradbench.store.jsonl import latest_by_run, load  # noqa: E402
from gradbench.suite import Skipped, expand, load_suite  # noqa: E402
from gradbench.suite.stress_axes import axis_arms, axis_base, own_value  # noqa: E402


def seconds_per_step(paths: list[Path]) -> dict[str, float]:
    """Per task: the median over ok runs of wall seconds per optimizer step (training and
    evaluation together, as a suite spends them)."""
    per_task: dict[str, list[float]] = defaultdict(list)
    for path in paths:
        for r in latest_by_run(load(path)):
            wall, steps = (r.get("timings") or {}).get("wall_s"), (r.get("metrics") or {}).get("steps")
            if r["status"] == "ok" and wall and steps:
                per_task[r["task"]].append(wall / steps)
    return {task: statistics.median(v) for task, v in per_task.items()}


def trained_ids(paths: list[Path]) -> set[str]:
    """run_ids the files hold that trained (ok or diverged) under this numerics version: what
    gradbench run --reuse copies instead of training."""
    return {
        r["run_id"]
        for path in paths
        for r in latest_by_run(load(path))
        if r["status"] in ("ok", "diverged") and numerics_of(r) == NUMERICS
    }


def estimate(suite, rates: dict[str, float], reused: set[str] = frozenset()) -> list[dict]:
    p = suite.protocol
    runs_per_arm = p.extra_trials * p.sweep_seeds + max(0, len(suite.seeds) - p.sweep_seeds) if p else 0
    runs_of_sweep = [i for i in expand(suite) if not isinstance(i, Skipped)]
    rows = []
    for task in suite.tasks:
        sweep = [i for i in runs_of_sweep if i.task == task]
        arms = {i.strategy for i in sweep}
        steps = sweep[0].max_steps if sweep else 0
        guess = task not in rates
        per_step = TASKS.get(task).cpu_ms_per_step / 1000 if guess else rates[task]
        held = sum(i.run_id in reused for i in sweep)
        runs = len(sweep) - held + runs_per_arm * len(arms)
        rows.append(
            {
                "task": task,
                "arms": len(arms),
                "runs": runs,
                "reused": held,
                "s_per_run": steps * per_step,
                "core_h": runs * steps * per_step / 3600,
                "guess": guess,
            }
        )
    return rows + stress_estimate(suite, rates)


# a level's cost grows about in proportion to these variables (a deeper stack, a longer
# sequence); any other variable is priced at the task's own rate
SCALES_COST = ("model.depth", "data.seq_len")


def stress_estimate(suite, rates: dict[str, float]) -> list[dict]:
    """The stress axes, one row each: every arm the axis runs at every level and its seeds (an
    upper bound: the mildest level is often the tuned run itself, copied, and the levels above
    one where every seed exploded are not run), each run priced at the task's rate times the
    level's over the task's own value where the variable scales the step (SCALES_COST)."""
    rows = []
    for name, axis in suite.stress_axes.items():
        base = axis_base(suite, axis)
        guess = axis.task not in rates
        per_step = TASKS.get(axis.task).cpu_ms_per_step / 1000 if guess else rates[axis.task]
        arms = axis_arms(suite, axis)
        seeds = sum(arms.values())
        own = own_value(base, axis) if axis.vary in SCALES_COST else None
        factors = [level / own if own else 1.0 for level in axis.levels]
        seconds = seeds * base.max_steps * per_step * sum(factors)
        rows.append(
            {
                "task": f"{name} axis: {axis.vary} on {axis.task}",
                "arms": len(arms),
                "runs": seeds * len(axis.levels),
                "reused": 0,
                "s_per_run": seconds / (seeds * len(axis.levels)),
                "core_h": seconds / 3600,
                "guess": guess,
            }
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite")
    ap.add_argument("rates", nargs="+", type=Path, help="results files whose ok runs give each task's step rate")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reuse", nargs="+", type=Path, default=[], help="results files the suite reuses (run --reuse)")
    args = ap.parse_args()
    rows = estimate(load_suite(args.suite), seconds_per_step(args.rates), trained_ids(args.reuse))
    reuse = bool(args.reuse)
    print(
        "| task | arms | runs (upper bound) |" + (" sweep runs reused |" if reuse else "") + " s per run | core-hours |"
    )
    print("|---|---|---|" + ("---|" if reuse else "") + "---|---|")
    for r in rows:
        flag = " (catalogue guess)" if r["guess"] else ""
        held = f" {r['reused']} |" if reuse else ""
        print(f"| {r['task']} | {r['arms']} | {r['runs']} |{held} {r['s_per_run']:.0f}{flag} | {r['core_h']:.1f} |")
    total = sum(r["core_h"] for r in rows)
    print(f"\ntotal {total:.1f} core-hours: about {total / args.workers:.1f} h of wall time on {args.workers} workers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
