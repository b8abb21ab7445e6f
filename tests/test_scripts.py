"""The scripts the CI workflows call are the scripts a person runs; exercise them here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from conftest import REPO
from fakes import make_cifar, make_mnist


def test_workflows_call_the_repository_scripts():
    tests = yaml.safe_load((REPO / ".github/workflows/tests.yml").read_text())
    lb = yaml.safe_load((REPO / ".github/workflows/leaderboard.yml").read_text())
    assert [s.get("run") for s in tests["jobs"]["tests"]["steps"] if "run" in s] == [
        "./scripts/lint.sh",
        "python scripts/commit_subject.py --history",
        "./scripts/test.sh",
    ]
    checkout = next(s for s in tests["jobs"]["tests"]["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the rule reads the history
    runs = [s["run"] for s in lb["jobs"]["leaderboard"]["steps"] if "run" in s]
    assert len(runs) == 1 and runs[0].startswith("./scripts/leaderboard.sh --commit")
    assert (
        "./scripts/lint.sh" in (REPO / ".ci/run").read_text() and "./scripts/test.sh" in (REPO / ".ci/run").read_text()
    )
    assert "./scripts/test.sh" in (REPO / "README.md").read_text()


def test_leaderboard_script_runs_a_suite_writes_the_page_and_commits(tmp_path):
    data = tmp_path / "data"
    make_mnist(data, gz=False, n_train=300, n_test=60)
    make_cifar(data, bytes_keys=True)
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "name: tiny\ntasks:\n  mnist_mlp: {max_steps: 10, eval_every: 5, batch_size: 32, "
        "model: {depth: 2, width: 16}}\nstrategies: [baseline, clip_norm]\n"
    )
    repo = tmp_path / "site"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    out = repo / "leaderboard"
    env = {**os.environ, "GRADBENCH_DATA": str(data), "GITHUB_ACTIONS": "false"}
    r = subprocess.run(
        [str(REPO / "scripts/leaderboard.sh"), "--commit", str(suite), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    page = (out / "README.md").read_text()
    assert f"--results {out}/results.jsonl" in page  # the page names the command that made it
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    log = subprocess.run(["git", "-C", str(repo), "log", "--oneline"], capture_output=True, text=True).stdout
    assert "leaderboard: tiny.yaml" in log
    tracked = subprocess.run(["git", "-C", str(repo), "ls-files"], capture_output=True, text=True).stdout
    assert "leaderboard/README.md" in tracked and "leaderboard/results.jsonl" in tracked


def test_leaderboard_script_refuses_to_overwrite_the_published_page():
    """leaderboard/ is the page of the committed results; a fresh run goes to a folder of its own."""
    r = subprocess.run(
        [str(REPO / "scripts/leaderboard.sh"), "configs/quick.yaml", "leaderboard"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 2 and "is the published page" in r.stderr
    assert (REPO / "leaderboard" / "results.jsonl").is_file()
    lb = yaml.safe_load((REPO / ".github/workflows/leaderboard.yml").read_text())
    (run,) = [s["run"] for s in lb["jobs"]["leaderboard"]["steps"] if "run" in s]
    assert run.endswith("leaderboard/fresh")


def _tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_pages_workflow_publishes_what_the_site_script_builds_from_the_committed_page():
    pages = yaml.safe_load((REPO / ".github/workflows/pages.yml").read_text())
    runs = [s["run"] for s in pages["jobs"]["build"]["steps"] if "run" in s]
    assert runs == ["./scripts/site.sh leaderboard _site"]
    uploads = [s for s in pages["jobs"]["build"]["steps"] if "upload-pages-artifact" in s.get("uses", "")]
    assert uploads and uploads[0]["with"]["path"] == "_site"
    assert any("deploy-pages" in s.get("uses", "") for s in pages["jobs"]["deploy"]["steps"])


def test_site_script_publishes_a_committed_page_and_refuses_a_stale_one(tmp_path):
    """scripts/site.sh (the Pages workflow's one step) rebuilds a committed page from its own
    results into a folder of its own, leaves the committed folder as it was, and fails when the
    committed page is not what its results make."""
    import shutil

    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "leaderboard/protocol_demo"], capture_output=True, text=True, check=True
    ).stdout.split()
    src = tmp_path / "src"
    for rel in tracked:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / rel, src / rel)
    src = src / "leaderboard" / "protocol_demo"
    before = _tree(src)
    site = str(REPO / "scripts/site.sh")
    r = subprocess.run([site, str(src), str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _tree(src) == before
    out = _tree(tmp_path / "out")
    for name in ("README.md", "site/index.html", "site/plotly.min.js", "results.jsonl", "dose_response_mnist_mlp.png"):
        assert out[name] == before[name], name
    assert b"url=site/index.html" in out["index.html"]

    r = subprocess.run([site, str(src), str(src / "pages")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "is only read" in r.stderr and not (src / "pages").exists()
    r = subprocess.run([site, str(src), str(src.parent)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "holds SRC" in r.stderr and _tree(src) == before

    (src / "README.md").write_text((src / "README.md").read_text() + "edited by hand\n")
    r = subprocess.run([site, str(src), str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "README.md does not rebuild" in r.stderr


def test_the_arm_cost_benchmark_prices_every_arm_of_a_suite_against_its_baseline(tmp_path):
    """benchmarks/arm_cost.py runs each arm for real and prints its row: a ratio to the
    baseline and a peak memory (no timing is asserted, only that each arm was measured);
    --save writes the summary that the page and the site in that folder then show."""
    from fakes import make_mnist

    make_mnist(tmp_path / "data", gz=False, n_train=300, n_test=60)
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ntasks:\n  mnist_mlp: {batch_size: 16, model: {depth: 2, width: 8}}\n"
        "strategies: [clip_norm, lstm, adam, warmup]\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/arm_cost.py"),
            str(suite),
            "--steps",
            "12",
            "--rounds",
            "2",
            "--min-seconds",
            "0.1",  # a tiny MLP's step takes about a millisecond: more than 12 steps make a run last 0.1 s
            "--data",
            str(tmp_path / "data"),
            "--json",
            str(tmp_path / "cost.json"),
            "--save",
            str(tmp_path / "page"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["baseline", "clip_norm", "adam", "warmup"]  # lstm: n/a on the MLP
    assert rows[0].split("|")[4].strip().startswith("1.00")  # baseline against itself
    assert [row.split("|")[1].strip() for row in rows][-1] == "`warmup` (baseline's step)"
    assert "baseline run to run:" in r.stdout
    steps = json.loads((tmp_path / "page" / "arm_cost.json").read_text())["task_steps"]["mnist_mlp"]
    assert steps > 12 and f"`mnist_mlp`: {steps} steps" in r.stdout
    cost = json.loads((tmp_path / "cost.json").read_text())
    runs = cost["mnist_mlp"]
    assert all(m["ms_per_step"] for v in runs.values() for m in v)
    # each arm sits between two baseline runs: with 3 arms and --baseline-every 2, round 0 is
    # B clip_norm adam B warmup B and round 1, reversed, opens with round 0's last baseline run:
    # warmup adam B clip_norm B. So 2 rounds hold 5 baseline runs, and each arm's runs name the
    # two around it
    assert len(runs["baseline"]) == 5 and all(len(runs[a]) == 2 for a in ("clip_norm", "adam", "warmup"))
    base = [m["ms_per_step"] for m in runs["baseline"]]
    assert [m["baseline_ms"] for m in runs["clip_norm"]] == [base[0:2], base[3:5]]
    assert [m["baseline_ms"] for m in runs["warmup"]] == [base[1:3], base[2:4]]
    # a run's own peak, above what the process held before it: not the process's whole resident
    # set (torch and the data alone are hundreds of MB), which grows with a run's place in the order
    peaks = [m["peak_mb"] for v in cost["mnist_mlp"].values() for m in v]
    assert all(p is not None and 0 <= p < 150 for p in peaks), peaks

    from fakes import make_record

    from gradbench.analysis import page

    recs = [make_record("mnist_mlp", arm, seed) for arm in ("baseline", "clip_norm") for seed in (0, 1)]
    shown = page.write(recs, tmp_path / "page").read_text(encoding="utf-8")
    assert "## What each mitigation costs" in shown and "benchmarks/arm_cost.py" in shown
    assert [line.split("`")[3] for line in shown.splitlines() if line.startswith("| `mnist_mlp` | `")] == [
        "baseline",
        "adam",
        "clip_norm",
        "warmup",
    ]
    assert 'id="cost"' in (tmp_path / "page" / "site" / "index.html").read_text(encoding="utf-8")

    # a memory pass (one that may run beside other work) replaces the memory figures only
    memory_pass = [sys.executable, str(REPO / "benchmarks/arm_cost.py"), str(suite), "--what", "memory"]
    memory_pass += ["--steps", "12", "--min-seconds", "0", "--rounds", "1", "--data", str(tmp_path / "data")]
    before = json.loads((tmp_path / "page" / "arm_cost.json").read_text())
    r = subprocess.run([*memory_pass, "--save", str(tmp_path / "page")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    after = json.loads((tmp_path / "page" / "arm_cost.json").read_text())
    assert after["command"] == before["command"] and "--what memory" in after["memory_command"]
    for arm, figures in after["tasks"]["mnist_mlp"].items():
        assert figures["ratio"] == before["tasks"]["mnist_mlp"][arm]["ratio"] and figures["peak_mb"] is not None
    assert "Memory was measured by `python benchmarks/arm_cost.py" in page.write(recs, tmp_path / "page").read_text()
    # an arm the suite does not have is refused before anything runs, naming the ones it has
    r = subprocess.run([*memory_pass, "--arms", "adam,nope"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "--arms: nope not in" in r.stderr and "clip_norm" in r.stderr
    # a part of a suite is never saved as its table (it would replace the whole suite's)
    r = subprocess.run(
        [*memory_pass, "--arms", "adam", "--save", str(tmp_path / "page")], capture_output=True, text=True
    )
    assert r.returncode == 2 and "--save: writes a whole suite's table" in r.stderr
    # a learning rate at which the baseline cannot run its steps is refused before any timing
    timing = [sys.executable, str(REPO / "benchmarks/arm_cost.py"), str(suite), "--data", str(tmp_path / "data")]
    r = subprocess.run([*timing, "--lr-mult", "1e6", "--min-seconds", "0.05"], capture_output=True, text=True)
    assert r.returncode == 2 and "choose a lower --lr-mult" in r.stderr, r.stderr[-500:]
    # ... and needs a time pass to add to: refused before anything runs
    r = subprocess.run([*memory_pass, "--save", str(tmp_path / "none")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "holds no time pass" in r.stderr

    # published through the Pages script, the page keeps its cost table: the saved figures
    # travel with the results file into the rebuild
    from gradbench.store.jsonl import append, load

    for rec in recs:
        append(tmp_path / "page" / "results.jsonl", rec)
    page.write(
        load(tmp_path / "page" / "results.jsonl"), tmp_path / "page", results=tmp_path / "page" / "results.jsonl"
    )
    r = subprocess.run(
        [str(REPO / "scripts/site.sh"), str(tmp_path / "page"), str(tmp_path / "pages")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "pages" / "arm_cost.json").read_bytes() == (tmp_path / "page" / "arm_cost.json").read_bytes()


def test_the_diverged_above_check_reads_the_committed_demo():
    """benchmarks/diverged_above.py on the protocol demo's 7-level grid: every (task, arm,
    level) above a level where all seeds diverged failed on every seed too (the budget rule
    would have lost nothing there)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from diverged_above import above_all_diverged

    from gradbench.store.jsonl import load

    rows = above_all_diverged(load(REPO / "leaderboard" / "protocol_demo" / "results.jsonl"))
    assert len(rows) == 12 and all(every_seed_failed for *_, every_seed_failed in rows)
    assert {(task, arm) for task, arm, *_ in rows} >= {("mnist_mlp", "baseline")}
    assert all(level > first for _, _, first, level, _ in rows)


def test_the_shorter_budget_check_reads_each_arm_at_a_step_of_its_validation_curve():
    """benchmarks/shorter_budget.py: an arm's best sweep level read at step S of its curves (a
    diverged run at chance), split by the task's target or one given."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from fakes import make_record
    from shorter_budget import split

    recs = [
        make_record("mnist_mlp", arm, seed, lr, test=best, phase="sweep")
        for arm, best in (("baseline", 0.96), ("clip_norm", 0.99))
        for seed in (0, 1)
        for lr in (1.0, 2.0)
    ]
    recs.append(make_record("mnist_mlp", "adam", 0, 1.0, "diverged", test=0.99, phase="sweep"))
    full = split(recs, "mnist_mlp", 1000)
    assert [a for a, _, _ in full["reach"]] == ["baseline", "clip_norm"] and [a for a, _, _ in full["miss"]] == ["adam"]
    half = split(recs, "mnist_mlp", 500, target=0.54)  # the fake curves rise linearly from chance
    assert [a for a, _, _ in half["reach"]] == ["clip_norm"]
    assert not split(recs, "mnist_mlp", 250)["reach"]


def test_the_commit_subject_rule_checks_a_message_and_every_commit_since_it_came(tmp_path):
    """A subject of at most 72 characters: the commit-msg hook refuses a longer one, and CI's
    --history check names each commit since the rule's own commit that breaks it (older
    commits, made before the rule, are not judged)."""
    script = REPO / "scripts" / "commit_subject.py"
    hooks = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    hook = next(h for h in hooks if h["id"] == "commit-subject")
    assert hook["stages"] == ["commit-msg"] and hook["entry"].endswith("scripts/commit_subject.py")
    assert "commit_subject.py --history" in (REPO / ".ci/run").read_text()

    def check(*args, cwd=None):
        return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=cwd)

    msg = tmp_path / "MSG"
    msg.write_text("# a git comment first\nAdd a thing\n\nwhy, with figures " + "x" * 200 + "\n")
    assert check(str(msg)).returncode == 0  # a long body is fine
    msg.write_text("y" * 73 + "\n")
    out = check(str(msg))
    assert out.returncode == 1 and "73 characters, over 72" in out.stderr

    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    def commit(subject, path=None):
        f = repo / (path or "f.txt")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(subject)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", subject], check=True)

    commit("an old commit whose subject ran on well past seventy-two characters, before the rule")
    commit("Bring the commit subject rule", "scripts/commit_subject.py")
    commit("A short subject")
    assert check("--history", cwd=repo).returncode == 0
    commit("z" * 80)
    out = check("--history", cwd=repo)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "80 characters" in out.stderr
