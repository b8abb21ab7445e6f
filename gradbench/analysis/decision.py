"""The answer first: which mitigation to use for which model, with its effect, its stable
range, its cost and the strength of the evidence, one row per task, built from the scores
(never typed by hand). The page opens with it, and `gradbench leaderboard --readme FILE`
writes the same rows into the README between two marker comments. No torch.

The rule (RULE, printed under the table): on each task, the arms eligible are those that
learned and whose headroom (octaves from the tuned learning rate up to the largest stable
one) is not below baseline's; baseline itself is one. The top group is the eligible arms in
the task's tied group (tied with the quality leader by the monotone rule on the held-out
seeds); when none is, the eligible arm with the best paired effect. The group is listed by
its paired quality effect vs baseline at each arm's tuned configuration, best first.
"""

from __future__ import annotations

import html
import math
from collections import Counter

import pandas as pd

from . import markdown as md
from .scoring import BASELINE, Scores
from .stats import ALPHA

# Each built-in task's model and what stresses it, as a practitioner would look it up, and the
# one caveat a reader needs before acting on its row ({steps}: the records' step budget,
# {epochs} the share of CIFAR-10's 48,000 training images it reads; the third text when the
# budget is not known, empty for the same as the second). A task not named here shows its name.
TASK_ROWS: dict[str, tuple[str, str, str]] = {
    "mnist_mlp": ("deep MLP (8 ReLU layers) on SGD", "MNIST, {steps} steps: toy scale", "MNIST: toy scale"),
    "cifar10_cnn": (
        "plain deep CNN (no norm, no skips) on SGD",
        "{steps} steps of 128 images: {epochs} of a CIFAR-10 epoch",
        "under one CIFAR-10 epoch",
    ),
    "adding_rnn": ("vanilla tanh RNN on a long-range task", "synthetic adding problem, T = 50", ""),
    "recall_transformer": (
        "small Transformer with attention-logit growth (Adam, no warmup)",
        "synthetic recall: most tuned arms solve it, so quality barely separates them",
        "",
    ),
    "fortunes_gpt": (
        "byte-level GPT on text (AdamW, no warmup)",
        "0.19M parameters, one pass over 2.2 MB of text",
        "",
    ),
}

RULE = (
    "Per task, the eligible arms are those that learned and whose headroom (octaves from the tuned "
    "learning rate up to the largest stable one) is not known to be below baseline's (a headroom marked ≥ "
    "never went unstable on the grid: only a lower bound), baseline included; the top group is the eligible "
    "arms tied with the task's quality leader (the monotone rule, held-out seeds), or, when none is, the "
    "eligible arm with the best paired effect if that effect is significant, else baseline; listed by the "
    f"paired quality effect vs baseline (arm minus baseline) at each arm's tuned configuration. An effect is "
    f"significant at Holm p < {ALPHA:g}; cost is the step time over baseline's and the extra memory, where "
    "measured. Where baseline learned nothing, effects are against its chance-level value."
)
SHOWN = 5  # arms of a top group named in the table; the rest are counted
SETTLED = 0.9  # a top group the seed bootstrap keeps in this share of resamples is settled
HEAD = ["model (task)", "use", "effect vs baseline", "headroom vs baseline", "cost", "evidence", "caveat"]


def rows(
    scores: Scores, costs: dict | None = None, steps: dict[str, int] | None = None, settled: dict | None = None
) -> list[dict]:
    """One row per task with scored arms: its top group and the first arm's figures. `steps`:
    each task's step budget in the records (for the caveats); `settled`: the seed bootstrap's
    share of resamples with the same top group, per task (rank_stability's "groups", measured
    on these records), shown with the evidence."""
    pt = scores.per_task
    out = []
    if pt.empty:
        return out
    for task, g in pt.groupby("task", sort=True):
        scored = g[(g["status"] == "scored") & (g["failed"] == False)]  # noqa: E712  (object column)
        if scored.empty:
            continue
        sign = 1.0 if bool(scored["higher_is_better"].iloc[0]) else -1.0
        base = scored[scored["strategy"] == BASELINE]
        base_room = float(base["headroom"].iloc[0]) if len(base) else math.nan
        base_bound = bool(base["top_stable"].iloc[0]) if len(base) else False
        eligible = scored[[_eligible(r, base_room, base_failed=base.empty) for _, r in scored.iterrows()]]
        gain = (eligible["effect"].where(eligible["strategy"] != BASELINE, 0.0) * sign).fillna(-math.inf)
        ranked = eligible.assign(_gain=gain, _not_base=eligible["strategy"] != BASELINE).sort_values(
            ["_gain", "_not_base", "strategy"], ascending=[False, True, True]
        )
        group = ranked[ranked["tied"] == True]  # noqa: E712
        if group.empty:  # the best effect, if it is significant; else baseline, where it learned
            best_arm = ranked[ranked["strategy"] != BASELINE].head(1)
            significant = len(best_arm) and _num(best_arm["effect_p_holm"].iloc[0]) is not None
            significant = significant and best_arm["effect_p_holm"].iloc[0] < ALPHA and best_arm["_gain"].iloc[0] > 0
            group = best_arm if significant or base.empty else ranked[ranked["strategy"] == BASELINE]
        if group.empty:
            continue
        best = group.iloc[0]
        kind, caveat, plain = TASK_ROWS.get(task, (task, "", ""))
        budget = (steps or {}).get(task)
        caveat = caveat.format(steps=f"{budget:,}", epochs=f"{budget * 128 / 48000:.2f}") if budget else plain or caveat
        # the quality leader left out for less headroom than baseline's: named beside the group
        leader = scored[(scored["leader"] == True) & ~scored["strategy"].isin(eligible["strategy"])]  # noqa: E712
        out.append(
            {
                "task": task,
                "kind": kind,
                "use": list(group["strategy"]),
                "left_out": list(leader["strategy"]),
                "best": best["strategy"],
                "metric": best["metric"],
                "higher_is_better": sign > 0,
                "baseline_failed": base.empty,
                "effect": _num(best["effect"]) if best["strategy"] != BASELINE else None,
                "effect_lo": _num(best["effect_lo"]),
                "effect_hi": _num(best["effect_hi"]),
                "effect_p_holm": _num(best["effect_p_holm"]),
                "headroom_gain": _num(best["headroom"] - base_room)
                if len(base) and best["strategy"] != BASELINE
                else None,
                # which side is only a lower bound: the arm's (gain at least), baseline's (at most)
                "gain_bound": (bool(best["top_stable"]), base_bound),
                "cost": cost_of(costs, task, best["strategy"]),
                "seeds": None if pd.isna(best["tested_seeds"]) else int(best["tested_seeds"]),
                "tested_on": best["tested_on"],
                "caveat": caveat,
                "same_group": _same_group((settled or {}).get(task), list(group["strategy"])),
            }
        )
    return out


def _same_group(measured: dict | None, use: list[str]) -> tuple[float, int] | None:
    """(share of seed-bootstrap resamples with this top group, resamples), where measured for
    this very group."""
    if not measured or sorted(measured["use"]) != sorted(use):
        return None
    return float(measured["unchanged"]), int(measured.get("resamples", 0))


def _eligible(r: pd.Series, base_room: float, base_failed: bool) -> bool:
    """Learned, and a headroom not known to be below baseline's: an arm that never went
    unstable on the grid (top_stable) has a lower bound only; one with no stable level (NaN)
    is below any baseline that had one."""
    if r["strategy"] == BASELINE or base_failed or math.isnan(base_room):
        return True
    if pd.isna(r["headroom"]):
        return False
    return bool(r["top_stable"]) or r["headroom"] >= base_room


def task_steps(records) -> dict[str, int]:
    """Each task's step budget, the most common among its trained records (typed Records)."""
    budgets: dict[str, Counter] = {}
    for r in records:
        if r.counts_in_scores and r.spec.get("max_steps"):
            budgets.setdefault(r.task, Counter())[int(r.spec["max_steps"])] += 1
    return {task: c.most_common(1)[0][0] for task, c in budgets.items()}


def _num(x) -> float | None:
    return None if x is None or pd.isna(x) else float(x)


def cost_of(costs: dict | None, task: str, arm: str) -> dict | None:
    """The arm's measured step time over baseline's and extra memory on the task, or None."""
    if arm == BASELINE:
        return {"ratio": 1.0, "extra_mb": 0.0}
    measured = costs["tasks"] if costs and costs.get("tasks") else {}
    figures = measured.get(task, {}).get(arm)
    return None if not figures or figures.get("ratio") is None else figures


def cells(r: dict, code=md.code, text=md.esc) -> list[str]:
    """A row's cells, with `code` for arm and task names and `text` for other text: markdown
    by default, HTML for the site."""
    shown = r["use"][:SHOWN]
    use = ", ".join(code(a) for a in shown) + (
        f" (+{len(r['use']) - len(shown)} more tied)" if len(r["use"]) > len(shown) else ""
    )
    if r["left_out"]:
        use += f"; better quality, less headroom than baseline: {', '.join(code(a) for a in r['left_out'])}"
    if r["effect"] is None:
        effect = "no arm beats baseline" if r["best"] == BASELINE else "—"
    else:
        significant = r["effect_p_holm"] is not None and r["effect_p_holm"] < ALPHA
        interval = f" [{r['effect_lo']:+.3g}, {r['effect_hi']:+.3g}]" if r["effect_lo"] is not None else ""
        p = f", Holm p {r['effect_p_holm']:.2g}" if r["effect_p_holm"] is not None else ""
        better = (r["effect"] > 0) == r["higher_is_better"]
        direction = "" if r["higher_is_better"] else " (lower is better)"
        effect = f"{r['effect']:+.3g} {text(r['metric'])}{direction}{interval}{p}"
        effect += "" if significant and better else " (worse)" if significant else " (n.s.)"
        if r["baseline_failed"]:
            effect += "; baseline learned nothing: vs its chance-level value"
    headroom = "—" if r["headroom_gain"] is None else _gain_text(r["headroom_gain"], *r["gain_bound"])
    cost = cost_text(r["cost"])
    evidence = "—" if r["seeds"] is None else f"{r['seeds']} {text(r['tested_on'])} seeds, 1 task"
    if r.get("same_group"):
        share, n = r["same_group"]
        settled = "" if share >= SETTLED else ", unsettled"
        evidence += f"; this top group in {share:.0%} of {n} seed resamples{settled}"
    return [f"{text(r['kind'])} ({code(r['task'])})", use, effect, headroom, cost, evidence, text(r["caveat"])]


def cost_text(c: dict | None) -> str:
    if c is None:
        return "not measured"
    return f"{c['ratio']:.2f}× step" + (f", {round(c['extra_mb']) + 0:+d} MB" if c.get("extra_mb") is not None else "")


def _gain_text(gain: float, arm_bound: bool, base_bound: bool) -> str:
    if arm_bound and base_bound:
        return "both stable to the top of the grid"
    return ("≥ " if arm_bound else "≤ " if base_bound else "") + f"{gain:+.1f} octaves"


def table(decision: list[dict]) -> str:
    """The rows as a markdown table."""
    return md.table(HEAD, [cells(r) for r in decision])


def html_table(decision: list[dict], table_id: str = "decision", head: list[str] = HEAD, cells=cells) -> str:
    """The rows as a plain HTML table (the site's first view); `head` and `cells` (a row's
    cells, given how to write names and text) for another answer-first table than this one."""

    def code(name) -> str:
        return f"<code>{html.escape(str(name))}</code>"

    def text(value) -> str:
        return html.escape(md.one_line(value))

    heads = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells(r, code, text)) + "</tr>" for r in decision)
    return f'<table id="{table_id}" class="decision"><thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table>'


START, END = "<!-- decision-table:start -->", "<!-- decision-table:end -->"


def block(decision: list[dict], command: str, cost_noise: str | None = None, spent: str | None = None) -> str:
    """The README's copy: the table and its rule between the markers, naming the command, the
    cost column's noise where it was measured (analysis/arm_cost.noise_note), and what the
    records behind it cost to run (`spent`, runs.spent)."""
    rule = md.esc(RULE) + (f" {md.esc(cost_noise)}" if cost_noise else "")
    return md.generated(START, END, command, [table(decision), "", rule, *(["", md.esc(spent)] if spent else [])])


def write_block(
    readme, decision: list[dict], command: str, cost_noise: str | None = None, spent: str | None = None
) -> bool:
    """Replace the block between the markers in `readme` (a path); False when it has none."""
    return md.write_between(readme, START, END, block(decision, command, cost_noise, spent))
