"""run_suite: every run of a suite not yet in the results file, through an executor, with
resume, progress and an ETA; this process is the single writer of the results file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..catalogue.tasks import TASKS, priced_ms
from ..core.numerics import NUMERICS, numerics_of
from ..store import jsonl
from ..store.lock import exclusive
from ..suite import Skipped, Suite, expand
from ..training.run import skipped_record
from . import interrupts


def default_results_path(suite: Suite) -> Path:
    return Path("results") / f"{suite.name}.jsonl"


def runs_dir(results_path: Path) -> Path:
    """Per-run artifacts (steps.csv, layers.csv, error.txt) live beside the results file."""
    return results_path.parent / (results_path.stem + "_runs")


def run_suite(
    suite: Suite,
    results_path: Path,
    data_root: Path,
    command: str | None = None,
    log: Callable[[str], None] = print,
    executor=None,
    wandb: dict | None = None,
    retry_errors: bool = False,
) -> list[dict]:
    """Run every run of the suite not yet in the results file (with retry_errors, also those
    whose record is an error: a transient failure); return the suite's records (the latest
    record of each run).

    `executor` (executors.py) decides where runs execute (default: in this process); this
    function stays the single writer of the results file whatever it is. `wandb` is resolved
    tracking settings (tracking.resolve) or None.
    """
    from .executors import InProcess, Job

    executor = executor or InProcess()
    items = expand(suite)
    if getattr(executor, "local_data", True):
        check_data(suite, items, data_root)
    # one writer per results file (<results>.lock, held for the whole suite); Ctrl-C/SIGTERM
    # stop between runs as interrupts.Interrupted, and the run they cut short is not recorded;
    # one that comes while a record is written takes effect once it is on disk
    with exclusive(results_path), interrupts.interruptible() as guard:
        recorded = (
            {r["run_id"]: r for r in jsonl.latest_by_run(jsonl.load(results_path))} if results_path.exists() else {}
        )
        done = jsonl.finished_ids(recorded.values(), retry_errors)
        todo = [i for i in items if i.run_id not in done]
        again = [recorded[i.run_id] for i in todo if i.run_id in recorded]
        retried = sum(r["status"] == "error" and numerics_of(r) == NUMERICS for r in again)
        why = [f"{len(again) - retried} recorded under another numerics version"] if len(again) > retried else []
        why += [f"{retried} that failed with an error (--retry-errors)"] if retried else []
        again = f", again: {' and '.join(why)}" if why else ""
        log(
            f"suite {suite.name}: {len(items)} runs ({len(items) - len(todo)} already in {results_path}, "
            f"{len(todo)} to run{again}); {len(suite.tasks)} tasks x {len(suite.arms)} strategies x "
            f"{len(suite.seeds)} seeds x {len(suite.lr_mults)} lr multipliers; {executor.describe()}"
        )
        progress = Progress(todo, len(items) - len(todo), len(items), log, parallel=getattr(executor, "workers", 1))
        for item in [i for i in todo if isinstance(i, Skipped)]:  # recorded at once, never trained
            rec = skipped_record(item, command)
            with guard.deferred():
                jsonl.append(results_path, rec)
            progress.done(item, rec)
        job = Job(
            data_root=str(data_root),
            runs_dir=str(runs_dir(results_path)),
            results_dir=str(results_path.parent),
            command=command,
            threads=suite.threads,
            wandb=wandb,
            plugins=tuple(suite.plugins),
        )
        for spec, rec in executor.map([i for i in todo if not isinstance(i, Skipped)], job):
            guard.check()  # a signal during the run (even one Lightning stopped gracefully on): not recorded
            with guard.deferred():
                jsonl.append(results_path, rec)
            progress.done(spec, rec)
    ids = {i.run_id for i in items}
    return [r for r in jsonl.latest_by_run(jsonl.load(results_path)) if r["run_id"] in ids]


def check_data(suite: Suite, items: list, data_root: Path) -> None:
    """Fail fast on missing or corrupt data, before anything trains (and warm this process's cache)."""
    from ..training.data import load_dataset

    for name in dict.fromkeys(TASKS.get(t).dataset for t in suite.tasks):
        first = next(i for i in items if TASKS.get(i.spec.task if isinstance(i, Skipped) else i.task).dataset == name)
        spec = first.spec if isinstance(first, Skipped) else first
        load_dataset(name, data_root, **spec.data)


class Progress:
    """One line per finished run: position, what ran, its outcome, and the suite's ETA.

    The ETA prices each run left at max_steps x its task's cpu_ms_per_step (a rough guess,
    tasks.py), scaled by the seconds per priced step that this suite's finished runs of the
    same task really took (of any task, before one has finished): with longest-first
    scheduling the first runs to finish are the long ones, so a plain mean would overshoot."""

    def __init__(self, todo: list, already: int, total: int, log, parallel: int = 1):
        self.left = [i for i in todo if not isinstance(i, Skipped)]
        self.count, self.total, self.log, self.parallel = already, total, log, max(1, parallel)
        self.spent: dict[str, list[float]] = {}  # task -> [wall seconds, priced ms] of finished runs

    def done(self, item, rec: dict) -> None:
        self.count += 1
        spec = item.spec if isinstance(item, Skipped) else item
        if not isinstance(item, Skipped):
            self.left.remove(item)
            spent = self.spent.setdefault(spec.task, [0.0, 0.0])
            spent[0] += rec["timings"].get("wall_s", 0.0)
            spent[1] += priced_ms(spec.task, rec["metrics"]["steps"])
        m = rec["metrics"]
        outcome = rec["status"]
        if rec["status"] == "ok":
            outcome += f"  test {m['name']} {m['test']:.4g}"
        elif rec["reason"]:
            outcome += f" ({rec['reason']})"
        took = f"  {rec['timings'].get('wall_s', 0):.1f}s" if not isinstance(item, Skipped) else ""
        width = len(str(self.total))
        self.log(
            f"[{self.count:>{width}}/{self.total}] {spec.task} {spec.strategy} seed {spec.seed} "
            f"lr x{spec.lr_mult:g}: {outcome}{took}  | ETA {self._eta()}"
        )

    def _eta(self) -> str:
        priced = {t: (wall / ms) for t, (wall, ms) in self.spent.items() if ms > 0}
        if not self.left:
            return "0m00s"
        if not priced:
            return "?"
        overall = sum(w for w, _ in self.spent.values()) / sum(ms for _, ms in self.spent.values())
        secs = sum(priced_ms(s.task, s.max_steps) * priced.get(s.task, overall) for s in self.left)
        secs /= self.parallel
        return f"{int(secs // 60)}m{int(secs % 60):02d}s"
