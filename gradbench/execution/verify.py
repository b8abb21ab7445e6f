"""gradbench verify: re-run recorded runs and check that they reproduce their results exactly.

Each chosen record is re-run from the spec it stores (RunSpec.from_dict(record["spec"]),
then training.run.run_one) with torch's CPU thread count set to the record's env.threads, and
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
AVX512 kernels on both, and a chaotic run (one that explodes) then differs visibly. Pinning
MKL's or oneDNN's code path does not bridge the two: on an Intel Xeon, MKL_CBWR (COMPATIBLE,
SSE4_2, AVX, AVX2, AVX512), MKL_ENABLE_INSTRUCTIONS=AVX2 and DNNL_MAX_CPU_ISA each move an
adding-task run's figures, and none of them gives the AMD EPYC record's. A difference
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
from collections.abc import Callable
from pathlib import Path

from ..analysis.compare import (
    STATISTICAL_RULE,
    Outcome,
    compare,
    consistency,
    cpu_kind,
    env_changes,
    format_outcome,
    select,
    task_spread,
)
from ..core.errors import UserError
from ..core.record import Env, Record, latest, parse_record
from ..store import jsonl


def _spec(rec: Record, path):
    from ..core.spec import RunSpec

    try:
        return RunSpec.from_dict(rec.spec)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(
            f"{path}: run {rec.run_id}: its stored spec cannot be read "
            f"({type(e).__name__}: {e}); was it written by another gradbench version?"
        ) from None


def verify(
    path,
    data_root: Path,
    sample: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
    statistical: bool = False,
    threads: int | None = None,
    same_cpu: bool = False,
    commit: str | None = None,
) -> list[Outcome]:
    """Re-run the chosen records of the results file `path`; log one line per run and return
    the outcomes. Bitwise by default; `statistical`: each re-run is judged against its record
    with the task's seed-to-seed spread as the tolerance (compare.STATISTICAL_RULE), for
    another machine kind or thread count. `threads`: torch threads for the re-runs (default: each record's own).
    `same_cpu`: only runs recorded on this machine's kind of CPU (the ones that must reproduce
    bit for bit here); `commit`: only runs recorded at a git commit starting with it.
    UserError for an unreadable file, a record without a usable spec, or data that is missing
    (checked before anything runs)."""
    import torch

    from ..catalogue.grad_hooks import GRAD_HOOKS
    from ..catalogue.tasks import TASKS
    from ..training.data import load_task_data
    from ..training.run import run_one
    from . import interrupts  # Lightning's signal exits: loaded only when runs re-run

    records = latest(jsonl.read(path))
    if not records:
        raise UserError(f"{path}: no run records")
    here = None
    if same_cpu:
        from ..training.provenance import cpu_model

        here = cpu_kind(Env(cpu=cpu_model() or "unknown", cpu_capability=torch.backends.cpu.get_cpu_capability()))
    chosen = select(records, sample, seed, cpu=here, commit=commit)
    specs = [_spec(r, path) for r in chosen]
    for rec, spec in zip(chosen, specs):
        if spec.task not in TASKS:
            raise UserError(f"{path}: run {rec.run_id}: unknown task {spec.task!r}; valid: {', '.join(TASKS.list())}")
        for name, _ in spec.grad_hooks:
            if name not in GRAD_HOOKS:
                raise UserError(
                    f"{path}: run {rec.run_id} uses the gradient hook {name!r}, which nothing "
                    "loaded registers; pass the plugin that defines it with --plugins FILE_OR_MODULE"
                )
    # fail fast on missing or changed data, before anything trains
    for key in dict.fromkeys((s.task, json.dumps(s.data, sort_keys=True)) for s in specs):
        load_task_data(TASKS.get(key[0]), data_root, json.loads(key[1]))
    skipped = sum(r.status == "skipped" for r in records)
    only = [f"recorded on this CPU kind, {here}"] if here else []
    only += [f"recorded at git commit {commit}*"] if commit else []
    log(
        f"verify {path}: re-running {len(chosen)} of {len(records)} runs"
        + (f" (drawn from those {' and '.join(only)})" if only else "")
        + (f" ({skipped} skipped runs are not re-run)" if skipped else "")
    )
    if statistical:
        log(f"statistical: {STATISTICAL_RULE}")
    previous_threads = torch.get_num_threads()
    outcomes = []
    try:
        with interrupts.interruptible() as guard:
            for rec, spec in zip(chosen, specs):
                recorded_threads = rec.env.threads if rec.env is not None else None
                if threads:
                    torch.set_num_threads(threads)
                elif recorded_threads is not None and recorded_threads > 0:
                    torch.set_num_threads(recorded_threads)
                # as it would read back from the results file (non-finite floats as null)
                now = parse_record(jsonl.normalized(run_one(spec, Path(data_root))), f"re-run of {rec.run_id}")
                guard.check()
                if statistical:
                    ok, why = consistency(rec, now, task_spread(records, rec.task))
                    o = Outcome(rec, [] if ok else [("consistency", why, None)], notes=[why], statistical=True)
                    o.notes += env_changes(rec.env, now.env)
                else:
                    o = Outcome(rec, compare(rec, now))
                    if o.diffs:
                        o.notes += env_changes(rec.env, now.env)
                if spec.run_id != rec.run_id:
                    o.diffs.insert(0, ("run_id", rec.run_id, spec.run_id))
                if now.reason and now.status != rec.status:
                    o.notes.append(f"now: {' '.join(now.reason.split())[:200]}")
                log(format_outcome(o))
                outcomes.append(o)
    finally:
        torch.set_num_threads(previous_threads)
    gpu = [o for o in outcomes if o.record.env is not None and "cuda" in str(o.record.env.device).lower()]
    if gpu:
        log(
            f"note: {len(gpu)} of these runs were recorded on a GPU, where exact reproduction needs the same "
            "device and software with deterministic settings (see gradbench verify --help)"
        )
    return outcomes
