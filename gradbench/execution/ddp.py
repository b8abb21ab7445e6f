"""One run on several devices (Lightning DDP), launched with torchrun.

A suite asks for it through Lightning's own Trainer arguments, e.g.
`trainer: {strategy: ddp, devices: 2, accelerator: cpu}` (gloo on CPU, NCCL on GPUs). The
executor's worker starts `torchrun --standalone --nproc-per-node=N -m gradbench.execution.ddp`, every
rank trains the same spec (Lightning detects torchrun's environment, so it does not relaunch
anything), each rank writes its record, and the worker returns rank 0's after checking that
all ranks agree on the stability statistics (gradients are all-reduced before the monitor
reads them, and the monitor averages the loss across ranks, so they must agree exactly).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..catalogue import plugins as catalogue_plugins
from ..core.spec import RunSpec
from ..training.run import error_record, run_one


def world_size(spec: RunSpec) -> int:
    """Processes per node a spec asks for (1 = an ordinary single-device run)."""
    devices = spec.trainer.get("devices", 1)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    return devices if isinstance(devices, int) and devices > 1 else 1


def run_distributed(
    spec: RunSpec,
    data_root: Path,
    run_dir: Path | None,
    command: str | None,
    series_rel: str | None,
    threads: int | None,
    plugins: tuple[str, ...] = (),
) -> dict:
    n = world_size(spec)
    with tempfile.TemporaryDirectory(prefix="gradbench-ddp-") as tmp:
        job = {
            "spec": spec.to_dict(),
            "data_root": str(data_root),
            "run_dir": str(run_dir) if run_dir else None,
            "command": command,
            "series_rel": series_rel,
            "threads": threads,
            "plugins": list(plugins),
            "out": tmp,
        }
        (Path(tmp) / "job.json").write_text(json.dumps(job))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads or 1)}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc-per-node={n}",
                "-m",
                "gradbench.execution.ddp",
                str(Path(tmp) / "job.json"),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        ranks = [Path(tmp) / f"rank{r}.json" for r in range(n)]
        if proc.returncode != 0 or not all(p.exists() for p in ranks):
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return error_record(spec, command, f"torchrun with {n} processes failed: {' | '.join(tail)}")
        records = [json.loads(p.read_text()) for p in ranks]
    record = records[0]
    record["ranks"] = n
    if any(r["stability"] != record["stability"] or r["status"] != record["status"] for r in records[1:]):
        record["status"], record["reason"] = "error", "DDP ranks disagree on the stability statistics"
    return record


def _rank_main(job_path: str) -> None:
    """Inside torchrun: train the spec on this rank and write this rank's record."""
    import torch

    job = json.loads(Path(job_path).read_text())
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    catalogue_plugins.load_entry_points()
    catalogue_plugins.load(job.get("plugins", []))  # what the suite's strategies need, in this rank
    rank = int(os.environ.get("RANK", 0))
    spec = RunSpec.from_dict(job["spec"])
    run_dir = Path(job["run_dir"]) if job["run_dir"] and rank == 0 else None  # rank 0 writes the series
    record = run_one(spec, Path(job["data_root"]), run_dir, job["command"], series_rel=job["series_rel"])
    Path(job["out"], f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    _rank_main(sys.argv[1])
