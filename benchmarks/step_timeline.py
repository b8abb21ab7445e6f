"""Where a step's time goes: the harness's ways (a), (b) and (c), phase by phase.

    python benchmarks/step_timeline.py [--task mnist_mlp] [--rounds 24] [--steps 100] [--threads N]

The harness gives each way's whole step; this splits it. The same marks (time.perf_counter)
are taken in the plain loop (a) and, through a Lightning callback and an optimizer step
post-hook, in gradbench's run path with the monitor on (b) and off (c). The ways alternate
run by run in one process (abc, cba, ...), and each phase's median over the steps after 5
warm-up steps, taken per run, is printed as its median over the runs, in microseconds (on a
shared VM a phase moves by 10% between runs, so differences under about 0.1 ms need
--rounds 24 or more, and a second run, to be believed):

  fetch     end of the previous step -> start of this one (Lightning: its fetcher, the
            batch-transfer hooks and its bookkeeping; (a): index slicing and normalizing)
  forward   start -> just before backward (training_step, the loss; Lightning: its closure)
  backward  backward itself
  to step   after backward -> just before clipping and the optimizer step (Lightning: its hook
            dispatch and, in (b), the monitor's gradient norm)
  step      clipping hooks and the optimizer step
  after     after the optimizer step -> the step's end (Lightning: its result handling; in
            (b), the monitor's divergence check)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as L

from gradbench.training.run import run_one

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import (  # noqa: E402
    LR_MULT,
    WARMUP,
    add_task_options,
    alternate,
    apply_task_options,
    spec_for,
    threads_text,
)

MARKS = ("start", "before_backward", "after_backward", "before_step", "after_step", "end")
PHASES = ("fetch", "forward", "backward", "to step", "step", "after")
SAME_POINT = {"after_backward": "before_step", "after_step": "end"}  # in the plain loop, nothing lies between


def phases(steps: list[dict]) -> dict[str, list[float]]:
    """Each phase's duration in every step after the warm-up (fetch: from the previous step's end)."""
    out = {p: [] for p in PHASES}
    for prev, cur in zip(steps[WARMUP:], steps[WARMUP + 1 :]):
        out["fetch"].append(cur["start"] - prev["end"])
        for phase, (a, b) in zip(PHASES[1:], zip(MARKS, MARKS[1:])):
            out[phase].append(cur[b] - cur[a])
    return out


class Timeline(L.Callback):
    """The marks in gradbench's run path. Registered after the monitor, so its
    on_before_optimizer_step mark follows the monitor's norm and its end mark the monitor's check."""

    def __init__(self):
        self.steps: list[dict] = []

    def _mark(self, name):
        self.steps[-1][name] = time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        trainer.optimizers[0].register_step_post_hook(lambda *_: self._mark("after_step"))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.steps.append({"start": time.perf_counter()})

    def on_before_backward(self, trainer, pl_module, loss):
        self._mark("before_backward")

    def on_after_backward(self, trainer, pl_module):
        self._mark("after_backward")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self._mark("before_step")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._mark("end")


def way_a(task, splits, spec, steps: int) -> list[dict]:
    """The harness's plain loop (a), with the marks (its phases "to step" and "after" are empty)."""
    marks: list[dict] = []

    def mark(name):
        if name == "start":
            marks.append({})
        now = time.perf_counter()
        marks[-1][name] = now
        if name in SAME_POINT:
            marks[-1][SAME_POINT[name]] = now

    harness.way_a(task, splits, spec, steps, mark=mark)
    return marks


def way_gradbench(spec, root: Path) -> list[dict]:
    timeline = Timeline()
    rec = run_one(spec, root, callbacks=(timeline,))
    assert rec["status"] == "ok", rec["reason"]
    return timeline.steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_task_options(p, rounds=24)
    args = p.parse_args()
    root, task, splits = apply_task_options(args)
    specs = {
        "b": spec_for(args.task, args.steps, True, lr_mult=LR_MULT[args.task]),
        "c": spec_for(args.task, args.steps, False, lr_mult=LR_MULT[args.task]),
    }
    ways = {
        "a": lambda: way_a(task, splits, specs["b"], args.steps),
        "b": lambda: way_gradbench(specs["b"], root),
        "c": lambda: way_gradbench(specs["c"], root),
    }
    per_run = {k: [phases(marks) for marks in runs] for k, runs in alternate(ways, args.rounds).items()}
    # each phase's median within a run, then over the runs
    med = {
        k: {p: statistics.median(statistics.median(run[p]) for run in runs) * 1e6 for p in PHASES}
        for k, runs in per_run.items()
    }
    print(f"{args.task}, {threads_text()}, {args.rounds} rounds of {args.steps} steps; median us per phase")
    print("| phase | (a) plain | (c) no monitor | (b) gradbench | (c) - (a) | (b) - (c) |")
    print("|---|---|---|---|---|---|")
    for phase in (*PHASES, "sum"):
        a, b, c = ((sum(med[k].values()) if phase == "sum" else med[k][phase]) for k in "abc")
        print(f"| {phase} | {a:.0f} | {c:.0f} | {b:.0f} | {c - a:+.0f} | {b - c:+.0f} |")


if __name__ == "__main__":
    main()
