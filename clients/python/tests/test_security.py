"""TLS, client certificates and bearer tokens: against the TLS + auth
warrends of `scripts/with-warrend.sh --secure` (WARREN_TEST_TLS_ADDRESS with
optional, WARREN_TEST_MTLS_ADDRESS with required client certificates), and
the plaintext token interceptor against an in-process server."""

import os
import unittest
from concurrent import futures

import grpc

from support import Recorder, unique, warren

TLS_ADDRESS = os.environ.get("WARREN_TEST_TLS_ADDRESS")
MTLS_ADDRESS = os.environ.get("WARREN_TEST_MTLS_ADDRESS")
CA = os.environ.get("WARREN_TEST_TLS_CA")
CERT = os.environ.get("WARREN_TEST_TLS_CERT")
KEY = os.environ.get("WARREN_TEST_TLS_KEY")
TOKEN = os.environ.get("WARREN_TEST_TOKEN")


def get(client, key, timeout=10):
    return client.config.GetConfig(warren.config_pb2.GetConfigRequest(key=key), timeout=timeout)


@unittest.skipUnless(TLS_ADDRESS and MTLS_ADDRESS, "needs scripts/with-warrend.sh --secure")
class SecureWarrendTest(unittest.TestCase):
    def setUp(self):
        self.key = unique("py-secure") + "/k"
        self.clients = []

    def connect(self, address, **kwargs):
        client = warren.connect(address, **kwargs)
        self.clients.append(client)
        return client

    def tearDown(self):
        for client in self.clients:
            client.close()

    def assertCode(self, code, call):
        with self.assertRaises(grpc.RpcError) as raised:
            call()
        self.assertEqual(raised.exception.code(), code, raised.exception.details())
        return raised.exception

    def test_ca_and_token_succeed(self):
        client = self.connect(TLS_ADDRESS, ca_file=CA, token=TOKEN)
        client.put_config(self.key, "over tls")
        self.assertEqual(client.get_config(self.key), b"over tls")

    def test_missing_or_wrong_token_is_unauthenticated(self):
        error = self.assertCode(
            grpc.StatusCode.UNAUTHENTICATED, lambda: get(self.connect(TLS_ADDRESS, ca_file=CA), self.key))
        self.assertIn("missing bearer token", error.details())
        self.assertCode(
            grpc.StatusCode.UNAUTHENTICATED,
            lambda: get(self.connect(TLS_ADDRESS, ca_file=CA, token="wrong-token-000000000000"), self.key))

    def test_client_certificate_is_required_by_mtls(self):
        without = self.connect(MTLS_ADDRESS, ca_file=CA, token=TOKEN)
        self.assertCode(grpc.StatusCode.UNAVAILABLE, lambda: get(without, self.key))
        # The certificate alone authenticates (principal CN=warren-test-client).
        with_cert = self.connect(MTLS_ADDRESS, ca_file=CA, cert_file=CERT, key_file=KEY)
        with_cert.put_config(self.key, "mutual")
        self.assertEqual(with_cert.get_config(self.key), b"mutual")

    def test_the_servers_certificate_is_verified(self):
        # Not signed by the system's CAs; not issued to another name.
        self.assertCode(grpc.StatusCode.UNAVAILABLE,
                        lambda: get(self.connect(TLS_ADDRESS, tls=True, token=TOKEN), self.key))
        self.assertCode(grpc.StatusCode.UNAVAILABLE, lambda: get(
            self.connect(TLS_ADDRESS, ca_file=CA, server_name="other.example", token=TOKEN), self.key))
        # The certificate names localhost too.
        client = self.connect(TLS_ADDRESS, ca_file=CA, server_name="localhost", token=TOKEN)
        self.assertCode(grpc.StatusCode.NOT_FOUND, lambda: get(client, self.key))

    def test_watch_stream_carries_the_token(self):
        client = self.connect(TLS_ADDRESS, ca_file=CA, token=TOKEN)
        client.put_config(self.key, "one")
        changes = Recorder()
        with client.config_watcher(self.key, on_change=lambda cs: [changes(c) for c in cs]) as w:
            self.assertTrue(w.wait_ready(10))
            client.put_config(self.key, "two")
            self.assertTrue(w.wait_for(lambda e: e.get(self.key) == b"two", 10))
        self.assertEqual([c.value for c in changes.snapshot()], [b"one", b"two"])

    def test_from_env_reads_the_cpp_client_names(self):
        env = {"WARREN_ADDRESS": TLS_ADDRESS, "WARREN_TLS_CA": CA, "WARREN_TOKEN": TOKEN}
        client = warren.connect_from_env(env)
        self.clients.append(client)
        client.put_config(self.key, "env")
        self.assertEqual(client.get_config(self.key), b"env")
        env = {"WARREN_ADDRESS": MTLS_ADDRESS, "WARREN_TLS_CA": CA,
               "WARREN_TLS_CERT": CERT, "WARREN_TLS_KEY": KEY}
        channel = warren.channel_from_env(env)
        try:
            stub = warren.config_pb2_grpc.ConfigServiceStub(channel)
            reply = stub.GetConfig(warren.config_pb2.GetConfigRequest(key=self.key), timeout=10)
            self.assertEqual(reply.entry.value, b"env")
        finally:
            channel.close()


class _EchoAuthorization(warren.config_pb2_grpc.ConfigServiceServicer):
    """Answers with the authorization metadata the call carried."""

    @staticmethod
    def _authorization(context):
        return dict(context.invocation_metadata()).get("authorization", "").encode()

    def GetConfig(self, request, context):
        return warren.config_pb2.GetConfigResponse(
            entry=warren.config_pb2.ConfigEntry(key=request.key, value=self._authorization(context)))

    def WatchConfig(self, request, context):
        yield warren.config_pb2.WatchConfigResponse(
            initial_state=True,
            events=[warren.config_pb2.ConfigEvent(
                entry=warren.config_pb2.ConfigEntry(key=request.key, value=self._authorization(context)))])


class PlaintextTokenTest(unittest.TestCase):
    """Over plaintext gRPC drops call credentials: the interceptor must add
    the token to unary calls and streams alike."""

    def setUp(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        warren.config_pb2_grpc.add_ConfigServiceServicer_to_server(_EchoAuthorization(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def tearDown(self):
        self.server.stop(None)

    def test_unary_and_stream_carry_the_token(self):
        with warren.connect("127.0.0.1:%d" % self.port, token="t0ken-for-the-interceptor") as client:
            self.assertEqual(client.get_config("k"), b"Bearer t0ken-for-the-interceptor")
            stream = client.config.WatchConfig(warren.config_pb2.WatchConfigRequest(key="k"), timeout=10)
            first = next(iter(stream))
            self.assertEqual(first.events[0].entry.value, b"Bearer t0ken-for-the-interceptor")
            stream.cancel()

    def test_no_token_no_header(self):
        with warren.connect("127.0.0.1:%d" % self.port) as client:
            self.assertEqual(client.get_config("k"), b"")

    def test_certificate_without_key_is_refused(self):
        with self.assertRaisesRegex(ValueError, "certificate and key go together"):
            warren.channel("127.0.0.1:1", cert_file="client.crt")


if __name__ == "__main__":
    unittest.main()
