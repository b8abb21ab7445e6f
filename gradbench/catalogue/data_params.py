"""The parameters each dataset takes, typed (a task's `data:` overrides are checked against
them at load). The loaders in training/data take the same names."""

from __future__ import annotations

from pydantic import Field, ValidationError

from ..core.errors import UserError
from ..core.settings import Strict
from ..core.validation import one_line


class ImageDataParams(Strict):
    val_size: int | None = Field(
        None, gt=0, description="validation examples carved from train (default min(5000, n/10))"
    )


class AddingDataParams(Strict):
    seq_len: int = Field(50, ge=2, description="sequence length T (one marker in each half)")
    n_train: int = Field(20000, ge=1, description="training sequences")
    n_val: int = Field(2000, ge=1, description="validation sequences")
    n_test: int = Field(2000, ge=1, description="test sequences")
    seed: int = Field(1234, description="the generator's seed (fixed: every run sees the same data)")


class RecallDataParams(Strict):
    pairs: int = Field(8, ge=1, description="key-value pairs before the query (sequence length 2 pairs + 1)")
    keys: int = Field(16, ge=1, description="key tokens (at least pairs: a sequence's keys are distinct)")
    values: int = Field(16, ge=1, description="value tokens, the classes")
    n_train: int = Field(50000, ge=1, description="training sequences")
    n_val: int = Field(2000, ge=1, description="validation sequences")
    n_test: int = Field(2000, ge=1, description="test sequences")
    seed: int = Field(1234, description="the generator's seed (fixed: every run sees the same data)")


class TextDataParams(Strict):
    context: int = Field(64, ge=1, description="bytes a sequence holds (the model's context)")
    block: int = Field(
        16384, ge=2, description="bytes per contiguous block; of every 20, the 19th is validation, the 20th test"
    )


DATA_PARAMS: dict[str, type[Strict]] = {
    "mnist": ImageDataParams,
    "cifar10": ImageDataParams,
    "adding": AddingDataParams,
    "recall": RecallDataParams,
    "fortunes": TextDataParams,
}


def data_params_model(task) -> type[Strict]:
    """The typed parameters of a task's data: its dataset's, or a plugin data_fn's own."""
    if getattr(task, "data_fn", None) is None:
        return DATA_PARAMS[task.dataset]
    from .model_knobs import _signature_model

    return _signature_model(task.data_fn, skip=0, name=f"{task.name}_data")


def checked_task_data(task, params: dict, where: str = "data") -> dict:
    """The task's data parameters with the given values over their defaults; a UserError
    naming the parameter otherwise."""
    model = data_params_model(task)
    try:
        return model(**params).model_dump()
    except ValidationError as e:
        raise UserError(one_line(e, where, model)) from None


def checked_data_params(dataset: str, params: dict, where: str = "data") -> None:
    """A UserError naming the parameter when `params` is not what `dataset` takes."""
    if dataset not in DATA_PARAMS:
        raise UserError(f"{where}: unknown dataset {dataset!r}; valid: {', '.join(DATA_PARAMS)}")
    try:
        DATA_PARAMS[dataset](**params)
    except ValidationError as e:
        raise UserError(one_line(e, where, DATA_PARAMS[dataset])) from None
