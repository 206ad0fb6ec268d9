"""Kill -9, restart, hinted handoff, wiped disks: real processes on loopback."""

import unittest

import harness
from harness import Cluster, wait_until


class KillOwnerThenRestart(unittest.TestCase):
    """3 nodes, N=3: a write with W=2 while one owner is down; its hint reaches
    it when it restarts, and a read from it alone returns the latest value."""

    def test_hints_reach_restarted_owner(self):
        c = Cluster(3).start()
        self.addCleanup(c.close)  # a failed test must not leave nodes on the next one's ports
        n0, n1, n2 = c.nodes
        first = n0.put(b"k", b"v1", w=2)
        n2.kill()  # kill -9
        got = n0.get(b"k")
        second = n0.put(b"k", b"v2", context=got.context, w=2)
        self.assertTrue(second.context)
        self.assertEqual([s.value for s in n1.get(b"k").siblings], [b"v2"])
        for i in range(20):  # writes and reads keep working with one owner down
            n1.put(b"other%d" % i, b"x", w=2)
            self.assertTrue(n0.get(b"other%d" % i).found)
        held = sum(h.keys for h in n0.status().hints) + sum(h.keys for h in n1.status().hints)
        self.assertGreater(held, 0, "a coordinator should hold hints for the down owner")
        wait_until(lambda: n0.metric("dynamo_hint_backlog_keys") +
                   n1.metric("dynamo_hint_backlog_keys") > 0, 5, "the hint backlog metric")
        n2.start()
        # A write's request to n2 may still be in flight: a peer's transport
        # waits for a restarting node's connection (up to the request timeout)
        # before it counts the request as failed and keeps a hint. Until every
        # coordinated write has ended, an empty backlog does not mean n2 has
        # them all (this raced once in about 440 runs beside two busy loops).
        wait_until(lambda: all(n.metric("dynamo_inflight_requests") == 0 for n in (n0, n1)), 30,
                   "every write to n2 to end (acknowledged, or failed and kept as a hint)")
        wait_until(lambda: all(not n.status().hints for n in (n0, n1)), 30,
                   "hint backlog to drain")
        # /metrics is republished every 100 ms: it may trail the status just read.
        delivered = lambda: (n0.metric("dynamo_hints_delivered_total") +
                             n1.metric("dynamo_hints_delivered_total"))
        wait_until(lambda: delivered() > 0, 5, "the delivered hints metric")
        self.assertGreater(delivered(), 0)
        self.assertGreater(n0.status().hints_delivered + n1.status().hints_delivered, 0)
        # R=1 aimed at the restarted node: its own replica answers.
        values = [s.value for s in n2.get(b"k", r=1).siblings]
        if values != [b"v2"]:
            self.fail(f"n2 read {values}, not [b'v2']\n{self.diagnose(c)}")
        self.assertTrue(all(n2.get(b"other%d" % i, r=1).found for i in range(20)))
        c.close()

    @staticmethod
    def diagnose(c):
        """What a failure of the read above needs to be understood: each
        node's view and its log. (It failed once in CI and once in 440 runs
        beside two busy loops: a write still in flight to n2, see above.)"""
        out = []
        for n in c.nodes:
            try:
                st = n.status()
                hints = [(h.target_node, h.keys) for h in st.hints]
                values = [s.value for s in n.get(b'k', r=1).siblings]
                out.append(f"{n.id}: actor {st.actor} hints {hints} "
                           f"delivered {st.hints_delivered} k@R=1 {values}")
            except Exception as e:  # the diagnosis must not hide the failure
                out.append(f"{n.id}: {e}")
            out.append(f"--- {n.id} log ---\n{n.log_tail(40)}")
        return "\n".join(out)


class DurableAcrossKill9(unittest.TestCase):
    def test_every_acknowledged_write_survives_kill9_of_all_nodes(self):
        c = Cluster(3).start()
        self.addCleanup(c.close)  # a failed test must not leave nodes on the next one's ports
        for i in range(200):
            c.nodes[i % 3].put(b"d%d" % i, b"value%d" % i, w=2)
        for n in c.nodes:
            n.kill()
        for n in c.nodes:
            n.start()
        c.wait_normal()
        for i in range(200):
            got = c.nodes[(i + 1) % 3].get(b"d%d" % i, r=2)
            self.assertEqual([s.value for s in got.siblings], [b"value%d" % i])
        c.close()


class RestartKeepsOrChangesTheClockActor(unittest.TestCase):
    """A SIGTERM restart keeps the node's clock actor; after kill -9 it takes a
    new one (its replica writes may have left before its own sync), and a blind
    write after either restart stays concurrent with the value before it."""

    def test_clean_stop_keeps_it_kill9_changes_it(self):
        c = Cluster(3).start()
        self.addCleanup(c.close)  # a failed test must not leave nodes on the next one's ports
        n0 = c.nodes[0]
        first = n0.status().actor
        n0.put(b"a", b"before-stop", w=3)
        self.assertEqual(n0.stop(), 0)
        n0.start()
        c.wait_normal()
        self.assertEqual(n0.status().actor, first, "a clean stop must keep the actor")
        n0.put(b"a", b"after-stop", w=3)  # blind: concurrent with the first
        n0.kill()
        # Until a peer has noticed: its calls to n0 failed meanwhile.
        wait_until(lambda: not c.nodes[1].member(n0.id).alive, 30, "n1 to see n0 down")
        n0.start()
        c.wait_normal()
        self.assertNotEqual(n0.status().actor, first, "kill -9 must change the actor")
        n0.put(b"a", b"after-kill", w=3)
        # Once every node sees n0 alive, a read of all three replicas works at
        # once: a peer's channel to n0 may still be in gRPC's reconnect backoff
        # from calls made while n0 was down, which must not fail the read.
        got = c.nodes[1].get(b"a", r=3)
        self.assertEqual(sorted(s.value for s in got.siblings),
                         [b"after-kill", b"after-stop", b"before-stop"])
        c.close()


class WipedNodeIsRebuilt(unittest.TestCase):
    def test_antientropy_restores_every_key(self):
        c = Cluster(3).start()
        self.addCleanup(c.close)  # a failed test must not leave nodes on the next one's ports
        keys = [b"w%d" % i for i in range(300)]
        for i, k in enumerate(keys):
            c.nodes[i % 3].put(k, b"v", w=3)
        victim = c.nodes[2]
        old_actor = victim.status().actor
        victim.kill()
        victim.wipe()
        victim.start()
        c.wait_normal()
        self.assertNotEqual(victim.status().actor, old_actor,
                            "a wiped node must take a new clock epoch")
        # N=3 of 3 nodes: the wiped node owns every key; anti-entropy alone
        # (no reads touch those keys) must give all of them back.
        try:
            wait_until(lambda: victim.status().keys == len(keys), 60,
                       "anti-entropy to restore the wiped node")
        except AssertionError:
            print([(n.status().keys, n.status().antientropy_exchanges) for n in c.nodes])
            c.dump()
            raise
        self.assertGreater(victim.status().antientropy_keys_repaired +
                           sum(n.status().antientropy_keys_repaired for n in c.nodes[:2]), 0)
        for k in keys:
            self.assertTrue(victim.get(k, r=1).found, k)
        c.close()


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
