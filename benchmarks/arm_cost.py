"""What each mitigation costs: per task and arm, its time per training step relative to the
baseline's and its peak memory, measured paired, in one process, on one machine.

    python benchmarks/arm_cost.py SUITE [--steps 60] [--rounds 3] [--threads 1] [--lr-mult 0.25]
                                        [--tasks a,b] [--json OUT] [--data DIR]

Every task and arm of the suite (its task overrides; each arm at its defaults) is one real
gradbench run (training.run.run_one) of `steps` steps, at one stress level below the tasks'
explosive one, so that the arms run all their steps. The arms of a task alternate round by
round in palindromic order (abc, cba, ...), so a drift of the machine's speed hits all alike,
after one untimed baseline run (the data's first load and every lazy set-up).
A run's time per step is the median time between the starts of consecutive training steps
after 5 warm-up steps (what benchmarks/harness.py measures); an arm's ratio to the baseline is
taken within each round, and the table gives its median over the rounds with the range.
Peak memory: on a GPU, torch's peak allocated bytes of the run; on the CPU, the process's
peak resident set (VmHWM, reset before each run through /proc/self/clear_refs), which
includes the dataset and the libraries, so the difference to the baseline's is the arm's own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as L
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gradbench.catalogue.strategies import apply_arm  # noqa: E402
from gradbench.suite import load_suite  # noqa: E402
from gradbench.suite.expand import _base, _not_applicable  # noqa: E402
from gradbench.training.data import resolve_data_root  # noqa: E402
from gradbench.training.run import run_one  # noqa: E402

WARMUP = 5


class StepTimer(L.Callback):
    def __init__(self):
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def peak_mb() -> float | None:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(spec, data_root: Path) -> dict:
    timer = StepTimer()
    reset_peak()
    rec = run_one(spec, data_root, callbacks=(timer,))
    deltas = [b - a for a, b in zip(timer.starts[WARMUP:], timer.starts[WARMUP + 1 :])]
    return {
        "status": rec["status"],
        "ms_per_step": 1000 * statistics.median(deltas) if len(deltas) >= 3 else None,
        "peak_mb": peak_mb(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr-mult", type=float, default=0.25)
    ap.add_argument("--tasks", default=None, help="comma-separated subset of the suite's tasks")
    ap.add_argument("--json", default=None, help="also write every measurement here")
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    data_root = resolve_data_root(args.data)
    tasks = args.tasks.split(",") if args.tasks else list(suite.tasks)
    everything = {}
    for task in tasks:
        base = _base(suite, task, 0, args.lr_mult, "").replace(
            max_steps=args.steps, eval_every=args.steps, monitor={**suite.monitor}
        )
        arms = {a.label: apply_arm(a, base) for a in suite.arms if not _not_applicable(a, base)}
        if "baseline" not in arms:
            arms = {"baseline": base, **arms}
        rounds = {label: [] for label in arms}
        order = list(arms)
        measure(arms["baseline"], data_root)  # untimed: the data's first load and lazy set-up happen here
        for r in range(args.rounds):
            for label in order if r % 2 == 0 else order[::-1]:
                rounds[label].append(measure(arms[label], data_root))
                print(f"{task} round {r} {label}: {rounds[label][-1]}", file=sys.stderr, flush=True)
        everything[task] = rounds
        print(
            f"\n### `{task}`: {args.steps} steps at lr x{args.lr_mult:g}, {args.rounds} rounds, {args.threads} thread(s)\n"
        )
        print(
            "| arm | ms/step (median) | x baseline (median, range over rounds) | peak MB | peak vs baseline MB | statuses |"
        )
        print("|---|---|---|---|---|---|")
        base_rounds = rounds["baseline"]
        for label, ms in rounds.items():
            ratios = [
                m["ms_per_step"] / b["ms_per_step"]
                for m, b in zip(ms, base_rounds)
                if m["ms_per_step"] and b["ms_per_step"]
            ]
            extra = [m["peak_mb"] - b["peak_mb"] for m, b in zip(ms, base_rounds) if m["peak_mb"] and b["peak_mb"]]
            step = [m["ms_per_step"] for m in ms if m["ms_per_step"]]
            peaks = [m["peak_mb"] for m in ms if m["peak_mb"]]
            ratio = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "—"
            print(
                f"| `{label}` | {statistics.median(step):.2f} | {ratio} | "
                f"{statistics.median(peaks):.0f} | {statistics.median(extra):+.0f} | "
                f"{', '.join(sorted({m['status'] for m in ms}))} |"
                if step and peaks and extra
                else f"| `{label}` | — | {ratio} | — | — | {', '.join(sorted({m['status'] for m in ms}))} |"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
