"""What the literature predicts, and what a results file measured: a claim per row, its
source, the numbers read off the scores (scoring.py) and the records, and a verdict. No torch.

Each claim names the arms and tasks it needs and a rule for its verdict, stated in `test`:
"holds" when the rule holds on every task it could be read on, "does not hold" when on none,
"mixed" otherwise (the measured column says where), and "cannot be tested here" when the
suite lacks an arm or task it needs (the measured column says which). A claim that does not
hold is a result: `differs` says what this benchmark's setup does differently from the
source's, and the page shows it with the verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .scoring import Scores

HOLDS, MIXED, FAILS, UNTESTED = "holds", "mixed", "does not hold", "cannot be tested here"
ACTIVATIONS = ("gelu", "elu", "leaky_relu", "selu", "softplus", "tanh", "sigmoid", "relu")


@dataclass(frozen=True)
class Finding:
    verdict: str
    measured: str


@dataclass(frozen=True)
class Claim:
    claim: str  # what the source predicts
    source: str
    test: str  # how the verdict is read off the results
    differs: str  # what this setup does differently from the source's
    read: Callable[[View], Finding]


class View:
    """The scores and records a claim reads: a (task, arm) row where it was scored."""

    def __init__(self, scores: Scores, records: list[dict]):
        self.pt = scores.per_task
        self.records = records

    def tasks(self) -> list[str]:
        return sorted(set(self.pt["task"])) if not self.pt.empty else []

    def row(self, task: str, arm: str) -> pd.Series | None:
        hit = self.pt[(self.pt["task"] == task) & (self.pt["strategy"] == arm) & (self.pt["status"] == "scored")]
        return None if hit.empty else hit.iloc[0]

    def tasks_with(self, *arms: str) -> list[str]:
        return [t for t in self.tasks() if all(self.row(t, a) is not None for a in arms)]

    def attention_logit(self, task: str, arm: str, lr_mult: float = 1.0) -> float | None:
        """The median over the sweep seeds at lr_mult of each run's largest attention logit."""
        values = [
            r["stability"]["attn_logit_max"]
            for r in self.records
            if r.get("task") == task
            and (r.get("strategy") or {}).get("label") == arm
            and (r.get("spec") or {}).get("phase") in ("", "sweep")
            and float((r.get("stress") or {}).get("lr_mult", 1.0)) == lr_mult
            and (r.get("stability") or {}).get("attn_logit_max") is not None
        ]
        return statistics.median(values) if values else None


# ------------------------------------------------------------------------------ readings


def _lr(row: pd.Series) -> float:
    """The max stable lr as a number (none: 0), for comparisons."""
    v = row["max_stable_lr"]
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _lr_text(row: pd.Series) -> str:
    v = _lr(row)
    return "none" if v == 0 else ("≥" if row["top_stable"] else "") + f"×{v:g}"


def _metric(row: pd.Series) -> str:
    return f"{row['accuracy']:.3g} [{row['accuracy_lo']:.3g}, {row['accuracy_hi']:.3g}]"


def _better(a: pd.Series, b: pd.Series) -> bool:
    """a's test metric at its chosen configuration is better than b's (the task's direction)."""
    sign = 1.0 if a["higher_is_better"] else -1.0
    return sign * (float(a["accuracy"]) - float(b["accuracy"])) > 0


def _reaches(row: pd.Series) -> bool:
    sign = 1.0 if row["higher_is_better"] else -1.0
    return sign * (float(row["accuracy"]) - float(row["target"])) >= 0


def _verdict(results: list[bool]) -> str:
    return HOLDS if all(results) else FAILS if not any(results) else MIXED


def _missing(needs: str) -> Finding:
    return Finding(UNTESTED, f"needs {needs} in the results")


def _per_task(
    view: View, arms: tuple[str, ...], holds: Callable, shown: Callable, needs: str, readable: Callable | None = None
) -> Finding:
    """The claim read on each task where all `arms` were scored: holds(rows) per task,
    shown(rows) its numbers; a task where readable(rows) is false is shown, not counted."""
    tasks = view.tasks_with(*arms)
    if not tasks:
        return _missing(needs)
    results, parts = [], []
    for task in tasks:
        rows = [view.row(task, a) for a in arms]
        if readable is not None and not readable(*rows):
            parts.append(f"`{task}`: {shown(*rows)} (not counted: neither learned at any level)")
            continue
        results.append(bool(holds(*rows)))
        parts.append(f"`{task}`: {shown(*rows)}" + ("" if results[-1] else " (not here)"))
    if not results:
        return Finding(UNTESTED, "; ".join(parts))
    return Finding(_verdict(results), "; ".join(parts))


def _higher_lr(arm: str) -> Callable[[View], Finding]:
    def read(view: View) -> Finding:
        return _per_task(
            view,
            (arm, "baseline"),
            lambda a, b: _lr(a) > _lr(b),
            lambda a, b: f"max stable lr {_lr_text(a)} vs baseline {_lr_text(b)}",
            f"`{arm}` and `baseline` on one task",
        )

    return read


def _practitioner_ranking(view: View) -> Finding:
    tasks = [
        t for t in view.tasks_with("batchnorm", "clip_norm") if any(view.row(t, a) is not None for a in ACTIVATIONS)
    ]
    if not tasks:
        return _missing("`batchnorm`, `clip_norm` and an activation arm on one task")
    results, parts = [], []
    for task in tasks:
        acts = [view.row(task, a) for a in ACTIVATIONS if view.row(task, a) is not None]
        act = min(acts, key=lambda r: (r["rank"], r["strategy"]))
        bn, clip = view.row(task, "batchnorm"), view.row(task, "clip_norm")
        results.append(bool(act["rank"] < bn["rank"] < clip["rank"]))
        parts.append(
            f"`{task}`: ranks {act['strategy']} {act['rank']:.0f}, batchnorm {bn['rank']:.0f}, "
            f"clip_norm {clip['rank']:.0f}" + ("" if results[-1] else " (not here)")
        )
    return Finding(_verdict(results), "; ".join(parts))


def _pascanu(view: View) -> Finding:
    task = "adding_rnn"
    if task not in view.tasks_with("clip_norm", "baseline"):
        return _missing("`clip_norm` and `baseline` on `adding_rnn`")
    clip, base = view.row(task, "clip_norm"), view.row(task, "baseline")
    stable, better = _lr(clip) > _lr(base), _better(clip, base)
    return Finding(
        HOLDS if stable and better else FAILS if not (stable or better) else MIXED,
        f"`{task}`: max stable lr {_lr_text(clip)} vs baseline {_lr_text(base)}; test mse {_metric(clip)} "
        f"vs {_metric(base)}",
    )


def _lstm(view: View) -> Finding:
    task = "adding_rnn"
    base = view.row(task, "baseline")
    arms = sorted({s for s in view.pt.loc[view.pt["task"] == task, "strategy"] if s.startswith("lstm")})
    rows = [r for r in (view.row(task, a) for a in arms) if r is not None]
    if base is None or not rows:
        return _missing("an `lstm` arm and `baseline` on `adding_rnn`")
    best = min(rows, key=lambda r: (-(1 if r["higher_is_better"] else -1) * float(r["accuracy"]), r["strategy"]))
    holds = _reaches(best) and not _reaches(base)
    return Finding(
        HOLDS if holds else FAILS,
        f"`{task}` (target {best['target']:.3g}): best LSTM arm `{best['strategy']}` test mse {_metric(best)}; "
        f"baseline (tanh RNN) {_metric(base)}",
    )


def _residual(view: View) -> Finding:
    pairs = (("residual", "baseline"), ("residual+batchnorm", "batchnorm"))
    results, parts = [], []
    for task in view.tasks():
        for res, plain in pairs:
            a, b = view.row(task, res), view.row(task, plain)
            if a is None or b is None:
                continue
            results.append(_better(a, b))
            parts.append(
                f"`{task}`: {res} {_metric(a)} vs {plain} {_metric(b)}" + ("" if results[-1] else " (not here)")
            )
    if not results:
        return _missing("`residual` and `baseline`, or `residual+batchnorm` and `batchnorm`, on one task")
    return Finding(_verdict(results), "; ".join(parts))


def _qk_norm(view: View) -> Finding:
    task = "recall_transformer"
    if task not in view.tasks_with("qk_norm", "baseline"):
        return _missing("`qk_norm` and `baseline` on `recall_transformer`")
    qk, base = view.row(task, "qk_norm"), view.row(task, "baseline")
    a, b = view.attention_logit(task, "qk_norm"), view.attention_logit(task, "baseline")
    logits = a is not None and b is not None and a < b
    stable = _lr(qk) > _lr(base)
    shown = "n/a" if a is None or b is None else f"{a:.3g} vs {b:.3g}"
    return Finding(
        HOLDS if logits and stable else FAILS if not (logits or stable) else MIXED,
        f"`{task}`: largest attention logit at lr ×1 (median over sweep seeds) {shown}; max stable lr "
        f"{_lr_text(qk)} vs baseline {_lr_text(base)}",
    )


def _adam_vs_sgd(view: View) -> Finding:
    def sensitivity(r):  # none when no level learned: worse than any
        v = r["lr_sensitivity"]
        return math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    def text(r):
        v = sensitivity(r)
        return "— (no level learned)" if v == math.inf else f"{v:.2f}"

    return _per_task(
        view,
        ("adam", "sgd"),
        lambda a, s: sensitivity(a) < sensitivity(s),
        lambda a, s: f"LR sensitivity adam {text(a)} vs sgd {text(s)}",
        "`adam` and `sgd` on one task",
        readable=lambda a, s: min(sensitivity(a), sensitivity(s)) < math.inf,
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "Changing the activation helps more against exploding gradients than BatchNorm, which helps more "
        "than gradient clipping",
        "practitioner write-ups (tutorials and Q&A answers that list the fixes in this order)",
        "per task, the best-ranked activation arm ranks above batchnorm, which ranks above clip_norm",
        "the write-ups assume a saturating activation to replace; the MLP and CNN here already use ReLU, so "
        "an activation arm moves away from it, and the best of several activation arms is compared",
        _practitioner_ranking,
    ),
    Claim(
        "Clipping the gradient norm lets a vanilla RNN train on a long-range task where it otherwise explodes",
        "Pascanu, Mikolov & Bengio, 2013 (On the difficulty of training recurrent neural networks)",
        "on adding_rnn, clip_norm's max stable lr is above baseline's and its test mse better",
        "they trained on sequences of 50 to 200 steps for many more updates; here T = 50 for 1500 steps, "
        "with one threshold search an octave down",
        _pascanu,
    ),
    Claim(
        "An LSTM learns long-range dependencies (the adding problem) that a vanilla RNN cannot",
        "Hochreiter & Schmidhuber, 1997 (Long short-term memory)",
        "on adding_rnn, the best LSTM arm's mean test mse reaches the target and baseline's (tanh RNN) does not",
        "the original used sequences up to 1000 steps and far more training sequences; here T = 50, 1500 steps",
        _lstm,
    ),
    Claim(
        "Batch normalization allows much higher learning rates",
        "Ioffe & Szegedy, 2015 (Batch normalization)",
        "on each task where it applies, batchnorm's max stable lr is above baseline's",
        "their gains (up to 30x the learning rate) were on Inception for ImageNet; here the grid stops at ×4 "
        "(a method stable there shows ≥×4) and the budgets are hundreds of steps",
        _higher_lr("batchnorm"),
    ),
    Claim(
        "Identity shortcuts make a network easier to optimize than its plain counterpart",
        "He, Zhang, Ren & Sun, 2016 (Deep residual learning; Identity mappings in deep residual networks)",
        "on each task, residual beats baseline and residual+batchnorm beats batchnorm on the mean test metric",
        "their plain nets had 18 to 152 layers trained for many epochs; these have 8 or 9 layers and a few "
        "hundred steps, where depth is a small obstacle",
        _residual,
    ),
    Claim(
        "Adaptive gradient clipping lets networks train stably at larger learning rates",
        "Brock, De, Smith & Simonyan, 2021 (High-performance large-scale image recognition without normalization)",
        "on each task, agc's max stable lr is above baseline's",
        "NFNets pair AGC with scaled weight standardization and batches of 4096 (λ = 0.01 there); here AGC "
        "alone, λ = 0.01 and small batches",
        _higher_lr("agc"),
    ),
    Claim(
        "QK-LayerNorm prevents the growth of attention logits that makes Transformers diverge at high learning rates",
        "Dehghani et al., 2023; Wortsman et al., 2023 (Small-scale proxies for large-scale Transformer "
        "training instabilities)",
        "on recall_transformer, qk_norm's largest attention logit at lr ×1 is below baseline's and its max "
        "stable lr above baseline's",
        "they study models of millions to billions of parameters; this one has 2 layers of width 64",
        _qk_norm,
    ),
    Claim(
        "z-loss keeps the output logits from drifting and so stabilizes training at high learning rates",
        "Chowdhery et al., 2022 (PaLM); Wortsman et al., 2023",
        "on each task with a softmax output, z_loss's max stable lr is above baseline's",
        "the drift it counters (output-logit divergence) arises with large vocabularies in language models; "
        "these tasks have 10 to 16 classes, and the Transformer's instability is in its attention logits",
        _higher_lr("z_loss"),
    ),
    Claim(
        "Linear learning-rate warmup lets training start at a higher learning rate without diverging",
        "Goyal et al., 2017 (Accurate, large minibatch SGD); Liu et al., 2020 (RAdam)",
        "on each task, warmup's max stable lr is above baseline's",
        "Goyal et al. warm up over 5 epochs at batch 8192; here a few dozen steps on small batches, where "
        "the early instability warmup targets may not be what fails",
        _higher_lr("warmup"),
    ),
    Claim(
        "Adam is less sensitive to its learning rate than SGD",
        "Kingma & Ba, 2015 (Adam); the robustness argument of adaptive methods (Zhang et al., 2020)",
        "on each task, adam's LR sensitivity (mean loss of quality across the grid) is below sgd's",
        "sgd runs at the task's learning rate times the grid; on the Adam-calibrated Transformer that rate is "
        "small for SGD, which makes its sensitivity low and its result poor",
        _adam_vs_sgd,
    ),
)


def findings(scores: Scores, records: list[dict]) -> list[tuple[Claim, Finding]]:
    view = View(scores, records)
    return [(c, c.read(view)) for c in CLAIMS]
