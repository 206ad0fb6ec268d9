"""The network the chaos nodes live on, and the network faults.

Where the machine allows it (root, `ip netns`, veth, a bridge), every node gets
its own network namespace with its own address 10.77.0.(i+1) on a veth pair
into a bridge in the root namespace (10.77.0.254, where the harness's clients
run). Partitions and packet loss are nftables rules inside a node's namespace,
delay is a tc qdisc on its veth: everything a fault adds lives in namespaces
this run made, so deleting them removes it. Without namespaces the nodes run
on loopback ports and the network faults are skipped, which the run says.

Not thread-safe: the nemesis thread alone changes the network.
"""

import os
import shutil
import subprocess

PREFIX = "dchaos"            # every namespace and link this harness makes starts with it
BRIDGE = "dchaos0"
SUBNET = "10.77.0"
HOST_IP = f"{SUBNET}.254"
NFT_TABLE = "dchaos"
GRPC_PORT = 7000
HTTP_PORT = 9100


def run(cmd, check=True, quiet=False, timeout=20, input=None):
    """Runs a command; returns CompletedProcess. Raises on failure if check."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
    return p


def have(tool):
    return shutil.which(tool) is not None


class Capabilities:
    """What this machine lets the harness do, found by trying it once."""

    def __init__(self):
        self.netns = False
        self.nft = False
        self.netem = False
        self.tbf = False
        self.reasons = []

    def describe(self):
        parts = [f"network namespaces: {'yes' if self.netns else 'no'}",
                 f"nftables: {'yes' if self.nft else 'no'}",
                 f"tc netem: {'yes' if self.netem else 'no'}",
                 f"tc tbf: {'yes' if self.tbf else 'no'}"]
        return ", ".join(parts) + ("" if not self.reasons else " (" + "; ".join(self.reasons) + ")")


def probe(log):
    """Tries a scratch namespace with a veth, an nft table and each qdisc."""
    caps = Capabilities()
    if os.geteuid() != 0:
        caps.reasons.append("not root")
        return caps
    for tool in ("ip", "nsenter"):
        if not have(tool):
            caps.reasons.append(f"{tool} not installed")
            return caps
    ns = f"{PREFIX}-probe"
    run(["ip", "netns", "del", ns], check=False)
    run(["ip", "link", "del", f"{PREFIX}-ph"], check=False)
    try:
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", f"{PREFIX}-ph", "type", "veth", "peer", "name", f"{PREFIX}-pn"])
        run(["ip", "link", "set", f"{PREFIX}-pn", "netns", ns])
        run(["ip", "netns", "exec", ns, "ip", "link", "set", f"{PREFIX}-pn", "up"])
        caps.netns = True
    except Exception as e:  # noqa: BLE001 - any failure means: no namespaces here
        caps.reasons.append(f"cannot make a namespace with a veth: {e}")
    if caps.netns:
        if have("nft"):
            p = run(["ip", "netns", "exec", ns, "nft", "-f", "-"], check=False,
                    input=nft_script(["numgen random mod 100 < 5 drop", "ip saddr 10.77.0.9 drop"]))
            caps.nft = p.returncode == 0
            if not caps.nft:
                caps.reasons.append(f"nft refused a rule: {p.stderr.strip()}")
        else:
            caps.reasons.append("nft not installed (apt-get install nftables)")
        if have("tc"):
            dev = f"{PREFIX}-pn"
            p = run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
                     "netem", "delay", "10ms"], check=False)
            caps.netem = p.returncode == 0
            if not caps.netem:
                caps.reasons.append(f"tc netem: {p.stderr.strip()} (the kernel lacks sch_netem)")
            run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root"], check=False)
            p = run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
                     "tbf", "rate", "1mbit", "burst", "16kb", "latency", "100ms"], check=False)
            caps.tbf = p.returncode == 0
        else:
            caps.reasons.append("tc not installed")
    run(["ip", "link", "del", f"{PREFIX}-ph"], check=False)
    run(["ip", "netns", "del", ns], check=False)
    log(f"capabilities: {caps.describe()}")
    return caps


def nft_script(rules):
    """A table with one input chain holding these rules."""
    lines = [f"table inet {NFT_TABLE} {{", "  chain input {",
             "    type filter hook input priority 0; policy accept;"]
    lines += [f"    {r}" for r in rules]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def leftover_namespaces():
    if not have("ip"):
        return []
    p = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines()
            if line.strip() and line.split()[0].startswith(PREFIX + "-")]


def clean_leftovers(log):
    """Removes what a crashed earlier run left: the processes inside our
    namespaces (by pid), the namespaces, the bridge and the host veth ends."""
    for ns in leftover_namespaces():
        pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), 18)  # SIGCONT: a paused process cannot die cleanly otherwise
                os.kill(int(pid), 9)
                log(f"cleanup: killed pid {pid} left in namespace {ns}")
            except (ProcessLookupError, ValueError):
                pass
        run(["ip", "netns", "del", ns], check=False)
        log(f"cleanup: deleted namespace {ns}")
    if have("ip"):
        links = run(["ip", "-o", "link", "show"], check=False).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if name.startswith(PREFIX):
                run(["ip", "link", "del", name], check=False)
                log(f"cleanup: deleted link {name}")


class Lab:
    """The nodes' network: namespaces and veths, or loopback."""

    def __init__(self, nodes, caps, base_port, log):
        self.n = nodes
        self.caps = caps
        self.isolated = caps.netns
        self.base_port = base_port
        self.log = log
        self.namespaces = []
        self.links = []
        self.shaped = set()   # nodes with a qdisc
        self.filtered = set()  # nodes with nft rules

    # ----- addresses
    def ip(self, i):
        return f"{SUBNET}.{i + 1}" if self.isolated else "127.0.0.1"

    def grpc_address(self, i):
        return f"{self.ip(i)}:{GRPC_PORT if self.isolated else self.base_port + 2 * i}"

    def http_address(self, i):
        return f"{self.ip(i)}:{HTTP_PORT if self.isolated else self.base_port + 2 * i + 1}"

    def ns(self, i):
        return f"{PREFIX}-n{i}"

    def exec_prefix(self, i):
        """What runs a command inside node i's namespace (nsenter execs, so the
        pid the harness gets is the node's own)."""
        if not self.isolated:
            return []
        return ["nsenter", f"--net=/run/netns/{self.ns(i)}", "--"]

    # ----- life cycle
    def setup(self):
        if not self.isolated:
            self.log("network: NO network namespaces here (" + "; ".join(self.caps.reasons) +
                     "): nodes run on loopback ports and partitions, loss and delay are SKIPPED")
            return
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        self.links.append(BRIDGE)
        run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        for i in range(self.n):
            ns, host_end = self.ns(i), f"{PREFIX}v{i}"
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns])
            self.links.append(host_end)
            run(["ip", "link", "set", host_end, "master", BRIDGE])
            run(["ip", "link", "set", host_end, "up"])
            inside = ["ip", "netns", "exec", ns]
            run(inside + ["ip", "addr", "add", f"{self.ip(i)}/24", "dev", "eth0"])
            run(inside + ["ip", "link", "set", "eth0", "up"])
            run(inside + ["ip", "link", "set", "lo", "up"])
        self.log(f"network: {self.n} namespaces {self.ns(0)}..{self.ns(self.n - 1)}, addresses "
                 f"{self.ip(0)}..{self.ip(self.n - 1)} on bridge {BRIDGE} ({HOST_IP})")

    def teardown(self):
        self.heal()
        for ns in self.namespaces:
            run(["ip", "netns", "del", ns], check=False)
        for link in self.links:
            run(["ip", "link", "del", link], check=False)
        self.namespaces, self.links = [], []

    # ----- faults
    def can(self, what):
        if not self.isolated:
            return False
        if what in ("partition", "loss"):
            return self.caps.nft
        if what == "delay":
            return self.caps.netem or self.caps.tbf
        return False

    def _nft(self, i, rules):
        """Replaces node i's filter table with these input rules."""
        ns = self.ns(i)
        run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", NFT_TABLE], check=False)
        if not rules:
            self.filtered.discard(i)
            return
        run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=nft_script(rules))
        self.filtered.add(i)

    def partition(self, groups):
        """Nodes in different groups cannot reach each other (both ways). The
        harness's clients (on the bridge) still reach every node."""
        side = {}
        for g, members in enumerate(groups):
            for i in members:
                side[i] = g
        for i in range(self.n):
            blocked = [self.ip(j) for j in range(self.n) if j != i and side.get(j) != side.get(i)]
            self._nft(i, [f"ip saddr {ip} drop" for ip in blocked])

    def isolate_one_way(self, src, dsts):
        """Packets from src to each of dsts are dropped at dst; dsts -> src
        still flows (at the IP level; TCP then fails both ways on those
        connections, as with Jepsen's one-way partitions)."""
        for d in dsts:
            self._nft(d, [f"ip saddr {self.ip(src)} drop"])

    def lose(self, nodes, percent):
        """Drops percent% of the packets arriving at each of nodes."""
        for i in nodes:
            self._nft(i, [f"numgen random mod 100 < {int(percent)} drop"])

    def slow(self, nodes, delay_ms, jitter_ms):
        """Delays node's outgoing packets: netem where the kernel has it, else a
        token bucket of low rate, which delays (and under bursts drops) them."""
        for i in nodes:
            if self.caps.netem:
                args = ["netem", "delay", f"{delay_ms}ms", f"{jitter_ms}ms", "distribution", "normal"]
            else:
                args = ["tbf", "rate", "256kbit", "burst", "4kb", "latency", f"{max(delay_ms, 50) * 4}ms"]
            run(["ip", "netns", "exec", self.ns(i), "tc", "qdisc", "replace", "dev", "eth0", "root"] + args)
            self.shaped.add(i)

    def delay_kind(self):
        return "netem delay" if self.caps.netem else "tbf 256kbit (no netem in this kernel)"

    def heal(self):
        """Removes every filter and qdisc a fault added."""
        for i in sorted(self.filtered):
            self._nft(i, [])
        for i in sorted(self.shaped):
            run(["ip", "netns", "exec", self.ns(i), "tc", "qdisc", "del", "dev", "eth0", "root"], check=False)
        self.filtered, self.shaped = set(), set()
