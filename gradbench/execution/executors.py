"""Where runs execute: in this process, in a pool of local worker processes (CPU cores or one
per GPU), or as Ray tasks on a cluster. Every executor yields (spec, record) as runs finish;
the caller is the single writer of the results file, so no line is ever torn or duplicated
by concurrency, whatever the number of workers.

Records do not depend on the executor: a run's result is a function of its spec and its
thread count (CPU runs are bit-reproducible for a fixed seed and fixed torch threads), and
every executor gives each run the same `threads` when the suite fixes it.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import warnings
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from .._moved import MovedWarning
from ..catalogue import plugins
from ..catalogue.tasks import priced_ms
from ..core.errors import UserError, one_line_error, one_line_warnings, warn
from ..core.extras import require
from ..core.spec import RunSpec
from ..training.run import error_record, run_one
from .ddp import run_distributed, world_size


@dataclass(frozen=True)
class Job:
    """What a worker needs besides the spec (plain data: it travels to other processes)."""

    data_root: str
    runs_dir: str | None  # per-run artifacts go to runs_dir/<run_id>
    results_dir: str  # series paths in records are relative to it
    command: str | None = None
    threads: int | None = None  # torch threads per run
    wandb: dict | None = None  # tracking settings (see tracking.py), or None
    plugins: tuple[str, ...] = ()  # the suite's plugins, resolved: every worker loads them


def execute(spec_dict: dict, job: Job) -> dict:
    """Run one spec in this process (the entry point of every executor's workers); a warning on
    the way is one line, in a worker as in the CLI."""
    with one_line_warnings():
        # the suite's process already said where a plugin's old imports moved: not once per worker
        warnings.filterwarnings("ignore", category=MovedWarning)
        return _execute(spec_dict, job)


def _execute(spec_dict: dict, job: Job) -> dict:
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    load_plugins(job.plugins)
    spec = RunSpec.from_dict(spec_dict)
    run_dir = Path(job.runs_dir) / spec.run_id if job.runs_dir else None
    series_rel = os.path.relpath(run_dir, job.results_dir) if run_dir else None
    if world_size(spec) > 1:  # one run on several devices: torchrun starts its ranks
        return run_distributed(spec, Path(job.data_root), run_dir, job.command, series_rel, job.threads, job.plugins)
    tracker = None
    if job.wandb:
        from .tracking import RunTracker

        tracker = _tracked(lambda: _started(RunTracker(job.wandb, spec)), spec)
    record = run_one(
        spec,
        Path(job.data_root),
        run_dir,
        job.command,
        series_rel=series_rel,
        logger=tracker.logger if tracker else None,
    )
    if tracker:
        _tracked(lambda: tracker.finish(record, run_dir), spec)
    return record


def track_copy(spec: RunSpec, record: dict, job: Job) -> None:
    """A copy (the same run as another arm's, never trained twice: suite_runner) as a W&B run
    of its own, so the project shows every arm: its history is its source's series."""
    if not job.wandb:
        return
    from .tracking import RunTracker

    series = Path(job.results_dir) / record["series"] if record.get("series") and job.results_dir else None
    tracker = _tracked(lambda: RunTracker(job.wandb, spec), spec)
    if tracker:
        _tracked(lambda: tracker.finish(record, series), spec)


def _started(tracker):
    """The tracker with its W&B run started now (Lightning would start it inside training,
    where a failure would make the run an error)."""
    tracker.logger.experiment  # noqa: B018 - the property starts the run
    return tracker


def _tracked(step, spec: RunSpec):
    """A W&B step of one run; a failure is one warning line and the run goes on untracked:
    tracking copies what the record already holds, so it never costs a result."""
    try:
        return step()
    except Exception as e:  # noqa: BLE001
        why = one_line_error(e, 300)
        warn(f"W&B tracking failed for run {spec.run_id} ({why})")
        return None


def load_plugins(refs) -> None:
    """What a suite's plugins and installed entry points register, in this process (a pool
    worker, a Ray task on any node, a torchrun rank): loaded once per process."""
    plugins.load_entry_points()
    plugins.load(list(refs))


class InProcess:
    """Runs one after another in this process: datasets load once and are shared."""

    def describe(self) -> str:
        return "in-process"

    def map(self, specs: list[RunSpec], job: Job) -> Iterator[tuple[RunSpec, dict]]:
        for spec in specs:
            yield spec, execute(spec.to_dict(), job)


def _init_worker(devices, threads: int) -> None:
    """Pin this worker to one GPU (before CUDA initializes) and to its share of the cores."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices.get()
    import torch

    torch.set_num_threads(threads)


class LocalPool:
    """N worker processes on this machine. On CPU the cores are split between workers; with
    `devices`, one worker per GPU (CUDA_VISIBLE_DEVICES set per worker), times
    `runs_per_device` to pack several small runs on one GPU. Each worker keeps its datasets
    loaded between runs."""

    def __init__(
        self, workers: int = 1, devices: list[str] | None = None, runs_per_device: int = 1, threads: int | None = None
    ):
        if devices:
            workers = len(devices) * runs_per_device
        if workers < 1 or runs_per_device < 1:
            raise UserError("--workers and --runs-per-device must be at least 1")
        self.workers, self.devices, self.runs_per_device = workers, devices, runs_per_device
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)

    def describe(self) -> str:
        where = f"GPUs {','.join(self.devices)} x {self.runs_per_device}" if self.devices else "CPU"
        threads = f"{self.threads} thread" + ("s" if self.threads != 1 else "")
        return f"{self.workers} local workers ({where}, {threads} each)"

    def device_slots(self) -> list[str]:
        """The GPU each worker takes, in order: every device runs_per_device times."""
        return [dev for dev in (self.devices or []) for _ in range(self.runs_per_device)]

    def map(self, specs: list[RunSpec], job: Job) -> Iterator[tuple[RunSpec, dict]]:
        """At most one run per worker in flight, so that when a worker process dies (a segfault,
        the OOM killer, a plugin that kills it) the runs it could have been running are known:
        each of them runs again alone, in a process of its own; the one that kills that process
        too is recorded as an error naming the signal or exit code, and the pool is rebuilt."""
        ctx = mp.get_context("spawn")  # a clean interpreter: no inherited torch threads or CUDA state
        job = Job(**{**job.__dict__, "threads": job.threads or self.threads})
        todo = longest_first(specs)
        pool, in_flight = self._pool(ctx, job), {}
        try:
            while todo or in_flight:
                broken = False
                while todo and len(in_flight) < self.workers and not broken:
                    try:
                        in_flight[pool.submit(execute, todo[0].to_dict(), job)] = todo[0]
                        todo.pop(0)
                    except BrokenProcessPool:  # a worker died since the last wait
                        broken = True
                if not broken:
                    done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                    broken = any(isinstance(f.exception(), BrokenProcessPool) for f in done)
                if not broken:
                    for fut in done:
                        spec = in_flight.pop(fut)
                        yield spec, _result(fut, spec, job)
                    continue
                pool.shutdown(wait=True, cancel_futures=True)  # a worker died: the pool is broken
                suspects = []
                for fut, spec in in_flight.items():
                    if fut.cancelled():  # never started: back in the queue for the new pool
                        todo.insert(0, spec)
                    elif not isinstance(fut.exception(), BrokenProcessPool):
                        yield spec, _result(fut, spec, job)  # finished before the pool broke
                    else:
                        suspects.append(spec)
                in_flight.clear()
                for spec in suspects:
                    yield spec, self._alone(ctx, spec, job)
                pool = self._pool(ctx, job)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _pool(self, ctx, job: Job) -> cf.ProcessPoolExecutor:
        queue = None
        if self.devices:  # each new pool's workers take the devices afresh
            queue = ctx.Manager().Queue()
            for dev in self.device_slots():
                queue.put(dev)
        return cf.ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(queue, job.threads)
        )

    def _alone(self, ctx, spec: RunSpec, job: Job) -> dict:
        """The run in a process of its own: its record, or an error record when the process dies
        (with its signal or exit code) or raises (with the exception)."""
        receive, send = ctx.Pipe(duplex=False)
        device = self.device_slots()[0] if self.devices else None
        proc = ctx.Process(target=_execute_and_send, args=(spec.to_dict(), job, send, device))
        proc.start()
        send.close()
        try:
            try:
                kind, value = receive.recv()
            except EOFError:  # it died before sending
                kind, value = None, None
            proc.join()
        finally:
            receive.close()
            if proc.is_alive():  # interrupted while it ran: it goes with us
                proc.terminate()
                proc.join()
        if kind == "record":
            return value
        if kind == "raised":
            return error_record(spec, job.command, value)
        return error_record(spec, job.command, f"the worker process running it died ({_death(proc.exitcode)})")


def _result(fut: cf.Future, spec: RunSpec, job: Job) -> dict:
    """A finished run's record; an exception raised outside run_one in the worker (a plugin
    that fails to import there, say) is an error record too, never the end of the suite."""
    try:
        return fut.result()
    except Exception as e:  # noqa: BLE001
        return error_record(spec, job.command, one_line_error(e))


def _execute_and_send(spec_dict: dict, job: Job, send, device: str | None) -> None:
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    import torch

    torch.set_num_threads(job.threads or 1)
    try:
        send.send(("record", execute(spec_dict, job)))
    except Exception as e:  # noqa: BLE001
        send.send(("raised", one_line_error(e)))


def _death(exitcode: int | None) -> str:
    """How a process ended: 'killed by SIGKILL' or 'exit code 3'."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class RayExecutor:
    """Each run a Ray task with its CPU (and GPU) resources; the driver writes the results.
    Without an address it starts a local Ray; with one (`ray://host:10001` or `auto`) it joins
    that cluster, whose nodes must see the same data root (and runs dir, for the series)."""

    def __init__(self, address: str | None = None, threads: int | None = None, gpus_per_run: float = 0.0):
        require("ray", "--executor ray")
        self.address, self.gpus_per_run = address, gpus_per_run
        self.threads = threads or 1
        self.local_data = address is None  # a cluster's nodes read their own data root
        self.workers = os.cpu_count() // self.threads if address is None else 1

    def describe(self) -> str:
        return f"Ray ({self.address or 'local'}, {self.threads} CPU per run)"

    def map(self, specs: list[RunSpec], job: Job) -> Iterator[tuple[RunSpec, dict]]:
        import ray

        started_here = not ray.is_initialized()
        if started_here:
            kwargs = {"address": self.address} if self.address else {"num_cpus": os.cpu_count()}
            ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR", **kwargs)
        job = Job(**{**job.__dict__, "threads": job.threads or self.threads})
        # max_retries=0: a run whose worker dies is one error record, not retried three times
        remote = ray.remote(num_cpus=job.threads, num_gpus=self.gpus_per_run, max_retries=0)(execute)
        pending = {remote.remote(s.to_dict(), job): s for s in longest_first(specs)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                spec = pending.pop(done[0])
                try:
                    record = ray.get(done[0])
                except ray.exceptions.RayError as e:  # the worker died, or the task could not run
                    why = " ".join(str(e).split())[:300]
                    record = error_record(spec, job.command, f"the Ray task failed ({type(e).__name__}: {why})")
                yield spec, record
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


def longest_first(specs: list[RunSpec]) -> list[RunSpec]:
    """Runs in order of their estimated cost, longest first, so that parallel workers finish
    together instead of waiting on one long run started last (LPT scheduling)."""
    return sorted(specs, key=lambda s: -priced_ms(s.task, s.max_steps))


def resolve_workers(workers: int | str, threads: int | None) -> int:
    """--workers N, or 'auto': one worker per `threads` cores (one per core when the suite
    does not fix its threads): the best throughput for small CPU runs."""
    if workers == "auto":
        return max(1, (os.cpu_count() or 1) // (threads or 1))
    try:
        n = int(workers)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(workers).strip() != str(n):
        raise UserError(f"--workers: {workers!r} is not a positive integer or auto")
    return n


def make_executor(
    kind: str = "local",
    workers: int | str = 1,
    devices: str | None = None,
    runs_per_device: int = 1,
    address: str | None = None,
    threads: int | None = None,
):
    workers = resolve_workers(workers, threads)  # a bad value is an error whatever the executor
    if kind == "ray":  # Ray sizes itself from the cluster's CPUs
        return RayExecutor(address, threads=threads, gpus_per_run=(1.0 / runs_per_device) if devices else 0.0)
    if kind != "local":
        raise UserError(f"--executor: {kind!r} is not one of local, ray")
    dev_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else None
    if workers == 1 and not dev_list:
        return InProcess()  # threads come with each run's Job (the suite's `threads`)
    return LocalPool(workers, dev_list, runs_per_device, threads)
