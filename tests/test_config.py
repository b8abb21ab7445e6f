"""Suite validation: every bad input is one clear UserError naming the field; expansion is
tasks x stress levels x seeds x strategies with paired seeds and stable run_ids."""

from __future__ import annotations

import pytest

from gradbench.core.errors import UserError
from gradbench.suite import Skipped, expand, load_suite, parse_suite

GOOD = {"tasks": ["mnist_mlp"], "strategies": ["baseline"]}


def suite(**changes):
    return parse_suite({**GOOD, **changes})


@pytest.mark.parametrize("raw, message", [
    ({**GOOD, "tasks": ["mnist_mpl"]}, "unknown task 'mnist_mpl' (did you mean 'mnist_mlp'?)"),
    ({**GOOD, "strategies": ["clip_nrom"]}, "unknown strategy 'clip_nrom' (did you mean 'clip_norm'"),
    ({**GOOD, "sedes": [0]}, "unknown key 'sedes' (did you mean 'seeds'"),
    ({**GOOD, "seeds": []}, "seeds: must not be empty"),
    ({**GOOD, "seeds": [0, 0]}, "seeds: duplicate"),
    ({**GOOD, "seeds": "three"}, "seeds: expected a list"),
    ({**GOOD, "max_steps": 0}, "max_steps: must be a positive integer"),
    ({**GOOD, "max_steps": -5}, "max_steps: must be a positive integer"),
    ({**GOOD, "max_steps": 1.5}, "max_steps: expected a positive integer"),
    ({**GOOD, "eval_every": 0}, "eval_every: must be a positive integer"),
    ({**GOOD, "stress": {"lr_mult": [0.0]}}, "stress.lr_mult: every value must be a positive number"),
    ({**GOOD, "stress": {"lr_mult": [-1]}}, "stress.lr_mult: every value must be a positive number"),
    ({**GOOD, "stress": {"lr": [1]}}, "stress: unknown key 'lr'"),
    ({**GOOD, "strategies": ["baseline", "baseline"]}, "duplicate strategy 'baseline'"),
    ({**GOOD, "strategies": []}, "strategies: expected a non-empty list"),
    ({**GOOD, "strategies": [{"clip_norm": {"max_nrom": 1}}]}, "unknown parameter 'max_nrom' (did you mean 'max_norm'?)"),
    ({**GOOD, "strategies": [{"clip_norm": {"max_norm": "big"}}]}, "strategies.clip_norm.max_norm: expected float, got 'big'"),
    ({**GOOD, "strategies": ["clip_norm+clip_value"]}, "cannot compose"),
    ({**GOOD, "tasks": {"mnist_mlp": {"max_step": 5}}}, "tasks.mnist_mlp: unknown key 'max_step'"),
    ({**GOOD, "tasks": {"mnist_mlp": {"batch_size": "64"}}}, "tasks.mnist_mlp.batch_size: expected a positive integer"),
    ({**GOOD, "trainer": {"precison": "bf16-mixed"}}, "trainer: unknown key 'precison' (did you mean 'precision'?)"),
    ({**GOOD, "monitor": {"loss_blowup": "x"}}, "monitor.loss_blowup: expected a number"),
    ({"strategies": ["baseline"]}, "tasks: required"),
    ({**GOOD, "plugins": ["no_such_file.py"]}, "plugins: file 'no_such_file.py' not found"),
    ({**GOOD, "plugins": ["no_such_module_xyz"]}, "plugins: plugin module 'no_such_module_xyz' not found"),
])
def test_bad_input_is_one_clear_error(raw, message):
    with pytest.raises(UserError) as e:
        parse_suite(raw)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_malformed_yaml_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("tasks: [mnist_mlp]\nstrategies: [baseline\nseeds: [0]\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: malformed YAML"):
        load_suite(p)


def test_plugin_that_raises_on_import_is_reported(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "s.yaml").write_text("tasks: [mnist_mlp]\nstrategies: [baseline]\nplugins: [broken.py]\n")
    with pytest.raises(UserError, match="broken.py.*raised on import: RuntimeError: boom"):
        load_suite(tmp_path / "s.yaml")


def test_expansion_order_counts_and_pairing():
    s = suite(tasks=["mnist_mlp", "adding_rnn"], strategies=["baseline", "clip_norm"], seeds=2,
              stress={"lr_mult": [0.5, 1.0]})
    runs = expand(s)
    assert len(runs) == 2 * 2 * 2 * 2
    first = runs[:2]
    assert [r.strategy for r in first] == ["baseline", "clip_norm"]
    assert first[0].seed == first[1].seed and first[0].lr_mult == first[1].lr_mult
    assert first[1].trainer == {"gradient_clip_val": 1.0, "gradient_clip_algorithm": "norm"}
    assert len({r.run_id for r in runs}) == len(runs)


def test_run_id_is_a_stable_hash_of_the_resolved_spec():
    a = expand(suite(strategies=["baseline", {"clip_norm": {"max_norm": 0.5}}]))
    b = expand(suite(strategies=[{"clip_norm": {"max_norm": 0.5}}], name="other"))
    assert a[1].run_id == b[0].run_id                         # the suite's name is not part of it
    assert a[1].strategy == "clip_norm(max_norm=0.5)"          # a non-default setting is its own arm
    assert a[1].run_id != expand(suite(strategies=["clip_norm"]))[0].run_id


def test_task_overrides_and_global_budget():
    s = suite(tasks={"mnist_mlp": {"max_steps": 50, "lr_mult": [2.0]}, "adding_rnn": None},
              max_steps=30, eval_every=10)
    by_task = {r.task: r for r in expand(s)}
    assert by_task["mnist_mlp"].max_steps == 50 and by_task["mnist_mlp"].lr_mult == 2.0
    assert by_task["adding_rnn"].max_steps == 30 and by_task["adding_rnn"].eval_every == 10


def test_seed_count_means_range():
    assert suite(seeds=3).seeds == [0, 1, 2]


def test_shipped_configs_are_valid():
    from conftest import REPO
    for path in sorted((REPO / "configs").glob("*.yaml")):
        s = load_suite(path)
        assert expand(s), path
        assert not any(isinstance(r, Skipped) and "unknown" in r.reason for r in expand(s))
