"""gradbench run | list | schema | data | leaderboard | verify.

Bad input is one line on stderr and exit code 2; Ctrl-C stops after the last finished run
(which is already on disk) and prints the command that resumes (exit 130; 143 for SIGTERM);
a run that errors makes the exit code 1, with a summary of the errors on stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .core.errors import UserError, one_line_error, one_line_warnings, warn
from .core.extras import require


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return 2
    args.argv = list(argv)
    try:
        with one_line_warnings():
            return args.fn(args) or 0
    except UserError as e:
        print(f"gradbench: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return _interrupted(args, e)
    except OSError as e:  # the file system said no (disk full, permissions ...): one line, not a traceback
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        saved = getattr(args, "results_path", None)
        hint = (
            f"; every finished run is saved in {saved}: free space or fix permissions, then run the same "
            "command again to resume"
            if saved is not None
            else ""
        )
        print(f"gradbench: error: {where}{e.strerror or e}{hint}", file=sys.stderr)
        return 2


MAX_MESSAGE = 2000  # characters: an error names the field and the fix; it never reprints a large input


def _one_line(text) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def _interrupted(args, e: KeyboardInterrupt) -> int:
    """Ctrl-C (or SIGTERM): what is saved and how to go on; exit code 128 + the signal."""
    import signal

    signum = getattr(e, "signum", signal.SIGINT)
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    results_path = getattr(args, "results_path", None)
    if results_path is not None:
        print(
            f"\ngradbench: interrupted ({name}); every finished run is saved in {results_path} and will "
            f"not run again; the run that was cut short will.",
            file=sys.stderr,
        )
        print(
            f"gradbench: to resume, run the same command again (in {Path.cwd()}):\n  "
            f"{_command_line(getattr(args, 'argv', None))}",
            file=sys.stderr,
        )
    elif getattr(args, "fn", None) is cmd_run:
        print(
            f"\ngradbench: interrupted ({name}) before any run started. To start again, run:\n  "
            f"{_command_line(getattr(args, 'argv', None))}",
            file=sys.stderr,
        )
    else:
        print(f"\ngradbench: interrupted ({name})", file=sys.stderr)
    return 128 + int(signum)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradbench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(metavar="COMMAND")
    # the options several commands share, declared once
    data_root = argparse.ArgumentParser(add_help=False)
    data_root.add_argument("--data", help="data root (default: $GRADBENCH_DATA, else ./data)")

    run = sub.add_parser(
        "run", parents=[data_root], help="run a suite: train every run not yet in the results, then score it"
    )
    run.add_argument("config", help="suite YAML, e.g. configs/quick.yaml")
    run.add_argument("--results", help="results file (JSON lines; default results/<suite>.jsonl)")
    run.add_argument("--leaderboard", help="where to write the leaderboard (default: beside the results)")
    where = run.add_argument_group("where runs execute (the same records whichever you pick)")
    where.add_argument(
        "--workers",
        default="1",
        metavar="N|auto",
        help="N local worker processes (on CPU the cores are split between them); "
        "auto: one per core, or per `threads` cores when the suite sets threads",
    )
    where.add_argument(
        "--devices", metavar="0,1,...", help="one worker per listed GPU (CUDA_VISIBLE_DEVICES per worker)"
    )
    where.add_argument("--runs-per-device", type=int, default=1, metavar="K", help="pack K small runs on each GPU")
    where.add_argument("--executor", choices=("local", "ray"), default="local", help="local processes, or Ray tasks")
    where.add_argument("--address", help="with --executor ray: an existing cluster (e.g. ray://head:10001 or auto)")
    run.add_argument(
        "--retry-errors",
        action="store_true",
        help="run again the runs recorded as 'error' (a transient failure: out of memory, a killed worker)",
    )
    run.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="RESULTS",
        help="another results file whose runs this suite shares (repeatable): a run it holds, trained under "
        "this numerics version, is copied into --results instead of trained again",
    )
    run.add_argument(
        "--wandb",
        action="store_true",
        help="log every run to Weights & Biases (offline unless logged in; or a 'wandb:' suite section)",
    )
    run.set_defaults(fn=cmd_run)

    st = sub.add_parser(
        "status",
        help="where a suite stands in its results file: each phase's runs recorded, the training time, "
        "the parts to verify",
    )
    st.add_argument("config", help="suite YAML file")
    st.add_argument("--results", help="results file (default: results/<suite name>.jsonl, as run writes)")
    st.set_defaults(fn=cmd_status)

    sch = sub.add_parser("schema", help="print the suite file's JSON Schema (for editors that check YAML)")
    sch.set_defaults(fn=cmd_schema)

    ls = sub.add_parser("list", help="tasks and strategies, with one-line descriptions")
    ls.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'clip*'")
    ls.set_defaults(fn=cmd_list)

    data = sub.add_parser(
        "data", parents=[data_root], help="show which datasets are present, download them, or lay out the text"
    )
    data.add_argument(
        "action",
        nargs="?",
        choices=("status", "download", "text"),
        default="status",
        help="status (default); download: MNIST and CIFAR-10 with torchvision; text: Debian's fortunes for the "
        "language model, with apt-get download (no root)",
    )
    data.add_argument(
        "--from", dest="text_from", metavar="DIR", help="text: copy an installed fortunes package's folder"
    )
    data.set_defaults(fn=cmd_data)

    lb = sub.add_parser("leaderboard", help="score a results file into a markdown leaderboard with plots")
    lb.add_argument("results", help="results file (JSON lines)")
    lb.add_argument("--out", default="leaderboard", help="output folder (default: leaderboard/)")
    lb.add_argument("--command", help="the command to name as reproducing these results")
    lb.add_argument(
        "--tasks-from",
        action="append",
        default=[],
        metavar="RESULTS",
        help="another suite's results whose tasks are scored with these (repeatable; task names must differ), "
        "e.g. the language model's; its pre-registration beside it is shown too",
    )
    lb.add_argument(
        "--causes-from",
        metavar="RESULTS",
        help="a stress suite's results: the causes matrix and its verdicts come from them, not from RESULTS",
    )
    lb.add_argument(
        "--readme",
        metavar="FILE",
        help="also write the decision table into FILE between its <!-- decision-table:start/end --> markers",
    )
    lb.set_defaults(fn=cmd_leaderboard)

    from .execution import verify

    vf = sub.add_parser(
        "verify",
        parents=[data_root],
        help="re-run recorded runs and check they reproduce their results exactly",
        description=verify.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vf.add_argument("results", help="results file (JSON lines) whose runs to re-run")
    vf.add_argument("--sample", type=int, metavar="K", help="re-run K runs drawn with --seed (default: all)")
    vf.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the --sample draw (default 0)")
    vf.add_argument(
        "--plugins",
        action="append",
        metavar="FILE_OR_MODULE",
        help="plugin file or module that registers the strategies/hooks the runs use (repeatable)",
    )
    vf.add_argument(
        "--statistical",
        action="store_true",
        help="on another machine kind or thread count: is each re-run within the task's seed-to-seed "
        "spread of its record (not bit for bit)?",
    )
    vf.add_argument("--threads", type=int, metavar="N", help="torch threads for the re-runs (default: each record's)")
    vf.add_argument(
        "--same-cpu",
        action="store_true",
        help="only runs recorded on this machine's kind of CPU (env.cpu and cpu_capability): "
        "the ones that must reproduce bit for bit here",
    )
    vf.add_argument(
        "--commit",
        metavar="PREFIX",
        help="only runs recorded at a git commit that starts with PREFIX (env.git_commit): one day's part of a long suite",
    )
    vf.set_defaults(fn=cmd_verify)
    return p


def _command_line(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else argv
    return "gradbench " + " ".join(shlex.quote(a) for a in argv)


def cmd_run(args) -> int:
    from .catalogue.plugins import load_entry_points
    from .core.record import outcome_counts, typed
    from .execution.executors import make_executor
    from .execution.suite_runner import default_results_path, run_suite, runs_dir
    from .suite import load_suite
    from .training.data import resolve_data_root

    require("suite", "gradbench run")
    load_entry_points()
    suite = load_suite(args.config)
    results_path = Path(args.results) if args.results else default_results_path(suite)
    for path in args.reuse:  # before anything trains
        if not Path(path).is_file():
            raise UserError(f"--reuse {path}: no such results file")
        if Path(path).resolve() == results_path.resolve():
            raise UserError(f"--reuse {path}: that is --results itself; name another suite's results file")
    args.results_path = results_path  # from here on, an interrupt says how to resume
    executor = make_executor(
        args.executor,
        workers=args.workers,
        devices=args.devices,
        runs_per_device=args.runs_per_device,
        address=args.address,
        threads=suite.threads,
    )
    wandb = None
    if args.wandb or suite.wandb is not None:
        require("wandb", "W&B tracking (--wandb, or the suite's wandb: section)")
        from .execution import tracking

        wandb = tracking.resolve(suite.wandb, default_dir=results_path.parent)
    records = run_suite(
        suite,
        results_path,
        resolve_data_root(args.data),
        command=_command_line(getattr(args, "argv", None)),
        executor=executor,
        wandb=wandb,
        retry_errors=args.retry_errors,
        reuse=[Path(f) for f in args.reuse],
    )
    out = Path(args.leaderboard) if args.leaderboard else results_path.parent / f"{suite.name}_leaderboard"
    checked = typed(records)  # each record checked once, for the page and the counts
    page = _write_leaderboard(checked, out, weights=suite.scoring.get("weights"))
    if wandb:
        _log_summary(wandb, suite, checked, results_path)
    counts = outcome_counts(checked)
    print(
        f"done: {len(records)} runs ({', '.join(f'{n} {s}' for s, n in counts.items() if n)}); "
        f"results {results_path}; leaderboard {page}"
    )
    errors = [r for r in records if r["status"] == "error"]
    if errors:
        print(
            f"gradbench: {len(errors)} of {len(records)} runs failed with an error (recorded as 'error', "
            f"the suite went on; tracebacks in {runs_dir(results_path)}/<run_id>/error.txt):",
            file=sys.stderr,
        )
    for r in errors:
        print(
            f"  error: {r['task']} {r['strategy']['label']} seed {r['seed']} [{r['run_id']}]: {_one_line(r['reason'])}",
            file=sys.stderr,
        )
    if errors:
        print(
            f"gradbench: to run the {len(errors)} error run{'s' if len(errors) > 1 else ''} again (a transient "
            f"failure), add --retry-errors:\n  {_command_line(getattr(args, 'argv', None))}"
            + ("" if args.retry_errors else " --retry-errors"),
            file=sys.stderr,
        )
    return 1 if errors else 0


def _log_summary(wandb: dict, suite, records: list[dict], results_path: Path) -> None:
    """The W&B summary run, after every record is safe on disk: a tracking failure of any kind
    is one warning line, never a traceback nor a failed suite."""
    from .analysis import scoring
    from .execution import tracking

    try:
        tracking.log_summary(wandb, suite.name, scoring.score(records, suite.scoring.get("weights")))
        print(tracking.sync_hint(wandb))
    except Exception as e:  # noqa: BLE001 - tracking is a copy of what is already in the results file
        warn(f"the W&B summary was not logged ({one_line_error(e, 300)}); every run is in {results_path}")


def cmd_verify(args) -> int:
    from .catalogue import plugins
    from .execution.verify import verify
    from .training.data import resolve_data_root

    require("suite", "gradbench verify")
    if args.sample is not None and args.sample < 1:
        raise UserError(f"--sample: must be a positive integer (how many runs to re-run), got {args.sample}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads: must be a positive integer, got {args.threads}")
    plugins.load_entry_points()
    plugins.load(args.plugins or [])
    outcomes = verify(
        args.results,
        resolve_data_root(args.data),
        sample=args.sample,
        seed=args.seed,
        statistical=args.statistical,
        threads=args.threads,
        same_cpu=args.same_cpu,
        commit=args.commit,
    )
    bad = [o for o in outcomes if not o.ok]
    if args.statistical:
        print(
            f"verify --statistical: {len(outcomes) - len(bad)} of {len(outcomes)} runs are consistent with "
            "their recorded seeds" + (f"; {len(bad)} are not" if bad else "")
        )
    else:
        print(
            f"verify: {len(outcomes) - len(bad)} of {len(outcomes)} runs reproduce their recorded results"
            + (f"; {len(bad)} differ" if bad else "")
        )
    return 1 if bad else 0


def _write_leaderboard(records, out: Path, weights=None, command=None, results=None, **more) -> Path:
    from .analysis import page

    return page.write(records, out, weights=weights, command=command, results=results, **more)


def cmd_leaderboard(args) -> int:
    from .core.record import latest
    from .store import jsonl

    require("suite", "gradbench leaderboard")
    if args.readme and not Path(args.readme).is_file():
        raise UserError(f"--readme {args.readme}: no such file")
    from .analysis.page import Part

    def read(path: str, option: str) -> list:
        if not Path(path).is_file():
            raise UserError(f"{option} {path}: no such file")
        records = latest(jsonl.read(path))
        if not records:
            raise UserError(f"{option} {path}: no run records")
        return records

    records = read(args.results, "results")
    parts = {
        "tasks_from": [Part(Path(f), read(f, "--tasks-from")) for f in args.tasks_from],
        "causes_from": Part(Path(args.causes_from), read(args.causes_from, "--causes-from"))
        if args.causes_from
        else None,
    }
    readme = {}
    if args.readme:  # the same rows, from the same scoring, into the README's markers
        options = "".join(f" --tasks-from {f}" for f in args.tasks_from)
        options += f" --causes-from {args.causes_from}" if args.causes_from else ""
        command = f"gradbench leaderboard {args.results}{options} --out {args.out} --readme {args.readme}"
        readme = {"readme": Path(args.readme), "readme_command": command}
    page = _write_leaderboard(
        records, Path(args.out), command=args.command, results=Path(args.results), **parts, **readme
    )
    print(f"leaderboard: {page}")
    if args.readme:
        print(f"decision table: {args.readme}")
    return 0


def cmd_status(args) -> int:
    from .execution.standing import status_lines
    from .execution.suite_runner import default_results_path
    from .suite import load_suite

    require("suite", "gradbench status")
    suite = load_suite(args.config)
    results_path = Path(args.results) if args.results else default_results_path(suite)
    print("\n".join(status_lines(suite, results_path)))
    return 0


def cmd_schema(args) -> int:
    import json

    from .suite.config import schema

    print(json.dumps(schema(), indent=2))
    return 0


FAMILY_ORDER = (
    "baseline",
    "clipping",
    "normalization",
    "activation",
    "architecture",
    "initialization",
    "optimizers",
    "schedules",
    "regularization",
)  # then any a plugin adds


def cmd_list(args) -> int:
    from .catalogue.plugins import load_entry_points
    from .catalogue.strategies import MODEL_FAMILIES, STRATEGIES
    from .catalogue.tasks import TASKS

    load_entry_points()
    tasks = TASKS.list(args.pattern)
    if tasks:
        print("tasks:")
        for name in tasks:
            t = TASKS.get(name)
            print(f"  {name:<14} {t.description}")
    names = STRATEGIES.list(args.pattern)
    families: dict[str, list[str]] = {f: [] for f in FAMILY_ORDER}
    for n in names:
        families.setdefault(STRATEGIES.get(n).family, []).append(n)
    families = {f: members for f, members in families.items() if members}
    if names:
        print(f"strategies ({len(names)}):")
    for family, members in families.items():
        print(f"  {family}:")
        for n in members:
            s = STRATEGIES.get(n)
            where = "" if set(s.applies_to) == set(MODEL_FAMILIES) else f" [{'/'.join(s.applies_to)} only]"
            print(f"    {n:<14} {s.description}{where}")
    if not tasks and not names:
        raise UserError(f"nothing matches {args.pattern!r}")
    return 0


def cmd_data(args) -> int:
    from .training.data import DATASETS, describe, download, resolve_data_root
    from .training.data.datasets import GENERATED

    root = resolve_data_root(args.data)
    if args.action == "download":
        download([d for d in DATASETS if d not in GENERATED and d != "fortunes"], root)
    if args.action == "text":
        from .training.data.text import layout

        print(f"text: {layout(root, args.text_from)}")
    rows = describe(root)
    print(f"data root: {root}")
    for name, status, where in rows:
        print(f"  {name:<8} {status:<10} {where}")
    for name in GENERATED:
        print(f"  {name:<8} generated  (synthetic, from the seed; nothing to download)")
    if any(status != "ok" for _, status, _ in rows):
        print(
            "missing data: 'gradbench data download' for MNIST and CIFAR-10 (needs the 'vision' extra and "
            "internet; or lay them out in torchvision's layout), 'gradbench data text' for the text; "
            "then pass --data DIR / set GRADBENCH_DATA"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
