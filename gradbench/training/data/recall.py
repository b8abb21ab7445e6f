"""Associative recall, generated from a seed: the in-context lookup that attention models
learn with an induction circuit (Ba et al., 2016; Olsson et al., 2022; Arora et al., 2023)."""

from __future__ import annotations

import torch

from ...core.errors import UserError
from .splits import Splits, fingerprint


def make_recall(
    pairs: int = 8,
    keys: int = 16,
    values: int = 16,
    n_train: int = 50000,
    n_val: int = 2000,
    n_test: int = 2000,
    seed: int = 1234,
) -> Splits:
    """x [N, 2*pairs+1] token ids: `pairs` (key, value) pairs, the keys distinct within a
    sequence, then one of those keys again as the query; y [N] the value that followed it.
    Keys are tokens 0..keys-1, values keys..keys+values-1; y counts values from 0, so chance
    is 1/values."""
    if not 1 <= pairs <= keys:
        raise UserError(f"recall: pairs={pairs} needs 1 <= pairs <= keys ({keys}): the keys of a sequence are distinct")
    for key, n in (("values", values), ("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 1:
            raise UserError(f"recall: {key}={n} is not a count; set {key} to 1 or more")
    g = torch.Generator().manual_seed(seed)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = torch.rand(n, keys, generator=g).argsort(dim=1)[:, :pairs]  # distinct keys per row
        v = torch.randint(0, values, (n, pairs), generator=g)
        which = torch.randint(0, pairs, (n,), generator=g)
        rows = torch.arange(n)
        x = torch.empty(n, 2 * pairs + 1, dtype=torch.int64)
        x[:, 0:-1:2], x[:, 1:-1:2], x[:, -1] = k, v + keys, k[rows, which]
        return x, v[rows, which]

    parts = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):  # one stream, fixed order
        parts[f"{split}_x"], parts[f"{split}_y"] = draw(n)
    return Splits(
        **parts,
        fingerprint=fingerprint(parts),
        name="recall",
        num_classes=values,
        input_shape=(2 * pairs + 1, keys + values),
    )
