"""Publisher and Subscriber against the live warrend ($WARREN_ADDRESS), plus a
restart of a warrend of the test's own."""

import threading
import time
import unittest

import grpc

from support import ADDRESS, OwnServer, Recorder, unique, wait_until, warren


class _Failure(grpc.RpcError):
    """What an intercepted call returns to fail without reaching the server."""

    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code

    def details(self):
        return "injected by the test"

    def result(self, timeout=None):
        raise self


class AttemptLog(grpc.UnaryUnaryClientInterceptor):
    """Records (message_id, outcome code) of every Publish attempt; fails the
    first `fail` attempts with `code` without sending them."""

    def __init__(self, fail=0, code=grpc.StatusCode.UNAVAILABLE):
        self.fail = fail
        self.code = code
        self.attempts = Recorder()

    def intercept_unary_unary(self, continuation, details, request):
        if self.fail > 0:
            self.fail -= 1
            self.attempts((request.message_id, self.code))
            return _Failure(self.code)
        outcome = continuation(details, request)
        error = outcome.exception() if hasattr(outcome, "exception") else None
        self.attempts((request.message_id, error.code() if error else grpc.StatusCode.OK))
        return outcome


def collect(received, lock=None):
    lock = lock or threading.Lock()

    def handle(delivery):
        with lock:
            received.append(delivery)

    return handle


class PublisherTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.queue = unique("py-pub")

    def tearDown(self):
        self.client.close()

    def test_retry_keeps_the_message_id(self):
        received = []
        with self.client.subscriber(collect(received), queue=self.queue) as sub:
            sub.wait_subscribed(10)
            log = AttemptLog(fail=2, code=grpc.StatusCode.UNAVAILABLE)
            channel = grpc.intercept_channel(self.client.channel, log)
            publisher = warren.Publisher(channel, backoff=warren.Backoff(0.01, 0.05))
            message_id = publisher.publish(self.queue, b"retried")
            attempts = log.attempts.snapshot()
            self.assertEqual(
                [code for _, code in attempts],
                [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK],
            )
            self.assertEqual({mid for mid, _ in attempts}, {message_id})
            wait_until(lambda: len(received) == 1)
            self.assertEqual(received[0].message_id, message_id)
            self.assertEqual(received[0].payload, b"retried")

    def test_deadline_exceeded_is_retried_too(self):
        log = AttemptLog(fail=1, code=grpc.StatusCode.DEADLINE_EXCEEDED)
        channel = grpc.intercept_channel(self.client.channel, log)
        publisher = warren.Publisher(channel, backoff=warren.Backoff(0.01, 0.05))
        # No queue takes it: not mandatory, so the broker drops it quietly.
        message_id = publisher.publish(
            self.queue, b"x", message_id="fixed-id-1", mandatory=False)
        self.assertEqual(message_id, "fixed-id-1")
        self.assertEqual([mid for mid, _ in log.attempts.snapshot()], ["fixed-id-1"] * 2)

    def test_fatal_errors_surface_at_once(self):
        log = AttemptLog()
        publisher = warren.Publisher(grpc.intercept_channel(self.client.channel, log))
        with self.assertRaises(warren.FatalError) as caught:
            publisher.publish("k", b"x", exchange=unique("py-missing-exchange"))
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(len(log.attempts.snapshot()), 1)

    def test_unroutable_message_is_an_error_unless_not_mandatory(self):
        publisher = self.client.publisher()
        with self.assertRaises(warren.FatalError) as caught:
            publisher.publish(self.queue, b"nobody listens")  # no such queue
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertTrue(publisher.publish(self.queue, b"dropped", mandatory=False))

    def test_closed_publisher_raises_closed_error(self):
        publisher = warren.Publisher(
            grpc.intercept_channel(self.client.channel, AttemptLog(fail=1000)),
            backoff=warren.Backoff(0.5, 0.5))
        closer = threading.Timer(0.1, publisher.close)
        closer.start()
        with self.assertRaises(warren.ClosedError):
            publisher.publish(self.queue, b"x")  # retrying when closed
        with self.assertRaises(warren.ClosedError):
            publisher.publish(self.queue, b"y")  # after close()

    def test_retries_end_at_the_overall_timeout(self):
        log = AttemptLog(fail=1000)
        publisher = warren.Publisher(
            grpc.intercept_channel(self.client.channel, log),
            timeout=0.5,
            backoff=warren.Backoff(0.05, 0.1),
        )
        started = time.monotonic()
        with self.assertRaises(warren.TransientError) as caught:
            publisher.publish(self.queue, b"x")
        self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertGreater(len(log.attempts.snapshot()), 2)
        self.assertEqual(caught.exception.attempts, len(log.attempts.snapshot()))


class SubscriberTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.queue = unique("py-sub")
        self.publisher = self.client.publisher()

    def tearDown(self):
        self.client.close()

    def test_receives_what_was_sent_with_bounded_concurrency(self):
        lock = threading.Lock()
        running, peak, received = [0], [0], []

        def handle(delivery):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.01)  # simulated work, so that handlers overlap
            with lock:
                running[0] -= 1
                received.append((delivery.message_id, delivery.payload, dict(delivery.headers)))

        with self.client.subscriber(handle, queue=self.queue, max_in_flight=4) as sub:
            sub.wait_subscribed(10)
            self.assertEqual(sub.queue_name, self.queue)
            sent = []
            for i in range(60):
                payload = ("message %d" % i).encode()
                mid = self.publisher.publish(self.queue, payload, headers={"n": str(i)})
                sent.append((mid, payload, {"n": str(i)}))
            wait_until(lambda: len(received) >= len(sent), 20)
        self.assertEqual(sorted(received), sorted(sent))
        self.assertLessEqual(peak[0], 4)
        self.assertGreater(peak[0], 1)

    def test_raising_nacks_with_requeue_and_reject_drops(self):
        seen = Recorder()

        def handle(delivery):
            seen((delivery.payload, delivery.redelivered))
            if delivery.payload == b"fail-once" and not delivery.redelivered:
                raise RuntimeError("first attempt fails")
            if delivery.payload == b"poison":
                raise warren.Reject()

        with self.client.subscriber(handle, queue=self.queue, max_in_flight=1) as sub:
            sub.wait_subscribed(10)
            for payload in (b"fail-once", b"poison", b"marker"):
                self.publisher.publish(self.queue, payload)
            seen.wait_for(lambda s: (b"fail-once", True) in s and (b"marker", False) in s)
            # max_in_flight=1 and a FIFO queue: once the marker and the
            # redelivery were handled, a requeued poison would have come too.
            self.publisher.publish(self.queue, b"marker2")
            seen.wait_for(lambda s: (b"marker2", False) in s)
        items = seen.snapshot()
        self.assertEqual(items.count((b"fail-once", False)), 1)
        self.assertEqual(items.count((b"fail-once", True)), 1)
        self.assertEqual([p for p, _ in items].count(b"poison"), 1)

    def test_stop_waits_for_handlers_and_acks_them(self):
        started, finished = Recorder(), Recorder()
        release = threading.Event()

        def slow(delivery):
            started(delivery.payload)
            release.wait(10)
            finished(delivery.payload)

        # Subscribing declares the queue; then publish and stop mid-flight.
        sub = self.client.subscriber(slow, queue=self.queue, max_in_flight=3)
        sub.wait_subscribed(10)
        for i in range(6):
            self.publisher.publish(self.queue, b"m%d" % i)
        started.wait_for(lambda s: len(s) == 3)
        stopper = threading.Thread(target=sub.stop)
        stopper.start()
        time.sleep(0.2)  # stop() must be waiting for the handlers now
        self.assertTrue(stopper.is_alive(), "stop() returned with handlers running")
        release.set()
        stopper.join(10)
        self.assertFalse(stopper.is_alive())
        self.assertEqual(sorted(finished.snapshot()), sorted(started.snapshot()))
        first = set(started.snapshot())

        # A second subscriber gets exactly the other 3: the first 3 were acked.
        again = Recorder()
        with self.client.subscriber(lambda d: again(d.payload), queue=self.queue, max_in_flight=1) as sub2:
            sub2.wait_subscribed(10)
            self.publisher.publish(self.queue, b"end")
            again.wait_for(lambda s: b"end" in s)
        rest = [p for p in again.snapshot() if p != b"end"]
        self.assertEqual(len(rest), 3, rest)
        self.assertFalse(first & set(rest))

    def test_refused_subscription_is_reported(self):
        sub = warren.Subscriber(
            self.client.channel, lambda d: None, queue="bad name with spaces" * 20
        ).start()
        with self.assertRaises(warren.FatalError) as caught:
            sub.wait_subscribed(10)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIs(sub.error, caught.exception)
        sub.stop()


class RestartTest(unittest.TestCase):
    """A warrend of our own is stopped and started again on the same port."""

    def test_retry_goes_out_once_the_channel_reconnects(self):
        # A backoff far longer than the server is away: the retry must not
        # wait it out but go as soon as the channel is connected again.
        queue = unique("py-reconnect")
        server = OwnServer().start()
        own = warren.connect(server.address)
        try:
            own.publisher().publish(queue, b"warm-up", mandatory=False)  # connected
            server.stop()
            log = AttemptLog()
            publisher = warren.Publisher(
                grpc.intercept_channel(own.channel, log), timeout=60,
                backoff=warren.Backoff(20.0, 20.0))  # each wait 10..20 s
            result = {}

            def publish():
                result["id"] = publisher.publish(queue, b"x", mandatory=False)
                result["at"] = time.monotonic()

            publishing = threading.Thread(target=publish)
            publishing.start()
            log.attempts.wait_for(lambda a: len(a) >= 1)
            server.start()
            back = time.monotonic()
            publishing.join(30)
            self.assertIn("id", result)
            self.assertLess(result["at"] - back, 8.0)
            self.assertEqual([code for _, code in log.attempts.snapshot()],
                             [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK])
        finally:
            own.close()
            server.stop()

    def test_subscriber_resubscribes_and_publisher_retries_across_a_restart(self):
        queue = unique("py-restart")
        main = warren.connect(ADDRESS)
        server = OwnServer().start()
        try:
            own = warren.connect(server.address)
            received = Recorder()
            sub = own.subscriber(
                lambda d: received((d.message_id, d.payload)),
                queue=queue,
                backoff=warren.Backoff(0.05, 0.5),
            )
            sub.wait_subscribed(10)
            main_pub = main.publisher()
            first = main_pub.publish(queue, b"before")
            received.wait_for(lambda r: (first, b"before") in r)

            server.stop()  # the stream ends with UNAVAILABLE
            # Published meanwhile through the other server: kept by the queue.
            during = main_pub.publish(queue, b"during")
            # A publish through the stopped server keeps failing UNAVAILABLE
            # and retrying with one id until the server is back.
            log = AttemptLog()
            publisher = warren.Publisher(
                grpc.intercept_channel(own.channel, log),
                timeout=120,
                backoff=warren.Backoff(0.05, 0.3),
            )
            result = {}
            publishing = threading.Thread(
                target=lambda: result.update(id=publisher.publish(queue, b"retried"))
            )
            publishing.start()
            log.attempts.wait_for(lambda a: len(a) >= 2)
            server.start()  # same port as before
            publishing.join(130)
            self.assertIn("id", result)

            received.wait_for(
                lambda r: (during, b"during") in r and (result["id"], b"retried") in r,
                timeout=30,
            )
            self.assertGreaterEqual(sub.subscriptions, 2)
            attempts = log.attempts.snapshot()
            self.assertEqual({mid for mid, _ in attempts}, {result["id"]})
            self.assertEqual(attempts[0][1], grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(attempts[-1][1], grpc.StatusCode.OK)
            sub.stop()
            own.close()
        finally:
            server.stop()
            main.close()


if __name__ == "__main__":
    unittest.main()
