"""Paired A/B of the stability monitor: the one at a git revision against the working tree's.

    python benchmarks/monitor_ab.py [--base HEAD|off] [--tasks mnist_mlp,adding_rnn] [--rounds 24]
                                    [--steps 100] [--threads N]

A change to the monitor saves microseconds in a step of milliseconds, less than the
machine's speed moves between two harness runs. So both monitors run in one process, on the
same spec, alternating run by run (ABBA, BAAB, ...): gradbench's own run path
(training.run.run_one), once with the StabilityMonitor as it is at --base (loaded from git) and
once as it is in the working tree. Per task it prints each side's median step (the time
between the starts of consecutive training steps, after 5 warm-up steps), the median over
rounds of the paired difference B - A with its quartiles, and the time each run spent in
the monitor's own hooks (timings.monitor_s) per step.

With --base off, side A runs without a monitor (suite `monitor: {enabled: false}`, the
harness's way (c)): B - A is then what the monitor costs a step, paired, which the table also
gives as a share of B's step (the issue's "the monitor costs at most 5%" of (b)) and as B/A
(the harness's (b)/(c)). More rounds than the harness's 32 narrow it, since only these two
ways alternate: --rounds 64 takes about 3 minutes for MNIST.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import types
from pathlib import Path

import gradbench.catalogue.grad_hooks
import gradbench.training.monitor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    LR_MULT,
    REPO,
    _quartiles,
    add_common_options,
    alternate,
    apply_common_options,
    spec_for,
    threads_text,
    way_gradbench,
)

# where the monitor lives, newest layout first: (file, the package its relative imports resolve in)
MONITOR_PATHS = (("gradbench/training/monitor.py", "gradbench.training"), ("gradbench/stability.py", "gradbench"))


def monitor_at(rev: str) -> type:
    """StabilityMonitor as it is at `rev`, as a module of its own; its relative imports
    resolve against the working tree's package (the flat layout's grad_hooks included)."""
    for path, package in MONITOR_PATHS:  # noqa: B007 (the one found is used after the loop)
        shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True)
        if shown.returncode == 0:
            break
    else:
        raise SystemExit(
            f"monitor_ab: --base {rev} has no monitor (looked for {', '.join(p for p, _ in MONITOR_PATHS)})"
        )
    sys.modules.setdefault("gradbench.grad_hooks", gradbench.catalogue.grad_hooks)  # the flat layout's name
    module = types.ModuleType(f"{package}.monitor_at_{rev}")
    module.__package__ = package
    exec(compile(shown.stdout, f"{rev}:{path}", "exec"), module.__dict__)
    return module.StabilityMonitor


def ab(task: str, root: Path, monitors: dict, rounds: int, steps: int) -> dict:
    """monitors: side -> StabilityMonitor class, or None for a run without a monitor."""
    specs = {k: spec_for(task, steps, m is not None, lr_mult=LR_MULT[task]) for k, m in monitors.items()}
    hooks_ms = {k: [] for k in monitors}

    def run(side):
        monitor = monitors[side]

        def once():
            if monitor is not None:
                gradbench.training.monitor.StabilityMonitor = monitor  # run_one imports it per run
            return statistics.median(way_gradbench(specs[side], root, hooks_ms[side] if monitor else None))

        return once

    try:
        step_s = alternate({side: run(side) for side in monitors}, rounds)
    finally:  # the working tree's monitor again, whichever side ran last
        gradbench.training.monitor.StabilityMonitor = monitors["B"]
    diff = [b - a for a, b in zip(step_s["A"], step_s["B"])]
    share = [(b - a) / b for a, b in zip(step_s["A"], step_s["B"])]
    ratio = [b / a for a, b in zip(step_s["A"], step_s["B"])]
    return {
        "task": task,
        "step_ms": {k: statistics.median(v) * 1e3 for k, v in step_s.items()},
        "diff_us": statistics.median(diff) * 1e6,
        "diff_iqr_us": tuple(q * 1e6 for q in _quartiles(diff)),
        "share": statistics.median(share),
        "share_iqr": _quartiles(share),
        "ratio": statistics.median(ratio),
        "ratio_iqr": _quartiles(ratio),
        "hooks_us": {k: statistics.median(v) * 1e3 if v else None for k, v in hooks_ms.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--base",
        default="HEAD",
        help="git revision of side A (default HEAD), or 'off': no monitor; B is the working tree's",
    )
    p.add_argument("--tasks", default="mnist_mlp,adding_rnn")
    p.add_argument("--steps", type=int, default=100, help="steps per run")
    add_common_options(p, rounds=24)
    args = p.parse_args()
    root = apply_common_options(args)
    off = args.base == "off"
    if (
        not off
        and subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"], cwd=REPO, capture_output=True
        ).returncode
        != 0
    ):
        p.error(
            f"--base: {args.base!r} is not a git revision; give a commit, a branch or a tag, or 'off' for no monitor"
        )
    monitors = {"A": None if off else monitor_at(args.base), "B": gradbench.training.monitor.StabilityMonitor}
    print(
        f"A: {'no monitor' if off else f'the monitor at {args.base}'}; B: the working tree's monitor; "
        f"{threads_text()}, {args.rounds} rounds of {args.steps} steps"
    )
    print(
        "| task | A step ms | B step ms | B - A us a step (quartiles over rounds) | (B - A) / B | B / A "
        "| monitor's hooks A us | B us |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for task in [t for t in args.tasks.split(",") if t]:
        r = ab(task, root, monitors, args.rounds, args.steps)
        lo, hi = r["diff_iqr_us"]
        hooks = ["-" if v is None else f"{v:.1f}" for v in r["hooks_us"].values()]
        print(
            f"| {task} | {r['step_ms']['A']:.3f} | {r['step_ms']['B']:.3f} | {r['diff_us']:+.1f} "
            f"({lo:+.1f} to {hi:+.1f}) | {r['share']:.1%} ({r['share_iqr'][0]:.1%} to {r['share_iqr'][1]:.1%}) "
            f"| {r['ratio']:.3f} ({r['ratio_iqr'][0]:.3f}-{r['ratio_iqr'][1]:.3f}) | {hooks[0]} | {hooks[1]} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
