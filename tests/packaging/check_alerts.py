#!/usr/bin/env python3
"""Checks the chart's alerting rules offline.

- The rules file has one group of alerting rules, each named Dynamo<Something>
  (unique), with a severity of critical, warning or info, and a summary and a
  description.
- Every expression uses only metrics docs/metrics.md lists, with their labels
  (the same checks as the dashboards', check_dashboards.py).
- `promtool check rules` accepts the file (expressions and annotation
  templates parse).
- `promtool test rules` passes the unit tests (tests/packaging/alerts_test.yaml),
  run on a copy of the rules without annotations, and every alert has a test
  where it fires and one where it must not.

usage: check_alerts.py --rules FILE --tests FILE --metrics-doc FILE --promtool PATH --work DIR
"""
import argparse
import os
import re
import sys

import yaml

import check_dashboards as dash
from check_dashboards import expect, fail

SEVERITIES = {"critical", "warning", "info"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", required=True)
    ap.add_argument("--tests", required=True)
    ap.add_argument("--metrics-doc", required=True)
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--work", required=True)
    args = ap.parse_args()

    metrics = dash.parse_metrics_doc(args.metrics_doc)
    expect(len(metrics) >= 10, f"docs/metrics.md lists {len(metrics)} metrics: its table was not parsed")
    series = dash.series_of(metrics)
    with open(args.rules) as f:
        rules_doc = yaml.safe_load(f)
    groups = rules_doc.get("groups") or []
    expect(len(groups) == 1, f"{args.rules}: one group, found {len(groups)}")
    names, used = [], set()
    for group in groups:
        for rule in group.get("rules") or []:
            name = rule.get("alert")
            if not expect(name, f"{args.rules}: a rule that is not an alert: {rule}"):
                continue
            where = f"alert {name}"
            expect(re.fullmatch(r"Dynamo[A-Z]\w+", name), f"{where}: named Dynamo<CamelCase>")
            expect(name not in names, f"{where}: defined twice")
            names.append(name)
            expect((rule.get("labels") or {}).get("severity") in SEVERITIES,
                   f"{where}: labels.severity one of {sorted(SEVERITIES)}")
            notes = rule.get("annotations") or {}
            expect(notes.get("summary") and notes.get("description"),
                   f"{where}: annotations summary and description")
            dash.check_expr(where, rule.get("expr", ""), series, metrics, used)
    print(f"alerts: {len(names)} rules, metrics used: {', '.join(sorted(used))}")

    dash.run_promtool([args.promtool, "check", "rules", args.rules], "promtool: the rules parse")

    # promtool compares annotations whole: the tests run on the rules without them.
    os.makedirs(args.work, exist_ok=True)
    for group in groups:
        for rule in group.get("rules") or []:
            rule.pop("annotations", None)
    with open(os.path.join(args.work, "dynamo.rules.yaml"), "w") as f:
        yaml.safe_dump(rules_doc, f, sort_keys=False)
    with open(args.tests) as f:
        tests_doc = yaml.safe_load(f)
    expect(tests_doc.get("rule_files") == ["dynamo.rules.yaml"],
           f"{args.tests}: rule_files is [dynamo.rules.yaml] (the copy this check writes)")
    fires, quiet = set(), set()
    for test in tests_doc.get("tests") or []:
        for case in test.get("alert_rule_test") or []:
            (fires if case.get("exp_alerts") else quiet).add(case.get("alertname"))
    for name in names:
        expect(name in fires, f"alert {name}: no test where it fires")
        expect(name in quiet, f"alert {name}: no test where it must not fire")
    for name in (fires | quiet) - set(names):
        fail(f"{args.tests}: tests an alert the rules do not define: {name}")
    tests_path = os.path.join(args.work, "alerts_test.yaml")
    with open(tests_path, "w") as f:
        yaml.safe_dump(tests_doc, f, sort_keys=False)
    dash.run_promtool([args.promtool, "test", "rules", tests_path],
                      f"promtool: {len(tests_doc.get('tests') or [])} rule tests pass")
    return dash.verdict("check_alerts", f"{len(names)} alerts")


if __name__ == "__main__":
    sys.exit(main())
