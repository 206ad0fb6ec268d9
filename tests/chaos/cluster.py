"""Real dynamo-node processes for the chaos harness: started in their network
namespaces (or on loopback), one of them under libfaketime so that its wall
clock can be skewed while it runs, one of them on a small tmpfs so that its
disk can be filled; killed, paused and restarted; watched for crashes.

A Cluster is used from several threads (clients, nemesis, monitor, sampler):
process changes hold its lock; gRPC channels are thread-safe.
"""

import glob
import json
import os
import signal
import subprocess
import threading
import time

FAKETIME_LIBS = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1") + \
    glob.glob("/usr/lib/*/faketime/libfaketime.so.1")

STATE_DIR = "/run/dynamo-chaos" if os.geteuid() == 0 else os.path.join("/tmp", f"dynamo-chaos-{os.getuid()}")
STATE_FILE = os.path.join(STATE_DIR, "state.json")
LOCK_FILE = os.path.join(STATE_DIR, "lock")

# Fast timers, as in tests/integration/harness.py, with a request timeout
# that a loaded 2-core machine under faults can meet.
NODE_FLAGS = ["--gossip-interval-ms=200", "--antientropy-interval-ms=300",
              "--request-timeout-ms=2000", "--tombstone-grace-ms=2000"]

GRPC_OPTIONS = [("grpc.enable_http_proxy", 0),
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 1000)]


class State:
    """What this run made, on disk, so that a later run (or the reaper) can
    remove it if this one dies: namespaces, links, mounts, node pids."""

    def __init__(self, run_dir, node_binary):
        self.lock = threading.Lock()
        self.data = {"active": True, "harness_pid": os.getpid(), "run_dir": run_dir,
                     "node_binary": node_binary, "pids": {}, "mounts": [], "namespaces": [],
                     "links": []}

    def update(self, **changes):
        with self.lock:
            for k, v in changes.items():
                self.data[k] = v
            self._write()

    def set_pid(self, node_id, pid):
        with self.lock:
            if pid is None:
                self.data["pids"].pop(node_id, None)
            else:
                self.data["pids"][node_id] = pid
            self._write()

    def _write(self):
        tmp = STATE_FILE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, STATE_FILE)


def ours(pid, state):
    """True if pid is still a dynamo-node this harness started (pids are reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
    except OSError:
        return False
    return state.get("node_binary", "\0") in cmd and state.get("run_dir", "\0") in cmd


def clean_from_state(log):
    """Undoes what the state file of an earlier (dead) run lists."""
    try:
        with open(STATE_FILE) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return
    if not state.get("active"):
        return
    for node_id, pid in state.get("pids", {}).items():
        if ours(pid, state):
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            log(f"cleanup: killed {node_id} (pid {pid}) of an earlier run")
    for m in state.get("mounts", []):
        subprocess.run(["umount", "-l", m], capture_output=True)
        log(f"cleanup: unmounted {m}")
    for ns in state.get("namespaces", []):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for link in state.get("links", []):
        subprocess.run(["ip", "link", "del", link], capture_output=True)
    state["active"] = False
    with open(STATE_FILE, "w") as f:
        json.dump(state, f)


def clean_stray_mounts(log):
    """tmpfs mounts under a chaos run directory that no run owns any more."""
    try:
        with open("/proc/mounts") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split()
        if len(parts) > 2 and parts[2] == "tmpfs" and "/dynamo-chaos-" in parts[1]:
            subprocess.run(["umount", "-l", parts[1]], capture_output=True)
            log(f"cleanup: unmounted {parts[1]}")


class Node:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.id = f"n{index}"
        lab = cluster.lab
        self.address = lab.grpc_address(index)
        self.http_address = lab.http_address(index)
        self.data_dir = os.path.join(cluster.dir, self.id)
        self.log_path = os.path.join(cluster.dir, f"{self.id}.log")
        self.skew_file = None
        self.disk_mounted = False
        self.process = None
        self.expected_down = False  # the nemesis killed it: an exit is not a crash
        self.paused = False
        self.starts = 0
        self._log = None
        self._channel = None
        self._chlock = threading.Lock()

    # ----- process
    def command(self):
        # n0 founds the ring (its only seed is itself); the others know two
        # seeds, so that one down does not keep a restarting node out.
        nodes = self.cluster.nodes
        if self.index == 0 or len(nodes) < 3:
            seeds = nodes[0].address
        else:
            seeds = ",".join(nodes[j].address for j in (0, 1 if self.index != 1 else 2))
        return self.cluster.lab.exec_prefix(self.index) + [
            self.cluster.node_binary, f"--node-id={self.id}", f"--listen={self.address}",
            f"--advertise={self.address}", f"--http={self.http_address}",
            f"--data-dir={self.data_dir}", f"--seeds={seeds}"] + self.cluster.node_flags

    def environment(self):
        env = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "grpc_proxy"):
            env.pop(k, None)
        if self.skew_file:
            # Only the wall clock moves: a monotonic clock that jumps is not a
            # fault real machines have. Re-read the offset once a second.
            env.update({"LD_PRELOAD": FAKETIME_LIBS[0], "FAKETIME_TIMESTAMP_FILE": self.skew_file,
                        "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        return env

    def start(self):
        with self.cluster.lock:
            if self.alive():
                return
            os.makedirs(self.data_dir, exist_ok=True)
            self._log = open(self.log_path, "ab")
            self._log.write(f"==== chaos: start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            self._log.flush()
            self.process = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                            env=self.environment(), stdin=subprocess.DEVNULL)
            self.starts += 1
            self.expected_down = False
            self.paused = False
            self.cluster.state.set_pid(self.id, self.process.pid)

    def kill(self, sig=signal.SIGKILL, expected=True):
        """kill -9 (by default). expected: the exit is ours, not a crash."""
        with self.cluster.lock:
            if self.process is None:
                return
            self.expected_down = expected
            if self.process.poll() is None:
                if self.paused:
                    self.process.send_signal(signal.SIGCONT)
                self.process.send_signal(sig)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=30)
            self._ended()

    def stop(self):
        """SIGTERM, then SIGKILL after 20 s."""
        with self.cluster.lock:
            if self.process is None:
                return None
            self.expected_down = True
            if self.paused:
                self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait(timeout=30)
            self._ended()
            return code

    def pause(self):
        with self.cluster.lock:
            if self.alive() and not self.paused:
                self.process.send_signal(signal.SIGSTOP)
                self.paused = True

    def resume(self):
        with self.cluster.lock:
            if self.process is not None and self.paused:
                self.process.send_signal(signal.SIGCONT)
            self.paused = False

    def _ended(self):
        self.process = None
        self.paused = False
        self.cluster.state.set_pid(self.id, None)
        if self._log:
            self._log.close()
            self._log = None

    def alive(self):
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self):
        return self.process.pid if self.process is not None else None

    # ----- gRPC
    def channel(self):
        import grpc
        with self._chlock:
            if self._channel is None:
                self._channel = grpc.insecure_channel(self.address, options=GRPC_OPTIONS)
            return self._channel

    def kv(self):
        return self.cluster.stubs.kv_grpc.KVStub(self.channel())

    def admin(self):
        return self.cluster.stubs.admin_grpc.AdminStub(self.channel())

    def status(self, timeout=5):
        return self.admin().Status(self.cluster.stubs.admin.StatusRequest(), timeout=timeout)

    def members(self, timeout=5):
        return self.admin().Members(self.cluster.stubs.admin.MembersRequest(), timeout=timeout)

    def get(self, key, r=0, timeout=5):
        kv = self.cluster.stubs.kv
        return self.kv().Get(kv.GetRequest(key=key, quorum=kv.Quorum(r=r)), timeout=timeout)

    def put(self, key, value, context=b"", timeout=5):
        kv = self.cluster.stubs.kv
        return self.kv().Put(kv.PutRequest(key=key, value=value, context=context), timeout=timeout)

    def delete(self, key, context, timeout=5):
        kv = self.cluster.stubs.kv
        return self.kv().Delete(kv.DeleteRequest(key=key, context=context), timeout=timeout)

    # ----- observation
    def rss_kib(self):
        return _proc_status_kib(self.pid, "VmRSS")

    def open_files(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except (OSError, TypeError):
            return None

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""


def _proc_status_kib(pid, field):
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Stubs:
    def __init__(self, kv, kv_grpc, admin, admin_grpc):
        self.kv, self.kv_grpc, self.admin, self.admin_grpc = kv, kv_grpc, admin, admin_grpc


class Cluster:
    def __init__(self, n, lab, node_binary, run_dir, stubs, state, log,
                 skew_node=None, disk_node=None, disk_mb=192, extra_flags=()):
        self.lock = threading.RLock()
        self.lab = lab
        self.node_binary = node_binary
        self.node_flags = NODE_FLAGS + list(extra_flags)  # later flags win
        self.dir = run_dir
        self.stubs = stubs
        self.state = state
        self.log = log
        self.nodes = [Node(self, i) for i in range(n)]
        self.crashes = []  # (node id, exit code, time, log tail): exits nobody asked for
        self.refusals = []  # the same for starts refused, as they should be, on a full disk
        self.disk_mb = disk_mb
        self.skew_node = skew_node
        self.disk_node = disk_node
        self.mounts = []
        if skew_node is not None:
            node = self.nodes[skew_node]
            node.skew_file = os.path.join(run_dir, f"{node.id}.faketime")
            self.set_skew(0)
        if disk_node is not None:
            node = self.nodes[disk_node]
            os.makedirs(node.data_dir, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={disk_mb}m", "tmpfs", node.data_dir],
                           check=True, capture_output=True)
            node.disk_mounted = True
            self.mounts.append(node.data_dir)
            state.update(mounts=list(self.mounts))

    def set_skew(self, seconds):
        node = self.nodes[self.skew_node]
        with open(node.skew_file + ".tmp", "w") as f:
            f.write(f"{'+' if seconds >= 0 else '-'}{abs(seconds)}\n")
        os.replace(node.skew_file + ".tmp", node.skew_file)

    def start(self, timeout):
        for node in self.nodes:
            node.start()
        return self.wait_healthy(timeout)

    def running(self):
        return [n for n in self.nodes if n.alive()]

    def wait_healthy(self, timeout, require_all=True):
        """Until every node runs and every node sees every node NORMAL and
        alive on one ring version. Returns seconds waited; raises on timeout."""
        admin = self.stubs.admin
        start = time.time()
        last = "no answer yet"
        while time.time() - start < timeout:
            try:
                nodes = self.nodes if require_all else self.running()
                if require_all and any(not n.alive() for n in self.nodes):
                    last = "a node is not running"
                else:
                    versions = set()
                    ok = True
                    for viewer in nodes:
                        m = viewer.members(timeout=3)
                        versions.add(m.ring_version)
                        seen = {x.node_id: x for x in m.members}
                        for n in self.nodes:
                            x = seen.get(n.id)
                            if x is None or x.state != admin.NODE_STATE_NORMAL or not x.alive:
                                ok = False
                                last = f"{viewer.id} sees {n.id} " + (
                                    "missing" if x is None else f"state {x.state} alive {x.alive}")
                                break
                        if not ok:
                            break
                    if ok and len(versions) == 1:
                        return time.time() - start
                    if ok:
                        last = f"ring versions differ: {sorted(versions)}"
            except Exception as e:  # noqa: BLE001 - nodes starting up answer with errors
                last = f"{type(e).__name__}: {e.details() if hasattr(e, 'details') else e}"
            time.sleep(0.25)
        raise TimeoutError(f"cluster not healthy after {timeout}s: {last}")

    def check_crashes(self):
        """Notes nodes that exited on their own; returns (node, record,
        refused) for each. A node that refused to start on a full disk (exit 1,
        saying so) did what it should: it is noted in `refusals`, not in
        `crashes`, and started again all the same."""
        found = []
        with self.lock:
            for n in self.nodes:
                if n.process is not None and n.process.poll() is not None and not n.expected_down:
                    code = n.process.returncode
                    tail = n.log_tail(60)
                    record = {"node": n.id, "exit": code, "time": time.time(), "log_tail": tail}
                    last_start = tail.rsplit("==== chaos: start", 1)[-1]
                    refused = code == 1 and "disk full: cannot open the database" in last_start
                    (self.refusals if refused else self.crashes).append(record)
                    found.append((n, record, refused))
                    n._ended()
        return found

    def close(self):
        for n in self.nodes:
            try:
                n.kill()
            except Exception as e:  # noqa: BLE001 - keep closing the rest
                self.log(f"close: {n.id}: {e}")
        for m in self.mounts:
            subprocess.run(["umount", "-l", m], capture_output=True)
        self.mounts = []
        self.state.update(mounts=[])
