"""The clients of a chaos run and what they record.

Clients write unique values to a small set of keys: mostly read-modify-write
(the Put carries the context of the Get just before it, and the history notes
which values that Get returned), sometimes blind (no context), and sometimes
they delete what they read instead (the Delete carries the Get's context, so
its tombstone replaces exactly those values: they may be gone at the end,
whether or not the Delete was acknowledged), so that tombstones, their reaps
and the reaps owed across a coordinator's kill -9 run under every fault. Every write is
recorded before it is sent and marked acknowledged only when the Put returned
OK; a Put that failed or timed out may or may not have landed, and the checker
allows both. The history is JSON lines for dynamo-chaos-check (check_main.cc),
which runs the simulator's checker (tests/sim/history.cc) on it. With pipes
"on", each client thread sends its Gets and Puts on a KV.Pipe stream per node
(kept across operations, replaced once broken) instead of a unary call each;
"mixed", the even-numbered clients do and the others make calls.

Thread-safe: any number of client threads share one Recorder.
"""

import base64
import json
import queue
import random
import threading
import time

# How clients send: "on" KV.Pipe streams, "off" unary calls, "mixed" every
# other client on pipes (both paths under the same faults).
PIPE_MODES = ("off", "on", "mixed")
DEFAULT_PIPES = "mixed"


class Recorder:
    """The history file and the counters of the report."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "w")
        self.path = path
        self.counts = {"reads_tried": 0, "reads_ok": 0, "writes_tried": 0, "writes_acked": 0,
                       "writes_failed": 0, "blind_writes": 0, "reads_with_siblings": 0,
                       "max_siblings_read": 0, "deletes_tried": 0, "deletes_acked": 0}
        self.errors = {}  # gRPC status name -> count
        self.error_examples = {}  # gRPC status name -> the first few distinct details
        self.outcomes = []  # (monotonic-free wall time, acked?) of every write
        self.latencies_ms = []  # of acknowledged writes (Put only)
        self._lines = 0

    def _emit(self, record):
        self.file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._lines += 1
        if self._lines % 200 == 0:
            self.file.flush()

    def read(self, ok, siblings=0, error=None, detail=""):
        with self.lock:
            self.counts["reads_tried"] += 1
            if ok:
                self.counts["reads_ok"] += 1
                if siblings > 1:
                    self.counts["reads_with_siblings"] += 1
                self.counts["max_siblings_read"] = max(self.counts["max_siblings_read"], siblings)
            elif error:
                self.errors[error] = self.errors.get(error, 0) + 1
                self._example(error, detail)

    def write(self, key, value, seen, blind):
        with self.lock:
            self.counts["writes_tried"] += 1
            if blind:
                self.counts["blind_writes"] += 1
            self._emit({"op": "write", "key": key, "value": value, "seen": sorted(seen)})

    def delete(self, key, seen):
        with self.lock:
            self.counts["deletes_tried"] += 1
            self._emit({"op": "delete", "key": key, "seen": sorted(seen)})

    def delete_answered(self, ok, error=None, detail=""):
        with self.lock:
            if ok:
                self.counts["deletes_acked"] += 1
            elif error:
                self.errors[error] = self.errors.get(error, 0) + 1
                self._example(error, detail)

    def _example(self, error, detail):
        if detail:
            seen = self.error_examples.setdefault(error, [])
            if len(seen) < 3 and detail not in seen:
                seen.append(detail)

    def ack(self, value, latency_ms):
        with self.lock:
            self.outcomes.append((time.time(), True))
            self.counts["writes_acked"] += 1
            self.latencies_ms.append(latency_ms)
            self._emit({"op": "ack", "value": value})

    def failed(self, error, detail=""):
        with self.lock:
            self.outcomes.append((time.time(), False))
            self.counts["writes_failed"] += 1
            self.errors[error] = self.errors.get(error, 0) + 1
            self._example(error, detail)

    def window(self, start, end):
        """(acked, failed) writes that ended between start and end."""
        with self.lock:
            acked = sum(1 for t, ok in self.outcomes if start <= t <= end and ok)
            failed = sum(1 for t, ok in self.outcomes if start <= t <= end and not ok)
        return acked, failed

    def final(self, key, node, values, context):
        with self.lock:
            self._emit({"op": "final", "key": key, "node": node, "values": sorted(values),
                        "context": base64.b64encode(context).decode()})

    def snapshot(self):
        with self.lock:
            return dict(self.counts)

    def close(self):
        with self.lock:
            self.file.flush()
            self.file.close()


def error_detail(e):
    try:
        d = e.details() if callable(getattr(e, "details", None)) else str(e)
    except Exception:  # noqa: BLE001
        d = str(e)
    # Request-specific numbers would make every detail distinct.
    return "".join("#" if ch.isdigit() else ch for ch in (d or ""))[:160]


def error_name(e):
    code = getattr(e, "code", None)
    try:
        return code().name if callable(code) else type(e).__name__
    except Exception:  # noqa: BLE001
        return type(e).__name__


class PipeStatus(Exception):
    """A request's own status, answered on a pipe (the stream goes on)."""

    def __init__(self, answer):
        import grpc
        super().__init__(answer.message)
        self._code = next((c for c in grpc.StatusCode if c.value[0] == answer.code),
                          grpc.StatusCode.UNKNOWN)
        self._details = answer.message

    def code(self):
        return self._code

    def details(self):
        return self._details


class PipeTimeout(Exception):
    """No answer on the pipe within the request's timeout (the pipe is dropped)."""


class Pipe:
    """One KV.Pipe stream to a node, one request at a time, each with its own
    timeout: a reader thread hands the answers over."""

    def __init__(self, node):
        self.kv = node.cluster.stubs.kv
        self.requests = queue.Queue()
        self.answers = queue.Queue()
        self.next_id = 0
        self.responses = node.kv().Pipe(iter(self.requests.get, None))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for answer in self.responses:
                self.answers.put(answer)
            self.answers.put(EOFError("the node ended the pipe"))
        except Exception as e:  # noqa: BLE001 - the stream's own error, for the caller
            self.answers.put(e)

    def call(self, timeout, **op):
        """The answer's result; PipeStatus for a request's error; the stream's
        error, EOFError or PipeTimeout when the pipe is over."""
        self.next_id += 1
        self.requests.put(self.kv.PipeRequest(id=self.next_id, timeout_ms=int(timeout * 1000), **op))
        try:
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise PipeTimeout(f"no answer within {timeout} s") from None
        if isinstance(answer, Exception):
            raise answer
        if answer.id != self.next_id:
            raise EOFError(f"answer {answer.id} to request {self.next_id}")
        if answer.code != 0:
            raise PipeStatus(answer)
        return getattr(answer, answer.WhichOneof("result"))

    def close(self):
        self.requests.put(None)
        self.responses.cancel()


class Workload:
    """Client threads. Closed loop (think time between operations) or open
    loop (operations started at a fixed rate by a pacer, run by a pool)."""

    def __init__(self, cluster, recorder, seed, keys, clients, blind_fraction=0.1,
                 think_ms=(5, 40), rpc_timeout_s=4.0, tag="v", pipes=DEFAULT_PIPES,
                 delete_fraction=0.1):
        self.cluster = cluster
        self.rec = recorder
        self.seed = seed
        self.keys = [f"k{i}" for i in range(keys)]
        self.clients = clients
        self.blind_fraction = blind_fraction
        self.delete_fraction = delete_fraction
        self.think_ms = think_ms
        self.timeout = rpc_timeout_s
        self.tag = tag
        self.stop_event = threading.Event()
        self.threads = []
        self.tickets = None
        self.skipped = 0  # open loop: operations due that no client was free for
        self._seq = 0
        self._lock = threading.Lock()  # guards _seq and answered
        if pipes not in PIPE_MODES:
            raise ValueError(f"pipes must be off, on or mixed, not {pipes!r}")
        self.pipe_mode = pipes
        self.pipes = {}  # (client, node id): Pipe, each used by its client only
        self.answered = {"pipe": 0, "call": 0}  # successful requests by path

    def _uses_pipes(self, client):
        return self.pipe_mode == "on" or (self.pipe_mode == "mixed" and client % 2 == 0)

    def _get(self, client, node, key):
        if not self._uses_pipes(client):
            return self._answered("call", node.get(key, timeout=self.timeout))
        return self._on_pipe(client, node, get=self.cluster.stubs.kv.GetRequest(key=key))

    def _put(self, client, node, key, value, context):
        if not self._uses_pipes(client):
            return self._answered("call", node.put(key, value, context=context, timeout=self.timeout))
        return self._on_pipe(client, node, put=self.cluster.stubs.kv.PutRequest(
            key=key, value=value, context=context))

    def _delete(self, client, node, key, context):
        if not self._uses_pipes(client):
            return self._answered("call", node.delete(key, context, timeout=self.timeout))
        return self._on_pipe(client, node, delete=self.cluster.stubs.kv.DeleteRequest(
            key=key, context=context))

    def _answered(self, path, result):
        with self._lock:
            self.answered[path] += 1
        return result

    def paths_unanswered(self):
        """The paths this workload was to use that answered no request at all."""
        wanted = {"off": ["call"], "on": ["pipe"], "mixed": ["pipe", "call"]}[self.pipe_mode]
        if self.pipe_mode == "mixed" and self.clients < 2:
            wanted = ["pipe"]
        return [p for p in wanted if self.answered[p] == 0]

    def _on_pipe(self, client, node, **op):
        where = (client, node.id)
        pipe = self.pipes.get(where)
        if pipe is None:
            pipe = self.pipes[where] = Pipe(node)
        try:
            return self._answered("pipe", pipe.call(self.timeout, **op))
        except PipeStatus:
            raise
        except Exception:
            # The pipe is over (broken, ended, or silent past the timeout).
            del self.pipes[where]
            pipe.close()
            raise

    def _next_value(self, client):
        with self._lock:
            self._seq += 1
            return f"{self.tag}{client}-{self._seq}"

    def one(self, rng, client):
        """One operation: a read-modify-write, a read then delete, or a blind write."""
        nodes = self.cluster.nodes
        key = rng.choice(self.keys)
        context, seen, blind = b"", [], rng.random() < self.blind_fraction
        if not blind:
            at = rng.choice(nodes)
            try:
                got = self._get(client, at, key.encode())
            except Exception as e:  # noqa: BLE001 - any failure: no write this time
                self.rec.read(False, error=error_name(e), detail=error_detail(e))
                return
            seen = [s.value.decode() for s in got.siblings]
            context = got.context
            self.rec.read(True, len(seen))
            if rng.random() < self.delete_fraction:
                at = rng.choice(nodes)
                self.rec.delete(key, seen)
                try:
                    self._delete(client, at, key.encode(), context)
                except Exception as e:  # noqa: BLE001 - may or may not have landed
                    self.rec.delete_answered(False, error_name(e), error_detail(e))
                    return
                self.rec.delete_answered(True)
                return
        at = rng.choice(nodes)
        value = self._next_value(client)
        self.rec.write(key, value, seen, blind)
        start = time.monotonic()
        try:
            self._put(client, at, key.encode(), value.encode(), context)
        except Exception as e:  # noqa: BLE001 - not acknowledged: may or may not be there
            self.rec.failed(error_name(e), error_detail(e))
            return
        self.rec.ack(value, (time.monotonic() - start) * 1000.0)

    def _closed(self, client):
        rng = random.Random(self.seed * 1000 + client)
        while not self.stop_event.is_set():
            self.one(rng, client)
            if self.think_ms[1] > 0:
                self.stop_event.wait(rng.uniform(*self.think_ms) / 1000.0)

    def start_closed(self):
        for c in range(self.clients):
            t = threading.Thread(target=self._closed, args=(c,), name=f"client{c}", daemon=True)
            t.start()
            self.threads.append(t)

    def _worker(self, client):
        rng = random.Random(self.seed * 1000 + client)
        while not self.stop_event.is_set():
            try:
                self.tickets.get(timeout=0.2)
            except queue.Empty:
                continue
            self.one(rng, client)

    def _pacer(self, rate):
        interval = 1.0 / rate
        due = time.monotonic()
        while not self.stop_event.is_set():
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)
            try:
                self.tickets.put_nowait(1)
            except queue.Full:
                self.skipped += 1

    def start_open(self, rate):
        """rate operations per second, whatever the latency, with a backlog
        of at most one second of operations (the rest are counted skipped)."""
        self.tickets = queue.Queue(maxsize=max(1, int(rate)))
        for c in range(self.clients):
            t = threading.Thread(target=self._worker, args=(c,), name=f"worker{c}", daemon=True)
            t.start()
            self.threads.append(t)
        t = threading.Thread(target=self._pacer, args=(rate,), name="pacer", daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self, timeout=30):
        self.stop_event.set()
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.time()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        self.threads = []
        for pipe in list(self.pipes.values()):
            pipe.close()
        return stuck

    def written_keys(self):
        return list(self.keys)
