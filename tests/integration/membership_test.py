"""Join a fourth node and let another leave: ranges are handed off, no key is
lost, the ring converges."""

import unittest

import harness
from harness import Cluster, stubs, wait_until


class JoinAndLeave(unittest.TestCase):
    def test_join_then_leave_hands_off_ranges_and_loses_nothing(self):
        _, _, admin_pb2, _ = stubs()
        c = Cluster(3).start()
        keys = [b"j%d" % i for i in range(400)]
        for i, k in enumerate(keys):
            c.nodes[i % 3].put(k, b"v%d" % i, w=2)
        # A fourth node asks to join: the claimant gives it a share of the ring.
        n3 = c.add_node()
        c.wait_normal(60)
        wait_until(lambda: n3.status().owned_partitions > 0 and n3.status().keys > 0, 60,
                   "the new node to receive its ranges")
        # Node 1 leaves: it hands everything off and reports LEFT.
        leaving = c.nodes[1]
        leaving.admin().Leave(admin_pb2.LeaveRequest(), timeout=5)
        wait_until(lambda: leaving.status().state == admin_pb2.NODE_STATE_LEFT, 120,
                   "the leaving node to hand off and report LEFT")
        st = leaving.status()
        self.assertEqual(st.keys, 0)
        self.assertEqual(st.owned_partitions, 0)
        self.assertGreater(st.keys_handed_off, 0)
        remaining = [c.nodes[0], c.nodes[2], n3]
        wait_until(lambda: len({n.members().ring_version for n in remaining}) == 1, 30,
                   "the ring to converge")
        leaving.stop()
        for n in remaining:
            m = {x.node_id: x.state for x in n.members().members}
            self.assertEqual(m[leaving.id], admin_pb2.NODE_STATE_LEFT)
        # A node that left is gone for good, not unreachable: once the others
        # stop hearing from it, no alert on unreachable members counts it.
        wait_until(lambda: not {x.node_id: x.alive for x in remaining[0].members().members}[leaving.id],
                   30, "the others to stop hearing from the node that left")
        wait_until(lambda: all(n.metric("dynamo_members_unreachable") == 0 for n in remaining), 10,
                   "dynamo_members_unreachable to be 0 on every remaining node")
        for i, k in enumerate(keys):
            got = remaining[i % 3].get(k, r=2)
            self.assertEqual([s.value for s in got.siblings], [b"v%d" % i], k)
        c.close()


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
