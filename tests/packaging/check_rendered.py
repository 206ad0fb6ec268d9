#!/usr/bin/env python3
"""Validates rendered Kubernetes objects offline: the output of `helm template`
for each values scenario, the CRD, and the `kubectl kustomize` output of
manifests/.

For every object: the JSON schema of its kind from the Kubernetes OpenAPI spec
(k8s_validate.mjs: types, required fields, enums, formats), unknown fields
(k8s_types.py), names, namespaces, labels. DynamoClusters are validated
against the CRD (crd_schema.py). Then what this chart promises: a hardened
operator pod, least-privilege RBAC, selectors that select, NetworkPolicies that
never allow everyone, monitors on the node labels, dashboards labelled for
Grafana.

What the operator creates for a cluster is not templated by the chart; the
reconciler's tests keep golden/operator-objects.json equal to what it renders
for the sample DynamoCluster, and --golden checks those objects too: their
Kubernetes schemas, node pods that run as the image's user, and labels that
line up with the chart (its node ServiceMonitor, PodMonitor and NetworkPolicy
select the node pods and Services; nothing the operator selects or watches
by matches the operator's own pods). The operator Deployment's flags must be
ones `dynamo-operator --help` lists (--operator-help, or the usage text of
operator/main.cc).

usage: check_rendered.py --node-modules DIR --crd FILE --chart DIR
                         [--types-cache FILE] [--golden FILE --sample FILE]
                         [--operator-source main.cc [--operator-help FILE]]
                         SCENARIO=FILE...
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crd_schema  # noqa: E402
import k8s_types  # noqa: E402

failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL {msg}")


def expect(cond, msg):
    if not cond:
        fail(msg)
    return cond


CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
NODE_LABELS = {"app.kubernetes.io/name": "dynamo", "app.kubernetes.io/component": "node"}
NODE_UID = 10001  # the image's user (Dockerfile: useradd --uid 10001; check_dockerfile.py)
# Flags the operator Deployment's args use; filled from --operator-help.
OPERATOR_FLAGS = set()

# The operator's rules (the contract): (apiGroup, resource) -> verbs.
OPERATOR_RULES = {
    ("dynamo.dev", "dynamoclusters"): {"get", "list", "watch", "update", "patch"},
    ("dynamo.dev", "dynamoclusters/status"): {"get", "update", "patch"},
    ("dynamo.dev", "dynamoclusters/finalizers"): {"get", "update", "patch"},
    ("apps", "statefulsets"): {"create", "get", "list", "watch", "patch", "update", "delete"},
    ("", "services"): {"create", "get", "list", "watch", "patch", "update", "delete"},
    ("", "configmaps"): {"create", "get", "list", "watch", "patch", "update", "delete"},
    ("policy", "poddisruptionbudgets"): {"create", "get", "list", "watch", "patch", "update", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    # patch: the dynamo.dev/node-left mark on a left node's claim.
    ("", "persistentvolumeclaims"): {"get", "list", "watch", "patch", "delete"},
    ("", "events"): {"create", "patch"},
}
LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
# Only with rbac.manageServiceMonitors (the all-on scenario).
# list: a 404 then tells a missing CRD; create and patch: server-side apply.
SERVICE_MONITOR_RULES = {("monitoring.coreos.com", "servicemonitors"):
                         {"list", "create", "patch", "delete"}}
# With rbac.readNodes (the default): Nodes' zone labels, for zone-aware
# clusters. Nodes are cluster-scoped, so a ClusterRole of its own, read only.
NODE_READ_RULES = {("", "nodes"): {"get"}}

# What each scenario must (True) or must not (False) render.
SCENARIO_KINDS = {
    "default": {"Deployment": True, "Service": True, "ServiceAccount": True, "Role": True,
                "RoleBinding": True, "ConfigMap": True, "ServiceMonitor": False, "PodMonitor": False,
                "PrometheusRule": False, "NetworkPolicy": False, "DynamoCluster": False, "PodDisruptionBudget": False,
                "ClusterRoleBinding": True},
    "all-on": {"Deployment": True, "ServiceMonitor": True, "PodMonitor": True, "PrometheusRule": True,
               "NetworkPolicy": True,
               "DynamoCluster": True, "PodDisruptionBudget": True, "ClusterRoleBinding": True,
               "ConfigMap": True},
    "minimal": {"Deployment": True, "ConfigMap": False, "ClusterRole": False, "ServiceAccount": False,
                "Role": False},
    "manifests": {"Namespace": True, "CustomResourceDefinition": True, "Deployment": True,
                  "Role": True, "RoleBinding": True, "ServiceAccount": True, "Service": True},
    "manifests-monitoring": {"ServiceMonitor": True, "PrometheusRule": True, "ConfigMap": True},
}


def rules_of(role):
    out = {}
    for r in role.get("rules") or []:
        for k in ("apiGroups", "resources", "verbs"):
            for v in r.get(k, []):
                expect("*" not in v, f"{role['kind']} {role['metadata']['name']}: wildcard {k} {v!r}")
        expect(not r.get("nonResourceURLs"), f"{role['metadata']['name']}: nonResourceURLs")
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                out.setdefault((g, res), set()).update(r.get("verbs", []))
    return out


def check_object_basics(scenario, obj, seen):
    kind = obj.get("kind", "?")
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    where = f"{scenario}: {kind}/{name}"
    expect(obj.get("apiVersion"), f"{where}: apiVersion")
    expect(name and len(name) <= 253 and DNS_SUBDOMAIN.match(name), f"{where}: metadata.name is a DNS subdomain")
    if kind in ("Service", "Namespace"):
        expect(len(name) <= 63 and DNS_LABEL.match(name), f"{where}: name is a DNS label (<= 63)")
    if kind in CLUSTER_SCOPED:
        expect("namespace" not in meta, f"{where}: cluster-scoped, must not set a namespace")
    else:
        expect(meta.get("namespace"), f"{where}: namespaced, must set metadata.namespace")
    for k, v in (meta.get("labels") or {}).items():
        prefix, _, short = k.rpartition("/")
        expect(isinstance(v, str) and len(v) <= 63 and LABEL_VALUE.match(v),
               f"{where}: label {k}={v!r} is not a valid label value")
        expect(len(short) <= 63 and LABEL_KEY_NAME.match(short) and (not prefix or DNS_SUBDOMAIN.match(prefix)),
               f"{where}: label key {k!r}")
    for k, v in (meta.get("annotations") or {}).items():
        expect(isinstance(v, str), f"{where}: annotation {k} must be a string")
    key = (obj.get("apiVersion"), kind, meta.get("namespace"), name)
    expect(key not in seen, f"{where}: rendered twice")
    seen.add(key)


def pod_spec_checks(where, pod, pod_labels, selector):
    spec = pod["spec"]
    expect(selector and all(pod_labels.get(k) == v for k, v in selector.items()),
           f"{where}: selector {selector} must select the pod labels")
    psc = spec.get("securityContext") or {}
    expect(psc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
    expect(psc.get("runAsUser", 1) != 0, f"{where}: pod runAsUser is not 0")
    expect((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{where}: seccomp RuntimeDefault")
    for c in spec.get("containers", []):
        cw = f"{where}: container {c['name']}"
        sc = c.get("securityContext") or {}
        expect(sc.get("readOnlyRootFilesystem") is True, f"{cw}: readOnlyRootFilesystem")
        expect(sc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation false")
        expect("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), f"{cw}: drops ALL capabilities")
        expect(not sc.get("privileged"), f"{cw}: not privileged")
        image = c.get("image", "")
        expect(image and not image.endswith(":latest") and (":" in image or "@" in image),
               f"{cw}: image {image!r} has a fixed tag or digest")
        expect(c.get("livenessProbe") and c.get("readinessProbe"), f"{cw}: liveness and readiness probes")
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe"):
            port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
            if isinstance(port, str):
                expect(port in ports, f"{cw}: {probe} port {port!r} is a container port name")
        res = c.get("resources") or {}
        expect((res.get("requests") or {}).get("memory") and (res.get("limits") or {}).get("memory"),
               f"{cw}: memory request and limit")
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        expect("/tmp" in mounts, f"{cw}: /tmp mounted (read-only root filesystem)")
    return {p.get("name"): p["containerPort"] for c in spec.get("containers", []) for p in c.get("ports", [])}


def semantic_checks(scenario, objs, values_hint, chart_dir):
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    for kind, want in SCENARIO_KINDS.get(scenario, {}).items():
        expect(bool(by_kind.get(kind)) == want,
               f"{scenario}: {'expected' if want else 'did not expect'} a {kind}")

    deployments = by_kind.get("Deployment", [])
    pods = {}  # namespace -> [(labels, port names)]
    for d in deployments:
        where = f"{scenario}: Deployment/{d['metadata']['name']}"
        tmpl = d["spec"]["template"]
        ports = pod_spec_checks(where, tmpl, tmpl["metadata"].get("labels") or {},
                                d["spec"]["selector"].get("matchLabels") or {})
        pods.setdefault(d["metadata"]["namespace"], []).append((tmpl["metadata"].get("labels") or {}, ports))
        expect((tmpl["metadata"].get("labels") or {}).get("app.kubernetes.io/name") != "dynamo",
               f"{where}: operator pods must not carry app.kubernetes.io/name=dynamo, which the storage "
               f"pods' selectors (name=dynamo, instance=<cluster>) use")
        c = tmpl["spec"]["containers"][0]
        args = c.get("args", [])
        replicas = d["spec"].get("replicas", 1)
        if replicas > 1:
            expect("--leader-election" in args, f"{where}: {replicas} replicas need --leader-election")
            expect(any(a.startswith("--lease-name=") for a in args), f"{where}: --lease-name")
        mp = [a.split("=", 1)[1] for a in args if a.startswith("--metrics-port=")]
        expect(mp and int(mp[0]) in ports.values(), f"{where}: --metrics-port is a container port")
        expect(any(a.startswith("--node-address=") and a.split("=", 1)[1] in ("pod-dns", "pod-ip") for a in args),
               f"{where}: --node-address=pod-dns|pod-ip")
        ns_args = [a for a in args if a.startswith("--namespace=")]
        if scenario in ("all-on",):
            expect(not ns_args, f"{where}: cluster-wide operator must not pin --namespace")
        else:
            expect(len(ns_args) == 1, f"{where}: namespaced operator needs --namespace")
        for flag in args:
            expect(flag.startswith("--"), f"{where}: argument {flag!r} is a flag")
            name = flag[2:].split("=", 1)[0]
            if OPERATOR_FLAGS:
                expect(name in OPERATOR_FLAGS,
                       f"{where}: --{name} is not a flag `dynamo-operator --help` lists "
                       f"(it would refuse to start): {sorted(OPERATOR_FLAGS)}")

    for s in by_kind.get("Service", []):
        where = f"{scenario}: Service/{s['metadata']['name']}"
        sel = s["spec"].get("selector") or {}
        match = [ports for labels, ports in pods.get(s["metadata"]["namespace"], [])
                 if sel and all(labels.get(k) == v for k, v in sel.items())]
        expect(match, f"{where}: selector {sel} selects no rendered pod")
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort", p.get("port"))
            if isinstance(tp, str) and match:
                expect(tp in match[0], f"{where}: targetPort {tp!r} is a named container port")

    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"].get("matchLabels") or {}
        expect(any(all(l.get(k) == v for k, v in sel.items()) for l, _ in pods.get(pdb["metadata"]["namespace"], [])),
               f"{scenario}: PodDisruptionBudget selects the operator pods")

    # RBAC: the operator's rules are exactly the contract's; bindings point at rendered roles.
    roles = {(r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]): r
             for r in by_kind.get("Role", []) + by_kind.get("ClusterRole", [])}
    sas = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in by_kind.get("ServiceAccount", [])}
    bound = []
    for b in by_kind.get("RoleBinding", []) + by_kind.get("ClusterRoleBinding", []):
        where = f"{scenario}: {b['kind']}/{b['metadata']['name']}"
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles.get((ref["kind"], ns, ref["name"]))
        if not expect(role is not None, f"{where}: roleRef {ref['kind']}/{ref['name']} is not rendered"):
            continue
        for subj in b.get("subjects", []):
            expect(subj["kind"] == "ServiceAccount", f"{where}: binds only service accounts")
            if sas:
                expect((subj.get("namespace"), subj["name"]) in sas, f"{where}: subject {subj} is rendered")
        bound.append((b, role))
    for r in roles.values():
        rules_of(r)  # wildcard checks on every role
        if r["kind"] == "ClusterRole" and not any(role is r for _, role in bound):
            labels = r["metadata"].get("labels") or {}
            expect(any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in labels),
                   f"{scenario}: unbound ClusterRole {r['metadata']['name']} is an aggregated role")
            for (g, res), verbs in rules_of(r).items():
                expect(g == "dynamo.dev", f"{scenario}: aggregated role {r['metadata']['name']} only "
                                          f"grants dynamo.dev, not {g}/{res}")
    if bound:
        granted = {}
        for b, role in bound:
            for k, v in rules_of(role).items():
                granted.setdefault(k, set()).update(v)
            if role["kind"] == "ClusterRole" and set(rules_of(role)) != set(NODE_READ_RULES):
                expect(scenario == "all-on", f"{scenario}: a ClusterRole is bound only in cluster-wide mode "
                                             f"(or to read nodes)")
        want = {**OPERATOR_RULES, **LEASE_RULES, **NODE_READ_RULES,
                **(SERVICE_MONITOR_RULES if scenario == "all-on" else {})}
        diff = {k: (sorted(granted.get(k, ())), sorted(want.get(k, ())))
                for k in set(granted) | set(want) if granted.get(k) != want.get(k)}
        expect(not diff, f"{scenario}: the operator is granted exactly the contract's rules; "
                         f"differences (granted, wanted): {diff}")
        for b, role in bound:
            if rules_of(role).keys() & LEASE_RULES.keys():
                expect(role["kind"] == "Role" and set(rules_of(role)) == set(LEASE_RULES),
                       f"{scenario}: leases are granted by a Role of their own, namespaced")
            if rules_of(role).keys() & NODE_READ_RULES.keys():
                expect(role["kind"] == "ClusterRole" and rules_of(role) == NODE_READ_RULES,
                       f"{scenario}: nodes are granted (get only) by a ClusterRole of their own")

    for np in by_kind.get("NetworkPolicy", []):
        where = f"{scenario}: NetworkPolicy/{np['metadata']['name']}"
        expect("Ingress" in np["spec"].get("policyTypes", []), f"{where}: policyTypes Ingress")
        for i, rule in enumerate(np["spec"].get("ingress") or []):
            expect(rule.get("from"), f"{where}: ingress rule {i} has no 'from' and would allow everyone")
            expect(rule.get("ports"), f"{where}: ingress rule {i} has no ports and would allow every port")
        sel = np["spec"]["podSelector"].get("matchLabels") or {}
        expect(sel, f"{where}: selects pods by label (an empty selector selects every pod)")
    node_nps = [np for np in by_kind.get("NetworkPolicy", [])
                if (np["spec"]["podSelector"].get("matchLabels") or {}) == NODE_LABELS]
    if by_kind.get("NetworkPolicy"):
        expect(len(node_nps) == 1, f"{scenario}: one NetworkPolicy selects the node pods {NODE_LABELS}")
        for np in node_nps:
            ports = sorted(p["port"] for r in np["spec"].get("ingress") or [] for p in r.get("ports", []))
            expect(ports == [7000, 9100], f"{scenario}: node NetworkPolicy opens 7000 and 9100, got {ports}")
            peers = [p for r in np["spec"]["ingress"] if (r.get("ports") or [{}])[0].get("port") == 7000 for p in r.get("from", [])]
            expect({"podSelector": {"matchLabels": NODE_LABELS}} in peers,
                   f"{scenario}: node NetworkPolicy lets node pods reach 7000")

    for kind, ep_key in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        for m in by_kind.get(kind, []):
            where = f"{scenario}: {kind}/{m['metadata']['name']}"
            sel = m["spec"]["selector"].get("matchLabels") or {}
            eps = m["spec"].get(ep_key) or []
            expect(eps and all(e.get("port") == "metrics" for e in eps), f"{where}: scrapes the port named metrics")
            if sel.get("app.kubernetes.io/component") != "operator":
                expect(sel == NODE_LABELS, f"{where}: selects the node labels {NODE_LABELS}, got {sel}")

    dashboards_dir = os.path.join(chart_dir, "dashboards")
    files = sorted(f for f in os.listdir(dashboards_dir) if f.endswith(".json"))
    dash_cms = [c for c in by_kind.get("ConfigMap", []) if any(k.endswith(".json") for k in c.get("data", {}))]
    if dash_cms:
        expect(sorted(k for c in dash_cms for k in c["data"]) == files,
               f"{scenario}: one dashboard ConfigMap per file of dashboards/")
        for c in dash_cms:
            where = f"{scenario}: ConfigMap/{c['metadata']['name']}"
            expect((c["metadata"].get("labels") or {}).get("grafana_dashboard") == "1",
                   f"{where}: label grafana_dashboard: \"1\"")
            for k, v in c["data"].items():
                with open(os.path.join(dashboards_dir, k)) as f:
                    expect(json.loads(v) == json.load(f), f"{where}: {k} is the chart's dashboard, unchanged")
            size = sum(len(v.encode()) for v in c["data"].values())
            expect(size < 1_000_000, f"{where}: {size} bytes fits a ConfigMap")


def selector_matches(selector, labels):
    """matchLabels (a dict) or an equality selector string "k=v,k2=v2"."""
    if isinstance(selector, str):
        selector = dict(p.split("=", 1) for p in selector.split(",") if p)
    return bool(selector) and all((labels or {}).get(k) == v for k, v in selector.items())


def operator_flags(source, help_file):
    """The flags of dynamo-operator: those its --help lists (the binary's
    output if given, else the usage text in main.cc), checked against the
    flags main.cc accepts."""
    with open(source) as f:
        text = f.read()
    usage = re.search(r'kUsage\[\] =\s*R"\((.*?)\)"', text, re.S)
    known = re.search(r"kKnown\[\] = \{(.*?)\};", text, re.S)
    if not expect(usage and known, f"{source}: no kUsage or kKnown to read the flags from"):
        return set()
    accepted = set(re.findall(r'"([a-z0-9-]+)"', known.group(1)))
    help_text = usage.group(1)
    if help_file:
        with open(help_file) as f:
            help_text = f.read()
    listed = set(re.findall(r"^\s+--([a-z0-9-]+)", help_text, re.M))
    expect(listed and listed | {"help"} == accepted,
           f"dynamo-operator --help lists {sorted(listed)} but main.cc accepts {sorted(accepted)}")
    print(f"dynamo-operator flags ({'--help of the binary' if help_file else 'usage in ' + source}): "
          f"{len(listed)}")
    return listed


def golden_checks(golden, sample_path, loaded):
    """The operator's objects (golden) against the chart's rendered scenarios."""
    where = "golden"
    if sample_path:
        with open(sample_path) as f:
            sample = next(d for d in yaml.safe_load_all(f) if d)
        expect(golden["cluster"]["spec"] == sample["spec"],
               f"{where}: cluster.spec {golden['cluster']['spec']} is not {sample_path}'s "
               f"{sample['spec']}: regenerate the golden file (see its 'about')")
    objs = golden["objects"]
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    stss = by_kind.get("StatefulSet", [])
    if not expect(len(stss) == 1 and len(by_kind.get("Service", [])) == 2,
                  f"{where}: one StatefulSet and two Services"):
        return
    sts = stss[0]
    pod = sts["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    container = pod["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    expect(all(pod_labels.get(k) == v for k, v in NODE_LABELS.items()),
           f"{where}: node pods carry {NODE_LABELS}, got {pod_labels}")
    psc = pod["spec"].get("securityContext") or {}
    for k in ("runAsUser", "runAsGroup", "fsGroup"):
        expect(psc.get(k) == NODE_UID, f"{where}: node pods' {k} is {NODE_UID} (the image's user), "
                                       f"got {psc.get(k)}")
    expect(psc.get("runAsNonRoot") is True, f"{where}: node pods runAsNonRoot")
    sc = container.get("securityContext") or {}
    expect(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
           and "ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
           f"{where}: node container hardened (read-only root, no escalation, no capabilities)")
    args = container.get("args", [])
    for flag in ("--replicas=", "--read-quorum=", "--write-quorum="):
        expect(any(a.startswith(flag) for a in args), f"{where}: node args pass {flag}")

    # Every selector of the operator's objects selects the node pods.
    selectors = [("StatefulSet selector", sts["spec"]["selector"]["matchLabels"])]
    for svc in by_kind["Service"]:
        selectors.append((f"Service/{svc['metadata']['name']} selector", svc["spec"]["selector"]))
    for pdb in by_kind.get("PodDisruptionBudget", []):
        selectors.append(("PodDisruptionBudget selector", pdb["spec"]["selector"]["matchLabels"]))
    for c in pod["spec"].get("topologySpreadConstraints", []):
        selectors.append(("topology spread selector", c["labelSelector"]["matchLabels"]))
    for t in ((pod["spec"].get("affinity") or {}).get("podAntiAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution", []):
        selectors.append(("anti-affinity selector", t["podAffinityTerm"]["labelSelector"]["matchLabels"]))
    for name, sel in selectors:
        expect(selector_matches(sel, pod_labels), f"{where}: {name} {sel} selects the node pods")
    client = [s for s in by_kind["Service"] if s["spec"].get("clusterIP") != "None"]
    for sm in by_kind.get("ServiceMonitor", []):
        expect(client and selector_matches(sm["spec"]["selector"]["matchLabels"], client[0]["metadata"]["labels"]),
               f"{where}: the operator's ServiceMonitor selects the client Service")
    owned = golden["ownedObjectsSelector"]
    for o in objs:
        expect(selector_matches(owned, o["metadata"].get("labels")),
               f"{where}: {o['kind']}/{o['metadata']['name']} is matched by the operator's watch "
               f"selector {owned!r}")
    for t in sts["spec"].get("volumeClaimTemplates", []):
        expect(selector_matches(owned, t["metadata"].get("labels")),
               f"{where}: the claims are matched by the operator's watch selector {owned!r}")
    selectors.append(("the operator's watch selector", owned))
    for sm in by_kind.get("ServiceMonitor", []):
        selectors.append(("the operator's ServiceMonitor selector", sm["spec"]["selector"]["matchLabels"]))

    for scenario, chart_objs in loaded:
        if scenario.startswith("crd"):
            continue
        # No selector of the operator matches the operator's own pods.
        for d in (o for o in chart_objs if o["kind"] == "Deployment"):
            labels = d["spec"]["template"]["metadata"].get("labels") or {}
            for name, sel in selectors:
                expect(not selector_matches(sel, labels),
                       f"{scenario}: {name} {sel} matches the operator's pods {labels}")
        # The chart's node monitors and policies select the node pods and Services.
        for o in chart_objs:
            kind, spec = o["kind"], o.get("spec") or {}
            w = f"{scenario}: {kind}/{o['metadata']['name']}"
            if kind == "ServiceMonitor":
                sel = spec["selector"].get("matchLabels") or {}
                if sel.get("app.kubernetes.io/component") == "operator":
                    continue
                picked = [s for s in by_kind["Service"] if selector_matches(sel, s["metadata"].get("labels"))]
                expect(picked, f"{w}: selects no Service the operator creates ({sel})")
                for e in spec.get("endpoints", []):
                    expect(any(p.get("name") == e.get("port") for s in picked for p in s["spec"]["ports"]),
                           f"{w}: no selected node Service has a port named {e.get('port')!r}")
            elif kind == "PodMonitor":
                sel = spec["selector"].get("matchLabels") or {}
                expect(selector_matches(sel, pod_labels), f"{w}: selects no node pod ({sel})")
                for e in spec.get("podMetricsEndpoints", []):
                    expect(e.get("port") in ports, f"{w}: node pods have no port named {e.get('port')!r}")
            elif kind == "NetworkPolicy" and o["metadata"]["name"].endswith("-nodes"):
                sel = spec["podSelector"].get("matchLabels") or {}
                expect(selector_matches(sel, pod_labels), f"{w}: does not select the node pods ({sel})")
                opened = sorted(p["port"] for r in spec.get("ingress") or [] for p in r.get("ports", []))
                expect(opened == sorted(ports.values()),
                       f"{w}: opens {opened}, the node pods listen on {sorted(ports.values())}")
                peers = [p.get("podSelector", {}).get("matchLabels") for r in spec.get("ingress") or []
                         for p in r.get("from", []) if "namespaceSelector" not in p]
                expect(any(selector_matches(p, pod_labels) for p in peers if p),
                       f"{w}: node pods may not reach each other")
    print(f"golden: {len(objs)} objects the operator renders line up with the chart")


def run_node(node_modules, objs):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s_validate.mjs")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"objects": objs}, f)
        path = f.name
    try:
        out = subprocess.run(["node", script, node_modules, path], check=True, capture_output=True, text=True)
    finally:
        os.unlink(path)
    return json.loads(out.stdout)["objects"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--node-modules", required=True)
    ap.add_argument("--crd", required=True)
    ap.add_argument("--chart", required=True)
    ap.add_argument("--types-cache")
    ap.add_argument("--golden", help="the operator's objects (golden/operator-objects.json)")
    ap.add_argument("--sample", help="the sample DynamoCluster the golden file is rendered from")
    ap.add_argument("--operator-source", help="operator/main.cc (its flags)")
    ap.add_argument("--operator-help", help="the output of `dynamo-operator --help`")
    ap.add_argument("scenarios", nargs="+", help="NAME=FILE")
    args = ap.parse_args()
    if args.operator_source:
        OPERATOR_FLAGS.update(operator_flags(args.operator_source, args.operator_help))

    with open(args.crd) as f:
        crd = next(d for d in yaml.safe_load_all(f) if d)
    dyn = crd_schema.Validator(crd)
    index = k8s_types.load_index(args.node_modules, args.types_cache)

    loaded = []
    for s in args.scenarios:
        name, _, path = s.partition("=")
        with open(path) as f:
            objs = [d for d in yaml.safe_load_all(f) if d]
        loaded.append((name, objs))

    golden = None
    if args.golden:
        with open(args.golden) as f:
            golden = json.load(f)
        loaded.append(("golden", golden["objects"]))

    # One node process for every object of every scenario.
    flat = [(name, o) for name, objs in loaded for o in objs if o.get("kind") != "DynamoCluster"]
    results = run_node(args.node_modules, [o for _, o in flat])
    schema_errors = {}
    for (name, o), res in zip(flat, results):
        if not res["ok"]:
            schema_errors.setdefault(name, []).append((o, res["errors"]))

    for name, objs in loaded:
        print(f"rendered [{name}]: {len(objs)} objects: "
              + ", ".join(sorted({f"{o['kind']}" for o in objs})))
        seen = set()
        for o in objs:
            check_object_basics(name, o, seen)
            if o.get("kind") == "DynamoCluster":
                _, errors = dyn.validate(o)
                expect(not errors, f"{name}: DynamoCluster/{o['metadata'].get('name')} against the CRD: {errors}")
                continue
            unknown = k8s_types.unknown_fields(index, o)
            expect(unknown is not None, f"{name}: no schema for {o.get('apiVersion')} {o.get('kind')}")
            expect(not unknown, f"{name}: {o['kind']}/{o['metadata'].get('name')}: unknown fields {unknown}")
        for o, errs in schema_errors.get(name, []):
            fail(f"{name}: {o['kind']}/{o['metadata'].get('name')} fails its Kubernetes schema: {errs}")
        if name != "golden":
            semantic_checks(name, objs, None, args.chart)
    if golden is not None:
        golden_checks(golden, args.sample, [(n, o) for n, o in loaded if n != "golden"])

    if failures:
        print(f"check_rendered: {len(failures)} failure(s)")
        return 1
    print("check_rendered: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
