"""A validated Suite -> its runs: tasks x stress levels x seeds x strategy arms, each a
RunSpec, or a Skipped run where an arm does not apply to the task's model."""

from __future__ import annotations

from dataclasses import dataclass

from ..catalogue.model_knobs import checked_knobs
from ..catalogue.strategies import apply_arm, not_applicable
from ..catalogue.tasks import TASKS
from ..core.spec import RunSpec
from .config import Suite


@dataclass(frozen=True)
class Skipped:
    """A run that does not apply (e.g. lstm on an MLP task): recorded, never trained."""

    spec: RunSpec
    reason: str

    @property
    def run_id(self) -> str:
        return self.spec.run_id


def expand(suite: Suite) -> list[RunSpec | Skipped]:
    """tasks x stress levels x seeds x arms, in that order (each seed's arms run side by side,
    so a partial suite already has paired comparisons)."""
    runs: list[RunSpec | Skipped] = []
    for task_name, ov in suite.tasks.items():
        task = TASKS.get(task_name)
        steps = ov.get("max_steps", suite.max_steps or task.max_steps)
        every = ov.get("eval_every", suite.eval_every or task.eval_every)
        for lr_mult in ov.get("lr_mult", suite.lr_mults):
            for seed in suite.seeds:
                base = task.base_spec(
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
                )
                for arm in suite.arms:
                    reason = not_applicable(arm, task.model_family)
                    if reason:
                        runs.append(Skipped(base.replace(strategy=arm.label, strategy_params=arm.params), reason))
                    else:
                        spec = apply_arm(arm, base)
                        # what the strategies made of the knobs (a plugin's typo too), before anything trains
                        checked_knobs(task.model_family, spec.model, f"strategies.{arm.label} on {task_name}: model")
                        runs.append(spec)
    return runs
