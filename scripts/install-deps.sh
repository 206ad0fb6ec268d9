#!/usr/bin/env bash
# Installs what building and testing need, from Debian bookworm's archive.
# Idempotent: does nothing when everything is present. Needs root (or sudo).
#
#   scripts/install-deps.sh           build and test packages (a CI machine)
#   scripts/install-deps.sh --build   the build packages only
set -euo pipefail

# BUILD_PACKAGES: what configuring and compiling need (CMake's configure also
# finds the C++ test frameworks). The Dockerfile's build stage installs exactly
# this list; tests/packaging/check_dockerfile.py checks that.
BUILD_PACKAGES=(
  build-essential cmake pkg-config git
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  librocksdb-dev libcpprest-dev libssl-dev
  libgtest-dev libgmock-dev librapidcheck-dev
  libhiredis-dev                               # dynamo-bench's Redis driver
)

# TEST_PACKAGES: what only running the tests needs. No image carries these.
TEST_PACKAGES=(
  python3 python3-grpcio python3-grpc-tools   # integration tests: Python clients of proto/
  prometheus                                  # promtool checks our metrics exposition and dashboards
  iproute2 procps psmisc curl                 # integration and chaos tests: ss, ps, kill, HTTP probes
  python3-yaml python3-jsonschema             # the operator tests' Kubernetes API double validates
                                              # DynamoClusters against the CRD; scripts/check-packaging.sh
  yamllint unzip                              # scripts/check-packaging.sh (helm and kubectl come in a zip)
  nftables faketime                           # chaos tests: partitions and loss, clock skew
  openssl                                     # security tests make their own CA and certificates
  libjemalloc2                                # scripts/run.sh and bench/compare preload it into nodes
)

# NODE_PACKAGES: Node.js and npm for scripts/check-packaging.sh (helm, kubectl
# and the validators come from the npm registry). Skipped when node and npm are
# on the PATH already: NodeSource's nodejs bundles npm and conflicts with
# Debian's npm package.
NODE_PACKAGES=(nodejs npm)

wanted=("${BUILD_PACKAGES[@]}")
case "${1:-}" in
  "")
    wanted+=("${TEST_PACKAGES[@]}")
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
      wanted+=("${NODE_PACKAGES[@]}")
    fi
    ;;
  --build) ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
