"""The leaderboard's PNG plots: validation curves and gradient norms per task, stability
against accuracy, and the cause x mitigation matrix of the stress axes. matplotlib is imported inside the plot functions and drawn on an Agg canvas
without pyplot, so no GUI backend or global figure state is used."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.record import Record, typed
from . import stress
from .runs import GRID_PHASES, SCORED, canonical, level_results, runs_frame
from .scoring import BASELINE, Scores

PLOT_DPI = 100
# a static figure stays readable up to about this many lines; beyond, it draws baseline and the
# best-ranked strategies, and the site's interactive figure has every one
MAX_LINES = 12
# the mitigations aimed at attention-logit growth: always in the attention-logit figure
ATTENTION_ARMS = ("qk_norm", "z_loss", "sigma_reparam")


def lr_label(x: float) -> str:
    """lr×0.5, lr×8; a tuning trial's half-octave level to 3 digits (lr×0.707)."""
    return f"lr×{x:.3g}"


def write_plots(
    records: Iterable[Record | dict], scores: Scores, out_dir: Path, causes: list[Record] | None = None
) -> dict[str, str]:
    """Draw every plot there is data for; returns {key: file name} of the files written. The
    causes matrix is drawn from `causes` (a stress suite's records) where given, else from
    `records`."""
    records = typed(records)
    pt = scores.per_task
    scored = pt[pt["status"] == "scored"]
    colours = _colours(sorted(pt["strategy"].unique()))
    images = {}
    frame = runs_frame(records)
    for task, all_rows in scored.groupby("task", sort=True):
        runs = [r for r in records if r.task == task]
        rows, attention = shown(all_rows), shown(all_rows, ATTENTION_ARMS)
        # distinct colours for the lines a task's figures draw; the same strategy, the same colour
        drawn = set(rows["strategy"]) | set(attention["strategy"]) | set(_most_and_least_stable(all_rows))
        mine = {**colours, **_colours(sorted(drawn))}
        name = f"dose_response_{_slug(task)}.png"
        if _plot_dose_response(task, rows, frame[frame["task"] == task], mine, out_dir / name):
            images[f"dose_response:{task}"] = name
        name = f"val_curves_{_slug(task)}.png"
        if _plot_val_curves(task, rows, runs, mine, out_dir / name):
            images[f"val_curves:{task}"] = name
        name = f"grad_norm_{_slug(task)}.png"
        if _plot_grad_norms(task, all_rows, runs, mine, out_dir / name):
            images[f"grad_norm:{task}"] = name
        name = f"attention_logits_{_slug(task)}.png"
        if _plot_attention_logits(task, attention, runs, mine, out_dir / name):
            images[f"attention_logits:{task}"] = name
    if len(scored) and _plot_scatter(scored, out_dir / "stability_vs_accuracy.png"):
        images["stability_vs_accuracy"] = "stability_vs_accuracy.png"
    causes = stress.stress_results(records if causes is None else typed(causes))
    if causes.cells and _plot_stress_matrix(causes, out_dir / "stress_matrix.png"):
        images["stress_matrix"] = "stress_matrix.png"
    return images


def shown(rows: pd.DataFrame, always: tuple[str, ...] = ()) -> pd.DataFrame:
    """A task's rows (in the page's order) that a static figure draws: all of them up to
    MAX_LINES; beyond, baseline, the strategies that include one of `always`, then the best
    ranked. df.attrs["of"] keeps the task's count, for the figure's title."""
    if len(rows) <= MAX_LINES:
        out = rows
    else:
        names = list(rows["strategy"])
        first = [s for s in names if s != BASELINE and any(a in s.split("+") for a in always)]
        keep = {BASELINE} & set(names)
        keep |= set(first[: MAX_LINES - len(keep)])
        keep |= set([s for s in names if s not in keep][: MAX_LINES - len(keep)])
        out = rows[rows["strategy"].isin(keep)]
    out = out.copy()
    out.attrs["of"] = len(rows)
    return out


def _subset(rows: pd.DataFrame, which: str = "baseline and the best ranked") -> str:
    """The title's note when a figure draws some of a task's strategies (`which`: how shown() picked them)."""
    of = rows.attrs.get("of", len(rows))
    return "" if of <= len(rows) else f"\n{len(rows)} of {of} strategies: {which} (all on the site)"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(text))


def _colours(strategies: list[str]) -> dict[str, tuple]:
    """One colour per strategy (tab10, or tab20 beyond 10, by sorted name); write_plots gives
    each task's figures their own, so that the lines drawn there differ."""
    from matplotlib import colormaps

    strategies = list(strategies)
    n = 10 if len(strategies) <= 10 else 20
    cmap = colormaps[f"tab{n}"]
    return {s: cmap(i % n) for i, s in enumerate(strategies)}


def _legend(ax, lines: int) -> None:
    """Inside the axes for a few lines; outside, on the right, in small type for a catalogue."""
    if lines <= 10:
        ax.legend(fontsize=8)
    else:
        small = 7 if lines <= 24 else 6
        ax.legend(fontsize=small, ncol=2 if lines > 24 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _canvas(size: tuple[float, float]):
    """An empty figure on an Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    return fig


def _figure(size=(7.0, 4.2)):
    fig = _canvas(size)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: Path) -> bool:
    fig.tight_layout()
    # No "Software" text chunk (it carries the matplotlib version); PNG gets no date by default.
    fig.savefig(path, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return True


def _mean_curve(runs: list[Record], chance: float) -> tuple[list[float], list[float]]:
    """Mean validation curve over seeds. A diverged seed is held at chance after its last
    point (as in the scores), so the curve does not rise when a seed drops out."""
    per_seed = []
    for r in runs:
        pts = {float(s): float(v) for s, v in r.metrics.val_curve if v is not None}
        per_seed.append((pts, r.status == "diverged", max(pts, default=-math.inf)))
    steps = sorted({s for pts, _, _ in per_seed for s in pts})
    xs, ys = [], []
    for s in steps:
        vals = [
            pts[s] if s in pts else chance
            for pts, div, last in per_seed
            if s in pts or (div and s > last and not math.isnan(chance))
        ]
        if vals:
            xs.append(s)
            ys.append(sum(vals) / len(vals))
    return xs, ys


def _plot_dose_response(task, rows, frame: pd.DataFrame, colours, path: Path) -> bool:
    """The metric against the learning-rate multiplier (log axis), one line per strategy: the
    mean final validation value per level of the grid, seeds that did not learn at chance; x
    where a seed exploded, v where one collapsed after progress (core/taxonomy.py)."""
    first = rows.iloc[0]
    meta = {k: first[k] for k in ("metric", "higher_is_better", "target", "chance")}
    frame = frame[frame["phase"].isin(GRID_PHASES)]  # the sweep's levels, not a tuning trial's
    if frame["lr_mult"].nunique() < 2:
        return False
    fig, ax = _figure() if len(rows) <= 10 else _figure((12.0, 5.5))
    for _, row in rows.iterrows():
        levels = level_results(frame[frame["strategy"] == row["strategy"]], meta)
        if levels.empty:
            continue
        colour = colours[row["strategy"]]
        ax.plot(
            levels.index, levels["value"], color=colour, linewidth=1.2, marker="o", markersize=3, label=row["strategy"]
        )
        real = ~levels["not_run"]
        for marker, mask in (("x", levels["exploded"] & real), ("v", levels["collapsed"] & ~levels["exploded"])):
            if mask.any():
                ax.scatter(levels.index[mask], levels["value"][mask], color=colour, marker=marker, s=40, zorder=3)
        if levels["not_run"].any():
            mask = levels["not_run"]
            ax.scatter(levels.index[mask], levels["value"][mask], facecolors="none", edgecolors=colour, s=40, zorder=3)
    _reference_lines(ax, meta)
    ax.set_xscale("log", base=2)
    ticks = sorted(frame["lr_mult"].unique())
    ax.set_xticks(ticks, [f"×{x:g}" for x in ticks])
    skipped = ", o: not run, above an all-diverged level" if frame["not_run"].any() else ""
    ax.set_xlabel(f"learning-rate multiplier (x: a seed exploded, v: a seed collapsed{skipped})")
    ax.set_ylabel(f"final validation {meta['metric']} (not learned = chance)")
    ax.set_title(f"{task}: dose-response, mean over seeds{_subset(rows)}", fontsize=10)
    _legend(ax, len(rows) + 2)
    return _save(fig, path)


def _reference_lines(ax, meta) -> None:
    """The task's target (dashed) and chance (dotted) level, where known."""
    for y, style, label in ((meta["target"], "--", "target"), (meta["chance"], ":", "chance")):
        if not pd.isna(y):
            ax.axhline(y, color="grey", linestyle=style, linewidth=1, label=label)


def _plot_val_curves(task, rows, runs, colours, path: Path) -> bool:
    fig, ax = _figure() if len(rows) <= 10 else _figure((12.0, 5.5))
    meta = rows.iloc[0]
    drawn = False
    for _, row in rows.iterrows():
        chosen = [
            r
            for r in runs
            if r.label == row["strategy"]
            and r.status in SCORED
            and r.lr_mult == row["chosen_lr_mult"]
            and canonical(r.strategy.params) == row["chosen_key"]
        ]
        xs, ys = _mean_curve(sorted(chosen, key=_seed_order), meta["chance"])
        if xs:
            ax.plot(
                xs,
                ys,
                color=colours[row["strategy"]],
                linewidth=1.5,
                label=f"{row['strategy']} ({lr_label(row['chosen_lr_mult'])}"
                + (f", {row['chosen_params']})" if row["chosen_params"] else ")"),
            )
            drawn = True
    if not drawn:
        return False
    _reference_lines(ax, meta)
    ax.set_xlabel("step")
    ax.set_ylabel(f"validation {meta['metric']}")
    ax.set_title(
        f"{task}: validation {meta['metric']} at the chosen configuration, mean over seeds{_subset(rows)}", fontsize=10
    )
    _legend(ax, len(rows) + 2)
    return _save(fig, path)


def _plot_grad_norms(task, rows, runs, colours, path: Path) -> bool:
    """Pre-clip gradient norms of the most and the least stable strategy (stability share,
    then spike rate, then name), each at the highest stress level it ran, one line per seed."""
    picks = _most_and_least_stable(rows)
    fig, ax = _figure()
    drawn = False
    for strategy in picks:
        mine = _grid_runs(runs, strategy)
        top = max(r.lr_mult for r in mine)
        label = f"{strategy} ({lr_label(top)})"
        for r in sorted((r for r in mine if r.lr_mult == top), key=_seed_order):
            if _curve(ax, r, "grad_norm_curve", colours[strategy], label):
                label = None  # one legend entry per strategy, not per seed
                drawn = True
    if not drawn:
        return False
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("max pre-clip gradient norm")
    ax.set_title(f"{task}: gradient norms, most vs least stable strategy (one line per seed)", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _most_and_least_stable(rows: pd.DataFrame) -> list[str]:
    """By stability share, then spike rate, then name; one name when they are the same."""
    order = rows.assign(_s=-rows["stability"], _p=rows["spike_rate"]).sort_values(
        ["_s", "_p", "strategy"], kind="mergesort", na_position="last"
    )
    return list(dict.fromkeys([order.iloc[0]["strategy"], order.iloc[-1]["strategy"]]))


def _grid_runs(runs: list[Record], strategy: str) -> list[Record]:
    """The strategy's scored runs on the sweep's grid (its levels and sweep seeds)."""
    return [r for r in runs if r.label == strategy and r.status in SCORED and r.phase in GRID_PHASES]


def _seed_order(r: Record) -> tuple[int, str]:
    return r.seed, r.run_id


def _curve(ax, record: Record, key: str, colour, label: str | None) -> bool:
    """One run's stability curve (`key`: grad_norm_curve, attn_logit_curve), its positive
    finite points only (the axis is logarithmic); whether there was any to draw."""
    if record.stability is None:  # an untrained run has no stability block
        return False
    curve = getattr(record.stability, key) or []  # attn_logit_curve: only models that tell it
    pts = [(s, v) for s, v in curve if v is not None and v > 0 and math.isfinite(v)]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour, linewidth=1, alpha=0.8, label=label)
    return bool(pts)


def _plot_attention_logits(task, rows, runs, colours, path: Path) -> bool:
    """The largest attention logit per step of every strategy whose model records it, at the
    task's own learning rate (lr×1, where the baseline is calibrated to be unstable), one line
    per seed: the growth that QK-LayerNorm and its kind are meant to prevent. Nothing for a
    task whose records have no attention curve, or no run at lr×1."""
    fig, ax = _figure()
    drawn = False
    for strategy in sorted(rows["strategy"]):
        label = strategy
        mine = [r for r in _grid_runs(runs, strategy) if r.lr_mult == 1.0]
        for r in sorted(mine, key=_seed_order):
            if _curve(ax, r, "attn_logit_curve", colours[strategy], label):
                label = None
                drawn = True
    if not drawn:
        return False
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("largest attention logit")
    note = _subset(rows, "baseline, the attention arms and the best ranked")
    ax.set_title(f"{task}: the largest attention logit at lr×1 (one line per seed){note}", fontsize=10)
    _legend(ax, len(rows))
    return _save(fig, path)


def _plot_scatter(scored: pd.DataFrame, path: Path) -> bool:
    """One panel per task, every strategy a point; the names of baseline and the best ranked
    only (shown()), so that a catalogue stays readable: every point is named on the site."""
    tasks = sorted(scored["task"].unique())
    cols = min(2, len(tasks))
    rows_n = math.ceil(len(tasks) / cols)
    fig = _canvas((5.0 * cols, 4.2 * rows_n))
    named_some = False
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(rows_n, cols, i + 1)
        rows = scored[scored["task"] == task]
        named = shown(rows)
        named_some |= len(named) < len(rows)
        others = rows[~rows["strategy"].isin(set(named["strategy"]))]
        ax.scatter(others["stability"], others["accuracy_norm"], color="0.7", s=14)
        ax.scatter(named["stability"], named["accuracy_norm"], color="C0", s=24)
        _name_points(ax, named)
        ax.set_xlim(-0.05, 1.25)
        ax.set_ylim(-0.05, 1.1)
        ax.set_title(f"{task} ({len(rows)} strategies)", fontsize=9)
        ax.set_xlabel("stability (share of runs that did not fail)", fontsize=8)
        ax.set_ylabel("accuracy (0 = chance, 1 = task's best)", fontsize=8)
    which = "; named: baseline and the best ranked (every point named on the site, on hover)" if named_some else ""
    fig.suptitle(f"Stability vs accuracy, one point per task and strategy{which}", fontsize=10)
    return _save(fig, path)


def _name_points(ax, rows: pd.DataFrame) -> None:
    """Labels of nearby points are pushed down one line at a time instead of overprinting
    (greedy, top to bottom, in a fixed order so the image is deterministic)."""
    line, placed = 0.045, []
    for _, r in rows.sort_values(["accuracy_norm", "stability", "strategy"], ascending=[False, True, True]).iterrows():
        x, y = r["stability"], r["accuracy_norm"]
        ty = y
        while any(abs(px - x) < 0.3 and abs(py - ty) < line for px, py in placed):
            ty -= line
        placed.append((x, ty))
        moved = {"arrowprops": {"arrowstyle": "-", "color": "0.5", "lw": 0.5}}
        ax.annotate(r["strategy"], (x, y), xytext=(x + 0.02, ty + 0.01), fontsize=6.5, **(moved if ty != y else {}))


def _plot_stress_matrix(results: stress.StressResults, path: Path) -> bool:
    """The cause x mitigation matrix as a heatmap: one row per arm, one column per stress axis,
    each cell the extra levels the arm tolerates over baseline (blue more, red fewer), its text
    as the page's matrix writes it (* significant, (d) descriptive); blank where not run."""
    from matplotlib.colors import TwoSlopeNorm

    arms, axes = results.arms, results.axes
    values = np.full((len(arms), len(axes)), np.nan)
    for i, arm in enumerate(arms):
        for j, axis in enumerate(axes):
            c = results.cell(axis, arm)
            if c is not None and arm != "baseline":
                values[i, j] = c.extra
    span = max(1.0, float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0)
    fig, ax = _figure((1.6 + 1.25 * len(axes), 1.2 + 0.32 * len(arms)))
    image = ax.imshow(values, cmap="RdBu", norm=TwoSlopeNorm(0.0, -span, span), aspect="auto")
    for i, arm in enumerate(arms):
        for j, axis in enumerate(axes):
            c = results.cell(axis, arm)
            if c is not None:
                dark = abs(values[i, j]) > 0.6 * span  # white type on the deepest colours
                colour = "white" if dark else "black"
                ax.text(j, i, stress.heatmap_text(c), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(axes)), axes, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(arms)), arms, fontsize=8)
    ax.set_title("Extra levels tolerated over baseline, per cause", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8).set_label("extra levels", fontsize=8)
    return _save(fig, path)
