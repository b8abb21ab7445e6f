"""The language model's pre-registered predictions (leaderboard/lm/preregistration.yaml), each
read by a fixed rule written from its words, as literature.py reads its claims. No torch.

The predictions were registered before configs/lm.yaml ran; this module states their words as
code, one function per claim (matched by the claim's text), and changes none of them. Each
reads the records of the task `fortunes_gpt`:

* "at 4.8e-2" (the grid's top rate, where the calibration saw baseline stall): the mean test
  bits per byte of the arm's grid runs at that peak rate, on the tuning seeds (0 and 1), a run
  that diverged or ended worse than chance counted at chance;
* "its chosen rate": the arm's runs at its chosen configuration on the held-out seeds;
* "the largest attention logit" / "log Z" of a set of runs: the median over them of each
  run's largest value (a run's maximum over its steps, as the monitor records it), except
  "never exceeds", which reads the maximum over every run of the arm;
* "max stable rate", "Holm-significant paired effect": the page's scores (scoring.py).

A prediction with several parts holds when every part holds, does not hold when none does,
and is mixed otherwise; it cannot be tested when a part lacks the runs it reads.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from ..catalogue.tasks import TASKS
from ..core.record import Record, typed
from .literature import FAILS, HOLDS, MIXED, UNTESTED
from .runs import GRID_PHASES
from .scoring import Scores
from .stats import ALPHA

TASK = "fortunes_gpt"
TOP = 0.048  # the grid's top peak rate (4.8e-2)
TUNING_SEEDS = (0, 1)


@dataclass(frozen=True)
class Reading:
    """One part of a prediction: whether it held (None: not readable) and what was measured."""

    held: bool | None
    measured: str


class _View:
    def __init__(self, scores: Scores, records: Iterable[Record | dict]):
        # a sweep run not trained above an all-diverged level counts (as diverged: at chance)
        self.records = [r for r in typed(records) if r.task == TASK and r.counts_in_scores]
        pt = scores.per_task
        self.rows = pt[(pt["task"] == TASK) & (pt["status"] == "scored")] if not pt.empty else pt

    def row(self, arm: str) -> pd.Series | None:
        hit = self.rows[self.rows["strategy"] == arm] if not self.rows.empty else self.rows
        return None if hit.empty else hit.iloc[0]

    def grid_runs(self, arm: str, rate: float | None = None) -> list[Record]:
        return [
            r
            for r in self.records
            if r.label == arm
            and r.phase in GRID_PHASES
            and r.seed in TUNING_SEEDS
            and (rate is None or math.isclose(r.peak_lr, rate, rel_tol=1e-6))
        ]

    def chosen_runs(self, arm: str) -> list[Record]:
        """The arm's runs at its chosen configuration on the seeds not used to choose it."""
        row = self.row(arm)
        if row is None:
            return []
        return [
            r
            for r in self.records
            if r.label == arm
            and r.phase == "final"
            and r.seed not in TUNING_SEEDS
            and r.lr_mult == row["chosen_lr_mult"]
        ]

    def bpb(self, arm: str, rate: float = TOP) -> float | None:
        values = []
        for r in self.grid_runs(arm, rate):
            # a run not trained has no metrics: the task's chance, as the page counts it
            test, chance = (r.metrics.test, r.metrics.chance) if r.metrics else (None, TASKS.get(TASK).chance)
            finite = test is not None and math.isfinite(test)
            values.append(min(test, chance) if finite and r.status == "ok" else chance)
        return statistics.fmean(values) if values else None

    def spread(self, arm: str, rate: float = TOP) -> float | None:
        values = [r.metrics.test for r in self.grid_runs(arm, rate) if r.metrics and r.metrics.test is not None]
        return max(values) - min(values) if len(values) > 1 else None


def _median(runs: list[Record], key: str) -> float | None:
    values = [getattr(r.stability, key) for r in runs if r.stability is not None]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def _below(name: str, a: float | None, b: float | None, what: str, at_or: bool = False) -> Reading:
    if a is None or b is None:
        return Reading(None, f"{what}: not measured for {name}" if a is None else f"{what}: not measured")
    held = a <= b if at_or else a < b
    return Reading(held, f"{what} {a:.3g} vs {b:.3g}")


def _bpb_below(v: _View, arm: str, other: str = "baseline", at_or: bool = False) -> Reading:
    return _below(arm, v.bpb(arm), v.bpb(other), f"bpb at 4.8e-2, {arm} vs {other}", at_or)


def _qk_norm(v: _View) -> list[Reading]:
    a, b = _median(v.chosen_runs("qk_norm"), "attn_logit_max"), _median(v.chosen_runs("baseline"), "attn_logit_max")
    mine, base = v.row("qk_norm"), v.row("baseline")
    if mine is None or base is None or pd.isna(mine["lr_max_stable"]) or pd.isna(base["lr_max_stable"]):
        stable = Reading(None, "max stable rate: not scored")
    else:
        x, y = float(mine["lr_max_stable"]), float(base["lr_max_stable"])
        # a max stable rate that never went unstable on the grid is a lower bound: not below
        # when both are bounds at the top, or the arm's is at least baseline's
        held = x >= y or (bool(mine["top_stable"]) and bool(base["top_stable"]))
        mark = lambda row, s: ("≥" if row["top_stable"] else "") + f"{s:.3g}"  # noqa: E731
        stable = Reading(held, f"max stable rate {mark(mine, x)} vs {mark(base, y)}")
    return [
        _below("qk_norm", a, b, "largest attention logit at the chosen rate, qk_norm vs baseline"),
        _bpb_below(v, "qk_norm"),
        stable,
    ]


def _below_at_every_rate(v: _View, arm: str, key: str, what: str, missing: str | None = None) -> Reading:
    """The arm's median `key` (a monitor maximum) is below baseline's at every peak rate both
    ran on the tuning seeds (`missing`: the text when no rate has both measured)."""
    shared = sorted(
        {round(r.peak_lr, 12) for r in v.grid_runs(arm)} & {round(r.peak_lr, 12) for r in v.grid_runs("baseline")}
    )
    pairs = [(_median(v.grid_runs(arm, x), key), _median(v.grid_runs("baseline", x), key)) for x in shared]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    below = sum(a < b for a, b in pairs)
    counted = f"{what} below baseline's at {below} of {len(pairs)} shared rates"
    return Reading((below == len(pairs)) if pairs else None, counted if pairs or missing is None else missing)


def _z_loss(v: _View) -> list[Reading]:
    log_z = _below_at_every_rate(v, "z_loss", "log_z_max", "largest log Z", missing="log Z: not measured")
    attn = _median(v.grid_runs("z_loss", TOP), "attn_logit_max")
    grows = Reading(
        None if attn is None else attn > 1000,
        "attention logit at 4.8e-2: not measured"
        if attn is None
        else f"largest attention logit at 4.8e-2 {attn:.3g} (above 1,000 predicted)",
    )
    return [log_z, grows]


def _attn_softcap(v: _View) -> list[Reading]:
    runs = [r for r in v.records if r.label == "attn_softcap" and r.stability is not None]
    values = [r.stability.attn_logit_max for r in runs if r.stability.attn_logit_max is not None]
    capped = Reading(
        max(values) <= 50 if values else None,
        f"largest attention logit over its {len(values)} runs {max(values):.3g}"
        if values
        else "attention logit: not measured",
    )
    return [capped, _bpb_below(v, "attn_softcap")]


def _sigma_reparam(v: _View) -> list[Reading]:
    every = _below_at_every_rate(v, "sigma_reparam", "attn_logit_max", "largest attention logit")
    return [every, _bpb_below(v, "sigma_reparam")]


def _clip_norm(v: _View) -> list[Reading]:
    a, b, spread = v.bpb("clip_norm"), v.bpb("baseline"), v.spread("clip_norm")
    if a is None or b is None or spread is None:
        return [Reading(None, "bpb at 4.8e-2: not measured")]
    return [
        Reading(
            b - a <= spread,
            f"bpb at 4.8e-2 clip_norm {a:.4g} vs baseline {b:.4g}: {b - a:.3g} lower, its seeds' spread {spread:.3g}",
        )
    ]


def _muon(v: _View) -> list[Reading]:
    row = v.row("muon")
    if row is None or pd.isna(row["effect"]) or pd.isna(row["effect_p_holm"]):
        return [Reading(None, "muon: no paired effect")]
    better = float(row["effect"]) < 0 if not bool(row["higher_is_better"]) else float(row["effect"]) > 0
    p = float(row["effect_p_holm"])
    return [Reading(better and p < ALPHA, f"paired effect {float(row['effect']):+.3g} bpb, Holm p {p:.2g}")]


RULES: dict[str, Callable[[_View], list[Reading]]] = {
    "QK-norm prevents attention-logit growth and widens the stable learning-rate range": _qk_norm,
    "z-loss bounds the output logits' log Z but not the attention logits": _z_loss,
    "Soft-capping the attention logits keeps them bounded": _attn_softcap,
    "QKV-norm stabilizes training beyond QK-norm": lambda v: [_bpb_below(v, "qkv_norm", "qk_norm", at_or=True)],
    "The reordered norm with QK-norm is the most stable arrangement": lambda v: [
        _bpb_below(v, "reordered_norm+qk_norm", "qk_norm", at_or=True),
        _bpb_below(v, "reordered_norm+qk_norm", "baseline", at_or=True),
    ],
    "Independent weight decay and a longer warmup lower the sensitivity to the learning rate": lambda v: [
        _bpb_below(v, "independent_weight_decay"),
        _bpb_below(v, "long_warmup"),
    ],
    "Gradient clipping does not cure attention-logit growth": _clip_norm,
    "sigmaReparam prevents attention entropy collapse": _sigma_reparam,
    "Muon trains a Transformer faster than AdamW at the same steps": _muon,
}


def verdicts(scores: Scores, records: Iterable[Record | dict]) -> dict[str, str]:
    """claim -> its verdict and what was measured, for each claim with a rule here; {} when the
    records hold no run of the task."""
    view = _View(scores, records)
    if not view.records:
        return {}
    out = {}
    for claim, rule in RULES.items():
        readings = rule(view)
        held = [r.held for r in readings]
        if any(h is None for h in held):
            verdict = UNTESTED
        elif all(held):
            verdict = HOLDS
        elif not any(held):
            verdict = FAILS
        else:
            verdict = MIXED
        out[claim] = f"{verdict}: {'; '.join(r.measured for r in readings)}"
    return out
