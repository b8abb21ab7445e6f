"""The model families, each with the knobs strategies turn (the transformer: transformer.py;
the activations and initializations they share: layers.py).

Defaults are deliberately plain (no normalization, no skips) so the tasks can be tuned to
explode; strategies switch on what mitigates it. The knobs, their defaults and valid values
are declared once, in catalogue/model_knobs.py:
  mlp / cnn: depth, width (cnn: base channels), activation, norm, residual, branch_scale,
             dropout, init, weight_std (Scaled Weight Standardization of the hidden layers),
             reparam (spectral normalization or sigma-Reparam of the hidden layers)
  rnn:       cell (rnn/lstm/gru), hidden, activation (tanh/relu, vanilla cell only),
             recurrent_gain (orthogonal recurrent weights times this gain), init
  transformer: depth, width, heads, activation (the MLP's), norm (pre-LN or none),
             qk_norm, dropout, init, reparam, residual_scale (deepnorm)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..catalogue.model_knobs import checked_knobs, checked_task_knobs
from .layers import ACTIVATIONS, init_weights
from .reparam import reparametrize
from .transformer import transformer

# the NF-Nets gain that keeps the activation's output at unit variance (Brock et al., 2021a)
WS_GAMMA = {
    "relu": 1.7139588594436646,
    "leaky_relu": 1.70590341091156,
    "elu": 1.2716004848480225,
    "selu": 1.0008515119552612,
    "gelu": 1.7015043497085571,
    "tanh": 1.5939117670059204,
    "sigmoid": 4.803835391998291,
    "softplus": 1.9203323125839233,
}


def _norm(kind: str, features: int, conv: bool) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(features) if conv else nn.BatchNorm1d(features)
    if kind == "layer":  # over all features of an example (for conv: channels and space)
        return nn.GroupNorm(1, features) if conv else nn.LayerNorm(features)
    return nn.GroupNorm(min(8, features), features)  # "group"


def standardize(w: torch.Tensor, gamma: float, eps: float = 1e-5) -> torch.Tensor:
    """Scaled Weight Standardization: each output unit's fan-in weights to zero mean and
    variance 1/fan_in, times the activation's gain: W' = gamma (W - mean) / (std sqrt(fan_in))."""
    dims = tuple(range(1, w.dim()))
    var, mean = torch.var_mean(w, dim=dims, keepdim=True, correction=0)
    fan_in = w[0].numel()
    return gamma * (w - mean) * torch.rsqrt(var * fan_in + eps)


class WSLinear(nn.Linear):
    """nn.Linear with Scaled Weight Standardization and a learnable per-unit gain (1-D, at 1)."""

    def __init__(self, n_in: int, n_out: int, gamma: float = 1.0):
        super().__init__(n_in, n_out)
        self.gamma = gamma
        self.gain = nn.Parameter(torch.ones(n_out))

    def forward(self, x):
        return F.linear(x, standardize(self.weight, self.gamma) * self.gain[:, None], self.bias)


class WSConv2d(nn.Conv2d):
    """nn.Conv2d with Scaled Weight Standardization (Qiao et al., 2019; Brock et al., 2021a)
    and a learnable per-output-channel gain (1-D, at 1)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0, gamma: float = 1.0):
        super().__init__(c_in, c_out, k, stride=stride, padding=padding)
        self.gamma = gamma
        self.gain = nn.Parameter(torch.ones(c_out))

    def forward(self, x):
        return self._conv_forward(x, standardize(self.weight, self.gamma) * self.gain[:, None, None, None], self.bias)


class Block(nn.Module):
    """A hidden block. Plain: layer -> norm -> activation -> dropout. Residual (the
    pre-activation block of He et al., 2016b; the stem and each stage's first block stay
    plain, ending with their activation): x + a * f(x) with the branch f = norm -> activation -> dropout ->
    layer, so the trunk carries x unchanged and a normalization acts inside the branch. The
    branch's layer starts at zero (zero_branches, Fixup's point), so the net starts as its
    non-residual path whatever its depth; `a` is a learnable scalar at 0 with branch_scale
    "zero" (ReZero/SkipInit), else 1. A residual net ends with the trunk's norm and
    activation before its head (_final)."""

    def __init__(
        self, layer: nn.Module, norm: nn.Module, act: nn.Module, dropout: float, residual: bool, branch_scale: str
    ):
        super().__init__()
        drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual
        # the layer is reached through f (one registered name per parameter: f.<i>.weight)
        self.f = nn.Sequential(norm, act, drop, layer) if residual else nn.Sequential(layer, norm, act, drop)
        self.scale = nn.Parameter(torch.zeros(())) if residual and branch_scale == "zero" else None

    @property
    def layer(self) -> nn.Module:
        return self.f[3] if self.residual else self.f[0]

    def forward(self, x):
        if not self.residual:
            return self.f(x)
        y = self.f(x)
        return x + (self.scale * y if self.scale is not None else y)


def zero_branches(net: nn.Module) -> nn.Module:
    """Fixup's zero initialization (Zhang et al., 2019) of each residual branch's last (here,
    only) layer: weight and bias at 0 (a standardized layer, whose weight cannot be 0: its
    gain). The branch's layer still gets a gradient at the first step, its input being the
    non-zero pre-activation of the trunk. Not where a learnable zero scale (ReZero) gates
    the branch: that is the other way to start at the identity."""
    with torch.no_grad():
        for b in net.modules():
            if isinstance(b, Block) and b.residual and b.scale is None:
                for name in ("gain", "bias") if hasattr(b.layer, "gain") else ("weight", "bias"):
                    getattr(b.layer, name).zero_()
    return net


def _blocks(n_in: int, n_out: int, conv: bool, stride: int, m: dict, residual_ok: bool) -> Block:
    if m.get("weight_std"):
        gamma = WS_GAMMA[m["activation"]]
        layer = (
            WSConv2d(n_in, n_out, 3, stride=stride, padding=1, gamma=gamma) if conv else WSLinear(n_in, n_out, gamma)
        )
    else:
        layer = nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1) if conv else nn.Linear(n_in, n_out)
    return Block(
        layer,
        _norm(m["norm"], n_out, conv),
        ACTIVATIONS[m["activation"]](),
        m["dropout"],
        residual=m["residual"] and residual_ok,
        branch_scale=m["branch_scale"],
    )


def _final(layers: list[nn.Module], m: dict, features: int, conv: bool) -> list[nn.Module]:
    """A net with pre-activation residual blocks ends with the trunk's own norm -> activation
    before the head (He et al., 2016b): the branches add to a trunk nothing else normalizes.
    A net without one (plain, or too shallow for a skip) has none: its blocks end with their
    activation."""
    if not any(isinstance(b, Block) and b.residual for b in layers):
        return []
    return [_norm(m["norm"], features, conv), ACTIVATIONS[m["activation"]]()]


def mlp(input_shape, num_outputs, **m) -> nn.Module:
    """`depth` hidden layers of `width` units; residual skips join equal-width hidden layers.
    `m`: the family's checked knobs (catalogue/model_knobs.py), all of them."""
    width, n_in = m["width"], math.prod(input_shape)
    layers = [nn.Flatten(), _blocks(n_in, width, False, 1, m, residual_ok=False)]
    layers += [_blocks(width, width, False, 1, m, residual_ok=True) for _ in range(m["depth"] - 1)]
    net = nn.Sequential(*layers, *_final(layers, m, width, False), nn.Linear(width, num_outputs))
    return reparametrize(zero_branches(init_weights(net, m["init"], m["activation"], m["init_gain"])), m["reparam"])


def cnn(input_shape, num_outputs, **m) -> nn.Module:
    """`depth` 3x3 convs in three stages of width, 2*width, 4*width channels, stride 2 between
    stages, global average pooling and a linear head (no normalization or skips by default).
    `m`: the family's checked knobs (catalogue/model_knobs.py), all of them."""
    depth = m["depth"]
    per_stage = [depth // 3 + (1 if i < depth % 3 else 0) for i in range(3)]
    layers, c_in = [], input_shape[0]
    for stage, n in enumerate(per_stage):
        c_out = m["width"] * 2**stage
        for i in range(n):
            first = i == 0
            stride = 2 if first and stage > 0 else 1
            # a skip needs equal shapes: the first conv of a stage changes channels or size
            layers.append(_blocks(c_in, c_out, True, stride, m, residual_ok=not first))
            c_in = c_out
    net = nn.Sequential(
        *layers, *_final(layers, m, c_in, True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_outputs)
    )
    return reparametrize(zero_branches(init_weights(net, m["init"], m["activation"], m["init_gain"])), m["reparam"])


def forget_bias_one(lstm: nn.LSTM) -> None:
    """The standard LSTM forget-gate bias of 1 (Gers et al., 2000; Jozefowicz et al., 2015):
    the cell remembers by default at the start. PyTorch keeps two biases per layer, whose sum
    acts: the forget gate's slice (the second quarter) of bias_ih is set to 1, of bias_hh to 0."""
    h = lstm.hidden_size
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("bias_ih"):
                p[h : 2 * h].fill_(1.0)
            elif name.startswith("bias_hh"):
                p[h : 2 * h].zero_()


class RecurrentRegressor(nn.Module):
    """A recurrent cell over the sequence; a linear head reads the last hidden state."""

    def __init__(self, cell: nn.Module, hidden: int, num_outputs: int):
        super().__init__()
        self.cell = cell
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, x):
        out, _ = self.cell(x)
        return self.head(out[:, -1])


def rnn(
    input_shape,
    num_outputs,
    *,
    cell,
    hidden,
    activation,
    recurrent_gain,
    init,
    depth,
    width,
    norm,
    residual,
    branch_scale,
    dropout,
) -> nn.Module:
    """A one-layer recurrent net. The vanilla cell's recurrent matrix starts orthogonal times
    `recurrent_gain`: above 1 the backpropagated gradient grows geometrically with length."""
    n_in = input_shape[-1]
    hidden = width or hidden
    if cell == "rnn":
        core = nn.RNN(
            n_in,
            hidden,
            num_layers=depth,
            nonlinearity=activation,
            batch_first=True,
            dropout=dropout if depth > 1 else 0.0,
        )
    else:
        core = (nn.LSTM if cell == "lstm" else nn.GRU)(
            n_in, hidden, num_layers=depth, batch_first=True, dropout=dropout if depth > 1 else 0.0
        )
    net = RecurrentRegressor(core, hidden, num_outputs)
    init_weights(net, init, activation)
    if cell == "lstm":
        forget_bias_one(core)
    if cell == "rnn" and recurrent_gain:
        with torch.no_grad():
            for name, p in core.named_parameters():
                if name.startswith("weight_hh"):
                    nn.init.orthogonal_(p, gain=recurrent_gain)
    return net


BUILDERS = {"mlp": mlp, "cnn": cnn, "rnn": rnn, "transformer": transformer}


def build_task_model(task, splits, knobs: dict) -> nn.Module:
    """The task's model for its data: its family's (build_model), or a plugin task's own
    builder called with its checked knobs. A classifier has one output per class of the data
    (a dataset parameter may set them, as recall's `values`); a regressor the task's outputs."""
    num_outputs = splits.num_classes or task.num_outputs
    if task.model_fn is None:
        return build_model(task.model_family, splits.input_shape, num_outputs, knobs)
    return task.model_fn(splits.input_shape, num_outputs, **checked_task_knobs(task, knobs))


def build_model(family: str, input_shape, num_outputs: int, knobs: dict) -> nn.Module:
    """The family's model from the spec's knobs over their defaults (catalogue/model_knobs.py);
    a UserError for an unknown knob or a bad value."""
    return BUILDERS[family](input_shape, num_outputs, **checked_knobs(family, knobs))
