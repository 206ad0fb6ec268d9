#!/usr/bin/env python3
"""Checks the DynamoCluster CRD against the contract, and validates sample
DynamoClusters (positive and negative cases) against its schema and rules.

usage: check_crd.py --chart charts/dynamo --samples FILE... --node-modules DIR
"""
import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crd_schema  # noqa: E402

failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL {msg}")


def expect(cond, msg):
    if not cond:
        fail(msg)


# ---- the contract -----------------------------------------------------------------

LIMITS_H = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "node", "include", "dynamo", "server", "limits.h")


def node_limits():
    """The node's bounds (node/include/dynamo/server/limits.h), which the CRD must match."""
    with open(LIMITS_H) as f:
        found = dict(re.findall(r"inline constexpr \w+ (k\w+) = (\d+);", f.read()))
    want = ("kReplicasMax", "kVirtualNodesMax", "kPartitionsMax", "kSyncDelayUsMax")
    missing = [k for k in want if k not in found]
    if missing:
        raise SystemExit(f"check_crd: {LIMITS_H} lacks {missing}")
    return {k: int(found[k]) for k in want}


SPEC_FIELDS = {
    "replicas": ("integer", 3), "image": ("string", None), "imagePullPolicy": ("string", None),
    "virtualNodes": ("integer", 64), "partitions": ("integer", 256),
    "replication": ("object", {}), "storage": ("object", {}), "resources": ("object", None),
    "zones": ("object", {}), "metrics": ("object", {}),
}
NESTED = {
    "replication": {"factor": ("integer", 3), "readQuorum": ("integer", 2), "writeQuorum": ("integer", 2)},
    "storage": {"size": ("string", "10Gi"), "storageClassName": ("string", None),
                "durability": ("string", "durable"), "syncDelayMicroseconds": ("integer", 0),
                "deletePolicy": ("string", "Retain")},
    "zones": {"topologyKey": ("string", "topology.kubernetes.io/zone"),
              "zoneAware": ("boolean", False)},
    "metrics": {"enabled": ("boolean", True), "port": ("integer", 9100),
                "serviceMonitor": ("boolean", False), "slaSeconds": ("number", 0.3)},
}
MEMBER_STATES = ["standby", "joining", "normal", "leaving", "left", "unknown"]
STATUS_FIELDS = {"observedGeneration", "replicas", "readyMembers", "conditions", "members", "handoffs"}
CONDITION_FIELDS = {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"}
MEMBER_FIELDS = {"name", "nodeId", "state", "ready", "ownedPartitions", "keys", "zone"}
HANDOFF_FIELDS = {"node", "keysRemaining", "keysSent", "bytesSent", "ranges"}
PRINTER_COLUMNS = [
    ("Replicas", ".spec.replicas"), ("Ready", ".status.readyMembers"),
    ("Factor", ".spec.replication.factor"), ("ReadQuorum", ".spec.replication.readQuorum"),
    ("WriteQuorum", ".spec.replication.writeQuorum"),
    ("Available", '.status.conditions[?(@.type=="Available")].status'),
    ("Age", ".metadata.creationTimestamp"),
]
EXPECTED_RULES = {
    (("spec",), "self.replication.factor <= self.replicas"),
    (("spec", "partitions"), "self == oldSelf"),
    (("spec", "replication", "factor"), "self == oldSelf"),
    (("spec", "replication"), "self.readQuorum >= 1 && self.readQuorum <= self.factor"),
    (("spec", "replication"), "self.writeQuorum >= 1 && self.writeQuorum <= self.factor"),
    (("spec", "storage"), "self.durability == 'durable' || self.syncDelayMicroseconds == 0"),
    (("spec", "storage", "size"), "self == oldSelf"),
    (("spec", "storage", "storageClassName"), "self == oldSelf"),
}


def check_contract(crd, app_version):
    print("CRD: names, scope, subresources, printer columns, fields")
    s = crd["spec"]
    expect(crd["metadata"]["name"] == "dynamoclusters.dynamo.dev", "CRD name")
    expect(s["group"] == "dynamo.dev", "group is dynamo.dev")
    expect(s["scope"] == "Namespaced", "scope is Namespaced")
    n = s["names"]
    expect((n["kind"], n["plural"], n.get("shortNames")) == ("DynamoCluster", "dynamoclusters", ["dyn"]),
           "kind DynamoCluster, plural dynamoclusters, shortName dyn")
    versions = s["versions"]
    expect([v["name"] for v in versions] == ["v1alpha1"], "one version, v1alpha1")
    v = versions[0]
    expect(v.get("served") and v.get("storage"), "v1alpha1 served and stored")
    sub = v.get("subresources", {})
    expect(sub.get("status") == {}, "status subresource")
    expect(sub.get("scale") == {"specReplicasPath": ".spec.replicas",
                                "statusReplicasPath": ".status.replicas"},
           "scale subresource on .spec.replicas / .status.replicas")
    cols = [(c["name"], c["jsonPath"]) for c in v.get("additionalPrinterColumns", [])]
    expect(cols == PRINTER_COLUMNS, f"printer columns {cols}")
    root = v["schema"]["openAPIV3Schema"]
    spec = root["properties"]["spec"]
    expect(set(spec["properties"]) == set(SPEC_FIELDS),
           f"spec fields {sorted(spec['properties'])} == {sorted(SPEC_FIELDS)}")
    for name, (typ, default) in SPEC_FIELDS.items():
        p = spec["properties"].get(name, {})
        expect(p.get("type") == typ, f"spec.{name} has type {typ}")
        if default is not None:
            expect(p.get("default") == default, f"spec.{name} defaults to {default!r}")
    for obj, fields in NESTED.items():
        props = spec["properties"].get(obj, {}).get("properties", {})
        expect(set(props) == set(fields), f"spec.{obj} fields {sorted(props)} == {sorted(fields)}")
        for name, (typ, default) in fields.items():
            p = props.get(name, {})
            expect(p.get("type") == typ, f"spec.{obj}.{name} has type {typ}")
            if default is not None:
                expect(p.get("default") == default, f"spec.{obj}.{name} defaults to {default!r}")
            else:
                expect("default" not in p, f"spec.{obj}.{name} has no default")
    expect(spec["properties"]["image"].get("default") == f"dynamo:{app_version}",
           f"spec.image defaults to dynamo:{app_version} (the chart's appVersion)")
    expect(spec["properties"]["resources"].get("x-kubernetes-preserve-unknown-fields") is True,
           "spec.resources preserves unknown fields")
    expect(spec["properties"]["storage"]["properties"]["durability"].get("enum") == ["durable", "buffered"],
           "durability enum durable|buffered")
    expect(spec["properties"]["storage"]["properties"]["deletePolicy"].get("enum") == ["Retain", "Delete"],
           "deletePolicy enum Retain|Delete")
    limits = node_limits()
    delay = spec["properties"]["storage"]["properties"]["syncDelayMicroseconds"]
    expect((delay.get("minimum"), delay.get("maximum")) == (0, limits["kSyncDelayUsMax"]),
           f"syncDelayMicroseconds 0..{limits['kSyncDelayUsMax']} (the node's --sync-delay-us)")
    vn = spec["properties"]["virtualNodes"]
    expect((vn.get("minimum"), vn.get("maximum")) == (1, limits["kVirtualNodesMax"]),
           f"virtualNodes 1..{limits['kVirtualNodesMax']} (the node's --vnodes)")
    for name in ("factor", "readQuorum", "writeQuorum"):
        rep = spec["properties"]["replication"]["properties"][name]
        expect((rep.get("minimum"), rep.get("maximum")) == (1, limits["kReplicasMax"]),
               f"replication.{name} 1..{limits['kReplicasMax']}")
    parts = spec["properties"]["partitions"]
    powers = [2 ** i for i in range(4, 64) if 2 ** i <= limits["kPartitionsMax"]]
    expect(parts.get("enum") == powers, f"partitions: powers of two 16..{limits['kPartitionsMax']}")
    status = root["properties"]["status"]["properties"]
    expect(set(status) == STATUS_FIELDS, f"status fields {sorted(status)}")
    cond = status["conditions"]["items"]["properties"]
    expect(set(cond) == CONDITION_FIELDS, f"condition fields {sorted(cond)}")
    expect(cond["type"].get("enum") == ["Available", "Progressing", "Degraded"], "condition types")
    expect(set(status["members"]["items"]["properties"]) == MEMBER_FIELDS, "member fields")
    expect(status["members"]["items"]["properties"]["state"].get("enum") == MEMBER_STATES,
           f"member states {MEMBER_STATES} (the operator's StatusStateName)")
    expect(set(status["handoffs"]["items"]["properties"]) == HANDOFF_FIELDS, "handoff fields")
    rules = {(p, r) for p, r, _ in crd_schema.collect_rules(root)}
    expect(rules == EXPECTED_RULES, f"CEL rules {sorted(rules)}")
    check_structural(root, "openAPIV3Schema")


def check_structural(node, path, in_int_or_string=False):
    """The parts of Kubernetes' structural-schema rules that matter here."""
    if not isinstance(node, dict):
        return
    if not (node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
            or in_int_or_string):
        expect("type" in node, f"{path}: every schema node needs a type (structural schema)")
    expect(not ("properties" in node and "additionalProperties" in node),
           f"{path}: properties and additionalProperties are exclusive")
    if "default" in node and path.endswith(".metadata"):
        fail(f"{path}: no defaults in metadata")
    for k in ("properties",):
        for name, p in node.get(k, {}).items():
            check_structural(p, f"{path}.{name}")
    for k in ("items", "additionalProperties"):
        if isinstance(node.get(k), dict):
            check_structural(node[k], f"{path}.{k}")
    for k in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(node.get(k, [])):
            check_structural(sub, f"{path}.{k}[{i}]", in_int_or_string=True)


# ---- samples, negative cases, CEL cross-check ----------------------------------------

def with_spec(base, **changes):
    obj = copy.deepcopy(base)
    spec = obj.setdefault("spec", {})
    for path, value in changes.items():
        keys = path.split("__")
        d = spec
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        if value is DELETE:
            d.pop(keys[-1], None)
        else:
            d[keys[-1]] = value
    return obj


DELETE = object()


def cases(base):
    """(name, object, old object or None, expected: True = admitted)."""
    full_status = {
        "observedGeneration": 2, "replicas": 3, "readyMembers": 3,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "QuorumReachable", "message": "3/3 ready",
             "lastTransitionTime": "2026-01-02T03:04:05Z", "observedGeneration": 2},
            {"type": "Progressing", "status": "False", "reason": "Reconciled",
             "lastTransitionTime": "2026-01-02T03:04:05Z"},
            {"type": "Degraded", "status": "False", "reason": "AllMembersUp",
             "lastTransitionTime": "2026-01-02T03:04:05.123+01:00"}],
        "members": [{"name": "dynamo-0", "nodeId": "n0", "state": "normal", "ready": True,
                     "ownedPartitions": 192, "keys": 1000},
                    {"name": "dynamo-1", "nodeId": "dynamo-1", "state": "unknown", "ready": False,
                     "ownedPartitions": 0, "keys": 0},
                    {"name": "dynamo-2", "nodeId": "dynamo-2", "ready": False}],
        "handoffs": [{"node": "n3", "keysRemaining": 10, "keysSent": 90, "bytesSent": 9000, "ranges": 4}],
    }
    minimal = {"apiVersion": base["apiVersion"], "kind": base["kind"],
               "metadata": {"name": "minimal"}, "spec": {}}
    no_spec = {"apiVersion": base["apiVersion"], "kind": base["kind"], "metadata": {"name": "nospec"}}
    status_bad = copy.deepcopy(full_status)
    status_bad["conditions"][0]["type"] = "Ready"
    state_bad = copy.deepcopy(full_status)
    state_bad["members"][1]["state"] = "down"
    return [
        ("minimal spec {} (all defaults)", minimal, None, True),
        ("no spec at all (defaulted to {})", no_spec, None, True),
        ("5 nodes, factor 5, quorums 3, zone-aware, buffered", with_spec(
            base, replicas=5, replication={"factor": 5, "readQuorum": 3, "writeQuorum": 3},
            zones__zoneAware=True,
            storage__durability="buffered", resources={"requests": {"cpu": "500m", "memory": "1Gi"},
                                                      "limits": {"memory": 2147483648}}), None, True),
        ("1 node, factor and quorums 1", with_spec(
            base, replicas=1, replication={"factor": 1, "readQuorum": 1, "writeQuorum": 1}), None, True),
        ("replication {} (all defaulted)", with_spec(base, replication={}), None, True),
        ("with a full status", dict(with_spec(base), status=full_status), None, True),
        ("replicas 0", with_spec(base, replicas=0), None, False),
        ("readQuorum > factor", with_spec(
            base, replication={"factor": 3, "readQuorum": 4, "writeQuorum": 2}), None, False),
        ("writeQuorum > factor", with_spec(
            base, replication={"factor": 2, "readQuorum": 1, "writeQuorum": 3}), None, False),
        ("readQuorum = 0", with_spec(base, replication__readQuorum=0), None, False),
        ("writeQuorum > defaulted factor 3", with_spec(
            base, replicas=5, replication={"writeQuorum": 4}), None, False),
        ("factor > replicas", with_spec(
            base, replicas=2, replication={"factor": 3, "readQuorum": 2, "writeQuorum": 2}), None, False),
        ("factor = 5 with replicas defaulted to 3", with_spec(
            base, replicas=DELETE, replication={"factor": 5, "readQuorum": 3, "writeQuorum": 3}), None, False),
        ("factor = 17", with_spec(
            base, replicas=20, replication={"factor": 17, "readQuorum": 2, "writeQuorum": 2}), None, False),
        ("factor = 0", with_spec(
            base, replication={"factor": 0, "readQuorum": 1, "writeQuorum": 1}), None, False),
        ("the old fields n, r, w", with_spec(base, replication={"n": 3, "r": 2, "w": 2}), None, False),
        ("a bare YAML 1.1 n, read as false", with_spec(
            base, replication={"false": 3, "readQuorum": 2, "writeQuorum": 2}), None, False),
        ("member state 'down'", dict(with_spec(base), status=state_bad), None, False),
        ("durability 'sometimes'", with_spec(base, storage__durability="sometimes"), None, False),
        ("deletePolicy 'delete' (lower case)", with_spec(base, storage__deletePolicy="delete"), None, False),
        ("syncDelayMicroseconds 2000, durable", with_spec(base, storage__syncDelayMicroseconds=2000), None, True),
        ("syncDelayMicroseconds 0, buffered", with_spec(
            base, storage={"durability": "buffered", "syncDelayMicroseconds": 0}), None, True),
        ("syncDelayMicroseconds 2000, buffered", with_spec(
            base, storage={"durability": "buffered", "syncDelayMicroseconds": 2000}), None, False),
        ("syncDelayMicroseconds -1", with_spec(base, storage__syncDelayMicroseconds=-1), None, False),
        ("syncDelayMicroseconds 100001", with_spec(base, storage__syncDelayMicroseconds=100001), None, False),
        ("partitions 100 (not a power of two)", with_spec(base, partitions=100), None, False),
        ("partitions 8", with_spec(base, partitions=8), None, False),
        ("partitions 131072", with_spec(base, partitions=131072), None, False),
        ("virtualNodes 0", with_spec(base, virtualNodes=0), None, False),
        ("virtualNodes 5000", with_spec(base, virtualNodes=5000), None, False),
        ("storage.size 'ten gigs'", with_spec(base, storage__size="ten gigs"), None, False),
        ("slaSeconds 0", with_spec(base, metrics__slaSeconds=0), None, False),
        ("metrics.port 70000", with_spec(base, metrics__port=70000), None, False),
        ("imagePullPolicy 'Sometimes'", with_spec(base, imagePullPolicy="Sometimes"), None, False),
        ("replicas as a string", with_spec(base, replicas="3"), None, False),
        ("unknown field spec.replica (a typo the API server would drop)", with_spec(base, replica=5), None, False),
        ("condition type 'Ready'", dict(with_spec(base), status=status_bad), None, False),
        ("update: partitions unchanged", with_spec(base, partitions=512, replicas=4),
         with_spec(base, partitions=512), True),
        ("update: partitions defaulted both times", with_spec(base, partitions=DELETE, replicas=4),
         with_spec(base, partitions=DELETE), True),
        ("update: partitions 256 -> 512 (immutable)", with_spec(base, partitions=512),
         with_spec(base, partitions=256), False),
        ("update: scale 3 -> 5", with_spec(base, replicas=5), with_spec(base, replicas=3), True),
        ("update: storage.size 10Gi -> 50Gi (fixed)", with_spec(base, storage__size="50Gi"),
         with_spec(base, storage__size="10Gi"), False),
        ("update: storage.size defaulted both times", with_spec(base, replicas=4, storage__size=DELETE),
         with_spec(base, storage__size=DELETE), True),
        ("update: storageClassName fast -> slow (fixed)", with_spec(
            base, storage__storageClassName="slow"), with_spec(base, storage__storageClassName="fast"), False),
        ("update: storageClassName unchanged", with_spec(
            base, replicas=4, storage__storageClassName="fast"),
         with_spec(base, storage__storageClassName="fast"), True),
        ("update: factor unchanged, quorums changed", with_spec(
            base, replication={"factor": 3, "readQuorum": 1, "writeQuorum": 3}),
         with_spec(base, replication={"factor": 3, "readQuorum": 2, "writeQuorum": 2}), True),
        ("update: factor defaulted both times", with_spec(base, replication={"readQuorum": 1}),
         with_spec(base, replication=DELETE), True),
        ("update: factor 3 -> 5 (immutable)", with_spec(
            base, replicas=5, replication={"factor": 5, "readQuorum": 3, "writeQuorum": 3}),
         with_spec(base, replicas=5, replication={"factor": 3, "readQuorum": 2, "writeQuorum": 2}), False),
        ("update: factor defaulted 3 -> 1 (immutable)", with_spec(
            base, replication={"factor": 1, "readQuorum": 1, "writeQuorum": 1}),
         with_spec(base, replication=DELETE), False),
    ]


def run_node(node_modules, request):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s_validate.mjs")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(request, f)
        path = f.name
    try:
        out = subprocess.run(["node", script, node_modules, path], check=True, capture_output=True, text=True)
    finally:
        os.unlink(path)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chart", required=True)
    ap.add_argument("--samples", nargs="+", required=True)
    ap.add_argument("--node-modules", required=True)
    args = ap.parse_args()

    with open(os.path.join(args.chart, "crds", "dynamoclusters.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if len(docs) != 1:
        fail(f"crds/dynamoclusters.yaml holds {len(docs)} documents, expected 1")
        return 1
    crd = docs[0]
    with open(os.path.join(args.chart, "Chart.yaml")) as f:
        app_version = yaml.safe_load(f)["appVersion"]
    check_contract(crd, app_version)
    validator = crd_schema.Validator(crd)

    print("CRD: samples")
    base = None
    for path in args.samples:
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                _, errors = validator.validate(doc)
                expect(not errors, f"{path}: {doc.get('metadata', {}).get('name')}: {errors}")
                if base is None:
                    base = doc
                if "status" not in doc:
                    print(f"  ok   {path}: {doc['metadata']['name']}")
    if base is None:
        fail("no sample DynamoCluster found")
        return 1
    base = copy.deepcopy(base)
    base["metadata"] = {"name": "case"}

    print("CRD: positive and negative cases (schema + CEL rules emulated in Python)")
    evaluations = []  # for the real-CEL cross-check
    for name, obj, old, admitted in cases(base):
        defaulted, errors = validator.validate(obj, old)
        if admitted:
            expect(not errors, f"case '{name}' must be admitted, got {errors}")
        else:
            expect(bool(errors), f"case '{name}' must be rejected, was admitted")
        print(f"  {'ok  ' if bool(errors) != admitted else 'FAIL'} {name}: "
              f"{'admitted' if not errors else 'rejected: ' + errors[0]}")
        # Every rule that applies to a schema-valid object, for the cross-check.
        schema_errors = list(validator.validator.iter_errors(defaulted))
        if not schema_errors:
            old_d = crd_schema.apply_defaults(validator.openapi, copy.deepcopy(old)) if old else None
            for path, rule, _, value, old_value, transition in validator.evaluations(defaulted, old_d):
                emulated = crd_schema.RULES[rule](value, old_value)
                evaluations.append((name, path, rule, value, old_value, transition, emulated))

    print(f"CRD: {len(evaluations)} rule evaluations cross-checked with a real CEL evaluator")
    request = {"cel": []}
    for _, _, rule, value, old_value, transition, _ in evaluations:
        c = {"rule": rule, "self": value}
        if transition:
            c["oldSelf"] = old_value
        request["cel"].append(c)
    results = run_node(args.node_modules, request)["cel"]
    for (name, path, rule, _, _, _, emulated), res in zip(evaluations, results):
        if not res["ok"]:
            fail(f"CEL error in rule '{rule}' at {'.'.join(path)} (case '{name}'): {res['error']}")
        elif res["value"] != emulated:
            fail(f"CEL says {res['value']} but the emulation says {emulated} for '{rule}' (case '{name}')")
    expect({r for _, _, r, *_ in evaluations} == set(crd_schema.RULES),
           "every rule was evaluated at least once")
    falses = {r for _, _, r, _, _, _, e in evaluations if not e}
    expect(falses == set(crd_schema.RULES), f"every rule was seen rejecting something: {sorted(falses)}")

    if failures:
        print(f"check_crd: {len(failures)} failure(s)")
        return 1
    print("check_crd: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
