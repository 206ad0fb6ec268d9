#!/usr/bin/env bash
# Fault injection on real dynamo-node processes (tests/chaos/README.md).
#
#   scripts/chaos.sh                      short run: every fault kind once (~2 min)
#   scripts/chaos.sh --minutes 10         long run: 10 minutes of random faults
#   scripts/chaos.sh --soak --minutes 10  sustained load at half the measured peak,
#                                         a node killed and restarted every minute
#
# Other arguments go to tests/chaos/chaos.py (--seed N, --nodes N, --keep,
# --loopback, --skew-max-s S, ...; see --help). Needs root for network
# namespaces, nftables, tc and tmpfs; without root it runs on loopback and
# says which faults it skipped. Exit status 0 only if no acknowledged write
# was lost and the replicas converged. BUILD_DIR overrides build/.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=short
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --soak) mode=soak ;;
    --short) mode=short ;;
    --minutes) [ "$mode" = short ] && mode=long; args+=("$1" "$2"); shift ;;
    --minutes=*) [ "$mode" = short ] && mode=long; args+=("$1") ;;
    *) args+=("$1") ;;
  esac
  shift
done

bash scripts/install-deps.sh
# The fault tools: nftables (partitions, loss) and libfaketime (clock skew).
if [ "$(id -u)" -eq 0 ]; then
  missing=()
  for p in nftables faketime iproute2 util-linux; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "chaos.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDYNAMO_WERROR=ON >/dev/null
fi
nice -n 10 cmake --build "$BUILD_DIR" -j "${JOBS:-2}" --target dynamo-node dynamo-chaos-check >/dev/null

exec /usr/bin/python3 tests/chaos/chaos.py --mode "$mode" \
  --node "$BUILD_DIR/node/dynamo-node" \
  --checker "$BUILD_DIR/tests/chaos/dynamo-chaos-check" \
  --proto proto "${args[@]}"
