"""gradbench run | list | data | leaderboard.

Bad input is one line on stderr and exit code 2; Ctrl-C stops after the last finished run
(which is already on disk) and says how to resume; a run that errors makes the exit code 1.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .errors import UserError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    try:
        return args.fn(args) or 0
    except UserError as e:
        print(f"gradbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ngradbench: interrupted; every finished run is saved. Run the same command again to resume.",
              file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradbench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(metavar="COMMAND")

    run = sub.add_parser("run", help="run a suite: train every run not yet in the results, then score it")
    run.add_argument("config", help="suite YAML, e.g. configs/quick.yaml")
    run.add_argument("--results", help="results file (JSON lines; default results/<suite>.jsonl)")
    run.add_argument("--data", help="data root (default: $GRADBENCH_DATA, else ./data)")
    run.add_argument("--leaderboard", help="where to write the leaderboard (default: beside the results)")
    run.set_defaults(fn=cmd_run)

    ls = sub.add_parser("list", help="tasks and strategies, with one-line descriptions")
    ls.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'clip*'")
    ls.set_defaults(fn=cmd_list)

    data = sub.add_parser("data", help="show which datasets are present, or download them")
    data.add_argument("action", nargs="?", choices=("status", "download"), default="status")
    data.add_argument("--data", help="data root (default: $GRADBENCH_DATA, else ./data)")
    data.set_defaults(fn=cmd_data)

    lb = sub.add_parser("leaderboard", help="score a results file into a markdown leaderboard with plots")
    lb.add_argument("results", help="results file (JSON lines)")
    lb.add_argument("--out", default="leaderboard", help="output folder (default: leaderboard/)")
    lb.add_argument("--command", help="the command to name as reproducing these results")
    lb.set_defaults(fn=cmd_leaderboard)
    return p


def _command_line() -> str:
    return "gradbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def cmd_run(args) -> int:
    from .config import load_suite
    from .data import resolve_data_root
    from .plugins import load_entry_points
    from .runner import default_results_path, run_suite

    load_entry_points()
    suite = load_suite(args.config)
    results_path = Path(args.results) if args.results else default_results_path(suite)
    records = run_suite(suite, results_path, resolve_data_root(args.data), command=_command_line())
    out = Path(args.leaderboard) if args.leaderboard else results_path.parent / f"{suite.name}_leaderboard"
    page = _write_leaderboard(records, out, weights=suite.scoring.get("weights"))
    counts = {s: sum(r["status"] == s for r in records) for s in ("ok", "diverged", "error", "skipped")}
    print(f"done: {len(records)} runs ({', '.join(f'{n} {s}' for s, n in counts.items() if n)}); "
          f"results {results_path}; leaderboard {page}")
    errors = [r for r in records if r["status"] == "error"]
    for r in errors:
        print(f"  error: {r['task']} {r['strategy']['label']} seed {r['seed']}: {r['reason']}", file=sys.stderr)
    return 1 if errors else 0


def _write_leaderboard(records, out: Path, weights=None, command=None) -> Path:
    from . import leaderboard
    return leaderboard.write(records, out, weights=weights, command=command)


def cmd_leaderboard(args) -> int:
    from . import results
    records = results.latest_by_run(results.load(args.results))
    if not records:
        raise UserError(f"{args.results}: no run records")
    page = _write_leaderboard(records, Path(args.out), command=args.command)
    print(f"leaderboard: {page}")
    return 0


def cmd_list(args) -> int:
    from .plugins import load_entry_points
    from .strategies import STRATEGIES
    from .tasks import TASKS

    load_entry_points()
    tasks = TASKS.list(args.pattern)
    if tasks:
        print("tasks:")
        for name in tasks:
            t = TASKS.get(name)
            print(f"  {name:<14} {t.description}")
    names = STRATEGIES.list(args.pattern)
    families: dict[str, list[str]] = {}
    for n in names:
        families.setdefault(STRATEGIES.get(n).family, []).append(n)
    if names:
        print(f"strategies ({len(names)}):")
    for family, members in families.items():
        print(f"  {family}:")
        for n in members:
            s = STRATEGIES.get(n)
            where = "" if set(s.applies_to) == {"mlp", "cnn", "rnn"} else f" [{'/'.join(s.applies_to)} only]"
            print(f"    {n:<14} {s.description}{where}")
    if not tasks and not names:
        raise UserError(f"nothing matches {args.pattern!r}")
    return 0


def cmd_data(args) -> int:
    from .data import DATASETS, describe, download, resolve_data_root

    root = resolve_data_root(args.data)
    if args.action == "download":
        download([d for d in DATASETS if d != "adding"], root)
    rows = describe(root)
    print(f"data root: {root}")
    for name, status, where in rows:
        print(f"  {name:<8} {status:<10} {where}")
    print("  adding   generated  (synthetic, from the seed; nothing to download)")
    if any(status != "ok" for _, status, _ in rows):
        print("missing data: 'gradbench data download' (needs the 'vision' extra and internet), "
              "or lay it out in torchvision's layout and pass --data DIR / set GRADBENCH_DATA")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
