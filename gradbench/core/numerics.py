"""The numerics version of the training code.

A record carries the version it was made under (`numerics`). Bump NUMERICS in the same
commit as any change that moves a recorded number for the same spec: a model's or a
dataset's default, the arithmetic of a strategy, the monitor's statistics, the data order.
A change that keeps every number (verified with `gradbench verify` on a sample) keeps it.

Then resuming a suite re-runs the records made under another version (finished_ids), and a
page refuses to score two versions together (analysis/page.py). Records written before the
field existed are version 1: the committed leaderboard reproduces bit for bit under it.
"""

from __future__ import annotations

NUMERICS = 1


def numerics_of(record: dict) -> int:
    """The numerics version a record was made under (1 for records older than the field)."""
    value = record.get("numerics")
    return value if isinstance(value, int) and not isinstance(value, bool) else 1
