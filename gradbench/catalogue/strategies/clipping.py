"""Gradient clipping and spike handling.

clip_norm/clip_value are Lightning's own clipping (`gradient_clip_val`); the others are
gradient hooks (gradbench.grad_hooks). Both act in BenchModule.configure_gradient_clipping:
after the AMP scaler has unscaled the gradients, once per optimizer step (so correct under
gradient accumulation), on the gradients the optimizer then steps with. Lightning's clipping
runs first, then the hooks in the order the arm names them ("agc+zclip": agc, then zclip);
skip_step alone runs before Lightning's clipping (it tests the unclipped norm).

Compose rules (slots):
  * clip_norm, clip_value        slot "Lightning gradient clipping" (one gradient_clip_val).
  * autoclip, zclip, skip_spikes slot "adaptive norm rule": each keeps running statistics of
    (and skip_step, gradient_rules.py) the global norm it sees and acts on outliers; stacked,
    the second one's statistics would describe the first one's output, so they do not compose.
  * agc                          slot "unit-wise clipping": per-unit, relative to the weights;
    it composes with any global rule (agc+clip_norm, agc+zclip ...).

Cost: clip_norm, clip_value, agc, autoclip and zclip never read a value back to the host
(the step has no sync on a GPU); skip_spikes must decide on the host whether to drop the
gradients, so it costs one device->host sync per step.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from ...core.spec import RunSpec
from ..grad_hooks import clip_global_norm_, drop_gradients, global_norm, grad_hook, grads_of
from .base import Count, Fraction, NonNegative, Positive, strategy

ADAPTIVE = "adaptive norm rule"


@strategy(family="clipping", slot="Lightning gradient clipping", tune="max_norm")
def clip_norm(spec: RunSpec, max_norm: Positive = 1.0) -> RunSpec:
    """Rescale the global gradient L2 norm to at most max_norm (Pascanu et al., 2013)."""
    return spec.with_trainer(gradient_clip_val=max_norm, gradient_clip_algorithm="norm")


@strategy(family="clipping", slot="Lightning gradient clipping", tune="clip_value")
def clip_value(spec: RunSpec, clip_value: Positive = 0.5) -> RunSpec:
    """Clamp every gradient element to [-clip_value, clip_value] (Mikolov, 2012; Keras clipvalue)."""
    return spec.with_trainer(gradient_clip_val=clip_value, gradient_clip_algorithm="value")


# --- AGC -----------------------------------------------------------------------------------
@strategy(family="clipping", slot="unit-wise clipping", tune="clipping")
def agc(
    spec: RunSpec,
    clipping: Positive = 0.01,
    eps: Positive = 1e-3,
    exclude_head: bool = True,
) -> RunSpec:
    """Adaptive gradient clipping, unit-wise |G_i|/max(|W_i|, eps) <= clipping (Brock et al., 2021, NFNets)."""
    return spec.add_grad_hook("agc", clipping=clipping, eps=eps, exclude_head=exclude_head)


def unitwise_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm per unit: per row of a weight matrix / output channel of a conv kernel (all
    dimensions but the first); a vector (bias, norm gain) or scalar is one unit."""
    if x.dim() <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.dim())), keepdim=True)


def head_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The final layer's parameters: those of the last submodule (in registration order) that
    owns parameters directly; for every gradbench model, the linear head."""
    net = getattr(module, "model", module)
    owners = [m for m in net.modules() if next(m.parameters(recurse=False), None) is not None]
    return list(owners[-1].parameters(recurse=False)) if owners else []


class AGC:
    """Rescale each unit's gradient G_i to clipping * max(|W_i|, eps) where it is above that.
    The final layer is left alone when exclude_head (the paper does not clip the classifier)."""

    def __init__(self, clipping: float, eps: float, exclude_head: bool):
        self.clipping, self.eps, self.exclude_head = clipping, eps, exclude_head
        self._skip: set[int] | None = None

    def __call__(self, module, optimizer) -> None:
        if self._skip is None:
            self._skip = {id(p) for p in head_parameters(module)} if self.exclude_head else set()
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None or id(p) in self._skip:
                        continue
                    max_norm = unitwise_norm(p.detach()).clamp_min(self.eps) * self.clipping
                    g_norm = unitwise_norm(p.grad)
                    scale = torch.where(g_norm > max_norm, max_norm / g_norm.clamp_min(1e-12), 1.0)
                    p.grad.mul_(scale.to(p.grad.dtype))


@grad_hook("agc")
def _agc(clipping: float = 0.01, eps: float = 1e-3, exclude_head: bool = True) -> AGC:
    return AGC(clipping, eps, exclude_head)


# --- AutoClip ------------------------------------------------------------------------------
@strategy(family="clipping", slot=ADAPTIVE, tune="percentile")
def autoclip(spec: RunSpec, percentile: Annotated[float, Field(ge=0, le=100)] = 10.0) -> RunSpec:
    """AutoClip: clip the global norm to the p-th percentile of all norms seen so far (Seetharaman et al., 2020)."""
    return spec.add_grad_hook("autoclip", percentile=percentile)


class AutoClip:
    """Each step: append this step's global norm to the history, then clip the global norm to
    the history's `percentile` (linear interpolation, as numpy.percentile), the current step
    included, as in the paper's code. Non-finite norms are kept out of the history. The
    history lives on the device, so no host sync."""

    def __init__(self, percentile: float):
        if not 0 <= percentile <= 100:
            raise ValueError(f"autoclip: percentile must be in [0, 100], got {percentile}")
        self.q = percentile / 100.0
        self.history: torch.Tensor | None = None
        self.n = 0
        self.threshold: torch.Tensor | None = None  # the last clip value (for tests and inspection)

    def __call__(self, module, optimizer) -> None:
        grads, norm = _grads_and_norm(optimizer)
        if not grads:
            return
        if self.history is not None and self.history.device != norm.device:  # restored from a checkpoint
            self.history = self.history.to(norm.device)
        if self.history is None or self.n == len(self.history):
            grown = torch.full((max(256, 2 * self.n),), float("nan"), device=norm.device)
            if self.history is not None:
                grown[: self.n] = self.history
            self.history = grown
        self.history[self.n] = torch.where(torch.isfinite(norm), norm, float("nan"))
        self.n += 1
        self.threshold = torch.nanquantile(self.history[: self.n], self.q)
        clip_global_norm_(grads, norm, self.threshold)

    def state_dict(self) -> dict:
        return {"history": None if self.history is None else self.history[: self.n].cpu(), "n": self.n}

    def load_state_dict(self, state: dict) -> None:
        """The norms seen before a checkpoint; they move to the gradients' device at the next step."""
        self.n = state["n"]
        self.history = None
        if state["history"] is not None:
            self.history = torch.full((max(256, 2 * self.n),), float("nan"), dtype=state["history"].dtype)
            self.history[: self.n] = state["history"]


def _grads_and_norm(optimizer) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The gradients the optimizer will step with and their global norm (float32, on the
    device); no gradients: ([], None)."""
    grads = grads_of(optimizer)
    return grads, (global_norm(grads).float() if grads else None)


@grad_hook("autoclip")
def _autoclip(percentile: float = 10.0) -> AutoClip:
    return AutoClip(percentile)


# --- ZClip ---------------------------------------------------------------------------------
@strategy(family="clipping", slot=ADAPTIVE, tune="z_thresh")
def zclip(
    spec: RunSpec,
    z_thresh: NonNegative = 2.5,
    alpha: Fraction = 0.97,
    warmup_steps: Count = 25,
    mode: Literal["clip", "adaptive", "mean"] = "clip",
    max_grad_norm: NonNegative = 1.0,
) -> RunSpec:
    """ZClip: clip global-norm outliers by their z-score against an EMA mean and variance, the norm capped at max_grad_norm as in its reference code (Kumar et al., 2025)."""
    return spec.add_grad_hook(
        "zclip", z_thresh=z_thresh, alpha=alpha, warmup_steps=warmup_steps, mode=mode, max_grad_norm=max_grad_norm
    )


class ZClip:
    """ZClip on the global gradient norm g.

    Warm-up: the first `warmup_steps` norms are collected, and the gradients clipped to the
    fixed `max_grad_norm`, as the reference code does (so a run that explodes in its first
    steps is clipped from the first); then mean mu and variance var start as their mean and
    (population) variance. After that, each step:
      z = (g - mu) / (sqrt(var) + 1e-6); if z > z_thresh the global norm is clipped to
        mode "clip":     mu + z_thresh * sigma              (the default here)
        mode "adaptive": mu + z_thresh**2 * sigma / z       (the reference code's "adaptive_scaling")
        mode "mean":     mu
      then the EMA takes the effective (clipped) norm g*: mu <- alpha mu + (1 - alpha) g*,
      var <- alpha var + (1 - alpha) (g* - mu)^2 with the updated mu (as the reference code).
    And, as in the reference code, the global norm is never let above `max_grad_norm` (0:
    no such cap), whether or not the step is an outlier; the EMA sees the z-score level or
    the norm itself, not that cap. Non-finite norms leave the statistics alone. Everything
    stays on the device: no host sync.
    """

    def __init__(
        self,
        z_thresh: float,
        alpha: float,
        warmup_steps: int,
        mode: str = "clip",
        max_grad_norm: float = 1.0,
        eps: float = 1e-6,
    ):
        self.z_thresh, self.mode, self.max_grad_norm = z_thresh, mode, max_grad_norm
        self.stats = _NormEMA(alpha, warmup_steps, eps)
        if max_grad_norm < 0:
            raise ValueError(f"zclip: max_grad_norm must be >= 0 (0: no cap), got {max_grad_norm}")
        # the last clip level: the z-score level on an outlier, else max_grad_norm (inf without a cap)
        self.threshold: torch.Tensor | None = None

    def __call__(self, module, optimizer) -> None:
        grads, norm = _grads_and_norm(optimizer)
        if not grads:
            return
        finite = torch.isfinite(norm)
        cap = self.max_grad_norm if self.max_grad_norm > 0 else float("inf")
        if not self.stats.ready:
            self.stats.warm(norm, finite)
            self.threshold = torch.full_like(norm, cap)
            if self.max_grad_norm > 0:
                clip_global_norm_(grads, norm, self.threshold)
            return
        z, mean, std = self.stats.z(norm)
        spike = z > self.z_thresh
        if self.mode == "clip":
            level = mean + self.z_thresh * std
        elif self.mode == "adaptive":
            level = mean + self.z_thresh**2 * std / z.clamp_min(self.z_thresh)
        else:
            level = mean
        self.threshold = torch.where(spike, level, float("inf")).clamp(max=cap)
        clip_global_norm_(grads, norm, self.threshold)
        self.stats.update(torch.where(spike, level, norm), finite)

    def state_dict(self) -> dict:
        return {"stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.stats.load_state_dict(state["stats"])


class _NormEMA:
    """EMA mean and variance of the global gradient norm (ZClip's statistics, shared by zclip
    and skip_spikes): started as the mean and variance of the finite norms of the first
    `warmup` steps; then mu <- alpha mu + (1 - alpha) g*, var <- alpha var + (1 - alpha)
    (g* - mu)^2 with the updated mu, where g* is the norm the caller lets in. Non-finite
    norms leave the statistics alone. All on the device: no host sync."""

    def __init__(self, alpha: float, warmup: int, eps: float):
        self.alpha, self.warmup, self.eps = alpha, warmup, eps
        self._warm: list[torch.Tensor] = []
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None

    @property
    def ready(self) -> bool:
        return self.mean is not None

    def warm(self, norm: torch.Tensor, finite: torch.Tensor) -> None:
        if self._warm and self._warm[0].device != norm.device:  # restored from a checkpoint
            self._warm = [v.to(norm.device) for v in self._warm]
        self._warm.append(torch.where(finite, norm, float("nan")))
        if len(self._warm) >= max(1, self.warmup):
            self.mean, self.var = _mean_var(self._warm)
            self._warm = []

    def z(self, norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z-score of norm, mu, sigma)."""
        std = self.var.sqrt()
        return (norm - self.mean) / (std + self.eps), self.mean, std

    def update(self, effective: torch.Tensor, finite: torch.Tensor) -> None:
        mean = self.alpha * self.mean + (1 - self.alpha) * effective
        var = self.alpha * self.var + (1 - self.alpha) * (effective - mean) ** 2
        self.mean = torch.where(finite, mean, self.mean)
        self.var = torch.where(finite, var, self.var)

    def state_dict(self) -> dict:
        return {"warm": [v.cpu() for v in self._warm], "mean": _cpu(self.mean), "var": _cpu(self.var)}

    def load_state_dict(self, state: dict) -> None:
        """The statistics at a checkpoint; on the CPU until the next step's arithmetic meets the
        gradients' device (a 0-dim CPU tensor mixes with a device tensor without a copy)."""
        self._warm = list(state["warm"])
        self.mean, self.var = state["mean"], state["var"]


def _cpu(value: torch.Tensor | None) -> torch.Tensor | None:
    return None if value is None else value.cpu()


def _mean_var(values: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance of the finite values (0 and 0 when there are none)."""
    x = torch.stack(values)
    ok = torch.isfinite(x)
    n = ok.sum().clamp_min(1)
    x0 = torch.where(ok, x, 0.0)
    mean = x0.sum() / n
    var = torch.where(ok, (x0 - mean) ** 2, 0.0).sum() / n
    return mean, var


@grad_hook("zclip")
def _zclip(
    z_thresh: float = 2.5, alpha: float = 0.97, warmup_steps: int = 25, mode: str = "clip", max_grad_norm: float = 1.0
) -> ZClip:
    return ZClip(z_thresh, alpha, warmup_steps, mode, max_grad_norm)


# --- skipping spikes -----------------------------------------------------------------------
@strategy(family="clipping", slot=ADAPTIVE, tune="z_thresh")
def skip_spikes(
    spec: RunSpec,
    z_thresh: NonNegative = 4.0,
    alpha: Fraction = 0.97,
    warmup_steps: Count = 3,
) -> RunSpec:
    """Skip the update on a non-finite or z-score-outlier gradient norm (AMP's skipped steps, Micikevicius et al., 2018; PaLM, Chowdhery et al., 2022)."""
    return spec.add_grad_hook("skip_spikes", z_thresh=z_thresh, alpha=alpha, warmup_steps=warmup_steps)


class SkipSpikes:
    """Drop a step whose global norm g is non-finite or has z = (g - mu)/sigma > z_thresh.

    Dropping means every p.grad is set to None: the optimizer then skips those parameters
    entirely, so neither the parameters nor the optimizer state (momentum buffers, Adam's
    moments and step count) change. The lr schedule still advances (it counts optimizer steps).
    mu and var are EMAs (decay alpha) of the norm, started as the mean and variance of the
    finite norms of the first `warmup_steps` steps (no z-test before that; non-finite norms are
    always dropped and never enter the statistics). There is no reference code; the warm-up
    is short by default (3 steps), gradbench's variant, so that a run that explodes within
    its first ten steps meets the z-test before it does. A dropped outlier enters the EMA capped at
    mu + z_thresh*sigma, so a lasting rise of the norm lifts the threshold within a few dozen
    steps instead of freezing training. Deciding costs one host sync per step.
    """

    def __init__(self, z_thresh: float, alpha: float, warmup_steps: int, eps: float = 1e-6):
        self.z_thresh = z_thresh
        self.stats = _NormEMA(alpha, warmup_steps, eps)
        self.skipped = 0

    def __call__(self, module, optimizer) -> None:
        grads, norm = _grads_and_norm(optimizer)
        if not grads:
            return
        finite = torch.isfinite(norm)
        if not self.stats.ready:
            spike = ~finite
            self.stats.warm(norm, finite)
        else:
            z, mean, std = self.stats.z(norm)
            spike = ~finite | (z > self.z_thresh)
            self.stats.update(torch.minimum(norm, mean + self.z_thresh * std), finite)
        if bool(spike):
            self.skipped += 1
            drop_gradients(optimizer)

    def state_dict(self) -> dict:
        return {"stats": self.stats.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.stats.load_state_dict(state["stats"])
        self.skipped = state["skipped"]


@grad_hook("skip_spikes")
def _skip_spikes(z_thresh: float = 4.0, alpha: float = 0.97, warmup_steps: int = 3) -> SkipSpikes:
    return SkipSpikes(z_thresh, alpha, warmup_steps)
