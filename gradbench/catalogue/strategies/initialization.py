"""Initialization (model knob `init`; slot "init": one scheme per run) and a zero-initialized
residual-branch scale.

For the rnn family the vanilla cell's recurrent matrix is by default re-drawn orthogonal x
recurrent_gain (1.5: the task's exploding calibration). orthogonal sets that gain to 1 (an
exactly orthogonal recurrent matrix); xavier and kaiming set it to 0, meaning "no re-draw",
so their scheme covers the recurrent matrix too (spectral radius about 1).

rezero has its own slot ("branch scale"): it composes with an init scheme (rezero+kaiming)
and implies residual (rezero+residual is the same run as rezero).
"""

from __future__ import annotations

from ...core.spec import RunSpec
from ..tasks import TASKS
from .base import ANY, strategy


def _rnn(spec: RunSpec) -> bool:
    return TASKS.get(spec.task).model_family == "rnn"


@strategy(family="initialization", applies_to=ANY, slot="init")
def xavier(spec: RunSpec) -> RunSpec:
    """Xavier/Glorot uniform weights, zero biases (Glorot & Bengio, 2010); rnn: the recurrent matrix too."""
    spec = spec.with_model(init="xavier")
    return spec.with_model(recurrent_gain=0.0) if _rnn(spec) else spec


@strategy(family="initialization", applies_to=ANY, slot="init")
def kaiming(spec: RunSpec) -> RunSpec:
    """Kaiming/He normal weights for the activation, zero biases (He et al., 2015); rnn: the recurrent matrix too."""
    spec = spec.with_model(init="kaiming")
    return spec.with_model(recurrent_gain=0.0) if _rnn(spec) else spec


@strategy(family="initialization", applies_to=ANY, slot="init")
def orthogonal(spec: RunSpec) -> RunSpec:
    """Orthogonal weights (Saxe et al., 2014); rnn: recurrent matrix exactly orthogonal, gain 1 (Le et al., 2015; Henaff et al., 2016)."""
    spec = spec.with_model(init="orthogonal")
    return spec.with_model(recurrent_gain=1.0) if _rnn(spec) else spec


@strategy(family="initialization", applies_to=("mlp", "cnn"), slot="branch scale")
def rezero(spec: RunSpec) -> RunSpec:
    """Residual branches times a learnable scalar initialized at 0: blocks start as the identity (ReZero, Bachlechner et al., 2020; SkipInit, De & Smith, 2020)."""
    return spec.with_model(residual=True, branch_scale="zero")
