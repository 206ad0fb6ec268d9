#!/usr/bin/env python3
"""The checks must catch the mistakes they exist for: each checker is run on
inputs with known mistakes, and must fail naming each one. (A check that
passes everything passes silently too.)

usage: selftest.py --root REPO --rendered ALL_ON.yaml --node-modules DIR
                   --helm PATH --promtool PATH --work DIR
"""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable
failures = []


def run_expecting(name, cmd, messages):
    res = subprocess.run(cmd, capture_output=True, text=True)
    out = res.stdout + res.stderr
    missing = [m for m in messages if m not in out]
    if res.returncode == 0 or missing:
        failures.append(name)
        print(f"  FAIL {name}: exit {res.returncode}, not reported: {missing}")
        print("    " + out.replace("\n", "\n    ")[-3000:])
    else:
        print(f"  ok   {name}: {len(messages)} planted mistakes reported")


def mutate_rendered(path, out):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        if kind == "Deployment":
            pod = d["spec"]["template"]["spec"]
            c = pod["containers"][0]
            c["readinesProbe"] = c.pop("readinessProbe")                   # a typo
            pod["securityContext"]["readOnlyRootFilesystem"] = True        # the wrong level
            c["ports"][0]["containerPort"] = str(c["ports"][0]["containerPort"])  # a string port
            c["args"].append("--verbose")                                  # not a flag it has
        elif kind == "ClusterRole" and name.endswith("-operator"):
            d["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
        elif kind == "NetworkPolicy" and name.endswith("-nodes"):
            d["spec"]["ingress"][1].pop("from")                            # allows everyone
        elif kind == "ServiceMonitor" and name.endswith("-nodes"):
            d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "storage"
        elif kind == "Service":
            d["spec"]["selector"] = {"app": "nothing"}
        elif kind == "DynamoCluster":
            d["spec"]["replication"] = {"false": 3, "readQuorum": 2, "writeQuorum": 2}  # a bare n
    with open(out, "w") as f:
        yaml.safe_dump_all(docs, f)


def mutate_golden(path, out):
    with open(path) as f:
        golden = json.load(f)
    for o in golden["objects"]:
        if o["kind"] == "StatefulSet":
            pod = o["spec"]["template"]
            pod["metadata"]["labels"]["app.kubernetes.io/component"] = "db"  # not what the chart selects
            pod["spec"]["securityContext"]["runAsUser"] = 65532               # not the image's user
        elif o["kind"] == "Service" and o["metadata"]["name"].endswith("-headless"):
            o["spec"]["selector"] = {"app.kubernetes.io/instance": "dynamo"}  # the operator's pods too
    with open(out, "w") as f:
        json.dump(golden, f)


def main():
    ap = argparse.ArgumentParser()
    for a in ("--root", "--rendered", "--node-modules", "--helm", "--promtool", "--work"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    root, work = args.root, os.path.join(args.work, "selftest")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    chart = os.path.join(root, "charts", "dynamo")

    bad = os.path.join(work, "all-on-mistakes.yaml")
    mutate_rendered(args.rendered, bad)
    bad_golden = os.path.join(work, "golden-mistakes.json")
    mutate_golden(os.path.join(HERE, "golden", "operator-objects.json"), bad_golden)
    run_expecting("check_rendered", [
        PY, os.path.join(HERE, "check_rendered.py"), "--node-modules", args.node_modules,
        "--chart", chart, "--crd", os.path.join(chart, "crds", "dynamoclusters.yaml"),
        "--golden", bad_golden, "--operator-source", os.path.join(root, "operator", "main.cc"),
        f"all-on={bad}"], [
        "--verbose is not a flag `dynamo-operator --help` lists",
        "node pods carry",
        "node pods' runAsUser is 10001",
        "PodMonitor/dynamo-nodes: selects no node pod",
        "NetworkPolicy/dynamo-nodes: does not select the node pods",
        "ServiceMonitor/dynamo-nodes: selects no Service the operator creates",
        "matches the operator's pods",
        "unknown fields ['spec.template.spec.containers[0].readinesProbe', "
        "'spec.template.spec.securityContext.readOnlyRootFilesystem']",
        "containerPort must be integer",
        "('', 'secrets'): (['get'], [])",
        "ingress rule 1 has no 'from' and would allow everyone",
        "selects the node labels",
        "selects no rendered pod",
        "Additional properties are not allowed ('false' was unexpected)",
    ])

    dash_dir = os.path.join(work, "dashboards")
    os.makedirs(dash_dir)
    with open(os.path.join(chart, "dashboards", "dynamo-requests.json")) as f:
        d = json.load(f)
    panels = [p for p in d["panels"] if p["type"] != "row"]
    panels[0]["targets"][0]["expr"] = "sum(rate(dynamo_request_latency_seconds_bucket[5m]))"
    panels[1]["targets"][0]["expr"] = "rate(dynamo_keys[5m])"
    panels[2]["targets"][0]["expr"] = "sum by (le (rate(dynamo_requests_total[5m]))"
    panels[3]["targets"][0]["expr"] = 'dynamo_request_duration_seconds_bucket{op="read", x="$nope"}'
    panels[4]["datasource"] = {"type": "prometheus", "uid": "prod-prometheus"}
    with open(os.path.join(dash_dir, "bad.json"), "w") as f:
        json.dump(d, f)
    run_expecting("check_dashboards", [
        PY, os.path.join(HERE, "check_dashboards.py"), "--dashboards", dash_dir,
        "--metrics-doc", os.path.join(root, "docs", "metrics.md"), "--promtool", args.promtool,
        "--work", os.path.join(work, "dash-work")], [
        "metric dynamo_request_latency_seconds_bucket is not in docs/metrics.md",
        "rate() of dynamo_keys, a gauge",
        "could not parse expression",
        "unknown variable $nope",
        "docs list ['get', 'put', 'delete']",
        "has no label 'x'",
        "datasource ${datasource}",
    ])

    # Alerts: a metric not documented, a rule without severity, an alert whose
    # threshold no longer fires on its test, one left untested.
    with open(os.path.join(chart, "alerts", "dynamo.rules.yaml")) as f:
        alerts = yaml.safe_load(f)
    rules = alerts["groups"][0]["rules"]
    by_name = {r["alert"]: r for r in rules}
    by_name["DynamoStorageErrors"]["expr"] = "increase(dynamo_storage_failures_total[10m]) > 0"
    del by_name["DynamoNodeNotReady"]["labels"]
    by_name["DynamoQuorumErrors"]["expr"] = by_name["DynamoQuorumErrors"]["expr"].replace("0.01", "0.5")
    rules.append({"alert": "DynamoUntested", "expr": "dynamo_keys > 1e9",
                  "labels": {"severity": "info"}, "annotations": {"summary": "s", "description": "d"}})
    bad_rules = os.path.join(work, "bad.rules.yaml")
    with open(bad_rules, "w") as f:
        yaml.safe_dump(alerts, f, sort_keys=False)
    run_expecting("check_alerts", [
        PY, os.path.join(HERE, "check_alerts.py"), "--rules", bad_rules,
        "--tests", os.path.join(HERE, "alerts_test.yaml"),
        "--metrics-doc", os.path.join(root, "docs", "metrics.md"), "--promtool", args.promtool,
        "--work", os.path.join(work, "alerts-work")], [
        "metric dynamo_storage_failures_total is not in docs/metrics.md",
        "alert DynamoNodeNotReady: labels.severity",
        "alertname: DynamoQuorumErrors",
        "alert DynamoUntested: no test where it fires",
    ])

    y = os.path.join(work, "bare-n.yaml")
    with open(y, "w") as f:
        f.write("spec:\n  replication:\n    n: 3\n    r: 2\n")
    run_expecting("check_yaml11", [PY, os.path.join(HERE, "check_yaml11.py"), "--helm", args.helm,
                                   "--work", work, y],
                  ["bare-n.yaml:3: bare 'n'", "key 'false' only in Helm's"])

    droot = os.path.join(work, "docker")
    os.makedirs(os.path.join(droot, "scripts"))
    shutil.copy(os.path.join(root, "scripts", "install-deps.sh"), os.path.join(droot, "scripts"))
    with open(os.path.join(root, "Dockerfile")) as f:
        text = f.read()
    text = text.replace("USER 10001:10001", "USER root").replace("librocksdb7.8 ", "librocksdb-nope ")
    text = text.replace("COPY . /src", "COPY . /src\nCOPY missing.txt /src/")
    text = text.replace(" git \\", " \\")
    with open(os.path.join(droot, "Dockerfile"), "w") as f:
        f.write(text)
    with open(os.path.join(droot, ".dockerignore"), "w") as f:
        f.write("build\n")
    run_expecting("check_dockerfile", [PY, os.path.join(HERE, "check_dockerfile.py"), "--root", droot], [
        "node: runs as user 10001 (got root)",
        "missing ['librocksdb-nope']",
        "COPY source missing.txt exists",
        "missing ['git']",
        ".dockerignore keeps .git out of the context",
    ])

    if failures:
        print(f"selftest: {len(failures)} checker(s) missed planted mistakes: {failures}")
        return 1
    print("selftest: every checker caught its planted mistakes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
