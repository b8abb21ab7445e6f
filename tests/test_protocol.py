"""The tuning protocol: the suite's `protocol:` section, the three phases' runs, the torch-free
choice between them (validation only, tuning seeds only), the scores read off them, and one
real protocol suite run end to end through the CLI."""

from __future__ import annotations

import json

import pytest
from conftest import real_data_or_skip
from fakes import make_record

from gradbench.analysis.choice import chosen_configs
from gradbench.analysis.scoring import score
from gradbench.core.errors import UserError
from gradbench.store import jsonl
from gradbench.suite import expand, final_runs, parse_suite, tuning_trials
from gradbench.suite.config import SWEEP_LR_MULTS
from gradbench.suite.expand import LR_OCTAVES, PARAM_FACTORS

MNIST = {"max_steps": 40, "eval_every": 20, "batch_size": 32, "model": {"depth": 2, "width": 32}}


def protocol_suite(**extra):
    raw = {
        "name": "p",
        "seeds": 3,
        "tasks": {"mnist_mlp": MNIST},
        "strategies": ["baseline", "clip_norm", "lstm"],
        "protocol": {"sweep_seeds": 2, "extra_trials": 2},
        **extra,
    }
    return parse_suite(raw)


# ------------------------------------------------------------------------------- config


def test_a_protocol_sweeps_seven_levels_by_default_and_the_stress_levels_when_given():
    assert protocol_suite().lr_mults == SWEEP_LR_MULTS == [2.0**k for k in range(-3, 4)]
    assert protocol_suite(stress={"lr_mult": [0.5, 1]}).lr_mults == [0.5, 1.0]
    assert parse_suite({"tasks": ["mnist_mlp"], "strategies": ["baseline"]}).lr_mults == [1.0]  # no protocol


@pytest.mark.parametrize(
    "protocol, expected",
    [
        ({"sweep_seeds": 4}, "protocol.sweep_seeds: 4 is more than the suite's 3 seeds"),
        ({"extra_trials": 7}, "protocol.extra_trials: must be <= 6"),
        ({"sweep_seeds": 0}, "protocol.sweep_seeds: must be a positive integer, got 0"),
        ({"sweep_seedz": 1}, "protocol: unknown key 'sweep_seedz' (did you mean 'sweep_seeds'"),
    ],
)
def test_a_bad_protocol_is_one_line_naming_the_field(protocol, expected):
    with pytest.raises(UserError) as e:
        protocol_suite(protocol=protocol)
    assert expected in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------- phases


class Chosen:
    def __init__(self, lr_mult, strategy_params):
        self.lr_mult, self.strategy_params = lr_mult, strategy_params


def test_the_sweep_runs_every_level_on_the_sweep_seeds_only():
    suite = protocol_suite()
    runs = expand(suite)
    assert len(runs) == 7 * 2 * 3  # levels x sweep seeds x arms (lstm recorded as skipped)
    assert {r.spec.phase if hasattr(r, "reason") else r.phase for r in runs} == {"sweep"}
    assert {r.spec.seed if hasattr(r, "reason") else r.seed for r in runs} == {0, 1}


def test_extra_trials_search_a_declared_parameter_or_refine_the_lr_and_cost_every_arm_the_same():
    suite = protocol_suite()
    choices = {
        ("mnist_mlp", "baseline"): Chosen(0.5, {"baseline": {}}),
        ("mnist_mlp", "clip_norm"): Chosen(2.0, {"clip_norm": {"max_norm": 1.0}}),
    }
    trials = tuning_trials(suite, choices)
    base = [t for t in trials if t.strategy == "baseline"]
    clip = [t for t in trials if t.strategy == "clip_norm"]
    assert len(base) == len(clip) == 2 * 2  # extra_trials x sweep seeds, whatever the arm
    assert sorted({t.lr_mult for t in base}) == sorted(0.5 * 2.0**o for o in LR_OCTAVES[:2])
    assert {t.lr_mult for t in clip} == {2.0}
    assert sorted({t.strategy_params["clip_norm"]["max_norm"] for t in clip}) == sorted(PARAM_FACTORS[:2])
    assert {t.phase for t in trials} == {"tune"} and {t.seed for t in trials} == {0, 1}
    assert tuning_trials(suite, {}) == []  # no choice (n/a arms): no trials


def test_an_lr_chosen_at_the_top_of_the_grid_is_refined_outward_first():
    # the best rate may lie beyond the grid: the first trial looks above it, not between levels
    suite = protocol_suite(protocol={"sweep_seeds": 1, "extra_trials": 1})
    top = max(suite.lr_mults)
    for lr, expected in (
        (top, top * 2.0**0.5),
        (1.0, 2.0**-0.5),
        (min(suite.lr_mults), min(suite.lr_mults) * 2.0**-0.5),
    ):
        trials = tuning_trials(suite, {("mnist_mlp", "baseline"): Chosen(lr, {"baseline": {}})})
        assert [t.lr_mult for t in trials] == [expected]
    # a task's own grid sets its top
    own = protocol_suite(
        tasks={"mnist_mlp": {**MNIST, "lr_mult": [0.5, 1.0, 2.0]}}, protocol={"sweep_seeds": 1, "extra_trials": 2}
    )
    trials = tuning_trials(own, {("mnist_mlp", "baseline"): Chosen(2.0, {"baseline": {}})})
    assert [t.lr_mult for t in trials] == [2.0 * 2.0**0.5, 2.0 * 2.0**-0.5]


def test_a_search_passes_over_values_its_strategy_rejects_and_fills_the_budget_with_the_lr():
    suite = protocol_suite(strategies=["autoclip", "l1", "adafactor"], protocol={"sweep_seeds": 1, "extra_trials": 4})
    choices = {
        ("mnist_mlp", "autoclip"): Chosen(1.0, {"autoclip": {"percentile": 50.0}}),
        ("mnist_mlp", "l1"): Chosen(1.0, {"l1": {"coeff": 0.0}}),  # nothing to search at 0
        ("mnist_mlp", "adafactor"): Chosen(1.0, {"adafactor": {"lr": 0.01, "d": 1.0}}),
    }
    trials = tuning_trials(suite, choices)
    auto = [t.strategy_params["autoclip"]["percentile"] for t in trials if t.strategy == "autoclip"]
    assert auto == [25.0, 100.0, 12.5, 6.25]  # 200 is not a percentile: passed over
    # torch's Adafactor refuses an update-clipping threshold below 1: the search goes up only
    ada = [t.strategy_params["adafactor"]["d"] for t in trials if t.strategy == "adafactor"]
    assert ada == [2.0, 4.0, 8.0, 16.0]
    l1 = [t for t in trials if t.strategy == "l1"]
    assert len(l1) == 4 and sorted(t.lr_mult for t in l1) == sorted(2.0**o for o in LR_OCTAVES[:4])


def test_final_seeds_reuse_the_tuning_runs_at_the_chosen_configuration():
    suite = protocol_suite(stress={"lr_mult": [0.5, 1.0]})
    choices = {("mnist_mlp", "baseline"): Chosen(0.5, {"baseline": {}})}
    final = final_runs(suite, choices)
    assert [r.seed for r in final] == [0, 1, 2] and {r.phase for r in final} == {"final"}
    sweep_ids = {r.run_id for r in expand(suite) if not hasattr(r, "reason")}
    # the phase is not part of a run's identity: seeds 0 and 1 are the sweep's runs, not new ones
    assert {r.run_id for r in final} & sweep_ids == {final[0].run_id, final[1].run_id}
    assert final[0].replace(phase="").run_id == final[0].run_id


# ------------------------------------------------------------------------------- choice


def arm_records(strategy="clip_norm", **kw):
    """A sweep on seeds 0, 1 at lr x1 and x2, and two extra trials of max_norm at lr x1."""
    p = {"clip_norm": {"max_norm": 1.0}}
    vals = {1.0: 0.90, 2.0: 0.93}
    recs = [
        make_record(strategy=strategy, seed=s, lr=lr, test=v, params=p, phase="sweep", **kw)
        for lr, v in vals.items()
        for s in (0, 1)
    ]
    for norm, v in ((0.5, 0.92), (2.0, 0.95)):
        recs += [
            make_record(
                strategy=strategy, seed=s, lr=1.0, test=v, params={"clip_norm": {"max_norm": norm}}, phase="tune"
            )
            for s in (0, 1)
        ]
    return recs


def test_the_choice_reads_the_tuning_seeds_validation_only():
    recs = arm_records()
    (choice,) = chosen_configs(recs).values()
    assert (choice.lr_mult, choice.strategy_params) == (1.0, {"clip_norm": {"max_norm": 2.0}})
    assert choice.tried == 4
    # final seeds, however good, and test metrics, however bad, never move the choice
    tempting = make_record(
        strategy="clip_norm", seed=2, lr=2.0, test=0.99, params={"clip_norm": {"max_norm": 1.0}}, phase="final"
    )
    worse_test = [
        {**r, "metrics": {**r["metrics"], "test": 0.11}} if r["spec"].get("phase") == "tune" else r for r in recs
    ]
    assert chosen_configs(recs + [tempting])[("mnist_mlp", "clip_norm")] == choice
    assert chosen_configs(worse_test)[("mnist_mlp", "clip_norm")] == choice


def test_a_collapsed_configuration_is_never_chosen_but_still_gets_the_trials_budget():
    collapsed = [
        make_record(seed=s, lr=lr, test=v, phase="sweep") for lr, v in ((1.0, 0.2), (2.0, 0.25)) for s in (0, 1)
    ]  # chance 0.1, target 0.95: at most 0.3125 is a collapse
    assert chosen_configs(collapsed)[("mnist_mlp", "baseline")] is None
    fallback = chosen_configs(collapsed, or_best_failed=True)[("mnist_mlp", "baseline")]
    assert fallback.lr_mult == 2.0  # the one that came closest: its extra trials go around it


def test_scores_read_stability_off_the_grid_and_quality_off_the_held_out_seeds_at_the_choice():
    recs = arm_records() + [
        make_record(
            strategy="clip_norm", seed=s, lr=1.0, test=0.96, params={"clip_norm": {"max_norm": 2.0}}, phase="final"
        )
        for s in (2, 3, 4)
    ]
    recs += [make_record(strategy="clip_norm", seed=s, lr=4.0, status="diverged", phase="sweep") for s in (0, 1)]
    row = score(recs).per_task.iloc[0]
    assert row["chosen_lr_mult"] == 1.0 and row["chosen_params"] == "max_norm=2"
    # quality: the final seeds only; the tuning seeds 0 and 1 chose the configuration
    assert row["seeds_at_chosen"] == 5 and row["tested_on"] == "held-out" and row["tested_seeds"] == 3
    assert row["accuracy"] == pytest.approx(0.96)
    assert (row["grid_runs"], row["grid_unstable"]) == (6, 2)  # the sweep's 3 levels x 2 seeds, not the trials
    assert row["max_stable_lr"] == 2.0 and row["levels"] == 3 and row["headroom"] == pytest.approx(1.0)
    assert (row["unstable_k"], row["unstable_n"]) == (0, 3)


# ------------------------------------------------------------------------------- end to end


def test_a_protocol_suite_runs_its_three_phases_in_one_command_and_resumes(tmp_path, capsys):
    from gradbench.cli import main

    data = real_data_or_skip("MNIST")  # something must learn for a choice to exist

    config = tmp_path / "p.yaml"
    config.write_text(
        json.dumps(
            {
                "name": "p",
                "seeds": 3,
                "tasks": {"mnist_mlp": MNIST},
                "strategies": ["baseline", "clip_norm"],
                "stress": {"lr_mult": [0.125, 0.25]},
                "protocol": {"sweep_seeds": 2, "extra_trials": 1},
            }
        )
    )
    results = tmp_path / "r.jsonl"
    argv = ["run", str(config), "--results", str(results), "--data", str(data)]
    assert main(argv) == 0
    recs = [json.loads(line) for line in results.read_text().splitlines()]
    phases = [r["spec"]["phase"] for r in recs]
    assert phases.count("sweep") == 2 * 2 * 2 and phases.count("tune") == 1 * 2 * 2
    # at each choice, seeds 0-1 are the tuning runs already there: the final phase adds seed 2
    choices = chosen_configs(recs)
    assert all(choices.values()), choices
    assert phases.count("final") == 2 and {r["seed"] for r in recs if r["spec"]["phase"] == "final"} == {2}
    for (_task, arm), c in choices.items():
        at = [
            r["seed"]
            for r in recs
            if r["strategy"]["label"] == arm
            and (r["stress"]["lr_mult"], r["strategy"]["params"]) == (c.lr_mult, c.strategy_params)
        ]
        assert sorted(at) == [0, 1, 2]
    page = (tmp_path / "p_leaderboard" / "README.md").read_text()
    assert "Tuning protocol" in page and "seeds 0, 1" in page
    assert main(argv) == 0  # resumed: nothing left to run
    assert len(results.read_text().splitlines()) == len(recs)

    # gradbench status: each phase's runs recorded, without running anything
    capsys.readouterr()
    assert main(["status", str(config), "--results", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        f"suite p in {results}: {len(recs)} of its runs recorded, {len(recs)} of them trained, in "
    )
    assert out[1:6] == [
        "phase 1, the sweep, level 1 of 2 (lr x0.125): 4 of 4 recorded (4 ok)",
        "phase 1, the sweep, level 2 of 2 (lr x0.25): 4 of 4 recorded (4 ok)",
        "phase 2, extra trials: 4 of 4 recorded (4 ok)",
        "phase 3, final seeds: 6 of 6 recorded (6 ok)",
        "parts it was grown in (check each on its CPU kind: gradbench verify RESULTS --same-cpu --commit C):",
    ]
    assert out[6].endswith(f": {len(recs)} runs") and len(out) == 7
    # part way: the later phases are not known yet; a record of another numerics version is to train again
    lines = results.read_text().splitlines(keepends=True)
    older = {**json.loads(lines[0]), "numerics": 1}
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps(older) + "\n" + "".join(lines[1:3]))
    assert main(["status", str(config), "--results", str(partial)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"suite p in {partial}: 2 of its runs recorded, 2 of them trained, in ")
    assert out[0].endswith("; 1 more recorded under another numerics version, which gradbench run trains again")
    assert out[1:5] == [
        "phase 1, the sweep, level 1 of 2 (lr x0.125): 2 of 4 recorded (2 ok)",
        "phase 1, the sweep, level 2 of 2 (lr x0.25): 0 of 4 recorded",
        "phase 2, extra trials: counted once the sweep is recorded",
        "phase 3, final seeds: counted once the sweep is recorded",
    ]
    assert main(["status", str(config), "--results", str(tmp_path / "none.jsonl")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"suite p: nothing recorded yet in {tmp_path / 'none.jsonl'}" and out[1].endswith(
        ": 0 of 4 recorded"
    )

    # the same file under a protocol that sweeps seed 0 only: seed 1's runs there are final
    # runs now, recorded again in that role, so neither the choice nor the grid reads them
    config.write_text(config.read_text().replace('"sweep_seeds": 2', '"sweep_seeds": 1'))
    from gradbench.execution.suite_runner import run_suite
    from gradbench.suite import load_suite

    again = run_suite(load_suite(config), results, data, log=lambda s: None)
    assert {r["seed"] for r in again if r["spec"]["phase"] in ("sweep", "tune")} == {0}
    assert {r["seed"] for r in again if r["spec"]["phase"] == "final"} == {1, 2}
    assert len(jsonl.load(results)) > len(recs)  # the re-tagged records, appended: nothing rewritten


def test_the_budget_rule_does_not_run_the_levels_above_one_where_every_seed_diverged(tmp_path):
    """protocol.skip_above_diverged: the sweep runs level by level, and an arm's levels above
    one where every sweep seed diverged are recorded as not run; they count as diverged (not
    in the diverged column), a resume runs nothing, and without the rule they train."""
    from gradbench.analysis import page as leaderboard_page
    from gradbench.execution.suite_runner import run_suite
    from gradbench.suite import ABOVE_DIVERGED, load_suite

    adding = {"max_steps": 30, "eval_every": 10, "batch_size": 16}
    adding["data"] = {"seq_len": 20, "n_train": 256, "n_val": 64, "n_test": 64}
    raw = {
        "name": "b",
        "seeds": 3,
        "tasks": {"adding_rnn": adding},
        "strategies": ["baseline", "clip_norm"],
        "stress": {"lr_mult": [0.5, 2, 8, 16]},  # baseline diverges at x2 on both seeds; clip_norm at x16 only
        "protocol": {"sweep_seeds": 2, "extra_trials": 1, "skip_above_diverged": True},
    }
    config, results = tmp_path / "b.yaml", tmp_path / "r.jsonl"
    config.write_text(json.dumps(raw))
    said: list[str] = []
    recs = run_suite(load_suite(config), results, tmp_path, log=said.append)
    phases = [r["spec"]["phase"] for r in recs]
    # the later phases run under the rule too (nothing learns in 30 steps: no choice, no final seeds)
    assert phases.count("tune") == 2 * 2 and any("phase 3 of 3" in line for line in said)
    assert sum("phase 1 of 3" in line for line in said) == 4  # one wave per level
    by_arm: dict[str, dict[float, list[dict]]] = {}
    for r in (r for r in recs if r["spec"]["phase"] == "sweep"):
        by_arm.setdefault(r["strategy"]["label"], {}).setdefault(r["stress"]["lr_mult"], []).append(r)
    not_run = 0
    for arm, levels in by_arm.items():
        first = min((m for m, rs in levels.items() if all(r["status"] == "diverged" for r in rs)), default=None)
        for m, rs in levels.items():
            expected = first is not None and m > first
            assert all((r.get("not_run") == ABOVE_DIVERGED) == expected for r in rs), (arm, m)
            assert all(r["status"] == "skipped" for r in rs) or not expected
            not_run += expected * len(rs)
    assert not_run >= 2 and any(
        all(len(rs) == 2 and "not_run" not in rs[0] for rs in lv.values()) for lv in by_arm.values()
    )

    row = score(recs).per_task.set_index("strategy").loc["baseline"]
    # not run counts as exploded; the two at x0.5 never learned in 30 steps: under-training, not instability
    assert row["not_run"] == not_run and row["grid_runs"] == 8 and row["grid_unstable"] == 6
    assert row["never_learned"] == 2
    assert row["diverged"] == sum(r["status"] == "diverged" for r in recs if r["strategy"]["label"] == "baseline")
    from gradbench.core.record import outcome_counts, typed

    assert outcome_counts(typed(recs))["not run"] == not_run
    page = leaderboard_page.write(recs, tmp_path / "page", plots=False).read_text()
    assert f"were not run ({not_run} runs)" in page

    lines = len(results.read_text().splitlines())
    run_suite(load_suite(config), results, tmp_path, log=lambda s: None)  # resumed: nothing to run
    assert len(results.read_text().splitlines()) == lines
    raw["protocol"]["skip_above_diverged"] = False  # without the rule, those runs train
    config.write_text(json.dumps(raw))
    again = run_suite(load_suite(config), results, tmp_path, log=lambda s: None)
    assert len(results.read_text().splitlines()) >= lines + not_run
    assert not any(r.get("not_run") for r in again) and len(again) == len(recs)


# ------------------------------------------------------------------------ rank stability


def test_a_bootstrap_draws_sweep_seeds_and_final_seeds_each_within_their_kind():
    import random

    from gradbench.analysis.rank_stability import resample

    recs = arm_records() + [
        make_record(
            strategy="clip_norm", seed=s, lr=1.0, test=0.96, params={"clip_norm": {"max_norm": 2.0}}, phase="final"
        )
        for s in (2, 3, 4)
    ]
    rng = random.Random(0)
    for _ in range(20):
        drawn = {r.seed for r in resample(recs, rng)}
        for label in drawn:
            seed, j = (int(x) for x in label.split("#"))
            assert (seed in (0, 1)) == (j < 2), drawn


def test_the_page_shows_a_saved_rank_stability_only_while_its_records_are_the_same(tmp_path):
    from gradbench.analysis import page, rank_stability

    recs = arm_records() + [make_record(seed=s, lr=lr, test=0.9, phase="sweep") for lr in (1.0, 2.0) for s in (0, 1)]
    measured = rank_stability.measure(recs, resamples=3, seed=1)
    assert measured["top"]["mnist_mlp"] == ["clip_norm", "baseline"] and measured["resamples"] == 3
    # the draws are made before the scoring, so processes sharing it measure the same
    assert rank_stability.measure(recs, resamples=3, seed=1, workers=2) == measured
    # the decision table's top group, resampled too, and shown with its evidence
    assert measured["groups"]["mnist_mlp"]["use"] == ["baseline", "clip_norm"]  # tied: a sorted set
    share = measured["groups"]["mnist_mlp"]["unchanged"]
    rank_stability.save(measured, tmp_path)
    shown = page.write(recs, tmp_path, plots=False).read_text()
    assert "### Rank stability" in shown and "--resamples 3 --seed 1" in shown
    evidence = f"this top group in {share:.0%} of 3 seed resamples" + (", unsettled" if share < 0.9 else "")
    assert evidence in shown.split("## Stability vs accuracy")[0]
    with pytest.warns(UserWarning, match="measured from other records .* measure it again"):
        assert "### Rank stability" not in page.write(recs[1:], tmp_path, plots=False).read_text()


def test_an_unsettled_top_3_is_shown_as_a_tied_group():
    """Under 90% of resamples with the same top 3, the page lists the strategies no resample
    share rules out of it (each in the top 3 of at least 10% of them); a settled one has none."""
    from gradbench.analysis import page, rank_stability

    measured = {
        "resamples": 100,
        "seed": 0,
        "unchanged": {"mnist_mlp": 0.55, "adding_rnn": 0.95, "overall": 0.6},
        "in_top": {
            "mnist_mlp": {"a": 1.0, "b": 0.7, "c": 0.6, "d": 0.45, "e": 0.2, "f": 0.05},
            "adding_rnn": {"a": 1.0, "b": 1.0, "c": 0.95, "d": 0.05},
            "overall": {"a": 0.9, "b": 0.9, "c": 0.8, "d": 0.4},
        },
    }
    assert rank_stability.tied_top(measured, "mnist_mlp") == ["a", "b", "c", "d", "e"]
    assert rank_stability.tied_top(measured, "adding_rnn") is None
    assert rank_stability.tied_top({**measured, "in_top": {}}, "mnist_mlp") is None  # an older measurement
    shown = page._rank_stability(measured, [])["table"]
    assert "| `mnist_mlp` | 55% | `a` 100%, `b` 70%, `c` 60%, `d` 45%, `e` 20% |" in shown
    assert "| overall | 60% | `a` 90%, `b` 90%, `c` 80%, `d` 40% |" in shown and "`adding_rnn` |" not in shown


# ------------------------------------------- absolute grids, bracketing, the seed rule


@pytest.mark.parametrize(
    "protocol, expected",
    [
        ({"lr_grid": {"adamm": [0.001]}}, "unknown protocol.lr_grid optimizer family 'adamm' (did you mean 'adam'"),
        ({"lr_grid": {"sgd": [0.1, -1]}}, "protocol.lr_grid.sgd[1]: must be a positive number, got -1"),
        ({"contender_seeds": 3}, "protocol.contender_seeds: 3 adds no seed to the suite's 3"),
        ({"bracket_octaves": 9}, "protocol.bracket_octaves: must be <= 8"),
    ],
)
def test_a_bad_grid_or_seed_rule_is_one_line_naming_the_field(protocol, expected):
    with pytest.raises(UserError) as e:
        protocol_suite(protocol={"sweep_seeds": 2, **protocol})
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_an_absolute_grid_puts_every_arm_of_a_family_on_the_same_rates():
    """sgd arms (baseline at 0.2, clip_norm) and adam (1e-3) sweep their family's absolute rates,
    whatever their own default; the runs' peak rate (lr x lr_mult) is the grid's."""
    suite = protocol_suite(
        strategies=["baseline", "clip_norm", "adam", "lion"],
        protocol={"sweep_seeds": 1, "lr_grid": {"sgd": [0.4, 0.05, 0.1], "adam": [0.0005, 0.002]}},
    )
    rates: dict[str, set[float]] = {}
    for spec in expand(suite):
        rates.setdefault(spec.strategy, set()).add(round(spec.optimizer["lr"] * spec.lr_mult, 12))
    assert rates["baseline"] == rates["clip_norm"] == {0.05, 0.1, 0.4}
    assert rates["adam"] == {0.0005, 0.002}
    assert len(rates["lion"]) == len(SWEEP_LR_MULTS)  # no grid for its family: its own rate x the levels
    mults = [s.lr_mult for s in expand(suite)]
    assert mults == sorted(mults)  # level by level, lowest multiplier first


def _sweep(arm: str, values: dict[float, float]) -> list[dict]:
    """An arm's sweep on seeds 0 and 1: level -> its test (and validation) value on both."""
    return [make_record(strategy=arm, seed=s, lr=lr, test=v, phase="sweep") for lr, v in values.items() for s in (0, 1)]


def test_bracketing_proposes_the_octave_beyond_an_edge_and_stops_at_the_cap():
    from gradbench.analysis.choice import bracket_edges
    from gradbench.suite import bracket_runs

    recs = _sweep("clip_norm", {0.5: 0.9, 1.0: 0.93}) + _sweep("baseline", {0.5: 0.95, 1.0: 0.93})
    recs += _sweep("adam", {0.5: 0.9, 1.0: 0.95, 2.0: 0.91})
    assert bracket_edges(recs + _sweep("flat", {0.5: 0.97, 1.0: 0.97, 2.0: 0.97})) == bracket_edges(recs)
    edges = bracket_edges(recs)
    assert edges == {("mnist_mlp", "clip_norm"): (2.0,), ("mnist_mlp", "baseline"): (0.25,)}  # adam: interior
    suite = protocol_suite(
        strategies=["baseline", "clip_norm"],
        stress={"lr_mult": [0.5, 1.0]},
        protocol={"sweep_seeds": 2, "bracket_octaves": 1},
    )
    runs = bracket_runs(suite, edges)
    assert sorted({(r.strategy, r.lr_mult) for r in runs}) == [("baseline", 0.25), ("clip_norm", 2.0)]
    assert {r.seed for r in runs} == {0, 1} and {r.phase for r in runs} == {"bracket"}
    assert bracket_runs(suite, {("mnist_mlp", "clip_norm"): (4.0,)}) == []  # two octaves past x1: the cap


def test_the_scores_say_which_optima_are_bracketed_and_why_not():
    recs = _sweep("edge", {0.5: 0.9, 1.0: 0.93}) + _sweep("inside", {0.5: 0.9, 1.0: 0.95, 2.0: 0.91})
    recs += _sweep("flat", {0.5: 0.97, 1.0: 0.97, 2.0: 0.97})  # a plateau: nothing beyond beats it
    pt = score(recs).per_task.set_index("strategy")
    assert bool(pt.at["inside", "bracketed"]) and pt.at["inside", "bracket"] == ""
    assert not pt.at["edge", "bracketed"] and pt.at["edge", "bracket"] == "best at the highest lr run (x1)"
    assert bool(pt.at["flat", "bracketed"]) and pt.at["flat", "chosen_lr_mult"] == 0.5


def test_the_seed_rule_picks_the_arms_whose_interval_overlaps_the_leaders_or_baselines():
    from gradbench.analysis.seed_rule import contenders

    values = {
        "baseline": [0.90, 0.91, 0.92],
        "leader": [0.970, 0.972, 0.968],
        "near_leader": [0.965, 0.975, 0.960],
        "near_base": [0.905, 0.915, 0.925],
        "apart": [0.940, 0.941, 0.942],
    }
    recs = [make_record(strategy=a, seed=s, test=t) for a, ts in values.items() for s, t in enumerate(ts)]
    assert set(contenders(score(recs).per_task)["mnist_mlp"]) == {"baseline", "leader", "near_leader", "near_base"}


def _bracketing_suite(tmp_path, strategies: list[str]):
    """A tiny MNIST protocol suite with bracketing (one octave) and the seed rule (3 seeds), written as a file."""
    raw = {
        "name": "bs",
        "seeds": 2,
        "threads": 1,
        "tasks": {"mnist_mlp": MNIST},
        "strategies": strategies,
        "stress": {"lr_mult": [0.125, 0.25]},
        "protocol": {"sweep_seeds": 1, "extra_trials": 1, "bracket_octaves": 1, "contender_seeds": 3},
    }
    config = tmp_path / "bs.yaml"
    config.write_text(json.dumps(raw))
    return config


def test_bracketing_and_the_seed_rule_run_end_to_end(tmp_path):
    """A real protocol suite with bracket_octaves and contender_seeds: each arm's best sweep
    level ends interior or at the cap, and the contenders have the extra seed at their choice."""
    from gradbench.analysis.choice import best_sweep_level
    from gradbench.analysis.runs import runs_frame, task_meta
    from gradbench.execution.suite_runner import run_suite
    from gradbench.suite import load_suite

    data = real_data_or_skip("MNIST")
    config, results = _bracketing_suite(tmp_path, ["baseline", "adam"]), tmp_path / "r.jsonl"
    said: list[str] = []
    recs = run_suite(load_suite(config), results, data, log=said.append)
    runs = runs_frame(recs)
    for arm, g in runs.groupby("strategy"):
        best, levels = best_sweep_level(g, task_meta(runs, "mnist_mlp"))
        assert set(levels) <= {0.0625, 0.125, 0.25, 0.5}  # one octave past the declared grid at most
        assert levels[0] < best < levels[-1] or best in (0.0625, 0.5), (arm, best, levels)
    assert any("bracketing the optima" in line for line in said) or all(
        levels[0] < best < levels[-1]
        for best, levels in [best_sweep_level(g, task_meta(runs, "mnist_mlp")) for _, g in runs.groupby("strategy")]
    )
    assert any("the seed rule: 3 seeds" in line for line in said)
    third = [r for r in recs if r["seed"] == 2]
    assert third and all(r["spec"]["phase"] == "final" for r in third)
    assert all(
        r.get("outcome") in ("exploded", "collapsed", "never_learned", "learned")
        for r in recs
        if r["status"] in ("ok", "diverged")
    )


def test_status_counts_the_bracketing_rounds_and_the_seed_rules_seeds(tmp_path, capsys):
    from gradbench.cli import main

    data = real_data_or_skip("MNIST")
    config, results = _bracketing_suite(tmp_path, ["baseline"]), tmp_path / "r.jsonl"
    assert main(["run", str(config), "--results", str(results), "--data", str(data)]) == 0
    capsys.readouterr()
    assert main(["status", str(config), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "phase 3, the seed rule's extra seeds for the contenders: 1 of 1 recorded" in out
    n = len(results.read_text().splitlines())
    assert f"{n} of its runs recorded" in out
