"""StabilityMonitor: divergence is a result at the right step, clipping is measured where it
acts (also under bf16 mixed precision), and the summary matches a hand computation."""

from __future__ import annotations

import math

import lightning.pytorch as L
import numpy as np
import pytest

from gradbench.catalogue.grad_hooks import GRAD_HOOKS, grad_hook
from gradbench.suite import expand, parse_suite
from gradbench.training.monitor import (
    StabilityMonitor,
    count_grad_spikes,
    count_loss_spikes,
    downsample_max,
    summarize,
)
from gradbench.training.run import run_one

SMALL = {"depth": 2, "width": 32}


def spec_for(strategies=("baseline",), lr_mult=1.0, steps=30, trainer=None, **task_over):
    raw = {
        "tasks": {"mnist_mlp": {"max_steps": steps, "eval_every": 10, "batch_size": 32, "model": SMALL, **task_over}},
        "strategies": list(strategies),
        "stress": {"lr_mult": [lr_mult]},
    }
    if trainer:
        raw["trainer"] = trainer
    return expand(parse_suite(raw))


class InjectNaN(L.Callback):
    """Poison one gradient element after backward at optimizer step k."""

    def __init__(self, k: int):
        self.k = k

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == self.k:
            p = next(pl_module.parameters())
            p.grad.view(-1)[0] = float("nan")


def test_nan_injected_at_step_k_is_diverged_at_k(tiny_data, tmp_path):
    spec = spec_for(lr_mult=0.05)[0]
    rec = run_one(spec, tiny_data, run_dir=tmp_path / "run", callbacks=(InjectNaN(7),))
    assert rec["status"] == "diverged"
    assert rec["stability"]["diverged_at_step"] == 7
    assert "non-finite gradient norm at step 7" in rec["reason"]
    # it stopped at once: the budget of 30 steps was not spent, the curve up to there is kept
    assert rec["metrics"]["steps"] == 8
    assert rec["metrics"]["test"] is None
    assert (tmp_path / "run" / "steps.csv").read_text().count("\n") == 1 + 8


def test_huge_learning_rate_is_flagged_diverged(tiny_data):
    rec = run_one(spec_for(lr_mult=500.0)[0], tiny_data)
    assert rec["status"] == "diverged"
    assert isinstance(rec["stability"]["diverged_at_step"], int)
    assert rec["stability"]["diverged_at_step"] < 30


@pytest.mark.parametrize(
    "losses, expected",
    [
        ([2.0, 5.0, 19.0, 21.0, 30.0], (3, "loss 21 > 10 x initial 2 at step 3")),  # the first step over the limit
        ([2.0, 5.0, 20.0], (None, None)),  # at the limit is not over it
        ([0.0, 50.0, 1e30], (None, None)),  # a step-0 loss of 0 sets no limit: only non-finite values stop
        ([float("nan"), 1.0], (0, "non-finite loss at step 0")),
    ],
)
def test_divergence_check_against_the_step0_loss(losses, expected):
    """The blow-up limit comes from the step-0 loss, whether the check reads a row at a time
    (CPU) or several at once (a GPU, every sync_every steps)."""
    for reads in (range(1, len(losses) + 1), [2, len(losses)]):
        mon = StabilityMonitor(max_steps=len(losses))
        for k in reads:
            mon._rows = [(loss, 1.0, 1.0) for loss in losses[:k]]
            mon.steps = k
            mon._check()
        assert (mon.diverged_at, mon.reason) == expected


def test_clipped_run_reports_clipping_and_respects_the_threshold(tiny_data):
    spec = spec_for([{"clip_norm": {"max_norm": 0.05}}], lr_mult=0.05)[0]
    st = run_one(spec, tiny_data)["stability"]
    assert st["clip_fraction"] > 0
    assert st["post_clip_max"] <= 0.05 * (1 + 1e-5)
    assert st["grad_norm_max"] > 0.05


def test_unclipped_run_has_no_clipping():
    rec_st = summarize(np.array([[1.0, 2.0, 2.0], [1.0, 3.0, 3.0]]), clipping=False, diverged_at=None)
    assert rec_st["clip_fraction"] == 0.0 and rec_st["post_clip_max"] == 3.0


def test_bf16_mixed_precision_sees_and_clips_unscaled_gradients(tiny_data):
    spec = spec_for([{"clip_norm": {"max_norm": 0.05}}], lr_mult=0.05, trainer={"precision": "bf16-mixed"})[0]
    rec = run_one(spec, tiny_data)
    assert rec["status"] == "ok", rec["reason"]
    st = rec["stability"]
    assert st["clip_fraction"] > 0 and st["post_clip_max"] <= 0.05 * (1 + 1e-5)
    assert 0.05 < st["grad_norm_p50"] < 1e4  # real (unscaled) gradient magnitudes


@grad_hook("raise_in_test")
def _raising(**params):
    def hook(module, optimizer):
        raise RuntimeError("strategy bug")

    return hook


def test_raising_run_is_an_error_result(tiny_data):
    spec = spec_for()[0].add_grad_hook("raise_in_test")
    rec = run_one(spec, tiny_data)
    assert rec["status"] == "error"
    assert "RuntimeError: strategy bug" in rec["reason"]
    assert "raise_in_test" in GRAD_HOOKS


def test_summary_matches_a_hand_computation():
    # steps x [loss, pre-clip norm, post-clip norm]
    pre = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], float)
    post = np.minimum(pre, 5.0)
    loss = np.array([2.0, 1.9, 1.8, 1.7, 5.0, 1.6, 1.5, 1.4, 1.3, 1.2])
    st = summarize(
        np.stack([loss, pre, post], 1), clipping=True, diverged_at=None, cfg={"spike_factor": 2.0, "spike_window": 4}
    )
    assert st["grad_norm_p50"] == pytest.approx(5.5)
    assert st["grad_norm_p90"] == pytest.approx(9.1)
    assert st["grad_norm_p99"] == pytest.approx(9.91)
    assert st["grad_norm_max"] == 10.0 and st["post_clip_max"] == 5.0
    assert st["clip_fraction"] == pytest.approx(0.5)  # steps with norm 6..10
    assert st["nonfinite_steps"] == 0
    assert st["max_loss_ratio"] == pytest.approx(2.5)  # 5.0 / 2.0
    assert st["diverged_at_step"] is None
    assert st["grad_norm_curve"] == [[i, float(i + 1)] for i in range(10)]


def test_loss_spikes_against_the_running_median():
    loss = np.array([1.0] * 12 + [3.5] + [1.0] * 5)
    assert count_loss_spikes(loss, factor=3.0, window=50) == 1
    assert count_loss_spikes(loss, factor=4.0, window=50) == 0


def test_grad_spikes_by_ema_z_score():
    rng = np.random.default_rng(0)
    norms = 1.0 + 0.01 * rng.standard_normal(100)
    norms[60] = 5.0
    assert count_grad_spikes(norms, z_threshold=4.0, alpha=0.05) == 1
    assert count_grad_spikes(np.ones(50), z_threshold=4.0, alpha=0.05) == 0


def test_nonfinite_steps_and_curve_with_nan():
    s = np.array([[1.0, 1.0, 1.0], [math.nan, math.nan, math.nan]])
    st = summarize(s, clipping=False, diverged_at=1)
    assert st["nonfinite_steps"] == 1 and st["diverged_at_step"] == 1
    assert downsample_max(s[:, 1], 200) == [[0, 1.0], [1, None]]
    assert len(downsample_max(np.arange(1000.0), 200)) == 200
