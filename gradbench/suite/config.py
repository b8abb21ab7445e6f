"""Suites: a YAML file -> one typed SuiteFile (pydantic) -> a resolved Suite (expand.py turns
it into runs).

Every value is checked on load: the file's shape and types by SuiteFile, then what needs the
catalogue: task names, strategy arms and their parameters, each task's model knobs
(catalogue/model_knobs.py) and data parameters (catalogue/data_params.py). So a typo is one
line naming the field, exit 2, before anything trains, never a silent fallback to a default
nor an error record per run. `gradbench schema` prints SuiteFile's JSON Schema, for editors.

Values that go into a run spec are kept as written (validated, not coerced): run_ids hash
them, and 10 and 10.0 hash differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, create_model, field_validator

from ..catalogue import plugins
from ..catalogue.data_params import checked_task_data, data_params_model
from ..catalogue.model_knobs import checked_task_knobs, knobs_model
from ..catalogue.strategies import STRATEGIES, Arm, make_arm
from ..catalogue.tasks import TASKS
from ..core.errors import UserError, did_you_mean, unknown
from ..core.optimizer_family import KNOWN as KNOWN_FAMILIES
from ..core.settings import MonitorSettings, Strict, Weights
from ..core.validation import one_line, shown
from ..core.yaml_input import read_yaml

# a stress level: a multiplier of a learning rate, so positive and finite
LrMult = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Stress(Strict):
    lr_mult: list[LrMult] = Field(
        [1.0], min_length=1, description="multipliers of each run's (strategy-adjusted) learning rate"
    )


# a tuning protocol's default learning-rate grid: 7 levels, x1/8 ... x8 of each arm's own lr
SWEEP_LR_MULTS = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
MAX_EXTRA_TRIALS = 6
MAX_BRACKET_OCTAVES = 8
# an absolute learning rate: positive and finite
AbsoluteLr = Annotated[float, Field(gt=0, allow_inf_nan=False)]
LrGrid = dict[str, Annotated[list[AbsoluteLr], Field(min_length=1)]]


class Protocol(Strict):
    """A tuning protocol (the DeepOBS and AlgoPerf pattern), run in phases by one command:
    every arm's own learning-rate sweep (stress.lr_mult, default x1/8 ... x8) on the first
    `sweep_seeds` seeds; the same number of extra trials for every arm (its declared
    parameter's search, else a finer learning rate); a choice on validation from those seeds
    only; then every seed at each arm's chosen configuration."""

    sweep_seeds: int = Field(2, gt=0, description="the sweep and the extra trials run the first this many of `seeds`")
    extra_trials: int = Field(
        2,
        ge=0,
        le=MAX_EXTRA_TRIALS,
        description="tuning trials per arm and task beyond the grid, the same for every arm: "
        "its declared parameter (a clipping threshold, a coefficient) in octaves around its value "
        "at the chosen lr, else the lr half an octave, then a quarter and three quarters, either side of the "
        "chosen one, lower first except from the top of the grid (equal budgets are equal trial counts)",
    )
    skip_above_diverged: bool = Field(
        False,
        description="run the sweep one learning-rate level at a time, lowest first, and do not run an arm's "
        "levels above one where every sweep seed diverged: they are recorded as not run and count as "
        "diverged (benchmarks/diverged_above.py checks the rule on recorded sweeps)",
    )
    lr_grid: LrGrid | None = Field(
        None,
        description="absolute learning rates per optimizer family (core/optimizer_family.py), e.g. "
        "{sgd: [0.025, 0.05, 0.1], adam: [0.0005, 0.001, 0.002]}: an arm whose optimizer is of a listed family "
        "sweeps these rates, whatever its own default; other arms sweep the suite's levels (stress.lr_mult, "
        "x1/8 ... x8 by default) of their own rate",
    )
    bracket_octaves: int = Field(
        0,
        ge=0,
        le=MAX_BRACKET_OCTAVES,
        description="bracket each arm's optimum: while its best sweep level is the lowest or the highest it ran, "
        "the sweep adds the level an octave beyond, up to this many octaves past the declared grid (0: off); "
        "an optimum still on an edge then is shown as unbracketed, with the edge it sits on",
    )
    contender_seeds: int | None = Field(
        None,
        gt=0,
        le=100,
        description="after the final seeds, the arms whose 95% interval on a task overlaps the leader's or "
        "baseline's (the contenders, and those two) run more final seeds, up to this many in all, so that the "
        "comparisons that decide get the power; the seeds added are the smallest not yet used",
    )


class TaskOverrides(Strict):
    max_steps: int | None = Field(None, gt=0, description="optimizer steps per run")
    eval_every: int | None = Field(None, gt=0, description="validate every this many optimizer steps")
    batch_size: int | None = Field(None, gt=0, description="training examples per step")
    lr_mult: list[LrMult] | None = Field(
        None, min_length=1, description="this task's stress levels (replaces stress.lr_mult)"
    )
    lr_grid: LrGrid | None = Field(
        None,
        description="this task's absolute learning rates per optimizer family, over protocol.lr_grid's family by family",
    )
    model: dict[str, Any] | None = Field(None, description="model knobs over the task's (see catalogue/model_knobs.py)")
    data: dict[str, Any] | None = Field(
        None, description="dataset parameters, e.g. seq_len (see catalogue/data_params.py)"
    )
    strategies: list[str | dict[str, dict[str, Any] | None]] | None = Field(
        None,
        description="more arms on this task only, beside the suite's strategies: 'name', 'a+b', or "
        "{name: {param: value}} (the page ranks each arm on the tasks it ran)",
    )


Precision = Literal[
    "64-true",
    "64",
    64,
    "32-true",
    "32",
    32,
    "16-mixed",
    "16",
    16,
    "bf16-mixed",
    "bf16",
    "16-true",
    "bf16-true",
    "transformer-engine",
    "transformer-engine-float16",
]
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"]
# Lightning's registered strategy names (tests/test_lightning_compat.py checks them against it)
TrainerStrategy = Literal[
    "auto",
    "ddp",
    "ddp_spawn",
    "ddp_fork",
    "ddp_notebook",
    "ddp_find_unused_parameters_true",
    "fsdp",
    "deepspeed",
    "single_device",
    "single_xla",
    "xla",
]


class TrainerSettings(Strict):
    """Extra Lightning Trainer arguments for every run (what the Trainer itself would accept)."""

    precision: Precision | None = Field(None, description="Lightning precision, e.g. 32-true or bf16-mixed")
    accumulate_grad_batches: int | None = Field(None, gt=0, description="batches per optimizer step")
    accelerator: Accelerator | None = Field(None, description="where a run trains (default auto)")
    devices: int | list[int] | Literal["auto"] | None = Field(
        None, description="devices per run; above 1: one run on several devices (DDP)"
    )

    @field_validator("devices")
    @classmethod
    def _a_device_count(cls, devices):
        if isinstance(devices, int) and not (devices >= 1 or devices == -1):
            raise ValueError(f"expected a positive count, -1 (every device), a list of indices or auto, got {devices}")
        if isinstance(devices, list) and (not devices or any(d < 0 for d in devices)):
            raise ValueError(f"expected a non-empty list of device indices (0 and up), got {shown(devices)}")
        return devices

    strategy: TrainerStrategy | None = Field(None, description="Lightning's training strategy, e.g. ddp")
    deterministic: bool | Literal["warn"] | None = Field(
        None, description="deterministic algorithms (GPU reproducibility)"
    )
    num_nodes: int | None = Field(None, gt=0, description="nodes per run")


# what a stress axis varies: a model knob, a data parameter, the precision, the injected
# spikes' scale, or the learning rate as a multiple of the arm's tuned one
VARY_KINDS = ("model.<knob>", "data.<parameter>", "trainer.precision", "spikes.scale", "lr")
MAX_AXIS_SEEDS = 100


class StressAxis(Strict):
    """A cause of explosion, as a stress variable turned up level by level on one task, at each
    arm's tuned configuration there (the suite's own protocol chooses it first)."""

    task: str = Field(description="the suite's task the axis runs on (its tuned configurations are the base)")
    vary: str = Field(description="what the levels set: " + ", ".join(VARY_KINDS))
    levels: list[Any] = Field(
        min_length=2,
        description="the stress variable's values, mildest first (a level above one where every seed of an arm "
        "exploded is not run for that arm, and counts as exploded)",
    )
    set: dict[str, Any] = Field(
        {},
        description="stress variables every level shares, each at one value (trainer.precision: bf16-true on an "
        "lr axis asks how low precision moves the stable learning rates); the base level is then a run of its own",
    )
    arms: list[str] | None = Field(None, description="the arms (labels of the task's) the axis runs; default: all")
    seeds: int = Field(2, gt=0, le=MAX_AXIS_SEEDS, description="seeds per level for a descriptive cell")
    compare: list[str] = Field(
        [], description="arms with a pre-registered comparison against baseline on this axis: compare_seeds each"
    )
    compare_seeds: int = Field(
        7, gt=0, le=MAX_AXIS_SEEDS, description="paired seeds per level for baseline and the compared arms"
    )
    spike_share: float = Field(
        0.02, gt=0, le=1, description="vary spikes.scale: the share of steps that get a corrupted batch"
    )


class Scoring(Strict):
    weights: Weights | None = Field(None, description="composite weights, normalised to sum to 1")


class WandbSettings(Strict):
    project: str | None = Field(None, description="W&B project (default $WANDB_PROJECT, else gradbench)")
    entity: str | None = Field(None, description="W&B entity (default $WANDB_ENTITY)")
    mode: Literal["online", "offline", "auto"] | None = Field(None, description="auto: online only when logged in")
    dir: str | None = Field(None, description="where W&B run folders go (default beside the results)")
    tags: list[str] | None = Field(None, description="tags on every W&B run")


# a suite's name becomes a file name (results/<name>.jsonl): no path separator, no "..", no empty
SUITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class SuiteFile(Strict):
    """A gradbench suite: tasks x stress levels x seeds x strategy arms."""

    name: str | None = Field(
        None,
        description="suite name (default: the file's stem); it names files (results/<name>.jsonl), so letters, "
        "digits, '.', '_' and '-', starting with a letter or digit",
    )

    @field_validator("name")
    @classmethod
    def _a_file_name(cls, name: str | None) -> str | None:
        if name is not None and not SUITE_NAME.fullmatch(name):
            raise ValueError(
                f"{shown(name)} cannot name the results file: use letters, digits, '.', '_' and '-', "
                "starting with a letter or digit (at most 100 characters)"
            )
        return name

    description: str = Field("", description="one line on what the suite is for")
    seeds: int | list[int] = Field(
        [0], description="a count n (seeds 0..n-1) or a list; seed i is shared by every strategy (paired)"
    )
    tasks: list[str] | dict[str, TaskOverrides | None] = Field(description="task names, or task -> overrides")
    strategies: list[str | dict[str, dict[str, Any] | None]] = Field(
        description="strategy arms: 'name', 'a+b', or {name: {param: value}}"
    )
    stress: Stress = Field(Stress(), description="stress levels (under a protocol: the learning-rate sweep)")
    protocol: Protocol | None = Field(
        None, description="a tuning protocol: per-arm lr sweep, equal extra trials, choice on validation, final seeds"
    )
    max_steps: int | None = Field(
        None, gt=0, description="optimizer steps per run, for every task (a task override wins)"
    )
    eval_every: int | None = Field(
        None, gt=0, description="validate every this many steps, for every task (a task override wins)"
    )
    trainer: TrainerSettings = Field(TrainerSettings(), description="extra Lightning Trainer arguments for every run")
    monitor: MonitorSettings = Field(MonitorSettings(), description="StabilityMonitor settings")
    plugins: list[str] = Field(
        [], description="Python files (relative to the suite file) or modules that register strategies"
    )
    stress_axes: dict[str, StressAxis] = Field(
        {},
        description="causes of explosion beyond the learning rate (needs a protocol): axis name -> the task, "
        "the variable and its levels; after the final seeds, every arm it names runs each level at its tuned "
        "configuration",
    )
    scoring: Scoring = Field(Scoring(), description="how the leaderboard scores")
    threads: int | None = Field(
        None, gt=0, le=1024, description="torch threads per run (default: the cores, split between local workers)"
    )
    wandb: WandbSettings | None = Field(None, description="Weights & Biases tracking (offline unless logged in)")


def schema() -> dict:
    """The suite file's JSON Schema (what `gradbench schema` prints), for editors: SuiteFile
    with each registered task's overrides typed by its model family's knobs and its dataset's
    parameters, and the registered strategy names, so `depht`, `swishy` or a misspelt task is
    marked as it is typed. (Loading checks the same through the catalogue.)"""
    tasks = {}
    for name in TASKS.list():
        task = TASKS.get(name)
        overrides = create_model(
            f"{name}_overrides",
            __base__=TaskOverrides,
            model=(knobs_model(task) | None, Field(None, description=f"{task.model_family} knobs over the task's")),
            data=(data_params_model(task) | None, Field(None, description=f"{task.dataset} parameters")),
        )
        tasks[name] = (overrides | None, Field(None, description=task.description))
    task_map = create_model("Tasks", __config__=ConfigDict(extra="forbid"), **tasks)
    names = Literal[tuple(TASKS.list())]
    arm = Annotated[str, Field(description="a strategy, or strategies joined by '+': " + ", ".join(STRATEGIES.list()))]
    editor = create_model(
        "SuiteFile",
        __base__=SuiteFile,
        __doc__=SuiteFile.__doc__,
        tasks=(list[names] | task_map, Field(description="task names, or task -> overrides")),
        strategies=(
            list[arm | dict[str, dict[str, Any] | None]],
            Field(description="strategy arms: 'name', 'a+b', or {name: {param: value}}"),
        ),
    )
    return editor.model_json_schema()


@dataclass
class Suite:
    name: str
    seeds: list[int]
    tasks: dict[str, dict]  # task -> overrides (as written)
    arms: list[Arm]
    lr_mults: list[float]
    description: str = ""
    task_arms: dict[str, list[Arm]] = field(default_factory=dict)  # task -> arms run on it only
    protocol: Protocol | None = None
    max_steps: int | None = None
    eval_every: int | None = None
    trainer: dict = field(default_factory=dict)
    monitor: dict = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)  # resolved: files as absolute paths
    scoring: dict = field(default_factory=dict)
    threads: int | None = None
    wandb: dict | None = None
    path: str | None = None
    stress_axes: dict[str, StressAxis] = field(default_factory=dict)

    def arms_on(self, task: str) -> list[Arm]:
        """The arms a task runs: the suite's, then the task's own."""
        return self.arms + self.task_arms.get(task, [])

    @property
    def all_arms(self) -> list[Arm]:
        """Every arm of the suite, each once (a task's own arms after the suite's)."""
        seen = {a.label: a for a in self.arms}
        for arms in self.task_arms.values():
            for a in arms:
                seen.setdefault(a.label, a)
        return list(seen.values())


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if not path.exists():
        raise UserError(f"suite config {path} does not exist")
    if path.is_dir():
        raise UserError(f"suite config {path} is a directory; pass a .yaml file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); save the suite file as UTF-8") from None
    raw = read_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a suite is a mapping of {', '.join(SuiteFile.model_fields)}")
    return parse_suite(raw, default_name=path.stem, base_dir=path.parent, path=str(path))


def parse_suite(raw: dict, default_name: str = "suite", base_dir: Path | None = None, path: str | None = None) -> Suite:
    _known_keys(raw)
    plugin_refs = []
    if "plugins" in raw:  # first: they may register the strategies the suite names
        plugin_refs = plugins.load(_validated(raw["plugins"], "plugins", list[str]), base_dir=base_dir)
    try:
        f = SuiteFile.model_validate(raw)
    except ValidationError as e:
        raise UserError(one_line(e, "", SuiteFile)) from None
    tasks = _tasks(raw["tasks"], f)
    arms = _arms(f.strategies)
    task_arms = _task_arms(tasks, arms)
    seeds = _seeds(f.seeds)
    stress_given = isinstance(raw.get("stress"), dict) and "lr_mult" in raw["stress"]
    lr_mults = SWEEP_LR_MULTS if f.protocol and not stress_given else f.stress.lr_mult
    protocol = f.protocol
    if protocol and protocol.lr_grid:
        protocol = protocol.model_copy(update={"lr_grid": _lr_grid(protocol.lr_grid, "protocol.lr_grid")})
    for name, ov in tasks.items():
        if "lr_grid" in ov:
            if not f.protocol:
                raise UserError(f"tasks.{name}.lr_grid: an absolute grid is a tuning protocol's; add protocol: {{}}")
            ov["lr_grid"] = _lr_grid(ov["lr_grid"], f"tasks.{name}.lr_grid")
    if f.protocol and f.protocol.contender_seeds is not None and f.protocol.contender_seeds <= len(seeds):
        raise UserError(
            f"protocol.contender_seeds: {f.protocol.contender_seeds} adds no seed to the suite's {len(seeds)}; "
            "give more, or leave it out"
        )
    if f.protocol and f.protocol.sweep_seeds > len(seeds):
        raise UserError(
            f"protocol.sweep_seeds: {f.protocol.sweep_seeds} is more than the suite's {len(seeds)} seeds; "
            "the sweep runs the first of them"
        )
    return Suite(
        name=f.name if f.name is not None else default_name,
        description=f.description,
        seeds=seeds,
        tasks=tasks,
        arms=arms,
        task_arms=task_arms,
        lr_mults=_lr_mults(lr_mults, "stress.lr_mult"),
        protocol=protocol,
        max_steps=f.max_steps,
        eval_every=f.eval_every,
        trainer=dict(raw.get("trainer") or {}),
        monitor=dict(raw.get("monitor") or {}),
        plugins=plugin_refs,
        scoring=dict(raw.get("scoring") or {}),
        threads=f.threads,
        wandb=dict(raw["wandb"] or {}) if "wandb" in raw else None,
        path=path,
        stress_axes=dict(f.stress_axes),  # checked against the suite by suite/load.py
    )


def _known_keys(raw: dict) -> None:
    """An unknown top-level key first, with 'did you mean' (before any plugin is imported)."""
    for key in raw:
        if key not in SuiteFile.model_fields:
            valid = list(SuiteFile.model_fields)
            raise UserError(f"unknown key {key!r}{did_you_mean(str(key), valid)}; valid: {', '.join(valid)}")
    if raw.get("tasks") is None:
        raise UserError(f"tasks: required; valid: {', '.join(TASKS.list())}")


def _validated(value, where: str, typ):
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(typ).validate_python(value, strict=True)
    except ValidationError as e:
        raise UserError(one_line(e, where)) from None


MAX_SEEDS = 1000  # seeds per suite: far past what a comparison needs, far below what exhausts memory
MAX_SEED = 2**32 - 1  # what Lightning's seed_everything (and numpy) take


def _seeds(v: int | list[int]) -> list[int]:
    if isinstance(v, int):
        if v <= 0:
            raise UserError(f"seeds: a count must be positive, got {v}")
        if v > MAX_SEEDS:
            raise UserError(f"seeds: at most {MAX_SEEDS} seeds, got a count of {v}")
        return list(range(v))
    if not v:
        raise UserError("seeds: must not be empty (give a list of ints or a count)")
    if len(v) > MAX_SEEDS:
        raise UserError(f"seeds: at most {MAX_SEEDS} seeds, got {len(v)}")
    bad = [s for s in v if not 0 <= s <= MAX_SEED]
    if bad:
        raise UserError(f"seeds: each seed must be from 0 to 2^32 - 1 (what the seeding takes), got {bad[0]}")
    if len(set(v)) != len(v):
        raise UserError(f"seeds: duplicate seeds in {shown(v)}")
    return list(v)


def _lr_grid(grid: dict, where: str) -> dict[str, list[float]]:
    """family -> its absolute rates as floats, ascending, each once; the family one that
    core/optimizer_family.py knows."""
    out = {}
    for fam, rates in grid.items():
        if fam not in KNOWN_FAMILIES:
            raise unknown(f"{where} optimizer family", str(fam), list(KNOWN_FAMILIES))
        out[fam] = sorted(_lr_mults(rates, f"{where}.{fam}"))
    return out


def _lr_mults(values: list[float], where: str) -> list[float]:
    """The levels as floats, each once (their range is LrMult's, checked by the model)."""
    if len(set(values)) != len(values):
        raise UserError(f"{where}: duplicate values in {values}")
    return [float(x) for x in values]


def _tasks(raw_tasks, f: SuiteFile) -> dict[str, dict]:
    """task -> its overrides as written; names, model knobs and data parameters checked."""
    if isinstance(raw_tasks, list):
        dups = sorted({x for x in raw_tasks if raw_tasks.count(x) > 1})
        if dups:
            raise UserError(f"tasks: listed twice: {', '.join(map(str, dups))}")
        raw_tasks = {name: {} for name in raw_tasks}
    if not raw_tasks:
        raise UserError(f"tasks: expected a non-empty list or mapping of {', '.join(TASKS.list())}")
    out = {}
    for name, ov in raw_tasks.items():
        if name not in TASKS:
            raise unknown("task", str(name), TASKS.list())
        task = TASKS.get(name)
        ov = {k: v for k, v in (ov or {}).items() if v is not None}  # null: the key left out
        if "lr_mult" in ov:
            ov["lr_mult"] = _lr_mults(ov["lr_mult"], f"tasks.{name}.lr_mult")
        checked_task_knobs(task, {**task.model, **ov.get("model", {})}, f"tasks.{name}.model")
        checked_task_data(task, {**task.data, **ov.get("data", {})}, f"tasks.{name}.data")
        out[name] = ov
    return out


def _task_arms(tasks: dict[str, dict], arms: list[Arm]) -> dict[str, list[Arm]]:
    """task -> the arms its overrides add (taken out of the overrides), none a suite arm again."""
    out = {}
    suite_labels = {a.label for a in arms}
    for name, ov in tasks.items():
        if ov.get("strategies") is None:
            ov.pop("strategies", None)
            continue
        where = f"tasks.{name}.strategies"
        extra = _arms(ov.pop("strategies"), where)
        for a in extra:
            if a.label in suite_labels:
                raise UserError(f"{where}: {a.label!r} is already one of the suite's strategies")
        out[name] = extra
    return out


def _arms(v: list, where_list: str = "strategies") -> list[Arm]:
    if not v:
        raise UserError(
            f"{where_list}: expected a non-empty list, e.g. [baseline, clip_norm, {{clip_value: {{clip_value: 0.5}}}}]"
        )
    arms, labels = [], set()
    for i, item in enumerate(v):
        where = f"{where_list}[{i}]"
        if isinstance(item, str):
            label, params = item, {}
        elif len(item) == 1:
            label, params = next(iter(item.items()))
            where = f"{where_list}.{label}"
        else:
            raise UserError(f"{where}: expected 'name' or {{name: {{param: value}}}}, got {item!r}")
        arm = _label_with_params(make_arm(label, params or {}, where))
        if arm.label in labels:
            raise UserError(f"{where}: duplicate strategy {arm.label!r}")
        labels.add(arm.label)
        arms.append(arm)
    return arms


def _label_with_params(arm: Arm) -> Arm:
    """clip_norm with max_norm 0.5 is labelled 'clip_norm(max_norm=0.5)', so two settings of
    one strategy are two arms; at its defaults it keeps its plain name."""
    if len(arm.names) != 1:
        return arm
    name = arm.names[0]
    changed = {k: v for k, v in arm.params[name].items() if STRATEGIES.get(name).defaults[k] != v}
    if not changed:
        return arm
    shown = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in changed.items())
    return Arm(label=f"{name}({shown})", names=arm.names, params=arm.params)
