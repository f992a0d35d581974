"""Delays, retries, stream queues with replay and resume, single active
consumer, headers routing and request/reply, against the live warrend
($WARREN_ADDRESS) and its RabbitMQ."""

import threading
import time
import unittest
from concurrent import futures

import grpc

from support import ADDRESS, Recorder, unique, wait_until, warren

pb = warren.messaging_pb2


class _Breaker(grpc.StreamStreamClientInterceptor):
    """Keeps the Subscribe calls it sees, so a test can break one from the
    client side (the subscriber takes it for a broken stream)."""

    def __init__(self):
        self.calls = []

    def intercept_stream_stream(self, continuation, details, request_iterator):
        call = continuation(details, request_iterator)
        self.calls.append(call)
        return call

    def break_current(self):
        self.calls[-1].cancel()


class MessagingDepthTest(unittest.TestCase):
    def setUp(self):
        self.client = warren.connect(ADDRESS)
        self.publisher = self.client.publisher()

    def tearDown(self):
        self.publisher.close()
        self.client.close()

    def _declare(self, queue, **kwargs):
        """Subscribes once so that the queue exists, then leaves it unconsumed."""
        with self.client.subscriber(lambda d: None, queue=queue, **kwargs) as sub:
            sub.wait_subscribed(10)

    # -- delays --------------------------------------------------------------

    def test_delayed_publishes_arrive_in_delay_order_never_early(self):
        queue = unique("py-delay")
        arrived = Recorder()
        with self.client.subscriber(lambda d: arrived((d.payload, time.monotonic())),
                                    queue=queue) as sub:
            sub.wait_subscribed(10)
            sent = {}
            # 0.8 s apart: in delay order even when publishing one takes long.
            for delay in (2.4, 0.8, 1.6):
                sent[b"%.1f" % delay] = time.monotonic()
                self.publisher.publish(queue, b"%.1f" % delay, delay=delay)
            arrived.wait_for(lambda a: len(a) == 3, timeout=20)
        got = arrived.snapshot()
        self.assertEqual([p for p, _ in got], [b"0.8", b"1.6", b"2.4"])
        for payload, at in got:
            self.assertGreaterEqual(at - sent[payload], float(payload), payload)

    def test_a_delayed_publish_cannot_have_a_ttl(self):
        with self.assertRaises(warren.FatalError) as caught:
            self.publisher.publish(unique("py-delay"), b"x", delay=1, ttl=5)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("delay", caught.exception.details)

    def test_retry_comes_back_after_its_delay_counted(self):
        queue = unique("py-retry")
        seen = Recorder()

        def handle(delivery):
            seen((delivery.payload, delivery.delivery_count, time.monotonic()))
            if delivery.payload == b"poison" and delivery.delivery_count == 0:
                raise warren.Retry(0.5)

        with self.client.subscriber(handle, queue=queue, max_in_flight=2) as sub:
            sub.wait_subscribed(10)
            self.publisher.publish(queue, b"poison")
            seen.wait_for(lambda s: len(s) == 1)
            self.publisher.publish(queue, b"healthy")  # flows while the other waits
            seen.wait_for(lambda s: len(s) == 3, timeout=20)
        got = seen.snapshot()
        self.assertEqual(sorted(p for p, _, _ in got), [b"healthy", b"poison", b"poison"])
        (count0, t0), (count1, t1) = [(c, t) for p, c, t in got if p == b"poison"]
        self.assertEqual((count0, count1), (0, 1))
        self.assertGreaterEqual(t1 - t0, 0.5)  # never early
        self.assertLess(t1 - t0, 5.0)

    # -- streams -------------------------------------------------------------

    def _stream_with(self, count):
        queue = unique("py-stream")
        self._declare(queue, queue_options=warren.queue_options(queue_type="stream"))
        for i in range(count):
            self.publisher.publish(queue, b"m%d" % i)
        return queue

    def _read(self, queue, count, **kwargs):
        got = Recorder()
        with self.client.subscriber(lambda d: got((d.stream_offset, d.payload)), queue=queue,
                                    queue_options=warren.queue_options(queue_type="stream"),
                                    **kwargs):
            got.wait_for(lambda g: len(g) >= count, timeout=20)
        return got.snapshot()

    def test_two_subscribers_replay_the_same_stream_from_first(self):
        queue = self._stream_with(6)
        expected = [b"m%d" % i for i in range(6)]
        a = self._read(queue, 6, offset="first")
        b = self._read(queue, 6, offset="first")
        self.assertEqual([p for _, p in a], expected)
        self.assertEqual(a, b)  # same messages at the same offsets
        offsets = [o for o, _ in a]
        self.assertEqual(offsets, list(range(offsets[0], offsets[0] + 6)))
        # Resuming from a stored offset: the one after the third message.
        c = self._read(queue, 3, offset=offsets[2] + 1, max_in_flight=1)
        self.assertEqual(c, a[3:])

    def test_a_broken_stream_resumes_without_gap_or_repeat(self):
        queue = self._stream_with(10)
        breaker = _Breaker()
        got = Recorder()
        handling_m4, broken = threading.Event(), threading.Event()

        def handle(delivery):
            got(delivery.payload)
            if delivery.payload == b"m4" and not handling_m4.is_set():
                handling_m4.set()
                broken.wait(10)  # the stream breaks while m4 is being handled

        sub = warren.Subscriber(grpc.intercept_channel(self.client.channel, breaker), handle,
                                queue=queue, offset="first", max_in_flight=1,
                                queue_options=warren.queue_options(queue_type="stream"),
                                backoff=warren.Backoff(0.05, 0.1))
        with sub:
            self.assertTrue(handling_m4.wait(20))
            breaker.break_current()
            broken.set()
            got.wait_for(lambda g: len(g) >= 10, timeout=20)
            wait_until(lambda: sub.subscriptions == 2)
        self.assertEqual(got.snapshot(), [b"m%d" % i for i in range(10)])

    # -- queue options -------------------------------------------------------

    def test_a_priority_queue_delivers_its_backlog_highest_first(self):
        queue = unique("py-priority")
        options = warren.queue_options(max_priority=10)
        self._declare(queue, queue_options=options)
        for priority in (1, 9, 5):
            self.publisher.publish(queue, b"p%d" % priority, priority=priority)
        got = Recorder()
        with self.client.subscriber(lambda d: got(d.payload), queue=queue,
                                    queue_options=options, max_in_flight=1):
            got.wait_for(lambda g: len(g) == 3)
        self.assertEqual(got.snapshot(), [b"p9", b"p5", b"p1"])

    def test_a_delivery_limit_dead_letters_after_that_many_deliveries(self):
        dead_letters = unique("py-dlx")
        dead = Recorder()
        with self.client.subscriber(lambda d: dead(d.payload), exchange=dead_letters,
                                    exchange_type=pb.EXCHANGE_TYPE_FANOUT,
                                    group=unique("py-dlq")) as dlq:
            dlq.wait_subscribed(10)
            queue = unique("py-limit")
            counts = Recorder()

            def always_fail(delivery):
                counts(delivery.delivery_count)
                raise RuntimeError("poison")

            options = warren.queue_options(queue_type="quorum", delivery_limit=3,
                                           dead_letter_exchange=dead_letters)
            with self.client.subscriber(always_fail, queue=queue, queue_options=options) as sub:
                sub.wait_subscribed(10)
                self.publisher.publish(queue, b"poison")
                dead.wait_for(lambda d: d == [b"poison"], timeout=20)
        self.assertEqual(counts.snapshot(), [0, 1, 2])

    def test_queue_options_the_server_refuses_name_the_field(self):
        sub = self.client.subscriber(
            lambda d: None, queue=unique("py-bad"),
            queue_options=warren.queue_options(queue_type="quorum", max_priority=5))
        try:
            with self.assertRaises(warren.FatalError) as caught:
                sub.wait_subscribed(10)
            self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("start.queue_options.max_priority", caught.exception.details)
        finally:
            sub.stop()

    # -- single active consumer, headers -------------------------------------

    def test_only_the_single_active_consumer_receives_until_it_stops(self):
        queue = unique("py-sac")
        options = warren.queue_options(single_active_consumer=True)
        a_got, b_got = Recorder(), Recorder()
        a = self.client.subscriber(lambda d: a_got(d.payload), queue=queue, queue_options=options)
        a.wait_subscribed(10)
        with self.client.subscriber(lambda d: b_got(d.payload), queue=queue,
                                    queue_options=options) as b:
            b.wait_subscribed(10)
            for i in range(5):
                self.publisher.publish(queue, b"first-%d" % i)
            a_got.wait_for(lambda g: len(g) == 5)
            a.stop()
            for i in range(5):
                self.publisher.publish(queue, b"second-%d" % i)
            b_got.wait_for(lambda g: len(g) == 5)
        self.assertEqual(a_got.snapshot(), [b"first-%d" % i for i in range(5)])
        self.assertEqual(b_got.snapshot(), [b"second-%d" % i for i in range(5)])

    def test_headers_bindings_match_all_or_any(self):
        exchange = unique("py-headers")
        match = {"region": "eu", "kind": "order"}
        every, anyone = Recorder(), Recorder()
        subs = [self.client.subscriber(lambda d, r=r: r(d.payload), exchange=exchange,
                                       exchange_type=pb.EXCHANGE_TYPE_HEADERS,
                                       match_headers=match, match_any=any_)
                for r, any_ in ((every, False), (anyone, True))]
        try:
            for sub in subs:
                sub.wait_subscribed(10)
            for payload, headers in ((b"both", match),
                                     (b"eu", {"region": "eu"}),
                                     (b"order-us", {"region": "us", "kind": "order"}),
                                     (b"none", {"region": "us"}),
                                     (b"end", match)):
                self.publisher.publish("", payload, exchange=exchange, headers=headers,
                                       mandatory=False)
            every.wait_for(lambda g: b"end" in g)
            anyone.wait_for(lambda g: b"end" in g)
        finally:
            for sub in subs:
                sub.stop()
        self.assertEqual(every.snapshot(), [b"both", b"end"])
        self.assertEqual(anyone.snapshot(), [b"both", b"eu", b"order-us", b"end"])

    def test_match_headers_need_a_headers_exchange(self):
        sub = self.client.subscriber(lambda d: None, exchange=unique("py-topic"),
                                     match_headers={"a": "b"})
        try:
            with self.assertRaises(warren.FatalError) as caught:
                sub.wait_subscribed(10)
            self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("start.topic.match_headers", caught.exception.details)
        finally:
            sub.stop()

    # -- request/reply -------------------------------------------------------

    def test_call_and_responder_round_trip(self):
        queue = unique("py-rpc")
        requests = Recorder()

        def square(request):
            requests((request.reply_to, request.correlation_id))
            n = int(request.payload)
            return warren.Reply(str(n * n), headers={"n": str(n)})

        with self.client.responder(square, queue=queue, max_in_flight=4) as responder:
            responder.wait_subscribed(10)
            with futures.ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(
                    lambda n: self.client.call(queue, str(n), timeout=20), range(20)))
        self.assertEqual([r.payload for r in replies], [b"%d" % (n * n) for n in range(20)])
        self.assertEqual([r.headers["n"] for r in replies], [str(n) for n in range(20)])
        self.assertTrue(all(r.correlation_id for r in replies))
        asked = requests.snapshot()
        self.assertTrue(all(reply_to and correlation_id for reply_to, correlation_id in asked))
        self.assertEqual(len({c for _, c in asked}), 20)

    def test_call_without_a_responder_times_out(self):
        queue = unique("py-rpc-idle")
        self._declare(queue)
        started = time.monotonic()
        with self.assertRaises(TimeoutError) as caught:
            self.client.call(queue, b"anyone?", timeout=1.0)
        self.assertIsInstance(caught.exception, warren.CallTimeoutError)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)

    def test_call_to_no_queue_is_refused(self):
        with self.assertRaises(warren.FatalError) as caught:
            self.client.call(unique("py-rpc-nobody"), b"x", timeout=5)
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)


if __name__ == "__main__":
    unittest.main()
