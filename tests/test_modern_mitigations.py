"""The mitigations of 2020-2025, each against its paper's formula or its reference code's
update, on fixed tensors in float64: one or more optimizer steps from known gradients, a
gradient rule on a crafted gradient, a reparametrized weight against its definition. What
keeps state is followed over several steps, including the step where the state acts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradbench.catalogue.strategies.gradient_rules import GradCentralization
from gradbench.training.models import build_model
from gradbench.training.optim import build_optimizer, muon_split

THETA0 = [[1.0, -2.0, 0.5], [0.3, 0.8, -1.1]]


def steps(opt_cls, grads, shape=(2, 3), **kw):
    """The parameter after each step of opt_cls from THETA0 (or its first row), float64."""
    start = torch.tensor(THETA0, dtype=torch.float64)[: shape[0]] if len(shape) == 2 else torch.tensor(THETA0[0])
    p = nn.Parameter(start.to(torch.float64).reshape(shape).clone())
    opt = opt_cls([p], **kw)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64).reshape(shape)
        opt.step()
        out.append(p.detach().clone())
    return out


GRADS = [
    [[1.0, -1.0, 2.0], [0.5, 0.1, -0.2]],
    [[10.0, 0.1, -30.0], [-0.4, 0.2, 0.3]],
    [[0.2, 0.3, -0.1], [1.0, -2.0, 0.5]],
]


# --- layer-wise trust ratios ---------------------------------------------------------------
def test_lamb_scales_adams_step_by_the_layers_trust_ratio():
    """You et al. (2020), Algorithm 2 with phi the identity: r = m_hat / (sqrt(v_hat) + eps) +
    wd theta; theta <- theta - lr ||theta|| / ||r|| r."""
    from gradbench.training.update_rules import LAMB

    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-6, 0.01
    got = steps(LAMB, GRADS, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    theta = torch.tensor(THETA0, dtype=torch.float64)
    m = v = torch.zeros(2, 3, dtype=torch.float64)
    for t, g in enumerate(GRADS, start=1):
        g = torch.tensor(g, dtype=torch.float64)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        r = (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps) + wd * theta
        theta = theta - lr * (theta.norm() / r.norm()) * r
        assert torch.allclose(got[t - 1], theta, rtol=1e-12), t
    # the step's size is lr x ||theta||, whatever the gradient's scale: the spike of step 2 too
    assert (got[1] - got[0]).norm() == pytest.approx(lr * float(got[0].norm()), rel=1e-12)


def test_lars_sets_each_layers_lr_from_its_weight_and_gradient_norms():
    """You et al. (2017), Algorithm 1: local_lr = eta ||w|| / (||g|| + wd ||w||); v <- m v +
    lr local_lr (g + wd w); w <- w - v. A 1-D tensor (bias, gain) keeps local_lr 1."""
    from gradbench.training.update_rules import LARS

    lr, mom, wd, eta = 1.0, 0.9, 5e-4, 1e-3
    got = steps(LARS, GRADS, lr=lr, momentum=mom, weight_decay=wd, eta=eta)
    w = torch.tensor(THETA0, dtype=torch.float64)
    buf = torch.zeros_like(w)
    for t, g in enumerate(GRADS):
        g = torch.tensor(g, dtype=torch.float64)
        local = eta * w.norm() / (g.norm() + wd * w.norm())
        buf = mom * buf + lr * local * (g + wd * w)
        w = w - buf
        assert torch.allclose(got[t], w, rtol=1e-12), t
    bias = steps(LARS, [[1.0, -1.0, 2.0]], shape=(3,), lr=0.1, momentum=0.0, weight_decay=0.0, eta=eta)
    assert torch.allclose(bias[0], torch.tensor([1.0 - 0.1, -2.0 + 0.1, 0.5 - 0.2], dtype=torch.float64))


# --- torch's own: Adafactor and Muon ---------------------------------------------------------
def test_adafactor_is_the_papers_factored_update_with_relative_step_and_update_clipping():
    """Shazeer & Stern (2018), Algorithms 4 and 5 as torch.optim.Adafactor states them:
    beta2_t = 1 - t^-0.8; R, C the row and column means of G^2 (their EMAs); V = R C / mean(R);
    U = G / sqrt(V); U /= max(1, RMS(U) / d); theta -= max(eps2, RMS(theta)) min(lr, 1/sqrt(t)) U."""
    lr, d, eps1, eps2 = 1e-2, 1.0, torch.finfo(torch.float64).eps, 1e-3
    got = steps(torch.optim.Adafactor, GRADS, lr=lr, d=d)
    theta = torch.tensor(THETA0, dtype=torch.float64)
    r = torch.zeros(2, 1, dtype=torch.float64)
    c = torch.zeros(1, 3, dtype=torch.float64)
    clipped = []
    for t, g in enumerate(GRADS, start=1):
        g = torch.tensor(g, dtype=torch.float64)
        beta2 = 1 - t**-0.8
        alpha = max(eps2, float(theta.pow(2).mean().sqrt())) * min(lr, 1 / math.sqrt(t))
        r = beta2 * r + (1 - beta2) * (g * g).mean(dim=1, keepdim=True)
        c = beta2 * c + (1 - beta2) * (g * g).mean(dim=0, keepdim=True)
        v = r @ c / r.mean().clamp_min(eps1)
        u = g / v.sqrt().clamp_min(eps1)
        rms = float(u.pow(2).mean().sqrt())
        clipped.append(rms > d)
        theta = theta - alpha * u / max(1.0, rms / d)
        assert torch.allclose(got[t - 1], theta, rtol=1e-10), t
    assert any(clipped)  # the update clipping acted on one of these steps


def test_muon_orthogonalizes_the_hidden_matrices_and_adamw_takes_the_rest():
    """Jordan et al. (2024): Muon for the hidden 2-D weights; the head, the embeddings and
    every 1-D tensor to AdamW, at one lr and weight decay (torch's Muon, Moonshot's scaling)."""
    torch.manual_seed(0)
    model = build_model("transformer", (5, 8), 4, {"depth": 1, "width": 8, "heads": 2})
    matrices, others = muon_split(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in matrices) == [
        "blocks.0.attn.out.weight",
        "blocks.0.attn.qkv.weight",
        "blocks.0.mlp.0.weight",
        "blocks.0.mlp.2.weight",
    ]
    assert {"tok.weight", "pos.weight", "head.weight", "head.bias"} <= {names[id(p)] for p in others}
    opt = build_optimizer(model, {"name": "muon", "lr": 1e-3, "weight_decay": 0.1, "momentum": 0.95}, 2.0)
    twin = {k: v.clone() for k, v in model.state_dict().items()}
    ref_model = build_model("transformer", (5, 8), 4, {"depth": 1, "width": 8, "heads": 2})
    ref_model.load_state_dict(twin)
    ref_m, ref_o = muon_split(ref_model)
    ref = [
        torch.optim.Muon(ref_m, lr=2e-3, weight_decay=0.1, momentum=0.95, adjust_lr_fn="match_rms_adamw"),
        torch.optim.AdamW(ref_o, lr=2e-3, weight_decay=0.1),
    ]
    x = torch.randint(0, 8, (3, 5))
    for net, step in ((model, opt.step), (ref_model, lambda: [o.step() for o in ref])):
        net(x).square().mean().backward()
        step()
    for (n, a), b in zip(model.named_parameters(), ref_model.parameters()):
        assert torch.allclose(a, b, atol=1e-7), n
    assert len(opt.param_groups) == 2 and opt.param_groups[0] is opt.inner[0].param_groups[0]  # a schedule moves both


def test_muons_step_on_a_matrix_is_near_orthogonal():
    """Newton-Schulz's quintic iteration takes the momentum to about U V^T: every singular
    value of the step lands near 1 (Jordan et al. 2024 aim for 0.7-1.2), whatever the gradient's."""
    w = nn.Parameter(torch.zeros(8, 16))
    opt = torch.optim.Muon([w], lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False)
    w.grad = torch.randn(8, 16) * torch.logspace(-2, 2, 16)  # singular values over four decades
    opt.step()
    s = torch.linalg.svdvals(-w.detach())
    assert float(s.min()) > 0.5 and float(s.max()) < 1.3


# --- gradient rules ----------------------------------------------------------------------------
def test_gradient_centralization_removes_each_output_units_mean():
    """Yong et al. (2020), eq. 4: Phi(g_i) = g_i - mean(g_i) over the fan-in of output unit i,
    for fully connected and conv weights; a bias is left alone."""
    layer = nn.Linear(3, 2)
    conv = nn.Conv2d(2, 4, 3)
    g_lin = torch.tensor([[1.0, 2.0, 6.0], [-3.0, 0.0, 3.0]])
    g_conv = torch.randn(4, 2, 3, 3)
    layer.weight.grad, layer.bias.grad, conv.weight.grad = g_lin.clone(), torch.tensor([5.0, -1.0]), g_conv.clone()
    opt = torch.optim.SGD([*layer.parameters(), conv.weight], lr=0.1)
    GradCentralization()(None, opt)
    assert torch.equal(layer.weight.grad, torch.tensor([[-2.0, -1.0, 3.0], [-3.0, 0.0, 3.0]]))
    assert torch.equal(layer.bias.grad, torch.tensor([5.0, -1.0]))
    expected = g_conv - g_conv.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(conv.weight.grad, expected, atol=1e-6)
    assert torch.allclose(conv.weight.grad.sum(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)


# --- reparametrizations and DeepNorm -----------------------------------------------------------
@pytest.mark.parametrize("family, shape", [("mlp", (1, 6, 6)), ("cnn", (3, 8, 8)), ("transformer", (5, 8))])
def test_spectral_norm_gives_every_hidden_layer_a_spectral_norm_of_one(family, shape):
    """Miyato et al. (2018): W_SN = W / sigma(W); after enough power iterations (one per
    training forward), the largest singular value of each hidden weight is 1; the head keeps its own."""
    torch.manual_seed(0)
    knobs = {"depth": 3, "width": 8} if family != "transformer" else {"depth": 1, "width": 8, "heads": 2}
    model = build_model(family, shape, 4, {**knobs, "reparam": "spectral"})
    x = torch.randint(0, 8, (2, 5)) if family == "transformer" else torch.randn(2, *shape)
    for _ in range(30):
        model(x)
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    *hidden, head = layers
    for m in hidden:
        assert float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)) == pytest.approx(1.0, rel=1e-3)
    assert not hasattr(head, "parametrizations")


def test_sigma_reparam_is_gamma_over_sigma_times_w_and_starts_as_the_plain_net():
    """Zhai et al. (2023), eq. 2: W_hat = gamma / sigma(W) W, sigma by power iteration, gamma a
    learnable scalar; at initialization gamma = sigma(W_0), so the net computes what it would
    without the reparametrization."""
    torch.manual_seed(0)
    plain = build_model("mlp", (1, 6, 6), 4, {"depth": 3, "width": 8})
    torch.manual_seed(0)
    model = build_model("mlp", (1, 6, 6), 4, {"depth": 3, "width": 8, "reparam": "sigma"})
    x = torch.randn(5, 1, 6, 6)
    assert torch.allclose(model(x), plain(x), atol=1e-4)
    layer = model[2].f[0]
    rep = layer.parametrizations.weight[0]
    w = layer.parametrizations.weight.original.detach()
    with torch.no_grad():
        rep.gamma.fill_(0.7)
        w.mul_(3.0)  # the spectral norm triples; the power iteration follows it
        for _ in range(10):
            model(x)
    sigma = float(torch.linalg.matrix_norm(w, ord=2))
    assert torch.allclose(layer.weight, 0.7 / sigma * w, rtol=1e-4)
    assert any(n.endswith("gamma") for n, _ in model.named_parameters())


def test_deepnorm_is_post_ln_with_alpha_and_beta_scaled_init():
    """Wang et al. (2022): x <- LN(alpha x + G(x)), alpha = (2N)^(1/4) for a decoder of N
    blocks; Xavier-normal init with gain beta = (8N)^(-1/4) for the value, output and MLP
    weights, 1 for queries and keys."""
    torch.manual_seed(0)
    n, width = 3, 64
    model = build_model("transformer", (9, 16), 4, {"depth": n, "width": width, "residual_scale": "deepnorm"})
    alpha, beta = (2 * n) ** 0.25, (8 * n) ** -0.25
    block = model.blocks[0]
    assert block.alpha == pytest.approx(alpha) and isinstance(model.ln_f, nn.Identity)
    q, k, v = block.attn.qkv.weight.detach().view(3, width, width)
    xavier = math.sqrt(2 / (width + width))
    assert float(q.std()) == pytest.approx(xavier, rel=0.05) and float(k.std()) == pytest.approx(xavier, rel=0.05)
    assert float(v.std()) == pytest.approx(beta * xavier, rel=0.05)
    assert float(block.mlp[0].weight.detach().std()) == pytest.approx(beta * math.sqrt(2 / (5 * width)), rel=0.05)
    seen = []
    hooks = [block.ln1.register_forward_hook(lambda m, i, o: seen.append(i[0]))]
    hooks.append(block.attn.register_forward_hook(lambda m, i, o: seen.append((i[0], o))))
    model(torch.randint(0, 16, (2, 9)))
    for h in hooks:
        h.remove()
    (x, attn_out), ln_in = seen[0], seen[1]
    assert torch.allclose(ln_in, alpha * x + attn_out, atol=1e-6)  # LN(alpha x + attn(x))


# --- bounded and spike-aware Adam variants ------------------------------------------------------
def test_adam_atan2_replaces_adams_ratio_by_atan2_without_epsilon():
    """Everett et al. (2024), the reference code's update: theta <- theta (1 - lr wd) - lr a
    atan2(m_hat, b sqrt(v_hat)); a zero gradient history gives a zero step (no 0/0)."""
    from gradbench.training.update_rules import AdamAtan2

    lr, b1, b2, wd, a, b = 0.01, 0.9, 0.99, 0.1, 1.27, 1.0
    got = steps(AdamAtan2, GRADS, lr=lr, betas=(b1, b2), weight_decay=wd, a=a, b=b)
    theta = torch.tensor(THETA0, dtype=torch.float64)
    m = v = torch.zeros(2, 3, dtype=torch.float64)
    for t, g in enumerate(GRADS, start=1):
        g = torch.tensor(g, dtype=torch.float64)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta = theta * (1 - lr * wd) - lr * a * torch.atan2(m / (1 - b1**t), b * torch.sqrt(v / (1 - b2**t)))
        assert torch.allclose(got[t - 1], theta, rtol=1e-12), t
    assert (got[0] - torch.tensor(THETA0, dtype=torch.float64) * (1 - lr * wd)).abs().max() <= lr * a * math.pi / 2
    zero = steps(AdamAtan2, [[0.0, 0.0, 0.0]], shape=(3,), lr=lr, weight_decay=0.0)
    assert torch.equal(zero[0], torch.tensor(THETA0[0], dtype=torch.float64))


def spam_reference(grads, lr, b1, b2, eps, wd, theta_clip, delta_t, warmup):
    """SPAM written out from the authors' code (one tensor), float64."""
    p = torch.tensor(THETA0[0], dtype=torch.float64)
    m = v = torch.zeros(3, dtype=torch.float64)
    total, cur, out, clipped = 0, warmup + 1, [], []
    for g in grads:
        g = torch.tensor(g, dtype=torch.float64)
        c = total + 1
        scale = 1 - (0.99 * (1 + math.cos(math.pi * cur / (warmup + 1))) / 2 if cur < warmup else 0.0)
        if c % delta_t == 0:
            m, v = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        if c >= 20 and c % delta_t >= 20:
            mask = g * g > theta_clip * v
            clipped.append(bool(mask.any()))
            g = torch.where(mask, torch.sign(g) * torch.sqrt(theta_clip * v), g)
        else:
            clipped.append(False)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p = p - lr * math.sqrt(1 - b2**c) / (1 - b1**c) * scale * m / (torch.sqrt(v) + eps)
        p = p * (1 - lr * wd)
        total, cur = total + 1, cur + 1
        if (total + 1) % delta_t == 0:
            cur = 0
        out.append(p)
    return out, clipped


def test_spam_resets_its_moments_warms_up_again_and_clips_spiky_entries():
    """Huang et al. (ICLR 2025), as the authors' code runs it, over 60 steps with delta_t 25:
    a reset at steps 25 and 50 (the lr scale 0.01 there, rising by a cosine), clipping from
    step 20 (and 20 steps after a reset) of entries with g^2 > theta v, the previous v."""
    from gradbench.training.update_rules import SPAM

    torch.manual_seed(0)
    grads = (torch.randn(60, 3, dtype=torch.float64) * 0.1).tolist()
    grads[21] = [5.0, 0.01, -0.02]  # a spike in one coordinate, where clipping is on
    kw = dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-6, wd=0.01, theta_clip=50.0, delta_t=25, warmup=5)
    want, clipped = spam_reference(grads, **kw)
    opt_kw = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, theta=50.0, delta_t=25, warmup=5)
    got = steps(SPAM, grads, shape=(3,), **opt_kw)
    for t, (a, b) in enumerate(zip(got, want), start=1):
        assert torch.allclose(a, b, rtol=1e-12), t
    assert clipped[21] and not any(clipped[:19])
    opt = SPAM([nn.Parameter(torch.zeros(1))], **opt_kw)
    scales = []
    for _ in range(30):
        scales.append(opt.scale())
        opt.param_groups[0]["params"][0].grad = torch.ones(1)
        opt.step()
    assert (
        scales[:24] == [1.0] * 24 and scales[24] == pytest.approx(0.01) and scales[24] < scales[26] < scales[29] == 1.0
    )


# --- per-tensor adaptive clipping and step skipping ---------------------------------------------
def test_adagc_clips_each_tensor_against_an_ema_of_its_own_clipped_norms():
    """Wang et al. (2025), the authors' code: global clipping to lambda_abs and the running
    minimum of each tensor's norm while warming up; then per tensor, a norm above lambda_rel
    gamma is scaled to it and gamma <- beta gamma + (1 - beta) clipped norm."""
    from gradbench.catalogue.strategies.gradient_rules import AdaGC

    a, b = nn.Parameter(torch.zeros(3, dtype=torch.float64)), nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = torch.optim.SGD([a, b], lr=0.1)
    rule = AdaGC(lambda_rel=1.04, beta=0.99, lambda_abs=1.0, warmup_steps=2)
    history = [
        ([3.0, 0.0, 4.0], [0.0, 0.5]),  # warm-up: global norm 5.02 -> clipped to 1
        ([0.3, 0.0, 0.4], [0.0, 0.5]),  # warm-up: global norm 0.64, no clip
        ([0.3, 0.0, 0.4], [0.0, 5.0]),  # a spike in b only
    ]
    seen = []
    for ga, gb in history:
        a.grad, b.grad = torch.tensor(ga, dtype=torch.float64), torch.tensor(gb, dtype=torch.float64)
        rule(None, opt)
        seen.append((a.grad.clone(), b.grad.clone()))
    total = math.hypot(5.0, 0.5)
    assert torch.allclose(seen[0][0], torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64) / (total + 1e-6))
    gamma_a = min(5.0 / (total + 1e-6), 0.5)  # the running minimum of a's norm over the warm-up
    gamma_b = min(0.5 / (total + 1e-6), 0.5)
    assert torch.allclose(
        seen[2][0], torch.tensor([0.3, 0.0, 0.4], dtype=torch.float64), atol=1e-12
    )  # 0.5 <= 1.04 x 0.5
    limit_b = 1.04 * gamma_b
    assert float(seen[2][1].norm()) == pytest.approx(limit_b * 5.0 / (5.0 + 1e-6), rel=1e-9)  # b's spike clipped
    assert float(rule.gamma[id(b)]) == pytest.approx(0.99 * gamma_b + 0.01 * limit_b, rel=1e-12)
    assert float(rule.gamma[id(a)]) == pytest.approx(0.99 * gamma_a + 0.01 * 0.5, rel=1e-12)


def test_skip_step_drops_a_step_whose_loss_or_norm_is_six_sigma_above_its_window():
    """OLMo-core's SkipStepOptimizer: windows of the last `window` losses and norms; from
    max(2, window // 2) values on, a step with value - mean > sigma x std (unbiased) in either
    is skipped: no gradient reaches the optimizer, so its weights and moments stay."""
    from types import SimpleNamespace

    from gradbench.catalogue.strategies.gradient_rules import SkipStep

    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=0.1)
    rule = SkipStep(window=8, sigma=3.0)
    module = SimpleNamespace(last_loss=None)
    norms = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.0, 50.0, 1.0]
    losses = [2.0] * 9 + [40.0]
    outcomes = []
    for n, loss in zip(norms, losses):
        p.grad = torch.tensor([n, 0.0])
        module.last_loss = torch.tensor(loss)
        rule(module, opt)
        outcomes.append(p.grad is None)
    # the norm spike at step 9 is skipped; at step 10 the loss jumps, its window's std 0 < jump
    assert outcomes == [False] * 8 + [True, True]
    early = SkipStep(window=8, sigma=3.0)
    for n in (1.0, 1.0, 100.0):  # with this one, fewer than window // 2 = 4 values: no test yet
        p.grad = torch.tensor([n, 0.0])
        early(SimpleNamespace(last_loss=None), opt)
    assert p.grad is not None
    counted = SkipStep(window=8, sigma=3.0)
    for n in (1.0, 1.0, 1.0, 100.0):  # the fourth value is tested, as OLMo-core counts it
        p.grad = torch.tensor([n, 0.0])
        counted(SimpleNamespace(last_loss=None), opt)
    assert p.grad is None


def test_skip_step_skips_a_non_finite_step_and_keeps_it_out_of_its_windows():
    """A NaN or inf norm or loss is a skip (OLMo-core's test is `value <= mean + k std`, false
    for NaN), and never enters the windows, so the next spike is still caught."""
    from types import SimpleNamespace

    from gradbench.catalogue.strategies.gradient_rules import SkipStep

    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1)
    rule = SkipStep(window=8, sigma=3.0)
    outcomes = []
    for n, loss in [
        (1.0, 2.0),
        (1.1, 2.1),
        (float("nan"), 2.0),
        (0.9, 1.9),
        (1.0, float("inf")),
        (1.0, 2.0),
        (30.0, 2.0),
    ]:
        p.grad = torch.tensor([n, 0.0])
        rule(SimpleNamespace(last_loss=torch.tensor(loss)), opt)
        outcomes.append(p.grad is None)
    assert outcomes == [False, False, True, False, True, False, True]
    assert all(torch.isfinite(torch.stack(rule.norms))) and len(rule.norms) == 5  # a skipped finite spike stays


def test_adagc_survives_a_non_finite_step():
    """An inf gradient (an AMP overflow step) changes no tensor's gamma: during the warm-up
    the global clip would otherwise scale every gradient by 0 and pin every running minimum
    at 0 for good."""
    from gradbench.catalogue.strategies.gradient_rules import AdaGC

    a, b = nn.Parameter(torch.zeros(2, dtype=torch.float64)), nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = torch.optim.SGD([a, b], lr=0.1)
    rule = AdaGC(lambda_rel=1.04, beta=0.99, lambda_abs=10.0, warmup_steps=2)
    for ga, gb in (([0.3, 0.4], [0.6, 0.8]), ([float("inf"), 0.0], [0.6, 0.8])):
        a.grad, b.grad = torch.tensor(ga, dtype=torch.float64), torch.tensor(gb, dtype=torch.float64)
        rule(None, opt)
    assert float(rule.gamma[id(a)]) == pytest.approx(0.5) and float(rule.gamma[id(b)]) == pytest.approx(1.0)
    a.grad, b.grad = torch.tensor([3.0, 4.0], dtype=torch.float64), torch.tensor([0.6, 0.8], dtype=torch.float64)
    rule(None, opt)  # after the warm-up: a's spike to 5 is clipped to 1.04 x 0.5
    assert float(a.grad.norm()) == pytest.approx(0.52 * 5 / (5 + 1e-6), rel=1e-9)
    assert torch.allclose(b.grad, torch.tensor([0.6, 0.8], dtype=torch.float64))


@pytest.mark.parametrize("label", ["spectral_norm+residual", "residual+spectral_norm", "sigma_reparam+residual"])
def test_a_reparametrization_refuses_a_zero_initialized_residual_branch_in_either_order(label):
    from gradbench.core.errors import UserError
    from gradbench.suite import expand, parse_suite

    raw = {"tasks": {"mnist_mlp": {"max_steps": 2}}, "strategies": [label], "stress": {"lr_mult": [1.0]}}
    with pytest.raises(UserError, match="does not compose with residual"):
        expand(parse_suite(raw))
    raw["strategies"] = ["spectral_norm+rezero"]  # ReZero keeps the branch's layer: fine
    assert len(expand(parse_suite(raw))) == 1


def test_skip_step_reads_the_norm_before_lightnings_clipping():
    """OLMo 2 tests the unclipped norm: with clip_norm in the same arm, skip_step runs first."""
    from gradbench.catalogue.strategies.gradient_rules import SkipStep
    from gradbench.catalogue.tasks import TASKS
    from gradbench.suite import expand, parse_suite
    from gradbench.training.module import BenchModule

    raw = {
        "tasks": {"mnist_mlp": {"max_steps": 2}},
        "strategies": ["clip_norm+skip_step+agc"],
        "stress": {"lr_mult": [1.0]},
    }
    (spec,) = expand(parse_suite(raw))
    module = BenchModule(spec, TASKS.get("mnist_mlp"), nn.Linear(2, 2))
    assert [type(h) for h in module.pre_clip_hooks] == [SkipStep]
    assert [type(h).__name__ for h in module.post_clip_hooks] == ["AGC"]
