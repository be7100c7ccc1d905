#!/bin/bash
# Our cluster bench and etcd's load, in one sitting, and the ratios
# (issue #18): our puts under sync `always` against etcd's puts (every etcd
# commit fsyncs its WAL), our gets against etcd's linearizable gets. Same
# concurrency (64 in flight), same value size (1 KiB), same machine, one
# after the other.
#
# usage: ci/vs-etcd.sh [SECONDS]      (default 8 per phase)
#
# etcd is not part of the build or the tests: without Debian's etcd-server
# and etcd-client (and protobuf-compiler, to build peers/etcdload) it says
# so in one line, prints our side, and exits 0.
# Figures go to $OUT (default target/vs-etcd).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_PHASE=${1:-8}
OUT=${OUT:-target/vs-etcd}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # cargo bench runs in the package's directory

echo "== ours: 5 local nodes, N=3 R=2 W=2, 64 in flight, 1 KiB (cargo bench -p dynamo-node --bench cluster)"
cargo bench -q -p dynamo-node --bench cluster -- --seconds "$SECONDS_PER_PHASE" --json "$OUT/ours.jsonl" | tee "$OUT/ours.txt"

missing=""
for tool in etcd etcdctl protoc; do
  command -v "$tool" > /dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "etcd side skipped: not installed:$missing (apt-get install etcd-server etcd-client protobuf-compiler)"
  exit 0
fi

LOAD_TARGET=${ETCDLOAD_TARGET:-/tmp/etcdload-target}
echo "== building peers/etcdload (its own workspace, into $LOAD_TARGET)"
(cd peers/etcdload && CARGO_TARGET_DIR="$LOAD_TARGET" cargo build --release -q)
LOAD="$LOAD_TARGET/release/etcdload"

echo "== etcd: 3 members on loopback (peers/etcd-cluster.sh)"
trap 'peers/etcd-cluster.sh stop > /dev/null' EXIT
peers/etcd-cluster.sh start
ENDPOINTS=http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379
: > "$OUT/etcd.txt"
for op in put get get-serializable; do
  "$LOAD" "$ENDPOINTS" --op "$op" --in-flight 64 --seconds "$SECONDS_PER_PHASE" --value-bytes 1024 | tee -a "$OUT/etcd.txt"
done

python3 - "$OUT" <<'EOF'
import json, re, sys
out = sys.argv[1]
ours = [json.loads(line) for line in open(f"{out}/ours.jsonl")]
def our(sync, op):
    rows = [row for row in ours if row["sync"] == sync and row["op"] == op and not row["paced"]]
    return rows[0] if rows else None
etcd = {}
for line in open(f"{out}/etcd.txt"):
    fields = dict(field.split("=", 1) for field in line.split()[1:] if "=" in field)
    etcd[fields["op"]] = fields
verdict = lambda met: "met" if met else "NOT met"
print("ours against etcd, this sitting (64 in flight, 1 KiB):")
puts, gets = our("always", "put"), our("always", "get")
if puts and "put" in etcd:
    theirs = float(etcd["put"]["ops/s"])
    ratio = puts["ops_per_second"] / theirs
    print(f"  puts: ours (sync always) {puts['ops_per_second']:.0f}/s p99.9 {puts['p999_ms']:.2f} ms; "
          f"etcd {theirs:.0f}/s p99.9 {int(etcd['put']['p99.9_us']) / 1000:.2f} ms; "
          f"{ratio:.2f}x; target >= 1.5x: {verdict(ratio >= 1.5)}")
if gets and "get" in etcd:
    theirs = float(etcd["get"]["ops/s"])
    ratio = gets["ops_per_second"] / theirs
    print(f"  gets: ours {gets['ops_per_second']:.0f}/s p99.9 {gets['p999_ms']:.2f} ms; "
          f"etcd linearizable {theirs:.0f}/s p99.9 {int(etcd['get']['p99.9_us']) / 1000:.2f} ms; "
          f"{ratio:.2f}x; target >= 2x: {verdict(ratio >= 2)}")
if gets and "get-serializable" in etcd:
    theirs = float(etcd["get-serializable"]["ops/s"])
    print(f"  (etcd serializable gets {theirs:.0f}/s: ours {gets['ops_per_second'] / theirs:.2f}x)")
EOF
