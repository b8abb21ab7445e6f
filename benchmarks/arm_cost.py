"""What each mitigation costs: per task and arm, its time per training step relative to the
baseline's and its peak memory, measured paired, in one process, on one machine.

    python benchmarks/arm_cost.py SUITE [--steps 40] [--min-seconds 2] [--rounds 9] [--baseline-every 2] [--threads 1]
                                        [--lr-mult 0.05] [--what both|time|memory] [--tasks a,b]
                                        [--arms a,b]
                                        [--json OUT] [--save DIR] [--data DIR]

--save DIR writes the summary as DIR/arm_cost.json, which the leaderboard page in DIR shows
(gradbench/analysis/arm_cost.py); run it alone on the machine, since it times. --what memory
measures memory only, which the machine's load does not change, so it may run beside other
work; saved into a DIR that holds a time pass, it replaces only the memory figures (and
--what time only the times).

Every task and arm of the suite (its task overrides; each arm at its defaults) is one real
gradbench run (training.run.run_one) of `steps` steps, or more where a baseline run of that
many would take under --min-seconds (a first, untimed baseline run sizes it), at lr x0.05: far
enough below every task's explosive level that the arms run all their steps (the adding task's
baseline diverges by step 21 at x0.25), and the learning rate does not change a step's work.
Short runs are what make a ratio noisy: an MNIST run of 40 steps lasts 0.35 s, and consecutive
ones differed by 17.6% (sd), against 8.2% for runs of 2 s (the A/A figures in
benchmarks/README.md). The arms of a task alternate round by
round in palindromic order (abc, cba, ...), after one untimed baseline run (the data's first
load and every lazy set-up), and a baseline run comes before the round's first arm (the
previous round's last: one run a round saved), after every --baseline-every arms and after its
last: each arm is compared with the mean of the two
baseline runs that bracket it, seconds to a minute apart, so a drift of the machine's speed
within a round (a CIFAR-10 round of 63 arms and 32 baseline runs took about 17 minutes on a
Xeon core: some 51 minutes for 3 rounds, from the progress of the leaderboard's pass) does not
enter its ratio.
A run's time per step is the median time between the starts of consecutive training steps
after 5 warm-up steps (what benchmarks/harness.py measures); the table gives an arm's ratio
to its bracketing baselines as the median over the rounds, with a distribution-free 95%
interval for the median from 6 rounds on (analysis/stats.median_interval). A run's time moves
about 8% (sd) from one run to the next, with a slow run now and then (20-40%): consecutive
baseline runs on an idle AMD EPYC core, 2026-12-07. With 9 rounds the interval leaves out
the slowest and fastest round. The arms whose training step is the baseline's (they differ only
in lr, schedule or init; core.spec.same_step_key) show what that noise leaves: the page states
the range they read as the table's noise.
Peak memory is a run's own: on a GPU, torch's peak allocated bytes during the run over those
allocated before it; on the CPU, the process's peak resident set during the run (VmHWM, reset
through /proc/self/clear_refs) over its resident set before it, after a garbage collection and
malloc_trim hand back what earlier runs freed. Not the absolute peak: every run leaves a few
MB behind (Lightning's and the loggers' objects), so in one process the absolute peak grows
with a run's place in the order, and an arm's difference to the baseline would measure its
place, not its cost (it is taken against the bracketing baseline runs too).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as L
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gradbench.analysis import arm_cost  # noqa: E402
from gradbench.catalogue.strategies import apply_arm  # noqa: E402
from gradbench.core.spec import same_step_key  # noqa: E402
from gradbench.suite import load_suite  # noqa: E402
from gradbench.suite.expand import _base, _not_applicable  # noqa: E402
from gradbench.training.data import resolve_data_root  # noqa: E402
from gradbench.training.provenance import cpu_model  # noqa: E402
from gradbench.training.run import run_one  # noqa: E402

WARMUP = 5


class StepTimer(L.Callback):
    def __init__(self):
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())


def settle() -> float | None:
    """Hand back what earlier runs freed and reset the peak; the memory in use now (MB), which
    a run's peak is measured above."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed heap pages resident otherwise
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None
    return _proc_status_mb("VmRSS")


def peak_mb() -> float | None:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return _proc_status_mb("VmHWM")


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure(spec, data_root: Path, what: str = "both") -> dict:
    timer = StepTimer()
    before = settle() if what != "time" else None
    rec = run_one(spec, data_root, callbacks=(timer,))
    peak = peak_mb() if before is not None else None
    deltas = [b - a for a, b in zip(timer.starts[WARMUP:], timer.starts[WARMUP + 1 :])]
    timed = what != "memory" and len(deltas) >= 3
    return {
        "status": rec["status"],
        "steps": rec["metrics"]["steps"],
        "ms_per_step": 1000 * statistics.median(deltas) if timed else None,
        "peak_mb": peak - before if peak is not None else None,
    }


def measure_task(task: str, arms: dict, args, data_root: Path) -> dict[str, list[dict]]:
    """Every arm of one task, `args.rounds` times, each arm between two baseline runs (one
    after every `args.baseline_every` arms, the last of a round also the first of the next):
    arm -> its measurements, in order."""
    rounds: dict[str, list[dict]] = {label: [] for label in arms}
    order = [label for label in arms if label != "baseline"]

    def run(label: str, r: int) -> dict:
        m = measure(arms[label], data_root, args.what)
        rounds[label].append(m)
        print(f"{task} round {r} {label}: {m}", file=sys.stderr, flush=True)
        return m

    measure(arms["baseline"], data_root, args.what)  # untimed: the data's first load and lazy set-up happen here
    before = run("baseline", 0)
    for r in range(args.rounds):  # a round's closing baseline run opens the next one
        waiting: list[dict] = []  # arms measured since the last baseline run
        this_round = order if r % 2 == 0 else order[::-1]
        for i, label in enumerate(this_round):
            waiting.append(run(label, r))
            if len(waiting) == args.baseline_every or i == len(this_round) - 1:
                after = run("baseline", r)
                for m in waiting:
                    m["baseline_ms"] = [before["ms_per_step"], after["ms_per_step"]]
                    m["baseline_mb"] = [before["peak_mb"], after["peak_mb"]]
                before, waiting = after, []
    return rounds


def sized(baseline, args, data_root: Path) -> int:
    """The steps a run of this task takes: --steps, or as many as make a baseline run last
    --min-seconds, from one untimed baseline run of --steps (it also loads the data). A memory
    pass does not time, so it takes --steps. Raises SizingError where the baseline does not
    run all its steps at --lr-mult: its times would be of a run cut short."""
    if args.min_seconds <= 0 or args.what == "memory":
        return args.steps
    first = measure(baseline, data_root, "time")
    if first["status"] != "ok" or first["steps"] < args.steps or not first["ms_per_step"]:
        raise SizingError(
            f"--lr-mult {args.lr_mult:g}: the {baseline.task} baseline ended {first['status']} after "
            f"{first['steps']} of {args.steps} steps; choose a lower --lr-mult"
        )
    return max(args.steps, math.ceil(1000 * args.min_seconds / first["ms_per_step"]))


class SizingError(Exception):
    pass


def run_to_run(baseline_runs: list[dict]) -> str:
    """How much one baseline run's time per step differs from the next one's, seconds apart:
    the spread of log(next / this), as a percentage, and the worst pair."""
    times = [m["ms_per_step"] for m in baseline_runs if m["ms_per_step"]]
    steps = [math.log(b / a) for a, b in zip(times, times[1:])]
    if len(steps) < 2:
        return "too few baseline runs"
    return (
        f"{100 * statistics.stdev(steps):.1f}% (sd of log ratio over {len(steps)} consecutive pairs), "
        f"worst {100 * (math.exp(max(map(abs, steps))) - 1):.0f}%"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite")
    ap.add_argument("--steps", type=int, default=40, help="steps a run takes at least")
    ap.add_argument(
        "--min-seconds",
        type=float,
        default=2.0,
        help="more steps where a baseline run of --steps would be shorter than this (0: --steps always)",
    )
    ap.add_argument(
        "--rounds", type=int, default=9, help="rounds of every arm (9: a 95%% interval without the extremes)"
    )
    ap.add_argument(
        "--baseline-every",
        type=int,
        default=2,
        help="a baseline run after every K arms; each arm's ratio is to the two around it",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr-mult", type=float, default=0.05)
    ap.add_argument(
        "--what",
        choices=("both", "time", "memory"),
        default="both",
        help="what to measure (memory: beside other work; time and both: alone)",
    )
    ap.add_argument("--tasks", default=None, help="comma-separated subset of the suite's tasks")
    ap.add_argument("--arms", default=None, help="comma-separated subset of the suite's arms (baseline always runs)")
    ap.add_argument("--json", default=None, help="also write every measurement here")
    ap.add_argument("--save", default=None, help="write the summary as DIR/arm_cost.json, for the page in DIR")
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    if args.baseline_every < 1:
        ap.error(f"--baseline-every: must be 1 or more, got {args.baseline_every}")
    if args.what == "memory" and args.save and not (arm_cost.saved(args.save) or {}).get("command"):
        ap.error(f"--what memory: --save {args.save} holds no time pass to add memory to (run --what both first)")
    torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    known = {a.label for a in suite.all_arms}
    asked = set(args.arms.split(",")) if args.arms else None
    if asked and (unknown := sorted(asked - known)):
        ap.error(f"--arms: {', '.join(unknown)} not in {args.suite}; its arms: {', '.join(sorted(known))}")
    if args.save and (args.arms or args.tasks):
        ap.error("--save: writes a whole suite's table; --arms and --tasks measure a part of it (print it, or --json)")
    data_root = resolve_data_root(args.data)
    tasks = args.tasks.split(",") if args.tasks else list(suite.tasks)
    everything, summary, task_steps, task_arms = {}, {}, {}, {}
    for task in tasks:  # every task sized first, so a learning rate too high fails before hours of timing
        base = _base(suite, task, 0, args.lr_mult, "").replace(
            max_steps=args.steps, eval_every=args.steps, monitor={**suite.monitor}
        )
        arms = {
            a.label: apply_arm(a, base)
            for a in suite.arms_on(task)
            if not _not_applicable(a, base) and (asked is None or a.label in asked | {"baseline"})
        }
        if "baseline" not in arms:
            arms = {"baseline": base, **arms}
        try:
            steps = sized(arms["baseline"], args, data_root)
        except SizingError as e:
            ap.error(str(e))
        task_steps[task] = steps
        task_arms[task] = (
            base,
            {label: spec.replace(max_steps=steps, eval_every=steps) for label, spec in arms.items()},
        )
    for task in tasks:
        base, arms = task_arms[task]
        steps = task_steps[task]
        rounds = measure_task(task, arms, args, data_root)
        everything[task] = rounds
        print(
            f"\n### `{task}`: {steps} steps at lr x{args.lr_mult:g}, {args.rounds} rounds, {args.threads} thread(s)\n"
        )
        print(
            "| arm | ms/step (median) | baseline's ms/step | x baseline [95% interval] | peak MB | peak vs baseline MB "
            "| statuses |"
        )
        print("|---|---|---|---|---|---|---|")
        summary[task] = arm_cost.summarize(rounds)
        base_step_key = same_step_key(base.to_dict())
        for label, s in summary[task].items():
            ratio = arm_cost.interval_text({"arm": label, **s})
            step = f"{s['ms_per_step']:.2f}" if s["ms_per_step"] is not None else "—"
            base_step = f"{s['baseline_ms']:.2f}" if s["baseline_ms"] is not None else "—"
            peak = f"{s['peak_mb']:.0f}" if s["peak_mb"] is not None else "—"
            extra = f"{s['extra_mb']:+.0f}" if s["extra_mb"] is not None else "—"
            same = label != "baseline" and same_step_key(arms[label].to_dict()) == base_step_key
            name = f"`{label}`" + (" (baseline's step)" if same else "")
            print(f"| {name} | {step} | {base_step} | {ratio} | {peak} | {extra} | {', '.join(s['statuses'])} |")
        if args.what != "memory":
            print(f"\nbaseline run to run: {run_to_run(rounds['baseline'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    if args.save:
        cpu = cpu_model() or "an unnamed CPU"
        machine = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{cpu} (CPU)"
        memory = (
            "Peak memory is a run's own peak over the memory in use before it (torch's allocated bytes on a GPU; "
            "on the CPU the resident set, after a garbage collection and malloc_trim), so the difference to the "
            "baseline's is the arm's own."
        )
        settings = {
            "steps": args.steps,
            "min_seconds": args.min_seconds,
            "task_steps": task_steps if args.min_seconds > 0 else {},  # else --steps, every task
            "rounds": args.rounds,
            "baseline_every": args.baseline_every,
            "threads": args.threads,
            "lr_mult": args.lr_mult,
        }
        command = " ".join(["python benchmarks/arm_cost.py", *sys.argv[1:]])
        if args.what == "memory":
            measured = {"memory": memory, "memory_command": command, "memory_machine": machine, "tasks": summary}
        else:
            measured = {"command": command, "machine": machine, "memory": memory, **settings, "tasks": summary}
        measured = arm_cost.merge(arm_cost.saved(args.save), measured, args.what)
        print(f"saved: {arm_cost.save(measured, args.save)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
