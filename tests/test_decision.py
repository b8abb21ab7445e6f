"""The decision table (analysis/decision.py): its rule on scores made to test it, the
committed pages open with it, and the README's copy is the published page's rows (a stale
copy fails here: `gradbench leaderboard leaderboard/results.jsonl --out leaderboard --readme
README.md` rewrites it)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import REPO

from gradbench.analysis import arm_cost, decision, findings
from gradbench.analysis.scoring import PER_TASK_COLUMNS, Scores


def per_task(rows: list[dict]) -> Scores:
    base = {c: None for c in PER_TASK_COLUMNS}
    filled = [
        {
            **base,
            "task": "mnist_mlp",
            "status": "scored",
            "failed": False,
            "metric": "accuracy",
            "higher_is_better": True,
            "tested_seeds": 3,
            "tested_on": "held-out",
            **r,
        }
        for r in rows
    ]
    return Scores(per_task=pd.DataFrame(filled), overall=pd.DataFrame(), weights={})


ARM = {"effect_lo": 0.0, "effect_hi": 0.1, "effect_p_holm": 0.01}


def test_the_top_group_is_the_eligible_arms_tied_with_the_leader_best_effect_first():
    s = per_task(
        [
            {"strategy": "baseline", "headroom": 1.0, "tied": False, "leader": False},
            # the quality leader, but with less headroom than baseline: left out, and named
            {"strategy": "a", "headroom": 0.5, "effect": 0.09, "tied": True, "leader": True, **ARM},
            {"strategy": "b", "headroom": 1.0, "effect": 0.03, "tied": True, "leader": False, **ARM},
            {"strategy": "c", "headroom": 3.0, "effect": 0.05, "tied": True, "leader": False, **ARM},
            {"strategy": "d", "headroom": 3.0, "effect": 0.08, "tied": False, "leader": False, **ARM},
            {"strategy": "e", "headroom": 3.0, "effect": 0.2, "tied": True, "failed": True, **ARM},
        ]
    )
    (row,) = decision.rows(s)
    assert row["use"] == ["c", "b"] and row["left_out"] == ["a"]
    assert row["effect"] == 0.05 and row["headroom_gain"] == 2.0 and row["cost"] is None
    text = decision.table([row])
    assert "`c`, `b`; better quality, less headroom than baseline: `a`" in text
    assert "+0.05 accuracy [+0, +0.1], Holm p 0.01 |" in text and "+2.0 octaves" in text and "not measured" in text


def test_with_no_eligible_arm_tied_the_best_effect_stands_alone_and_baseline_can_be_the_answer():
    s = per_task(
        [
            {"strategy": "baseline", "headroom": 1.0, "tied": False, "leader": False},
            {"strategy": "b", "headroom": 2.0, "effect": 0.01, "tied": False, "leader": False, **ARM},
            {"strategy": "c", "headroom": 2.0, "effect": 0.04, "tied": False, "leader": False, **ARM},
        ]
    )
    assert decision.rows(s)[0]["use"] == ["c"]
    worse = per_task(
        [
            {"strategy": "baseline", "headroom": 1.0, "tied": True, "leader": True},
            {"strategy": "b", "headroom": 2.0, "effect": -0.02, "tied": False, "leader": False, **ARM},
        ]
    )
    (row,) = decision.rows(worse)
    assert row["use"] == ["baseline"] and "no arm beats baseline" in decision.table([row])


def test_a_lower_bound_headroom_stays_eligible_and_no_stable_level_does_not():
    s = per_task(
        [
            {"strategy": "baseline", "headroom": 2.0, "top_stable": False, "tied": False, "leader": False},
            # never unstable on the grid: its headroom is at least 1.0, so not known to be below
            {"strategy": "a", "headroom": 1.0, "top_stable": True, "effect": 0.05, "tied": True, "leader": True, **ARM},
            # no stable level at all: below any baseline that had one
            {"strategy": "b", "headroom": None, "effect": 0.09, "tied": True, "leader": False, **ARM},
        ]
    )
    (row,) = decision.rows(s)
    assert row["use"] == ["a"] and row["left_out"] == []
    assert "≥ -1.0 octaves" in decision.table([row])


def test_a_fallback_arm_must_be_significant_and_lower_is_better_reads_so():
    s = per_task(
        [
            {"strategy": "baseline", "headroom": 1.0, "tied": False, "leader": False, "metric": "mse"},
            {
                "strategy": "b",
                "headroom": 2.0,
                "effect": -0.3,
                "tied": False,
                "leader": False,
                "metric": "mse",
                **{**ARM, "effect_p_holm": 0.2},
            },
        ],
    )
    s.per_task["higher_is_better"] = False
    (row,) = decision.rows(s)
    assert row["use"] == ["baseline"]  # b's effect is not significant: baseline stays the answer
    s.per_task.loc[s.per_task["strategy"] == "b", "effect_p_holm"] = 0.01
    (row,) = decision.rows(s)
    text = decision.table([row])
    assert row["use"] == ["b"] and "-0.3 mse (lower is better)" in text and "(n.s.)" not in text
    s.per_task.loc[s.per_task["strategy"] == "b", "effect"] = 0.3  # a significant rise in mse
    s.per_task.loc[s.per_task["strategy"] == "b", "tied"] = True
    assert "(worse)" in decision.table(decision.rows(s))


def test_a_task_whose_baseline_learned_nothing_says_its_effects_are_against_chance():
    s = per_task(
        [
            {"strategy": "baseline", "failed": True, "tied": None, "leader": None},
            {"strategy": "b", "headroom": None, "effect": 0.2, "tied": True, "leader": True, **ARM},
        ]
    )
    (row,) = decision.rows(s)
    assert row["use"] == ["b"] and "baseline learned nothing" in decision.table([row])


def test_the_contents_link_each_heading_by_githubs_anchor():
    from gradbench.analysis.page import _anchor

    assert _anchor("Which arms reach each task's target") == "which-arms-reach-each-tasks-target"
    assert _anchor("Task `mnist_mlp`") == "task-mnist_mlp"
    assert _anchor("Composite view across tasks (optional)") == "composite-view-across-tasks-optional"
    assert _anchor("What the literature predicts, and what we measured") == (
        "what-the-literature-predicts-and-what-we-measured"
    )


def test_a_cost_is_read_from_the_saved_measurements():
    s = per_task(
        [
            {"strategy": "baseline", "headroom": 1.0, "tied": False, "leader": False},
            {"strategy": "c", "headroom": 2.0, "effect": 0.04, "tied": True, "leader": True, **ARM},
        ]
    )
    costs = {"tasks": {"mnist_mlp": {"c": {"ratio": 1.234, "extra_mb": -0.2}}}}
    assert "1.23× step, +0 MB" in decision.table(decision.rows(s, costs))


@pytest.mark.parametrize("folder", ["leaderboard", "leaderboard/measure_demo", "leaderboard/protocol_demo"])
def test_a_committed_page_opens_with_the_decision_table(folder):
    page = (REPO / folder / "README.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", page, flags=re.M)
    assert headings[0] == "What to use"
    first_table = page.split("## What to use", 1)[1].split("\n\n", 2)[1]
    assert first_table.startswith("| " + " | ".join(decision.HEAD) + " |")


def test_the_readmes_decision_table_is_the_published_pages_rows():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count(decision.START) == 1 and readme.count(decision.END) == 1
    copy = readme.split(decision.START, 1)[1].split(decision.END, 1)[0]
    table = "\n".join(line for line in copy.strip().splitlines() if line.startswith("|"))
    page = (REPO / "leaderboard" / "README.md").read_text(encoding="utf-8")
    on_page = page.split("## What to use", 1)[1].split("\n\n", 2)[1]
    assert table == on_page.strip()


@pytest.mark.slow
def test_the_readmes_decision_table_is_what_the_records_give_now():
    from gradbench.analysis import runs, scoring
    from gradbench.core.record import latest, typed
    from gradbench.store import jsonl

    records = latest(typed(jsonl.read(REPO / "leaderboard" / "results.jsonl")))
    rows = decision.rows(scoring.score(records), arm_cost.saved(REPO / "leaderboard"), decision.task_steps(records))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert decision.table(rows) in readme, "stale: run gradbench leaderboard ... --readme README.md"
    # the run-hours behind it, summed from the same records (no hand-typed figure)
    block = readme.split(decision.START, 1)[1].split(decision.END, 1)[0]
    assert runs.spent(records) in block and "run-hours" in runs.spent(records)
    # the three findings, from the same scores
    items = findings.findings(scoring.score(records), records)
    assert len(items) == 3 and all(f"{i}. {text}" in readme for i, text in enumerate(items, 1)), "stale findings"


def test_the_readme_states_three_findings_written_by_the_leaderboard_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count(findings.START) == 1 and readme.count(findings.END) == 1
    block = readme.split(findings.START, 1)[1].split(findings.END, 1)[0]
    assert "written by `gradbench leaderboard leaderboard/results.jsonl" in block
    assert re.findall(r"^(\d)\. ", block, flags=re.M) == ["1", "2", "3"]


def test_the_findings_name_the_arms_that_beat_baseline_and_the_verdicts():
    from fakes import make_record

    from gradbench.analysis import scoring

    recs = []
    for seed in range(8):
        recs += [
            make_record("mnist_mlp", "baseline", seed, test=0.90 + 0.001 * seed),
            make_record("mnist_mlp", "batchnorm", seed, test=0.97 + 0.001 * seed),
            make_record("mnist_mlp", "clip_norm", seed, test=0.90 + 0.001 * ((seed + 3) % 8)),
        ]
    s = scoring.score(recs)
    first = findings.beats_baseline(s)
    assert "on 1 of 1 tasks: `mnist_mlp` (1: `batchnorm`)" in first and "clip_norm" not in first
    assert "3 of 3 on" not in findings.ties(s) and "on `mnist_mlp`, leader `batchnorm`" in findings.ties(s)
    assert findings.literature_verdicts(s, recs).startswith("Of the 10 claims from the literature")


ORDER = [
    "What to use",
    "Stability vs accuracy",
    "Contents",
    "Which arms reach each task's target",
    "Task",
    "Composite view across tasks (optional)",
    "What the literature predicts, and what we measured",
    "What each mitigation costs",
    "How scores are computed",
    "Pre-registration and changes after records were seen",
    "Provenance",
]


@pytest.mark.parametrize("folder", ["leaderboard", "leaderboard/measure_demo", "leaderboard/protocol_demo"])
def test_a_page_answers_first_then_shows_the_evidence_and_ends_with_provenance(folder):
    page = (REPO / folder / "README.md").read_text(encoding="utf-8")
    headings = [h.split(" `")[0] for h in re.findall(r"^## (.+)$", page, flags=re.M)]
    seen = [h for h in dict.fromkeys(headings)]  # the tasks' sections as one
    assert seen == [h for h in ORDER if h in seen] and seen[0] == "What to use" and seen[-1] == "Provenance"
    contents = page.split("## Contents", 1)[1].split("\n## ", 1)[0]
    after = re.findall(r"^## (.+)$", page.split("## Contents", 1)[1], flags=re.M)
    assert contents.count("\n- [") == len(after)  # every section after the contents is listed


def test_the_readme_reaches_its_first_command_within_40_lines_and_its_picture_exists():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("```"))
    assert first + 1 <= 40 and lines[first + 1].startswith("./scripts/quick.sh")
    pictures = [m for line in lines[:first] for m in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", line)]
    assert pictures and all((REPO / p).is_file() for p in pictures)


def test_a_composite_rank_the_seeds_do_not_settle_is_marked():
    """The published page's overall and per-task composite tables mark ≈ on each rank whose
    top-3 place holds in 10-90% of the saved seed-bootstrap resamples, and only those."""
    import json

    saved = json.loads((REPO / "leaderboard" / "rank_stability.json").read_text())
    page = (REPO / "leaderboard" / "README.md").read_text(encoding="utf-8")
    overall = page.split("## Composite view across tasks (optional)", 1)[1].split("### Rank stability", 1)[0]
    marked = dict(re.findall(r"^\| (\d+(?: ≈)?) \| `([^`]+)` \|", overall, flags=re.M)[::-1])
    checked = 0
    for rank, arm in re.findall(r"^\| (\d+(?: ≈)?) \| `([^`]+)` \|", overall, flags=re.M):
        share = saved["in_top"]["overall"].get(arm)
        if share is not None:
            assert rank.endswith("≈") == (0.1 < share < 0.9), (arm, rank, share)
            checked += 1
    assert checked >= 3 and any(r.endswith("≈") for r in marked)


def test_the_run_hours_count_trained_runs_once_and_the_causes_apart():
    """runs.spent: a copy of another arm's run, and a run not trained, cost nothing; the
    causes part (a stress suite read beside the tasks) is named apart."""
    from fakes import make_record

    from gradbench.analysis import runs

    trained = [make_record("mnist_mlp", "baseline", seed, test=0.9) for seed in range(2)]
    trained = [r | {"timings": {**r.get("timings", {}), "wall_s": 1800.0}} for r in trained]
    copy = trained[0] | {"run_id": "c0ffee000000", "copy_of": trained[0]["run_id"]}
    assert runs.spent(trained + [copy]) == "These records took 1.0 run-hours: 2 trained runs, their summed run time."
    said = runs.spent(trained, causes=trained[:1])
    assert said.endswith("; the causes part another 0.5 (1 run).")
