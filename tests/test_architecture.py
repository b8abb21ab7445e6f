"""The layout's promises, checked: the subpackages import in one direction only (import-linter's
contracts in pyproject.toml), and core/, store/ and analysis/ work in a process where torch
and lightning cannot be imported at all."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import BLOCK_TORCH, NO_TORCH_LOADED, REPO


def test_import_contracts_hold():
    """No import cycle between the subpackages and each imports only the layers below it;
    core/, store/ and analysis/ reach neither torch nor lightning, even indirectly."""
    lint_imports = Path(sys.executable).parent / "lint-imports"  # the venv's, beside its python
    out = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    counts = re.search(r"Contracts: (\d+) kept, (\d+) broken", out.stdout)
    assert counts and int(counts[1]) >= 3 and counts[2] == "0", out.stdout[-3000:]


def import_cycles(graph) -> list[list[str]]:
    """The groups of modules that import each other in a loop (Tarjan's strongly connected
    components of the import graph), each sorted; an import inside a function counts."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_no_two_modules_import_each_other():
    """Not only the subpackages: no module of gradbench imports, directly or through others,
    a module that imports it back."""
    import grimp

    assert import_cycles(grimp.build_graph("gradbench")) == []


def test_the_cycle_check_finds_a_cycle():
    import grimp

    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_torch_free_packages_work_without_torch(tmp_path):
    """Import every module of core/, store/ and analysis/ and rebuild a leaderboard page from
    the committed results with torch and lightning unimportable."""
    code = (
        BLOCK_TORCH
        + f"""
import importlib, pkgutil
import gradbench.core, gradbench.store, gradbench.analysis
for pkg in (gradbench.core, gradbench.store, gradbench.analysis):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):
        importlib.import_module(m.name)
from gradbench.analysis import page
from gradbench.store import jsonl
records = jsonl.latest_by_run(jsonl.load({str(REPO / "leaderboard" / "results.jsonl")!r}))
page.write(records, {str(tmp_path)!r}, plots=False)
"""
        + NO_TORCH_LOADED
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    assert (tmp_path / "README.md").read_text().startswith("# gradbench leaderboard")


def test_the_blocker_blocks():
    """The check above would pass vacuously if the blocker did nothing."""
    out = subprocess.run([sys.executable, "-c", BLOCK_TORCH + "import torch"], capture_output=True, text=True)
    assert out.returncode != 0 and "blocked in this test" in out.stderr


def test_the_record_docs_table_lists_the_records_fields():
    import re

    from gradbench.core.record import record_fields

    section = (REPO / "docs" / "records.md").read_text()
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert documented == set(record_fields())


def test_every_committed_record_is_a_record():
    from gradbench.store import jsonl

    assert len(jsonl.load(REPO / "leaderboard" / "results.jsonl")) == 3980  # each line checked on read
    assert len(jsonl.load(REPO / "leaderboard" / "catalogue_v1" / "results.jsonl")) == 500


PUBLIC = ["__version__", "strategy", "grad_hook", "RunSpec", "Task", "register_task"]


def test_the_public_names_resolve_without_loading_torch_at_import():
    """The names plugins and users import from `gradbench` are pinned; `import gradbench` and
    the CLI's import load no torch, and each name resolves (loading what it needs) on use."""
    import gradbench
    from gradbench.catalogue.grad_hooks import grad_hook
    from gradbench.catalogue.strategies import strategy
    from gradbench.catalogue.tasks import Task, register_task
    from gradbench.core.spec import RunSpec

    assert gradbench.__all__ == PUBLIC
    assert (gradbench.strategy, gradbench.grad_hook, gradbench.RunSpec, gradbench.Task, gradbench.register_task) == (
        strategy,
        grad_hook,
        RunSpec,
        Task,
        register_task,
    )
    code = BLOCK_TORCH + "import gradbench, gradbench.cli\nassert gradbench.__version__\n" + NO_TORCH_LOADED
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    out = subprocess.run([sys.executable, "-c", "import gradbench; gradbench.nothing"], capture_output=True, text=True)
    assert "module 'gradbench' has no attribute 'nothing'" in out.stderr


def test_the_old_import_paths_work_with_a_deprecation_warning(tmp_path):
    """gradbench.strategies, gradbench.grad_hooks and gradbench.spec (before the layered layout)
    still import, for one release, with a DeprecationWarning naming the new import; a plugin
    that uses them gets one warning line from the CLI."""
    code = """
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from gradbench.strategies import strategy
    from gradbench.grad_hooks import grad_hook
    from gradbench.spec import RunSpec
import gradbench
assert (strategy, grad_hook, RunSpec) == (gradbench.strategy, gradbench.grad_hook, gradbench.RunSpec)
print("\\n".join(f"{w.category.__name__}|{issubclass(w.category, DeprecationWarning)}|{w.message}" for w in caught))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [
        "MovedWarning|True|gradbench.strategies is deprecated and will be removed after 0.x: use from gradbench import strategy",
        "MovedWarning|True|gradbench.grad_hooks is deprecated and will be removed after 0.x: use from gradbench import grad_hook",
        "MovedWarning|True|gradbench.spec is deprecated and will be removed after 0.x: use from gradbench import RunSpec",
    ]
    (tmp_path / "old_plugin.py").write_text(
        "from gradbench.strategies import strategy\n"
        "from gradbench.spec import RunSpec\n\n\n"
        "@strategy(family='clipping', slot='old clip')\n"
        "def old_clip(spec: RunSpec, max_norm: float = 1.0) -> RunSpec:\n"
        '    """Clipping from a plugin written for the flat layout."""\n'
        "    return spec.with_trainer(gradient_clip_val=max_norm)\n"
    )
    (tmp_path / "s.yaml").write_text("name: s\nplugins: [old_plugin.py]\ntasks: [adding_rnn]\nstrategies: [old_clip]\n")
    gb = Path(sys.executable).parent / "gradbench"
    out = subprocess.run([str(gb), "status", "s.yaml"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = [x for x in out.stderr.splitlines() if x.startswith("gradbench: warning:")]
    assert len(lines) == 2 and "gradbench.strategies is deprecated" in lines[0], out.stderr


def record_guards(source: str, name: str, fields: set[str]) -> list[str]:
    """Where `source` looks a record field up by hand: .get("<field>"), `x.get(...) or {}`, or a
    records parameter annotated as something other than Record."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in fields
        ):
            found.append(f"{where}: .get({node.args[0].value!r})")
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):  # (r.get("env") or {})
            first, last = node.values[0], node.values[-1]
            looked_up = isinstance(first, ast.Call) and getattr(first.func, "attr", None) == "get"
            if looked_up and isinstance(last, ast.Dict) and not last.keys:
                found.append(f"{where}: `.get(...) or {{}}`")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in node.args.args + node.args.kwonlyargs:
                if arg.arg in ("records", "record", "rec") and arg.annotation is not None:
                    text = ast.unparse(arg.annotation)
                    if "Record" not in text:
                        found.append(f"{where}: {node.name}({arg.arg}: {text})")
    return found


def test_analysis_reads_typed_records_and_never_guards_a_field_by_hand():
    """analysis/ gets records as core.record.Record (typed once, at its boundary), so no
    function there looks a record field up with .get() or defaults a missing part with
    `.get(...) or {}`, and none takes its records as dicts. The checker is checked too."""
    from gradbench.core.record import record_fields

    fields = set(record_fields())
    planted = "def f(records: list[dict]):\n    return [(r.get('env') or {}).get('cpu') for r in records]\n"
    assert len(record_guards(planted, "planted.py", fields)) == 3
    found = []
    for path in sorted((REPO / "gradbench" / "analysis").glob("*.py")):
        found += record_guards(path.read_text(encoding="utf-8"), path.name, fields)
    assert found == []


def test_every_relative_link_in_the_readme_and_docs_resolves():
    """The README is short and links docs/; a moved file or a link written from the wrong
    folder is a dead link, found here rather than by a reader."""
    import re

    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert len(pages) >= 8
    dead = []
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # code is not a link
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^(https?:|mailto:|#)", target):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                dead.append(f"{page.relative_to(REPO)}: {target}")
    assert dead == []
