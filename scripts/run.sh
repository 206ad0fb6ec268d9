#!/usr/bin/env bash
# The README's main job. Until the dynamo-node server exists, it runs the
# deterministic cluster simulator on its default scenario and reports what
# happened. Arguments go to dynamo-sim (--seed N --nodes N --fault-seconds N).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
exec "${BUILD_DIR:-build}/tests/sim/dynamo-sim" "$@"
