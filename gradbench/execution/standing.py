"""gradbench status: where a suite stands in its results file, without running anything.

Each phase (under a protocol each sweep level too) with its runs recorded out of its total
and their outcomes; the training time the file holds; and the parts the file was grown in
(CPU kind x git commit), which `gradbench verify --same-cpu --commit C` checks one by one,
since a record reproduces bit for bit only on its own kind of CPU. The extra trials and the
final seeds depend on the sweep's choices, so they are counted once the phase before them
is recorded. Torch-free: it reads the suite and the file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..analysis.choice import chosen_configs
from ..analysis.compare import cpu_kind
from ..store import jsonl
from ..suite import Skipped, Suite, expand, final_runs, sweep_levels, tuning_trials


def status_lines(suite: Suite, results_path: Path) -> list[str]:
    records = jsonl.latest_by_run(jsonl.load(results_path)) if Path(results_path).exists() else []
    by_id = {r["run_id"]: r for r in records}
    done = jsonl.finished_ids(records)
    asked: set[str] = set()  # run ids of the phases counted so far: the choice reads only these
    lines: list[str] = []

    def phase(label: str, items: list) -> bool:
        asked.update(i.run_id for i in items)
        got = [by_id[i.run_id] for i in items if i.run_id in done]
        lines.append(f"{label}: {len(got)} of {len(items)} recorded{_outcomes(got)}")
        return len(got) == len(items)

    def ours() -> list[dict]:
        return [by_id[i] for i in asked if i in by_id]

    items = expand(suite)
    if suite.protocol is None:
        phase("runs", items)
    else:
        levels = sweep_levels(items)
        swept = True
        for n, level in enumerate(levels, 1):
            at = [i for i in items if (i.spec if isinstance(i, Skipped) else i).lr_mult == level]
            swept &= phase(f"phase 1, the sweep, level {n} of {len(levels)} (lr x{level:g})", at)
        later = "counted once the sweep is recorded"
        if swept:
            tuned = phase("phase 2, extra trials", tuning_trials(suite, chosen_configs(ours(), or_best_failed=True)))
            later = "counted once the extra trials are recorded"
            if tuned:
                phase("phase 3, final seeds", final_runs(suite, chosen_configs(ours())))
            else:
                lines.append(f"phase 3, final seeds: {later}")
        else:
            lines += [f"phase 2, extra trials: {later}", f"phase 3, final seeds: {later}"]
    mine = ours()
    trained = [r for r in mine if r["status"] != "skipped" and not r.get("copy_of")]
    hours = sum((r.get("timings") or {}).get("wall_s", 0.0) for r in trained) / 3600
    head = (
        f"suite {suite.name} in {results_path}: {len(mine)} of its runs recorded, {len(trained)} of them trained "
        f"in {hours:.1f} core-hours (their summed wall time)"
    )
    parts = Counter(
        (cpu_kind(r.get("env") or {}) or "CPU not recorded", (r.get("env") or {}).get("git_commit") or "?")
        for r in trained
    )
    tail = ["parts it was grown in (check each on its CPU kind: gradbench verify RESULTS --same-cpu --commit C):"]
    tail += [f"  {cpu}, commit {commit}: {n} trained runs" for (cpu, commit), n in sorted(parts.items())]
    return [head, *lines, *(tail if parts else [])]


def _outcomes(records: list[dict]) -> str:
    if not records:
        return ""
    counts = Counter(r["status"] for r in records)
    shown = [f"{n} {status}" for status, n in sorted(counts.items())]
    copies = sum(bool(r.get("copy_of")) for r in records)
    shown += [f"{copies} of them copies of another arm's run"] if copies else []
    return f" ({', '.join(shown)})"
