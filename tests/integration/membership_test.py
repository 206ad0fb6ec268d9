"""Join a fourth node and let another leave: ranges are handed off, no key is
lost, the ring converges. Remove a node gone for good: it leaves the ring, the
reaps it held go on, and its old storage never joins again."""

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


class RemoveANodeGoneForGood(unittest.TestCase):
    def test_removed_node_leaves_the_ring_reaps_go_on_and_its_old_storage_stays_out(self):
        import grpc
        _, _, admin_pb2, _ = stubs()
        c = Cluster(4).start()
        n0, n1, n2, n3 = c.nodes
        keys = [b"r%d" % i for i in range(200)]
        for i, k in enumerate(keys):
            c.nodes[i % 4].put(k, b"v%d" % i, w=2)

        def remove(via, node_id):
            return via.admin().RemoveNode(admin_pb2.RemoveNodeRequest(node_id=node_id), timeout=5)

        with self.assertRaises(grpc.RpcError) as refused:
            remove(n0, "n3")
        self.assertEqual(refused.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("alive", refused.exception.details())

        # A delete on every owner, its reap waiting out the grace; then n3 is
        # gone for good, and holds the reap: it cannot answer the handoff query.
        got = n0.get(b"gone", r=2)
        n0.put(b"gone", b"v", context=got.context, w=3)
        n0.delete(b"gone", context=n0.get(b"gone", r=3).context)
        n3.kill()
        live = [n0, n1, n2]
        wait_until(lambda: all(not n.member("n3").alive for n in live), 30,
                   "every live node to see n3 down")
        wait_until(lambda: any("n3" in n.status().reaps_held_by for n in live), 30,
                   "a reap to wait for n3")

        removed = remove(n1, "n3")
        self.assertIn(removed.state, (admin_pb2.NODE_STATE_LEAVING, admin_pb2.NODE_STATE_LEFT))
        wait_until(lambda: all(n.member("n3").state == admin_pb2.NODE_STATE_LEFT and
                               n.member("n3").removed_by == "n1" for n in live), 30,
                   "every live node to see n3 removed and out of the ring")
        wait_until(lambda: len({n.members().ring_version for n in live}) == 1, 30,
                   "the ring to converge")
        wait_until(lambda: sum(n.status().reaps_owed for n in live) == 0, 60,
                   "the reaps n3 held to go on")
        self.assertGreater(sum(n.status().tombstones_reaped for n in live), 0)
        for i, k in enumerate(keys):
            got = live[i % 3].get(k, r=2)
            self.assertEqual([s.value for s in got.siblings], [b"v%d" % i], k)

        # n3's old storage starts, learns it was removed and stops itself; it
        # never starts again.
        n3.start()
        self.assertEqual(n3.process.wait(timeout=60), 3, n3.log_tail())
        n3._ended()
        self.assertIn("removed from the cluster by n1", n3.log_tail())
        n3.start()
        self.assertEqual(n3.process.wait(timeout=60), 1, n3.log_tail())
        n3._ended()
        self.assertIn("Wipe the data directory", n3.log_tail(5))
        for n in live:
            self.assertEqual(n.member("n3").state, admin_pb2.NODE_STATE_LEFT)
        self.assertFalse(n0.get(b"gone", r=3).siblings, "the delete was undone")

        # Wiped, it joins as a new node and takes its share again.
        n3.wipe()
        n3.start()
        c.wait_normal(90)
        wait_until(lambda: n3.status().keys > 0, 60, "the new n3 to receive keys")
        self.assertEqual(n0.member("n3").removed_by, "")
        for i, k in enumerate(keys[:50]):
            got = n3.get(k, r=2)
            self.assertEqual([s.value for s in got.siblings], [b"v%d" % i], k)
        c.close()


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
