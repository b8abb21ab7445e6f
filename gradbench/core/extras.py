"""The optional extras (pyproject.toml) and the check a command makes before it needs one.

`pip install gradbench` is what the callbacks and the monitor need in anyone's Lightning
code: torch, lightning, numpy, pydantic, pyyaml. Running suites and making pages needs the
[suite] extra, W&B tracking [wandb], a Ray cluster [ray]. A command checks its extras
first, so that a missing one is a one-line error naming it (exit 2) before anything trains.
"""

from __future__ import annotations

import importlib.util

from .errors import UserError

# each extra's modules, as pyproject.toml's [project.optional-dependencies] installs them
EXTRAS: dict[str, tuple[str, ...]] = {
    "suite": ("pandas", "scipy", "matplotlib", "jinja2", "plotly", "itables"),
    "wandb": ("wandb",),
    "ray": ("ray",),
    "vision": ("torchvision",),
}


def missing(extra: str) -> list[str]:
    """The extra's modules that cannot be imported here."""
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, what: str) -> None:
    """Raise a UserError naming the extra when `what` (a command, an option) needs it and it
    is not installed."""
    absent = missing(extra)
    if absent:
        raise UserError(
            f"{what} needs the [{extra}] extra ({', '.join(absent)} not installed): "
            f"pip install -c constraints.txt 'gradbench[{extra}]'"
        )
