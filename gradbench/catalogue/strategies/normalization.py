"""Normalization layers after every hidden linear/conv layer (model knob `norm`), and
Scaled Weight Standardization of the conv kernels (model knob `weight_std`).

batchnorm, layernorm and groupnorm share the slot "normalization" (a layer has one norm).
weight_std standardizes the weights, not the activations: it has its own slot, so it
composes with a norm (Qiao et al. pair it with GroupNorm: `groupnorm+weight_std`).
qk_norm is the transformer's: it normalizes attention's queries and keys, not a layer's output.
spectral_norm and sigma_reparam divide the weights by their spectral norm (slot
"reparametrization"; training/reparam.py); a zero-initialized residual branch has none, so
the model's knobs refuse them with residual (not with rezero), weight_std or deepnorm.
"""

from ...core.spec import RunSpec
from .base import strategy

FF = ("mlp", "cnn")


@strategy(family="normalization", applies_to=FF, slot="normalization")
def batchnorm(spec: RunSpec) -> RunSpec:
    """Batch normalization after each hidden layer (Ioffe & Szegedy, 2015)."""
    return spec.with_model(norm="batch")


@strategy(family="normalization", applies_to=FF, slot="normalization")
def layernorm(spec: RunSpec) -> RunSpec:
    """Layer normalization over all features of an example (Ba et al., 2016); conv: GroupNorm(1, C)."""
    return spec.with_model(norm="layer")


@strategy(family="normalization", applies_to=FF, slot="normalization")
def groupnorm(spec: RunSpec) -> RunSpec:
    """Group normalization with min(8, C) groups (Wu & He, 2018)."""
    return spec.with_model(norm="group")


@strategy(family="normalization", applies_to=("cnn",), slot="weight standardization")
def weight_std(spec: RunSpec) -> RunSpec:
    """Scaled Weight Standardization of conv kernels with a learnable gain (Qiao et al., 2019; Brock et al., 2021a, NF-Nets)."""
    return spec.with_model(weight_std=True)


@strategy(family="normalization", applies_to=("transformer",), slot="qk norm")
def qk_norm(spec: RunSpec) -> RunSpec:
    """QK-LayerNorm: LayerNorm over each head's queries and keys before their product (Dehghani et al., 2023; Wortsman et al., 2023)."""
    return spec.with_model(qk_norm=True)


@strategy(family="normalization", applies_to=("transformer",), slot="qk norm")
def qkv_norm(spec: RunSpec) -> RunSpec:
    """QKV-norm: LayerNorm over each head's queries, keys and values after their projection (Rybakov et al., 2024)."""
    return spec.with_model(qkv_norm=True)


@strategy(family="normalization", applies_to=("transformer",), slot="norm position")
def reordered_norm(spec: RunSpec) -> RunSpec:
    """Reordered norm: x + LN(f(x)), the norm on each attention and MLP output instead of its input (OLMo 2, Team OLMo, 2024)."""
    return spec.with_model(norm_position="reordered")


def _reparam(spec: RunSpec, kind: str) -> RunSpec:
    # what it does not compose with (a zero-initialized residual branch, weight_std, deepnorm)
    # the model's knobs refuse, whichever strategy of an arm comes first
    return spec.with_model(reparam=kind)


@strategy(family="normalization", applies_to=("mlp", "cnn", "transformer"), slot="reparametrization")
def spectral_norm(spec: RunSpec) -> RunSpec:
    """Spectral normalization W / sigma(W) of the hidden layers, one power iteration a step, torch's parametrization (Miyato et al., 2018)."""
    return _reparam(spec, "spectral")


@strategy(family="normalization", applies_to=("mlp", "cnn", "transformer"), slot="reparametrization")
def sigma_reparam(spec: RunSpec) -> RunSpec:
    """sigma-Reparam: hidden weights W_hat = gamma / sigma(W) W, gamma learnable, starting at sigma(W_0) (Zhai et al., 2023)."""
    return _reparam(spec, "sigma")
