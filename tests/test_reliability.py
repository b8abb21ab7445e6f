"""Crash safety, bad input, faults inside runs and `gradbench verify`.

The subprocess tests run the real CLI (`python -m gradbench.cli`) on the tiny MNIST of
conftest.tiny_data with runs of 40 steps, so each takes seconds.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO
from fakes import make_record

from gradbench import cli
from gradbench.core.errors import UserError
from gradbench.execution import interrupts
from gradbench.execution.suite_runner import run_suite
from gradbench.store import jsonl as results
from gradbench.store import lock
from gradbench.suite import expand, load_suite, parse_suite
from gradbench.training.run import run_one

SMALL = {"max_steps": 40, "eval_every": 20, "batch_size": 32, "model": {"depth": 2, "width": 32}}


# one torch thread: with other test sessions on the same 2 cores, two spinning OpenMP threads
# per process make a 40-step run take seconds instead of a tenth of one
def rec(run_id: str, **kw) -> dict:
    """A real-shaped record (tests/fakes.py) under this run_id."""
    return make_record(run_id=run_id, **kw)


SUITE_YAML = (
    "name: rel\nthreads: 1\ntasks:\n  mnist_mlp: {max_steps: 40, eval_every: 20, batch_size: 32, "
    "model: {depth: 2, width: 32}}\n"
)
ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def small_suite(strategies=("baseline", "clip_norm"), **extra):
    return parse_suite(
        {"name": "rel", "threads": 1, "tasks": {"mnist_mlp": dict(SMALL)}, "strategies": list(strategies), **extra}
    )


@pytest.fixture(autouse=True)
def one_thread():
    """run_suite sets the suite's thread count process-wide: give the next test file its own back."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cli_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "gradbench.cli", *map(str, args)]


def run_cli(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(cli_cmd(*args), capture_output=True, text=True, cwd=cwd, env=ENV, timeout=timeout)


def start_cli(*args, cwd=None, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        cli_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=ENV, **kw
    )


def wait_for(cond, proc=None, timeout=90.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (rc {proc.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def n_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def one_line_error(r, *expected):
    """Exit code 2, one 'gradbench: error:' line naming what is expected, no traceback."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("gradbench: error: ") and "Traceback" not in r.stderr
    for e in expected:
        assert e in lines[0], lines[0]


def no_sigint_ignored():
    """The child gets Python's KeyboardInterrupt on SIGINT even when pytest runs in the background."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# --- durable results ------------------------------------------------------------------
def test_append_flushes_and_fsyncs_each_record_before_returning(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.fstat(fd).st_size)  # what is on disk when fsync is asked
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    results.append(path, rec("a"))
    assert synced and synced[-1] == path.stat().st_size
    results.append(path, rec("b"))
    assert len(synced) == 2 and synced[-1] == path.stat().st_size
    assert [r["run_id"] for r in results.load(path)] == ["a", "b"]


def test_append_writes_non_finite_floats_as_null(tmp_path):
    path = tmp_path / "r.jsonl"
    r = rec("a")
    r["metrics"]["val_curve"] = [[10, float("nan")], [20, float("inf")]]
    results.append(path, r)
    assert results.load(path)[0]["metrics"]["val_curve"] == [[10, None], [20, None]]


def test_disk_full_is_a_clear_error_and_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    results.append(path, rec("a"))
    before = path.read_bytes()
    real_write, calls = os.write, []

    def full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:  # half the line gets out, then the disk is full
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(UserError) as e:
        results.append(path, rec("b", reason="y" * 500))
    assert str(path) in str(e.value) and "No space left on device" in str(e.value)
    assert "\n" not in str(e.value)
    assert path.read_bytes() == before  # the partial line was cut back off
    monkeypatch.undo()
    results.append(path, rec("b"))  # and the next write is clean
    assert [r["run_id"] for r in results.load(path)] == ["a", "b"]


def test_read_only_results_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    results.append(path, rec("a"))
    before = path.read_bytes()
    real_open = os.open

    def ro(p, flags, *a, **kw):
        if Path(p) == path and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(p))
        return real_open(p, flags, *a, **kw)

    monkeypatch.setattr(os, "open", ro)
    with pytest.raises(UserError, match="cannot write results to .*r.jsonl: Read-only file system"):
        results.append(path, rec("b"))
    assert path.read_bytes() == before


def test_cli_disk_full_exits_2_with_one_line_and_keeps_finished_runs(tiny_data, tmp_path, monkeypatch, capsys):
    (tmp_path / "s.yaml").write_text(SUITE_YAML + "strategies: [baseline, clip_norm]\n")
    path = tmp_path / "r.jsonl"
    run_suite(small_suite(["baseline"]), path, tiny_data, log=lambda s: None)  # the suite's first run
    before = path.read_bytes()
    assert n_lines(path) == 1

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    rc = cli.main(["run", str(tmp_path / "s.yaml"), "--data", str(tiny_data), "--results", str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip().count("\n") == 0 and err.startswith("gradbench: error: cannot write results to")
    assert str(path) in err and "No space left on device" in err
    assert path.read_bytes() == before


# --- the results file: torn lines and files that are not results ------------------------
def test_complete_last_line_that_is_not_json_is_an_error_not_a_torn_line(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps(rec("a")) + "\nhello world\n")
    with pytest.raises(UserError, match=r"r.jsonl:2: not a JSON-lines results file"):
        results.load(p)


def test_a_file_that_is_not_results_is_never_truncated(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("my precious notes")  # one line, no newline, not a record
    with pytest.raises(UserError, match=r"notes.txt:1: not a JSON-lines results file"):
        results.load(p)
    with pytest.raises(UserError, match=r"notes.txt:1: not a JSON-lines results file"):
        results.append(p, rec("a"))
    assert p.read_text() == "my precious notes"


def test_torn_line_warning_is_one_cli_line(tiny_data, tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    results.append(path, rec("a"))
    with open(path, "ab") as fh:
        fh.write(b'{"run_id": "b", "sta')
    rc = cli.main(["leaderboard", str(path), "--out", str(tmp_path / "lb")])
    err = capsys.readouterr().err
    warn = [line for line in err.splitlines() if "torn last line" in line]
    assert len(warn) == 1 and warn[0].startswith(f"gradbench: warning: {path}:2: ignoring a torn last line")
    assert "Warning" not in err and "warnings.warn" not in err
    assert rc == 0


# --- one writer ---------------------------------------------------------------------------
def test_second_writer_is_refused_and_told_who_holds_the_lock(tmp_path):
    path = tmp_path / "r.jsonl"
    with lock.exclusive(path):
        note = json.loads(lock.lock_path(path).read_text())
        assert note["pid"] == os.getpid() and note["host"] == socket.gethostname()
        with pytest.raises(UserError) as e:
            with lock.exclusive(path):
                pass
    msg = str(e.value)
    assert msg.startswith(f"{path} is in use by gradbench run (pid {os.getpid()} on {socket.gethostname()} since ")
    assert msg.endswith("; wait for it or use another --results")
    with lock.exclusive(path):  # released: free again
        pass


def test_stale_lock_file_from_a_dead_process_does_not_block(tmp_path):
    path = tmp_path / "r.jsonl"
    lock.lock_path(path).write_text(json.dumps({"pid": 999999, "host": "gone", "since": "then"}))
    with lock.exclusive(path):
        assert json.loads(lock.lock_path(path).read_text())["pid"] == os.getpid()


def test_run_suite_refuses_a_locked_results_file_before_training(tiny_data, tmp_path):
    import fcntl

    path = tmp_path / "r.jsonl"
    fd = os.open(lock.lock_path(path), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(
            fd,
            json.dumps(
                {"pid": 4242, "host": "otherhost", "what": "gradbench run", "since": "2025-01-01T00:00:00Z"}
            ).encode(),
        )
        with pytest.raises(
            UserError,
            match=r"is in use by gradbench run \(pid 4242 on otherhost since "
            r"2025-01-01T00:00:00Z\); wait for it or use another --results",
        ):
            run_suite(small_suite(), path, tiny_data, log=lambda s: None)
    finally:
        os.close(fd)
    assert not path.exists()


SLOW_PLUGIN = '''
import pathlib, time
from gradbench.catalogue.grad_hooks import grad_hook
from gradbench.catalogue.strategies import strategy

MARK = pathlib.Path(__file__).with_name("in_fit")

@grad_hook("slow_marker")
def _slow(pause: float = 0.01):
    def hook(module, optimizer):
        MARK.touch()          # a step is being taken: we are inside trainer.fit
        time.sleep(pause)
    return hook

@strategy(family="test")
def slow(spec, pause: float = 0.01):
    """Sleeps a little every optimizer step (a test strategy)."""
    return spec.add_grad_hook("slow_marker", pause=pause)
'''


# --- kill -9, a torn line, the rerun, and a verify in a fresh process --------------------
def test_kill_9_then_rerun_completes_every_run_exactly_once(tiny_data, tmp_path):
    (tmp_path / "slow_plugin.py").write_text(SLOW_PLUGIN)  # ~0.4 s a run: still running when killed
    (tmp_path / "s.yaml").write_text(
        SUITE_YAML + "plugins: [slow_plugin.py]\nstrategies: [slow, slow+clip_value]\nseeds: 2\n"
    )
    path = tmp_path / "r.jsonl"
    args = ("run", tmp_path / "s.yaml", "--data", tiny_data, "--results", path)
    total = len(expand(load_suite(tmp_path / "s.yaml")))
    a = start_cli(*args, cwd=tmp_path)
    try:
        wait_for(lambda: n_lines(path) >= 1, a, what="the first record")
        os.kill(a.pid, signal.SIGKILL)
        a.wait(timeout=30)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    assert a.returncode == -signal.SIGKILL
    kept = n_lines(path)
    assert 1 <= kept < total
    assert json.loads(lock.lock_path(path).read_text())["pid"] == a.pid  # its lock file stays behind
    with open(path, "ab") as fh:  # as if the kill had cut a line mid-write
        fh.write(b'{"run_id": "0123456789ab", "status": "o')
    c = run_cli(*args, cwd=tmp_path)  # the stale lock file does not block
    assert c.returncode == 0, c.stderr
    assert f"({kept} already in {path}, {total - kept} to run; {total - kept} to train)" in c.stdout
    warn = [line for line in c.stderr.splitlines() if "torn last line" in line]
    assert len(warn) == 1 and warn[0].startswith(f"gradbench: warning: {path}:{kept + 1}: ignoring a torn")
    recs = results.load(path)
    assert len(recs) == total and len({r["run_id"] for r in recs}) == total
    assert all(r["status"] == "ok" for r in recs)
    # runs recorded by two processes re-run in a third, bit for bit
    v = run_cli(
        "verify", path, "--data", tiny_data, "--sample", "2", "--seed", "1", "--plugins", "slow_plugin.py", cwd=tmp_path
    )  # the plugin registers the hook the runs use
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout.count("\nok       ") == 2 and "verify: 2 of 2 runs reproduce" in v.stdout


def test_cli_second_writer_exits_2_naming_the_holder(tiny_data, tmp_path, capsys):
    """What a second `gradbench run` on the same results file gets (the holder here is this
    process's own flock, with the note a running gradbench writes)."""
    (tmp_path / "s.yaml").write_text(SUITE_YAML + "strategies: [baseline]\n")
    path = tmp_path / "r.jsonl"
    with lock.exclusive(path):
        rc = cli.main(["run", str(tmp_path / "s.yaml"), "--data", str(tiny_data), "--results", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(
        f"gradbench: error: {path} is in use by gradbench run (pid {os.getpid()} on {socket.gethostname()} since "
    )
    assert err.rstrip().endswith("; wait for it or use another --results")
    assert not path.exists()


# --- Ctrl-C ---------------------------------------------------------------------------------


def test_ctrl_c_mid_run_stops_cleanly_says_how_to_resume_and_rerun_completes(tiny_data, tmp_path):
    (tmp_path / "slow_plugin.py").write_text(SLOW_PLUGIN)
    (tmp_path / "s.yaml").write_text(
        SUITE_YAML + "plugins: [slow_plugin.py]\nstrategies: [slow, slow+clip_norm]\nseeds: 2\n"
    )
    path, mark = tmp_path / "r.jsonl", tmp_path / "in_fit"
    args = ("run", tmp_path / "s.yaml", "--data", tiny_data, "--results", path)
    a = start_cli(*args, cwd=tmp_path, preexec_fn=no_sigint_ignored)
    try:
        wait_for(lambda: n_lines(path) >= 1, a, what="the first record")
        mark.unlink()
        wait_for(mark.exists, a, what="the second run's training steps")  # inside trainer.fit now
        a.send_signal(signal.SIGINT)
        out, err = a.communicate(timeout=60)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    assert a.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert f"gradbench: interrupted (SIGINT); every finished run is saved in {path}" in err
    assert f"gradbench run {tmp_path / 's.yaml'} --data {tiny_data} --results {path}" in err
    recs = results.load(path)
    kept = len(recs)
    assert 1 <= kept < 4 and n_lines(path) == kept  # whole lines only; the interrupted run is not in
    assert all(r["status"] == "ok" and r["metrics"]["steps"] == 40 for r in recs)
    c = run_cli(*args, cwd=tmp_path)
    assert c.returncode == 0, c.stderr
    assert f"({kept} already in {path}, {4 - kept} to run; {4 - kept} to train)" in c.stdout
    recs = results.load(path)
    assert len(recs) == 4 and len({r["run_id"] for r in recs}) == 4
    assert all(r["status"] == "ok" and r["metrics"]["steps"] == 40 for r in recs)


@pytest.fixture
def ctrl_c_as_at_a_terminal():
    """Ctrl-C raises KeyboardInterrupt, whatever this process inherited: a shell starts a
    background job with SIGINT ignored, and an ignored signal stays ignored by design
    (interrupts.interruptible), which would make the tests below pass or fail by how pytest
    was started."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_lightning_turns_ctrl_c_into_sys_exit_and_the_guard_turns_it_back(tiny_data, ctrl_c_as_at_a_terminal):
    """Lightning 2.x catches KeyboardInterrupt in trainer.fit and calls sys.exit(1)
    (trainer/call.py); under interrupts.interruptible() that becomes Interrupted."""
    import lightning.pytorch as L

    class CtrlC(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 5:
                os.kill(os.getpid(), signal.SIGINT)

    spec = expand(small_suite(["baseline"]))[0]
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit):  # what Lightning does on its own
        run_one(spec, tiny_data, callbacks=(CtrlC(),))
    with pytest.raises(interrupts.Interrupted) as e:
        with interrupts.interruptible():
            run_one(spec, tiny_data, callbacks=(CtrlC(),))
    assert e.value.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_is_an_interrupt_too(capsys):
    """Lightning's loops turn SIGTERM into SIGTERMException, a SystemExit with code 0: a
    suite stopped by a scheduler would look successful. Here it is an interrupt, exit 143."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(interrupts.Interrupted) as e:
        with interrupts.interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert e.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(interrupts.Interrupted) as e:
        with interrupts.interruptible():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except KeyboardInterrupt:
                raise SystemExit(0) from None  # what Lightning does with it inside fit
    assert e.value.signum == signal.SIGTERM


def test_a_plain_system_exit_is_left_alone():
    with pytest.raises(SystemExit):
        with interrupts.interruptible():
            raise SystemExit(3)


def test_a_signal_while_a_record_is_written_waits_until_it_is_on_disk(tmp_path, monkeypatch, ctrl_c_as_at_a_terminal):
    path = tmp_path / "r.jsonl"
    real_fsync = os.fsync

    def fsync_then_ctrl_c(fd):
        os.kill(os.getpid(), signal.SIGINT)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_ctrl_c)
    with pytest.raises(interrupts.Interrupted):
        with interrupts.interruptible() as guard, guard.deferred():
            results.append(path, rec("a", reason="x" * 1000))
    monkeypatch.undo()
    assert [r["run_id"] for r in results.load(path)] == ["a"]


def test_cli_interrupt_message_names_the_resume_command(tmp_path, monkeypatch, capsys):
    import gradbench.execution.suite_runner

    def interrupted(*a, **kw):
        raise interrupts.Interrupted(signal.SIGINT)

    monkeypatch.setattr(gradbench.execution.suite_runner, "run_suite", interrupted)
    (tmp_path / "s.yaml").write_text(SUITE_YAML + "strategies: [baseline]\n")
    argv = ["run", str(tmp_path / "s.yaml"), "--results", str(tmp_path / "my results.jsonl")]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "gradbench: to resume, run the same command again" in err
    assert f"gradbench run {tmp_path / 's.yaml'} --results '{tmp_path / 'my results.jsonl'}'" in err


# --- a run that raises ----------------------------------------------------------------------
RAISING_PLUGIN = '''
from gradbench.catalogue.grad_hooks import grad_hook
from gradbench.catalogue.strategies import strategy

@grad_hook("explode")
def _explode():
    def hook(module, optimizer):
        if module.trainer.global_step >= 3:
            raise RuntimeError("gradient hook exploded on purpose")
    return hook

@strategy(family="test")
def exploding(spec):
    """Raises in its gradient hook at step 3 (a test strategy)."""
    return spec.add_grad_hook("explode")
'''


def test_a_run_that_raises_is_recorded_as_error_and_the_suite_goes_on(tiny_data, tmp_path):
    (tmp_path / "boom.py").write_text(RAISING_PLUGIN)
    (tmp_path / "s.yaml").write_text(SUITE_YAML + "plugins: [boom.py]\nstrategies: [baseline, exploding, clip_norm]\n")
    path = tmp_path / "r.jsonl"
    r = run_cli("run", tmp_path / "s.yaml", "--data", tiny_data, "--results", path, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    by = {rec["strategy"]["label"]: rec for rec in results.load(path)}
    assert [by[s]["status"] for s in ("baseline", "exploding", "clip_norm")] == ["ok", "error", "ok"]
    assert by["exploding"]["reason"] == "RuntimeError: gradient hook exploded on purpose"
    assert "1 of 3 runs failed with an error" in r.stderr
    assert (
        f"  error: mnist_mlp exploding seed 0 [{by['exploding']['run_id']}]: "
        "RuntimeError: gradient hook exploded on purpose"
    ) in r.stderr
    assert (tmp_path / "r_runs" / by["exploding"]["run_id"] / "error.txt").exists()
    assert "done: 3 runs (2 ok, 1 error)" in r.stdout


# --- bad input ------------------------------------------------------------------------------
def truncated_mnist(tmp_path: Path, tiny_data: Path) -> Path:
    import shutil

    root = tmp_path / "data_cut"
    shutil.copytree(tiny_data, root)
    f = root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-200])
    return f


def test_cli_bad_input_exits_2_with_one_clear_line(tiny_data, tmp_path):
    """Through the real CLI, side by side to keep it quick (test_runner.py runs malformed YAML,
    an unknown strategy, empty seeds and a missing data directory this way; the rest of the
    cases go through cli.main in-process below)."""
    cut = truncated_mnist(tmp_path, tiny_data)
    cases = {
        "truncated_data": (SUITE_YAML + "strategies: [baseline]\n", {"data": cut.parents[2]}, [str(cut)]),
        "results_not_jsonl": (
            SUITE_YAML + "strategies: [baseline]\n",
            {"results": "bad"},
            [f"{tmp_path / 'bad.jsonl'}:2: not a JSON-lines results file"],
        ),
    }
    (tmp_path / "bad.jsonl").write_text(json.dumps(rec("x")) + '\nthis is not json\n{"run_id": "y"}\n')
    procs = {}
    for name, (yaml_text, opts, _) in cases.items():
        (tmp_path / f"{name}.yaml").write_text(yaml_text)
        results_file = tmp_path / ("bad.jsonl" if opts.get("results") else f"{name}.jsonl")
        procs[name] = start_cli(
            "run",
            tmp_path / f"{name}.yaml",
            "--data",
            opts.get("data", tiny_data),
            "--results",
            results_file,
            cwd=tmp_path,
        )
    procs["leaderboard"] = start_cli("leaderboard", tmp_path / "bad.jsonl", "--out", tmp_path / "lb", cwd=tmp_path)
    expected = {name: want for name, (_, _, want) in cases.items()}
    expected["leaderboard"] = [f"{tmp_path / 'bad.jsonl'}:2: not a JSON-lines results file"]
    for name, p in procs.items():
        out, err = p.communicate(timeout=120)
        one_line_error(subprocess.CompletedProcess(p.args, p.returncode, out, err), *expected[name])
    assert (tmp_path / "bad.jsonl").read_text().count("\n") == 3  # untouched
    assert not (tmp_path / "lb").exists()


@pytest.mark.parametrize(
    "yaml_text, expected",
    [
        (
            "tasks: [mnist_mlp]\nstrategies: [baseline]\nmax_steps: ten\n",
            "max_steps: expected a positive integer, got 'ten'",
        ),
        (
            "tasks: [mnist_mlp]\nstrategies: [baseline]\neval_every: -5\n",
            "eval_every: must be a positive integer, got -5",
        ),
        ("tasks: [mnist_mlp]\nstrategies: [baseline]\nseeds: []\n", "seeds: must not be empty"),
        ("tasks: [mnist_mlp]\nstrategies: [baseline, clip_norm, baseline]\n", "duplicate strategy 'baseline'"),
        ("tasks: [mnist_mlp]\nstrategies: [baseline]\nsedes: 3\n", "unknown key 'sedes' (did you mean 'seeds'"),
        ("tasks: [mnist_mlp]\nstrategies: [clip_nrom]\n", "unknown strategy 'clip_nrom' (did you mean 'clip_norm'"),
        (
            "tasks: [mnist_mpl]\nstrategies: [baseline]\n",
            "unknown task 'mnist_mpl' (did you mean 'mnist_mlp'?); valid: ",
        ),
        ("tasks: [mnist_mlp]\nstrategies: [baseline\n", "malformed YAML"),
        (
            "tasks: [mnist_mlp]\nstrategies: [baseline]\nplugins: [missing_plugin.py]\n",
            "plugins: file 'missing_plugin.py' not found",
        ),
        (
            "tasks: [mnist_mlp]\nstrategies: [baseline]\nplugins: [broken.py]\n",
            "plugins: plugin file '{tmp}/broken.py' failed to import: ModuleNotFoundError: No module named 'nothing_here_xyz'",
        ),
        (
            "tasks: [mnist_mlp]\nstrategies: [baseline]\nstress: {lr_mult: [0]}\n",
            "stress.lr_mult[0]: must be a positive number, got 0",
        ),
        (
            "tasks: {mnist_mlp: {max_steps: -3}}\nstrategies: [baseline]\n",
            "tasks.mnist_mlp.max_steps: must be a positive integer",
        ),
    ],
)
def test_cli_bad_config_in_process(tmp_path, capsys, yaml_text, expected):
    (tmp_path / "s.yaml").write_text(yaml_text)
    (tmp_path / "broken.py").write_text("import nothing_here_xyz\n")
    expected = expected.replace("{tmp}", str(tmp_path))
    rc = cli.main(["run", str(tmp_path / "s.yaml"), "--data", str(tmp_path), "--results", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("gradbench: error: ")
    assert expected in err
    assert not (tmp_path / "r.jsonl").exists()


def test_cli_missing_data_directory(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("tasks: [mnist_mlp]\nstrategies: [baseline]\n")
    rc = cli.main(
        ["run", str(tmp_path / "s.yaml"), "--data", str(tmp_path / "nowhere"), "--results", str(tmp_path / "r.jsonl")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and str(tmp_path / "nowhere") in err


def test_malformed_yaml_names_the_line_in_the_cli(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text("tasks: [mnist_mlp]\nstrategies: [baseline\nseeds: [0]\n")
    assert cli.main(["run", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 's.yaml'}:" in err and "malformed YAML" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "raw, message",
    [
        # wrong types and ranges not covered in test_config.py
        ({"seeds": [0, "one"]}, "seeds[1]: expected an integer, got 'one'"),
        ({"seeds": -2}, "seeds: a count must be positive, got -2"),
        ({"seeds": True}, "seeds: expected an integer or a list, got True"),
        ({"max_steps": "40"}, "max_steps: expected a positive integer, got '40'"),
        ({"eval_every": -1}, "eval_every: must be a positive integer, got -1"),
        ({"eval_every": 2.5}, "eval_every: expected a positive integer"),
        ({"threads": 0}, "threads: must be a positive integer"),
        ({"name": 7}, "name: expected a string"),
        ({"stress": {"lr_mult": []}}, "stress.lr_mult: must not be empty"),
        ({"stress": {"lr_mult": "high"}}, "stress.lr_mult: expected a list"),
        ({"stress": {"lr_mult": [1, 1]}}, "stress.lr_mult: duplicate values"),
        (
            {"tasks": {"mnist_mlp": {"lr_mult": [-0.5]}}},
            "tasks.mnist_mlp.lr_mult[0]: must be a positive number, got -0.5",
        ),
        ({"tasks": {"mnist_mlp": {"max_steps": 0}}}, "tasks.mnist_mlp.max_steps: must be a positive integer, got 0"),
        ({"tasks": {"mnist_mlp": {"eval_every": -10}}}, "tasks.mnist_mlp.eval_every: must be a positive integer"),
        ({"tasks": {"mnist_mlp": {"model": [2]}}}, "tasks.mnist_mlp.model: expected a mapping"),
        ({"tasks": {"mnist_mpl": {}}}, "unknown task 'mnist_mpl' (did you mean 'mnist_mlp'?)"),
        ({"tasks": ["mnist_mlp", "mnist_mlp"]}, "tasks: listed twice: mnist_mlp"),
        ({"tasks": "mnist_mlp"}, "tasks: expected a list or a mapping"),
        (
            {"strategies": [{"clip_norm": {"max_norm": 0.5}}, {"clip_norm": {"max_norm": 0.5}}]},
            "duplicate strategy 'clip_norm(max_norm=0.5)'",
        ),
        ({"strategies": "baseline"}, "strategies: expected a list"),
        ({"strategies": [3]}, "strategies[0]: expected a string or a mapping, got 3"),
        ({"monitor": {"loss_blowup": -1}}, "monitor.loss_blowup: must be >= 0"),
        ({"plugins": "x.py"}, "plugins: expected a list"),
    ],
)
def test_more_bad_input_at_parse_level(raw, message):
    with pytest.raises(UserError) as e:
        parse_suite({"tasks": ["mnist_mlp"], "strategies": ["baseline"], **raw})
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_plugin_that_raises_on_import_names_file_and_error(tmp_path):
    (tmp_path / "bad_plugin.py").write_text("x = 1 / 0\n")
    with pytest.raises(UserError, match=r"plugin file '.*bad_plugin.py' raised on import: ZeroDivisionError"):
        parse_suite(
            {"tasks": ["mnist_mlp"], "strategies": ["baseline"], "plugins": ["bad_plugin.py"]}, base_dir=tmp_path
        )


def test_truncated_data_file_is_named(tiny_data, tmp_path):
    from gradbench.training.data import load_dataset

    cut = truncated_mnist(tmp_path, tiny_data)
    with pytest.raises(UserError) as e:
        load_dataset("mnist", cut.parents[2])
    assert str(cut) in str(e.value) and "\n" not in str(e.value)


# --- gradbench verify -------------------------------------------------------------------------
def test_verify_reproduces_a_suite_and_names_a_tampered_field(tiny_data, tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    run_suite(small_suite(["baseline", "clip_norm"]), path, tiny_data, log=lambda s: None)
    # (test_kill_9_... verifies in a fresh process too)
    assert cli.main(["verify", str(path), "--data", str(tiny_data)]) == 0
    out = capsys.readouterr().out
    recs = results.load(path)
    for rec in recs:
        assert f"ok       {rec['run_id']} mnist_mlp {rec['strategy']['label']} seed 0 lr x1" in out
    assert "verify: 2 of 2 runs reproduce" in out

    lines = path.read_text().splitlines()
    tampered = json.loads(lines[1])
    real = tampered["metrics"]["test"]
    tampered["metrics"]["test"] = real + 0.01
    # recorded on another kind of CPU, by a gradbench that did not yet keep the CPU's name
    cap = tampered["env"]["cpu_capability"]
    tampered["env"]["cpu_capability"] = "AVX2" if cap != "AVX2" else "AVX512"
    del tampered["env"]["cpu"]
    path.write_text(lines[0] + "\n" + json.dumps(tampered) + "\n")
    assert cli.main(["verify", str(path), "--data", str(tiny_data)]) == 1
    out = capsys.readouterr().out
    assert f"ok       {recs[0]['run_id']}" in out
    line = next(line for line in out.splitlines() if line.startswith("DIFFERS"))
    assert line.startswith(f"DIFFERS  {tampered['run_id']} mnist_mlp clip_norm seed 0")
    assert f"metrics.test: recorded {real + 0.01!r}, now {real!r}" in line
    assert f"recorded with cpu (not recorded), now {recs[1]['env']['cpu']}" in line
    assert f"recorded with cpu_capability {tampered['env']['cpu_capability']}, now {cap}" in line
    assert "verify: 1 of 2 runs reproduce their recorded results; 1 differ" in out

    # --same-cpu: only the run recorded on this kind of CPU (the other's CPU is unknown)
    assert cli.main(["verify", str(path), "--data", str(tiny_data), "--same-cpu"]) == 0
    out = capsys.readouterr().out
    assert f"ok       {recs[0]['run_id']}" in out and tampered["run_id"] not in out
    assert "re-running 1 of 2 runs (drawn from those recorded on this CPU kind," in out
    assert cli.main(["verify", str(path), "--data", str(tiny_data), "--commit", "0000000"]) == 2
    assert "no run was recorded at git commit 0000000" in capsys.readouterr().err

    # --sample draws the same runs for the same seed, and only those are re-run
    assert cli.main(["verify", str(path), "--data", str(tiny_data), "--sample", "1", "--seed", "3"]) in (0, 1)
    first = [x for x in capsys.readouterr().out.splitlines() if x.startswith(("ok", "DIFFERS"))]
    assert len(first) == 1


def test_verify_selection_and_comparison_units():
    from fakes import make_record

    from gradbench.core.record import parse_record
    from gradbench.execution import verify

    def typed(r):
        return parse_record(json.loads(json.dumps(r)))

    raw = [make_record(seed=i, run_id=str(i), status="skipped" if i == 2 else "ok") for i in range(10)]
    recs = [typed(r) for r in raw]
    assert [r.run_id for r in verify.select(recs)] == [str(i) for i in range(10) if i != 2]
    a, b = verify.select(recs, 3, seed=1), verify.select(recs, 3, seed=1)
    assert a == b and len(a) == 3 and all(r.status == "ok" for r in a)
    assert [r.run_id for r in a] == sorted((r.run_id for r in a), key=int)  # file order
    # one CPU kind's or one commit's part of a long suite
    for i, r in enumerate(raw):
        r["env"] = {"cpu": "AMD EPYC" if i < 5 else "Intel Xeon", "cpu_capability": "AVX512", "git_commit": f"c{i % 2}"}
    recs = [typed(r) for r in raw]
    assert [r.run_id for r in verify.select(recs, cpu="Intel Xeon (AVX512)")] == ["5", "6", "7", "8", "9"]
    assert [r.run_id for r in verify.select(recs, cpu="AMD EPYC (AVX512)", commit="c1")] == ["1", "3"]
    assert len(verify.select(recs, 2, cpu="AMD EPYC (AVX512)")) == 2
    with pytest.raises(UserError, match=r"on the CPU kind Intel Xeon \(AVX2\); .*AMD EPYC \(AVX512\) \(4\)"):
        verify.select(recs, cpu="Intel Xeon (AVX2)")
    with pytest.raises(UserError, match=r"at git commit c2; the runs were recorded at git commit: c0 \(4\), c1 \(5\)"):
        verify.select(recs, commit="c2")
    base = make_record(test=0.5, steps=20)
    base["metrics"]["val_curve"] = [[10, 0.25], [20, 0.5]]
    base["stability"].update(grad_norm_max=3.0, grad_norm_curve=[[0, 1.0]])
    assert verify.compare(typed(base), typed(base)) == []
    now = json.loads(json.dumps(base))
    now["metrics"]["val_curve"][1][1] = 0.75
    now["stability"]["grad_norm_max"] = None  # a non-finite norm, as the file holds it
    now["status"] = "diverged"
    diffs = verify.compare(typed(base), typed(now))
    assert ("status", "ok", "diverged") in diffs
    assert ("metrics.val_curve[1][1]", 0.5, 0.75) in diffs
    assert ("stability.grad_norm_max", 3.0, None) in diffs
    # a task whose target moved since: the re-run's steps to target are read at the recorded one
    old = json.loads(json.dumps(base))
    old["metrics"].update(target=0.25, steps_to_target=10)
    moved = json.loads(json.dumps(old))
    moved["metrics"].update(target=0.5, steps_to_target=20)
    assert verify.compare(typed(old), typed(moved)) == []
    moved["metrics"]["val_curve"][0][1] = 0.2  # but a curve that trained differently still shows
    assert ("metrics.val_curve[0][1]", 0.25, 0.2) in verify.compare(typed(old), typed(moved))


def test_verify_rejects_bad_input(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert cli.main(["verify", str(bad)]) == 2
    assert f"{bad}:1: not a JSON-lines results file" in capsys.readouterr().err
    good = tmp_path / "r.jsonl"
    r = rec("a")
    r["spec"] = {"task": "mnist_mlp"}
    results.append(good, r)
    assert cli.main(["verify", str(good), "--sample", "0"]) == 2
    assert "--sample: must be a positive integer" in capsys.readouterr().err
    assert cli.main(["verify", str(good)]) == 2
    err = capsys.readouterr().err
    assert "run a: its stored spec cannot be read" in err and err.count("\n") == 1
    spec = expand(small_suite(["baseline"]))[0].add_grad_hook("hook_from_a_plugin")
    hooked = tmp_path / "hooked.jsonl"
    r = rec(spec.run_id)
    r["spec"] = spec.to_dict()
    results.append(hooked, r)
    assert cli.main(["verify", str(hooked)]) == 2
    err = capsys.readouterr().err
    assert "uses the gradient hook 'hook_from_a_plugin'" in err and "--plugins" in err


def test_verify_help_explains_gpu_differences(capsys):
    with pytest.raises(SystemExit):
        cli.main(["verify", "--help"])
    out = capsys.readouterr().out
    assert "cuDNN" in out and "TF32" in out and "atomic" in out


FLAKY_PLUGIN = '''
from pathlib import Path

from gradbench.catalogue.grad_hooks import grad_hook
from gradbench.catalogue.strategies import strategy


@strategy(family="clipping", slot="flaky")
def flaky(spec, marker: str = ""):
    """Fails while its marker file exists (a transient failure, test plugin)."""
    return spec.add_grad_hook("flaky", marker=marker)


@grad_hook("flaky")
def make_flaky(marker: str = ""):
    def hook(module, optimizer):
        if Path(marker).exists():
            raise MemoryError("out of memory (transient)")
    return hook
'''


def test_retry_errors_turns_a_transient_error_into_an_ok_record(tiny_data, tmp_path, capsys):
    marker = tmp_path / "fail-now"
    marker.touch()
    (tmp_path / "flaky_plugin.py").write_text(FLAKY_PLUGIN)
    (tmp_path / "s.yaml").write_text(
        SUITE_YAML + f"plugins: [flaky_plugin.py]\nstrategies: [baseline, {{flaky: {{marker: '{marker}'}}}}]\n"
    )
    path = tmp_path / "r.jsonl"
    args = ["run", str(tmp_path / "s.yaml"), "--data", str(tiny_data), "--results", str(path)]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "MemoryError: out of memory (transient)" in err and "--retry-errors" in err
    marker.unlink()  # the transient cause is gone
    assert cli.main(args) == 1  # without the flag the error stays recorded, and says how to retry
    out, err = capsys.readouterr()
    assert "0 to run" in out and err.rstrip().endswith("--retry-errors")
    assert cli.main([*args, "--retry-errors"]) == 0
    out = capsys.readouterr().out
    assert "1 to run, again: 1 that failed with an error (--retry-errors)" in out
    records = results.load(path)
    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    assert {r["status"] for r in results.latest_by_run(records)} == {"ok"}  # the later record wins


def test_without_file_locks_the_suite_warns_instead_of_running_unlocked_silently(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_fcntl(name, *a, **kw):
        if name == "fcntl":
            raise ImportError("no fcntl here")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_fcntl)
    with pytest.warns(UserWarning, match="no file locks.*not locked"):
        with lock.exclusive(tmp_path / "r.jsonl"):
            pass


def test_verify_statistical_across_thread_counts_and_an_altered_metric(tiny_data, tmp_path, capsys):
    """Records made at 1 thread, re-run at 2: consistent with their seeds, the difference in
    threads named; a record whose metric was altered is inconsistent."""
    path = tmp_path / "r.jsonl"
    run_suite(small_suite(["baseline", "clip_norm"], seeds=3), path, tiny_data, log=lambda s: None)
    args = ["verify", str(path), "--data", str(tiny_data), "--statistical", "--threads", "2", "--sample", "3"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "statistical: a re-run is another draw" in out
    assert out.count("consistent   ") == 3 and "recorded with threads 1, now 2" in out
    assert "verify --statistical: 3 of 3 runs are consistent with their recorded seeds" in out

    records = results.load(path)
    altered = next(r for r in records if r["status"] == "ok")
    altered["metrics"]["test"] = altered["metrics"]["test"] - 0.5
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert cli.main([*args[:-2]]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("INCONSISTENT"))
    assert altered["run_id"] in line and "recorded" in line and "tol" in line
    assert "are not" in out


def test_a_last_record_without_its_newline_is_kept_when_the_next_is_appended(tmp_path):
    """Editors and json.dump leave the last newline off: that record is finished and stays,
    whether it is the file's only line or follows others; the next record starts a line."""
    for n in (1, 3):
        path = tmp_path / f"r{n}.jsonl"
        lines = [json.dumps(rec(f"r{i}")) for i in range(n)]
        path.write_text("\n".join(lines))  # no final newline
        results.append(path, rec("next"))
        assert [r["run_id"] for r in results.load(path)] == [f"r{i}" for i in range(n)] + ["next"]
        assert path.read_text().splitlines()[:n] == lines  # every earlier record intact, byte for byte
        assert not results.torn_path(path).exists()


def test_a_torn_last_line_is_set_aside_never_deleted(tmp_path):
    path = tmp_path / "r.jsonl"
    results.append(path, rec("a"))
    fragment = '{"run_id": "b", "sta'
    with open(path, "a") as fh:
        fh.write(fragment)
    with pytest.warns(results.TornLineWarning, match="moved the cut-off fragment"):
        results.append(path, rec("c"))
    assert [r["run_id"] for r in results.load(path)] == ["a", "c"]
    assert results.torn_path(path).read_text() == fragment + "\n"


def test_a_results_path_that_is_not_a_file_is_one_line(tmp_path, capsys):
    """/dev/full reads zeros forever: reading it as results ran out of memory."""
    for path in ("/dev/full", "/dev/zero"):
        with pytest.raises(UserError, match="is not a regular file"):
            results.load(path)
        with pytest.raises(UserError, match="is not a regular file"):
            results.append(path, rec("a"))
        with pytest.raises(UserError, match="is not a regular file"), lock.exclusive(path):
            pass
        assert not lock.lock_path(Path(path)).exists()  # no lock file left beside a device


def test_a_plugin_that_exits_at_import_is_an_error_not_a_silent_exit(tmp_path, capsys):
    (tmp_path / "bye.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "s.yaml").write_text("tasks: [adding_rnn]\nstrategies: [baseline]\nplugins: [bye.py]\n")
    assert cli.main(["status", str(tmp_path / "s.yaml"), "--results", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "called sys.exit(0) on import" in err


def test_a_full_disk_names_the_file_and_how_to_resume(tmp_path, capsys, monkeypatch):
    import errno

    from gradbench.execution import suite_runner

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs" / "steps.csv"))

    monkeypatch.setattr(suite_runner, "run_suite", full)
    (tmp_path / "s.yaml").write_text("tasks: [adding_rnn]\nstrategies: [baseline]\n")
    results_path = tmp_path / "r.jsonl"
    assert cli.main(["run", str(tmp_path / "s.yaml"), "--results", str(results_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "steps.csv: No space left on device" in err
    assert f"every finished run is saved in {results_path}" in err and "run the same command again" in err


def test_same_cpu_ignores_the_clock_a_model_name_ends_with():
    from gradbench.analysis.compare import cpu_kind
    from gradbench.core.record import Env

    a = Env(cpu="Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", cpu_capability="AVX2")
    b = Env(cpu="Intel(R) Xeon(R) CPU E5-2680 v2", cpu_capability="AVX2")
    assert cpu_kind(a) == cpu_kind(b) == "Intel(R) Xeon(R) CPU E5-2680 v2 (AVX2)"
    assert cpu_kind(Env(cpu="AMD EPYC", cpu_capability="AVX512")) == "AMD EPYC (AVX512)"
