"""Learning-rate schedules (spec.schedule, a LambdaLR stepped once per optimizer step; see
gradbench.optim.lr_lambda) and a plain lower learning rate.

warmup (slot "warmup") and cosine (slot "decay") compose: "warmup+cosine" warms up linearly,
then decays over the remaining steps. lower_lr (slot "lr scale") multiplies the lr of the
run's optimizer, whichever sets it (see optimizers: the scale survives an optimizer swap).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...core.spec import RunSpec
from .base import Positive, strategy


@strategy(family="schedules", slot="lr scale")
def lower_lr(spec: RunSpec, factor: Positive = 0.1) -> RunSpec:
    """A smaller step: lr x factor, the first remedy for an exploding run (Bengio, 2012, Practical recommendations)."""
    return spec.with_optimizer(lr=float(spec.optimizer["lr"]) * factor)


@strategy(family="schedules", slot="warmup")
def warmup(spec: RunSpec, warmup_steps: Annotated[int, Field(ge=1)] = 100) -> RunSpec:
    """Linear warmup: lr x (step+1)/warmup_steps for the first warmup_steps steps (Goyal et al., 2017)."""
    return spec.with_schedule(warmup_steps=warmup_steps)


@strategy(family="schedules", slot="decay")
def cosine(spec: RunSpec) -> RunSpec:
    """Cosine decay to 0 at max_steps, after any warmup (Loshchilov & Hutter, 2017, SGDR without restarts)."""
    return spec.with_schedule(decay="cosine")


@strategy(family="schedules", slot="warmup")
def long_warmup(spec: RunSpec, share: Annotated[float, Field(gt=0, lt=1)] = 0.25) -> RunSpec:
    """A long linear warmup, over `share` of the run's steps: longer warmup widens the stable lr range (Wortsman et al., 2023)."""
    return spec.with_schedule(warmup_steps=max(1, round(share * spec.max_steps)))
