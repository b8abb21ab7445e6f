"""A LightningDataModule over whole in-memory tensors: batches are index slices, so the data
can live on the accelerator; CIFAR-10's crop and flip are drawn per epoch and applied per batch."""

from __future__ import annotations

from collections.abc import Iterator

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from ...core.errors import UserError
from .splits import Splits

# Per-channel statistics applied per batch to uint8 images, keyed by Splits.name.
NORMALIZE = {"cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))}


class _TrainBatches:
    """One epoch per iter(): a fresh permutation from the seeded generator, sliced into batches."""

    def __init__(self, dm: TensorDataModule, rank: int, world_size: int):
        self.dm, self.rank, self.world_size = dm, rank, world_size
        self.n = len(dm.train_x) // world_size  # examples per rank; equal on every rank

    def __len__(self) -> int:
        return self.n // self.dm.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dm = self.dm
        perm = torch.randperm(len(dm.train_x), generator=dm.generator)
        # Drawn every epoch, used or not, so the permutation stream never depends on augment;
        # a per-epoch augmentation generator also keeps a cut-short epoch from shifting the next.
        aug_seed = int(torch.randint(0, 2**62, (1,), generator=dm.generator))
        aug_gen = torch.Generator().manual_seed(aug_seed)
        # Truncate to a multiple of world_size so every rank runs the same number of steps.
        perm = perm[: self.n * self.world_size][self.rank :: self.world_size]
        dev, bs = dm.train_x.device, dm.batch_size
        perm = perm.to(dev)
        if dm.augment:  # the epoch's crops and flips, drawn batch by batch as augment_batch would, moved once
            draws = [draw_augment(bs, aug_gen) for _ in range(len(self))]
            shifts = [torch.cat(parts).to(dev) for parts in zip(*draws)]
        # everything below stays on the training device: no host round trip per batch
        for i in range(len(self)):
            idx = perm[i * bs : (i + 1) * bs]
            x = dm.train_x.index_select(0, idx)
            if dm.augment:
                x = apply_augment(x, *(t[i * bs : (i + 1) * bs] for t in shifts))
            yield dm.transform(x), dm.train_y.index_select(0, idx)


class _EvalBatches:
    """Sequential batches, last partial one kept."""

    def __init__(self, dm: TensorDataModule, x: torch.Tensor, y: torch.Tensor):
        self.dm, self.x, self.y = dm, x, y

    def __len__(self) -> int:
        return -(-len(self.x) // self.dm.eval_batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.dm.eval_batch_size
        for i in range(0, len(self.x), bs):
            yield self.dm.transform(self.x[i : i + bs]), self.y[i : i + bs]


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding `pad`) and horizontal flip (p=0.5) of a [B,C,H,W] batch in one gather."""
    return apply_augment(x, *(t.to(x.device) for t in draw_augment(len(x), generator, pad)), pad=pad)


def draw_augment(b: int, generator: torch.Generator, pad: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random part of augment_batch for b images: row shifts, column shifts, flips ([b, 1] each).
    Drawn on the CPU generator, so the result does not depend on the device."""
    dy = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b, 1), generator=generator)
    flip = torch.rand(b, 1, generator=generator) < 0.5
    return dy, dx, flip


def apply_augment(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int = 4
) -> torch.Tensor:
    """Crop and flip x by drawn shifts (all on x's device: no host work per batch)."""
    b, c, h, w = x.shape
    dev = x.device
    rows = dy + torch.arange(h, device=dev)
    cols = dx + torch.where(flip, torch.arange(w - 1, -1, -1, device=dev), torch.arange(w, device=dev))
    padded = F.pad(x, (pad, pad, pad, pad))  # zero pixels, as RandomCrop(padding=4) before ToTensor
    return padded[
        torch.arange(b, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


class TensorDataModule(pl.LightningDataModule):
    """Whole splits as tensors (moved to the training device once); batches are index slices."""

    def __init__(self, splits: Splits, batch_size: int, seed: int, augment: bool = False, eval_batch_size: int = 1000):
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise UserError(
                f"batch sizes must be at least 1 (got batch_size={batch_size}, eval_batch_size={eval_batch_size})"
            )
        if batch_size > len(splits.train_x):
            raise UserError(
                f"batch_size={batch_size} is larger than the {splits.name} training set "
                f"({len(splits.train_x)} examples); use a smaller batch_size"
            )
        if augment and len(splits.input_shape) != 3:
            raise UserError(
                f"augment=True needs image data, but {splits.name} has inputs of shape "
                f"{splits.input_shape}; set augment to false"
            )
        self.splits, self.batch_size, self.eval_batch_size = splits, batch_size, eval_batch_size
        self.augment, self.seed = augment, seed
        self.generator = torch.Generator().manual_seed(seed)  # seeded once: epoch e depends on (seed, e)
        self.num_classes, self.input_shape = splits.num_classes, splits.input_shape
        # Own references: setup() rebinds these, never the (shared, memoized) Splits.
        self._use(torch.device("cpu"))

    def _use(self, device: torch.device) -> None:
        s = self.splits
        self.train_x, self.train_y = s.train_x.to(device), s.train_y.to(device)
        self.val_x, self.val_y = s.val_x.to(device), s.val_y.to(device)
        self.test_x, self.test_y = s.test_x.to(device), s.test_y.to(device)
        self._device = device
        stats = NORMALIZE.get(s.name)
        self._mean = self._std = None
        if stats is not None:
            self._mean = torch.tensor(stats[0], device=device).view(1, -1, 1, 1)
            self._std = torch.tensor(stats[1], device=device).view(1, -1, 1, 1)

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None and self.trainer.strategy.root_device != self._device:
            self._use(self.trainer.strategy.root_device)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images -> normalized float32, per batch; float data passes through."""
        if x.dtype != torch.uint8:
            return x
        x = x.float().div_(255)
        return x.sub_(self._mean).div_(self._std) if self._mean is not None else x

    def train_dataloader(self) -> _TrainBatches:
        rank, world = 0, 1
        if self.trainer is not None and self.trainer.world_size > 1:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        return _TrainBatches(self, rank, world)

    def val_dataloader(self) -> _EvalBatches:
        return _EvalBatches(self, self.val_x, self.val_y)

    def test_dataloader(self) -> _EvalBatches:
        return _EvalBatches(self, self.test_x, self.test_y)

    def state_dict(self) -> dict:
        """The permutation generator's state, so a resumed run continues the same batch order."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
