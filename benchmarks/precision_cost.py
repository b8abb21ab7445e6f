"""What low precision costs on this CPU, before a stress axis varies it.

    python benchmarks/precision_cost.py [--tasks mnist_mlp,recall_transformer,fortunes_gpt]
        [--precisions 32-true,bf16-mixed,bf16-true,16-mixed] [--steps 60] [--rounds 3]
        [--threads 1] [--data data]

Per task, baseline's time per step at each precision through gradbench's own run path
(run_one: a real Lightning Trainer, the monitor on), the precisions alternated round by round
in palindromic order (abcd, dcba, ...) so that drift in the machine's speed hits them alike.
Each precision's ratio to 32-true is taken within a round, then its median over the rounds is
reported with the range. bf16 runs several times slower on a CPU without native bf16
arithmetic, so the line before the table says whether this one has it (avx512_bf16 or
amx_bf16 in /proc/cpuinfo). A precision Lightning or torch refuses on this machine is shown
with its error, never a crash.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from arm_cost import measure  # noqa: E402

from gradbench.suite import expand, parse_suite  # noqa: E402
from gradbench.training.run import quiet_lightning  # noqa: E402

BASE = "32-true"


def native_bf16() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    have = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return ", ".join(have) if have else "none"


def spec_for(task: str, steps: int, precision: str):
    suite = parse_suite(
        {
            "name": "precision_cost",
            "tasks": {task: {"max_steps": steps, "eval_every": steps}},
            "strategies": ["baseline"],
            "trainer": {"precision": precision},
        }
    )
    return expand(suite)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="mnist_mlp,recall_transformer,fortunes_gpt")
    ap.add_argument("--precisions", default="32-true,bf16-mixed,bf16-true,16-mixed")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", type=Path, default=HERE.parent / "data")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    quiet_lightning()
    precisions = args.precisions.split(",")
    if BASE not in precisions:
        precisions.insert(0, BASE)
    print(f"CPU native bf16: {native_bf16()}; torch {torch.__version__}, {args.threads} thread(s)")
    for task in args.tasks.split(","):
        ms: dict[str, list[float]] = {p: [] for p in precisions}
        errors: dict[str, str] = {}
        for r in range(args.rounds):
            for p in precisions if r % 2 == 0 else precisions[::-1]:
                if p in errors:
                    continue
                try:
                    m = measure(spec_for(task, args.steps, p), args.data, what="time")
                except Exception as e:  # a precision this machine refuses is a result
                    errors[p] = " ".join(f"{type(e).__name__}: {e}".split())[:160]
                    continue
                ms[p].append(m["ms_per_step"] if m["ms_per_step"] is not None else float("nan"))
        print(f"\n### `{task}`: {args.steps} steps, {args.rounds} rounds\n")
        print("| precision | ms/step (median) | x 32-true (median, range over rounds) |")
        print("|---|---|---|")
        for p in precisions:
            if p in errors:
                print(f"| {p} | — | refused: {errors[p]} |")
                continue
            ratios = [a / b for a, b in zip(ms[p], ms[BASE])]
            print(
                f"| {p} | {statistics.median(ms[p]):.1f} | {statistics.median(ratios):.2f} "
                f"[{min(ratios):.2f}, {max(ratios):.2f}] |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
