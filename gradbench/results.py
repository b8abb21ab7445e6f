"""The results file: one JSON object per finished run, appended, fsynced, resumable.

This module is the only boundary between training and scoring: it imports neither torch
nor lightning, so a leaderboard can be rebuilt anywhere from a committed results file.

A record (schema 1) holds:

    schema       1
    run_id       12 hex chars, a hash of the resolved spec (see spec.run_id)
    suite        suite name
    task         task name, e.g. "mnist_mlp"
    strategy     {"label": "clip_norm+batchnorm", "names": ["clip_norm", "batchnorm"],
                  "params": {"clip_norm": {"max_norm": 1.0}, "batchnorm": {}}}
    seed         int; seed i gives every strategy the same data order (and init, where
                 the architecture is the same)
    stress       {"lr_mult": 1.0}: the stress level (a learning-rate multiplier)
    status       "ok" | "diverged" | "error" | "skipped"
    reason       null, or why it diverged / errored / was skipped
    metrics      {"name": "accuracy"|"mse", "higher_is_better": bool, "target": float,
                  "chance": float (what a model that learned nothing scores),
                  "test": float|null (once, at the end; null if diverged/error/skipped),
                  "best_val": float|null, "final_val": float|null,
                  "steps_to_target": int|null (first validation step that met target),
                  "val_curve": [[step, value], ...], "steps": int (optimizer steps taken)}
    stability    {"grad_norm_p50", "grad_norm_p90", "grad_norm_p99", "grad_norm_max" (pre-clip),
                  "post_clip_max", "clip_fraction", "nonfinite_steps", "loss_spikes",
                  "grad_spikes", "diverged_at_step" (int|null), "max_loss_ratio",
                  "grad_norm_curve": [[step, max pre-clip norm in bucket], ...] (<= 200 points)}
                 (null for skipped runs; values are null where nothing finite was measured)
    timings      {"wall_s", "train_s", "steps_per_s"}
    env          {"gradbench", "torch", "lightning", "python", "device", "threads", "git_commit"}
    data         {"dataset": str, "fingerprint": "sha256:..."}
    series       path of the per-step CSV, relative to the results file's folder, or null
    spec         the resolved run spec (everything that determines the run)
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError

SCHEMA = 1
STATUSES = ("ok", "diverged", "error", "skipped")


def append(path: str | os.PathLike, record: dict) -> None:
    """Append one record as one line, flushed and fsynced before returning, so a finished
    run survives a crash or kill -9 of the suite that follows it."""
    path = Path(path)
    line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        raise UserError(f"cannot write results to {path}: {e.strerror or e}") from None


def _drop_torn_tail(path: Path) -> None:
    """Cut a partial last line (a run killed mid-write) so the next record starts a clean line;
    the run it belonged to was not finished and runs again."""
    try:
        with open(path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            tail = min(size, 1 << 20)
            fh.seek(size - tail)
            cut = fh.read(tail).rfind(b"\n")
            keep = (size - tail + cut + 1) if cut >= 0 else 0
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    except FileNotFoundError:
        return


def iter_records(path: str | os.PathLike) -> Iterator[dict]:
    """Yield the records of a JSON-lines results file.

    A torn last line (a run killed mid-write) is reported as a warning and skipped, so its
    run runs again; any other line that is not a JSON object is a UserError naming the line.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"results file {path} does not exist")
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    for i, raw in enumerate(lines[: last + 1]):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict) or "run_id" not in rec:
                raise ValueError("not a run record")
        except (ValueError, UnicodeDecodeError) as e:
            if i == last:
                warnings.warn(f"{path}:{i + 1}: ignoring a torn last line (a run cut off while "
                              "writing); its run will run again", stacklevel=2)
                continue
            raise UserError(f"{path}:{i + 1}: not a JSON-lines results file ({e})") from None
        yield rec


def load(path: str | os.PathLike) -> list[dict]:
    return list(iter_records(path))


def finished_ids(path: str | os.PathLike) -> set[str]:
    """run_ids already recorded (any status): a rerun of the suite skips them."""
    path = Path(path)
    return {r["run_id"] for r in iter_records(path)} if path.exists() else set()


def latest_by_run(records: Iterable[dict]) -> list[dict]:
    """One record per run_id (the last one written), in first-seen order."""
    by_id: dict[str, dict] = {}
    for r in records:
        by_id[r["run_id"]] = r
    return list(by_id.values())
