"""The leaderboard page and plots, from hand-built records (no torch, no training).

GRADBENCH_UPDATE_GOLDEN=1 pytest tests/test_leaderboard.py rewrites tests/golden/leaderboard.md;
check the diff by eye before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakes import make_record, suite_records  # hand-built run records (tests/fakes.py)

from gradbench.analysis import page as leaderboard
from gradbench.analysis import scoring
from gradbench.core.errors import UserError

GOLDEN = Path(__file__).parent / "golden" / "leaderboard.md"


def test_golden_page(tmp_path):
    page = leaderboard.write(suite_records(), tmp_path, plots=False).read_text(encoding="utf-8")
    if os.environ.get("GRADBENCH_UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(page, encoding="utf-8", newline="\n")
    assert page == GOLDEN.read_text(encoding="utf-8"), (
        "leaderboard page changed; if intended, rerun with GRADBENCH_UPDATE_GOLDEN=1 "
        "and review the diff of tests/golden/leaderboard.md"
    )


def test_rescoring_gives_the_same_bytes(tmp_path):
    recs = suite_records()
    a = leaderboard.write(recs, tmp_path / "a", plots=False).read_bytes()
    b = leaderboard.write(recs, tmp_path / "b", plots=False).read_bytes()
    c = leaderboard.write(list(reversed(recs)), tmp_path / "c", plots=False).read_bytes()
    assert a == b == c


def test_page_contents(tmp_path):
    page = leaderboard.write(suite_records(), tmp_path, plots=False).read_text()
    # Provenance: the reproducing command, the latest finished_at (not "now"), run counts.
    assert "`gradbench run configs/quick.yaml`" in page
    assert "2025-03-06T12:00:00Z" in page
    assert "48 (38 ok, 3 diverged, 1 error, 6 skipped)" in page
    assert "`sha256:df5274d8dfe6851c" in page and "torch 2.13.0" in page
    # One table per task, n/a with its reason, errors counted and listed, the how section.
    assert "## Task `mnist_mlp`" in page and "## Task `adding_rnn`" in page
    assert ("| — | `clip_norm+batchnorm` | n/a: batchnorm does not apply to recurrent models |") in page
    assert "RuntimeError: shape mismatch \\| in step" in page  # pipe escaped in markdown
    assert "## How scores are computed" in page
    assert "![" not in page  # plots=False links no images


def test_command_argument_overrides_the_records(tmp_path):
    recs = suite_records()
    recs[0]["command"] = "gradbench run other.yaml"  # outvoted by the others
    page = leaderboard.write(recs, tmp_path, plots=False).read_text()
    assert "`gradbench run configs/quick.yaml`" in page
    page = leaderboard.write(recs, tmp_path, plots=False, command="make leaderboard").read_text()
    assert "`make leaderboard`" in page and "configs/quick.yaml" not in page


def test_the_page_names_its_rebuild_command_only_when_that_command_makes_it(tmp_path):
    """`gradbench leaderboard results.jsonl --out .` in the folder makes the page only when
    the records came from the folder's results.jsonl, with the default weights and command."""
    from gradbench.store import jsonl

    results = tmp_path / "results.jsonl"
    for rec in suite_records():
        jsonl.append(results, rec)
    made = "| This page made by | `gradbench leaderboard results.jsonl --out .` in this folder |"
    recs = jsonl.load(results)
    assert made in leaderboard.write(recs, tmp_path, plots=False, results=results).read_text()
    elsewhere = {
        "another folder": dict(out_dir=tmp_path / "other", results=results),
        "no results file": dict(out_dir=tmp_path),
        "a command": dict(out_dir=tmp_path, results=results, command="make leaderboard"),
        "other weights": dict(out_dir=tmp_path, results=results, weights={"accuracy": 1.0}),
    }
    for case, kw in elsewhere.items():
        assert "This page made by" not in leaderboard.write(recs, plots=False, **kw).read_text(), case


def test_missing_task_has_no_table_and_empty_results_do_not_crash(tmp_path):
    only_rnn = [r for r in suite_records() if r["task"] == "adding_rnn"]
    page = leaderboard.write(only_rnn, tmp_path / "rnn", plots=False).read_text()
    assert "## Task `adding_rnn`" in page and "mnist_mlp" not in page
    empty = leaderboard.write([], tmp_path / "empty", plots=False).read_text()
    assert "No scored runs" in empty


def test_no_baseline_shows_na_and_only_errors_show_error(tmp_path):
    recs = [make_record(strategy="clip_norm", seed=i) for i in range(2)]
    recs.append(make_record(strategy="broken", status="error", reason="ValueError: boom"))
    page = leaderboard.write(recs, tmp_path, plots=False).read_text()
    task_table = page.split("## Task `mnist_mlp`")[1]
    line = next(row for row in task_table.splitlines() if row.startswith("| 1 = | `clip_norm`"))
    assert "| n/a |" in line
    assert "| — | `broken` | error: ValueError: boom |" in page


def test_weights_flow_through_and_bad_keys_fail(tmp_path):
    page = leaderboard.write(suite_records(), tmp_path, plots=False, weights={"speed": 0.0}).read_text()
    assert "stability 0.500, speed 0.000, accuracy 0.500" in page
    with pytest.raises(UserError, match="unknown key .sped. .did you mean .speed..*valid: stability, speed, accuracy"):
        leaderboard.write(suite_records(), tmp_path, plots=False, weights={"sped": 1})


def test_plots_are_written_linked_and_deterministic(tmp_path):
    recs = suite_records()
    readme = leaderboard.write(recs, tmp_path / "a")
    page = readme.read_text()
    names = [
        "dose_response_mnist_mlp.png",
        "dose_response_adding_rnn.png",
        "val_curves_mnist_mlp.png",
        "val_curves_adding_rnn.png",
        "grad_norm_mnist_mlp.png",
        "grad_norm_adding_rnn.png",
        "stability_vs_accuracy.png",
    ]
    for name in names:
        f = tmp_path / "a" / name
        assert f.stat().st_size > 1000, name
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in page  # relative link
    leaderboard.write(recs, tmp_path / "b")
    for name in names + ["README.md"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_runs_without_a_fingerprint_do_not_count_as_other_data(tmp_path):
    """Skipped runs never load data (fingerprint null): no false 'more than one fingerprint'."""
    recs = suite_records()
    fp = next(r["data"]["fingerprint"] for r in recs if r["data"]["fingerprint"])
    task = recs[0]["task"]
    skipped = make_record(task=task, strategy="lstm", seed=0, status="skipped", reason="lstm applies to rnn")
    skipped["data"]["fingerprint"] = None
    page = leaderboard.render(recs + [skipped], scoring.score(recs + [skipped]), command="x")
    assert "more than one fingerprint" not in page
    assert fp in page


def test_the_overall_tables_are_one_per_set_of_tasks_and_name_where_an_arm_did_not_run():
    recs = [
        make_record(task, st, seed=s, test=v, best_val=v)
        for task, by in {
            "mnist_mlp": {"baseline": 0.9, "adam": 0.95, "only": 0.97, "worse": 0.5},
            "adding_rnn": {"baseline": 0.03, "adam": 0.01},
        }.items()
        for st, v in by.items()
        for s in range(2)
    ]
    page = leaderboard.render(recs, scoring.score(recs), command="x")
    assert "### Ranked on all 2 tasks" in page
    assert "### Ranked on 1 of 2 tasks: `mnist_mlp`" in page
    assert "| 1 | `only` | 0.00 |" in page and "`adding_rnn` (not run)" in page
    # the smaller table places its arms among every arm ranked on mnist, the all-task ones too
    assert "| 1 | `only` | 0.00 | 1 of 4 |" in page and "| 2 | `worse` | 1.00 | 4 of 4 |" in page
    tables = page.split("### Ranked on ")
    assert "among every arm ranked on these tasks" not in tables[1]  # no wider field: no column
    assert "| rank | strategy | mean rank (0 first, 1 last) | among every arm ranked on these tasks |" in tables[2]
    overall = scoring.score(recs).overall.set_index("strategy")
    assert overall.loc["worse", ["place_wide", "wide_field"]].tolist() == [4, 4]
    assert overall.loc[["adam", "baseline"], "place_wide"].isna().all()


def test_a_static_figure_draws_baseline_and_the_best_ranked_when_a_task_has_many_strategies():
    import pandas as pd

    from gradbench.analysis.plots import MAX_LINES, shown

    names = [f"s{i:02d}" for i in range(30)] + ["qk_norm+z_loss", "baseline"]  # in the page's order
    rows = pd.DataFrame({"strategy": names})
    few = shown(rows.head(MAX_LINES))
    assert len(few) == MAX_LINES and few.attrs["of"] == MAX_LINES
    many = shown(rows)
    assert len(many) == MAX_LINES and many.attrs["of"] == len(names)
    assert list(many["strategy"]) == names[: MAX_LINES - 1] + ["baseline"]  # the page's order kept
    attention = shown(rows, ("qk_norm",))
    assert {"baseline", "qk_norm+z_loss"} <= set(attention["strategy"]) and len(attention) == MAX_LINES
    crowded = pd.DataFrame({"strategy": [f"qk_norm+s{i:02d}" for i in range(20)] + ["baseline"]})
    assert "baseline" in set(shown(crowded, ("qk_norm",))["strategy"])  # never crowded out


COMMITTED = [
    Path(__file__).parent.parent / "leaderboard",
    Path(__file__).parent.parent / "leaderboard" / "protocol_demo",
    Path(__file__).parent.parent / "leaderboard" / "measure_demo",
    Path(__file__).parent.parent / "leaderboard" / "stress_calibration",
    Path(__file__).parent.parent / "leaderboard" / "stress_demo",
    Path(__file__).parent.parent / "leaderboard" / "lm",
    Path(__file__).parent.parent / "leaderboard" / "stress",
]


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_a_committed_page_rebuilds_from_its_own_results(folder, tmp_path):
    """Main always holds pages that rebuild from their own results, byte for byte (the plots
    are drawn too, so the page links the same images; a saved rank stability and arm cost come
    along, as scripts/site.sh copies them), through the CLI in a process where torch and
    lightning cannot be imported: the page needs neither."""
    import shutil
    import subprocess
    import sys

    from conftest import BLOCK_TORCH, NO_TORCH_LOADED

    from gradbench.analysis import arm_cost, preregistration, rank_stability

    for saved in (rank_stability.FILE, arm_cost.FILE, preregistration.FILE, preregistration.AMENDMENTS):
        if (folder / saved).exists():
            shutil.copy(folder / saved, tmp_path / saved)
    results = shutil.copy(folder / "results.jsonl", tmp_path / "results.jsonl")
    cli = BLOCK_TORCH + "from gradbench.cli import main\nrc = main(sys.argv[1:])\n" + NO_TORCH_LOADED + "sys.exit(rc)\n"
    out = subprocess.run(
        [sys.executable, "-c", cli, "leaderboard", str(results), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    page = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert page == (folder / "README.md").read_text(encoding="utf-8")
    if (folder / rank_stability.FILE).exists():  # a protocol page carries its measured rank stability
        assert "### Rank stability" in page
    for name in ("index.html", "plotly.min.js"):  # and the static site, the same scores
        assert (tmp_path / "site" / name).read_bytes() == (folder / "site" / name).read_bytes(), name


def _part_folder(source: Path, dest: Path) -> Path:
    """A copy of a committed page's results and the files saved beside it."""
    import shutil

    from gradbench.analysis import arm_cost, preregistration

    dest.mkdir(parents=True)
    for name in ("results.jsonl", arm_cost.FILE, preregistration.FILE, preregistration.AMENDMENTS):
        if (source / name).exists():
            shutil.copy(source / name, dest / name)
    return dest / "results.jsonl"


def test_a_page_composes_the_tasks_and_causes_of_other_suites(tmp_path, monkeypatch):
    """A remade leaderboard reads parts grown apart: its own tasks, another suite's tasks
    (--tasks-from: scored with its own, one decision table) and a stress suite's causes
    (--causes-from: the causes matrix and its verdicts, though its tasks share names with
    the page's). Each part's registration is shown, and the page names how it rebuilds."""
    from gradbench.cli import main

    leaderboard_dir = Path(__file__).parent.parent / "leaderboard"
    _part_folder(leaderboard_dir / "measure_demo", tmp_path / "page")
    _part_folder(leaderboard_dir / "lm", tmp_path / "page" / "lm")
    _part_folder(leaderboard_dir / "stress", tmp_path / "page" / "stress")
    monkeypatch.chdir(tmp_path / "page")
    args = ["leaderboard", "results.jsonl", "--tasks-from", "lm/results.jsonl"]
    assert main([*args, "--causes-from", "stress/results.jsonl", "--out", "."]) == 0
    page = Path("README.md").read_text(encoding="utf-8")
    decision = page.split("## Stability vs accuracy")[0]
    for task in ("`adding_rnn`", "`fortunes_gpt`", "`mnist_mlp`"):  # one decision table over both suites' tasks
        assert task in decision, task
    causes = page.split("## Explosion by cause")[1].split("## Contents")[0]
    assert "### Cause: depth" in causes and "The causes' predictions and their verdicts" in causes
    assert Path("stress_matrix.png").exists()  # drawn from the causes part
    assert "## Task `recall_transformer`" not in page  # the stress suite's tasks are not scored here
    registrations = page.split("## Pre-registration")[1].split("## Provenance")[0]
    assert "configs/measure_demo.yaml" in registrations
    assert "### `lm/results.jsonl` (its tasks)" in registrations and "configs/lm.yaml" in registrations
    assert "### `stress/results.jsonl` (the causes)" in registrations and "configs/stress.yaml" in registrations
    assert "| Also read (the causes) | `stress/results.jsonl`: suite `stress`, 1438 runs" in page
    assert (
        "`gradbench leaderboard results.jsonl --tasks-from lm/results.jsonl --causes-from stress/results.jsonl "
        "--out .` in this folder" in page
    )
    assert "measure_demo" in page.split("| Reproduce with |")[1].split("\n")[0]  # this folder's suite
    site = Path("site/index.html").read_text(encoding="utf-8")
    assert "fortunes_gpt" in site and "Explosion by cause" in site


def test_a_page_refuses_parts_it_cannot_read_before_it_writes(tmp_path, capsys):
    """A part that is not there, or whose tasks are the page's own under other settings, is one
    clear error (exit 2), and no page is written."""
    from gradbench.cli import main

    leaderboard_dir = Path(__file__).parent.parent / "leaderboard"
    own = _part_folder(leaderboard_dir / "measure_demo", tmp_path / "page")
    out = tmp_path / "page"
    assert main(["leaderboard", str(own), "--causes-from", str(tmp_path / "nowhere.jsonl"), "--out", str(out)]) == 2
    assert "--causes-from" in capsys.readouterr().err and not (out / "README.md").exists()
    clash = _part_folder(leaderboard_dir / "protocol_demo", tmp_path / "demo")  # mnist_mlp at other settings
    assert main(["leaderboard", str(own), "--tasks-from", str(clash), "--out", str(out)]) == 2
    assert "task adding_rnn is in the page's results too" in capsys.readouterr().err
    shared = tmp_path / "page" / "lm.jsonl"  # a part beside the page's own results: whose registration?
    shared.write_bytes((leaderboard_dir / "lm" / "results.jsonl").read_bytes())
    assert main(["leaderboard", str(own), "--tasks-from", str(shared), "--out", str(out)]) == 2
    assert "its folder is the page's folder too" in capsys.readouterr().err
    assert not (out / "README.md").exists()


def test_the_remakes_protocol_predictions_are_the_literature_claims_word_for_word():
    """Each prediction registered for the remade leaderboard's protocol part states a claim of
    analysis/literature.py word for word, so the page gives each the verdict of that claim's
    fixed rule (an edited word would leave it without one)."""
    from gradbench.analysis import literature, preregistration

    registered = preregistration.saved(Path(__file__).parent.parent / "leaderboard" / "next")
    claims = {c.claim for c in literature.CLAIMS}
    assert [p.claim for p in registered["reg"].predictions if p.claim not in claims] == []


def test_a_registered_cause_gets_the_verdict_of_its_rule():
    page = (COMMITTED[6] / "README.md").read_text(encoding="utf-8")
    registrations = page.split("## Pre-registration")[1]
    assert "Predictions, each with its verdict where a fixed rule in the code reads it (9 of 9)" in registrations
    assert "| Pascanu et al., 2013 | holds |" in registrations  # clipping extends the RNN's lr


def test_the_protocol_demo_page_shows_the_protocol_and_its_readings():
    page = (COMMITTED[1] / "README.md").read_text(encoding="utf-8")
    for shown in (
        "Tuning protocol",
        "dose_response_mnist_mlp.png",
        "max stable lr",
        "Tied with the leader",
        "7 levels",
        "2 extra trials",
        "| `adding_rnn` | <= 0.05 | 0: none | 4: `adam` 0.167",  # which arms reach each target
    ):
        assert shown in page, shown


def test_the_static_site_shows_every_table_and_figure_and_names_its_source(tmp_path):
    """analysis/site.py: one sortable table per task, overall, of the arms reaching each
    task's target and, once measured beside the page, of the rank stability; the figures
    (dose-response per task, stability against accuracy, P(improve)), the command and the
    results file."""
    import shutil

    from gradbench.analysis import rank_stability
    from gradbench.store import jsonl

    folder = COMMITTED[1]
    leaderboard.write(jsonl.load(folder / "results.jsonl"), tmp_path)
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'id="rank-stability"' not in index  # none measured beside it
    shutil.copy(folder / rank_stability.FILE, tmp_path / rank_stability.FILE)
    leaderboard.write(jsonl.load(folder / "results.jsonl"), tmp_path)
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    for table_id in ("overall", "rank-stability", "targets", "task-0", "task-1"):
        assert f'id="{table_id}"' in index, table_id
    for div in ("fig-scatter", "fig-win", "fig-dose-0", "fig-dose-1"):
        assert f'id="{div}"' in index, div
    assert '<script src="plotly.min.js"></script>' in index and "unpkg.com" not in index  # offline
    from gradbench.analysis.runs import runs_frame
    from gradbench.analysis.site import _dose_response

    dose = _dose_response("mnist_mlp", runs_frame(jsonl.load(folder / "results.jsonl")))
    assert dose.layout.xaxis.ticktext == ("×0.125", "×0.25", "×0.5", "×1", "×2", "×4", "×8")  # the levels, named
    assert len({trace.name for trace in dose.data}) == len(dose.data) >= 4  # one line per arm
    assert 'href="../results.jsonl" download' in index and "configs/protocol_demo.yaml" in index


def test_the_sites_overall_table_names_the_widest_field_by_its_count():
    """Rows ranked on every task read "all N tasks" (one line high, one filter term); a smaller
    field keeps its task names."""
    import pandas as pd

    from gradbench.analysis.site import _overall_view

    overall = pd.DataFrame({"rank": [1, 2, 1], "strategy": ["a", "b", "c"], "compared_on": ["m, n", "m, n", "m"]})
    assert list(_overall_view(overall)["compared_on"]) == ["all 2 tasks", "all 2 tasks", "m"]
    one = pd.DataFrame({"rank": [1], "strategy": ["a"], "compared_on": ["m"]})
    assert list(_overall_view(one)["compared_on"]) == ["m"]


def test_the_sites_rank_stability_reads_as_the_markdown_page_does():
    """A top 3 unchanged in fewer than 90% of the resamples is shown with its tied group; a
    measurement made before the shares in the top 3 were kept says so; a task where every
    strategy shares one rank is named in the text."""
    from gradbench.analysis.site import _rank_stability, _rank_stability_view

    measured = {
        "resamples": 100,
        "top": {"a": ["x", "y", "z"], "b": ["x", "y", "z"], "overall": ["x", "y", "z"]},
        "unchanged": {"a": 0.95, "b": 0.5, "overall": 0.6},
        "in_top": {"a": {"x": 1.0}, "b": {"x": 1.0, "y": 0.8, "z": 0.5, "w": 0.55, "v": 0.05}},
    }
    rows = _rank_stability_view(measured).values.tolist()
    assert rows == [
        ["a", "x, y, z", 95, ""],  # settled: no group
        ["b", "x, y, z", 50, "x (100%), y (80%), w (55%), z (50%)"],  # v, at 5%, is ruled out
        ["overall", "x, y, z", 60, "(not measured: made before the share in the top 3 was kept)"],
    ]
    html_ = "\n".join(_rank_stability(measured, ["flat"]))
    assert "No top 3 on flat" in html_ and 'id="rank-stability"' in html_
    assert _rank_stability(None, []) == []


def test_the_static_site_renders_in_a_real_browser(tmp_path):
    """Chromium, headless, opens the committed demo's site from disk: DataTables turned every
    table into a sortable one with its rows, plotly drew every figure, and the console has no
    error. A screenshot is kept (GRADBENCH_ARTIFACTS, else the test's folder). CI installs
    chromium (.ci/run); without it this test fails, it never skips."""
    import os
    import re
    import shutil
    import subprocess

    # Debian's chromium (.ci/run), or the Chrome that GitHub's Ubuntu runners ship
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    assert browser, "chromium is missing: apt-get install chromium (.ci/run does)"
    index = COMMITTED[1] / "site" / "index.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000", "--enable-logging=stderr"]
    dom = subprocess.run([browser, *flags, "--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    tables = re.findall(r'<table id="([^"]+)"[^>]*class="[^"]*dataTable', dom.stdout)
    # the literature table too: the demo reads the clipping claim on the adding problem
    assert sorted(tables) == ["literature", "overall", "rank-stability", "targets", "task-0", "task-1"], tables
    assert dom.stdout.count("dt-orderable") >= 10  # sortable columns
    assert dom.stdout.count('class="main-svg"') >= 4  # every figure drawn
    # a number a row lacks (P(improve) of baseline itself) shows as a dash, never as "NaN" (in
    # the tables DataTables drew; itables' hidden no-JavaScript fallback has inline styles)
    cells = re.findall(r'<td(?: class="[^"]*")?>([^<]*)</td>', dom.stdout)
    assert "NaN" not in cells and "\u2013" in cells, sorted(set(cells))[:20]
    console = [
        line for line in dom.stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)
    ]
    assert not console, console
    _sorting_and_filtering_work(browser, flags, COMMITTED[0] / "site" / "index.html", tmp_path)
    shot = Path(os.environ.get("GRADBENCH_ARTIFACTS", tmp_path)) / "site.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [browser, *flags, "--window-size=1400,2400", f"--screenshot={shot}", index.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 10_000
    _the_first_view_is_the_decision_table(browser, flags, index, shot.parent)


def _the_first_view_is_the_decision_table(browser, flags, index: Path, artifacts: Path) -> None:
    """In a 1400x900 window the first table in document order is the decision table, and it
    ends inside that first viewport; a screenshot of that view is kept (first_view.png)."""
    import re
    import shutil
    import subprocess
    import tempfile

    measure = (
        "<script>window.addEventListener('load',()=>{const t=document.querySelector('table');"
        "const r=t.getBoundingClientRect();document.body.setAttribute('data-first-table',"
        "t.id+' '+Math.round(r.top)+' '+Math.round(r.bottom));});</script>"
    )
    with tempfile.TemporaryDirectory() as tmp:  # a copy with the probe: the committed site stays as it is
        probe = Path(tmp) / "index.html"
        shutil.copy(index.parent / "plotly.min.js", Path(tmp) / "plotly.min.js")
        probe.write_text(index.read_text(encoding="utf-8").replace("</body>", measure + "</body>"), encoding="utf-8")
        dom = subprocess.run(
            [browser, *flags, "--window-size=1400,900", "--dump-dom", probe.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    found = re.search(r'data-first-table="(\S+) (-?\d+) (-?\d+)"', dom.stdout)
    assert found, dom.stderr[-2000:]
    table_id, top, bottom = found.group(1), int(found.group(2)), int(found.group(3))
    assert table_id == "decision" and 0 <= top < bottom <= 900, (table_id, top, bottom)
    view = artifacts / "first_view.png"
    subprocess.run(
        [browser, *flags, "--window-size=1400,900", f"--screenshot={view}", index.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert view.stat().st_size > 10_000


# Clicks the overall table's "strategy" header twice, then types into its search box, and writes
# what the table showed after each into the page, for --dump-dom to read.
_INTERACT = """<script>
// DataTables redraws after a click on a timer, so each step waits before it reads the table
const pause = () => new Promise((resolve) => setTimeout(resolve, 300));
window.addEventListener("load", async () => {
  await pause();
  const table = document.querySelector("table#overall");
  const heads = [...table.querySelectorAll("thead th")];
  const col = heads.findIndex((th) => th.textContent.trim() === "strategy");
  const shown = () => [...table.querySelectorAll("tbody tr")].map((tr) => tr.children[col].textContent);
  const before = shown();
  heads[col].click();
  await pause();
  const up = shown();
  heads[col].click();
  await pause();
  const down = shown();
  const search = table.closest(".dt-container").querySelector("input[type=search]");
  search.value = up[0];
  search.dispatchEvent(new Event("input", {bubbles: true}));
  await pause();
  const filtered = shown();
  const out = document.createElement("pre");
  out.id = "interaction";
  out.textContent = JSON.stringify({before, up, down, filtered});
  document.body.appendChild(out);
});
</script>
"""


def _sorting_and_filtering_work(browser, flags, index, tmp_path):
    """The overall table sorts by a click on a header, both ways, and filters by its search
    box, in the real browser, on a copy of a site (the main page's: its overall table has a
    few dozen rows) with a script that does the clicking."""
    import html
    import json
    import re
    import shutil
    import subprocess

    copy = tmp_path / "interact" / "site"
    shutil.copytree(index.parent, copy)
    page = copy / "index.html"
    page.write_text(page.read_text(encoding="utf-8").replace("</body>", _INTERACT + "</body>"), encoding="utf-8")
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="interaction">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert len(seen["before"]) >= 5 and seen["before"] != sorted(seen["before"])  # ranked, not alphabetical
    # one click sorts by the column, a second reverses it (the browser's collation decides where
    # "_" and "+" go, so the order is checked against itself, and against Python's on plain names)
    assert seen["up"] != seen["before"] and sorted(seen["up"]) == sorted(seen["before"])
    assert seen["down"] == seen["up"][::-1]
    plain = [s for s in seen["up"] if s.isalpha()]
    assert plain == sorted(plain)
    assert seen["filtered"] and all(seen["up"][0] in row for row in seen["filtered"])
    assert len(seen["filtered"]) < len(seen["before"])


def test_the_literature_section_reads_each_claim_by_its_rule_and_says_what_differs(tmp_path):
    """analysis/literature.py: batchnorm stable a level above baseline makes Ioffe & Szegedy's
    claim hold; warmup failing where baseline fails makes Goyal et al.'s not hold, and the page
    then says what this setup does differently; a claim whose arms are missing cannot be tested."""
    from gradbench.analysis import literature

    recs = []
    for seed in (0, 1):
        for lr in (1.0, 2.0):
            for arm in ("baseline", "batchnorm", "warmup"):
                fails = arm != "batchnorm" and lr == 2.0
                recs.append(
                    make_record(
                        "mnist_mlp",
                        arm,
                        seed,
                        lr,
                        "diverged" if fails else "ok",
                        test=0.96 if arm == "batchnorm" else 0.95,
                        steps_to_target=None if fails else 300,
                    )
                )
    verdicts = {
        c.claim.split(" ")[0] + c.source.split(" ")[0]: f for c, f in literature.findings(scoring.score(recs), recs)
    }
    bn = verdicts["BatchIoffe"]
    assert bn.verdict == literature.HOLDS and "max stable lr ≥0.4 (sgd) vs baseline 0.2 (sgd)" in bn.measured
    assert verdicts["LinearGoyal"].verdict == literature.FAILS
    assert verdicts["QK-LayerNormDehghani"].verdict == literature.UNTESTED
    assert len(literature.CLAIMS) >= 8
    page = leaderboard.write(recs, tmp_path).read_text(encoding="utf-8")
    assert "## What the literature predicts, and what we measured" in page
    assert 'id="literature"' in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "**Verdict: holds.**\n" in page  # a claim that holds carries no excuse
    assert "**Verdict: does not hold.** What differs here: Goyal et al. warm up over 5 epochs" in page
    assert "**Verdict: cannot be tested here.**\n" in page
    assert verdicts["QK-LayerNormDehghani"].differs == ""  # arms missing: nothing of the setup to explain

    # a claim read but not countable (warmup and baseline both unstable from the lowest level)
    # says what differs, since why both failed is the setup's part
    unstable = [
        make_record("mnist_mlp", arm, seed, lr, "diverged", steps_to_target=None)
        for seed in (0, 1)
        for lr in (1.0, 2.0)
        for arm in ("baseline", "warmup")
    ]
    goyal = next(f for c, f in literature.findings(scoring.score(unstable), unstable) if c.source.startswith("Goyal"))
    assert goyal.verdict == literature.UNTESTED and "both unstable from the lowest level" in goyal.measured
    assert goyal.differs.startswith("Goyal et al. warm up over 5 epochs")


def test_two_specs_of_one_arm_seed_and_level_are_refused_not_counted_twice(tmp_path):
    """A results file where one arm at one seed and level was run under two specs (the code
    that resolves the arm changed between them) is an error naming both runs and what differs."""
    recs = [make_record("mnist_mlp", arm, seed) for arm in ("baseline", "sgd") for seed in (0, 1)]
    again = make_record("mnist_mlp", "sgd", 0, run_id="0123456789ab")
    again["spec"] = {**again["spec"], "optimizer": {"name": "sgd", "lr": 0.03}}
    with pytest.raises(
        UserError, match=r"0123456789ab are both sgd on mnist_mlp at seed 0, lr x1.*differ in optimizer"
    ):
        leaderboard.write([*recs, again], tmp_path, plots=False)


def test_a_memory_pass_replaces_only_the_memory_figures_of_a_saved_cost_file():
    """arm_cost.merge: a memory pass (which may run beside other work) keeps the time pass's
    figures and command; a later time pass keeps the memory pass's; a pass with every figure
    replaces the file; an arm only one pass saw has the other's figures empty."""
    from gradbench.analysis import arm_cost

    def fig(ms=None, peak=None, status="ok"):
        ratio = None if ms is None else ms / 10
        return {
            "ms_per_step": ms,
            "ratio": ratio,
            "ratio_lo": ratio,
            "ratio_hi": ratio,
            "peak_mb": peak,
            "extra_mb": None if peak is None else peak - 5,
            "statuses": [status],
        }

    timed = {
        "command": "T",
        "machine": "M",
        "memory": "old",
        "tasks": {"t": {"baseline": fig(10, 900), "a": fig(20, 950)}},
    }
    memory = {"memory": "own", "memory_command": "R", "memory_machine": "N"}
    memory["tasks"] = {"t": {"baseline": fig(peak=5), "a": fig(peak=7), "b": fig(peak=6, status="diverged")}}
    both = arm_cost.merge(timed, memory, "memory")
    assert (both["command"], both["memory_command"], both["memory"]) == ("T", "R", "own")
    assert both["tasks"]["t"]["a"]["ratio"] == 2.0 and both["tasks"]["t"]["a"]["extra_mb"] == 2
    assert both["tasks"]["t"]["b"]["ratio"] is None and both["tasks"]["t"]["b"]["statuses"] == ["diverged"]
    again = arm_cost.merge(both, {"command": "T2", "machine": "M", "tasks": {"t": {"a": fig(30)}}}, "time")
    assert again["command"] == "T2" and again["memory_command"] == "R"
    assert again["tasks"]["t"]["a"]["ratio"] == 3.0 and again["tasks"]["t"]["a"]["peak_mb"] == 7
    assert arm_cost.merge(both, timed, "both") == timed
    assert [r["arm"] for r in arm_cost.rows(both)] == ["baseline", "a", "b"]


def test_the_pages_prose_lives_in_templates():
    """A sentence of the page is edited in gradbench/analysis/templates/, not in Python:
    page.py holds no string of a dozen words or more outside docstrings and the errors it
    raises (table headers and cell words are shorter), and the templates hold the prose."""
    import ast

    from conftest import REPO

    source = (REPO / "gradbench" / "analysis" / "page.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node) is not None:
            skip.add(id(node.body[0].value))
        if isinstance(node, ast.Raise):
            skip.update(id(n) for n in ast.walk(node))
    long = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr):
            skip.update(id(v) for v in node.values)
            text = " ".join(v.value for v in node.values if isinstance(v, ast.Constant))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if len(text.split()) >= 12:
            long.append(f"page.py:{node.lineno}: {text[:60]!r}")
    assert long == []
    templates = REPO / "gradbench" / "analysis" / "templates"
    assert "Mean of the\ncomposite's within-task ranks" in (templates / "overall.md.j2").read_text(encoding="utf-8")
    assert "## How scores are computed" in (templates / "how.md.j2").read_text(encoding="utf-8")


def _tested_values(runs: list[dict], chance: float, sign: int, row) -> dict[int, float]:
    """An arm's value per tested seed, from raw records: its chosen configuration's runs on the
    seeds that did not choose it, a finite test metric as measured but never worse than chance."""
    import json
    import math

    mine = [r for r in runs if r["strategy"]["label"] == row["strategy"]]
    if row["failed"]:
        return {s: chance for s in {r["seed"] for r in runs}}
    tuning = {r["seed"] for r in mine if r["spec"].get("phase") in ("sweep", "bracket", "tune")}
    key = json.dumps(json.loads(row["chosen_key"]), sort_keys=True, separators=(",", ":"))
    out = {}
    for r in mine:
        params = json.dumps(r["strategy"]["params"], sort_keys=True, separators=(",", ":"))
        if r["stress"]["lr_mult"] != row["chosen_lr_mult"] or params != key or r["seed"] in tuning:
            continue
        t = r["metrics"]["test"]
        v = chance if t is None or not math.isfinite(t) else t
        out[r["seed"]] = v if sign * (v - chance) >= 0 else chance
    return out


def test_the_pages_paired_effects_rederive_from_the_raw_records_with_scipy():
    """From the committed demo's raw JSON lines, with code of its own and scipy: each arm's
    tested seeds (its chosen configuration's final-phase seeds beyond the tuning ones), each
    seed's value (a finite test metric as measured, never worse than chance; else chance),
    the paired difference from baseline, scipy's paired t-test and Holm's adjustment. They
    match the scores, and the page prints them."""
    import json

    from scipy import stats

    from gradbench.analysis.scoring import score
    from gradbench.store import jsonl

    path = COMMITTED[1] / "results.jsonl"
    raw: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        raw[rec["run_id"]] = rec  # the last record of a run counts
    pt = score(jsonl.read(path)).per_task
    page = (COMMITTED[1] / "README.md").read_text(encoding="utf-8")
    checked = 0
    for task, rows in pt[pt["status"] == "scored"].groupby("task"):
        runs = [r for r in raw.values() if r["task"] == task and r["status"] in ("ok", "diverged")]
        m = runs[0]["metrics"]
        chance, sign = m["chance"], 1 if m["higher_is_better"] else -1

        by_arm = {r["strategy"]: _tested_values(runs, chance, sign, r) for _, r in rows.iterrows()}
        base = by_arm["baseline"]
        arms = [a for a in by_arm if a != "baseline"]
        pvalues = {}
        for arm in arms:
            seeds = sorted(set(by_arm[arm]) & set(base))
            a, b = [by_arm[arm][s] for s in seeds], [base[s] for s in seeds]
            diffs = [x - y for x, y in zip(a, b)]
            row = rows[rows["strategy"] == arm].iloc[0]
            assert row["effect"] == pytest.approx(sum(diffs) / len(diffs), abs=1e-12), (task, arm)
            if len(set(diffs)) > 1:
                pvalues[arm] = float(stats.ttest_rel(a, b).pvalue)
                assert row["effect_p"] == pytest.approx(pvalues[arm]), (task, arm)
            else:
                pvalues[arm] = float(row["effect_p"])  # no spread: the sign-flip rule, tested apart
        order = sorted(pvalues, key=pvalues.get)
        running = 0.0
        for i, arm in enumerate(order):
            running = max(running, min(1.0, pvalues[arm] * (len(order) - i)))
            row = rows[rows["strategy"] == arm].iloc[0]
            assert row["effect_p_holm"] == pytest.approx(running), (task, arm)
            assert f"{running:.3f}" in page
            checked += 1
    assert checked >= 4


def test_the_measure_demo_page_shows_the_measures_it_was_made_for():
    """The demo of the measurement protocol (configs/measure_demo.yaml): its pre-registration's
    hash, dated no later than its first record; the three headline measures per task; every
    optimum bracketed or named with its edge; the tied group by the monotone rule; the seed
    rule's extra seeds in the records."""
    import hashlib
    import json

    folder = COMMITTED[2]
    page = (folder / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256((folder / "preregistration.yaml").read_bytes()).hexdigest()
    assert f"sha256 `{digest}`" in page and "registered before the results" in page
    for head in ("vs baseline: effect [95% t]", "p (Holm)", "headroom (octaves)", "cost: step time × baseline, memory"):
        assert page.count(head) == 2, head  # both tasks
    assert page.count("Every optimum is bracketed") + page.count("Unbracketed optima:") == 2
    assert "by the monotone rule" in page and "Learning rates swept" in page
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert {r["spec"].get("phase") for r in records} >= {"sweep", "bracket", "tune", "final"}
    assert {4, 5} <= {r["seed"] for r in records if r["spec"].get("phase") == "final"}  # the seed rule's
    assert all(r.get("outcome") for r in records if r["status"] in ("ok", "diverged"))


def test_the_cost_table_reads_its_noise_off_the_arms_with_baselines_step():
    """An arm that differs from the baseline only in lr, schedule or init takes the baseline's
    step (core.spec.same_step_key): the table marks it, and what such arms read is the table's
    noise. Nine rounds give each ratio a 95% interval that leaves out one slow and one fast
    round; each row shows the baseline's own time beside the arm's."""
    from fakes import make_record

    from gradbench.analysis import arm_cost
    from gradbench.core.record import typed

    def runs(ms: list[float], base: list[float]) -> list[dict]:
        return [
            {"ms_per_step": m, "peak_mb": 10.0, "status": "ok", "baseline_ms": [b, b], "baseline_mb": [9.0, 9.0]}
            for m, b in zip(ms, base)
        ]

    base = [10.0] * 9
    measured = {
        "tasks": {
            "mnist_mlp": arm_cost.summarize(
                {
                    "baseline": [{"ms_per_step": 10.0, "peak_mb": 9.0, "status": "ok"}] * 19,
                    # one slow round (a busy moment of the machine) stays out of the interval
                    "warmup": runs([10.0, 10.1, 9.9, 10.2, 9.8, 10.0, 10.3, 9.7, 14.0], base),
                    "batchnorm": runs([12.0, 12.2, 11.8, 12.1, 11.9, 12.0, 12.3, 11.7, 12.0], base),
                }
            )
        }
    }
    warm = measured["tasks"]["mnist_mlp"]["warmup"]
    assert warm["ratio"] == 1.0 and warm["ratio_ci"] == pytest.approx([0.98, 1.03]) and warm["ratio_hi"] == 1.4
    assert warm["baseline_ms"] == 10.0 and measured["tasks"]["mnist_mlp"]["baseline"]["ratio_ci"] is None

    records = [make_record("mnist_mlp", arm, 0) for arm in ("baseline", "warmup", "batchnorm")]
    for rec in records:  # what each arm changes in the resolved spec, as the catalogue does
        rec["spec"]["grad_hooks"] = []
    records[1]["spec"]["schedule"] = {**records[1]["spec"]["schedule"], "warmup_steps": 100}
    records[2]["spec"]["model"] = {**records[2]["spec"]["model"], "norm": "batch"}
    same = arm_cost.same_step_arms(typed(records))
    assert same == {"mnist_mlp": {"warmup"}}
    rows = arm_cost.table(measured, same)
    assert rows[0].startswith("| task | arm | ms/step | baseline's ms/step | × baseline [95% interval]")
    assert "| `mnist_mlp` | `warmup` (baseline's step) | 10.0 | 10.0 | 1.00 [0.98, 1.03] |" in "\n".join(rows)
    assert "| `mnist_mlp` | `batchnorm` | 12.0 | 10.0 | 1.20 [1.18, 1.22] |" in "\n".join(rows)
    note = arm_cost.noise_note(measured, same)
    assert "The 1 task-arm pairs with baseline's training step" in note and "1.00× to 1.00×" in note
    assert arm_cost.noise_note(measured, {}) is None  # nothing to read the noise from


def test_an_arm_takes_the_baselines_step_when_only_lr_schedule_or_init_differ():
    from gradbench.core.spec import same_step_key

    base = {
        "task": "t",
        "strategy": "baseline",
        "strategy_params": {},
        "seed": 0,
        "lr_mult": 1.0,
        "model": {"depth": 4, "init": "default"},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "schedule": {"warmup_steps": 0, "decay": "none"},
        "trainer": {},
        "max_steps": 100,
    }
    key = same_step_key(base)
    same = [
        {**base, "strategy": "adam", "optimizer": {"name": "adam", "lr": 5e-3}, "seed": 3, "lr_mult": 2.0},
        {**base, "strategy": "kaiming", "model": {"depth": 4, "init": "kaiming"}},
        {**base, "strategy": "warmup", "schedule": {"warmup_steps": 50, "decay": "cosine"}, "max_steps": 10},
    ]
    assert all(same_step_key(s) == key for s in same)
    other = [
        {**base, "optimizer": {"name": "sgd", "lr": 1e-3}},
        {**base, "model": {"depth": 8, "init": "default"}},
        {**base, "trainer": {"gradient_clip_val": 1.0}},
        {**base, "a_field_added_later": 1},  # unknown: counted as a difference
    ]
    assert all(same_step_key(s) != key for s in other)


def test_every_language_model_prediction_has_a_rule_written_from_its_words():
    """analysis/lm_verdicts.py reads each claim registered in leaderboard/lm/ (matched by its
    text, which the registration fixes), and on the committed records gives the verdicts the
    page shows: muon's registered Holm-significant gain holds, and clipping helped at 4.8e-2
    by more than its seeds' spread, so 'clipping does not cure it' does not hold."""
    from gradbench.analysis import lm_verdicts, preregistration, scoring
    from gradbench.core.record import latest
    from gradbench.store import jsonl

    folder = Path(__file__).parent.parent / "leaderboard" / "lm"
    claims = [p.claim for p in preregistration.saved(folder)["reg"].predictions]
    assert sorted(claims) == sorted(lm_verdicts.RULES)
    records = latest(jsonl.read(folder / "results.jsonl"))
    said = lm_verdicts.verdicts(scoring.score(records), records)
    assert said["Muon trains a Transformer faster than AdamW at the same steps"].startswith(
        "holds: paired effect -0.0896"
    )
    clipping = said["Gradient clipping does not cure attention-logit growth"]
    assert clipping.startswith("does not hold: bpb at 4.8e-2 clip_norm 4.057 vs baseline 4.124")
    without = [r for r in records if r.label != "z_loss"]  # a part without its runs cannot be read
    said = lm_verdicts.verdicts(scoring.score(without), without)
    assert said["z-loss bounds the output logits' log Z but not the attention logits"].startswith(
        "cannot be tested here"
    )
    assert lm_verdicts.verdicts(scoring.score(without[:0]), without[:0]) == {}  # no language model: no verdicts
