#!/usr/bin/env bash
# The site GitHub Pages publishes, built from a committed leaderboard folder:
#   scripts/site.sh [SRC] [DEST]        (defaults: leaderboard _site)
# It copies SRC's results file (and the measurements saved beside it: rank stability, arm
# cost, the pre-registration and its amendments) into DEST, rebuilds the page and the static site there with 'gradbench leaderboard',
# and checks that they equal SRC's own, byte for byte: what is published is what main holds,
# and main's page is what its results make. SRC is only read, never written (DEST may not be
# SRC or inside it). DEST then holds the markdown page with its plots, site/ and the results
# file, with an index.html that opens the site. Exit 1 if the committed page does not rebuild
# from its results.
set -euo pipefail
src=${1:-leaderboard}
dest=${2:-_site}
source "$(dirname "$0")/env.sh"
cd "$root"
src_abs=$(realpath -m "$src")
dest_abs=$(realpath -m "$dest")
if [ ! -f "$src_abs/results.jsonl" ]; then
  echo "site.sh: SRC $src has no results.jsonl" >&2
  exit 2
fi
case "$dest_abs/" in
  "$src_abs/"*) echo "site.sh: DEST $dest is inside SRC $src, which is only read; give another folder" >&2; exit 2 ;;
esac
# DEST is emptied first: never a folder that holds SRC, the repository or /
case "$src_abs/" in
  "$dest_abs/"*) echo "site.sh: DEST $dest holds SRC $src, which is only read; give another folder" >&2; exit 2 ;;
esac
if [ "$dest_abs" = "$root" ] || [ "$dest_abs" = / ]; then
  echo "site.sh: DEST $dest is the repository or /; give a folder of its own (default _site)" >&2
  exit 2
fi
rm -rf "$dest_abs"
mkdir -p "$dest_abs"
cp "$src_abs/results.jsonl" "$dest_abs/"
# the page shows these as saved (measured apart from the runs), so the rebuild needs them too
for saved in rank_stability.json arm_cost.json preregistration.yaml amendments.yaml; do
  if [ -f "$src_abs/$saved" ]; then cp "$src_abs/$saved" "$dest_abs/"; fi
done
gradbench leaderboard "$dest_abs/results.jsonl" --out "$dest_abs" >/dev/null
for f in README.md site/index.html site/plotly.min.js; do
  if ! cmp -s "$src_abs/$f" "$dest_abs/$f"; then
    echo "site.sh: $src/$f does not rebuild from $src/results.jsonl; rebuild it with" \
      "'gradbench leaderboard $src/results.jsonl --out $src' and commit" >&2
    exit 1
  fi
done
# GitHub Pages serves DEST/index.html; the site itself sits in site/ so that its link to the
# results file (../results.jsonl) holds both here and in the repository
cat >"$dest_abs/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=site/index.html">
<title>gradbench leaderboard</title></head>
<body><p><a href="site/index.html">The gradbench leaderboard</a></p></body></html>
EOF
echo "site: $dest/index.html (from $src/results.jsonl, $(wc -l <"$dest_abs/results.jsonl") records)"
