"""What the measurement rules change on a results file: the old reading against the new one.

    python benchmarks/rescore.py RESULTS [--task TASK ...]

The old rules scored quality over every seed at the chosen configuration with a seed that did
not learn at chance, and counted every run that did not learn as a stability failure. The new
ones (analysis/scoring.py, core/taxonomy.py) score quality on the tested seeds only (those not
used to choose), a finite value as measured, and count only runs that exploded or collapsed
against stability. This prints, per task:

* which arms reach the target under each rule, and every arm that moves;
* the grid's runs that failed under the old rule, labelled by the taxonomy, with those below
  the arm's chosen level (too low a learning rate for the budget) apart;
* the arms whose stability share moves, and how many tie with the leader;
* P(exploded or collapsed) at the chosen configurations, on the tuning seeds and on the
  held-out ones (selection flatters the first).

No torch; the reading the page shows is `gradbench leaderboard RESULTS`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.analysis.choice import TUNING_PHASES  # noqa: E402
from gradbench.analysis.runs import GRID_PHASES, SCORED, did_not_learn, runs_frame, task_meta, unstable  # noqa: E402
from gradbench.analysis.scoring import score  # noqa: E402
from gradbench.core.record import reaches  # noqa: E402
from gradbench.core.taxonomy import UNSTABLE  # noqa: E402
from gradbench.store import jsonl  # noqa: E402


def old_quality(at, meta) -> float:
    """Every seed at the chosen configuration, a seed that did not learn at chance (the old rule)."""
    test = at["test"].astype(float).where(~did_not_learn(at, meta) & at["test"].notna(), meta["chance"])
    return float(test.groupby(at["seed"]).mean().mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="a results file (JSON lines)")
    p.add_argument("--task", action="append", help="only this task (repeatable)")
    args = p.parse_args(argv)
    records = jsonl.read(args.results)
    runs = runs_frame(records)
    pt = score(records).per_task
    tasks = args.task or sorted(set(pt["task"]))
    print(f"re-scoring {args.results}: {len(runs)} runs")
    inferred = int(runs["outcome_inferred"].sum())
    not_run = int(runs["not_run"].sum())
    recorded = int(runs["outcome"].notna().sum()) - inferred - not_run
    print(
        f"outcomes recorded by the run: {recorded}; inferred from curves: {inferred}; "
        f"not run above an all-diverged level (exploded): {not_run}"
    )
    for task in tasks:
        meta = task_meta(runs, task)
        rows = pt[(pt["task"] == task) & (pt["status"] == "scored")]
        mine = runs[(runs["task"] == task) & runs["status"].isin(SCORED)]
        print(f"\n== {task} (target {meta['target']:g}, chance {meta['chance']:g})")
        tested = Counter(rows["tested_on"].dropna())
        seeds = sorted(
            set(
                mine.loc[
                    (mine["phase"] == "final")
                    & ~mine["seed"].isin(set(mine.loc[mine["phase"].isin(TUNING_PHASES), "seed"])),
                    "seed",
                ]
            )
        )
        print(f"quality read on: {dict(tested)} (held-out seeds: {seeds or 'none'})")
        old, new, moves = [], [], []
        for _, r in rows.iterrows():
            arm = r["strategy"]
            if r["failed"]:
                o = n = meta["chance"]
            else:
                g = mine[mine["strategy"] == arm]
                at = g[(g["lr_mult"] == r["chosen_lr_mult"]) & (g["params"] == r["chosen_key"])]
                o, n = old_quality(at, meta), float(r["accuracy"])
            ro, rn = (
                bool(reaches(o, meta["target"], meta["higher_is_better"])),
                bool(reaches(n, meta["target"], meta["higher_is_better"])),
            )
            old.append(ro)
            new.append(rn)
            if ro != rn:
                moves.append(f"{arm} {'reach -> miss' if ro else 'miss -> reach'} ({o:.4g} -> {n:.4g})")
        print(f"reach / miss, old rule (every seed, not learned at chance): {sum(old)} / {len(old) - sum(old)}")
        print(f"reach / miss, new rule (tested seeds, measured values):     {sum(new)} / {len(new) - sum(new)}")
        print("arms that move: " + ("; ".join(moves) if moves else "none"))

        grid = mine[mine["phase"].isin(GRID_PHASES)]
        failed = grid[did_not_learn(grid, meta)]
        chosen = dict(zip(rows["strategy"], rows["chosen_lr_mult"]))
        below = failed[[lr < chosen.get(a, -math.inf) for a, lr in zip(failed["strategy"], failed["lr_mult"])]]
        print(
            f"grid runs that failed under the old rule: {len(failed)}, by the taxonomy: "
            f"{dict(sorted(Counter(failed['outcome']).items()))}"
        )
        print(
            f"  of them below the arm's chosen level: {len(below)}, by the taxonomy: "
            f"{dict(sorted(Counter(below['outcome']).items()))}"
        )
        old_stab = {a: float((~did_not_learn(g, meta)).mean()) for a, g in grid.groupby("strategy")}
        moved = [
            f"{a} {old_stab[a]:.2f}->{s:.2f}"
            for a, s in zip(rows["strategy"], rows["stability"])
            if a in old_stab and not math.isnan(s) and abs(old_stab[a] - s) > 1e-9
        ]
        print(f"stability moves for {len(moved)} of {len(rows)} arms" + (f": {', '.join(moved)}" if moved else ""))
        learned = rows[~rows["failed"].astype(bool)]
        print(f"tied with the leader (monotone rule): {int((learned['tied'] == True).sum())} of {len(learned)}")  # noqa: E712
        tune_k = tune_n = held_k = held_n = 0
        for _, r in learned.iterrows():
            g = mine[mine["strategy"] == r["strategy"]]
            at = g[(g["lr_mult"] == r["chosen_lr_mult"]) & (g["params"] == r["chosen_key"])]
            tuning = at["phase"].isin(TUNING_PHASES) | at["seed"].isin(
                set(g.loc[g["phase"].isin(TUNING_PHASES), "seed"])
            )
            bad = unstable(at)
            tune_k, tune_n = tune_k + int(bad[tuning].sum()), tune_n + int(tuning.sum())
            held_k, held_n = held_k + int(bad[~tuning].sum()), held_n + int((~tuning).sum())
        print(
            f"P(exploded or collapsed) at the chosen configurations: tuning seeds {tune_k}/{tune_n}, "
            f"held-out seeds {held_k}/{held_n}"
        )
        if task == "adding_rnn" and "muon" in set(rows["strategy"]):
            r = rows[rows["strategy"] == "muon"].iloc[0]
            g = mine[mine["strategy"] == "muon"]
            at = g[(g["lr_mult"] == r["chosen_lr_mult"]) & (g["params"] == r["chosen_key"])]
            values = ", ".join(f"seed {s} {v:.4g} ({o})" for s, v, o in zip(at["seed"], at["test"], at["outcome"]))
            measured = at["test"].astype(float).groupby(at["seed"]).mean().mean()
            print(f"muon at its choice: {values}")
            print(
                f"  mean as measured over every seed {measured:.4f}; old rule {old_quality(at, meta):.4f}; "
                f"new rule (tested seeds) {r['accuracy']:.4f}"
            )
    unstable_total = int(runs["outcome"].isin(UNSTABLE).sum())
    print(
        f"\nall tasks: {unstable_total} runs exploded or collapsed of {int(runs['status'].isin(SCORED).sum())} scored"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
