"""The unmitigated task, as calibrated to be prone to explode."""

from ...core.spec import RunSpec
from .base import strategy


@strategy(family="baseline")
def baseline(spec: RunSpec) -> RunSpec:
    """No mitigation: the task's model, optimizer and learning rate as they are."""
    return spec
