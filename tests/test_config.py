"""Suite validation: every bad input is one clear UserError naming the field; expansion is
tasks x stress levels x seeds x strategies with paired seeds and stable run_ids."""

from __future__ import annotations

import pytest

from gradbench.core.errors import UserError
from gradbench.suite import Skipped, expand, load_suite, parse_suite

GOOD = {"tasks": ["mnist_mlp"], "strategies": ["baseline"]}


def suite(**changes):
    return parse_suite({**GOOD, **changes})


# (suite, what the one-line error says): every value of a suite, checked at load
BAD = [
    ({**GOOD, "tasks": ["mnist_mpl"]}, "unknown task 'mnist_mpl' (did you mean 'mnist_mlp'?)"),
    ({**GOOD, "tasks": ["mnist_mlp", "mnist_mlp"]}, "tasks: listed twice: mnist_mlp"),
    ({**GOOD, "tasks": "mnist_mlp"}, "tasks: expected a list or a mapping, got 'mnist_mlp'"),
    ({**GOOD, "tasks": {}}, "tasks: expected a non-empty list or mapping"),
    ({"strategies": ["baseline"]}, "tasks: required"),
    ({**GOOD, "strategies": ["clip_nrom"]}, "unknown strategy 'clip_nrom' (did you mean 'clip_norm'"),
    ({**GOOD, "strategies": ["baseline", "baseline"]}, "duplicate strategy 'baseline'"),
    ({**GOOD, "strategies": []}, "strategies: expected a non-empty list"),
    ({**GOOD, "strategies": [5]}, "strategies[0]: expected a string or a mapping, got 5"),
    (
        {**GOOD, "strategies": [{"clip_norm": {"max_nrom": 1}}]},
        "strategies.clip_norm: unknown key 'max_nrom' (did you mean 'max_norm'?); valid: max_norm",
    ),
    (
        {**GOOD, "strategies": [{"clip_norm": {"max_norm": "big"}}]},
        "strategies.clip_norm.max_norm: expected a number, got 'big'",
    ),
    ({**GOOD, "strategies": ["clip_norm+clip_value"]}, "cannot compose"),
    ({**GOOD, "sedes": [0]}, "unknown key 'sedes' (did you mean 'seeds'"),
    ({**GOOD, "seeds": []}, "seeds: must not be empty"),
    ({**GOOD, "seeds": [0, 0]}, "seeds: duplicate"),
    ({**GOOD, "seeds": "three"}, "seeds: expected an integer or a list, got 'three'"),
    ({**GOOD, "max_steps": 0}, "max_steps: must be a positive integer, got 0"),
    ({**GOOD, "max_steps": -5}, "max_steps: must be a positive integer, got -5"),
    ({**GOOD, "max_steps": 1.5}, "max_steps: expected a positive integer, got 1.5"),
    ({**GOOD, "eval_every": 0}, "eval_every: must be a positive integer"),
    ({**GOOD, "threads": 0}, "threads: must be a positive integer"),
    ({**GOOD, "name": 3}, "name: expected a string, got 3"),
    # a name becomes a file name: never a path
    ({**GOOD, "name": "../evil"}, "name: '../evil' cannot name the results file"),
    ({**GOOD, "name": "/tmp/abs"}, "name: '/tmp/abs' cannot name the results file"),
    ({**GOOD, "name": "a/b"}, "name: 'a/b' cannot name the results file"),
    ({**GOOD, "name": ""}, "name: '' cannot name the results file"),
    # sizes that would exhaust memory, and numbers that are not numbers
    ({**GOOD, "seeds": 1_000_000_000}, "seeds: at most 1000 seeds, got a count of 1000000000"),
    ({**GOOD, "seeds": [0, 2**32]}, "seeds: each seed must be from 0 to 2^32 - 1"),
    ({**GOOD, "seeds": [-1]}, "seeds: each seed must be from 0 to 2^32 - 1"),
    ({**GOOD, "threads": 100_000}, "threads: must be <= 1024, got 100000"),
    ({**GOOD, "stress": {"lr_mult": [float("nan")]}}, "stress.lr_mult[0]: expected a finite number, got nan"),
    ({**GOOD, "stress": {"lr_mult": [1, float("inf")]}}, "stress.lr_mult[1]: expected a finite number, got inf"),
    ({**GOOD, "trainer": {"devices": -3}}, "trainer.devices: expected a positive count, -1 (every device)"),
    ({**GOOD, "trainer": {"devices": []}}, "trainer.devices: expected a non-empty list of device indices"),
    # a threshold that is no threshold
    (
        {**GOOD, "strategies": [{"clip_norm": {"max_norm": -1}}]},
        "strategies.clip_norm.max_norm: must be a positive number",
    ),
    (
        {**GOOD, "strategies": [{"clip_norm": {"max_norm": 0}}]},
        "strategies.clip_norm.max_norm: must be a positive number",
    ),
    (
        {**GOOD, "strategies": [{"clip_norm": {"max_norm": float("nan")}}]},
        "strategies.clip_norm.max_norm: expected a finite number",
    ),
    ({**GOOD, "strategies": [{"agc": {"clipping": -0.5}}]}, "strategies.agc.clipping: must be a positive number"),
    (
        {**GOOD, "strategies": [{"clip_norm": {"max_norm": "x" * 10_000}}]},
        "strategies.clip_norm.max_norm: expected a number, got 'xxxxxxxx",  # the value cut short
    ),
    ({**GOOD, "strategies": [{5: {}}]}, "strategies[0]: expected a string, got 5"),
    (
        {**GOOD, "tasks": {"mnist_mlp": {"strategies": ["baseline"]}}},
        "tasks.mnist_mlp.strategies: 'baseline' is already one of the suite's strategies",
    ),
    (
        {**GOOD, "tasks": {"mnist_mlp": {"strategies": ["shalower"]}}},
        "tasks.mnist_mlp.strategies[0]: unknown strategy 'shalower' (did you mean 'shallower'",
    ),
    ({**GOOD, "tasks": {"mnist_mlp": {"strategies": []}}}, "tasks.mnist_mlp.strategies: expected a non-empty list"),
    ({**GOOD, "stress": {"lr_mult": [0.0]}}, "stress.lr_mult[0]: must be a positive number, got 0.0"),
    ({**GOOD, "stress": {"lr_mult": [-1]}}, "stress.lr_mult[0]: must be a positive number, got -1"),
    ({**GOOD, "stress": {"lr_mult": [1, 1]}}, "stress.lr_mult: duplicate values"),
    ({**GOOD, "stress": {"lr": [1]}}, "stress: unknown key 'lr'"),
    (
        {**GOOD, "tasks": {"mnist_mlp": {"max_step": 5}}},
        "tasks.mnist_mlp: unknown key 'max_step' (did you mean 'max_steps'?)",
    ),
    (
        {**GOOD, "tasks": {"mnist_mlp": {"batch_size": "64"}}},
        "tasks.mnist_mlp.batch_size: expected a positive integer, got '64'",
    ),
    ({**GOOD, "tasks": {"mnist_mlp": {"lr_mult": []}}}, "tasks.mnist_mlp.lr_mult: must not be empty"),
    (
        {**GOOD, "tasks": {"mnist_mlp": {"model": {"depht": 4}}}},
        "tasks.mnist_mlp.model: unknown key 'depht' (did you mean 'depth'",
    ),
    (
        {**GOOD, "tasks": {"mnist_mlp": {"model": {"activation": "swishy"}}}},
        "tasks.mnist_mlp.model.activation: 'swishy' is not one of 'relu'",
    ),
    ({**GOOD, "tasks": {"mnist_mlp": {"model": {"depth": 0}}}}, "tasks.mnist_mlp.model.depth: must be >= 1, got 0"),
    ({**GOOD, "tasks": {"mnist_mlp": {"model": {"dropout": 1.5}}}}, "tasks.mnist_mlp.model.dropout: must be < 1"),
    (
        {**GOOD, "tasks": {"adding_rnn": {"model": {"norm": "batch"}}}},
        "tasks.adding_rnn.model.norm: 'batch' is not one of 'none'",
    ),
    (
        {**GOOD, "tasks": {"adding_rnn": {"data": {"seqlen": 10}}}},
        "tasks.adding_rnn.data: unknown key 'seqlen' (did you mean 'seq_len'",
    ),
    ({**GOOD, "tasks": {"adding_rnn": {"data": {"seq_len": 1}}}}, "tasks.adding_rnn.data.seq_len: must be >= 2, got 1"),
    (
        {**GOOD, "tasks": {"mnist_mlp": {"data": {"val_size": "big"}}}},
        "tasks.mnist_mlp.data.val_size: expected a positive integer",
    ),
    ({**GOOD, "trainer": {"precison": "bf16-mixed"}}, "trainer: unknown key 'precison' (did you mean 'precision'?)"),
    ({**GOOD, "trainer": {"precision": "banana"}}, "trainer.precision: 'banana' is not one of '64-true'"),
    (
        {**GOOD, "trainer": {"devices": "two"}},
        "trainer.devices: expected an integer or a list or one of 'auto', got 'two'",
    ),
    (
        {**GOOD, "trainer": {"accumulate_grad_batches": 0}},
        "trainer.accumulate_grad_batches: must be a positive integer",
    ),
    ({**GOOD, "trainer": {"strategy": "dpp"}}, "trainer.strategy: 'dpp' is not one of"),
    ({**GOOD, "monitor": {"loss_blowup": "x"}}, "monitor.loss_blowup: expected a number, got 'x'"),
    ({**GOOD, "monitor": {"enabled": 1}}, "monitor.enabled: expected true or false, got 1"),
    ({**GOOD, "monitor": {"layer_evry": 5}}, "monitor: unknown key 'layer_evry' (did you mean 'layer_every'"),
    ({**GOOD, "scoring": {"weight": {}}}, "scoring: unknown key 'weight' (did you mean 'weights'?)"),
    ({**GOOD, "scoring": {"weights": {"speed": -1}}}, "scoring.weights.speed: must be >= 0"),
    (
        {**GOOD, "scoring": {"weights": {"stability": 0, "speed": 0, "accuracy": 0}}},
        "scoring.weights: the weights must not all be 0",
    ),
    ({**GOOD, "wandb": {"mode": "sometimes"}}, "wandb.mode: 'sometimes' is not one of 'online', 'offline' or 'auto'"),
    ({**GOOD, "plugins": "x.py"}, "plugins: expected a list, got 'x.py'"),
    ({**GOOD, "plugins": ["no_such_file.py"]}, "plugins: file 'no_such_file.py' not found"),
    ({**GOOD, "plugins": ["no_such_module_xyz"]}, "plugins: plugin module 'no_such_module_xyz' not found"),
]


@pytest.mark.parametrize("raw, message", BAD)
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
    s = suite(
        tasks=["mnist_mlp", "adding_rnn"], strategies=["baseline", "clip_norm"], seeds=2, stress={"lr_mult": [0.5, 1.0]}
    )
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
    assert a[1].run_id == b[0].run_id  # the suite's name is not part of it
    assert a[1].strategy == "clip_norm(max_norm=0.5)"  # a non-default setting is its own arm
    assert a[1].run_id != expand(suite(strategies=["clip_norm"]))[0].run_id


def test_task_overrides_and_global_budget():
    s = suite(tasks={"mnist_mlp": {"max_steps": 50, "lr_mult": [2.0]}, "adding_rnn": None}, max_steps=30, eval_every=10)
    by_task = {r.task: r for r in expand(s)}
    assert by_task["mnist_mlp"].max_steps == 50 and by_task["mnist_mlp"].lr_mult == 2.0
    assert by_task["adding_rnn"].max_steps == 30 and by_task["adding_rnn"].eval_every == 10


def test_a_tasks_own_arms_run_on_it_alone_in_every_phase():
    from gradbench.suite.expand import final_runs

    s = parse_suite(
        {
            "tasks": {"mnist_mlp": None, "adding_rnn": {"strategies": ["lstm", {"clip_norm": {"max_norm": 0.5}}]}},
            "strategies": ["baseline"],
            "seeds": 3,
            "protocol": {"sweep_seeds": 2},
        }
    )
    pairs = {(r.task, r.strategy) for r in expand(s)}
    assert pairs == {
        ("mnist_mlp", "baseline"),
        ("adding_rnn", "baseline"),
        ("adding_rnn", "lstm"),
        ("adding_rnn", "clip_norm(max_norm=0.5)"),
    }
    assert [a.label for a in s.all_arms] == ["baseline", "lstm", "clip_norm(max_norm=0.5)"]

    class Chosen:
        lr_mult, strategy_params = 1.0, {"lstm": {}}

    final = final_runs(s, {("adding_rnn", "lstm"): Chosen(), ("mnist_mlp", "lstm"): Chosen()})
    assert {(r.task, r.strategy) for r in final} == {("adding_rnn", "lstm")} and len(final) == 3


def test_seed_count_means_range():
    assert suite(seeds=3).seeds == [0, 1, 2]


def test_shipped_configs_are_valid():
    from conftest import REPO

    for path in sorted((REPO / "configs").glob("*.yaml")):
        s = load_suite(path)
        assert expand(s), path
        assert not any(isinstance(r, Skipped) and "unknown" in r.reason for r in expand(s))


def test_a_null_setting_means_its_default(tmp_path):
    """`name:` left empty (YAML null), or a null step budget, is the setting left out: the
    fields are typed `X | None` with None as 'not set', so null is that, not an error."""
    import yaml

    path = tmp_path / "nulls.yaml"
    path.write_text(
        yaml.safe_dump({**GOOD, "name": None, "max_steps": None, "tasks": {"mnist_mlp": {"eval_every": None}}})
    )
    plain = tmp_path / "nulls_plain.yaml"
    plain.write_text(yaml.safe_dump({**GOOD, "tasks": ["mnist_mlp"]}))
    with_nulls, without = load_suite(path), load_suite(plain)
    assert with_nulls.name == "nulls"
    assert [s.to_dict() | {"suite": None} for s in expand(with_nulls)] == [
        s.to_dict() | {"suite": None} for s in expand(without)
    ]


def test_the_battery_through_the_cli_is_exit_2_one_line_and_nothing_written(tmp_path, capsys):
    """Every bad suite of BAD through `gradbench run`: exit 2, one line on stderr, no results
    file and no lock file written, before anything trains."""
    import yaml

    from gradbench.cli import main

    assert len(BAD) >= 25
    for i, (raw, message) in enumerate(BAD):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump(raw))
        results = tmp_path / f"r{i}.jsonl"
        assert main(["run", str(path), "--results", str(results), "--data", str(tmp_path)]) == 2, message
        err = capsys.readouterr().err
        assert err.startswith("gradbench: error: ") and err.count("\n") == 1, err
        assert message in err, (message, err)
        assert not results.exists() and not results.with_name(results.name + ".lock").exists()


def test_a_suite_file_that_is_not_utf8_is_one_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\ntasks: [mnist_mlp]\nstrategies: [baseline]\n".encode("latin-1"))
    out = subprocess.run([sys.executable, "-m", "gradbench.cli", "run", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "not UTF-8" in out.stderr and "Traceback" not in out.stderr


def test_schema_is_the_suite_files_json_schema(capsys):
    import json

    from gradbench.cli import main

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"tasks", "strategies", "seeds", "trainer", "monitor"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    sections = [("", schema)] + [(name + ".", d) for name, d in schema.get("$defs", {}).items()]
    bare = [
        prefix + k for prefix, d in sections for k, v in d.get("properties", {}).items() if not v.get("description")
    ]
    assert not bare, f"fields without a description: {bare}"


def test_a_plugin_strategy_that_sets_a_bad_knob_is_caught_at_expansion(tmp_path):
    (tmp_path / "bad_knob.py").write_text(
        "from gradbench.catalogue.strategies import strategy\n"
        "@strategy(family='architecture')\n"
        "def deeper(spec):\n"
        '    """Typo in a knob (test plugin)."""\n'
        "    return spec.with_model(depht=12)\n"
    )
    s = parse_suite({**GOOD, "strategies": ["deeper"], "plugins": ["bad_knob.py"]}, base_dir=tmp_path)
    with pytest.raises(UserError, match=r"deeper.*model: unknown key 'depht'"):
        expand(s)


def test_committed_run_ids_still_hash_from_their_specs():
    """run_ids are stable: every committed record's stored spec hashes to its run_id."""
    from conftest import REPO

    from gradbench.core.spec import RunSpec
    from gradbench.store import jsonl

    records = jsonl.load(REPO / "leaderboard" / "results.jsonl")
    assert records and all(RunSpec.from_dict(r["spec"]).run_id == r["run_id"] for r in records)


def test_a_new_optional_field_at_its_default_keeps_the_run_id():
    import dataclasses

    from gradbench.core.spec import RunSpec

    Grown = dataclasses.make_dataclass(
        "Grown",
        [("qk_norm", bool, dataclasses.field(default=False)), ("extra", dict, dataclasses.field(default_factory=dict))],
        bases=(RunSpec,),
        frozen=True,
    )
    spec = expand(suite(strategies=["clip_norm"]))[0]
    grown = Grown(**dataclasses.asdict(spec))
    assert grown.run_id == spec.run_id
    assert dataclasses.replace(grown, qk_norm=True).run_id != spec.run_id
    assert dataclasses.replace(grown, extra={"a": 1}).run_id != spec.run_id


def test_an_editor_checking_against_the_schema_marks_what_loading_refuses():
    jsonschema = pytest.importorskip("jsonschema")
    import json

    from gradbench.suite.config import schema

    validator = jsonschema.Draft202012Validator(json.loads(json.dumps(schema())))
    good = {
        "tasks": {"mnist_mlp": {"model": {"depth": 4}}, "adding_rnn": {"data": {"seq_len": 30}}},
        "strategies": ["baseline", {"clip_norm": {"max_norm": 0.5}}],
    }
    assert not list(validator.iter_errors(good))
    for bad in (
        {**good, "tasks": {"mnist_mlp": {"model": {"depht": 4}}}},
        {**good, "tasks": {"mnist_mlp": {"model": {"activation": "swishy"}}}},
        {**good, "tasks": {"mnist_mpl": {}}},
        {**good, "trainer": {"precision": "banana"}},
    ):
        assert list(validator.iter_errors(bad)), bad


HOSTILE_YAML = {
    # "billion laughs": 9 levels of 9 aliases, 1 KB that would expand to 9^9 values
    "aliases": "".join(
        f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
        for prev, name in zip([None, *"abcdefgh"], "abcdefghi")
    )
    + "tasks: [mnist_mlp]\nstrategies: [{clip_norm: {max_norm: *i}}]\n",
    "deep": "tasks: [mnist_mlp]\nstrategies: [baseline]\nseeds: " + "[" * 3000 + "]" * 3000 + "\n",
    "twice": "tasks: [mnist_mlp]\nstrategies: [baseline]\nseeds: 2\nseeds: 3\n",
    "itself": "tasks: [mnist_mlp]\nstrategies: &s [baseline, *s]\n",
}


@pytest.mark.parametrize(
    "kind, message",
    [
        ("aliases", "expands to more than 100,000 values"),
        ("deep", "nested deeper than 50 levels"),
        ("twice", ":4: key 'seeds' given twice (first on line 3)"),
        ("itself", ":2: an alias that contains itself"),
    ],
)
def test_a_hostile_suite_file_is_one_line_at_once(kind, message, tmp_path):
    """Read through the CLI in a fresh process: exit 2, one short line, in well under the time
    and memory the file would cost if it were expanded."""
    import subprocess
    import sys
    import time

    path = tmp_path / f"{kind}.yaml"
    path.write_text(HOSTILE_YAML[kind])
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "gradbench.cli", "run", str(path), "--results", str(tmp_path / "r.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - start < 30
    assert out.returncode == 2, out.stderr[-500:]
    assert out.stderr.count("\n") == 1 and len(out.stderr) < 500 and message in out.stderr, out.stderr[-500:]
    assert not (tmp_path / "r.jsonl").exists()
