#!/usr/bin/env bash
# The main job: run the quick suite on real MNIST, CIFAR-10, the adding problem and recall, then
# write the leaderboard. Sets up ./.venv and the data on first use. Extra arguments go to
# 'gradbench run' (e.g. --results PATH, --leaderboard DIR, --workers 1).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
source scripts/data.sh
# --workers auto: one run per core (quick.yaml pins 1 thread per run), the fastest way through
# many small runs; records are the same as with --workers 1 (they depend on threads, not workers)
exec gradbench run configs/quick.yaml --workers auto "$@"
