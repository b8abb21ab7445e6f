"""The numerics version of the training code.

A record carries the version it was made under (`numerics`). Bump NUMERICS in the same
commit as any change that moves a recorded number for the same spec: a model's or a
dataset's default, the arithmetic of a strategy, the monitor's statistics, the data order.
A change that keeps every number (verified with `gradbench verify` on a sample) keeps it.

Then resuming a suite re-runs the records made under another version (finished_ids), and a
page refuses to score two versions together (analysis/page.py). Records written before the
field existed are version 1: the first leaderboard's records (leaderboard/catalogue_v1) reproduce bit for bit under it.

Versions: 1, the first. 2: residual blocks are pre-activation with their branch's layer
initialized at zero (Fixup) and a residual net ends with the trunk's norm and activation
before its head; the LSTM's forget-gate bias starts at 1; zclip clips to its reference
code's max_grad_norm (1.0) during its warm-up and never lets the norm above it after;
skip_spikes' warm-up is 3 steps, not 25; an init scheme (kaiming, xavier, orthogonal, and
the CNN's default kaiming) leaves the output layer at PyTorch's default; the adding task
trains 1500 steps, not 600; CIFAR-10 validates on 2000 images, not 5000 (its training set
grows by 3000). A plain model with PyTorch's default init (the MLP and RNN baselines and
their non-residual, non-init arms) builds and trains as in version 1 for the same spec (its
parameters keep their names and order; gradbench verify reproduced committed version-1
MNIST records and an adding record, at its recorded 600 steps, bit for bit under version 2);
the adding task's default spec changed, though (1500 steps). New in version 2, with no
version-1 records: the recall task and its transformer, and every strategy added with it.
"""

from __future__ import annotations

NUMERICS = 2


def numerics_of(record: dict) -> int:
    """The numerics version a record was made under (1 for records older than the field)."""
    value = record.get("numerics")
    return value if isinstance(value, int) and not isinstance(value, bool) else 1
