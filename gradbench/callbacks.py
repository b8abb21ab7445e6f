"""gradbench's gradient strategies as Lightning Callbacks for your own Trainer (the public name;
the implementation and where each acts relative to Lightning's own clipping are in
gradbench/training/callbacks.py).

    from gradbench.callbacks import AGC, AutoClip, ZClip, SkipSpikes, DecoupledWeightDecay
"""

from .training.callbacks import AGC, AutoClip, DecoupledWeightDecay, GradientCallback, SkipSpikes, ZClip

__all__ = ["AGC", "AutoClip", "DecoupledWeightDecay", "GradientCallback", "SkipSpikes", "ZClip"]
