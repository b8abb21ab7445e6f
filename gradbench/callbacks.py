"""gradbench's gradient strategies and StabilityMonitor as Lightning Callbacks for your own
Trainer (the public name;
the implementation and where each acts relative to Lightning's own clipping are in
gradbench/training/callbacks.py).

    from gradbench.callbacks import StabilityMonitor, AGC, AutoClip, ZClip, SkipSpikes, DecoupledWeightDecay
"""

from .training.callbacks import (
    AGC,
    AutoClip,
    DecoupledWeightDecay,
    GradientCallback,
    SkipSpikes,
    StabilityMonitor,
    ZClip,
)

__all__ = ["AGC", "AutoClip", "DecoupledWeightDecay", "GradientCallback", "SkipSpikes", "StabilityMonitor", "ZClip"]
