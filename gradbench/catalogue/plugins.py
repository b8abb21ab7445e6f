"""User strategies and tasks without touching the package: a Python file or module named in
the suite (`plugins: [my_strategies.py]`), or an installed package's `gradbench.strategies` or
`gradbench.tasks` entry point. Importing it runs its @strategy decorators and register_task
calls, which register them."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

from ..core.errors import UserError

_loaded: set[str] = set()


def load(names: list[str], base_dir: Path | None = None) -> list[str]:
    """Import each plugin once: a path ending in .py (relative to the suite file, then the
    working directory) or a dotted module name. Returns them resolved (files as absolute
    paths), which is what a worker process on this machine loads (execution/executors.py)."""
    resolved = []
    for name in names:
        ref = str(_find_file(name, base_dir).resolve()) if name.endswith(".py") else name
        resolved.append(ref)
        # a file is known by its content: two copies of one plugin are one plugin
        key = "sha256:" + hashlib.sha256(Path(ref).read_bytes()).hexdigest() if name.endswith(".py") else ref
        if key in _loaded:
            continue
        if name.endswith(".py"):
            _load_file(name, Path(ref))
        else:
            _import(name, lambda n=name: importlib.import_module(n), f"plugin module {name!r}")
        _loaded.add(key)
    return resolved


ENTRY_POINT_GROUPS = ("gradbench.strategies", "gradbench.tasks")


def load_entry_points() -> None:
    for ep in (ep for group in ENTRY_POINT_GROUPS for ep in entry_points(group=group)):
        if ep.value not in _loaded:
            _import(ep.value, ep.load, f"entry point {ep.name!r} ({ep.value})")
            _loaded.add(ep.value)


def _find_file(name: str, base_dir: Path | None) -> Path:
    candidates = [(base_dir / name) if base_dir else None, Path(name)]
    path = next((p for p in candidates if p is not None and p.is_file()), None)
    if path is None:
        looked = ", ".join(str(p) for p in candidates if p is not None)
        raise UserError(f"plugins: file {name!r} not found (looked at {looked})")
    return path


def _load_file(name: str, path: Path) -> None:
    mod_name = f"gradbench_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)

    def run():
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)

    _import(name, run, f"plugin file {str(path)!r}")


def _import(name: str, do, what: str) -> None:
    try:
        do()
    except UserError:
        raise
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise UserError(f"plugins: {what} not found") from None
        raise UserError(f"plugins: {what} failed to import: {type(e).__name__}: {e}") from None
    except Exception as e:  # any error inside the user's module is reported on one line
        raise UserError(f"plugins: {what} raised on import: {type(e).__name__}: {e}") from None
    except SystemExit as e:  # sys.exit() at import would end gradbench silently, with its code
        raise UserError(f"plugins: {what} called sys.exit({e.code!r}) on import; a plugin only registers") from None
