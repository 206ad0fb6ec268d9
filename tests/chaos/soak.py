"""Sustained load: the peak measured first, then a fixed rate of half of it
while one node is killed and restarted every minute; every few seconds the
RSS, open files and hint backlog of every node are sampled, and the verdict
compares the last minute with the second (the first is warm-up).

Sampler runs one thread; verdict() is called after it stopped.
"""

import threading
import time

import workload as wl

SAMPLE_EVERY_S = 5
# Bounds of "no unbounded growth", last minute against the second minute.
RSS_FACTOR_MAX = 1.5           # plus RSS_SLACK_KIB: RocksDB memtables fill as data grows
RSS_SLACK_KIB = 64 * 1024
FDS_SLACK = 64                 # sockets come and go with peers restarting
HINTS_FACTOR_MAX = 2.0         # peak backlog of the last kill cycle against the second's
HINTS_SLACK = 2000


def measure_peak(run, a):
    """Closed loop, no think time, for a.peak_seconds; returns the workload
    (stopped) and the fixed rate for the soak: a.rate or half the peak."""
    log = run.cluster.log
    peak_work = wl.Workload(run.cluster, run.recorder, a.seed, a.keys, a.clients, think_ms=(0, 0),
                            tag="p", pipes=a.pipes)
    log(f"soak: measuring peak throughput: {a.clients} clients, closed loop, {a.peak_seconds:.0f} s")
    peak_work.start_closed()
    warmup = min(5.0, a.peak_seconds / 4)
    time.sleep(warmup)
    before, t0 = run.recorder.snapshot(), time.time()
    time.sleep(max(1.0, a.peak_seconds - warmup))
    after, t1 = run.recorder.snapshot(), time.time()
    peak_work.stop()
    peak = (after["writes_acked"] - before["writes_acked"]) / (t1 - t0)
    reads = (after["reads_ok"] - before["reads_ok"]) / (t1 - t0)
    rate = a.rate or max(1.0, peak / 2)
    run.report["peak_writes_per_s"] = round(peak, 1)
    run.report["peak_reads_per_s"] = round(reads, 1)
    run.report["soak_rate_ops_per_s"] = round(rate, 1)
    log(f"soak: peak {peak:.0f} acknowledged writes/s (+{reads:.0f} reads/s, each write but the blind "
        f"ones reads first); soak rate {rate:.0f} operations/s for {a.minutes:g} min, a node killed "
        f"every {a.kill_every:g} s")
    # Enough workers that the rate is kept through a 4 s timeout of some.
    workers = max(a.clients, int(rate * 0.5) + 4)
    work = wl.Workload(run.cluster, run.recorder, a.seed + 1, a.keys, min(workers, 64), think_ms=(0, 0),
                       pipes=a.pipes)
    return work, rate


class Sampler:
    def __init__(self, cluster, recorder, csv_path):
        self.cluster = cluster
        self.recorder = recorder
        self.samples = []  # dicts: t, node, pid, rss_kib, fds, hints, keys, acked
        self.csv = open(csv_path, "w")
        self.csv.write("t_s,node,pid,rss_kib,open_files,hint_keys,keys,writes_acked_total\n")
        self.stop_event = threading.Event()
        self.thread = None
        self.t0 = None

    def _sample(self):
        t = time.time() - self.t0
        acked = self.recorder.snapshot()["writes_acked"]
        for n in self.cluster.nodes:
            pid = n.pid
            if pid is None or n.paused:
                continue
            rss, fds = n.rss_kib(), n.open_files()
            hints = keys = None
            try:
                st = n.status(timeout=2)
                hints = sum(h.keys for h in st.hints)
                keys = st.keys
            except Exception:  # noqa: BLE001 - a node restarting does not answer
                pass
            s = {"t": t, "node": n.id, "pid": pid, "rss_kib": rss, "fds": fds, "hints": hints,
                 "keys": keys, "acked": acked}
            self.samples.append(s)
            self.csv.write(",".join("" if s[k] is None else (f"{s[k]:.1f}" if k == "t" else str(s[k]))
                                    for k in ("t", "node", "pid", "rss_kib", "fds", "hints", "keys",
                                              "acked")) + "\n")
        self.csv.flush()

    def start(self):
        self.t0 = time.time()

        def loop():
            while not self.stop_event.wait(SAMPLE_EVERY_S):
                try:
                    self._sample()
                except Exception as e:  # noqa: BLE001
                    self.cluster.log(f"soak: sample failed: {e}")
        self._sample()
        self.thread = threading.Thread(target=loop, name="sampler", daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        if self.thread:
            self.thread.join(15)
        self.csv.close()

    def verdict(self, minutes):
        """Per node: first, last and max of each series; the last minute's
        median (RSS, open files) or peak (hints, over the cluster) within a
        bound of the second minute's."""
        out = {"nodes": {}, "problems": [], "per_minute_acked": []}
        end = max((s["t"] for s in self.samples), default=0)
        m2 = (60, 120)
        last = (max(60.0, end - 60), end + 1)

        def window(rows, field, lo, hi):
            return [r[field] for r in rows if lo <= r["t"] < hi and r[field] is not None]

        for n in self.cluster.nodes:
            rows = [s for s in self.samples if s["node"] == n.id]
            entry = {}
            for field in ("rss_kib", "fds", "hints"):
                vals = [r[field] for r in rows if r[field] is not None]
                if not vals:
                    continue
                a2, al = window(rows, field, *m2), window(rows, field, *last)
                entry[field] = {"first": vals[0], "last": vals[-1], "max": max(vals),
                                "minute2_median": median(a2), "last_minute_median": median(al)}
            out["nodes"][n.id] = entry
            if end < 150:
                continue  # too short to judge growth
            rss = entry.get("rss_kib", {})
            if rss.get("minute2_median") and rss.get("last_minute_median"):
                bound = rss["minute2_median"] * RSS_FACTOR_MAX + RSS_SLACK_KIB
                rss["bound"] = round(bound)
                if rss["last_minute_median"] > bound:
                    out["problems"].append(f"{n.id} RSS grew: last minute {rss['last_minute_median']:.0f} KiB "
                                           f"> bound {bound:.0f} KiB")
            fds = entry.get("fds", {})
            if fds.get("minute2_median") is not None and fds.get("last_minute_median") is not None:
                bound = fds["minute2_median"] + FDS_SLACK
                fds["bound"] = bound
                if fds["last_minute_median"] > bound:
                    out["problems"].append(f"{n.id} open files grew: last minute {fds['last_minute_median']:.0f} "
                                           f"> bound {bound:.0f}")
        # Hints: the cluster's backlog, summed per sample time.
        by_t = {}
        for s in self.samples:
            if s["hints"] is not None:
                by_t.setdefault(round(s["t"]), 0)
                by_t[round(s["t"])] += s["hints"]
        h2 = [v for t, v in by_t.items() if m2[0] <= t < m2[1]]
        hl = [v for t, v in by_t.items() if last[0] <= t < last[1]]
        out["hints_cluster"] = {"max": max(by_t.values(), default=None),
                                "minute2_peak": max(h2, default=None), "last_minute_peak": max(hl, default=None)}
        if end >= 150 and h2 and hl:
            bound = max(h2) * HINTS_FACTOR_MAX + HINTS_SLACK
            out["hints_cluster"]["bound"] = bound
            if max(hl) > bound:
                out["problems"].append(f"hint backlog grew: last minute peak {max(hl)} > bound {bound:.0f}")
        # Throughput per minute, from the acknowledged-writes counter.
        acked = sorted({(round(s["t"]), s["acked"]) for s in self.samples})
        for m in range(int(end // 60) + 1):
            inside = [a for t, a in acked if m * 60 <= t < (m + 1) * 60]
            if len(inside) >= 2:
                out["per_minute_acked"].append(inside[-1] - inside[0])
        out["seconds_sampled"] = round(end)
        out["ok"] = not out["problems"]
        return out


def median(values):
    """Medians, not averages: a sample taken just as a killed node restarts
    (a few MiB of RSS) must not move the bound."""
    if not values:
        return None
    s = sorted(values)
    return s[len(s) // 2]


def describe(v):
    lines = [f"soak: sampled {v['seconds_sampled']} s every {SAMPLE_EVERY_S} s; acknowledged writes per "
             f"minute: {v['per_minute_acked']}; operations the clients could not start on time: "
             f"{v.get('operations_skipped')}"]
    for node, e in v["nodes"].items():
        parts = []
        for field, unit in (("rss_kib", "KiB"), ("fds", "fds"), ("hints", "hints")):
            if field in e:
                x = e[field]
                parts.append(f"{field} first {x['first']} last {x['last']} max {x['max']} "
                             f"(median minute 2 {x['minute2_median']}, last minute {x['last_minute_median']})")
        lines.append(f"soak: {node}: " + "; ".join(parts))
    h = v["hints_cluster"]
    lines.append(f"soak: cluster hint backlog: max {h['max']}, minute-2 peak {h['minute2_peak']}, "
                 f"last-minute peak {h['last_minute_peak']}")
    lines.append("soak: growth verdict: " + ("OK" if v["ok"] else "FAILED: " + "; ".join(v["problems"])))
    return lines
