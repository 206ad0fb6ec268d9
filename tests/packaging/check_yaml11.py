#!/usr/bin/env python3
"""Checks that the YAML we ship means to Helm and kubectl what it means to us.

Helm and kubectl parse YAML 1.1 with go-yaml, where a bare `n` or `y` is a
boolean: a field written as `n: 3` reaches the API server as {"false": 3},
and a CRD property declared as `n:` becomes a property named "false" (why
spec.replication's fields are factor, readQuorum and writeQuorum, not n, r
and w). yamllint's truthy rule does not flag y and n.

1. Every plain scalar y, Y, n or N is reported with its line.
2. Every file is parsed by Helm itself (fromYaml in a scratch chart, the same
   sigs.k8s.io/yaml that kubectl uses) and compared, document by document,
   with Python's parse that the other checks validate: any difference fails.

usage: check_yaml11.py --helm PATH --work DIR FILE...
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys

import yaml

BARE = {"y", "Y", "n", "N"}
TEMPLATE = """{{- range $path, $_ := .Files.Glob "files/**" }}
{{- $docs := list }}
{{- range regexSplit "(?m)^---[ \\t]*$" ($.Files.Get $path) -1 }}
{{- $docs = append $docs (fromYaml .) }}
{{- end }}
---
path: {{ $path | quote }}
docs: {{ $docs | toJson | b64enc }}
{{- end }}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--helm", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    bad = 0

    for path in args.files:
        with open(path) as f:
            for tok in yaml.scan(f.read(), Loader=yaml.SafeLoader):
                if isinstance(tok, yaml.ScalarToken) and tok.plain and tok.value in BARE:
                    print(f"  FAIL {path}:{tok.start_mark.line + 1}: bare {tok.value!r} is a boolean to "
                          f"YAML 1.1 (Helm, kubectl): quote it")
                    bad += 1

    chart = os.path.join(args.work, "yaml11-chart")
    shutil.rmtree(chart, ignore_errors=True)
    os.makedirs(os.path.join(chart, "templates"))
    with open(os.path.join(chart, "Chart.yaml"), "w") as f:
        f.write("apiVersion: v2\nname: yaml11\nversion: 0.0.1\n")
    with open(os.path.join(chart, "templates", "parse.yaml"), "w") as f:
        f.write(TEMPLATE)
    names = {}
    for i, path in enumerate(args.files):
        name = f"files/{i:03d}.yaml"
        names[name] = path
        os.makedirs(os.path.join(chart, "files"), exist_ok=True)
        shutil.copyfile(path, os.path.join(chart, name))
    out = subprocess.run([args.helm, "template", "yaml11", chart], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  FAIL helm could not parse the files: {out.stderr.strip()}")
        return 1
    seen = 0
    for d in yaml.safe_load_all(out.stdout):
        if not d:
            continue
        seen += 1
        path = names[d["path"]]
        go_docs = [x for x in json.loads(base64.b64decode(d["docs"])) if x]
        with open(path) as f:
            py_docs = [x for x in yaml.safe_load_all(f) if x]
        # JSON round trip: what would be sent to the API server.
        py_docs = json.loads(json.dumps(py_docs, default=str))
        errors = [x for x in go_docs if isinstance(x, dict) and "Error" in x and len(x) == 1]
        if errors:
            print(f"  FAIL {path}: Helm cannot parse it: {errors[0]['Error']}")
            bad += 1
        elif go_docs != py_docs:
            diff = first_difference(go_docs, py_docs, "")
            print(f"  FAIL {path}: Helm/kubectl read it differently: {diff}")
            bad += 1
    if seen != len(args.files):
        print(f"  FAIL helm parsed {seen} of {len(args.files)} files")
        bad += 1
    if bad:
        print(f"check_yaml11: {bad} failure(s)")
        return 1
    print(f"check_yaml11: ok ({len(args.files)} files read alike by Helm's YAML 1.1 parser and ours)")
    return 0


def first_difference(a, b, path):
    if type(a) is not type(b):
        return f"at {path or '/'}: Helm {a!r} vs {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"at {path}/: key {k!r} only in {'ours' if k in b else 'Helm' + chr(39) + 's'}"
            if a[k] != b[k]:
                return first_difference(a[k], b[k], f"{path}/{k}")
    if isinstance(a, list):
        if len(a) != len(b):
            return f"at {path or '/'}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}/{i}")
    return f"at {path or '/'}: Helm {a!r} vs ours {b!r}"


if __name__ == "__main__":
    sys.exit(main())
