"""The run record, typed: one model for every place a record is made or read.

training/run.py checks each record it makes against `Record` (as it will read back from the
file), store/jsonl.py checks every line it reads, and analysis/ reads nothing but `Record`
objects: `typed` is its one boundary, so no score or page guards a field by hand (a test
checks). The tests build their fixtures with it, and a test checks docs/records.md's field table
against it. No torch.

Schema 1. A field added later is optional, so older files keep loading; `numerics` is absent
in records written before it existed (they are numerics version 1, core/numerics.py). A key
the model does not know, or another schema, makes the file unreadable to this version: an
error naming the line, never a silent drop. Values are checked, not rewritten in the file (the
model reads an int in a float field as a float; to_json() writes it so).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import taxonomy
from .errors import UserError
from .taxonomy import Outcome
from .validation import one_line

SCHEMA = 1
STATUSES = ("ok", "diverged", "error", "skipped")

Number = float | None  # JSON has no NaN: a non-finite value is written as null
# [step, value]: a JSON pair (strict mode takes no list for a tuple)
Curve = list[Annotated[list[float | None], Field(min_length=2, max_length=2)]]


class Part(BaseModel):
    """Strict: a record is JSON data, so a number is a number (an int is taken for a float),
    never a string or a bool; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StrategyLabel(Part):
    label: str = Field(description="the arm, e.g. clip_norm+batchnorm or clip_norm(max_norm=0.5)")
    names: list[str] = Field(description="the strategies composed, in order")
    params: dict[str, dict[str, Any]] = Field(description="strategy -> its parameters, defaults filled in")


class Stress(Part):
    lr_mult: float = Field(description="the stress level: a multiplier of the (strategy-adjusted) learning rate")


class Metrics(Part):
    name: str = Field(description="accuracy or mse")
    higher_is_better: bool
    target: float = Field(description="the validation metric that counts as converged")
    chance: float = Field(description="what a model that learned nothing scores")
    test: Number = Field(description="once, at the end; null unless ok")
    best_val: Number
    final_val: Number
    steps_to_target: int | None = Field(description="the first validation step at target, or null")
    val_curve: Curve = Field(description="[[step, value], ...]")
    steps: int = Field(description="optimizer steps taken")


class Stability(Part):
    grad_norm_p50: Number = Field(description="pre-clip gradient norm, median over steps")
    grad_norm_p90: Number
    grad_norm_p99: Number
    grad_norm_max: Number
    post_clip_max: Number
    clip_fraction: Number = Field(description="share of steps whose norm clipping changed")
    nonfinite_steps: int
    loss_spikes: int
    grad_spikes: int
    diverged_at_step: int | None
    max_loss_ratio: Number
    grad_norm_curve: Curve = Field(description="[[step, max pre-clip norm in the bucket], ...], at most 200 points")
    # models that tell their largest attention logit (the transformer family) only
    attn_logit_max: Number | None = Field(None, description="the largest attention logit over the run")
    attn_logit_curve: Curve | None = Field(None, description="[[step, max attention logit in the bucket], ...]")
    # language models (output logits at every position) only
    log_z_first: Number | None = Field(None, description="the first step's mean log Z of the output logits")
    log_z_max: Number | None = Field(None, description="the largest mean log Z over the run (z-loss's quantity)")
    log_z_curve: Curve | None = Field(None, description="[[step, max mean log Z in the bucket], ...]")
    spike_score: Number | None = Field(
        None, description="share of steps whose loss or gradient norm spiked (OLMo-core's rule: 6 sigma over 128)"
    )
    block_rms_max: list[Number | None] | None = Field(None, description="each block's largest output RMS")
    block_rms_final: list[Number | None] | None = Field(None, description="each block's output RMS at the last step")


class Timings(Part):
    wall_s: float | None = None
    train_s: float | None = None
    steps_per_s: float | None = None
    monitor_s: float | None = Field(None, description="seconds in the StabilityMonitor's hooks; null without it")
    finished_at: str | None = Field(None, description="UTC, ISO 8601")


class Env(Part):
    gradbench: str | None = None
    torch: str | None = None
    lightning: str | None = None
    python: str | None = None
    device: str | None = None
    cpu: str | None = Field(None, description="the CPU's model name")
    cpu_capability: str | None = Field(None, description="the instruction set torch's kernels use (AVX2, AVX512 ...)")
    threads: int | None = None
    git_commit: str | None = None


class Data(Part):
    dataset: str
    fingerprint: str | None = Field(description="sha256 of the tensors actually used; null if never loaded")


class Record(Part):
    """One run's record: one JSON line of a results file."""

    schema_: Literal[1] = Field(alias="schema", description="the record schema (1)")
    numerics: int | None = Field(None, description="numerics version of the training code (absent: 1)")
    run_id: str = Field(description="12 hex chars: a hash of the resolved run spec")
    suite: str
    task: str
    strategy: StrategyLabel
    seed: int
    stress: Stress
    status: Literal["ok", "diverged", "error", "skipped"]
    reason: str | None = Field(description="why it diverged, errored or was skipped")
    metrics: Metrics
    stability: Stability | None = Field(description="null for runs that did not train")
    timings: Timings
    env: Env | None = Field(description="null for runs that did not train")
    data: Data
    series: str | None = Field(description="folder of steps.csv and layers.csv, relative to the results file")
    spec: dict[str, Any] = Field(description="the resolved run spec: everything that determines the run")
    command: str | None = Field(description="the command that produced it")
    ranks: int | None = Field(None, description="processes of a multi-device (DDP) run")
    not_run: Literal["above_diverged", "above_exploded"] | None = Field(
        None,
        description="a skipped run that applies but was not trained: above_diverged, a lower level of its "
        "sweep diverged on every sweep seed (counts as diverged); above_exploded, a lower level of its stress "
        "axis exploded on every seed (counts as exploded)",
    )

    copy_of: str | None = Field(
        None,
        description="the run_id of a recorded run whose resolved spec this run's is but for its names: "
        "that run's outcome, not trained again",
    )
    outcome: Outcome | None = Field(
        None,
        description="how a trained run ended (core/taxonomy.py): exploded, collapsed, never_learned or learned; "
        "absent in records made before the field (analysis infers it from their curves) and for untrained runs",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    # what analysis reads of every record, by name rather than by nested lookups
    @property
    def label(self) -> str:
        """The arm, e.g. clip_norm+batchnorm."""
        return self.strategy.label

    @property
    def lr_mult(self) -> float:
        return float(self.stress.lr_mult)

    @property
    def phase(self) -> str:
        """The tuning-protocol phase that asked for the run ("" without a protocol)."""
        return self.spec.get("phase") or ""

    @property
    def axis(self) -> dict:
        """A stress-axis run's place, {"name": axis, "level": value}; {} for any other run."""
        return self.spec.get("axis") or {}

    @property
    def ended(self) -> str | None:
        """How the run ended (core/taxonomy.py): as recorded, else inferred from its curves
        (outcome_inferred says which); None for a run that did not train, a not-run sweep run
        above a diverged level being exploded."""
        return self.outcome if self.outcome is not None else taxonomy.of_record(self)

    @property
    def outcome_inferred(self) -> bool:
        """The outcome was inferred from the record's curves: it predates the recorded field (a
        sweep run the protocol did not train has none to infer: it counts as exploded)."""
        return self.outcome is None and not self.not_run and self.ended is not None

    @property
    def optimizer_name(self) -> str | None:
        """The optimizer the run trained with, as the spec names it (sgd, adam ...)."""
        return (self.spec.get("optimizer") or {}).get("name")

    @property
    def peak_lr(self) -> float:
        """The run's peak learning rate in absolute units: its optimizer's (strategy-adjusted)
        rate times the stress level; NaN where the spec does not say."""
        lr = (self.spec.get("optimizer") or {}).get("lr")
        return float(lr) * self.lr_mult if isinstance(lr, int | float) else float("nan")

    @property
    def numerics_version(self) -> int:
        """The numerics version it was made under (core/numerics.py; absent: 1)."""
        return self.numerics if self.numerics is not None else 1

    @property
    def counts_in_scores(self) -> bool:
        """One of a strategy's runs on its task: every record but a run that does not apply
        there; one the protocol did not run above a diverged level counts (as diverged). A
        stress-axis run is scored on its axis only (analysis/stress.py)."""
        return (self.status != "skipped" or bool(self.not_run)) and not self.axis

    def to_json(self) -> dict:
        """The record as its JSON object (what the results file holds)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def reaches(value, target: float, higher_is_better: bool):
    """Whether a value (a float, or a pandas Series element-wise) is at or past the target;
    NaN never is."""
    return value >= target if higher_is_better else value <= target


def steps_to_target(curve, target: float, higher_is_better: bool) -> int | None:
    """The first step of a validation curve ([[step, value], ...]) at or past the target, or
    None; a value that is missing (a non-finite one read back as null) or NaN never is."""
    for step, value in curve:
        if value is not None and reaches(value, target, higher_is_better):
            return step
    return None


def outcome_counts(records: Iterable[Record]) -> dict[str, int]:
    """How many records ended each way, in a fixed order and only the ways that occur: the
    statuses, with a skipped run the protocol did not train (not_run) counted as "not run"
    rather than among the runs that do not apply."""
    counts = dict.fromkeys((*STATUSES, "not run"), 0)
    for r in records:
        counts["not run" if r.not_run else r.status] += 1
    return {k: n for k, n in counts.items() if n}


def record_fields() -> list[str]:
    """The top-level field names as they appear in the JSON (what docs/records.md's table lists)."""
    return [f.alias or name for name, f in Record.model_fields.items()]


def parse_record(record: dict, where: str = "record") -> Record:
    """The typed record of a JSON object; a UserError naming the first field that is not
    right, e.g. 'r.jsonl:3: not a gradbench run record (metrics.test: expected a number or
    null, got 'high')'."""
    try:
        return Record.model_validate(record)
    except ValidationError as e:
        raise UserError(f"{where}: not a gradbench run record ({one_line(e, '', Record)})") from None


def check_record(record: dict, where: str = "record") -> dict:
    """`record` itself (unchanged) when it is a run record of this schema; else parse_record's
    UserError."""
    parse_record(record, where)
    return record


def typed(records: Iterable[Record | dict]) -> list[Record]:
    """Records as the typed model: analysis's one boundary. A Record passes as it is (the store
    reads them typed); a dict (a record made in this process, a test's) is checked once here."""
    return [r if isinstance(r, Record) else parse_record(r) for r in records]


def latest(records: Iterable[Record | dict]) -> list:
    """One record per run_id (the last one written), in first-seen order: typed records for
    analysis, dicts for the runner (store.jsonl.latest_by_run)."""
    by_id: dict[str, Record | dict] = {}
    for r in records:
        by_id[r.run_id if isinstance(r, Record) else r["run_id"]] = r
    return list(by_id.values())
