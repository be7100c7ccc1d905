#!/bin/bash
# Is NEW_REV slower than OLD_REV on this machine? Builds both revisions
# (each in a scratch worktree, sharing one cargo target directory for the
# dependencies), runs the same spec with each build alternately K times
# (old, new, old, new, ...: drift of the machine during the sitting hits
# both), then prints `dynamo-bench compare`'s table and verdict.
#
#   ci/compare-release.sh OLD_REV [NEW_REV]          # NEW_REV: the working tree's HEAD
#   K=5 DURATION=30s SPEC=workloads/ycsb-a.toml ci/compare-release.sh v0.1.0
#
# Exit status: compare's — 0 nothing slower beyond THRESHOLD (default 5%),
# 1 something is, 2 bad input (a revision that does not build, a run that
# could not start). The runs stay under $OUT (default
# target/compare-release/<old>-<new>/{old,new}/<i>).
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
old=${1:?usage: ci/compare-release.sh OLD_REV [NEW_REV]}
new=${2:-HEAD}
k=${K:-3}
duration=${DURATION:-15s}
spec=${SPEC:-workloads/cart.toml}
threshold=${THRESHOLD:-5%}
old_sha=$(git -C "$repo" rev-parse --short "$old^{commit}") || { echo "no revision $old"; exit 2; }
new_sha=$(git -C "$repo" rev-parse --short "$new^{commit}") || { echo "no revision $new"; exit 2; }
out=${OUT:-$repo/target/compare-release/$old_sha-$new_sha}
export CARGO_TARGET_DIR=${COMPARE_TARGET:-$repo/target/compare-release/target}
scratch=$(mktemp -d /tmp/dynamo-compare-release.XXXXXX)
trap 'git -C "$repo" worktree remove --force "$scratch/old" 2>/dev/null; git -C "$repo" worktree remove --force "$scratch/new" 2>/dev/null; rm -rf "$scratch"' EXIT
mkdir -p "$out"

# Both builds, their binaries copied out (the target directory is shared).
for side in old new; do
  sha=$old_sha; [ "$side" = new ] && sha=$new_sha
  echo "== building $side ($sha)"
  git -C "$repo" worktree add -q --detach "$scratch/$side" "$sha" || exit 2
  (cd "$scratch/$side" && cargo build --release -q -p dynamo-bench) || { echo "$side ($sha) does not build"; exit 2; }
  cp "$CARGO_TARGET_DIR/release/dynamo-bench" "$scratch/bench-$side" || exit 2
done

# The same spec (the new tree's) for both, alternately.
spec_file="$scratch/new/$spec"
[ -f "$spec_file" ] || { echo "no spec $spec in $new_sha"; exit 2; }
rm -rf "$out/old" "$out/new"
for i in $(seq 1 "$k"); do
  for side in old new; do
    echo "== run $i of $k: $side"
    "$scratch/bench-$side" run "$spec_file" --duration "$duration" --quiet --out "$out/$side/$i" > "$out/$side-$i.log" 2>&1
    status=$?
    # 0 and 1 (a missed SLA) are runs to compare; anything else is not.
    if [ $status -gt 1 ]; then
      echo "the $side run $i failed (exit $status):"; tail -5 "$out/$side-$i.log"; exit 2
    fi
  done
done

echo "== old $old_sha against new $new_sha: $k runs each of $spec, $duration"
"$scratch/bench-new" compare "$out/old" "$out/new" --threshold "$threshold" --json "$out/compare.json"
