#!/usr/bin/env bash
# dynamoctl end to end: `dev up -n 3`, put and get with contexts and siblings,
# cluster status and ring, usage and error exit codes, `remove` of a node
# killed for good, `dev down --wipe` leaving no process behind.
# usage: dynamoctl_test.sh DYNAMOCTL DYNAMO_NODE
set -euo pipefail

CTL=$1
NODE=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dynamoctl-test-XXXXXX")
DIR=$WORK/cluster
PIDS=""

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cleanup() {
  local status=$?
  if [ $status -ne 0 ]; then
    for log in "$DIR"/n*.log; do
      [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  "$CTL" dev down --dir "$DIR" --wipe --wait-s 5 >/dev/null 2>&1 || true
  for pid in $PIDS; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT

# A process that is gone or a zombie (nobody may reap it in a container).
gone() {
  [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = "Z" ]
}

# The node binary through a link of another name: dev up, status and down
# know their nodes by data folder, not by the program's name.
ln -s "$NODE" "$WORK/node-link"
NODE=$WORK/node-link

# Start, on random ports: dev up refuses ports in use, so try others then.
up=""
for attempt in 1 2 3 4 5; do
  base=$((20000 + (RANDOM % 400) * 100))
  http=$((base + 50))
  if "$CTL" dev up -n 3 --dir "$DIR" --base-port "$base" --http-base-port "$http" \
      --node-binary "$NODE" --wait-s 60 >"$WORK/up.out" 2>&1; then
    up=yes
    break
  fi
  cat "$WORK/up.out" >&2
  grep -q "is in use" "$WORK/up.out" || fail "dev up failed"
done
[ -n "$up" ] || fail "dev up found no free ports"
cat "$WORK/up.out"
PIDS=$(cat "$DIR"/n*.pid)
[ "$(echo "$PIDS" | wc -w)" -eq 3 ] || fail "expected 3 pid files"
grep -q "dev down" "$WORK/up.out" || fail "dev up did not say how to stop the cluster"
export DYNAMO_ADDR=127.0.0.1:$base

# A second dev up in the same folder refuses.
set +e
"$CTL" dev up -n 3 --dir "$DIR" --base-port "$base" --node-binary "$NODE" >"$WORK/again.out" 2>&1
code=$?
set -e
[ $code -eq 1 ] || fail "second dev up exited $code, not 1"
grep -q "already running" "$WORK/again.out" || fail "second dev up: $(cat "$WORK/again.out")"

# put, get: the value and a context.
"$CTL" put greeting hello | tee "$WORK/put.out"
grep -q "^context: ." "$WORK/put.out" || fail "put printed no context"
"$CTL" get greeting | tee "$WORK/get.out"
[ "$(head -n 1 "$WORK/get.out")" = "hello" ] || fail "get did not show the value"
ctx=$(sed -n 's/^context: //p' "$WORK/get.out")
[ -n "$ctx" ] || fail "get printed no context"

# A put with the read's context replaces the value: one value.
"$CTL" put greeting world --context "$ctx" >/dev/null
"$CTL" get greeting | tee "$WORK/get2.out"
[ "$(grep -vc '^context: ' "$WORK/get2.out")" -eq 1 ] || fail "expected one value"
grep -qx "world" "$WORK/get2.out" || fail "expected the value world"

# A blind put (no context) makes a sibling; a put with the context resolves it.
"$CTL" put greeting bonjour >/dev/null
"$CTL" get greeting | tee "$WORK/get3.out"
grep -qx "2 siblings:" "$WORK/get3.out" || fail "expected 2 siblings"
grep -qx "world" "$WORK/get3.out" && grep -qx "bonjour" "$WORK/get3.out" || fail "sibling values"
ctx=$(sed -n 's/^context: //p' "$WORK/get3.out")
"$CTL" put greeting "world, bonjour" --context "$ctx" >/dev/null
"$CTL" get greeting >"$WORK/get4.out"
[ "$(head -n 1 "$WORK/get4.out")" = "world, bonjour" ] || fail "resolution: $(cat "$WORK/get4.out")"
grep -q "siblings" "$WORK/get4.out" && fail "still siblings after resolution"

# delete, then not found.
ctx=$(sed -n 's/^context: //p' "$WORK/get4.out")
"$CTL" delete greeting --context "$ctx" >/dev/null
"$CTL" get greeting | grep -qx "not found" || fail "deleted key still found"

# delete without --context deletes what a read returns, siblings included.
"$CTL" put gone one >/dev/null
"$CTL" put gone two >/dev/null
"$CTL" delete gone | grep -qx "deleted" || fail "delete without a context"
"$CTL" get gone | grep -qx "not found" || fail "a delete without --context left values"

# cluster status: 3 NORMAL nodes; ring: N=3.
"$CTL" cluster status | tee "$WORK/status.out"
[ "$(grep -c ' NORMAL ' "$WORK/status.out")" -eq 3 ] || fail "expected 3 NORMAL nodes"
"$CTL" ring | tee "$WORK/ring.out"
grep -q "N=3" "$WORK/ring.out" || fail "ring does not show N=3"
"$CTL" dev status --dir "$DIR" | tee "$WORK/devstatus.out"
grep -q "3 of 3 nodes running" "$WORK/devstatus.out" || fail "dev status"

# Exit codes: 2 for usage, 1 (with the gRPC code) for errors.
set +e
"$CTL" get >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing KEY is not exit 2"
"$CTL" put k v --context '%%%' >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad context is not exit 2"
"$CTL" put "" v >/dev/null 2>"$WORK/err.out"; code=$?
[ $code -eq 1 ] && grep -q "INVALID_ARGUMENT" "$WORK/err.out" || fail "empty key: $code $(cat "$WORK/err.out")"
"$CTL" --addr 127.0.0.1:1 --timeout-ms 500 get k >/dev/null 2>"$WORK/err.out"; code=$?
[ $code -eq 1 ] && grep -q "UNAVAILABLE" "$WORK/err.out" || fail "no server: $code $(cat "$WORK/err.out")"
set -e

# remove: refused for a live node, for an unknown one, without an ID; after
# kill -9 of n3, accepted once n1 sees it down, and n3 shows REMOVED.
set +e
"$CTL" remove n3 >/dev/null 2>"$WORK/err.out"; code=$?
[ $code -eq 1 ] && grep -q "FAILED_PRECONDITION.*alive" "$WORK/err.out" || fail "remove live: $code $(cat "$WORK/err.out")"
"$CTL" remove n9 >/dev/null 2>"$WORK/err.out"; code=$?
[ $code -eq 1 ] && grep -q "NOT_FOUND" "$WORK/err.out" || fail "remove unknown: $code $(cat "$WORK/err.out")"
"$CTL" remove >/dev/null 2>&1; [ $? -eq 2 ] || fail "remove without an ID is not exit 2"
set -e
kill -9 "$(cat "$DIR/n3.pid")"
removed=""
for attempt in $(seq 1 60); do
  if "$CTL" remove n3 --wait --wait-s 30 >"$WORK/remove.out" 2>&1; then removed=yes; break; fi
  grep -q "alive" "$WORK/remove.out" || fail "remove: $(cat "$WORK/remove.out")"
  sleep 1
done
[ -n "$removed" ] || fail "n3 was never removed: $(cat "$WORK/remove.out")"
cat "$WORK/remove.out"
grep -q "out of the ring" "$WORK/remove.out" || fail "remove --wait did not wait"
"$CTL" cluster status | tee "$WORK/status2.out"
grep -q "^n3 .*REMOVED (by n1)" "$WORK/status2.out" || fail "n3 not shown REMOVED"
grep -q "unreachable" "$WORK/status2.out" && fail "a removed node shown unreachable"

# dev down --wipe: every process gone, the folder removed.
"$CTL" dev down --dir "$DIR" --wipe
for pid in $PIDS; do gone "$pid" || fail "pid $pid still running after dev down"; done
[ ! -e "$DIR" ] || fail "dev down --wipe left $DIR"
echo "PASS"
