"""What to run: a suite file -> a validated Suite (config.py) -> its runs (expand.py)."""

from .config import Suite, load_suite, parse_suite
from .expand import Skipped, expand, final_runs, tuning_trials

__all__ = ["Skipped", "Suite", "expand", "final_runs", "load_suite", "parse_suite", "tuning_trials"]
