#!/usr/bin/env bash
# The main job: run the quick suite on real MNIST, CIFAR-10 and the adding problem, then
# write the leaderboard. Sets up ./.venv and the data on first use. Extra arguments go to
# 'gradbench run' (e.g. --results PATH, --leaderboard DIR).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$root"
source scripts/data.sh
exec gradbench run configs/quick.yaml "$@"
