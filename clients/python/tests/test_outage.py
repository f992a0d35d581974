"""Reconnect after a long outage: a warrend of our own is killed (SIGKILL),
stays down WARREN_OUTAGE_SECONDS (default 40), comes back on the same port,
and every wrapper on a channel to it must work again within 5 s of its
return. (gRPC's own reconnect backoff grows to 120 s unless capped; the
wrappers' channel caps it at 2 s and their streams wait for the channel.)"""

import os
import sys
import threading
import time
import unittest

from support import ADDRESS, OwnServer, unique, warren

OUTAGE_SECONDS = float(os.environ.get("WARREN_OUTAGE_SECONDS", "40"))
RECOVERY_SECONDS = 5.0


class _FirstTime:
    """The monotonic time `predicate(value)` first held for a callback's value."""

    def __init__(self):
        self._lock = threading.Condition()
        self.at = None
        self.predicate = lambda value: False

    def __call__(self, value):
        with self._lock:
            if self.at is None and self.predicate(value):
                self.at = time.monotonic()
                self._lock.notify_all()

    def wait(self, deadline):
        with self._lock:
            while self.at is None and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return self.at


class OutageTest(unittest.TestCase):
    def test_every_wrapper_is_back_within_5s_of_the_servers_return(self):
        base = unique("py-outage")
        queue, key = base, base + "/setting"
        main = warren.connect(ADDRESS)  # stays up: writes from outside
        server = OwnServer().start()
        own = warren.connect(server.address)
        wrappers = []
        try:
            received, changed, elected = _FirstTime(), _FirstTime(), _FirstTime()
            received.predicate = lambda payload: payload == b"before"
            changed.predicate = lambda value: value == b"before"
            elected.predicate = lambda token: True
            sub = own.subscriber(lambda d: received(d.payload), queue=queue)
            wrappers.append(sub.stop)
            watcher = own.config_watcher(
                key, on_change=lambda cs: [changed(c.value) for c in cs])
            wrappers.append(watcher.close)
            elector = own.elector(base, on_elected=lambda l: elected(l.fencing_token))
            wrappers.append(elector.close)
            publisher = own.publisher()

            # All four work before the outage.
            deadline = time.monotonic() + 15
            self.assertTrue(sub.wait_subscribed(15))
            publisher.publish(queue, b"before")
            main.put_config(key, "before")
            self.assertIsNotNone(received.wait(deadline), "subscriber: no message before")
            self.assertIsNotNone(changed.wait(deadline), "watcher: no change before")
            self.assertIsNotNone(elected.wait(deadline), "elector: not elected before")

            server.kill()
            for first in (received, changed, elected):
                first.at = None
            received.predicate = lambda payload: payload == b"after"
            changed.predicate = lambda value: value == b"after"
            time.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for a condition
            self.assertFalse(elector.is_leader)

            server.start()  # the same port; returns once it serves
            back = time.monotonic()
            published = _FirstTime()
            published.predicate = lambda ok: ok
            errors = []

            def publish_after():
                try:
                    publisher.publish(queue, b"after-own", timeout=RECOVERY_SECONDS)
                    published(True)
                except warren.WarrenError as error:
                    errors.append(error)

            publishing = threading.Thread(target=publish_after)
            publishing.start()
            main.publisher().publish(queue, b"after")
            main.put_config(key, "after")

            deadline = back + RECOVERY_SECONDS
            times = {name: first.wait(deadline) for name, first in (
                ("subscriber", received), ("config watcher", changed),
                ("elector", elected), ("publisher", published))}
            publishing.join(RECOVERY_SECONDS + 1)
            sys.stderr.write("\n  recovery after a %.0f s outage: %s\n" % (OUTAGE_SECONDS, ", ".join(
                "%s %s" % (name, "%.2f s" % (at - back) if at else "NOT BACK")
                for name, at in times.items())))
            self.assertEqual(errors, [])
            late = [name for name, at in times.items() if at is None]
            self.assertEqual(late, [], "not back within %.0f s of the server's return"
                             % RECOVERY_SECONDS)
        finally:
            for close in reversed(wrappers):
                close()
            own.close()
            server.stop()
            try:
                main.config.DeleteConfig(
                    warren.config_pb2.DeleteConfigRequest(key=base, recursive=True))
            finally:
                main.close()


if __name__ == "__main__":
    unittest.main()
