"""What the literature predicts, and what a results file measured: a claim per row, its
source, the numbers read off the scores (scoring.py) and the records, and a verdict. No torch.

Each claim names the arms and tasks it needs and a rule for its verdict, stated in `test`:
"holds" when the rule holds on every task where it could be read, "does not hold" when on
none, "mixed" otherwise (the measured column says where), and "cannot be tested here" when
the suite lacks an arm or task it needs, or no task could read it (the measured column says
why). A comparison that says nothing is shown but not counted: two arms that both failed
everywhere, both unstable from the grid's lowest level, or both stable up to its top (the
grid stops before it could tell them apart). Two test metrics differ only when their 95%
intervals do not overlap. A claim that does not hold is a result: `differs` says what this
benchmark's setup does differently from the source's (read off the records where it is a
number), and the page shows it with the verdict; so it does for a claim that was read but
could not be counted (its arms both failed, or the grid was too short to tell them apart:
both are the setup's part), not for one whose arms or tasks the results lack.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import pandas as pd

from ..core.record import Record, reaches, typed
from ..core.taxonomy import UNSTABLE
from .runs import GRID_PHASES
from .scoring import Scores

HOLDS, MIXED, FAILS, UNTESTED = "holds", "mixed", "does not hold", "cannot be tested here"
IN_PART = "holds in part (the rest cannot be read here)"
ACTIVATIONS = ("gelu", "elu", "leaky_relu", "selu", "softplus", "tanh", "sigmoid", "relu")


@dataclass(frozen=True)
class Finding:
    verdict: str
    measured: str
    differs: str = ""  # what the setup does differently, where the claim does not (fully) hold
    read: bool = True  # False: the results lack the arms or tasks it needs (nothing to explain)
    can_fail: str = ""  # whether the measure it reads can fail here, and the evidence


@dataclass(frozen=True)
class Claim:
    claim: str  # what the source predicts
    source: str
    test: str  # how the verdict is read off the results
    differs: Callable[[View], str]  # what this setup does differently from the source's
    read: Callable[[View], Finding]
    measure: str = ""  # the measure the verdict reads
    can_fail: Callable[[View], str] = lambda v: ""  # whether that measure can fail here


class View:
    """The scores and records a claim reads: a (task, arm) row where it was scored, and the
    settings the records ran with."""

    def __init__(self, scores: Scores, records: Iterable[Record | dict]):
        self.pt = scores.per_task
        self.records = typed(records)

    def tasks(self) -> list[str]:
        return sorted(set(self.pt["task"])) if not self.pt.empty else []

    def row(self, task: str, arm: str) -> pd.Series | None:
        hit = self.pt[(self.pt["task"] == task) & (self.pt["strategy"] == arm) & (self.pt["status"] == "scored")]
        return None if hit.empty else hit.iloc[0]

    def tasks_with(self, *arms: str) -> list[str]:
        return [t for t in self.tasks() if all(self.row(t, a) is not None for a in arms)]

    def _runs(self, task: str | None, arm: str | None, grid: bool = False) -> list[Record]:
        return [
            r
            for r in self.records
            if (task is None or r.task == task)
            and (arm is None or r.label == arm)
            and (not grid or r.phase in GRID_PHASES)
            and r.status != "skipped"
        ]

    def setting(self, task: str, *path: str, arm: str = "baseline"):
        """The most common value of spec[path...] among the arm's runs on the task (None if none)."""
        values = []
        for r in self._runs(task, arm):
            v = r.spec
            for key in path:
                v = v.get(key) if isinstance(v, dict) else None
            if v is not None:
                values.append(v)
        return Counter(values).most_common(1)[0][0] if values else None

    def top_level(self, task: str | None = None) -> float | None:
        levels = [r.lr_mult for r in self._runs(task, None, grid=True)]
        return max(levels) if levels else None

    def unstable(self, task: str, arm: str | None) -> tuple[int, int]:
        """(runs that exploded or collapsed, runs) of the arm (None: every arm) on the task's
        grid, a sweep run not trained above an all-diverged level among them, as the page
        counts them."""
        runs = [
            r
            for r in self.records
            if r.task == task
            and (arm is None or r.label == arm)
            and r.phase in GRID_PHASES
            and r.counts_in_scores
            and r.ended is not None
        ]
        return sum(r.ended in UNSTABLE for r in runs), len(runs)

    def attention_logit(self, task: str, arm: str, lr_mult: float = 1.0) -> float | None:
        """The median over the grid's seeds at lr_mult of each run's largest attention logit."""
        values = [
            r.stability.attn_logit_max
            for r in self._runs(task, arm, grid=True)
            if r.lr_mult == lr_mult and r.stability is not None and r.stability.attn_logit_max is not None
        ]
        return statistics.median(values) if values else None


# ------------------------------------------------------------------------------ readings


def _lr(row: pd.Series) -> float:
    """The max stable lr as a number (none: 0), for comparisons: in absolute units, so two arms
    compare whatever rate each multiplies (the claims compare arms of one optimizer family);
    the grid's multiplier where the spec names no rate."""
    for key in ("lr_max_stable", "max_stable_lr"):
        v = row[key]
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return float(v)
    return 0.0


def _lr_text(row: pd.Series) -> str:
    v = _lr(row)
    if v == 0:
        return "none"
    absolute = not pd.isna(row["lr_max_stable"])
    unit = f" ({row['optimizer']})" if absolute and row["optimizer"] else ""
    return ("≥" if row["top_stable"] else "") + (f"{v:.3g}{unit}" if absolute else f"×{v:g}")


def _lr_unreadable(a: pd.Series, b: pd.Series) -> str | None:
    """Why a max-stable-lr comparison of a and b says nothing, or None."""
    if _lr(a) == 0 and _lr(b) == 0:
        return "both unstable from the lowest level"
    if a["top_stable"] and b["top_stable"]:
        return "both stable to the top of the grid"
    return None


def _metric(row: pd.Series) -> str:
    return f"{row['accuracy']:.3g} [{row['accuracy_lo']:.3g}, {row['accuracy_hi']:.3g}]"


def _better(a: pd.Series, b: pd.Series) -> bool:
    """a's test metric at its chosen configuration is better than b's, their 95% intervals
    apart (in the task's direction)."""
    if a["higher_is_better"]:
        return float(a["accuracy_lo"]) > float(b["accuracy_hi"])
    return float(a["accuracy_hi"]) < float(b["accuracy_lo"])


def _both_failed(a: pd.Series, b: pd.Series) -> str | None:
    return "both failed" if bool(a["failed"]) and bool(b["failed"]) else None


def _reaches(row: pd.Series) -> bool:
    return bool(reaches(float(row["accuracy"]), float(row["target"]), bool(row["higher_is_better"])))


def _verdict(results: list[bool]) -> str:
    return HOLDS if all(results) else FAILS if not any(results) else MIXED


def _missing(needs: str) -> Finding:
    return Finding(UNTESTED, f"needs {needs} in the results", read=False)


def _tally(cases: list[tuple[str, str, bool | None, str | None]]) -> Finding:
    """(task, numbers, whether the rule held, why it could not be read) per case -> a Finding."""
    parts, results = [], []
    for task, shown, held, unreadable in cases:
        if unreadable:
            parts.append(f"`{task}`: {shown} (not counted: {unreadable})")
        else:
            results.append(bool(held))
            parts.append(f"`{task}`: {shown}" + ("" if held else " (not here)"))
    return Finding(_verdict(results) if results else UNTESTED, "; ".join(parts))


def _higher_lr(arm: str) -> Callable[[View], Finding]:
    def read(view: View) -> Finding:
        tasks = view.tasks_with(arm, "baseline")
        if not tasks:
            return _missing(f"`{arm}` and `baseline` on one task")
        cases = []
        for task in tasks:
            a, b = view.row(task, arm), view.row(task, "baseline")
            shown = f"max stable lr {_lr_text(a)} vs baseline {_lr_text(b)}"
            cases.append((task, shown, _lr(a) > _lr(b), _lr_unreadable(a, b)))
        return _tally(cases)

    return read


def _practitioner_ranking(view: View) -> Finding:
    tasks = [
        t for t in view.tasks_with("batchnorm", "clip_norm") if any(view.row(t, a) is not None for a in ACTIVATIONS)
    ]
    if not tasks:
        return _missing("`batchnorm`, `clip_norm` and an activation arm on one task")
    cases = []
    for task in tasks:
        acts = [view.row(task, a) for a in ACTIVATIONS if view.row(task, a) is not None]
        act = max(acts, key=lambda r: (_lr(r), r["strategy"]))
        bn, clip = view.row(task, "batchnorm"), view.row(task, "clip_norm")
        shown = f"max stable lr {act['strategy']} {_lr_text(act)}, batchnorm {_lr_text(bn)}, clip_norm {_lr_text(clip)}"
        unreadable = _lr_unreadable(act, bn) or _lr_unreadable(bn, clip)
        cases.append((task, shown, _lr(act) > _lr(bn) > _lr(clip), unreadable))
    return _tally(cases)


def _with_baseline(view: View, task: str, arm: str) -> tuple[pd.Series, pd.Series] | None:
    """(arm's row, baseline's row) on the task, where both were scored."""
    return (view.row(task, arm), view.row(task, "baseline")) if task in view.tasks_with(arm, "baseline") else None


def _pascanu(view: View) -> Finding:
    """Two parts, each read apart: clipping removes the explosions (fewer grid runs exploded
    or collapsed than baseline's, which had some), and with it the RNN learns the task."""
    task = "adding_rnn"
    if (rows := _with_baseline(view, task, "clip_norm")) is None:
        return _missing("`clip_norm` and `baseline` on `adding_rnn`")
    clip, base = rows
    (ck, cn), (bk, bn) = view.unstable("adding_rnn", "clip_norm"), view.unstable("adding_rnn", "baseline")
    shown = (
        f"`{task}`: grid runs that exploded or collapsed, clip_norm {ck} of {cn} vs baseline {bk} of {bn}; "
        f"test mse {_metric(clip)} vs {_metric(base)} (target {clip['target']:.3g})"
    )
    if bk == 0:
        return Finding(UNTESTED, f"{shown} (not counted: baseline never exploded)")
    calmer = ck / max(cn, 1) < bk / max(bn, 1)
    return Finding(_verdict([calmer, _reaches(clip)]), shown)


def _lstm(view: View) -> Finding:
    """A gated cell against the vanilla RNN at the same optimizer: lstm vs baseline (SGD), and
    lstm+X vs X for each adaptive optimizer X that both ran; a pair where both failed says
    nothing about the cell."""
    task = "adding_rnn"
    pairs = [("lstm", "baseline")] + [(f"lstm+{o}", o) for o in ("adam", "adamw", "rmsprop")]
    cases = []
    for cell, plain in pairs:
        a, b = view.row(task, cell), view.row(task, plain)
        if a is None or b is None:
            continue
        shown = f"{cell} {_metric(a)} vs {plain} (tanh RNN) {_metric(b)}"
        unreadable = "neither reaches the target" if not _reaches(a) and not _reaches(b) else None
        cases.append((task, shown, _reaches(a) and not _reaches(b), unreadable))
    if not cases:
        return _missing("`lstm` and `baseline`, or `lstm+adam` and `adam`, on `adding_rnn`")
    return _tally(cases)


def _residual(view: View) -> Finding:
    cases = []
    for task in view.tasks():
        for res, plain in (("residual", "baseline"), ("residual+batchnorm", "batchnorm")):
            a, b = view.row(task, res), view.row(task, plain)
            if a is not None and b is not None:
                shown = f"{res} {_metric(a)} vs {plain} {_metric(b)}"
                cases.append((task, shown, _better(a, b), _both_failed(a, b)))
    if not cases:
        return _missing("`residual` and `baseline`, or `residual+batchnorm` and `batchnorm`, on one task")
    return _tally(cases)


def _qk_norm(view: View) -> Finding:
    """Two parts: the attention logits (read off the records), and the max stable lr, which
    says something only where some run on the task exploded or collapsed."""
    task = "recall_transformer"
    if (rows := _with_baseline(view, task, "qk_norm")) is None:
        return _missing("`qk_norm` and `baseline` on `recall_transformer`")
    qk, base = rows
    a, b = view.attention_logit(task, "qk_norm"), view.attention_logit(task, "baseline")
    logits = a is not None and b is not None and a < b
    shown = "n/a" if a is None or b is None else f"{a:.3g} vs {b:.3g}"
    measured = (
        f"`{task}`: largest attention logit at lr ×1 (median over the grid's seeds) {shown}; max stable lr "
        f"{_lr_text(qk)} vs baseline {_lr_text(base)}"
    )
    if not _task_unstable(view, task):
        return Finding(
            IN_PART if logits else FAILS, f"{measured} (not counted: no run on the task exploded or collapsed)"
        )
    return Finding(_verdict([logits, _lr(qk) > _lr(base)]), measured)


def _task_unstable(view: View, task: str) -> bool:
    """Whether any run on the task's grid exploded or collapsed."""
    return view.unstable(task, None)[0] > 0


def _z_loss(view: View) -> Finding:
    """z-loss counters output-logit drift; the records do not measure the output logits, and
    no task here has the large vocabulary where the drift arises: not testable, the max stable
    lr shown for reference."""
    tasks = view.tasks_with("z_loss", "baseline")
    if not tasks:
        return _missing("`z_loss` and `baseline` on one task")
    parts = [
        f"`{t}`: max stable lr {_lr_text(view.row(t, 'z_loss'))} vs baseline {_lr_text(view.row(t, 'baseline'))}"
        for t in tasks
    ]
    return Finding(UNTESTED, "; ".join(parts) + " (not counted: the failure z-loss counters is not measured here)")


def _can_fail_lstm(view: View) -> str:
    """The claim can fail only where the tanh RNN misses the target: name how it did."""
    rows = [(a, view.row("adding_rnn", a)) for a in ("baseline", "adam", "adamw", "rmsprop")]
    shown = [f"{a} {_metric(r)}" for a, r in rows if r is not None]
    if not shown:
        return ""
    missed = all(not _reaches(r) for _, r in rows if r is not None)
    return ("yes" if missed else "only where it misses") + f": the tanh RNN's test mse, {'; '.join(shown)}"


def _can_fail_lr(view: View, only: str | None = None) -> str:
    """Whether a max-stable-lr comparison can fail on each task (`only`: that one): baseline
    must explode or collapse somewhere on its grid."""
    parts = []
    for task in [t for t in view.tasks() if only is None or t == only]:
        k, n = view.unstable(task, "baseline")
        if n:
            parts.append(f"`{task}` {'yes' if k else 'no'} ({k} of {n} baseline grid runs exploded or collapsed)")
    return "; ".join(parts)


def _adam_vs_sgd(view: View) -> Finding:
    tasks = view.tasks_with("adam", "sgd")
    if not tasks:
        return _missing("`adam` and `sgd` on one task")

    def sensitivity(r) -> float:  # none when no level learned: worse than any
        v = r["lr_sensitivity"]
        return math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    def text(r) -> str:
        v = sensitivity(r)
        if v < math.inf:
            return f"{v:.2f}"
        return "— (one level)" if int(r["levels"]) < 2 else "— (no level learned)"

    cases = []
    for task in tasks:
        a, s = view.row(task, "adam"), view.row(task, "sgd")
        shown = f"LR sensitivity adam {text(a)} vs sgd {text(s)}"
        unreadable = (
            "one level: no response to read"
            if min(int(a["levels"]), int(s["levels"])) < 2
            else ("neither learned at any level" if min(sensitivity(a), sensitivity(s)) == math.inf else None)
        )
        cases.append((task, shown, sensitivity(a) < sensitivity(s), unreadable))
    return _tally(cases)


# ------------------------------------------------------------------ the setups, as run here


def _adding_setup(view: View) -> str:
    steps, seq_len = view.setting("adding_rnn", "max_steps"), view.setting("adding_rnn", "data", "seq_len")
    return f"T = {seq_len or '?'}, {steps or '?'} steps"


def _grid_top(view: View) -> str:
    top = view.top_level()
    return f"×{top:g}" if top is not None else "?"


def _warmup_setup(view: View) -> str:
    parts = []
    for task in view.tasks_with("warmup"):
        warm = view.setting(task, "schedule", "warmup_steps", arm="warmup")
        parts.append(f"{warm} of {view.setting(task, 'max_steps', arm='warmup')} steps on `{task}`")
    return ", ".join(parts) or "?"


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "Changing the activation helps more against exploding gradients than BatchNorm, which helps more "
        "than gradient clipping",
        "practitioners' folklore, not a paper's result (tutorials and Q&A answers that list the fixes in this order)",
        "per task, the best activation arm's max stable lr is above batchnorm's, which is above clip_norm's (all "
        "three on the task's SGD, so one unit)",
        lambda v: (
            "the write-ups assume a saturating activation to replace; the MLP and CNN here already use "
            "ReLU, so an activation arm moves away from it, and the best of several activation arms is compared"
        ),
        _practitioner_ranking,
        measure="max stable lr (explosion tolerance)",
        can_fail=_can_fail_lr,
    ),
    Claim(
        "Clipping the gradient norm lets a vanilla RNN train on a long-range task where it otherwise explodes",
        "Pascanu, Mikolov & Bengio, 2013 (On the difficulty of training recurrent neural networks)",
        "on adding_rnn, fewer of clip_norm's grid runs explode or collapse than baseline's, and clip_norm's mean "
        "test mse reaches the target (mixed when only one of the two holds)",
        lambda v: (
            "their adding-problem success (lengths 50 to 200) is clipping together with a regularizer against "
            "vanishing gradients (SGD-CR), up to 5M updates of 20 sequences at lr 0.01; clipping alone is compared "
            f"only on the temporal-order task, where it helps more as sequences grow; here clipping alone, {_adding_setup(v)}"
        ),
        _pascanu,
        measure="grid runs that exploded or collapsed; quality at the tuned configuration against the target",
        can_fail=lambda v: _can_fail_lr(v, "adding_rnn"),
    ),
    Claim(
        "An LSTM learns long-range dependencies (the adding problem) that a vanilla RNN cannot",
        "Hochreiter & Schmidhuber, 1997 (Long short-term memory)",
        "on adding_rnn, at the same optimizer (lstm vs the tanh RNN on SGD, lstm+adam vs adam, ...), the LSTM's "
        "mean test mse reaches the target and the RNN's does not; a pair where both fail is not counted",
        lambda v: (
            f"the original used sequences up to 1000 steps and far more training sequences; here {_adding_setup(v)}"
        ),
        _lstm,
        measure="quality at the tuned configuration against the task's target",
        can_fail=lambda v: _can_fail_lstm(v),
    ),
    Claim(
        "Batch normalization allows much higher learning rates",
        "Ioffe & Szegedy, 2015 (Batch normalization)",
        "on each task where it applies, batchnorm's max stable lr is above baseline's",
        lambda v: (
            "their gains (up to 30x the learning rate) were on Inception for ImageNet; here the grid "
            f"stops at {_grid_top(v)}, so an arm stable there shows only that it reached the top"
        ),
        _higher_lr("batchnorm"),
        measure="max stable lr (explosion tolerance)",
        can_fail=_can_fail_lr,
    ),
    Claim(
        "Identity shortcuts make a network easier to optimize than its plain counterpart",
        "He, Zhang, Ren & Sun, 2016 (Deep residual learning; Identity mappings in deep residual networks)",
        "on each task, residual beats baseline and residual+batchnorm beats batchnorm on the test metric, the "
        "95% intervals apart (the test metric stands in for the training error they compared)",
        lambda v: (
            "their plain nets had 18 and 34 layers on ImageNet and 20 to 56 on CIFAR-10, trained for "
            "many epochs; these have 8 or 9 layers and short budgets, where depth is a small obstacle"
        ),
        _residual,
        measure="quality at the tuned configuration, 95% intervals apart",
        can_fail=lambda v: "yes: a plain and a residual network can differ in quality on every task",
    ),
    Claim(
        "Adaptive gradient clipping lets networks train stably at larger learning rates",
        "Brock, De, Smith & Simonyan, 2021 (High-performance large-scale image recognition without normalization)",
        "on each task, agc's max stable lr is above baseline's",
        lambda v: (
            "NFNets pair AGC with scaled weight standardization and batches of 4096 (λ = 0.01 there); "
            "here AGC alone, λ = 0.01 and small batches"
        ),
        _higher_lr("agc"),
        measure="max stable lr (explosion tolerance)",
        can_fail=_can_fail_lr,
    ),
    Claim(
        "QK-LayerNorm prevents the growth of attention logits that makes Transformers diverge at high learning rates",
        "Dehghani et al., 2023 (Scaling vision transformers to 22 billion parameters); Wortsman et al., 2023 "
        "(Small-scale proxies for large-scale Transformer training instabilities)",
        "on recall_transformer, qk_norm's largest attention logit at lr ×1 is below baseline's and its max "
        "stable lr above baseline's (mixed when only one of the two holds; the second is read only where some "
        "run on the task exploded or collapsed)",
        lambda v: "they study models of millions to billions of parameters; this one has 2 layers of width 64",
        _qk_norm,
        measure="the largest attention logit; max stable lr (explosion tolerance)",
        can_fail=lambda v: _can_fail_lr(v, "recall_transformer"),
    ),
    Claim(
        "z-loss keeps the output logits from drifting and so stabilizes training at high learning rates",
        "Chowdhery et al., 2022 (PaLM); Wortsman et al., 2023",
        "on each task with a softmax output, z_loss's max stable lr is above baseline's",
        lambda v: (
            "the drift it counters (output-logit divergence) arises with large vocabularies in language "
            "models; these tasks have 10 to 16 classes, and the Transformer's instability is in its attention logits"
        ),
        _z_loss,
        measure="none that can fail here: the output logits' drift is not measured",
        can_fail=lambda v: (
            "no: output-logit drift, what z-loss counters, is not recorded, and these tasks have no "
            "large vocabulary for it to arise in"
        ),
    ),
    Claim(
        "Linear learning-rate warmup lets training start at a higher learning rate without diverging",
        "Goyal et al., 2017 (Accurate, large minibatch SGD)",
        "on each task, warmup's max stable lr is above baseline's",
        lambda v: (
            f"Goyal et al. warm up over 5 epochs at batch 8192; here the warmup is {_warmup_setup(v)}, on small batches"
        ),
        _higher_lr("warmup"),
        measure="max stable lr (explosion tolerance)",
        can_fail=_can_fail_lr,
    ),
    Claim(
        "Adam is less sensitive to its learning rate than SGD",
        "Kingma & Ba, 2015 (Adam: little tuning needed); Sivaprasad et al., 2020 (Optimizer benchmarking needs "
        "to account for hyperparameter tuning)",
        "on each task, adam's LR sensitivity (the mean loss of quality across the grid) is below sgd's",
        lambda v: (
            "sgd runs without momentum at the task's SGD rate times the grid (the rate SGD with momentum "
            "is calibrated at), so its effective step is a tenth of momentum SGD's; the sources tune each "
            "optimizer's rate over a wider range"
        ),
        _adam_vs_sgd,
        measure="LR sensitivity (the mean loss of quality across the grid)",
        can_fail=lambda v: "yes: both optimizers lose quality away from their best level",
    ),
)


def findings(scores: Scores, records: Iterable[Record | dict]) -> list[tuple[Claim, Finding]]:
    view = View(scores, records)
    out = []
    for c in CLAIMS:
        f = c.read(view)
        # a claim read but not borne out, or not countable (both arms failed), says what differs
        explained = f.verdict in (FAILS, MIXED, IN_PART) or (f.verdict == UNTESTED and f.read)
        f = replace(f, can_fail=c.can_fail(view)) if f.read else f
        out.append((c, replace(f, differs=c.differs(view)) if explained else f))
    return out
