"""A gradbench plugin: your own strategy, without touching the package.

Load it from a suite with `plugins: [my_strategies.py]` (resolved relative to the suite
file, then the working directory). Importing this file registers the strategy and its hook.
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from gradbench import RunSpec, grad_hook, strategy


@strategy(family="clipping", slot="per-tensor clipping")
def clip_per_tensor(spec: RunSpec, max_norm: Annotated[float, Field(gt=0)] = 0.1) -> RunSpec:
    """Clip each parameter tensor's gradient norm to max_norm on its own (layer-wise clipping, e.g. You et al., 2017)."""
    return spec.add_grad_hook("clip_per_tensor", max_norm=max_norm)


@grad_hook("clip_per_tensor")
def make_clip_per_tensor(max_norm: float = 0.1):
    """Built fresh for every run; called once per optimizer step, after AMP unscaling, on the
    gradients the optimizer steps with."""

    def hook(module, optimizer) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        norms = torch._foreach_norm(grads)  # one fused reduction, no host sync
        coefs = [(max_norm / (n + 1e-6)).clamp(max=1.0) for n in norms]
        torch._foreach_mul_(grads, coefs)

    return hook
