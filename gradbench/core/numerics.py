"""The numerics version of the training code.

A record carries the version it was made under (`numerics`). Bump NUMERICS in the same
commit as any change that moves a recorded number for the same spec: a model's or a
dataset's default, the arithmetic of a strategy, the monitor's statistics, the data order.
A change that keeps every number (verified with `gradbench verify` on a sample) keeps it.

Then resuming a suite re-runs the records made under another version (finished_ids), and a
page refuses to score two versions together (analysis/page.py). Records written before the
field existed are version 1: the committed leaderboard reproduces bit for bit under it.

Versions: 1, the first. 2: residual blocks are pre-activation with their branch's layer
initialized at zero (Fixup) and a residual net ends with the trunk's norm and activation
before its head; the LSTM's forget-gate bias starts at 1; zclip clips to its reference
code's max_grad_norm (1.0) during its warm-up and never lets the norm above it after;
skip_spikes' warm-up is 3 steps, not 25. Every other arm's numbers are
those of version 1 (its parameters keep their names and order; gradbench verify reproduced
a sample of the committed version-1 records bit for bit under version 2).
"""

from __future__ import annotations

NUMERICS = 2


def numerics_of(record: dict) -> int:
    """The numerics version a record was made under (1 for records older than the field)."""
    value = record.get("numerics")
    return value if isinstance(value, int) and not isinstance(value, bool) else 1
