"""The strategy catalogue: one file per family; importing this package registers them all."""

from . import (activation, architecture, baseline, clipping, initialization,  # noqa: F401
               normalization, optimizers, regularization, schedules)  # (registration happens on import)
from .base import ANY, MODEL_FAMILIES, STRATEGIES, Arm, Strategy, apply_arm, make_arm, not_applicable, strategy

__all__ = ["ANY", "MODEL_FAMILIES", "STRATEGIES", "Arm", "Strategy", "apply_arm", "make_arm",
           "not_applicable", "strategy"]
