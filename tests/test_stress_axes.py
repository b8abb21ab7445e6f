"""Stress axes (causes of explosion beyond the learning rate): the suite's `stress_axes:`
section, the levels set on a run, the injected loss spikes, the weight-scale knob, the
tolerance read off the records, and one real suite with three axes end to end."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import real_data_or_skip
from fakes import make_record

from gradbench.analysis.stress import cause_cells, cause_rows, matrix_rows, stress_results
from gradbench.catalogue.tasks import TASKS
from gradbench.core.errors import UserError
from gradbench.core.spec import same_run_key
from gradbench.suite import parse_suite
from gradbench.suite.expand import _base
from gradbench.suite.stress_axes import apply_level, axis_seeds, stress_waves

MNIST = {"max_steps": 40, "eval_every": 20, "batch_size": 32, "model": {"depth": 2, "width": 32}}


def stress_suite(axes: dict, **extra):
    raw = {
        "name": "s",
        "seeds": 2,
        "tasks": {"mnist_mlp": MNIST},
        "strategies": ["baseline", "clip_norm", "batchnorm"],
        "protocol": {"sweep_seeds": 2, "extra_trials": 0},
        "stress_axes": axes,
        **extra,
    }
    return parse_suite(raw)


DEPTH = {"task": "mnist_mlp", "vary": "model.depth", "levels": [2, 8, 32]}


# ------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "axis, expected",
    [
        ({**DEPTH, "task": "adding_rnn"}, "unknown stress_axes.d.task (one of the suite's tasks) 'adding_rnn'"),
        ({**DEPTH, "vary": "model.depht"}, "stress_axes.d.levels[0]: unknown key 'depht' (did you mean 'depth'"),
        ({**DEPTH, "vary": "depth"}, "stress_axes.d.vary: 'depth' is not a stress variable; valid: model.<knob>"),
        ({**DEPTH, "levels": [2, 0]}, "stress_axes.d.levels[1]"),
        ({**DEPTH, "levels": [2, 2]}, "stress_axes.d.levels: duplicate values in [2, 2]"),
        ({**DEPTH, "levels": [2]}, "stress_axes.d.levels: "),
        (
            {**DEPTH, "compare": ["batchnrom"]},
            "unknown stress_axes.d.compare: arm on mnist_mlp 'batchnrom' (did you mean 'batchnorm'",
        ),
        ({**DEPTH, "arms": ["lstm"]}, "unknown stress_axes.d.arms: arm on mnist_mlp 'lstm'"),
        ({"task": "mnist_mlp", "vary": "trainer.precision", "levels": ["32-true", "bf17"]}, "stress_axes.d.levels[1]"),
        (
            {"task": "mnist_mlp", "vary": "spikes.scale", "levels": [0, -1]},
            "stress_axes.d.levels[1]: expected a finite number 0 or more, got -1",
        ),
        (
            {"task": "mnist_mlp", "vary": "lr", "levels": [1, 0]},
            "stress_axes.d.levels[1]: expected a finite number above 0, got 0",
        ),
        ({**DEPTH, "seedz": 3}, "stress_axes.d: unknown key 'seedz' (did you mean 'seeds'"),
        ({**DEPTH, "set": {"model.depth": 4}}, "stress_axes.d.set: 'model.depth' is what the levels vary"),
        ({**DEPTH, "set": {"precision": "bf16-true"}}, "stress_axes.d.set.precision: 'precision' is not a stress"),
        ({**DEPTH, "set": {"trainer.precision": "bf17"}}, "stress_axes.d.set.trainer.precision: "),
    ],
)
def test_a_bad_axis_is_one_line_naming_the_field(axis, expected):
    with pytest.raises(UserError) as e:
        stress_suite({"d": axis})
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_an_axis_needs_a_protocol_to_tune_on():
    with pytest.raises(UserError, match="stress_axes: an axis runs at each arm's tuned configuration; add a protocol"):
        parse_suite({"tasks": {"mnist_mlp": MNIST}, "strategies": ["baseline"], "stress_axes": {"d": DEPTH}})


# ------------------------------------------------------------------------------- levels and runs


class Choice:
    def __init__(self, lr_mult, strategy_params):
        self.lr_mult, self.strategy_params = lr_mult, strategy_params


def test_each_level_is_set_before_the_arm_and_tags_its_place():
    suite = stress_suite({"d": DEPTH})
    base = _base(suite, "mnist_mlp", 0, 0.5, "stress")
    deep = apply_level(base, "d", suite.stress_axes["d"], 32)
    assert deep.model["depth"] == 32 and deep.axis == {"name": "d", "vary": "model.depth", "level": 32, "index": 2}
    # the configuration's own value changes the tag only: the same run as the tuned one (copied)
    same = apply_level(base, "d", suite.stress_axes["d"], 2)
    assert same_run_key(same.to_dict()) == same_run_key(base.to_dict()) and same.run_id != base.run_id
    lr = stress_suite({"l": {"task": "mnist_mlp", "vary": "lr", "levels": [1, 4]}})
    assert apply_level(base, "l", lr.stress_axes["l"], 4).lr_mult == 2.0
    sp = stress_suite({"s": {"task": "mnist_mlp", "vary": "spikes.scale", "levels": [0, 100], "spike_share": 0.1}})
    assert apply_level(base, "s", sp.stress_axes["s"], 100).spikes == {"share": 0.1, "scale": 100.0}
    assert apply_level(base, "s", sp.stress_axes["s"], 0).spikes == {}
    pr = stress_suite({"p": {"task": "mnist_mlp", "vary": "trainer.precision", "levels": ["32-true", "bf16-mixed"]}})
    assert apply_level(base, "p", pr.stress_axes["p"], "bf16-mixed").trainer["precision"] == "bf16-mixed"
    assert "precision" not in apply_level(base, "p", pr.stress_axes["p"], "32-true").trainer


def test_an_axis_set_holds_a_second_variable_at_every_level_and_its_base_level_is_a_run_of_its_own():
    suite = stress_suite(
        {"l": {"task": "mnist_mlp", "vary": "lr", "levels": [1, 4], "set": {"trainer.precision": "bf16-true"}}}
    )
    axis = suite.stress_axes["l"]
    plain = _base(suite, "mnist_mlp", 0, 0.5, "stress")
    choices = {("mnist_mlp", arm): Choice(0.5, {arm: {}}) for arm in ("baseline", "clip_norm", "batchnorm")}
    first, second = stress_waves(suite, choices)
    base_level = next(s for s in first if s.strategy == "baseline" and s.seed == 0)
    assert base_level.trainer["precision"] == "bf16-true" and base_level.lr_mult == 0.5
    assert base_level.axis == {
        "name": "l",
        "vary": "lr",
        "level": 1,
        "index": 0,
        "set": {"trainer.precision": "bf16-true"},
    }
    assert same_run_key(base_level.to_dict()) != same_run_key(plain.to_dict())  # trained, not the fp32 tuned run
    top = next(s for s in second if s.strategy == "baseline" and s.seed == 0)
    assert top.trainer["precision"] == "bf16-true" and top.lr_mult == 2.0
    assert "set" not in apply_level(plain, "l", axis.model_copy(update={"set": {}}), 4).axis


def test_the_waves_run_each_arm_at_its_choice_and_the_compared_arms_on_more_seeds():
    suite = stress_suite({"d": {**DEPTH, "arms": ["clip_norm"], "compare": ["batchnorm"], "compare_seeds": 5}})
    choices = {
        ("mnist_mlp", "baseline"): Choice(0.5, {"baseline": {}}),
        ("mnist_mlp", "clip_norm"): Choice(1.0, {"clip_norm": {"max_norm": 0.5}}),
        ("mnist_mlp", "batchnorm"): Choice(2.0, {"batchnorm": {}}),
    }
    waves = stress_waves(suite, choices)
    assert len(waves) == 3
    first = waves[0]
    seeds = {arm: sorted(s.seed for s in first if s.strategy == arm) for arm in ("baseline", "clip_norm", "batchnorm")}
    assert seeds == {"baseline": [0, 1, 2, 3, 4], "clip_norm": [0, 1], "batchnorm": [0, 1, 2, 3, 4]}
    # without comparisons, baseline still runs every level (on `seeds`): each cell is read against it
    plain = stress_waves(stress_suite({"d": {**DEPTH, "arms": ["clip_norm"]}}), choices)[0]
    assert sorted({s.strategy for s in plain}) == ["baseline", "clip_norm"]
    clip = next(s for s in first if s.strategy == "clip_norm")
    assert clip.lr_mult == 1.0 and clip.trainer["gradient_clip_val"] == 0.5 and clip.phase == "stress"
    assert all(s.axis.get("compared") for s in first if s.strategy == "batchnorm")
    assert not any(s.axis.get("compared") for s in first if s.strategy != "batchnorm")
    assert axis_seeds(parse_suite({**_raw(), "seeds": [3, 7]}), 4) == [3, 7, 0, 1]


def _raw():
    return {"tasks": {"mnist_mlp": MNIST}, "strategies": ["baseline"], "protocol": {"sweep_seeds": 1}}


# ------------------------------------------------------------------------------- the stresses themselves


def test_init_gain_scales_the_hidden_weights_and_the_signal_grows_with_depth():
    from gradbench.training.models import build_model

    x = torch.randn(64, 1, 28, 28)

    def mlp(**knobs):
        torch.manual_seed(0)
        return build_model("mlp", (1, 28, 28), 10, knobs)

    def rms_before_head(gain, depth):
        net = mlp(depth=depth, width=128, init="kaiming", init_gain=gain)
        return net[:-1](x).pow(2).mean().sqrt().item()

    # kaiming keeps a ReLU stack's signal; a gain of 1.5 multiplies it by about 1.5 per layer
    assert rms_before_head(1.5, 16) / rms_before_head(1.0, 16) > 1.5**14
    plain, scaled = mlp(depth=2, width=16), mlp(depth=2, width=16, init_gain=2.0)
    w0, w1 = (
        [m.weight for m in plain.modules() if isinstance(m, torch.nn.Linear)],
        [m.weight for m in scaled.modules() if isinstance(m, torch.nn.Linear)],
    )
    assert torch.equal(w1[0], 2 * w0[0]) and torch.equal(w1[-1], w0[-1])  # the head keeps its scale
    biases = [m.bias for m in scaled.modules() if isinstance(m, torch.nn.Linear)]
    assert all(b.abs().sum() > 0 for b in biases)  # default init keeps PyTorch's biases


def test_spike_steps_are_drawn_from_the_seed_and_the_loss_is_scaled_there(tiny_data):
    from gradbench.training.module import spike_plan

    base = _base(stress_suite({"d": DEPTH}), "mnist_mlp", 3, 1.0, "")
    spiked = base.replace(spikes={"share": 0.1, "scale": 50.0}, max_steps=200)
    steps, scale = spike_plan(spiked)
    assert len(steps) == 20 and 0 not in steps and scale == 50.0
    assert spike_plan(spiked) == (steps, scale)  # the same steps for every arm of the seed
    assert spike_plan(spiked.replace(seed=4))[0] != steps
    assert spike_plan(base) == (frozenset(), 1.0)


def test_a_spike_step_trains_on_permuted_targets_with_the_loss_scaled():
    from gradbench.training.models import build_model
    from gradbench.training.module import BenchModule

    task = TASKS.get("mnist_mlp")
    spec = _base(stress_suite({"d": DEPTH}), "mnist_mlp", 0, 1.0, "").replace(spikes={"share": 0.5, "scale": 100.0})
    module = BenchModule(spec, task, build_model("mlp", (1, 28, 28), 10, spec.model))

    class Trainer:
        global_step = 0

    module._trainer = Trainer()  # only global_step is read
    module.trainer.global_step = sorted(module.spike_steps)[0]
    x, y = torch.randn(32, 1, 28, 28), torch.arange(32) % 10
    spiked = module.training_step((x, y), 0)
    clean = torch.nn.functional.cross_entropy(module(x), y)
    assert module.last_loss.item() != pytest.approx(clean.item())  # the targets were permuted
    assert spiked.item() == pytest.approx(100.0 * module.last_loss.item(), rel=1e-5)
    module.trainer.global_step = next(s for s in range(1, 40) if s not in module.spike_steps)
    assert module.training_step((x, y), 0).item() == pytest.approx(clean.item(), rel=1e-5)


# ------------------------------------------------------------------------------- the tolerance


def axis_record(arm, seed, index, outcome, test=0.9, compared=False, axis="d"):
    status = "diverged" if outcome == "exploded" else "ok"
    rec = make_record(strategy=arm, seed=seed, lr=1.0 + index, status=status, test=test, outcome=outcome)
    rec["spec"] = {**rec["spec"], "phase": "stress"}
    rec["spec"]["axis"] = {"name": axis, "vary": "model.depth", "level": [2, 8, 32][index], "index": index}
    if compared:
        rec["spec"]["axis"]["compared"] = True
    rec["run_id"] = f"{axis}{arm}{seed}{index}".ljust(12, "0")[:12]
    return rec


def test_the_tolerance_is_the_levels_every_seed_holds_and_the_comparison_is_a_sign_test():
    recs = []
    for seed in range(7):
        # baseline explodes at the second level on every seed
        recs += [axis_record("baseline", seed, 0, "learned"), axis_record("baseline", seed, 1, "exploded")]
        # batchnorm holds all three levels (the last one without learning: not an explosion)
        recs += [axis_record("batchnorm", seed, i, "learned", compared=True) for i in (0, 1)]
        recs += [axis_record("batchnorm", seed, 2, "never_learned", test=0.1, compared=True)]
    # clip_norm, descriptive on 2 seeds: seed 1 collapses at the second level
    recs += [axis_record("clip_norm", s, i, "learned") for s in (0, 1) for i in (0, 1, 2) if (s, i) != (1, 1)]
    recs += [axis_record("clip_norm", 1, 1, "collapsed", test=0.1)]
    results = stress_results(recs)
    base, bn, clip = (results.cell("d", a) for a in ("baseline", "batchnorm", "clip_norm"))
    assert (base.tolerance, base.highest) == (1, 2)
    assert (bn.tolerance, bn.highest, bn.extra, bn.wins, bn.losses) == (3, 32, 2.0, 7, 0)
    assert bn.compared and bn.p == pytest.approx(2**-7) and bn.p_holm == pytest.approx(2**-7) and bn.significant
    assert (clip.tolerance, clip.per_seed, clip.extra, clip.compared) == (1, {0: 3, 1: 1}, 0.0, False)
    assert bn.quality[2] == pytest.approx(0.1) and results.top_group("d") == ["batchnorm"]
    # the stricter reading: the levels at which every seed learned
    assert (base.learns, bn.learns, clip.learns) == (1, 2, 1)
    rows = {r["arm"]: r["d"] for r in matrix_rows(results)}
    assert rows == {"baseline": "1 of 3 levels", "batchnorm": "+2*", "clip_norm": "+0 (d)"}
    # per cause, what to use: the top group, the significant first, with its evidence
    (cause,) = cause_rows(results, {"tasks": {"mnist_mlp": {"batchnorm": {"ratio": 1.1, "extra_mb": 2.0}}}})
    assert (cause["baseline"], cause["use"], cause["extra"]) == (2, ["batchnorm"], 2.0)
    assert cause["evidence"] == "pre-registered: 7 of 7 paired seeds beat baseline, Holm p 0.0078 (significant)"
    assert cause_cells(cause)[2:5] == ["`batchnorm`", "+2", "1.10× step, +2 MB"]
    # the protocol's scores never read a stress run: it trains another configuration
    from gradbench.analysis.runs import runs_frame

    assert runs_frame(recs).empty


def test_each_cause_prediction_gets_its_verdict_by_its_fixed_rule():
    from gradbench.analysis.preregistration import CauseTest, Prediction
    from gradbench.analysis.stress_verdicts import verdict, verdicts

    recs = []
    for seed in range(7):
        recs += [axis_record("baseline", seed, 0, "learned"), axis_record("baseline", seed, 1, "exploded")]
        recs += [axis_record("batchnorm", seed, i, "learned", compared=True) for i in (0, 1, 2)]
    recs += [axis_record("clip_norm", s, i, "learned") for s in (0, 1) for i in (0, 1)]
    recs += [axis_record("clip_norm", s, 2, "exploded") for s in (0, 1)]
    # the same ladder under another setting: baseline holds all three levels there
    recs += [axis_record("baseline", s, i, "learned", axis="e") for s in (0, 1) for i in (0, 1, 2)]
    results = stress_results(recs)

    def read(**rule):
        return verdict(results, CauseTest(**rule))

    assert read(rule="more", axis="d", arms=["batchnorm"]).verdict == "holds"  # 7 of 7, Holm-significant
    both = read(rule="more", axis="d", arms=["batchnorm", "clip_norm"])
    assert both.verdict == "holds (descriptive: too few seeds to test)"
    assert both.measured == "baseline 1 of 3; batchnorm +2* (7 of 7 paired seeds beat baseline), clip_norm +1 (d)"
    assert read(rule="order", axis="d", arms=["batchnorm", "clip_norm", "baseline"]).verdict.startswith("holds")
    assert read(rule="order", axis="d", arms=["baseline", "batchnorm"]).verdict == "does not hold"
    fewer = read(rule="fewer", axis="d", arms=["baseline"], than_axis="e")
    assert (
        fewer.verdict.startswith("holds")
        and fewer.measured == "baseline: 1 of 3 levels on d, 3 of 3 on e (tolerance, on the 2 seeds both ran)"
    )
    assert read(rule="more", axis="d", arms=["residual"]).verdict == "cannot be tested here"
    # against another arm than baseline: descriptive
    above_clip = read(rule="more", axis="d", arms=["batchnorm"], than="clip_norm")
    assert (
        above_clip.verdict.startswith("holds (descriptive")
        and above_clip.measured == "clip_norm 2 of 3; batchnorm holds +1 levels (on the 2 seeds both ran)"
    )
    # the stricter reading: every arm here learned wherever it held
    assert read(rule="more", axis="d", arms=["clip_norm"], reading="learns").measured.endswith(
        "clip_norm learns at +1 levels (on the 2 seeds both ran)"
    )
    # a registered family larger than the comparisons run so far corrects over all of it
    assert stress_results(recs, family=40).cell("d", "batchnorm").p_holm == pytest.approx(40 * 2**-7)
    # rules that cannot be read are refused when the registration is loaded, not at the verdict
    for bad in ({"rule": "fewer", "axis": "d", "arms": ["baseline"]}, {"rule": "order", "axis": "d", "arms": ["x"]}):
        with pytest.raises(ValueError, match="rule"):
            CauseTest(**bad)
    said = Prediction(claim="c", predicted="p", test={"rule": "more", "axis": "d", "arms": ["batchnorm"]})
    assert [v.verdict for _, v in verdicts(results, [said, Prediction(claim="x", predicted="y")])] == ["holds"]


def test_more_levels_means_more_than_baseline_on_the_seeds_both_ran():
    from gradbench.analysis.preregistration import CauseTest
    from gradbench.analysis.stress_verdicts import verdict

    def ends(tolerated: int) -> list[str]:  # a seed holding `tolerated` levels, then exploding
        return ["learned"] * tolerated + ["exploded"]

    recs = []
    for seed in range(8):
        # baseline: seed 0 explodes at the mildest level, the others at the second
        recs += [axis_record("baseline", seed, i, e) for i, e in enumerate(ends(0 if seed == 0 else 1))]
        # batchnorm ties baseline's worst seed and wins the other 7: the sign test passes, yet
        # its minimum is baseline's, so it does not hold more levels
        recs += [axis_record("batchnorm", seed, i, e, compared=True) for i, e in enumerate(ends(0 if seed == 0 else 2))]
    # a 2-seed arm as good as baseline on its seeds 1 and 2: +0 there, not +1 over baseline's 8-seed minimum
    recs += [axis_record("clip_norm", s, i, e) for s in (1, 2) for i, e in enumerate(ends(1))]
    results = stress_results(recs)
    bn, clip = results.cell("d", "batchnorm"), results.cell("d", "clip_norm")
    assert (bn.extra, bn.wins, bn.p_holm, bn.significant) == (0.0, 7, 2**-7, False)
    assert clip.extra == 0.0 and results.top_group("d") == ["baseline", "batchnorm", "clip_norm"]
    assert verdict(results, CauseTest(rule="more", axis="d", arms=["batchnorm"])).verdict == "does not hold"
    # the order is read on the seeds every arm ran, and says where it breaks
    order = verdict(results, CauseTest(rule="order", axis="d", arms=["clip_norm", "batchnorm"]))
    assert order.verdict == "does not hold" and order.measured.startswith("clip_norm 1 < batchnorm 2 of 3 levels")


# ------------------------------------------------------------------------------- end to end


def test_a_suite_with_axes_runs_them_after_the_final_seeds_and_skips_above_exploded_levels(tmp_path, capsys):
    from gradbench.cli import main

    data = real_data_or_skip("MNIST")
    config = tmp_path / "s.yaml"
    config.write_text(
        json.dumps(
            {
                "name": "s",
                "seeds": 2,
                "threads": 1,
                "tasks": {
                    "mnist_mlp": {**MNIST, "model": {"depth": 2, "width": 32, "init": "kaiming", "init_gain": 1.5}}
                },
                "strategies": ["baseline", "clip_norm"],
                "stress": {"lr_mult": [0.25]},
                "protocol": {"sweep_seeds": 2, "extra_trials": 0},
                "stress_axes": {
                    "depth": {"task": "mnist_mlp", "vary": "model.depth", "levels": [2, 24, 48]},
                    "spikes": {"task": "mnist_mlp", "vary": "spikes.scale", "levels": [0, 1000], "spike_share": 0.1},
                },
            }
        )
    )
    results = tmp_path / "r.jsonl"
    argv = ["run", str(config), "--results", str(results), "--data", str(data)]
    assert main(argv) == 0
    recs = [json.loads(line) for line in results.read_text().splitlines()]
    stress = [r for r in recs if r["spec"]["phase"] == "stress"]
    assert len(stress) == 2 * 2 * (3 + 2)  # arms x seeds x levels
    # the mildest level is each arm's tuned run, copied, never trained twice
    first = [r for r in stress if r["spec"]["axis"]["index"] == 0]
    assert first and all(r.get("copy_of") for r in first)
    # baseline's gain-1.5 stack explodes at depth 24 on both seeds: depth 48 is not run
    deep = {
        (r["strategy"]["label"], r["spec"]["axis"]["level"]): r for r in stress if r["spec"]["axis"]["name"] == "depth"
    }
    assert deep[("baseline", 24)]["outcome"] == "exploded"
    assert deep[("baseline", 48)]["not_run"] == "above_exploded"
    results_ = stress_results(recs)
    assert results_.cell("depth", "baseline").tolerance == 1
    assert results_.cell("spikes", "clip_norm").tolerance == 2  # a clipped spike is a unit-norm step
    page = (tmp_path / "s_leaderboard" / "README.md").read_text()
    matrix = page[page.index("## Explosion by cause") : page.index("## Contents")]
    assert "| `baseline` | 1 of 3 levels | 1 of 2 levels |" in matrix.replace("≈ ", "")
    assert "### Cause: depth" in matrix and "### Cause: spikes" in matrix
    # what to use per cause, above the heatmap drawn from the same cells, and the site's view
    assert "| `depth` (model.depth on mnist_mlp) | 2 (3 levels) |" in matrix
    assert "![extra levels tolerated over baseline, by arm and cause](stress_matrix.png)" in matrix
    assert (tmp_path / "s_leaderboard" / "stress_matrix.png").stat().st_size > 1000
    site = (tmp_path / "s_leaderboard" / "site" / "index.html").read_text()
    assert "<h2>Explosion by cause</h2>" in site and 'id="causes"' in site and 'id="fig-stress"' in site
    # a pre-registered cause prediction beside the page gets its verdict there
    (tmp_path / "s_leaderboard" / "preregistration.yaml").write_text(
        "date: 2026-01-01\nsuite: s.yaml\nsettings: {axes: depth and spikes}\nseed_rule: 2 seeds\npredictions:\n"
        "  - {claim: clipping holds a clipped spike, predicted: clip_norm above baseline, "
        "test: {rule: more, axis: spikes, arms: [clip_norm]}}\n"
    )
    board = tmp_path / "s_leaderboard"
    assert main(["leaderboard", str(results), "--out", str(board)]) == 0
    page = (board / "README.md").read_text()
    verdicts = page[page.index("### The causes' predictions and their verdicts") :]
    assert (
        "| spikes: clip_norm above baseline in levels tolerated | baseline 1 of 2; clip_norm +1 (d) | holds (descriptive"
        in verdicts
    )
    capsys.readouterr()
    assert main(["status", str(config), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "the stress axes, level 3 of 3: 4 of 4 recorded" in out
    assert main(argv) == 0 and len(results.read_text().splitlines()) == len(recs)  # resumed: nothing to run


def test_too_few_compared_seeds_for_holm_is_a_warning_naming_the_field():
    from gradbench.core.errors import GradbenchWarning

    with pytest.warns(
        GradbenchWarning, match=r"stress_axes.d.compare_seeds: 4 paired seeds cannot pass Holm .* at least 6"
    ):
        stress_suite({"d": {**DEPTH, "compare": ["batchnorm", "clip_norm"], "compare_seeds": 4}})


def test_the_readme_calibration_table_matches_the_calibration_records():
    """README.md's 'Explosion by cause: the calibration' reads its levels off the committed
    calibration records (leaderboard/stress_calibration/): baseline's first explosion per axis."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    lines = (root / "leaderboard" / "stress_calibration" / "results.jsonl").read_text().splitlines()
    results = stress_results(json.loads(line) for line in lines)
    readme = (root / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Explosion by cause: the calibration") :]
    rows = {
        "depth": "| depth,",
        "seq_len": "| sequence length",
        "spikes_rare": "| loss spikes",
        "rnn_lr": "| learning rate",
    }
    rows["rnn_lr_bf16"] = "| low precision"
    for axis, start in rows.items():
        base = results.cell(axis, "baseline")
        first = base.levels[base.tolerance]  # the first level where a seed exploded
        row = next(line for line in table.splitlines() if line.startswith(start))
        shown = f"×{first:g}" if axis in ("spikes_rare", "rnn_lr", "rnn_lr_bf16") else f"{first}"
        assert f"| {shown} |" in row or f"| {shown} (" in row, (axis, first, row)
        more = [c.arm for c in results.cells if c.axis == axis and c.arm != "baseline" and c.extra >= 2]
        assert all(f"`{arm}`" in row for arm in more), (axis, more)


def test_the_stress_demo_page_matrix_matches_its_records_read_by_hand():
    """The committed demo (configs/stress_demo.yaml, leaderboard/stress_demo/): its page's matrix,
    re-read from the raw records with code of this test's own: per seed, the levels before its
    first exploded, collapsed or not-run level; per arm, the fewest over the seeds it shares
    with baseline, minus baseline's on them."""
    from collections import defaultdict
    from pathlib import Path

    folder = Path(__file__).parent.parent / "leaderboard" / "stress_demo"
    recs = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    failed = defaultdict(set)  # (axis, arm, seed) -> level indices that ended the tolerance
    ran = defaultdict(set)
    levels = defaultdict(int)
    for r in recs:
        tag = r["spec"].get("axis")
        if not tag or (r["status"] == "skipped" and not r.get("not_run")):
            continue
        key = (tag["name"], r["strategy"]["label"], r["seed"])
        ran[key].add(tag["index"])
        levels[tag["name"]] = max(levels[tag["name"]], tag["index"] + 1)
        if r.get("not_run") or r.get("outcome") in ("exploded", "collapsed"):
            failed[key].add(tag["index"])

    def held(key) -> int:
        n = 0
        while n in ran[key] and n not in failed[key]:
            n += 1
        return n

    page = (folder / "README.md").read_text(encoding="utf-8")
    matrix = page[page.index("| arm | depth") :].split("\n\n")[0].splitlines()
    axes = [h.split(" (")[0].strip() for h in matrix[0].split("|")[2:-1]]
    rows = {line.split("|")[1].strip().strip("`"): [c.strip() for c in line.split("|")[2:-1]] for line in matrix[2:]}
    assert len(axes) == 5 and set(rows) >= {"baseline", "clip_norm", "batchnorm"}
    checked = 0
    for j, axis in enumerate(axes):
        base_seeds = {s for (a, arm, s) in ran if a == axis and arm == "baseline"}
        assert (
            rows["baseline"][j].replace("≈ ", "")
            == f"{min(held((axis, 'baseline', s)) for s in base_seeds)} of {levels[axis]} levels"
        )
        for arm, cells in rows.items():
            seeds = {s for (a, other, s) in ran if a == axis and other == arm} & base_seeds
            if arm == "baseline" or not seeds:
                assert arm == "baseline" or cells[j] == "—"
                continue
            extra = min(held((axis, arm, s)) for s in seeds) - min(held((axis, "baseline", s)) for s in seeds)
            assert cells[j].replace("≈ ", "").split(" ")[0] == f"{extra:+d}", (axis, arm, cells[j], extra)
            checked += 1
    assert checked >= 12


def test_the_separation_table_names_where_baseline_fails_and_the_arms_either_side(tmp_path):
    """benchmarks/stress_table.py (analysis/stress_separation.py): per axis of the committed
    calibration, baseline's first failed level, the arms at least 2 levels over it and those at
    none, read off the same cells as the matrix; --readme writes it between the markers, and a
    README without them is refused with exit code 2."""
    import subprocess
    import sys
    from pathlib import Path

    from gradbench.analysis import stress_separation

    root = Path(__file__).parent.parent
    results = root / "leaderboard" / "stress_calibration" / "results.jsonl"
    recs = [json.loads(line) for line in results.read_text().splitlines()]
    cells = stress_results(recs)
    rows = {r["axis"]: r for r in stress_separation.rows(cells)}
    assert set(rows) == {a for a in cells.axes if cells.cell(a, "baseline")}
    for axis, r in rows.items():
        base = cells.cell(axis, "baseline")
        assert r["first_fail"] == (base.levels[base.tolerance] if base.tolerance < len(base.levels) else None)
        others = [c for c in cells.cells if c.axis == axis and c.arm != "baseline"]
        assert {c.arm for c in r["more"]} == {c.arm for c in others if c.extra >= 2}
        assert {c.arm for c in r["none"]} == {c.arm for c in others if c.extra <= 0}
        assert r["separates"] == (bool(r["more"]) and bool(r["none"]))
        assert r["longer"] == sum(c.extra >= 1 for c in others)  # the remade leaderboard's bar counts any level
    assert rows["rnn_lr"]["first_fail"] == 4 and rows["rnn_lr"]["separates"]  # gru+adam +4, weight_decay +0
    assert rows["depth"]["first_fail"] == 32 and not rows["depth"]["separates"]  # nothing calibrated held no longer

    script = [sys.executable, str(root / "benchmarks" / "stress_table.py"), str(results)]
    shown = subprocess.run(script, capture_output=True, text=True, check=True).stdout
    assert "| `rnn_lr` (lr on adding_rnn) | 1, 2, 4, 8, 16, 32 | 4 | `gru+adam` +4 (d) |" in shown
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{stress_separation.START}\nWHAT WAS HERE\n{stress_separation.END}\n\nrest\n")
    subprocess.run([*script, "--readme", str(readme)], capture_output=True, text=True, check=True)
    text = readme.read_text()
    assert "WHAT WAS HERE" not in text and shown.strip() in text and text.endswith("rest\n")
    assert "<!-- written by `python benchmarks/stress_table.py" in text
    readme.write_text("# no markers\n")
    refused = subprocess.run([*script, "--readme", str(readme)], capture_output=True, text=True)
    assert refused.returncode == 2 and "markers" in refused.stderr


def test_the_readme_separation_table_is_the_stress_suites_own():
    """README.md's table of whether each cause separates the arms is what
    benchmarks/stress_table.py writes from the committed stress suite's records (no figure
    typed by hand): regenerated here into a copy, it changes nothing."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from gradbench.analysis import stress_separation

    root = Path(__file__).parent.parent
    readme = root / "README.md"
    block = readme.read_text(encoding="utf-8")
    assert stress_separation.START in block and "benchmarks/stress_table.py leaderboard/stress/results.jsonl" in block
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "README.md"
        shutil.copy(readme, copy)
        subprocess.run(
            [
                sys.executable,
                str(root / "benchmarks" / "stress_table.py"),
                "leaderboard/stress/results.jsonl",
                "--readme",
                str(copy),
            ],
            cwd=root,
            check=True,
            capture_output=True,
        )
        written = copy.read_text(encoding="utf-8")
    start, end = stress_separation.START, stress_separation.END
    ours = written[written.index(start) : written.index(end)]
    theirs = block[block.index(start) : block.index(end)]
    # the command line names the copy it wrote; the table and its rule are the same
    assert ours.split("\n", 2)[2] == theirs.split("\n", 2)[2]


def test_the_readme_reads_each_cause_against_the_remakes_bar_of_three_on_each_side():
    """The committed stress suite against the remade leaderboard's bar (at least 3 arms hold
    longer than baseline, at least 3 no longer): depth, sequence length and spikes meet it; the
    RNN's learning rate and its bf16 twin have one arm that holds no longer (weight_decay), and
    the Transformer's learning rate none that holds longer, so those three need more arms or
    another reading before the remake can claim them."""
    from conftest import REPO

    from gradbench.analysis import stress_separation

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split(stress_separation.START, 1)[1].split(stress_separation.END, 1)[0]
    bar = {line.split("`")[1]: line.rsplit("|", 2)[-2].strip() for line in block.splitlines() if line.startswith("| `")}
    assert bar == {
        "depth": "yes (6 more, 5 no more)",
        "lr": "no (10 more, 1 no more)",
        "lr_attention": "no (0 more, 5 no more)",
        "precision": "no (10 more, 1 no more)",
        "seq_len": "yes (8 more, 3 no more)",
        "spikes": "yes (5 more, 6 no more)",
    }
