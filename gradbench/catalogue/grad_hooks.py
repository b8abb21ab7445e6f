"""Gradient transforms that act between backward and the optimizer step.

A hook is registered by name; the spec names hooks with parameters (spec.grad_hooks), and
BenchModule.configure_gradient_clipping calls them in order after Lightning's own clipping,
so they see unscaled gradients (AMP) once per optimizer step (gradient accumulation).
A hook is a callable object `hook(module, optimizer)`, built fresh per run, so it may keep
state (a history of norms, an EMA). One with `pre_clip = True` runs before Lightning's
clipping instead (a rule defined on the unclipped norm: skip_step).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..core.registry import Registry
from .foreach import scale_


class _Named:
    def __init__(self, name: str, factory: Callable):
        self.name, self.factory = name, factory


GRAD_HOOKS: Registry[_Named] = Registry("gradient hook")


def grad_hook(name: str):
    """Register a hook factory: `factory(**params) -> callable(module, optimizer)`."""

    def register(factory):
        GRAD_HOOKS.add(name, _Named(name, factory))
        return factory

    return register


def build_grad_hooks(specs) -> list:
    return [GRAD_HOOKS.get(name).factory(**params) for name, params in specs]


def grads_of(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The gradients the optimizer will step with (parameters without a gradient are skipped)."""
    return [grad for group in optimizer.param_groups for p in group["params"] if (grad := p.grad) is not None]


def mean_over_ranks(module, value: torch.Tensor | None) -> torch.Tensor | None:
    """`value` averaged over the ranks of a multi-process run (each rank computed it on its
    own share of the batch), so a decision taken from it is the same on every rank."""
    trainer = getattr(module, "_trainer", None)
    if value is None or trainer is None or trainer.world_size <= 1:
        return value
    return trainer.strategy.reduce(value.detach().clone(), reduce_op="mean")


def clip_global_norm_(grads: list[torch.Tensor], norm: torch.Tensor, max_norm: torch.Tensor | float) -> None:
    """Scale the gradients so their global norm (`norm`, already computed) is at most
    max_norm (clip_grad_norm_'s rule, its 1e-6 included); no host sync."""
    coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    scale_(grads, coef.to(grads[0].dtype))


def drop_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Skip this optimizer step: with every p.grad None, the optimizer leaves the parameters
    and their state (momentum, Adam's moments and step count) as they are."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


def global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm over all gradients (torch's get_total_norm: one fused per-tensor reduction, then
    the norm of the norms; no host sync)."""
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)
