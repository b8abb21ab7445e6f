"""The layout's promises, checked: the subpackages import in one direction only (import-linter's
contracts in pyproject.toml), and core/, store/ and analysis/ work in a process where torch
and lightning cannot be imported at all."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

# a meta-path finder that makes `import torch` / `import lightning` fail, as on a machine without them
BLOCK = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'lightning', 'lightning_fabric', 'pytorch_lightning'):
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, _NoTorch())
"""


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
        BLOCK
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
assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning')]
"""
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    assert (tmp_path / "README.md").read_text().startswith("# gradbench leaderboard")


def test_the_blocker_blocks():
    """The check above would pass vacuously if the blocker did nothing."""
    out = subprocess.run([sys.executable, "-c", BLOCK + "import torch"], capture_output=True, text=True)
    assert out.returncode != 0 and "blocked in this test" in out.stderr


def test_the_readmes_record_table_lists_the_records_fields():
    import re

    from gradbench.core.record import record_fields

    readme = (REPO / "README.md").read_text()
    section = readme.split("## The result record", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert documented == set(record_fields())


def test_every_committed_record_is_a_record():
    from gradbench.store import jsonl

    assert len(jsonl.load(REPO / "leaderboard" / "results.jsonl")) == 3980  # each line checked on read
    assert len(jsonl.load(REPO / "leaderboard" / "catalogue_v1" / "results.jsonl")) == 500
