"""The leaderboard page: out_dir/README.md (GitHub renders it as the folder's page), with the
PNG plots of plots.py next to it. No torch, no lightning.

The page depends only on the records: the date is the latest run's finished_at (not "now"),
floats have fixed formats and rows a fixed order, so the same records give the same bytes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ..core.errors import UserError
from ..core.record import Record, latest, outcome_counts, typed
from . import arm_cost, discrimination, literature, rank_stability, scoring
from .compare import cpu_kind
from .lr_response import STABLE_TOLERANCE
from .plots import lr_label, write_plots
from .runs import METRIC_RANGE, canonical
from .scoring import BASELINE, COLLAPSE_SHARE, SAME_AS_BASELINE, Scores, uninformative_tasks
from .site import write_site
from .stats import ALPHA, MIN_SEEDS

README = "README.md"


RESULTS_NAME = "results.jsonl"  # the results file beside a page, as the committed pages keep it


def write(
    records: Iterable[Record | dict],
    out_dir,
    *,
    weights: dict | None = None,
    command: str | None = None,
    plots: bool = True,
    results: Path | None = None,
) -> Path:
    """Score `records` and write out_dir/README.md (and, with plots, its PNGs); returns the
    README's path. `command` is the command that reproduces the results; by default the
    most common record["command"]. `results` is the file the records were read from: when
    it is out_dir/results.jsonl, with the default weights and command, the page names the
    command that rebuilds it in its folder. Records made under two numerics versions of the
    training code are a UserError: their numbers do not compare."""
    records = latest(typed(records))
    _one_numerics_version(records)
    _one_spec_per_run(records)
    scores = scoring.score(records, weights)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = write_plots(records, scores, out_dir) if plots else {}
    path = out_dir / README
    measured = rank_stability.saved_for(records, out_dir)
    costs = arm_cost.saved(out_dir)
    rebuilds = (
        results is not None
        and Path(results).resolve() == (out_dir / RESULTS_NAME).resolve()
        and weights is None
        and command is None
    )
    command = command or _most_common(r.command for r in records)
    page = render(
        records,
        scores,
        command=command,
        images=images,
        measured_ranks=measured,
        site=plots,
        costs=costs,
        rebuilds=rebuilds,
    )
    path.write_text(page, encoding="utf-8", newline="\n")
    if plots:  # the same scores as a static site: sortable tables, interactive figures
        write_site(
            records, scores, out_dir, command=command, results_name=RESULTS_NAME, costs=costs, measured_ranks=measured
        )
    return path


def _one_numerics_version(records: list[Record]) -> None:
    versions = Counter(r.numerics_version for r in records)
    if len(versions) > 1:
        counts = ", ".join(f"{versions[v]} under version {v}" for v in sorted(versions))
        raise UserError(
            f"these records come from {len(versions)} numerics versions of the training code ({counts}); "
            "their numbers do not compare: run the suite again (resume re-runs the older ones) "
            "or score one version's records"
        )


def _one_spec_per_run(records: list[Record]) -> None:
    """One run per arm, seed and level: two records of one (task, arm, parameters, seed, level)
    under different run ids come from two specs (the code that resolves an arm changed between
    them, or two suites with other task settings share the file), and scoring both would count
    a seed twice."""
    seen: dict[tuple, Record] = {}
    for r in records:
        if not r.counts_in_scores:
            continue
        key = (r.task, r.label, canonical(r.strategy.params), r.seed, r.lr_mult)
        other = seen.setdefault(key, r)
        if other.run_id != r.run_id:
            spec_a, spec_b = other.spec, r.spec
            differ = sorted(k for k in set(spec_a) | set(spec_b) if k != "phase" and spec_a.get(k) != spec_b.get(k))
            raise UserError(
                f"runs {other.run_id} and {r.run_id} are both {key[1]} on {key[0]} at seed {key[3]}, lr x{key[4]:g}, "
                f"with other specs (they differ in {', '.join(differ) or 'nothing shown'}): the code that resolves the "
                "arm changed between them, or two suites share the file; keep the records of one"
            )


def render(
    records: Iterable[Record | dict],
    scores: Scores,
    *,
    command: str | None = None,
    images: dict[str, str] | None = None,
    measured_ranks: dict | None = None,
    site: bool = False,
    costs: dict | None = None,
    rebuilds: bool = False,
) -> str:
    """The page as a string. `images` maps a plot's key ("val_curves:<task>",
    "grad_norm:<task>", "stability_vs_accuracy") to its file name; missing keys are not linked.
    `measured_ranks` is the rank stability of these records (analysis/rank_stability.py), if any.
    `site`: the static site (site.py) is written beside the page, and the page links it.
    `costs`: each arm's measured time per step and memory (analysis/arm_cost.py), if any.
    `rebuilds`: the page is made from results.jsonl in its own folder, so it names the
    command that makes it there."""
    records = latest(typed(records))
    images = images or {}
    suites = _unique(r.suite for r in records)
    title = ", ".join(suites) if suites else "(no runs)"
    out = [f"# gradbench leaderboard: {title}", ""]
    if site:
        out += [
            "The same scores with sortable, filterable tables and interactive figures: "
            "[site/index.html](site/index.html) (opens from disk, no network needed).",
            "",
        ]
    saved = _saved_names(measured_ranks, costs) if rebuilds else None
    out += _provenance(records, scores, command, saved=saved)
    if scores.per_task.empty:
        out += ["No scored runs in these results.", ""]
    else:
        out += _overall_section(scores)
        out += _rank_stability_section(measured_ranks, uninformative_tasks(scores.per_task))
        out += _targets_section(scores)
        for task, rows in scores.per_task.groupby("task", sort=True):
            out += _task_section(task, rows, records, images, scores.weights)
        out += arm_cost.section(costs)
        out += _literature_section(scores, records)
        if "stability_vs_accuracy" in images:
            out += [
                "## Stability vs accuracy",
                "",
                "One panel per task, one point per strategy: the share of runs that did not fail (diverge "
                "or collapse) against accuracy normalised between chance (0) and the task's best "
                "strategy (1). Beyond a dozen strategies a panel names baseline and the best ranked; "
                "the site names every point on hover.",
                "",
                f"![stability vs accuracy]({images['stability_vs_accuracy']})",
                "",
            ]
    out += _how_section(scores.weights)
    return "\n".join(out).rstrip("\n") + "\n"


# ------------------------------------------------------------------------- targets


def _targets_section(scores: Scores) -> list[str]:
    """Which arms reach each task's target (analysis/discrimination.py): a task that every arm
    passes, or none does, cannot tell the strategies apart."""
    splits = discrimination.split_by_target(scores.per_task)
    if not splits:
        return []
    return [
        "## Which arms reach each task's target",
        "",
        f"{discrimination.RULE}, and a task where no arm is scored is left out. A value is shown to as many digits "
        "as it takes to show its side of the target.",
        "",
        *discrimination.markdown(splits, scores.per_task),
        "",
    ]


# ------------------------------------------------------------------------- literature


def _literature_section(scores: Scores, records: list[Record]) -> list[str]:
    """The claims of analysis/literature.py, read off these results; left out when none of
    them can be read here (a suite without the arms or tasks they need)."""
    found = literature.findings(scores, records)
    if all(f.verdict == literature.UNTESTED for _, f in found):
        return []
    out = [
        "## What the literature predicts, and what we measured",
        "",
        "Each claim is read off the scores above by a fixed rule (`gradbench/analysis/literature.py`). A claim "
        "that does not hold here is a result, not a bug: the setup's difference from the source's is given with it.",
        "",
    ]
    for i, (c, f) in enumerate(found, 1):
        differs = f" What differs here: {f.differs}." if f.differs else ""
        out += [
            f"{i}. **{c.claim}.** {c.source}.",
            f"    - Read as: {c.test}.",
            f"    - Measured: {f.measured}.",
            f"    - **Verdict: {f.verdict}.**{differs}",
            "",
        ]
    return out


# ------------------------------------------------------------------------- provenance


def rebuild_command(saved: list[str]) -> str:
    """How this folder's page is made from its results: run in the folder, so that it holds
    wherever the folder is (the repository, the published site, a download)."""
    beside = f" (with the saved {', '.join(saved)} beside it)" if saved else ""
    return f"`gradbench leaderboard {RESULTS_NAME} --out .` in this folder{beside}"


def _saved_names(measured_ranks: dict | None, costs: dict | None) -> list[str]:
    return [name for name, there in ((arm_cost.FILE, costs), (rank_stability.FILE, measured_ranks)) if there]


def _provenance(records: list[Record], scores: Scores, command: str | None, saved: list[str] | None) -> list[str]:
    """The page's header table; `saved` (the saved files it reads) is None unless the page
    rebuilds from its own folder (write's `results`), and then it says how."""
    env = [r.env for r in records if r.env is not None]
    by_status = ", ".join(f"{n} {s}" for s, n in outcome_counts(records).items())
    seeds = sorted({r.seed for r in records})
    levels = sorted({r.lr_mult for r in records})
    rows = [
        ("Suite", _codes(_unique(r.suite for r in records))),
        ("Reproduce with", _code(command or _most_common(r.command for r in records))),
        *([("This page made by", rebuild_command(saved))] if saved is not None else []),
        ("Date (latest run finished)", _latest(r.timings.finished_at for r in records)),
        ("Git commit", _codes(_unique(e.git_commit for e in env))),
        (
            "Versions",
            "; ".join(
                f"{name} {', '.join(_unique(getattr(e, name) for e in env)) or '?'}"
                for name in ("gradbench", "torch", "lightning", "python")
            ),
        ),
        ("Device", ", ".join(_unique(e.device for e in env)) or "—"),
        # CPU records reproduce bit for bit only on the same kind of CPU (see gradbench verify)
        ("CPU", ", ".join(_unique(cpu_kind(e) for e in env)) or "not recorded"),
        ("Threads", ", ".join(_unique(e.threads for e in env)) or "—"),
        # records older than the field say nothing of it (they are version 1)
        *([("Numerics version", str(records[0].numerics_version))] if any(r.numerics for r in records) else []),
        ("Seeds", ", ".join(str(s) for s in seeds) or "—"),
        *_protocol_rows(records, levels),
        ("Runs", f"{len(records)} ({by_status})" if records else "0"),
        ("Scoring weights", ", ".join(f"{k} {v:.3f}" for k, v in scores.weights.items())),
    ]
    out = ["## Provenance", ""] + _table(["", ""], rows) + [""]
    # skipped runs (and runs that failed before loading data) have no fingerprint: not a second one
    data = sorted({(r.data.dataset, r.data.fingerprint) for r in records if r.data.fingerprint})
    if data:
        out += ["Data:", ""]
        out += _table(["dataset", "fingerprint"], [(_esc(d), _code(f)) for d, f in data]) + [""]
        if len({d for d, _ in data}) < len(data):
            out += ["**Warning:** a dataset has more than one fingerprint: runs did not all see the same data.", ""]
    return out


def _protocol_rows(records: list[Record], levels: list[float]) -> list[tuple[str, str]]:
    """The tuning protocol and its budget, read off the records' phases (one row of stress
    levels for a suite without one)."""
    ran = [r for r in records if r.status != "skipped"]
    sweep = [r for r in ran if r.phase == "sweep"]
    if not sweep:
        return [("Stress levels", ", ".join(lr_label(x) for x in levels) or "—")]
    grid = sorted({r.lr_mult for r in sweep})
    sweep_seeds = sorted({r.seed for r in sweep})
    trials = Counter((r.task, r.label) for r in ran if r.phase == "tune")
    per_arm = sorted({n // max(1, len(sweep_seeds)) for n in trials.values()}) or [0]
    final = sorted({r.seed for r in ran if r.phase == "final"} | set(sweep_seeds))
    not_run = sum(bool(r.not_run) for r in records)
    budget = (
        [
            (
                "Budget rule",
                "the sweep ran one level at a time, lowest first; an arm's levels above one where every sweep seed "
                f"diverged were not run ({not_run} runs): they count as diverged, and the plots draw them as open "
                "circles (benchmarks/diverged_above.py checks on recorded sweeps that such levels all diverge)",
            )
        ]
        if not_run
        else []
    )
    return [
        (
            "Tuning protocol",
            f"each strategy's own learning-rate sweep, {len(grid)} levels ({', '.join(lr_label(x) for x in grid)}) "
            f"on {_seeds(sweep_seeds)}; then "
            + (
                "no extra trials"
                if per_arm == [0]
                else f"{' or '.join(map(str, per_arm))} extra trials per strategy and task on the same seeds "
                "(its declared parameter in octaves around its value at the chosen lr, else the lr half an "
                "octave, then a quarter and three quarters, either side of the chosen one, lower first except from "
                "the top of the grid, where the best rate may lie beyond it)"
            )
            + f"; the configuration chosen on the final validation value of those seeds only; then "
            f"{_seeds(final)} at the chosen configuration (the tuning seeds' runs there count among them, as "
            "in DeepOBS and AlgoPerf, which favours the chosen configuration slightly)",
        )
    ] + budget


def _seeds(seeds: list) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _latest(finished) -> str:
    """The latest finished_at, as written in the record (so the page never shows "now")."""
    best, text = None, None
    for raw in finished:
        if not raw:
            continue
        try:
            when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)  # the schema writes UTC
        if best is None or when > best:
            best, text = when, str(raw)
    return text or "unknown"


def _unique(values) -> list[str]:
    return sorted({str(v) for v in values if v is not None})


def _most_common(values) -> str | None:
    counts = Counter(v for v in values if v)
    if not counts:
        return None
    # Most frequent; equal counts go to the alphabetically first, so the choice is stable.
    return min(counts, key=lambda c: (-counts[c], c))


# --------------------------------------------------------------------------- tables


def _overall_section(scores: Scores) -> list[str]:
    pt = scores.per_task
    flat = uninformative_tasks(pt)
    n_tasks = pt["task"].nunique()
    head = [
        "rank",
        "strategy",
        "mean rank (0 first, 1 last)",
        "mean composite",
        "mean stability",
        "n/a, not run, or = baseline on",
        "error on",
        "runs",
        "diverged",
        "errors",
    ]
    out = [
        "## Overall ranking",
        "",
        "Mean of the within-task ranks, each as a share of the task's field (0 first, 1 last), over "
        "the tasks where the strategy was ranked (a task where it failed counts as its last rank there; one "
        "where its runs are baseline's counts with baseline's rank; one where it is n/a counts neither for "
        "nor against it). Strategies are ranked only against those ranked on the same tasks: a mean over "
        "different tasks does not compare (an arm that applies to one task and wins it would outrank one "
        "that is second on all of them). So there is one table per set of tasks, the largest first, and a "
        "rank 1 in a smaller table is first among fewer arms; an error on a task (a bug, not instability) "
        "also moves an arm to a smaller table. Equal mean ranks share a rank; an arm that is baseline's own "
        "runs on every task of its table is shown as = baseline, not ranked. A smaller table also places its "
        "arms among every arm ranked on its tasks (those ranked on more tasks too, each by its mean rank over "
        "the table's tasks only; equal means share a place): batchnorm, say, against the optimizers on the "
        "image tasks."
        + (
            f" Left out: {', '.join(f'`{t}`' for t in flat)}, where every strategy shares one rank "
            "(it tells none from another)."
            if flat
            else ""
        ),
        "",
    ]
    for field, group in scores.overall.groupby("compared_on", sort=False):
        rows = []
        for _, r in group.iterrows():
            mine = pt[pt["strategy"] == r["strategy"]]
            na = ", ".join(
                [f"`{t}`" for t in mine.loc[mine["status"] == "n/a", "task"]]
                + [f"`{t}` (= baseline)" for t in mine.loc[mine["status"] == SAME_AS_BASELINE, "task"]]
                # a task-specific arm (tasks.T.strategies) has no runs on the other tasks
                + [f"`{t}` (not run)" for t in sorted(set(pt["task"]) - set(mine["task"]))]
            )
            err = ", ".join(f"`{t}`" for t in mine.loc[mine["status"] == "error", "task"])
            copies = set(mine.loc[mine["status"] == SAME_AS_BASELINE, "task"])
            copy = bool(field) and set(field.split(", ")) <= copies
            place = f"{r['place_wide']} of {r['wide_field']}" if not pd.isna(r["place_wide"]) else "—"
            rows.append(
                (
                    "= baseline" if copy else _int(r["rank"]),
                    _code(r["strategy"]),
                    _f(r["mean_rank"], 2),
                    place,
                    _f(r["mean_composite"], 3),
                    _f(r["mean_stability"], 3),
                    na or "—",
                    err or "—",
                    str(r["runs"]),
                    str(r["diverged"]),
                    str(r["errors"]),
                )
            )
        tasks = field.split(", ") if field else []
        if not tasks:
            title = "Ranked on no task"
        elif len(tasks) == n_tasks:
            title = f"Ranked on all {n_tasks} tasks"
        else:
            title = f"Ranked on {len(tasks)} of {n_tasks} tasks: {', '.join(f'`{t}`' for t in tasks)}"
        placed = not group["place_wide"].isna().all()  # some arm's field holds these tasks and more
        if len(group) == 1 and tasks:
            alone = (
                " (one strategy: no rank of its own, placed among every arm ranked on these tasks)"
                if placed
                else " (one strategy: nothing to rank it against)"
            )
        elif tasks and group["rank"].isna().all():
            alone = " (all share one mean rank: nothing tells them apart)"
        else:
            alone = ""
        wide = ["among every arm ranked on these tasks"]
        if not placed:
            wide, rows = [], [row[:3] + row[4:] for row in rows]
        out += [f"### {title}{alone}", ""] + _table(head[:3] + wide + head[3:], rows) + [""]
    return out


def _rank_stability_section(measured: dict | None, flat: list[str]) -> list[str]:
    if not measured:
        return []
    shares = ", ".join(f"`{k}` {v:.0%}" for k, v in measured["unchanged"].items() if k != "overall")
    shares += "".join(f", `{t}` — (every strategy shares one rank: no top 3)" for t in flat)
    out = [
        "### Rank stability",
        "",
        f"In {measured['resamples']} seed-bootstrap resamples of these records (every task's seeds drawn "
        "again with replacement, the same draw for all its strategies; sweep and final seeds each "
        "within their own kind), the top 3 of the strategies that learned was unchanged in: "
        f"{shares}; overall {measured['unchanged']['overall']:.0%}. Measured by "
        f"`python benchmarks/rank_stability.py RESULTS --resamples {measured['resamples']} --seed "
        f"{measured['seed']} --save DIR`. A top 3 unchanged in fewer than {rank_stability.SETTLED:.0%} of the "
        "resamples is not a settled order: its top is read as a tied group, every strategy in the top 3 of at "
        f"least {1 - rank_stability.SETTLED:.0%} of the resamples, in no order.",
        "",
    ]
    groups = [(k, rank_stability.tied_top(measured, k)) for k in measured["unchanged"]]
    groups = [(k, g) for k, g in groups if g]
    if groups:
        out += ["| ranking | top 3 unchanged | tied top group (share of resamples in the top 3) |", "|---|---|---|"]
        for key, group in groups:
            shown = ", ".join(f"`{s}` {measured['in_top'][key][s]:.0%}" for s in group)
            out.append(
                f"| {'overall' if key == 'overall' else f'`{key}`'} | {measured['unchanged'][key]:.0%} | {shown} |"
            )
        out.append("")
    return out


def _task_section(
    task: str, rows: pd.DataFrame, records: list[Record], images: dict[str, str], weights: dict[str, float]
) -> list[str]:
    scored = rows[rows["status"] == "scored"]
    meta = (scored if len(scored) else rows).iloc[0]
    direction = "higher is better" if meta["higher_is_better"] else "lower is better"
    has_base = bool(((rows["strategy"] == BASELINE) & (rows["status"] == "scored")).any())
    out = [
        f"## Task `{task}`",
        "",
        f"Metric: {meta['metric'] or '?'} ({direction}); target {_m(meta['target'])}, chance {_m(meta['chance'])}. "
        f"Ranked by the composite = {weights['stability']:.3f} × stability + {weights['speed']:.3f} × speed + "
        f"{weights['accuracy']:.3f} × normalised {meta['metric'] or 'metric'}; the tied group is read off the "
        f"test {meta['metric'] or 'metric'} alone.",
        "",
    ]
    table = []
    for _, r in rows.iterrows():
        if r["status"] != "scored":
            what = r["status"] if r["status"] in ("n/a", SAME_AS_BASELINE) else "error"
            why = f"{what}: {_esc(r['reason'])}" if r["reason"] else what
            table.append(
                (
                    "—",
                    _code(r["strategy"]),
                    why,
                    "—",
                    "—",
                    "—",
                    "—",
                    "—",
                    str(r["runs"]),
                    str(r["diverged"]),
                    str(r["collapsed"]) if pd.notna(r["collapsed"]) else "—",
                    str(r["errors"]),
                )
            )
            continue
        table.append(
            (
                _int(r["rank"]) + (" =" if r["tied"] is True else ""),
                _code(r["strategy"]),
                _f(r["composite"], 3),
                f"{r['grid_runs'] - r['grid_failed']}/{r['grid_runs']}",
                f"{r['stable_levels']}/{r['levels']} lr",
                _speed(r),
                "failed: no configuration tried where a seed learned"
                if r["failed"]
                else f"{_m(r['accuracy'])} {_interval(r)}@ {_chosen(r)}{_few(r['seeds_at_chosen'])}",
                _win(r, has_base),
                str(r["runs"]),
                str(r["diverged"]),
                str(r["collapsed"]),
                str(r["errors"]),
            )
        )
    head = [
        "rank",
        "strategy",
        "composite",
        "stability",
        "stable region",
        "speed",
        f"{meta['metric'] or 'metric'} [95% t interval] @ chosen configuration",
        "vs baseline",
        "runs",
        "diverged",
        "collapsed",
        "errors",
    ]
    out += _table(head, table) + [""]
    ranked = rows[rows["status"] == "scored"]
    out += _tied_line(ranked)
    out += _response_table(ranked)
    if len(ranked) and ranked["failed"].astype(bool).all():
        out += [
            f"No strategy learned on `{task}`: every run diverged or collapsed, so every strategy "
            "shares the last rank here and the task does not tell them apart.",
            "",
        ]
    out += _error_list(task, records)
    for key, alt in (
        (f"dose_response:{task}", f"dose-response on {task}: the metric against the learning rate"),
        (f"val_curves:{task}", f"validation curves on {task}"),
        (f"grad_norm:{task}", f"gradient norms on {task}"),
        (f"attention_logits:{task}", f"the largest attention logit on {task}"),
    ):
        if key in images:
            out += [f"![{alt}]({images[key]})", ""]
    return out


def _chosen(r) -> str:
    """The chosen configuration: its lr, and a parameter a tuning trial changed."""
    return lr_label(r["chosen_lr_mult"]) + (f", {_esc(r['chosen_params'])}" if r["chosen_params"] else "")


def _few(n) -> str:
    return f" (n={n}: too few seeds for an interval)" if pd.notna(n) and n < MIN_SEEDS else ""


def _interval(r) -> str:
    """The 95% t interval, only behind MIN_SEEDS seeds or more (fewer: flagged instead)."""
    if pd.isna(r["seeds_at_chosen"]) or r["seeds_at_chosen"] < MIN_SEEDS:
        return ""
    return f"[{_m(r['accuracy_lo'])}, {_m(r['accuracy_hi'])}] "


def _tied_line(ranked: pd.DataFrame) -> list[str]:
    """The leader's tied group ("=" in the rank column), and whether the task separates at all."""
    contenders = ranked[~ranked["failed"].astype(bool)]
    if len(contenders) == 1 and len(ranked) > 1:
        return [f"Only `{contenders.iloc[0]['strategy']}` learned on this task; every other strategy failed.", ""]
    if len(contenders) < 2:
        return []
    tied = contenders[contenders["tied"].astype(object) == True]  # noqa: E712 (a nullable column)
    leader = contenders.sort_values("composite", ascending=False, kind="mergesort").iloc[0]["strategy"]
    line = (
        f"Tied with the leader `{leader}` (marked =): {len(tied)} of {len(contenders)} strategies that learned, "
        f"by a one-sided paired t-test over seeds on the test metric, Holm-corrected, α = {ALPHA:g}."
    )
    if len(tied) > len(contenders) / 2:
        line += " That is more than half: the strategies are not separable with these seeds, and the order is not a ranking."
    return [line, ""]


def _response_table(ranked: pd.DataFrame) -> list[str]:
    """How each ranked strategy responds to the learning rate (analysis/lr_response.py)."""
    if ranked.empty:
        return []
    rows = []
    for _, r in ranked.iterrows():
        if pd.isna(r["max_stable_lr"]):
            stable = "none"
        else:
            stable = ("≥ " if r["top_stable"] else "") + lr_label(r["max_stable_lr"])
        p = (
            f"{r['fail_p']:.2f} [{r['fail_lo']:.2f}, {r['fail_hi']:.2f}] ({r['fail_k']}/{r['fail_n']})"
            if pd.notna(r["fail_p"])
            else "—"
        )
        rows.append((_code(r["strategy"]), stable, _f(r["stable_octaves"], 1), _f(r["lr_sensitivity"], 3), p))
    head = [
        "strategy",
        "max stable lr",
        "stable range (octaves)",
        "LR sensitivity",
        "P(fail) @ chosen configuration [95% Wilson]",
    ]
    return ["Learning-rate response:", ""] + _table(head, rows) + [""]


def _speed(r) -> str:
    steps = r["steps_to_target"]
    if math.isinf(steps):
        return f"{r['speed']:.2f} (never)"
    return f"{r['speed']:.2f} ({_steps(steps)} steps)"


def _win(r, has_base: bool) -> str:
    if not has_base:
        return "n/a"
    if r["strategy"] == BASELINE:
        return "—"
    if pd.isna(r["win_rate"]):
        return "— (no seed where one learned)"
    return f"{r['win_rate']:.2f} [{r['win_lo']:.2f}, {r['win_hi']:.2f}] (n={r['paired_seeds']})"


def _error_list(task: str, records: list[Record]) -> list[str]:
    """The messages of error runs: they are bugs to fix, so the page names them."""
    errs = sorted(
        (r.label, r.lr_mult, r.seed, " ".join((r.reason or "no reason recorded").split())[:200])
        for r in records
        if r.task == task and r.status == "error"
    )
    if not errs:
        return []
    return (
        ["Errors (excluded from the scores):", ""]
        + [f"- `{s}` {lr_label(lr)} seed {seed}: {_esc(msg)}" for s, lr, seed, msg in errs]
        + [""]
    )


def _metric_ranges() -> str:
    """runs.METRIC_RANGE in words: "accuracy 0 to 1, mse from 0"."""
    return ", ".join(
        f"{name} from {lo:g}" if math.isinf(hi) else f"{name} {lo:g} to {hi:g}"
        for name, (lo, hi) in METRIC_RANGE.items()
    )


def _how_section(weights: dict[str, float]) -> list[str]:
    w = ", ".join(f"{k} {v:.3f}" for k, v in weights.items())
    return [
        "## How scores are computed",
        "",
        "Per task and strategy, across seeds and stress levels (learning-rate multipliers "
        "`lr×m`). Runs that are skipped (the strategy does not apply) or errored (a bug, not "
        "instability) are left out of every score; errors are counted in the *errors* column "
        "and listed under the table. A strategy whose runs on a task are all skipped is n/a "
        "there and is not ranked on it; one whose runs are baseline's own (the same resolved "
        'spec at every seed and level) is shown as "= baseline" and not ranked either.',
        "",
        f"- **Failure**: a run diverged (a non-finite loss, gradient or parameter, or a loss above "
        f"10x the first), or it collapsed: it finished, but its final validation value is no better "
        f"than chance plus {COLLAPSE_SHARE:g} of the gap from chance to the target. A failed run "
        "counts at chance everywhere (validation, test, never reaching the target), so a run that "
        "learned nothing never scores above one that learned. A strategy with no configuration "
        "where a seed learned has failed on the task: it is scored at chance and shares the last "
        "rank with the other failures, never dropped.",
        "- **Stability**: runs that did not fail / runs on the learning-rate grid (under a tuning "
        "protocol, the sweep: every level on the same seeds). "
        "Tie-break: the spike rate (loss + gradient spikes per 1000 steps; fewer is more "
        "stable): rows with an equal rank are listed by stability, then spike rate, then "
        "name; it does not change any score, so equal composites stay tied.",
        "- **Stable region**: the grid's levels at which no seed failed / the levels run. The "
        "*runs*, *diverged* and *collapsed* columns count every run of every phase (sweep, extra "
        "trials, final seeds).",
        "- **Learning-rate response** (the table under each task's): *max stable lr*, the highest "
        "level such that it and every level below it have no failed seed (≥ when that is the top "
        f"level run); *stable range*, log2 of the span of the contiguous levels around the best one "
        f"whose mean final validation result is within {STABLE_TOLERANCE:g} of the chance-to-best gap "
        "of the best; *LR sensitivity* (Wortsman et al., 2023), the mean gap between the best level's "
        "mean result and each level's, failed runs at chance, as a share of |target − chance|; "
        "*P(fail)*, failed seeds (diverged or collapsed) / seeds at the chosen configuration, with a "
        "95% Wilson interval. With one level run, or no level where a seed learned, the range and the "
        "sensitivity are —.",
        "- **Chosen configuration**: a learning-rate level, and after a tuning protocol's extra "
        "trials the value of the strategy's tuned parameter. Among the configurations tried on the "
        "tuning seeds (all seeds without a protocol) where at least one seed learned, the one whose "
        "mean final validation value over those seeds is best, a failed seed counting at chance; "
        "ties go to the smaller `lr×`, then to the declared parameters. The final seeds and the test "
        "metrics are never used to choose; the runner chose with the same rule.",
        "- **Speed**: at the chosen configuration, the median over seeds of the steps to reach the "
        "task's target; a seed that never reaches it, or failed, counts as infinity "
        "(AlgoPerf). Score = fastest median on the task / this median: 1 for the fastest, 0 "
        "for never.",
        "- **Accuracy**: at the chosen configuration, the mean test metric over every seed run there; a failed seed "
        "counts at chance (it is never dropped, so surviving seeds cannot flatter a "
        f"strategy). 95% Student t interval over seeds, cut at the metric's range ({_metric_ranges()}), "
        f"shown from {MIN_SEEDS} seeds on (fewer are "
        "flagged as too few). For the composite it is normalised between chance (0) and the "
        "best strategy on the task (1), in the metric's direction (for mse lower is better).",
        "- **Tied group**: the strategies that cannot be told apart from the task's leader (rank 1) "
        "by a one-sided paired t-test over shared seeds of the test metric at each one's chosen "
        f"configuration (failed seeds at chance), Holm-corrected over the other strategies that learned, α = "
        f"{ALPHA:g}. Seeds on which two strategies differ by exactly the same amount have no spread "
        "to test: that pair's p-value is then 2^-n.",
        "- **vs baseline**: the probability that the strategy beats `baseline` on the same "
        "seed, each at its own chosen configuration, on the test metric (the paired form of rliable's "
        "probability of improvement; ties count 1/2, a seed where both failed does not count; n = "
        "the seeds counted), with a 95% Wilson interval; n/a without a baseline.",
        f"- **Composite**: weighted mean of stability, speed and normalised accuracy "
        f"(weights {w}; set `scoring: {{weights: ...}}` in the suite config). Rank within a "
        "task: by composite (rounded to 9 decimals), equal composites share the best rank; "
        "failed strategies share the last (the number of strategies ranked on the task).",
        "- **Overall rank**: the mean, over the tasks where the strategy was ranked (leaving out a "
        "task where every strategy shares one rank; where its runs are baseline's, baseline's rank), of its "
        "rank there as a share of the field: (rank − 1) / (strategies ranked − 1), 0 first and 1 last, so "
        "that tasks ranking different numbers of strategies weigh the same; ranked only among the "
        "strategies ranked on the same set of tasks; chosen over the area under a performance profile because the "
        "composites are already normalised per task and a suite has few tasks, where a "
        "profile is a coarse step function whose area depends on an arbitrary cut-off; a mean "
        "rank is easy to check by hand. Mean composite breaks display ties.",
        "",
    ]


# ------------------------------------------------------------------------ formatting


def _table(head: list[str], rows: list[tuple]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _esc(text) -> str:
    """Safe inside a markdown table cell: one line, no bare pipes."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text) -> str:
    return f"`{_esc(text)}`" if text else "—"


def _codes(values: list[str]) -> str:
    return ", ".join(_code(v) for v in values) or "—"


def _f(x, digits: int) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def _int(x) -> str:
    return "—" if x is None or pd.isna(x) else str(int(x))


def _m(x) -> str:
    """A metric value: 4 decimals, or 3 significant digits in scientific form when tiny
    (an mse of 2e-5 must not read as 0.0000)."""
    if x is None or pd.isna(x):
        return "—"
    return f"{x:.3e}" if 0 < abs(x) < 0.01 else f"{x:.4f}"


def _steps(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"
