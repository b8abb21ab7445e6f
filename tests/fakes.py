"""Shared test fakes: small files in the datasets' real on-disk formats, and hand-built
run records in the results schema (for scoring and the leaderboard, with no training)."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import pathlib
import pickle
import struct

import numpy as np

from gradbench.core.record import check_record
from gradbench.training import data


def write_idx(path: pathlib.Path, arr: np.ndarray, gz: bool) -> pathlib.Path:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_mnist(root: pathlib.Path, gz: bool, n_train: int = 20, n_test: int = 10) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for key, fname in data.MNIST_FILES.items():
        write_idx(raw / fname, arrays[key], gz)
    return arrays


def make_cifar(root: pathlib.Path, bytes_keys: bool, per_batch: int = 4) -> dict:
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, fname in enumerate(data.CIFAR_TRAIN_FILES + (data.CIFAR_TEST_FILE,)):
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
        with open(folder / fname, "wb") as f:
            pickle.dump({k("batch_label"): k(f"batch {i}"), k("data"): x, k("labels"): y}, f, protocol=2)
        written[fname] = (x, y)
    return written


# ---------------------------------------------------------------- run records
# One real record per task (copied from leaderboard/catalogue_v1/results.jsonl): every fake
# record starts from the real record of its task, so it has the real schema, task metadata,
# spec, data and environment, and is then built through the typed Record (core/record.py).
REAL = {
    json.loads(line)["task"]: json.loads(line)
    for line in (pathlib.Path(__file__).parent / "golden" / "records.jsonl").read_text().splitlines()
}


def make_record(
    task="mnist_mlp",
    strategy="baseline",
    seed=0,
    lr=1.0,
    status="ok",
    *,
    test=0.95,
    best_val=None,
    steps_to_target=100,
    steps=1000,
    spikes=0,
    reason=None,
    grad_scale=1.0,
    suite="quick",
    finished_at="2025-01-01T00:00:00Z",
    command="gradbench run configs/quick.yaml",
    run_id=None,
    params=None,
    phase="",
    final_val="same",
    outcome=None,
) -> dict:
    """One record of `task` (a real task) with these outcomes. best_val defaults to `test`;
    a diverged run keeps its best_val (so tests see it is replaced by chance) but has no test
    metric; skipped and error runs have null metrics and stability. final_val defaults to
    best_val; `params` are the arm's strategy parameters, `phase` its tuning-protocol phase;
    `outcome` the recorded outcome (default: none, inferred from the curves as for an old record)."""
    rec = copy.deepcopy(REAL[task])
    rec.pop("outcome", None)
    if outcome is not None:
        rec["outcome"] = outcome
    m = rec["metrics"]
    chance = m["chance"]
    best_val = test if best_val is None else best_val
    if status in ("skipped", "error"):
        test = best_val = steps_to_target = None
        steps = 0
    elif status == "diverged":
        test = None
    key = f"{task}/{strategy}/{seed}/{lr}" + (f"/{json.dumps(params, sort_keys=True)}" if params else "")
    # Validation improves linearly from chance to best_val (either metric direction).
    curve = (
        []
        if best_val is None
        else [[s, chance + (best_val - chance) * s / steps] for s in range(0, steps + 1, steps // 4)]
    )
    m.update(
        test=test,
        best_val=best_val,
        final_val=None if status == "diverged" else best_val if final_val == "same" else final_val,
        steps_to_target=steps_to_target,
        val_curve=curve,
        steps=steps,
    )
    rec.update(
        run_id=run_id or hashlib.sha256(key.encode()).hexdigest()[:12],
        suite=suite,
        strategy={"label": strategy, "names": strategy.split("+"), "params": params or {}},
        seed=seed,
        stress={"lr_mult": lr},
        status=status,
        reason=reason or {"diverged": "loss became non-finite", "skipped": "does not apply"}.get(status),
        timings={"wall_s": 10.0, "train_s": 9.0, "steps_per_s": 100.0, "finished_at": finished_at},
        command=command,
        series=None,
    )
    # each arm its own resolved spec (a gradient hook per name stands in for what it changes), so
    # no fake arm is baseline's runs under another name unless a test makes it so
    hooks = [] if strategy == "baseline" else [[name, (params or {}).get(name, {})] for name in strategy.split("+")]
    rec["spec"] = {**rec["spec"], "seed": seed, "lr_mult": lr, "strategy": strategy, "grad_hooks": hooks}
    if phase:
        rec["spec"]["phase"] = phase
    rec["stability"] = (
        None
        if status in ("skipped", "error")
        else {
            "grad_norm_p50": 1.0,
            "grad_norm_p90": 2.0,
            "grad_norm_p99": 3.0,
            "grad_norm_max": 10.0 * lr,
            "post_clip_max": 1.0,
            "clip_fraction": 0.1,
            "nonfinite_steps": 1 if status == "diverged" else 0,
            "loss_spikes": spikes,
            "grad_spikes": 0,
            "diverged_at_step": steps if status == "diverged" else None,
            "max_loss_ratio": 2.0,
            "grad_norm_curve": [
                [s, grad_scale * (1.0 + seed) * lr * (1 + s / 100)] for s in range(0, steps + 1, max(steps // 8, 1))
            ],
        }
    )
    if status in ("skipped", "error"):
        rec["env"] = None if status == "skipped" else rec["env"]
    return check_record(rec)


def suite_records() -> list[dict]:
    """A small suite: two tasks (accuracy and mse), four strategies, seeds 0-2, lr x1 and
    x10. batchnorm does not apply to the RNN task; clip_value has one error run; baseline
    diverges at lr x10."""
    recs = []
    day = 0
    for seed in range(3):
        for lr in (1.0, 10.0):
            day += 1
            at = f"2025-03-{day:02d}T12:00:00Z"
            # mnist_mlp: accuracy
            base_div = lr == 10.0 and seed < 2
            recs.append(
                make_record(
                    "mnist_mlp",
                    "baseline",
                    seed,
                    lr,
                    "diverged" if base_div else "ok",
                    test=0.93 + 0.01 * seed,
                    best_val=0.94 + 0.01 * seed,
                    steps_to_target=None if base_div else 300 + 10 * seed,
                    spikes=4 if lr == 10.0 else 1,
                    grad_scale=20.0,
                    finished_at=at,
                )
            )
            recs.append(
                make_record(
                    "mnist_mlp",
                    "clip_norm",
                    seed,
                    lr,
                    test=0.95 + 0.01 * seed - (0.01 if lr == 10.0 else 0),
                    best_val=0.95 + 0.01 * seed,
                    steps_to_target=200 + 20 * seed,
                    spikes=1,
                    finished_at=at,
                )
            )
            recs.append(
                make_record(
                    "mnist_mlp",
                    "clip_norm+batchnorm",
                    seed,
                    lr,
                    test=0.96 + 0.005 * seed,
                    best_val=0.95 + 0.01 * seed,
                    steps_to_target=250,
                    spikes=0,
                    grad_scale=0.2,
                    finished_at=at,
                )
            )
            err = seed == 1 and lr == 10.0
            recs.append(
                make_record(
                    "mnist_mlp",
                    "clip_value",
                    seed,
                    lr,
                    "error" if err else "ok",
                    reason="RuntimeError: shape mismatch | in step" if err else None,
                    test=0.9,
                    best_val=0.9,
                    steps_to_target=None,
                    spikes=2,
                    finished_at=at,
                )
            )
            # adding_rnn: mse (lower is better)
            base_div = lr == 10.0 and seed == 0
            recs.append(
                make_record(
                    "adding_rnn",
                    "baseline",
                    seed,
                    lr,
                    "diverged" if base_div else "ok",
                    test=0.04 + 0.002 * seed,
                    best_val=0.04 + 0.002 * seed,
                    steps_to_target=None if base_div else 500,
                    spikes=3,
                    finished_at=at,
                )
            )
            recs.append(
                make_record(
                    "adding_rnn",
                    "clip_norm",
                    seed,
                    lr,
                    test=0.03 - 0.005 * (lr == 10.0),
                    best_val=0.03 - 0.005 * (lr == 10.0),
                    steps_to_target=400 - 100 * (lr == 10.0),
                    spikes=1,
                    finished_at=at,
                )
            )
            recs.append(
                make_record(
                    "adding_rnn",
                    "clip_norm+batchnorm",
                    seed,
                    lr,
                    "skipped",
                    reason="batchnorm does not apply to recurrent models",
                    finished_at=at,
                )
            )
            recs.append(
                make_record(
                    "adding_rnn",
                    "clip_value",
                    seed,
                    lr,
                    test=0.06,
                    best_val=0.06,
                    steps_to_target=None,
                    spikes=2,
                    finished_at=at,
                )
            )
    return recs
