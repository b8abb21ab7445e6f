"""The old import paths that the layered layout moved, kept working for one release (0.x) with
a warning that names the new one: a plugin written against them still imports."""

from __future__ import annotations

import importlib
import warnings

from .core.errors import GradbenchWarning


class MovedWarning(GradbenchWarning, DeprecationWarning):
    """An old import path was used (a DeprecationWarning, which the CLI shows as one line)."""


def alias(old: str, new: str, public: str):
    """Warn that `old` moved to `new`, and return a module __getattr__ that hands out `new`'s
    names. `public`: what to import instead."""
    warnings.warn(f"{old} is deprecated and will be removed after 0.x: use {public}", MovedWarning, stacklevel=3)

    def __getattr__(name: str):
        if name.startswith("__"):  # not a package: `import gradbench.strategies.base` fails plainly
            raise AttributeError(name)
        return getattr(importlib.import_module(new), name)

    return __getattr__
