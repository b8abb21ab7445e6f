"""Would another gradient-norm formula make the monitor cheaper? Each one timed where it runs.

    python benchmarks/norm_options.py [--task mnist_mlp] [--rounds 16] [--steps 100] [--threads N]

Most of the monitor's cost is one global gradient norm a step (benchmarks/README.md). Its
formula, vector_norm(stack(torch._foreach_norm(grads))), is also what torch's clip_grad_norm_
and gradbench's own hooks compute, and every record keeps the norms it gave, bit for bit: a
different formula means re-making the committed leaderboard, which is worth it only if it is
clearly cheaper on the machines gradbench runs on. So each candidate is priced where the
monitor runs it: between backward and the optimizer step of the harness's plain loop (a),
the loops alternating in palindromic order in one process. Per candidate: the time the norm
itself took (median over the steps after warm-up, then over the runs), the whole step's
median, the paired difference of that step from the loop without a norm in the same round
(median over rounds, quartiles), and in how many steps its value has the monitor's bits (the
training is the same in every loop, so the gradients are too).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from gradbench.catalogue.grad_hooks import global_norm, grads_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402
    LR_MULT,
    WARMUP,
    _quartiles,
    add_task_options,
    alternate,
    apply_task_options,
    spec_for,
    threads_text,
    way_a,
)


def _per_tensor_dot(grads: list[torch.Tensor]) -> torch.Tensor:
    """The sum of squares through BLAS dots (MKL, threaded), then one square root: other bits."""
    return torch.stack([torch.dot(flat, flat) for flat in (g.view(-1) for g in grads)]).sum().sqrt()


MONITORS = "foreach (the monitor's)"
CANDIDATES = {"none": None, MONITORS: global_norm, "per-tensor dot": _per_tensor_dot}


def priced(norm, in_place: list[float], values: list[torch.Tensor]):
    """The loop's `between`: the norm of the gradients the optimizer is about to step with,
    its own time appended to `in_place`, its value to `values` (read after the run)."""

    def between(optimizer):
        start = time.perf_counter()
        value = norm(grads_of(optimizer))
        in_place.append(time.perf_counter() - start)
        values.append(value)

    return between


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_task_options(p, rounds=16)
    args = p.parse_args()
    _, task, splits = apply_task_options(args)
    spec = spec_for(args.task, args.steps, True, lr_mult=LR_MULT[args.task])
    in_place = {k: [] for k in CANDIDATES}  # per run: the median time of the norm itself
    values: dict[str, list[torch.Tensor]] = {k: [] for k in CANDIDATES}  # the last run's norms

    def run(name):
        def once():
            times: list[float] = []
            values[name] = []
            norm = CANDIDATES[name]
            steps = way_a(task, splits, spec, args.steps, between=norm and priced(norm, times, values[name]))
            if times:
                in_place[name].append(statistics.median(times[WARMUP:]))
            return statistics.median(steps)

        return once

    per_round = alternate({k: run(k) for k in CANDIDATES}, args.rounds)
    monitor = torch.stack(values[MONITORS])
    print(f"{args.task}, {threads_text()}, {args.rounds} rounds of {args.steps} steps")
    print("| norm | the norm itself us | step ms | step - none us (quartiles over rounds) | the monitor's bits |")
    print("|---|---|---|---|---|")
    for name, steps in per_round.items():
        if CANDIDATES[name] is None:
            print(f"| {name} | - | {statistics.median(steps) * 1e3:.3f} | - | - |")
            continue
        diff = [(s - n) * 1e6 for s, n in zip(steps, per_round["none"])]
        lo, hi = _quartiles(diff)
        same = int((torch.stack(values[name]) == monitor).sum())
        print(
            f"| {name} | {statistics.median(in_place[name]) * 1e6:.0f} | {statistics.median(steps) * 1e3:.3f} "
            f"| {statistics.median(diff):+.0f} ({lo:+.0f} to {hi:+.0f}) | {same} of {len(monitor)} steps |",
            flush=True,
        )


if __name__ == "__main__":
    main()
