"""The leaderboard as a static site: the markdown page's scores as sortable, filterable tables
(itables) and interactive figures (plotly), in one index.html that opens from disk with no
network: the DataTables bundle is inlined once, plotly.js sits next to it as a file.

Built from the same Scores as the markdown page (page.py), so the two forms never disagree;
deterministic (fixed element ids, sorted inputs), so it rebuilds byte for byte.
"""

from __future__ import annotations

import html
import math
import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..core.record import Record, typed
from . import arm_cost, decision, discrimination, literature, rank_stability, stress
from .runs import level_results, runs_frame, task_meta
from .scoring import Scores, uninformative_tasks

SITE = "site"
PLOTLY_JS = "plotly.min.js"


def write_site(
    records: Iterable[Record | dict],
    scores: Scores,
    out_dir: Path,
    *,
    command: str | None,
    results_name: str,
    costs: dict | None = None,
    measured_ranks: dict | None = None,
    causes: tuple[list[Record], dict | None] | None = None,
) -> Path:
    """out_dir/site/index.html (and plotly.min.js beside it); returns the index's path.
    `measured_ranks`: the saved rank stability of these records (analysis/rank_stability.py).
    `causes`: a stress suite's records and saved costs, for the causes section, where they are
    not these records."""
    import plotly

    site = Path(out_dir) / SITE
    site.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / PLOTLY_JS, site / PLOTLY_JS)
    index = site / "index.html"
    page = render_site(
        records,
        scores,
        command=command,
        results_name=results_name,
        costs=costs,
        measured_ranks=measured_ranks,
        causes=causes,
    )
    index.write_text(page, encoding="utf-8")
    return index


def render_site(
    records: Iterable[Record | dict],
    scores: Scores,
    *,
    command: str | None,
    results_name: str,
    costs: dict | None = None,
    measured_ranks: dict | None = None,
    causes: tuple[list[Record], dict | None] | None = None,
) -> str:
    import itables
    from itables.javascript import generate_init_offline_itables_html

    bundle = Path(itables.__file__).parent / "html" / "dt_bundle.js"
    pt = scores.per_task
    records = typed(records)
    frame = runs_frame(records)
    answer = decision.rows(
        scores, costs, decision.task_steps(records), measured_ranks.get("groups") if measured_ranks else None
    )
    body = [
        "<h1>gradbench leaderboard</h1>",
        # the answer first: what to use, then the figure, then the evidence
        *(
            ["<h2>What to use</h2>", decision.html_table(answer), f"<p>{html.escape(decision.RULE)}</p>"]
            if answer
            else []
        ),
        "<h2>Stability against accuracy</h2>",
        _figure(_scatter(pt), "fig-scatter"),
        f"<p>Made by <code>{html.escape(command or 'an unnamed command')}</code>, from "
        f'<a href="../{html.escape(results_name)}" download>the results file</a> '
        f"({len(records)} records). The markdown page beside it has every rule and reading.</p>",
        *_targets(pt),
        *_causes(*(causes or (records, costs))),
    ]
    for i, (task, rows) in enumerate(pt.groupby("task", sort=True)):
        body += [
            f"<h2>Task <code>{html.escape(task)}</code></h2>",
            _table(_task_view(rows), f"task-{i}"),
            _figure(_dose_response(task, frame), f"fig-dose-{i}"),
        ]
    body += [
        "<h2>Composite view across tasks (optional)</h2>",
        "<p>Not a headline: the composite mixes stability, speed and quality with chosen weights; each task's "
        "table above reads them apart (quality on held-out seeds, the paired effect vs baseline with Holm's "
        "correction, headroom, how runs ended). A rank compares a strategy only with those ranked on the same "
        "tasks (<code>compared_on</code>): filter by it to read one field.</p>",
        _table(_overall_view(scores.overall), "overall"),
        *_rank_stability(measured_ranks, uninformative_tasks(pt)),
        "<h2>Probability of improving on baseline</h2>",
        _figure(_win_rates(pt), "fig-win"),
    ]
    if costs:
        body += [
            "<h2>What each mitigation costs</h2>",
            f"<p>Measured paired by <code>{html.escape(costs['command'])}</code> on {html.escape(costs['machine'])}"
            + (
                f", memory by <code>{html.escape(costs['memory_command'])}</code>"
                if costs.get("memory_command")
                else ""
            )
            + "; <i>x baseline</i> is the median over the rounds of an arm's time per step over that of the two baseline runs around it, "
            "<i>low</i> and <i>high</i> a 95% interval for it from 6 rounds on (else the rounds' range); an arm with <i>baseline's step</i> differs from it "
            "only in learning rate, schedule or initialization, so what it reads is the table's noise; the markdown page says how.</p>",
            _table(_cost_view(costs, arm_cost.same_step_arms(records)), "cost"),
        ]
    claims = _literature_view(scores, records)
    if claims is not None:
        body += ["<h2>What the literature predicts, and what we measured</h2>", _table(claims, "literature")]
    head = [
        '<meta charset="utf-8">',
        "<title>gradbench leaderboard</title>",
        f'<script src="{PLOTLY_JS}"></script>',
        generate_init_offline_itables_html(bundle),
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}code{font-size:90%}"
        "table.decision{border-collapse:collapse;font-size:90%}"
        "table.decision td,table.decision th{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}</style>",
    ]
    return (
        "<!DOCTYPE html>\n<html><head>\n"
        + "\n".join(head)
        + "\n</head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _rank_stability(measured: dict | None, flat: list[str]) -> list[str]:
    """The markdown page's rank stability: a table (_rank_stability_view) and what it means;
    `flat`: the tasks where every strategy shares one rank, so there is no top 3."""
    if not measured:
        return []
    settled = rank_stability.SETTLED
    none = f" No top 3 on {', '.join(flat)}: every strategy shares one rank there." if flat else ""
    return [
        "<h3>Rank stability</h3>",
        f"<p>The percent of {measured['resamples']} seed-bootstrap resamples in which each ranking's top 3 is "
        f"unchanged. Below {settled:.0%} the top is not a settled order: it is read as a tied group, every strategy "
        f"in the top 3 of at least {1 - settled:.0%} of the resamples, in no order.{none} The markdown page says "
        "how the resamples are drawn.</p>",
        _table(_rank_stability_view(measured), "rank-stability"),
    ]


def _rank_stability_view(measured: dict) -> pd.DataFrame:
    """Per ranking: its top 3, the percent of resamples that left it unchanged and, below
    SETTLED, the tied group read instead, each with its share of resamples in the top 3."""
    keys = list(measured["unchanged"])

    def group(key: str) -> str:
        if measured["unchanged"][key] >= rank_stability.SETTLED:
            return ""
        tied = rank_stability.tied_top(measured, key)
        if tied is None:
            return "(not measured: made before the share in the top 3 was kept)"
        return ", ".join(f"{s} ({measured['in_top'][key][s]:.0%})" for s in tied)

    return pd.DataFrame(
        {
            "ranking": keys,
            "top 3": [", ".join(measured["top"][k]) for k in keys],
            "top 3 unchanged, %": [round(100 * measured["unchanged"][k]) for k in keys],
            "read as a tied group (share of resamples in the top 3)": [group(k) for k in keys],
        }
    )


def _targets(pt: pd.DataFrame) -> list[str]:
    splits = discrimination.split_by_target(pt)
    if not splits:
        return []
    return [
        "<h2>Which arms reach each task's target</h2>",
        f"<p>{html.escape(discrimination.RULE)}.</p>",
        _table(discrimination.view(splits, pt, name=str), "targets"),
    ]


# A number a row does not have (an arm n/a on a task has no accuracy) shows as a dash rather
# than DataTables' "NaN", and sorts as an empty cell (below every number, ascending)
_BLANK_NAN = "function (data, type) { return Number.isNaN(data) ? (type === 'display' ? '\u2013' : '') : data; }"


def _causes(records: list[Record], costs: dict | None) -> list[str]:
    """The stress axes, as the page has them: what to use per cause, the heatmap, every cell."""
    results = stress.stress_results(records)
    if not results.cells:
        return []
    answer = stress.cause_rows(results, costs)
    return [
        "<h2>Explosion by cause</h2>",
        decision.html_table(answer, "causes", stress.CAUSE_HEAD, stress.cause_cells),
        f"<p>{html.escape(stress.CAUSE_RULE)}</p>",
        _figure(_stress_heatmap(results), "fig-stress"),
        f"<p>{html.escape(stress.RULE)}</p>",
        _table(_stress_view(results), "stress"),
    ]


def _stress_heatmap(results: stress.StressResults):
    import plotly.graph_objects as go

    arms, axes = results.arms, results.axes
    z, text = [], []
    for arm in arms:
        cells = [results.cell(axis, arm) for axis in axes]
        z.append([None if c is None or arm == "baseline" else _num(c.extra) for c in cells])
        text.append(["" if c is None else stress.heatmap_text(c) for c in cells])
    span = max([1.0] + [abs(v) for row in z for v in row if v is not None])
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=axes,
            y=arms,
            text=text,
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0,
            zmin=-span,
            zmax=span,
            colorbar={"title": "extra levels"},
            hovertemplate="%{y} on %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Extra levels tolerated over baseline, per cause",
        yaxis={"autorange": "reversed"},
        height=160 + 28 * len(arms),
        template="plotly_white",
    )
    return fig


def _stress_view(results: stress.StressResults) -> pd.DataFrame:
    rows = []
    for c in results.cells:
        rows.append(
            {
                "axis": c.axis,
                "arm": c.arm,
                "seeds": len(c.seeds),
                "levels tolerated": c.tolerance,
                "highest tolerated": "none" if c.highest is None else str(c.highest),
                "vs baseline": "—" if c.arm == "baseline" else stress.cell_text(c),
                "Holm p": _num(c.p_holm),
                "levels it learns at": c.learns,
                "of levels": len(c.levels),
            }
        )
    return pd.DataFrame(rows)


def _table(df: pd.DataFrame, table_id: str) -> str:
    from itables import JavascriptFunction, to_html_datatable

    # every row on one page, with the search box that filters them and the count of rows shown;
    # a click anywhere on a header sorts by it (itables otherwise keeps header text selectable
    # and sorts only from the small arrow)
    layout = {"topStart": None, "topEnd": "search", "bottomStart": "info", "bottomEnd": None}
    floats = [i for i, dtype in enumerate(df.dtypes) if dtype.kind == "f"]
    blanks = {"columnDefs": [{"targets": floats, "render": JavascriptFunction(_BLANK_NAN)}]} if floats else {}
    return to_html_datatable(
        df,
        **blanks,
        table_id=table_id,
        connected=False,
        classes="display compact",
        paging=False,
        layout=layout,
        text_in_header_can_be_selected=False,
    )


def _figure(fig, div_id: str) -> str:
    if fig is None:
        return "<p>(no data for this figure)</p>"
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def _num(x, digits=3):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _overall_view(overall: pd.DataFrame) -> pd.DataFrame:
    cols = [
        "rank",
        "strategy",
        "compared_on",
        "mean_rank",
        "place_wide",
        "wide_field",
        "tasks_ranked",
        "tasks_na",
        "mean_composite",
        "mean_stability",
        "runs",
        "exploded",
    ]
    view = overall[[c for c in cols if c in overall.columns]].reset_index(drop=True).round(3)
    # the widest field by its count, so that its rows stay one line high; a narrower one by its tasks
    fields = [f.split(", ") for f in view["compared_on"].dropna().unique() if f]
    widest = max(fields, key=len, default=[])
    if len(widest) > 1 and all(set(f) <= set(widest) for f in fields):
        view["compared_on"] = view["compared_on"].replace(", ".join(widest), f"all {len(widest)} tasks")
    # the place among every arm ranked on compared_on's tasks (of wide_field arms)
    return view.rename(columns={"place_wide": "place among all on these tasks", "wide_field": "of"})


def _task_view(rows: pd.DataFrame) -> pd.DataFrame:
    """The headline measures first (quality and its effect vs baseline, headroom, how runs
    ended), the composite view after them; ordered by quality."""
    view = pd.DataFrame(
        {
            "quality rank": rows["quality_rank"],
            "strategy": rows["strategy"],
            "tied with leader": rows["tied"],
            "accuracy": rows["accuracy"].astype(float).round(4),
            "accuracy_lo": rows["accuracy_lo"].astype(float).round(4),
            "accuracy_hi": rows["accuracy_hi"].astype(float).round(4),
            "tested seeds": rows["tested_seeds"],
            "effect vs baseline": rows["effect"].astype(float).round(4),
            "effect_lo": rows["effect_lo"].astype(float).round(4),
            "effect_hi": rows["effect_hi"].astype(float).round(4),
            "p (Holm)": rows["effect_p_holm"].astype(float).round(4),
            "headroom (octaves)": rows["headroom"].astype(float).round(2),
            "max stable lr": rows["lr_max_stable"].astype(float).round(6),
            "optimizer": rows["optimizer"],
            "exploded": rows["exploded"],
            "collapsed": rows["collapsed"],
            "never learned": rows["never_learned"],
            "P(improve)": rows["win_rate"].astype(float).round(3),
            "composite": rows["composite"].astype(float).round(3),
            "composite rank": rows["rank"],
            "stability": rows["stability"].astype(float).round(3),
            "chosen lr x": rows["chosen_lr_mult"].astype(float).round(3),
            "status": rows["status"],
        }
    )
    return view.sort_values(["quality rank", "strategy"], na_position="last").reset_index(drop=True)


def _cost_view(costs: dict, same_step: dict[str, set[str]]) -> pd.DataFrame:
    rows = arm_cost.rows(costs)
    return pd.DataFrame(
        {
            "task": [r["task"] for r in rows],
            "arm": [r["arm"] for r in rows],
            "baseline's step": [r["arm"] in same_step.get(r["task"], set()) for r in rows],
            "ms/step": [_num(r["ms_per_step"], 2) for r in rows],
            "baseline's ms/step": [_num(r.get("baseline_ms"), 2) for r in rows],
            "x baseline": [_num(r["ratio"]) for r in rows],
            "low": [_num(arm_cost.bounds(r)[0]) for r in rows],
            "high": [_num(arm_cost.bounds(r)[1]) for r in rows],
            "peak MB": [_num(r["peak_mb"], 0) for r in rows],
            "vs baseline MB": [_num(r["extra_mb"], 0) for r in rows],
        }
    )


def _literature_view(scores: Scores, records: list[Record]) -> pd.DataFrame | None:
    """The page's literature section as a table (None when no claim can be read here)."""
    found = literature.findings(scores, records)
    if all(f.verdict == literature.UNTESTED for _, f in found):
        return None
    return pd.DataFrame(
        {
            "claim": [c.claim for c, _ in found],
            "source": [c.source for c, _ in found],
            "read as": [c.test for c, _ in found],
            "measure": [c.measure for c, _ in found],
            "can it fail here": [f.can_fail for _, f in found],
            "measured": [f.measured for _, f in found],
            "verdict": [f.verdict for _, f in found],
            "what differs here": [f.differs for _, f in found],
        }
    )


def _arm_colours() -> list[str]:
    """48 distinct colours (plotly's Dark24 then Light24): a task's dozens of arms repeat
    plotly's default 10 every tenth line."""
    from plotly.colors import qualitative

    return qualitative.Dark24 + qualitative.Light24


def _dose_response(task: str, frame: pd.DataFrame):
    """The metric at each learning-rate level of the grid, one line per arm; a level where a
    seed exploded is an x, one where a seed collapsed after progress a square, one not run (above a level
    where every seed diverged) an open circle."""
    import plotly.graph_objects as go

    runs = frame[frame["task"] == task]
    meta = task_meta(frame, task)
    fig = go.Figure()
    for arm, mine in sorted(runs.groupby("strategy"), key=lambda kv: kv[0]):
        levels = level_results(mine, meta)
        if levels.empty:
            continue
        symbols = [
            "circle-open" if n else ("x" if d else ("square" if c else "circle"))
            for d, c, n in zip(levels["exploded"], levels["collapsed"], levels["not_run"])
        ]
        fig.add_trace(
            go.Scatter(
                x=list(levels.index),
                y=[_num(v, 4) for v in levels["value"]],
                mode="lines+markers",
                name=arm,
                marker={"symbol": symbols, "size": 8},
            )
        )
    if not fig.data:
        return None
    not_run = ", open circle: not run, above a level where every seed diverged" if runs["not_run"].any() else ""
    # ticks at the levels run, not plotly's log-axis digits between them
    levels = sorted({x for trace in fig.data for x in trace.x})
    fig.update_xaxes(tickvals=levels, ticktext=[f"×{x:.3g}" for x in levels])
    fig.update_layout(
        title=f"{task}: mean final validation {meta['metric']} by learning rate (x: a seed exploded, "
        f"square: one collapsed{not_run})",
        xaxis={"type": "log", "title": "lr multiplier"},
        yaxis={"title": meta["metric"]},
        height=480,
        colorway=_arm_colours(),
    )
    return fig


def _scatter(pt: pd.DataFrame):
    import plotly.graph_objects as go

    scored = pt[pt["status"] == "scored"]
    if scored.empty:
        return None
    fig = go.Figure()
    for task, rows in scored.groupby("task", sort=True):
        fig.add_trace(
            go.Scatter(
                x=[_num(v) for v in rows["stability"]],
                y=[_num(v) for v in rows["accuracy_norm"]],
                mode="markers",
                name=task,
                text=list(rows["strategy"]),
                hovertemplate="%{text}<br>stability %{x}<br>normalised accuracy %{y}",
            )
        )
    fig.update_layout(
        xaxis={"title": "share of grid runs that neither exploded nor collapsed"},
        yaxis={"title": "accuracy, chance 0 to best 1"},
        height=480,
    )
    return fig


def _win_rates(pt: pd.DataFrame):
    import plotly.graph_objects as go

    rows = pt[(pt["status"] == "scored") & pt["win_rate"].notna()]
    if rows.empty:
        return None
    fig = go.Figure()
    for task, mine in rows.groupby("task", sort=True):
        mine = mine.sort_values("strategy")
        rate = mine["win_rate"].astype(float)
        fig.add_trace(
            go.Scatter(
                x=list(mine["strategy"]),
                y=[_num(v) for v in rate],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [_num(v) for v in mine["win_hi"].astype(float) - rate],
                    "arrayminus": [_num(v) for v in rate - mine["win_lo"].astype(float)],
                },
                mode="markers",
                name=task,
            )
        )
    fig.update_layout(yaxis={"title": "P(improve on baseline), paired seeds", "range": [0, 1]}, height=480)
    return fig
