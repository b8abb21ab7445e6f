#!/usr/bin/env bash
# Run the tests; sets up ./.venv on first use. Tests marked slow use real data under ./data
# (lay it out with ../shared/data/prepare data, or 'gradbench data download') and skip without it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
exec python -m pytest -q "$@"
