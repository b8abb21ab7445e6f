"""How a run ended: the failure taxonomy, with its rule and every constant in one place. No
torch: training/run.py records each trained run's outcome with it, and analysis/ infers the
same for a record made before the field existed (and says so).

A trained run (status ok or diverged) ended one of four ways, checked in this order:

* exploded: the monitor stopped it (a non-finite loss or gradient, or a loss above
  monitor.loss_blowup x its step-0 loss), or it did not learn (below) and its global pre-clip
  gradient norm rose above BLOWUP_FACTOR x its median over the first BLOWUP_WINDOW of its
  steps. A sweep run the protocol did not train, above a level where every sweep seed
  diverged, counts as exploded. A run that learned is never called exploded for its norm: a
  clipper that contains a blow-up and trains on is what clipping is for.
* collapsed: it made progress (some validation value at least PROGRESS_SHARE of the way from
  chance to the target), then fell back: its final validation value is no better than chance
  plus COLLAPSE_SHARE of that gap.
* never_learned: its final value is that low and it never made progress. Under-training,
  typically a learning rate too low for the budget: shown, never called instability.
* learned: its final value is past that bar.

Only exploded and collapsed count against stability. A run that never learned or collapsed
still learned nothing usable, so no configuration is chosen on it (analysis/choice.py).

Why PROGRESS_SHARE is above COLLAPSE_SHARE: with one bar for both, a run whose validation
wanders around the bar by noise would "collapse". Halfway to the target is progress that
noise around the bar does not explain.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Literal

EXPLODED = "exploded"
COLLAPSED = "collapsed"
NEVER_LEARNED = "never_learned"
LEARNED = "learned"
Outcome = Literal["exploded", "collapsed", "never_learned", "learned"]
OUTCOMES: tuple[str, ...] = (EXPLODED, COLLAPSED, NEVER_LEARNED, LEARNED)
UNSTABLE: tuple[str, ...] = (EXPLODED, COLLAPSED)  # the outcomes that count against stability

# a final validation value no better than chance + this share of the gap to the target: nothing learned
COLLAPSE_SHARE = 0.25
# progress: a validation value at least this share of the way from chance to the target
PROGRESS_SHARE = 0.5
# a gradient-norm blow-up: a pre-clip norm above this x the median over the run's first BLOWUP_WINDOW
BLOWUP_FACTOR = 1e3
BLOWUP_WINDOW = 0.1  # a share of the run's steps

Curve = Sequence[Sequence[float | None]]


def share(value: float | None, chance: float, target: float) -> float | None:
    """How far `value` is from chance to the target: 0 at chance, 1 at the target, in the
    metric's direction whatever it is (target - chance carries the sign); None for no value."""
    if value is None or value != value or target == chance:
        return None
    return (value - chance) / (target - chance)


def grad_norm_blowup(grad_norm_curve: Curve, steps: int) -> bool:
    """Whether the curve's largest norm is above BLOWUP_FACTOR x its median over the first
    BLOWUP_WINDOW of the steps (the curve is the monitor's: per bucket of steps, its largest
    pre-clip norm; a non-finite one is read back as null, and the monitor stops on it)."""
    points = [(s, v) for s, v in grad_norm_curve if v is not None and math.isfinite(v)]
    if not points:
        return False
    early = [v for s, v in points if s <= BLOWUP_WINDOW * steps] or [points[0][1]]
    base = statistics.median(early)
    return base > 0 and max(v for _, v in points) > BLOWUP_FACTOR * base


def classify(
    *,
    status: str,
    not_run: bool = False,
    val_curve: Curve = (),
    final_val: float | None = None,
    chance: float | None = None,
    target: float | None = None,
    grad_norm_curve: Curve = (),
    steps: int = 0,
) -> Outcome | None:
    """The run's outcome (module docstring); None for a run that did not train (skipped, error).
    Without a chance and a target, a run that the monitor did not stop learned."""
    if not_run:
        return EXPLODED
    if status == "diverged":
        return EXPLODED
    if status != "ok":
        return None
    if chance is None or target is None or chance != chance or target != target:
        return LEARNED
    final = share(final_val, chance, target)
    if final is not None and final > COLLAPSE_SHARE:
        return LEARNED
    if grad_norm_blowup(grad_norm_curve, steps):
        return EXPLODED
    shares = [x for _, v in val_curve if (x := share(v, chance, target)) is not None]
    return COLLAPSED if shares and max(shares) >= PROGRESS_SHARE else NEVER_LEARNED


def of_record(record) -> Outcome | None:
    """The outcome of a typed record (core/record.py) from its own fields: what a record made
    before the field existed is inferred to be."""
    m, st = record.metrics, record.stability
    return classify(
        status=record.status,
        not_run=bool(record.not_run),
        val_curve=m.val_curve,
        final_val=m.final_val,
        chance=m.chance,
        target=m.target,
        grad_norm_curve=st.grad_norm_curve if st else (),
        steps=m.steps,
    )
