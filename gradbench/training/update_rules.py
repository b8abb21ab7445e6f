"""Optimizers torch does not ship, each one step of its paper's update, written out.

StableAdamW (Wortsman et al., 2023, Algorithm 2; the authors' unfused reference): AdamW whose
step on each tensor is divided by max(1, RMS(g^2 / max(u, eps^2)) / d), Adafactor's update
clipping (Shazeer & Stern, 2018) applied per tensor, with the paper's debiased betas.
Lion (Chen et al., 2023, Program 1): the sign of an interpolation of momentum and gradient.
"""

from __future__ import annotations

import torch


class _PerTensorRule(torch.optim.Optimizer):
    """step() runs the closure, then `update` on each parameter that has a gradient, with its
    state and its group's hyperparameters (foreach is accepted and ignored: one loop)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, self.state[p], group)
        return loss

    def update(self, p: torch.Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError


class StableAdamW(_PerTensorRule):
    """Per tensor, at step t (from 1), gradient g:
        b1 = beta1 (1 - beta1^(t-1)) / (1 - beta1^t), b2 likewise (the debiased betas)
        v <- b1 v + (1 - b1) g;  u <- b2 u + (1 - b2) g^2
        rms = sqrt(mean(g^2 / max(u, eps^2)))
        theta <- theta (1 - lr wd) - lr / max(1, rms / d) * v / (sqrt(u) + eps)
    (the weight decay at the full lr, as the reference code)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.2, d=1.0, foreach=None):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, d=d))

    def update(self, p, state, group):
        beta1, beta2 = group["betas"]
        lr, eps, wd, d = group["lr"], group["eps"], group["weight_decay"], group["d"]
        if not state:
            state.update(step=0, v=torch.zeros_like(p), u=torch.zeros_like(p))
        state["step"] += 1
        t, g, v, u = state["step"], p.grad, state["v"], state["u"]
        b1 = beta1 * (1 - beta1 ** (t - 1)) / (1 - beta1**t)
        b2 = beta2 * (1 - beta2 ** (t - 1)) / (1 - beta2**t)
        v.mul_(b1).add_(g, alpha=1 - b1)
        u.mul_(b2).addcmul_(g, g, value=1 - b2)
        rms = (g.pow(2) / u.clamp_min(eps**2)).mean().sqrt()
        scale = lr / torch.clamp(rms / d, min=1.0)  # a tensor: no host sync
        p.mul_(1 - lr * wd)
        p.sub_(scale * v / (u.sqrt() + eps))


class Lion(_PerTensorRule):
    """Per parameter, gradient g, momentum m:
    theta <- theta - lr (sign(beta1 m + (1 - beta1) g) + wd theta)
    m <- beta2 m + (1 - beta2) g"""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, foreach=None):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay))

    def update(self, p, state, group):
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        m = state.setdefault("m", torch.zeros_like(p))
        direction = (beta1 * m + (1 - beta1) * p.grad).sign_()
        p.sub_(lr * (direction + wd * p))
        m.mul_(beta2).add_(p.grad, alpha=1 - beta2)
