"""TLS between clients and nodes, mutual TLS between nodes, bearer tokens, and
a separate authenticated admin API."""

import os
import ssl
import subprocess
import time
import unittest

import grpc

import harness
from harness import Cluster, stubs, wait_until


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}", cwd=d)


def make_cert(d, ca, name):
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=d)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


class Security(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        kv_pb2, kv_pb2_grpc, admin_pb2, admin_pb2_grpc = stubs()
        cls.c = c = Cluster(3)
        d = cls.d = os.path.join(c.dir, "pki")
        os.makedirs(d)
        make_ca(d, "ca")
        make_ca(d, "rogue-ca")
        for n in c.nodes:
            make_cert(d, "ca", n.id)
        make_cert(d, "ca", "client")
        make_cert(d, "rogue-ca", "rogue")
        with open(os.path.join(d, "client.token"), "w") as f:
            f.write("s3cret-client\n")
        with open(os.path.join(d, "admin.token"), "w") as f:
            f.write("s3cret-admin\n")
        for n in c.nodes:
            n.admin_port = c.base_port + 50 + n.index
            n.start([f"--tls-cert={d}/{n.id}.pem", f"--tls-key={d}/{n.id}.key",
                     f"--tls-ca={d}/ca.pem", "--tls-reload-s=1",
                     f"--client-token-file={d}/client.token",
                     f"--admin-listen=127.0.0.1:{n.admin_port}",
                     f"--admin-token-file={d}/admin.token"])
        cls.creds = grpc.ssl_channel_credentials(root_certificates=read(d, "ca.pem"))
        cls.kv = lambda self, n, creds=None: kv_pb2_grpc.KVStub(
            grpc.secure_channel(n.address, creds or self.creds))

        def admin_status(n, token):
            stub = admin_pb2_grpc.AdminStub(
                grpc.secure_channel(f"127.0.0.1:{n.admin_port}", cls.creds))
            md = [("authorization", f"Bearer {token}")] if token else []
            return stub.Status(admin_pb2.StatusRequest(), metadata=md, timeout=5)
        cls.admin_status = staticmethod(admin_status)

        def all_normal():
            return all(admin_status(n, "s3cret-admin").state == admin_pb2.NODE_STATE_NORMAL
                       and admin_status(n, "s3cret-admin").ring_version ==
                       admin_status(c.nodes[0], "s3cret-admin").ring_version for n in c.nodes)
        try:
            wait_until(all_normal, 60, "a TLS cluster to form")
        except AssertionError:
            c.dump()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def put(self, n, key, token="s3cret-client", creds=None):
        kv_pb2 = stubs()[0]
        md = [("authorization", f"Bearer {token}")] if token else []
        return self.kv(n, creds).Put(kv_pb2.PutRequest(key=key, value=b"v"), metadata=md, timeout=5)

    def test_client_with_token_over_tls_is_served(self):
        self.put(self.c.nodes[0], b"ok")
        kv_pb2 = stubs()[0]
        got = self.kv(self.c.nodes[1]).Get(kv_pb2.GetRequest(key=b"ok"), timeout=5,
                                           metadata=[("authorization", "Bearer s3cret-client")])
        self.assertTrue(got.found)

    def test_client_without_valid_token_is_refused(self):
        for token in (None, "wrong"):
            with self.assertRaises(grpc.RpcError) as e:
                self.put(self.c.nodes[0], b"k", token=token)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

    def test_a_pipe_needs_the_token_too(self):
        kv_pb2 = stubs()[0]
        request = kv_pb2.PipeRequest(id=1, put=kv_pb2.PutRequest(key=b"piped", value=b"v"))
        for token in (None, "wrong"):
            md = [("authorization", f"Bearer {token}")] if token else []
            with self.assertRaises(grpc.RpcError) as e:
                list(self.kv(self.c.nodes[0]).Pipe(iter([request]), metadata=md, timeout=5))
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        answers = list(self.kv(self.c.nodes[0]).Pipe(
            iter([request]), metadata=[("authorization", "Bearer s3cret-client")], timeout=5))
        self.assertEqual([(a.id, a.code) for a in answers], [(1, 0)])

    def test_plaintext_client_is_refused(self):
        kv_pb2, kv_pb2_grpc, _, _ = stubs()
        stub = kv_pb2_grpc.KVStub(grpc.insecure_channel(self.c.nodes[0].address))
        with self.assertRaises(grpc.RpcError) as e:
            stub.Put(kv_pb2.PutRequest(key=b"k", value=b"v"), timeout=3,
                     metadata=[("authorization", "Bearer s3cret-client")])
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_replica_api_needs_a_certificate_from_the_cluster_ca(self):
        _, _, _, _ = stubs()
        from dynamo.v1 import replica_pb2, replica_pb2_grpc
        env = replica_pb2.Envelope(from_node="intruder", from_address="127.0.0.1:1",
                                   request_id=7, read=replica_pb2.ReplicaRead(keys=[b"ok"]))
        # A TLS client without a certificate: refused by the Replica service.
        stub = replica_pb2_grpc.ReplicaStub(grpc.secure_channel(self.c.nodes[0].address, self.creds))
        with self.assertRaises(grpc.RpcError) as e:
            stub.Call(env, timeout=5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        with self.assertRaises(grpc.RpcError) as e:
            stub.CallBatch(replica_pb2.EnvelopeBatch(envelopes=[env]), timeout=5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        with self.assertRaises(grpc.RpcError) as e:
            next(stub.Stream(iter([replica_pb2.EnvelopeBatch(envelopes=[env])]), timeout=5))
        self.assertEqual(e.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        # A certificate from another CA: the TLS handshake itself fails.
        rogue = grpc.ssl_channel_credentials(root_certificates=read(self.d, "ca.pem"),
                                             private_key=read(self.d, "rogue.key"),
                                             certificate_chain=read(self.d, "rogue.pem"))
        stub = replica_pb2_grpc.ReplicaStub(grpc.secure_channel(self.c.nodes[0].address, rogue))
        with self.assertRaises(grpc.RpcError) as e:
            stub.Call(env, timeout=5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        # A certificate from the cluster CA: served.
        good = grpc.ssl_channel_credentials(root_certificates=read(self.d, "ca.pem"),
                                            private_key=read(self.d, "client.key"),
                                            certificate_chain=read(self.d, "client.pem"))
        stub = replica_pb2_grpc.ReplicaStub(grpc.secure_channel(self.c.nodes[0].address, good))
        self.assertTrue(stub.Call(env, timeout=5).is_reply)

    def test_node_with_a_certificate_from_another_ca_cannot_join(self):
        _, _, admin_pb2, _ = stubs()
        rogue = self.c.add_node([f"--tls-cert={self.d}/rogue.pem", f"--tls-key={self.d}/rogue.key",
                                 f"--tls-ca={self.d}/rogue-ca.pem"])
        time.sleep(5)  # many gossip rounds
        members = self.admin_status(self.c.nodes[0], "s3cret-admin")
        for n in self.c.nodes[:3]:
            stub_members = stubs()[3].AdminStub(
                grpc.secure_channel(f"127.0.0.1:{n.admin_port}", self.creds)).Members(
                    admin_pb2.MembersRequest(), timeout=5,
                    metadata=[("authorization", "Bearer s3cret-admin")])
            self.assertNotIn(rogue.id, [m.node_id for m in stub_members.members])
        self.assertTrue(members.ready)
        rogue.kill()

    def test_admin_api_is_separate_and_needs_its_token(self):
        n = self.c.nodes[0]
        self.assertEqual(self.admin_status(n, "s3cret-admin").node_id, n.id)
        for token in (None, "s3cret-client"):
            with self.assertRaises(grpc.RpcError) as e:
                self.admin_status(n, token)
            self.assertEqual(e.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        _, _, admin_pb2, admin_pb2_grpc = stubs()
        on_main_port = admin_pb2_grpc.AdminStub(grpc.secure_channel(n.address, self.creds))
        with self.assertRaises(grpc.RpcError) as e:
            on_main_port.Status(admin_pb2.StatusRequest(), timeout=5,
                                metadata=[("authorization", "Bearer s3cret-admin")])
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)

    def test_certificates_are_reloaded_when_the_files_change(self):
        n = self.c.nodes[2]
        before = ssl.get_server_certificate(("127.0.0.1", n.port))
        make_cert(self.d, "ca", "renewed")
        for ext in ("pem", "key"):  # replace in place, as cert-manager does
            os.replace(os.path.join(self.d, f"renewed.{ext}"), os.path.join(self.d, f"{n.id}.{ext}"))
        wait_until(lambda: ssl.get_server_certificate(("127.0.0.1", n.port)) != before, 30,
                   "the node to serve its renewed certificate")
        self.put(n, b"after-renewal")


if __name__ == "__main__":
    unittest.main(argv=harness.parse_args())
