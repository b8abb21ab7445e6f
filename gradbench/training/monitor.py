"""StabilityMonitor: per-step gradient statistics, divergence detection, and the summary.

Where it hooks (Lightning 2.x, checked in precision.py / amp.py):
  backward -> [AMP: scaler.unscale_] -> Callback.on_before_optimizer_step   <- pre-clip norm
           -> LightningModule.configure_gradient_clipping (clipping, grad hooks)
           -> optimizer.step() -> optimizer step *post*-hook                 <- post-clip norm
The step post-hook fires once per real optimizer step (not for micro-batches of gradient
accumulation, not when the AMP scaler skips an inf step), and p.grad still holds the
gradients that were stepped with. (A step *pre*-hook would fire too early: Lightning passes
its closure, forward and backward included, into optimizer.step.)

Cost: per step, one fused per-tensor norm (catalogue/foreach.py); the step's loss and norms
stay on the model's device as 0-dim tensors, so the step has no host sync, and the divergence
check reads all those not yet read every `sync_every` steps: on a GPU every 10 steps, in one
stacked copy; on CPU every step, value by value (two reads without clipping), since a CPU
read is no sync. No per-step write into a buffer: measured inside a
step, a small tensor op costs several times what it does alone (most likely: the backward
pass has just pushed the interpreter's working set out of the caches), so the monitor does
as few as it can.
Per-layer gradient norms and update-to-weight ratios are taken every `layer_every` steps.

Divergence (the run stops at once and is recorded as "diverged" at that step): a non-finite
loss or gradient norm, non-finite parameters (checked every `layer_every` steps and at the
end), or a loss above `loss_blowup` times the loss at step 0.
"""

from __future__ import annotations

import csv
import functools
import math
import time
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch

from ..catalogue.foreach import differences, tensor_norms
from ..catalogue.grad_hooks import grads_of
from ..core.settings import MONITOR_DEFAULTS

LOSS, PRE, POST = 0, 1, 2


def _clocked(hook):
    """Add the hook's wall time to self.seconds: what the monitor itself costs a run, which
    every record keeps (timings.monitor_s)."""

    @functools.wraps(hook)
    def clocked(self, *args):
        start = time.perf_counter()
        try:
            return hook(self, *args)
        finally:
            self.seconds += time.perf_counter() - start

    return clocked


class StabilityMonitor(L.Callback):
    def __init__(self, max_steps: int, series_dir: str | Path | None = None, **settings):
        unknown = set(settings) - set(MONITOR_DEFAULTS)
        if unknown:
            raise ValueError(f"monitor: unknown settings {sorted(unknown)}")
        self.cfg = {**MONITOR_DEFAULTS, **settings}
        self.cfg.pop("enabled")
        self.max_steps = max_steps
        self.series_dir = Path(series_dir) if series_dir else None
        self._hooks: list = []
        self._reset()

    def _reset(self) -> None:
        """Nothing recorded yet (a monitor, or a fit's, from the start)."""
        self.diverged_at: int | None = None
        self.reason: str | None = None
        self.steps = 0  # optimizer steps recorded
        self._checked = 0  # steps whose loss and norm were read by _check
        self._layers_checked = 0  # layer rows whose parameter check was read by _check
        self._loss_limit: float | None = None  # loss_blowup x the step-0 loss, once _check has read it
        self._lrs: list[float] = []
        self._pending: list[list[torch.Tensor]] = []  # [loss, pre, post] of steps not yet read
        self._attn: list[torch.Tensor] = []  # the model's largest attention logit per step, if it tells
        self._rows: list[tuple[float, float, float]] = []  # the same, read (float32 values)
        # (step, grad norms, update/weight ratios, parameters finite, update norms), every layer_every steps
        self._layer_rows: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._snapshot = None
        self._skipped: set[int] = set()  # steps the optimizer did not take (AMP's inf steps): not checked
        self._tells: dict[str, torch.nn.Module] = {}  # TELLTALES the model has, and what it told each step
        self._told: dict[str, list] = {}
        self.seconds = 0.0  # wall time spent in the monitor's hooks (_clocked)

    # --- set-up ------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        dev = pl_module.device
        self.param_names = [n for n, p in pl_module.named_parameters() if p.requires_grad]
        self.params = [p for p in pl_module.parameters() if p.requires_grad]
        self.clipping = trainer.gradient_clip_val is not None or bool(getattr(pl_module, "grad_hooks", ()))
        # read once: inside a step, the first tensor attribute touched costs 10-15 us (its code has
        # been pushed out of the caches by backward), a .device as much as anything else
        self._on_cpu = dev.type == "cpu"
        self.sync_every = self.cfg["sync_every"] or (1 if self._on_cpu else 10)
        self._world_size = trainer.world_size
        self._hooks = self._hook_optimizers(trainer)
        self._nan = torch.tensor(float("nan"), device=dev)
        # a model that tells its largest attention logit (training/transformer.py; a user's own
        # model with the same property): recorded every step (under gradient accumulation, the
        # step's last micro-batch), the growth attention instability shows
        self._attn_of = attention_source(pl_module)
        # what a language model tells besides (training/transformer.py): its output logits' mean
        # log Z (what z-loss holds down) and each block's output RMS, recorded every step
        self._tells = {name: src for prop, name in TELLTALES if (src := property_source(pl_module, prop)) is not None}
        self._told: dict[str, list] = {name: [] for name in self._tells}

    @_clocked
    def on_train_end(self, trainer, pl_module):
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._check(final=True)
        if self.diverged_at is None and not bool(_finite_flag(self.params)):
            self._diverge(self.steps - 1, "non-finite parameters")

    # --- per step ----------------------------------------------------------------------
    @_clocked
    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        step = trainer.global_step
        if step >= self.max_steps:
            return
        norms, total = self._norms(optimizer)
        self._open_row(trainer, pl_module, optimizer, step, total)
        if step % self.cfg["layer_every"] == 0:
            self._snapshot = (step, [p.detach().clone() for p in self.params], norms.detach().clone())

    def _hook_optimizers(self, trainer) -> list:
        """Where the post-clip norm is read: a step post-hook on the (one) optimizer."""
        return [trainer.optimizers[0].register_step_post_hook(self._after_step)]

    def _open_row(self, trainer, pl_module, optimizer, step: int, total: torch.Tensor) -> None:
        """Start row `step` (loss, pre-clip norm `total`, post-clip norm until the step's is
        read), its attention logit and lr; the steps before it this monitor did not see are NaN."""
        loss = self._loss(pl_module)
        if self._world_size > 1:  # gradients are already all-reduced; average the loss too, so ranks agree
            loss = trainer.strategy.reduce(loss, reduce_op="mean")
        while len(self._rows) + len(self._pending) < step:  # a step this hook did not see stays NaN
            self._pending.append([self._nan] * 3)
            self._lrs.append(math.nan)
            if self._attn_of is not None:
                self._attn.append(self._nan)
            for values in self._told.values():
                values.append(None)
        # with clipping, POST is replaced after the step by the clipped norm
        self._pending.append([loss, total, total])
        if self._attn_of is not None:
            value = self._attn_of.attention_logit_max
            value = self._nan if value is None else value.detach().clone()
            if self._world_size > 1:  # each rank saw its own share of the batch: the largest over all
                torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
            self._attn.append(value)
        for name, source in self._tells.items():
            value = getattr(source, TELLTALE_PROPERTY[name])
            value = None if value is None else value.detach().clone()
            if value is not None and self._world_size > 1:  # each rank's share of the batch: their mean
                torch.distributed.all_reduce(value)
                value = value / self._world_size
            self._told[name].append(value)
        self._lrs.append(optimizer.param_groups[0]["lr"])
        self._step = step

    def _loss(self, pl_module) -> torch.Tensor:
        """This step's loss, as the module keeps it for the monitor (BenchModule.last_loss, the
        loss without its penalty terms), or NaN."""
        return pl_module.last_loss if pl_module.last_loss is not None else self._nan

    def _norms(self, optimizer) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-tensor and global norms of the gradients the optimizer steps with, on the
        model's device; none (a step skip_spikes dropped): a norm of zero, still on the device."""
        grads = grads_of(optimizer)
        norms = torch.stack(tensor_norms(grads)) if grads else self._nan.new_zeros(1)
        return norms, torch.linalg.vector_norm(norms)

    @_clocked
    def _after_step(self, optimizer, args, kwargs):
        step = self._step
        if self.clipping:
            self._pending[-1][POST] = self._norms(optimizer)[1]
        self.steps = step + 1
        if self._snapshot is not None and self._snapshot[0] == step:
            self._close_snapshot()

    def _close_snapshot(self) -> None:
        """The layer row of the snapshot's step: each parameter's gradient norm, update norm
        and update-to-weight ratio, and whether all parameters are finite."""
        step, before, norms = self._snapshot
        with torch.no_grad():
            after = [p.detach() for p in self.params]
            update = torch.stack(tensor_norms(differences(after, before)))
            ratio = update / torch.stack(tensor_norms(before)).clamp_min(1e-12)
            # read at the next divergence check, not here: no host sync inside the step
            params_finite = _finite_flag(after)
        self._layer_rows.append((step, norms, ratio, params_finite, update))
        self._snapshot = None

    @_clocked
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.steps - self._checked >= self.sync_every:
            self._check()
        if self.diverged_at is not None:
            trainer.should_stop = True

    # --- divergence --------------------------------------------------------------------
    def _read_pending(self) -> None:
        """Move the steps not yet read to self._rows. Each value is rounded to float32 once,
        whatever its dtype, as the series keeps it. On a GPU: one stacked copy, so one host
        sync. On the CPU a read is no sync, and inside a step every tensor call is dear (a
        stack, a .float(), an .item(): 3-7 us each there), so each value is read as it is,
        the post-clip norm not at all when it is the pre-clip one (no clipping)."""
        if not self._pending:
            return
        if self._on_cpu:
            for loss, pre, post in self._pending:
                pre_value = _float32(pre)
                self._rows.append((_float32(loss), pre_value, pre_value if post is pre else _float32(post)))
        else:
            values = torch.stack([v for row in self._pending for v in row]).float().tolist()
            self._rows.extend(zip(values[0::3], values[1::3], values[2::3]))
        self._pending.clear()

    def _check(self, final: bool = False):
        """Read the rows not yet checked (one host sync) and flag the first divergent step."""
        self._read_pending()
        lo, hi = self._checked, self.steps
        if hi <= lo or self.diverged_at is not None:
            return
        rows = self._rows[lo:hi]
        self._checked = hi
        if self._layers_checked < len(self._layer_rows):
            for step, _, _, params_finite, _ in self._layer_rows[self._layers_checked :]:
                if not bool(params_finite):
                    self._diverge(step, "non-finite parameters")
            self._layers_checked = len(self._layer_rows)
        if self._loss_limit is None:  # the blow-up limit, from the step-0 loss (none if that is not finite and > 0)
            self._loss0 = loss0 = rows[0][LOSS]
            self._loss_limit = self.cfg["loss_blowup"] * loss0 if math.isfinite(loss0) and loss0 > 0 else math.inf
        for i, (loss, pre, _) in enumerate(rows):
            if lo + i in self._skipped:
                continue
            if not math.isfinite(loss) or not math.isfinite(pre):
                what = "loss" if not math.isfinite(loss) else "gradient norm"
                return self._diverge(lo + i, f"non-finite {what}")
            if loss > self._loss_limit:
                return self._diverge(
                    lo + i, f"loss {loss:.3g} > {self.cfg['loss_blowup']:g} x initial {self._loss0:.3g}"
                )

    def _diverge(self, step: int, reason: str):
        if self.diverged_at is None or step < self.diverged_at:
            self.diverged_at, self.reason = step, f"{reason} at step {step}"

    # --- results -----------------------------------------------------------------------
    def series(self) -> np.ndarray:
        self._read_pending()
        return np.array(self._rows[: self.steps], dtype=np.float64).reshape(-1, 3)

    def attention_logits(self) -> np.ndarray | None:
        """The largest attention logit per recorded step, or None for a model that does not tell it."""
        if self._attn_of is None:
            return None
        return (
            torch.stack(self._attn[: self.steps]).float().cpu().numpy().astype(np.float64)
            if self._attn
            else np.zeros(0)
        )

    def told(self, name: str) -> np.ndarray | None:
        """What the model told per recorded step (TELLTALES: "log_z" one value a step,
        "block_rms" one a block), NaN where it told nothing; None for a model that does not."""
        values = self._told.get(name, [])[: self.steps]
        shape = next((tuple(v.shape) for v in values if v is not None), None)
        if shape is None:  # a model with the property that never filled it (a classifier's transformer)
            return None
        return np.array(
            [np.full(shape, np.nan) if v is None else v.float().cpu().numpy() for v in values], dtype=np.float64
        ).reshape(len(values), *shape)

    def summary(self) -> dict:
        return summarize(
            self.series(),
            clipping=self.clipping,
            diverged_at=self.diverged_at,
            cfg=self.cfg,
            attention=self.attention_logits(),
            told={name: self.told(name) for name in self._tells},
        )

    def write_series(self) -> str | None:
        """steps.csv (step, loss, grad_norm, grad_norm_clipped, lr[, attn_logit_max]) and
        layers.csv; returns the dir."""
        if self.series_dir is None:
            return None
        self.series_dir.mkdir(parents=True, exist_ok=True)
        data = self.series()
        with open(self.series_dir / "steps.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            attention = self.attention_logits()
            log_z, rms = self.told("log_z"), self.told("block_rms")
            told_names = ["log_z"] * (log_z is not None) + [
                f"rms_{b}" for b in range(rms.shape[1] if rms is not None else 0)
            ]
            w.writerow(
                ["step", "loss", "grad_norm", "grad_norm_clipped", "lr"]
                + ["attn_logit_max"] * (attention is not None)
                + told_names
            )
            for i, (loss, pre, post) in enumerate(data):
                extra = [f"{attention[i]:.6g}"] if attention is not None else []
                extra += [f"{log_z[i]:.6g}"] if log_z is not None else []
                extra += [f"{v:.6g}" for v in rms[i]] if rms is not None else []
                w.writerow([i, f"{loss:.6g}", f"{pre:.6g}", f"{post:.6g}", f"{self._lrs[i]:.6g}", *extra])
        with open(self.series_dir / "layers.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["step", "param", "grad_norm", "update_ratio"])
            for step, norms, ratio, *_ in self._layer_rows:
                for name, g, r in zip(self.param_names, norms.tolist(), ratio.tolist()):
                    w.writerow([step, name, f"{g:.6g}", f"{r:.6g}"])
        return str(self.series_dir)


# (a model's property, the series it fills): read every step like the attention logit
TELLTALES = (("output_log_z", "log_z"), ("layer_output_rms", "block_rms"))
TELLTALE_PROPERTY = {name: prop for prop, name in TELLTALES}


def attention_source(pl_module) -> torch.nn.Module | None:
    """The module that tells the largest attention logit of its last forward, through an
    `attention_logit_max` property (a 0-dim tensor, or None)."""
    return property_source(pl_module, "attention_logit_max")


def property_source(pl_module, prop: str) -> torch.nn.Module | None:
    """The module with the property `prop` (a tensor of its last forward, or None): the
    LightningModule itself or one of its direct submodules (gradbench's `model`, a user's
    `net` ...); None if none has it."""
    for m in (pl_module, *pl_module.children()):
        if isinstance(getattr(type(m), prop, None), property):
            return m
    return None


def _float32(value: torch.Tensor) -> float:
    """A 0-dim tensor's value rounded to float32, read with one call when it is float32 already."""
    return value.item() if value.dtype == torch.float32 else value.float().item()


def _finite_flag(params) -> torch.Tensor:
    """Whether every parameter is finite, as a bool tensor on their device (no host read)."""
    return torch.isfinite(torch.stack(tensor_norms([p.detach() for p in params]))).all()


def summarize(
    series: np.ndarray,
    clipping: bool,
    diverged_at: int | None,
    cfg: dict | None = None,
    curve_points: int = 200,
    attention: np.ndarray | None = None,
    told: dict[str, np.ndarray | None] | None = None,
    spike_score: float | None = None,
) -> dict:
    """The `stability` block of a record from a (steps x [loss, pre, post]) series, and the
    per-step largest attention logit of a model that tells it (else no attention keys); for a
    language model (`told` log Z) also its log Z, block RMS and spike score. `spike_score`: the
    score a caller kept as the run went, used instead of one computed from this series.

    Percentiles and max are over finite pre-clip norms; a step counts as clipped when its
    post-clip norm is below the pre-clip norm (relative tolerance 1e-6).
    """
    cfg = {**MONITOR_DEFAULTS, **(cfg or {})}
    loss, pre, post = (series[:, k] if len(series) else np.zeros(0) for k in (LOSS, PRE, POST))
    fin_pre = pre[np.isfinite(pre)]
    fin_post = post[np.isfinite(post)]
    both = np.isfinite(pre) & np.isfinite(post)
    clipped = (post[both] < pre[both] * (1 - 1e-6)) if clipping else np.zeros(0, bool)
    fin_loss = loss[np.isfinite(loss)]
    loss0 = loss[0] if len(loss) and np.isfinite(loss[0]) and loss[0] > 0 else None

    def q(p):
        return _num(np.percentile(fin_pre, p)) if len(fin_pre) else None

    out = {
        "grad_norm_p50": q(50),
        "grad_norm_p90": q(90),
        "grad_norm_p99": q(99),
        "grad_norm_max": _num(fin_pre.max()) if len(fin_pre) else None,
        "post_clip_max": _num(fin_post.max()) if len(fin_post) else None,
        "clip_fraction": _num(clipped.mean()) if len(clipped) else 0.0,
        "nonfinite_steps": int((~np.isfinite(loss) | ~np.isfinite(pre)).sum()),
        "loss_spikes": count_loss_spikes(loss, cfg["spike_factor"], cfg["spike_window"]),
        "grad_spikes": count_grad_spikes(pre, cfg["z_threshold"], cfg["ema_alpha"]),
        "diverged_at_step": diverged_at,
        "max_loss_ratio": _num(fin_loss.max() / loss0) if loss0 and len(fin_loss) else None,
        "grad_norm_curve": downsample_max(pre, curve_points),
    }
    if attention is not None:
        finite = attention[np.isfinite(attention)]
        out["attn_logit_max"] = _num(finite.max()) if len(finite) else None
        out["attn_logit_curve"] = downsample_max(attention, curve_points)
    told = told or {}
    if spike_score is not None:  # kept as it went (the standalone monitor's, across a resume)
        out["spike_score"] = spike_score
    if told.get("log_z") is not None:  # a language model: its log Z's drift and its blocks' scale
        log_z = told["log_z"]
        finite = log_z[np.isfinite(log_z)]
        out["log_z_first"] = _num(finite[0]) if len(finite) else None
        out["log_z_max"] = _num(finite.max()) if len(finite) else None
        out["log_z_curve"] = downsample_max(log_z, curve_points)
        out.setdefault("spike_score", series_spike_score(loss, pre))
    rms = told.get("block_rms")
    if rms is not None and rms.size:
        out["block_rms_max"] = [_num(np.nanmax(col)) if np.isfinite(col).any() else None for col in rms.T]
        out["block_rms_final"] = [_num(v) for v in rms[-1]]
    return out


def series_spike_score(loss: np.ndarray, grad_norm: np.ndarray, window: int = 128, sigmas: float = 6.0) -> float:
    """SpikeScore's share of spike steps over a whole recorded series."""
    score = SpikeScore(window, sigmas)
    for a, b in zip(loss, grad_norm):
        score.update(float(a), float(b))
    return score.score


def count_loss_spikes(loss: np.ndarray, factor: float, window: int, min_history: int = 10) -> int:
    """Steps whose loss exceeds `factor` x the median of the previous `window` finite losses."""
    spikes = 0
    for i in range(min_history, len(loss)):
        hist = loss[max(0, i - window) : i]
        hist = hist[np.isfinite(hist)]
        if len(hist) >= min_history and np.isfinite(loss[i]) and loss[i] > factor * np.median(hist):
            spikes += 1
    return spikes


def count_grad_spikes(norms: np.ndarray, z_threshold: float, alpha: float, warmup: int = 10) -> int:
    """Steps whose norm has z > z_threshold against an EMA mean and EMA variance of past norms
    (the statistics ZClip uses). A spike does not enter the EMA, so it cannot mask the next."""
    mean = var = None
    spikes = 0
    for i, x in enumerate(norms):
        if not np.isfinite(x):
            continue
        if mean is None:
            mean, var = x, 0.0
            continue
        z = (x - mean) / math.sqrt(var + 1e-12)
        if i >= warmup and z > z_threshold:
            spikes += 1
            continue
        d = x - mean
        mean += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
    return spikes


class SpikeScore:
    """OLMo-core's spike score (olmo_core/train/callbacks/stability_monitor.py,
    StabilityMonitorCallback): a step is a spike when its loss or its gradient norm is above
    the mean plus `sigmas` (population) standard deviations of that series' previous `window`
    values; the score is the share of steps that were spikes. Its constants are OLMo-core's
    (window 128, 6 sigma, one-sided, a spike enters the history like any value); the OLMo 2
    paper (arXiv 2501.00656, sec. 3.2) states the same idea with a 1,000-value window and 7
    sigma. A non-finite value is neither a spike nor history: divergence reads those.
    Fed one step at a time (`update`), so a monitor can log the score as it goes, and its
    state travels in a checkpoint (`state_dict`)."""

    def __init__(self, window: int = 128, sigmas: float = 6.0):
        self.window, self.sigmas = window, sigmas
        self.history: dict[str, list[float]] = {"loss": [], "grad_norm": []}
        self.steps = self.spikes = 0

    def update(self, loss: float, grad_norm: float) -> bool:
        spike = False
        for name, value in (("loss", loss), ("grad_norm", grad_norm)):
            if not math.isfinite(value):
                continue
            past = self.history[name]
            if len(past) == self.window:
                mean = sum(past) / len(past)
                std = math.sqrt(sum((x - mean) ** 2 for x in past) / len(past))
                spike |= std > 1e-10 and value > mean + self.sigmas * std
                past.pop(0)
            past.append(value)
        self.steps += 1
        self.spikes += spike
        return spike

    @property
    def score(self) -> float:
        """Spikes / steps seen (0 before any step)."""
        return self.spikes / self.steps if self.steps else 0.0

    def state_dict(self) -> dict:
        return {"history": {k: list(v) for k, v in self.history.items()}, "steps": self.steps, "spikes": self.spikes}

    def load_state_dict(self, state: dict) -> None:
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.steps, self.spikes = state["steps"], state["spikes"]


def downsample_max(values: np.ndarray, points: int) -> list[list]:
    """At most `points` [step, max over the bucket] pairs; a bucket with a non-finite value gives None."""
    n = len(values)
    if n == 0:
        return []
    edges = np.linspace(0, n, min(points, n) + 1).astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        chunk = values[a:b]
        out.append([int(a), _num(chunk.max()) if np.isfinite(chunk).all() else None])
    return out


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
