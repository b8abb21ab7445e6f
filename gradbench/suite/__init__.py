"""What to run: a suite file -> a validated Suite (config.py) -> its runs (expand.py)."""

from .config import Suite
from .expand import (
    ABOVE_DIVERGED,
    Skipped,
    above_diverged,
    arm_levels,
    bracket_runs,
    by_sweep_level,
    contender_runs,
    expand,
    final_runs,
    tuning_trials,
)
from .load import load_suite, parse_suite

__all__ = [
    "ABOVE_DIVERGED",
    "Skipped",
    "Suite",
    "above_diverged",
    "arm_levels",
    "bracket_runs",
    "by_sweep_level",
    "contender_runs",
    "expand",
    "final_runs",
    "load_suite",
    "parse_suite",
    "tuning_trials",
]
