"""The strategy catalogue: one file per family; importing this package registers them all."""

from . import (  # noqa: F401
    activation,
    architecture,
    baseline,
    clipping,
    gradient_rules,
    initialization,
    logit_caps,
    normalization,  # (registration happens on import)
    optimizers,
    regularization,
    schedules,
)
from .base import (
    ANY,
    MODEL_FAMILIES,
    STRATEGIES,
    Arm,
    Strategy,
    apply_arm,
    make_arm,
    not_applicable,
    strategy,
)

__all__ = [
    "ANY",
    "MODEL_FAMILIES",
    "STRATEGIES",
    "Arm",
    "Strategy",
    "apply_arm",
    "make_arm",
    "not_applicable",
    "strategy",
]
