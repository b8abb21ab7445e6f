"""The adding problem (Hochreiter & Schmidhuber, 1997), generated from a seed."""

from __future__ import annotations

import torch

from ...core.errors import UserError
from .splits import Splits, fingerprint


def make_adding(
    seq_len: int = 50, n_train: int = 20000, n_val: int = 2000, n_test: int = 2000, seed: int = 1234
) -> Splits:
    """Hochreiter & Schmidhuber's adding problem: x [N,T,2] (value, marker), y [N,1] = sum of the two marked values."""
    if seq_len < 2:
        raise UserError(f"adding: seq_len={seq_len} is too short; it needs seq_len >= 2 (one marker per half)")
    for key, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if n < 1:
            raise UserError(f"adding: {key}={n} is not a count of examples; set {key} to 1 or more")
    g = torch.Generator().manual_seed(seed)
    half = seq_len // 2

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        values = torch.rand(n, seq_len, generator=g)
        first = torch.randint(0, half, (n,), generator=g)
        second = torch.randint(half, seq_len, (n,), generator=g)
        rows = torch.arange(n)
        markers = torch.zeros(n, seq_len)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        y = (values[rows, first] + values[rows, second]).unsqueeze(1)
        return torch.stack([values, markers], dim=-1), y

    parts = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):  # one stream, fixed order
        parts[f"{split}_x"], parts[f"{split}_y"] = draw(n)
    return Splits(**parts, fingerprint=fingerprint(parts), name="adding", num_classes=None, input_shape=(seq_len, 2))
