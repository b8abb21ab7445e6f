"""How stable a leaderboard's ranking is under its own seed noise: the share of seed-bootstrap
resamples in which each task's top 3, and the overall top 3, are unchanged, and in which each
task's decision-table top group (decision.rows: the arms to use) is the same set. No torch.

Overall is the page's first table: the strategies ranked on the most tasks. Its strategies
and tasks are fixed from the records as scored, and each resample orders the same strategies
by their mean rank over the same tasks, so a resample in which a task turns flat (every
strategy failed, say) measures rank noise, not a change of table.

Each resample draws every task's seeds again with replacement, the same draw for all its
strategies and levels (a paired bootstrap), and re-scores (scoring.score). A ranking whose
top 3 survives 95% of resamples means something; one that survives 20% is a draw.

A measurement is saved beside a page (FILE) with a fingerprint of the records it was made
from; the page shows it only while the records are the same (page.write).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..core.errors import warn
from ..core.record import Record, latest, typed
from . import decision
from .choice import TUNING_PHASES
from .scoring import Scores, overall_order_key, score, task_shares, uninformative_tasks

TOP = 3
FILE = "rank_stability.json"
# a top 3 unchanged in at least this share of resamples is a settled order; below it the page
# shows the top as a tied group (tied_top)
SETTLED = decision.SETTLED


def overall_field(scores: Scores) -> tuple[list[str], list[str]] | None:
    """(tasks, strategies) of the page's first overall table, its ranked strategies only; None
    when it ranks none (every task flat)."""
    ov = scores.overall
    if ov.empty or not ov["compared_on"].iloc[0]:
        return None
    first = ov[(ov["compared_on"] == ov["compared_on"].iloc[0]) & ov["rank"].notna()]
    return (ov["compared_on"].iloc[0].split(", "), list(first["strategy"])) if len(first) else None


def _overall_top(scores: Scores, field: tuple[list[str], list[str]]) -> tuple[str, ...]:
    """The field's strategies in the overall table's order (mean rank over the field's tasks,
    then mean composite, then name), its first TOP."""
    tasks, strategies = field
    shares = task_shares(scores.per_task, tasks)
    shares = shares[shares["strategy"].isin(strategies)]
    means = shares.groupby("strategy").agg(rank=("share", "mean"), comp=("composite", "mean"))
    order = sorted(means.index, key=lambda s: overall_order_key(means.at[s, "rank"], means.at[s, "comp"], s))
    return tuple(order[:TOP])


def top(scores: Scores, field: tuple[list[str], list[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """The top-3 strategies per task and overall, in the page's order, among those that learned
    (failed ones share the last rank, in an order only tie-breaks give); a task where every
    strategy shares one rank (all failed, say) has no top 3 and is left out."""
    pt = scores.per_task
    flat = set(uninformative_tasks(pt))
    out = {
        task: tuple(g.loc[(g["status"] == "scored") & ~g["failed"].fillna(False).astype(bool), "strategy"][:TOP])
        for task, g in pt.groupby("task", sort=True)
        if task not in flat
    }
    # overall: the first table's top 3 (`field`: that table's as scored, fixed across resamples)
    field = field or overall_field(scores)
    if field:
        out["overall"] = _overall_top(scores, field)
    return out


def groups(scores: Scores) -> dict[str, tuple[str, ...]]:
    """Per task, the decision table's top group (the arms it says to use), as a sorted set."""
    return {row["task"]: tuple(sorted(row["use"])) for row in decision.rows(scores)}


def resample(records: Iterable[Record | dict], rng: random.Random) -> list[Record]:
    """One seed bootstrap: per task, the seeds drawn again with replacement, the same draw for
    every strategy and level (so comparisons stay paired); draw j of seed s becomes seed
    "s#j" in every strategy's copy of its runs (a run_id of its own: the scorer keeps one
    record per run_id). Under a tuning protocol the tuning seeds (which the choice reads) and
    the final-only seeds are drawn each from their own kind, so every resample still has a
    sweep to choose from."""
    by_task = _by_task(typed(records))
    return _apply(by_task, _draw(by_task, rng))


def _by_task(records: list[Record]) -> dict[str, list[Record]]:
    by_task = defaultdict(list)
    for r in records:
        by_task[r.task].append(r)
    return by_task


def _draw(by_task: dict[str, list[Record]], rng: random.Random) -> dict[str, list]:
    """Per task, the seeds of one resample (tuning seeds first, then final-only ones)."""
    draws = {}
    for task, runs in by_task.items():
        tuning = sorted({r.seed for r in runs if r.phase in TUNING_PHASES})
        final = sorted({r.seed for r in runs} - set(tuning))
        draws[task] = [rng.choice(tuning) for _ in tuning] + [rng.choice(final) for _ in final]
    return draws


def _apply(by_task: dict[str, list[Record]], draws: dict[str, list]) -> list[Record]:
    """The resample's runs: each drawn seed's runs again under the label "seed#slot" (seed and
    run_id), so a seed drawn twice counts twice. Copies made here, not records of a file: they
    are not validated again (a label is not an int seed)."""
    out = []
    for task, runs in by_task.items():
        for j, seed in enumerate(draws[task]):
            for r in runs:
                if r.seed == seed:
                    out.append(r.model_copy(update={"seed": f"{seed}#{j}", "run_id": f"{r.run_id}#{j}"}))
    return out


# a worker process's records and overall field (set once per process, not sent per resample)
_WORKER: dict = {}


def _init_worker(by_task: dict[str, list[Record]], field) -> None:
    _WORKER.update(by_task=by_task, field=field)


def _top_of(draws: dict[str, list]) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    scores = score(_apply(_WORKER["by_task"], draws))
    return top(scores, _WORKER["field"]), groups(scores)


def measure(
    records: Iterable[Record | dict],
    resamples: int = 200,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> dict:
    """{fingerprint, resamples, seed, top: {ranking: [strategies]}, unchanged: {ranking: share},
    in_top: {ranking: {strategy: share of resamples with it in the top 3}}, groups: {task: {use:
    [the decision table's top group], unchanged: share of resamples with the same set}}}. Every draw is made
    here, from `seed`, before any is scored, so `workers` processes (each re-scoring a share of
    the resamples) give the same result as one."""
    records = [r for r in latest(typed(records)) if r.counts_in_scores]
    scored = score(records)
    field = overall_field(scored)
    reference = top(scored, field)
    reference_groups = groups(scored)
    same_group = dict.fromkeys(reference_groups, 0)
    by_task = _by_task(records)
    rng = random.Random(seed)
    draws = [_draw(by_task, rng) for _ in range(resamples)]
    same = dict.fromkeys(reference, 0)
    in_top: dict[str, dict[str, int]] = {key: defaultdict(int) for key in reference}

    def count(i: int, result: tuple[dict, dict]) -> None:
        got, got_groups = result
        for task, group in reference_groups.items():
            same_group[task] += got_groups.get(task) == group
        for key, ranking in reference.items():
            same[key] += got.get(key) == ranking
            for strategy in got.get(key, ()):
                in_top[key][strategy] += 1
        if progress:
            progress(i + 1)

    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(by_task, field)) as pool:
            for i, got in enumerate(pool.map(_top_of, draws)):
                count(i, got)
    else:
        _init_worker(by_task, field)
        for i, d in enumerate(draws):
            count(i, _top_of(d))
    return {
        "fingerprint": fingerprint(records),
        "resamples": resamples,
        "seed": seed,
        "top": {k: list(v) for k, v in reference.items()},
        "unchanged": {k: n / resamples for k, n in same.items()},
        "in_top": {k: {s: n / resamples for s, n in sorted(v.items())} for k, v in in_top.items()},
        "groups": {
            t: {"use": list(g), "unchanged": same_group[t] / resamples, "resamples": resamples}
            for t, g in reference_groups.items()
        },
    }


def tied_top(measured: dict, key: str) -> list[str] | None:
    """When `key`'s top 3 is unchanged in fewer than SETTLED of the resamples: the strategies
    that the resamples cannot rule out of it, each in the top 3 of at least 1 - SETTLED of
    them, most often first (the page's tied top group). None when the top 3 is settled, or
    the measurement predates in_top."""
    if measured["unchanged"].get(key, 1.0) >= SETTLED or key not in measured.get("in_top", {}):
        return None
    shares = measured["in_top"][key]
    return sorted((s for s, p in shares.items() if p >= 1 - SETTLED), key=lambda s: (-shares[s], s))


def fingerprint(records: Iterable[Record | dict]) -> str:
    """sha256 of the scored records (skipped runs aside) as the typed model writes them, in
    run_id order."""
    kept = sorted((r for r in latest(typed(records)) if r.counts_in_scores), key=lambda r: r.run_id)
    blob = json.dumps([r.to_json() for r in kept], sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def save(measured: dict, out_dir: str | Path) -> Path:
    path = Path(out_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def saved_for(records: Iterable[Record | dict], out_dir: str | Path) -> dict | None:
    """The measurement saved in out_dir, if it was made from these very records."""
    path = Path(out_dir) / FILE
    try:
        measured = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if measured.get("fingerprint") == fingerprint(records):
        return measured
    warn(
        f"{path} was measured from other records (or hashed by an earlier gradbench), so the page leaves "
        f"rank stability out; measure it again: python benchmarks/rank_stability.py RESULTS --save {Path(out_dir)}"
    )
    return None
