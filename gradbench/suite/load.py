"""A suite file -> a Suite checked whole: config.py's typed reading, then what needs the
runs' expansion (each stress axis's levels set on its task's configuration: stress_axes.py,
which builds on expand.py, which builds on config.py)."""

from __future__ import annotations

from pathlib import Path

from . import config
from .config import Suite
from .stress_axes import checked_axes


def parse_suite(raw: dict, default_name: str = "suite", base_dir: Path | None = None, path: str | None = None) -> Suite:
    return _checked(config.parse_suite(raw, default_name=default_name, base_dir=base_dir, path=path))


def load_suite(path: str | Path) -> Suite:
    return _checked(config.load_suite(path))


def _checked(suite: Suite) -> Suite:
    if suite.stress_axes:
        suite.stress_axes = checked_axes(suite, suite.stress_axes)
    return suite
