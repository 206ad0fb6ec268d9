#!/usr/bin/env python3
"""Writes manifests/ from the chart: plain YAML for `kubectl apply -k`.

Input: `helm template dynamo charts/dynamo -n dynamo-system -f
tests/packaging/values-manifests.yaml` (stdin or --rendered), and the chart's
CRD, copied byte for byte. Helm's own labels are dropped. The output is
deterministic, so `scripts/check-packaging.sh` regenerates it into a scratch
directory and fails if manifests/ differs (`--regenerate` writes it).

usage: gen_manifests.py --rendered FILE --crd FILE --out DIR
"""
import argparse
import os
import re
import shutil
import sys

import yaml

HEADER = ("# Generated from charts/dynamo by scripts/check-packaging.sh --regenerate.\n"
          "# Do not edit: change the chart (or tests/packaging/values-manifests.yaml) and regenerate.\n")
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
NAMESPACE = "dynamo-system"
# YAML 1.1 parsers (kubectl's, Helm's) read these plain scalars as booleans.
YAML11_BOOLS = re.compile(r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|"
                          r"on|On|ON|off|Off|OFF)$")


class Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # indent sequences under their key


def _str(dumper, value):
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if YAML11_BOOLS.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


Dumper.add_representer(str, _str)


def dump(objs):
    return "---\n".join(yaml.dump(o, Dumper=Dumper, sort_keys=False, width=150,
                                  default_flow_style=False, allow_unicode=True) for o in objs)


def strip_helm(obj):
    for meta in (obj.get("metadata"), ((obj.get("spec") or {}).get("template") or {}).get("metadata")):
        if meta and meta.get("labels"):
            for k in HELM_LABELS:
                meta["labels"].pop(k, None)
    return obj


def write(path, text, header=HEADER):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(header + "---\n" + text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rendered", required=True)
    ap.add_argument("--crd", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    with open(args.rendered) as f:
        objs = [strip_helm(o) for o in yaml.safe_load_all(f) if o]
    groups = {"rbac": [], "operator": [], "monitoring": [], "alerts": [], "dashboards": [], "sample": []}
    for o in objs:
        kind = o["kind"]
        if kind in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
            groups["rbac"].append(o)
        elif kind in ("Deployment", "Service", "PodDisruptionBudget"):
            groups["operator"].append(o)
        elif kind in ("ServiceMonitor", "PodMonitor"):
            groups["monitoring"].append(o)
        elif kind == "PrometheusRule":
            groups["alerts"].append(o)
        elif kind == "ConfigMap" and (o["metadata"].get("labels") or {}).get("grafana_dashboard"):
            groups["dashboards"].append(o)
        elif kind == "DynamoCluster":
            groups["sample"].append({"apiVersion": o["apiVersion"], "kind": kind,
                                     "metadata": {"name": o["metadata"]["name"],
                                                  "namespace": o["metadata"]["namespace"]},
                                     "spec": o["spec"]})
        else:
            print(f"gen_manifests: {kind} {o['metadata']['name']} has no place in manifests/", file=sys.stderr)
            return 1
    order = {"ServiceAccount": 0, "ClusterRole": 1, "ClusterRoleBinding": 2, "Role": 3, "RoleBinding": 4,
             "Deployment": 0, "Service": 1, "PodDisruptionBudget": 2}
    for g in ("rbac", "operator"):
        groups[g].sort(key=lambda o: (order.get(o["kind"], 9), o["metadata"]["name"]))
    if not all(groups[g] for g in groups):
        print(f"gen_manifests: empty groups {[g for g in groups if not groups[g]]}: check values-manifests.yaml",
              file=sys.stderr)
        return 1

    out = args.out
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "crd"))
    shutil.copyfile(args.crd, os.path.join(out, "crd", "dynamoclusters.yaml"))
    namespace = {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {
            "app.kubernetes.io/part-of": "dynamo",
            # The operator and the storage pods it creates must meet the
            # restricted Pod Security Standard.
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted"}}}
    write(os.path.join(out, "namespace.yaml"), dump([namespace]))
    write(os.path.join(out, "rbac.yaml"), dump(groups["rbac"]))
    write(os.path.join(out, "operator.yaml"), dump(groups["operator"]))
    write(os.path.join(out, "kustomization.yaml"), dump([{
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["namespace.yaml", "crd/dynamoclusters.yaml", "rbac.yaml", "operator.yaml"]}]),
        HEADER + "#\n# The operator, its RBAC and the CRD: kubectl apply -k manifests/\n"
                 "# Then a cluster: kubectl apply -f manifests/samples/dynamocluster.yaml\n"
                 "# Monitoring (needs prometheus-operator): kubectl apply -k manifests/monitoring/\n")
    write(os.path.join(out, "monitoring", "servicemonitors.yaml"), dump(groups["monitoring"]))
    write(os.path.join(out, "monitoring", "alerts.yaml"), dump(groups["alerts"]))
    write(os.path.join(out, "monitoring", "dashboards.yaml"), dump(groups["dashboards"]))
    write(os.path.join(out, "monitoring", "kustomization.yaml"), dump([{
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["servicemonitors.yaml", "alerts.yaml", "dashboards.yaml"]}]),
        HEADER + "#\n# ServiceMonitors and alerting rules (prometheus-operator), and the Grafana\n"
                 "# dashboards as ConfigMaps.\n")
    write(os.path.join(out, "samples", "dynamocluster.yaml"), dump(groups["sample"]),
          HEADER + "#\n# A 3-node cluster in the namespace the operator watches: replication factor 3\n"
                   "# (fixed at creation), read and write quorums 2.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
