#!/usr/bin/env python3
"""Checks the Grafana dashboards of the chart offline.

- Each file is valid JSON with a unique uid, a Prometheus datasource variable
  that every panel and query uses, unique panel ids and a grid without
  overlaps.
- Every PromQL expression (panels and variable queries), with the dashboard's
  variables replaced by their defaults, parses: they are written to a rules
  file and `promtool check rules` reads it.
- Every metric name an expression uses is documented in docs/metrics.md
  (histograms as _bucket, _sum, _count), with the labels it documents (plus
  the target labels Prometheus adds) and the label values it lists;
  rate()/increase() apply only to counters and histogram series; quantiles
  only to _bucket series.
- The panels the design asks for are there (latency quantiles per operation,
  the SLA fraction, rates, errors, siblings, hints, anti-entropy, handoff,
  ring ownership, members, replica latency).

That a real node exports these metrics is checked elsewhere (against a scrape
of a running dynamo-node).

usage: check_dashboards.py --dashboards DIR --metrics-doc FILE --promtool PATH --work DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL {msg}")


def expect(cond, msg):
    if not cond:
        fail(msg)
    return cond


DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Labels Prometheus adds to every scraped series, and those the chart's
# ServiceMonitor/PodMonitor relabel in.
TARGET_LABELS = {"instance", "job", "namespace", "pod", "service", "container", "endpoint",
                 "dynamo_cluster"}
BUILTIN_VARS = {"__range": "1h", "__rate_interval": "5m", "__interval": "1m", "__range_s": "3600",
                "__interval_ms": "60000"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                   "unless", "offset", "inf", "nan", "Inf", "NaN", "atan2", "start", "end"}
RATE_FUNCS = ("rate", "irate", "increase", "resets")

# What the dashboards must show: (what, regular expression over the expression
# without whitespace).
REQUIRED = [
    ("p50 latency per op", r"histogram_quantile\(0\.5,sumby\(le,op\)\(rate\(dynamo_request_duration_seconds_bucket\{[^}]*\}\[5m\]\)\)\)"),
    ("p99 latency per op", r"histogram_quantile\(0\.99,sumby\(le,op\)\(rate\(dynamo_request_duration_seconds_bucket\{[^}]*\}\[5m\]\)\)\)"),
    ("p99.9 latency per op", r"histogram_quantile\(0\.999,sumby\(le,op\)\(rate\(dynamo_request_duration_seconds_bucket\{[^}]*\}\[5m\]\)\)\)"),
    ("fraction within the SLA bucket", r"dynamo_request_duration_seconds_bucket\{[^}]*le=\"\$sla_le\"[^}]*\}.*/.*dynamo_request_duration_seconds_count"),
    ("SLA target line", r"^vector\(\$sla_target\)$"),
    ("request rate per node and op", r"sumby\(instance,op\)\(rate\(dynamo_requests_total\{[^}]*\}\[5m\]\)\)"),
    ("error rate per node and op", r"sumby\(instance,op(,code)?\)\(rate\(dynamo_requests_total\{[^}]*code!=\"OK\"[^}]*\}\[5m\]\)\)"),
    ("siblings per read", r"dynamo_siblings_per_read_bucket"),
    ("hint backlog per target", r"sumby\(target\)\(dynamo_hint_backlog_keys\{[^}]*\}\)"),
    ("anti-entropy exchanges", r"rate\(dynamo_antientropy_exchanges_total"),
    ("anti-entropy repairs", r"rate\(dynamo_antientropy_keys_repaired_total"),
    ("handoff keys remaining", r"dynamo_handoff_keys_remaining"),
    ("handoff keys rate", r"rate\(dynamo_handoff_keys_total"),
    ("handoff bytes rate", r"rate\(dynamo_handoff_bytes_total"),
    ("ring ownership per node", r"by\(instance\)\(dynamo_ring_ownership_ratio"),
    ("members by state", r"by\(state\)\(dynamo_members\{"),
    ("replica latency", r"histogram_quantile\(0\.999,sumby\(le,op\)\(rate\(dynamo_replica_request_duration_seconds_bucket"),
]


def parse_metrics_doc(path):
    """{name: (type, {label: [values] or None})} from the table of docs/metrics.md."""
    metrics = {}
    row = re.compile(r"^\|\s*`([a-zA-Z_:][\w:]*)`\s*\|\s*(counter|gauge|histogram|summary)\s*\|([^|]*)\|")
    with open(path) as f:
        for line in f:
            m = row.match(line)
            if not m:
                continue
            labels = {}
            # "`op` = get, put, delete", "`code` (gRPC code name: ...)", "`target` (node id)"
            for part in re.finditer(r"`(\w+)`([^`]*)", m.group(3)):
                values = None
                rest = part.group(2).strip().rstrip(",").strip()
                if rest.startswith("="):
                    vals = [v.strip() for v in rest[1:].split(",")]
                    if vals and all(re.fullmatch(r"[a-z_]+", v) for v in vals):
                        values = vals
                labels[part.group(1)] = values
            metrics[m.group(1)] = (m.group(2), labels)
    return metrics


def series_of(metrics):
    """{series name: (base name, type, role)}: histograms give _bucket, _sum, _count."""
    out = {}
    for name, (typ, _) in metrics.items():
        if typ == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = (name, typ, suffix)
        else:
            out[name] = (name, typ, "")
    return out


def substitute(expr, values, where):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        name = name.split(":")[0]
        if name in BUILTIN_VARS:
            return BUILTIN_VARS[name]
        if name not in values:
            fail(f"{where}: unknown variable ${name}")
            return "0"
        return values[name]
    return re.sub(r"\$\{(\w+(?::\w+)?)\}|\[\[(\w+)\]\]|\$(\w+)", repl, expr)


def strip_strings(expr):
    return re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'|`[^`]*`', '""', expr)


def selectors(expr):
    """[(metric, [(label, op, value)])] of every vector selector with a metric name."""
    out = []
    for m in re.finditer(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", expr):
        matchers = [(mm.group(1), mm.group(2), mm.group(3))
                    for mm in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"', m.group(2))]
        out.append((m.group(1), matchers))
    return out


def metric_names(expr):
    e = strip_strings(expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = []
    for m in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word in PROMQL_KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", word) or re.fullmatch(r"[eE]\d*", word):
            continue
        names.append(word)
    return names


def grouping_labels(expr):
    e = strip_strings(expr)
    out = []
    for m in re.finditer(r"\b(by|without|on|ignoring)\s*\(([^)]*)\)", e):
        out.extend(x.strip() for x in m.group(2).split(",") if x.strip())
    return out


def normalize(expr):
    """The expression without whitespace, for the REQUIRED patterns."""
    return re.sub(r"\s+", "", expr)


def check_expr(where, expr, series, metrics, used):
    names = metric_names(expr)
    for n in names:
        if n not in series:
            fail(f"{where}: metric {n} is not in docs/metrics.md")
            continue
        used.add(series[n][0])
    all_labels = set(TARGET_LABELS)
    for n in names:
        if n in series:
            base, typ, role = series[n]
            all_labels |= set(metrics[base][1])
            if role == "_bucket":
                all_labels.add("le")
    for metric, matchers in selectors(expr):
        if metric not in series:
            continue
        base, typ, role = series[metric]
        allowed = set(TARGET_LABELS) | set(metrics[base][1]) | ({"le"} if role == "_bucket" else set())
        for label, op, value in matchers:
            if not expect(label in allowed, f"{where}: {metric} has no label {label!r}"):
                continue
            values = metrics[base][1].get(label)
            if values and op == "=":
                expect(value in values, f"{where}: {metric}{{{label}={value!r}}}: docs list {values}")
    for label in grouping_labels(expr):
        expect(label in all_labels, f"{where}: grouping by {label!r}, which none of {names} has")
    e = re.sub(r"\{[^}]*\}", "", strip_strings(expr))
    for m in re.finditer(r"\b(" + "|".join(RATE_FUNCS) + r")\s*\(\s*([a-zA-Z_:][\w:]*)", e):
        n = m.group(2)
        if n in series:
            base, typ, role = series[n]
            expect(typ == "counter" or role in ("_bucket", "_sum", "_count"),
                   f"{where}: {m.group(1)}() of {n}, a {typ}")
    for m in re.finditer(r"histogram_quantile\s*\(([^,]+),", e):
        inner = metric_names(call_argument(e, m.end()))
        expect(inner and all(x.endswith("_bucket") for x in inner if x in series),
               f"{where}: histogram_quantile over non-bucket series {inner}")
        q = float(m.group(1))
        expect(0 <= q <= 1, f"{where}: quantile {q}")


def call_argument(expr, start):
    """The text from `start` to the parenthesis that closes the call it is in."""
    depth = 0
    for i in range(start, len(expr)):
        if expr[i] == "(":
            depth += 1
        elif expr[i] == ")":
            if depth == 0:
                return expr[start:i]
            depth -= 1
    return expr[start:]


def grid_check(where, panels):
    cells = {}
    for p in panels:
        g = p.get("gridPos") or {}
        if not expect(all(k in g for k in ("x", "y", "w", "h")), f"{where}: panel {p.get('title')} gridPos"):
            continue
        expect(0 <= g["x"] and g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0,
               f"{where}: panel {p.get('title')!r} fits the 24-column grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    fail(f"{where}: panels {cells[(x, y)]!r} and {p.get('title')!r} overlap")
                    return
                cells[(x, y)] = p.get("title")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dashboards", required=True)
    ap.add_argument("--metrics-doc", required=True)
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--work", required=True)
    args = ap.parse_args()

    metrics = parse_metrics_doc(args.metrics_doc)
    expect(len(metrics) >= 10, f"docs/metrics.md lists {len(metrics)} metrics: its table was not parsed")
    series = series_of(metrics)
    used, uids, rules, normalized = set(), set(), [], []
    files = sorted(f for f in os.listdir(args.dashboards) if f.endswith(".json"))
    expect(files, "no dashboards")
    for fn in files:
        where = fn
        try:
            with open(os.path.join(args.dashboards, fn)) as f:
                d = json.load(f)
        except ValueError as ex:
            fail(f"{fn}: not valid JSON: {ex}")
            continue
        print(f"dashboard {fn}: {d.get('title')!r}, {len(d.get('panels', []))} panels")
        expect(d.get("uid") and len(d["uid"]) <= 40 and d["uid"] not in uids, f"{fn}: a unique uid of <= 40 chars")
        uids.add(d.get("uid"))
        expect(d.get("title"), f"{fn}: a title")
        expect(isinstance(d.get("schemaVersion"), int), f"{fn}: schemaVersion")
        expect("id" not in d or d["id"] is None, f"{fn}: no instance-specific id (provisioned dashboards get one)")
        variables = d.get("templating", {}).get("list", [])
        ds = [v for v in variables if v.get("type") == "datasource"]
        expect(len(ds) == 1 and ds[0].get("name") == "datasource" and ds[0].get("query") == "prometheus",
               f"{fn}: a datasource variable named datasource of type prometheus")
        values = {}
        for v in variables:
            if v.get("type") == "datasource":
                continue
            if v.get("includeAll"):
                values[v["name"]] = v.get("allValue") or ".*"
            else:
                cur = (v.get("current") or {}).get("value")
                if not expect(cur not in (None, "", []), f"{fn}: variable {v['name']} has a default"):
                    continue
                values[v["name"]] = cur[0] if isinstance(cur, list) else cur
        for v in variables:
            if v.get("type") == "query":
                expect(v.get("datasource") == DATASOURCE, f"{fn}: variable {v['name']} uses ${{datasource}}")
                q = v.get("query")
                q = q.get("query") if isinstance(q, dict) else q
                m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q or "")
                if expect(m, f"{fn}: variable {v['name']}: label_values(metric, label) query, got {q!r}"):
                    inner = substitute(m.group(1), values, f"{fn} variable {v['name']}")
                    check_expr(f"{fn} variable {v['name']}", inner, series, metrics, used)
                    rules.append((f"{fn} variable {v['name']}", inner))
        panels = d.get("panels", [])
        ids = [p.get("id") for p in panels]
        expect(len(ids) == len(set(ids)) and None not in ids, f"{fn}: unique panel ids")
        grid_check(fn, panels)
        for p in panels:
            if p.get("type") == "row":
                expect(not p.get("panels"), f"{fn}: row {p.get('title')!r} is expanded (panels at top level)")
                continue
            pw = f"{fn} panel {p.get('title')!r}"
            expect(p.get("title"), f"{fn}: panel {p.get('id')} has a title")
            expect(p.get("datasource") == DATASOURCE, f"{pw}: datasource ${{datasource}}")
            targets = p.get("targets") or []
            expect(targets, f"{pw}: has queries")
            refs = [t.get("refId") for t in targets]
            expect(len(refs) == len(set(refs)), f"{pw}: unique refIds")
            for t in targets:
                tw = f"{pw} query {t.get('refId')}"
                expect(t.get("datasource") == DATASOURCE, f"{tw}: datasource ${{datasource}}")
                expr = t.get("expr", "")
                if not expect(expr.strip(), f"{tw}: an expression"):
                    continue
                sub = substitute(expr, values, tw)
                check_expr(tw, sub, series, metrics, used)
                rules.append((tw, sub))
                normalized.append(normalize(expr))

    for what, pattern in REQUIRED:
        expect(any(re.search(pattern, n) for n in normalized), f"no panel shows {what} (/{pattern}/)")

    unused = sorted(set(metrics) - used)
    if unused:
        print(f"  note: documented metrics no dashboard shows: {', '.join(unused)}")

    # promtool parses every expression.
    os.makedirs(args.work, exist_ok=True)
    rules_path = os.path.join(args.work, "dashboard-exprs.rules.yaml")
    with open(rules_path, "w") as f:
        f.write("# Generated by check_dashboards.py: every dashboard expression as a recording rule.\n")
        f.write("groups:\n  - name: dashboards\n    rules:\n")
        for i, (where, expr) in enumerate(rules):
            f.write(f"      # {where}\n      - record: dashboard:expr_{i}\n        expr: {json.dumps(expr)}\n")
    run_promtool([args.promtool, "check", "rules", rules_path], f"promtool: {len(rules)} expressions parse")
    return verdict("check_dashboards", f"{len(used)} of {len(metrics)} documented metrics shown")


def run_promtool(cmd, ok_text):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        fail(f"{' '.join(cmd[1:])}:\n{res.stdout}{res.stderr}")
    else:
        print(ok_text)


def verdict(checker, ok_text):
    """The exit code of a checker, after a line that says how it went."""
    if failures:
        print(f"{checker}: {len(failures)} failure(s)")
        return 1
    print(f"{checker}: ok ({ok_text})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
