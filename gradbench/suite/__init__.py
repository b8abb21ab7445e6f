"""What to run: a suite file -> a validated Suite (config.py) -> its runs (expand.py)."""

from .config import Suite, load_suite, parse_suite
from .expand import Skipped, expand

__all__ = ["Skipped", "Suite", "expand", "load_suite", "parse_suite"]
