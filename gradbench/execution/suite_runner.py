"""run_suite: every run of a suite not yet in the results file, through an executor, with
resume, progress and an ETA; this process is the single writer of the results file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..analysis.choice import changed_params, chosen_configs
from ..catalogue.tasks import TASKS, priced_ms
from ..core.numerics import NUMERICS, numerics_of
from ..core.spec import RunSpec, same_run_key
from ..store import jsonl
from ..store.lock import exclusive
from ..suite import (
    Skipped,
    Suite,
    above_diverged,
    bracket_runs,
    by_sweep_level,
    contender_runs,
    expand,
    final_runs,
    tuning_trials,
)
from ..suite.stress_axes import STRESS, above_exploded, axis_arms, stress_waves
from ..training.run import copied_record, skipped_record
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
    reuse: Iterable[Path] = (),
) -> list[dict]:
    """Run every run of the suite not yet in the results file (with retry_errors, also those
    whose record is an error: a transient failure); return the suite's records (the latest
    record of each run). A run that another results file in `reuse` holds, trained under this
    numerics version, is copied from it into this one (tagged with this suite's phase), not
    trained again: a suite that shares runs with others grows without their records in its file.

    `executor` (executors.py) decides where runs execute (default: in this process); this
    function stays the single writer of the results file whatever it is. `wandb` is resolved
    tracking settings (tracking.resolve) or None.
    """
    from .executors import InProcess, Job

    executor = executor or InProcess()
    pool = reusable(reuse)
    items = expand(suite)
    if getattr(executor, "local_data", True):
        check_data(suite, items, data_root)
    job = Job(
        data_root=str(data_root),
        runs_dir=str(runs_dir(results_path)),
        results_dir=str(results_path.parent),
        command=command,
        threads=suite.threads,
        wandb=wandb,
        plugins=tuple(suite.plugins),
    )
    # one writer per results file (<results>.lock, held for the whole suite); Ctrl-C/SIGTERM
    # stop between runs as interrupts.Interrupted, and the run they cut short is not recorded;
    # one that comes while a record is written takes effect once it is on disk
    with exclusive(results_path), interrupts.interruptible() as guard:
        phase = _Phase(suite, results_path, executor, job, guard, command, log, retry_errors, pool)
        if suite.protocol is None:
            phase.run("", items)
        else:
            if suite.protocol.skip_above_diverged:
                _sweep_level_by_level(phase, items, suite.protocol.sweep_seeds)
            else:
                phase.run("sweep", items)
            if suite.protocol.bracket_octaves:
                _bracket(phase)
            # an arm that failed every level gets its extra trials too, around its best one
            phase.run("tune", tuning_trials(suite, phase.choices(or_best_failed=True)))
            phase.run("final", final_runs(suite, phase.choices()))
            if suite.protocol.contender_seeds:
                _more_seeds_for_contenders(phase)
            phase.log_choices()
            if suite.stress_axes:
                _stress_axes(phase)
    return [r for r in jsonl.latest_by_run(jsonl.load(results_path)) if r["run_id"] in phase.ids]


def _sweep_level_by_level(phase: _Phase, items: list, sweep_seeds: int) -> None:
    """The sweep one level at a time, lowest first (the budget rule): a level runs once the
    ones below it are known, and an arm's runs above a level where every sweep seed diverged
    are recorded as not run."""
    by_level = by_sweep_level(items)
    levels = list(by_level)
    for n, level in enumerate(levels, 1):
        wave = above_diverged(by_level[level], phase.suite_records(), sweep_seeds)
        later = [i for lv in levels[n:] for i in by_level[lv]]  # priced in the ETA too
        phase.run("sweep", wave, f"level {n} of {len(levels)}, lr x{level:g}", later=later)


def _bracket(phase: _Phase) -> None:
    """Widen each arm's sweep an octave at a time while its best level is an edge of the levels
    it ran, up to protocol.bracket_octaves past its declared grid (the levels beyond that are
    not run: the page shows such an optimum as unbracketed)."""
    from ..analysis.choice import bracket_edges

    for n in range(1, 2 * phase.suite.protocol.bracket_octaves + 1):
        wave = bracket_runs(phase.suite, bracket_edges(phase.suite_records()))
        wave = [i for i in wave if i.run_id not in phase.ids]  # a level already asked for is not run twice
        if not wave:
            return
        phase.run("bracket", wave, f"round {n}: {len(wave)} runs an octave beyond an edge")


def _more_seeds_for_contenders(phase: _Phase) -> None:
    """The seed rule: more final seeds for the arms whose quality interval overlaps the leader's
    or baseline's (analysis/seed_rule.py), decided from this suite's scores so far."""
    from ..analysis.scoring import score
    from ..analysis.seed_rule import contenders

    picked = contenders(score(phase.suite_records()).per_task)
    runs = contender_runs(phase.suite, phase.choices(), picked)
    n = sum(len(v) for v in picked.values())
    phase.run("final", runs, f"the seed rule: {phase.suite.protocol.contender_seeds} seeds for {n} contenders")


def _stress_axes(phase: _Phase) -> None:
    """The stress axes (suite/stress_axes.py), a level at a time, mildest first, at each arm's
    chosen configuration; an arm's levels above one where every seed exploded are recorded as
    not run."""
    choices = phase.choices()
    for name, axis in phase.suite.stress_axes.items():
        runs = axis_arms(phase.suite, axis)
        failed = [label for label in sorted(runs) if choices.get((axis.task, label), 0) is None]
        if failed:
            phase.log(
                f"stress axis {name}: not run for {', '.join(failed)}, which learned at no level of "
                f"{axis.task}'s sweep (tune the task at the axis's mildest level)"
            )
    waves = stress_waves(phase.suite, choices)
    for n, wave in enumerate(waves, 1):
        wave = above_exploded(phase.suite, wave, phase.suite_records())
        phase.run(STRESS, wave, f"level {n} of {len(waves)} of each axis")


class _Phase:
    """Runs one phase's runs that are not yet recorded (all of a suite without a protocol),
    writing each record as it comes; remembers every run id asked for and its role (the first
    phase that asked for it), so the choice between phases reads this suite's records only."""

    def __init__(self, suite, results_path, executor, job, guard, command, log, retry_errors, pool=None):
        self.suite, self.results_path, self.executor, self.job = suite, results_path, executor, job
        self.guard, self.command, self.log, self.retry_errors = guard, command, log, retry_errors
        self.role: dict[str, str] = {}  # run_id -> its phase in this suite
        self.pool: dict[str, tuple[dict, Path]] = pool or {}  # run_id -> (another file's trained record, its folder)

    @property
    def ids(self) -> set[str]:
        return set(self.role)

    def run(self, name: str, items: list, part: str = "", later: list = ()) -> None:
        """Run `items` not yet recorded; `later` are the runs of the same phase still to come
        after these (the sweep's higher levels under the budget rule): the ETA prices them too."""
        for i in items:
            self.role.setdefault(i.run_id, name)
        self._reuse(items)
        recorded = {r["run_id"]: r for r in self._records()}
        done = jsonl.finished_ids(recorded.values(), self.retry_errors)
        # a run recorded as not run (above a diverged level) that is to run now: it trains
        done -= {
            i.run_id for i in items if not isinstance(i, Skipped) and (recorded.get(i.run_id) or {}).get("not_run")
        }
        self._retag([recorded[i.run_id] for i in items if i.run_id in done])
        todo = [i for i in items if i.run_id not in done]
        again = [recorded[i.run_id] for i in todo if i.run_id in recorded]
        retried = sum(r["status"] == "error" and numerics_of(r) == NUMERICS for r in again)
        not_run = sum(bool(r.get("not_run")) and numerics_of(r) == NUMERICS for r in again)
        older = len(again) - retried - not_run
        why = [f"{older} recorded under another numerics version"] if older else []
        why += [f"{retried} that failed with an error (--retry-errors)"] if retried else []
        why += (
            [f"{not_run} recorded as not run above a diverged level (a protocol without the rule)"] if not_run else []
        )
        again = f", again: {' and '.join(why)}" if why else ""
        sources = _copyable(recorded, done)
        specs = [i for i in todo if not isinstance(i, Skipped)]
        trains = _distinct(specs, sources)
        how = [f"{len(trains)} to train"]
        how += (
            [f"{len(specs) - len(trains)} the same run as another arm's (copied)"] if len(specs) > len(trains) else []
        )
        how += [f"{len(todo) - len(specs)} recorded without training"] if len(todo) > len(specs) else []
        self.log(
            f"{self._what(name)}{f' ({part})' if part else ''}: {len(items)} runs ({len(items) - len(todo)} already in {self.results_path}, "
            f"{len(todo)} to run{again}; {', '.join(how)}); {self.executor.describe()}"
        )
        progress = Progress(
            trains,
            len(items) - len(todo),
            len(items),
            self.log,
            parallel=getattr(self.executor, "workers", 1),
            declared={arm.label: arm.params for arm in self.suite.all_arms},
            later=_distinct([i for i in later if not isinstance(i, Skipped) and i.run_id not in done], sources, trains),
        )
        for item in [i for i in todo if isinstance(i, Skipped)]:  # recorded at once, never trained
            self._record(item, skipped_record(item, self.command), progress)
        self._train(specs, sources, progress)

    def _train(self, specs: list, sources: dict[str, dict], progress: Progress) -> None:
        """Train each distinct run once. A spec whose run (same_run_key: all but its names) is
        already recorded, or trains in this batch, gets that run's outcome as a copy: relu on a
        ReLU model is baseline's run, number for number. A copy waits for its run; if that run
        fails with an error, the waiting specs train in a batch of their own."""
        while specs:
            waiting: dict[str, list] = {}
            train = []
            for spec in specs:
                key = same_run_key(spec.to_dict())
                if key in sources:
                    self._record(spec, copied_record(sources[key], spec, self.command), progress)
                elif key in waiting:
                    waiting[key].append(spec)
                else:
                    waiting[key] = []
                    train.append(spec)
            specs = []
            for spec, rec in self.executor.map(train, self.job):
                self.guard.check()  # a signal during the run (even one Lightning stopped gracefully on): not recorded
                self._record(spec, rec, progress)
                key = same_run_key(spec.to_dict())
                twins = waiting.pop(key, [])
                if rec["status"] in COPYABLE:
                    sources[key] = rec
                    for twin in twins:
                        self._record(twin, copied_record(rec, twin, self.command), progress)
                else:
                    specs += twins

    def _record(self, spec, rec: dict, progress: Progress) -> None:
        with self.guard.deferred():
            jsonl.append(self.results_path, rec)
        if rec.get("copy_of"):  # a trained run is tracked by its worker; a copy here, once recorded
            from .executors import track_copy

            track_copy(spec, rec, self.job)
        progress.done(spec, rec)

    def _reuse(self, items: list) -> None:
        """Copy into the results file the runs of `items` that it lacks and the reuse pool has,
        each recorded as this suite's run: its suite, its role (phase) and the command that
        reproduces it here (the run_id names neither, and its env still says where and at which
        commit it trained)."""
        if not self.pool:
            return
        recorded = {r["run_id"]: r for r in self._records()}
        # what this file already settles (as resume reads it); a run recorded as not run above a
        # diverged level, or under another numerics version, is reused if the pool has it
        done = jsonl.finished_ids(recorded.values(), self.retry_errors)
        done -= {run_id for run_id, r in recorded.items() if r.get("not_run")}
        wanted = [i for i in items if not isinstance(i, Skipped) and i.run_id not in done and i.run_id in self.pool]
        for i in wanted:
            rec, folder = self.pool[i.run_id]
            # its steps.csv and layers.csv stay where they were written: the path from this file
            series = os.path.relpath(folder / rec["series"], self.results_path.parent) if rec.get("series") else None
            spec = {**rec["spec"], "suite": self.suite.name, "phase": self.role[i.run_id]}
            copy = {**rec, "suite": self.suite.name, "command": self.command or rec.get("command"), "spec": spec}
            with self.guard.deferred():
                jsonl.append(self.results_path, {**copy, "series": series})
        if wanted:
            self.log(f"{len(wanted)} runs reused from another results file (--reuse): recorded here, not trained")

    def _retag(self, reused: list[dict]) -> None:
        """A run recorded before (by a suite without a protocol, another protocol, an older
        version) keeps its record, but its phase there may not be its role here: the sweep
        would lose a seed to "final", or the choice gain one. Its record is written again with
        this suite's role (the latest record of a run wins), so the choice, the grid and the
        page read the roles of the suite that was run."""
        stale = [r for r in reused if ((r.get("spec") or {}).get("phase") or "") != self.role[r["run_id"]]]
        for r in stale:
            with self.guard.deferred():
                jsonl.append(self.results_path, {**r, "spec": {**r["spec"], "phase": self.role[r["run_id"]]}})
        if stale:
            self.log(f"{len(stale)} runs recorded before under another role: recorded again as this suite's")

    def _what(self, name: str) -> str:
        s = self.suite
        if not name:
            return (
                f"suite {s.name}: {len(s.tasks)} tasks x {len(s.all_arms)} strategies x "
                f"{len(s.seeds)} seeds x {len(s.lr_mults)} lr multipliers"
            )
        p = s.protocol
        return {
            "sweep": f"suite {s.name}, phase 1 of 3, the sweep: {len(s.tasks)} tasks x {len(s.all_arms)} strategies x "
            f"{p.sweep_seeds} seeds x "
            + (
                "each arm's levels (absolute rates per optimizer family)"
                if p.lr_grid or any("lr_grid" in ov for ov in s.tasks.values())
                else f"{len(s.lr_mults)} lr multipliers"
            ),
            "bracket": f"suite {s.name}, phase 1 of 3, bracketing the optima (up to {p.bracket_octaves} octaves past "
            "each arm's grid)",
            "tune": f"suite {s.name}, phase 2 of 3, extra trials: {p.extra_trials} per strategy and task "
            f"x {p.sweep_seeds} seeds, around each one's choice from the sweep",
            "final": f"suite {s.name}, phase 3 of 3, final seeds: {len(s.seeds)} seeds at each strategy's chosen "
            "configuration",
            STRESS: f"suite {s.name}, the stress axes ({', '.join(s.stress_axes)}): each arm at its chosen "
            "configuration, the stress turned up",
        }[name]

    def _records(self) -> list[dict]:
        if not self.results_path.exists():
            return []
        return jsonl.latest_by_run(jsonl.load(self.results_path))

    def suite_records(self) -> list[dict]:
        """This suite's records so far (a results file may hold other suites' runs too)."""
        return [r for r in self._records() if r["run_id"] in self.ids]

    def choices(self, or_best_failed: bool = False) -> dict:
        """(task, strategy) -> its choice from this suite's records so far (torch-free)."""
        return chosen_configs(self.suite_records(), or_best_failed=or_best_failed)

    def log_choices(self) -> None:
        by_task: dict[str, list[str]] = {}
        declared = {arm.label: arm.params for arm in self.suite.all_arms}
        for (task, strategy), c in self.choices().items():
            changed = changed_params(c, declared.get(strategy, {})) if c is not None else ""
            shown = "failed every level" if c is None else f"lr x{c.lr_mult:.3g}" + (f" {changed}" if changed else "")
            by_task.setdefault(task, []).append(f"{strategy} {shown}")
        for task, chosen in by_task.items():
            self.log(f"chosen on validation, {task}: {'; '.join(chosen)}")


COPYABLE = ("ok", "diverged")  # outcomes of a training run; an error may be transient, so its twin trains


def reusable(paths: Iterable[Path]) -> dict[str, tuple[dict, Path]]:
    """run_id -> (the latest record of each run the files hold that trained (ok or diverged)
    under this numerics version, the folder of its file): what another suite may reuse instead
    of training it again (its series path is relative to that folder)."""
    pool: dict[str, tuple[dict, Path]] = {}
    for path in paths:
        for rec in jsonl.latest_by_run(jsonl.load(path)):
            if rec.get("status") in COPYABLE and numerics_of(rec) == NUMERICS and rec.get("spec"):
                pool.setdefault(rec["run_id"], (rec, Path(path).parent))
    return pool


def _copyable(recorded: dict[str, dict], done: set[str]) -> dict[str, dict]:
    """same_run_key -> a finished run of this training code that trained (or was copied)."""
    out = {}
    for run_id, rec in recorded.items():  # the file's order: the first such run is the source
        if run_id in done and rec["status"] in COPYABLE and rec.get("spec"):
            try:
                out.setdefault(same_run_key(RunSpec.from_dict(rec["spec"]).to_dict()), rec)
            except (KeyError, TypeError, ValueError, AttributeError):  # a spec that no longer reads: never a source
                continue
    return out


def _distinct(specs: list, sources: dict[str, dict], trained: list = ()) -> list:
    """The specs that train: one per same-run key, none whose run is recorded (sources) or
    among `trained` already; the rest are copies."""
    seen = set(sources) | {same_run_key(s.to_dict()) for s in trained}
    out = []
    for spec in specs:
        key = same_run_key(spec.to_dict())
        if key not in seen:
            seen.add(key)
            out.append(spec)
    return out


def check_data(suite: Suite, items: list, data_root: Path) -> None:
    """Fail fast on missing or corrupt data, before anything trains (and warm this process's cache)."""
    from ..training.data import load_task_data

    for name in dict.fromkeys(TASKS.get(t).dataset for t in suite.tasks):
        first = next(i for i in items if TASKS.get(i.spec.task if isinstance(i, Skipped) else i.task).dataset == name)
        spec = first.spec if isinstance(first, Skipped) else first
        load_task_data(TASKS.get(spec.task), data_root, spec.data)


def _trial(spec, declared: dict) -> str:
    """The parameters a tuning trial changed (', max_norm=0.5'), which its lr does not show."""
    if spec.phase != "tune":
        return ""
    mine = declared.get(spec.strategy, {})
    shown = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for name, params in spec.strategy_params.items()
        for k, v in params.items()
        if (mine.get(name) or {}).get(k) != v
    ]
    return f" ({', '.join(shown)})" if shown else ""


class Progress:
    """One line per finished run: position, what ran, its outcome, and the suite's ETA.

    The ETA prices each run left at max_steps x its task's cpu_ms_per_step (a rough guess,
    tasks.py), scaled by the seconds per priced step that this suite's finished runs of the
    same task really took (of any task, before one has finished): with longest-first
    scheduling the first runs to finish are the long ones, so a plain mean would overshoot."""

    def __init__(
        self,
        todo: list,
        already: int,
        total: int,
        log,
        parallel: int = 1,
        declared: dict | None = None,
        later: list = (),
    ):
        self.left = [i for i in todo if not isinstance(i, Skipped)] + list(later)  # later: priced, not counted
        self.declared = declared or {}  # arm label -> its declared parameters
        self.count, self.total, self.log, self.parallel = already, total, log, max(1, parallel)
        self.spent: dict[str, list[float]] = {}  # task -> [wall seconds, priced ms] of finished runs

    def done(self, item, rec: dict) -> None:
        self.count += 1
        spec = item.spec if isinstance(item, Skipped) else item
        if item in self.left:  # a skipped run or a copy was never priced
            self.left.remove(item)
        if not isinstance(item, Skipped) and not rec.get("copy_of"):  # a copy took no time: not a rate
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
        if rec.get("copy_of"):
            took = f"  the same run as {rec['copy_of']}, not trained again"
        width = len(str(self.total))
        where = f"lr x{spec.lr_mult:.3g}{_trial(spec, self.declared)}"
        if spec.axis:
            where = f"{spec.axis['name']} {spec.axis['level']} ({where})"
        self.log(
            f"[{self.count:>{width}}/{self.total}] {spec.task} {spec.strategy} seed {spec.seed} "
            f"{where}: {outcome}{took}  | ETA {self._eta()}"
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
