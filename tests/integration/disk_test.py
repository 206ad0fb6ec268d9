"""Disk faults: a full disk refuses writes clearly, keeps serving reads and
recovers; a node whose fsync fails acknowledges nothing on its account and
says why; a corrupted database is refused at start and rebuilt from replicas.
And the log sync's delay: one fsync covers the writes of its window."""

import glob
import os
import subprocess
import threading
import time
import unittest
import urllib.error

import grpc

import harness
from harness import Cluster, wait_until


def can_mount():
    return os.geteuid() == 0 and subprocess.run(["which", "mount"], capture_output=True).returncode == 0


class FullDisk(unittest.TestCase):
    @unittest.skipUnless(can_mount(), "needs root to mount a small tmpfs (CI runs as root)")
    def test_full_disk_refuses_writes_serves_reads_and_recovers(self):
        c = Cluster(3)
        small = c.nodes[2]
        os.makedirs(small.data_dir, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", small.data_dir], check=True)
        try:
            c.start()
            n0 = c.nodes[0]
            for i in range(50):
                n0.put(b"before%d" % i, b"v", w=3)
            filler = os.path.join(small.data_dir, "filler")
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=400"],
                           capture_output=True)  # stops when the disk is full
            with self.assertRaises(grpc.RpcError) as e:
                # The log file has space reserved ahead: write past it.
                for i in range(4000):
                    small.put(b"during%d" % i, b"x" * 65536, w=1)
            if e.exception.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                c.dump()
            self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                             e.exception.details())
            self.assertIn("disk full", e.exception.details())
            # Reads keep working on the full node, and the others still take writes.
            self.assertTrue(small.get(b"before7", r=1).found)
            n0.put(b"while-full", b"v", w=2)
            # Restarted on the full disk, the node cannot open its database
            # (opening writes new files): it says so and exits 1. RocksDB's
            # own log writer used to abort it first, without a word.
            small.kill()
            small.start()
            code = small.process.wait(timeout=60)
            log = small.log_tail()
            small._ended()
            self.assertEqual(code, 1, log)
            self.assertIn("disk full: cannot open the database", log)
            os.remove(filler)
            small.start()
            wait_until(lambda: small.put(b"after", b"v") is not None, 30, "writes to work again")
            wait_until(lambda: small.get(b"while-full", r=1).found, 30,
                       "the write it missed to reach it (hint or anti-entropy)")
            self.assertTrue(small.alive())
        finally:
            c.close()
            subprocess.run(["umount", "-l", small.data_dir], capture_output=True)


class Corruption(unittest.TestCase):
    def test_corrupted_database_is_refused_at_start_and_rebuilt_from_replicas(self):
        c = Cluster(3).start()
        for i in range(200):
            c.nodes[i % 3].put(b"c%d" % i, b"value" * 50, w=3)
        victim = c.nodes[1]
        self.assertEqual(victim.stop(), 0)  # clean stop: memtables flushed to table files
        tables = glob.glob(os.path.join(victim.data_dir, "db", "*.sst"))
        manifests = glob.glob(os.path.join(victim.data_dir, "db", "MANIFEST-*"))
        target = (tables or manifests)[0]
        with open(target, "r+b") as f:
            size = os.path.getsize(target)
            f.seek(max(0, size // 2 - 64))
            f.write(os.urandom(128))
        victim.start()
        code = victim.process.wait(timeout=30)
        victim._ended()
        self.assertNotEqual(code, 0, "a corrupted database must not be served")
        log = victim.log_tail()
        self.assertRegex(log.lower(), "corrupt")
        # The operator's remedy: wipe the directory; anti-entropy rebuilds it.
        victim.wipe()
        victim.start()
        c.wait_normal()
        wait_until(lambda: victim.status().keys == 200, 60, "anti-entropy to rebuild the node")
        c.close()


def probe(node, path):
    """The body of /readyz or /healthz: "ok", or why not (with a 503)."""
    try:
        return node.http(path)[1].strip()
    except urllib.error.HTTPError as e:
        return e.read().decode()


def readiness(node):
    return probe(node, "/readyz")


class FailedSync(unittest.TestCase):
    @unittest.skipUnless(os.environ.get("DYNAMO_TEST_FAIL_SYNC_LIB"),
                         "needs the fsync-failing library CTest names (build/tests/integration)")
    def test_a_node_whose_sync_fails_acknowledges_nothing_on_its_account_and_says_why(self):
        c = Cluster(3)  # durable: acknowledged writes are synced
        trigger = os.path.join(c.dir, "fail-sync")
        failing = c.nodes[2]
        for node in c.nodes:
            env = {}
            if node is failing:
                env = {"LD_PRELOAD": os.environ["DYNAMO_TEST_FAIL_SYNC_LIB"],
                       "DYNAMO_TEST_FAIL_SYNC_WHILE": trigger}
            node.start(env=env)
        try:
            c.wait_normal()
            n0 = c.nodes[0]
            n0.put(b"before", b"v", w=3)
            open(trigger, "w").close()
            # As coordinator, its own write counts towards W only once synced:
            # the other two acknowledge, and still the put fails.
            with self.assertRaises(grpc.RpcError) as e:
                failing.put(b"own", b"v", w=2)
            self.assertIn("storage could not sync", e.exception.details())
            # Not ready while it acknowledges nothing, so that clients go elsewhere.
            wait_until(lambda: "storage could not sync" in readiness(failing), 10,
                       "the failing node to report itself not ready")
            wait_until(lambda: failing.metric("dynamo_ready") == 0, 5, "dynamo_ready at 0")
            self.assertGreater(failing.metric("dynamo_storage_sync_failures_total"), 0)
            self.assertEqual(n0.metric("dynamo_storage_sync_failures_total"), 0)
            self.assertEqual(n0.metric("dynamo_ready"), 1)
            # Its storage now refuses writes. Another coordinator counts the
            # failure when the error reply comes, and names it.
            with self.assertRaises(grpc.RpcError) as e:
                n0.put(b"during", b"v", w=3)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE, e.exception.details())
            self.assertIn(f"failed: {failing.id} (", e.exception.details())
            self.assertNotIn("did not answer", e.exception.details())
            n0.put(b"during-w2", b"v", w=2)  # the other two still take writes
            self.assertTrue(failing.alive(), failing.log_tail())
            # RocksDB will not resume writes after a failed fsync: the
            # liveness check fails, so that Kubernetes restarts the node,
            # even with the disk working again.
            os.remove(trigger)
            wait_until(lambda: "restart the node" in probe(failing, "/healthz"), 10,
                       "the failing node's liveness check to ask for a restart")
            self.assertEqual(probe(c.nodes[0], "/healthz"), "ok")
            # Once restarted it takes writes and gets what it missed.
            failing.kill()
            failing.start(env={"LD_PRELOAD": os.environ["DYNAMO_TEST_FAIL_SYNC_LIB"],
                               "DYNAMO_TEST_FAIL_SYNC_WHILE": trigger})
            c.wait_normal()
            n0.put(b"after", b"v", w=3)
            wait_until(lambda: readiness(failing) == "ok", 10, "the restarted node to be ready")
            self.assertEqual(probe(failing, "/healthz"), "ok")
            wait_until(lambda: failing.get(b"during-w2", r=1).found, 30,
                       "the write it missed to reach it (hint or anti-entropy)")
        finally:
            c.close()


class SyncDelay(unittest.TestCase):
    def test_one_fsync_covers_the_writes_that_arrive_within_the_sync_delay(self):
        c = Cluster(3, node_flags=harness.FAST + ("--sync-delay-us=100000",))  # durable
        c.start()
        try:
            n0 = c.nodes[0]
            n0.put(b"warm", b"v", w=3)
            before = n0.metric("dynamo_storage_sync_duration_seconds_count")
            # 16 puts 2 ms apart, each in its own thread: without the delay each
            # would find the last fsync (under 1 ms here) over and start its own.
            keys = [f"k{i}".encode() for i in range(16)]
            errors = []

            def put(key):
                try:
                    n0.put(key, b"v", w=3)
                except grpc.RpcError as e:
                    errors.append(e)

            threads = []
            for key in keys:
                threads.append(threading.Thread(target=put, args=(key,)))
                threads[-1].start()
                time.sleep(0.002)
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            syncs = n0.metric("dynamo_storage_sync_duration_seconds_count") - before
            self.assertGreaterEqual(syncs, 1)
            self.assertLessEqual(syncs, 4, "n0 wrote all 16 (coordinator and replica) in about "
                                 "32 ms, within one 100 ms sync delay")
            for key in keys:  # acknowledged at W=3: every replica holds it
                self.assertTrue(c.nodes[2].get(key, r=1).found, key)
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
