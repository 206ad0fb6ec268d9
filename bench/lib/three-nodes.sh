# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034  # inputs set by the caller, outputs used by it
# Three dynamo-node on loopback (N=3, R=2, W=2, RocksDB) for the bench/
# scripts that measure one node property: sourced, not run. The caller sets
#   tool        its name, for messages
#   repo        the repository root
#   build       the build directory, or "" to look for one
#   base_port   first of the loopback ports (two per node)
#   durability  durable or buffered
#   node_args   further dynamo-node flags
#   node_env    ("NAME=value" ...) for the node processes, may be empty
# and gets find_build, the data directory $data, start_node, stop_node,
# wait_ready and $targets. On exit every process in pid_of (the nodes, and
# whatever else the caller adds) is stopped and $data removed.

find_build() {  # sets bench and node, or exits
  if [ -z "$build" ]; then
    local d
    for d in "$repo/../build-bench" "$repo/build"; do
      if [ -x "$d/bench/dynamo-bench" ]; then build=$(cd "$d" && pwd); break; fi
    done
  fi
  bench="$build/bench/dynamo-bench"
  node="$build/node/dynamo-node"
  if [ ! -x "$bench" ] || [ ! -x "$node" ]; then
    echo "$tool: no dynamo-bench / dynamo-node under '$build'; build them first:" >&2
    echo "  cmake -S $repo -B build && cmake --build build -j2 --target dynamo-bench dynamo-node" >&2
    exit 2
  fi
  command -v curl >/dev/null || { echo "$tool: needs curl" >&2; exit 2; }
}

data=$(mktemp -d "${TMPDIR:-/tmp}/dynamo-$tool.XXXXXX")
declare -A pid_of=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${pid_of[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pid_of[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$data"
  exit $rc
}
trap cleanup EXIT
trap 'echo "$tool: interrupted" >&2; exit 130' INT TERM

grpc_port() { echo $((base_port + 2 * $1)); }
http_port() { echo $((base_port + 2 * $1 + 1)); }
targets="127.0.0.1:$(grpc_port 0),127.0.0.1:$(grpc_port 1),127.0.0.1:$(grpc_port 2)"

start_node() {  # start_node I
  local i=$1
  # shellcheck disable=SC2086  # node_args holds several flags
  env "${node_env[@]}" "$node" --node-id "n$i" --listen "127.0.0.1:$(grpc_port "$i")" \
    --http "127.0.0.1:$(http_port "$i")" --data-dir "$data/n$i" \
    --seeds "127.0.0.1:$(grpc_port 0)" --durability "$durability" \
    --storage rocksdb --replicas 3 --read-quorum 2 --write-quorum 2 $node_args \
    >>"$data/n$i.log" 2>&1 &
  pid_of[$i]=$!
}

stop_node() {  # stop_node I [SIGNAL]
  kill "-${2:-TERM}" "${pid_of[$1]}" 2>/dev/null || true
  wait "${pid_of[$1]}" 2>/dev/null || true
  unset "pid_of[$1]"
}

wait_ready() {  # wait_ready I: seconds until /readyz answers 200 (fails after 300 s)
  local i=$1 t0 now
  t0=$(date +%s.%N)
  while ! curl -sf -o /dev/null "http://127.0.0.1:$(http_port "$i")/readyz"; do
    if ! kill -0 "${pid_of[$i]}" 2>/dev/null; then
      echo "$tool: node n$i exited; its log:" >&2
      tail -20 "$data/n$i.log" >&2
      return 1
    fi
    now=$(date +%s.%N)
    if awk -v a="$t0" -v b="$now" 'BEGIN { exit !(b - a > 300) }'; then
      echo "$tool: n$i not ready after 300 s" >&2
      return 1
    fi
    sleep 0.05
  done
  now=$(date +%s.%N)
  awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.2f", b - a }'
}
