"""Registration (HoldKey) against the live warrend, and across a restart of
a warrend of our own (held again after the broken stream)."""

import unittest

import grpc

from support import ADDRESS, OwnServer, Recorder, unique, wait_until, warren


class RegistrationTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.base = unique("py-reg")
        self.key = self.base + "/api/node-1"

    def tearDown(self):
        self.client.delete_config(self.base, recursive=True)
        self.client.close()

    def listed(self):
        response = self.client.config.ListConfig(
            warren.config_pb2.ListConfigRequest(prefix=self.base))
        return {e.key: (e.value, e.held) for e in response.entries}

    def test_held_while_open_visible_to_readers_and_gone_after_close(self):
        held = Recorder()
        with self.client.config_watcher(self.base, prefix=True) as watcher:
            self.assertTrue(watcher.wait_ready(10))
            with self.client.hold_key(self.key, "10.0.0.1:80",
                                      on_held=lambda e: held((e.value, e.held))) as reg:
                self.assertTrue(reg.wait_held(10))
                self.assertTrue(reg.entry.held)
                self.assertEqual(self.client.get_config(self.key, consistent=True),
                                 b"10.0.0.1:80")
                self.assertEqual(self.listed(), {self.key: (b"10.0.0.1:80", True)})
                self.assertTrue(watcher.wait_for(
                    lambda e: e.get(self.key) == b"10.0.0.1:80", 10))

                reg.set_value("10.0.0.2:80")
                held.wait_for(lambda h: (b"10.0.0.2:80", True) in h, 10)
                self.assertEqual(reg.value, b"10.0.0.2:80")
                self.assertTrue(watcher.wait_for(
                    lambda e: e.get(self.key) == b"10.0.0.2:80", 10))
            # Deleted at once when the stream ends, not a session timeout later.
            self.assertIsNone(self.client.get_config(self.key, consistent=True))
            self.assertTrue(watcher.wait_for(lambda e: self.key not in e, 10))
        self.assertEqual(held.snapshot(), [(b"10.0.0.1:80", True), (b"10.0.0.2:80", True)])
        self.assertFalse(reg.held)

    def test_a_key_that_exists_is_refused(self):
        self.client.put_config(self.key, "persistent")
        reported = Recorder()
        reg = self.client.hold_key(self.key, "mine", on_error=reported)
        try:
            with self.assertRaises(warren.FatalError) as caught:
                reg.wait_held(10)
            self.assertEqual(caught.exception.code, grpc.StatusCode.ALREADY_EXISTS)
            self.assertEqual(reported.snapshot(), [caught.exception])
        finally:
            reg.close()
        self.assertEqual(self.client.get_config(self.key), b"persistent")
        # Held by another registration: the same.
        self.client.delete_config(self.key)
        with self.client.hold_key(self.key, "first") as first:
            self.assertTrue(first.wait_held(10))
            second = self.client.hold_key(self.key, "second")
            try:
                with self.assertRaises(warren.FatalError) as caught:
                    second.wait_held(10)
                self.assertEqual(caught.exception.code, grpc.StatusCode.ALREADY_EXISTS)
            finally:
                second.close()
            self.assertTrue(first.held)
            self.assertEqual(self.client.get_config(self.key, consistent=True), b"first")


class RegistrationFaultTest(unittest.TestCase):
    def test_held_again_after_the_stream_broke(self):
        base = unique("py-reg-restart")
        key = base + "/node"
        main = warren.connect(ADDRESS)
        with OwnServer() as server:
            own = warren.connect(server.address)
            lost = Recorder()
            reg = own.hold_key(key, "here", on_lost=lost, backoff=warren.Backoff(0.05, 0.5))
            try:
                self.assertTrue(reg.wait_held(10))
                self.assertEqual(reg.holds, 1)
                server.stop()  # SIGTERM: the stream breaks; warrend's session closes
                lost.wait_for(lambda l: l == [warren.LostReason.STREAM_BROKEN], 10)
                self.assertFalse(reg.held)
                # Its key went with the session of the warrend that held it.
                wait_until(lambda: main.get_config(key, consistent=True) is None, 10)
                server.start()  # the same port
                wait_until(lambda: reg.holds == 2, 15, message="not held again")
                self.assertTrue(reg.held)
                self.assertIsNone(reg.error)
                self.assertEqual(main.get_config(key, consistent=True), b"here")
            finally:
                reg.close()
                own.close()
        self.assertIsNone(main.get_config(key, consistent=True))
        main.delete_config(base, recursive=True)
        main.close()

    def test_gone_when_its_warrend_crashes_and_held_again_once_it_is_back(self):
        # kill -9: nobody deletes the key; it goes with warrend's ZooKeeper
        # session (4 s here). Back after that, the registration holds it again.
        base = unique("py-reg-crash")
        key = base + "/node"
        main = warren.connect(ADDRESS)
        server = OwnServer().start()
        own = warren.connect(server.address)
        lost = Recorder()
        reg = own.hold_key(key, "here", on_lost=lost, backoff=warren.Backoff(0.05, 0.5))
        try:
            self.assertTrue(reg.wait_held(10))
            server.kill()
            lost.wait_for(lambda l: l == [warren.LostReason.STREAM_BROKEN], 10)
            wait_until(lambda: main.get_config(key, consistent=True) is None, 15,
                       message="the key outlived its warrend's session")
            server.start()  # the same port
            wait_until(lambda: reg.holds == 2, 15, message="not held again")
            self.assertIsNone(reg.error)
            self.assertEqual(main.get_config(key, consistent=True), b"here")
        finally:
            reg.close()
            own.close()
            server.stop()
        self.assertIsNone(main.get_config(key, consistent=True))
        main.delete_config(base, recursive=True)
        main.close()


if __name__ == "__main__":
    unittest.main()
