"""gradbench status: where a suite stands in its results file, without running anything.

Each phase (under a protocol each sweep level too) with its runs recorded out of its total
and their outcomes; the run time the file holds; and the parts the file was grown in (CPU
kind x git commit), which `gradbench verify --same-cpu --commit C` checks one by one, since
a record reproduces bit for bit only on its own kind of CPU. It counts what `gradbench run`
counts as done: a record made under another numerics version is a run to train again. The
extra trials and the final seeds depend on the choices before them, read as the runner
reads them (this suite's records, in file order, each in its role here), so they are
counted once the phase before them is recorded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..analysis.choice import bracket_edges, chosen_configs
from ..analysis.compare import cpu_kind
from ..analysis.scoring import score
from ..analysis.seed_rule import contenders
from ..core.record import Env
from ..store import jsonl
from ..suite import Suite, bracket_runs, by_sweep_level, contender_runs, expand, final_runs, tuning_trials
from ..suite.stress_axes import STRESS, above_exploded, stress_waves


def status_lines(suite: Suite, results_path: Path) -> list[str]:
    records = jsonl.latest_by_run(jsonl.load(results_path)) if Path(results_path).exists() else []
    by_id = {r["run_id"]: r for r in records}
    done = jsonl.finished_ids(records)
    role: dict[str, str] = {}  # run id -> the first phase that asks for it (the runner's _retag)
    lines: list[str] = []

    def phase(label: str, name: str, items: list) -> bool:
        for i in items:
            role.setdefault(i.run_id, name)
        got = [by_id[i.run_id] for i in items if i.run_id in done]
        lines.append(f"{label}: {len(got)} of {len(items)} recorded{_outcomes(got)}")
        return len(got) == len(items)

    def ours() -> list[dict]:
        """This suite's finished records so far, in file order, each in its role here."""
        return [
            {**r, "spec": {**(r.get("spec") or {}), "phase": role[r["run_id"]]}}
            for r in records
            if r["run_id"] in role and r["run_id"] in done
        ]

    items = expand(suite)
    if suite.protocol is None:
        phase("runs", "", items)
    else:
        levels = by_sweep_level(items)
        swept = True
        for n, (level, at) in enumerate(levels.items(), 1):
            swept &= phase(f"phase 1, the sweep, level {n} of {len(levels)} (lr x{level:g})", "sweep", at)
        later = "counted once the sweep is recorded"
        if swept and suite.protocol.bracket_octaves:
            for n in range(1, 2 * suite.protocol.bracket_octaves + 1):
                wave = [i for i in bracket_runs(suite, bracket_edges(ours())) if i.run_id not in role]
                if not wave:
                    break
                if not phase(f"phase 1, bracketing the optima, round {n}", "bracket", wave):
                    swept = False
                    break
        if swept:
            trials = tuning_trials(suite, chosen_configs(ours(), or_best_failed=True))
            later = "counted once the extra trials are recorded"
            if phase("phase 2, extra trials", "tune", trials):
                finals = phase("phase 3, final seeds", "final", final_runs(suite, chosen_configs(ours())))
                if finals and suite.protocol.contender_seeds:
                    picked = contenders(score(ours()).per_task)
                    extra = contender_runs(suite, chosen_configs(ours()), picked)
                    finals = phase("phase 3, the seed rule's extra seeds for the contenders", "final", extra)
                if suite.stress_axes:
                    _stress_lines(suite, phase, ours, lines, finals)
            else:
                lines.append(f"phase 3, final seeds: {later}")
        else:
            lines += [f"phase 2, extra trials: {later}", f"phase 3, final seeds: {later}"]
    mine = ours()
    trained = [r for r in mine if r["status"] != "skipped" and not r.get("copy_of")]
    hours = sum((r.get("timings") or {}).get("wall_s", 0.0) for r in trained) / 3600
    if records:
        head = (
            f"suite {suite.name} in {results_path}: {len(mine)} of its runs recorded, {len(trained)} of them "
            f"trained, in {hours:.1f} run-hours (their summed wall time)"
        )
    else:
        head = f"suite {suite.name}: nothing recorded yet in {results_path}"
    older = sum(1 for i in role if i in by_id and i not in done)
    if older:
        head += f"; {older} more recorded under another numerics version, which gradbench run trains again"
    # what verify re-runs: every run that is not skipped, a copy under its source's CPU and commit
    envs = [Env.model_validate(r["env"]) if r["env"] else None for r in mine if r["status"] != "skipped"]
    parts = Counter((cpu_kind(e) or "CPU not recorded", (e.git_commit if e else None) or "?") for e in envs)
    tail = ["parts it was grown in (check each on its CPU kind: gradbench verify RESULTS --same-cpu --commit C):"]
    tail += [f"  {cpu}, commit {commit}: {n} runs" for (cpu, commit), n in sorted(parts.items())]
    return [head, *lines, *(tail if parts else [])]


def _stress_lines(suite: Suite, phase, ours, lines: list[str], finals: bool) -> None:
    """The stress axes, a level at a time as the runner runs them (a level's not-run runs are
    known once the level below is recorded)."""
    if not finals:
        lines.append("the stress axes: counted once the final seeds are recorded")
        return
    waves = stress_waves(suite, chosen_configs(ours()))
    for n, wave in enumerate(waves, 1):
        if not phase(f"the stress axes, level {n} of {len(waves)}", STRESS, above_exploded(suite, wave, ours())):
            if n < len(waves):
                lines.append(f"the stress axes, levels {n + 1}-{len(waves)}: counted once level {n} is recorded")
            return


def _outcomes(records: list[dict]) -> str:
    if not records:
        return ""
    counts = Counter(r["status"] for r in records)
    shown = [f"{n} {status}" for status, n in sorted(counts.items())]
    copies = sum(bool(r.get("copy_of")) for r in records)
    shown += [f"{copies} of them copies of a run recorded under another name"] if copies else []
    return f" ({', '.join(shown)})"
