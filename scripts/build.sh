#!/usr/bin/env bash
# Configures (CMake preset "ci": warnings are errors) and builds everything.
# BUILD_DIR overrides the build directory (default: build/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDYNAMO_WERROR=ON >/dev/null
fi
cmake --build "$BUILD_DIR" -j "${JOBS:-2}"
