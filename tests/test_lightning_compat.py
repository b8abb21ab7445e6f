"""What gradbench relies on inside Lightning (training/lightning_compat.py, items 1-5), each
checked on the installed Lightning: a release that changes one of these fails here, by name,
rather than silently slowing runs down or moving numbers."""

from __future__ import annotations

import inspect
import os
import signal
import typing

import lightning
import lightning.pytorch as L
import pytest
import torch

from gradbench.suite import config, expand, parse_suite
from gradbench.training import lightning_compat
from gradbench.training.lightning_compat import (
    HOOK_NAME_ATTRIBUTE,
    NullProfiler,
    precomputed_signature,
)
from gradbench.training.run import run_one


def tiny_spec(steps=6):
    raw = {
        "tasks": {
            "mnist_mlp": {"max_steps": steps, "eval_every": steps, "batch_size": 16, "model": {"depth": 1, "width": 8}}
        },
        "strategies": ["clip_norm"],
    }
    return expand(parse_suite(raw))[0]


def test_lightning_is_the_pinned_version():
    """constraints.txt pins the Lightning these items were checked on."""
    from conftest import REPO

    pins = dict(
        line.split("==")
        for line in (REPO / "constraints.txt").read_text().split()
        if "==" in line and not line.startswith("#")
    )
    assert lightning.__version__ == pins["lightning"]


def test_1_every_hook_goes_through_the_profiler(tiny_data, monkeypatch):
    calls = []
    monkeypatch.setattr(NullProfiler, "profile", lambda self, name: calls.append(name) or NullProfiler._NULL)
    rec = run_one(tiny_spec(), tiny_data)
    assert rec["status"] == "ok", rec["reason"]
    assert any("training_step" in c for c in calls) and any("optimizer_step" in c for c in calls)


def test_2_lightning_sets_the_hook_name_attribute_on_the_module(tiny_data, monkeypatch):
    from gradbench.training.module import BenchModule

    seen = set()
    plain = lightning_compat.LeanSetattr.__setattr__

    def spy(self, name, value):
        if name == HOOK_NAME_ATTRIBUTE:
            seen.add(value)
        plain(self, name, value)

    monkeypatch.setattr(lightning_compat.LeanSetattr, "__setattr__", spy)
    rec = run_one(tiny_spec(), tiny_data)
    assert rec["status"] == "ok", rec["reason"]
    assert "training_step" in seen, f"Lightning no longer sets {HOOK_NAME_ATTRIBUTE}; drop it from LeanSetattr"
    assert HOOK_NAME_ATTRIBUTE in BenchModule._plain_attributes


def test_3_lightning_reads_training_steps_signature_through_inspect():
    """Lightning decides whether to pass batch_idx from the signature inspect reports, which is
    __signature__ when set: a stored signature without batch_idx makes it pass only the batch."""
    from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

    def training_step(self, batch, batch_idx):
        return batch

    assert is_param_in_hook_signature(training_step, "batch_idx", min_args=3)
    training_step.__signature__ = inspect.Signature(list(inspect.signature(training_step).parameters.values())[:2])
    assert not is_param_in_hook_signature(training_step, "batch_idx", min_args=3)
    assert precomputed_signature(lambda self, batch, batch_idx: 0).__signature__ is not None


def test_4_lightning_turns_ctrl_c_inside_fit_into_sys_exit(tiny_data):
    """execution/interrupts.py undoes this; if Lightning let KeyboardInterrupt through, that
    code would be dead and this test says so."""

    class CtrlC(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SystemExit):
            run_one(tiny_spec(), tiny_data, callbacks=(CtrlC(),))
    finally:
        signal.signal(signal.SIGINT, before)


def test_5_hook_order_around_the_optimizer_step(tiny_data):
    """on_before_optimizer_step (the monitor's pre-clip norm) comes before
    configure_gradient_clipping, which comes before the optimizer step, once per step."""
    order = []

    class Spy(L.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            if not any(isinstance(h, _Tap) for h in pl_module.post_clip_hooks):
                pl_module.post_clip_hooks.append(_Tap(order))
                optimizer.register_step_post_hook(lambda *a: order.append("step"))
            order.append("before_optimizer_step")

    rec = run_one(tiny_spec(steps=3), tiny_data, callbacks=(Spy(),))
    assert rec["status"] == "ok", rec["reason"]
    assert order[:3] == ["before_optimizer_step", "clipping", "step"]
    assert order.count("before_optimizer_step") == order.count("clipping") == order.count("step") == 3


def test_6_global_step_counts_optimizer_steps_and_batches_that_stepped_counts_batches(tmp_path):
    """Manual optimization with two optimizers: global_step advances twice a batch, the
    training-step count the standalone monitor keys its rows on once."""
    import torch

    from gradbench.training.lightning_compat import batches_that_stepped

    seen = []

    class Two(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            seen.append((self.trainer.global_step, batches_that_stepped(self.trainer)))
            for opt in self.optimizers():
                opt.zero_grad()
                self.manual_backward(self.b(self.a(batch[0])).pow(2).mean())
                opt.step()

        def configure_optimizers(self):
            return torch.optim.SGD(self.a.parameters(), lr=0.1), torch.optim.SGD(self.b.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(40, 4)), batch_size=8)
    trainer = L.Trainer(
        max_steps=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Two(), data)
    assert seen == [(0, 0), (2, 1), (4, 2)]


class _Tap:
    def __init__(self, order):
        self.order = order

    def __call__(self, module, optimizer):
        self.order.append("clipping")


def test_the_suite_file_knows_lightnings_names():
    """The values the suite accepts for trainer.strategy and trainer.precision are ones this
    Lightning accepts."""
    from lightning.fabric.connector import _PRECISION_INPUT
    from lightning.pytorch.strategies import StrategyRegistry

    ours = set(typing.get_args(config.TrainerStrategy)) - {"auto"}
    assert ours <= set(StrategyRegistry.available_strategies()), ours - set(StrategyRegistry.available_strategies())
    theirs = {a for t in typing.get_args(_PRECISION_INPUT) for a in typing.get_args(t)}
    assert set(typing.get_args(config.Precision)) <= theirs


def test_4_lightning_turns_sigterm_inside_fit_into_a_signal_exit(tiny_data):
    """On SIGTERM Lightning's loops raise SIGTERMException, which must stay one of
    SIGNAL_EXITS (a SystemExit), so execution/interrupts.py turns it into an interrupt."""
    from gradbench.training.lightning_compat import SIGNAL_EXITS

    class Term(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SIGNAL_EXITS) as e:
            run_one(tiny_spec(steps=50), tiny_data, callbacks=(Term(),))
        assert type(e.value).__name__ == "SIGTERMException"
    finally:
        signal.signal(signal.SIGTERM, before)


def test_global_norm_is_the_formula_the_records_were_made_with():
    """grad_hooks.global_norm calls torch's public get_total_norm; for the float32 gradients
    every run has, it is the recorded formula bit for bit."""
    from gradbench.catalogue.grad_hooks import global_norm

    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(s, generator=g) * 10**e for e, s in enumerate([(64, 784), (64,), (10, 64), (3, 3, 8, 8)])]
    recorded = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    assert torch.equal(global_norm(grads), recorded)
