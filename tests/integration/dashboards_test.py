"""Every Grafana panel's PromQL and every alerting rule, run by a real
Prometheus against real nodes: each query is valid, every metric a dashboard or
alert names is exported, and the alert for a killed node goes pending."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import harness
from harness import Cluster, wait_until

CHART = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "charts", "dynamo"))
DASHBOARDS = os.path.join(CHART, "dashboards")
ALERTS = os.path.join(CHART, "alerts", "dynamo.rules.yaml")


def panel_queries():
    for name in sorted(os.listdir(DASHBOARDS)):
        with open(os.path.join(DASHBOARDS, name)) as f:
            d = json.load(f)
        for panel in d.get("panels", []):
            for t in panel.get("targets", []):
                if t.get("expr"):
                    yield name, panel.get("title", "?"), t["expr"]


def substitute(expr):
    # The dashboards' variables, as Grafana would fill them for one cluster.
    for var, value in (("$namespace", "it"), ("$cluster", "it"), ("$sla_le", "0.3"),
                       ("$sla_target", "0.999"), ("$__range", "5m"), ("$__rate_interval", "1m"),
                       ("$__interval", "15s")):
        expr = expr.replace(var, value)
    return expr


class Dashboards(unittest.TestCase):
    @unittest.skipUnless(shutil.which("prometheus"), "needs Debian's prometheus package")
    def test_every_panel_query_runs_on_real_nodes(self):
        c = Cluster(3).start()
        n0, n1, n2 = c.nodes
        for i in range(100):
            n0.put(b"k%d" % i, b"v")
            n1.get(b"k%d" % i)
        n0.put(b"doc", b"a")
        n1.put(b"doc", b"b")  # siblings
        n2.get(b"doc")
        n2.kill()  # hint backlog on the coordinators
        for i in range(20):
            n0.put(b"h%d" % i, b"v")
        d = tempfile.mkdtemp()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        targets = [f"127.0.0.1:{n.http_port}" for n in c.nodes]
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    f"rule_files: [{json.dumps(ALERTS)}]\n"
                    "scrape_configs:\n  - job_name: dynamo\n    static_configs:\n"
                    f"      - targets: {json.dumps(targets)}\n"
                    "        labels: {namespace: it, dynamo_cluster: it}\n")
        prom = subprocess.Popen(["prometheus", f"--config.file={d}/prometheus.yml",
                                 f"--storage.tsdb.path={d}/data", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def query(expr):
                url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
                try:
                    with urllib.request.urlopen(url, timeout=10) as r:
                        return json.load(r)
                except urllib.error.HTTPError as e:
                    return json.load(e)
            def query_path(path):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                    return json.load(r)
            wait_until(lambda: query('count(up{job="dynamo"} == 1)')["data"]["result"], 60,
                       "Prometheus to scrape the live nodes")
            for i in range(40):  # a few more scrapes with traffic, for rate()
                n0.put(b"r%d" % i, b"v")
                time.sleep(0.1)
            time.sleep(3)
            names_scraped = set()
            for n in (n0, n1):
                _, text = n.http("/metrics")
                names_scraped |= set(re.findall(r"^# TYPE (\w+)", text, re.M))
            results, empty = 0, []
            for dash, title, expr in panel_queries():
                r = query(substitute(expr))
                self.assertEqual(r.get("status"), "success", f"{dash} / {title}: {r.get('error')}\n{expr}")
                results += 1
                if not r["data"]["result"]:
                    empty.append(f"{dash} / {title}")
                # dynamo_cluster is a label (added by the scrape), not a metric.
                for metric in set(re.findall(r"\b((?:dynamo|process)_[a-z0-9_]+)", expr)) - {"dynamo_cluster"}:
                    base = re.sub(r"_(bucket|sum|count)$", "", metric)
                    self.assertTrue(metric in names_scraped or base in names_scraped,
                                    f"{dash} / {title} uses {metric}, which no node exports")
            self.assertGreater(results, 20)
            # Panels on events that did not happen here (leaves, handoffs) may
            # be empty; most must show data from this traffic.
            self.assertLess(len(empty), results // 2, f"empty panels: {empty}")
            # Every alerting rule evaluates on real series, and the one for
            # the node killed above is on its way (pending for its 5 minutes).
            def rules():
                return [r for g in query_path("/api/v1/rules")["data"]["groups"] for r in g["rules"]]
            # An unevaluated rule's lastEvaluation is 0001-01-01.
            wait_until(lambda: all(r.get("lastEvaluation", "").startswith("2") for r in rules()),
                       30, "every alerting rule to be evaluated")
            self.assertGreaterEqual(len(rules()), 10)
            for r in rules():
                self.assertEqual(r.get("health"), "ok", f"alert {r['name']}: {r.get('lastError')}")
                for metric in set(re.findall(r"\b((?:dynamo|process)_[a-z0-9_]+)", r["query"])) - {
                        "dynamo_cluster"}:
                    base = re.sub(r"_(bucket|sum|count)$", "", metric)
                    self.assertTrue(metric in names_scraped or base in names_scraped,
                                    f"alert {r['name']} uses {metric}, which no node exports")
            wait_until(lambda: any(a["labels"]["alertname"] == "DynamoMembersUnreachable"
                                   for a in query_path("/api/v1/alerts")["data"]["alerts"]),
                       30, "DynamoMembersUnreachable pending for the killed node")
        finally:
            prom.terminate()
            prom.wait(timeout=30)
            shutil.rmtree(d, ignore_errors=True)
            c.close()


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
