"""gradbench's gradient strategies and its StabilityMonitor as Lightning Callbacks, for your
own LightningModule and Trainer: no gradbench suite, no gradbench model.

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
import logging
import math
import warnings

import lightning.pytorch as L
import torch

from ..catalogue import strategies  # noqa: F401  (registers the gradient hooks)
from ..catalogue.grad_hooks import GRAD_HOOKS
from . import monitor

LOG = logging.getLogger("gradbench.monitor")  # no handler of its own: Python prints a warning on stderr


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
    ZClip(z_thresh=2.5, alpha=0.97, warmup_steps=25, mode="clip", max_grad_norm=1.0); the
    reference code's fixed cap, 0 for none."""

    hook = "zclip"


class SkipSpikes(GradientCallback):
    """Skip the update on a non-finite or outlier gradient norm (one host sync a step):
    SkipSpikes(z_thresh=4.0, alpha=0.97, warmup_steps=3)."""

    hook = "skip_spikes"


class DecoupledWeightDecay(GradientCallback):
    """Shrink the weight matrices by lr x wd before each step, whatever the optimizer (AdamW's
    rule, Loshchilov & Hutter, 2019): DecoupledWeightDecay(wd=5e-4)."""

    hook = "decoupled_weight_decay"


class StabilityMonitor(monitor.StabilityMonitor):
    """gradbench's StabilityMonitor for your own LightningModule: each optimizer step's loss,
    pre-clip and post-clip global gradient norm and learning rate, and every `layer_every`
    steps each parameter's gradient norm and update-to-weight ratio, logged to the Trainer's
    loggers (CSV, TensorBoard, W&B ...) as `stability/...` and `layers/<param>/...`; at the end
    the run's summary (percentiles, spikes, clip fraction) as `stability_summary/...`. A model
    whose LightningModule or direct submodule has an `attention_logit_max` property (as
    gradbench's transformer) gets its largest attention logit logged each step too
    (`stability/attn_logit_max`).

    The pre-clip norm is read in on_before_optimizer_step, so list the monitor before any
    gradient callback (`callbacks=[StabilityMonitor(), ZClip()]`); Lightning's own
    gradient_clip_val clips after every callback. The post-clip norm is read after the
    optimizer step, on the gradients it stepped with. The loss is the one training_step
    returned (with gradient accumulation, the last micro-batch's; never AMP-scaled). A run
    resumed from a checkpoint is monitored from the step it resumes at. A run diverges on a non-finite loss, gradient or parameter, or a
    loss above `loss_blowup` x the step-0 loss; `stop_on_divergence` ends training there. Either
    way one line says so on the console (a warning of the `gradbench.monitor` logger). After fit: `diverged_at`, `reason`, `summary()`, `series()`. Its own time is `seconds`.
    Settings as in a suite's `monitor:` section (core/settings.py: MonitorSettings).
    """

    def __init__(self, stop_on_divergence: bool = True, series_dir: str | None = None, **settings):
        super().__init__(max_steps=0, series_dir=series_dir, **settings)
        self.stop_on_divergence = stop_on_divergence
        self._backward_loss = None
        self._first = self._logged = self._layers_logged = 0
        self._patched = -1
        self._pre_clip = None  # manual optimization: the norms read where the module clipped, until used

    def on_train_start(self, trainer, pl_module):
        self.max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else 2**62
        super().on_train_start(trainer, pl_module)
        # a fit resumed from a checkpoint starts at its global step: the steps before it are
        # not this monitor's (no rows are checked or logged for them, their lr is NaN)
        self._first = self._checked = self._logged = self.steps = trainer.global_step
        self._lrs = [math.nan] * self._first
        if self._attn_of is not None:
            self._attn = [self._nan] * self._first
        self.clipping = True  # any callback or the module may clip: always read the post-step norm
        if not pl_module.automatic_optimization:
            self._watch_manual_clipping(pl_module)
        listed = list(trainer.callbacks)
        if any(isinstance(cb, GradientCallback) for cb in listed[: listed.index(self)]):
            warnings.warn(
                "StabilityMonitor is listed after a gradient callback: its pre-clip norm is then the norm "
                "after that callback acted; list the monitor first",
                UserWarning,
                stacklevel=2,
            )

    def _watch_manual_clipping(self, pl_module) -> None:
        """Under manual optimization the module clips before it calls opt.step(), and Lightning
        runs on_before_optimizer_step inside that step: after the clipping. So the monitor reads
        the pre-clip norms where Lightning's clip_gradients is called (the module's own method,
        wrapped on this instance for the fit), and says once that a clip done another way (a
        direct torch.nn.utils.clip_grad_norm_) is read as the pre-clip norm."""
        original = pl_module.clip_gradients

        def clip_gradients(optimizer, *args, **kwargs):
            self._pre_clip = monitor.StabilityMonitor._norms(self, optimizer)
            return original(optimizer, *args, **kwargs)

        pl_module.clip_gradients = clip_gradients
        self._unwrap = lambda: pl_module.__dict__.pop("clip_gradients", None)
        warnings.warn(
            "StabilityMonitor under manual optimization: the pre-clip norm is read where your "
            "training_step calls self.clip_gradients(...); gradients clipped another way "
            "(torch.nn.utils.clip_grad_norm_ directly) are read as if unclipped",
            UserWarning,
            stacklevel=2,
        )

    def _norms(self, optimizer):
        # the pre-clip read in on_before_optimizer_step: the norms taken where the module clipped
        # this step, if it did (manual optimization); the post-step read after it is fresh
        if self._pre_clip is not None:
            norms, self._pre_clip = self._pre_clip, None
            return norms
        return super()._norms(optimizer)

    def on_before_backward(self, trainer, pl_module, loss):
        self._backward_loss = loss.detach()

    def _loss(self, pl_module):
        return self._backward_loss if self._backward_loss is not None else self._nan

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # The step's loss as training_step returned it: what Lightning passes here is that loss
        # divided by accumulate_grad_batches and never AMP-scaled (the loss on_before_backward
        # sees is scaled by fp16 AMP's factor); the backward one stays for manual optimization.
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and self._pending and self.steps - 1 != self._patched:
            self._pending[-1][monitor.LOSS] = loss.detach() * trainer.accumulate_grad_batches
            self._patched = self.steps - 1
        stop, known = trainer.should_stop, self.diverged_at is not None
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not self.stop_on_divergence:
            trainer.should_stop = stop
        if self.diverged_at is not None and not known and trainer.is_global_zero:
            # one line on the console, through logging so that a user can silence it
            what = "training stops here" if self.stop_on_divergence else "training goes on (stop_on_divergence=False)"
            LOG.warning(f"gradbench StabilityMonitor: the run diverged ({self.reason}); {what}")
        self._log(trainer)

    def on_train_end(self, trainer, pl_module):
        getattr(self, "_unwrap", lambda: None)()
        super().on_train_end(trainer, pl_module)
        self._log(trainer)
        summary = {f"stability_summary/{k}": v for k, v in self.summary().items() if isinstance(v, (int, float))}
        summary.pop("stability_summary/diverged_at_step", None)
        summary["stability_summary/diverged"] = float(self.diverged_at is not None)
        for logger in trainer.loggers:
            logger.log_metrics({k: v for k, v in summary.items() if v is not None}, step=self.steps)

    def summary(self) -> dict:
        """The run's summary statistics over the steps this monitor saw."""
        attention = self.attention_logits()
        return monitor.summarize(
            self.series()[self._first :],
            clipping=self.clipping,
            diverged_at=self.diverged_at,
            cfg=self.cfg,
            attention=None if attention is None else attention[self._first :],
        )

    def _log(self, trainer) -> None:
        """The steps read since the last call, one log line each (values already on the host)."""
        if not trainer.loggers:
            return
        rows = self._rows[self._logged : self.steps]
        attention = (  # one read for the rows, not one per row
            torch.stack(self._attn[self._logged : self.steps]).float().tolist()
            if self._attn_of is not None and rows
            else None
        )
        for i, (loss, pre, post) in enumerate(rows, start=self._logged):
            metrics = {"stability/loss": loss, "stability/grad_norm": pre, "stability/grad_norm_clipped": post}
            metrics["stability/lr"] = self._lrs[i]
            if attention is not None:
                metrics["stability/attn_logit_max"] = attention[i - self._logged]
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=i)
        self._logged += len(rows)
        for step, norms, ratio, _ in self._layer_rows[self._layers_logged :]:
            layers = {}
            for name, g, r in zip(self.param_names, norms.tolist(), ratio.tolist()):
                layers[f"layers/{name}/grad_norm"] = g
                layers[f"layers/{name}/update_ratio"] = r
            for logger in trainer.loggers:
                logger.log_metrics(layers, step=step)
        self._layers_logged = len(self._layer_rows)
