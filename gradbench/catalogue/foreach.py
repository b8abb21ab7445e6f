"""torch's fused per-tensor ops (torch._foreach_*): the only private torch API gradbench calls,
kept here, each with why there is no public call instead.

Gradients and weights come as lists of tensors (one per parameter). A loop over them pays
torch's dispatch per tensor (about 3 us each, 18 tensors on MNIST, every step); the foreach
form is one call. torch's public helpers use exactly these ops inside
(torch.nn.utils.get_total_norm, clip_grads_with_norm_), but they return only the total norm
or act on parameters with a float threshold, so they cannot serve the per-tensor norms and
tensor-valued scaling below. Where a public call does the same thing, gradbench uses it
(grad_hooks.global_norm: get_total_norm; tests/test_lightning_compat.py checks it keeps the
bits).
"""

from __future__ import annotations

import torch


def tensor_norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The L2 norm of each tensor, in one fused call (the monitor's per-layer norms, and the
    per-tensor norms its total is made of)."""
    return torch._foreach_norm(tensors)


def scale_(tensors: list[torch.Tensor], factor: torch.Tensor | float) -> None:
    """Multiply every tensor in place by one factor (a 0-dim tensor stays on the device: no sync)."""
    torch._foreach_mul_(tensors, factor)


def differences(after: list[torch.Tensor], before: list[torch.Tensor]) -> list[torch.Tensor]:
    """after - before, tensor by tensor, in one fused call."""
    return torch._foreach_sub(after, before)
