"""The language-model task: its text laid out from Debian's package and split by contiguous
blocks, the GPT's next-byte loss in bits per byte, the arms that exist for this setting
against their papers' formulas, and what the monitor reads from a language model (log Z,
block RMS, the spike score) in gradbench's runs and in a user's own Lightning module."""

from __future__ import annotations

import math

import lightning.pytorch as L
import pytest
import torch
from conftest import REPO
from torch import nn

from gradbench.catalogue.strategies import STRATEGIES
from gradbench.catalogue.strategies.regularization import IndependentWeightDecay
from gradbench.catalogue.tasks import TASKS
from gradbench.core.errors import UserError
from gradbench.training.data import text
from gradbench.training.models import build_model
from gradbench.training.transformer import softcap

DATA = REPO / "data"
GPT = {"depth": 2, "width": 32, "heads": 4, "output": "sequence"}


def gpt(**knobs):
    torch.manual_seed(0)
    return build_model("transformer", (16, 256), 256, {**GPT, **knobs})


def tokens(n=3, t=16):
    return torch.randint(0, 256, (n, t), generator=torch.Generator().manual_seed(1))


# --- data ---------------------------------------------------------------------------------
def fake_fortunes(root, parts: dict[str, bytes]):
    folder = root / text.FOLDER
    folder.mkdir(parents=True)
    for name, body in parts.items():
        (folder / name).write_bytes(body)
    (folder / text.SOURCE).write_text('{"files": ' + str(list(parts)).replace("'", '"') + "}")


def test_the_text_splits_by_contiguous_blocks_into_next_byte_windows(tmp_path):
    body = bytes(range(256)) * 40  # 10,240 bytes: 40 blocks of 256
    fake_fortunes(tmp_path, {"a": body[:5000], "b": body[5000:]})
    s = text.load_fortunes(tmp_path, context=15, block=256)
    assert s.input_shape == (15, 256) and s.num_classes == 256
    # of every 20 blocks of 256 bytes, the 19th is validation and the 20th test: 2 blocks each
    assert len(s.val_x) == 2 * 256 // 16 and len(s.test_x) == 2 * 256 // 16
    assert len(s.train_x) == 36 * 256 // 16
    first_val = body[18 * 256 : 18 * 256 + 16]
    assert s.val_x[0].tolist() == list(first_val[:15]) and s.val_y[0].tolist() == list(first_val[1:16])
    assert (s.train_y[:, :-1] == s.train_x[:, 1:]).all()  # y is x shifted by one byte


def test_a_missing_text_names_the_command_that_lays_it_out(tmp_path):
    with pytest.raises(UserError, match="gradbench data text"):
        text.load_fortunes(tmp_path)


@pytest.mark.slow
def test_the_laid_out_text_is_debians_fortunes_and_over_a_megabyte():
    if text.text_status(DATA)[0] != "ok":
        pytest.skip("no text under ./data (gradbench data text)")
    corpus, meta = text.read_text(DATA)
    assert meta["package"] == "fortunes" and len(corpus) > 1_000_000 and "ascii-art" not in meta["files"]
    assert corpus.decode("ascii", errors="ignore").count(" the ") > 10_000  # English prose


# --- loss and metric ----------------------------------------------------------------------
def test_the_gpt_predicts_every_next_byte_and_its_metric_is_bits_per_byte():
    from gradbench.training.module import BenchModule

    task = TASKS.get("fortunes_gpt")
    model = gpt()
    x = tokens()
    out = model(x)
    assert out.shape == (3, 16, 256)
    module = BenchModule(task.base_spec(0, 1.0), task, model)
    y = torch.roll(x, -1, dims=1)
    loss = module._loss(out, y)
    assert float(loss) == pytest.approx(float(nn.functional.cross_entropy(out.reshape(-1, 256), y.reshape(-1))))
    module._eval_step((x, y))
    bits, n = module._sums.tolist()  # summed over predicted bytes, as an evaluation adds them up
    assert n == 3 * 16 and bits / n == pytest.approx(float(loss) / math.log(2), rel=1e-6)
    # log Z and the blocks' output RMS of that forward, as the model keeps them for the monitor
    assert float(model.output_log_z) == pytest.approx(float(torch.logsumexp(out, -1).mean()), rel=1e-6)
    assert model.layer_output_rms.shape == (2,) and (model.layer_output_rms > 0).all()


# --- the arms, against their papers -------------------------------------------------------
def test_softcap_is_cap_tanh_of_the_uncapped_logits():
    x = tokens()
    raw, capped = gpt()(x), gpt(softcap=2.0)(x)
    assert torch.allclose(capped, 2.0 * torch.tanh(raw / 2.0), atol=1e-6)
    assert capped.abs().max() <= 2.0 and torch.equal(softcap(raw, 0.0), raw)


def test_attention_softcap_caps_each_attention_logit_before_the_softmax():
    model = gpt(attn_softcap=0.5)
    attn = model.blocks[0].attn
    seen = {}
    attn.register_forward_hook(lambda m, i, o: seen.update(x=i[0], out=o))
    model(tokens())
    b, t, w = seen["x"].shape
    q, k, v = attn.qkv(seen["x"]).view(b, t, 3, 4, w // 4).permute(2, 0, 3, 1, 4)
    logits = 0.5 * torch.tanh((q @ k.transpose(-2, -1)) / math.sqrt(w // 4) / 0.5)
    logits = logits.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -math.inf)
    expected = attn.out((logits.softmax(-1) @ v).transpose(1, 2).reshape(b, t, w))
    assert torch.allclose(seen["out"], expected, atol=1e-5)
    assert float(attn.logit_max) <= 0.5


def test_qkv_norm_layer_normalizes_each_heads_queries_keys_and_values():
    model = gpt(qkv_norm=True)
    attn = model.blocks[0].attn
    assert all(isinstance(n, nn.LayerNorm) for n in (attn.q_norm, attn.k_norm, attn.v_norm))
    seen = {}
    attn.v_norm.register_forward_hook(lambda m, i, o: seen.update(v=o))
    model(tokens())
    v = seen["v"]  # LayerNorm at its initial gain 1 and bias 0: each head's value has mean 0, variance 1
    assert torch.allclose(v.mean(-1), torch.zeros(()), atol=1e-5)
    assert torch.allclose(v.var(-1, unbiased=False), torch.ones(()), atol=1e-3)
    assert isinstance(gpt(qk_norm=True).blocks[0].attn.v_norm, nn.Identity)


def test_reordered_norm_normalizes_each_sublayers_output_not_its_input():
    model = gpt(norm_position="reordered")
    block = model.blocks[0]
    seen = {}
    block.register_forward_hook(lambda m, i, o: seen.update(x=i[0], out=o))
    model(tokens())
    x = seen["x"]
    h = x + block.ln1(block.attn(x))
    assert torch.allclose(seen["out"], h + block.ln2(block.mlp(h)), atol=1e-5)  # x + LN(f(x)), OLMo 2


def test_independent_weight_decay_follows_the_schedule_not_the_learning_rate():
    """Wortsman et al. (2023): W <- W (1 - wd lr(t)/lr_peak), the same decay at any peak rate."""
    for peak in (1e-3, 1.0):
        w = nn.Parameter(torch.ones(2, 2, dtype=torch.float64))
        b = nn.Parameter(torch.ones(2, dtype=torch.float64))
        w.grad, b.grad = torch.zeros_like(w), torch.zeros_like(b)
        opt = torch.optim.SGD([w, b], lr=peak)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)  # lr(t) = peak / 2
        assert opt.param_groups[0]["lr"] == pytest.approx(peak / 2) and sched
        IndependentWeightDecay(0.1)(None, opt)
        assert torch.allclose(w, torch.full((2, 2), 1 - 0.1 * 0.5, dtype=torch.float64))
        assert torch.equal(b, torch.ones(2, dtype=torch.float64))  # 1-D parameters are never decayed


def test_long_warmup_warms_up_over_a_share_of_the_run():
    spec = TASKS.get("fortunes_gpt").base_spec(0, 1.0)
    assert STRATEGIES.get("long_warmup").fn(spec, share=0.25).schedule["warmup_steps"] == spec.max_steps // 4


# --- the monitor on a language model ------------------------------------------------------
class UserLM(L.LightningModule):
    """A user's own byte-level LM (not gradbench's), which tells its output log Z."""

    def __init__(self):
        super().__init__()
        self.emb, self.head = nn.Embedding(256, 32), nn.Linear(32, 256)
        self.log_z = None

    @property
    def output_log_z(self):
        return self.log_z

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.head(torch.tanh(self.emb(x)))
        if self.trainer.global_step == 150:  # one corrupted batch: its logits blown up
            logits = logits * 40
        self.log_z = torch.logsumexp(logits.detach(), -1).mean()
        return nn.functional.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_the_monitor_logs_log_z_and_the_spike_score_in_a_users_own_module(tmp_path):
    import csv

    from lightning.pytorch.loggers import CSVLogger

    from gradbench.callbacks import StabilityMonitor

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6400, 16), generator=g)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.roll(x, -1, 1)), batch_size=32)
    monitor, model = StabilityMonitor(layer_every=50), UserLM()
    trainer = L.Trainer(
        max_steps=200,
        callbacks=[monitor],
        logger=CSVLogger(tmp_path, name="lm"),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data)
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    log_z = {int(r["step"]): float(r["stability/log_z"]) for r in rows if r.get("stability/log_z")}
    assert sorted(log_z) == list(range(200))
    assert log_z[150] > 5 * log_z[149]  # the corrupted batch's log Z
    summary = monitor.summary()
    assert summary["log_z_max"] == pytest.approx(log_z[150], rel=1e-5)
    assert 0 < summary["spike_score"] <= 2 / 200  # the spike at step 150 (and at most the step after)
