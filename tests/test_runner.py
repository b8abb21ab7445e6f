"""The runner end to end: records, resume, reproducibility, real short runs per task, and
the CLI's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import real_data_or_skip

from gradbench.core.errors import UserError
from gradbench.execution.suite_runner import run_suite
from gradbench.store import jsonl as results
from gradbench.suite import expand, parse_suite
from gradbench.training.run import run_one

SMALL_MNIST = {"max_steps": 20, "eval_every": 10, "batch_size": 32, "model": {"depth": 2, "width": 32}}


def small_suite(**extra):
    return parse_suite(
        {
            "name": "t",
            "tasks": {"mnist_mlp": SMALL_MNIST},
            "strategies": ["baseline", "clip_norm"],
            "stress": {"lr_mult": [0.1]},
            **extra,
        }
    )


def test_record_has_the_documented_fields(tiny_data, tmp_path):
    recs = run_suite(small_suite(), tmp_path / "r.jsonl", tiny_data, command="gradbench run t.yaml", log=lambda s: None)
    assert len(recs) == 2
    rec = recs[0]
    for key in (
        "numerics",
        "run_id",
        "suite",
        "task",
        "strategy",
        "seed",
        "stress",
        "status",
        "reason",
        "metrics",
        "stability",
        "timings",
        "env",
        "data",
        "series",
        "spec",
        "command",
    ):
        assert key in rec
    m = rec["metrics"]
    assert rec["status"] == "ok" and 0 <= m["test"] <= 1
    assert [s for s, _ in m["val_curve"]] == [10, 20]
    assert m["best_val"] == max(v for _, v in m["val_curve"])
    assert rec["data"]["fingerprint"].startswith("sha256:")
    assert rec["env"]["torch"] and rec["env"]["threads"] >= 1
    # the kind of CPU bears on the last bits of a CPU run (gradbench verify names it)
    assert rec["env"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # AVX2, AVX512, ...
    assert "cpu" in rec["env"]
    assert rec["timings"]["steps_per_s"] > 0
    assert (tmp_path / rec["series"] / "steps.csv").exists()
    assert (tmp_path / rec["series"] / "layers.csv").exists()


def test_resume_skips_finished_runs(tiny_data, tmp_path):
    path = tmp_path / "r.jsonl"
    lines = []
    run_suite(small_suite(), path, tiny_data, log=lines.append)
    first = path.read_text()
    lines.clear()
    run_suite(small_suite(), path, tiny_data, log=lines.append)
    assert path.read_text() == first
    assert "2 already in" in lines[0] and "0 to run" in lines[0]


def test_a_suite_reuses_another_files_runs_without_their_records(tiny_data, tmp_path):
    """--reuse: a run another results file holds (trained, this numerics version) is copied
    into this suite's file with this suite's phase, not trained again; that file's other
    records stay out, and a run it lacks trains."""
    other = tmp_path / "other.jsonl"
    run_suite(small_suite(strategies=["baseline", "clip_norm", "agc"]), other, tiny_data, log=lambda s: None)
    by_id = {r["run_id"]: r for r in results.latest_by_run(results.load(other))}
    mine, lines = tmp_path / "sub" / "mine.jsonl", []  # another folder: the series path is rewritten
    mine.parent.mkdir()
    recs = run_suite(
        small_suite(strategies=["baseline", "clip_norm", "zclip"], name="t2"),
        mine,
        tiny_data,
        log=lines.append,
        reuse=[other],
    )
    assert "2 runs reused from another results file" in "\n".join(lines)
    by_label = {r["strategy"]["label"]: r for r in recs}
    for label in ("baseline", "clip_norm"):  # the same records, number for number
        assert by_label[label]["metrics"] == by_id[by_label[label]["run_id"]]["metrics"]
    assert by_label["zclip"]["run_id"] not in by_id  # trained here
    assert {r["spec"]["suite"] for r in recs} == {r["suite"] for r in recs} == {"t2"}  # recorded as this suite's
    reused = by_label["baseline"]
    assert (mine.parent / reused["series"]).resolve() == (other.parent / by_id[reused["run_id"]]["series"]).resolve()
    assert "agc" not in {r["strategy"]["label"] for r in results.load(mine)}  # not this suite's run


def test_cli_refuses_a_reuse_file_that_is_not_there_before_training(tmp_path, capsys):
    from gradbench.cli import main

    config = tmp_path / "s.yaml"
    config.write_text("name: s\ntasks: [mnist_mlp]\nstrategies: [baseline]\n")
    rc = main(["run", str(config), "--results", str(tmp_path / "r.jsonl"), "--reuse", str(tmp_path / "no.jsonl")])
    assert rc == 2 and "--reuse" in capsys.readouterr().err and not (tmp_path / "r.jsonl").exists()


def test_resume_reruns_records_of_another_numerics_version_and_pages_never_mix_them(tiny_data, tmp_path, monkeypatch):
    from gradbench.analysis import page
    from gradbench.core import numerics

    path = tmp_path / "r.jsonl"
    first = run_suite(small_suite(), path, tiny_data, log=lambda s: None)
    assert {r["numerics"] for r in first} == {numerics.NUMERICS}
    # a later training-code state bumps the version: every record of the older one runs again
    monkeypatch.setattr(numerics, "NUMERICS", numerics.NUMERICS + 1)
    monkeypatch.setattr(results, "NUMERICS", numerics.NUMERICS)
    import gradbench.training.run as run_module

    monkeypatch.setattr(run_module, "NUMERICS", numerics.NUMERICS)
    lines = []
    again = run_suite(small_suite(), path, tiny_data, log=lines.append)
    assert "2 to run, again: 2 recorded under another numerics version" in lines[0]
    assert {r["numerics"] for r in again} == {numerics.NUMERICS} and len(results.load(path)) == 4
    # the latest record of each run wins, so the suite's own page has one version; a mix does not score
    page.write(again, tmp_path / "page", plots=False)
    assert f"| Numerics version | {numerics.NUMERICS} |" in (tmp_path / "page" / "README.md").read_text()
    with pytest.raises(UserError, match="2 numerics versions"):
        page.write([first[0], again[1]], tmp_path / "mixed", plots=False)


def test_torn_last_line_is_ignored_and_its_run_runs_again(tiny_data, tmp_path):
    path = tmp_path / "r.jsonl"
    run_suite(small_suite(), path, tiny_data, log=lambda s: None)
    good, second = path.read_text().splitlines()
    path.write_text(good + "\n" + second[: len(second) // 2])  # killed mid-write
    with pytest.warns(UserWarning) as caught:
        recs = run_suite(small_suite(), path, tiny_data, log=lambda s: None)
    said = [str(w.message) for w in caught]
    assert any("ignoring a torn last line" in m for m in said) and any(".torn before appending" in m for m in said)
    assert len(recs) == 2
    ids = [r["run_id"] for r in results.load(path)]  # the fragment is out of the file, kept beside it
    assert sorted(ids) == sorted({json.loads(good)["run_id"], json.loads(second)["run_id"]})
    assert results.torn_path(path).read_text() == second[: len(second) // 2] + "\n"


def test_not_json_lines_is_a_clear_error(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text("hello\n{}\n")
    with pytest.raises(UserError, match=r"r.jsonl:1: not a JSON-lines results file"):
        results.load(p)


def strip_timings(rec: dict) -> dict:
    rec = json.loads(json.dumps(rec))
    rec.pop("timings")
    return rec


def test_same_seed_gives_an_identical_record_apart_from_timings(tiny_data):
    spec = expand(small_suite())[1]
    a, b = run_one(spec, tiny_data), run_one(spec, tiny_data)
    assert strip_timings(a) == strip_timings(b)
    other = run_one(spec.replace(seed=1), tiny_data)
    assert other["metrics"]["val_curve"] != a["metrics"]["val_curve"]


def test_an_arm_whose_run_is_another_arms_is_not_trained_twice(tiny_data, tmp_path, capsys):
    """relu on the ReLU MLP resolves to baseline's very run: it is recorded as a copy of that
    run (in the same batch, or from the file on a later run), which is what training it would
    give, and which gradbench verify reproduces by training it."""
    from gradbench import cli

    path = tmp_path / "r.jsonl"
    lines = []
    recs = run_suite(small_suite(strategies=["baseline", "relu", "clip_norm"]), path, tiny_data, log=lines.append)
    by = {r["strategy"]["label"]: r for r in recs}
    assert by["relu"]["copy_of"] == by["baseline"]["run_id"] and "copy_of" not in by["clip_norm"]
    assert by["relu"]["run_id"] != by["baseline"]["run_id"]
    assert [line for line in lines if "not trained again" in line] == [next(line for line in lines if " relu " in line)]
    assert "3 to run; 2 to train, 1 the same run as another arm's (copied)" in lines[0]
    trained = run_one(expand(small_suite(strategies=["relu"]))[0], tiny_data)
    for field in ("status", "metrics", "stability", "data"):
        assert by["relu"][field] == json.loads(json.dumps(trained[field])), field
    assert by["relu"]["timings"].keys() == {"finished_at"} and by["relu"]["env"] == by["baseline"]["env"]

    # a later suite in the same file: the recorded run is the source
    lines.clear()
    more = run_suite(small_suite(strategies=["baseline", "sgd_momentum"]), path, tiny_data, log=lines.append)
    assert more[1]["copy_of"] == by["baseline"]["run_id"] and "1 to run; 0 to train, 1 the same run" in lines[0]
    assert cli.main(["verify", str(path), "--data", str(tiny_data)]) == 0
    out = capsys.readouterr().out
    assert f"ok       {more[1]['run_id']} mnist_mlp sgd_momentum" in out and "verify: 4 of 4 runs reproduce" in out


def test_paired_seed_gives_every_strategy_the_same_start(tiny_data):
    base, clip = expand(small_suite())
    ra, rb = run_one(base, tiny_data), run_one(clip, tiny_data)
    # same data order and same initial weights: the same pre-clip gradient at step 0
    assert ra["stability"]["grad_norm_curve"][0] == rb["stability"]["grad_norm_curve"][0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "task, parts",
    [
        ("mnist_mlp", ("MNIST", "raw")),
        ("cifar10_cnn", ("cifar-10-batches-py",)),
        ("adding_rnn", ()),
    ],
)
def test_one_short_real_run_per_task(task, parts):
    root = real_data_or_skip(*parts) if parts else real_data_or_skip()
    suite = parse_suite({"tasks": {task: {"max_steps": 10, "eval_every": 5}}, "strategies": ["clip_norm"]})
    rec = run_one(expand(suite)[0], root)
    assert rec["status"] == "ok", rec["reason"]
    assert rec["metrics"]["test"] is not None and len(rec["metrics"]["val_curve"]) == 2
    assert rec["stability"]["grad_norm_max"] > 0


def cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "gradbench.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


@pytest.mark.parametrize(
    "content, expected",
    [
        ("tasks: [mnist_mlp]\nstrategies: [baseline\n", "malformed YAML"),
        ("tasks: [mnist_mlp]\nstrategies: [clip_nrom]\n", "did you mean 'clip_norm'"),
        ("tasks: [mnist_mlp]\nstrategies: [baseline]\nseeds: []\n", "seeds: must not be empty"),
    ],
)
def test_cli_bad_config_exits_2_with_one_line(tmp_path, content, expected):
    (tmp_path / "s.yaml").write_text(content)
    r = cli("run", str(tmp_path / "s.yaml"), "--data", str(tmp_path))
    assert r.returncode == 2
    assert expected in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_missing_data_says_where_it_looked(tmp_path):
    (tmp_path / "s.yaml").write_text("tasks: [mnist_mlp]\nstrategies: [baseline]\n")
    r = cli(
        "run", str(tmp_path / "s.yaml"), "--data", str(tmp_path / "nowhere"), "--results", str(tmp_path / "r.jsonl")
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(tmp_path / "nowhere") in r.stderr


def test_cli_list_shows_tasks_and_strategies_by_family():
    r = cli("list")
    assert r.returncode == 0
    for name in ("mnist_mlp", "cifar10_cnn", "adding_rnn", "baseline", "clip_norm", "clip_value", "clipping:"):
        assert name in r.stdout


def test_cli_run_end_to_end_writes_results_and_leaderboard(tiny_data, tmp_path):
    (tmp_path / "s.yaml").write_text(
        "name: e2e\ntasks:\n  mnist_mlp: {max_steps: 10, eval_every: 5, batch_size: 32, model: {depth: 2, width: 16}}\n"
        "strategies: [baseline, clip_value]\n"
    )
    r = cli("run", str(tmp_path / "s.yaml"), "--data", str(tiny_data), "--results", str(tmp_path / "e2e.jsonl"))
    assert r.returncode == 0, r.stderr
    assert "[2/2]" in r.stdout and "ETA" in r.stdout
    assert len(results.load(tmp_path / "e2e.jsonl")) == 2
    assert (tmp_path / "e2e_leaderboard" / "README.md").exists()


def test_eta_prices_the_runs_left_by_their_task_not_by_the_mean_run():
    """Longest-first scheduling finishes the long CIFAR runs first; the ETA of the short MNIST
    runs left must not be priced at CIFAR's wall time."""
    from gradbench.execution.executors import longest_first
    from gradbench.execution.suite_runner import Progress

    suite = parse_suite(
        {
            "tasks": {"mnist_mlp": {"max_steps": 100}, "cifar10_cnn": {"max_steps": 100}},
            "strategies": ["baseline"],
            "seeds": 2,
            "stress": {"lr_mult": [1.0]},
        }
    )
    specs = longest_first(expand(suite))
    assert [s.task for s in specs] == ["cifar10_cnn"] * 2 + ["mnist_mlp"] * 2
    lines = []
    progress = Progress(specs, 0, len(specs), lines.append)

    def finish(spec, wall, steps=100):
        progress.done(
            spec,
            {
                "status": "ok",
                "reason": None,
                "timings": {"wall_s": wall},
                "metrics": {"name": "accuracy", "test": 0.5, "steps": steps},
            },
        )

    finish(specs[0], 22.0)  # CIFAR: 100 steps priced 22 s, really 22 s
    assert lines[-1].endswith("ETA 0m24s")  # 22 s (the CIFAR run left) + 2 x 100 x 10 ms (MNIST, as priced)
    finish(specs[2], 2.0)  # MNIST really costs 2 s, twice its price: so does the one left
    assert lines[-1].endswith("ETA 0m24s")  # 22 + 2
    finish(specs[1], 22.0)
    assert lines[-1].endswith("ETA 0m02s")
    finish(specs[3], 2.0)
    assert lines[-1].endswith("ETA 0m00s")


def test_a_run_takes_long_lived_objects_out_of_the_collectors_reach(tiny_data):
    """Full garbage collections walked ~350k torch/Lightning objects (~250 ms each, once or
    twice per 1000-step run); run_one freezes what is alive before it trains."""
    import gc

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    rec = run_one(expand(small_suite())[0], tiny_data)
    assert rec["status"] == "ok"
    assert gc.get_freeze_count() > 10_000


def test_a_line_that_is_not_a_record_is_one_error_naming_the_field(tmp_path):
    from fakes import make_record

    path = tmp_path / "r.jsonl"
    results.append(path, make_record(run_id="a" * 12))
    bad = make_record(run_id="b" * 12)
    bad["metrics"]["test"] = "high"
    results.append(path, bad)
    with pytest.raises(UserError, match=r"r.jsonl:2: not a gradbench run record \(metrics.test: expected a number"):
        results.load(path)


def test_residual_batchnorm_trains_on_mnist_at_half_the_exploding_lr():
    """Numerics version 2's residual blocks (pre-activation, Fixup-initialized branches, the
    trunk's own norm and activation before the head): residual+batchnorm learns at lr x0.5,
    where version 1's post-activation blocks diverged by step 2 (a real 1000-step run)."""
    data = real_data_or_skip("MNIST")
    suite = parse_suite({"tasks": ["mnist_mlp"], "strategies": ["residual+batchnorm"], "stress": {"lr_mult": [0.5]}})
    rec = run_one(expand(suite)[0], data)
    assert rec["status"] == "ok" and rec["metrics"]["test"] > 0.95, (
        rec["status"],
        rec["reason"],
        rec["metrics"]["test"],
    )
