"""Optimizers torch does not ship, each one step of its paper's update, written out.

StableAdamW (Wortsman et al., 2023, Algorithm 2; the authors' unfused reference): AdamW whose
step on each tensor is divided by max(1, RMS(g^2 / max(u, eps^2)) / d), Adafactor's update
clipping (Shazeer & Stern, 2018) applied per tensor, with the paper's debiased betas.
Lion (Chen et al., 2023, Program 1): the sign of an interpolation of momentum and gradient.
LAMB (You et al., 2020) and LARS (You et al., 2017): a layer-wise trust ratio ||theta|| / ||step||.
MuonAdamW: torch's Muon for the hidden matrices and torch's AdamW for the rest, as one optimizer.
AdamAtan2 (Everett et al., 2024): Adam's ratio m / sqrt(v) through atan2, no epsilon.
SPAM (Huang et al., 2025): Adam with periodic momentum reset and spike-aware clipping.
"""

from __future__ import annotations

import math

import torch


def _loss_of(closure) -> torch.Tensor | None:
    """The closure's loss, computed with gradients on (the contract of torch's optimizers), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class _PerTensorRule(torch.optim.Optimizer):
    """step() runs the closure, then `update` on each parameter that has a gradient, with its
    state and its group's hyperparameters (foreach is accepted and ignored: one loop)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss_of(closure)
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


class LAMB(_PerTensorRule):
    """Per tensor, at step t (from 1), gradient g (You et al., 2020, Algorithm 2, phi the identity):
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    r = m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + wd theta
    theta <- theta - lr * (||theta|| / ||r||) * r   (the trust ratio is 1 where a norm is 0)"""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, foreach=None):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def update(self, p, state, group):
        t, m, v = _adam_moments(p, state, group)
        beta1, beta2 = group["betas"]
        r = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + group["eps"]) + group["weight_decay"] * p
        p.sub_(group["lr"] * _trust_ratio(p.norm(), r.norm()) * r)


class LARS(_PerTensorRule):
    """Per tensor, gradient g, momentum buffer b (You et al., 2017, Algorithm 1):
    local_lr = eta ||theta|| / (||g|| + wd ||theta||)   (1 where a norm is 0, and for 1-D
                                                        tensors: biases and norm gains)
    b <- momentum b + lr local_lr (g + wd theta);  theta <- theta - b"""

    def __init__(self, params, lr=1.0, momentum=0.9, weight_decay=5e-4, eta=1e-3, foreach=None):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    def update(self, p, state, group):
        g, wd = p.grad, group["weight_decay"]
        if p.dim() > 1:
            w_norm = p.norm()
            local = _trust_ratio(group["eta"] * w_norm, g.norm() + wd * w_norm)
        else:
            local = 1.0
        b = state.setdefault("b", torch.zeros_like(p))
        b.mul_(group["momentum"]).add_(group["lr"] * local * (g + wd * p))
        p.sub_(b)


def _adam_moments(p: torch.Tensor, state: dict, group: dict) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Adam's step count t (from 1) and moments, updated in place from p.grad:
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2."""
    beta1, beta2 = group["betas"]
    if not state:
        state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
    state["step"] += 1
    g, m, v = p.grad, state["m"], state["v"]
    m.mul_(beta1).add_(g, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    return state["step"], m, v


def _trust_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator where both are positive, else 1 (a tensor: no host sync)."""
    ok = (numerator > 0) & (denominator > 0)
    return torch.where(
        ok, numerator / torch.where(ok, denominator, torch.ones_like(denominator)), torch.ones_like(numerator)
    )


class MuonAdamW(torch.optim.Optimizer):
    """Muon for the hidden weight matrices, AdamW for every other parameter, one learning rate
    and weight decay for both (Jordan et al., 2024; Moonshot's "match_rms_adamw" scaling, Liu
    et al., 2025, which lets Muon reuse AdamW's lr): torch's own torch.optim.Muon and AdamW
    inside, their param groups shared, so an lr schedule moves both."""

    def __init__(self, matrices, others, lr=1e-3, weight_decay=0.1, momentum=0.95, foreach=None):
        self.inner = []
        if matrices:
            self.inner.append(
                torch.optim.Muon(
                    matrices, lr=lr, weight_decay=weight_decay, momentum=momentum, adjust_lr_fn="match_rms_adamw"
                )
            )
        if others:
            self.inner.append(torch.optim.AdamW(others, lr=lr, weight_decay=weight_decay, foreach=True))
        super().__init__([*matrices, *others], dict(lr=lr))
        self.param_groups = [group for opt in self.inner for group in opt.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss_of(closure)
        for opt in self.inner:
            opt.step()
        return loss


class AdamAtan2(_PerTensorRule):
    """Per tensor, at step t (from 1), gradient g (Everett et al., 2024; the update of the
    reference code, lucidrains/adam-atan2-pytorch):
        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
        theta <- theta (1 - lr wd) - lr a atan2(m / (1 - b1^t), b sqrt(v / (1 - b2^t)))
    atan2 needs no epsilon, and bounds each coordinate's step by lr a pi / 2."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0, a=1.27, b=1.0, foreach=None):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, a=a, b=b))

    def update(self, p, state, group):
        t, m, v = _adam_moments(p, state, group)
        beta1, beta2 = group["betas"]
        direction = torch.atan2(m / (1 - beta1**t), group["b"] * (v / (1 - beta2**t)).sqrt())
        p.mul_(1 - group["lr"] * group["weight_decay"])
        p.sub_(group["lr"] * group["a"] * direction)


class SPAM(torch.optim.Optimizer):
    """Spike-aware Adam with momentum reset (Huang et al., ICLR 2025; the authors' code,
    TianjinYellow/SPAM-Optimizer). At global step c (from 1), per tensor:
        every delta_t steps (c % delta_t == 0) m and v are reset to 0, and the lr scale
        restarts a cosine warm-up from 0.01 to 1 over `warmup` steps (1 before any reset);
        from step 20, and 20 steps after each reset, an entry with g^2 > theta v (v the
        previous step's) is clipped to sign(g) sqrt(theta v);
        then Adam's moments and bias-corrected step (the per-tensor step count is never
        reset) times the scale, and decoupled decay at lr."""

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-6,
        weight_decay=0.0,
        theta=5000.0,
        delta_t=500,
        warmup=150,
        foreach=None,
    ):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.theta, self.delta_t, self.warmup = theta, delta_t, warmup
        self.total_step = 0  # optimizer steps taken (0-based counter of the reference code)
        self.since_reset = warmup + 1  # the cosine's position; past the warm-up: scale 1

    def scale(self) -> float:
        k, n = self.since_reset, self.warmup
        return 1.0 - (0.99 * (1 + math.cos(math.pi * k / (n + 1))) / 2 if k < n else 0.0)

    @torch.no_grad()
    def step(self, closure=None):
        loss = _loss_of(closure)
        c = self.total_step + 1
        reset = c % self.delta_t == 0
        clip = self.theta > 0 and c >= 20 and c % self.delta_t >= 20
        scale = self.scale()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                m, v, g = state["m"], state["v"], p.grad
                if reset:
                    m.zero_()
                    v.zero_()
                state["step"] += 1
                t = state["step"]
                if clip:
                    bound = (self.theta * v).sqrt()
                    g = torch.where(g.square() > self.theta * v, g.sign() * bound, g)
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t) * scale
                p.sub_(step_size * m / (v.sqrt() + group["eps"]))
                p.mul_(1 - group["lr"] * group["weight_decay"])
        self.total_step += 1
        self.since_reset += 1
        if (self.total_step + 1) % self.delta_t == 0:
            self.since_reset = 0
        return loss
