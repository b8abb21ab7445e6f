"""Shared fixtures. tests/ is on sys.path (pytest's rootdir insertion), so `fakes` imports."""

from __future__ import annotations

import pathlib

import pytest
from fakes import make_mnist

REPO = pathlib.Path(__file__).resolve().parent.parent
REAL_DATA = REPO / "data"


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
