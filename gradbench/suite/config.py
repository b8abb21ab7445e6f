"""Suites: YAML -> validated Suite (expand.py turns it into runs).

Every field is checked on load (type, range, unknown keys with 'did you mean'), so a typo
is an error before anything trains, never a silent fallback to a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..catalogue import plugins
from ..catalogue.strategies import STRATEGIES, Arm, make_arm
from ..catalogue.tasks import TASKS
from ..core.errors import UserError, did_you_mean, unknown
from ..core.settings import MONITOR_DEFAULTS

SUITE_KEYS = {
    "name": "suite name (default: the file's stem)",
    "description": "one line on what the suite is for",
    "seeds": "list of ints, or a count n meaning 0..n-1; seed i is shared by every strategy (paired)",
    "tasks": "list of task names, or a mapping task -> overrides",
    "strategies": "list of strategy arms: 'name', 'a+b', or {name: {param: value}}",
    "stress": "{lr_mult: [multipliers of the learning rate]}",
    "max_steps": "optimizer steps per run, for every task (a task override wins)",
    "eval_every": "validate every this many steps, for every task (a task override wins)",
    "trainer": "extra Lightning Trainer arguments for every run (precision, accumulate_grad_batches ...)",
    "monitor": "StabilityMonitor settings: " + ", ".join(MONITOR_DEFAULTS),
    "plugins": "Python files or modules that register extra strategies",
    "scoring": "{weights: {stability, speed, accuracy}}",
    "threads": "torch threads per run (default: all cores, split between local workers)",
    "wandb": "Weights & Biases tracking: {project, entity, mode, dir, tags} (see tracking.py)",
}
TASK_KEYS = ("max_steps", "eval_every", "batch_size", "lr_mult", "model", "data")
TRAINER_KEYS = ("precision", "accumulate_grad_batches", "accelerator", "devices", "strategy",
                "deterministic", "num_nodes")


@dataclass
class Suite:
    name: str
    seeds: list[int]
    tasks: dict[str, dict]                  # task -> overrides
    arms: list[Arm]
    lr_mults: list[float]
    description: str = ""
    max_steps: int | None = None
    eval_every: int | None = None
    trainer: dict = field(default_factory=dict)
    monitor: dict = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    scoring: dict = field(default_factory=dict)
    threads: int | None = None
    wandb: dict | None = None
    path: str | None = None


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if not path.exists():
        raise UserError(f"suite config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: malformed YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a suite is a mapping of {', '.join(SUITE_KEYS)}")
    return parse_suite(raw, default_name=path.stem, base_dir=path.parent, path=str(path))


def parse_suite(raw: dict, default_name: str = "suite", base_dir: Path | None = None, path: str | None = None) -> Suite:
    for key in raw:
        if key not in SUITE_KEYS:
            raise UserError(f"unknown key {key!r}{did_you_mean(str(key), SUITE_KEYS)}; valid: {', '.join(SUITE_KEYS)}")
    # plugins first: they may register the strategies the suite names
    plugin_list = _list(raw.get("plugins", []), "plugins", str)
    plugins.load(plugin_list, base_dir=base_dir)
    seeds = _seeds(raw.get("seeds", [0]))
    stress = raw.get("stress", {}) or {}
    _mapping(stress, "stress", ("lr_mult",))
    lr_mults = _positive_list(stress.get("lr_mult", [1.0]), "stress.lr_mult")
    tasks = _tasks(raw.get("tasks"))
    arms = _arms(raw.get("strategies"))
    trainer = raw.get("trainer", {}) or {}
    _mapping(trainer, "trainer", TRAINER_KEYS)
    monitor = raw.get("monitor", {}) or {}
    _mapping(monitor, "monitor", tuple(MONITOR_DEFAULTS))
    for k, v in monitor.items():
        if k == "enabled":
            if not isinstance(v, bool):
                raise UserError(f"monitor.enabled: expected true or false, got {v!r}")
        else:
            _number(v, f"monitor.{k}", minimum=0)
    scoring = raw.get("scoring", {}) or {}
    _mapping(scoring, "scoring", ("weights",))
    return Suite(
        name=_str(raw.get("name", default_name), "name"), description=_str(raw.get("description", ""), "description"),
        seeds=seeds, tasks=tasks, arms=arms, lr_mults=lr_mults,
        max_steps=_positive_int(raw["max_steps"], "max_steps") if "max_steps" in raw else None,
        eval_every=_positive_int(raw["eval_every"], "eval_every") if "eval_every" in raw else None,
        trainer=trainer, monitor=monitor, plugins=plugin_list, scoring=scoring,
        threads=_positive_int(raw["threads"], "threads") if raw.get("threads") is not None else None,
        wandb=_wandb(raw["wandb"]) if "wandb" in raw else None, path=path)


# --- field checks: each error names the field and what is valid -------------------------
def _str(v, where):
    if not isinstance(v, str):
        raise UserError(f"{where}: expected a string, got {v!r}")
    return v


def _number(v, where, minimum=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise UserError(f"{where}: expected a number, got {v!r}")
    if minimum is not None and v < minimum:
        raise UserError(f"{where}: must be >= {minimum}, got {v!r}")
    return v


def _positive_int(v, where):
    if isinstance(v, bool) or not isinstance(v, int):
        raise UserError(f"{where}: expected a positive integer, got {v!r}")
    if v <= 0:
        raise UserError(f"{where}: must be a positive integer, got {v}")
    return v


def _positive_list(v, where):
    values = _list(v, where, (int, float))
    if not values:
        raise UserError(f"{where}: must not be empty")
    for x in values:
        if isinstance(x, bool) or x <= 0:
            raise UserError(f"{where}: every value must be a positive number, got {x!r}")
    if len(set(values)) != len(values):
        raise UserError(f"{where}: duplicate values in {values}")
    return [float(x) for x in values]


def _list(v, where, types):
    if not isinstance(v, list):
        raise UserError(f"{where}: expected a list, got {v!r}")
    for x in v:
        if not isinstance(x, types) or isinstance(x, bool):
            raise UserError(f"{where}: unexpected entry {x!r}")
    return v


def _mapping(v, where, valid):
    if not isinstance(v, dict):
        raise UserError(f"{where}: expected a mapping of {', '.join(valid)}, got {v!r}")
    for k in v:
        if k not in valid:
            raise UserError(f"{where}: unknown key {k!r}{did_you_mean(str(k), valid)}; valid: {', '.join(valid)}")


def _wandb(v) -> dict:
    from ..execution.tracking import KEYS

    v = v or {}
    _mapping(v, "wandb", KEYS)
    for k in ("project", "entity", "mode", "dir"):
        if k in v and not isinstance(v[k], str):
            raise UserError(f"wandb.{k}: expected a string, got {v[k]!r}")
    if "mode" in v and v["mode"] not in ("online", "offline", "auto"):
        raise UserError(f"wandb.mode: {v['mode']!r} is not one of online, offline, auto")
    return v


def _seeds(v) -> list[int]:
    if isinstance(v, int) and not isinstance(v, bool):
        if v <= 0:
            raise UserError(f"seeds: a count must be positive, got {v}")
        return list(range(v))
    seeds = _list(v, "seeds", int)
    if not seeds:
        raise UserError("seeds: must not be empty (give a list of ints or a count)")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds: duplicate seeds in {seeds}")
    return seeds


def _tasks(v) -> dict[str, dict]:
    if v is None:
        raise UserError(f"tasks: required; valid: {', '.join(TASKS.list())}")
    if isinstance(v, list):
        v = {name: {} for name in _list(v, "tasks", str)} if len(set(v)) == len(v) else _dup("tasks", v)
    if not isinstance(v, dict) or not v:
        raise UserError(f"tasks: expected a non-empty list or mapping of {', '.join(TASKS.list())}")
    out = {}
    for name, ov in v.items():
        if name not in TASKS:
            raise unknown("task", str(name), TASKS.list())
        ov = ov or {}
        _mapping(ov, f"tasks.{name}", TASK_KEYS)
        for k in ("max_steps", "eval_every", "batch_size"):
            if k in ov:
                _positive_int(ov[k], f"tasks.{name}.{k}")
        if "lr_mult" in ov:
            ov["lr_mult"] = _positive_list(ov["lr_mult"], f"tasks.{name}.lr_mult")
        for k in ("model", "data"):
            if k in ov and not isinstance(ov[k], dict):
                raise UserError(f"tasks.{name}.{k}: expected a mapping, got {ov[k]!r}")
        out[name] = ov
    return out


def _dup(where, v):
    dups = sorted({x for x in v if v.count(x) > 1})
    raise UserError(f"{where}: listed twice: {', '.join(map(str, dups))}")


def _arms(v) -> list[Arm]:
    if not isinstance(v, list) or not v:
        raise UserError("strategies: expected a non-empty list, e.g. [baseline, clip_norm, {clip_value: {clip_value: 0.5}}]")
    arms, labels = [], set()
    for i, item in enumerate(v):
        where = f"strategies[{i}]"
        if isinstance(item, str):
            label, params = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            label, params = next(iter(item.items()))
            if not isinstance(label, str):
                raise UserError(f"{where}: expected a strategy name, got {label!r}")
            where = f"strategies.{label}"
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
