"""gradbench verify: re-run recorded runs and check that they reproduce their results exactly.

Each chosen record is re-run from the spec it stores (RunSpec.from_dict(record["spec"]),
then runner.run_one) with torch's CPU thread count set to the record's env.threads, and
compared with no tolerance: status, the metrics (test, best_val, final_val, steps_to_target,
val_curve, steps), the stability block, and the data fingerprint (other data explain other
numbers); that the stored spec still hashes to the record's run_id is checked too. Timings,
env and file paths are not compared. Skipped runs are skipped. --sample K re-runs K records
drawn with --seed (the same file, K and seed always draw the same runs).

On CPU, with the same torch build, thread count and kind of CPU, a run is bit-for-bit
deterministic, so any difference means the code, the data or the environment changed. The
kind of CPU counts: torch dispatches its kernels by instruction set (env.cpu_capability,
e.g. AVX2 or AVX512) and MKL/oneDNN by CPU model (env.cpu), and each sums in its own order,
so a record made on an AMD EPYC differs in the last bits on an Intel Xeon, even with torch's
AVX512 kernels on both, and a chaotic run (one that explodes) then differs visibly. A difference
found on another CPU is reported with the CPU named, as not reproducible there, not wrong.

On GPU results may differ without anything being wrong: cuDNN picks convolution algorithms
by benchmarking and some are non-deterministic; reductions built on atomic adds (scatter,
index_add, some backward kernels) sum in a varying order; TF32 matmuls and convolutions round
differently from float32; and another GPU model, driver, CUDA or cuDNN version runs other
kernels. The comparison stays exact, so verify a GPU record on the same kind of device and
software stack with deterministic settings (trainer: {deterministic: true} in the suite,
CUBLAS_WORKSPACE_CONFIG=:4096:8), and read a difference there as "not bit-reproducible"
rather than "wrong". A GPU record re-run on a machine without a GPU runs on the CPU and will
differ.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import results
from .errors import UserError

METRIC_FIELDS = ("test", "best_val", "final_val", "steps_to_target", "val_curve", "steps")
_MISSING = object()


@dataclass
class Outcome:
    record: dict
    diffs: list = field(default_factory=list)   # [(field, recorded, now)]
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diffs


def select(records: list[dict], sample: int | None = None, seed: int = 0) -> list[dict]:
    """The records to re-run, in file order: all that are not skipped, or `sample` of them
    drawn with random.Random(seed) (deterministic)."""
    runs = [r for r in records if r.get("status") != "skipped"]
    if sample is not None and sample < 1:
        raise UserError(f"--sample: must be a positive integer, got {sample}")
    if sample is None or sample >= len(runs):
        return runs
    chosen = sorted(random.Random(seed).sample(range(len(runs)), sample))
    return [runs[i] for i in chosen]


def compare(recorded: dict, now: dict) -> list[tuple[str, object, object]]:
    """The fields where `now` (a fresh record) differs from `recorded`, exactly: leaf paths
    like 'metrics.val_curve[1][1]' with both values. `now` is compared as it would read back
    from the results file (non-finite floats as null, tuples as lists)."""
    now = results.normalized(now)
    recorded = json.loads(json.dumps(recorded))
    out: list[tuple[str, object, object]] = []
    if recorded.get("status") != now.get("status"):
        out.append(("status", recorded.get("status"), now.get("status")))
    rm, nm = recorded.get("metrics") or {}, now.get("metrics") or {}
    for k in METRIC_FIELDS:
        _diff(f"metrics.{k}", rm.get(k, _MISSING), nm.get(k, _MISSING), out)
    _diff("stability", recorded.get("stability", _MISSING), now.get("stability", _MISSING), out)
    _diff("data.fingerprint", (recorded.get("data") or {}).get("fingerprint", _MISSING),
          (now.get("data") or {}).get("fingerprint", _MISSING), out)
    return out


def _diff(path: str, a, b, out: list) -> None:
    if a is _MISSING and b is _MISSING:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            _diff(f"{path}.{k}", a.get(k, _MISSING), b.get(k, _MISSING), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(f"{path}[{i}]", x, y, out)
    elif a is _MISSING or b is _MISSING or a != b or type(a) is not type(b) and not _same_number(a, b):
        out.append((path, a, b))


def _same_number(a, b) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            and not isinstance(b, bool) and a == b)


def _show(v, width: int = 60) -> str:
    if v is _MISSING:
        return "(missing)"
    if isinstance(v, list):
        text = json.dumps(v)
        if len(text) > width:
            text = f"{text[:width - 12]}... ({len(v)} items)"
        return text
    text = repr(v) if isinstance(v, (float, str)) else json.dumps(v)
    return text if len(text) <= width else text[:width - 3] + "..."


def describe(rec: dict) -> str:
    label = (rec.get("strategy") or {}).get("label", "?")
    lr = (rec.get("stress") or {}).get("lr_mult")
    return (f"{rec.get('run_id')} {rec.get('task')} {label} seed {rec.get('seed')}"
            + (f" lr x{lr:g}" if isinstance(lr, (int, float)) else ""))


def format_outcome(o: Outcome, most: int = 3) -> str:
    if o.ok:
        return f"ok       {describe(o.record)}"
    parts = [f"{f}: recorded {_show(a)}, now {_show(b)}" for f, a, b in o.diffs[:most]]
    more = f" (+{len(o.diffs) - most} more)" if len(o.diffs) > most else ""
    notes = f" [{'; '.join(o.notes)}]" if o.notes else ""
    return f"DIFFERS  {describe(o.record)}: " + "; ".join(parts) + more + notes


def _env_changes(recorded: dict, now: dict) -> list[str]:
    """What differs between the recording environment and this one (explains a difference).
    Records written before gradbench kept the CPU (cpu, cpu_capability) say so."""
    keys = ("torch", "lightning", "device", "cpu", "cpu_capability", "threads", "git_commit")
    return [f"recorded with {k} {recorded.get(k, '(not recorded)')}, now {now.get(k)}" for k in keys
            if recorded.get(k) != now.get(k)]


def _spec(rec: dict, path):
    from .spec import RunSpec
    try:
        return RunSpec.from_dict(rec["spec"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: run {rec.get('run_id')}: its stored spec cannot be read "
                        f"({type(e).__name__}: {e}); was it written by another gradbench version?") from None


def verify(path, data_root: Path, sample: int | None = None, seed: int = 0,
           log: Callable[[str], None] = print) -> list[Outcome]:
    """Re-run the chosen records of the results file `path`; log one line per run and return
    the outcomes. UserError for an unreadable file, a record without a usable spec, or data
    that is missing (checked before anything runs)."""
    import torch

    from .data import load_dataset
    from .grad_hooks import GRAD_HOOKS
    from .runner import run_one
    from .tasks import TASKS

    records = results.latest_by_run(results.load(path))
    if not records:
        raise UserError(f"{path}: no run records")
    chosen = select(records, sample, seed)
    specs = [_spec(r, path) for r in chosen]
    for rec, spec in zip(chosen, specs):
        if spec.task not in TASKS:
            raise UserError(f"{path}: run {rec.get('run_id')}: unknown task {spec.task!r}; "
                            f"valid: {', '.join(TASKS.list())}")
        for name, _ in spec.grad_hooks:
            if name not in GRAD_HOOKS:
                raise UserError(f"{path}: run {rec.get('run_id')} uses the gradient hook {name!r}, which nothing "
                                "loaded registers; pass the plugin that defines it with --plugins FILE_OR_MODULE")
    # fail fast on missing or changed data, before anything trains
    for key in dict.fromkeys((TASKS.get(s.task).dataset, json.dumps(s.data, sort_keys=True)) for s in specs):
        load_dataset(key[0], data_root, **json.loads(key[1]))
    skipped = len(records) - len([r for r in records if r.get("status") != "skipped"])
    log(f"verify {path}: re-running {len(chosen)} of {len(records)} runs"
        + (f" ({skipped} skipped runs are not re-run)" if skipped else ""))
    threads = torch.get_num_threads()
    outcomes = []
    try:
        with results.interruptible() as guard:
            for rec, spec in zip(chosen, specs):
                env = rec.get("env") or {}
                if isinstance(env.get("threads"), int) and env["threads"] > 0:
                    torch.set_num_threads(env["threads"])
                now = run_one(spec, Path(data_root))
                guard.check()
                o = Outcome(rec, compare(rec, now))
                if spec.run_id != rec.get("run_id"):
                    o.diffs.insert(0, ("run_id", rec.get("run_id"), spec.run_id))
                if now.get("reason") and now.get("status") != rec.get("status"):
                    o.notes.append(f"now: {' '.join(str(now['reason']).split())[:200]}")
                if o.diffs:
                    o.notes += _env_changes(env, now.get("env") or {})
                log(format_outcome(o))
                outcomes.append(o)
    finally:
        torch.set_num_threads(threads)
    gpu = [o for o in outcomes if "cuda" in str((o.record.get("env") or {}).get("device", "")).lower()]
    if gpu:
        log(f"note: {len(gpu)} of these runs were recorded on a GPU, where exact reproduction needs the same "
            "device and software with deterministic settings (see gradbench verify --help)")
    return outcomes
