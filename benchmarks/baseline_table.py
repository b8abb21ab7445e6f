"""The README's "what the baseline does" table, from a results file of configs/calibration.yaml.

    python benchmarks/baseline_table.py RESULTS

One row per task, strategy and stress level: how many seeds diverged (and at which step),
the test metric of the others, the range of the maximum pre-clip gradient norm, the range of
the share of clipped steps, and for an attention model the range of its largest attention logit
and, for a language model, of its output logits' largest mean log Z (what z-loss holds down).

    python benchmarks/baseline_table.py RESULTS --strategy baseline --phase sweep

keeps one arm's rows, and only the runs of one protocol phase (a suite's sweep, say).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.store.jsonl import load  # noqa: E402


def span(values: list[float], fmt: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    return f"{min(values):{fmt}} – {max(values):{fmt}}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--strategy", help="only this arm's rows (its label)")
    ap.add_argument("--phase", help="only the runs of this protocol phase (sweep, final ...)")
    args = ap.parse_args()
    groups = defaultdict(list)
    for r in load(Path(args.results)):
        if args.strategy and r["strategy"]["label"] != args.strategy:
            continue
        if args.phase and r["spec"].get("phase") != args.phase:
            continue
        groups[(r["task"], r["strategy"]["label"], r["stress"]["lr_mult"])].append(r)
    print(
        "| task | strategy | lr x | diverged (at step) | test metric of the others | max pre-clip grad norm | clipped steps | max attention logit | max log Z |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (task, label, mult), recs in sorted(groups.items()):
        recs.sort(key=lambda r: r["seed"])
        div = [r for r in recs if r["status"] == "diverged"]
        ok = [r for r in recs if r["status"] == "ok"]
        steps = ", ".join(str(r["stability"]["diverged_at_step"]) for r in div)
        metric = recs[0]["metrics"]["name"]
        tests = ", ".join(f"{r['metrics']['test']:.3f}" for r in ok) or "—"
        st = [r["stability"] or {} for r in recs]
        norms = span([s.get("grad_norm_max") for s in st], ".3g")
        clipped = span([100 * s["clip_fraction"] for s in st if s.get("clip_fraction") is not None], ".0f")
        clipped = clipped if clipped == "—" else clipped.replace(" – ", "% – ") + "%"
        attn = span([s.get("attn_logit_max") for s in st], ".3g") if any("attn_logit_max" in s for s in st) else ""
        log_z = span([s.get("log_z_max") for s in st], ".3g") if any("log_z_max" in s for s in st) else ""
        print(
            f"| `{task}` | {label} | {mult:g} | {len(div)}/{len(recs)}{f' ({steps})' if div else ''} | "
            f"{metric} {tests} | {norms} | {clipped} | {attn} | {log_z} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
