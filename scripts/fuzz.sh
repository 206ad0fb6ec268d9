#!/usr/bin/env bash
# Coverage-guided fuzzing of the protocol core's decoders (fuzz/), bounded in
# time for CI: builds the libFuzzer targets with clang in build-fuzz/ (only
# them and what they link: core, memory engine, protobuf messages), then runs
# each for FUZZ_SECONDS on a fresh copy of its seed corpus (fuzz/corpus/).
# Fails if any target crashes, leaks, hangs, runs out of memory or trips
# ASan/UBSan, and prints the input that did it and the command that replays it.
#
#   scripts/fuzz.sh                      every target, 20 s each
#   FUZZ_SECONDS=300 scripts/fuzz.sh fuzz_envelope
#
# Environment: FUZZ_SECONDS (default 20), FUZZ_JOBS (targets run at once,
# default 2), BUILD_DIR (default build-fuzz). Installs clang and libFuzzer's
# runtime if missing (Debian packages; needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(fuzz_context fuzz_object fuzz_envelope fuzz_gossip fuzz_client_request)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_JOBS=${FUZZ_JOBS:-2}
BUILD_DIR=${BUILD_DIR:-build-fuzz}
RUN_DIR=$BUILD_DIR/fuzz-run
start_s=$(date +%s)

bash scripts/install-deps.sh

# clang with libFuzzer: Debian's clang (14 on bookworm) and its compiler-rt.
clang_links_fuzzer() {
  command -v clang++ >/dev/null || return 1
  local probe
  probe=$(mktemp -d)
  printf '#include <cstddef>\n#include <cstdint>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' \
    >"$probe/p.cc"
  clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cc" -o "$probe/p" >/dev/null 2>&1
  local rc=$?
  rm -rf "$probe"
  return $rc
}
if ! clang_links_fuzzer; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "fuzz: need root to install clang" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "fuzz: installing clang and libclang-rt-14-dev"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
  clang_links_fuzzer || { echo "fuzz: clang++ -fsanitize=fuzzer still does not link" >&2; exit 1; }
fi

# A build directory of its own, configured for clang (reconfigured if not).
if ! grep -q '^CMAKE_CXX_COMPILER_ID:.*Clang\|^CMAKE_CXX_COMPILER:.*clang' \
     "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
  rm -rf "$BUILD_DIR"
  mkdir -p "$BUILD_DIR"
  CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -DDYNAMO_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD_DIR/configure.log" 2>&1 ||
    { cat "$BUILD_DIR/configure.log" >&2; exit 1; }
fi
echo "fuzz: building ${TARGETS[*]}"
nice -n 10 cmake --build "$BUILD_DIR" -j 2 --target "${TARGETS[@]}"
built_s=$(date +%s)

# One run: a fresh copy of the seeds (new inputs never go to fuzz/corpus/).
run_target() {
  local t=$1 dir=$RUN_DIR/$1
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp fuzz/corpus/"$t"/* "$dir/corpus/"
  local rc=0
  nice -n 10 "$BUILD_DIR/fuzz/$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

echo "fuzz: running each target for ${FUZZ_SECONDS}s, $FUZZ_JOBS at a time"
for t in "${TARGETS[@]}"; do
  run_target "$t" &
  while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do sleep 1; done
done
wait

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  dir=$RUN_DIR/$t
  rc=$(cat "$dir/rc")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    printf 'fuzz: %-20s ok      %10s execs  %6s exec/s\n' "$t" "${execs:-?}" "${rate:-?}"
    continue
  fi
  failed=$((failed + 1))
  printf 'fuzz: %-20s FAILED  (exit %s, libFuzzer %s)\n' "$t" "$rc" \
    "$(sed -n 's/^INFO: \(Seed: [0-9]*\).*/\1/p' "$dir/log" | head -1)"
  echo "----- last lines of $dir/log"
  grep -v '^\(INFO:\|#[0-9]\)' "$dir/log" | tail -n 60
  echo "-----"
  found=0
  for input in "$dir"/artifacts/*; do
    [ -e "$input" ] || continue
    found=1
    echo "fuzz: $t: failing input $input"
    echo "fuzz:   reproduce: $BUILD_DIR/fuzz/$t $input"
    echo "fuzz:   keep it:   cp $input fuzz/corpus/$t/regress-<what-it-found>"
  done
  [ "$found" -eq 1 ] || echo "fuzz: $t: no input saved (see the log above)"
done
echo "fuzz: build $((built_s - start_s))s, whole run $(($(date +%s) - start_s))s"
echo "fuzz: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ]
