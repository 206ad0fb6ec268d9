"""A node that cannot start says why and exits 1: no crash, no silent half-start."""

import unittest

import harness
from harness import Cluster, Node


def exit_code(node, timeout=30):
    """Waits for a node expected to give up; kills it if it does not."""
    try:
        return node.process.wait(timeout=timeout)
    except Exception:
        node.kill()
        raise AssertionError(f"{node.id} kept running: {node.log_tail()}")
    finally:
        node._ended()


class StartErrors(unittest.TestCase):
    def test_a_missing_token_file_is_reported_not_a_crash(self):
        # A joining node (seeds to gossip with) fails after opening its
        # storage: the stop that follows used to gossip through a transport
        # it never made, and the process died of SIGSEGV without a word.
        c = Cluster(2)
        try:
            joiner = c.nodes[1].start(["--client-token-file=/nonexistent/client.token"])
            self.assertEqual(exit_code(joiner), 1, joiner.log_tail())
            self.assertIn("token file /nonexistent/client.token is missing or empty",
                          joiner.log_tail())
        finally:
            c.close()

    def test_a_second_node_on_a_port_in_use_refuses_to_start(self):
        # gRPC binds with SO_REUSEPORT unless told not to: a second node on
        # the same port would start and take some of the first one's
        # connections.
        c = Cluster(1).start()
        try:
            c.nodes[0].put(b"k", b"v", n=1, w=1)
            twin = Node(c, 1)
            twin.port, twin.address = c.nodes[0].port, c.nodes[0].address
            twin.start()
            self.assertEqual(exit_code(twin), 1, twin.log_tail())
            self.assertIn(f"cannot serve gRPC on {twin.address} (is the port in use?)",
                          twin.log_tail())
            got = c.nodes[0].get(b"k", n=1, r=1)
            self.assertEqual([s.value for s in got.siblings], [b"v"])
            self.assertTrue(c.nodes[0].alive())
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
