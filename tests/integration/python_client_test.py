"""A Python client written only against stubs that Debian's python3-grpc-tools
generates from proto/: a third-party gRPC runtime stores and reads back a value
with siblings."""

import os
import subprocess
import sys
import tempfile
import unittest

import harness
from harness import Cluster


class PythonClient(unittest.TestCase):
    def test_generated_stubs_store_and_read_siblings(self):
        c = Cluster(3).start()
        out = tempfile.mkdtemp()
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", harness.ARGS.proto,
                        "--python_out", out, "--grpc_python_out", out,
                        "dynamo/v1/kv.proto", "dynamo/v1/versions.proto"], check=True)
        client = f"""
import grpc
from dynamo.v1 import kv_pb2, kv_pb2_grpc
kv = kv_pb2_grpc.KVStub(grpc.insecure_channel("{c.nodes[0].address}"))
kv.Put(kv_pb2.PutRequest(key=b"py", value=b"one"), timeout=10)
kv.Put(kv_pb2.PutRequest(key=b"py", value=b"two"), timeout=10)
got = kv.Get(kv_pb2.GetRequest(key=b"py"), timeout=10)
assert sorted(s.value for s in got.siblings) == [b"one", b"two"], got
kv.Put(kv_pb2.PutRequest(key=b"py", value=b"three", context=got.context), timeout=10)
got = kv.Get(kv_pb2.GetRequest(key=b"py"), timeout=10)
assert [s.value for s in got.siblings] == [b"three"], got
print("ok")
"""
        r = subprocess.run([sys.executable, "-c", client], capture_output=True,
                           env=dict(os.environ, PYTHONPATH=out), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout.strip(), b"ok")
        c.close()


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
