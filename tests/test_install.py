"""`pip install gradbench` is light: the wheel requires torch, lightning, numpy, pydantic and
pyyaml, and gradbench.callbacks works in a real Trainer in an environment that holds only
those and what they require (no pandas, scipy, matplotlib, plotly, itables, wandb or ray);
a command that needs an extra says which, and exits 2."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from packaging.requirements import Requirement

CORE = {"torch", "lightning", "numpy", "pydantic", "pyyaml"}
EXTRAS_ONLY = ["pandas", "scipy", "matplotlib", "plotly", "itables", "wandb", "ray"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of what it packages (setuptools leaves a build/ beside its source)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "gradbench", source / "gradbench", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("gradbench-*.whl"))


def requires(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    return [
        Requirement(line.split(":", 1)[1].strip()) for line in text.splitlines() if line.startswith("Requires-Dist:")
    ]


def test_the_wheel_requires_only_what_the_callbacks_need(wheel):
    reqs = requires(wheel)
    core = {r.name.lower() for r in reqs if r.marker is None}
    assert core == CORE
    extra = {r.name.lower(): str(r.marker) for r in reqs if r.marker is not None}
    for name in ("pandas", "scipy", "matplotlib", "jinja2", "plotly", "itables"):
        assert extra[name] == 'extra == "suite"', name
    assert extra["wandb"] == 'extra == "wandb"' and extra["ray"] == 'extra == "ray"'


def core_closure() -> set[str]:
    """The distributions `pip install gradbench` brings: the core and, recursively, what each
    requires unconditionally (as installed here, under constraints.txt)."""
    seen: set[str] = set()
    todo = list(CORE)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        for line in md.distribution(name).requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def light_environment(root: Path, wheel: Path) -> Path:
    """A directory holding only the core closure's installed files (links) and the wheel's
    gradbench: what a clean `pip install gradbench` would hold, without downloading again."""
    site = root / "site"
    site.mkdir()
    for name in core_closure():
        dist = md.distribution(name)
        base = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if not (site / top).exists() and (base / top).exists():
                (site / top).symlink_to(base / top)
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def test_the_callbacks_work_in_a_trainer_with_only_the_core_installed(wheel, tmp_path):
    site = light_environment(tmp_path, wheel)
    assert not any((site / name).exists() for name in EXTRAS_ONLY)  # torch itself requires none of them
    script = REPO / "tests" / "light_install_check.py"
    # -S: no site-packages, -I: no user site or PYTHON* variables; the light directory only
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(site), str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["gradbench_from"].startswith(str(site))
    assert report["absent"] == EXTRAS_ONLY and report["loaded_extras"] == []
    assert report["steps"] == 20 and report["grad_norm_max"] > 0 and report["clipped_steps"] > 0
    assert report["leaderboard_exit"] == 2 and "[suite] extra" in report["leaderboard_says"]
    assert "pip install -c constraints.txt 'gradbench[suite]'" in report["leaderboard_says"]


def local_package_sources() -> list[str] | None:
    """pip's own settings here, when they name only local sources (a wheelhouse and file://
    indexes) that hold torch: the arguments for an install that downloads nothing, or None."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    config = dict(re.findall(r"^[\w:.]*?\.?([\w-]+)='(.*)'$", listed, flags=re.M))
    wheelhouse = config.get("find-links", "")
    indexes = config.get("extra-index-url", "").split()
    if not (
        indexes
        and all(u.startswith("file://") for u in indexes)
        and list(Path(wheelhouse or "/nonexistent").glob("torch-*.whl"))
    ):
        return None
    return [
        "--index-url",
        indexes[0],
        *(a for u in indexes[1:] for a in ("--extra-index-url", u)),
        "--find-links",
        wheelhouse,
    ]


def test_a_clean_venv_installs_the_wheel_from_local_sources_and_fits(wheel, tmp_path):
    """A new venv, `pip install gradbench.whl` from this machine's local wheelhouse and file
    indexes (no download, torch included): it holds none of the extras, and the callbacks fit."""
    sources = local_package_sources()
    if sources is None:
        pytest.skip("pip here has no local wheelhouse and file:// indexes holding torch")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}  # nothing of this checkout's
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *sources, "-c", str(REPO / "constraints.txt"), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
        env=clean,
    )
    site = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True, text=True
    ).stdout.strip()
    done = subprocess.run(
        [str(python), str(REPO / "tests" / "light_install_check.py"), site, str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["gradbench_from"].startswith(site)
    assert report["absent"] == EXTRAS_ONLY and report["steps"] == 20 and report["leaderboard_exit"] == 2
