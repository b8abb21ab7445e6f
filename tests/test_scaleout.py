"""Scale-out and tracking: the same suite gives the same records (apart from timings) in
process, with 2 local workers, on a local Ray, and one run on 2 DDP processes agrees across
ranks; W&B offline run folders hold each run's config and metrics."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
from conftest import REPO

from gradbench.execution.executors import (
    InProcess,
    Job,
    LocalPool,
    execute,
    make_executor,
)
from gradbench.execution.suite_runner import run_suite
from gradbench.store import jsonl as results
from gradbench.suite import expand, parse_suite

TINY = {"max_steps": 20, "eval_every": 10, "batch_size": 32, "model": {"depth": 2, "width": 16}}


def tiny_suite(**extra):
    """Two built-in arms and the README's plugin strategy (a gradient hook from a plugin file,
    which every worker process must load for itself)."""
    return parse_suite(
        {
            "name": "scale",
            "tasks": {"mnist_mlp": TINY},
            "strategies": ["baseline", "clip_norm", "clip_per_tensor"],
            "plugins": [str(REPO / "examples" / "my_strategies.py")],
            "seeds": 2,
            "threads": 1,
            **extra,
        }
    )


def comparable(recs: list[dict]) -> dict:
    """Records keyed by run_id, without what may differ between executors: wall times."""
    out = {}
    for r in recs:
        r = json.loads(json.dumps(r))
        r.pop("timings")
        out[r["run_id"]] = r
    return out


def run_with(executor, tmp: Path, data: Path, name: str) -> dict:
    path = tmp / name / "scale.jsonl"
    run_suite(tiny_suite(), path, data, executor=executor, log=lambda s: None)
    recs = results.load(path)
    assert len(recs) == 6 and len({r["run_id"] for r in recs}) == 6  # one writer: no torn or duplicated lines
    assert all(r["status"] == "ok" for r in recs), [r["reason"] for r in recs]  # the plugin's hook too
    for r in recs:
        r["series"] = r["series"] and Path(r["series"]).name  # the run folder's name, wherever it is
    return comparable(recs)


def test_workers_reproduce_the_sequential_records(tiny_data, tmp_path):
    sequential = run_with(InProcess(), tmp_path, tiny_data, "seq")
    assert run_with(LocalPool(workers=2), tmp_path, tiny_data, "pool") == sequential


def test_ray_reproduces_the_sequential_records(tiny_data, tmp_path):
    pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    sequential = run_with(InProcess(), tmp_path, tiny_data, "seq")
    assert run_with(make_executor("ray"), tmp_path, tiny_data, "ray") == sequential


def test_workers_auto_is_one_worker_per_core_or_per_threads_cores(monkeypatch):
    from gradbench.execution.executors import resolve_workers

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert resolve_workers("auto", None) == 8  # one single-threaded run per core
    assert resolve_workers("auto", 2) == 4  # the suite pins 2 threads a run
    assert resolve_workers("auto", 16) == 1
    assert resolve_workers("3", None) == 3 and resolve_workers(3, None) == 3
    pool = make_executor(workers="auto", threads=2)
    assert isinstance(pool, LocalPool) and pool.workers == 4 and pool.threads == 2
    assert isinstance(make_executor(workers="auto", threads=8), InProcess)


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5", ""])
def test_bad_workers_is_one_line_naming_the_choices(tiny_data, tmp_path, capsys, value):
    from gradbench.cli import main

    cfg = tmp_path / "s.yaml"
    cfg.write_text("tasks: {mnist_mlp: {max_steps: 2}}\nstrategies: [baseline]\n")
    assert (
        main(["run", str(cfg), "--data", str(tiny_data), "--results", str(tmp_path / "r.jsonl"), "--workers", value])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == f"gradbench: error: --workers: {value!r} is not a positive integer or auto"
    assert not (tmp_path / "r.jsonl").exists()


def test_parallel_runs_start_longest_first():
    from gradbench.execution.executors import longest_first

    suite = parse_suite(
        {
            "tasks": {
                "mnist_mlp": {"max_steps": 1000},
                "adding_rnn": {"max_steps": 600},
                "cifar10_cnn": {"max_steps": 200},
            },
            "strategies": ["baseline"],
            "seeds": 2,
        }
    )
    order = [(s.task, s.seed) for s in longest_first(expand(suite))]
    # priced at max_steps x cpu_ms_per_step: CIFAR 200 x 220 > MLP 1000 x 10 > RNN 600 x 13; ties keep suite order
    assert order == [
        ("cifar10_cnn", 0),
        ("cifar10_cnn", 1),
        ("mnist_mlp", 0),
        ("mnist_mlp", 1),
        ("adding_rnn", 0),
        ("adding_rnn", 1),
    ]


def test_devices_pin_one_gpu_per_worker(monkeypatch):
    import queue

    from gradbench.execution.executors import _init_worker

    pool = LocalPool(devices=["3", "5"], runs_per_device=2)
    assert pool.workers == 4 and "GPUs 3,5 x 2" in pool.describe()
    assert pool.device_slots() == ["3", "3", "5", "5"]
    slots = queue.Queue()
    for dev in pool.device_slots():
        slots.put(dev)
    seen, threads = [], torch.get_num_threads()
    try:
        for _ in range(4):  # what each worker's initializer does when it starts
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
            _init_worker(slots, 1)
            seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    finally:
        torch.set_num_threads(threads)
    assert seen == ["3", "3", "5", "5"]


def test_ddp_on_two_cpu_processes_agrees_across_ranks(tiny_data, tmp_path):
    suite = parse_suite(
        {
            "name": "ddp",
            "tasks": {"mnist_mlp": TINY},
            "strategies": ["clip_norm"],
            "trainer": {"strategy": "ddp", "devices": 2, "accelerator": "cpu"},
        }
    )
    spec = expand(suite)[0]
    rec = execute(
        spec.to_dict(),
        Job(data_root=str(tiny_data), runs_dir=str(tmp_path / "runs"), results_dir=str(tmp_path), threads=1),
    )
    assert rec["status"] == "ok", rec["reason"]  # "error" if the two ranks' stability blocks differed
    assert rec["ranks"] == 2
    assert rec["stability"]["clip_fraction"] is not None and rec["metrics"]["test"] is not None


def read_wandb_records(path: Path) -> list:
    """Parse an offline .wandb file: a LevelDB-style log (32 KiB blocks of
    [crc32 u32][length u16][type u8] chunks) of wandb protobuf Records, after a 7-byte header."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, out, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        pending += chunk
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(pending)
            out.append(rec)
            pending = b""
    return out


def item_kv(item) -> tuple[str, object]:
    """(key, value) of a config/history/summary item: '/' keys are stored nested, and a
    value either as JSON or in a typed field."""
    key = item.key or "/".join(item.nested_key)
    if item.value_json:
        return key, json.loads(item.value_json)
    for field in ("number", "integer", "boolean", "text"):
        if hasattr(item, field) and item.HasField(field):
            return key, getattr(item, field)
    return key, None


def test_wandb_offline_runs_hold_config_and_metrics(tiny_data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    from gradbench.execution import tracking

    settings = tracking.resolve({"project": "gb-test"}, tmp_path)
    assert settings["mode"] == "offline"
    path = tmp_path / "scale.jsonl"
    recs = run_suite(  # relu on the ReLU MLP is baseline's run, copied: a W&B run of its own too
        tiny_suite(strategies=["baseline", "clip_norm", "relu"]),
        path,
        tiny_data,
        executor=InProcess(),
        wandb=settings,
        log=lambda s: None,
    )
    folders = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(folders) == len(recs) == 6 and sum(bool(r.get("copy_of")) for r in recs) == 2
    by_id = {r["run_id"]: r for r in recs}
    for folder in folders:
        records = read_wandb_records(next(folder.glob("*.wandb")))
        run = next(r.run for r in records if r.HasField("run"))
        assert run.run_group == "scale" and run.run_id in by_id and run.project == "gb-test"
        rec = by_id[run.run_id]
        assert {rec["task"], rec["strategy"]["label"], f"seed{rec['seed']}"} <= set(run.tags)
        config = dict(map(item_kv, run.config.update))
        assert config["task"] == "mnist_mlp" and config["seed"] == rec["seed"]
        history = [dict(map(item_kv, r.history.item)) for r in records if r.HasField("history")]
        keys = set().union(*history)
        assert {"stability/grad_norm", "stability/loss", "val/accuracy"} <= keys
        summary = dict(item_kv(i) for r in records if r.HasField("summary") for i in r.summary.update)
        assert summary.get("final/test") == pytest.approx(rec["metrics"]["test"])
        assert summary.get("copy_of") == rec.get("copy_of")
    assert "wandb sync" in tracking.sync_hint(settings)


def test_wandb_summary_of_a_suite_with_a_baseline_is_logged_and_reads_back(tiny_data, tmp_path, monkeypatch, capsys):
    """The simplest suite with a baseline and `wandb: {mode: offline}` exits 0 and writes the
    summary run; its tables read back with a row per (task, strategy) and no missing column
    type (the baseline's paired-seed columns are empty, not pd.NA)."""
    pytest.importorskip("wandb")
    import json as _json

    from gradbench import cli

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(
        "name: wb\ntasks:\n  mnist_mlp: {max_steps: 10, eval_every: 5, batch_size: 32, model: {depth: 2, width: 16}}\n"
        "strategies: [baseline, clip_norm]\nwandb: {mode: offline, project: gb-test}\n"
    )
    rc = cli.main(["run", "s.yaml", "--data", str(tiny_data), "--results", "r.jsonl"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "warning" not in err and "wandb sync" in out
    summary = [f for f in (tmp_path / "wandb").glob("offline-run-*") if any(f.rglob("*per_task*.table.json"))]
    assert len(summary) == 1
    tables = {p.name.split("_")[0]: _json.loads(p.read_text()) for p in summary[0].rglob("*.table.json")}
    per_task = tables["per"]
    assert len(per_task["data"]) == 2 and "strategy" in per_task["columns"]
    rows = {row[per_task["columns"].index("strategy")]: row for row in per_task["data"]}
    assert set(rows) == {"baseline", "clip_norm"}


def test_a_tracking_failure_is_one_warning_and_the_suite_still_succeeds(tiny_data, tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb")
    from gradbench import cli
    from gradbench.execution import tracking

    def broken(*a, **kw):
        raise TypeError("Data row contained incompatible types")

    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setattr(tracking, "log_summary", broken)
    monkeypatch.setattr(tracking.RunTracker, "finish", broken)
    monkeypatch.setattr(WandbLogger, "finalize", broken)  # Lightning calls it inside fit
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "s.yaml").write_text(
        "name: wb2\ntasks:\n  mnist_mlp: {max_steps: 6, eval_every: 3, batch_size: 32, model: {depth: 2, width: 16}}\n"
        "strategies: [baseline]\nwandb: {mode: offline, dir: " + str(tmp_path) + "}\n"
    )
    rc = cli.main(["run", str(tmp_path / "s.yaml"), "--data", str(tiny_data), "--results", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert rc == 0
    warnings = [line for line in err.splitlines() if line.startswith("gradbench: warning:")]
    assert len(warnings) == 3 and all("W&B" in w for w in warnings) and "Traceback" not in err
    assert [r["status"] for r in results.load(tmp_path / "r.jsonl")] == ["ok"]


KILLER_PLUGIN = '''
import os
import signal

from gradbench.catalogue.grad_hooks import grad_hook
from gradbench.catalogue.strategies import strategy


@strategy(family="clipping", slot="killer")
def killer(spec):
    """Kills its own process at the third step (a segfault or the OOM killer, test plugin)."""
    return spec.add_grad_hook("killer")


@grad_hook("killer")
def make_killer():
    steps = []

    def hook(module, optimizer):
        steps.append(1)
        if len(steps) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    return hook
'''


@pytest.mark.parametrize("kind", ["pool", "ray"])
def test_a_worker_that_dies_is_one_error_record_and_the_suite_finishes(tiny_data, tmp_path, kind):
    if kind == "ray":
        pytest.importorskip("ray", reason="the 'ray' extra is not installed")
    (tmp_path / "killer_plugin.py").write_text(KILLER_PLUGIN)
    suite = tiny_suite(strategies=["baseline", "killer"], plugins=[str(tmp_path / "killer_plugin.py")])
    executor = LocalPool(workers=2) if kind == "pool" else make_executor("ray")
    path = tmp_path / "r.jsonl"
    recs = run_suite(suite, path, tiny_data, executor=executor, log=lambda s: None)
    by_arm = {}
    for r in recs:
        by_arm.setdefault(r["strategy"]["label"], []).append(r)
    assert [r["status"] for r in by_arm["baseline"]] == ["ok", "ok"]
    assert [r["status"] for r in by_arm["killer"]] == ["error", "error"]
    for r in by_arm["killer"]:
        assert ("killed by SIGKILL" if kind == "pool" else "Ray task failed") in r["reason"], r["reason"]
    assert len(results.load(path)) == 4
    if kind == "pool":  # the runs that died with a worker ran again alone and match a clean run
        clean = run_with(InProcess(), tmp_path, tiny_data, "clean")
        for r in by_arm["baseline"]:
            assert (r["metrics"], r["stability"]) == (clean[r["run_id"]]["metrics"], clean[r["run_id"]]["stability"])
