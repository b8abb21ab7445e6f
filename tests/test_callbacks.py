"""gradbench's gradient strategies as Callbacks in a Trainer gradbench did not set up: the same
arithmetic as inside a gradbench run, acting before Lightning's own clipping, and the
README's snippet runs as written."""

from __future__ import annotations

import re

import lightning.pytorch as L
import pytest
import torch
from conftest import REPO

from gradbench.callbacks import AGC, AutoClip, ZClip
from gradbench.suite import expand, parse_suite
from gradbench.training.run import run_one

SMALL = {"max_steps": 30, "eval_every": 10, "batch_size": 32, "model": {"depth": 3, "width": 32}}


def spec(strategy: str):
    return expand(parse_suite({"tasks": {"mnist_mlp": SMALL}, "strategies": [strategy], "threads": 1}))[0]


def test_callbacks_do_the_same_arithmetic_as_the_benchmarks_hooks(tiny_data):
    """agc+autoclip as a gradbench arm, and as two callbacks on a baseline run: the same
    validation curve, test metric and pre-clip gradient norms, bit for bit."""
    inside = run_one(spec("agc+autoclip"), tiny_data)
    outside = run_one(spec("baseline"), tiny_data, callbacks=(AGC(), AutoClip()))
    assert inside["status"] == outside["status"] == "ok"
    assert inside["metrics"]["val_curve"] == outside["metrics"]["val_curve"]
    assert inside["metrics"]["test"] == outside["metrics"]["test"]
    for key in ("grad_norm_p50", "grad_norm_max"):
        assert inside["stability"][key] == outside["stability"][key], key
    assert inside["metrics"]["val_curve"] != run_one(spec("baseline"), tiny_data)["metrics"]["val_curve"]


class UserModel(L.LightningModule):
    """A LightningModule as a user writes it: nothing from gradbench."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def user_data(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True) * 3), batch_size=32)


def test_callbacks_act_before_lightnings_gradient_clip_val():
    """With gradient_clip_val set, the callback sees the unclipped gradients (its norm history
    goes above the clip value) and Lightning clips what it leaves."""
    autoclip = AutoClip(percentile=50.0)
    trainer = L.Trainer(
        max_steps=12,
        gradient_clip_val=1e-3,
        callbacks=[autoclip],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(UserModel(), user_data())
    seen = autoclip.transform.history[: autoclip.transform.n]
    assert autoclip.transform.n == 12 and float(seen.max()) > 1e-3


def test_a_bad_parameter_names_the_valid_ones():
    with pytest.raises(TypeError, match=r"ZClip: unknown parameter\(s\) \['z'\]; it takes \['z_thresh'"):
        ZClip(z=3)


def test_the_readmes_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever the Trainer writes stays out of the checkout
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use it on your own model", 1)[1].split("\n## ", 1)[0]
    snippets = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert snippets
    for code in snippets:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme_snippet"})
