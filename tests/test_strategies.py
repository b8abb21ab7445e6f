"""The strategy catalogue: every registered strategy trains on every task it applies to, and
each one has the effect it claims (clipping bounds on the gradients really stepped with, under
bf16 and gradient accumulation too; schedules; decoupled decay; init; architecture knobs)."""

from __future__ import annotations

import copy
import csv
import math
import pathlib
import re
import shutil

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from fakes import make_cifar, make_mnist
from torch import nn

from gradbench.catalogue.strategies import STRATEGIES
from gradbench.catalogue.strategies.clipping import AutoClip, SkipSpikes, ZClip
from gradbench.catalogue.strategies.regularization import DecoupledWeightDecay
from gradbench.catalogue.tasks import TASKS
from gradbench.core.errors import UserError
from gradbench.execution.suite_runner import run_suite
from gradbench.suite import Skipped, expand, load_suite, parse_suite
from gradbench.training.data import load_dataset
from gradbench.training.models import (
    ACTIVATIONS,
    Block,
    WSConv2d,
    build_model,
    standardize,
)
from gradbench.training.module import BenchModule
from gradbench.training.optim import lr_lambda
from gradbench.training.run import run_one

REPO = pathlib.Path(__file__).resolve().parent.parent
LR_MULT = 0.1  # small enough that no arm diverges in a few steps on the tiny data
STEPS = 4
ADDING_DATA = {"seq_len": 10, "n_train": 64, "n_val": 16, "n_test": 16}
RECALL_DATA = {"pairs": 3, "keys": 4, "values": 4, "n_train": 64, "n_val": 16, "n_test": 16}
# the data every test run takes (the fake CIFAR-10 holds too few images for the task's 2000 validation ones)
TEST_DATA = {"adding_rnn": ADDING_DATA, "recall_transformer": RECALL_DATA, "cifar10_cnn": {"val_size": 4}}
SMALL = {  # tiny models; cnn depth 4 keeps one residual block (the first conv of a stage has none)
    "mnist_mlp": {"batch_size": 16, "model": {"depth": 2, "width": 16}},
    "cifar10_cnn": {"batch_size": 8, "model": {"depth": 4, "width": 4}, "data": TEST_DATA["cifar10_cnn"]},
    "adding_rnn": {"batch_size": 16, "model": {"hidden": 16}, "data": ADDING_DATA},
    "recall_transformer": {"batch_size": 16, "model": {"depth": 1, "width": 16, "heads": 2}, "data": RECALL_DATA},
}
FAMILY = {t: TASKS.get(t).model_family for t in SMALL}
CATALOGUE = [n for n in STRATEGIES.list() if STRATEGIES.get(n).fn.__module__.startswith("gradbench.")]
TRAINERS = {"fp32": {}, "bf16": {"precision": "bf16-mixed"}, "accum2": {"accumulate_grad_batches": 2}}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one torch thread is faster than two fighting over shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("strategy_data")
    make_mnist(root, gz=False, n_train=64, n_test=16)  # 58 train, 6 val
    make_cifar(root, bytes_keys=False, per_batch=8)  # 36 train, 4 val, 8 test
    return root


def suite_raw(strategies, tasks=("mnist_mlp",), steps=STEPS, lr_mult=LR_MULT, trainer=None, small=True) -> dict:
    over = {}
    for t in tasks:
        ov = copy.deepcopy(SMALL[t]) if small else ({"data": dict(TEST_DATA[t])} if t in TEST_DATA else {})
        over[t] = {"max_steps": steps, "eval_every": steps, **ov}
    raw = {"tasks": over, "strategies": list(strategies), "stress": {"lr_mult": [lr_mult]}}
    if trainer:
        raw["trainer"] = dict(trainer)
    return raw


def specs(strategies, **kw):
    return expand(parse_suite(suite_raw(strategies, **kw)))


def one(strategy, task="mnist_mlp", **kw):
    (spec,) = specs([strategy], tasks=(task,), **kw)
    assert not isinstance(spec, Skipped), spec.reason
    return spec


def model_of(spec, data_root):
    task = TASKS.get(spec.task)
    splits = load_dataset(task.dataset, data_root, **spec.data)
    torch.manual_seed(spec.seed)
    return build_model(task.model_family, splits.input_shape, task.num_outputs, spec.model), splits


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# --- the registry: everything trains where it applies -----------------------------------------
def applies(name: str, task: str) -> bool:
    """Whether expansion runs the strategy on the task: its model family, and what the
    strategy itself says of the task (z_loss needs a softmax)."""
    return not isinstance(specs([name], tasks=(task,))[0], Skipped)


CASES = [pytest.param(n, t, id=f"{n}-{t}") for n in CATALOGUE for t in SMALL if applies(n, t)]


@pytest.mark.parametrize("name, task", CASES)
def test_every_strategy_trains_on_every_task_it_applies_to(name, task, data):
    rec = run_one(one(name, task), data)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["metrics"]["steps"] == STEPS
    assert math.isfinite(rec["stability"]["grad_norm_max"] or math.nan)
    assert math.isfinite(rec["metrics"]["test"])


def test_catalogue_covers_every_family_with_sources():
    assert len(CATALOGUE) >= 30
    families = {STRATEGIES.get(n).family for n in CATALOGUE}
    assert {
        "activation",
        "normalization",
        "architecture",
        "clipping",
        "regularization",
        "optimizers",
        "schedules",
        "initialization",
    } <= families
    for n in CATALOGUE:
        s = STRATEGIES.get(n)
        assert s.description and s.applies_to, n
        assert n == "baseline" or "(" in s.description, f"{n}: the docstring's first line should name its source"


def test_catalogue_suite_names_every_strategy_and_validates():
    suite = load_suite(REPO / "configs" / "catalogue.yaml")
    named = {n for arm in suite.arms for n in arm.names}
    assert set(CATALOGUE) <= named, sorted(set(CATALOGUE) - named)
    runs = expand(suite)
    assert len(runs) == len({r.run_id for r in runs})


def test_not_applicable_is_recorded_skipped_with_its_reason(data, tmp_path):
    suite = parse_suite(suite_raw(["lstm", "weight_std", "lstm+adam"]))
    recs = {r["strategy"]["label"]: r for r in run_suite(suite, tmp_path / "r.jsonl", data, log=lambda s: None)}
    assert {r["status"] for r in recs.values()} == {"skipped"}
    assert recs["lstm"]["reason"] == "lstm applies to rnn models, not mlp"
    assert recs["weight_std"]["reason"] == "weight_std applies to cnn models, not mlp"
    assert recs["lstm+adam"]["reason"] == "lstm applies to rnn models, not mlp"


# --- composition and parameters: errors before anything trains -----------------------------
@pytest.mark.parametrize(
    "label, message",
    [
        ("relu+tanh", "'relu' and 'tanh' cannot compose: both set the activation"),
        ("adam+sgd", "'adam' and 'sgd' cannot compose: both set the optimizer"),
        ("lstm+gru", "both set the cell"),
        ("batchnorm+layernorm", "both set the normalization"),
        ("xavier+orthogonal", "both set the init"),
        ("autoclip+zclip", "both set the adaptive norm rule"),
        ("zclip+skip_spikes", "both set the adaptive norm rule"),
        ("l2+weight_decay", "both set the weight decay"),
        ("clip_value+clip_norm", "both set the Lightning gradient clipping"),
    ],
)
def test_impossible_compositions_are_one_clear_error(label, message):
    with pytest.raises(UserError) as e:
        parse_suite(suite_raw([label]))
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "label",
    [
        "warmup+cosine",
        "agc+clip_norm",
        "agc+zclip",
        "clip_norm+batchnorm",
        "groupnorm+weight_std",
        "rezero+kaiming",
        "lstm+adam",
        "l1+l2",
        "adam+lower_lr",
        "residual+batchnorm+adam+warmup",
    ],
)
def test_sensible_compositions_expand(label):
    runs = specs([label], tasks=tuple(SMALL))
    assert len(runs) == len(SMALL)


def test_gated_cell_refuses_a_relu_activation():
    with pytest.raises(UserError, match="gated cell"):
        specs(["relu+lstm"], tasks=("adding_rnn",))
    with pytest.raises(UserError, match="gated cell"):
        specs(["gru+relu"], tasks=("adding_rnn",))


@pytest.mark.parametrize(
    "item, message",
    [
        ({"agc": {"clipping": "big"}}, "strategies.agc.clipping: expected a number, got 'big'"),
        ({"zclip": {"mode": "fast"}}, "strategies.zclip.mode: 'fast' is not one of 'clip', 'adaptive' or 'mean'"),
        ({"warmup": {"warmup_step": 10}}, "unknown key 'warmup_step' (did you mean 'warmup_steps'?)"),
        ({"warmup": {"warmup_steps": 2.5}}, "strategies.warmup.warmup_steps: expected an integer, got 2.5"),
        ({"adam": {"lr": True}}, "strategies.adam.lr: expected a number, got True"),
        ({"agc+zclip": {"zclip": {"z_tresh": 3}}}, "strategies.agc+zclip.zclip: unknown key 'z_tresh'"),
    ],
)
def test_wrong_parameter_name_or_type_is_one_clear_error(item, message):
    with pytest.raises(UserError) as e:
        parse_suite(suite_raw([item]))
    assert message in str(e.value)


@pytest.mark.parametrize(
    "item, message",
    [
        ({"shallower": {"factor": 2.0}}, "shallower.factor: must be <= 1.0"),
        ({"dropout": {"p": 1.0}}, "dropout.p: must be < 1.0"),
        ({"warmup": {"warmup_steps": 0}}, "warmup.warmup_steps: must be >= 1"),
    ],
)
def test_out_of_range_parameter_is_an_error_before_training(item, message):
    with pytest.raises(UserError, match=re.escape(message)):
        specs([item])


def test_parameters_reach_the_spec():
    spec = one({"agc": {"clipping": 0.02}})
    assert spec.strategy == "agc(clipping=0.02)"
    assert spec.grad_hooks == (("agc", {"clipping": 0.02, "eps": 1e-3, "exclude_head": True}),)
    assert one({"clip_norm": {"max_norm": 0.5}}).trainer["gradient_clip_val"] == 0.5


# --- clipping acts on the gradients the optimizer steps with ---------------------------------
class GradSpy(L.Callback):
    """Per optimizer step: gradients and weights before clipping (on_before_optimizer_step runs
    before configure_gradient_clipping), then the gradients stepped with, the weights after
    the step and the optimizer state before/after (an optimizer step post-hook)."""

    def __init__(self, spike_at: int | None = None, spike: float = 1e3):
        self.spike_at, self.spike = spike_at, spike
        self.pre, self.w_pre, self.post, self.w_post, self.lr, self.state_pre, self.state_post = ([] for _ in range(7))

    def on_train_start(self, trainer, pl_module):
        self.names = [n for n, _ in pl_module.named_parameters()]
        self.params = list(pl_module.parameters())
        self.handle = trainer.optimizers[0].register_step_post_hook(self._after)

    def on_train_end(self, trainer, pl_module):
        self.handle.remove()

    def on_after_backward(self, trainer, pl_module):
        if trainer.global_step == self.spike_at:
            for p in self.params:
                p.grad.mul_(self.spike)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.pre.append([p.grad.detach().clone() for p in self.params])
        self.w_pre.append([p.detach().clone() for p in self.params])
        self.lr.append(optimizer.param_groups[0]["lr"])
        self.state_pre.append(copy.deepcopy(optimizer.state_dict()["state"]))

    def _after(self, optimizer, args, kwargs):
        self.post.append([None if p.grad is None else p.grad.detach().clone() for p in self.params])
        self.w_post.append([p.detach().clone() for p in self.params])
        self.state_post.append(copy.deepcopy(optimizer.state_dict()["state"]))


def spied_run(item, data, trainer=None, steps=6, spike_at=None, task="mnist_mlp"):
    spy = GradSpy(spike_at=spike_at)
    rec = run_one(one(item, task, steps=steps, trainer=trainer), data, callbacks=(spy,))
    assert rec["status"] == "ok", rec["reason"]
    assert len(spy.pre) == len(spy.post) == steps  # once per optimizer step, accumulation or not
    return rec, spy


def gnorm(grads) -> float:
    return float(torch.linalg.vector_norm(torch.stack([g.double().norm() for g in grads])))


def close(a, b, rtol=1e-4, atol=1e-7) -> bool:
    return all(torch.allclose(x, y, rtol=rtol, atol=atol) for x, y in zip(a, b))


def ref_autoclip(norms, percentile):
    return [float(np.percentile(norms[: i + 1], percentile)) for i in range(len(norms))]


def ref_zclip(norms, z_thresh, alpha, warmup, mode="clip"):
    """The documented ZClip rule, in float64: the clip level of each step (inf: not clipped)."""
    levels, buf, mean, var = [], [], None, None
    for g in norms:
        if mean is None:
            buf.append(g)
            levels.append(math.inf)
            if len(buf) >= warmup:
                mean, var = float(np.mean(buf)), float(np.var(buf))
            continue
        std = math.sqrt(var)
        z = (g - mean) / (std + 1e-6)
        level = (
            {"clip": mean + z_thresh * std, "adaptive": mean + z_thresh**2 * std / max(z, z_thresh), "mean": mean}[mode]
            if z > z_thresh
            else math.inf
        )
        levels.append(level)
        eff = min(g, level)
        mean = alpha * mean + (1 - alpha) * eff
        var = alpha * var + (1 - alpha) * (eff - mean) ** 2
    return levels


def scaled(grads, level):
    coef = min(1.0, level / (gnorm(grads) + 1e-6))
    return [g * coef for g in grads]


@pytest.mark.parametrize("trainer", TRAINERS.values(), ids=TRAINERS.keys())
def test_clip_norm_bounds_the_stepped_norm_like_torch(trainer, data):
    c = 0.5
    rec, spy = spied_run({"clip_norm": {"max_norm": c}}, data, trainer)
    for pre, post in zip(spy.pre, spy.post):
        ref = [nn.Parameter(g.clone()) for g in pre]
        for r, g in zip(ref, pre):
            r.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(ref, c)
        assert close(post, [r.grad for r in ref], rtol=1e-5)
        assert gnorm(post) <= c * (1 + 1e-5)
    assert rec["stability"]["clip_fraction"] > 0 and rec["stability"]["post_clip_max"] <= c * (1 + 1e-5)


@pytest.mark.parametrize("trainer", TRAINERS.values(), ids=TRAINERS.keys())
def test_clip_value_keeps_every_element_in_range(trainer, data):
    c = 0.01
    _, spy = spied_run({"clip_value": {"clip_value": c}}, data, trainer)
    assert any((g.abs() > c).any() for pre in spy.pre for g in pre)  # it had something to clip
    for pre, post in zip(spy.pre, spy.post):
        assert all(g.abs().max() <= c for g in post)
        assert close(post, [g.clamp(-c, c) for g in pre], rtol=0)


def units(x: torch.Tensor) -> torch.Tensor:
    """One row per AGC unit: a weight row / conv output channel; a bias or scalar is one unit."""
    return x.reshape(1, -1) if x.dim() <= 1 else x.flatten(1)


@pytest.mark.parametrize("trainer", TRAINERS.values(), ids=TRAINERS.keys())
def test_agc_caps_every_unit_ratio_and_leaves_small_ones_and_the_head(trainer, data):
    lam, eps = 0.01, 1e-3
    _, spy = spied_run("agc", data, trainer)
    head = {i for i, n in enumerate(spy.names) if n.startswith("model.3.")}  # the mlp's Linear head
    assert head == {len(spy.names) - 2, len(spy.names) - 1}
    clipped = untouched = 0
    for pre, post, w in zip(spy.pre, spy.post, spy.w_pre):
        for i, (g0, g1, wi) in enumerate(zip(pre, post, w)):
            if i in head:
                assert torch.equal(g0, g1)
                continue
            cap = lam * units(wi).double().norm(dim=1).clamp_min(eps)
            n0, n1 = units(g0).double().norm(dim=1), units(g1).double().norm(dim=1)
            assert (n1 <= cap * (1 + 1e-4)).all()
            small = n0 <= cap
            assert torch.equal(units(g0)[small], units(g1)[small])  # small units untouched
            assert torch.allclose(n1[~small], cap[~small], rtol=1e-4)  # big ones rescaled to the cap
            assert torch.allclose(
                units(g1)[~small] * n0[~small, None].float(),
                units(g0)[~small] * n1[~small, None].float(),
                rtol=1e-3,
                atol=1e-9,
            )  # same direction
            clipped += int((~small).sum())
            untouched += int(small.sum())
    assert clipped and untouched


@pytest.mark.parametrize("trainer", TRAINERS.values(), ids=TRAINERS.keys())
def test_autoclip_clips_to_the_percentile_of_the_norm_history(trainer, data):
    _, spy = spied_run({"autoclip": {"percentile": 10.0}}, data, trainer)
    norms = [gnorm(pre) for pre in spy.pre]
    for pre, post, level in zip(spy.pre, spy.post, ref_autoclip(norms, 10.0)):
        assert close(post, scaled(pre, level))
    assert gnorm(spy.post[-1]) < norms[-1] * 0.999 or norms[-1] <= min(norms)


@pytest.mark.parametrize("trainer", TRAINERS.values(), ids=TRAINERS.keys())
def test_zclip_follows_the_documented_ema_rule(trainer, data):
    # clip whenever above the EMA mean; no fixed cap, to see the z-rule alone
    item = {"zclip": {"warmup_steps": 2, "z_thresh": 0.0, "max_grad_norm": 0.0}}
    _, spy = spied_run(item, data, trainer, steps=8)
    norms = [gnorm(pre) for pre in spy.pre]
    levels = ref_zclip(norms, 0.0, 0.97, 2)
    assert any(math.isfinite(x) for x in levels)
    for pre, post, level in zip(spy.pre, spy.post, levels):
        assert close(post, scaled(pre, level))


def test_skip_spikes_leaves_weights_and_momentum_alone_on_a_spike(data):
    item = {"skip_spikes": {"warmup_steps": 3}}
    rec, spy = spied_run(item, data, steps=7, spike_at=5)
    for step in range(7):
        skipped = all(g is None for g in spy.post[step])
        assert skipped == (step == 5), step
        same = all(torch.equal(a, b) for a, b in zip(spy.w_pre[step], spy.w_post[step]))
        assert same == skipped
    before, after = spy.state_pre[5], spy.state_post[5]
    assert before.keys() == after.keys() and before
    for k in before:
        assert torch.equal(before[k]["momentum_buffer"], after[k]["momentum_buffer"])
    assert rec["stability"]["grad_norm_max"] > 100 * rec["stability"]["grad_norm_p50"]


# --- the adaptive rules on a known sequence of norms -------------------------------------------
def feed(hook, norms):
    """Call a global-norm hook on one parameter whose gradient has the given norm; the stepped norms."""
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.0)
    out = []
    for g in norms:
        p.grad = torch.tensor([0.6 * g, 0.8 * g])
        hook(None, opt)
        out.append(float(p.grad.norm()))
    return out


def test_autoclip_threshold_is_the_running_percentile():
    norms = [1.0, 2.0, 3.0, 4.0, 100.0, 5.0, math.nan, 6.0]
    hook = AutoClip(50.0)
    out = feed(hook, norms)
    # median of every finite norm so far, the current one included: 1, 1.5, 2, 2.5, 3, 3.5, -, 4
    assert out[:6] == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0, 3.5], rel=1e-5)
    assert out[7] == pytest.approx(4.0, rel=1e-5)
    assert float(hook.threshold) == pytest.approx(np.percentile([1, 2, 3, 4, 100, 5, 6], 50))


def test_zclip_warms_up_then_clips_outliers_to_mean_plus_z_sigma():
    norms = [1.0, 2.0, 3.0, 10.0, 2.0, 2.5, 30.0]
    hook = ZClip(z_thresh=2.5, alpha=0.97, warmup_steps=3, max_grad_norm=0.0)  # the z-rule alone
    out = feed(hook, norms)
    assert out[:3] == pytest.approx([1.0, 2.0, 3.0])  # warm-up: collected, not clipped
    # after warm-up mu = 2, sigma = sqrt(2/3): 10 has z = 9.8 -> clipped to 2 + 2.5 sqrt(2/3)
    assert out[3] == pytest.approx(2 + 2.5 * math.sqrt(2 / 3), rel=1e-5)
    levels = ref_zclip(norms, 2.5, 0.97, 3)
    assert out == pytest.approx([min(g, lv) for g, lv in zip(norms, levels)], rel=1e-5)
    assert out[4:6] == pytest.approx([2.0, 2.5]) and out[6] < 6
    # the EMA took the clipped norm: mu = 0.97*2 + 0.03*4.04 after step 3 (then more updates)
    mu = 2.0
    for g, lv in zip(norms[3:], levels[3:]):
        mu = 0.97 * mu + 0.03 * min(g, lv)
    assert float(hook.stats.mean) == pytest.approx(mu, rel=1e-5)


def test_zclip_clips_to_its_max_grad_norm_in_warm_up_and_caps_at_it_after_as_its_reference():
    """bluorion-com/ZClip: during warm-up the gradients are clipped to max_grad_norm; after
    it, the norm is min(z-score level or the norm, max_grad_norm); the EMA sees the first."""
    norms = [0.5, 4.0, 3.0, 10.0, 2.0, 30.0]
    hook = ZClip(z_thresh=2.5, alpha=0.97, warmup_steps=3, max_grad_norm=2.5)
    out = feed(hook, norms)
    assert out[:3] == pytest.approx([0.5, 2.5, 2.5])  # warm-up: clipped to the fixed cap
    assert out[3:] == pytest.approx([2.5, 2.0, 2.5], rel=1e-5)
    uncapped = ZClip(z_thresh=2.5, alpha=0.97, warmup_steps=3, max_grad_norm=0.0)
    feed(uncapped, norms)
    assert float(hook.stats.mean) == pytest.approx(float(uncapped.stats.mean))  # the cap is not in the EMA


def test_the_adaptive_clippers_act_before_step_5_on_the_exploding_adding_baseline(data):
    """The adding problem's baseline at lr x1 diverges within its first 5-9 steps; its norm
    falls over the first 4 (about 78, 55, 25, 5) and rises from step 5. zclip (its
    reference's warm-up cap) clips from step 1; autoclip (a percentile of the norms so far)
    clips the first rise, step 5; skip_spikes' z-test is armed by step 4 (a 3-step warm-up),
    so a spike there is already skipped."""
    for arm, within in (("zclip", 1), ("autoclip", 5)):
        spy = GradSpy()
        raw = {"tasks": {"adding_rnn": {"max_steps": 8, "eval_every": 8}}, "strategies": [arm]}
        (spec,) = expand(parse_suite(raw))  # the task as it is: T=50, lr x1
        run_one(spec, data, callbacks=(spy,))
        acted = [gnorm(post) < gnorm(pre) * 0.999 for pre, post in zip(spy.pre[:within], spy.post[:within])]
        assert acted[-1] or (arm == "zclip" and acted[0]), (arm, [gnorm(p) for p in spy.pre[:6]])
    hook = SkipSpikes(**{k: v for k, v in STRATEGIES.get("skip_spikes").defaults.items()})
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.0)
    skipped = []
    for g in [77.7, 55.5, 25.0, 900.0]:  # the baseline's first norms, then a spike at step 4
        p.grad = torch.tensor([0.6 * g, 0.8 * g])
        hook(None, opt)
        skipped.append(p.grad is None)
    assert skipped == [False, False, False, True]


def test_zclip_adaptive_mode_and_nonfinite_norms():
    norms = [1.0, 2.0, 3.0, 10.0]
    out = feed(ZClip(z_thresh=2.5, alpha=0.97, warmup_steps=3, mode="adaptive", max_grad_norm=0.0), norms)
    assert out[3] == pytest.approx(ref_zclip(norms, 2.5, 0.97, 3, mode="adaptive")[3], rel=1e-5)
    hook = ZClip(z_thresh=2.5, alpha=0.97, warmup_steps=3, max_grad_norm=0.0)
    feed(hook, [1.0, 2.0, 3.0])
    mean, var = float(hook.stats.mean), float(hook.stats.var)
    feed(hook, [math.inf])
    assert (float(hook.stats.mean), float(hook.stats.var)) == (mean, var)


@pytest.mark.parametrize(
    "make_opt",
    [lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: torch.optim.Adam(ps, lr=1e-2)],
    ids=["sgd_momentum", "adam"],
)
def test_skip_spikes_keeps_parameters_and_optimizer_state_on_a_spike(make_opt):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = make_opt(net.parameters())
    hook = SkipSpikes(z_thresh=4.0, alpha=0.97, warmup_steps=5)
    x, y = torch.randn(32, 4), torch.randn(32, 1)

    def step(scale):
        opt.zero_grad()
        (scale * (net(x) - y).pow(2).mean()).backward()
        hook(net, opt)
        opt.step()

    for _ in range(10):
        step(1.0)
    params = [p.detach().clone() for p in net.parameters()]
    state = copy.deepcopy(opt.state_dict()["state"])
    step(1e4)  # a spike: dropped
    assert hook.skipped == 1
    assert all(torch.equal(a, b) for a, b in zip(params, net.parameters()))
    after = opt.state_dict()["state"]
    for k, entry in state.items():
        for name, value in entry.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(after[k][name])), name
    step(float("nan"))  # non-finite: dropped too
    assert hook.skipped == 2
    step(1.0)  # an ordinary step is taken again
    assert hook.skipped == 2
    assert not all(torch.equal(a, b) for a, b in zip(params, net.parameters()))


# --- regularization ------------------------------------------------------------------------
def test_weight_decay_is_decoupled_from_the_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    x = torch.randn(8, 5)
    lr, wd = 0.01, 0.1

    def run(mode):
        m = copy.deepcopy(net)
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        m(x).pow(2).mean().backward()
        if mode == "coupled":
            for p in m.parameters():
                if p.dim() > 1:
                    p.grad += wd * p.detach()
        grads = [p.grad.clone() for p in m.parameters()]
        if mode == "decoupled":
            DecoupledWeightDecay(wd)(m, opt)
            assert all(torch.equal(g, p.grad) for g, p in zip(grads, m.parameters()))  # gradient untouched
        opt.step()
        return list(m.parameters())

    plain, dec, coup = run(None), run("decoupled"), run("coupled")
    for p0, pp, pd in zip(net.parameters(), plain, dec):
        if p0.dim() > 1:  # shrunk by lr*wd*p beyond Adam's (unchanged) update
            assert torch.allclose(pd, pp - lr * wd * p0.detach(), atol=1e-7)
        else:  # biases and LayerNorm parameters are not decayed
            assert torch.equal(pd, pp)
    # coupled L2 under Adam is another update: the decay goes through the normalized gradient
    assert any(not torch.allclose(pc, pd, atol=1e-5) for p0, pc, pd in zip(net.parameters(), coup, dec) if p0.dim() > 1)


def test_weight_decay_in_a_run_shrinks_weights_by_one_minus_lr_wd(data):
    wd = 0.5
    _, spy = spied_run({"sgd+weight_decay": {"weight_decay": {"wd": wd}}}, data)
    for pre, post, w0, w1, lr in zip(spy.pre, spy.post, spy.w_pre, spy.w_post, spy.lr):
        assert all(torch.equal(a, b) for a, b in zip(pre, post))  # the hook leaves the gradient alone
        for g, a, b in zip(pre, w0, w1):
            decay = 1 - lr * wd if a.dim() > 1 else 1.0
            assert torch.allclose(b, a * decay - lr * g, atol=1e-6)


@pytest.mark.parametrize(
    "name, coeff, penalty",
    [
        ("l2", 0.01, lambda ws: 0.5 * sum(w.pow(2).sum() for w in ws)),
        ("l1", 0.001, lambda ws: sum(w.abs().sum() for w in ws)),
    ],
    ids=["l2", "l1"],
)
def test_penalties_add_the_documented_amount_to_the_loss(name, coeff, penalty, data):
    spec = one({name: {"coeff": coeff}})
    model, splits = model_of(spec, data)
    module = BenchModule(spec, TASKS.get(spec.task), model)
    total = module.training_step((splits.train_x[:8], splits.train_y[:8]), 0)
    weights = [p for p in model.parameters() if p.dim() > 1]
    assert len(weights) == 3  # the three Linear weights; biases excluded
    expected = coeff * float(penalty(weights).detach())
    assert float((total - module.last_loss).detach()) == pytest.approx(expected, rel=1e-5)


def test_dropout_is_active_in_training_and_off_in_eval(data):
    model, splits = model_of(one({"dropout": {"p": 0.5}}), data)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.5 for d in drops)
    x = splits.train_x[:16]
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    seen = []
    h = drops[0].register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    model(x)
    model.train()
    model(x)
    h.remove()
    assert torch.equal(seen[0][0], seen[0][1])  # eval: identity
    zeroed = ((seen[1][1] == 0) & (seen[1][0] != 0)).float().sum() / (seen[1][0] != 0).float().sum()
    assert 0.3 < float(zeroed) < 0.7  # train: about half dropped


# --- schedules -----------------------------------------------------------------------------
def lr_series(run_dir: pathlib.Path) -> list[float]:
    with open(run_dir / "steps.csv") as fh:
        return [float(row["lr"]) for row in csv.DictReader(fh)]


def test_warmup_gives_the_documented_linear_curve(data, tmp_path):
    rec = run_one(one({"warmup": {"warmup_steps": 4}}, steps=6), data, run_dir=tmp_path / "run")
    assert rec["status"] == "ok"
    base = 0.2 * LR_MULT
    assert lr_series(tmp_path / "run") == pytest.approx([base * f for f in (0.25, 0.5, 0.75, 1, 1, 1)], rel=1e-5)


def test_cosine_decays_to_zero_and_composes_with_warmup(data, tmp_path):
    rec = run_one(one("cosine", steps=8), data, run_dir=tmp_path / "run")
    assert rec["status"] == "ok"
    base = 0.2 * LR_MULT
    lrs = lr_series(tmp_path / "run")
    assert lrs == pytest.approx([base * 0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(8)], rel=1e-5)
    assert lrs[-1] < 0.05 * base and all(a > b for a, b in zip(lrs, lrs[1:]))
    spec = one("warmup+cosine", steps=1000)
    assert spec.schedule == {"warmup_steps": 100, "decay": "cosine"}
    f = lr_lambda(spec.schedule, spec.max_steps)
    assert (f(0), f(99), f(100), f(1000)) == pytest.approx((0.01, 1.0, 1.0, 0.0))


# --- optimizers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "item, cls, lr, extra",
    [
        ("sgd", torch.optim.SGD, 0.2, {"momentum": 0}),
        ("sgd_momentum", torch.optim.SGD, 0.2, {"momentum": 0.9, "nesterov": False}),
        ("nesterov", torch.optim.SGD, 0.2, {"momentum": 0.9, "nesterov": True}),
        ({"sgd": {"lr": 0.05}}, torch.optim.SGD, 0.05, {"momentum": 0}),
        ("adam", torch.optim.Adam, 1e-3, {}),
        ("adamw", torch.optim.AdamW, 1e-3, {"weight_decay": 1e-2}),
        ("adagrad", torch.optim.Adagrad, 1e-2, {}),
        ("adadelta", torch.optim.Adadelta, 1.0, {}),
        ("rmsprop", torch.optim.RMSprop, 1e-3, {"alpha": 0.99}),
        ("lower_lr", torch.optim.SGD, 0.02, {"momentum": 0.9}),
        ("lower_lr+adam", torch.optim.Adam, 1e-4, {}),
        ("adam+lower_lr", torch.optim.Adam, 1e-4, {}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_optimizer_strategies_build_their_optimizer_and_lr(item, cls, lr, extra, data):
    spec = one(item)
    module = BenchModule(spec, TASKS.get(spec.task), model_of(spec, data)[0])
    opt = module.configure_optimizers()["optimizer"]
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(lr * LR_MULT)  # the stress multiplier on top
    for k, v in extra.items():
        assert group[k] == v, k


def test_the_sgd_family_on_an_adam_task_runs_at_the_tasks_sgd_rate():
    """recall's own optimizer is Adam at 5e-3; SGD there starts from the task's declared sgd_lr
    (with any lr scale on top; the stress multiplier applies later), never from Adam's rate."""
    for item, name, lr in (
        ("sgd", "sgd", 0.03),
        ("sgd_momentum", "sgd", 0.03),
        ("nesterov", "sgd", 0.03),
        ("lower_lr+sgd", "sgd", 0.003),
        ({"sgd": {"lr": 0.1}}, "sgd", 0.1),
        ("adam", "adam", 1e-3),
    ):
        spec = one(item, "recall_transformer")
        assert (spec.optimizer["name"], spec.optimizer["lr"]) == (name, pytest.approx(lr)), item
    assert one("sgd").optimizer["lr"] == pytest.approx(0.2)  # an SGD task: its own rate


# --- initialization ------------------------------------------------------------------------
def test_orthogonal_init_makes_the_recurrent_matrix_orthogonal(data):
    w = model_of(one("orthogonal", "adding_rnn"), data)[0].cell.weight_hh_l0.detach()
    eye = torch.eye(w.shape[0])
    assert torch.allclose(w.T @ w, eye, atol=1e-5)
    w0 = model_of(one("baseline", "adding_rnn"), data)[0].cell.weight_hh_l0.detach()
    assert torch.allclose(w0.T @ w0, 2.25 * eye, atol=1e-4)  # the task's exploding gain 1.5
    mlp = model_of(one("orthogonal"), data)[0]
    hidden = mlp[2].f[0].weight.detach()  # 16 x 16
    assert torch.allclose(hidden @ hidden.T, torch.eye(16), atol=1e-5)


def test_xavier_and_kaiming_set_weights_zero_biases_and_cover_the_recurrent_matrix(data):
    model = model_of(one("xavier", small=False), data)[0]
    *hidden, head = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for m in hidden:
        bound = math.sqrt(6 / (m.in_features + m.out_features))
        assert m.weight.abs().max() <= bound and not m.bias.any()
    assert head.bias.any()  # the output layer keeps PyTorch's default (torchvision's convention)
    first = model_of(one("kaiming", small=False), data)[0][1].f[0].weight.detach()  # 256 x 784, relu
    assert float(first.std()) == pytest.approx(math.sqrt(2 / 784), rel=0.05)
    for name in ("xavier", "kaiming"):
        w = model_of(one(name, "adding_rnn"), data)[0].cell.weight_hh_l0.detach()
        assert not torch.allclose(w.T @ w, 2.25 * torch.eye(16), atol=0.5)  # not the 1.5-orthogonal draw


@pytest.mark.parametrize("task", ["mnist_mlp", "cifar10_cnn"])
def test_rezero_blocks_start_as_the_identity(task, data):
    spec = one("rezero", task)
    model, splits = model_of(spec, data)
    x = splits.train_x[:4]
    x = x.float() if x.dtype != torch.uint8 else x.float() / 255
    blocks = [m for m in model.modules() if isinstance(m, Block) and m.residual]
    assert blocks and all(isinstance(b.scale, nn.Parameter) and float(b.scale.detach()) == 0 for b in blocks)
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append((i[0], o))) for b in blocks]
    model(x)
    for h in hooks:
        h.remove()
    assert len(seen) == len(blocks) and all(torch.equal(i, o) for i, o in seen)


@pytest.mark.parametrize("arm", ["residual", "residual+batchnorm"])
@pytest.mark.parametrize("task", ["mnist_mlp", "cifar10_cnn"])
def test_residual_blocks_are_pre_activation_branches_that_start_at_zero(arm, task, data):
    """He et al. (2016b): the branch is norm -> activation -> layer, on an untouched trunk;
    Fixup: the branch's layer starts at zero, so every residual block starts as the identity
    and the net as its non-residual path, whatever its depth."""
    model, splits = model_of(one(arm, task), data)
    blocks = [m for m in model.modules() if isinstance(m, Block) and m.residual]
    assert blocks and all(b.f[-1] is b.layer and not b.layer.weight.any() for b in blocks)
    if "batchnorm" in arm:
        assert all(isinstance(b.f[0], (nn.BatchNorm1d, nn.BatchNorm2d)) for b in blocks)
    x = splits.train_x[:4]
    x = x.float() if x.dtype != torch.uint8 else x.float() / 255
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append((i[0], o))) for b in blocks]
    model.eval()(x)
    for h in hooks:
        h.remove()
    assert len(seen) == len(blocks) and all(torch.equal(i, o) for i, o in seen)


def test_a_plain_models_parameters_keep_their_names():
    """Numerics version 2 changed residual blocks only: a plain model builds as before, with
    the same parameter names in the same order (what per-layer series and optimizers see)."""
    from gradbench.training.models import build_model

    names = [n for n, _ in build_model("mlp", (1, 28, 28), 10, {"depth": 3, "width": 8}).named_parameters()]
    assert names == [
        "1.f.0.weight",
        "1.f.0.bias",
        "2.f.0.weight",
        "2.f.0.bias",
        "3.f.0.weight",
        "3.f.0.bias",
        "4.weight",
        "4.bias",
    ]


def test_the_lstm_forget_gate_bias_starts_at_one(data):
    """Gers et al. (2000), Jozefowicz et al. (2015): PyTorch adds bias_ih and bias_hh; the
    forget gate is the second quarter of each."""
    cell = model_of(one("lstm", "adding_rnn"), data)[0].cell
    h = cell.hidden_size
    total = (cell.bias_ih_l0 + cell.bias_hh_l0).detach()
    assert torch.equal(total[h : 2 * h], torch.ones(h))
    assert not torch.equal(total[:h], torch.ones(h))  # the other gates keep PyTorch's draw
    assert not any(
        torch.equal(p[h : 2 * h], torch.ones(h))
        for n, p in model_of(one("gru", "adding_rnn"), data)[0].cell.named_parameters()
        if "bias" in n
    )


# --- architecture, activations, norms: the knob reaches the built model ----------------------
def test_lstm_and_gru_swap_the_cell(data):
    assert type(model_of(one("baseline", "adding_rnn"), data)[0].cell) is nn.RNN
    assert type(model_of(one("lstm", "adding_rnn"), data)[0].cell) is nn.LSTM
    assert type(model_of(one("gru", "adding_rnn"), data)[0].cell) is nn.GRU


@pytest.mark.parametrize("name", ["shallower", "narrower"])
def test_smaller_models_have_fewer_parameters(name, data):
    for task in SMALL:
        if not STRATEGIES.get(name).applies(FAMILY[task]):
            continue
        base = n_params(model_of(one("baseline", task, small=False), data)[0])
        spec = one(name, task, small=False)
        assert n_params(model_of(spec, data)[0]) < base, task
    assert one("shallower", small=False).model["depth"] == 4  # 8 -> 4
    assert one("narrower", "adding_rnn", small=False).model["hidden"] == 64


ACT_CASES = [
    pytest.param(n, t, id=f"{n}-{t}")
    for n in CATALOGUE
    if STRATEGIES.get(n).family == "activation"
    for t in SMALL
    if STRATEGIES.get(n).applies(FAMILY[t])
]


@pytest.mark.parametrize("name, task", ACT_CASES)
def test_each_activation_appears_in_the_model(name, task, data):
    model = model_of(one(name, task), data)[0]
    if FAMILY[task] == "rnn":
        assert model.cell.nonlinearity == name
        return
    kinds = {type(m) for m in model.modules()} & set(ACTIVATIONS.values())
    assert kinds == {ACTIVATIONS[name]}


@pytest.mark.parametrize(
    "name, task, kind, groups",
    [
        ("batchnorm", "mnist_mlp", nn.BatchNorm1d, None),
        ("batchnorm", "cifar10_cnn", nn.BatchNorm2d, None),
        ("layernorm", "mnist_mlp", nn.LayerNorm, None),
        ("layernorm", "cifar10_cnn", nn.GroupNorm, 1),
        ("groupnorm", "mnist_mlp", nn.GroupNorm, 8),
        ("groupnorm", "cifar10_cnn", nn.GroupNorm, 4),  # min(8, C) with C = 4 in the first stage
    ],
)
def test_each_norm_appears_after_every_hidden_layer(name, task, kind, groups, data):
    model = model_of(one(name, task), data)[0]
    norms = [m for m in model.modules() if type(m) is kind]
    depth = SMALL[task]["model"]["depth"]
    assert len(norms) == depth
    if groups is not None:
        assert norms[0].num_groups == groups


def test_weight_std_standardizes_every_conv_kernel(data):
    model = model_of(one("weight_std", "cifar10_cnn"), data)[0]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(isinstance(c, WSConv2d) for c in convs)
    for c in convs:
        w = standardize(c.weight.detach(), c.gamma).flatten(1)
        assert torch.allclose(w.mean(1), torch.zeros(len(w)), atol=1e-6)
        fan_in = w.shape[1]
        assert torch.allclose(w.pow(2).sum(1), torch.full((len(w),), c.gamma**2), rtol=1e-3)
        assert c.gain.dim() == 1 and c.gain.shape[0] == c.out_channels  # 1-D: not decayed, not AGC'd as a kernel
        assert fan_in == c.in_channels * 9


# --- your own strategy: the example plugin -----------------------------------------------------
def test_example_plugin_runs_in_a_suite(data, tmp_path):
    shutil.copy(REPO / "examples" / "my_strategies.py", tmp_path / "my_strategies.py")
    (tmp_path / "suite.yaml").write_text(
        "name: mine\n"
        "plugins: [my_strategies.py]\n"
        "tasks:\n"
        "  mnist_mlp: {max_steps: 4, eval_every: 4, batch_size: 16, model: {depth: 2, width: 16}}\n"
        "stress: {lr_mult: [0.1]}\n"
        "strategies:\n"
        "  - clip_per_tensor\n"
        "  - clip_per_tensor: {max_norm: 0.05}\n"
    )
    suite = load_suite(tmp_path / "suite.yaml")
    assert "clip_per_tensor" in STRATEGIES
    recs = run_suite(suite, tmp_path / "mine.jsonl", data, log=lambda s: None)
    assert [r["strategy"]["label"] for r in recs] == ["clip_per_tensor", "clip_per_tensor(max_norm=0.05)"]
    for rec, c in zip(recs, (0.1, 0.05)):
        assert rec["status"] == "ok", rec["reason"]
        st = rec["stability"]
        assert st["clip_fraction"] > 0 and st["post_clip_max"] <= math.sqrt(6) * c * (1 + 1e-5)  # 6 tensors


# --- the update rules torch does not ship, against their papers' formulas ----------------------
def two_steps(opt_cls, grads, **kw):
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    opt = opt_cls([p], **kw)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(p.detach().clone())
    return out


def test_stable_adamw_is_adamw_with_per_tensor_update_clipping():
    """Wortsman et al. (2023), Algorithm 2 and the authors' reference: debiased betas, the step
    divided by max(1, RMS(g^2 / max(u, eps^2)) / d), decay at the full lr."""
    from gradbench.training.update_rules import StableAdamW

    lr, b1, b2, eps, wd, d = 0.1, 0.9, 0.99, 1e-6, 0.2, 1.0
    grads = [[1.0, -1.0, 2.0], [10.0, 0.1, -30.0]]  # a spike at step 2
    got = two_steps(StableAdamW, grads, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, d=d)
    theta = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    v = u = torch.zeros(3, dtype=torch.float64)
    rms_seen = []
    for t, g in enumerate(grads, start=1):
        g = torch.tensor(g, dtype=torch.float64)
        bh1, bh2 = b1 * (1 - b1 ** (t - 1)) / (1 - b1**t), b2 * (1 - b2 ** (t - 1)) / (1 - b2**t)
        v, u = bh1 * v + (1 - bh1) * g, bh2 * u + (1 - bh2) * g * g
        rms = float(torch.sqrt(torch.mean(g * g / torch.clamp(u, min=eps**2))))
        rms_seen.append(rms)
        theta = theta * (1 - lr * wd) - lr / max(1.0, rms / d) * v / (torch.sqrt(u) + eps)
        assert torch.allclose(got[t - 1], theta, rtol=1e-12), t
    assert rms_seen[0] == pytest.approx(1.0) and rms_seen[1] > 1.1  # the spike's step is clipped


def test_lion_steps_by_the_sign_of_interpolated_momentum():
    """Chen et al. (2023), Program 1."""
    from gradbench.training.update_rules import Lion

    lr, b1, b2, wd = 0.01, 0.9, 0.99, 0.1
    grads = [[1.0, -1.0, 2.0], [-3.0, 0.5, 0.0]]
    got = two_steps(Lion, grads, lr=lr, betas=(b1, b2), weight_decay=wd)
    theta, m = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for t, g in enumerate(grads):
        g = torch.tensor(g, dtype=torch.float64)
        theta = theta - lr * (torch.sign(b1 * m + (1 - b1) * g) + wd * theta)
        m = b2 * m + (1 - b2) * g
        assert torch.allclose(got[t], theta, rtol=1e-12), t
    first_step = got[0] - torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) * (1 - lr * wd)
    assert torch.allclose(first_step, torch.tensor([-lr, lr, -lr], dtype=torch.float64))  # a fixed-size step


# --- the transformer: QK-LayerNorm, z-loss, and the attention logits it records -------------
def test_qk_norm_normalizes_each_heads_queries_and_keys(data):
    from gradbench.training.transformer import CausalSelfAttention

    plain = model_of(one("baseline", "recall_transformer"), data)[0]
    normed, splits = model_of(one("qk_norm", "recall_transformer"), data)
    attn = [m for m in normed.modules() if isinstance(m, CausalSelfAttention)]
    assert attn and all(isinstance(a.q_norm, nn.LayerNorm) and a.q_norm.normalized_shape == (8,) for a in attn)
    assert not any(isinstance(m, nn.LayerNorm) and m.normalized_shape == (8,) for m in plain.modules())
    seen = []
    hook = attn[0].q_norm.register_forward_hook(lambda m, i, o: seen.append(o))
    normed(splits.train_x[:4])
    hook.remove()
    q = seen[0]  # [batch, heads, tokens, head_dim]: each head's query has mean 0 and variance 1
    assert torch.allclose(q.mean(-1), torch.zeros(()), atol=1e-5)
    assert torch.allclose(q.var(-1, unbiased=False), torch.ones(()), atol=1e-3)


def test_the_attention_logit_max_is_the_largest_logit_a_query_attends_to(data):
    model, splits = model_of(one("baseline", "recall_transformer"), data)
    x = splits.train_x[:4]
    logits = []
    hooks = [
        b.attn.qkv.register_forward_hook(
            lambda m, i, o, a=b.attn: logits.append(_causal_logits(o, a.heads, a.head_dim))
        )
        for b in model.blocks
    ]
    model(x)
    for h in hooks:
        h.remove()
    expected = max(float(t.detach().max()) for t in logits)
    assert float(model.attention_logit_max) == pytest.approx(expected, rel=1e-6)


def _causal_logits(qkv, heads, head_dim):
    b, t, _ = qkv.shape
    q, k, _ = qkv.view(b, t, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
    future = ~torch.ones(t, t, dtype=torch.bool).tril()
    return logits.masked_fill(future, -math.inf)


def test_a_transformer_run_records_its_attention_logits_per_step_and_the_page_plots_them(data, tmp_path):
    from gradbench import cli
    from gradbench.store.jsonl import append

    rec = run_one(one("baseline", "recall_transformer", lr_mult=1.0), data, run_dir=tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "steps.csv")))
    assert len(rows) == STEPS and all(float(r["attn_logit_max"]) > 0 for r in rows)
    assert rec["stability"]["attn_logit_max"] == pytest.approx(max(float(r["attn_logit_max"]) for r in rows), rel=1e-5)
    assert len(rec["stability"]["attn_logit_curve"]) == STEPS
    other = run_one(one("baseline", "mnist_mlp"), data)  # a model without attention has no such keys
    assert "attn_logit_max" not in other["stability"]
    append(tmp_path / "r.jsonl", rec)
    assert cli.main(["leaderboard", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "page")]) == 0
    assert "(attention_logits_recall_transformer.png)" in (tmp_path / "page" / "README.md").read_text()
    assert (tmp_path / "page" / "attention_logits_recall_transformer.png").stat().st_size > 0


def test_z_loss_adds_coeff_times_the_squared_log_normalizer(data):
    """PaLM's z-loss (Chowdhery et al., 2022): coeff * mean over examples of log(sum exp(logits))^2."""
    spec = one("z_loss", "recall_transformer")
    assert spec.loss_terms == {"z_loss": 1e-4}
    model, splits = model_of(spec, data)
    module = BenchModule(spec, TASKS.get(spec.task), model)
    x, y = splits.train_x[:8], splits.train_y[:8]
    logits = model(x).detach().double()
    ce = torch.nn.functional.cross_entropy(logits, y)
    z = torch.log(torch.exp(logits).sum(-1))
    assert float(module.training_step((x, y), 0).detach()) == pytest.approx(float(ce + 1e-4 * (z**2).mean()), rel=1e-5)
    assert float(module.last_loss) == pytest.approx(float(ce), rel=1e-5)  # the monitor sees the task's loss


def test_z_loss_is_not_applicable_to_a_regression_task(data, tmp_path):
    suite = parse_suite(suite_raw(["z_loss", "qk_norm"], tasks=("adding_rnn",)))
    runs = expand(suite)
    assert [r.reason for r in runs] == [
        "z_loss acts on softmax logits; adding_rnn has a mse loss",
        "qk_norm applies to transformer models, not rnn",
    ]


def test_a_narrower_transformer_keeps_its_width_a_multiple_of_its_heads():
    spec = one("narrower", "recall_transformer", small=False)
    assert spec.model["width"] == 32
    assert one("narrower", "recall_transformer").model["width"] == 8  # 16 x 0.5 with 2 heads
    with pytest.raises(UserError, match="multiple of heads"):
        build_model("transformer", (7, 8), 4, {"width": 10, "heads": 4})


# --- initialization: the output layer keeps PyTorch's default -------------------------------
REAL = {"cifar10_cnn": ("cifar10", "cifar-10-batches-py"), "mnist_mlp": ("mnist", "MNIST")}


@pytest.mark.parametrize("arm", ["baseline", "residual", "residual+batchnorm"])
@pytest.mark.parametrize("task_name", ["cifar10_cnn", "mnist_mlp"])
def test_the_heads_keep_pytorchs_default_and_every_seeds_step_0_loss_is_below_3(task_name, arm):
    """A head drawn with He's gain starts the logits so large that a residual CNN's step-0
    loss reached 4.0 (seed 1); with PyTorch's default, as torchvision's ResNet keeps it, every
    seed starts below 3 on the real images (skipped where they are not laid out)."""
    dataset, folder = REAL[task_name]
    root = REPO / "data"
    if not (root / folder).is_dir():
        pytest.skip(f"no real {dataset} under data/ (lay it out with /work/shared/data/prepare)")
    from gradbench.training.data import TensorDataModule

    task = TASKS.get(task_name)
    spec = one(arm, task_name, small=False)
    splits = load_dataset(dataset, root)
    x = TensorDataModule(splits, 128, seed=0).transform(splits.train_x[:128].clone())
    for seed in range(5):
        torch.manual_seed(seed)
        model = build_model(task.model_family, splits.input_shape, 10, spec.model)
        head = model[-1]
        assert head.weight.abs().max() <= 1 / math.sqrt(head.in_features)  # U(+-1/sqrt(fan_in)), not He's N
        loss = torch.nn.functional.cross_entropy(model(x), splits.train_y[:128]).detach()
        assert float(loss) < 3.0, (arm, seed, float(loss))
