"""Gradient rules of the 2020s that act on each tensor's gradient on its own: gradient
centralization, AdaGC's per-tensor adaptive clipping, and OLMo 2's step skipping.

Like the clippers (clipping.py) they are gradient hooks: after AMP unscaling, once per
optimizer step, on the gradients the optimizer then steps with, after Lightning's clipping
(skip_step before it: OLMo 2 tests the unclipped norm).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from ...core.spec import RunSpec
from ..foreach import tensor_norms
from ..grad_hooks import clip_global_norm_, drop_gradients, global_norm, grad_hook, grads_of, mean_over_ranks
from .base import Count, Positive, strategy
from .clipping import ADAPTIVE


# --- gradient centralization ---------------------------------------------------------------
@strategy(family="clipping", slot="gradient centralization")
def grad_centralization(spec: RunSpec) -> RunSpec:
    """Gradient centralization: each weight's gradient minus its mean over each output unit's fan-in (Yong et al., 2020)."""
    return spec.add_grad_hook("grad_centralization")


def centralize_(grad: torch.Tensor) -> None:
    """g_i <- g_i - mean(g_i) for every output unit i of a weight matrix or conv kernel (the
    mean over all dimensions but the first); biases and gains (1-D) are left alone."""
    if grad.dim() > 1:
        grad.sub_(grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True))


class GradCentralization:
    def __call__(self, module, optimizer) -> None:
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        centralize_(p.grad)


@grad_hook("grad_centralization")
def _grad_centralization() -> GradCentralization:
    return GradCentralization()


# --- AdaGC ----------------------------------------------------------------------------------
@strategy(family="clipping", slot="per-tensor adaptive clipping", tune="lambda_rel")
def adagc(
    spec: RunSpec,
    lambda_rel: Positive = 1.04,
    beta: Annotated[float, Field(ge=0, lt=1)] = 0.99,
    lambda_abs: Positive = 1.0,
    warmup_steps: Count = 100,
) -> RunSpec:
    """AdaGC: each tensor's gradient clipped to lambda_rel x an EMA of its own clipped norms, global clipping while it warms up (Wang et al., 2025)."""
    return spec.add_grad_hook(
        "adagc", lambda_rel=lambda_rel, beta=beta, lambda_abs=lambda_abs, warmup_steps=warmup_steps
    )


class AdaGC:
    """The rule of the authors' code (lishuai-97/AdaGC, class AdaGC), per tensor i (a
    non-finite norm changes no gamma, and the warm-up's global clip leaves such a step alone):
    the first `warmup_steps` steps: the global norm clipped to lambda_abs, and
        gamma_i = the running minimum of the tensor's (clipped) norm;
    after: where ||g_i|| > lambda_rel gamma_i, g_i is scaled to lambda_rel gamma_i, and
        gamma_i <- beta gamma_i + (1 - beta) min(||g_i||, lambda_rel gamma_i)
        (the EMA of the clipped norms). No host sync."""

    def __init__(self, lambda_rel: float, beta: float, lambda_abs: float, warmup_steps: int, eps: float = 1e-6):
        self.lambda_rel, self.beta, self.lambda_abs, self.warmup, self.eps = (
            lambda_rel,
            beta,
            lambda_abs,
            warmup_steps,
            eps,
        )
        self.steps = 0
        self.gamma: dict[int, torch.Tensor] = {}

    def __call__(self, module, optimizer) -> None:
        self.steps += 1
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        with torch.no_grad():
            grads = [p.grad for p in params]
            if self.steps <= self.warmup:
                total = global_norm(grads)
                # a non-finite step is left alone: read as norm 0, it is not scaled
                clip_global_norm_(grads, torch.where(torch.isfinite(total), total, 0.0), self.lambda_abs)
                for p, n in zip(params, tensor_norms(grads)):
                    known = self.gamma.get(id(p))
                    self._remember(p, n if known is None else torch.fmin(known, n), n, known)  # fmin: NaN = unknown
                return
            for p, n in zip(params, tensor_norms(grads)):
                known = self.gamma.get(id(p))
                gamma = n if known is None else torch.where(torch.isnan(known), n, known)
                limit = self.lambda_rel * gamma
                p.grad.mul_(torch.where(n > limit, limit / (n + self.eps), 1.0).to(p.grad.dtype))
                self._remember(p, self.beta * gamma + (1 - self.beta) * torch.minimum(n, limit), n, gamma)

    def _remember(self, p, value: torch.Tensor, norm: torch.Tensor, old: torch.Tensor | None) -> None:
        """gamma's new value, unless this step's norm is not finite (an AMP overflow step, a
        divergence): then it keeps the old one, so one bad step cannot zero or poison it."""
        if old is None:
            old = torch.full_like(norm, float("nan"))  # no value yet: a later finite norm sets it
        self.gamma[id(p)] = torch.where(torch.isfinite(norm), value, old)


@grad_hook("adagc")
def _adagc(lambda_rel: float = 1.04, beta: float = 0.99, lambda_abs: float = 1.0, warmup_steps: int = 100) -> AdaGC:
    return AdaGC(lambda_rel, beta, lambda_abs, warmup_steps)


# --- SkipStep -------------------------------------------------------------------------------
@strategy(family="clipping", slot=ADAPTIVE, tune="sigma")
def skip_step(spec: RunSpec, window: Annotated[int, Field(ge=2)] = 128, sigma: Positive = 6.0) -> RunSpec:
    """SkipStep: skip the update when the loss or the gradient norm is above mean + sigma std of the last `window` steps (OLMo 2, OLMo et al., 2024; OLMo-core)."""
    return spec.add_grad_hook("skip_step", window=window, sigma=sigma)


class SkipStep:
    """OLMo-core's SkipStepOptimizer rule: each step's loss (the task's, without penalty
    terms, averaged over ranks) and pre-clip global gradient norm join rolling windows of the
    last `window` values; once a window holds max(2, window // 2) values counting this step's,
    as the reference counts, the step is taken only when the loss and the norm are each within
    their window's mean + sigma x std of the values before it (one-sided; torch.std, unbiased,
    as the reference), so a non-finite value is a skip too. Skipping drops every gradient (as
    skip_spikes does), so neither the weights nor the optimizer's state move. Skipped steps'
    finite values stay in the windows, as in the reference; a non-finite one never enters
    them (it would poison every later test). It runs before Lightning's clipping (`pre_clip`),
    so it sees the norm OLMo 2 tests, not the clipped one. One host sync per step."""

    pre_clip = True

    def __init__(self, window: int, sigma: float):
        self.window, self.sigma = window, sigma
        self.losses: list[torch.Tensor] = []
        self.norms: list[torch.Tensor] = []
        self.skipped = 0

    def __call__(self, module, optimizer) -> None:
        grads = grads_of(optimizer)
        if not grads:
            return
        loss = mean_over_ranks(module, getattr(module, "last_loss", None))
        norm = global_norm(grads)
        take = torch.ones((), dtype=torch.bool, device=norm.device)
        for history, value in ((self.norms, norm), (self.losses, loss)):
            if value is None:
                continue
            value = value.detach().reshape(())
            if len(history) + 1 >= max(2, self.window // 2):
                past = torch.stack(history)
                take = take & (value - past.mean() <= self.sigma * past.std())
            else:
                take = take & torch.isfinite(value)
        finite = torch.isfinite(norm) & (torch.isfinite(loss) if loss is not None else True)
        take, finite = torch.stack([take, finite]).tolist()  # the step's one host read
        if finite:
            self.norms = [*self.norms, norm.detach()][-self.window :]
            if loss is not None:
                self.losses = [*self.losses, loss.detach().reshape(())][-self.window :]
        if not take:
            self.skipped += 1
            drop_gradients(optimizer)


@grad_hook("skip_step")
def _skip_step(window: int = 128, sigma: float = 6.0) -> SkipStep:
    return SkipStep(window, sigma)
