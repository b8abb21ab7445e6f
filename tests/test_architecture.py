"""The layout's promises, checked: the subpackages import in one direction only (import-linter's
contracts in pyproject.toml), and core/, store/ and analysis/ work in a process where torch
and lightning cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys

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
    out = subprocess.run(
        [sys.executable, "-m", "importlinter.cli", "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:  # the CLI's entry point, for import-linter versions without a __main__
        out = subprocess.run(
            [str(REPO / ".venv/bin/lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True
        )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "broken" not in out.stdout.lower().replace("0 broken", "")


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
