"""run_one(spec) -> record: one run trained in a real Lightning Trainer, and the records of
runs that are not trained (skipped, or failed outside run_one).

A diverged run and a failed run are results: they are recorded and the suite goes on.
"""

from __future__ import annotations

import gc
import logging
import time
import traceback
import warnings
from datetime import UTC, datetime
from pathlib import Path

from ..catalogue.tasks import TASKS
from ..core.errors import UserError
from ..core.numerics import NUMERICS
from ..core.record import SCHEMA, check_record, steps_to_target
from ..core.spec import RunSpec
from ..core.taxonomy import classify
from ..store.jsonl import normalized
from ..suite.expand import Skipped
from .provenance import environment


def quiet_lightning() -> None:
    """Per-run chatter (device banners, tips) would drown the suite's own progress line."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _identity(spec: RunSpec, command: str | None) -> dict:
    return {
        "schema": SCHEMA,
        "numerics": NUMERICS,
        "run_id": spec.run_id,
        "suite": spec.suite,
        "task": spec.task,
        "strategy": {
            "label": spec.strategy,
            "names": list(spec.strategy_params) or [spec.strategy],
            "params": spec.strategy_params,
        },
        "seed": spec.seed,
        "stress": {"lr_mult": spec.lr_mult},
        "command": command,
    }


def _metrics_stub(task) -> dict:
    return {
        "name": task.metric,
        "higher_is_better": task.higher_is_better,
        "target": task.target,
        "chance": task.chance,
        "test": None,
        "best_val": None,
        "final_val": None,
        "steps_to_target": None,
        "val_curve": [],
        "steps": 0,
    }


def _fresh_record(spec: RunSpec, command: str | None, status: str = "ok", reason: str | None = None) -> dict:
    task = TASKS.get(spec.task)
    return {
        **_identity(spec, command),
        "status": status,
        "reason": reason,
        "metrics": _metrics_stub(task),
        "stability": None,
        "timings": {},
        "env": None,
        "data": {"dataset": task.dataset, "fingerprint": None},
        "series": None,
        "spec": spec.to_dict(),
    }


def _untrained_record(spec: RunSpec, command: str | None, status: str, reason: str) -> dict:
    rec = _fresh_record(spec, command, status, reason)
    rec["timings"] = {"finished_at": _now()}
    return checked(rec)


def checked(record: dict) -> dict:
    """The record, checked against the typed Record (core/record.py) as it will read back from
    the results file. One that does not fit is a bug (a monitor or plugin value of an odd
    type): the run is then an error record naming the field, never a crash of the suite."""
    try:
        check_record(normalized(record), f"run {record['run_id']}")
    except UserError as e:
        bad = {**record, "status": "error", "reason": str(e)[:500], "stability": None, "series": None}
        bad["metrics"] = {**record["metrics"], "test": None, "final_val": None}
        check_record(normalized(bad))
        return bad
    return record


def with_outcome(record: dict) -> dict:
    """The record with how it ended (core/taxonomy.py) when it trained to an outcome (after
    `checked`: a record whose values do not fit is an error record, with no outcome)."""
    m, st = record["metrics"], record["stability"] or {}
    outcome = classify(
        status=record["status"],
        val_curve=m["val_curve"],
        final_val=m["final_val"],
        chance=m["chance"],
        target=m["target"],
        grad_norm_curve=st.get("grad_norm_curve") or (),
        steps=m["steps"],
    )
    return {**record, "outcome": outcome} if outcome is not None else record


def skipped_record(item: Skipped, command: str | None = None) -> dict:
    """A run that does not apply, or that the protocol does not run (item.not_run): recorded
    with its reason, never trained."""
    rec = _untrained_record(item.spec, command, "skipped", item.reason)
    return checked({**rec, "not_run": item.not_run}) if item.not_run else rec


def copied_record(source: dict, spec: RunSpec, command: str | None = None) -> dict:
    """A run whose resolved spec is an already recorded run's but for its names (same_run_key):
    that run's outcome under this run's identity, never trained twice. It keeps the source's
    environment (the code that made the numbers), names it in copy_of, and took no time."""
    return checked(
        {
            **source,
            **_identity(spec, command),
            "spec": spec.to_dict(),
            "timings": {"finished_at": _now()},
            "copy_of": source.get("copy_of") or source["run_id"],  # the run that trained
        }
    )


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
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_one(
    spec: RunSpec,
    data_root: Path,
    run_dir: Path | None = None,
    command: str | None = None,
    series_rel: str | None = None,
    callbacks: tuple = (),
    logger=None,
) -> dict:
    """Train one run and return its record. Exceptions become status 'error', never escape
    (KeyboardInterrupt excepted: the suite stops, and this run is not recorded).
    `callbacks` are extra Lightning callbacks (a test's fault injection); `logger` a Lightning
    logger (W&B) for the Trainer."""
    import lightning.pytorch as L
    import torch

    from .data import TensorDataModule, load_task_data
    from .lightning_compat import NullProfiler
    from .models import build_task_model
    from .module import BenchModule
    from .monitor import StabilityMonitor

    quiet_lightning()
    task = TASKS.get(spec.task)
    record = _fresh_record(spec, command)
    t0 = time.perf_counter()
    freeze_long_lived_objects()
    accelerator = spec.trainer.get("accelerator", "auto")
    try:
        splits = load_task_data(task, data_root, spec.data)
        record["data"]["fingerprint"] = splits.fingerprint
        torch.manual_seed(spec.seed)  # same seed + same architecture -> same initial weights
        model = build_task_model(task, splits, spec.model)
        module = BenchModule(spec, task, model)
        dm = TensorDataModule(
            splits, spec.batch_size, seed=spec.seed, augment=task.augment, eval_batch_size=task.eval_batch_size
        )
        # monitor: {enabled: false} drops the StabilityMonitor (and divergence detection): for speed runs only
        monitor = (
            StabilityMonitor(spec.max_steps, series_dir=run_dir, **spec.monitor)
            if spec.monitor.get("enabled", True)
            else None
        )
        trainer_kwargs = {"accelerator": "auto", "devices": 1, **spec.trainer}
        accum = int(trainer_kwargs.get("accumulate_grad_batches", 1))
        trainer = L.Trainer(
            max_steps=spec.max_steps,
            max_epochs=-1,
            check_val_every_n_epoch=None,
            val_check_interval=spec.eval_every * accum,  # counted in batches; eval_every is in optimizer steps
            logger=logger if logger is not None else False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[c for c in (monitor, *callbacks) if c],
            profiler=NullProfiler(),
            **trainer_kwargs,
        )
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
        m.update(
            val_curve=curve,
            steps=steps,
            final_val=finite[-1] if finite and record["status"] == "ok" else None,
            best_val=(max if task.higher_is_better else min)(finite) if finite else None,
            test=module.test_metric if record["status"] == "ok" else None,
            steps_to_target=steps_to_target(curve, task.target, task.higher_is_better),
        )
        if monitor:
            record["stability"] = monitor.summary()
            record["series"] = series_rel if monitor.write_series() else None
        record["timings"] = {
            "train_s": round(train_s, 3),
            "steps_per_s": round(steps / train_s, 2) if train_s > 0 else None,
            "monitor_s": round(monitor.seconds, 6) if monitor else None,
        }
    except Exception as e:  # a bug in a strategy, out of memory ...: a result, not a crash of the suite
        record["status"], record["reason"] = "error", f"{type(e).__name__}: {e}".strip()[:500]
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "error.txt").write_text(traceback.format_exc())
    record["env"] = environment(accelerator)
    record["timings"].update(wall_s=round(time.perf_counter() - t0, 3), finished_at=_now())
    return with_outcome(checked(record))
