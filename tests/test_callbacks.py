"""gradbench's gradient strategies as Callbacks in a Trainer gradbench did not set up: the same
arithmetic as inside a gradbench run, acting before Lightning's own clipping, and the
docs/own-model.md snippets run as written."""

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


def test_the_own_model_docs_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever the Trainer writes stays out of the checkout
    section = (REPO / "docs" / "own-model.md").read_text()
    snippets = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(snippets) >= 4
    namespace = {"__name__": "readme_snippet"}  # one after the other, as a reader runs them in one session
    for code in snippets:
        exec(compile(code, "docs/own-model.md", "exec"), namespace)
    assert namespace["resumed"].transform.n == 16  # the resume snippet's AutoClip went on from its checkpoint


def fit_user_model(callbacks, tmp_path, steps=24, lr=0.02, model=None, **trainer):
    from lightning.pytorch.loggers import CSVLogger

    model = model or UserModel()
    model.configure_optimizers = lambda: torch.optim.SGD(model.parameters(), lr=lr)
    t = L.Trainer(
        max_steps=steps,
        callbacks=callbacks,
        logger=CSVLogger(tmp_path, name="user"),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer,
    )
    t.fit(model, user_data())
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    return t, rows


def test_the_standalone_monitor_logs_what_it_measures_to_the_users_logger(tmp_path):
    from gradbench.callbacks import StabilityMonitor

    monitor = StabilityMonitor(layer_every=8)
    trainer, rows = fit_user_model([monitor, ZClip(warmup_steps=4)], tmp_path)
    series = monitor.series()
    logged = {int(r["step"]): r for r in rows if r.get("stability/grad_norm")}
    assert sorted(logged) == list(range(24)) and len(series) == 24
    for step, (loss, pre, post) in enumerate(series):
        r = logged[step]
        assert float(r["stability/grad_norm"]) == pytest.approx(pre, rel=1e-6)
        assert float(r["stability/grad_norm_clipped"]) == pytest.approx(post, rel=1e-6)
        assert float(r["stability/loss"]) == pytest.approx(loss, rel=1e-6) and loss > 0
        assert post <= pre * (1 + 1e-6)  # ZClip acted after the monitor read the pre-clip norm
    layer_steps = {int(r["step"]) for r in rows if r.get("layers/net.0.weight/grad_norm")}
    assert layer_steps == {0, 8, 16}
    summary = next(r for r in rows if r.get("stability_summary/grad_norm_max"))
    assert float(summary["stability_summary/grad_norm_max"]) == pytest.approx(series[:, 1].max(), rel=1e-6)
    assert monitor.diverged_at is None and trainer.global_step == 24


def test_the_standalone_monitor_stops_a_diverging_run_or_only_says_so(tmp_path, caplog):
    from gradbench.callbacks import StabilityMonitor

    stopping = StabilityMonitor()
    with caplog.at_level("WARNING", logger="gradbench.monitor"):
        trainer, _ = fit_user_model([stopping], tmp_path / "a", steps=40, lr=50.0)
    assert stopping.diverged_at is not None and "at step" in stopping.reason
    assert trainer.global_step == stopping.diverged_at + 1
    said = [r.getMessage() for r in caplog.records if r.name == "gradbench.monitor"]
    assert said == [f"gradbench StabilityMonitor: the run diverged ({stopping.reason}); training stops here"]
    caplog.clear()
    watching = StabilityMonitor(stop_on_divergence=False)
    with caplog.at_level("WARNING", logger="gradbench.monitor"):
        trainer, _ = fit_user_model([watching], tmp_path / "b", steps=40, lr=50.0)
    assert watching.diverged_at == stopping.diverged_at and trainer.global_step == 40
    said = [r.getMessage() for r in caplog.records if r.name == "gradbench.monitor"]
    assert len(said) == 1 and said[0].endswith("training goes on (stop_on_divergence=False)")  # once, not each step


def test_a_monitor_listed_after_a_gradient_callback_is_warned_about(tmp_path):
    from gradbench.callbacks import StabilityMonitor

    with pytest.warns(UserWarning, match="list the monitor first"):
        fit_user_model([ZClip(), StabilityMonitor()], tmp_path, steps=4)


def test_the_standalone_monitor_reads_what_gradbenchs_own_monitor_reads(tiny_data):
    """On a clip_norm run (Lightning's gradient_clip_val), the standalone monitor's pre-clip and
    post-clip norms are the benchmark's own monitor's, step by step: before clipping is before
    clipping, after is after."""
    from gradbench.callbacks import StabilityMonitor

    standalone = StabilityMonitor()
    record = run_one(spec("clip_norm"), tiny_data, callbacks=(standalone,))
    ours = standalone.series()
    assert record["status"] == "ok" and len(ours) == 30
    assert float(ours[:, 1].max()) == pytest.approx(record["stability"]["grad_norm_max"], rel=1e-6)
    assert float(ours[:, 2].max()) == pytest.approx(record["stability"]["post_clip_max"], rel=1e-6)
    assert (ours[:, 2] <= 1.0 + 1e-5).all() and (ours[:, 1] > 1.0).any()  # clip_norm's max_norm is 1


def test_the_standalone_monitor_under_gradient_accumulation_and_after_a_resume(tmp_path):
    from gradbench.callbacks import StabilityMonitor

    raw = []

    class Recording(UserModel):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            raw.append(float(loss.detach()))
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.02)

    def accumulating(steps, monitor):
        return L.Trainer(
            max_steps=steps,
            accumulate_grad_batches=2,
            callbacks=[monitor],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
        )

    monitor = StabilityMonitor()
    trainer = accumulating(6, monitor)
    trainer.fit(Recording(), user_data())
    loss = monitor.series()[:, 0]
    assert len(loss) == 6 and loss == pytest.approx(raw[1::2], rel=1e-6)  # each step's last micro-batch
    ckpt = tmp_path / "at6.ckpt"
    trainer.save_checkpoint(ckpt)
    resumed = StabilityMonitor()
    trainer = accumulating(10, resumed)
    trainer.fit(Recording(), user_data(), ckpt_path=ckpt)
    assert resumed.diverged_at is None and trainer.global_step == 10
    assert resumed.summary()["grad_norm_max"] > 0 and len(resumed.series()) == 10


class AttentionUserModel(UserModel):
    """A user's model whose network tells its largest attention logit, as gradbench's
    transformer does: here a stand-in that grows with the weights."""

    class Net(torch.nn.Sequential):
        @property
        def attention_logit_max(self):
            return self[0].weight.detach().abs().max() * 10

    def __init__(self):
        super().__init__()
        self.net = self.Net(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))


def test_the_standalone_monitor_logs_a_users_attention_logits(tmp_path):
    from gradbench.callbacks import StabilityMonitor

    monitor = StabilityMonitor()
    model = AttentionUserModel()
    expected = []
    model.on_before_optimizer_step = lambda optimizer: expected.append(float(model.net.attention_logit_max))
    _, rows = fit_user_model([monitor], tmp_path, steps=6, model=model)
    logged = {int(r["step"]): float(r["stability/attn_logit_max"]) for r in rows if r.get("stability/attn_logit_max")}
    assert sorted(logged) == list(range(6))
    assert [logged[s] for s in range(6)] == pytest.approx(expected, rel=1e-6)
    assert monitor.summary()["attn_logit_max"] == pytest.approx(max(expected), rel=1e-6)


class ManualClipping(UserModel):
    """Manual optimization with the user's own clipping, as Lightning's docs show it; it keeps
    its own probe of the norm before and after the clip."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.probe: list[tuple[float, float]] = []

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        before = float(torch.nn.utils.get_total_norm([p.grad for p in self.parameters()]))
        self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
        after = float(torch.nn.utils.get_total_norm([p.grad for p in self.parameters()]))
        self.probe.append((before, after))
        opt.step()
        return loss


def test_the_monitor_reads_the_pre_clip_norm_under_manual_optimization(tmp_path):
    """The user clips with self.clip_gradients before opt.step(): the monitor's pre-clip norm is
    the probe's norm before that clip at every step, its post-clip norm the one after, and the
    summary's maximum and clip fraction are the unclipped run's. It says once how it reads."""
    from gradbench.callbacks import StabilityMonitor

    watch = StabilityMonitor()
    model = ManualClipping()
    with pytest.warns(UserWarning, match="under manual optimization"):
        fit_user_model([watch], tmp_path, steps=40, model=model)
    series = watch.series()
    probe = torch.tensor(model.probe, dtype=torch.float64).numpy()
    assert len(series) == len(probe) == 40
    assert series[:, 1] == pytest.approx(probe[:, 0], rel=1e-5)
    assert series[:, 2] == pytest.approx(probe[:, 1], rel=1e-5)
    clipped = (probe[:, 0] > 1.0).mean()
    assert clipped > 0 and watch.summary()["clip_fraction"] == pytest.approx(clipped)
    assert watch.summary()["grad_norm_max"] == pytest.approx(probe[:, 0].max(), rel=1e-5)
    assert "clip_gradients" not in model.__dict__  # the wrapper is gone after the fit
