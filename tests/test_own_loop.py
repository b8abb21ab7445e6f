"""gradbench's monitor and gradient callbacks in training loops written by a user, not by
gradbench: two optimizers under manual optimization, a resume from a checkpoint, DDP on two
CPU processes, a sharded strategy, and the spike score on a run with an injected spike."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from conftest import REPO
from lightning.pytorch.loggers import CSVLogger
from user_models import Regression, regression_data

from gradbench.callbacks import AutoClip, SkipSpikes, StabilityMonitor, ZClip
from gradbench.training.monitor import SpikeScore


def trainer(tmp_path, steps, callbacks, **kw):
    return L.Trainer(
        max_steps=steps,
        callbacks=callbacks,
        logger=CSVLogger(tmp_path, name="own"),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kw,
    )


def logged_rows(tmp_path) -> list[dict]:
    return list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))


class TwoOptimizers(L.LightningModule):
    """Manual optimization with an encoder's and a head's optimizer, stepped one after the
    other on the same batch (as a GAN steps its generator and discriminator); it keeps its own
    probe of each one's gradient norm as it steps."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.encoder = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh())
        self.head = torch.nn.Linear(32, 1)
        self.probe: list[tuple[float, float]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt_encoder, opt_head = self.optimizers()
        norms = []
        for opt, part in ((opt_encoder, self.encoder), (opt_head, self.head)):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(self.head(self.encoder(x)), y)
            self.manual_backward(loss)
            norms.append(float(torch.nn.utils.get_total_norm([p.grad for p in part.parameters()])))
            opt.step()
        self.probe.append(tuple(norms))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.encoder.parameters(), lr=0.01), torch.optim.Adam(self.head.parameters(), lr=1e-3)


def test_two_optimizers_give_each_ones_norm_and_the_whole_models_every_step(tmp_path):
    monitor = StabilityMonitor(layer_every=5)
    model = TwoOptimizers()
    with pytest.warns(UserWarning, match="under manual optimization"):
        fit = trainer(tmp_path, 24, [monitor])  # 24 optimizer steps: 12 batches
        fit.fit(model, regression_data())
    probe = np.array(model.probe)
    series, parts = monitor.series(), monitor.optimizer_series()
    assert len(probe) == 12 and len(series) == 12  # one row per training step, the last one too
    assert sorted(parts) == ["adam", "sgd"]
    assert parts["sgd"][:, 0] == pytest.approx(probe[:, 0], rel=1e-5)
    assert parts["adam"][:, 0] == pytest.approx(probe[:, 1], rel=1e-5)
    assert series[:, 1] == pytest.approx(np.hypot(probe[:, 0], probe[:, 1]), rel=1e-5)
    rows = logged_rows(tmp_path)
    logged = {int(r["step"]): r for r in rows if r.get("stability/grad_norm")}
    assert sorted(logged) == list(range(12))
    for step in range(12):
        assert float(logged[step]["stability/grad_norm/sgd"]) == pytest.approx(probe[step, 0], rel=1e-5)
        assert float(logged[step]["stability/grad_norm/adam"]) == pytest.approx(probe[step, 1], rel=1e-5)
    # per-layer rows: every parameter of both optimizers, once per 5 training steps
    layer_steps = {int(r["step"]) for r in rows if r.get("layers/head.weight/grad_norm")}
    assert layer_steps == {0, 5, 10}
    first = next(r for r in rows if r.get("layers/encoder.0.weight/update_norm") and int(r["step"]) == 0)
    assert float(first["layers/encoder.0.weight/update_norm"]) > 0
    assert monitor.summary()["grad_norm_max/adam"] == pytest.approx(probe[:, 1].max(), rel=1e-5)


def test_optimizer_names_can_be_given_and_must_match_the_optimizers(tmp_path):
    named = StabilityMonitor(optimizer_names=["encoder", "head"])
    with pytest.warns(UserWarning):
        trainer(tmp_path / "a", 4, [named]).fit(TwoOptimizers(), regression_data())
    assert sorted(named.optimizer_series()) == ["encoder", "head"]
    with pytest.raises(ValueError, match="optimizer_names has 1 names for 2 optimizers"):
        trainer(tmp_path / "b", 4, [StabilityMonitor(optimizer_names=["one"])]).fit(TwoOptimizers(), regression_data())


class Decisions(L.Callback):
    """Listed after the rules: each step, what each rule decided (its clip level, or whether it
    skipped), as the rule keeps it."""

    def __init__(self, rules):
        self.rules, self.seen = rules, []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        row = [float(r.transform.threshold) for r in self.rules if hasattr(r.transform, "threshold")]
        self.seen.append((*row, *(r.transform.skipped for r in self.rules if hasattr(r.transform, "skipped"))))


def test_a_resumed_run_clips_and_skips_as_an_uninterrupted_one(tmp_path):
    """AutoClip, ZClip and SkipSpikes keep their statistics in the checkpoint: a fit resumed
    from the step-8 checkpoint of a 16-step fit (ModelCheckpoint, as users save) makes the same
    decisions at steps 8-15 as that fit, and its monitor reads the same norms."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(root, ckpt=None, saving=()):
        torch.manual_seed(0)
        rules = [AutoClip(percentile=50.0), ZClip(warmup_steps=3, max_grad_norm=0.0), SkipSpikes(z_thresh=2.0)]
        monitor, decisions = StabilityMonitor(), Decisions(rules)
        trainer(root, 16, [monitor, *rules, decisions, *saving]).fit(
            Regression(momentum=0.9), regression_data(), ckpt_path=ckpt
        )
        return monitor, decisions

    saving = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=8, save_top_k=-1)
    whole, whole_decisions = fit(tmp_path / "whole", saving=[saving])
    ckpt = tmp_path / "ckpt" / "epoch=0-step=8.ckpt"
    saved = torch.load(ckpt, weights_only=False)["callbacks"]
    assert any(key.startswith("AutoClip") and state["n"] == 8 for key, state in saved.items())
    resumed, resumed_decisions = fit(tmp_path / "resumed", ckpt=ckpt)
    assert resumed_decisions.seen == whole_decisions.seen[8:]
    assert whole_decisions.seen[15][-1] > whole_decisions.seen[7][-1]  # SkipSpikes skipped after the save
    assert resumed.series()[8:, 1:].tolist() == whole.series()[8:, 1:].tolist()
    assert resumed.spikes.steps == 16  # the spike score goes on from the checkpoint's 8 steps


def test_spike_score_is_olmo_cores_rule():
    """An independent reading of OLMo-core's rule (mean + 6 population sigma of the previous
    128 values, one-sided, loss or gradient norm) on series with planted spikes."""
    rng = np.random.default_rng(0)
    loss, norm = 2 + 0.01 * rng.standard_normal(400), 1 + 0.05 * rng.standard_normal(400)
    loss[[150, 300]] *= 3
    norm[[200, 300]] *= 4
    norm[250] = math.nan
    score = SpikeScore()
    flags = [score.update(a, b) for a, b in zip(loss, norm)]
    expected = []
    for i in range(400):
        spike = False
        for series in (loss, norm):
            past = [v for v in series[:i] if np.isfinite(v)][-128:]
            if len(past) == 128 and np.isfinite(series[i]):
                spike |= series[i] > np.mean(past) + 6 * np.std(past)
        expected.append(spike)
    assert flags == expected and [i for i, f in enumerate(flags) if f] == [150, 200, 300]
    assert score.score == pytest.approx(3 / 400)


class SpikedRegression(Regression):
    """A user's run with one corrupted batch: its inputs scaled by 20 at step 150."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.trainer.global_step == 150:
            x = x * 20
        return torch.nn.functional.mse_loss(self.net(x), y)


def test_the_monitor_scores_an_injected_spike(tmp_path):
    calm, spiked = StabilityMonitor(layer_every=50), StabilityMonitor(layer_every=50)
    trainer(tmp_path / "calm", 200, [calm]).fit(Regression(lr=0.01, momentum=0.9), regression_data(n=2048))
    trainer(tmp_path / "spiked", 200, [spiked]).fit(SpikedRegression(lr=0.01, momentum=0.9), regression_data(n=2048))
    assert calm.summary()["spike_score"] == 0
    assert spiked.summary()["spike_score"] > 0 and spiked.spikes.spikes <= 3
    logged = {
        int(r["step"]): float(r["stability/spike_score"])
        for r in logged_rows(tmp_path / "spiked")
        if r.get("stability/spike_score")
    }
    assert sorted(logged) == [49, 99, 149, 199]  # every layer_every steps
    assert logged[149] == 0 and logged[199] == spiked.summary()["spike_score"]


def test_the_clip_rate_is_the_share_of_the_last_n_steps_clipped(tmp_path):
    monitor = StabilityMonitor(layer_every=10)
    fit = trainer(tmp_path, 30, [monitor], gradient_clip_val=25.0)
    fit.fit(Regression(lr=0.01, momentum=0.9), regression_data())
    series = monitor.series()
    clipped = series[:, 2] < series[:, 1] * (1 - 1e-6)
    logged = {
        int(r["step"]): float(r["stability/clip_rate"]) for r in logged_rows(tmp_path) if r.get("stability/clip_rate")
    }
    assert logged == {9: clipped[:10].mean(), 19: clipped[10:20].mean(), 29: clipped[20:].mean()}
    assert 0 < clipped.sum() < 30


def test_ddp_on_two_processes_reads_the_global_batchs_norm(tmp_path):
    """Two gloo processes with 16 samples each see the norms one process sees on the same 32,
    and AutoClip clips both runs to the same levels: it reads the all-reduced gradients."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "tests")}
    single = tmp_path / "single.json"
    subprocess.run([sys.executable, "-m", "own_loop_ddp", str(single), "1"], env=env, check=True, cwd=tmp_path)
    ddp = tmp_path / "ddp.json"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    subprocess.run([*torchrun, "-m", "own_loop_ddp", str(ddp), "2"], env=env, check=True, cwd=tmp_path, timeout=300)
    one, two = json.loads(single.read_text()), json.loads(ddp.read_text())
    assert len(one["pre"]) == len(two["pre"]) == 12
    assert two["pre"] == pytest.approx(one["pre"], rel=1e-5)
    assert two["post"] == pytest.approx(one["post"], rel=1e-5)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert two["ranks_agree"]


def test_a_sharded_strategy_is_refused_with_the_reason():
    """Under FSDP each rank holds a shard of the gradients; Lightning runs FSDP only on GPUs,
    so the refusal is shown on a Trainer stand-in with Lightning's FSDP strategy."""
    from types import SimpleNamespace

    from lightning.pytorch.strategies import FSDPStrategy

    sharded = SimpleNamespace(strategy=FSDPStrategy())
    with pytest.raises(RuntimeError, match="FSDPStrategy strategy shards the gradients"):
        StabilityMonitor().on_train_start(sharded, None)
    with pytest.raises(RuntimeError, match="FSDPStrategy strategy shards the gradients"):
        ZClip().on_fit_start(sharded, None)


class Critic(L.LightningModule):
    """Manual optimization as WGAN critics train: one optimizer stepped three times a batch,
    and only on every second batch; no clipping anywhere."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        self.probe: list[list[float]] = []

    def training_step(self, batch, batch_idx):
        if batch_idx % 2:
            return None
        opt = self.optimizers()
        x, y = batch
        norms = []
        for _ in range(3):
            opt.zero_grad()
            self.manual_backward(torch.nn.functional.mse_loss(self.net(x), y))
            norms.append(float(torch.nn.utils.get_total_norm([p.grad for p in self.net.parameters()])))
            opt.step()
        self.probe.append(norms)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.005)


def test_an_optimizer_stepped_several_times_or_not_every_batch_gives_one_row_per_stepping_batch(tmp_path):
    monitor = StabilityMonitor()
    model = Critic()
    with pytest.warns(UserWarning, match="under manual optimization"):
        trainer(tmp_path, 15, [monitor]).fit(model, regression_data())  # 15 optimizer steps: 5 stepping batches
    series, probe = monitor.series(), np.array(model.probe)
    assert len(probe) == 5 and len(series) == 5 and monitor.diverged_at is None
    whole = np.sqrt((probe**2).sum(1))  # the three steps' norms together
    assert series[:, 1] == pytest.approx(whole, rel=1e-5)
    assert series[:, 2] == pytest.approx(whole, rel=1e-5)  # nothing clipped: post-clip = pre-clip
    assert monitor.summary()["clip_fraction"] == 0


def test_a_step_the_optimizer_skips_is_counted_not_taken_for_divergence(tmp_path):
    """What fp16 AMP's scaler does on an inf gradient: the hooks run, the step does not. A
    Precision plugin that skips step 3 stands in for it (CPU has no fp16 scaler)."""
    from lightning.pytorch.plugins.precision import Precision

    class SkipsStep3(Precision):
        def optimizer_step(self, optimizer, model, closure, **kwargs):
            if model.trainer.global_step != 3:
                return super().optimizer_step(optimizer, model, closure, **kwargs)
            result = closure()  # forward and backward, then the hooks, as MixedPrecision runs them
            self._after_closure(model, optimizer)
            return result  # and no optimizer.step, as GradScaler.step on an inf gradient

    monitor = StabilityMonitor()
    trainer(tmp_path, 8, [monitor], plugins=[SkipsStep3()]).fit(Regression(lr=0.01), regression_data())
    series = monitor.series()
    assert len(series) == 8 and monitor.diverged_at is None
    assert np.isnan(series[3, 2]) and np.isfinite(series[3, 1]) and monitor.summary()["skipped_steps"] == 1
    assert np.isfinite(series[[0, 1, 2, 4, 5, 6, 7], 2]).all()


def test_a_monitor_and_a_rule_used_for_a_second_fit_start_from_that_fits_state(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    monitor, clip = StabilityMonitor(), AutoClip()
    saving = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    trainer(tmp_path / "a", 8, [monitor, clip, saving]).fit(Regression(lr=0.01), regression_data())
    assert len(monitor.series()) == 8 and clip.transform.n == 8
    # the same instances, resumed from step 4: the checkpoint's history, not the last fit's
    trainer(tmp_path / "b", 6, [monitor, clip]).fit(
        Regression(lr=0.01), regression_data(), ckpt_path=tmp_path / "ckpt" / "epoch=0-step=4.ckpt"
    )
    assert clip.transform.n == 6 and monitor.spikes.steps == 6
    series = monitor.series()
    assert len(series) == 6 and np.isnan(series[:4]).all() and np.isfinite(series[4:]).all()
