"""run_one(spec) -> record, and run_suite(suite) with resume and progress.

A diverged run and a failed run are results: they are recorded and the suite goes on.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import platform
import subprocess
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from . import __version__, results
from .config import Skipped, Suite, expand
from .spec import RunSpec
from .tasks import TASKS, priced_ms


def quiet_lightning() -> None:
    """Per-run chatter (device banners, tips) would drown the suite's own progress line."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


@functools.lru_cache(maxsize=None)
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=None)
def cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows, else None."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(accelerator: str = "cpu") -> dict:
    """What a record's numbers depend on besides its spec. On CPU that includes the CPU: torch
    dispatches its kernels by instruction set (cpu_capability: AVX2, AVX512, ...), and MKL and
    oneDNN pick theirs by CPU model; either changes the order of a sum, so the last bits."""
    import lightning
    import torch

    if accelerator == "gpu" and torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name()}"
    else:
        device = f"cpu: {platform.machine()}, {os.cpu_count()} cores"
    return {"gradbench": __version__, "torch": torch.__version__, "lightning": lightning.__version__,
            "python": platform.python_version(), "device": device, "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "git_commit": git_commit()}


def _identity(spec: RunSpec, command: str | None) -> dict:
    return {"schema": results.SCHEMA, "run_id": spec.run_id, "suite": spec.suite, "task": spec.task,
            "strategy": {"label": spec.strategy, "names": list(spec.strategy_params) or [spec.strategy],
                         "params": spec.strategy_params},
            "seed": spec.seed, "stress": {"lr_mult": spec.lr_mult}, "command": command}


def _metrics_stub(task) -> dict:
    return {"name": task.metric, "higher_is_better": task.higher_is_better, "target": task.target,
            "chance": task.chance, "test": None, "best_val": None, "final_val": None,
            "steps_to_target": None, "val_curve": [], "steps": 0}


def _fresh_record(spec: RunSpec, command: str | None, status: str = "ok", reason: str | None = None) -> dict:
    task = TASKS.get(spec.task)
    return {**_identity(spec, command), "status": status, "reason": reason, "metrics": _metrics_stub(task),
            "stability": None, "timings": {}, "env": None,
            "data": {"dataset": task.dataset, "fingerprint": None}, "series": None, "spec": spec.to_dict()}


def _untrained_record(spec: RunSpec, command: str | None, status: str, reason: str) -> dict:
    rec = _fresh_record(spec, command, status, reason)
    rec["timings"] = {"finished_at": _now()}
    return rec


def skipped_record(item: Skipped, command: str | None = None) -> dict:
    """A run that does not apply: recorded with its reason, never trained."""
    return _untrained_record(item.spec, command, "skipped", item.reason)


def error_record(spec: RunSpec, command: str | None, reason: str) -> dict:
    """A run that failed outside run_one (a worker or launcher died): still a result."""
    return _untrained_record(spec, command, "error", reason[:500])


def freeze_long_lived_objects() -> None:
    """Take what is alive between runs (torch, Lightning, the datasets: some 350k objects) out
    of the garbage collector's reach. Otherwise each full collection walks all of them: a
    1000-step MNIST run spent 242 ms in collections, and 0 ms with them frozen
    (benchmarks/harness.py). The previous run's cycles are collected first;
    frozen objects are still freed by reference counting."""
    gc.collect()
    gc.freeze()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def reached(value: float, target: float, higher_is_better: bool) -> bool:
    return value >= target if higher_is_better else value <= target


def run_one(spec: RunSpec, data_root: Path, run_dir: Path | None = None, command: str | None = None,
            series_rel: str | None = None, callbacks: tuple = (), logger=None) -> dict:
    """Train one run and return its record. Exceptions become status 'error', never escape
    (KeyboardInterrupt excepted: the suite stops, and this run is not recorded).
    `callbacks` are extra Lightning callbacks (a test's fault injection); `logger` a Lightning
    logger (W&B) for the Trainer."""
    import lightning.pytorch as L
    import torch

    from .data import TensorDataModule, load_dataset
    from .models import build_model
    from .module import BenchModule
    from .profiler import NullProfiler
    from .stability import StabilityMonitor

    quiet_lightning()
    task = TASKS.get(spec.task)
    record = _fresh_record(spec, command)
    t0 = time.perf_counter()
    freeze_long_lived_objects()
    accelerator = spec.trainer.get("accelerator", "auto")
    try:
        splits = load_dataset(task.dataset, data_root, **spec.data)
        record["data"]["fingerprint"] = splits.fingerprint
        torch.manual_seed(spec.seed)  # same seed + same architecture -> same initial weights
        model = build_model(task.model_family, splits.input_shape, task.num_outputs, spec.model)
        module = BenchModule(spec, task, model)
        dm = TensorDataModule(splits, spec.batch_size, seed=spec.seed, augment=task.augment,
                              eval_batch_size=task.eval_batch_size)
        # monitor: {enabled: false} drops the StabilityMonitor (and divergence detection): for speed runs only
        monitor = (StabilityMonitor(spec.max_steps, series_dir=run_dir, **spec.monitor)
                   if spec.monitor.get("enabled", True) else None)
        trainer_kwargs = {"accelerator": "auto", "devices": 1, **spec.trainer}
        accum = int(trainer_kwargs.get("accumulate_grad_batches", 1))
        trainer = L.Trainer(
            max_steps=spec.max_steps, max_epochs=-1, check_val_every_n_epoch=None,
            val_check_interval=spec.eval_every * accum,  # counted in batches; eval_every is in optimizer steps
            logger=logger if logger is not None else False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, callbacks=[c for c in (monitor, *callbacks) if c], profiler=NullProfiler(),
            **trainer_kwargs)
        accelerator = "gpu" if trainer.strategy.root_device.type == "cuda" else "cpu"
        t_fit = time.perf_counter()
        trainer.fit(module, datamodule=dm)
        train_s = time.perf_counter() - t_fit
        steps = monitor.steps if monitor else trainer.global_step
        if monitor and monitor.diverged_at is not None:
            record["status"], record["reason"] = "diverged", monitor.reason
        else:
            if not module.val_curve or module.val_curve[-1][0] != trainer.global_step:
                trainer.validate(module, datamodule=dm, verbose=False)
            trainer.test(module, datamodule=dm, verbose=False)
        m = record["metrics"]
        curve = [[int(s), float(v)] for s, v in module.val_curve]
        finite = [v for _, v in curve if v == v]
        m.update(val_curve=curve, steps=steps,
                 final_val=finite[-1] if finite and record["status"] == "ok" else None,
                 best_val=(max if task.higher_is_better else min)(finite) if finite else None,
                 test=module.test_metric if record["status"] == "ok" else None,
                 steps_to_target=next((s for s, v in curve if reached(v, task.target, task.higher_is_better)), None))
        if monitor:
            record["stability"] = monitor.summary()
            record["series"] = series_rel if monitor.write_series() else None
        record["timings"] = {"train_s": round(train_s, 3),
                             "steps_per_s": round(steps / train_s, 2) if train_s > 0 else None,
                             "monitor_s": round(monitor.seconds, 6) if monitor else None}
    except Exception as e:  # a bug in a strategy, out of memory ...: a result, not a crash of the suite
        record["status"], record["reason"] = "error", f"{type(e).__name__}: {e}".strip()[:500]
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc())
    record["env"] = environment(accelerator)
    record["timings"].update(wall_s=round(time.perf_counter() - t0, 3), finished_at=_now())
    return record


# --- the suite ---------------------------------------------------------------------------
def default_results_path(suite: Suite) -> Path:
    return Path("results") / f"{suite.name}.jsonl"


def runs_dir(results_path: Path) -> Path:
    """Per-run artifacts (steps.csv, layers.csv, error.txt) live beside the results file."""
    return results_path.parent / (results_path.stem + "_runs")


def run_suite(suite: Suite, results_path: Path, data_root: Path, command: str | None = None,
              log: Callable[[str], None] = print, executor=None, wandb: dict | None = None) -> list[dict]:
    """Run every run of the suite not yet in the results file; return the suite's records.

    `executor` (executors.py) decides where runs execute (default: in this process); this
    function stays the single writer of the results file whatever it is. `wandb` is resolved
    tracking settings (tracking.resolve) or None.
    """
    from .executors import InProcess, Job

    executor = executor or InProcess()
    items = expand(suite)
    if getattr(executor, "local_data", True):
        check_data(suite, items, data_root)
    # one writer per results file (<results>.lock, held for the whole suite); Ctrl-C/SIGTERM
    # stop between runs as results.Interrupted, and the run they cut short is not recorded
    with results.exclusive(results_path), results.interruptible() as guard:
        done = results.finished_ids(results_path)
        todo = [i for i in items if i.run_id not in done]
        log(f"suite {suite.name}: {len(items)} runs ({len(items) - len(todo)} already in {results_path}, "
            f"{len(todo)} to run); {len(suite.tasks)} tasks x {len(suite.arms)} strategies x "
            f"{len(suite.seeds)} seeds x {len(suite.lr_mults)} lr multipliers; {executor.describe()}")
        progress = Progress(todo, len(items) - len(todo), len(items), log, parallel=getattr(executor, "workers", 1))
        for item in [i for i in todo if isinstance(i, Skipped)]:  # recorded at once, never trained
            rec = skipped_record(item, command)
            results.append(results_path, rec)
            progress.done(item, rec)
        job = Job(data_root=str(data_root), runs_dir=str(runs_dir(results_path)),
                  results_dir=str(results_path.parent), command=command, threads=suite.threads, wandb=wandb)
        for spec, rec in executor.map([i for i in todo if not isinstance(i, Skipped)], job):
            guard.check()  # a signal during the run (even one Lightning stopped gracefully on): not recorded
            results.append(results_path, rec)
            progress.done(spec, rec)
    ids = {i.run_id for i in items}
    return [r for r in results.latest_by_run(results.load(results_path)) if r["run_id"] in ids]


def check_data(suite: Suite, items: list, data_root: Path) -> None:
    """Fail fast on missing or corrupt data, before anything trains (and warm this process's cache)."""
    from .data import load_dataset

    for name in dict.fromkeys(TASKS.get(t).dataset for t in suite.tasks):
        first = next(i for i in items if TASKS.get(i.spec.task if isinstance(i, Skipped) else i.task).dataset == name)
        spec = first.spec if isinstance(first, Skipped) else first
        load_dataset(name, data_root, **spec.data)


class Progress:
    """One line per finished run: position, what ran, its outcome, and the suite's ETA.

    The ETA prices each run left at max_steps x its task's cpu_ms_per_step (a rough guess,
    tasks.py), scaled by the seconds per priced step that this suite's finished runs of the
    same task really took (of any task, before one has finished): with longest-first
    scheduling the first runs to finish are the long ones, so a plain mean would overshoot."""

    def __init__(self, todo: list, already: int, total: int, log, parallel: int = 1):
        self.left = [i for i in todo if not isinstance(i, Skipped)]
        self.count, self.total, self.log, self.parallel = already, total, log, max(1, parallel)
        self.spent: dict[str, list[float]] = {}   # task -> [wall seconds, priced ms] of finished runs

    def done(self, item, rec: dict) -> None:
        self.count += 1
        spec = item.spec if isinstance(item, Skipped) else item
        if not isinstance(item, Skipped):
            self.left.remove(item)
            spent = self.spent.setdefault(spec.task, [0.0, 0.0])
            spent[0] += rec["timings"].get("wall_s", 0.0)
            spent[1] += priced_ms(spec.task, rec["metrics"]["steps"])
        m = rec["metrics"]
        outcome = rec["status"]
        if rec["status"] == "ok":
            outcome += f"  test {m['name']} {m['test']:.4g}"
        elif rec["reason"]:
            outcome += f" ({rec['reason']})"
        took = f"  {rec['timings'].get('wall_s', 0):.1f}s" if not isinstance(item, Skipped) else ""
        width = len(str(self.total))
        self.log(f"[{self.count:>{width}}/{self.total}] {spec.task} {spec.strategy} seed {spec.seed} "
                 f"lr x{spec.lr_mult:g}: {outcome}{took}  | ETA {self._eta()}")

    def _eta(self) -> str:
        priced = {t: (wall / ms) for t, (wall, ms) in self.spent.items() if ms > 0}
        if not self.left:
            return "0m00s"
        if not priced:
            return "?"
        overall = sum(w for w, _ in self.spent.values()) / sum(ms for _, ms in self.spent.values())
        secs = sum(priced_ms(s.task, s.max_steps) * priced.get(s.task, overall) for s in self.left)
        secs /= self.parallel
        return f"{int(secs // 60)}m{int(secs % 60):02d}s"
