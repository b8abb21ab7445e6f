"""Which arms reach each task's target through the protocol, and which do not.

    python benchmarks/discrimination.py RESULTS

Scores the results file as the page does and prints, per task, the arms whose mean test
metric at their chosen configuration meets the task's target and those whose does not, with
whether the task has at least 5 of each (analysis/discrimination.py). A task whose arms have
not all reached their final seeds is read as it stands: run it on a complete suite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.analysis.discrimination import markdown, split_by_target  # noqa: E402
from gradbench.analysis.scoring import score  # noqa: E402
from gradbench.store.jsonl import latest_by_run, load  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    args = ap.parse_args()
    scores = score(latest_by_run(load(Path(args.results))))
    print("\n".join(markdown(split_by_target(scores.per_task), scores.per_task)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
