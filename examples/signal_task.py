"""A task of your own, as a gradbench plugin: a plain deep 1-D CNN that classifies noisy
synthetic signals, trained with SGD at a learning rate where it is prone to explode
(one seed, 300 steps: the baseline learned nothing at lr 0.0625 and 0.125 and diverged at 0.25
and 1.0; clip_norm reached 94% test accuracy at 0.0625 and diverged at 0.5).

Load it from a suite with `plugins: [signal_task.py]` (examples/signal_suite.yaml runs it
beside gradbench's own tasks). Importing this file registers the task. What it declares:

* the data: a function of its parameters that returns tensors (train x, train y, test x,
  test y; gradbench carves a fixed validation split out of train and fingerprints them);
* the model: a builder `(input_shape, num_outputs, **knobs) -> nn.Module`. Its keyword
  parameters are the task's model knobs, typed by their annotations: a strategy that sets a
  knob the builder does not take, or a value its annotation does not allow, is n/a on this
  task with that reason (here: `batchnorm` applies, `layernorm` and `residual` do not);
  strategies that act on the gradients, the optimizer, the schedule or the loss apply to any
  model. The last layer registered is the head (AGC leaves it alone);
* the loss, the metric, its direction, target and chance, and the step budget.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from gradbench import Task, register_task

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU}


def noisy_signals(
    n_train: int = 6000, n_test: int = 1000, length: int = 128, noise: float = 1.0, seed: int = 7
) -> tuple[torch.Tensor, ...]:
    """Four classes of signal (two frequencies x a chirp or not), each a random phase and
    amplitude in Gaussian noise: (x [n, 1, length], y [n]) for train and test."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int):
        y = torch.randint(0, 4, (n,), generator=g)
        t = torch.linspace(0, 1, length)
        freq = torch.where(y % 2 == 0, 4.0, 9.0)[:, None]
        chirp = torch.where(y >= 2, 6.0, 0.0)[:, None]
        phase = 2 * math.pi * torch.rand(n, 1, generator=g)
        amp = 0.5 + torch.rand(n, 1, generator=g)
        x = amp * torch.sin(2 * math.pi * (freq + chirp * t) * t + phase)
        x = x + noise * torch.randn(n, length, generator=g)
        return x[:, None, :], y

    return (*make(n_train), *make(n_test))


def cnn1d(
    input_shape: tuple,
    num_outputs: int,
    depth: int = 8,
    width: int = 32,
    activation: Literal["relu", "tanh", "gelu", "elu"] = "relu",
    norm: Literal["none", "batch"] = "none",
    init: Literal["default", "kaiming"] = "default",
) -> nn.Module:
    """`depth` same-width 1-D convolutions (kernel 5), each followed by an optional BatchNorm
    and the activation, then global average pooling and a linear head."""
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for _ in range(depth):
        layers.append(nn.Conv1d(channels, width, kernel_size=5, padding=2))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATIONS[activation]())
        channels = width
    layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(width, num_outputs)]
    net = nn.Sequential(*layers)
    if init == "kaiming":
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return net


register_task(
    Task(
        name="signal_cnn1d",
        description="Noisy synthetic signals, 4 classes, a plain 8-layer 1-D CNN (width 32, Kaiming init), SGD+momentum lr 0.25",
        dataset="signal_cnn1d",
        model_family="custom",
        loss="cross_entropy",
        metric="accuracy",
        higher_is_better=True,
        target=0.9,
        chance=0.25,
        # at lr 0.25 the baseline diverges within 100 steps; clipped, it learns at a quarter of it
        optimizer={"name": "sgd", "lr": 0.25, "momentum": 0.9},
        batch_size=64,
        max_steps=300,
        eval_every=50,
        num_outputs=4,
        cpu_ms_per_step=8,
        model={"init": "kaiming"},  # with PyTorch's default init the plain stack does not train at all
        data_fn=noisy_signals,
        model_fn=cnn1d,
    )
)
