"""The LightningModule: one shared step for train/val/test, optimizer and schedule from the spec."""

from __future__ import annotations

import math

import lightning.pytorch as L
import numpy as np
import torch
import torch.nn.functional as F

from ..catalogue.grad_hooks import build_grad_hooks
from ..catalogue.tasks import Task
from ..core.spec import RunSpec
from .lightning_compat import LeanSetattr, precomputed_signature
from .optim import build_optimizer, is_constant, lr_lambda


def spike_plan(spec: RunSpec) -> tuple[frozenset[int], float]:
    """The optimizer steps that get a corrupted batch (spec.spikes: a share of the steps, drawn
    from the run's seed, the same steps for every arm of a seed) and the loss's scale there.
    A corrupted batch trains on its targets permuted (a batch of wrong labels) with its loss
    times the scale: a gradient spike of about that factor, the stress the adaptive clippers
    and step skippers were designed for (ZClip, AdaGC, SPAM, OLMo's SkipStep)."""
    if not spec.spikes:
        return frozenset(), 1.0
    n = round(spec.spikes["share"] * spec.max_steps)
    rng = np.random.default_rng([spec.seed, SPIKE_STREAM])
    # never the first step: the monitor's blow-up check reads step 0's loss as its reference
    steps = rng.choice(np.arange(1, spec.max_steps), size=min(n, spec.max_steps - 1), replace=False)
    return frozenset(int(s) for s in steps), float(spec.spikes["scale"])


SPIKE_STREAM = 0x5B1CE  # the spike steps' own random stream, apart from the seed's data and weights


class BenchModule(LeanSetattr, L.LightningModule):
    def __init__(self, spec: RunSpec, task: Task, model: torch.nn.Module):
        super().__init__()
        self.spec, self.task, self.model = spec, task, model
        # CPU convolutions run ~1.7x faster in evaluation with channels_last (measured on the
        # reference machine; training is unchanged); every CNN run uses it, so runs stay comparable
        self.channels_last = task.model_family == "cnn"
        if self.channels_last:
            self.model = model.to(memory_format=torch.channels_last)
        self.grad_hooks = build_grad_hooks(spec.grad_hooks)
        self.pre_clip_hooks = [h for h in self.grad_hooks if getattr(h, "pre_clip", False)]
        self.post_clip_hooks = [h for h in self.grad_hooks if not getattr(h, "pre_clip", False)]
        self.last_loss: torch.Tensor | None = None  # read by the StabilityMonitor, no sync
        self.val_curve: list[tuple[int, float]] = []  # (optimizer step, validation metric)
        self.test_metric: float | None = None
        self._sums = None
        self.has_penalty = bool(spec.loss_terms.get("l1") or spec.loss_terms.get("l2"))
        self.z_loss = float(spec.loss_terms.get("z_loss", 0.0))
        self.spike_steps, self.spike_scale = spike_plan(spec)

    # set every step, and neither a parameter, buffer nor submodule (lightning_compat.LeanSetattr)
    _plain_attributes = LeanSetattr._plain_attributes | {"last_loss"}

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """TensorDataModule builds every batch on the training device already; Lightning's
        default would still walk the batch with apply_to_collection each step."""
        if all(t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # --- the shared step ---------------------------------------------------------------
    def forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def _loss(self, out, y):
        if self.task.loss == "cross_entropy":
            if out.dim() == 3:  # a language model: next-token logits at every position
                return F.cross_entropy(out.flatten(0, 1), y.flatten())
            return F.cross_entropy(out, y)
        return F.mse_loss(out, y)

    def _penalty(self) -> torch.Tensor:
        """Coupled L1/L2 terms over weight matrices and kernels (not biases or norm gains)."""
        l1, l2 = self.spec.loss_terms.get("l1", 0.0), self.spec.loss_terms.get("l2", 0.0)
        weights = [p for p in self.model.parameters() if p.dim() > 1]
        total = 0.0
        if l2:
            total = total + 0.5 * l2 * sum(w.pow(2).sum() for w in weights)
        if l1:
            total = total + l1 * sum(w.abs().sum() for w in weights)
        return total

    @precomputed_signature  # Lightning reads it every step: about 1% of an MNIST step
    def training_step(self, batch, batch_idx):
        x, y = batch
        spike = self.spike_steps and self.trainer.global_step in self.spike_steps
        if spike:
            y = y[self._spike_permutation(len(y))]
        out = self(x)
        loss = self._loss(out, y)
        self.last_loss = loss.detach()  # the batch's own loss: the monitor's blow-up check never sees the scale
        if spike:
            loss = loss * self.spike_scale
        if self.z_loss:  # z-loss: coeff * log(Z)^2, Z the softmax's normalizer (PaLM, Chowdhery et al., 2022)
            loss = loss + self.z_loss * torch.logsumexp(out.float(), dim=-1).pow(2).mean()
        # no `loss + 0.0` when there is no penalty: one autograd node fewer per step
        return loss + self._penalty() if self.has_penalty else loss

    def _spike_permutation(self, n: int) -> torch.Tensor:
        """The targets' order on a spike step: drawn from the run's seed and the step with a
        generator of its own, so the data order and dropout draws stay those of the clean run."""
        g = torch.Generator().manual_seed(self.spec.seed * 1_000_003 + self.trainer.global_step)
        return torch.randperm(n, generator=g).to(self.device)

    # --- evaluation: sums on the device, one sync per evaluation -----------------------
    def _eval_step(self, batch):
        x, y = batch
        out = self(x)
        if self.task.metric == "accuracy":
            score = (out.argmax(dim=1) == y).sum()
        elif self.task.metric == "bits_per_byte":  # the cross-entropy in bits, per predicted byte
            score = F.cross_entropy(out.flatten(0, 1).float(), y.flatten(), reduction="sum") / math.log(2)
        else:
            score = (out - y).pow(2).sum() / out.shape[-1]
        n = torch.tensor(y.numel() if self.task.metric == "bits_per_byte" else y.shape[0], device=out.device)
        s = torch.stack([score.to(torch.float64), n.to(torch.float64)])
        self._sums = s if self._sums is None else self._sums + s

    def _eval_result(self) -> float:
        sums = self.all_gather(self._sums).reshape(-1, 2).sum(0) if self.trainer.world_size > 1 else self._sums
        self._sums = None
        return float(sums[0] / sums[1])

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_validation_epoch_end(self):
        value = self._eval_result()
        step = self.trainer.global_step
        if not self.val_curve or self.val_curve[-1][0] != step:
            self.val_curve.append((step, value))

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_test_epoch_end(self):
        self.test_metric = self._eval_result()

    # --- optimization ------------------------------------------------------------------
    def configure_optimizers(self):
        opt = build_optimizer(self.model, self.spec.optimizer, self.spec.lr_mult)
        if is_constant(self.spec.schedule):  # a constant lr needs no scheduler stepping every step
            return {"optimizer": opt}
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(self.spec.schedule, self.spec.max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """The spec's pre-clip hooks (skip_step), Lightning's clipping (clip_norm/clip_value),
        then the other gradient hooks, each group in order. Runs after AMP unscaling and once
        per optimizer step, on the gradients that get stepped. Lightning passes the Trainer's
        gradient_clip_val: without one its clipping is a no-op, reached through a dozen lines
        of argument checks every step, so it is not called."""
        for hook in self.pre_clip_hooks:
            hook(self, optimizer)
        if gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        for hook in self.post_clip_hooks:
            hook(self, optimizer)
