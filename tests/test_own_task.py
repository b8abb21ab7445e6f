"""Your own task as a plugin (examples/signal_task.py): registered from a file, typed knobs
and data parameters, strategies applied by what its builder takes (n/a with the reason
otherwise), and a two-arm cut of it run in process, by 2 local workers and on Ray with the
same records, beside a built-in task on one page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import REPO

from gradbench.analysis import page
from gradbench.core.errors import UserError
from gradbench.execution.executors import InProcess, LocalPool, make_executor
from gradbench.execution.suite_runner import run_suite
from gradbench.store import jsonl
from gradbench.suite import Skipped, expand, parse_suite

EXAMPLE = str(REPO / "examples" / "signal_task.py")
CUT = {
    "max_steps": 20,
    "eval_every": 10,
    "batch_size": 32,
    "data": {"n_train": 400, "n_test": 100},
    "model": {"depth": 3, "width": 8},
}


def own_suite(**extra):
    return parse_suite(
        {
            "name": "own",
            "plugins": [EXAMPLE],
            "tasks": {"signal_cnn1d": CUT},
            "strategies": ["baseline", "clip_norm"],
            "seeds": 2,
            "threads": 1,
            **extra,
        }
    )


def records_with(executor, tmp: Path, name: str) -> dict:
    path = tmp / name / "own.jsonl"
    run_suite(own_suite(), path, tmp / "no-data-needed", executor=executor, log=lambda s: None)
    recs = jsonl.load(path)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs), [r["reason"] for r in recs]
    out = {}
    for r in recs:
        r = json.loads(json.dumps(r))
        r.pop("timings")
        r["series"] = r["series"] and Path(r["series"]).name
        out[r["run_id"]] = r
    return out


def test_a_two_arm_cut_of_the_example_gives_the_same_records_in_process_by_workers_and_on_ray(tmp_path):
    sequential = records_with(InProcess(), tmp_path, "seq")
    rec = next(iter(sequential.values()))
    assert rec["task"] == "signal_cnn1d" and rec["data"]["fingerprint"].startswith("sha256:")
    assert rec["metrics"]["name"] == "accuracy" and rec["metrics"]["chance"] == 0.25
    assert records_with(LocalPool(workers=2), tmp_path, "pool") == sequential  # workers load the plugin file
    pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    assert records_with(make_executor("ray"), tmp_path, "ray") == sequential


def test_a_strategy_its_builder_cannot_take_is_na_with_the_reason():
    arms = ["baseline", "relu", "gelu", "batchnorm", "layernorm", "residual", "selu", "lstm", "kaiming", "adam", "agc"]
    items = expand(own_suite(strategies=arms, seeds=1))
    reasons = {i.spec.strategy: i.reason for i in items if isinstance(i, Skipped)}
    assert set(reasons) == {"layernorm", "residual", "selu", "lstm"}, reasons
    assert reasons["residual"].startswith("cnn1d, the model builder of signal_cnn1d, does not take it: model:")
    assert "model.norm: 'layer' is not one of 'none' or 'batch'" in reasons["layernorm"]
    ran = {i.strategy: i for i in items if not isinstance(i, Skipped)}
    assert ran["batchnorm"].model["norm"] == "batch" and ran["gelu"].model["activation"] == "gelu"


def test_a_plugin_tasks_knobs_and_data_are_typed_where_the_suite_is_read():
    with pytest.raises(UserError, match=r"tasks.signal_cnn1d.model.*depht.*did you mean 'depth'"):
        own_suite(tasks={"signal_cnn1d": {"model": {"depht": 3}}})
    with pytest.raises(UserError, match=r"tasks.signal_cnn1d.model.activation"):
        own_suite(tasks={"signal_cnn1d": {"model": {"activation": "swishy"}}})
    with pytest.raises(UserError, match=r"tasks.signal_cnn1d.data.*n_trian"):
        own_suite(tasks={"signal_cnn1d": {"data": {"n_trian": 10}}})
    from gradbench.suite.config import schema

    props = schema()["$defs"]["Tasks"]["properties"]
    assert "signal_cnn1d" in props


def untypeable_builder(input_shape, num_outputs, dtype: torch.dtype = torch.float32):
    """A knob whose annotation pydantic cannot check."""


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"loss": "hinge"}, "loss 'hinge' is not one of cross_entropy, mse"),
        ({"model_family": "cnn"}, "a plugin task has model_family='custom'"),
        ({"name": "mnist_mlp", "dataset": "mnist_mlp"}, "registered twice"),
        ({"data_fn": lambda n: None}, "data_fn parameter n needs a default"),
        ({"model_fn": lambda shape, n, **kw: None}, "model_fn takes *kw or **kw; name each knob"),
        ({"model_fn": lambda depth=2: None}, "model_fn must take (input_shape, num_outputs) first"),
        ({"model_fn": untypeable_builder, "model": {}}, "cannot be typed"),
        ({"dataset": "mnist"}, "dataset must be the task's own name"),
    ],
)
def test_a_bad_plugin_task_is_one_line_when_it_loads(change, expected):
    import dataclasses

    import gradbench_plugin_signal_task as example  # loaded by own_suite()

    from gradbench.catalogue.tasks import TASKS, register_task

    own_suite()
    task = dataclasses.replace(TASKS.get("signal_cnn1d"), name="other", dataset="other")
    with pytest.raises(UserError, match=re.escape(expected)):
        register_task(dataclasses.replace(task, **change))
    assert example.cnn1d  # the module the file was loaded as


def test_a_keyword_only_knob_is_a_knob_and_a_bad_strategy_parameter_is_still_an_error():
    import dataclasses

    from gradbench.catalogue.tasks import TASKS, register_task

    own_suite()

    def builder(input_shape, num_outputs, *, depth: int = 2):
        return None

    task = dataclasses.replace(TASKS.get("signal_cnn1d"), name="kwonly", dataset="kwonly", model_fn=builder, model={})
    register_task(task)
    from gradbench.catalogue.model_knobs import checked_task_knobs

    assert checked_task_knobs(task, {"depth": 3}) == {"depth": 3}
    # a parameter the strategy itself rejects is the suite's mistake, as on a built-in task
    with pytest.raises(UserError, match=r"autoclip.percentile: must be <= 100.0"):
        expand(own_suite(strategies=[{"autoclip": {"percentile": 150.0}}]))


def test_the_example_runs_beside_a_built_in_task_and_both_are_on_the_page(tiny_data, tmp_path):
    suite = own_suite(tasks={"signal_cnn1d": CUT, "mnist_mlp": {**CUT, "data": {}, "model": {"depth": 2, "width": 8}}})
    path = tmp_path / "mixed.jsonl"
    recs = run_suite(suite, path, tiny_data, log=lambda s: None)
    assert {r["task"] for r in recs} == {"signal_cnn1d", "mnist_mlp"} and len(recs) == 8
    text = page.write(recs, tmp_path / "page", plots=False).read_text()
    assert "## Task `signal_cnn1d`" in text and "## Task `mnist_mlp`" in text
