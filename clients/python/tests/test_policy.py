"""The retry rule and the defaults every Warren wrapper shares: read from the
repository's clients/retry-policy.json and clients/defaults.json, and
checked against what the wrappers do, code by code, against an in-process
fake server (no warrend needed). A change in those files that the Python
wrappers do not follow fails here."""

import collections
import json
import os
import threading
import unittest
from concurrent import futures

import grpc

from support import ROOT, Recorder, wait_until, warren
from warren_client import _defaults, retry_policy

POLICY_FILE = os.path.join(ROOT, "..", "retry-policy.json")
DEFAULTS_FILE = os.path.join(ROOT, "..", "defaults.json")

with open(POLICY_FILE) as f:
    POLICY = json.load(f)
with open(DEFAULTS_FILE) as f:
    DEFAULTS = json.load(f)

pb_msg, pb_cfg, pb_elect = warren.messaging_pb2, warren.config_pb2, warren.election_pb2
pb_lock = warren.lock_pb2
FAST = warren.Backoff(0.01, 0.02)
STREAM_METHODS = ("Subscribe", "WatchConfig", "Elect", "Lock", "HoldKey")


class _FakeWarren(
    warren.messaging_pb2_grpc.MessagingServiceServicer,
    warren.config_pb2_grpc.ConfigServiceServicer,
    warren.election_pb2_grpc.ElectionServiceServicer,
    warren.lock_pb2_grpc.LockServiceServicer,
):
    """The first call of each method ends with `code` (before any response;
    OK: a stream the server ends at once); later calls succeed, and streams
    answer once and stay open until the client ends them. Records the first
    request of every call."""

    def __init__(self, code):
        self.code = code
        self.break_held_locks = False  # end Lock streams after `acquired`
        self.calls = collections.Counter()
        self.requests = Recorder()
        self._lock = threading.Lock()

    def _fails(self, method, request, context):
        """Counts the call; True when it is the first (and then ends it)."""
        self.requests((method, request))
        with self._lock:
            self.calls[method] += 1
            first = self.calls[method] == 1
        if first and self.code != grpc.StatusCode.OK:
            context.abort(self.code, "injected by the test")
        return first

    def Publish(self, request, context):
        self._fails("Publish", request, context)  # OK: the first one succeeds
        return pb_msg.PublishResponse(message_id=request.message_id)

    def Subscribe(self, request_iterator, context):
        start = next(request_iterator)
        if self._fails("Subscribe", start, context):
            return
        yield pb_msg.SubscribeResponse(subscribed=pb_msg.Subscribed(queue=start.start.queue))
        for _ in request_iterator:  # until the client half-closes
            pass

    def WatchConfig(self, request, context):
        if self._fails("WatchConfig", request, context):
            return
        yield pb_cfg.WatchConfigResponse(initial_state=True)
        ended = threading.Event()
        if context.add_callback(ended.set):
            ended.wait()

    def Elect(self, request_iterator, context):
        campaign = next(request_iterator)
        if self._fails("Elect", campaign, context):
            return
        yield pb_elect.ElectResponse(following=pb_elect.Following())
        for _ in request_iterator:
            pass

    def Lock(self, request_iterator, context):
        acquire = next(request_iterator)
        if self._fails("Lock", acquire, context):
            return
        yield pb_lock.LockResponse(acquired=pb_lock.Acquired(
            holder=pb_lock.LockHolder(name=acquire.acquire.name, fencing_token=7),
            heartbeat_interval=acquire.acquire.heartbeat_interval))
        if self.break_held_locks:
            context.abort(grpc.StatusCode.UNAVAILABLE, "broken by the test")
        for _ in request_iterator:  # Release, then the half-close
            pass

    def HoldKey(self, request_iterator, context):
        hold = next(request_iterator)
        if self._fails("HoldKey", hold, context):
            return
        yield pb_cfg.HoldKeyResponse(held=pb_cfg.ConfigEntry(key=hold.key, held=True))
        for _ in request_iterator:
            pass

    def PutConfig(self, request, context):
        self._fails("PutConfig", request, context)
        return pb_cfg.PutConfigResponse(entry=pb_cfg.ConfigEntry(key=request.key))

    def DeleteConfig(self, request, context):
        self._fails("DeleteConfig", request, context)
        return pb_cfg.DeleteConfigResponse()

    def Txn(self, request, context):
        self._fails("Txn", request, context)
        return pb_cfg.TxnResponse()


class _FakeServer:
    def __init__(self, code):
        self.fake = _FakeWarren(code)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        warren.messaging_pb2_grpc.add_MessagingServiceServicer_to_server(self.fake, self.server)
        warren.config_pb2_grpc.add_ConfigServiceServicer_to_server(self.fake, self.server)
        warren.election_pb2_grpc.add_ElectionServiceServicer_to_server(self.fake, self.server)
        warren.lock_pb2_grpc.add_LockServiceServicer_to_server(self.fake, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = warren.channel("127.0.0.1:%d" % port)

    def close(self):
        self.channel.close()
        self.server.stop(None)


class _WaitForReady(grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Records (method, wait_for_ready) of every stream opened."""

    def __init__(self):
        self.calls = Recorder()

    def intercept_unary_stream(self, continuation, details, request):
        self.calls((details.method.rsplit("/", 1)[1], details.wait_for_ready))
        return continuation(details, request)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        self.calls((details.method.rsplit("/", 1)[1], details.wait_for_ready))
        return continuation(details, request_iterator)


class RetryPolicyFileTest(unittest.TestCase):
    def test_every_code_is_classified_as_the_file_says(self):
        self.assertEqual(set(POLICY["codes"]), {c.name for c in grpc.StatusCode})
        for name, row in POLICY["codes"].items():
            with self.subTest(code=name):
                code = grpc.StatusCode[name]
                self.assertEqual(code.value[0], row["number"])
                self.assertEqual(retry_policy.unary_decision(code), row["unary"])
                self.assertEqual(retry_policy.stream_decision(code), row["stream"])

    def test_backoff_is_the_files(self):
        backoff = POLICY["backoff"]
        expected = (backoff["initial_ms"] / 1000, backoff["max_ms"] / 1000, backoff["multiplier"])
        default = warren.Backoff()
        self.assertEqual((default.initial, default.maximum, default.multiplier), expected)
        channel = grpc.insecure_channel("127.0.0.1:1")  # never connected
        try:
            wrappers = {
                "Publisher": warren.Publisher(channel),
                "Subscriber": warren.Subscriber(channel, print, queue="q"),
                "ConfigWatcher": warren.ConfigWatcher(channel, "k"),
                "Elector": warren.Elector(channel, "e"),
                "Locker": warren.Locker(channel),
                "Registration": warren.Registration(channel, "k"),
            }
            for name, wrapper in wrappers.items():
                with self.subTest(wrapper=name):
                    b = wrapper._backoff
                    self.assertEqual((b.initial, b.maximum, b.multiplier), expected)
        finally:
            channel.close()
        # Equal jitter: delay n in [d/2, d] for d = min(max, initial * m**n).
        initial, maximum, multiplier = expected
        backoff = warren.Backoff()
        for n in range(10):
            planned = min(maximum, initial * multiplier**n)
            delay = backoff.next_delay()
            self.assertGreaterEqual(delay, planned / 2)
            self.assertLessEqual(delay, planned)

    def test_channel_caps_the_reconnect_backoff(self):
        channel = POLICY["channel"]
        options = dict(warren.CHANNEL_OPTIONS)
        self.assertEqual(options["grpc.initial_reconnect_backoff_ms"],
                         channel["initial_reconnect_backoff_ms"])
        self.assertEqual(options["grpc.max_reconnect_backoff_ms"],
                         channel["max_reconnect_backoff_ms"])
        self.assertEqual(retry_policy.STREAMS_WAIT_FOR_READY, channel["streams_wait_for_ready"])


class WrapperDecisionTest(unittest.TestCase):
    """For every code of the file: the wrappers retry / resubscribe, or stop
    with a FatalError, as its row says."""

    def test_publisher_follows_the_unary_column(self):
        for name, row in POLICY["codes"].items():
            code = grpc.StatusCode[name]
            server = _FakeServer(code)
            try:
                with self.subTest(code=name, expected=row["unary"]):
                    publisher = warren.Publisher(server.channel, backoff=FAST)
                    if row["unary"] == "fatal":
                        with self.assertRaises(warren.FatalError) as caught:
                            publisher.publish("q", b"x")
                        self.assertEqual(caught.exception.code, code)
                        self.assertEqual(server.fake.calls["Publish"], 1)
                    else:
                        self.assertEqual(publisher.publish("q", b"x", message_id="m"), "m")
                        attempts = 1 if row["unary"] == "done" else 2
                        self.assertEqual(server.fake.calls["Publish"], attempts)
            finally:
                server.close()

    def test_config_helpers_follow_the_unary_column_without_retrying(self):
        # put_config, delete_config and txn are never retried (a write whose
        # answer was lost cannot tell on a retry whether it was its own), so
        # the column decides only which error they raise.
        calls = {
            "PutConfig": lambda c: c.put_config("k", "v"),
            "DeleteConfig": lambda c: c.delete_config("k"),
            "Txn": lambda c: c.txn([], [warren.txn.put("k", "v")]),
        }
        for name, row in POLICY["codes"].items():
            code = grpc.StatusCode[name]
            server = _FakeServer(code)
            client = warren.connect(grpc_channel=server.channel)
            try:
                for method, call in calls.items():
                    with self.subTest(code=name, method=method, expected=row["unary"]):
                        if row["unary"] == "done":
                            call(client)
                        elif code == grpc.StatusCode.NOT_FOUND and method == "DeleteConfig":
                            self.assertFalse(call(client))  # nothing to delete
                        else:
                            expected = (warren.FatalError if row["unary"] == "fatal"
                                        else warren.TransientError)
                            with self.assertRaises(expected) as caught:
                                call(client)
                            self.assertEqual(caught.exception.code, code)
                        self.assertEqual(server.fake.calls[method], 1)
            finally:
                server.close()

    def test_stream_wrappers_follow_the_stream_column(self):
        for name, row in POLICY["codes"].items():
            code = grpc.StatusCode[name]
            server = _FakeServer(code)
            try:
                for wrapper in ("Subscriber", "ConfigWatcher", "Elector", "Registration",
                                "Locker"):
                    with self.subTest(code=name, wrapper=wrapper, expected=row["stream"]):
                        self._check_stream(server, wrapper, code, row["stream"])
            finally:
                server.close()

    def _check_locker(self, server, code, decision):
        # While waiting, a broken stream is opened again (within the
        # timeout: here none); a fatal code ends the acquire.
        locker = warren.Locker(server.channel, backoff=FAST)
        try:
            if decision == "fatal":
                with self.assertRaises(warren.FatalError) as caught:
                    locker.acquire("l")
                self.assertEqual(caught.exception.code, code)
                self.assertEqual(server.fake.calls["Lock"], 1)
            else:
                with locker.acquire("l") as lock:
                    self.assertEqual(lock.fencing_token, 7)
                    self.assertTrue(lock.held)
                self.assertEqual(server.fake.calls["Lock"], 2)
        finally:
            locker.close()

    def _check_stream(self, server, wrapper, code, decision):
        errors = Recorder()
        following = Recorder()
        if wrapper == "Locker":
            return self._check_locker(server, code, decision)
        if wrapper == "Registration":
            method = "HoldKey"
            w = warren.Registration(server.channel, "k", backoff=FAST, on_error=errors).start()
            wait, close = w.wait_held, w.close
        elif wrapper == "Subscriber":
            method = "Subscribe"
            w = warren.Subscriber(server.channel, print, queue="q", backoff=FAST,
                                  on_error=errors).start()
            wait, close = w.wait_subscribed, w.stop
        elif wrapper == "ConfigWatcher":
            method = "WatchConfig"
            w = warren.ConfigWatcher(server.channel, "k", backoff=FAST, on_error=errors).start()
            wait, close = w.wait_ready, w.close
        else:
            method = "Elect"
            w = warren.Elector(server.channel, "e", backoff=FAST, on_error=errors,
                               on_following=following).start()
            wait, close = w.wait_elected, w.close
        try:
            if decision == "fatal":
                with self.assertRaises(warren.FatalError) as caught:
                    wait(5)
                self.assertEqual(caught.exception.code, code)
                self.assertIs(w.error, caught.exception)
                self.assertEqual(errors.snapshot(), [caught.exception])
                self.assertEqual(server.fake.calls[method], 1)
            else:
                if wrapper == "Elector":
                    following.wait_for(lambda f: f == [None], 5)
                else:
                    self.assertTrue(wait(5))
                self.assertEqual(server.fake.calls[method], 2)
                self.assertIsNone(w.error)
        finally:
            close()


class ClosingTest(unittest.TestCase):
    """A stream the caller closed is never reopened; a channel closed under
    a wrapper stops it with ClosedError."""

    @staticmethod
    def _wrappers(channel, **kwargs):
        return {
            "Subscribe": lambda: warren.Subscriber(
                channel, print, queue="q", backoff=FAST, **kwargs),
            "WatchConfig": lambda: warren.ConfigWatcher(channel, "k", backoff=FAST, **kwargs),
            "Elect": lambda: warren.Elector(channel, "e", backoff=FAST, **kwargs),
            "HoldKey": lambda: warren.Registration(channel, "k", backoff=FAST, **kwargs),
        }

    @staticmethod
    def _close(wrapper):
        (wrapper.stop if isinstance(wrapper, warren.Subscriber) else wrapper.close)()

    def test_closed_by_the_caller_is_not_reopened(self):
        server = _FakeServer(grpc.StatusCode.OK)  # first stream ends, second stays
        try:
            for method, make in self._wrappers(server.channel).items():
                with self.subTest(method=method):
                    wrapper = make().start()
                    wait_until(lambda: server.fake.calls[method] == 2, 5)
                    self._close(wrapper)  # returns once its thread ended
                    self.assertEqual(server.fake.calls[method], 2)
                    self.assertIsNone(wrapper.error)
        finally:
            server.close()

    def test_channel_closed_under_a_wrapper_is_a_closed_error(self):
        for method in ("Subscribe", "WatchConfig", "Elect", "HoldKey"):
            server = _FakeServer(grpc.StatusCode.OK)
            try:
                with self.subTest(method=method):
                    reported = Recorder()
                    wrapper = self._wrappers(server.channel, on_error=reported)[method]()
                    wrapper.start()
                    wait_until(lambda: server.fake.calls[method] == 2, 5)
                    server.channel.close()
                    reported.wait_for(lambda r: len(r) == 1, 5)
                    self.assertIsInstance(wrapper.error, warren.ClosedError)
                    self.assertEqual(reported.snapshot(), [wrapper.error])
                    self._close(wrapper)
            finally:
                server.close()


class LockStreamTest(unittest.TestCase):
    """A Lock stream is opened again only while waiting: once held, a broken
    stream is a loss, never a silent re-acquire; a released lock's stream
    is not opened again."""

    def test_a_broken_stream_while_holding_is_lost_for_good(self):
        server = _FakeServer(grpc.StatusCode.OK)
        server.fake.calls["Lock"] = 1  # the first stream answers
        server.fake.break_held_locks = True
        lost = Recorder()
        try:
            locker = warren.Locker(server.channel, backoff=FAST)
            lock = locker.acquire("l", on_lost=lost)
            self.assertTrue(lock.lost.wait(5))
            self.assertEqual(lost.snapshot(), [warren.LostReason.STREAM_BROKEN])
            self.assertEqual(lock.lost_reason, warren.LostReason.STREAM_BROKEN)
            self.assertFalse(lock.held)
            lock.release()
            locker.close()
            self.assertEqual(server.fake.calls["Lock"], 2)  # one stream only
        finally:
            server.close()

    def test_a_released_lock_is_not_reopened_nor_lost(self):
        server = _FakeServer(grpc.StatusCode.OK)
        server.fake.calls["Lock"] = 1
        lost = Recorder()
        try:
            with warren.Locker(server.channel, backoff=FAST) as locker:
                lock = locker.acquire("l", on_lost=lost)
                lock.release()
                lock.release()  # idempotent
                self.assertFalse(lock.held)
            self.assertFalse(lock.lost.is_set())
            self.assertEqual(lost.snapshot(), [])
            self.assertEqual(server.fake.calls["Lock"], 2)
            requests = [r for m, r in server.fake.requests.snapshot() if m == "Lock"]
            self.assertEqual(len(requests), 1)
        finally:
            server.close()


class DefaultsFileTest(unittest.TestCase):
    """What the wrappers send when the caller chooses nothing is what
    clients/defaults.json says; and streams are opened wait-for-ready."""

    def test_requests_carry_the_defaults(self):
        self.assertEqual(_defaults.PUBLISH_MANDATORY, DEFAULTS["publisher"]["mandatory"])
        server = _FakeServer(grpc.StatusCode.OK)
        streams = _WaitForReady()
        channel = grpc.intercept_channel(server.channel, streams)
        try:
            warren.Publisher(channel).publish("q", b"x")
            sub = warren.Subscriber(channel, print, queue="q").start()
            watcher = warren.ConfigWatcher(channel, "k").start()
            elector = warren.Elector(channel, "e").start()
            registration = warren.Registration(channel, "k").start()
            # Each stream ends once (OK) and is opened again.
            wait_until(lambda: all(server.fake.calls[m] == 2 for m in STREAM_METHODS
                                   if m != "Lock"), 10)
            with warren.Locker(channel).acquire("l"):
                pass
            sub.stop()
            watcher.close()
            elector.close()
            registration.close()
        finally:
            server.close()
        first = {}
        for method, request in server.fake.requests.snapshot():
            first.setdefault(method, request)
        self.assertEqual(first["Publish"].mandatory, DEFAULTS["publisher"]["mandatory"])
        self.assertEqual(first["Subscribe"].start.max_in_flight,
                         DEFAULTS["subscriber"]["max_in_flight"])
        campaign = first["Elect"].campaign
        self.assertEqual(campaign.heartbeat_interval.ToMilliseconds(),
                         DEFAULTS["elector"]["heartbeat_interval_ms"])
        self.assertEqual(campaign.rejoin_after_expiry, DEFAULTS["elector"]["rejoin_after_expiry"])
        # Locks and held keys have the Elector's lease.
        self.assertEqual(first["Lock"].acquire.heartbeat_interval.ToMilliseconds(),
                         DEFAULTS["elector"]["heartbeat_interval_ms"])
        self.assertEqual(first["HoldKey"].heartbeat_interval.ToMilliseconds(),
                         DEFAULTS["elector"]["heartbeat_interval_ms"])
        opened = streams.calls.snapshot()
        self.assertEqual({m for m, _ in opened}, set(STREAM_METHODS))
        self.assertTrue(all(ready for _, ready in opened), opened)


if __name__ == "__main__":
    unittest.main()
