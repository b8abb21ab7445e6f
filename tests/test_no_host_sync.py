"""The training step reads no number back from a tensor, so on a GPU it never waits for the
device (issue: "no host syncs in the step"). On the CPU a read costs nothing, but it still
goes through aten::_local_scalar_dense (.item(), float(t), bool(t), int(t)), which a
TorchDispatchMode sees: these tests count those reads between on_train_batch_start and
on_train_batch_end, with the monitor's divergence check (its one deliberate read) moved out
of the run, as it is every `sync_every` steps on a GPU.
"""

from __future__ import annotations

import lightning.pytorch as L
import pytest
import torch
from test_stability import InjectNaN
from torch.utils._python_dispatch import TorchDispatchMode

from gradbench.suite import expand, parse_suite
from gradbench.training.run import run_one

SMALL = {"depth": 2, "width": 32}


class _ScalarReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class CountReadsPerStep(L.Callback):
    """Host reads of tensor values in each training step (forward, backward, clipping, the
    gradient hooks, the monitor's hooks and the optimizer step)."""

    def __init__(self):
        self.per_step: list[int] = []
        self._mode = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._mode = _ScalarReads()
        self._mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._mode.__exit__(None, None, None)
        self.per_step.append(self._mode.count)


def run(tiny_data, strategy: str, monitor: dict, steps: int = 12, callbacks=()):
    raw = {
        "tasks": {"mnist_mlp": {"max_steps": steps, "eval_every": steps, "batch_size": 32, "model": SMALL}},
        "strategies": [strategy],
        "stress": {"lr_mult": [0.05]},
        "monitor": monitor,
    }
    probe = CountReadsPerStep()
    rec = run_one(expand(parse_suite(raw))[0], tiny_data, callbacks=(probe, *callbacks))
    return rec, probe.per_step


# a check interval longer than the run: the monitor reads its buffer only after training ends
NO_CHECK = {"sync_every": 1000, "layer_every": 5}


# SGD+momentum (every task's optimizer) and what acts around it. Not Adam & co.: torch keeps
# their step count as a host tensor on purpose and reads it each step, which costs no device sync.
@pytest.mark.parametrize(
    "strategy",
    [
        "baseline",
        "clip_norm",
        "clip_value",
        "agc",
        "autoclip",
        "zclip",
        "warmup",
        "cosine",
        "l2",
        "weight_decay",
        "batchnorm",
        "dropout",
    ],
)
def test_a_training_step_reads_nothing_back_from_the_device(tiny_data, strategy):
    rec, reads = run(tiny_data, strategy, NO_CHECK)
    assert rec["status"] == "ok", rec["reason"]
    assert len(reads) == 12
    assert reads == [0] * 12, f"{strategy}: host reads per step {reads}"


def test_skip_spikes_pays_its_documented_one_read_per_step(tiny_data):
    """Deciding to drop a step needs the decision on the host: one read, and only one."""
    rec, reads = run(tiny_data, "skip_spikes", NO_CHECK)
    assert rec["status"] == "ok", rec["reason"]
    assert reads == [1] * 12


def test_the_divergence_check_reads_once_per_interval(tiny_data):
    """With sync_every=4 (a GPU-like setting), only every 4th step reads the buffer."""
    rec, reads = run(tiny_data, "baseline", {"sync_every": 4, "layer_every": 3})
    assert rec["status"] == "ok", rec["reason"]
    assert [i for i, n in enumerate(reads) if n] == [3, 7, 11]


class PoisonParameters(L.Callback):
    """Make a weight non-finite right after the optimizer step of step k (loss and gradient
    of step k stay finite: only the parameter check can see it)."""

    def __init__(self, k: int):
        self.k = k

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.k + 1:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("inf")


def test_a_deferred_check_still_names_the_step_that_diverged(tiny_data):
    """Checked every 4 steps, a NaN gradient at step 5 is found at the step-8 check and
    recorded as step 5; training stops there, not at the end of the budget."""
    rec, _ = run(tiny_data, "baseline", {"sync_every": 4}, steps=30, callbacks=(InjectNaN(5),))
    assert rec["status"] == "diverged"
    assert rec["stability"]["diverged_at_step"] == 5
    assert "non-finite gradient norm at step 5" in rec["reason"]
    assert rec["metrics"]["steps"] == 8


def test_non_finite_parameters_are_found_by_the_deferred_check(tiny_data):
    """The parameter check runs with the per-layer statistics (every layer_every steps) and
    is read at the next divergence check: poisoned after step 5's update, the weights are
    seen at the step-6 snapshot and recorded as diverged at step 6."""
    rec, _ = run(tiny_data, "baseline", {"sync_every": 4, "layer_every": 3}, steps=30, callbacks=(PoisonParameters(5),))
    assert rec["status"] == "diverged"
    assert rec["stability"]["diverged_at_step"] == 6
    assert rec["reason"].startswith("non-finite")
