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
import numpy as np
import torch

from ..catalogue import strategies  # noqa: F401  (registers the gradient hooks)
from ..catalogue.foreach import tensor_norms
from ..catalogue.grad_hooks import GRAD_HOOKS
from . import monitor
from .lightning_compat import batches_that_stepped

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
        self._restored: dict | None = None  # a checkpoint's state loaded before the fit made its transform
        self._fitting = False  # between on_fit_start and teardown

    def on_fit_start(self, trainer, pl_module) -> None:
        """A fresh transform per fit (the adaptive rules keep running statistics), with the
        checkpoint's statistics when the fit resumes from one."""
        _refuse_sharded(trainer, type(self).__name__)
        self.transform = GRAD_HOOKS.get(self.hook).factory(**self.params)
        self._fitting = True
        if self._restored is not None:
            self.transform.load_state_dict(self._restored)
            self._restored = None

    @property
    def state_key(self) -> str:
        # two callbacks of one class with other parameters keep their states apart in a checkpoint
        return self._generate_state_key(**self.params)

    def state_dict(self) -> dict:
        """The rule's running statistics (AutoClip's norm history, ZClip's and SkipSpikes' EMA),
        saved in a checkpoint so that a resumed fit clips and skips as an uninterrupted one."""
        saver = getattr(self.transform, "state_dict", None)
        return saver() if saver is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        # Lightning restores callbacks before on_fit_start (one device, DDP), which makes this
        # fit's transform and loads it; a strategy that restores after setup finds it made
        if state_dict and self._fitting:
            self.transform.load_state_dict(state_dict)
        elif state_dict:
            self._restored = state_dict

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._fitting = False

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
    """gradbench's StabilityMonitor for your own LightningModule. Each training step: the loss,
    the pre-clip and post-clip global gradient norm of the whole model, and the learning rate;
    with several optimizers, each one's norms too, named. Every `layer_every` steps: each
    parameter's gradient norm, update norm and update-to-weight ratio, the spike score so far
    and the share of those steps that were clipped. All go to the Trainer's loggers (CSV,
    TensorBoard, W&B ...) as `stability/...` and `layers/<param>/...`, never as a histogram;
    at the end the run's summary (percentiles, spikes, clip fraction) as `stability_summary/...`.
    A model whose LightningModule or direct submodule has an `attention_logit_max` property
    (as gradbench's transformer) gets its largest attention logit logged each step too; one
    with `output_log_z` (a language model's mean log Z over positions, what z-loss holds down)
    and `layer_output_rms` (each block's output RMS) gets `stability/log_z` and
    `stability/block_rms/<block>`.

    Steps are training steps (batches that stepped, as Lightning's loggers count them), not
    optimizer steps: a manual-optimization module with a generator's and a discriminator's
    optimizer has one row per batch, whose norm is the whole model's, sqrt(g_G^2 + g_D^2),
    each optimizer's read over its own parameters as it stepped with them.

    The pre-clip norm is read in on_before_optimizer_step, so list the monitor before any
    gradient callback (`callbacks=[StabilityMonitor(), ZClip()]`); Lightning's own
    gradient_clip_val clips after every callback. Under manual optimization it is read where
    training_step calls self.clip_gradients(...). The post-clip norm is read after the
    optimizer step, on the gradients it stepped with. The loss is the one training_step
    returned (with gradient accumulation, the last micro-batch's; never AMP-scaled). Under DDP
    the gradients are all-reduced before the monitor reads them, so its norms are the global
    batch's; sharded strategies (FSDP, model parallel) are refused, because each rank holds
    only its shard of the gradients. A run resumed from a checkpoint is monitored from the
    step it resumes at, its spike score and step count carried over in the checkpoint (its
    loss_blowup limit counts from the first loss it sees).

    A run diverges on a non-finite loss, gradient or parameter, or a loss above `loss_blowup`
    x the step-0 loss; `stop_on_divergence` ends training there. Either way one line says so
    on the console (a warning of the `gradbench.monitor` logger). The spike score is
    OLMo-core's rule (monitor.SpikeScore: `spike_score_window` 128 values, `spike_score_sigmas` 6). After
    fit: `diverged_at`, `reason`, `summary()`, `series()`, `optimizer_series()`. Its own time
    is `seconds`. Other settings as in a suite's `monitor:` section (core/settings.py).
    """

    def __init__(
        self,
        stop_on_divergence: bool = True,
        series_dir: str | None = None,
        optimizer_names: list[str] | None = None,
        spike_score_window: int = 128,
        spike_score_sigmas: float = 6.0,
        **settings,
    ):
        super().__init__(max_steps=0, series_dir=series_dir, **settings)
        self.stop_on_divergence = stop_on_divergence
        self.optimizer_names = list(optimizer_names) if optimizer_names else None
        self.spike_score_window, self.spike_score_sigmas = spike_score_window, spike_score_sigmas
        self.spikes = monitor.SpikeScore(spike_score_window, spike_score_sigmas)
        self._restored: dict | None = None  # a checkpoint's state, for the fit that resumes from it
        self._pre_clip: dict[int, torch.Tensor] = {}  # manual optimization: norms read where the module clipped

    def _reset(self) -> None:
        super()._reset()
        self._backward_loss = None
        self._first: int | None = None  # the first training step this fit saw
        self._logged = self._layers_logged = 0
        self._step = self._patched = -1
        self._new_batch = False
        self._next_step: int | None = None  # manual optimization: the next training step's index
        # several optimizers: step -> optimizer -> [[pre, post] of each of its steps in that batch]
        self._parts: dict[int, dict[int, list[list[torch.Tensor]]]] = {}
        self._part_rows: dict[int, dict[int, tuple[float, float]]] = {}  # the same, read and combined
        self._clipped = 0  # clipped steps since the last every-N-steps line

    def on_train_start(self, trainer, pl_module):
        _refuse_sharded(trainer, type(self).__name__)
        self._reset()  # a second fit with this monitor starts from nothing
        self.spikes = monitor.SpikeScore(self.spike_score_window, self.spike_score_sigmas)
        if self._restored is not None:  # Lightning loads a checkpoint's state before this hook
            self.spikes.load_state_dict(self._restored["spike_score"])
            self._next_step = self._restored.get("next_step")
            self._restored = None
        self.max_steps = 2**62  # the Trainer stops the fit; rows are training steps, not optimizer steps
        super().on_train_start(trainer, pl_module)
        self.names = _optimizer_names(trainer.optimizers, self.optimizer_names)
        self._index = {id(opt): k for k, opt in enumerate(trainer.optimizers)}
        self._slot = {id(p): i for i, p in enumerate(self.params)}
        self._manual = not pl_module.automatic_optimization
        self.clipping = True  # any callback or the module may clip: always read the post-step norm
        if self._manual:
            self._watch_manual_clipping(pl_module)
        listed = list(trainer.callbacks)
        if any(isinstance(cb, GradientCallback) for cb in listed[: listed.index(self)]):
            warnings.warn(
                "StabilityMonitor is listed after a gradient callback: its pre-clip norm is then the norm "
                "after that callback acted; list the monitor first",
                UserWarning,
                stacklevel=2,
            )

    def _hook_optimizers(self, trainer) -> list:
        return [opt.register_step_post_hook(self._after_step) for opt in trainer.optimizers]

    def _start_at(self, step: int) -> None:
        """The first step this fit sees (a resumed fit starts at its checkpoint's): the rows
        before it are not this monitor's (_open_row fills them with NaN; none is checked or
        logged)."""
        self._first = self._checked = self._logged = self.steps = step

    def _training_step(self, trainer) -> int:
        """This batch's row. With automatic optimization, Lightning's count of batches that
        stepped. Under manual optimization Lightning counts every batch, stepped or not (a
        module that steps every second batch would leave gaps), so the monitor counts the
        batches in which an optimizer stepped itself, from the checkpoint's count on a resume."""
        if not self._manual:
            return batches_that_stepped(trainer)
        if self._next_step is None:
            self._next_step = 0 if trainer.global_step == 0 else batches_that_stepped(trainer)
        if self._new_batch:
            self._new_batch = False
            self._next_step += 1
        return self._next_step - 1

    def _watch_manual_clipping(self, pl_module) -> None:
        """Under manual optimization the module clips before it calls opt.step(), and Lightning
        runs on_before_optimizer_step inside that step: after the clipping. So the monitor reads
        the pre-clip norms where Lightning's clip_gradients is called (the module's own method,
        wrapped on this instance for the fit), and says once that a clip done another way (a
        direct torch.nn.utils.clip_grad_norm_) is read as the pre-clip norm."""
        original = pl_module.clip_gradients

        def clip_gradients(optimizer, *args, **kwargs):
            raw = getattr(optimizer, "optimizer", optimizer)  # a LightningOptimizer wraps the torch one
            self._pre_clip[id(raw)] = monitor.StabilityMonitor._norms(self, raw)
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
        # the pre-clip read: the norms taken where the module clipped this step, if it did
        # (manual optimization); the post-step read after it is fresh
        return self._pre_clip.pop(id(optimizer), None) or super()._norms(optimizer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._new_batch = True

    @monitor._clocked
    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        step = self._training_step(trainer)
        if self._first is None:
            self._start_at(step)
        norms, total = self._norms(optimizer)
        if self._pending and self._step == step:  # another optimizer step in this training step
            row = self._pending[-1]
            row[monitor.PRE] = torch.linalg.vector_norm(torch.stack([row[monitor.PRE], total]))
        else:
            self._open_row(trainer, pl_module, optimizer, step, total)
        if len(self.names) > 1:
            self._parts.setdefault(step, {}).setdefault(self._index[id(optimizer)], []).append([total, total])
        if step % self.cfg["layer_every"] == 0:
            self._layer_grads(step, optimizer)

    def _layer_grads(self, step: int, optimizer) -> None:
        """Snapshot the parameters at the step's first optimizer, and put each optimizer's
        per-parameter gradient norms in their slots (a parameter without a gradient: NaN).
        Read where this hook runs: under manual optimization, after the module's own clip."""
        if self._snapshot is None or self._snapshot[0] != step:
            nan = torch.full((len(self.params),), math.nan, device=self._nan.device)
            self._snapshot = (step, [p.detach().clone() for p in self.params], nan)
        held = [(self._slot[id(p)], p.grad) for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if held:
            slots = torch.tensor([i for i, _ in held], device=self._nan.device)
            norms = torch.stack([n.float() for n in tensor_norms([grad for _, grad in held])])
            self._snapshot[2][slots] = norms

    @monitor._clocked
    def _after_step(self, optimizer, args, kwargs):
        if not self._pending:
            return
        post = monitor.StabilityMonitor._norms(self, optimizer)[1]
        parts = self._parts.get(self._step)
        if parts is not None:  # each optimizer step's post-clip norm, then the row's over all of them
            parts[self._index[id(optimizer)]][-1][1] = post
            post = torch.linalg.vector_norm(torch.stack([pair[1] for steps in parts.values() for pair in steps]))
        elif self.steps == self._step + 1:  # the optimizer stepped before in this training step
            post = torch.linalg.vector_norm(torch.stack([self._pending[-1][monitor.POST], post]))
        self._pending[-1][monitor.POST] = post
        self.steps = self._step + 1

    def on_before_backward(self, trainer, pl_module, loss):
        self._backward_loss = loss.detach()

    def _loss(self, pl_module):
        return self._backward_loss if self._backward_loss is not None else self._nan

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._pending and self._step != self._patched:  # this batch opened a row
            self._patched = self._step
            if self.steps <= self._step:  # the optimizer did not step (fp16 AMP's scaler found inf): not checked
                self._skipped.add(self._step)
                self._pending[-1][monitor.POST] = self._nan
                self.steps = self._step + 1
            # The step's loss as training_step returned it: what Lightning passes here is that
            # loss divided by accumulate_grad_batches and never AMP-scaled (the loss
            # on_before_backward sees is scaled by fp16 AMP's factor); the backward one stays
            # for manual optimization.
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if isinstance(loss, torch.Tensor):
                loss = loss.detach() * trainer.accumulate_grad_batches
                if self._world_size > 1:  # each rank's loss is its share of the batch's: the mean over ranks
                    loss = trainer.strategy.reduce(loss, reduce_op="mean")
                self._pending[-1][monitor.LOSS] = loss
        if self._snapshot is not None and self.steps > self._snapshot[0]:
            self._close_snapshot()  # after all of the step's optimizers stepped
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
        """The run's summary statistics over the steps this monitor saw, its spike score over
        the steps read so far (the checkpoint's steps included after a resume), the steps the
        optimizer skipped, and with several optimizers each one's largest pre-clip norm."""
        first = self._first or 0
        attention = self.attention_logits()
        out = monitor.summarize(
            self.series()[first:],
            clipping=self.clipping,
            diverged_at=self.diverged_at,
            cfg=self.cfg,
            attention=None if attention is None else attention[first:],
            told={name: values[first:] for name in self._tells if (values := self.told(name)) is not None},
            spike_score=self.spikes.score,
        )
        out["skipped_steps"] = len(self._skipped)
        for name, values in self.optimizer_series().items():
            finite = values[first:, 0][np.isfinite(values[first:, 0])]
            out[f"grad_norm_max/{name}"] = float(finite.max()) if len(finite) else None
        return out

    def optimizer_series(self) -> dict[str, np.ndarray]:
        """With several optimizers: per optimizer name, a (steps x [pre, post]) array of its
        own norms (an optimizer stepped n times in a batch: the root of the sum of its n squared
        norms; NaN where it did not step); with one, empty (the series is its)."""
        if len(getattr(self, "names", ())) < 2:
            return {}
        self._read_parts(range(min(self.steps, len(self._rows))))  # the steps read, whole: not an open one
        out = {name: np.full((self.steps, 2), np.nan) for name in self.names}
        for step, parts in self._part_rows.items():
            for k, pair in parts.items():
                if step < self.steps:
                    out[self.names[k]][step] = pair
        return out

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so that a resumed fit's spike score and step count go on."""
        return {"spike_score": self.spikes.state_dict(), "next_step": self._next_step}

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = state_dict

    def _log(self, trainer) -> None:
        """The steps read (by the divergence check, every sync_every steps) since the last call:
        the spike score takes each, and with a Trainer that has loggers, one log line each;
        every `layer_every` steps the spike score, the share of those steps clipped and the
        per-layer norms. The values are on the host already, the per-optimizer norms read in one go."""
        rows = self._rows[self._logged : min(self.steps, len(self._rows))]
        if not rows:
            return
        start = self._logged
        loggers = trainer.loggers if trainer is not None else []
        attention = (  # one read for the rows, not one per row
            torch.stack(self._attn[start : start + len(rows)]).float().tolist()
            if self._attn_of is not None and loggers
            else None
        )
        told = {  # what a language model tells, each read in one go
            name: values[start : start + len(rows)].tolist()
            for name in self._tells
            if loggers and (values := self.told(name)) is not None
        }
        self._read_parts(range(start, start + len(rows)))
        every = self.cfg["layer_every"]
        for i, (loss, pre, post) in enumerate(rows, start=start):
            self.spikes.update(loss, pre)
            self._clipped += post < pre * (1 - 1e-6)
            metrics = {"stability/loss": loss, "stability/grad_norm": pre, "stability/grad_norm_clipped": post}
            metrics["stability/lr"] = self._lrs[i]
            if attention is not None:
                metrics["stability/attn_logit_max"] = attention[i - start]
            if "log_z" in told:
                metrics["stability/log_z"] = told["log_z"][i - start]
            for b, value in enumerate(told["block_rms"][i - start] if "block_rms" in told else ()):
                metrics[f"stability/block_rms/{b}"] = value
            for k, (part_pre, part_post) in self._part_rows.get(i, {}).items():
                metrics[f"stability/grad_norm/{self.names[k]}"] = part_pre
                metrics[f"stability/grad_norm_clipped/{self.names[k]}"] = part_post
            if (i + 1) % every == 0:
                metrics["stability/spike_score"] = self.spikes.score
                metrics["stability/clip_rate"] = self._clipped / every
                self._clipped = 0
            for logger in loggers:
                logger.log_metrics(metrics, step=i)
        self._logged += len(rows)
        for step, norms, ratio, _, update in self._layer_rows[self._layers_logged :] if loggers else ():
            layers = {}
            for name, g, r, u in zip(self.param_names, norms.tolist(), ratio.tolist(), update.tolist()):
                layers[f"layers/{name}/grad_norm"] = g
                layers[f"layers/{name}/update_norm"] = u
                layers[f"layers/{name}/update_ratio"] = r
            for logger in loggers:
                logger.log_metrics(layers, step=step)
        if loggers:
            self._layers_logged = len(self._layer_rows)

    def _read_parts(self, steps) -> None:
        """Each optimizer's norms of these steps, read in one copy and combined over its steps
        in the batch; the tensors are let go."""
        keyed = [(step, k, pairs) for step in steps for k, pairs in self._parts.pop(step, {}).items()]
        if not keyed:
            return
        values = torch.stack(
            [
                torch.stack([v.float() for pair in pairs for v in pair]).view(-1, 2).pow(2).sum(0).sqrt()
                for _, _, pairs in keyed
            ]
        ).tolist()
        for (step, k, _), (pre, post) in zip(keyed, values):
            self._part_rows.setdefault(step, {})[k] = (pre, post)


def _optimizer_names(optimizers, given: list[str] | None) -> list[str]:
    """Each optimizer's name in the logs: the given ones, else its class's (numbered when two
    share a class)."""
    if given is not None:
        if len(given) != len(optimizers):
            raise ValueError(
                f"StabilityMonitor: optimizer_names has {len(given)} names for {len(optimizers)} optimizers"
            )
        return list(given)
    names = [type(opt).__name__.lower() for opt in optimizers]
    return names if len(set(names)) == len(names) else [f"{n}{k}" for k, n in enumerate(names)]


def _refuse_sharded(trainer, who: str) -> None:
    """Under FSDP or model parallelism each rank holds a shard of the gradients, so a norm read
    on one rank is that shard's, not the model's: refuse rather than log and clip on it."""
    name = type(trainer.strategy).__name__
    if "FSDP" in name or "ModelParallel" in name or "DeepSpeed" in name:
        raise RuntimeError(
            f"{who}: the {name} strategy shards the gradients, so a norm read on one rank is not the "
            "model's; gradbench's callbacks support one device and DDP"
        )
