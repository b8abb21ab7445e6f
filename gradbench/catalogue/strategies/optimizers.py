"""Optimizers (slot "optimizer": a run has one). Each replaces the task's optimizer and sets a
learning rate that suits it; the stress multiplier lr_mult applies on top as for every arm.

The lr is set relative to the task: an lr scale applied by another strategy (lower_lr, a
plugin) is carried over, so "lower_lr+adam" and "adam+lower_lr" both give Adam at 1e-4.
lr 0 (the SGD family's default) is the task's SGD lr: its own on the SGD tasks, its declared
sgd_lr where its optimizer is adaptive (recall: Adam's 5e-3 would be a rate far too small for SGD).
muon applies where the hidden weights are matrices: torch's Muon takes 2-D tensors only, and
the CNN's are 4-D kernels (all of them would go to its AdamW: AdamW under another name).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...core.spec import RunSpec
from ..tasks import TASKS
from .base import Count, Fraction, NonNegative, Positive, strategy


def _use(spec: RunSpec, name: str, lr: float, **kw) -> RunSpec:
    task = TASKS.get(spec.task)
    current = float(spec.optimizer["lr"])
    if not lr and name == "sgd" and task.optimizer["name"] != "sgd" and task.sgd_lr:
        lr = task.sgd_lr  # the SGD family on an adaptive-optimizer task: the task's SGD rate
    if lr:
        scale = current / float(task.optimizer["lr"])  # 1 unless something scaled it
        current = lr * scale
    return spec.replace(optimizer={"name": name, "lr": current, **kw})


@strategy(family="optimizers", slot="optimizer")
def sgd(spec: RunSpec, lr: NonNegative = 0.0) -> RunSpec:
    """Plain SGD without momentum (Robbins & Monro, 1951); lr 0: the task's SGD lr."""
    return _use(spec, "sgd", lr)


@strategy(family="optimizers", slot="optimizer")
def sgd_momentum(spec: RunSpec, lr: NonNegative = 0.0, momentum: Fraction = 0.9) -> RunSpec:
    """SGD with heavy-ball momentum (Polyak, 1964); lr 0: the task's SGD lr."""
    return _use(spec, "sgd", lr, momentum=momentum)


@strategy(family="optimizers", slot="optimizer")
def nesterov(spec: RunSpec, lr: NonNegative = 0.0, momentum: Fraction = 0.9) -> RunSpec:
    """SGD with Nesterov momentum (Nesterov, 1983; Sutskever et al., 2013); lr 0: the task's SGD lr."""
    return _use(spec, "sgd", lr, momentum=momentum, nesterov=True)


@strategy(family="optimizers", slot="optimizer")
def adam(spec: RunSpec, lr: NonNegative = 1e-3) -> RunSpec:
    """Adam, betas (0.9, 0.999) (Kingma & Ba, 2015)."""
    return _use(spec, "adam", lr)


@strategy(family="optimizers", slot="optimizer")
def adamw(spec: RunSpec, lr: NonNegative = 1e-3, weight_decay: NonNegative = 1e-2) -> RunSpec:
    """AdamW, Adam with decoupled weight decay (Loshchilov & Hutter, 2019); it decays biases too, as torch's AdamW."""
    return _use(spec, "adamw", lr, weight_decay=weight_decay)


@strategy(family="optimizers", slot="optimizer")
def adagrad(spec: RunSpec, lr: NonNegative = 1e-2) -> RunSpec:
    """Adagrad, per-parameter lr from the sum of squared gradients (Duchi et al., 2011)."""
    return _use(spec, "adagrad", lr)


@strategy(family="optimizers", slot="optimizer")
def adadelta(spec: RunSpec, lr: NonNegative = 1.0) -> RunSpec:
    """Adadelta, rho 0.9 (Zeiler, 2012)."""
    return _use(spec, "adadelta", lr)


@strategy(family="optimizers", slot="optimizer")
def rmsprop(spec: RunSpec, lr: NonNegative = 1e-3, alpha: Fraction = 0.99) -> RunSpec:
    """RMSprop, gradient divided by an EMA of its square (Tieleman & Hinton, 2012)."""
    return _use(spec, "rmsprop", lr, alpha=alpha)


@strategy(family="optimizers", slot="optimizer", tune="d")
def stable_adamw(
    spec: RunSpec,
    lr: NonNegative = 1e-3,
    weight_decay: NonNegative = 0.2,
    d: Positive = 1.0,
) -> RunSpec:
    """StableAdamW: AdamW with Adafactor's update clipping per tensor, betas (0.9, 0.99) (Wortsman et al., 2023)."""
    return _use(spec, "stable_adamw", lr, betas=[0.9, 0.99], eps=1e-6, weight_decay=weight_decay, d=d)


@strategy(family="optimizers", slot="optimizer")
def lion(spec: RunSpec, lr: NonNegative = 1e-4, weight_decay: NonNegative = 0.0) -> RunSpec:
    """Lion: the sign of interpolated momentum, betas (0.9, 0.99), lr a tenth of AdamW's (Chen et al., 2023)."""
    return _use(spec, "lion", lr, betas=[0.9, 0.99], weight_decay=weight_decay)


@strategy(family="optimizers", slot="optimizer", tune="d")
def adafactor(spec: RunSpec, lr: NonNegative = 1e-2, d: Annotated[float, Field(ge=1)] = 1.0) -> RunSpec:
    """Adafactor: factored second moments, relative step min(lr, 1/sqrt(t)) x RMS(theta), update clipping d (Shazeer & Stern, 2018; torch.optim.Adafactor)."""
    return _use(spec, "adafactor", lr, d=d)


@strategy(family="optimizers", slot="optimizer")
def lamb(spec: RunSpec, lr: NonNegative = 1e-3, weight_decay: NonNegative = 0.01) -> RunSpec:
    """LAMB: Adam's step times the layer's trust ratio ||theta|| / ||step||, betas (0.9, 0.999), eps 1e-6 (You et al., 2020)."""
    return _use(spec, "lamb", lr, betas=[0.9, 0.999], eps=1e-6, weight_decay=weight_decay)


@strategy(family="optimizers", slot="optimizer")
def lars(
    spec: RunSpec,
    lr: NonNegative = 1.0,
    eta: Positive = 1e-3,
    weight_decay: NonNegative = 5e-4,
) -> RunSpec:
    """LARS: momentum SGD whose per-layer lr is eta ||theta|| / (||g|| + wd ||theta||), momentum 0.9 (You et al., 2017)."""
    return _use(spec, "lars", lr, momentum=0.9, weight_decay=weight_decay, eta=eta)


@strategy(family="optimizers", applies_to=("mlp", "rnn", "transformer"), slot="optimizer")
def muon(spec: RunSpec, lr: NonNegative = 1e-3, weight_decay: NonNegative = 0.1) -> RunSpec:
    """Muon: Newton-Schulz-orthogonalized momentum for hidden 2-D weights, AdamW for the rest, torch.optim.Muon (Jordan et al., 2024; Liu et al., 2025)."""
    return _use(spec, "muon", lr, weight_decay=weight_decay, momentum=0.95)


@strategy(family="optimizers", slot="optimizer")
def adam_atan2(spec: RunSpec, lr: NonNegative = 1e-3) -> RunSpec:
    """Adam-atan2: the step a atan2(m_hat, b sqrt(v_hat)), a 1.27, b 1, betas (0.9, 0.99), no epsilon (Everett et al., 2024)."""
    return _use(spec, "adam_atan2", lr, betas=[0.9, 0.99], a=1.27, b=1.0)


@strategy(family="optimizers", slot="optimizer", tune="theta")
def spam(
    spec: RunSpec,
    lr: NonNegative = 1e-3,
    theta: Positive = 5000.0,
    delta_t: Annotated[int, Field(ge=1)] = 500,
    warmup: Count = 150,
) -> RunSpec:
    """SPAM: Adam with momentum reset every delta_t steps, a cosine lr warm-up after each, entries with g^2 > theta v clipped (Huang et al., 2025)."""
    return _use(spec, "spam", lr, betas=[0.9, 0.999], eps=1e-6, theta=theta, delta_t=delta_t, warmup=warmup)
