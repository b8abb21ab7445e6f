"""What a gradbench run costs, against a plain PyTorch loop and the machine's limit.

    python benchmarks/harness.py [--tasks mnist_mlp,adding_rnn,cifar10_cnn] [--rounds 32]
                                 [--threads N] [--skip-suite] [--skip-scaling]

Trains the same model on the same data in one process, four ways, alternating them round by
round in palindromic order (abcd, dcba, ...) so that drift in the machine's speed hits all
four alike:
  (a) a plain PyTorch loop written here: tensors in memory, index slicing, no framework
  (b) gradbench's own run path (training.run.run_one), StabilityMonitor on
  (c) the same with the monitor off (suite `monitor: {enabled: false}`)
  (d) a plain Lightning Trainer fed by DataLoader(TensorDataset), as a user would write it
Per-step time is the time between the starts of consecutive training steps (the whole loop
iteration: data, forward, backward, hooks, step), median over every step after warm-up.
A ratio is taken within each round (each way's median step over (a)'s, seconds apart), then
its median over the rounds is reported with its quartiles: on a shared 2-core VM the speed
of the machine itself moves by 10-30% from one minute to the next. The monitor's cost is
given twice: (b)/(c) over the rounds, and the time (b) spent inside the monitor's own hooks
(the record's timings.monitor_s) as a share of (b)'s step, which needs no second run.
Achieved FLOP/s = training FLOPs of one step (torch's FlopCounterMode) / the median step
time, against a 2048^3 fp32 matmul timed in the same process (the practical limit).
First, the time a 1000-step MNIST run spends in garbage collection without and with
gradbench's freeze. Then: the loop's own cost (the same ways on an 8-unit MLP), CIFAR-10 evaluation time by
evaluation batch size, the quick suite end to end exactly as scripts/quick.sh runs it, and
wall time per run as a suite grows 1x, 2x, 4x.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from gradbench.catalogue.tasks import TASKS
from gradbench.suite import expand, parse_suite
from gradbench.training import run as runner
from gradbench.training.data import (
    NORMALIZE,
    augment_batch,
    load_dataset,
    resolve_data_root,
)
from gradbench.training.models import build_model
from gradbench.training.optim import build_optimizer
from gradbench.training.provenance import cpu_model
from gradbench.training.run import quiet_lightning, run_one

REPO = Path(__file__).resolve().parent.parent
WARMUP = 5
# steps per way and round: short rounds, many of them, so the two ways of a pair run seconds apart
STEPS = {"mnist_mlp": 60, "adding_rnn": 60, "cifar10_cnn": 15}
# below each task's explosive level: every way must run all its steps (the RNN explodes even at x0.25)
LR_MULT = {"mnist_mlp": 0.25, "adding_rnn": 0.05, "cifar10_cnn": 0.25}


class StepTimer(L.Callback):
    def __init__(self):
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())


def deltas(starts: list[float]) -> list[float]:
    return [b - a for a, b in zip(starts[WARMUP:], starts[WARMUP + 1 :])]


def spec_for(task: str, steps: int, monitor: bool, lr_mult: float | None = None, **task_overrides):
    raw = {
        "tasks": {task: {"max_steps": steps, "eval_every": steps, **task_overrides}},
        "strategies": ["baseline"],
        "stress": {"lr_mult": [lr_mult or LR_MULT[task]]},
        "monitor": {"enabled": monitor},
    }
    return expand(parse_suite(raw))[0]


def alternate(ways: dict, rounds: int) -> dict[str, list]:
    """What each way returned, round by round, the ways run in palindromic order (abcd, dcba,
    ...), so that a drift in the machine's speed hits every way alike."""
    per_round = {k: [] for k in ways}
    order = list(ways)
    for r in range(rounds):
        for k in order if r % 2 == 0 else order[::-1]:
            per_round[k].append(ways[k]())
    return per_round


def loss_fn(task):
    return F.cross_entropy if task.loss == "cross_entropy" else F.mse_loss


def prepare(task, splits, x):
    """What gradbench's DataModule does to a training batch, so (a) does the same work."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
        mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in NORMALIZE[splits.name])
        x = (x - mean) / std
    return x


def way_a(task, splits, spec, steps: int, mark=None, between=None) -> list[float]:
    """(a), the plain loop; `mark(name)`, if given, is called at the phase boundaries
    step_timeline.py reports (start, before_backward, after_backward, after_step);
    `between(optimizer)`, if given, between backward and the optimizer step, where the
    monitor takes its gradient norm (norm_options.py)."""
    torch.manual_seed(spec.seed)
    model = build_model(task.model_family, splits.input_shape, task.num_outputs, spec.model)
    opt = build_optimizer(model, spec.optimizer, spec.lr_mult)
    g = torch.Generator().manual_seed(spec.seed)
    n, bs = len(splits.train_y), spec.batch_size
    perm, pos, starts, loss_of = torch.randperm(n, generator=g), 0, [], loss_fn(task)
    for _ in range(steps + 1):
        starts.append(time.perf_counter())
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos : pos + bs]
        pos += bs
        x, y = splits.train_x[idx], splits.train_y[idx]
        if task.augment:
            x = augment_batch(x, g)
        x = prepare(task, splits, x)
        if mark:
            mark("start")
        loss = loss_of(model(x), y)
        opt.zero_grad(set_to_none=True)
        if mark:
            mark("before_backward")
        loss.backward()
        if mark:
            mark("after_backward")
        if between:
            between(opt)
        opt.step()
        if mark:
            mark("after_step")
    return deltas(starts)


def way_gradbench(spec, root: Path, monitor_ms: list[float] | None = None) -> list[float]:
    """(b) or (c); with `monitor_ms`, also appends the ms a step spent in the monitor's own
    hooks (the record's timings.monitor_s over its steps)."""
    timer = StepTimer()
    rec = run_one(spec, root, callbacks=(timer,))
    assert rec["status"] == "ok", rec["reason"]
    if monitor_ms is not None:
        monitor_ms.append(rec["timings"]["monitor_s"] / rec["metrics"]["steps"] * 1e3)
    return deltas(timer.starts)


class PlainModule(L.LightningModule):
    def __init__(self, model, task, spec):
        super().__init__()
        self.model, self.loss_of, self.spec = model, loss_fn(task), spec

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_of(self.model(x), y)

    def configure_optimizers(self):
        return build_optimizer(self.model, self.spec.optimizer, self.spec.lr_mult)


def way_d(task, splits, spec, steps: int, float_x: torch.Tensor) -> list[float]:
    torch.manual_seed(spec.seed)
    model = build_model(task.model_family, splits.input_shape, task.num_outputs, spec.model)
    loader = DataLoader(
        TensorDataset(float_x, splits.train_y), batch_size=spec.batch_size, shuffle=True, drop_last=True
    )
    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=steps + 1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
        callbacks=[timer],
    )
    trainer.fit(PlainModule(model, task, spec), loader)
    return deltas(timer.starts)


def step_flops(task, splits, spec) -> int:
    torch.manual_seed(0)
    model = build_model(task.model_family, splits.input_shape, task.num_outputs, spec.model)
    x = prepare(task, splits, splits.train_x[: spec.batch_size])
    with FlopCounterMode(display=False) as counter:
        loss_fn(task)(model(x), splits.train_y[: spec.batch_size]).backward()
    return counter.get_total_flops()


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best


def _quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_task(name: str, root: Path, rounds: int) -> dict:
    task = TASKS.get(name)
    steps = STEPS[name]
    splits = load_dataset(task.dataset, root, **task.data)
    spec_b, spec_c = spec_for(name, steps, True), spec_for(name, steps, False)
    float_x = prepare(task, splits, splits.train_x) if splits.train_x.dtype == torch.uint8 else splits.train_x
    monitor_ms: list[float] = []
    ways = {
        "a": lambda: way_a(task, splits, spec_b, steps),
        "b": lambda: way_gradbench(spec_b, root, monitor_ms),
        "c": lambda: way_gradbench(spec_c, root),
        "d": lambda: way_d(task, splits, spec_b, steps, float_x),
    }
    rounds_s = alternate(ways, rounds)
    med = {k: statistics.median([t for r in v for t in r]) for k, v in rounds_s.items()}  # over every step
    per_round = {k: [statistics.median(r) for r in v] for k, v in rounds_s.items()}  # each round's median
    # ratios within a round (same minute of machine time), then their median over the rounds
    paired = {f"{k}/a": [x / a for x, a in zip(per_round[k], per_round["a"])] for k in "bcd"}
    monitor = [b / c - 1 for b, c in zip(per_round["b"], per_round["c"])]
    flops = step_flops(task, splits, spec_b)
    return {
        "task": name,
        "steps_per_way": steps * rounds,
        "median_ms": {k: v * 1e3 for k, v in med.items()},
        "ratio": {k: statistics.median(v) for k, v in paired.items()},
        "ratio_iqr": {k: _quartiles(v) for k, v in paired.items()},
        "monitor_cost": statistics.median(monitor),
        # the monitor's hooks timed inside (b): no second run to compare, so no drift between runs
        "monitor_share": statistics.median(m / r for m, r in zip(monitor_ms, per_round["b"])) / 1e3,
        "step_gflop": flops / 1e9,
        "achieved_gflops": {k: flops / med[k] / 1e9 for k in "ab"},
    }


@contextlib.contextmanager
def lightning_defaults():
    """run_one as it was before gradbench replaced two Lightning defaults, both numerics-free:
    the profiler (a generator-based context manager around every hook call) and the batch
    transfer (apply_to_collection over batches that are already on the device)."""
    from lightning.pytorch.profilers import PassThroughProfiler

    from gradbench.training import lightning_compat as profiler
    from gradbench.training.module import BenchModule

    saved = profiler.NullProfiler, BenchModule.transfer_batch_to_device
    profiler.NullProfiler, BenchModule.transfer_batch_to_device = (
        PassThroughProfiler,
        L.LightningModule.transfer_batch_to_device,
    )
    try:
        yield
    finally:
        profiler.NullProfiler, BenchModule.transfer_batch_to_device = saved


def framework_floor(root: Path, rounds: int = 6, steps: int = 300) -> dict:
    """Per-step time of (a), (b) and (c) on an MLP of 8 units (batch 8), where the arithmetic
    is next to nothing: what remains is the cost of the loop itself, model size aside; and
    (l): (c) with Lightning's default profiler and batch transfer, as before gradbench
    replaced them."""
    task = TASKS.get("mnist_mlp")
    splits = load_dataset(task.dataset, root)
    specs = {
        monitor: spec_for("mnist_mlp", steps, monitor, lr_mult=0.1, batch_size=8, model={"depth": 1, "width": 8})
        for monitor in (True, False)
    }

    def with_lightning_defaults():
        with lightning_defaults():
            return way_gradbench(specs[False], root)

    ways = {
        "a": lambda: way_a(task, splits, specs[True], steps),
        "b": lambda: way_gradbench(specs[True], root),
        "c": lambda: way_gradbench(specs[False], root),
        "l": with_lightning_defaults,
    }
    return {k: statistics.median(statistics.median(r) for r in v) * 1e3 for k, v in alternate(ways, rounds).items()}


def gc_pauses(root: Path, steps: int = 1000) -> dict:
    """Seconds spent in garbage collection during one MNIST run of `steps` steps (validation
    every 100): as before the fix (nothing frozen, no collection at the start), and as run_one
    runs now, in a process whose first run has already frozen the long-lived objects (that
    first freeze is one full collection, once per process)."""
    spent, started = [0.0], [0.0]

    def clock(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]

    spec = spec_for("mnist_mlp", steps, True).replace(eval_every=100)
    out = {}
    gc.callbacks.append(clock)
    try:
        for frozen in (False, True):
            gc.unfreeze()  # whatever earlier runs froze goes back into the collector's reach
            freeze = runner.freeze_long_lived_objects
            if frozen:
                freeze()  # what the process's first run does, outside the measured run
            else:
                runner.freeze_long_lived_objects = lambda: None  # the code before the fix
            try:
                spent[0] = 0.0
                run_one(spec, root)
                out["frozen" if frozen else "not_frozen"] = spent[0]
            finally:
                runner.freeze_long_lived_objects = freeze
    finally:
        gc.callbacks.remove(clock)
    return out


def time_suite(config: Path, root: Path, *flags: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gradbench.cli",
                "run",
                str(config),
                "--data",
                str(root),
                "--results",
                f"{tmp}/r.jsonl",
                *flags,
            ],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - t


def eval_speed(root: Path, sizes=(200, 1000)) -> dict:
    """Seconds to evaluate the CIFAR-10 CNN on the 5000 validation images, by evaluation batch size."""
    task = TASKS.get("cifar10_cnn")
    splits = load_dataset(task.dataset, root)
    torch.manual_seed(0)
    model = build_model(task.model_family, splits.input_shape, task.num_outputs, task.model).eval()
    model = model.to(memory_format=torch.channels_last)  # as BenchModule runs a CNN
    out = {}
    for bs in sizes:

        def evaluate(bs=bs):
            with torch.inference_mode():
                for i in range(0, len(splits.val_x), bs):
                    x = prepare(task, splits, splits.val_x[i : i + bs]).contiguous(memory_format=torch.channels_last)
                    model(x).argmax(1)

        evaluate()
        out[bs] = min(_timed(evaluate) for _ in range(3))
    return out


def scaling(root: Path) -> list[dict]:
    """Wall time of whole `gradbench run` commands with 2, 4 and 8 runs of one size."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for mult in (1, 2, 4):
            cfg = Path(tmp) / f"s{mult}.yaml"
            cfg.write_text(
                f"name: s{mult}\nseeds: {mult}\nstress: {{lr_mult: [{LR_MULT['mnist_mlp']}]}}\n"
                "tasks: {mnist_mlp: {max_steps: 100, eval_every: 100}}\nstrategies: [baseline, clip_norm]\n"
            )
            wall = time_suite(cfg, root)
            out.append({"runs": 2 * mult, "wall_s": wall, "per_run_s": wall / (2 * mult)})
    return out


def _rounds(text: str) -> int:
    n = int(text)
    if n < 2:
        raise argparse.ArgumentTypeError(
            f"{n} is too few: figures come with their quartiles over rounds, so at least 2"
        )
    return n


def add_common_options(p: argparse.ArgumentParser, rounds: int) -> None:
    """--rounds, --threads and --data, which every script here takes."""
    p.add_argument(
        "--rounds",
        type=_rounds,
        default=rounds,
        help="alternations of the ways: the more rounds, the less a median over them moves from one run to the next",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads for every way (default: torch's, one per core); 1 is how a suite runs with --workers auto",
    )
    p.add_argument("--data", help="data root (default: $GRADBENCH_DATA, else ./data)")


def apply_common_options(args) -> Path:
    """Quiet Lightning, set the thread count; the data root."""
    quiet_lightning()
    if args.threads:
        torch.set_num_threads(args.threads)
    return resolve_data_root(args.data)


def add_task_options(p: argparse.ArgumentParser, rounds: int) -> None:
    """--task and --steps, for the scripts that time one task's runs, and the common options."""
    p.add_argument("--task", default="mnist_mlp", choices=sorted(TASKS))
    p.add_argument("--steps", type=int, default=100, help="steps per run")
    add_common_options(p, rounds=rounds)


def apply_task_options(args):
    """The common options applied; the data root, the task and its splits (loaded once)."""
    root = apply_common_options(args)
    task = TASKS.get(args.task)
    return root, task, load_dataset(task.dataset, root, **task.data)


def threads_text() -> str:
    """torch's thread count, as the scripts print it."""
    n = torch.get_num_threads()
    return f"{n} thread{'' if n == 1 else 's'}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="mnist_mlp,adding_rnn,cifar10_cnn", help="comma-separated; '' for none")
    add_common_options(p, rounds=32)
    p.add_argument("--skip-suite", action="store_true", help="do not time the quick suite end to end")
    p.add_argument("--skip-scaling", action="store_true")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    root = apply_common_options(args)
    # the CPU by name: figures from two machines are not comparable (this VM has been an AMD EPYC
    # and an Intel Xeon, both with torch's AVX512 kernels, and the ratios moved with it)
    report = {
        "machine": f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()} kernels), "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {threads_text()}",
        "peak_gflops": matmul_peak() / 1e9,
        "tasks": [],
    }
    print(f"machine: {report['machine']}; 2048^3 fp32 matmul: {report['peak_gflops']:.0f} GFLOP/s")
    # first, while nothing in this process has been frozen: the "before" run needs a heap as it was
    pauses = report["gc_s"] = gc_pauses(root)
    print(
        f"garbage collection in one 1000-step MNIST run: {pauses['not_frozen'] * 1e3:.0f} ms without "
        f"freezing the long-lived objects, {pauses['frozen'] * 1e3:.0f} ms with (what run_one does)"
    )
    print(
        "| task | (a) plain ms | (b) gradbench ms | (c) no monitor ms | (d) Lightning+DataLoader ms "
        "| (b)/(a) (quartiles over rounds) | (c)/(a) | (d)/(a) | monitor cost (b)/(c) "
        "| monitor's hooks, share of (b)'s step | GFLOP/step | (a) GFLOP/s | (b) GFLOP/s | (b) % of matmul |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in [t for t in args.tasks.split(",") if t]:
        r = bench_task(name, root, args.rounds)
        report["tasks"].append(r)
        m, q = r["median_ms"], r["ratio"]
        lo, hi = r["ratio_iqr"]["b/a"]
        gf = r["achieved_gflops"]
        print(
            f"| {name} | {m['a']:.2f} | {m['b']:.2f} | {m['c']:.2f} | {m['d']:.2f} "
            f"| {q['b/a']:.2f} ({lo:.2f}-{hi:.2f}) | {q['c/a']:.2f} | {q['d/a']:.2f} | {r['monitor_cost']:+.1%} "
            f"| {r['monitor_share']:.1%} "
            f"| {r['step_gflop']:.3f} | {gf['a']:.1f} | {gf['b']:.1f} | {gf['b'] / report['peak_gflops']:.0%} |",
            flush=True,
        )
    floor = report["floor_ms"] = framework_floor(root)
    print(
        f"the loop itself (8-unit MLP, batch 8): (a) {floor['a']:.2f} ms, (b) {floor['b']:.2f} ms, "
        f"(c) {floor['c']:.2f} ms a step: gradbench+Lightning add {floor['c'] - floor['a']:.2f} ms, "
        f"the monitor {floor['b'] - floor['c']:.2f} ms; with Lightning's default profiler and batch transfer "
        f"(c) would take {floor['l']:.2f} ms"
    )
    if not args.skip_suite:
        report["eval_s"] = eval_speed(root)
        print(
            "CIFAR-10 validation (5000 images), by evaluation batch: "
            + ", ".join(f"{bs}: {sec:.2f} s" for bs, sec in report["eval_s"].items())
        )
        # exactly what scripts/quick.sh runs
        report["quick_suite_s"] = time_suite(REPO / "configs/quick.yaml", root, "--workers", "auto")
        print(
            f"quick suite end to end (gradbench run configs/quick.yaml --workers auto): {report['quick_suite_s']:.0f} s"
        )
    if not args.skip_scaling:
        report["scaling"] = scaling(root)
        for s in report["scaling"]:
            print(f"suite of {s['runs']} runs: {s['wall_s']:.1f} s, {s['per_run_s']:.2f} s per run")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
