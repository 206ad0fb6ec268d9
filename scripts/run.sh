#!/usr/bin/env bash
# The README's main job: builds what is missing, starts a local 3-node cluster
# on loopback (N=3, R=2, W=2, RocksDB, data under .dev-cluster/), writes and
# reads back a few keys with dynamoctl, and leaves the cluster running.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
BIN="${BUILD_DIR:-build}"
CTL="$BIN/client/dynamoctl"
DIR=.dev-cluster
if [ -f "$DIR/n1.pid" ] && kill -0 "$(cat "$DIR/n1.pid")" 2>/dev/null; then
  echo "A local cluster is already running in $DIR; stopping it first."
  "$CTL" dev down --dir "$DIR"
fi
# Nodes run with jemalloc preloaded, as the node image runs them (bench/RESULTS.md, F13).
# sed reads its input to the end: a reader that quits early can kill the
# writer with SIGPIPE, which pipefail turns into a failed run (1 in 10 here).
# shellcheck source=scripts/lib/jemalloc.sh
. scripts/lib/jemalloc.sh
JEMALLOC=$(jemalloc_path)
LD_PRELOAD="$JEMALLOC" "$CTL" dev up -n 3 --dir "$DIR" --node-binary "$BIN/node/dynamo-node"
export DYNAMO_ADDR=127.0.0.1:7001
echo
echo "== Writing and reading back a few keys"
for k in alpha beta gamma; do
  "$CTL" put "$k" "value-of-$k" >/dev/null
  printf '%s -> ' "$k"; "$CTL" get "$k" | sed -n 1p
done
echo
echo "== Two writes without a context become siblings; a write with the read's context resolves them"
"$CTL" put cart apple >/dev/null
"$CTL" --addr 127.0.0.1:7002 put cart pear >/dev/null
"$CTL" get cart
ctx=$("$CTL" get cart | sed -n 's/^context: //p')
"$CTL" put cart "apple+pear" --context "$ctx" >/dev/null
"$CTL" get cart
echo
"$CTL" cluster status
cat <<EOT

The cluster keeps running. Use it with:
  $CTL --addr 127.0.0.1:7001 get KEY | put KEY VALUE [--context C] | delete KEY
  $CTL cluster status ; $CTL ring
  metrics: curl -s 127.0.0.1:9101/metrics
Stop it with:
  $CTL dev down --dir $DIR          (add --wipe to delete its data)
EOT
