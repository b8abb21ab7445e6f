"""Does each cause separate the arms? The stress axes' separation table, from a results file.

    python benchmarks/stress_table.py RESULTS [--readme README.md]

Per stress axis in RESULTS: its levels, where baseline first fails (exploded or collapsed),
the arms that tolerate at least 2 levels more and those that tolerate no more, and whether the
axis separates the arms (analysis/stress_separation.py). A pre-registration beside RESULTS
sets Holm's family, every comparison it registers, as on the page in that folder; --readme
writes the table into that file between its stress-separation markers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gradbench.analysis import preregistration, stress_separation, stress_verdicts  # noqa: E402
from gradbench.store.jsonl import load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results")
    ap.add_argument("--readme", default=None, help="write the table between this file's stress-separation markers")
    args = ap.parse_args(argv)
    registered = preregistration.saved(Path(args.results).parent)
    family = stress_verdicts.family(registered["reg"].predictions) if registered else 0
    lines = stress_separation.table(load(Path(args.results)), family)
    if not args.readme:
        print("\n".join(lines))
        return 0
    command = " ".join(["python benchmarks/stress_table.py", *(argv if argv is not None else sys.argv[1:])])
    if not stress_separation.write_block(args.readme, lines, command):
        print(
            f"stress_table: --readme {args.readme}: no {stress_separation.START} ... {stress_separation.END} markers",
            file=sys.stderr,
        )
        return 2
    print(f"written: {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
