"""Shared fixtures. tests/ is on sys.path (pytest's rootdir insertion), so `fakes` imports."""

from __future__ import annotations

import pathlib

import pytest
from fakes import make_mnist

REPO = pathlib.Path(__file__).resolve().parent.parent
REAL_DATA = REPO / "data"

# Prepended to a `python -c` program: a meta-path finder that makes `import torch` / `import
# lightning` fail, as on a machine without them; NO_TORCH_LOADED checks at the end that nothing
# got them another way.
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'lightning', 'lightning_fabric', 'pytorch_lightning'):
            raise ImportError(f'{name} is blocked in this test')
sys.meta_path.insert(0, _NoTorch())
"""
NO_TORCH_LOADED = "\nassert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning')]\n"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> pathlib.Path:
    """A data root with a small MNIST in the real IDX format (600 train, 100 test images)."""
    root = tmp_path_factory.mktemp("data")
    make_mnist(root, gz=True, n_train=600, n_test=100)
    return root


def real_data_or_skip(*parts: str) -> pathlib.Path:
    """The real data laid out by .ci/run (../shared/data/prepare data); skip when absent."""
    if not (REAL_DATA.joinpath(*parts)).exists():
        pytest.skip(f"real data not laid out under {REAL_DATA} (run ../shared/data/prepare data)")
    return REAL_DATA
