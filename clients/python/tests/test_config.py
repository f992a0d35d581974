"""ConfigWatcher against the live warrend, and across a restart of a warrend
of our own (re-watch + reconcile)."""

import unittest

import grpc

from support import ADDRESS, OwnServer, Recorder, unique, warren
from warren_client.config_watcher import DELETE, PUT


class StreamEnds(grpc.UnaryStreamClientInterceptor):
    """Records the status code every server-streaming call ended with."""

    def __init__(self):
        self.codes = Recorder()

    def intercept_unary_stream(self, continuation, details, request):
        call = continuation(details, request)
        call.add_callback(lambda: self.codes(call.code()))
        return call


class ConfigWatcherTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.base = unique("py-config")

    def tearDown(self):
        self.client.delete_config(self.base, recursive=True)  # False: nothing written
        self.client.close()

    def test_key_watch_sees_every_change(self):
        key = self.base + "/greeting"
        self.client.put_config(key, "hello")
        changes = Recorder()
        with self.client.config_watcher(key, on_change=lambda cs: [changes(c) for c in cs]) as w:
            self.assertTrue(w.wait_ready(10))
            self.assertEqual(w.value, b"hello")
            self.client.put_config(key, "bonjour")
            self.assertTrue(w.wait_for(lambda e: e.get(key) == b"bonjour", 10))
            self.client.config.DeleteConfig(warren.config_pb2.DeleteConfigRequest(key=key))
            self.assertTrue(w.wait_for(lambda e: key not in e, 10))
            self.assertIsNone(w.value)
        self.assertEqual(
            [(c.type, c.value) for c in changes.snapshot()],
            [(PUT, b"hello"), (PUT, b"bonjour"), (DELETE, b"bonjour")],
        )

    def test_prefix_watch_keeps_a_map_of_what_was_put(self):
        with self.client.config_watcher(self.base, prefix=True) as w:
            self.assertTrue(w.wait_ready(10))
            self.client.put_config(self.base + "/a", "1")
            self.client.put_config(self.base + "/deep/b", "2")
            self.assertTrue(w.wait_for(
                lambda e: e.get(self.base + "/a") == b"1" and e.get(self.base + "/deep/b") == b"2", 10))
            # The parents the puts created are namespace nodes, not keys.
            self.assertEqual(w.entries, {self.base + "/a": b"1", self.base + "/deep/b": b"2"})
            self.assertIsNone(self.client.get_config(self.base + "/deep", consistent=True))
            # A key with children that is deleted becomes a namespace node.
            self.client.put_config(self.base + "/deep", "3")
            self.assertTrue(w.wait_for(lambda e: e.get(self.base + "/deep") == b"3", 10))
            self.assertTrue(self.client.delete_config(self.base + "/deep"))
            self.assertTrue(w.wait_for(lambda e: self.base + "/deep" not in e, 10))
            self.assertEqual(self.client.get_config(self.base + "/deep/b", consistent=True), b"2")

    def test_invalid_key_stops_the_watcher(self):
        reported = Recorder()
        watcher = self.client.config_watcher("bad//key", on_error=reported)
        try:
            with self.assertRaises(warren.FatalError) as caught:
                watcher.wait_ready(10)
            self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIs(watcher.error, caught.exception)
            self.assertEqual(reported.snapshot(), [caught.exception])
        finally:
            watcher.close()

    def test_watch_limit_is_waited_out(self):
        # At the server's max_watches_per_client a WatchConfig stream ends with
        # RESOURCE_EXHAUSTED: retried with backoff, so the second watcher
        # watches as soon as the first one frees the slot.
        key = self.base + "/limited"
        self.client.put_config(key, "v1")
        with OwnServer(extra_flags=["--max_watches_per_client=1"]) as server:
            own = warren.connect(server.address)
            try:
                first = own.config_watcher(key)
                self.assertTrue(first.wait_ready(10))
                ends = StreamEnds()
                second = warren.ConfigWatcher(
                    grpc.intercept_channel(own.channel, ends), key,
                    backoff=warren.Backoff(0.05, 0.2)).start()
                try:
                    ends.codes.wait_for(lambda c: len(c) >= 3, 10)
                    self.assertEqual(set(ends.codes.snapshot()),
                                     {grpc.StatusCode.RESOURCE_EXHAUSTED})
                    self.assertIsNone(second.error)
                    self.assertIsNone(second.value)
                    first.close()
                    self.assertTrue(second.wait_ready(5))
                    self.assertEqual(second.value, b"v1")
                finally:
                    second.close()
            finally:
                own.close()

    def test_rewatch_after_restart_reconciles(self):
        keys = {n: "%s/%s" % (self.base, n) for n in ("same", "changed", "gone", "new")}
        for name in ("same", "changed", "gone"):
            self.client.put_config(keys[name], "v1")
        with OwnServer() as server:
            own = warren.connect(server.address)
            changes = Recorder()
            watcher = own.config_watcher(
                self.base, prefix=True, on_change=changes,
                backoff=warren.Backoff(0.05, 0.5))
            self.assertTrue(watcher.wait_for(lambda e: len(e) >= 3, 10))
            before = len(changes.snapshot())
            server.stop()
            # Changed while the watcher's server is down, through the other.
            self.client.put_config(keys["changed"], "v2")
            self.client.config.DeleteConfig(
                warren.config_pb2.DeleteConfigRequest(key=keys["gone"]))
            self.client.put_config(keys["new"], "v1")
            server.start()  # same port
            changes.wait_for(lambda c: len(c) > before, 30)
            self.assertEqual(watcher.watches, 2)
            reconciled = {(c.type, c.key, c.value) for c in changes.snapshot()[before]}
            self.assertEqual(reconciled, {
                (PUT, keys["changed"], b"v2"),
                (DELETE, keys["gone"], b"v1"),
                (PUT, keys["new"], b"v1"),
            })
            # The parent the puts created is a namespace node, not a key.
            self.assertEqual(watcher.entries, {
                keys["same"]: b"v1", keys["changed"]: b"v2", keys["new"]: b"v1"})
            watcher.close()
            own.close()


if __name__ == "__main__":
    unittest.main()
