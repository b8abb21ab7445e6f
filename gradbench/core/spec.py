"""RunSpec: everything that determines one training run, as plain data.

A strategy is a function RunSpec -> RunSpec, so strategies compose by application in order.
The spec is plain JSON-able data (no tensors, no callables): that is what makes run_id a
stable hash, lets a run travel to another process or a Ray worker, and goes into the record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    task: str
    strategy: str  # the arm's label, e.g. "clip_norm+batchnorm"
    strategy_params: dict  # {strategy name: {param: value}}, defaults filled in
    seed: int  # data order and initial weights (paired across arms)
    lr_mult: float  # the stress level: multiplies the final learning rate
    model: dict  # knobs for the task's model builder (depth, activation, norm ...)
    optimizer: dict  # {"name": "sgd", "lr": 0.2, "momentum": 0.9, ...}
    schedule: dict  # {"warmup_steps": int, "decay": "none" | "cosine"}
    trainer: dict  # extra Lightning Trainer kwargs (gradient_clip_val, precision ...)
    data: dict  # dataset parameters (seq_len for the adding problem ...)
    batch_size: int
    max_steps: int  # optimizer steps
    eval_every: int  # validate every this many optimizer steps
    grad_hooks: tuple = ()  # ((name, params), ...): gradient transforms, applied in order after Lightning's clipping
    loss_terms: dict = field(default_factory=dict)  # extra loss terms, e.g. {"l1": 1e-5}
    monitor: dict = field(default_factory=dict)  # StabilityMonitor settings
    # injected loss spikes (a stress axis): {"share": s, "scale": k}: a share s of the steps,
    # drawn from the seed, trains on its batch with the targets permuted and the loss times k
    spikes: dict = field(default_factory=dict)
    # a stress-axis run's place: {"name": axis, "level": value}. A name, not a setting: two
    # runs that differ only here train the same run (same_run_key), so a stress level that is
    # a configuration already run is copied from it, never trained twice
    axis: dict = field(default_factory=dict)
    suite: str = ""  # not part of run_id: the same run in two suites is the same run
    # not part of run_id either: the tuning-protocol phase that first asked for the run
    # ("sweep", "tune", "final"; "" outside a protocol). A final seed that the sweep already
    # ran at the chosen learning rate is that same run, reused, not run again.
    phase: str = ""

    # --- small immutable updates, so a strategy reads as one line -------------------
    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)

    def with_model(self, **kw: Any) -> RunSpec:
        return self.replace(model={**self.model, **kw})

    def with_optimizer(self, **kw: Any) -> RunSpec:
        return self.replace(optimizer={**self.optimizer, **kw})

    def with_schedule(self, **kw: Any) -> RunSpec:
        return self.replace(schedule={**self.schedule, **kw})

    def with_trainer(self, **kw: Any) -> RunSpec:
        return self.replace(trainer={**self.trainer, **kw})

    def with_loss_terms(self, **kw: Any) -> RunSpec:
        return self.replace(loss_terms={**self.loss_terms, **kw})

    def add_grad_hook(self, name: str, **params: Any) -> RunSpec:
        return self.replace(grad_hooks=self.grad_hooks + ((name, dict(params)),))

    # --- identity ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["grad_hooks"] = [[n, p] for n, p in self.grad_hooks]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        d = dict(d)
        d["grad_hooks"] = tuple((n, dict(p)) for n, p in d.get("grad_hooks", ()))
        return cls(**d)

    @property
    def run_id(self) -> str:
        """12 hex chars of sha256 over the canonical JSON of the spec (suite and phase excluded).
        A field added after the first schema is hashed only when it differs from its default,
        so adding an optional field never changes an existing run's id."""
        d = self.to_dict()
        d.pop("suite")
        d.pop("phase")
        for f in dataclasses.fields(self):
            if f.name not in HASHED_ALWAYS and f.name in d and d[f.name] == _default(f):
                del d[f.name]
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# the fields of the first schema, hashed even at their defaults (every recorded run_id has them)
HASHED_ALWAYS = frozenset(
    {
        "task",
        "strategy",
        "strategy_params",
        "seed",
        "lr_mult",
        "model",
        "optimizer",
        "schedule",
        "trainer",
        "data",
        "batch_size",
        "max_steps",
        "eval_every",
        "grad_hooks",
        "loss_terms",
        "monitor",
    }
)


def _default(f: dataclasses.Field):
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return [list(x) for x in value] if isinstance(value, tuple) else value


# what names a run rather than makes it: the arm's label and parameters, the suite, the phase,
# the stress axis
NAME_FIELDS = frozenset({"strategy", "strategy_params", "suite", "phase", "axis"})


def same_run_key(spec: dict) -> str:
    """The run a spec (RunSpec.to_dict()) trains, apart from its names. Two arms whose specs
    share it train the same run, number for number: relu on a ReLU model, sgd_momentum where
    the task's optimizer already is SGD with momentum."""
    rest = {k: v for k, v in spec.items() if k not in NAME_FIELDS and not _later_default(k, v)}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"))


# what sets the numbers a step computes with but not the work it does: the seed, the stress
# level, the learning rate and its schedule, the initial weights, how long a run is and how
# often it validates (a step's cost, not a run's)
STEP_NEUTRAL = frozenset({"seed", "lr_mult", "schedule", "max_steps", "eval_every"})
STEP_NEUTRAL_KNOBS = {"optimizer": frozenset({"lr"}), "model": frozenset({"init", "init_gain", "recurrent_gain"})}


def same_step_key(spec: dict) -> str:
    """The training step a spec (RunSpec.to_dict(), or a record's spec) takes, apart from the
    numbers it takes it with. Two arms whose specs share it do the same work a step, so they
    take the same time per step: adam where the task's optimizer is Adam at another lr, warmup,
    cosine, kaiming (a schedule adds one scheduler call a step, microseconds against a step's
    milliseconds). A field it does not know counts as a difference."""
    rest = {}
    for k, v in spec.items():
        if k in NAME_FIELDS or k in STEP_NEUTRAL or _later_default(k, v):
            continue
        drop = STEP_NEUTRAL_KNOBS.get(k, frozenset())
        rest[k] = {kk: vv for kk, vv in v.items() if kk not in drop} if isinstance(v, dict) else v
    return json.dumps(rest, sort_keys=True, separators=(",", ":"))


def _later_default(name: str, value) -> bool:
    """A field added after the first schema, at its default: a record made before the field
    existed has no such key, and is the same run."""
    f = _FIELDS.get(name)
    return f is not None and name not in HASHED_ALWAYS and value == _default(f)


_FIELDS = {f.name: f for f in dataclasses.fields(RunSpec)}
