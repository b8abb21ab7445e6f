#!/usr/bin/env bash
# Sourced by the other scripts: make ./.venv with gradbench installed (first use only).
# EXTRAS picks the optional extras (default "dev,ray"). Every install goes through
# constraints.txt so torch stays the 2.13.0 CPU wheel (an unpinned torch pulls CUDA).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
extras=${EXTRAS:-dev,ray}
stamp="$venv/.installed-$(echo "$extras" | tr ',' '-')"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] || [ "$root/constraints.txt" -nt "$stamp" ]; then
  echo "setting up $venv (extras: $extras) ..." >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -c "$root/constraints.txt" -e "$root[$extras]" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
