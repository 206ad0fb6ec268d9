"""Real dynamo-node processes on loopback, for integration tests.

A Cluster starts nodes with their own data directories and ports, talks to
them through stubs generated from proto/ by grpc_tools at test time, and kills
every process it started when the test ends, even on failure.
"""

import argparse
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ARGS = None
_STUBS = None


def parse_args():
    """--node PATH --proto DIR --base-port N; the rest goes to unittest."""
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--node", required=True, help="path of the dynamo-node binary")
    p.add_argument("--proto", required=True, help="the proto/ directory")
    p.add_argument("--base-port", type=int, required=True, help="first port this test may use")
    ARGS, rest = p.parse_known_args()
    return [sys.argv[0]] + rest


def stubs():
    """Generates and imports the Python stubs of kv, admin and replica protos."""
    global _STUBS
    if _STUBS is None:
        out = tempfile.mkdtemp(prefix="dynamo-stubs-")
        atexit.register(shutil.rmtree, out, True)
        protos = ["dynamo/v1/versions.proto", "dynamo/v1/kv.proto",
                  "dynamo/v1/admin.proto", "dynamo/v1/replica.proto"]
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", ARGS.proto,
                        "--python_out", out, "--grpc_python_out", out] + protos, check=True)
        for d in ["dynamo", "dynamo/v1"]:
            open(os.path.join(out, d, "__init__.py"), "w").close()
        sys.path.insert(0, out)
        import grpc  # noqa: F401
        from dynamo.v1 import admin_pb2, admin_pb2_grpc, kv_pb2, kv_pb2_grpc
        _STUBS = (kv_pb2, kv_pb2_grpc, admin_pb2, admin_pb2_grpc)
    return _STUBS


def wait_until(predicate, timeout, what):
    """Polls predicate until true; fails with `what` after timeout seconds."""
    deadline = time.time() + timeout
    last_error = None
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception as e:  # a node still starting answers with errors
            last_error = e
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


class Node:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.id = f"n{index}"
        self.port = cluster.base_port + 2 * index
        self.http_port = cluster.base_port + 2 * index + 1
        self.address = f"127.0.0.1:{self.port}"
        self.data_dir = os.path.join(cluster.dir, self.id)
        self.log_path = os.path.join(cluster.dir, f"{self.id}.log")
        self.process = None
        self._channel = None

    def start(self, extra=(), env=None):
        """env: variables added to this process's environment."""
        seeds = self.cluster.nodes[0].address if self.cluster.nodes else self.address
        args = [ARGS.node, f"--node-id={self.id}", f"--listen={self.address}",
                f"--http=127.0.0.1:{self.http_port}", f"--data-dir={self.data_dir}",
                f"--seeds={seeds}"] + list(self.cluster.node_flags) + list(extra)
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self._ended()

    def _ended(self):
        self.process = None
        self._channel = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def stop(self):
        """SIGTERM: graceful; returns the exit code."""
        if not self.process:
            return None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._ended()
        return code

    def wipe(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def channel(self):
        import grpc
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def kv(self):
        _, kv_pb2_grpc, _, _ = stubs()
        return kv_pb2_grpc.KVStub(self.channel())

    def admin(self):
        _, _, _, admin_pb2_grpc = stubs()
        return admin_pb2_grpc.AdminStub(self.channel())

    def status(self):
        _, _, admin_pb2, _ = stubs()
        return self.admin().Status(admin_pb2.StatusRequest(), timeout=5)

    def members(self):
        _, _, admin_pb2, _ = stubs()
        return self.admin().Members(admin_pb2.MembersRequest(), timeout=5)

    def member(self, node_id):
        """This node's view of one member (state, alive, address)."""
        return next(m for m in self.members().members if m.node_id == node_id)

    def http(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def metric(self, name):
        """Sum of the samples of a metric (all label sets) in /metrics."""
        _, text = self.http("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def put(self, key, value, context=b"", n=0, r=0, w=0, timeout=10):
        kv_pb2, _, _, _ = stubs()
        return self.kv().Put(kv_pb2.PutRequest(key=key, value=value, context=context,
                                               quorum=kv_pb2.Quorum(n=n, r=r, w=w)),
                             timeout=timeout)

    def get(self, key, n=0, r=0, w=0, timeout=10):
        kv_pb2, _, _, _ = stubs()
        return self.kv().Get(kv_pb2.GetRequest(key=key, quorum=kv_pb2.Quorum(n=n, r=r, w=w)),
                             timeout=timeout)

    def delete(self, key, context=b"", timeout=10):
        kv_pb2, _, _, _ = stubs()
        return self.kv().Delete(kv_pb2.DeleteRequest(key=key, context=context), timeout=timeout)

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


# Fast timers so that tests finish in seconds; the protocol is the same.
FAST = ("--gossip-interval-ms=200", "--antientropy-interval-ms=300",
        "--request-timeout-ms=1000", "--tombstone-grace-ms=2000")


class Cluster:
    def __init__(self, n, node_flags=FAST):
        self.base_port = ARGS.base_port
        self.dir = tempfile.mkdtemp(prefix="dynamo-it-")
        self.node_flags = list(node_flags)
        self.nodes = []
        for i in range(n):
            self.nodes.append(Node(self, i))
        atexit.register(self.close)

    def start(self, timeout=60):
        for node in self.nodes:
            node.start()
        self.wait_normal(timeout)
        return self

    def add_node(self, extra=()):
        node = Node(self, len(self.nodes))
        self.nodes.append(node)
        node.start(extra)
        return node

    def wait_normal(self, timeout=60, nodes=None):
        """Until every running node sees every given node NORMAL and alive (its
        failure detector), on one ring version."""
        _, _, admin_pb2, _ = stubs()
        nodes = nodes or self.nodes
        running = [n for n in self.nodes if n.alive()]

        def ok():
            versions = set()
            for viewer in running:
                m = viewer.members()
                versions.add(m.ring_version)
                seen = {x.node_id: (x.state, x.alive) for x in m.members}
                if any(seen.get(n.id) != (admin_pb2.NODE_STATE_NORMAL, True) for n in nodes):
                    return False
            return len(versions) == 1
        try:
            wait_until(ok, timeout, "every node NORMAL and alive on one ring")
        except AssertionError:
            self.dump()
            raise

    def dump(self):
        for n in self.nodes:
            sys.stderr.write(f"--- log of {n.id} ---\n{n.log_tail()}\n")

    def close(self):
        for n in self.nodes:
            try:
                n.kill()
            except Exception:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
