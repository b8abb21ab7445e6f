"""What the model families share: the activations a knob names and the initialization schemes.
models.py (mlp, cnn, rnn) and transformer.py both build on it, so neither imports the other's
internals (timm keeps such pieces in its layers/ for the same reason).
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


def init_weights(net: nn.Module, init: str, activation: str, gain: float = 1.0) -> nn.Module:
    """Re-initialize the hidden layers' weight matrices/kernels, their biases to zero;
    "default" keeps PyTorch's. The output layer (the net's last nn.Linear) keeps PyTorch's
    default, as torchvision's ResNet does: He's gain suits a layer whose units feed a ReLU,
    and a head drawn with it starts the logits so large that a 9-conv net's step-0 loss
    reaches 4 (ln 10 = 2.30 is a uniform guess). `gain` then scales the hidden weights (a
    stated weight scale: above 1, each layer multiplies the signal)."""
    if init == "default" and gain == 1.0:
        return net
    nonlin = {"relu": "relu", "leaky_relu": "leaky_relu"}.get(activation, "linear")
    head = [m for m in net.modules() if isinstance(m, nn.Linear)][-1:]
    keep = {id(p) for m in head for p in m.parameters()}
    with torch.no_grad():
        for name, p in net.named_parameters():
            if id(p) in keep:
                continue
            if p.dim() < 2:
                if name.endswith("bias") and init != "default":
                    p.zero_()
                continue
            if init == "kaiming":
                nn.init.kaiming_normal_(p, nonlinearity=nonlin)
            elif init == "xavier":
                nn.init.xavier_uniform_(p)
            elif init == "orthogonal":
                nn.init.orthogonal_(p)
            if gain != 1.0:
                p.mul_(gain)
    return net
