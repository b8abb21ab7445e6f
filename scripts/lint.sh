#!/usr/bin/env bash
# The linters CI runs (and the pre-commit hooks): ruff's checks and its formatter, as configured
# in pyproject.toml. The import contracts run with the tests (tests/test_architecture.py).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
ruff check .
ruff format --check .
