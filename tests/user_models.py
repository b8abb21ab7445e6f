"""LightningModules as a user writes them, nothing from gradbench: shared by the tests that
put gradbench's callbacks into someone else's training loop, in this process or another
(tests/own_loop_ddp.py, tests/light_install_check.py)."""

from __future__ import annotations

import lightning.pytorch as L
import torch


class Regression(L.LightningModule):
    """A two-layer tanh network on a linear target, SGD (momentum optional)."""

    def __init__(self, lr: float = 0.05, momentum: float = 0.0):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        self.lr, self.momentum = lr, momentum

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.net.parameters(), lr=self.lr, momentum=self.momentum)


def regression_set(n: int = 256, seed: int = 0) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True) * 3)


def regression_data(n: int = 256, batch_size: int = 32, seed: int = 0) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(regression_set(n, seed), batch_size=batch_size)
