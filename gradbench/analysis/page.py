"""The leaderboard page: out_dir/README.md (GitHub renders it as the folder's page), with the
PNG plots of plots.py next to it. No torch, no lightning.

The page's prose lives in Jinja2 templates (templates/page.md.j2 and the sections it
includes), so a sentence is edited there without reading Python; this module reads the
records and scores into what the templates show (tables come ready-made, values formatted).

The page depends only on the records: the date is the latest run's finished_at (not "now"),
floats have fixed formats and rows a fixed order, so the same records give the same bytes.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from ..core import taxonomy
from ..core.errors import UserError
from ..core.optimizer_family import family
from ..core.record import Record, latest, outcome_counts, typed
from . import (
    arm_cost,
    decision,
    discrimination,
    findings,
    literature,
    lm_verdicts,
    preregistration,
    rank_stability,
    scoring,
    stress,
    stress_verdicts,
)
from . import markdown as md
from .compare import cpu_kind
from .lr_response import STABLE_TOLERANCE
from .plots import lr_label, write_plots
from .runs import METRIC_RANGE, canonical
from .runs import spent as runs_spent
from .scoring import BASELINE, COLLAPSE_SHARE, SAME_AS_BASELINE, Scores, uninformative_tasks
from .site import write_site
from .stats import ALPHA

README = "README.md"
RESULTS_NAME = "results.jsonl"  # the results file beside a page, as the committed pages keep it


def _prose(text: str) -> str:
    """A paragraph wrapped in a template, as the one line markdown keeps it."""
    return " ".join(text.split())


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("gradbench.analysis", "templates"),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # markdown, not HTML: text from records is escaped where it is put (markdown.py)
)
_TEMPLATES.filters.update(para=lambda text: _prose(text) + "\n", para_inline=_prose, code=md.code, esc=md.esc)


@dataclass(frozen=True)
class Part:
    """Another suite's results file that a page reads beside its own (leaderboard --tasks-from,
    --causes-from): its records, and the files saved beside it in its folder (pre-registration
    and amendments; a causes part's costs too). A remade leaderboard is such parts: the protocol's tasks, the
    language model's, and the stress suite's causes, each grown, registered and verified apart."""

    path: Path
    records: list

    @property
    def folder(self) -> Path:
        return Path(self.path).parent


@dataclass(frozen=True)
class Causes:
    """What the page's causes section reads: a stress suite's records, its saved costs and the
    predictions registered for it (by default the page's own records, costs and predictions)."""

    records: list
    costs: dict | None
    predictions: list


def write(
    records: Iterable[Record | dict],
    out_dir,
    *,
    weights: dict | None = None,
    command: str | None = None,
    plots: bool = True,
    results: Path | None = None,
    readme: Path | None = None,
    readme_command: str = "",
    tasks_from: Iterable[Part] = (),
    causes_from: Part | None = None,
) -> Path:
    """Score `records` and write out_dir/README.md (and, with plots, its PNGs); returns the
    README's path. `command` is the command that reproduces the results; by default the
    most common record["command"]. `results` is the file the records were read from: when
    it is out_dir/results.jsonl, with the default weights and command, the page names the
    command that rebuilds it in its folder. Records made under two numerics versions of the
    training code are a UserError: their numbers do not compare. `readme`: a file whose
    decision-table markers get this page's decision table, naming `readme_command`.
    `tasks_from`: other suites' results whose tasks are scored with these (their task names
    must differ); `causes_from`: a stress suite's results, which the causes section reads
    instead of these (its tasks may share names with these: they are not scored here)."""
    tasks_from = list(tasks_from)
    out_dir = Path(out_dir)
    _parts_apart(out_dir, tasks_from, causes_from)
    records = latest(typed(records))
    own = records
    own_command = _most_common(r.command for r in records)  # the command of this folder's suite
    _tasks_apart(own, tasks_from)
    records = own + [r for part in tasks_from for r in latest(typed(part.records))]
    cause_records = latest(typed(causes_from.records)) if causes_from else None
    _one_numerics_version(records + (cause_records or []))
    _one_spec_per_run(records)
    scores = scoring.score(records, weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = write_plots(records, scores, out_dir, causes=cause_records) if plots else {}
    path = out_dir / README
    measured = rank_stability.saved_for(records, out_dir)
    costs = arm_cost.saved(out_dir)
    registered = preregistration.saved(out_dir)
    amendments = preregistration.saved_amendments(out_dir)
    parts = tasks_from + ([causes_from] if causes_from else [])
    causes = None
    if causes_from:
        cause_registered = preregistration.saved(causes_from.folder)
        causes = Causes(
            cause_records,
            arm_cost.saved(causes_from.folder),
            cause_registered["reg"].predictions if cause_registered else [],
        )
    rebuilds = (
        results is not None
        and Path(results).resolve() == (out_dir / RESULTS_NAME).resolve()
        and weights is None
        and command is None
    )
    command = command or own_command
    page = render(
        records,
        scores,
        command=command,
        images=images,
        measured_ranks=measured,
        site=plots,
        costs=costs,
        rebuilds=rebuilds,
        registered=registered,
        amendments=amendments,
        causes=causes,
        parts=[_part(part, out_dir, "causes" if part is causes_from else "tasks") for part in parts],
        # each registration is read on its own part: the protocol's predictions on its tasks only
        own=(own, _claim_verdicts(own, scoring.score(own, weights))) if tasks_from else None,
    )
    path.write_text(page, encoding="utf-8", newline="\n")
    if readme is not None:
        answer = decision.rows(scores, costs, decision.task_steps(records), _settled(measured))
        noise = arm_cost.noise_note(costs, arm_cost.same_step_arms(records)) if costs else None
        spent = runs_spent(records, cause_records or ())
        if not decision.write_block(readme, answer, readme_command, cost_noise=noise, spent=spent):
            raise UserError(
                f"--readme {readme}: no {decision.START} ... {decision.END} markers to write the table between"
            )
        # the three findings, where the README has their markers
        findings.write_block(readme, findings.findings(scores, records), readme_command)
    if plots:  # the same scores as a static site: sortable tables, interactive figures
        write_site(
            records,
            scores,
            out_dir,
            command=command,
            results_name=RESULTS_NAME,
            costs=costs,
            measured_ranks=measured,
            causes=(causes.records, causes.costs) if causes else None,
        )
    return path


def _parts_apart(out_dir: Path, tasks_from: list[Part], causes_from: Part | None) -> None:
    """Each part in a folder of its own, apart from the page's: a part's pre-registration,
    amendments and costs are the files beside its results."""
    seen = {out_dir.resolve(): "the page's folder"}
    for part, option in [(p, "--tasks-from") for p in tasks_from] + (
        [(causes_from, "--causes-from")] if causes_from else []
    ):
        folder = part.folder.resolve()
        if folder in seen:
            raise UserError(
                f"{option} {part.path}: its folder is {seen[folder]} too; keep each suite's results in a folder of "
                "its own (its pre-registration and costs are read beside it)"
            )
        seen[folder] = f"{option} {part.path}'s"


def _tasks_apart(own: list[Record], tasks_from: list[Part]) -> None:
    """A task is scored from one suite: a part whose task the page's records, or another
    part's, hold too is refused (its seeds would be counted with theirs)."""
    seen = dict.fromkeys({r.task for r in own}, "the page's results")
    for part in tasks_from:
        tasks = {r.task for r in latest(typed(part.records))}
        for task in sorted(tasks & set(seen)):
            raise UserError(
                f"--tasks-from {part.path}: task {task} is in {seen[task]} too; a page scores each task from one suite"
            )
        seen.update(dict.fromkeys(tasks, f"--tasks-from {part.path}"))


def _claim_verdicts(records: list[Record], scores: Scores) -> dict[str, str]:
    """claim -> its verdict on these records: the literature's claims and the language model's
    registered predictions, each by its fixed rule."""
    found = literature.findings(scores, records) if not scores.per_task.empty else []
    return {c.claim: f.verdict for c, f in found} | lm_verdicts.verdicts(scores, records)


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
    registered: dict | None = None,
    amendments: list | None = None,
    causes: Causes | None = None,
    parts: list[dict] | None = None,
    own: tuple[list[Record], dict[str, str]] | None = None,
) -> str:
    """The page as a string. `images` maps a plot's key ("val_curves:<task>",
    "grad_norm:<task>", "stability_vs_accuracy") to its file name; missing keys are not linked.
    `measured_ranks` is the rank stability of these records (analysis/rank_stability.py), if any.
    `site`: the static site (site.py) is written beside the page, and the page links it.
    `costs`: each arm's measured time per step and memory (analysis/arm_cost.py), if any.
    `rebuilds`: the page is made from results.jsonl in its own folder, so it names the
    command that makes it there. `registered` and `amendments`: the pre-registration and the
    settings changed after records were seen, saved beside the page (preregistration.py).
    `causes`: what the causes section reads, when not these records (write's causes_from);
    `parts`: the other results files read (write's _part), for the provenance and registrations;
    `own`: where there are parts, the page's own records and its predictions' verdicts on them
    (its registration reads those, not every part's)."""
    records = latest(typed(records))
    images = images or {}
    parts = parts or []
    predictions = registered["reg"].predictions if registered else []
    causes = causes or Causes(records, costs, predictions)
    suites = _unique(r.suite for r in records)
    pt = scores.per_task
    tasks = (
        []
        if pt.empty
        else [_task(t, rows, records, images, costs, measured_ranks) for t, rows in pt.groupby("task", sort=True)]
    )
    found = literature.findings(scores, records) if tasks else []
    own_records, claim_verdicts = own or (
        records,
        {c.claim: f.verdict for c, f in found} | lm_verdicts.verdicts(scores, records),
    )
    page = _TEMPLATES.get_template("page.md.j2").render(
        title=md.esc(", ".join(suites)) if suites else "(no runs)",
        decision=decision.table(answer)
        if (answer := decision.rows(scores, costs, decision.task_steps(records), _settled(measured_ranks)))
        else None,
        rule=md.esc(decision.RULE),
        site=site,
        p=_provenance(
            records,
            scores,
            command,
            _saved_names(measured_ranks, costs, registered, amendments) if rebuilds else None,
            parts,
        ),
        reg=_registration(registered, amendments or [], own_records, claim_verdicts, causes.records) if tasks else None,
        parts=[
            {
                **part,
                "reg": _registration(
                    part["registered"],
                    part["amendments"],
                    part["records"],
                    _claim_verdicts(part["records"], scoring.score(part["records"])) if part["kind"] == "tasks" else {},
                ),
            }
            for part in parts
        ],
        tasks=tasks,
        overall=_overall(scores, measured_ranks) if tasks else None,
        ranks=_rank_stability(measured_ranks, uninformative_tasks(pt)) if tasks and measured_ranks else None,
        targets=_targets(scores) if tasks else None,
        costs=_costs(costs, arm_cost.same_step_arms(records)) if costs else None,
        claims=[] if all(f.verdict == literature.UNTESTED for _, f in found) else found,
        scatter=images.get("stability_vs_accuracy"),
        stress=stress_verdicts.with_verdicts(
            stress.section(
                causes.records, causes.costs, images.get("stress_matrix"), stress_verdicts.family(causes.predictions)
            ),
            causes.records,
            causes.predictions,
        ),
        # the scoring rules' constants, as the how-section states them
        w={k: f"{v:.3f}" for k, v in scores.weights.items()},
        weights=", ".join(f"{k} {v:.3f}" for k, v in scores.weights.items()),
        alpha=f"{ALPHA:g}",
        collapse_share=f"{COLLAPSE_SHARE:g}",
        stable_tolerance=f"{STABLE_TOLERANCE:g}",
        metric_ranges=_metric_ranges(),
        t={
            "progress_share": f"{taxonomy.PROGRESS_SHARE:g}",
            "blowup_factor": f"{taxonomy.BLOWUP_FACTOR:g}",
            "blowup_window": f"{taxonomy.BLOWUP_WINDOW:.0%}",
        },
    )
    return contents(page).rstrip("\n") + "\n"


CONTENTS_MARK = "<!--contents-->"


def contents(page: str) -> str:
    """The page with its table of contents in place of CONTENTS_MARK: a link to every section
    (## heading) after it, by the anchor GitHub gives the heading."""
    head, _, tail = page.partition(CONTENTS_MARK)
    if not tail:
        return page
    links = [
        f"- [{md.esc(title.replace('`', ''))}](#{_anchor(title)})"
        for title in re.findall(r"^## (.+)$", tail, flags=re.M)
    ]
    return head + "\n".join(links) + tail


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation but hyphens and underscores dropped,
    spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# ------------------------------------------------------------------------- provenance


def rebuild_command(saved: list[str], parts: list[dict] = ()) -> str:
    """How this folder's page is made from its results: run in the folder, so that it holds
    wherever the folder is (the repository, the published site, a download)."""
    beside = f" (with the saved {', '.join(saved)} beside it)" if saved else ""
    options = "".join(f" {part['option']}" for part in parts)
    return f"`gradbench leaderboard {RESULTS_NAME}{options} --out .` in this folder{beside}"


def _part(part: Part, out_dir: Path, kind: str) -> dict:
    """Another results file the page reads (kind "tasks" or "causes"): where it is from the
    page's folder, the option that reads it, what it holds, and its registration."""
    records = latest(typed(part.records))
    where = Path(os.path.relpath(Path(part.path).resolve(), Path(out_dir).resolve())).as_posix()
    env = [r.env for r in records if r.env is not None]
    return {
        "kind": kind,
        "path": md.code(where),
        "option": f"--{kind}-from {where}",
        "suites": md.codes(_unique(r.suite for r in records)),
        "runs": f"{len(records)} runs ({', '.join(f'{n} {s}' for s, n in outcome_counts(records).items())})",
        "commits": md.codes(_unique(e.git_commit for e in env)),
        "cpus": md.esc(", ".join(_unique(cpu_kind(e) for e in env))) or "not recorded",
        "registered": preregistration.saved(part.folder),
        "amendments": preregistration.saved_amendments(part.folder),
        "records": records,
    }


def _settled(measured_ranks: dict | None) -> dict | None:
    """The saved seed bootstrap's top-group shares per task (older measurements lack them)."""
    return measured_ranks.get("groups") if measured_ranks else None


def _saved_names(measured_ranks: dict | None, costs: dict | None, registered=None, amendments=None) -> list[str]:
    return [
        name
        for name, there in (
            (arm_cost.FILE, costs),
            (rank_stability.FILE, measured_ranks),
            (preregistration.FILE, registered),
            (preregistration.AMENDMENTS, amendments),
        )
        if there
    ]


NO_RULE = "— (no rule in the code reads it)"


def _verdicts(predictions: list, claim_verdicts: dict[str, str], cause_records: list[Record]) -> dict[str, str]:
    """claim -> its verdict by its fixed rule: a cause's rule (stress_verdicts.py) read on the
    stress records, or, for a prediction that states a literature claim word for word, that
    claim's verdict on the page's scores (literature.py)."""
    said = [p for p in predictions if p.test is not None]
    results = stress.stress_results(cause_records, stress_verdicts.family(said)) if said else None
    out = {p.claim: v.verdict for p, v in stress_verdicts.verdicts(results, said)} if said else {}
    return {**{p.claim: claim_verdicts[p.claim] for p in predictions if p.claim in claim_verdicts}, **out}


def _registration(
    registered: dict | None,
    amendments: list,
    records: list[Record],
    claim_verdicts: dict[str, str] | None = None,
    cause_records: list[Record] | None = None,
) -> dict:
    """The pre-registration's hash, date and predictions (each with its verdict by its fixed
    rule where one reads it: `claim_verdicts`, the literature's on the page's scores, and the
    causes' rules on `cause_records`), whether it precedes the records, and each setting
    changed after records were seen."""
    finished = sorted(r.timings.finished_at for r in records if r.timings.finished_at)
    first = finished[0] if finished else None
    out: dict = {"first_record": first[:10] if first else None, "amendments": [], "sha256": None}
    if registered:
        reg = registered["reg"]
        verdicts = _verdicts(reg.predictions, claim_verdicts or {}, records if cause_records is None else cause_records)
        out.update(
            file=registered["file"],
            sha256=registered["sha256"],
            date=reg.date.isoformat(),
            suite=md.esc(reg.suite),
            before=preregistration.before_records(reg, first),
            seed_rule=md.esc(reg.seed_rule),
            settings=md.table(["setting", "registered"], [(md.esc(k), md.esc(v)) for k, v in reg.settings.items()]),
            predictions=md.table(
                ["claim or cause", "predicted", "source", "verdict by its rule"],
                [
                    (
                        md.esc(p.claim),
                        md.esc(p.predicted),
                        md.esc(p.source) or "—",
                        md.esc(verdicts.get(p.claim, NO_RULE)),
                    )
                    for p in reg.predictions
                ],
            ),
            verdicts=f"{len(verdicts)} of {len(reg.predictions)}",
        )
    if amendments:
        out["amendments"] = md.table(
            ["date", "setting", "before", "after", "why", "commit"],
            [
                (
                    a.date.isoformat(),
                    md.esc(a.setting),
                    md.esc(a.before),
                    md.esc(a.after),
                    md.esc(a.reason),
                    md.code(a.commit) if a.commit else "—",
                )
                for a in amendments
            ],
        )
    return out


def _provenance(
    records: list[Record], scores: Scores, command: str | None, saved: list[str] | None, parts: list[dict] = ()
) -> dict:
    """The header table's values; `saved` (the saved files the page reads) is None unless the
    page rebuilds from its own folder (write's `results`), and then it says how, with the
    other results files it reads (`parts`)."""
    env = [r.env for r in records if r.env is not None]
    by_status = ", ".join(f"{n} {s}" for s, n in outcome_counts(records).items())
    # skipped runs (and runs that failed before loading data) have no fingerprint: not a second one
    data = sorted({(r.data.dataset, r.data.fingerprint) for r in records if r.data.fingerprint})
    return {
        "suites": md.codes(_unique(r.suite for r in records)),
        "command": md.code(command or _most_common(r.command for r in records)),
        "rebuild": rebuild_command(saved, parts) if saved is not None else None,
        "parts": parts,
        "date": md.esc(_latest(r.timings.finished_at for r in records)),
        "commits": md.codes(_unique(e.git_commit for e in env)),
        "versions": "; ".join(
            f"{name} {md.esc(', '.join(_unique(getattr(e, name) for e in env))) or '?'}"
            for name in ("gradbench", "torch", "lightning", "python")
        ),
        "devices": md.esc(", ".join(_unique(e.device for e in env))) or "—",
        "cpus": md.esc(", ".join(_unique(cpu_kind(e) for e in env))) or "not recorded",
        "threads": ", ".join(_unique(e.threads for e in env)) or "—",
        # records older than the field say nothing of it (they are version 1)
        "numerics": str(records[0].numerics_version) if any(r.numerics for r in records) else None,
        "seeds": ", ".join(str(s) for s in sorted({r.seed for r in records})) or "—",
        "levels": ", ".join(lr_label(x) for x in sorted({r.lr_mult for r in records})) or "—",
        "protocol": _protocol(records),
        "runs": f"{len(records)} ({by_status})" if records else "0",
        "weights": ", ".join(f"{k} {v:.3f}" for k, v in scores.weights.items()),
        "data": md.table(["dataset", "fingerprint"], [(md.esc(d), md.code(f)) for d, f in data]) if data else None,
        "data_differs": len({d for d, _ in data}) < len(data),
    }


def _protocol(records: list[Record]) -> dict | None:
    """The tuning protocol and its budget, read off the records' phases (None for a suite
    without one)."""
    ran = [r for r in records if r.status != "skipped"]
    sweep = [r for r in ran if r.phase == "sweep"]
    if not sweep:
        return None
    sweep_seeds = sorted({r.seed for r in sweep})
    trials = Counter((r.task, r.label) for r in ran if r.phase == "tune")
    per_arm = sorted({n // max(1, len(sweep_seeds)) for n in trials.values()}) or [0]
    rates: dict[str, set[float]] = {}
    for r in sweep + [r for r in ran if r.phase == "bracket"]:
        if r.peak_lr == r.peak_lr:  # not NaN
            rates.setdefault(family(r.optimizer_name or "?"), set()).add(float(f"{r.peak_lr:.4g}"))
    # the final seeds every arm with a choice ran, and those the seed rule gave the contenders only
    finals: dict[tuple[str, str], set[int]] = {}
    for r in ran:
        if r.phase == "final":
            finals.setdefault((r.task, r.label), set()).add(r.seed)
    extra = set().union(*finals.values()) - set.intersection(*finals.values()) if finals else set()
    levels_of: dict[tuple[str, str], set[float]] = {}
    for r in sweep:
        levels_of.setdefault((r.task, r.label), set()).add(r.lr_mult)
    shared = len({frozenset(v) for v in levels_of.values()}) == 1
    return {
        "grid": [lr_label(x) for x in sorted({r.lr_mult for r in sweep})] if shared else None,
        "bracketed_runs": sum(r.phase == "bracket" for r in ran),
        "rates": [f"{md.esc(f)} {', '.join(f'{x:g}' for x in sorted(v))}" for f, v in sorted(rates.items())],
        "sweep_seeds": _seeds(sweep_seeds),
        "trials": "" if per_arm == [0] else " or ".join(map(str, per_arm)),
        "final_seeds": _seeds(sorted(set.intersection(*finals.values()) | set(sweep_seeds)) if finals else sweep_seeds),
        "contender_seeds": _seeds(sorted(extra)) if extra else "",
        "contenders": sum(bool(v & extra) for v in finals.values()),
        "not_run": sum(bool(r.not_run) for r in records),
    }


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


# ------------------------------------------------------------------------- sections


WIDE = "among every arm ranked on these tasks"  # the overall tables' column that places a smaller field's arms


UNSETTLED = (0.1, 0.9)  # a share of resamples with the arm in the top 3 between these: its place there is open


def unsettled(measured_ranks: dict | None, where: str, arm: str) -> bool:
    """Whether the saved rank stability has `arm` in the top 3 of `where` (a task, or
    "overall") in between 10% and 90% of its resamples: a rank the seeds do not settle."""
    if not measured_ranks or where not in measured_ranks.get("in_top", {}):
        return False
    share = measured_ranks["in_top"][where].get(arm)
    return share is not None and UNSETTLED[0] < share < UNSETTLED[1]


def _tie_mark(rank: str, unsettled_rank: bool) -> str:
    return f"{rank} ≈" if unsettled_rank and rank not in ("—", "= baseline") else rank


def _overall(scores: Scores, measured_ranks: dict | None = None) -> dict:
    """One table per set of tasks the arms were ranked on (scoring's overall fields); a rank
    whose top-3 place the saved rank stability does not settle is marked ≈."""
    pt = scores.per_task
    fields = []
    for field, group in scores.overall.groupby("compared_on", sort=False):
        tasks = field.split(", ") if field else []
        placed = not group["place_wide"].isna().all()  # some arm's field holds these tasks and more
        rows = [_overall_row(r, pt, tasks) for _, r in group.iterrows()]
        for row, (_, r) in zip(rows, group.iterrows()):
            row["rank"] = _tie_mark(row["rank"], unsettled(measured_ranks, "overall", r["strategy"]))
        head = [c for c in rows[0] if placed or c != WIDE]
        if len(group) == 1 and tasks:
            alone = "placed" if placed else "unplaced"
        elif tasks and group["rank"].isna().all():
            alone = "all tied"
        else:
            alone = ""
        fields.append({"tasks": tasks, "alone": alone, "table": md.table(head, [[r[c] for c in head] for r in rows])})
    return {"flat": uninformative_tasks(pt), "n_tasks": pt["task"].nunique(), "fields": fields}


def _overall_row(r: pd.Series, pt: pd.DataFrame, tasks: list[str]) -> dict[str, str]:
    mine = pt[pt["strategy"] == r["strategy"]]
    na = ", ".join(
        [md.code(t) for t in mine.loc[mine["status"] == "n/a", "task"]]
        + [f"{md.code(t)} (= baseline)" for t in mine.loc[mine["status"] == SAME_AS_BASELINE, "task"]]
        # a task-specific arm (tasks.T.strategies) has no runs on the other tasks
        + [f"{md.code(t)} (not run)" for t in sorted(set(pt["task"]) - set(mine["task"]))]
    )
    copies = set(mine.loc[mine["status"] == SAME_AS_BASELINE, "task"])
    return {
        "rank": "= baseline" if tasks and set(tasks) <= copies else _int(r["rank"]),
        "strategy": md.code(r["strategy"]),
        "mean rank (0 first, 1 last)": _f(r["mean_rank"], 2),
        WIDE: f"{r['place_wide']} of {r['wide_field']}" if not pd.isna(r["place_wide"]) else "—",
        "mean composite": _f(r["mean_composite"], 3),
        "mean stability": _f(r["mean_stability"], 3),
        "n/a, not run, or = baseline on": na or "—",
        "error on": md.codes(mine.loc[mine["status"] == "error", "task"]),
        "runs": str(r["runs"]),
        "exploded": str(r["exploded"]),
        "errors": str(r["errors"]),
    }


def _rank_stability(measured: dict, flat: list[str]) -> dict:
    shares = ", ".join(f"{md.code(k)} {v:.0%}" for k, v in measured["unchanged"].items() if k != "overall")
    groups = [(k, rank_stability.tied_top(measured, k)) for k in measured["unchanged"]]
    rows = [
        (
            "overall" if key == "overall" else md.code(key),
            f"{measured['unchanged'][key]:.0%}",
            ", ".join(f"{md.code(s)} {measured['in_top'][key][s]:.0%}" for s in group),
        )
        for key, group in groups
        if group
    ]
    head = ["ranking", "top 3 unchanged", "tied top group (share of resamples in the top 3)"]
    return {
        "resamples": measured["resamples"],
        "seed": measured["seed"],
        "shares": shares,
        "flat": flat,
        "overall": f"{measured['unchanged']['overall']:.0%}",
        "settled": f"{rank_stability.SETTLED:.0%}",
        "unsettled": f"{1 - rank_stability.SETTLED:.0%}",
        "table": md.table(head, rows) if rows else None,
    }


def _targets(scores: Scores) -> dict | None:
    """Which arms reach each task's target (analysis/discrimination.py): a task that every arm
    passes, or none does, cannot tell the strategies apart."""
    splits = discrimination.split_by_target(scores.per_task)
    if not splits:
        return None
    return {"rule": discrimination.RULE, "table": "\n".join(discrimination.markdown(splits, scores.per_task))}


def _costs(m: dict, same_step: dict[str, set[str]]) -> dict:
    """What each arm costs, as saved by benchmarks/arm_cost.py (analysis/arm_cost.py), and the
    table's noise: what the arms with baseline's training step read."""
    return {
        "command": m["command"],
        "machine": m["machine"],
        "threads": m["threads"],
        "steps": m["steps"],
        "task_steps": ", ".join(f"{md.code(t)} {n}" for t, n in sorted(m.get("task_steps", {}).items())),
        "min_seconds": f"{m.get('min_seconds', 0):g}",
        "lr_mult": f"{m['lr_mult']:g}",
        "rounds": m["rounds"],
        "baseline_every": m.get("baseline_every"),
        "memory": m["memory"],
        "memory_command": m.get("memory_command"),
        "memory_machine": m.get("memory_machine", m["machine"]),
        "noise": arm_cost.noise_note(m, same_step),
        "table": "\n".join(arm_cost.table(m, same_step)),
    }


# ------------------------------------------------------------------------- a task


HEADLINE_HEAD = [
    "#",
    "strategy",
    "{metric} @ tuned [95% t], tested seeds",
    "vs baseline: effect [95% t]",
    "p (Holm)",
    "headroom (octaves)",
    "max stable lr",
    "runs exploded / collapsed / never learned",
    "tested seeds that did not learn",
    "cost: step time × baseline, memory",
]
TASK_HEAD = [
    "rank",
    "strategy",
    "composite",
    "stability",
    "stable region",
    "speed",
    "{metric} @ chosen configuration",
    "P(beats baseline)",
    "runs",
    "exploded",
    "collapsed",
    "never learned",
    "errors",
]
RESPONSE_HEAD = [
    "strategy",
    "max stable lr",
    "stable range (octaves)",
    "LR sensitivity",
    "P(exploded or collapsed) @ tuned, tested seeds [95% Wilson]",
]
# the plots a task section shows, in order (plots.py names them "<kind>:<task>")
TASK_PLOTS = ("dose_response", "val_curves", "grad_norm", "attention_logits")


def _task(
    task: str,
    rows: pd.DataFrame,
    records: list[Record],
    images: dict[str, str],
    costs: dict | None,
    measured_ranks: dict | None = None,
) -> dict:
    scored = rows[rows["status"] == "scored"]
    meta = (scored if len(scored) else rows).iloc[0]
    has_base = bool(((rows["strategy"] == BASELINE) & (rows["status"] == "scored")).any())
    contenders = scored[~scored["failed"].astype(bool)]
    tied = None
    if len(contenders) >= 2:
        leader = contenders[contenders["leader"].astype(object) == True].iloc[0]["strategy"]  # noqa: E712
        n_tied = int((contenders["tied"].astype(object) == True).sum())  # noqa: E712 (a nullable column)
        tied = {"leader": leader, "n": n_tied, "of": len(contenders)}
    errors = sorted(
        (r.label, r.lr_mult, r.seed, " ".join((r.reason or "no reason recorded").split())[:200])
        for r in records
        if r.task == task and r.status == "error"
    )
    metric = meta["metric"] or "metric"
    head = [h.format(metric=md.esc(metric)) for h in TASK_HEAD]
    by_quality = scored.sort_values(["quality_rank", "strategy"], kind="mergesort")
    task_costs = costs["tasks"].get(task, {}) if costs and "tasks" in costs else {}
    significant = by_quality[by_quality["effect_p_holm"].astype(float) <= ALPHA]
    better = significant[np.sign(significant["effect"].astype(float)) == (1 if meta["higher_is_better"] else -1)]
    return {
        "name": task,
        "metric": md.esc(meta["metric"]) if meta["metric"] else "?",
        "metric_word": md.esc(metric),
        "higher_is_better": bool(meta["higher_is_better"]),
        "target": _m(meta["target"]),
        "chance": _m(meta["chance"]),
        "headline": md.table(
            [h.format(metric=md.esc(metric)) for h in HEADLINE_HEAD],
            [_headline_row(r, has_base, task_costs) for _, r in by_quality.iterrows()],
        )
        if len(scored)
        else None,
        "tested_on": sorted(set(scored["tested_on"].dropna())),
        "better": [md.code(s) for s in better["strategy"]],
        "worse": [md.code(s) for s in significant["strategy"] if s not in set(better["strategy"])],
        "compared": int(scored["effect_p_holm"].notna().sum()),
        "unbracketed": [
            f"{md.code(r['strategy'])} ({md.esc(r['bracket'])})"
            for _, r in by_quality.iterrows()
            if not r["failed"] and not bool(r["bracketed"])
        ],
        "learned": int((~scored["failed"].astype(bool)).sum()),
        "inferred": int(scored["outcomes_inferred"].fillna(0).sum()),
        "table": md.table(
            head,
            [
                (_tie_mark(row[0], unsettled(measured_ranks, task, r["strategy"])), *row[1:])
                for r, row in ((r, _task_row(r, has_base)) for _, r in rows.iterrows())
            ],
        ),
        "only_learner": contenders.iloc[0]["strategy"] if len(contenders) == 1 and len(scored) > 1 else None,
        "tied": tied,
        "response": md.table(RESPONSE_HEAD, [_response_row(r) for _, r in scored.iterrows()]) if len(scored) else None,
        "none_learned": bool(len(scored)) and bool(scored["failed"].astype(bool).all()),
        "errors": [
            {"strategy": s, "lr": lr_label(lr), "seed": seed, "message": md.esc(msg)} for s, lr, seed, msg in errors
        ],
        "images": [(kind, images[f"{kind}:{task}"]) for kind in TASK_PLOTS if f"{kind}:{task}" in images],
    }


def _headline_row(r: pd.Series, has_base: bool, cost: dict) -> tuple:
    """One arm's headline measures on a task: quality at its tuned configuration, its paired
    effect vs baseline, its headroom, how its runs ended, and its cost where it was measured
    (`cost`: the task's arms in the saved arm_cost.json)."""
    if r["failed"]:
        quality = "failed: no configuration tried where a seed learned"
    else:
        seeds = f"n={r['tested_seeds']}" + (", tuning seeds" if r["tested_on"] == "tuning" else "")
        quality = f"{_m(r['accuracy'])} [{_m(r['accuracy_lo'])}, {_m(r['accuracy_hi'])}] ({seeds}) @ {_chosen(r)}"
    if not has_base:
        effect, p = "n/a", "n/a"
    elif r["strategy"] == BASELINE:
        effect, p = "—", "—"
    elif pd.isna(r["effect"]):
        effect, p = "— (no shared tested seed)", "—"
    elif r["failed"] and r["effect"] == r["effect_lo"] == r["effect_hi"] == 0:
        effect, p = "0 (both at chance on every seed)", "—"
    else:
        effect = f"{_signed(r['effect'])} [{_signed(r['effect_lo'])}, {_signed(r['effect_hi'])}]"
        p = ("<0.001" if r["effect_p_holm"] < 0.001 else f"{r['effect_p_holm']:.3f}") + (
            " *" if r["effect_p_holm"] <= ALPHA else ""
        )
    return (
        _int(r["quality_rank"]) + (" =" if r["tied"] is True else ""),
        md.code(r["strategy"]),
        quality,
        effect,
        p,
        _headroom(r),
        _absolute_lr(r),
        f"{r['exploded']} / {r['collapsed']} / {r['never_learned']} of {r['scored']}",
        md.esc(r["failed_seeds"]) if isinstance(r["failed_seeds"], str) and r["failed_seeds"] else "—",
        _cost(cost.get(r["strategy"])),
    )


def _cost(c: dict | None) -> str:
    """Step time over baseline's and extra memory, as arm_cost.json saves them; — unmeasured."""
    if not c or c.get("ratio") is None:
        return "—"
    extra = "" if c.get("extra_mb") is None else f", {c['extra_mb']:+.0f} MB"
    return f"{c['ratio']:.2f}×{extra}"


def _signed(x: float) -> str:
    """An effect: a sign always, 3 significant digits (an mse effect may be 2e-4)."""
    return "—" if pd.isna(x) else f"{x:+.3g}"


def _headroom(r) -> str:
    if pd.isna(r["headroom"]):
        return "—"
    return ("≥ " if r["top_stable"] else "") + f"{r['headroom']:+.1f}"


def _absolute_lr(r) -> str:
    if pd.isna(r["lr_max_stable"]):
        return "none" if pd.isna(r["max_stable_lr"]) else "—"
    optimizer = f" ({md.esc(r['optimizer'])})" if r["optimizer"] else ""
    return ("≥ " if r["top_stable"] else "") + f"{r['lr_max_stable']:.3g}{optimizer}"


def _task_row(r: pd.Series, has_base: bool) -> tuple:
    if r["status"] != "scored":
        what = r["status"] if r["status"] in ("n/a", SAME_AS_BASELINE) else "error"
        why = f"{what}: {md.esc(r['reason'])}" if r["reason"] else what
        return (
            "—",
            md.code(r["strategy"]),
            why,
            "—",
            "—",
            "—",
            "—",
            "—",
            str(r["runs"]),
            *("—" if pd.isna(r[k]) else str(r[k]) for k in ("exploded", "collapsed", "never_learned")),
            str(r["errors"]),
        )
    return (
        _int(r["rank"]),
        md.code(r["strategy"]),
        _f(r["composite"], 3),
        f"{r['grid_runs'] - r['grid_unstable']}/{r['grid_runs']}",
        f"{r['stable_levels']}/{r['levels']} lr",
        _speed(r),
        "failed: no configuration tried where a seed learned" if r["failed"] else f"{_m(r['accuracy'])} @ {_chosen(r)}",
        _win(r, has_base),
        str(r["runs"]),
        str(r["exploded"]),
        str(r["collapsed"]),
        str(r["never_learned"]),
        str(r["errors"]),
    )


def _response_row(r: pd.Series) -> tuple:
    """How a ranked strategy responds to the learning rate (analysis/lr_response.py)."""
    stable = "none" if pd.isna(r["max_stable_lr"]) else ("≥ " if r["top_stable"] else "") + lr_label(r["max_stable_lr"])
    p = (
        f"{r['unstable_p']:.2f} [{r['unstable_lo']:.2f}, {r['unstable_hi']:.2f}] ({r['unstable_k']}/{r['unstable_n']})"
        if pd.notna(r["unstable_p"])
        else "—"
    )
    return (md.code(r["strategy"]), stable, _f(r["stable_octaves"], 1), _f(r["lr_sensitivity"], 3), p)


def _chosen(r) -> str:
    """The chosen configuration: its lr, and a parameter a tuning trial changed."""
    return lr_label(r["chosen_lr_mult"]) + (f", {md.esc(r['chosen_params'])}" if r["chosen_params"] else "")


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


def _metric_ranges() -> str:
    """runs.METRIC_RANGE in words: "accuracy 0 to 1, mse from 0"."""
    return ", ".join(
        f"{name} from {lo:g}" if math.isinf(hi) else f"{name} {lo:g} to {hi:g}"
        for name, (lo, hi) in METRIC_RANGE.items()
    )


# ------------------------------------------------------------------------ formatting


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
