"""The faults of a chaos run and the schedule that injects them.

Each fault kind starts on some nodes and heals completely: a partition's
rules are removed, a killed node restarts, a paused one continues, a skewed
clock returns to true time, a full disk is emptied. Every random choice comes
from one seeded generator, so a seed names a schedule (the processes' timing,
of course, is not replayable).

Not thread-safe: one nemesis thread runs the schedule; heal_all() is called
by the main thread only after that thread has stopped.
"""

import os
import random
import subprocess
import threading
import time

NETWORK_KINDS = ["partition", "oneway", "flap", "loss", "delay"]
PROCESS_KINDS = ["kill", "pause"]
ALL_KINDS = NETWORK_KINDS + PROCESS_KINDS + ["skew", "disk"]


class Fault:
    def __init__(self, kind, targets, detail=""):
        self.kind = kind
        self.targets = targets  # node indices
        self.detail = detail
        self.start = None
        self.end = None
        self.planned_end = None
        self.evidence = ""
        self._flapper = None
        self._flap_stop = None

    def describe(self, cluster):
        names = ",".join(cluster.nodes[i].id for i in self.targets)
        return f"{self.kind}({names}{'; ' + self.detail if self.detail else ''})"


class Nemesis:
    def __init__(self, cluster, lab, seed, log, skew_max_s=20, skipped_log=True):
        self.cluster = cluster
        self.skew_max_s = skew_max_s
        self.lab = lab
        self.rng = random.Random(seed)
        self.log = log
        self.active = []
        self.done = []  # every fault injected, with start and end times
        self.last_heal = None
        self.stop_event = threading.Event()
        self.thread = None
        self.errors = []
        self.available, self.skipped = self._kinds()
        if skipped_log and self.skipped:
            for kind, why in self.skipped.items():
                log(f"nemesis: SKIPPING {kind}: {why}")

    def _kinds(self):
        available, skipped = [], {}
        for kind in ALL_KINDS:
            why = None
            if kind in ("partition", "oneway", "flap") and not self.lab.can("partition"):
                why = "no network namespaces with nftables here"
            elif kind == "loss" and not self.lab.can("loss"):
                why = "no network namespaces with nftables here"
            elif kind == "delay" and not self.lab.can("delay"):
                why = "no network namespaces with tc here"
            elif kind == "skew" and self.cluster.skew_node is None:
                why = "libfaketime is not installed (apt-get install faketime)"
            elif kind == "disk" and self.cluster.disk_node is None:
                why = "cannot mount a tmpfs (needs root)"
            if why:
                skipped[kind] = why
            else:
                available.append(kind)
        return available, skipped

    # ----- one fault
    def _busy_nodes(self):
        busy = set()
        for f in self.active:
            if f.kind in PROCESS_KINDS or f.kind in ("disk", "skew"):
                busy.update(f.targets)
        return busy

    def _network_active(self):
        return any(f.kind in NETWORK_KINDS for f in self.active)

    def make(self, kind):
        """A fault of this kind on nodes the rng picks, or None if it would
        collide with an active one."""
        n = len(self.cluster.nodes)
        everyone = list(range(n))
        free = [i for i in everyone if i not in self._busy_nodes()]
        if kind in NETWORK_KINDS and self._network_active():
            return None
        if kind in ("partition", "flap"):
            minority = self.rng.sample(everyone, (n - 1) // 2)
            return Fault(kind, sorted(minority), "minority | majority")
        if kind == "oneway":
            src = self.rng.choice(everyone)
            return Fault(kind, [src], "nobody hears it; it hears everyone")
        if kind == "loss":
            nodes = self.rng.sample(everyone, max(1, n // 2))
            pct = self.rng.choice([10, 20, 30])
            return Fault(kind, sorted(nodes), f"{pct}% of incoming packets dropped")
        if kind == "delay":
            nodes = self.rng.sample(everyone, max(1, n // 2))
            ms = self.rng.choice([50, 100, 200])
            return Fault(kind, sorted(nodes), f"{self.lab.delay_kind()}, {ms} ms")
        if kind in PROCESS_KINDS:
            # At most a minority of nodes down or paused at once.
            down = sum(1 for f in self.active if f.kind in PROCESS_KINDS)
            if not free or down >= (n - 1) // 2:
                return None
            # The disk node is left alone while its disk is full (a restart
            # of a full node is the disk fault's business, not this one's).
            return Fault(kind, [self.rng.choice(free)])
        if kind == "skew":
            i = self.cluster.skew_node
            if i not in free:
                return None
            sizes = [x for x in (5, 10, 20, 60, 300, 3600) if x <= self.skew_max_s] or [self.skew_max_s]
            s = self.rng.choice([-1, 1]) * self.rng.choice(sizes)
            return Fault(kind, [i], f"wall clock {s:+d} s")
        if kind == "disk":
            i = self.cluster.disk_node
            if i not in free:
                return None
            return Fault(kind, [i], "data directory's tmpfs filled")
        raise ValueError(kind)

    def inject(self, fault):
        c, lab = self.cluster, self.lab
        fault.start = time.time()
        self.log(f"nemesis: start {fault.describe(c)}")
        n = len(c.nodes)
        if fault.kind == "partition":
            lab.partition([fault.targets, [i for i in range(n) if i not in fault.targets]])
        elif fault.kind == "oneway":
            lab.isolate_one_way(fault.targets[0], [i for i in range(n) if i != fault.targets[0]])
        elif fault.kind == "flap":
            fault._flap_stop = threading.Event()
            groups = [fault.targets, [i for i in range(n) if i not in fault.targets]]
            period = self.rng.choice([0.5, 1.0, 2.0])

            def flap():
                on = False
                while not fault._flap_stop.wait(period):
                    on = not on
                    try:
                        lab.partition(groups) if on else lab.heal()
                    except Exception as e:  # noqa: BLE001
                        self.errors.append(f"flap: {e}")
            fault.detail += f", toggled every {period} s"
            fault._flapper = threading.Thread(target=flap, name="flap", daemon=True)
            fault._flapper.start()
        elif fault.kind == "loss":
            lab.lose(fault.targets, int(fault.detail.split("%")[0]))
        elif fault.kind == "delay":
            ms = int(fault.detail.rsplit(", ", 1)[1].split()[0])
            lab.slow(fault.targets, ms, ms // 2)
        elif fault.kind == "kill":
            c.nodes[fault.targets[0]].kill()
        elif fault.kind == "pause":
            c.nodes[fault.targets[0]].pause()
        elif fault.kind == "skew":
            c.set_skew(int(fault.detail.split()[2]))
        elif fault.kind == "disk":
            node = c.nodes[fault.targets[0]]
            filler = os.path.join(node.data_dir, "chaos-filler")
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", f"count={c.disk_mb * 2}"],
                           capture_output=True, timeout=60)  # stops when the disk is full
        self.active.append(fault)

    def observe(self, fault):
        """Evidence that the fault took hold, for the report: what a target
        node's failure detector says, how slow it answers, how full its disk is."""
        c = self.cluster
        node = c.nodes[fault.targets[0]]
        try:
            if fault.kind in ("partition", "oneway", "flap"):
                other = next(n for n in c.nodes if n.index not in fault.targets)
                views = []
                for viewer in (node, other):
                    if not viewer.alive():
                        continue
                    dead = [m.node_id for m in viewer.members(timeout=3).members if not m.alive]
                    views.append(f"{viewer.id} sees down: {','.join(dead) or 'nobody'}")
                fault.evidence = "; ".join(views)
            elif fault.kind in ("loss", "delay", "pause"):
                start = time.time()
                try:
                    node.status(timeout=1.5)
                    fault.evidence = f"{node.id} answered Status in {1000 * (time.time() - start):.0f} ms"
                except Exception as e:  # noqa: BLE001
                    why = e.code() if hasattr(e, "code") else type(e).__name__
                    fault.evidence = f"{node.id} Status failed after {time.time() - start:.1f} s: {why}"
            elif fault.kind == "kill":
                fault.evidence = f"{node.id} running: {node.alive()}"
            elif fault.kind == "disk":
                st = os.statvfs(node.data_dir)
                fault.evidence = f"{node.id} data directory free: {st.f_bavail * st.f_frsize // 1024} KiB"
        except Exception as e:  # noqa: BLE001 - evidence is best effort
            fault.evidence = f"observation failed: {e}"

    def heal(self, fault):
        c, lab = self.cluster, self.lab
        self.observe(fault)
        if fault.kind == "flap":
            fault._flap_stop.set()
            fault._flapper.join(10)
        if fault.kind in NETWORK_KINDS:
            lab.heal()
        elif fault.kind == "kill":
            c.nodes[fault.targets[0]].start()
        elif fault.kind == "pause":
            c.nodes[fault.targets[0]].resume()
        elif fault.kind == "skew":
            c.set_skew(0)
        elif fault.kind == "disk":
            node = c.nodes[fault.targets[0]]
            try:
                os.remove(os.path.join(node.data_dir, "chaos-filler"))
            except FileNotFoundError:
                pass
        fault.end = time.time()
        self.last_heal = fault.end
        self.active.remove(fault)
        self.done.append(fault)
        self.log(f"nemesis: heal  {fault.describe(c)} after {fault.end - fault.start:.1f} s"
                 + (f" [{fault.evidence}]" if fault.evidence else ""))

    def heal_all(self):
        for f in list(self.active):
            try:
                self.heal(f)
            except Exception as e:  # noqa: BLE001 - heal the rest regardless
                self.errors.append(f"heal {f.kind}: {e}")
        self.lab.heal()
        if self.cluster.skew_node is not None:
            self.cluster.set_skew(0)

    # ----- schedules
    def _sleep(self, seconds):
        return not self.stop_event.wait(seconds)

    def every_kind_once(self, seconds):
        """Short run: each available kind once, in a seeded order, one after
        another, within about `seconds`."""
        kinds = list(self.available)
        self.rng.shuffle(kinds)
        slot = seconds / max(1, len(kinds))
        hold = max(2.0, slot * 0.7)
        for kind in kinds:
            if self.stop_event.is_set():
                break
            fault = self.make(kind)
            if fault is None:
                continue
            self.inject(fault)
            self._sleep(hold)
            self.heal(fault)
            self._sleep(max(0.5, slot - hold))

    def random_mix(self, seconds):
        """Long run: random faults for `seconds`, up to two at a time."""
        deadline = time.time() + seconds
        while time.time() < deadline and not self.stop_event.is_set():
            for f in [f for f in self.active if time.time() >= f.planned_end]:
                self.heal(f)
            if len(self.active) < 2 and self.rng.random() < 0.5:
                fault = self.make(self.rng.choice(self.available))
                if fault is not None:
                    fault.planned_end = min(deadline, time.time() + self.rng.uniform(3, 15))
                    self.inject(fault)
            self._sleep(self.rng.uniform(0.5, 2.0))
        for f in list(self.active):
            self.heal(f)

    def kill_every(self, period_s, down_s, seconds):
        """Soak: kill -9 one node (round robin) every period, restart it after
        down_s."""
        deadline = time.time() + seconds
        i = 0
        while time.time() + period_s <= deadline + 1 and not self.stop_event.is_set():
            if not self._sleep(period_s - down_s):
                break
            fault = Fault("kill", [i % len(self.cluster.nodes)])
            self.inject(fault)
            self._sleep(down_s)
            self.heal(fault)
            i += 1

    def run(self, schedule, *args):
        def body():
            try:
                schedule(*args)
            except Exception as e:  # noqa: BLE001 - reported; the main thread heals
                self.errors.append(f"nemesis: {type(e).__name__}: {e}")
                self.log(f"nemesis: ERROR {type(e).__name__}: {e}")
        self.thread = threading.Thread(target=body, name="nemesis", daemon=True)
        self.thread.start()

    def stop(self, timeout=60):
        self.stop_event.set()
        if self.thread:
            self.thread.join(timeout)
        self.heal_all()
