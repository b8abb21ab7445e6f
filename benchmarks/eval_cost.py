"""What validation costs a CIFAR-10 run, with the full 5000-image validation split and with
the task's 2000-image one, paired in one process.

    python benchmarks/eval_cost.py [--rounds 2] [--steps 300] [--threads 2]

Each round runs the task's baseline (at lr x0.25, so that no run collapses or stops early)
under both validation sizes, in alternating order, through gradbench's own run path, and
reports the run's wall time and its training-loop time (train_s: Lightning's fit, so with
the evaluations inside it). The evaluation's own cost: one pass over the validation split,
timed on the initial model, median of 5. A validation split of n images resolves an
accuracy near the target (0.35) to a standard error of sqrt(0.35 x 0.65 / n): 0.67 points
at 5000, 1.07 at 2000.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gradbench.catalogue.tasks import TASKS  # noqa: E402
from gradbench.training.data import TensorDataModule, load_task_data  # noqa: E402
from gradbench.training.models import build_task_model  # noqa: E402
from gradbench.training.run import run_one  # noqa: E402

SIZES = (5000, 2000)


def eval_seconds(val_size: int, data_root: Path) -> float:
    task = TASKS.get("cifar10_cnn")
    splits = load_task_data(task, data_root, {**task.data, "val_size": val_size})
    torch.manual_seed(0)
    model = build_task_model(task, splits, task.model).to(memory_format=torch.channels_last).eval()
    dm = TensorDataModule(splits, task.batch_size, seed=0, eval_batch_size=task.eval_batch_size)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        with torch.no_grad():
            for x, y in dm.val_dataloader():
                model(x.contiguous(memory_format=torch.channels_last)).argmax(1).eq(y).sum()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(REPO / "data"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.data)
    task = TASKS.get("cifar10_cnn")
    print(f"one evaluation pass ({task.eval_batch_size} images a batch, {args.threads} threads):")
    per_eval = {n: eval_seconds(n, root) for n in SIZES}
    for n, s in per_eval.items():
        print(f"  {n} images: {s:.2f} s")
    runs: dict[int, list[tuple[float, float]]] = {n: [] for n in SIZES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for n in SIZES if r % 2 == 0 else SIZES[::-1]:
                spec = task.base_spec(0, 0.25, max_steps=args.steps, data={**task.data, "val_size": n})
                rec = run_one(spec, root, run_dir=Path(tmp) / f"{r}-{n}")
                runs[n].append((rec["timings"]["wall_s"], rec["timings"]["train_s"]))
                print(f"  round {r}: val {n}: wall {rec['timings']['wall_s']:.1f} s, status {rec['status']}")
    evals = args.steps // task.eval_every
    print(
        f"\n| validation images | one evaluation s | evaluations per run | run wall s (median of {args.rounds}) | run train_s |"
    )
    print("|---|---|---|---|---|")
    for n in SIZES:
        wall = statistics.median(w for w, _ in runs[n])
        train = statistics.median(t for _, t in runs[n])
        print(f"| {n} | {per_eval[n]:.2f} | {evals} | {wall:.1f} | {train:.1f} |")
    a, b = (statistics.median(w for w, _ in runs[n]) for n in SIZES)
    print(f"\nsaving per run: {a - b:.1f} s ({(a - b) / a:.0%})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
