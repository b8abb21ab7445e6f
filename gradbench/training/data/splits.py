"""A dataset's train/validation/test tensors, carved and fingerprinted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from ...core.errors import UserError

DEFAULT_VAL_SIZE = 5000  # fixed validation examples carved from train (MNIST, CIFAR-10)
VAL_SPLIT_SEED = 0  # independent of the run seed: every run selects models on the same examples


@dataclass(eq=False, repr=False)  # eq on tensors is ambiguous; repr of tensors is huge
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    fingerprint: str
    name: str
    num_classes: int | None
    input_shape: tuple

    def __repr__(self) -> str:
        return (
            f"Splits({self.name}: train {len(self.train_x)}, val {len(self.val_x)}, "
            f"test {len(self.test_x)}, input {self.input_shape}, {self.fingerprint[:19]}…)"
        )


def fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and bytes, in the given order."""
    digest = hashlib.sha256()
    for key, t in tensors.items():
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.contiguous().numpy())  # buffer protocol: no copy
    return "sha256:" + digest.hexdigest()


def make_splits(name, train_x, train_y, test_x, test_y, val_size, num_classes) -> Splits:
    """Carve the fixed validation split out of train and fingerprint the result."""
    n = len(train_x)
    if val_size is None:
        val_size = min(DEFAULT_VAL_SIZE, n // 10)  # tiny hand-made files still keep most for train
    if not 0 < val_size < n:
        raise UserError(
            f"{name}: val_size={val_size} must be between 1 and {n - 1} "
            f"(the training file has {n} examples); pass a smaller val_size"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    # Sorted so each part keeps the file's order: the split is a pure choice of examples.
    val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
    parts = {
        "train_x": train_x[train_idx],
        "train_y": train_y[train_idx],
        "val_x": train_x[val_idx],
        "val_y": train_y[val_idx],
        "test_x": test_x,
        "test_y": test_y,
    }
    return Splits(
        **parts,
        fingerprint=fingerprint(parts),
        name=name,
        num_classes=num_classes,
        input_shape=tuple(train_x.shape[1:]),
    )
