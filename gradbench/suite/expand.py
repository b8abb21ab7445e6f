"""A validated Suite -> its runs: tasks x stress levels x seeds x strategy arms, each a
RunSpec, or a Skipped run where an arm does not apply to the task's model.

Under a tuning protocol (config.Protocol) the runs come in three phases, each a function
here: the sweep (`expand`: the grid on the sweep seeds), the extra trials (`tuning_trials`,
around each arm's choice from the sweep) and the final seeds (`final_runs`, at each arm's
choice from both). The choices are made from the records between phases
(analysis/choice.py); these functions take them as plain data: (task, arm label) -> an
object with `lr_mult` and `strategy_params`, or None for an arm that failed every level.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..catalogue.model_knobs import KnobNotTaken, checked_task_knobs, fn_name
from ..catalogue.strategies import STRATEGIES, Arm, apply_arm, not_applicable
from ..catalogue.tasks import TASKS
from ..core.errors import NotApplicable, UserError
from ..core.optimizer_family import family
from ..core.spec import RunSpec
from .config import Suite

# an arm's extra trials, in this order, until it has its budget: its declared parameter at
# these multiples of its value (a value the strategy rejects is passed over) ...
PARAM_FACTORS = (0.5, 2.0, 0.25, 4.0, 0.125, 8.0, 0.0625, 16.0)
# ... or, for an arm without one, the chosen learning rate moved by these octaves; lower first,
# except from the top of the task's grid, where the best rate may lie beyond the grid (the
# tuning playbooks' rule: a best trial on the search space's edge widens the search)
LR_OCTAVES = (-0.5, 0.5, -0.25, 0.25, -0.75, 0.75)


# Skipped.not_run: a run that applies but was not trained, because a lower level of its
# learning-rate sweep diverged on every sweep seed (protocol.skip_above_diverged)
ABOVE_DIVERGED = "above_diverged"


@dataclass(frozen=True)
class Skipped:
    """A run that does not apply (e.g. lstm on an MLP task), or one the protocol does not run
    (not_run, e.g. ABOVE_DIVERGED): recorded, never trained."""

    spec: RunSpec
    reason: str
    not_run: str | None = None

    @property
    def run_id(self) -> str:
        return self.spec.run_id


def expand(suite: Suite) -> list[RunSpec | Skipped]:
    """tasks x stress levels x seeds x arms, in that order (each seed's arms run side by side,
    so a partial suite already has paired comparisons). Under a protocol: the sweep, on its
    seeds only; an arm on an absolute grid (protocol.lr_grid) has levels of its own, and the
    runs come level by level, lowest first."""
    protocol = suite.protocol
    seeds = suite.seeds[: protocol.sweep_seeds] if protocol else suite.seeds
    runs: list[RunSpec | Skipped] = []
    for task_name, ov in suite.tasks.items():
        arms = suite.arms_on(task_name)
        declared = ov.get("lr_mult", suite.lr_mults)
        own = {arm.label: arm_levels(suite, task_name, arm) for arm in arms}
        if all(levels == declared for levels in own.values()):  # the grid every arm shares, as declared
            order = [(lr_mult, seed, i) for lr_mult in declared for seed in seeds for i in range(len(arms))]
        else:
            order = sorted((m, seed, i) for i, arm in enumerate(arms) for m in own[arm.label] for seed in seeds)
        for lr_mult, seed, i in order:
            base = _base(suite, task_name, seed, lr_mult, "sweep" if protocol else "")
            runs.append(_run_or_skipped(arms[i], base, task_name))
    return runs


def _run_or_skipped(arm: Arm, base: RunSpec, task_name: str) -> RunSpec | Skipped:
    reason = _not_applicable(arm, base)
    if reason:
        return Skipped(base.replace(strategy=arm.label, strategy_params=arm.params), reason)
    return _applied(arm, base, task_name)


def lr_grid(suite: Suite, task_name: str) -> dict[str, list[float]]:
    """The task's absolute learning rates per optimizer family: the protocol's, with the task's
    own over it family by family ({} without either)."""
    shared = (suite.protocol.lr_grid or {}) if suite.protocol else {}
    return {**shared, **suite.tasks[task_name].get("lr_grid", {})}


def arm_levels(suite: Suite, task_name: str, arm: Arm) -> list[float]:
    """The arm's sweep levels on the task, as multipliers of its own learning rate: its
    optimizer family's absolute rates over that rate where the protocol declares them, else the
    task's (or the suite's) stress levels. An arm that does not apply keeps the latter."""
    declared = suite.tasks[task_name].get("lr_mult", suite.lr_mults)
    grid = lr_grid(suite, task_name)
    if not grid:
        return declared
    base = _base(suite, task_name, suite.seeds[0], 1.0, "")
    if _not_applicable(arm, base):
        return declared
    optimizer = apply_arm(arm, base).optimizer
    rates = grid.get(family(optimizer["name"]))
    if rates is None:
        return declared
    return [as_multiplier(rate / float(optimizer["lr"])) for rate in rates]


def as_multiplier(x: float) -> float:
    """A multiplier rounded to 12 significant digits: 0.3 / 0.1 is 3, not 2.9999999999999996,
    so the same rate always has the same run_id."""
    return float(f"{x:.12g}")


def bracket_runs(suite: Suite, edges: Mapping) -> list[RunSpec | Skipped]:
    """The sweep's next levels for the arms whose best level is on an edge of the levels run
    (edges: (task, arm label) -> the multipliers an octave beyond, from the records), each
    within protocol.bracket_octaves of the arm's declared grid, on the sweep seeds (phase
    "bracket": the choice reads them, the grid's shares do not)."""
    cap = suite.protocol.bracket_octaves
    seeds = suite.seeds[: suite.protocol.sweep_seeds]
    runs: list[RunSpec | Skipped] = []
    for task_name in suite.tasks:
        for arm in suite.arms_on(task_name):
            declared = arm_levels(suite, task_name, arm)
            lo, hi = min(declared) / 2.0**cap, max(declared) * 2.0**cap
            for m in edges.get((task_name, arm.label), ()):
                m = as_multiplier(m)
                if lo * (1 - 1e-9) <= m <= hi * (1 + 1e-9):
                    runs += [_run_or_skipped(arm, _base(suite, task_name, s, m, "bracket"), task_name) for s in seeds]
    return runs


def contender_runs(suite: Suite, choices: Mapping, contenders: Mapping) -> list[RunSpec]:
    """More final seeds (protocol.contender_seeds in all) at the chosen configuration of each
    contender (contenders: task -> arm labels): the smallest seeds the suite does not use yet."""
    extra = [s for s in range(suite.protocol.contender_seeds + len(suite.seeds)) if s not in suite.seeds]
    extra = extra[: suite.protocol.contender_seeds - len(suite.seeds)]
    runs = []
    for task_name, arm, choice in _chosen(suite, choices):
        if arm.label in contenders.get(task_name, ()):
            chosen = Arm(label=arm.label, names=arm.names, params=choice.strategy_params)
            runs += [_applied(chosen, _base(suite, task_name, s, choice.lr_mult, "final"), task_name) for s in extra]
    return runs


def sweep_levels(items: list[RunSpec | Skipped]) -> list[float]:
    """The sweep's learning-rate levels, lowest first (a task may have levels of its own)."""
    return sorted({(i.spec if isinstance(i, Skipped) else i).lr_mult for i in items})


def by_sweep_level(items: list[RunSpec | Skipped]) -> dict[float, list[RunSpec | Skipped]]:
    """The sweep's runs level by level, lowest first."""
    return {
        lv: [i for i in items if (i.spec if isinstance(i, Skipped) else i).lr_mult == lv] for lv in sweep_levels(items)
    }


def above_diverged(items: list[RunSpec | Skipped], records: list[dict], sweep_seeds: int) -> list[RunSpec | Skipped]:
    """`items` (sweep runs), each run whose arm diverged on every sweep seed at a lower level
    of its task's sweep, in `records` (this suite's so far), made a not-run Skipped: a higher
    learning rate is not expected to do better (protocol.skip_above_diverged)."""
    diverged: dict[tuple[str, str], dict[float, set[int]]] = {}
    for r in records:
        if (r.get("spec") or {}).get("phase") != "sweep":
            continue
        if r["status"] == "diverged" or r.get("not_run") == ABOVE_DIVERGED:
            at = diverged.setdefault((r["task"], r["strategy"]["label"]), {})
            at.setdefault(float(r["stress"]["lr_mult"]), set()).add(r["seed"])
    out: list[RunSpec | Skipped] = []
    for item in items:
        if isinstance(item, Skipped):
            out.append(item)
            continue
        below = [m for m, seeds in diverged.get((item.task, item.strategy), {}).items() if m < item.lr_mult]
        every = [m for m in below if len(diverged[(item.task, item.strategy)][m]) >= sweep_seeds]
        if every:
            reason = f"not run: above lr x{min(every):g}, where every sweep seed diverged"
            out.append(Skipped(item, reason, not_run=ABOVE_DIVERGED))
        else:
            out.append(item)
    return out


def tuning_trials(suite: Suite, choices: Mapping) -> list[RunSpec]:
    """Every arm's extra trials on the sweep seeds, around its choice from the sweep: the same
    number for every arm that has a choice (protocol.extra_trials)."""
    seeds = suite.seeds[: suite.protocol.sweep_seeds]
    runs = []
    for task_name, arm, choice in _chosen(suite, choices):
        for arm_trial, lr_mult in _trials(arm, choice, suite.protocol.extra_trials, task_name, suite):
            for seed in seeds:
                runs.append(_applied(arm_trial, _base(suite, task_name, seed, lr_mult, "tune"), task_name))
    return runs


def final_runs(suite: Suite, choices: Mapping) -> list[RunSpec]:
    """Every seed at each arm's chosen configuration (the tuning seeds' runs there exist
    already: the same runs, not run again)."""
    runs = []
    for task_name, arm, choice in _chosen(suite, choices):
        chosen = Arm(label=arm.label, names=arm.names, params=choice.strategy_params)
        for seed in suite.seeds:
            runs.append(_applied(chosen, _base(suite, task_name, seed, choice.lr_mult, "final"), task_name))
    return runs


def _chosen(suite: Suite, choices: Mapping) -> Iterator[tuple[str, Arm, object]]:
    for task_name in suite.tasks:
        for arm in suite.arms_on(task_name):
            choice = choices.get((task_name, arm.label))
            base = _base(suite, task_name, suite.seeds[0], 1.0, "")
            if choice is not None and not _not_applicable(arm, base):
                yield task_name, arm, choice


def _trials(arm: Arm, choice, budget: int, task_name: str, suite: Suite) -> list[tuple[Arm, float]]:
    """`budget` (arm, lr_mult) trials: the first strategy of the arm that declares a tuned
    parameter searches it at the chosen lr (a value the strategy rejects, or one equal to the
    chosen value, is passed over); the rest of the budget, or all of it for an arm without
    one, refines the lr, outward first when the choice is the top level of the task's grid."""
    params = choice.strategy_params
    tuned = next((n for n in arm.names if STRATEGIES.get(n).tune), None)
    trials: list[tuple[Arm, float]] = []
    if tuned is not None:
        key = STRATEGIES.get(tuned).tune
        value = params[tuned][key]
        for factor in PARAM_FACTORS:
            if len(trials) == budget:
                break
            if value * factor == value:  # a value of 0 searches nothing
                continue
            trial = Arm(arm.label, arm.names, {**params, tuned: {**params[tuned], key: value * factor}})
            try:  # a value the strategy rejects (out of its declared range: a percentile above 100 ...) is passed over
                STRATEGIES.get(tuned).check_params(trial.params[tuned], f"strategies.{arm.label}.{tuned}")
                _applied(trial, _base(suite, task_name, suite.seeds[0], choice.lr_mult, "tune"), task_name)
            except UserError:
                continue
            trials.append((trial, choice.lr_mult))
    chosen = Arm(arm.label, arm.names, params)
    grid = arm_levels(suite, task_name, arm)
    octaves = [-o for o in LR_OCTAVES] if len(grid) > 1 and choice.lr_mult >= max(grid) else LR_OCTAVES
    refine = [(chosen, choice.lr_mult * 2.0**o) for o in octaves]
    return trials + refine[: budget - len(trials)]


def _base(suite: Suite, task_name: str, seed: int, lr_mult: float, phase: str) -> RunSpec:
    task = TASKS.get(task_name)
    ov = suite.tasks[task_name]
    steps = ov.get("max_steps", suite.max_steps or task.max_steps)
    every = ov.get("eval_every", suite.eval_every or task.eval_every)
    return task.base_spec(
        seed,
        lr_mult,
        suite=suite.name,
        max_steps=steps,
        eval_every=min(every, steps),
        batch_size=ov.get("batch_size", task.batch_size),
        model={**task.model, **ov.get("model", {})},
        data={**task.data, **ov.get("data", {})},
        trainer=dict(suite.trainer),
        monitor=dict(suite.monitor),
    ).replace(phase=phase)


def _not_applicable(arm: Arm, base: RunSpec) -> str | None:
    """Why the arm does not apply to the task's model, or None. A gradbench model: by its
    family. A plugin task's own model: by its builder's knobs, so a strategy that sets a knob
    the builder does not take, or a value it does not allow, is n/a there with that reason."""
    task = TASKS.get(base.task)
    if task.model_fn is None:
        reason = not_applicable(arm, task.model_family)
        if reason:
            return reason
    try:
        spec = apply_arm(arm, base)
        if task.model_fn is not None:
            checked_task_knobs(task, spec.model, "model")
    except KnobNotTaken as e:
        return f"{fn_name(task.model_fn)}, the model builder of {task.name}, does not take it: {e}"
    except NotApplicable as e:  # a strategy that says it does not fit this task (z_loss on an mse loss)
        return str(e)
    return None  # any other error is the suite's mistake: _applied raises it


def _applied(arm: Arm, base: RunSpec, task_name: str) -> RunSpec:
    spec = apply_arm(arm, base)
    # what the strategies made of the knobs (a plugin's typo too), before anything trains
    checked_task_knobs(TASKS.get(task_name), spec.model, f"strategies.{arm.label} on {task_name}: model")
    return spec
