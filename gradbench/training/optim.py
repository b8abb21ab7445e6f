"""Optimizer and learning-rate schedule from the spec's plain-data description."""

from __future__ import annotations

import math

import torch

from ..core.errors import UserError
from .update_rules import Lion, StableAdamW

# name -> (class, the keyword arguments the spec may set besides lr)
OPTIMIZERS = {
    "sgd": (torch.optim.SGD, ("momentum", "nesterov", "weight_decay", "dampening")),
    "adam": (torch.optim.Adam, ("betas", "eps", "weight_decay")),
    "adamw": (torch.optim.AdamW, ("betas", "eps", "weight_decay")),
    "adagrad": (torch.optim.Adagrad, ("eps", "weight_decay", "lr_decay")),
    "adadelta": (torch.optim.Adadelta, ("rho", "eps", "weight_decay")),
    "rmsprop": (torch.optim.RMSprop, ("alpha", "eps", "momentum", "weight_decay")),
    "stable_adamw": (StableAdamW, ("betas", "eps", "weight_decay", "d")),
    "lion": (Lion, ("betas", "weight_decay")),
}


def effective_lr(optimizer: dict, lr_mult: float) -> float:
    """The learning rate a run really uses: the (strategy-adjusted) lr times the stress level."""
    return float(optimizer["lr"]) * float(lr_mult)


def build_optimizer(params, optimizer: dict, lr_mult: float) -> torch.optim.Optimizer:
    name = optimizer.get("name")
    if name not in OPTIMIZERS:
        raise UserError(f"optimizer.name: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    cls, allowed = OPTIMIZERS[name]
    extra = {k: v for k, v in optimizer.items() if k not in ("name", "lr")}
    bad = set(extra) - set(allowed)
    if bad:
        raise UserError(f"optimizer: {name} does not take {', '.join(sorted(bad))}; it takes {', '.join(allowed)}")
    if "betas" in extra:
        extra["betas"] = tuple(extra["betas"])
    # foreach kernels: one fused launch over all parameters instead of a Python loop per tensor
    return cls(params, lr=effective_lr(optimizer, lr_mult), foreach=True, **extra)


def is_constant(schedule: dict) -> bool:
    """No warmup and no decay: the lr stays at its base value (what lr_lambda gives as 1.0 throughout)."""
    return int(schedule.get("warmup_steps", 0)) == 0 and schedule.get("decay", "none") == "none"


def lr_lambda(schedule: dict, max_steps: int):
    """Multiplier of the base lr at optimizer step s: linear warmup, then constant or cosine decay."""
    warmup = int(schedule.get("warmup_steps", 0))
    decay = schedule.get("decay", "none")
    if decay not in ("none", "cosine"):
        raise UserError(f"schedule.decay: {decay!r} is not one of none, cosine")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if decay == "cosine":
            progress = (step - warmup) / max(1, max_steps - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor
