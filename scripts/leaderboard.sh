#!/usr/bin/env bash
# A leaderboard from a fresh, real run of a suite, the way CI's scheduled run makes one:
#   scripts/leaderboard.sh [--commit] [SUITE] [OUT]      (defaults: configs/quick.yaml leaderboard/fresh)
# OUT is never leaderboard/ itself: the published page there is rebuilt from its committed
# results ('gradbench leaderboard leaderboard/results.jsonl --out leaderboard'), never
# replaced by another run.
# It runs 'gradbench run SUITE --results OUT/results.jsonl --leaderboard OUT' from an empty
# results file (RESUME=1 keeps it, to finish an interrupted run), so the page names exactly
# the command that reproduces it. --commit commits OUT in the git repository that holds it
# (and pushes when run by GitHub Actions). Extra gradbench flags: GRADBENCH_FLAGS="--workers 2".
set -euo pipefail
commit=0
if [ "${1:-}" = "--commit" ]; then commit=1; shift; fi
suite=${1:-configs/quick.yaml}
out=${2:-leaderboard/fresh}
source "$(dirname "$0")/env.sh"
cd "$root"
if [ "$(realpath -m "$out")" = "$(realpath -m "$root/leaderboard")" ]; then
  echo "leaderboard.sh: OUT $out is the published page; give a folder of its own (default leaderboard/fresh)" >&2
  exit 2
fi
source scripts/data.sh
mkdir -p "$out"
if [ "${RESUME:-0}" != 1 ]; then
  rm -rf "$out/results.jsonl" "$out/results_runs"
fi
# shellcheck disable=SC2086  # GRADBENCH_FLAGS is a list of flags
gradbench run "$suite" --results "$out/results.jsonl" --leaderboard "$out" ${GRADBENCH_FLAGS:-}
if [ "$commit" = 1 ]; then
  cd "$out"
  git add -- .
  if git diff --cached --quiet -- .; then
    echo "leaderboard unchanged: nothing to commit"
  else
    git -c user.name="${GIT_AUTHOR_NAME:-gradbench-ci}" -c user.email="${GIT_AUTHOR_EMAIL:-gradbench-ci@users.noreply.github.com}" \
      commit -q -m "leaderboard: $(basename "$suite") on $(date -u +%Y-%m-%d)" -- .
    echo "committed $(git log -1 --format=%h)"
    if [ "${GITHUB_ACTIONS:-}" = true ]; then git push; fi
  fi
fi
