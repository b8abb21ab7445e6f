"""Typed settings shared by the suite file and the code that reads them: training (the
monitor) and analysis (the scoring weights). No torch here.

The suite validates a section against its model at load, so a typo is an error before
anything trains; the values themselves go into the run spec as written, so a run_id never
depends on how a model would coerce them (10 and 10.0 hash differently).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Unknown keys are errors; ints are not taken for bools, nor strings for numbers."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MonitorSettings(Strict):
    """The StabilityMonitor: what it records each step and when a run counts as diverged."""

    enabled: bool = Field(
        True, description="false: no monitor at all (no statistics, no divergence stop): speed runs only"
    )
    loss_blowup: float = Field(10.0, ge=0, description="a run diverges when its loss exceeds this x the step-0 loss")
    layer_every: int = Field(
        100, ge=1, description="steps between per-layer norms, update/weight ratios and parameter checks"
    )
    spike_factor: float = Field(
        3.0, ge=0, description="a loss spike: loss above this x the median of the previous spike_window losses"
    )
    spike_window: int = Field(50, ge=1, description="losses in the loss-spike median")
    z_threshold: float = Field(
        4.0, ge=0, description="a gradient spike: z-score of the norm against its EMA mean and deviation"
    )
    ema_alpha: float = Field(0.05, ge=0, le=1, description="EMA weight of the newest gradient norm")
    sync_every: int = Field(
        0, ge=0, description="steps between divergence checks; 0: every step on CPU, every 10 on GPU"
    )


MONITOR_DEFAULTS: dict = MonitorSettings().model_dump()


class Weights(Strict):
    """Given weights replace the defaults (stability 0.4, speed 0.2, accuracy 0.4)."""

    stability: float | None = Field(None, ge=0, allow_inf_nan=False, description="weight of the stability score")
    speed: float | None = Field(None, ge=0, allow_inf_nan=False, description="weight of the speed score")
    accuracy: float | None = Field(None, ge=0, allow_inf_nan=False, description="weight of the accuracy score")

    @model_validator(mode="after")
    def _not_all_zero(self):
        if self.stability == 0 and self.speed == 0 and self.accuracy == 0:
            raise ValueError("the weights must not all be 0")
        return self
