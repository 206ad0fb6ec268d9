#!/usr/bin/env bash
# The arithmetic of `bench/compare --versus` (bench/lib/ab-pairs.awk) on a
# summary.tsv whose answers are known: it is what decides whether a change to
# the node is kept.
set -euo pipefail
awk_file="$(cd "$(dirname "$0")" && pwd)/ab-pairs.awk"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0
expect() {  # expect WHAT LINE OUTPUT
  if ! grep -qxF -- "$2" <<<"$3"; then
    echo "FAIL: $1: no line '$2' in:" >&2
    echo "$3" >&2
    failures=$((failures + 1))
  fi
}

# label workload ops/s p50 p99 p99.9 max errors bench-cores server-cores us/op
t=$'\t'
{
  # Two routings (suffixes), pairs 1 (ab) and 2 (ba); b: +10% then -10%.
  echo "dynamo-buffered@a1-server${t}a${t}1000${t}1${t}10${t}20${t}30${t}0${t}0.5${t}1.4${t}200"
  echo "dynamo-buffered@b1-server${t}a${t}1100${t}1${t}5${t}20${t}30${t}0${t}0.5${t}1.4${t}100"
  echo "dynamo-buffered@b2-server${t}a${t}900${t}1${t}20${t}0${t}30${t}0${t}0.5${t}1.4${t}400"
  echo "dynamo-buffered@a2-server${t}a${t}1000${t}1${t}10${t}20${t}30${t}0${t}0.5${t}1.4${t}200"
  echo "dynamo-buffered@a1-client${t}a${t}2000${t}1${t}10${t}20${t}30${t}0${t}0.5${t}1.4${t}100"
  echo "dynamo-buffered@b1-client${t}a${t}3000${t}1${t}10${t}20${t}30${t}0${t}0.5${t}1.4${t}100"
  # One routing: no suffix; pair 2 lacks its b run.
  echo "dynamo-durable@a1${t}a${t}500${t}1${t}10${t}20${t}30${t}0${t}0.5${t}1.4${t}300"
  echo "dynamo-durable@b1${t}a${t}250${t}1${t}10${t}20${t}30${t}0${t}0.5${t}1.4${t}600"
  echo "dynamo-durable@a2${t}a${t}400${t}1${t}10${t}20${t}30${t}0${t}0.5${t}1.4${t}300"
  # Another workload and a label of no pair: ignored.
  echo "dynamo-buffered@a1-server${t}write${t}1${t}1${t}1${t}1${t}1${t}0${t}0.5${t}1.4${t}1"
  echo "ping${t}a${t}20000${t}1${t}1${t}1${t}1${t}0${t}0.5${t}1.4${t}20"
} >"$dir/summary.tsv"

out=$(awk -F'\t' -v w=a -f "$awk_file" "$dir/summary.tsv")
# sqrt(1.1 * 0.9) = 0.995; us/op sqrt(0.5 * 2) = 1; p99 sqrt(0.5 * 2) = 1; p99.9:
# pair 2's b is 0 (unknown), so pair 1 alone: 1.
expect "two pairs, one up one down" \
  "b/a: ops/s 0.995 (b ahead in 1 of 2 pairs), server us/op 1.000, p99 1.000, p99.9 1.000" "$out"
expect "pair 2 ran b first" \
  "2      ba         1000      900     200     400    10.00    20.00    20.00     0.00" "$out"
expect "each routing apart" "workload a, dynamo-buffered-client" "$out"
expect "client routing, one pair" \
  "b/a: ops/s 1.500 (b ahead in 1 of 1 pairs), server us/op 1.000, p99 1.000, p99.9 1.000" "$out"
expect "no suffix with one routing" "workload a, dynamo-durable" "$out"
expect "a pair without its b run is left out" \
  "b/a: ops/s 0.500 (b ahead in 0 of 1 pairs), server us/op 2.000, p99 1.000, p99.9 1.000" "$out"
if grep -q "ping\|workload write" <<<"$out"; then
  echo "FAIL: rows of other labels or workloads were counted:" >&2; echo "$out" >&2
  failures=$((failures + 1))
fi
out=$(awk -F'\t' -v w=c -f "$awk_file" "$dir/summary.tsv")
[ -z "$out" ] || { echo "FAIL: a workload that did not run printed: $out" >&2; failures=$((failures + 1)); }

[ "$failures" = 0 ] && echo "ab-pairs: all checks passed"
exit "$failures"
