#!/usr/bin/env bash
# Proves `dynamo-bench compare`'s verdicts on this machine (about 30 minutes
# with the defaults; not part of .ci/run):
#
#   1. A/A: POOL runs of one build, one after another; 20 comparisons of
#      disjoint groups of 2 + 2 runs (alternated: base, new, base, new).
#      Prints how many said "slower" anywhere: the false-slower rate.
#   2. Power: on the same pool, groups of K + K runs with every latency of
#      the new runs multiplied by 1 + d: the smallest d found slower at p99
#      (reports/examples/power.rs).
#   3. A real slowdown of the write path: sync = "always" against "batch",
#      K runs each, alternated.
#   4. A real slowdown of the tail only: TAIL_SETTING (a spec line) against
#      the shipped cart, K runs each, alternated. The default, 32 KiB
#      segments, makes every partition roll its segment every second or
#      so; a roll syncs the sealed segment on the storage thread, and the
#      writes queued behind it wait: p99 of puts moves, p50 does not.
#
# Usage: ci/verdict-proofs.sh [OUT]        (default target/verdict-proofs)
# Env: POOL_DURATION (10s, the A/A runs), DURATION (20s, the others),
#      K (5), SPEC (workloads/cart.toml), TAIL_SETTING (segment_bytes = 32768),
#      SKIP_POOL=1 to reuse OUT/pool.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$repo/target/verdict-proofs}
pool_duration=${POOL_DURATION:-10s}
duration=${DURATION:-20s}
k=${K:-5}
spec=${SPEC:-$repo/workloads/cart.toml}
tail_setting=${TAIL_SETTING:-segment_bytes = 32768}
mkdir -p "$out"
cd "$repo"
cargo build --release -q -p dynamo-bench -p dynamo-reports --example power
bench=$repo/target/release/dynamo-bench
run() { # run SPEC DIR [DURATION]
    mkdir -p "$(dirname "$2")"
    "$bench" run "$1" --duration "${3:-$duration}" --quiet --out "$2" > "$2.log" 2>&1 || {
        rc=$?
        # 1 is a run with a finding or a missed SLA: still a run to compare.
        [ "$rc" = 1 ] || { echo "run $2 failed ($rc): see $2.log" >&2; exit 2; }
    }
}

# 1. A/A
pool=$out/pool
if [ -z "${SKIP_POOL:-}" ]; then
    rm -rf "$pool" && mkdir -p "$pool"
    for i in $(seq 1 80); do
        run "$spec" "$pool/$i" "$pool_duration"
        printf '\rpool: %d of 80 runs' "$i" >&2
    done
    echo >&2
fi
slower=0
for group in $(seq 0 19); do
    a=$out/aa/$group/base b=$out/aa/$group/new
    rm -rf "$a" "$b" && mkdir -p "$a" "$b"
    first=$((group * 4 + 1))
    ln -s "$pool/$first" "$a/1"; ln -s "$pool/$((first + 1))" "$b/1"
    ln -s "$pool/$((first + 2))" "$a/2"; ln -s "$pool/$((first + 3))" "$b/2"
    if ! "$bench" compare "$a" "$b" > "$out/aa/$group.txt"; then
        slower=$((slower + 1))
        echo "A/A group $group: $(grep '^verdict' "$out/aa/$group.txt")"
    fi
done
echo "A/A: $slower of 20 comparisons of one build with itself said slower (2 + 2 runs of $pool_duration each)"

# 2. Power
"$repo/target/release/examples/power" "$pool" "$k"

# 3 and 4: a setting against the shipped spec, alternated.
against() { # against NAME SED_EDIT SETTING... (the settings that differ)
    local name=$1 edit=$2 variant=$out/$1.toml
    shift 2
    local allow=()
    for setting in "$@"; do allow+=(--allow-different "$setting"); done
    sed "$edit" "$spec" > "$variant"
    rm -rf "$out/$name"
    for i in $(seq 1 "$k"); do
        run "$spec" "$out/$name/base/$i"
        run "$variant" "$out/$name/new/$i"
        printf '\r%s: %d of %d pairs' "$name" "$i" "$k" >&2
    done
    echo >&2
    "$bench" compare "$out/$name/base" "$out/$name/new" "${allow[@]}" || true
}
against always 's/^sync = "batch".*/sync = "always"/; /^batch_interval_ms/d' cluster.sync cluster.batch_interval_ms
tail_field=${tail_setting%% *}
against tail "s/^$tail_field *=.*//; s/^\\[cluster\\]/[cluster]\\n$tail_setting/" "cluster.$tail_field"
