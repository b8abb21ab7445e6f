"""Optimizer and learning-rate schedule from the spec's plain-data description."""

from __future__ import annotations

import math

import torch

from ..core.errors import UserError
from .update_rules import LAMB, LARS, SPAM, AdamAtan2, Lion, MuonAdamW, StableAdamW

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
    "adafactor": (torch.optim.Adafactor, ("beta2_decay", "d", "weight_decay")),
    "lamb": (LAMB, ("betas", "eps", "weight_decay")),
    "lars": (LARS, ("momentum", "weight_decay", "eta")),
    "muon": (MuonAdamW, ("weight_decay", "momentum")),
    "adam_atan2": (AdamAtan2, ("betas", "weight_decay", "a", "b")),
    "spam": (SPAM, ("betas", "eps", "weight_decay", "theta", "delta_t", "warmup")),
}


def effective_lr(optimizer: dict, lr_mult: float) -> float:
    """The learning rate a run really uses: the (strategy-adjusted) lr times the stress level."""
    return float(optimizer["lr"]) * float(lr_mult)


def muon_split(model: torch.nn.Module) -> tuple[list, list]:
    """(hidden weight matrices, everything else): Muon orthogonalizes the 2-D weights of the
    hidden layers; the embeddings, the output layer (the model's last nn.Linear), biases,
    gains and kernels of other shapes go to AdamW, as the reference code assigns them."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    aside = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    aside |= {id(p) for m in linears[-1:] for p in m.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    matrices = [p for p in params if p.dim() == 2 and id(p) not in aside]
    return matrices, [p for p in params if p.dim() != 2 or id(p) in aside]


def build_optimizer(model: torch.nn.Module, optimizer: dict, lr_mult: float) -> torch.optim.Optimizer:
    """The spec's optimizer over the model's parameters, at its lr times the stress level."""
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
    lr = effective_lr(optimizer, lr_mult)
    if name == "muon":
        return MuonAdamW(*muon_split(model), lr=lr, **extra)
    # foreach kernels: one fused launch over all parameters instead of a Python loop per tensor
    return cls(model.parameters(), lr=lr, foreach=True, **extra)


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
