"""gradbench's gradient strategies as Lightning Callbacks, for your own LightningModule and
Trainer: no gradbench suite, no gradbench model.

    from gradbench.callbacks import AGC, ZClip
    trainer = L.Trainer(callbacks=[ZClip(), AGC(clipping=0.01)])

Each callback runs the same gradient hook a gradbench run uses (catalogue/strategies), so the
arithmetic is the same: once per optimizer step, after AMP has unscaled the gradients, on the
gradients the optimizer then steps with (gradient accumulation included). Where it acts
relative to Lightning's own clipping differs, because Lightning calls a Callback's
`on_before_optimizer_step` before `configure_gradient_clipping`:

    backward -> [AMP unscale] -> these callbacks -> Lightning's gradient_clip_val -> optimizer.step

so with `gradient_clip_val` set, the callback sees (and acts on) the unclipped gradients and
Lightning clips what it leaves. Inside a gradbench run the hooks act after Lightning's
clipping instead (BenchModule.configure_gradient_clipping); without `gradient_clip_val` the
two are the same. Callbacks run in the order of the Trainer's list, so a ZClip listed before
an AGC acts first.

AGC leaves the "head" alone (exclude_head): the last submodule, in registration order, that
owns parameters directly, which for most models is the output layer.
"""

from __future__ import annotations

import inspect

import lightning.pytorch as L

from ..catalogue import strategies  # noqa: F401  (registers the gradient hooks)
from ..catalogue.grad_hooks import GRAD_HOOKS


class GradientCallback(L.Callback):
    """One registered gradient hook (`hook`) as a Callback; its parameters are the hook's."""

    hook: str = ""

    def __init__(self, **params):
        factory = GRAD_HOOKS.get(self.hook).factory
        sig = inspect.signature(factory)
        unknown = sorted(set(params) - set(sig.parameters))
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown parameter(s) {unknown}; it takes {list(sig.parameters)}")
        self.params = {**{k: p.default for k, p in sig.parameters.items()}, **params}
        self.transform = None

    def on_fit_start(self, trainer, pl_module) -> None:
        """A fresh transform per fit: the adaptive rules keep running statistics."""
        self.transform = GRAD_HOOKS.get(self.hook).factory(**self.params)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.transform(pl_module, optimizer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"


class AGC(GradientCallback):
    """Adaptive gradient clipping, unit-wise against the weights (Brock et al., 2021):
    AGC(clipping=0.01, eps=1e-3, exclude_head=True)."""

    hook = "agc"


class AutoClip(GradientCallback):
    """Clip the global norm to a percentile of the norms seen so far (Seetharaman et al., 2020):
    AutoClip(percentile=10.0)."""

    hook = "autoclip"


class ZClip(GradientCallback):
    """Clip global-norm outliers by their z-score against an EMA (Kumar et al., 2025):
    ZClip(z_thresh=2.5, alpha=0.97, warmup_steps=25, mode="clip")."""

    hook = "zclip"


class SkipSpikes(GradientCallback):
    """Skip the update on a non-finite or outlier gradient norm (one host sync a step):
    SkipSpikes(z_thresh=4.0, alpha=0.97, warmup_steps=25)."""

    hook = "skip_spikes"


class DecoupledWeightDecay(GradientCallback):
    """Shrink the weight matrices by lr x wd before each step, whatever the optimizer (AdamW's
    rule, Loshchilov & Hutter, 2019): DecoupledWeightDecay(wd=5e-4)."""

    hook = "decoupled_weight_decay"
