"""Weight reparametrizations of the hidden layers: spectral normalization and sigma-Reparam.

Both divide a layer's weight by its spectral norm sigma(W), estimated by one power iteration
per training forward pass from persistent vectors u, v (Miyato et al., 2018). Spectral
normalization uses torch's own parametrization (torch.nn.utils.parametrizations.spectral_norm:
W / sigma(W)). sigma-Reparam (Zhai et al., 2023) rescales by a learnable scalar:
W_hat = gamma / sigma(W) * W, gamma starting at sigma(W) at initialization so that the net
starts as it was built. The output layer (the model's last nn.Linear) and embeddings stay as
they are: the logits need a free scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm


class SigmaReparam(nn.Module):
    """W -> gamma / sigma(W) * W, sigma(W) = u^T W v after one power iteration in training
    (u, v persistent buffers, no gradient through them); a conv kernel is read as a matrix
    of its output channels."""

    def __init__(self, weight: torch.Tensor, eps: float = 1e-12):
        super().__init__()
        matrix = weight.detach().flatten(1)
        self.eps = eps
        g = torch.Generator().manual_seed(0)  # its own draw: the run's random stream stays as it was
        self.register_buffer("u", F.normalize(torch.randn(matrix.shape[0], generator=g), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(torch.randn(matrix.shape[1], generator=g), dim=0, eps=eps))
        for _ in range(100):  # converge the vectors once, so gamma starts at sigma(W_0)
            self._power_iteration(matrix)
        self.gamma = nn.Parameter((self.u @ matrix @ self.v).reshape(()))

    @torch.no_grad()
    def _power_iteration(self, matrix: torch.Tensor) -> None:
        self.v.copy_(F.normalize(matrix.t() @ self.u, dim=0, eps=self.eps))
        self.u.copy_(F.normalize(matrix @ self.v, dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.flatten(1)
        if self.training:
            self._power_iteration(matrix.detach())
        # copies: the next power iteration updates u and v in place, and autograd keeps these
        sigma = self.u.clone() @ matrix @ self.v.clone()
        return weight * (self.gamma / sigma.clamp_min(self.eps))


def reparametrize(net: nn.Module, kind: str) -> nn.Module:
    """Put every hidden Linear/Conv2d weight of `net` under `kind` ("spectral" or "sigma");
    "none" leaves the net as it is."""
    if kind == "none":
        return net
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for layer in layers[:-1] if isinstance(layers[-1], nn.Linear) else layers:
        if kind == "spectral":
            spectral_norm(layer)
        else:
            parametrize.register_parametrization(layer, "weight", SigmaReparam(layer.weight))
    return net
