"""Regularization: weight penalties and dropout.

Which parameters are "weights": tensors with more than one dimension (weight matrices, conv
kernels, recurrent matrices). Biases, normalization gains/shifts, WS gains and ReZero branch
scales (all 1-D or scalars) are never penalized or decayed.

l2 and weight_decay share the slot "weight decay" (both shrink the weights; stacked they
would decay twice). l1 composes with either (elastic net).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from ...core.errors import NotApplicable
from ...core.spec import RunSpec
from ..foreach import scale_
from ..grad_hooks import grad_hook
from ..tasks import TASKS
from .base import NonNegative, strategy


@strategy(family="regularization", slot="weight decay", tune="coeff")
def l2(spec: RunSpec, coeff: NonNegative = 5e-4) -> RunSpec:
    """Coupled L2 penalty: loss + coeff/2 * sum |W|^2 over weights, so the gradient gains coeff*W (Krogh & Hertz, 1992)."""
    return spec.with_loss_terms(l2=coeff)


@strategy(family="regularization", slot="weight decay", tune="wd")
def weight_decay(spec: RunSpec, wd: NonNegative = 5e-4) -> RunSpec:
    """Decoupled weight decay, W <- W (1 - lr wd) before the step, gradient untouched (Loshchilov & Hutter, 2019)."""
    return spec.add_grad_hook("decoupled_weight_decay", wd=wd)


class DecoupledWeightDecay:
    """Right before the optimizer step, multiply every weight (dim > 1) that has a gradient by
    (1 - lr * wd), lr the param group's current (scheduled, stressed) learning rate. The
    gradient is not changed, so Adam's moments never see the decay (AdamW's rule, for any
    optimizer). With plain SGD it equals coupled L2 of the same coefficient; with momentum or
    Adam it does not. A parameter without a gradient (e.g. a step dropped by skip_spikes that
    ran before this hook) is not decayed."""

    def __init__(self, wd: float):
        self.wd = wd

    def __call__(self, module, optimizer) -> None:
        if self.wd:
            shrink_weights(optimizer, lambda group: 1.0 - float(group["lr"]) * self.wd)


def shrink_weights(optimizer, factor) -> None:
    """Multiply, group by group, every weight (dim > 1) that has a gradient by factor(group);
    a factor of None leaves that group alone. The decoupled and independent decays both."""
    with torch.no_grad():
        for group in optimizer.param_groups:
            weights = [p for p in group["params"] if p.grad is not None and p.dim() > 1]
            shrink = factor(group) if weights else None
            if shrink is not None:
                scale_(weights, shrink)


@grad_hook("decoupled_weight_decay")
def _decoupled_weight_decay(wd: float = 5e-4) -> DecoupledWeightDecay:
    return DecoupledWeightDecay(wd)


@strategy(family="regularization", slot="weight decay", tune="wd")
def independent_weight_decay(spec: RunSpec, wd: NonNegative = 1e-4) -> RunSpec:
    """Independent weight decay, W <- W (1 - wd * lr(t)/lr_peak): the schedule shapes it, the lr's size does not (Wortsman et al., 2023)."""
    return spec.add_grad_hook("independent_weight_decay", wd=wd)


class IndependentWeightDecay:
    """Right before the optimizer step, multiply every weight (dim > 1) that has a gradient by
    (1 - wd * lr(t) / lr_peak): lr(t) the param group's current learning rate and lr_peak the
    one its schedule started from (LambdaLR's initial_lr; a run without a schedule has lr(t) =
    lr_peak). So the decay per step is wd at the schedule's peak whatever the learning rate,
    where AdamW's is lr * wd and shrinks with the rate a sweep picks (Wortsman et al., 2023,
    "Small-scale proxies for large-scale Transformer training instabilities", sec. 3.2.2)."""

    def __init__(self, wd: float):
        self.wd = wd

    def __call__(self, module, optimizer) -> None:
        if self.wd:
            shrink_weights(optimizer, self._factor)

    def _factor(self, group: dict) -> float | None:
        peak = float(group.get("initial_lr", group["lr"]))
        return 1.0 - self.wd * float(group["lr"]) / peak if peak > 0 else None


@grad_hook("independent_weight_decay")
def _independent_weight_decay(wd: float = 1e-4) -> IndependentWeightDecay:
    return IndependentWeightDecay(wd)


@strategy(family="regularization", tune="coeff")
def l1(spec: RunSpec, coeff: NonNegative = 1e-5) -> RunSpec:
    """L1 penalty: loss + coeff * sum |W| over weights (Tibshirani, 1996; Ng, 2004)."""
    return spec.with_loss_terms(l1=coeff)


@strategy(family="regularization", applies_to=("mlp", "cnn", "transformer"), slot="dropout")
def dropout(spec: RunSpec, p: Annotated[float, Field(ge=0, lt=1)] = 0.1) -> RunSpec:
    """Dropout with probability p after every hidden activation, active in training only (Srivastava et al., 2014)."""
    return spec.with_model(dropout=p)


@strategy(family="regularization", tune="coeff")
def z_loss(spec: RunSpec, coeff: NonNegative = 1e-4) -> RunSpec:
    """z-loss: loss + coeff * log(Z)^2, Z the softmax normalizer, so the output logits cannot drift (Chowdhery et al., 2022; Wortsman et al., 2023)."""
    task = TASKS.get(spec.task)
    if task.loss != "cross_entropy":
        raise NotApplicable(f"z_loss acts on softmax logits; {task.name} has a {task.loss} loss")
    return spec.with_loss_terms(z_loss=coeff)
