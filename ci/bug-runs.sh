#!/bin/bash
# Does dynamo-bench catch a broken node? Applies each of three deliberate
# protocol bugs (issue #13) to a scratch clone of this repository, runs
# workloads/cart-faults.toml (or $SPEC) against it, and checks the history in eventual
# and strict mode. The working tree is never touched.
#
#   ci/bug-runs.sh                      # all bugs, the spec's routing, 30 s
#   ci/bug-runs.sh get-own put-early    # some of them
#   ROUTING=preference DURATION=60s ci/bug-runs.sh
#   SPEC=ci/isolate-then-wipe.toml ci/bug-runs.sh none put-early
#
# Bugs: none (the control), get-own (a get answers with the coordinator's
# own replica instead of the merge of R), put-early (a put is acknowledged
# at the coordinator's own write, before W), keep-superseded (a replica
# keeps a sibling that a version from another coordinator supersedes).
# Output: one directory per bug under $OUT (default target/bug-runs), and a
# line per bug: exit status of the run (0 valid and SLA met, 1 otherwise)
# and each mode's verdict with its finding counts.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$repo/target/bug-runs}
duration=${DURATION:-30s}
spec=${SPEC:-workloads/cart-faults.toml}
bugs=("$@")
[ ${#bugs[@]} -eq 0 ] && bugs=(none get-own put-early keep-superseded)
mkdir -p "$out"
tree=$(mktemp -d /tmp/dynamo-bug-runs.XXXXXX)
trap 'rm -rf "$tree"' EXIT
git clone -q "$repo" "$tree" || exit 2
export CARGO_TARGET_DIR=${BUG_RUNS_TARGET:-$out/target}

patch() {
  python3 - "$1" <<'PY' || exit 2
import sys
bug = sys.argv[1]
edits = {
    "get-own": ("core/src/protocol/get.rs",
        "            let merged = self.merged(&get.replies);\n            let reply = ClientReply::Got {",
        "            let merged = get.replies.get(&self.id).cloned().unwrap_or_default(); // BUG: own replica only\n            let reply = ClientReply::Got {"),
    "put-early": ("core/src/protocol/put.rs",
        "if !put.answered && put.acked.len() >= put.w {",
        "if !put.answered && (put.acked.len() >= put.w || put.acked.contains(&self.id)) { // BUG: ack at the local write"),
    "keep-superseded": ("core/src/version/siblings.rs",
        "        for entry in version.past.entries() {\n            let slot = covered",
        "        for entry in version.past.entries().iter().filter(|entry| entry.actor == version.dot.actor) { // BUG\n            let slot = covered"),
}
if bug == "none":
    sys.exit(0)
if bug not in edits:
    sys.exit(f"ci/bug-runs.sh: no bug named {bug!r}; bugs: none, " + ", ".join(edits))
path, old, new = edits[bug]
text = open(path).read()
if old not in text:
    sys.exit(f"ci/bug-runs.sh: {path} no longer contains the code the {bug} bug replaces; update this script")
open(path, "w").write(text.replace(old, new))
PY
}

verdict() {
  python3 - "$1" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
found = ", ".join(f"{name} {count}" for name, count in v["violations"].items() if count)
stale = f"; {v['stale_reads_measured']} stale reads measured" if v["mode"] == "eventual" else ""
print(("VALID" if v["valid"] else "INVALID") + (f" ({found})" if found else "") + stale)
PY
}

summary=()
cd "$tree" || exit 2
for bug in "${bugs[@]}"; do
  git checkout -q -- core
  patch "$bug"
  echo "== $bug: building" >&2
  cargo build --release -q -p dynamo-node -p dynamo-bench || exit 2
  dir=$out/$bug${ROUTING:+-$ROUTING}-$(basename "$spec" .toml)
  rm -rf "$dir"
  echo "== $bug: running $spec for $duration${ROUTING:+ with routing $ROUTING} into $dir" >&2
  status=0
  "$CARGO_TARGET_DIR/release/dynamo-bench" run "$spec" --duration "$duration" \
    ${ROUTING:+--routing "$ROUTING"} --out "$dir" > "$dir.txt" 2>&1 || status=$?
  "$CARGO_TARGET_DIR/release/dynamo-bench" check "$dir/history.jsonl" --mode strict --json "$dir/check-strict.json" > /dev/null 2>&1
  summary+=("$bug: run exit $status; eventual $(verdict "$dir/check.json"); strict $(verdict "$dir/check-strict.json")")
done
printf '%s\n' "${summary[@]}"
