#!/usr/bin/env python3
"""A Kubernetes API server test double for the operator's tests.

It speaks the real wire protocol for the resources the operator uses: JSON
objects and lists (with limit/continue pages), chunked watch streams with
ADDED/MODIFIED/DELETED/BOOKMARK events, resourceVersion semantics (a watch
from a version older than the compacted history gets 410 Gone, as an HTTP
status or as an in-stream ERROR event), JSON merge patch and server-side
apply content types, the status and scale subresources, 409 Conflict on a
stale resourceVersion, generation bumps on spec changes, finalizers and
deletionTimestamp, garbage collection through ownerReferences (background,
foreground and orphan), and `sendInitialEvents` answered with 400 so that
clients fall back to list + watch.

Controllers: a minimal StatefulSet controller (pods and claims from the
templates for each ordinal below replicas, removal from the highest
ordinal, one-at-a-time rolling updates, status) and a kubelet. With
--node-binary the kubelet runs each pod as a real process on loopback: the
pod gets IP <prefix><start + ordinal>, its container args are expanded with
the downward-API and ConfigMap environment, listen addresses 0.0.0.0 become
the pod IP, "<pod>.<service>.<ns>.svc" names become pod IPs (a stand-in for
cluster DNS), volume mount paths become per-claim directories, and the Ready
condition follows the readiness probe's HTTP GET. Without it, pods are
reported Running and Ready at once (fake pods).

Test controls live under /_double/ (see Handler.control).

Not modelled: authentication beyond one bearer token, admission, RBAC,
field managers' ownership (apply merges like a merge patch), strategic merge
(treated as a merge patch), JSON patch (415), namespaces as objects.
"""

import sys
sys.dont_write_bytecode = True  # noqa: E402  (imports crd_schema from another directory)

import argparse
import base64
import copy
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import shutil
import signal
import socketserver
import subprocess
import threading
import time
import urllib.parse
import uuid

# (group, version, plural) -> (kind, namespaced, has status subresource, bumps generation)
RESOURCES = {
    ("", "v1", "pods"): ("Pod", True, True, False),
    ("", "v1", "services"): ("Service", True, True, False),
    ("", "v1", "configmaps"): ("ConfigMap", True, False, False),
    ("", "v1", "persistentvolumeclaims"): ("PersistentVolumeClaim", True, True, False),
    ("", "v1", "events"): ("Event", True, False, False),
    ("apps", "v1", "statefulsets"): ("StatefulSet", True, True, True),
    ("policy", "v1", "poddisruptionbudgets"): ("PodDisruptionBudget", True, True, True),
    ("coordination.k8s.io", "v1", "leases"): ("Lease", True, False, False),
    ("dynamo.dev", "v1alpha1", "dynamoclusters"): ("DynamoCluster", True, True, True),
    ("", "v1", "nodes"): ("Node", False, True, False),
}
PODS = ("", "v1", "pods")
PVCS = ("", "v1", "persistentvolumeclaims")
STS = ("apps", "v1", "statefulsets")
CONFIGMAPS = ("", "v1", "configmaps")
CLUSTERS = ("dynamo.dev", "v1alpha1", "dynamoclusters")
NODES = ("", "v1", "nodes")

HISTORY_MAX = 2000          # events kept for watches to resume from
REQUEST_LOG_MAX = 20000
WATCH_TIMEOUT_MAX_S = 1800


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def api_version(res):
    group, version, _ = res
    return version if not group else group + "/" + version


def log(msg):
    sys.stderr.write("[kube-double %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class ApiError(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def body(self):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def parse_label_selector(text):
    """Equality and set-based selectors: a=b, a==b, a!=b, a, !a, a in (x,y), a notin (x)."""
    reqs = []
    if not text:
        return reqs
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for p in (x.strip() for x in parts):
        if not p:
            continue
        m = re.match(r"^([\w./-]+)\s+(in|notin)\s+\((.*)\)$", p)
        if m:
            reqs.append((m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}))
        elif "!=" in p:
            k, v = p.split("!=", 1)
            reqs.append((k.strip(), "!=", v.strip()))
        elif "==" in p:
            k, v = p.split("==", 1)
            reqs.append((k.strip(), "=", v.strip()))
        elif "=" in p:
            k, v = p.split("=", 1)
            reqs.append((k.strip(), "=", v.strip()))
        elif p.startswith("!"):
            reqs.append((p[1:].strip(), "!exists", None))
        else:
            reqs.append((p, "exists", None))
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, val in reqs:
        have = labels.get(key)
        if op == "=" and have != val:
            return False
        if op == "!=" and have == val:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!exists" and key in labels:
            return False
        if op == "in" and have not in val:
            return False
        if op == "notin" and have in val:
            return False
    return True


def fields_match(selector, obj):
    if not selector:
        return True
    meta = obj.get("metadata", {})
    for part in selector.split(","):
        if not part:
            continue
        neg = "!=" in part
        k, v = part.split("!=" if neg else "=", 1)
        k = k.strip().lstrip("=")
        v = v.strip().lstrip("=")
        have = {"metadata.name": meta.get("name"),
                "metadata.namespace": meta.get("namespace")}.get(k)
        if (have == v) == neg:
            return False
    return True


class CrdValidator:
    """Validates DynamoCluster writes against the CRD as the API server would
    (schema, defaults, CEL rules), using tests/packaging/crd_schema.py when it
    and its dependencies (Debian's python3-yaml and python3-jsonschema, which
    scripts/install-deps.sh installs) are available. The operator's tests
    count on it (TheCrdRefusesBadReplicationAndAFactorChange fails without)."""

    def __init__(self, crd_path, helpers_dir):
        self.validator = None
        self.why_off = ""
        if not crd_path:
            self.why_off = "no --crd given"
            return
        try:
            import yaml  # noqa: F401  (PyYAML)
            if helpers_dir:
                sys.path.insert(0, helpers_dir)
            import crd_schema
            with open(crd_path) as f:
                crd = yaml.safe_load(f)
            self.validator = crd_schema.Validator(crd)
        except Exception as e:  # a missing module or file: validation is off, said once
            self.why_off = "%s: %r" % (crd_path, e)

    def check(self, obj, old=None):
        if self.validator is None:
            return obj
        defaulted, errors = self.validator.validate(obj, old)
        if errors:
            raise ApiError(422, "Invalid", 'DynamoCluster.dynamo.dev "%s" is invalid: %s' % (
                obj.get("metadata", {}).get("name", ""), "; ".join(errors)))
        return defaulted


class Watcher:
    def __init__(self):
        self.expire = None  # None, "stream" (ERROR 410) or "close"


class Store:
    """Objects, the global resourceVersion, and the event history. Guarded by self.cond."""

    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 1000
        self.objects = {}        # (res, ns, name) -> object
        self.history = []        # (rv, res, type, object)
        self.compacted = 0       # a watch from rv < compacted gets 410
        self.watchers = set()
        self.config = {"split_max": 0, "coalesce": False, "bookmark_interval_s": 2.0,
                       "gone_form": "stream"}
        self.faults = []         # {method, path_contains, status, reason, count}
        self.requests = []
        self.crd = None          # CrdValidator for dynamoclusters

    # --- helpers (caller holds the lock) ---
    def _next_rv(self):
        self.rv += 1
        return str(self.rv)

    def _emit(self, res, typ, obj):
        self.history.append((self.rv, res, typ, copy.deepcopy(obj)))
        if len(self.history) > HISTORY_MAX:
            drop = len(self.history) - HISTORY_MAX
            self.compacted = self.history[drop][0]
            del self.history[:drop]
        self.cond.notify_all()

    def get(self, res, ns, name):
        obj = self.objects.get((res, ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", '%s "%s" not found' % (res[2], name))
        return obj

    def list(self, res, ns, label_selector="", field_selector=""):
        reqs = parse_label_selector(label_selector)
        out = []
        for (r, n, _), obj in sorted(self.objects.items(), key=lambda kv: (kv[0][1], kv[0][2])):
            if r != res or (ns and n != ns):
                continue
            if not labels_match(reqs, obj.get("metadata", {}).get("labels")):
                continue
            if not fields_match(field_selector, obj):
                continue
            out.append(obj)
        return out

    def create(self, res, ns, obj, internal=False):
        kind, namespaced, has_status, gen = RESOURCES[res]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise ApiError(400, "BadRequest",
                               "the namespace of the object does not match the request's")
            meta["namespace"] = ns
        name = meta.get("name")
        if not name:
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", "metadata.name or generateName is required")
            name = meta["generateName"] + "".join(
                random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            meta["name"] = name
        if (res, ns, name) in self.objects:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res[2], name))
        obj["apiVersion"] = api_version(res)
        obj["kind"] = kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta.pop("deletionTimestamp", None)
        meta.pop("resourceVersion", None)
        if gen:
            meta["generation"] = 1
        if has_status and not internal:
            obj.pop("status", None)
        if res == CLUSTERS and self.crd is not None:
            obj = self.crd.check(obj)
            meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        self.objects[(res, ns, name)] = obj
        self._emit(res, "ADDED", obj)
        return obj

    def _commit(self, res, ns, name, cur, new):
        """Stores `new` in place of `cur` (unchanged: nothing happens)."""
        _, _, _, gen = RESOURCES[res]
        meta = new.setdefault("metadata", {})
        old_meta = cur["metadata"]
        for k in ("uid", "creationTimestamp", "namespace", "name"):
            if k in old_meta:
                meta[k] = old_meta[k]
        if "deletionTimestamp" in old_meta:
            meta["deletionTimestamp"] = old_meta["deletionTimestamp"]
        elif "deletionTimestamp" in meta:
            del meta["deletionTimestamp"]  # only DELETE sets it
        new["apiVersion"] = cur["apiVersion"]
        new["kind"] = cur["kind"]
        if gen:
            meta["generation"] = old_meta.get("generation", 1)
            if new.get("spec") != cur.get("spec"):
                meta["generation"] += 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if res == CLUSTERS and self.crd is not None:
            new = self.crd.check(new, cur)
            meta = new["metadata"]
        if new == cur:
            return cur  # a no-op write does not change the resourceVersion
        meta["resourceVersion"] = self._next_rv()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self.objects[(res, ns, name)] = new
            self._really_delete(res, ns, name, "Background")
            return new
        self.objects[(res, ns, name)] = new
        self._emit(res, "MODIFIED", new)
        return new

    def replace(self, res, ns, name, obj, subresource=""):
        _, _, has_status, _ = RESOURCES[res]
        cur = self.get(res, ns, name)
        rv = obj.get("metadata", {}).get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict",
                           'Operation cannot be fulfilled on %s "%s": the object has been '
                           "modified; please apply your changes to the latest version and try "
                           "again" % (res[2], name))
        if subresource == "status":
            new = copy.deepcopy(cur)
            new["status"] = copy.deepcopy(obj.get("status"))
            if new["status"] is None:
                del new["status"]
        else:
            new = copy.deepcopy(obj)
            if has_status:
                if "status" in cur:
                    new["status"] = copy.deepcopy(cur["status"])
                else:
                    new.pop("status", None)
        return self._commit(res, ns, name, cur, new)

    def patch(self, res, ns, name, patch, subresource=""):
        _, _, has_status, _ = RESOURCES[res]
        cur = self.get(res, ns, name)
        rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict",
                           'Operation cannot be fulfilled on %s "%s": the object has been '
                           "modified; please apply your changes to the latest version and try "
                           "again" % (res[2], name))
        merged = merge_patch(cur, patch)
        if subresource == "status":
            new = copy.deepcopy(cur)
            if "status" in merged:
                new["status"] = merged["status"]
            else:
                new.pop("status", None)
        else:
            new = merged
            if has_status:
                if "status" in cur:
                    new["status"] = copy.deepcopy(cur["status"])
                else:
                    new.pop("status", None)
        return self._commit(res, ns, name, cur, new)

    def delete(self, res, ns, name, propagation="Background", preconditions=None):
        cur = self.get(res, ns, name)
        meta = cur["metadata"]
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition: %s, UID "
                           "in object meta: %s" % (pre["uid"], meta.get("uid")))
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise ApiError(409, "Conflict", "Precondition failed: resourceVersion")
        if propagation == "Foreground":
            # Dependents first (approximation of the foregroundDeletion finalizer).
            self._delete_dependents(meta.get("uid"), "Foreground")
        if meta.get("finalizers") or (res == PODS and not meta.get("deletionTimestamp")):
            # Pods terminate first (the kubelet removes them); finalizers hold others.
            if not meta.get("deletionTimestamp"):
                new = copy.deepcopy(cur)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0 if res != PODS else 30
                new["metadata"]["resourceVersion"] = self._next_rv()
                self.objects[(res, ns, name)] = new
                self._emit(res, "MODIFIED", new)
                if propagation == "Orphan":
                    self._orphan(meta.get("uid"))
                return new
            return cur
        if res == PODS:
            return cur  # already terminating: the kubelet finishes it
        return self._really_delete(res, ns, name, propagation)

    def _really_delete(self, res, ns, name, propagation):
        obj = self.objects.pop((res, ns, name))
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit(res, "DELETED", obj)
        uid = obj["metadata"].get("uid")
        if propagation == "Orphan":
            self._orphan(uid)
        else:
            self._delete_dependents(uid, "Background")
        return obj

    def _dependents(self, uid):
        out = []
        for key, obj in list(self.objects.items()):
            for ref in obj.get("metadata", {}).get("ownerReferences") or []:
                if ref.get("uid") == uid:
                    out.append(key)
                    break
        return out

    def _delete_dependents(self, uid, propagation):
        if not uid:
            return
        for key in self._dependents(uid):
            if key in self.objects:
                try:
                    self.delete(key[0], key[1], key[2], propagation)
                except ApiError:
                    pass

    def _orphan(self, uid):
        for key in self._dependents(uid):
            cur = self.objects[key]
            new = copy.deepcopy(cur)
            new["metadata"]["ownerReferences"] = [
                r for r in new["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            self._commit(key[0], key[1], key[2], cur, new)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_handler(double):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "kube-double/0.1"

        def log_message(self, fmt, *args):
            if double.verbose:
                log(fmt % args)

        # --- plumbing ---
        def send_json(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def send_error_status(self, err):
            self.send_json(err.code, err.body())

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                return self.rfile.read(n)
            if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return b""

        def parse(self):
            url = urllib.parse.urlsplit(self.path)
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
            parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
            if len(parts) >= 2 and parts[0] == "api":
                group, version, rest = "", parts[1], parts[2:]
            elif len(parts) >= 3 and parts[0] == "apis":
                group, version, rest = parts[1], parts[2], parts[3:]
            else:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            ns = ""
            if len(rest) >= 2 and rest[0] == "namespaces":
                ns, rest = rest[1], rest[2:]
            if not rest:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            res = (group, version, rest[0])
            if res not in RESOURCES:
                raise ApiError(404, "NotFound",
                               "the server could not find the requested resource (%s)" % "/".join(res))
            name = rest[1] if len(rest) > 1 else ""
            sub = rest[2] if len(rest) > 2 else ""
            if sub and sub not in ("status", "scale"):
                raise ApiError(404, "NotFound", "no subresource %s" % sub)
            if sub == "scale" and res != ("dynamo.dev", "v1alpha1", "dynamoclusters") and res != STS:
                raise ApiError(404, "NotFound", "no scale subresource")
            return res, ns, name, sub, q

        def handle_any(self, method):
            body = self.read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            url = urllib.parse.urlsplit(self.path)
            if url.path.startswith("/_double/"):
                return self.control(method, url, body)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            with double.store.cond:
                st = double.store
                st.requests.append({"method": method, "path": url.path, "query": url.query,
                                    "contentType": ctype, "time": time.time()})
                del st.requests[:-REQUEST_LOG_MAX]
                for f in st.faults:
                    if f["count"] > 0 and f.get("method", method) == method and \
                            f.get("path_contains", "") in url.path and \
                            f.get("query_contains", "") in url.query:
                        f["count"] -= 1
                        err = ApiError(f["status"], f.get("reason", "InternalError"),
                                       "injected fault")
                        return self.send_error_status(err)
            if double.token and self.headers.get("Authorization") != "Bearer " + double.token:
                return self.send_error_status(ApiError(401, "Unauthorized", "Unauthorized"))
            try:
                res, ns, name, sub, q = self.parse()
                if method == "GET" and not name and q.get("watch") in ("1", "true"):
                    return self.watch(res, ns, q)
                result = self.dispatch(method, res, ns, name, sub, q, body, ctype)
                code = 201 if method == "POST" else 200
                self.send_json(code, result)
            except ApiError as e:
                self.send_error_status(e)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_PATCH(self):
            self.handle_any("PATCH")

        def do_DELETE(self):
            self.handle_any("DELETE")

        def load(self, body):
            try:
                return json.loads(body or b"{}")
            except ValueError:
                raise ApiError(400, "BadRequest", "the body is not valid JSON")

        # --- the API ---
        def dispatch(self, method, res, ns, name, sub, q, body, ctype):
            st = double.store
            kind = RESOURCES[res][0]
            with st.cond:
                if method == "GET" and not name:
                    return self.list(res, ns, q)
                if method == "GET":
                    obj = st.get(res, ns, name)
                    return self.scale_of(obj) if sub == "scale" else obj
                if method == "POST":
                    if name:
                        raise ApiError(405, "MethodNotAllowed", "POST to a named object")
                    return st.create(res, ns, self.load(body))
                if method == "PUT":
                    obj = self.load(body)
                    if sub == "scale":
                        return self.scale_of(st.patch(res, ns, name, {
                            "spec": {"replicas": obj.get("spec", {}).get("replicas")}}))
                    if obj.get("metadata", {}).get("name") not in (None, name):
                        raise ApiError(400, "BadRequest", "the name of the object does not match")
                    return st.replace(res, ns, name, obj, sub)
                if method == "PATCH":
                    if ctype in ("application/merge-patch+json",
                                 "application/strategic-merge-patch+json"):
                        patch = self.load(body)
                        if sub == "scale":
                            return self.scale_of(st.patch(res, ns, name, {
                                "spec": {"replicas": patch.get("spec", {}).get("replicas")}}))
                        return st.patch(res, ns, name, patch, sub)
                    if ctype == "application/apply-patch+yaml":
                        if not q.get("fieldManager"):
                            raise ApiError(400, "BadRequest",
                                           "PATCH with apply requires a fieldManager")
                        obj = self.load(body)  # JSON is YAML; other YAML is not parsed here
                        if obj.get("kind") != kind or obj.get("apiVersion") != api_version(res):
                            raise ApiError(400, "BadRequest", "apiVersion and kind must match")
                        if (res, ns, name) not in st.objects:
                            if sub:
                                raise ApiError(404, "NotFound", '%s "%s" not found' % (res[2], name))
                            obj.setdefault("metadata", {})["name"] = name
                            return st.create(res, ns, obj)
                        return st.patch(res, ns, name, obj, sub)
                    raise ApiError(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format - accepted "
                                   "media types include: application/merge-patch+json, "
                                   "application/apply-patch+yaml")
                if method == "DELETE":
                    opts = self.load(body) if body else {}
                    prop = opts.get("propagationPolicy") or q.get("propagationPolicy") or "Background"
                    return st.delete(res, ns, name, prop, opts.get("preconditions"))
            raise ApiError(405, "MethodNotAllowed", method)

        def scale_of(self, obj):
            meta = obj["metadata"]
            return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                 "resourceVersion": meta["resourceVersion"], "uid": meta["uid"]},
                    "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
                    "status": {"replicas": obj.get("status", {}).get("replicas", 0)}}

        def list(self, res, ns, q):
            st = double.store
            items = st.list(res, ns, q.get("labelSelector", ""), q.get("fieldSelector", ""))
            list_rv = str(st.rv)
            start = 0
            if q.get("continue"):
                try:
                    token = json.loads(base64.b64decode(q["continue"]))
                    list_rv, start = token["rv"], token["start"]
                except (ValueError, KeyError):
                    raise ApiError(400, "BadRequest", "invalid continue token")
                if int(list_rv) < st.compacted:
                    raise ApiError(410, "Expired", "The provided continue parameter is too old")
            limit = int(q.get("limit") or 0)
            meta = {"resourceVersion": list_rv}
            page = items[start:]
            if limit and len(page) > limit:
                page = page[:limit]
                meta["continue"] = base64.b64encode(json.dumps(
                    {"rv": list_rv, "start": start + limit}).encode()).decode()
                meta["remainingItemCount"] = len(items) - start - limit
            kind = RESOURCES[res][0]
            out = []
            for obj in page:
                o = copy.deepcopy(obj)
                o.pop("apiVersion", None)
                o.pop("kind", None)
                out.append(o)
            return {"kind": kind + "List", "apiVersion": api_version(res), "metadata": meta,
                    "items": out}

        # --- watch streams ---
        def write_chunk(self, data):
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            self.wfile.flush()

        def send_lines(self, lines):
            cfg = double.store.config
            data = b"".join(lines) if cfg.get("coalesce") else None
            blobs = [data] if data is not None else lines
            for blob in blobs:
                split = int(cfg.get("split_max") or 0)
                if split <= 0:
                    self.write_chunk(blob)
                    continue
                i = 0
                while i < len(blob):
                    n = random.randint(1, split)
                    self.write_chunk(blob[i:i + n])
                    i += n

        def watch(self, res, ns, q):
            st = double.store
            if q.get("sendInitialEvents") == "true":
                raise ApiError(400, "BadRequest",
                               "sendInitialEvents is not supported by this server (WatchList "
                               "is disabled): list, then watch")
            timeout = min(int(q.get("timeoutSeconds") or WATCH_TIMEOUT_MAX_S), WATCH_TIMEOUT_MAX_S)
            bookmarks = q.get("allowWatchBookmarks") == "true"
            reqs = parse_label_selector(q.get("labelSelector", ""))
            fsel = q.get("fieldSelector", "")
            rv = q.get("resourceVersion", "")
            w = Watcher()

            def matches(r, obj):
                if r != res:
                    return False
                meta = obj.get("metadata", {})
                if ns and meta.get("namespace") != ns:
                    return False
                return labels_match(reqs, meta.get("labels")) and fields_match(fsel, obj)

            def line(typ, obj):
                return (json.dumps({"type": typ, "object": obj}) + "\n").encode()

            def gone_line(last):
                return line("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                      "status": "Failure", "reason": "Expired", "code": 410,
                                      "message": "too old resource version: %s (%s)" %
                                                 (last, st.compacted)})

            initial = []
            with st.cond:
                if rv in ("", "0"):
                    last = st.rv
                    initial = [line("ADDED", o) for o in st.list(res, ns) if matches(res, o)]
                else:
                    try:
                        last = int(rv)
                    except ValueError:
                        raise ApiError(400, "BadRequest", "invalid resourceVersion %r" % rv)
                    if last < st.compacted and st.config.get("gone_form") == "http":
                        raise ApiError(410, "Expired", "too old resource version: %d (%d)" %
                                       (last, st.compacted))
                st.watchers.add(w)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if initial:
                    self.send_lines(initial)
                deadline = time.time() + timeout
                last_bookmark = time.time()
                while time.time() < deadline and not double.stopping:
                    out = []
                    end = False
                    with st.cond:
                        if last < st.compacted:
                            out.append(gone_line(last))
                            end = True
                        elif w.expire == "stream":
                            # Expired: resuming from `last` is refused too.
                            st.rv = max(st.rv, last + 1)
                            st.compacted = max(st.compacted, last + 1)
                            out.append(gone_line(last))
                            end = True
                        elif w.expire == "close":
                            end = True
                        else:
                            for (erv, r, typ, obj) in st.history:
                                if erv > last:
                                    if matches(r, obj):
                                        out.append(line(typ, obj))
                                    last = erv
                            if not out:
                                interval = float(st.config.get("bookmark_interval_s") or 0)
                                if bookmarks and interval > 0 and \
                                        time.time() - last_bookmark >= interval:
                                    last = max(last, st.rv)
                                    out.append(line("BOOKMARK", {
                                        "kind": RESOURCES[res][0], "apiVersion": api_version(res),
                                        "metadata": {"resourceVersion": str(last)}}))
                                    last_bookmark = time.time()
                                else:
                                    st.cond.wait(0.2)
                    if out:
                        self.send_lines(out)
                    if end:
                        break
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                self.close_connection = True
            finally:
                with st.cond:
                    st.watchers.discard(w)

        # --- test controls ---
        def control(self, method, url, body):
            st = double.store
            q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            path = url.path
            with st.cond:
                if path == "/_double/compact":
                    st.rv += 1
                    st.compacted = st.rv
                    del st.history[:]
                    st.cond.notify_all()
                    return self.send_json(200, {"compacted": st.compacted})
                if path == "/_double/expire-watches":
                    form = q.get("form", "stream")
                    for w in st.watchers:
                        w.expire = form
                    st.cond.notify_all()
                    return self.send_json(200, {"expired": len(st.watchers)})
                if path == "/_double/config":
                    st.config.update(json.loads(body or b"{}"))
                    return self.send_json(200, st.config)
                if path == "/_double/fail":
                    f = json.loads(body)
                    f.setdefault("count", 1)
                    st.faults.append(f)
                    return self.send_json(200, {"faults": len(st.faults)})
                if path == "/_double/requests":
                    if method == "DELETE":
                        del st.requests[:]
                    return self.send_json(200, {"requests": st.requests})
                if path == "/_double/state":
                    return self.send_json(200, {
                        "rv": st.rv, "compacted": st.compacted, "watchers": len(st.watchers),
                        "objects": len(st.objects),
                        "processes": {"%s/%s" % k: p.proc.pid for k, p in double.kubelet.procs.items()
                                      if p.proc is not None and p.proc.poll() is None}})
                if path == "/_double/pod-ready":
                    spec = json.loads(body)
                    double.kubelet.forced_ready[(spec["namespace"], spec["name"])] = spec["ready"]
                    return self.send_json(200, {})
                if path == "/_double/kill-pod":
                    spec = json.loads(body)
                    p = double.kubelet.procs.get((spec["namespace"], spec["name"]))
                    if p and p.proc and p.proc.poll() is None:
                        p.proc.send_signal(int(spec.get("signal", signal.SIGKILL)))
                    return self.send_json(200, {})
            self.send_json(404, {"message": "no such control"})

    return Handler


# ---------------------------------------------------------------------------
# Controllers.

def ordinal_of(name):
    m = re.match(r"^(.*)-(\d+)$", name)
    return (m.group(1), int(m.group(2))) if m else (name, -1)


def owner_ref(obj):
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def pod_ready(pod):
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


class StatefulSetController:
    def __init__(self, double):
        self.d = double

    def template_hash(self, sts):
        t = json.dumps(sts["spec"].get("template", {}), sort_keys=True).encode()
        return sts["metadata"]["name"] + "-" + hashlib.sha1(t).hexdigest()[:10]

    def step(self):
        st = self.d.store
        with st.cond:
            for sts in st.list(STS, ""):
                try:
                    self.reconcile(st, sts)
                except ApiError as e:
                    log("statefulset %s: %s" % (sts["metadata"]["name"], e.message))

    def reconcile(self, st, sts):
        meta = sts["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if meta.get("deletionTimestamp"):
            return
        spec = sts.get("spec", {})
        replicas = int(spec.get("replicas", 1))
        revision = self.template_hash(sts)
        template = spec.get("template", {})
        pods = {}
        for p in st.list(PODS, ns):
            for ref in p["metadata"].get("ownerReferences") or []:
                if ref.get("uid") == meta["uid"]:
                    base, i = ordinal_of(p["metadata"]["name"])
                    if base == name and i >= 0:
                        pods[i] = p
        for i in range(replicas):
            for claim in spec.get("volumeClaimTemplates") or []:
                cname = "%s-%s-%d" % (claim["metadata"]["name"], name, i)
                if (PVCS, ns, cname) not in st.objects:
                    pvc = {"metadata": {"name": cname, "namespace": ns,
                                        "labels": dict(claim["metadata"].get("labels") or {})},
                           "spec": copy.deepcopy(claim.get("spec", {})),
                           "status": {"phase": "Bound"}}
                    st.create(PVCS, ns, pvc, internal=True)
            if i not in pods:
                st.create(PODS, ns, self.pod_for(sts, i, revision, template), internal=True)
        # Removal from the highest ordinal.
        for i in sorted(pods, reverse=True):
            if i >= replicas and not pods[i]["metadata"].get("deletionTimestamp"):
                st.delete(PODS, ns, pods[i]["metadata"]["name"])
        # Rolling update: one pod at a time, highest first, when all are ready.
        live = [p for i, p in pods.items() if i < replicas]
        outdated = sorted([i for i, p in pods.items() if i < replicas and
                           p["metadata"].get("labels", {}).get("controller-revision-hash") != revision],
                          reverse=True)
        if outdated and all(pod_ready(p) and not p["metadata"].get("deletionTimestamp") for p in live) \
                and len(live) == replicas:
            st.delete(PODS, ns, pods[outdated[0]]["metadata"]["name"])
        ready = sum(1 for p in live if pod_ready(p))
        updated = sum(1 for p in live
                      if p["metadata"].get("labels", {}).get("controller-revision-hash") == revision)
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(live),
                  "readyReplicas": ready, "availableReplicas": ready, "currentReplicas": updated,
                  "updatedReplicas": updated, "updateRevision": revision,
                  "currentRevision": revision if updated == len(live) else
                  (sts.get("status") or {}).get("currentRevision", revision),
                  "collisionCount": 0}
        if sts.get("status") != status:
            st.replace(STS, ns, name, {"metadata": {}, "status": status}, "status")

    def pod_for(self, sts, i, revision, template):
        meta = sts["metadata"]
        name = "%s-%d" % (meta["name"], i)
        labels = dict(template.get("metadata", {}).get("labels") or {})
        labels["statefulset.kubernetes.io/pod-name"] = name
        labels["apps.kubernetes.io/pod-index"] = str(i)
        labels["controller-revision-hash"] = revision
        spec = copy.deepcopy(template.get("spec", {}))
        spec["hostname"] = name
        spec["subdomain"] = sts["spec"].get("serviceName", "")
        # The scheduler: with Node objects created by a test, pod i runs on
        # the i-th of them (by name, round robin).
        machines = sorted(n for (r, _, n) in self.d.store.objects if r == NODES)
        if machines:
            spec["nodeName"] = machines[i % len(machines)]
        volumes = spec.setdefault("volumes", [])
        for claim in sts["spec"].get("volumeClaimTemplates") or []:
            cn = claim["metadata"]["name"]
            volumes.append({"name": cn, "persistentVolumeClaim": {
                "claimName": "%s-%s-%d" % (cn, meta["name"], i)}})
        return {"metadata": {"name": name, "namespace": meta["namespace"], "labels": labels,
                             "annotations": dict(template.get("metadata", {}).get("annotations") or {}),
                             "ownerReferences": [owner_ref(sts)]},
                "spec": spec,
                "status": {"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "True"}]}}


class PodProcess:
    def __init__(self):
        self.proc = None
        self.log = None
        self.restarts = 0
        self.started_at = 0.0
        self.exited_at = 0.0


class Kubelet:
    """Runs pods: fake (Running and Ready at once) or as real processes."""

    def __init__(self, double):
        self.d = double
        self.procs = {}          # (ns, pod) -> PodProcess
        self.forced_ready = {}   # (ns, pod) -> bool, for fake pods
        self.ip_bases = {}       # (ns, statefulset) -> base offset

    def ip_for(self, ns, pod_name):
        base, i = ordinal_of(pod_name)
        if i < 0:
            base, i = pod_name, 0
        key = (ns, base)
        if key not in self.ip_bases:
            self.ip_bases[key] = 32 * len(self.ip_bases)
        return "%s%d" % (self.d.args.pod_ip_prefix, self.d.args.pod_ip_start + self.ip_bases[key] + i)

    def step(self):
        st = self.d.store
        with st.cond:
            pods = [copy.deepcopy(p) for p in st.list(PODS, "")]
        for pod in pods:
            meta = pod["metadata"]
            key = (meta["namespace"], meta["name"])
            if meta.get("deletionTimestamp"):
                self.stop(key)
                with st.cond:
                    if (PODS, key[0], key[1]) in st.objects:
                        st._really_delete(PODS, key[0], key[1], "Background")
                continue
            if self.d.args.node_binary:
                self.run_real(pod, key)
            else:
                self.run_fake(pod, key)
        # Claims deleted: their data goes too.
        with st.cond:
            live = {(ns, n) for (r, ns, n) in st.objects if r == PVCS}
        root = os.path.join(self.d.work_dir, "volumes")
        if os.path.isdir(root):
            for ns in os.listdir(root):
                for claim in os.listdir(os.path.join(root, ns)):
                    if (ns, claim) not in live:
                        shutil.rmtree(os.path.join(root, ns, claim), ignore_errors=True)

    def set_status(self, key, phase, ready, ip, restarts=0, message=""):
        st = self.d.store
        with st.cond:
            cur = st.objects.get((PODS, key[0], key[1]))
            if cur is None or cur["metadata"].get("deletionTimestamp"):
                return
            status = copy.deepcopy(cur.get("status") or {})
            status["phase"] = phase
            if ip:
                status["podIP"] = ip
                status["podIPs"] = [{"ip": ip}]
                status["hostIP"] = "127.0.0.1"
            r = "True" if ready else "False"
            old = {c["type"]: c for c in status.get("conditions") or []}
            conds = []
            for typ, val in (("PodScheduled", "True"), ("Initialized", "True"),
                             ("ContainersReady", r), ("Ready", r)):
                c = old.get(typ) or {}
                if c.get("status") != val:
                    c = {"type": typ, "status": val, "lastTransitionTime": now_rfc3339()}
                conds.append(c)
            status["conditions"] = conds
            status["containerStatuses"] = [{"name": "dynamo", "ready": ready,
                                            "restartCount": restarts,
                                            "state": {"running": {}} if phase == "Running"
                                            else {"waiting": {"reason": message or "Waiting"}}}]
            if status != cur.get("status"):
                st.replace(PODS, key[0], key[1], {"metadata": {}, "status": status}, "status")

    def run_fake(self, pod, key):
        ready = self.forced_ready.get(key, True)
        self.set_status(key, "Running", ready, self.ip_for(key[0], key[1]))

    def env_for(self, pod, container, ip):
        st = self.d.store
        meta = pod["metadata"]
        env = {}
        fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "status.podIP": ip, "spec.nodeName": "double-node", "status.hostIP": "127.0.0.1"}
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = self.expand(e["value"], env)
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "fieldRef" in vf:
                    env[e["name"]] = fields.get(vf["fieldRef"]["fieldPath"], "")
                elif "configMapKeyRef" in vf:
                    ref = vf["configMapKeyRef"]
                    with st.cond:
                        cm = st.objects.get((CONFIGMAPS, meta["namespace"], ref["name"]))
                    val = (cm or {}).get("data", {}).get(ref["key"])
                    if val is None:
                        if ref.get("optional"):
                            continue
                        raise RuntimeError("configmap %s key %s not found" % (ref["name"], ref["key"]))
                    env[e["name"]] = val
        return env

    @staticmethod
    def expand(s, env):
        def sub(m):
            if m.group(0) == "$$":
                return "$"
            return env.get(m.group(1), m.group(0))
        return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, s)

    def resolve_dns(self, s):
        """Cluster DNS stand-in: <pod>.<service>.<namespace>.svc[.cluster.local] -> pod IP."""
        return re.sub(r"\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?\b",
                      lambda m: self.ip_for(m.group(4), m.group(1)), s)

    def volume_dir(self, pod, volume_name):
        meta = pod["metadata"]
        for v in pod["spec"].get("volumes") or []:
            if v.get("name") != volume_name:
                continue
            if "persistentVolumeClaim" in v:
                d = os.path.join(self.d.work_dir, "volumes", meta["namespace"],
                                 v["persistentVolumeClaim"]["claimName"])
            else:
                d = os.path.join(self.d.work_dir, "pods", meta["namespace"], meta["name"], volume_name)
            os.makedirs(d, exist_ok=True)
            return d
        return None

    def command_for(self, pod, ip):
        container = pod["spec"]["containers"][0]
        env = self.env_for(pod, container, ip)
        args = []
        mounts = [(m["mountPath"], self.volume_dir(pod, m["name"]))
                  for m in container.get("volumeMounts") or []]
        for a in container.get("args") or []:
            a = self.expand(a, env)
            a = self.resolve_dns(a)
            a = a.replace("0.0.0.0:", ip + ":")
            for path, host in mounts:
                if host and ("=" + path) in a:
                    a = a.replace("=" + path, "=" + host)
            args.append(a)
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.d.work_dir}
        full_env.update(env)
        return [self.d.args.node_binary] + args, full_env

    def probe_port(self, pod, port):
        container = pod["spec"]["containers"][0]
        if isinstance(port, int):
            return port
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        return None

    def run_real(self, pod, key):
        ip = self.ip_for(key[0], key[1])
        p = self.procs.setdefault(key, PodProcess())
        now = time.time()
        if p.proc is None or p.proc.poll() is not None:
            if p.proc is not None and p.exited_at == 0.0:
                p.exited_at = now
                log("pod %s/%s exited with %s" % (key[0], key[1], p.proc.returncode))
                self.set_status(key, "Running", False, ip, p.restarts, "CrashLoopBackOff")
            if p.proc is not None and now - p.exited_at < min(10.0, 0.5 * 2 ** min(p.restarts, 5)):
                return  # back off before restarting
            try:
                cmd, env = self.command_for(pod, ip)
            except RuntimeError as e:
                self.set_status(key, "Pending", False, ip, p.restarts, "CreateContainerConfigError")
                log("pod %s/%s: %s" % (key[0], key[1], e))
                return
            if p.proc is not None:
                p.restarts += 1
            logdir = os.path.join(self.d.work_dir, "logs")
            os.makedirs(logdir, exist_ok=True)
            if p.log:
                p.log.close()
            p.log = open(os.path.join(logdir, "%s_%s.log" % key), "ab")
            p.log.write(("--- start %s: %s\n" % (now_rfc3339(), " ".join(cmd))).encode())
            p.log.flush()
            p.proc = subprocess.Popen(cmd, env=env, stdout=p.log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
            p.started_at = now
            p.exited_at = 0.0
            log("pod %s/%s started as pid %d on %s" % (key[0], key[1], p.proc.pid, ip))
        ready = False
        probe = pod["spec"]["containers"][0].get("readinessProbe", {}).get("httpGet")
        if probe:
            port = self.probe_port(pod, probe.get("port"))
            try:
                conn = http.client.HTTPConnection(ip, port, timeout=0.5)
                conn.request("GET", probe.get("path", "/"))
                ready = 200 <= conn.getresponse().status < 400
                conn.close()
            except (OSError, http.client.HTTPException):
                ready = False
        else:
            ready = True
        self.set_status(key, "Running", ready, ip, p.restarts)

    def stop(self, key, grace_s=10.0):
        p = self.procs.pop(key, None)
        if p is None or p.proc is None:
            return
        if p.proc.poll() is None:
            p.proc.terminate()
            try:
                p.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
            log("pod %s/%s stopped (exit %s)" % (key[0], key[1], p.proc.returncode))
        if p.log:
            p.log.close()

    def stop_all(self):
        for key in list(self.procs):
            p = self.procs[key]
            if p.proc is not None and p.proc.poll() is None:
                p.proc.terminate()
        deadline = time.time() + 5
        for key in list(self.procs):
            p = self.procs[key]
            if p.proc is None:
                continue
            try:
                p.proc.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.proc.kill()
        self.procs.clear()


class Double:
    def __init__(self, args):
        self.args = args
        self.store = Store()
        self.token = args.token
        self.verbose = args.verbose
        self.stopping = False
        self.work_dir = args.work_dir or os.path.join("/tmp", "kube-double-%d" % os.getpid())
        os.makedirs(self.work_dir, exist_ok=True)
        self.sts = StatefulSetController(self)
        self.kubelet = Kubelet(self)

    def controllers(self):
        while not self.stopping:
            try:
                self.sts.step()
                self.kubelet.step()
            except Exception as e:  # keep the double alive; the test sees the effect
                log("controller error: %r" % e)
            time.sleep(self.args.controller_interval_s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--token", default="", help="require this bearer token")
    ap.add_argument("--node-binary", default="", help="run pods as this program (e2e mode)")
    ap.add_argument("--work-dir", default="", help="volumes and pod logs")
    ap.add_argument("--pod-ip-prefix", default="127.0.0.")
    ap.add_argument("--pod-ip-start", type=int, default=10)
    ap.add_argument("--controller-interval-s", type=float, default=0.2)
    ap.add_argument("--crd", default="", help="validate DynamoClusters against this CRD file")
    ap.add_argument("--crd-helpers", default="",
                    help="directory of crd_schema.py (tests/packaging)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    double = Double(args)
    double.store.crd = CrdValidator(args.crd, args.crd_helpers)
    if double.store.crd.validator is None:
        log("DynamoCluster validation against the CRD is off (%s)" % double.store.crd.why_off)
        double.store.crd = None
    else:
        log("DynamoClusters are validated against %s" % args.crd)
    server = Server((args.host, args.port), make_handler(double))
    port = server.server_address[1]

    def shutdown(*_):
        double.stopping = True
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    threading.Thread(target=double.controllers, daemon=True).start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, args.port_file)
    log("listening on %s:%d (%s pods)" % (args.host, port,
                                          "real" if args.node_binary else "fake"))
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        double.stopping = True
        double.kubelet.stop_all()
        log("stopped")


if __name__ == "__main__":
    main()
