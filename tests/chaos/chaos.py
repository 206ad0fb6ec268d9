#!/usr/bin/env python3
"""Jepsen-style fault injection on real dynamo-node processes.

Modes:
  --mode short           every fault kind once (about --fault-seconds), CI
  --mode long            --minutes of random faults, up to two at a time
  --mode soak            peak throughput measured, then --minutes at half of
                         it with a node killed and restarted every minute;
                         RSS, open files and hint backlog sampled

Every mode ends the same way: all faults healed, the cluster healthy, hint
backlogs drained and anti-entropy quiet; then every key is read with R=1 from
every node (an owner answers from its own replica, so equal answers mean the
replicas converged) and dynamo-chaos-check judges the history with the
simulator's lost-write checker. Exit 0 only if no acknowledged write was lost,
nothing was invented, replicas converged, no node crashed (and, for soak,
nothing grew without bound).

Runs as root where it can (network namespaces, tmpfs, nftables, tc); cleans up
what it made even if killed (a reaper process watches it) and what a crashed
earlier run left.
"""

import argparse
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import cluster as cl  # noqa: E402
import netlab  # noqa: E402
import nemesis as nm  # noqa: E402
import soak  # noqa: E402
import workload as wl  # noqa: E402

T0 = time.time()
PROBE_SKEW_S = 4
_log_lock = threading.Lock()
_log_file = None


def log(msg):
    line = f"[{time.time() - T0:7.1f}s] {msg}"
    with _log_lock:
        print(line, flush=True)
        if _log_file:
            _log_file.write(line + "\n")
            _log_file.flush()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", help="path of the dynamo-node binary")
    p.add_argument("--checker", help="path of dynamo-chaos-check")
    p.add_argument("--proto", default=os.path.join(HERE, "..", "..", "proto"), help="the proto/ directory")
    p.add_argument("--mode", choices=["short", "long", "soak"], default="short")
    p.add_argument("--fault-seconds", type=float, default=70, help="short mode: seconds of faults")
    p.add_argument("--minutes", type=float, default=10, help="long and soak modes")
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--keys", type=int, default=0, help="keys the clients write (default by mode)")
    p.add_argument("--clients", type=int, default=0, help="client threads (default by mode)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--dir", help="run directory (default: a new /tmp/dynamo-chaos-*)")
    p.add_argument("--base-port", type=int, default=23000, help="loopback fallback: first port")
    p.add_argument("--loopback", action="store_true", help="no namespaces: loopback ports, no network faults")
    p.add_argument("--rate", type=float, default=0, help="soak: fixed rate (default: half the peak)")
    p.add_argument("--peak-seconds", type=float, default=30, help="soak: closed-loop peak phase")
    p.add_argument("--kill-every", type=float, default=60, help="soak: seconds between kills")
    p.add_argument("--skew-max-s", type=int, default=20,
                   help="largest clock skew (s); the node stalls as long when its clock steps back")
    p.add_argument("--max-seconds", type=float, default=0, help="hard bound of the whole run")
    p.add_argument("--node-flag", action="append", default=[], metavar="FLAG",
                   help="a further dynamo-node flag for every node, e.g. "
                        "--node-flag=--sync-delay-us=2000 (repeatable)")
    p.add_argument("--pipes", nargs="?", const="on", default=wl.DEFAULT_PIPES, choices=wl.PIPE_MODES,
                   help="on: clients send on KV.Pipe streams (one per client and node), off: unary"
                        " calls, mixed (the default): every other client on pipes, the rest on"
                        " calls, so both paths run under the same faults")
    p.add_argument("--keep", action="store_true", help="keep data directories even on success")
    p.add_argument("--clean", action="store_true", help="remove the run directory on success")
    p.add_argument("--reap", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not a.reap and (not a.node or not a.checker):
        p.error("--node and --checker are required")
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 1 << 31)
    defaults = {"short": (24, 8), "long": (48, 8), "soak": (400, 16)}[a.mode]
    a.keys = a.keys or defaults[0]
    a.clients = a.clients or defaults[1]
    if not a.max_seconds:
        fault_s = a.fault_seconds if a.mode == "short" else a.minutes * 60
        if a.mode == "soak":
            fault_s += a.peak_seconds
        a.max_seconds = fault_s + 600  # start, heal, converge, check: generous on 2 busy cores
    return a


def cleanup_leftovers():
    cl.clean_from_state(log)
    netlab.clean_leftovers(log)
    cl.clean_stray_mounts(log)


def reap():
    """Waits for the harness (its stdin closes when the harness dies, however
    it dies) and removes what the harness's state file says it made."""
    sys.stdin.read()
    cleanup_leftovers()


def acquire_lock():
    os.makedirs(cl.STATE_DIR, exist_ok=True)
    fd = os.open(cl.LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.time() + 900
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.time() > deadline:
                raise SystemExit("another chaos run holds the lock for 15 minutes: giving up")
            log("another chaos run is in progress; waiting for it")
            time.sleep(5)


def make_stubs(proto):
    import types

    import harness  # tests/integration/harness.py: generates the stubs from proto/
    harness.ARGS = types.SimpleNamespace(proto=os.path.abspath(proto))
    kv, kv_grpc, admin, admin_grpc = harness.stubs()
    return cl.Stubs(kv, kv_grpc, admin, admin_grpc)


def can_mount_tmpfs(run_dir):
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = os.path.join(run_dir, "mount-probe")
    os.makedirs(probe, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", probe], capture_output=True)
    os.rmdir(probe)
    return ok


# ------------------------------------------------------------------ the end

def statuses(cluster):
    out = {}
    for n in cluster.nodes:
        try:
            out[n.id] = n.status(timeout=5)
        except Exception:  # noqa: BLE001
            out[n.id] = None
    return out


def hint_keys(status):
    return sum(h.keys for h in status.hints) if status is not None else None


def settle(cluster, deadline):
    """Until every node answers, no node holds hints, and anti-entropy has
    repaired nothing for three seconds. Returns what it saw."""
    quiet_since = None
    last_repaired = None
    seen = {}
    while time.time() < deadline:
        st = statuses(cluster)
        if any(s is None for s in st.values()):
            seen = {"why": "a node does not answer Status"}
        else:
            hints = {k: hint_keys(s) for k, s in st.items()}
            repaired = sum(s.antientropy_keys_repaired for s in st.values())
            handoffs = sum(len(s.handoffs) for s in st.values())
            seen = {"hints": hints, "ae_repaired": repaired, "handoffs": handoffs}
            if sum(hints.values()) == 0 and handoffs == 0:
                if repaired != last_repaired:
                    quiet_since, last_repaired = time.time(), repaired
                elif time.time() - quiet_since >= 3:
                    return True, seen
            else:
                quiet_since, last_repaired = None, None
        time.sleep(0.5)
    return False, seen


def final_reads(cluster, keys, recorder, deadline):
    """Reads every key with R=1 from every node until all answers agree (or
    the deadline). Returns (agreed, rounds, failures of the last round)."""
    rounds = 0
    while True:
        rounds += 1
        finals, failures, agree = {}, 0, True
        for key in keys:
            answers = {}
            for n in cluster.nodes:
                try:
                    got = n.get(key.encode(), r=1, timeout=5)
                    answers[n.id] = (sorted(s.value.decode() for s in got.siblings), got.context)
                except Exception:  # noqa: BLE001
                    failures += 1
                    agree = False
            if len({(tuple(v), c) for v, c in answers.values()}) > 1:
                agree = False
            finals[key] = answers
        if agree or time.time() > deadline:
            for key, answers in finals.items():
                for node_id, (values, context) in answers.items():
                    recorder.final(key, node_id, values, context)
            return agree, rounds, failures
        time.sleep(1.0)


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


# ------------------------------------------------------------------ a run

class Run:
    def __init__(self, args):
        self.a = args
        self.report = {"mode": args.mode, "seed": args.seed, "nodes": args.nodes,
                       "node_flags": args.node_flag, "pipes": args.pipes}
        self.failed = []
        self.run_dir = None
        self.cluster = None
        self.lab = None
        self.nemesis = None
        self.work = None
        self.sampler = None
        self.state = None

    def setup(self):
        a = self.a
        self.run_dir = os.path.abspath(a.dir) if a.dir else tempfile.mkdtemp(prefix="dynamo-chaos-", dir="/tmp")
        os.makedirs(self.run_dir, exist_ok=True)
        global _log_file
        _log_file = open(os.path.join(self.run_dir, "chaos.log"), "a")
        log(f"chaos: mode {a.mode}, seed {a.seed}, {a.nodes} nodes, run directory {self.run_dir}")
        log(f"chaos: replay this schedule with: --mode {a.mode} --seed {a.seed}"
            + (f" --minutes {a.minutes:g}" if a.mode != "short" else f" --fault-seconds {a.fault_seconds:g}")
            + "".join(f" --node-flag={f}" for f in a.node_flag) + f" --pipes={a.pipes}")
        self.state = cl.State(self.run_dir, os.path.abspath(a.node))
        self.state.update()
        if a.loopback:
            caps = netlab.Capabilities()
            caps.reasons.append("--loopback given")
        else:
            caps = netlab.probe(log)
        self.report["capabilities"] = caps.describe()
        self.lab = netlab.Lab(a.nodes, caps, a.base_port, log)
        try:
            self.lab.setup()
        finally:
            self.state.update(namespaces=list(self.lab.namespaces), links=list(self.lab.links))
        self.report["network"] = "namespaces" if self.lab.isolated else "loopback"
        stubs = make_stubs(a.proto)
        skew_node = 1 if cl.FAKETIME_LIBS and a.nodes > 1 else None
        if skew_node is None:
            log("chaos: libfaketime not found: clock skew SKIPPED (apt-get install faketime)")
        disk_node = a.nodes - 1 if can_mount_tmpfs(self.run_dir) else None
        if disk_node is None:
            log("chaos: cannot mount a tmpfs: full disk SKIPPED (needs root)")
        self.cluster = cl.Cluster(a.nodes, self.lab, os.path.abspath(a.node), self.run_dir, stubs,
                                  self.state, log, skew_node=skew_node, disk_node=disk_node,
                                  extra_flags=a.node_flag)
        log("chaos: starting nodes")
        waited = self.cluster.start(timeout=180)
        log(f"chaos: cluster healthy after {waited:.1f} s: "
            + ", ".join(f"{n.id}={n.address}" for n in self.cluster.nodes)
            + (f"; {self.cluster.nodes[skew_node].id} runs under libfaketime" if skew_node is not None else "")
            + (f"; {self.cluster.nodes[disk_node].id}'s data is on a {self.cluster.disk_mb} MiB tmpfs"
               if disk_node is not None else ""))
        if skew_node is not None:
            self.verify_faketime()
        self.recorder = wl.Recorder(os.path.join(self.run_dir, "history.jsonl"))
        self.nemesis = nm.Nemesis(self.cluster, self.lab, self.a.seed, log, skew_max_s=self.a.skew_max_s)
        self.report["fault_kinds"] = self.nemesis.available
        self.report["fault_kinds_skipped"] = self.nemesis.skipped

    def verify_faketime(self):
        """The skewed node's wall clock really moves: a value it coordinates
        carries its timestamp. Writes go through a node of the key's
        preference list, so try keys until the skewed node coordinates one."""
        c = self.cluster
        node = c.nodes[c.skew_node]
        # Small: when the clock steps back at the end of the probe, the node's
        # event loop stalls for as long (see README, "Findings").
        c.set_skew(PROBE_SKEW_S)
        time.sleep(2.5)  # libfaketime re-reads the file once a second
        seen = []
        try:
            for i in range(60):
                key = f"faketime-probe-{i}".encode()
                node.put(key, b"p", timeout=5)
                got = node.get(key, r=1, timeout=5)
                skew = got.siblings[0].timestamp_ms / 1000.0 - time.time()
                seen.append(skew)
                if skew > PROBE_SKEW_S * 0.6:
                    log(f"chaos: libfaketime works with dynamo-node: {node.id} stamped a write "
                        f"{skew:+.0f} s off true time")
                    self.report["faketime"] = "verified"
                    return
            # A skew fault that moves nothing would test nothing.
            log(f"chaos: no write stamped by {node.id} showed the skew ({len(seen)} tried)")
            self.report["faketime"] = "unverified"
            self.failed.append(f"clock skew: no write stamped by {node.id} showed its wall "
                               f"clock's skew of {PROBE_SKEW_S} s (offsets seen: "
                               f"{min(seen):+.1f} to {max(seen):+.1f} s)")
        except Exception as e:  # noqa: BLE001
            log(f"chaos: WARNING: faketime probe failed: {e}")
            self.report["faketime"] = f"probe failed: {e}"
        finally:
            c.set_skew(0)
            time.sleep(PROBE_SKEW_S + 1.5)
            c.wait_healthy(timeout=120)

    def watch(self, until, every=0.5):
        """The main thread's loop while faults run: crashes are noted (with
        the log) and the node restarted, the hard time bound is kept."""
        last_restart = {}
        while not until():
            for n, crash, refused in self.cluster.check_crashes():
                if refused:
                    log(f"chaos: {n.id} refused to start on its full disk (exit 1, as it should)")
                else:
                    log(f"chaos: CRASH: {n.id} exited by itself with status {crash['exit']}; "
                        "log tail:\n" + crash["log_tail"])
                if time.time() - last_restart.get(n.id, 0) > 5:
                    last_restart[n.id] = time.time()
                    n.start()
            time.sleep(every)

    def faults(self):
        a, nem = self.a, self.nemesis
        if a.mode == "short":
            self.work = wl.Workload(self.cluster, self.recorder, a.seed, a.keys, a.clients,
                                    pipes=a.pipes)
            self.work.start_closed()
            time.sleep(3)
            nem.run(nem.every_kind_once, a.fault_seconds)
        elif a.mode == "long":
            self.work = wl.Workload(self.cluster, self.recorder, a.seed, a.keys, a.clients,
                                    pipes=a.pipes)
            self.work.start_closed()
            time.sleep(3)
            nem.run(nem.random_mix, a.minutes * 60)
        else:
            self.work, rate = soak.measure_peak(self, a)
            self.sampler = soak.Sampler(self.cluster, self.recorder, os.path.join(self.run_dir, "samples.csv"))
            self.sampler.start()
            self.work.start_open(rate)
            nem.run(nem.kill_every, a.kill_every, min(10.0, a.kill_every / 3), a.minutes * 60)
        self.fault_start = time.time()
        self.watch(lambda: not nem.thread.is_alive())
        nem.stop()
        self.last_heal = nem.last_heal or time.time()
        log(f"chaos: faults over after {time.time() - self.fault_start:.0f} s; the clients go on "
            "for 5 s on the healed cluster")
        before = self.recorder.snapshot()["writes_acked"]
        self.watch(lambda: time.time() - self.last_heal > 5)
        stuck = self.work.stop()
        if stuck:
            self.failed.append(f"client threads did not stop: {stuck}")
        self.last_write = time.time()
        self.report["acked_after_heal"] = self.recorder.snapshot()["writes_acked"] - before
        if self.sampler:
            self.sampler.stop()

    def converge(self):
        c = self.cluster
        for n in c.nodes:  # a node whose restart failed gets another chance
            if not n.alive():
                log(f"chaos: {n.id} is not running after the faults; starting it")
                n.start()
        try:
            c.wait_healthy(timeout=240)
        except TimeoutError as e:
            self.failed.append(f"cluster did not recover: {e}")
            log(f"chaos: {e}")
        log("chaos: healthy; waiting for hint backlogs to drain and anti-entropy to go quiet")
        quiet, seen = settle(c, time.time() + 240)
        self.report["settled"] = quiet
        if not quiet:
            self.failed.append(f"hints or repairs did not settle: {seen}")
            log(f"chaos: did not settle: {seen}")
        st = statuses(c)
        rr_before = sum(s.read_repairs for s in st.values() if s)
        agreed, rounds, failures = final_reads(c, self.work.written_keys(), self.recorder, time.time() + 240)
        converged_at = time.time()
        st = statuses(c)
        rr_after = sum(s.read_repairs for s in st.values() if s)
        self.report.update({
            "converged": agreed,
            "converge_rounds": rounds,
            "final_read_failures": failures,
            "read_repairs_during_check": rr_after - rr_before,
            "seconds_to_converge_after_last_fault": round(converged_at - self.last_heal, 1),
            "seconds_to_converge_after_last_write": round(converged_at - self.last_write, 1),
            "node_status": {k: {"keys": s.keys, "hints_delivered": s.hints_delivered,
                                "read_repairs": s.read_repairs,
                                "antientropy_exchanges": s.antientropy_exchanges,
                                "antientropy_keys_repaired": s.antientropy_keys_repaired,
                                "tombstones_reaped": s.tombstones_reaped,
                                "reaps_retried": s.reaps_retried, "reaps_owed": s.reaps_owed}
                            for k, s in st.items() if s},
        })
        if not agreed:
            self.failed.append(f"replicas did not converge ({failures} final reads failed)")
        log(f"chaos: final reads: {'all replicas agree' if agreed else 'replicas DIFFER'} after {rounds} "
            f"round(s), {converged_at - self.last_heal:.1f} s after the last fault healed")

    def check(self):
        self.recorder.close()
        out = os.path.join(self.run_dir, "checker.json")
        p = subprocess.run([self.a.checker, self.recorder.path, "--json", out],
                           capture_output=True, text=True, timeout=600)
        for line in p.stdout.splitlines():
            log(line)
        if p.returncode == 2 or not os.path.exists(out):
            self.failed.append(f"checker could not run: {p.stderr.strip()}")
            return
        with open(out) as f:
            verdict = json.load(f)
        self.report["checker"] = verdict
        if verdict["lost"]:
            self.failed.append(f"{verdict['lost']} acknowledged writes LOST")
        if verdict["invented"]:
            self.failed.append(f"{verdict['invented']} values never written appeared")
        if not verdict["converged"]:
            self.failed.append("the checker found replicas that differ")

    def summarize(self):
        r, rec = self.report, self.recorder
        counts = rec.snapshot()
        r["operations"] = counts
        r["errors"] = dict(sorted(rec.errors.items(), key=lambda kv: -kv[1]))
        r["write_latency_ms"] = {"p50": percentile(rec.latencies_ms, 50),
                                 "p99": percentile(rec.latencies_ms, 99),
                                 "max": max(rec.latencies_ms) if rec.latencies_ms else None}
        r["faults"] = []
        for f in self.nemesis.done:
            acked, failed = rec.window(f.start, f.end)
            r["faults"].append({"fault": f.describe(self.cluster), "start_s": round(f.start - T0, 1),
                                "seconds": round(f.end - f.start, 1), "evidence": f.evidence,
                                "writes_acked": acked, "writes_failed": failed})
        r["error_examples"] = rec.error_examples
        if self.work:
            r["answered_by_path"] = dict(self.work.answered)
            unanswered = self.work.paths_unanswered()
            if unanswered:
                self.failed.append(f"no request answered on: {', '.join(unanswered)}")
        r["crashes"] = [{k: v for k, v in c.items() if k != "log_tail"} for c in self.cluster.crashes]
        r["refused_starts"] = [{k: v for k, v in c.items() if k != "log_tail"}
                               for c in self.cluster.refusals]
        if self.cluster.crashes:
            self.failed.append(f"{len(self.cluster.crashes)} node crash(es)")
        if self.nemesis.errors:
            self.failed.append(f"nemesis errors: {self.nemesis.errors[:3]}")
        if self.sampler:
            verdict = self.sampler.verdict(self.a.minutes)
            verdict["operations_skipped"] = self.work.skipped
            r["soak"] = verdict
            if not verdict["ok"]:
                self.failed.append(f"growth: {verdict['problems']}")
        r["ok"] = not self.failed
        r["failures"] = self.failed
        r["run_dir"] = self.run_dir
        with open(os.path.join(self.run_dir, "report.json"), "w") as f:
            json.dump(r, f, indent=2, default=str)
        ck = r.get("checker", {})
        lat = r["write_latency_ms"]
        lines = [
            "==================== chaos report ====================",
            f"mode {r['mode']}, seed {r['seed']}, {r['nodes']} nodes on {r.get('network')}; {r.get('capabilities')}",
            f"faults injected: {len(r['faults'])} ("
            + ", ".join(sorted({f.kind for f in self.nemesis.done})) + ")"
            + (f"; skipped: {', '.join(r['fault_kinds_skipped'])}" if r.get("fault_kinds_skipped") else ""),
            f"operations tried: {counts['reads_tried'] + counts['writes_tried'] + counts['deletes_tried']} "
            f"({counts['reads_tried']} reads, {counts['writes_tried']} writes of which "
            f"{counts['blind_writes']} blind, {counts['deletes_tried']} deletes of which "
            f"{counts['deletes_acked']} acknowledged)",
            f"writes acknowledged: {counts['writes_acked']}, failed or timed out: {counts['writes_failed']}, "
            f"acknowledged in the 5 s after the last heal: {r.get('acked_after_heal')}; tombstones "
            f"reaped (since each node's last start): "
            f"{sum(s['tombstones_reaped'] for s in r.get('node_status', {}).values())}, reaps sent "
            f"again: {sum(s['reaps_retried'] for s in r.get('node_status', {}).values())}, still owed: "
            f"{sum(s['reaps_owed'] for s in r.get('node_status', {}).values())}",
            f"write latency ms: p50 {fmt(lat['p50'])}, p99 {fmt(lat['p99'])}, max {fmt(lat['max'])}",
            f"requests answered (clients' pipes {r['pipes']}): {r.get('answered_by_path')}",
            f"errors: {r['errors']}",
        ] + [f"  {code}: {' | '.join(ex)}" for code, ex in r["error_examples"].items()] + [
            "writes during each fault (acknowledged/failed):",
        ] + [f"  {f['fault']}: {f['writes_acked']}/{f['writes_failed']}" for f in r["faults"][:40]] + [
            f"  ... {len(r['faults']) - 40} more in report.json" if len(r["faults"]) > 40 else "",
            f"siblings: {counts['reads_with_siblings']} reads returned siblings, at most "
            f"{counts['max_siblings_read']} in a read, {ck.get('max_siblings')} in the final state",
            f"checker: {ck.get('writes_acked')} acknowledged: {ck.get('acked_present')} present, "
            f"{ck.get('acked_superseded')} superseded by writes that read them, LOST {ck.get('lost')}, "
            f"invented {ck.get('invented')}",
            f"convergence: {'yes' if r.get('converged') else 'NO'}, "
            f"{r.get('seconds_to_converge_after_last_fault')} s after the last fault "
            f"({r.get('seconds_to_converge_after_last_write')} s after the last write), "
            f"{r.get('converge_rounds')} read round(s), {r.get('read_repairs_during_check')} read repairs "
            "during the check",
            f"crashes: {len(r['crashes'])}; starts refused on a full disk: {len(r['refused_starts'])}",
        ]
        if "soak" in r:
            lines += soak.describe(r["soak"])
        lines.append("VERDICT: " + ("OK" if r["ok"] else "FAILED: " + "; ".join(self.failed)))
        lines.append(f"artifacts: {self.run_dir} (report.json, history.jsonl, chaos.log, n*.log)")
        for line in lines:
            if line:
                log(line)

    def close(self):
        if self.nemesis:
            try:
                self.nemesis.stop(timeout=20)
            except Exception as e:  # noqa: BLE001
                log(f"chaos: heal on close: {e}")
        if self.work:
            self.work.stop(timeout=10)
        if self.cluster:
            self.cluster.close()
        if self.lab:
            self.lab.teardown()
        if self.state:
            self.state.update(active=False, pids={}, mounts=[], namespaces=[], links=[])


def fmt(v):
    return "-" if v is None else f"{v:.1f}"


def main(argv):
    a = parse_args(argv)
    if a.reap:
        reap()
        return 0
    lock_fd = acquire_lock()
    cleanup_leftovers()
    # The reaper shares the lock and cleans up if this process dies (even by
    # SIGKILL, e.g. a CTest timeout): its stdin closes then.
    reaper = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--reap"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, pass_fds=[lock_fd])
    run = Run(a)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    def watchdog():
        time.sleep(a.max_seconds)
        log(f"chaos: TIME BOUND of {a.max_seconds:.0f} s exceeded: cleaning up and exiting")
        try:
            run.close()
        finally:
            os._exit(3)
    threading.Thread(target=watchdog, name="watchdog", daemon=True).start()

    code = 1
    try:
        run.setup()
        run.faults()
        run.converge()
        run.check()
        run.summarize()
        code = 0 if run.report["ok"] else 1
    except KeyboardInterrupt as e:
        log(f"chaos: interrupted ({e}); cleaning up")
        code = 130
    except Exception as e:  # noqa: BLE001 - report, clean up, fail
        import traceback
        log(f"chaos: ERROR: {type(e).__name__}: {e}\n{traceback.format_exc()}")
        if run.cluster:
            for n in run.cluster.nodes:
                log(f"--- {n.id} log tail ---\n{n.log_tail(20)}")
        code = 1
    finally:
        run.close()
        reaper.stdin.close()
        reaper.wait(timeout=60)
        os.close(lock_fd)
    if run.run_dir:
        if code == 0 and a.clean:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        elif code == 0 and not a.keep:
            for n in (run.cluster.nodes if run.cluster else []):
                shutil.rmtree(n.data_dir, ignore_errors=True)
        else:
            log(f"chaos: kept {run.run_dir} for inspection")
    log(f"{1 if code == 0 else 0} passed, {0 if code == 0 else 1} failed")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
