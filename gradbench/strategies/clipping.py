"""Gradient clipping. Lightning's own clipping acts in configure_gradient_clipping, after
the AMP scaler has unscaled the gradients and once per optimizer step (so it is correct
under mixed precision and gradient accumulation)."""

from ..spec import RunSpec
from .base import strategy


@strategy(family="clipping", slot="Lightning gradient clipping")
def clip_norm(spec: RunSpec, max_norm: float = 1.0) -> RunSpec:
    """Rescale the global gradient L2 norm to at most max_norm (Pascanu et al., 2013)."""
    return spec.with_trainer(gradient_clip_val=max_norm, gradient_clip_algorithm="norm")


@strategy(family="clipping", slot="Lightning gradient clipping")
def clip_value(spec: RunSpec, clip_value: float = 0.5) -> RunSpec:
    """Clamp every gradient element to [-clip_value, clip_value] (Mikolov, 2012; Keras clipvalue)."""
    return spec.with_trainer(gradient_clip_val=clip_value, gradient_clip_algorithm="value")
