"""gradbench: benchmark strategies against exploding gradients with PyTorch Lightning.

The public surface, the names plugins and users import (internal moves do not break them):

    from gradbench import strategy, grad_hook, RunSpec, Task, register_task
    from gradbench.callbacks import StabilityMonitor, AGC, AutoClip, ZClip, SkipSpikes

The top-level names resolve on first use, so `import gradbench` loads neither torch nor
lightning. The subpackages follow the data flow (README, Architecture); from the bottom
layer up: core, store, catalogue, suite, then training and analysis side by side,
execution, cli (pyproject.toml's import-linter contract states the order and a test keeps it).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "strategy": "gradbench.catalogue.strategies",
    "grad_hook": "gradbench.catalogue.grad_hooks",
    "RunSpec": "gradbench.core.spec",
    "Task": "gradbench.catalogue.tasks",
    "register_task": "gradbench.catalogue.tasks",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # resolved once
        return value
    raise AttributeError(f"module 'gradbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
