"""What gradbench takes out of Lightning's per-step loop, without changing a number: the
profiler's per-hook context managers and the batch transfer walk (benchmarks/README.md), and
the monitor's own time, which every record keeps."""

from __future__ import annotations

import lightning.pytorch as L
import torch

from gradbench.catalogue.tasks import TASKS
from gradbench.suite import expand, parse_suite
from gradbench.training.lightning_compat import NullProfiler
from gradbench.training.models import build_model
from gradbench.training.module import BenchModule
from gradbench.training.run import run_one


def spec(monitor: bool = True):
    raw = {
        "tasks": {
            "mnist_mlp": {"max_steps": 12, "eval_every": 12, "batch_size": 32, "model": {"depth": 2, "width": 16}}
        },
        "strategies": ["baseline"],
        "stress": {"lr_mult": [0.1]},
        "monitor": {"enabled": monitor},
    }
    return expand(parse_suite(raw))[0]


class SeeProfiler(L.Callback):
    def on_train_start(self, trainer, pl_module):
        self.profiler = trainer.profiler


def test_runs_use_the_null_profiler(tiny_data):
    seen = SeeProfiler()
    rec = run_one(spec(), tiny_data, callbacks=(seen,))
    assert rec["status"] == "ok", rec["reason"]
    assert isinstance(seen.profiler, NullProfiler)


def test_the_null_profiler_hands_back_one_shared_null_context():
    prof = NullProfiler()
    first, second = prof.profile("[LightningModule]BenchModule.training_step"), prof.profile("other")
    assert first is second
    with first:
        with second:  # hooks nest (a callback hook inside the optimizer step): the context is reentrant
            pass


def module():
    s = spec()
    return BenchModule(s, TASKS.get("mnist_mlp"), build_model("mlp", (1, 28, 28), 10, s.model))


def test_a_batch_already_on_the_device_is_passed_through_untouched():
    batch = (torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    out = module().transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert out is batch


def test_a_batch_elsewhere_is_still_moved_by_lightning():
    batch = (torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long))
    out = module().transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert all(t.device.type == "meta" for t in out)


def test_the_record_keeps_the_monitors_own_time(tiny_data):
    rec = run_one(spec(), tiny_data)
    t = rec["timings"]
    assert rec["status"] == "ok", rec["reason"]
    assert 0 < t["monitor_s"] < t["train_s"]
    off = run_one(spec(monitor=False), tiny_data)
    assert off["status"] == "ok" and off["timings"]["monitor_s"] is None
