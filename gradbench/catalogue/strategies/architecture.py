"""Architecture: skip connections, gated recurrent cells, and smaller models.

shallower/narrower scale the task's depth/width by a factor (at least 1 layer/unit), so
they shrink whatever size a suite's task override sets.
"""

from typing import Annotated

from pydantic import Field

from ...core.errors import UserError
from ...core.spec import RunSpec
from ..model_knobs import default_knob
from ..tasks import TASKS
from .base import ANY, strategy

FF = ("mlp", "cnn")


@strategy(family="architecture", applies_to=FF, slot="residual")
def residual(spec: RunSpec) -> RunSpec:
    """Pre-activation residual blocks x + f(x), the branch's layer at zero (He et al., 2016b; Fixup, Zhang et al., 2019)."""
    return spec.with_model(residual=True)


def _gated(spec: RunSpec, cell: str) -> RunSpec:
    if spec.model.get("activation", "tanh") != "tanh":
        raise UserError(
            f"{cell}: a gated cell has fixed tanh/sigmoid nonlinearities; it cannot take "
            f"activation {spec.model['activation']!r} (drop the activation strategy)"
        )
    return spec.with_model(cell=cell)


@strategy(family="architecture", applies_to=("rnn",), slot="cell")
def lstm(spec: RunSpec) -> RunSpec:
    """LSTM cell, forget-gate bias 1: gated additive memory (Hochreiter & Schmidhuber, 1997; Jozefowicz et al., 2015)."""
    return _gated(spec, "lstm")


@strategy(family="architecture", applies_to=("rnn",), slot="cell")
def gru(spec: RunSpec) -> RunSpec:
    """GRU cell: gated recurrent unit (Cho et al., 2014)."""
    return _gated(spec, "gru")


def _knob(spec: RunSpec, key: str):
    """The model knob as the run will build it: the spec's value, else the builder's default."""
    return spec.model.get(key, default_knob(TASKS.get(spec.task), key))


@strategy(family="architecture", applies_to=(*FF, "transformer"), slot="depth")
def shallower(spec: RunSpec, factor: Annotated[float, Field(gt=0, le=1)] = 0.5) -> RunSpec:
    """Fewer layers: depth x factor, at least 1 (a shorter backward path; Bengio et al., 1994)."""
    return spec.with_model(depth=max(1, int(_knob(spec, "depth") * factor)))


@strategy(family="architecture", applies_to=ANY, slot="width")
def narrower(spec: RunSpec, factor: Annotated[float, Field(gt=0, le=1)] = 0.5) -> RunSpec:
    """Fewer units: width (cnn: base channels; rnn: hidden size; transformer: a multiple of its heads) x factor (a smaller model, fewer large weights)."""
    f = factor
    family = TASKS.get(spec.task).model_family
    key = "hidden" if family == "rnn" and not spec.model.get("width") else "width"
    if family == "transformer":  # the width stays a multiple of the heads
        heads = _knob(spec, "heads")
        return spec.with_model(width=max(heads, int(_knob(spec, "width") * f) // heads * heads))
    return spec.with_model(**{key: max(1, int(_knob(spec, key) * f))})


@strategy(family="architecture", applies_to=("transformer",), slot="residual")
def deepnorm(spec: RunSpec) -> RunSpec:
    """DeepNorm: post-LN blocks LN(alpha x + f(x)), alpha = (2N)^(1/4), value/output/MLP init scaled by (8N)^(-1/4) (Wang et al., 2022)."""
    return spec.with_model(residual_scale="deepnorm")
