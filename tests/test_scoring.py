"""Scoring rules on hand-built result records (no torch, no training)."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import numpy as np
import pytest
from fakes import make_record, suite_records  # hand-built run records (tests/fakes.py)

from gradbench.analysis import runs as runs_module
from gradbench.analysis import scoring
from gradbench.analysis.scoring import (
    DEFAULT_WEIGHTS,
    resolve_weights,
    score,
)
from gradbench.core.errors import UserError


def row(scores, task, strategy):
    pt = scores.per_task
    sel = pt[(pt["task"] == task) & (pt["strategy"] == strategy)]
    assert len(sel) == 1, (task, strategy)
    return sel.iloc[0]


def overall(scores, strategy):
    return scores.overall.set_index("strategy").loc[strategy]


# ----------------------------------------------------------------------------- rules


def test_diverged_seeds_lower_stability_and_accuracy():
    recs = [make_record(strategy=s, seed=i, test=0.95) for s in ("steady", "shaky") for i in range(3)]
    recs[-1] = make_record(strategy="shaky", seed=2, status="diverged", best_val=0.99)
    sc = score(recs)
    steady, shaky = row(sc, "mnist_mlp", "steady"), row(sc, "mnist_mlp", "shaky")
    assert steady["stability"] == 1.0
    assert shaky["stability"] == pytest.approx(2 / 3)
    # The diverged seed counts at chance (0.1), it is not dropped.
    assert shaky["accuracy"] == pytest.approx((0.95 + 0.95 + 0.1) / 3)
    assert shaky["accuracy"] < steady["accuracy"]
    assert shaky["composite"] < steady["composite"]
    assert (shaky["diverged"], shaky["stable_levels"], shaky["levels"]) == (1, 0, 1)


def test_stable_region_counts_levels_without_any_divergence():
    recs = [make_record(strategy="s", seed=i, lr=lr) for lr in (1.0, 10.0, 100.0) for i in range(2)]
    recs.append(make_record(strategy="s", seed=2, lr=100.0, status="diverged"))
    r = row(score(recs), "mnist_mlp", "s")
    assert (r["stable_levels"], r["levels"]) == (2, 3)
    assert r["stability"] == pytest.approx(6 / 7)


def test_chosen_level_counts_diverged_at_chance_and_ignores_test():
    recs = [
        # lr x10: the survivor has the best val, but the diverged seed counts at chance.
        make_record(strategy="s", seed=0, lr=10.0, best_val=0.99, test=0.99),
        make_record(strategy="s", seed=1, lr=10.0, status="diverged", best_val=0.99),
        # lr x1: a lower val but a much better test: test must not be used to choose.
        make_record(strategy="s", seed=0, lr=1.0, best_val=0.93, test=0.5),
        make_record(strategy="s", seed=1, lr=1.0, best_val=0.93, test=0.5),
    ]
    r = row(score(recs), "mnist_mlp", "s")
    assert r["chosen_lr_mult"] == 1.0
    assert r["accuracy"] == pytest.approx(0.5)


def test_chosen_level_tie_goes_to_smaller_lr():
    recs = [
        make_record(strategy="s", seed=0, lr=lr, best_val=0.95, test=t)
        for lr, t in ((10.0, 0.97), (3.0, 0.95), (30.0, 0.99))
    ]
    assert row(score(recs), "mnist_mlp", "s")["chosen_lr_mult"] == 3.0


def test_target_never_reached_gives_speed_zero():
    recs = []
    for i in range(3):
        recs.append(make_record(strategy="fast", seed=i, steps_to_target=100))
        recs.append(make_record(strategy="slow", seed=i, steps_to_target=400))
        recs.append(make_record(strategy="never", seed=i, steps_to_target=None))
    sc = score(recs)
    assert row(sc, "mnist_mlp", "fast")["speed"] == 1.0
    assert row(sc, "mnist_mlp", "slow")["speed"] == pytest.approx(0.25)
    never = row(sc, "mnist_mlp", "never")
    assert never["speed"] == 0.0 and math.isinf(never["steps_to_target"])


def test_speed_is_median_over_seeds_with_diverged_as_infinity():
    recs = [make_record(strategy="a", seed=i, steps_to_target=100) for i in range(3)]
    recs += [
        make_record(strategy="b", seed=0, steps_to_target=50),
        make_record(strategy="b", seed=1, status="diverged", steps_to_target=10),
        make_record(strategy="b", seed=2, steps_to_target=None),
    ]
    sc = score(recs)
    assert math.isinf(row(sc, "mnist_mlp", "b")["steps_to_target"])  # median of 50, inf, inf
    assert row(sc, "mnist_mlp", "b")["speed"] == 0.0
    assert row(sc, "mnist_mlp", "a")["speed"] == 1.0


def test_nobody_reaching_target_scores_speed_zero_for_all():
    recs = [make_record(strategy=s, steps_to_target=None) for s in ("a", "b")]
    assert list(score(recs).per_task["speed"]) == [0.0, 0.0]


def test_equal_composites_share_rank_in_a_deterministic_order():
    recs = []
    for s in ("zeta", "alpha", "mid"):
        for i in range(3):
            recs.append(make_record(strategy=s, seed=i, test=0.8 if s == "mid" else 0.95))
    sc = score(recs)
    pt = sc.per_task
    assert list(pt["strategy"]) == ["alpha", "zeta", "mid"]
    assert list(pt["rank"]) == [1, 1, 3]  # "min" method
    shuffled = recs[:]
    random.Random(1).shuffle(shuffled)
    again = score(shuffled)
    assert again.per_task.equals(pt) and again.overall.equals(sc.overall)
    assert list(sc.overall["rank"]) == [1, 1, 3]


def test_a_task_missing_from_results_has_no_rows():
    sc = score([r for r in suite_records() if r["task"] == "adding_rnn"])
    assert set(sc.per_task["task"]) == {"adding_rnn"}
    empty = score([])
    assert empty.per_task.empty and empty.overall.empty


def test_na_strategy_is_not_penalised_in_overall_rank():
    sc = score(suite_records())
    na = row(sc, "adding_rnn", "clip_norm+batchnorm")
    assert na["status"] == "n/a" and _isna(na["rank"]) and _isna(na["composite"])
    assert na["reason"] == "batchnorm does not apply to recurrent models"
    o = overall(sc, "clip_norm+batchnorm")
    assert (o["tasks_ranked"], o["tasks_na"]) == (1, 1)
    # Its mean rank is its rank on the only task where it applies, as a share of that field.
    r, n = row(sc, "mnist_mlp", "clip_norm+batchnorm")["rank"], 4
    assert o["mean_rank"] == pytest.approx((r - 1) / (n - 1))


def test_errors_are_excluded_from_scores_but_counted():
    clean = [make_record(strategy="s", seed=i, test=0.9 + 0.02 * i) for i in range(3)]
    broken = clean + [make_record(strategy="s", seed=3, status="error", reason="boom")]
    a, b = row(score(clean), "mnist_mlp", "s"), row(score(broken), "mnist_mlp", "s")
    for col in ("stability", "accuracy", "accuracy_lo", "accuracy_hi", "speed", "composite"):
        assert a[col] == b[col], col
    assert (a["errors"], b["errors"], b["runs"], b["scored"]) == (0, 1, 4, 3)
    assert overall(score(broken), "s")["errors"] == 1


def test_only_errors_shows_error_and_is_not_ranked():
    recs = [make_record(strategy="ok"), make_record(strategy="bug", status="error", reason="ValueError: bad shape")]
    sc = score(recs)
    bug = row(sc, "mnist_mlp", "bug")
    assert bug["status"] == "error" and bug["errors"] == 1 and _isna(bug["rank"])
    assert bug["reason"] == "ValueError: bad shape"
    assert overall(sc, "bug")["tasks_error"] == 1 and _isna(overall(sc, "bug")["rank"])
    # one strategy ranked on the task: nothing to rank it against, so no overall rank either
    assert _isna(overall(sc, "ok")["rank"]) and row(sc, "mnist_mlp", "ok")["rank"] == 1


def test_weights_override_and_validation():
    recs = [
        make_record(strategy="fast_bad", test=0.5, steps_to_target=50),
        make_record(strategy="slow_good", test=0.95, steps_to_target=500),
    ]
    default = score(recs)
    assert row(default, "mnist_mlp", "slow_good")["rank"] == 1
    speedy = score(recs, {"speed": 1.0, "stability": 0, "accuracy": 0})
    assert row(speedy, "mnist_mlp", "fast_bad")["rank"] == 1
    assert row(speedy, "mnist_mlp", "slow_good")["composite"] == pytest.approx(0.1)
    # A partial override keeps the other defaults; weights are normalised to sum to 1.
    w = resolve_weights({"speed": 0.4})
    assert w == pytest.approx({"stability": 0.4 / 1.2, "speed": 0.4 / 1.2, "accuracy": 0.4 / 1.2})
    assert resolve_weights(None) == pytest.approx(DEFAULT_WEIGHTS)
    with pytest.raises(UserError, match="stability, speed, accuracy") as e:
        score(recs, {"acuracy": 1.0})
    assert "acuracy" in str(e.value)
    for bad in (
        {"speed": -1},
        {"speed": "fast"},
        {"speed": True},
        {"speed": float("nan")},
        {"stability": 0, "speed": 0, "accuracy": 0},
        [("speed", 1)],
    ):
        with pytest.raises(UserError):
            resolve_weights(bad)


def test_mse_lower_is_better_in_chosen_level_and_normalisation():
    recs = [
        # best (lowest) mean best_val is at lr x10
        make_record("adding_rnn", "a", 0, 1.0, best_val=0.05, test=0.05),
        make_record("adding_rnn", "a", 0, 10.0, best_val=0.02, test=0.02),
        make_record("adding_rnn", "b", 0, 1.0, best_val=0.167, test=0.167),  # chance
        make_record("adding_rnn", "c", 0, 1.0, best_val=0.0935, test=0.0935),  # halfway
        make_record("adding_rnn", "d", 0, 1.0, status="diverged", best_val=0.001),
    ]
    sc = score(recs)
    a, b, c, d = (row(sc, "adding_rnn", s) for s in "abcd")
    assert a["chosen_lr_mult"] == 10.0 and a["accuracy"] == pytest.approx(0.02)
    assert a["accuracy_norm"] == 1.0 and b["accuracy_norm"] == 0.0
    assert c["accuracy_norm"] == pytest.approx((0.167 - 0.0935) / (0.167 - 0.02))
    assert d["accuracy"] == pytest.approx(0.167)  # diverged = chance, however good best_val was
    assert a["rank"] == 1


def test_paired_win_rate_against_baseline():
    recs = []
    for i, (base, mine) in enumerate(((0.90, 0.95), (0.90, 0.85), (0.90, 0.90), (0.90, 0.99))):
        recs.append(make_record(strategy="baseline", seed=i, test=base))
        recs.append(make_record(strategy="s", seed=i, test=mine))
    recs.append(make_record(strategy="s", seed=9, test=0.99))  # no baseline on seed 9
    sc = score(recs)
    s = row(sc, "mnist_mlp", "s")
    assert s["win_rate"] == pytest.approx((1 + 0 + 0.5 + 1) / 4) and s["paired_seeds"] == 4
    assert _isna(row(sc, "mnist_mlp", "baseline")["win_rate"])
    lonely = score([make_record(strategy="s", seed=i) for i in range(2)])
    assert _isna(row(lonely, "mnist_mlp", "s")["win_rate"])  # no baseline arm


def test_paired_win_rate_respects_lower_is_better():
    recs = [make_record("adding_rnn", "baseline", test=0.05), make_record("adding_rnn", "s", test=0.03)]
    assert row(score(recs), "adding_rnn", "s")["win_rate"] == 1.0


def test_the_interval_depends_only_on_its_rows_values():
    from gradbench.analysis.stats import t_interval

    assert t_interval(np.array([0.9])) == (0.9, 0.9, 0.9)
    assert t_interval(np.array([0.9, 0.9, 0.9]))[1:] == (0.9, 0.9)
    # In the scores the interval depends only on the row's own values, not on other rows.
    sc = score(suite_records())
    alone = score([r for r in suite_records() if r["strategy"]["label"] == "clip_norm"])
    for task in ("mnist_mlp", "adding_rnn"):
        for col in ("accuracy", "accuracy_lo", "accuracy_hi"):
            assert row(sc, task, "clip_norm")[col] == row(alone, task, "clip_norm")[col]


def test_suite_scores_are_sane():
    sc = score(suite_records())
    pt = sc.per_task
    ranked = pt[pt["status"] == "scored"]
    for col in ("stability", "speed", "accuracy_norm", "composite"):
        assert ranked[col].between(0, 1).all(), col
    assert ranked.groupby("task")["rank"].min().eq(1).all()
    assert row(sc, "mnist_mlp", "clip_value")["errors"] == 1
    assert list(sc.overall.columns)[:2] == ["strategy", "rank"]


def test_last_record_of_a_run_wins():
    first = make_record(strategy="s", status="error", reason="boom", run_id="a" * 12)
    rerun = make_record(strategy="s", test=0.95, run_id="a" * 12)
    r = row(score([first, rerun]), "mnist_mlp", "s")
    assert (r["status"], r["errors"], r["runs"]) == ("scored", 0, 1)


def test_scoring_and_leaderboard_import_neither_torch_nor_lightning():
    code = (
        "import sys, gradbench.analysis.scoring, gradbench.analysis.page; "
        "assert 'torch' not in sys.modules and 'lightning' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _isna(x) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


# --- failures, "= baseline" and rankings without artifacts (issue: results you can trust) ---
def test_a_run_that_never_learned_is_under_training_not_instability():
    """final_val no better than chance + 1/4 of the gap to the target, never halfway there:
    never learned. It does not lower stability; its measured test value counts; an arm that
    never learns anywhere fails the task (at chance) and ranks last."""
    recs = [make_record(strategy="baseline", seed=s, test=0.93, best_val=0.94) for s in range(2)]
    recs += [make_record(strategy="flat", seed=s, test=0.2, best_val=0.2) for s in range(2)]  # 0.2 < 0.1 + 0.2125
    recs += [make_record(strategy="half", seed=0, test=0.2, best_val=0.2), make_record(strategy="half", seed=1)]
    sc = score(recs)
    flat, half = row(sc, "mnist_mlp", "flat"), row(sc, "mnist_mlp", "half")
    assert (flat["never_learned"], flat["collapsed"], flat["exploded"]) == (2, 0, 0)
    assert (flat["stability"], bool(flat["failed"]), flat["outcomes_inferred"]) == (1.0, True, 2)
    assert flat["accuracy"] == 0.1 and flat["rank"] == 3 and _isna(flat["chosen_lr_mult"])
    assert (half["never_learned"], half["stability"], bool(half["failed"])) == (1, 1.0, False)
    assert half["accuracy"] == pytest.approx((0.2 + 0.95) / 2)  # the seed that never learned, as measured
    assert half["failed_seeds"] == "seed 0 never learned (0.2)"


def test_a_run_that_collapsed_after_progress_counts_against_stability():
    """Halfway to the target and more, then back below the bar: collapsed, like an explosion
    for stability; its finite test value counts as measured."""
    recs = [make_record(strategy="s", seed=0, test=0.95), make_record(strategy="s", seed=1, test=0.15, best_val=0.9)]
    recs[1]["metrics"]["final_val"] = 0.12
    r = row(score(recs), "mnist_mlp", "s")
    assert (r["collapsed"], r["exploded"], r["never_learned"], r["stability"]) == (1, 0, 0, 0.5)
    assert r["accuracy"] == pytest.approx((0.95 + 0.15) / 2)
    assert r["max_stable_lr"] != r["max_stable_lr"]  # NaN: the only level has a collapsed seed


def test_a_failed_seeds_value_is_measured_but_never_worse_than_chance():
    """An mse run that ended far above chance counts at chance; one that ended at 0.15, better
    than chance (about 0.167) but short of learning, counts at 0.15; a diverged one at chance."""
    recs = [make_record("adding_rnn", "s", seed=0, test=0.01)]
    chance = recs[0]["metrics"]["chance"]
    recs += [make_record("adding_rnn", "s", seed=1, test=3.0, best_val=3.0)]
    recs += [make_record("adding_rnn", "s", seed=2, test=0.15, best_val=0.15)]
    recs += [make_record("adding_rnn", "s", seed=3, status="diverged", best_val=0.01)]
    r = row(score(recs), "adding_rnn", "s")
    assert 0.15 < chance < 3.0 and r["accuracy"] == pytest.approx((0.01 + chance + 0.15 + chance) / 4)
    assert r["exploded"] == 1 and r["never_learned"] == 2


def test_the_chosen_level_is_never_one_where_every_seed_failed():
    """At lr x10 both seeds collapse late (their best validation value was high before); the
    level where a seed learned is chosen even though its mean best_val is lower."""
    recs = [make_record(strategy="s", seed=s, lr=10.0, test=0.15, best_val=0.97) for s in range(2)]
    for r in recs:
        r["metrics"]["final_val"] = 0.12
    recs += [make_record(strategy="s", seed=s, lr=1.0, test=0.9, best_val=0.9) for s in range(2)]
    r = row(score(recs), "mnist_mlp", "s")
    assert r["chosen_lr_mult"] == 1.0 and r["collapsed"] == 2 and r["stability"] == 0.5


def test_an_arm_whose_runs_are_baselines_is_shown_as_equal_to_baseline():
    recs = [make_record(strategy="baseline", seed=s) for s in range(2)]
    same = [make_record(strategy="relu", seed=s) for s in range(2)]
    for r, b in zip(same, recs):
        r["spec"] = {**b["spec"], "strategy": "relu", "strategy_params": {"relu": {}}}
    sc = score(recs + same)
    r = row(sc, "mnist_mlp", "relu")
    assert r["status"] == "= baseline" and _isna(r["rank"])
    o = overall(sc, "relu")
    assert (o["tasks_ranked"], o["tasks_same"]) == (0, 1)


def test_a_task_where_every_strategy_failed_counts_for_none_overall():
    recs = [make_record("adding_rnn", st, seed=s, test=0.166, best_val=0.166) for st in ("a", "b") for s in range(2)]
    recs += [
        make_record("mnist_mlp", st, seed=s, test=t, best_val=t)
        for st, t in (("a", 0.96), ("b", 0.9))
        for s in range(2)
    ]
    sc = score(recs)
    assert row(sc, "adding_rnn", "a")["rank"] == row(sc, "adding_rnn", "b")["rank"] == 2
    assert overall(sc, "a")["tasks_ranked"] == 1 and overall(sc, "a")["mean_rank"] == 0.0
    assert overall(sc, "b")["mean_rank"] == 1.0


def test_overall_ranks_a_strategy_only_against_those_ranked_on_the_same_tasks():
    # "only" applies to mnist alone and wins it; "broad" is second on mnist and wins adding
    vals = {
        "mnist_mlp": {"only": 0.97, "broad": 0.96, "baseline": 0.9, "weak": 0.85},
        "adding_rnn": {"broad": 0.01, "baseline": 0.03, "weak": 0.04},
    }
    recs = [
        make_record(task, st, seed=s, test=v, best_val=v)
        for task, by in vals.items()
        for st, v in by.items()
        for s in range(2)
    ]
    # "same" is baseline's own runs on adding: it stands where baseline stands there
    for s in range(2):
        b = make_record("adding_rnn", "baseline", seed=s, test=0.03, best_val=0.03)
        recs.append({**b, "strategy": {"label": "same", "names": ["same"], "params": {}}, "run_id": f"same{s}"})
        recs[-1]["spec"] = {**b["spec"], "strategy": "same", "strategy_params": {}}
        recs += [make_record("mnist_mlp", "same", seed=s, test=0.8, best_val=0.8)]
    sc = score(recs)
    ov = sc.overall.set_index("strategy")
    both = "adding_rnn, mnist_mlp"
    assert ov.loc["only", "compared_on"] == "mnist_mlp" and _isna(ov.loc["only", "rank"])  # alone in its field
    assert row(sc, "adding_rnn", "same")["status"] == "= baseline"
    assert ov.loc["same", "compared_on"] == both and ov.loc["same", "tasks_ranked"] == 2
    base = ov.loc["baseline"]
    # same's adding rank is baseline's (2 of 3: share 0.5); on mnist it is last (share 1)
    assert row(sc, "adding_rnn", "baseline")["rank"] == 2
    assert ov.loc["same", "mean_rank"] == pytest.approx((0.5 + 1.0) / 2) and base["mean_rank"] < 1.0
    assert ov.loc["broad", "rank"] == 1 and list(sc.overall["strategy"])[-1] == "only"  # the largest field first
    assert (sc.overall["compared_on"] == both).sum() == 4


def test_a_copy_of_baseline_on_every_task_is_shown_not_ranked_and_pushes_no_one_down():
    recs = [
        make_record(strategy=st, seed=s, test=v, best_val=v)
        for st, v in (("baseline", 0.9), ("worse", 0.8), ("better", 0.95))
        for s in range(2)
    ]
    for s in range(2):
        b = make_record(strategy="baseline", seed=s, test=0.9, best_val=0.9)
        recs.append({**b, "strategy": {"label": "copy", "names": ["copy"], "params": {}}, "run_id": f"copy{s}"})
        recs[-1]["spec"] = {**b["spec"], "strategy": "copy", "strategy_params": {}}
    ov = score(recs).overall.set_index("strategy")
    assert _isna(ov.loc["copy", "rank"]) and ov.loc["copy", "mean_rank"] == ov.loc["baseline", "mean_rank"]
    assert list(ov["rank"].dropna()) == [1, 2, 3]  # better, baseline, worse: the copy takes no rank


def test_overall_rank_stability_keeps_the_first_tables_strategies_and_tasks():
    from gradbench.analysis import rank_stability

    vals = {"a": 0.97, "b": 0.95, "c": 0.93, "d": 0.91}
    recs = [make_record("mnist_mlp", st, seed=s, test=v, best_val=v) for st, v in vals.items() for s in range(2)]
    # adding: only "d" learns, so the first table is both tasks; a resample that loses d's seeds
    # would make adding flat and leave a table of mnist alone
    recs += [
        make_record("adding_rnn", st, seed=s, test=0.01 if st == "d" else 0.166, best_val=0.01 if st == "d" else 0.166)
        for st in vals
        for s in range(2)
    ]
    sc = score(recs)
    field = rank_stability.overall_field(sc)
    assert field == (["adding_rnn", "mnist_mlp"], ["d", "a", "b", "c"])  # the table's order
    assert rank_stability.top(sc)["overall"] == tuple(sc.overall["strategy"][:3])  # the table's own order
    flat = score(
        [r for r in recs if r["task"] == "mnist_mlp"]
        + [make_record("adding_rnn", st, seed=s, test=0.166, best_val=0.166) for st in vals for s in range(2)]
    )
    # the same field read on records where adding is flat: still those strategies, mnist's order
    assert rank_stability.top(flat, field)["overall"] == ("a", "b", "c")
    assert "overall" not in rank_stability.top(
        score([make_record("adding_rnn", st, seed=s, test=0.166, best_val=0.166) for st in vals for s in range(2)])
    )


def test_rescoring_the_committed_records_has_no_such_artifacts():
    """On the committed leaderboard: no arm that failed on every task where it applies is in the
    top half of its overall field, no chosen level is one where every seed failed, and the seven arms that
    are baseline's own runs (relu, sgd_momentum, tanh, kaiming where they are the default) show
    as '= baseline'."""
    from conftest import REPO

    from gradbench.store import jsonl

    records = jsonl.load(REPO / "leaderboard" / "results.jsonl")
    sc = score(records)
    pt, ov = sc.per_task, sc.overall
    ranked = pt[pt["status"] == "scored"]
    failed_everywhere = {s for s, g in ranked.groupby("strategy") if g["failed"].astype(bool).all()}
    # within its field: a rank compares a strategy only with those ranked on the same tasks
    field_size = ov.groupby("compared_on")["rank"].transform("count")
    top_half = set(ov.loc[ov["rank"].astype(float) <= field_size / 2, "strategy"])
    assert failed_everywhere and not failed_everywhere & top_half
    runs = scoring.runs_frame(records)
    for task in sorted(runs["task"].unique()):
        t = runs[runs["task"] == task]
        failed_run = (t["status"] == "diverged") | (
            (t["status"] == "ok") & ~runs_module.learned(t["final_val"], runs_module.task_meta(runs, task))
        )
        for _, r in ranked[ranked["task"] == task].dropna(subset=["chosen_lr_mult"]).iterrows():
            at = t[(t["strategy"] == r["strategy"]) & (t["lr_mult"] == r["chosen_lr_mult"])]
            assert not failed_run[at.index].all(), (task, r["strategy"], r["chosen_lr_mult"])
    same = {
        (t, s)
        for t, s in zip(pt.loc[pt["status"] == "= baseline", "task"], pt.loc[pt["status"] == "= baseline", "strategy"])
    }
    assert same == {
        ("adding_rnn", "sgd_momentum"),
        ("adding_rnn", "tanh"),
        ("cifar10_cnn", "kaiming"),
        ("cifar10_cnn", "relu"),
        ("cifar10_cnn", "sgd_momentum"),
        ("mnist_mlp", "relu"),
        ("mnist_mlp", "sgd_momentum"),
    }


def test_wilson_interval_matches_the_formula():
    from gradbench.analysis.stats import wilson

    assert wilson(0, 2) == pytest.approx((0.0, 0.0, 0.6576198))
    p, lo, hi = wilson(3, 10)
    assert p == 0.3 and lo == pytest.approx(0.1077913, abs=1e-6) and hi == pytest.approx(0.6032219, abs=1e-6)


def test_learning_rate_response_reads_stability_off_the_levels():
    """Levels x0.5 .. x4: all learn up to x2, one of two seeds diverges at x4. Max stable lr x2,
    the stable range spans the levels within 10% of the best, and P(diverge) is at the chosen
    level."""
    recs = []
    for lr, acc in ((0.5, 0.90), (1.0, 0.95), (2.0, 0.94), (4.0, 0.93)):
        for s in range(2):
            diverged = lr == 4.0 and s == 1
            recs.append(
                make_record(
                    strategy="s", seed=s, lr=lr, status="diverged" if diverged else "ok", test=acc, best_val=acc
                )
            )
    r = row(score(recs), "mnist_mlp", "s")
    assert r["max_stable_lr"] == 2.0 and not r["top_stable"]
    assert r["chosen_lr_mult"] == 1.0 and (r["unstable_k"], r["unstable_n"]) == (0, 2)
    assert r["tested_on"] == "tuning"  # no protocol: the levels' seeds chose, and are all there is
    assert r["headroom"] == pytest.approx(1.0)  # x2 stable, tuned at x1
    # best 0.95; within 0.1 x (0.95 - 0.1) = 0.085 of it: x0.5 .. x2 (x4's mean is (0.93 + 0.1) / 2)
    assert r["stable_octaves"] == pytest.approx(2.0)
    gaps = [0.05, 0.0, 0.01, 0.95 - (0.93 + 0.1) / 2]
    assert r["lr_sensitivity"] == pytest.approx(sum(gaps) / 4 / (0.95 - 0.1))


def test_rank_stability_prints_a_share_per_task_and_overall():
    from conftest import REPO

    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "rank_stability.py"),
            str(REPO / "leaderboard" / "results.jsonl"),
            "--resamples",
            "2",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for key in ("adding_rnn", "cifar10_cnn", "mnist_mlp", "overall"):
        line = next(x for x in out.splitlines() if x.startswith(key))
        assert "%" in line, line


def test_the_statistics_match_their_textbook_values():
    from gradbench.analysis.stats import holm, paired_t_p, t975, t_interval

    # printed tables: t(0.975, df) to 3 decimals
    assert [round(t975(df), 3) for df in (1, 4, 30, 90)] == [12.706, 2.776, 2.042, 1.987]
    assert t975(10**6) == pytest.approx(1.96, abs=1e-3) and math.isnan(t975(0))
    # exact, not a 3-decimal table (which put t(0.975, 1) at 12.706 and moved interval ends in
    # the 4th digit): the closed forms on 1 and 2 degrees of freedom
    assert t975(1) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-12)
    assert t975(2) == pytest.approx(0.95 * math.sqrt(2 / (4 * 0.975 * 0.025)), rel=1e-12)
    mean, lo, hi = t_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (mean, lo, hi) == pytest.approx(
        (3.0, 3.0 - 2.776 * math.sqrt(2.5 / 5), 3.0 + 2.776 * math.sqrt(2.5 / 5)), abs=1e-3
    )
    # cut at the metric's range: an mse interval stops at 0, an accuracy one at 1
    assert t_interval([1.0, 2.0, 3.0, 4.0, 5.0], (2.0, 3.5)) == pytest.approx((3.0, 2.0, 3.5))
    mse = [0.0001, 0.0002, 0.0015]
    assert t_interval(mse)[1] < 0 and t_interval(mse, (0.0, math.inf))[1:] == (0.0, t_interval(mse)[2])
    # no spread: what a sign-flip test gives, 2^-n; otherwise the t-test, here against the
    # closed form of Student's t tail on 3 degrees of freedom
    assert paired_t_p([1.0, 1.0]) == 0.25 and paired_t_p([1.0] * 5) == 1 / 32 and paired_t_p([-1.0, -1.0]) == 1.0
    d = np.array([1.0, 2.0, 3.0, 0.0])
    x = d.mean() / (d.std(ddof=1) / 2) / math.sqrt(3)
    assert paired_t_p(d) == pytest.approx(0.5 - (math.atan(x) + x / (1 + x * x)) / math.pi, rel=1e-9)
    assert holm([0.01, 0.04, 0.03], alpha=0.05) == [True, False, False]
    assert holm([0.01, 0.02, 0.03], alpha=0.1) == [True, True, True]


def test_tied_groups_need_seeds_to_separate():
    """With 2 seeds nobody can be told apart from the leader; with 6 a clearly worse strategy is."""

    def suite(seeds):
        recs = []
        for s in range(seeds):
            recs.append(make_record(strategy="good", seed=s, test=0.95 + 0.001 * s, best_val=0.95))
            recs.append(make_record(strategy="close", seed=s, test=0.949 + 0.001 * s, best_val=0.949))
            recs.append(make_record(strategy="bad", seed=s, test=0.80 + 0.001 * s, best_val=0.80))
        return score(recs)

    few, many = suite(2), suite(6)
    assert [bool(row(few, "mnist_mlp", s)["tied"]) for s in ("good", "close", "bad")] == [True, True, True]
    assert [bool(row(many, "mnist_mlp", s)["tied"]) for s in ("good", "close", "bad")] == [True, False, False]
    assert row(many, "mnist_mlp", "bad")["tie_p"] == 1 / 64
    assert row(few, "mnist_mlp", "good")["seeds_at_chosen"] == 2


def test_a_task_discriminates_with_five_arms_on_each_side_of_its_target():
    """analysis/discrimination.py reads the scores' accuracy (the mean test metric at each
    arm's chosen configuration) against the target, in the task's direction; an arm that is
    the same runs as baseline, n/a or in error counts on neither side."""
    import pandas as pd

    from gradbench.analysis.discrimination import markdown, split_by_target

    rows = []
    for task, target, hib, values in (
        ("acc", 0.9, True, [0.95, 0.91, 0.9, 0.93, 0.99, 0.5, 0.89996, 0.1, 0.2, 0.3]),
        ("mse", 0.05, False, [0.01, 0.02, 0.2]),
    ):
        for i, v in enumerate(values):
            rows.append(
                dict(
                    task=task,
                    strategy=f"s{i}",
                    status="scored",
                    reason=None,
                    target=target,
                    higher_is_better=hib,
                    accuracy=v,
                )
            )
    # on neither side: an arm whose runs are baseline's (as scoring marks it), one in error, one n/a
    for strategy, status, accuracy in (("copy", "= baseline", 0.99), ("broken", "error", 0.99), ("lstm", "n/a", None)):
        rows.append(
            dict(
                task="acc",
                strategy=strategy,
                status=status,
                reason="why",
                target=0.9,
                higher_is_better=True,
                accuracy=accuracy,
            )
        )
    per_task = pd.DataFrame(rows)
    acc, mse = split_by_target(per_task)
    assert acc.reached == ["s4", "s0", "s3", "s1", "s2"] and acc.missed == ["s6", "s5", "s9", "s8", "s7"]
    assert acc.discriminates
    assert mse.reached == ["s0", "s1"] and mse.missed == ["s2"] and not mse.discriminates
    table = markdown([acc, mse], per_task)
    assert table[2].startswith("| `acc` | >= 0.9 | 5: `s4` 0.99") and table[2].endswith("| yes |")
    # a value as many digits as it takes to show its side of the target
    assert "`s2` 0.9 |" in table[2] and "| 5: `s6` 0.89996, `s5` 0.5," in table[2]
    assert table[3].startswith("| `mse` | <= 0.05 | 2:") and table[3].endswith("| no |")


# ------------------------------------------------------------------ the failure taxonomy


def test_the_taxonomy_tells_explosion_collapse_and_under_training_apart():
    from gradbench.core.taxonomy import classify

    curve = [[100, 0.5], [200, 0.9], [300, 0.15]]  # accuracy, chance 0.1, target 0.9
    meta = {"chance": 0.1, "target": 0.9, "steps": 300}
    assert classify(status="diverged", **meta) == "exploded"
    assert classify(status="skipped", not_run=True, **meta) == "exploded"
    assert classify(status="ok", val_curve=curve, final_val=0.15, **meta) == "collapsed"
    low = [[100, 0.2], [200, 0.25], [300, 0.2]]
    assert classify(status="ok", val_curve=low, final_val=0.2, **meta) == "never_learned"
    assert classify(status="ok", val_curve=curve[:2], final_val=0.9, **meta) == "learned"
    # a pre-clip norm 1000x above its early median explodes a run that did not learn; one that
    # learned all the same (a clipper contained the blow-up) learned
    norms = [[s, 1.0] for s in range(0, 30, 3)] + [[200, 2000.0]]
    assert classify(status="ok", val_curve=low, final_val=0.2, grad_norm_curve=norms, **meta) == "exploded"
    assert classify(status="ok", val_curve=low, final_val=0.2, grad_norm_curve=norms[:-1], **meta) == "never_learned"
    assert classify(status="ok", val_curve=curve[:2], final_val=0.9, grad_norm_curve=norms, **meta) == "learned"
    assert classify(status="error", **meta) is None
    # lower is better (mse): the shares follow the direction
    mse = {"chance": 0.17, "target": 0.05, "steps": 300}
    assert classify(status="ok", val_curve=[[100, 0.06], [300, 0.16]], final_val=0.16, **mse) == "collapsed"


def test_a_recorded_outcome_wins_over_the_inferred_one():
    rec = make_record(strategy="s", test=0.95, outcome="exploded")
    r = row(score([rec, make_record(strategy="s", seed=1)]), "mnist_mlp", "s")
    assert (r["exploded"], r["outcomes_inferred"], r["stability"]) == (1, 1, 0.5)


# ---------------------------------------------------------------------- tied groups


def _tie_records(values: dict[str, list[float]]) -> list[dict]:
    recs = []
    for arm, tests in values.items():
        recs += [make_record(strategy=arm, seed=s, test=t) for s, t in enumerate(tests)]
    return recs


def test_the_tied_group_is_monotone_in_the_gap_to_the_leader():
    """The old rule (a paired test per arm) ties `noisy`, 30 points behind with a huge spread,
    while `close`, half a point behind on every seed, is told apart. The rule now: no arm
    further from the leader than one told apart is tied."""
    values = {
        "baseline": [0.90, 0.91, 0.92, 0.93, 0.94],
        "leader": [0.970, 0.972, 0.968, 0.971, 0.969],
        "close": [0.9650, 0.9669, 0.9631, 0.9660, 0.9638],
        "noisy": [0.97, 0.30, 0.97, 0.30, 0.80],
    }
    from gradbench.analysis.stats import ALPHA, holm, paired_t_p

    lead = values["leader"]
    old = {
        arm: not told
        for arm, told in zip(
            ("close", "noisy"),
            holm([paired_t_p([a - b for a, b in zip(lead, values[x])]) for x in ("close", "noisy")], ALPHA),
        )
    }
    assert old == {"close": False, "noisy": True}  # the old rule's non-monotone marks

    pt = score(_tie_records(values)).per_task.set_index("strategy")
    assert pt.at["leader", "tied"] is True and pt.at["close", "tied"] is False
    assert pt.at["noisy", "tied"] is False  # further than `close`: never tied
    gaps = {a: pt.at["leader", "accuracy"] - pt.at[a, "accuracy"] for a in pt.index}
    tied = {a for a in pt.index if pt.at[a, "tied"] is True}
    assert all(gaps[a] < gaps[b] for a in tied for b in set(pt.index) - tied if pt.at[b, "tied"] is False)


def test_effects_vs_baseline_are_paired_and_holm_adjusted():
    from scipy import stats

    values = {
        "baseline": [0.90, 0.91, 0.92, 0.93, 0.94],
        "better": [0.95, 0.955, 0.97, 0.975, 0.99],
        "same": [0.91, 0.90, 0.93, 0.92, 0.94],
    }
    pt = score(_tie_records(values)).per_task.set_index("strategy")
    diffs = [b - a for a, b in zip(values["baseline"], values["better"])]
    assert pt.at["better", "effect"] == pytest.approx(sum(diffs) / 5)
    p_better = stats.ttest_rel(values["better"], values["baseline"]).pvalue
    p_same = stats.ttest_rel(values["same"], values["baseline"]).pvalue
    assert pt.at["better", "effect_p"] == pytest.approx(p_better)
    assert pt.at["better", "effect_p_holm"] == pytest.approx(min(1, 2 * min(p_better, p_same)))
    assert pt.at["same", "effect_p_holm"] == pytest.approx(
        min(1, max(2 * min(p_better, p_same), max(p_better, p_same)))
    )


def test_rescoring_the_committed_leaderboard_labels_its_failures_by_the_taxonomy():
    """benchmarks/rescore.py on the committed records: recall's grid failures under the old rule
    are all under-training (none exploded or collapsed), the 81 below an arm's chosen level
    among them; muon on adding keeps its measured values (mean 0.047, not 0.051 with a seed at
    chance)."""
    from conftest import REPO

    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "rescore.py"),
            str(REPO / "leaderboard" / "results.jsonl"),
            "--task",
            "recall_transformer",
            "--task",
            "adding_rnn",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    recall = out[out.index("== recall_transformer") :]
    assert "grid runs that failed under the old rule: 386, by the taxonomy: {'never_learned': 386}" in recall
    assert "of them below the arm's chosen level: 81, by the taxonomy: {'never_learned': 81}" in recall
    assert "mean as measured over every seed 0.0473; old rule 0.0509" in out
    assert "inferred from curves: 3054; not run above an all-diverged level (exploded): 184" in out


# ------------------------------------------------------------- early stopping, replayed


def test_the_early_stop_rule_stops_a_run_worse_than_a_reference_level_by_the_margin():
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("replay_early_stop", REPO / "benchmarks" / "replay_early_stop.py")
    replay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay)
    stop_step = replay.stop_step

    meta = {"higher_is_better": True, "target": 0.9, "chance": 0.1}  # margin 0.25 -> 0.2 of accuracy
    ref = [[100, 0.5], [200, 0.7], [300, 0.8], [400, 0.85]]
    worse = [[100, 0.2], [200, 0.45], [300, 0.5], [400, 0.5]]
    assert stop_step(worse, [ref], meta, 0.25, from_step=0) == 100
    assert stop_step(worse, [ref], meta, 0.25, from_step=150) == 200  # no stop before from_step
    close = [[100, 0.35], [200, 0.55], [300, 0.65], [400, 0.4]]
    assert stop_step(close, [ref], meta, 0.25, from_step=0) is None  # within the margin until the last step
    mse = {"higher_is_better": False, "target": 0.05, "chance": 0.17}
    assert stop_step([[100, 0.16], [200, 0.16]], [[[100, 0.05], [200, 0.01]]], mse, 0.25, 0) == 100


def test_the_early_stop_replay_reports_what_it_saves_and_what_it_keeps():
    from conftest import REPO

    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "replay_early_stop.py"),
            str(REPO / "leaderboard" / "protocol_demo" / "results.jsonl"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in (
        "sweep runs stopped early:",
        "sweep compute:",
        "choices unchanged:",
        "max stable lr unchanged:",
        "bound for a rule that keeps every max stable lr:",
    ):
        assert line in out, out
    assert "mnist_mlp: tied top group of" in out


def test_task_agreement_ranks_two_tasks_arms_against_each_other():
    """benchmarks/task_agreement.py: Spearman's rho of headroom and quality over the arms two
    tasks share; a task with no scored arms is a one-line error with exit code 2."""
    from conftest import REPO

    script = str(REPO / "benchmarks" / "task_agreement.py")
    lb = str(REPO / "leaderboard" / "protocol_demo" / "results.jsonl")
    out = subprocess.run(
        [sys.executable, script, lb, "mnist_mlp", lb, "mnist_mlp"], capture_output=True, text=True, check=True
    ).stdout
    rows = [
        line.split("|") for line in out.splitlines() if line.startswith("| headroom") or line.startswith("| quality")
    ]
    assert [r[1].strip() for r in rows] == ["headroom", "quality", "quality_rank"]
    assert all(r[3].strip() == "+1.00" for r in rows), out  # a task agrees with itself
    bad = subprocess.run([sys.executable, script, lb, "nope", lb, "mnist_mlp"], capture_output=True, text=True)
    assert bad.returncode == 2 and "task: nope has no scored arms" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_suite_cost_prices_nothing_for_the_sweep_runs_a_reused_file_holds():
    """benchmarks/suite_cost.py --reuse: the remade leaderboard's protocol part reuses the
    published leaderboard's records, so its sweep runs that file holds cost nothing; the extra
    trials and final seeds stay an upper bound."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("suite_cost", REPO / "benchmarks" / "suite_cost.py")
    cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cost)
    from gradbench.suite import load_suite

    suite = load_suite(REPO / "configs" / "leaderboard_next.yaml")
    published = [REPO / "leaderboard" / "results.jsonl"]
    rates = cost.seconds_per_step(published)
    full = {r["task"]: r for r in cost.estimate(suite, rates)}
    reused = {r["task"]: r for r in cost.estimate(suite, rates, cost.trained_ids(published))}
    for task in ("mnist_mlp", "cifar10_cnn", "adding_rnn"):
        assert reused[task]["reused"] > 0 and full[task]["reused"] == 0
        assert reused[task]["runs"] == full[task]["runs"] - reused[task]["reused"]
    assert sum(r["core_h"] for r in reused.values()) < 0.5 * sum(r["core_h"] for r in full.values())
