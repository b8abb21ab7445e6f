"""Would stopping hopeless sweep runs early have kept the answers? A replay on recorded curves.

    python benchmarks/replay_early_stop.py RESULTS [--margin 0.25] [--from-share 0.25]
                                                   [--reference lower|all]

The rule replayed (issue: early stopping that keeps the answers): a sweep run stops at the
first validation step, from --from-share of its budget on, where its value is worse than the
best value any *reference* level of the same arm and seed had at that step, by more than
--margin of the gap from chance to the target. The reference levels are the lower ones
(--reference lower: what a sweep run level by level, lowest first, knows when a level runs;
protocol.skip_above_diverged runs it so) or every other level (--reference all: an oracle,
the most a rule that reads finished levels could save). The final seeds always run in full.

A stopped run is *stopped early*: it never counts as stable, and for the choice it counts as a
seed that did not learn (measured and worse). The replay re-runs the choice
(analysis/choice.py) and the max stable lr on the stopped runs, and reports:

* the sweep's compute saved: the train seconds of the steps not run, over the sweep's;
* the share of (task, arm) choices unchanged;
* the share of max stable lr values unchanged;
* per task, whether the tied top group is unchanged: it is when no arm of it, or of the arms
  that could enter it, changed its choice (a changed choice would need final seeds the
  records do not have, so such a group counts as changed);
* the bound on any rule that keeps every max stable lr: a stopped run is never stable, and the
  max stable lr is the highest level with no unstable run at or below it, so such a rule may
  stop only runs above the arm's max stable lr. Stopping all of them at their first step, with
  the answer known in advance, is the most it could save; no rule that reads curves can do
  better. (Runs below the chosen level, which an oracle rule would stop first, sit below the
  max stable lr too: stopping them moves it down.)

No torch; the records are only read.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.analysis import lr_response  # noqa: E402
from gradbench.analysis.choice import choose  # noqa: E402
from gradbench.analysis.runs import GRID_PHASES, level_results, runs_frame, task_meta  # noqa: E402
from gradbench.analysis.scoring import score  # noqa: E402
from gradbench.core.record import latest  # noqa: E402
from gradbench.store import jsonl  # noqa: E402


def stop_step(curve: list, references: list[list], meta: dict, margin: float, from_step: float) -> int | None:
    """The first validation step (before the last) at which `curve` is worse than the best of
    the reference curves at the same step by more than margin x |target - chance|; None when
    the run would have gone on to the end."""
    sign = 1.0 if meta["higher_is_better"] else -1.0
    gap = margin * abs(meta["target"] - meta["chance"])
    best: dict[int, float] = {}
    for ref in references:
        for step, value in ref:
            if value is not None and not math.isnan(value):
                best[step] = max(best.get(step, -math.inf), sign * value)
    for step, value in curve[:-1]:
        if step < from_step or step not in best:
            continue
        mine = -math.inf if value is None or math.isnan(value) else sign * value
        if mine < best[step] - gap:
            return int(step)
    return None


def replay(records: list, margin: float, from_share: float, reference: str) -> dict:
    """Which sweep runs stop and where, and the answers with them stopped (module docstring)."""
    records = latest(records)
    sweep = [r for r in records if r.phase in ("sweep",) and r.status in ("ok", "diverged") and not r.copy_of]
    by_arm_seed: dict[tuple, list] = defaultdict(list)
    for r in sweep:
        by_arm_seed[(r.task, r.label, r.seed)].append(r)
    stopped: dict[str, int] = {}
    for runs in by_arm_seed.values():
        runs.sort(key=lambda r: r.lr_mult)
        for i, r in enumerate(runs):
            if r.status == "diverged":  # the monitor stopped it already
                continue
            refs = runs[:i] if reference == "lower" else runs[:i] + runs[i + 1 :]
            meta = {
                "higher_is_better": r.metrics.higher_is_better,
                "target": r.metrics.target,
                "chance": r.metrics.chance,
            }
            at = stop_step(
                r.metrics.val_curve,
                [x.metrics.val_curve for x in refs if x.status == "ok"],
                meta,
                margin,
                from_share * r.metrics.steps,
            )
            if at is not None:
                stopped[r.run_id] = at
    # compute: the train seconds of the steps a stopped run would not have taken
    total = saved = 0.0
    for r in sweep:
        train = r.timings.train_s or r.timings.wall_s or 0.0
        total += train
        if r.run_id in stopped and r.metrics.steps:
            saved += train * (1 - stopped[r.run_id] / r.metrics.steps)
    return {"stopped": stopped, "sweep_s": total, "saved_s": saved, "records": records}


def answers(records: list, stopped: dict[str, int]) -> tuple[dict, dict]:
    """((task, arm) -> chosen (lr, params) or None, (task, arm) -> max stable lr) with the
    stopped runs counted as seeds that did not learn and as not stable."""
    runs = runs_frame(records)
    if stopped:
        hit = runs["run_id"].isin(stopped)
        runs.loc[hit, "final_val"] = math.nan  # did not learn: at chance in the choice
        runs.loc[hit, "outcome"] = "collapsed"  # never stable (the replay's stand-in for "stopped early")
    choices, stable = {}, {}
    for (task, arm), g in runs.groupby(["task", "strategy"], sort=True):
        meta = task_meta(runs, task)
        c = choose(g, meta)
        choices[(task, arm)] = None if c is None else (c.lr_mult, c.params)
        levels = level_results(g[g["phase"].isin(GRID_PHASES)], meta)
        top = lr_response.response(levels, meta, None)["max_stable_lr"] if len(levels) else math.nan
        stable[(task, arm)] = None if math.isnan(top) else top
    return choices, stable


def stable_keeping_bound(records: list, stable: dict, choices: dict) -> tuple:
    """(the sweep's train seconds, those of its runs above their arm's max stable lr, those
    below their arm's chosen level, those runs as {run_id: 0}, each arm's seconds at or below
    its max stable lr): the second is all a rule could save without moving any max stable lr
    (module docstring); an arm with no stable level may stop anything. The fourth is the
    oracle's stop list, to show what stopping it would move; the last, what a rule allowed to
    move a few arms' max stable lr could save on those arms at most."""
    total = above = below = 0.0
    under: dict[str, int] = {}
    kept: dict[tuple, float] = defaultdict(float)  # (task, arm) -> its train seconds at or below its max stable lr
    for r in records:
        if r.phase != "sweep" or r.status not in ("ok", "diverged") or r.copy_of:
            continue
        train = r.timings.train_s or r.timings.wall_s or 0.0
        total += train
        top = stable.get((r.task, r.label))
        if top is None or r.lr_mult > top:
            above += train
        else:
            kept[(r.task, r.label)] += train
        chosen = choices.get((r.task, r.label))
        if chosen is not None and r.lr_mult < chosen[0]:
            below += train
            under[r.run_id] = 0
    return total, above, below, under, kept


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="a results file (JSON lines) of a suite with a tuning protocol")
    p.add_argument("--margin", type=float, default=0.25, help="share of |target - chance| (default 0.25)")
    p.add_argument("--from-share", type=float, default=0.25, help="no stop before this share of the budget")
    p.add_argument("--reference", choices=("lower", "all"), default="lower", help="the levels a run is held against")
    args = p.parse_args(argv)
    if not (args.margin >= 0 and 0 <= args.from_share <= 1):
        p.error("--margin: must be >= 0; --from-share: from 0 to 1")
    records = jsonl.read(args.results)
    out = replay(records, args.margin, args.from_share, args.reference)
    stopped, latest_records = out["stopped"], out["records"]
    before_c, before_s = answers(latest_records, {})
    after_c, after_s = answers(latest_records, stopped)
    same_c = sum(before_c[k] == after_c[k] for k in before_c)
    same_s = sum(before_s[k] == after_s[k] for k in before_s)
    print(
        f"replay of {args.results}: margin {args.margin:g} of |target - chance|, from {args.from_share:.0%} of "
        f"the budget, reference levels: {args.reference}"
    )
    n_sweep = sum(1 for r in latest_records if r.phase == "sweep" and r.status in ("ok", "diverged"))
    print(f"sweep runs stopped early: {len(stopped)} of {n_sweep}")
    ratio = out["sweep_s"] / (out["sweep_s"] - out["saved_s"]) if out["sweep_s"] > out["saved_s"] else math.inf
    print(
        f"sweep compute: {out['sweep_s'] / 3600:.1f} h -> {(out['sweep_s'] - out['saved_s']) / 3600:.1f} h "
        f"of train time ({ratio:.2f}x less)"
    )
    print(f"choices unchanged: {same_c} of {len(before_c)} ({same_c / max(1, len(before_c)):.1%})")
    print(f"max stable lr unchanged: {same_s} of {len(before_s)} ({same_s / max(1, len(before_s)):.1%})")
    total, above, below, under, kept = stable_keeping_bound(latest_records, before_s, before_c)
    if total > above:
        moved_s = sum(before_s[k] != v for k, v in answers(latest_records, under)[1].items())
        print(
            f"bound for a rule that keeps every max stable lr: only runs above it may stop, {above / 3600:.2f} h of "
            f"the sweep's {total / 3600:.1f} h ({total / (total - above):.2f}x less at most); stopping instead "
            f"every run below its chosen level ({below / 3600:.1f} h) moves {moved_s} of {len(before_s)} max stable lrs"
        )
        # the 5% of arms the issue lets move, picked where they save most, every run of theirs free
        allowed = int(0.05 * len(before_s))
        most = above + sum(sorted(kept.values(), reverse=True)[:allowed])
        print(
            f"bound for a rule that keeps 95% of them: {allowed} arms may move, so at most {most / 3600:.1f} h "
            f"({total / (total - most):.2f}x less)"
        )
    moved = sorted(f"{t}/{a}" for t, a in before_c if before_c[(t, a)] != after_c[(t, a)])
    if moved:
        print("choices that move: " + ", ".join(moved))
    pt = score(latest_records).per_task
    for task, rows in pt[pt["status"] == "scored"].groupby("task"):
        top = set(rows.loc[rows["tied"].astype(object) == True, "strategy"])  # noqa: E712
        changed = sorted(a for a in rows["strategy"] if before_c.get((task, a)) != after_c.get((task, a)))
        same = not (set(changed) & top) and not changed
        verdict = "unchanged" if same else f"may change: {', '.join(changed)} changed choice"
        print(f"{task}: tied top group of {len(top)} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
