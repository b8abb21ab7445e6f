"""The knobs of each model family, typed: their defaults, their valid values, and what they do.

The one place the knobs are declared. training/models.py builds a model from a checked set
of knobs; the suite checks a task's `model:` overrides against the same classes at load, and
expansion checks what the strategies made of them, so a typo (`depht`) or a bad value
(`activation: swishy`) is an error before anything trains. No torch here.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, create_model, model_validator

from ..core.errors import NotApplicable, UserError
from ..core.settings import Strict
from ..core.validation import one_line

Activation = Literal["relu", "leaky_relu", "elu", "selu", "gelu", "tanh", "sigmoid", "softplus"]
Norm = Literal["none", "batch", "layer", "group"]
Init = Literal["default", "kaiming", "xavier", "orthogonal"]
BranchScale = Literal["none", "zero"]
Reparam = Literal["none", "spectral", "sigma"]
REPARAM = "hidden weights divided by their spectral norm: spectral (Miyato et al., 2018), or sigma (times a learnable scalar, Zhai et al., 2023)"


class FeedForwardKnobs(Strict):
    """An MLP or a plain CNN: a stack of layer -> norm -> activation -> dropout blocks."""

    depth: int = Field(ge=1, description="hidden layers (mlp) or 3x3 convolutions (cnn)")
    width: int = Field(ge=1, description="units per hidden layer (mlp) or base channels (cnn)")
    activation: Activation = Field("relu", description="the nonlinearity of every hidden block")
    norm: Norm = Field("none", description="normalization after each layer (layer: over all features of an example)")
    residual: bool = Field(
        False,
        description="pre-activation residual blocks (norm -> activation -> layer on an identity trunk) around "
        "every equal-shape hidden block, the branch's layer starting at zero",
    )
    branch_scale: BranchScale = Field(
        "none", description="zero: a learnable scalar per residual branch, at 0 (ReZero/SkipInit)"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout probability after each block")
    init: Init = Field("default", description="weight initialization; default keeps PyTorch's")
    init_gain: float = Field(
        1.0,
        gt=0,
        allow_inf_nan=False,
        description="the hidden layers' initial weights times this gain (the head's are kept): above 1 with "
        "kaiming init, the signal grows by about this factor per layer, so a deep stack explodes",
    )
    weight_std: bool = Field(False, description="Scaled Weight Standardization of the hidden layers")
    reparam: Reparam = Field("none", description=REPARAM)

    @model_validator(mode="after")
    def _reparam_fits(self):
        if self.reparam != "none" and self.residual and self.branch_scale == "none":
            raise ValueError(
                f"reparam {self.reparam!r} does not compose with residual: a residual branch's layer starts at "
                "zero (Fixup), where the spectral norm is 0 (branch_scale 'zero', ReZero, keeps the layer)"
            )
        if self.reparam != "none" and self.weight_std:
            raise ValueError(
                f"reparam {self.reparam!r} does not compose with weight_std: standardization undoes its scale"
            )
        return self


class MLPKnobs(FeedForwardKnobs):
    depth: int = Field(8, ge=1, description="hidden layers")
    width: int = Field(256, ge=1, description="units per hidden layer")


class CNNKnobs(FeedForwardKnobs):
    depth: int = Field(9, ge=1, description="3x3 convolutions, in three stages of width, 2x and 4x channels")
    width: int = Field(16, ge=1, description="channels of the first stage")
    init: Init = Field("kaiming", description="weight initialization; default keeps PyTorch's")


class RNNKnobs(Strict):
    """A one-layer recurrent net with a linear head on the last hidden state."""

    cell: Literal["rnn", "lstm", "gru"] = Field("rnn", description="vanilla tanh/ReLU cell, LSTM or GRU")
    hidden: int = Field(128, ge=1, description="hidden units")
    activation: Literal["tanh", "relu"] = Field(
        "tanh", description="the vanilla cell's nonlinearity (gated cells have their own)"
    )
    recurrent_gain: float = Field(
        1.5, ge=0, description="the vanilla cell's recurrent matrix starts orthogonal x this gain (0: no re-draw)"
    )
    init: Init = Field("default", description="weight initialization; default keeps PyTorch's")
    depth: int = Field(1, ge=1, description="stacked recurrent layers")
    width: int | None = Field(None, ge=1, description="hidden units, when set (what `narrower` scales); else `hidden`")
    norm: Literal["none"] = Field("none", description="the rnn family has no normalization knob")
    residual: Literal[False] = Field(False, description="the rnn family has no residual knob")
    branch_scale: Literal["none"] = Field("none", description="the rnn family has no residual branches")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout between stacked layers (depth > 1)")


class TransformerKnobs(Strict):
    """A decoder-only pre-LayerNorm Transformer that classifies from its last position, or a
    GPT that predicts the next token at every position (output: sequence)."""

    depth: int = Field(2, ge=1, description="Transformer blocks (attention, then MLP)")
    width: int = Field(64, ge=1, description="model width; a multiple of heads")
    heads: int = Field(4, ge=1, description="attention heads")
    activation: Activation = Field("gelu", description="the MLP's nonlinearity")
    norm: Literal["layer", "none"] = Field("layer", description="LayerNorm before attention, MLP and head (pre-LN)")
    qk_norm: bool = Field(False, description="LayerNorm over each head's queries and keys (QK-LayerNorm)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the attention and MLP outputs")
    init: Init = Field("default", description="weight initialization; default keeps PyTorch's")
    reparam: Reparam = Field("none", description=REPARAM)
    residual_scale: Literal["none", "deepnorm"] = Field(
        "none", description="deepnorm: post-LN blocks LN(alpha x + f(x)) with beta-scaled init (Wang et al., 2022)"
    )
    output: Literal["last", "sequence"] = Field(
        "last", description="last: classify from the last position; sequence: next-token logits at every position"
    )
    qkv_norm: bool = Field(
        False, description="LayerNorm over each head's queries, keys and values (QKV-norm, Rybakov et al., 2024)"
    )
    norm_position: Literal["pre", "reordered"] = Field(
        "pre", description="pre: x + f(LN(x)); reordered: x + LN(f(x)), the norm on each block's output (OLMo 2)"
    )
    softcap: float = Field(
        0.0, ge=0, description="output logits capped as c tanh(z/c) (Gemma 2, modded-nanogpt); 0: no cap"
    )
    attn_softcap: float = Field(0.0, ge=0, description="attention logits capped as c tanh(z/c) (Gemma 2); 0: no cap")

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")
        if self.reparam != "none" and self.residual_scale == "deepnorm":
            raise ValueError(
                f"reparam {self.reparam!r} does not compose with deepnorm: sigma(W) undoes its beta scaling"
            )
        if self.norm_position == "reordered" and (self.residual_scale == "deepnorm" or self.norm == "none"):
            raise ValueError("norm_position 'reordered' needs norm 'layer' and no deepnorm: it places the norm itself")
        return self


KNOBS: dict[str, type[Strict]] = {"mlp": MLPKnobs, "cnn": CNNKnobs, "rnn": RNNKnobs, "transformer": TransformerKnobs}


class KnobNotTaken(NotApplicable):
    """A plugin task's builder does not take a knob, or a value of it: for a strategy that
    sets it, the strategy is n/a on that task (suite/expand.py), not a mistake in the suite."""


def knobs_model(task) -> type[BaseModel]:
    """The typed knobs of a task's model: its family's, or a plugin builder's own keyword
    parameters (typed by their annotations; untyped ones take any value)."""
    if getattr(task, "model_fn", None) is None:
        return KNOBS[task.model_family]
    return _signature_model(task.model_fn, skip=2, name=f"{task.name}_knobs")


def fn_name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


@functools.cache
def _signature_model(fn, skip: int, name: str) -> type[BaseModel]:
    params = list(inspect.signature(fn).parameters.values())[skip:]
    fields = {
        p.name: (
            Any if p.annotation is inspect.Parameter.empty else p.annotation,
            Field(p.default, description=f"{fn_name(fn)}'s parameter {p.name} (default {p.default!r})"),
        )
        for p in params
    }
    hints = typing.get_type_hints(fn)  # resolves string annotations (from __future__ import annotations)
    fields = {k: (hints.get(k, t), f) for k, (t, f) in fields.items()}
    return create_model(name, __base__=Strict, **fields)


def checked_task_knobs(task, knobs: dict, where: str = "model") -> dict:
    """Every knob of the task's model with the given values over its defaults; a UserError
    naming the knob for a wrong name, type or value."""
    model = knobs_model(task)
    try:
        return model(**knobs).model_dump()
    except ValidationError as e:
        error = KnobNotTaken if getattr(task, "model_fn", None) is not None else UserError
        raise error(one_line(e, where, model)) from None


def checked_knobs(family: str, knobs: dict, where: str = "model") -> dict:
    """Every knob of the family with the given values over its defaults; a UserError naming
    the knob (`model.depht: unknown knob ...`) for a wrong name, type or value."""
    if family not in KNOBS:
        raise UserError(f"{where}: unknown model family {family!r}; valid: {', '.join(KNOBS)}")
    try:
        return KNOBS[family](**knobs).model_dump()
    except ValidationError as e:
        raise UserError(one_line(e, where, KNOBS[family])) from None


def default_knob(task, key: str):
    """A knob's default for the task's model (what a model built without it uses); a
    UserError when its builder has no such knob."""
    fields = knobs_model(task).model_fields
    if key not in fields:
        raise KnobNotTaken(f"the model of {task.name} has no knob {key!r} (its knobs: {', '.join(fields) or 'none'})")
    return fields[key].default
