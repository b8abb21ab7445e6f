"""What a record was made with besides its spec: versions, device, the CPU and its kernel
set, threads and the git commit (a record's `env`)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

from .. import __version__


@functools.cache
def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
        if out.returncode != 0:
            return None
        # dirty: the code differs from the commit (the package, or the pins it installs with);
        # a results file the suite appends to, tracked in the same repository, is not code
        package = Path(__file__).resolve().parents[1]
        code = [str(package), str(package.parent / "pyproject.toml"), str(package.parent / "constraints.txt")]
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *code],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
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
    return {
        "gradbench": __version__,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "device": device,
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }
