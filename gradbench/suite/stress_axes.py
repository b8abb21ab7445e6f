"""Stress axes: causes of explosion beyond the learning rate, each a variable turned up level
by level on one task at every arm's tuned configuration (the suite's protocol chooses it).

An axis (config.StressAxis) names its task, what it varies and its levels:

* model.<knob>: a model knob (depth; init_gain, the weight scale), over the task's value;
* data.<parameter>: a dataset parameter (the adding problem's sequence length);
* trainer.precision: Lightning's precision (32-true, bf16-mixed, bf16-true ...);
* spikes.scale: a share of the steps (spike_share) trains on a corrupted batch, its targets
  permuted and its loss times the level (0: no spikes); training/module.py injects them;
* lr: the learning rate as a multiple of the arm's tuned one (1, 2, 4 ...).

A level is set on the task's configuration before the arm is applied, so an arm that turns
the same knob (a shallower model) still acts on it. Each stress run carries its place
(spec.axis: the axis, the variable, the level and its rank; a name, so a level that is a configuration already run, such as the tuned
configuration itself, is that run, copied and never trained twice).

The runs come level by level, mildest first, and an arm's levels above one where every seed
exploded are recorded as not run (they count as exploded).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError

from ..catalogue.data_params import checked_task_data
from ..catalogue.model_knobs import checked_task_knobs
from ..catalogue.strategies import Arm
from ..catalogue.tasks import TASKS
from ..core.errors import UserError, unknown, warn
from ..core.spec import RunSpec
from ..core.taxonomy import EXPLODED
from ..core.validation import one_line
from .config import VARY_KINDS, Precision, StressAxis, Suite
from .expand import Skipped, _applied, _base, _not_applicable, as_multiplier

ABOVE_EXPLODED = "above_exploded"
ALPHA = 0.05  # the family-wise level of the compared arms' tests (analysis/stress.py)
STRESS = "stress"  # the phase of a stress-axis run


def checked_axes(suite: Suite, axes: Mapping[str, StressAxis]) -> dict[str, StressAxis]:
    """The axes, each checked against the suite: a protocol to tune on, the axis's task among
    the suite's, a variable the task has, levels it takes, arms it runs; a UserError naming
    the field otherwise."""
    if suite.protocol is None:
        raise UserError("stress_axes: an axis runs at each arm's tuned configuration; add a protocol")
    for name, axis in axes.items():
        where = f"stress_axes.{name}"
        if axis.task not in suite.tasks:
            raise unknown(f"{where}.task (one of the suite's tasks)", axis.task, list(suite.tasks))
        labels = [a.label for a in suite.arms_on(axis.task)]
        for key, arms in (("arms", axis.arms or []), ("compare", axis.compare)):
            for label in arms:
                if label not in labels:
                    raise unknown(f"{where}.{key}: arm on {axis.task}", label, labels)
        if axis.compare and "baseline" not in labels:
            raise UserError(f"{where}.compare: the comparisons are against baseline; add baseline to the strategies")
        if len({repr(v) for v in axis.levels}) != len(axis.levels):
            raise UserError(f"{where}.levels: duplicate values in {axis.levels}")
        if axis.vary in axis.set:
            raise UserError(f"{where}.set: {axis.vary!r} is what the levels vary; set other variables")
        base = axis_base(suite, axis, where=where)
        for i, level in enumerate(axis.levels):
            apply_level(base, name, axis, level, f"{where}.levels[{i}]")
    _can_pass(axes)
    return dict(axes)


def _can_pass(axes: Mapping[str, StressAxis]) -> None:
    """A warning when a compared arm's sign test could not pass Holm's correction even if it
    beat baseline on every seed: its smallest p-value, 2^-seeds, times the comparisons."""
    m = sum(len(a.compare) for a in axes.values())
    for name, axis in axes.items():
        if axis.compare and m * 2.0**-axis.compare_seeds > ALPHA:
            need = math.ceil(math.log2(m / ALPHA))
            warn(
                f"stress_axes.{name}.compare_seeds: {axis.compare_seeds} paired seeds cannot pass Holm over the "
                f"suite's {m} comparisons (the smallest sign-test p is 2^-{axis.compare_seeds}); give at least {need}"
            )


def apply_level(base: RunSpec, name: str, axis: StressAxis, level, where: str = "level") -> RunSpec:
    """`base` (the task's configuration, before the arm) at the axis's level, tagged with its
    place on the axis; a UserError naming `where` for a level the variable does not take."""
    # the place: the axis, what it varies, the level and its rank (mildest 0), so the records
    # alone order the levels, whatever their type ("32-true" < "bf16-mixed" by rank)
    tag = {"name": name, "vary": axis.vary, "level": level, "index": axis.levels.index(level)}
    if axis.set:  # only when present, so the tags (and run_ids) of axes without it stay as they were
        tag["set"] = dict(axis.set)
    return set_variable(base, axis.vary, level, axis.spike_share, where).replace(axis=tag)


def set_variable(base: RunSpec, vary: str, value, spike_share: float, where: str) -> RunSpec:
    """`base` with the stress variable `vary` at `value`; `base` itself when that is already its
    value (the same run); a UserError naming `where` for a value the variable does not take."""
    kind, _, key = vary.partition(".")
    task = TASKS.get(base.task)
    if kind == "model" and key:
        checked_task_knobs(task, {**base.model, key: value}, where)
        return base if _own(base, vary, where) == value else base.with_model(**{key: value})
    if kind == "data" and key:
        checked_task_data(task, {**base.data, key: value}, where)
        return base if _own(base, vary, where) == value else base.replace(data={**base.data, key: value})
    if vary == "trainer.precision":
        try:
            TypeAdapter(Precision).validate_python(value, strict=True)
        except ValidationError as e:
            raise UserError(one_line(e, where)) from None
        if str(base.trainer.get("precision", "32-true")) in (str(value), f"{value}-true"):
            return base
        return base.with_trainer(precision=value)
    if vary == "spikes.scale":
        _positive(value, where, zero=True)
        return base.replace(spikes={"share": spike_share, "scale": float(value)} if value else {})
    if vary == "lr":
        _positive(value, where, zero=False)
        return base.replace(lr_mult=as_multiplier(base.lr_mult * value))
    field = where.rsplit(".levels", 1)[0] + ".vary" if ".levels" in where else where
    raise UserError(f"{field}: {vary!r} is not a stress variable; valid: {', '.join(VARY_KINDS)}")


def axis_base(
    suite: Suite, axis: StressAxis, seed: int | None = None, lr_mult: float = 1.0, where: str = "stress_axes"
) -> RunSpec:
    """The axis's task as the suite configures it, with the settings every level shares (the
    axis's `set`), before any arm or level: a stress run."""
    base = _base(suite, axis.task, suite.seeds[0] if seed is None else seed, lr_mult, STRESS)
    for vary, value in axis.set.items():
        base = set_variable(base, vary, value, axis.spike_share, f"{where}.set.{vary}")
    return base


def own_value(base: RunSpec, axis: StressAxis, where: str = "level"):
    """The value a model knob or data parameter the axis varies has in `base`, its default
    filled in; None for a variable that is not one (precision, spikes, lr)."""
    return _own(base, axis.vary, where)


def _own(base: RunSpec, vary: str, where: str):
    kind, _, key = vary.partition(".")
    task = TASKS.get(base.task)
    if kind == "model" and key:
        return checked_task_knobs(task, base.model, where)[key]
    if kind == "data" and key:
        return checked_task_data(task, base.data, where)[key]
    return None


def axis_arms(suite: Suite, axis: StressAxis) -> dict[str, int]:
    """The arms of the axis's task it runs, each with its seed count: baseline always (every
    cell is read against it) and the compared arms on compare_seeds; the arms it names (all,
    when it names none) on `seeds`."""
    compared = set(axis.compare) | ({"baseline"} if axis.compare else set())
    return {
        arm.label: axis.compare_seeds if arm.label in compared else axis.seeds
        for arm in suite.arms_on(axis.task)
        if axis.arms is None or arm.label in axis.arms or arm.label in compared or arm.label == "baseline"
    }


def _positive(level, where: str, zero: bool) -> None:
    ok = isinstance(level, int | float) and not isinstance(level, bool) and level == level and level != float("inf")
    if not ok or level < 0 or (level == 0 and not zero):
        bound = "0 or more" if zero else "above 0"
        raise UserError(f"{where}: expected a finite number {bound}, got {level!r}")


def axis_seeds(suite: Suite, n: int) -> list[int]:
    """n seeds: the suite's first, then the smallest it does not use (the tuned configuration's
    runs on the suite's seeds are the base level's runs)."""
    extra = (s for s in range(n + len(suite.seeds)) if s not in suite.seeds)
    return (suite.seeds + list(extra))[:n]


def stress_waves(suite: Suite, choices: Mapping) -> list[list[RunSpec | Skipped]]:
    """Every axis's runs, one list per level index (the first level of every axis, then the
    second ...): each arm the axis runs, at its chosen configuration (choices: (task, arm label)
    -> choice, as for the final seeds; an arm that failed every level has none and is left out),
    at compare_seeds for baseline and the compared arms, else at `seeds`."""
    depth = max((len(a.levels) for a in suite.stress_axes.values()), default=0)
    waves: list[list[RunSpec | Skipped]] = [[] for _ in range(depth)]
    for name, axis in suite.stress_axes.items():
        seeds = axis_arms(suite, axis)
        for arm in suite.arms_on(axis.task):
            choice = choices.get((axis.task, arm.label))
            if arm.label not in seeds or choice is None:
                continue
            chosen = Arm(label=arm.label, names=arm.names, params=choice.strategy_params)
            for level in axis.levels:
                for seed in axis_seeds(suite, seeds[arm.label]):
                    base = apply_level(axis_base(suite, axis, seed, choice.lr_mult), name, axis, level)
                    if arm.label in axis.compare:  # a pre-registered comparison against baseline
                        base = base.replace(axis={**base.axis, "compared": True})
                    i = base.axis["index"]
                    reason = _not_applicable(chosen, base)
                    if reason:
                        waves[i].append(
                            Skipped(base.replace(strategy=arm.label, strategy_params=chosen.params), reason)
                        )
                    else:
                        waves[i].append(_applied(chosen, base, axis.task))
    return waves


def above_exploded(suite: Suite, wave: list[RunSpec | Skipped], records: list[dict]) -> list[RunSpec | Skipped]:
    """`wave` (one level's stress runs), each run whose arm exploded on every seed at a lower
    level of its axis, in `records`, made a not-run Skipped (counted as exploded)."""
    seen: dict[tuple[str, str, int], list[bool]] = {}
    for r in records:
        tag = (r.get("spec") or {}).get("axis") or {}
        if tag.get("name") not in suite.stress_axes:
            continue
        key = (tag["name"], r["strategy"]["label"], tag["index"])
        seen.setdefault(key, []).append(r.get("outcome") == EXPLODED or r.get("not_run") == ABOVE_EXPLODED)
    out: list[RunSpec | Skipped] = []
    for item in wave:
        spec = item.spec if isinstance(item, Skipped) else item
        axis = suite.stress_axes[spec.axis["name"]]
        index = spec.axis["index"]
        below = [i for i in range(index) if (ended := seen.get((spec.axis["name"], spec.strategy, i))) and all(ended)]
        if below and not isinstance(item, Skipped):
            level = axis.levels[min(below)]
            out.append(Skipped(spec, f"not run: above {axis.vary} {level}, where every seed exploded", ABOVE_EXPLODED))
        else:
            out.append(item)
    return out
