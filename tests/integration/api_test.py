"""The client API over the wire: siblings, contexts, bad input, quorum errors,
graceful shutdown, and the metrics and health endpoints."""

import queue
import shutil
import subprocess
import threading
import time
import unittest

import grpc

import harness
from harness import Cluster, stubs, wait_until


class Siblings(unittest.TestCase):
    def test_concurrent_blind_puts_make_siblings_and_merged_context_resolves(self):
        c = Cluster(3).start()
        a, b = c.nodes[0], c.nodes[1]
        barrier = threading.Barrier(2)

        def writer(node, value):
            barrier.wait()
            node.put(b"doc", value)
        threads = [threading.Thread(target=writer, args=(a, b"alice")),
                   threading.Thread(target=writer, args=(b, b"bob"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = c.nodes[2].get(b"doc")
        self.assertEqual(sorted(s.value for s in got.siblings), [b"alice", b"bob"])
        c.nodes[2].put(b"doc", b"alice+bob", context=got.context)
        for n in c.nodes:
            self.assertEqual([s.value for s in n.get(b"doc").siblings], [b"alice+bob"])
        c.close()


class BadInput(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(3).start()

    def tearDown(self):
        self.c.close()

    def expect(self, code, call, *words):
        with self.assertRaises(grpc.RpcError) as e:
            call()
        self.assertEqual(e.exception.code(), code, e.exception.details())
        for w in words:
            self.assertIn(w, e.exception.details())

    def test_bad_requests_get_invalid_argument_and_nothing_crashes(self):
        n = self.c.nodes[0]
        INVALID = grpc.StatusCode.INVALID_ARGUMENT
        self.expect(INVALID, lambda: n.put(b"", b"v"), "key must not be empty")
        self.expect(INVALID, lambda: n.get(b""), "key must not be empty")
        self.expect(INVALID, lambda: n.put(b"k", b"x" * (1 << 20 + 1)), "limit")
        self.expect(INVALID, lambda: n.put(b"k" * 5000, b"v"), "key is 5000 bytes")
        self.expect(INVALID, lambda: n.put(b"k", b"v", context=b"\x01garbage"), "context is malformed")
        ctx = n.put(b"other", b"v").context
        self.expect(INVALID, lambda: n.put(b"k", b"v", context=ctx), "another key")
        self.expect(INVALID, lambda: n.get(b"k", n=7), "n=7")
        self.expect(INVALID, lambda: n.get(b"k", n=2, r=3), "r=3")
        self.expect(INVALID, lambda: n.put(b"k", b"v", w=4), "w=4")
        self.expect(INVALID, lambda: n.delete(b"k", context=b"junk"), "context")
        # Nothing was stored by the refused writes, and every node still serves.
        self.assertFalse(n.get(b"k").found)
        for node in self.c.nodes:
            self.assertTrue(node.alive())
            node.put(b"fine", b"v")

    def test_message_over_the_grpc_limit_is_refused(self):
        n = self.c.nodes[0]
        self.expect(grpc.StatusCode.RESOURCE_EXHAUSTED, lambda: n.put(b"k", b"x" * (9 << 20)))
        self.assertTrue(n.alive())

    def test_unreachable_quorum_is_unavailable(self):
        n0, n1, n2 = self.c.nodes
        n1.kill()
        n2.kill()
        self.expect(grpc.StatusCode.UNAVAILABLE, lambda: n0.put(b"k", b"v", w=2), "quorum")
        self.expect(grpc.StatusCode.UNAVAILABLE, lambda: n0.get(b"k", r=2), "quorum")
        n0.put(b"k", b"v", w=1)  # W=1 is still writable
        self.assertTrue(n0.get(b"k", r=1).found)


class ReplicaBatch(unittest.TestCase):
    """Replica.CallBatch and Replica.Stream: what one node sends another in one step."""

    def setUp(self):
        self.c = Cluster(3).start()
        self.n = self.c.nodes[0]
        self.n.put(b"present", b"v1")

    def tearDown(self):
        self.c.close()

    def stub(self):
        stubs()
        from dynamo.v1 import replica_pb2_grpc
        return replica_pb2_grpc.ReplicaStub(grpc.insecure_channel(self.n.address))

    @staticmethod
    def read(request_id, key):
        from dynamo.v1 import replica_pb2
        return replica_pb2.Envelope(from_node="tester", from_address="127.0.0.1:1",
                                    request_id=request_id, read=replica_pb2.ReplicaRead(keys=[key]))

    def test_replies_come_in_request_order_and_bad_batches_are_refused(self):
        stub, read, n = self.stub(), self.read, self.n
        from dynamo.v1 import replica_pb2
        got = stub.CallBatch(replica_pb2.EnvelopeBatch(
            envelopes=[read(11, b"missing"), read(12, b"present")]), timeout=5)
        self.assertEqual([e.request_id for e in got.envelopes], [11, 12])
        self.assertTrue(all(e.is_reply for e in got.envelopes))
        self.assertFalse(got.envelopes[0].read_reply.items[0].found)
        self.assertTrue(got.envelopes[1].read_reply.items[0].found)

        def refused(batch, words):
            with self.assertRaises(grpc.RpcError) as e:
                stub.CallBatch(replica_pb2.EnvelopeBatch(envelopes=batch), timeout=5)
            self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn(words, e.exception.details())
        refused([], "1 to 64")
        refused([read(i + 1, b"k") for i in range(65)], "got 65")
        refused([read(5, b"a"), read(5, b"b")], "appears twice")
        refused([read(0, b"a")], "only replica reads and writes")
        gossip = replica_pb2.Envelope(from_node="tester", request_id=9,
                                      gossip=replica_pb2.Gossip())
        refused([gossip], "only replica reads and writes")
        self.assertTrue(n.alive())
        self.assertEqual(n.get(b"present").siblings[0].value, b"v1")

    def test_a_stream_answers_each_request_and_ends_at_a_bad_batch(self):
        """Replica.Stream: the same requests on one long-lived stream."""
        stub, read, n = self.stub(), self.read, self.n
        from dynamo.v1 import replica_pb2
        batches = queue.Queue()

        def requests():  # the stream stays open until None
            while (batch := batches.get()) is not None:
                yield batch
        replies = stub.Stream(requests(), timeout=20)
        batches.put(replica_pb2.EnvelopeBatch(envelopes=[read(11, b"missing"),
                                                         read(12, b"present")]))
        batches.put(replica_pb2.EnvelopeBatch(envelopes=[read(13, b"present")]))
        got = {}
        while len(got) < 3:
            for e in next(replies).envelopes:
                got[e.request_id] = e
        self.assertEqual(sorted(got), [11, 12, 13])
        self.assertTrue(all(e.is_reply for e in got.values()))
        self.assertFalse(got[11].read_reply.items[0].found)
        self.assertTrue(got[12].read_reply.items[0].found)
        self.assertTrue(got[13].read_reply.items[0].found)
        batches.put(replica_pb2.EnvelopeBatch(envelopes=[read(5, b"a"), read(5, b"b")]))
        with self.assertRaises(grpc.RpcError) as e:
            next(replies)
        batches.put(None)
        self.assertEqual(e.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("appears twice", e.exception.details())
        self.assertTrue(n.alive())
        self.assertEqual(n.get(b"present").siblings[0].value, b"v1")


    def test_a_reply_larger_than_a_streamed_batch_still_comes_back(self):
        """A reply over half the 8 MiB message limit (a stream write's batch bound) leaves alone."""
        read, n = self.read, self.n
        from dynamo.v1 import replica_pb2, replica_pb2_grpc
        for i in range(5):  # blind writes keep every value: five siblings, about 4.6 MiB
            n.put(b"big", bytes([i]) * (950 << 10))
        channel = grpc.insecure_channel(
            n.address, options=[("grpc.max_receive_message_length", 16 << 20)])
        batches = queue.Queue()

        def requests():  # the stream stays open until None
            while (batch := batches.get()) is not None:
                yield batch
        replies = replica_pb2_grpc.ReplicaStub(channel).Stream(requests(), timeout=20)
        batches.put(replica_pb2.EnvelopeBatch(envelopes=[read(21, b"big"), read(22, b"present")]))
        got = {}
        while len(got) < 2:
            for e in next(replies).envelopes:
                got[e.request_id] = e
        batches.put(None)
        self.assertFalse(got[21].HasField("error"), got[21].error.message)
        self.assertEqual(len(got[21].read_reply.items[0].object.siblings), 5)
        self.assertTrue(got[22].read_reply.items[0].found)


class MessageLimit(unittest.TestCase):
    """--grpc-message-bytes-max bounds what one message carries; a key's values
    together stay below it, so that every object can still be read and copied."""

    LIMITS = ("--grpc-message-bytes-max=1048576", "--value-bytes-max=262144")

    def setUp(self):
        self.c = Cluster(3, harness.FAST + self.LIMITS).start()
        self.n = self.c.nodes[0]

    def tearDown(self):
        self.c.close()

    def test_concurrent_values_stop_before_a_key_outgrows_a_message(self):
        n = self.n
        for i in range(3):  # blind writes keep every value: 750 KiB of siblings
            n.put(b"doc", bytes([i]) * (250 << 10))
        with self.assertRaises(grpc.RpcError) as e:
            n.put(b"doc", b"x" * (250 << 10))
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("resolve the siblings", e.exception.details())
        got = n.get(b"doc")
        self.assertEqual(len(got.siblings), 3)
        n.put(b"doc", b"r" * (250 << 10), context=got.context)
        self.assertEqual([s.value for s in n.get(b"doc").siblings], [b"r" * (250 << 10)])

    def test_a_stream_reply_over_the_message_limit_comes_back_as_an_error(self):
        """Replicas merge what they are sent without the coordinator's bound, so
        an object may still outgrow a message: a read of it fails at once, with
        what to do."""
        stubs()
        from dynamo.v1 import replica_pb2, replica_pb2_grpc, versions_pb2
        n = self.n

        def envelope(request_id, **body):
            return replica_pb2.Envelope(from_node="tester", from_address="127.0.0.1:1",
                                        request_id=request_id, **body)

        def write(request_id, actor):  # one concurrent value of 600 KiB from actor
            obj = versions_pb2.ObjectRecord(
                clock=[versions_pb2.ClockEntry(actor=actor, counter=1)],
                siblings=[versions_pb2.SiblingRecord(
                    dot=versions_pb2.Dot(actor=actor, counter=1), value=b"v" * (600 << 10))])
            return envelope(request_id, write=replica_pb2.ReplicaWrite(
                items=[replica_pb2.KeyedObject(key=b"huge", object=obj)]))
        batches = queue.Queue()

        def requests():  # the stream stays open until None
            while (batch := batches.get()) is not None:
                yield batch
        channel = grpc.insecure_channel(
            n.address, options=[("grpc.max_receive_message_length", 4 << 20)])
        replies = replica_pb2_grpc.ReplicaStub(channel).Stream(requests(), timeout=20)
        got = {}

        def answer(request_id):
            while request_id not in got:
                for e in next(replies).envelopes:
                    got[e.request_id] = e
            return got[request_id]
        for request_id, actor in ((31, "x#1"), (32, "y#1")):
            batches.put(replica_pb2.EnvelopeBatch(envelopes=[write(request_id, actor)]))
            self.assertTrue(answer(request_id).HasField("write_ack"), answer(request_id))
        batches.put(replica_pb2.EnvelopeBatch(envelopes=[
            envelope(33, read=replica_pb2.ReplicaRead(keys=[b"huge"])),
            envelope(34, read=replica_pb2.ReplicaRead(keys=[b"absent"]))]))
        error = answer(33)
        self.assertTrue(error.HasField("error"), error)
        self.assertEqual(error.error.code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
        self.assertIn("exceeds the message limit of 1048576", error.error.message)
        self.assertFalse(answer(34).read_reply.items[0].found)  # the stream goes on
        batches.put(None)
        # A client read of it fails too, saying what to raise.
        with self.assertRaises(grpc.RpcError) as e:
            n.get(b"huge")
        self.assertEqual(e.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("raise it on every node", e.exception.details())
        self.assertTrue(n.alive())

    def test_a_peer_that_does_not_read_its_replies_gets_them_all_later_without_a_pile_up(self):
        """Past a few messages of replies waiting on a stream, the node holds back that
        stream's requests, which are small, instead of making all their replies."""
        stubs()
        from dynamo.v1 import replica_pb2, replica_pb2_grpc
        n = self.n
        for i in range(3):  # 750 KiB of siblings: one reply per read
            n.put(b"big", bytes([i]) * (250 << 10))

        def memory_kib(field):
            with open(f"/proc/{n.process.pid}/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
        before = memory_kib("VmRSS")
        reads = 400  # 300 MB of replies if they all piled up (286 MiB more RSS, measured)
        batches = queue.Queue()
        for i in range(reads):
            batches.put(replica_pb2.EnvelopeBatch(envelopes=[replica_pb2.Envelope(
                from_node="tester", from_address="127.0.0.1:1", request_id=100 + i,
                read=replica_pb2.ReplicaRead(keys=[b"big"]))]))

        def requests():  # the stream stays open until None
            while (batch := batches.get()) is not None:
                yield batch
        replies = replica_pb2_grpc.ReplicaStub(grpc.insecure_channel(n.address)).Stream(
            requests(), timeout=60)
        time.sleep(2)  # long enough for a node without the bound to take every request
        got = set()
        while len(got) < reads:
            for e in next(replies).envelopes:
                self.assertEqual(len(e.read_reply.items[0].object.siblings), 3, e.request_id)
                got.add(e.request_id)
        batches.put(None)
        self.assertEqual(got, set(range(100, 100 + reads)))
        grown_mib = (memory_kib("VmHWM") - before) / 1024
        self.assertLess(grown_mib, 60, "replies piled up in the node's memory")


class MessageLimitBuffered(MessageLimit):
    """The same on buffered nodes, whose gRPC thread answers a stream's requests itself."""

    LIMITS = MessageLimit.LIMITS + ("--durability=buffered",)

class Pipe(unittest.TestCase):
    """KV.Pipe: Get, Put and Delete on one long-lived stream, one at a time."""

    def setUp(self):
        self.c = Cluster(3).start()

    def tearDown(self):
        self.c.close()

    def open(self, node):
        """A pipe to node: ask(id, op=...) sends one request and returns its response."""
        kv_pb2 = stubs()[0]
        requests = queue.Queue()

        def send():  # the stream stays open until None
            while (r := requests.get()) is not None:
                yield r
        responses = node.kv().Pipe(send(), timeout=60)

        def ask(request_id, **op):
            requests.put(kv_pb2.PipeRequest(id=request_id, **op))
            response = next(responses)
            self.assertEqual(response.id, request_id)
            return response
        return ask, requests, responses

    def test_each_request_gets_its_answer_and_bad_ones_do_not_end_the_pipe(self):
        kv_pb2 = stubs()[0]
        n = self.c.nodes[0]
        ask, requests, responses = self.open(n)
        OK, INVALID = 0, grpc.StatusCode.INVALID_ARGUMENT.value[0]

        put = ask(1, put=kv_pb2.PutRequest(key=b"k", value=b"v1"))
        self.assertEqual((put.code, put.WhichOneof("result")), (OK, "put"), put.message)
        nothing = ask(2)
        self.assertEqual(nothing.code, INVALID)
        self.assertIn("one of get, put or delete", nothing.message)
        self.assertIsNone(nothing.WhichOneof("result"))
        empty = ask(3, put=kv_pb2.PutRequest(key=b"", value=b"v"))
        self.assertEqual(empty.code, INVALID)
        self.assertIn("key must not be empty", empty.message)
        quorum = ask(4, get=kv_pb2.GetRequest(key=b"k", quorum=kv_pb2.Quorum(n=7)))
        self.assertEqual(quorum.code, INVALID)
        self.assertIn("n=7", quorum.message)

        got = ask(5, get=kv_pb2.GetRequest(key=b"k"))
        self.assertEqual((got.code, got.WhichOneof("result")), (OK, "get"), got.message)
        self.assertEqual([s.value for s in got.get.siblings], [b"v1"])
        # One store: what the pipe wrote, a unary call on another node reads.
        self.assertEqual([s.value for s in self.c.nodes[1].get(b"k").siblings], [b"v1"])
        updated = ask(6, put=kv_pb2.PutRequest(key=b"k", value=b"v2", context=got.get.context))
        self.assertEqual(updated.code, OK, updated.message)
        self.assertEqual([s.value for s in self.c.nodes[2].get(b"k").siblings], [b"v2"])
        deleted = ask(7, delete=kv_pb2.DeleteRequest(key=b"k", context=updated.put.context))
        self.assertEqual((deleted.code, deleted.WhichOneof("result")), (OK, "delete"))
        self.assertFalse(ask(8, get=kv_pb2.GetRequest(key=b"k")).get.found)
        self.assertEqual(n.metric("dynamo_client_pipes"), 1)
        self.assertGreaterEqual(n.metric('dynamo_requests_total{op="put",code="OK"}'), 2)
        self.assertGreaterEqual(n.metric('dynamo_requests_total{op="put",code="INVALID_ARGUMENT"}'), 1)

        requests.put(None)  # the client closes: the stream ends, OK
        self.assertIsNone(next(responses, None))
        wait_until(lambda: n.metric("dynamo_client_pipes") == 0, 10, "the pipe to be counted closed")
        self.assertTrue(n.alive())

    def test_an_unreachable_quorum_is_the_requests_status_not_the_streams(self):
        kv_pb2 = stubs()[0]
        n0, n1, n2 = self.c.nodes
        ask, requests, _ = self.open(n0)
        self.assertEqual(ask(1, put=kv_pb2.PutRequest(key=b"k", value=b"v")).code, 0)
        n1.kill()
        n2.kill()
        UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
        put = ask(2, timeout_ms=3000, put=kv_pb2.PutRequest(key=b"k", value=b"v", quorum=kv_pb2.Quorum(w=2)))
        self.assertEqual(put.code, UNAVAILABLE)
        self.assertIn("quorum", put.message)
        # W=1 is still writable, on the same pipe.
        self.assertEqual(ask(3, put=kv_pb2.PutRequest(key=b"k", value=b"v", quorum=kv_pb2.Quorum(w=1))).code, 0)
        requests.put(None)


class Operations(unittest.TestCase):
    def test_metrics_health_and_graceful_shutdown(self):
        c = Cluster(3).start()
        n = c.nodes[0]
        for i in range(50):
            n.put(b"m%d" % i, b"v")
            n.get(b"m%d" % i)
        self.assertEqual(n.http("/healthz")[0], 200)
        self.assertEqual(n.http("/readyz")[0], 200)
        _, text = n.http("/metrics")
        for name in ("dynamo_request_duration_seconds_bucket", "dynamo_requests_total",
                     "dynamo_replica_request_duration_seconds_bucket", "dynamo_siblings_per_read",
                     "dynamo_members", "dynamo_gossip_rounds_total", "dynamo_ring_ownership_ratio"):
            self.assertIn(name, text)
        self.assertIn('le="0.3"', text)
        self.assertGreaterEqual(n.metric('dynamo_requests_total{op="put",code="OK"}'), 50)
        # Durable (the default): acknowledged puts waited for log syncs.
        self.assertGreaterEqual(n.metric("dynamo_storage_sync_duration_seconds_count"), 1)
        promtool = shutil.which("promtool")
        if promtool:
            r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                               capture_output=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # SIGTERM while clients keep sending: calls in flight finish, later ones
        # are refused with UNAVAILABLE (never cancelled), the process exits 0.
        errors = []

        def load(client):
            for i in range(100000):
                try:
                    n.put(b"s%d-%d" % (client, i), b"v", timeout=5)
                except grpc.RpcError as e:
                    if e.code() != grpc.StatusCode.UNAVAILABLE:
                        errors.append(e)
                    return
        def load_on_a_pipe():
            # A pipe's request after the drain began is refused with UNAVAILABLE,
            # and then the stream ends with it (or with the node's stop).
            kv_pb2 = stubs()[0]
            requests = queue.Queue()
            responses = n.kv().Pipe(iter(requests.get, None), timeout=60)
            try:
                for i in range(100000):
                    requests.put(kv_pb2.PipeRequest(
                        id=i, put=kv_pb2.PutRequest(key=b"p%d" % i, value=b"v")))
                    r = next(responses, None)
                    if r is None:
                        errors.append("the pipe ended without a refusal or an error")
                        return
                    if r.code == grpc.StatusCode.UNAVAILABLE.value[0]:
                        return
                    if r.code != 0:
                        errors.append(r)
                        return
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    errors.append(e)
            finally:
                requests.put(None)
        threads = [threading.Thread(target=load, args=(c,)) for c in range(4)]
        threads.append(threading.Thread(target=load_on_a_pipe))
        for t in threads:
            t.start()
        wait_until(lambda: n.metric('dynamo_requests_total{op="put",code="OK"}') >= 60, 10, "load")
        self.assertEqual(n.stop(), 0)
        for t in threads:
            t.join()
        self.assertEqual(errors, [], "in-flight requests must finish or be refused cleanly")
        c.close()


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
