"""What the messaging wrappers send for delays, retries, stream offsets,
headers matching and request/reply, and how they resume a stream queue,
against an in-process fake MessagingService (no warrend needed: these pin
the wrappers' side of the protocol; tests/test_messaging_depth.py checks the
behaviour against the live server)."""

import datetime
import threading
import time
import unittest
from concurrent import futures

import grpc

from support import Recorder, wait_until, warren
from warren_client._stream_offsets import HandledOffsets

pb = warren.messaging_pb2
FAST = warren.Backoff(0.01, 0.02)


class _FakeMessaging(warren.messaging_pb2_grpc.MessagingServiceServicer):
    """Subscribe streams follow `plans`, one per call: a list of deliveries
    to send, then `end` (a code to abort with once every delivery was
    settled, or None to stay open). Records every request."""

    def __init__(self):
        self.plans = []
        self.starts = Recorder()     # SubscribeStart of each Subscribe call
        self.settles = Recorder()    # Ack / Nack requests, in arrival order
        self.publishes = Recorder()  # PublishRequest
        self.calls = Recorder()      # CallRequest
        self.events = Recorder()     # ("publish", key) / ("ack", ids): one order
        self.call_answer = None      # CallResponse, or a code to abort with

    def Subscribe(self, request_iterator, context):
        start = next(request_iterator).start
        self.starts(start)
        deliveries, end = self.plans.pop(0) if self.plans else ([], None)
        yield pb.SubscribeResponse(subscribed=pb.Subscribed(queue=start.queue or "q"))
        for delivery in deliveries:
            yield pb.SubscribeResponse(delivery=delivery)
        unsettled = {d.delivery_id for d in deliveries}
        if not unsettled and end is not None:
            context.abort(end, "broken by the test")
        for request in request_iterator:
            kind = request.WhichOneof("request")
            settle = getattr(request, kind)
            self.settles((kind, settle))
            self.events((kind, tuple(settle.delivery_ids)))
            unsettled.difference_update(settle.delivery_ids)
            if not unsettled and end is not None:
                context.abort(end, "broken by the test")

    def Publish(self, request, context):
        self.publishes(request)
        self.events(("publish", request.routing_key))
        return pb.PublishResponse(message_id=request.message_id)

    def Call(self, request, context):
        self.calls(request)
        if isinstance(self.call_answer, grpc.StatusCode):
            context.abort(self.call_answer, "no reply within 0.2s")
        if self.call_answer is None:  # no reply ever: the client's deadline ends it
            done = threading.Event()
            context.add_callback(done.set)
            done.wait(30)
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "gone")
        return self.call_answer


class FakeServerTest(unittest.TestCase):
    def setUp(self):
        self.fake = _FakeMessaging()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        warren.messaging_pb2_grpc.add_MessagingServiceServicer_to_server(self.fake, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.client = warren.connect("127.0.0.1:%d" % port)

    def tearDown(self):
        self.client.close()
        self.server.stop(None)


def _stream_delivery(delivery_id, offset):
    return pb.Delivery(delivery_id=delivery_id, payload=b"m%d" % offset,
                       message_id="m%d" % offset, stream_offset=offset)


STREAM = warren.queue_options(queue_type="stream")


class StreamResumeTest(FakeServerTest):
    def test_a_broken_stream_resumes_after_the_last_offset_handled(self):
        self.fake.plans = [
            ([_stream_delivery(i + 1, 100 + i) for i in range(5)], grpc.StatusCode.UNAVAILABLE),
            ([_stream_delivery(1, 105)], None),
        ]
        handled = Recorder()
        with self.client.subscriber(lambda d: handled(d.stream_offset), queue="s",
                                    queue_options=STREAM, offset="first",
                                    max_in_flight=4, backoff=FAST) as sub:
            handled.wait_for(lambda h: len(h) == 6)
            starts = self.fake.starts.snapshot()
            self.assertTrue(starts[0].offset.first)
            self.assertEqual(starts[1].offset.WhichOneof("start"), "offset")
            self.assertEqual(starts[1].offset.offset, 105)
            self.assertEqual(sorted(handled.snapshot()), list(range(100, 106)))
            wait_until(lambda: sub.last_offset == 105)

    def test_a_slow_earlier_handler_is_waited_for_not_skipped(self):
        self.fake.plans = [
            ([_stream_delivery(i + 1, 10 + i) for i in range(3)], grpc.StatusCode.UNAVAILABLE),
        ]
        release = threading.Event()
        handled = Recorder()

        def handle(delivery):
            if delivery.stream_offset == 10:
                release.wait(10)
            handled(delivery.stream_offset)

        with self.client.subscriber(handle, queue="s", queue_options=STREAM,
                                    max_in_flight=3, backoff=FAST) as sub:
            handled.wait_for(lambda h: sorted(h) == [11, 12])
            self.assertIsNone(sub.last_offset)  # 10 is still being handled
            self.assertEqual(len(self.fake.starts.snapshot()), 1)
            release.set()
            self.fake.starts.wait_for(lambda s: len(s) == 2)
            # 10 was handled before 11 and 12 counted: resume after all three.
            self.assertEqual(self.fake.starts.snapshot()[1].offset.offset, 13)
            self.assertEqual(sub.last_offset, 12)

    def test_without_a_delivery_the_first_offset_is_asked_again(self):
        self.fake.plans = [([], grpc.StatusCode.UNAVAILABLE)]
        when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        with self.client.subscriber(lambda d: None, queue="s", queue_options=STREAM,
                                    offset=when, backoff=FAST):
            self.fake.starts.wait_for(lambda s: len(s) == 2)
        for start in self.fake.starts.snapshot():
            self.assertEqual(start.offset.timestamp.seconds, int(when.timestamp()))

    def test_from_next_without_a_delivery_resumes_at_the_time_it_started(self):
        self.fake.plans = [([], grpc.StatusCode.UNAVAILABLE)]
        before = int(time.time())
        with self.client.subscriber(lambda d: None, queue="s", queue_options=STREAM,
                                    backoff=FAST):
            self.fake.starts.wait_for(lambda s: len(s) == 2)
        first, again = self.fake.starts.snapshot()
        self.assertFalse(first.HasField("offset"))  # the server's default: next
        self.assertEqual(again.offset.WhichOneof("start"), "timestamp")
        self.assertGreaterEqual(again.offset.timestamp.seconds, before)
        self.assertLessEqual(again.offset.timestamp.seconds, time.time())

    def test_handled_offsets_count_only_what_is_handled_in_order(self):
        offsets = HandledOffsets()
        for offset in (5, 6, 7):
            offsets.delivered(offset)
        self.assertIsNone(offsets.handled(6))
        self.assertEqual(offsets.handled(5), 6)
        self.assertIsNone(offsets.handled(42))  # not of this stream
        self.assertEqual(offsets.handled(7), 7)


class SettleTest(FakeServerTest):
    def test_retry_from_a_handler_nacks_with_its_delay(self):
        self.fake.plans = [([pb.Delivery(delivery_id=1, message_id="a")], None)]

        def handle(delivery):
            raise warren.Retry(0.5)

        with self.client.subscriber(handle, queue="q"):
            self.fake.settles.wait_for(lambda s: len(s) == 1)
        kind, nack = self.fake.settles.snapshot()[0]
        self.assertEqual(kind, "nack")
        self.assertEqual(list(nack.delivery_ids), [1])
        self.assertEqual(nack.retry_after.ToMilliseconds(), 500)

    def test_retry_after_applies_to_every_failed_handler(self):
        self.fake.plans = [([pb.Delivery(delivery_id=3, message_id="a")], None)]

        def handle(delivery):
            raise RuntimeError("down")

        with self.client.subscriber(handle, queue="q", retry_after=2.0):
            self.fake.settles.wait_for(lambda s: len(s) == 1)
        kind, nack = self.fake.settles.snapshot()[0]
        self.assertEqual((kind, nack.retry_after.seconds), ("nack", 2))

    def test_a_failed_handler_without_retry_after_sends_none(self):
        self.fake.plans = [([pb.Delivery(delivery_id=3, message_id="a")], None)]

        def handle(delivery):
            raise RuntimeError("down")

        with self.client.subscriber(handle, queue="q"):
            self.fake.settles.wait_for(lambda s: len(s) == 1)
        kind, nack = self.fake.settles.snapshot()[0]
        self.assertEqual(kind, "nack")
        self.assertTrue(nack.requeue)
        self.assertFalse(nack.HasField("retry_after"))

    def test_retry_after_and_stream_queues_do_not_mix(self):
        with self.assertRaises(ValueError):
            warren.Subscriber(self.client.channel, print, queue="s",
                              queue_options=STREAM, retry_after=1.0)
        with self.assertRaises(ValueError):
            warren.Retry(0)

    def test_headers_matching_goes_into_the_binding(self):
        with self.client.subscriber(lambda d: None, exchange="hx",
                                    exchange_type=pb.EXCHANGE_TYPE_HEADERS,
                                    match_headers={"region": "eu", "kind": "order"},
                                    match_any=True) as sub:
            sub.wait_subscribed(10)
        topic = self.fake.starts.snapshot()[0].topic
        self.assertEqual(dict(topic.match_headers), {"region": "eu", "kind": "order"})
        self.assertTrue(topic.match_any)
        with self.assertRaises(ValueError):
            warren.Subscriber(self.client.channel, print, queue="q", match_headers={"a": "b"})


class PublishTest(FakeServerTest):
    def test_a_delayed_publish_is_not_mandatory_unless_asked(self):
        publisher = self.client.publisher()
        publisher.publish("q", b"later", delay=1.5)
        publisher.publish("q", b"now")
        publisher.publish("q", b"asked", delay=2, mandatory=True)
        later, now, asked = self.fake.publishes.snapshot()
        self.assertEqual(later.delay.ToMilliseconds(), 1500)
        self.assertFalse(later.mandatory)
        self.assertFalse(now.HasField("delay"))
        self.assertTrue(now.mandatory)
        self.assertTrue(asked.mandatory)  # the server refuses it: INVALID_ARGUMENT delay

    def test_reply_to_and_correlation_id_are_sent(self):
        self.client.publisher().publish("q", b"x", reply_to="replies", correlation_id="c-1")
        request = self.fake.publishes.snapshot()[0]
        self.assertEqual((request.reply_to, request.correlation_id), ("replies", "c-1"))


class CallTest(FakeServerTest):
    def test_call_returns_the_reply(self):
        self.fake.call_answer = pb.CallResponse(reply=pb.Delivery(payload=b"pong"))
        reply = self.client.call("rpc", b"ping", headers={"a": "b"}, timeout=5)
        self.assertEqual(reply.payload, b"pong")
        request = self.fake.calls.snapshot()[0].message
        self.assertEqual((request.routing_key, request.payload), ("rpc", b"ping"))
        self.assertTrue(request.mandatory)
        self.assertTrue(request.message_id)
        self.assertEqual((request.reply_to, request.correlation_id), ("", ""))

    def test_no_reply_is_a_timeout_error_and_not_retried(self):
        self.fake.call_answer = grpc.StatusCode.DEADLINE_EXCEEDED
        with self.assertRaises(TimeoutError) as caught:
            self.client.call("rpc", b"ping", timeout=5)
        self.assertIsInstance(caught.exception, warren.CallTimeoutError)
        self.assertEqual(caught.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(len(self.fake.calls.snapshot()), 1)

    def test_the_client_deadline_is_a_timeout_error_too(self):
        self.fake.call_answer = None
        with self.assertRaises(warren.CallTimeoutError):
            self.client.call("rpc", b"ping", timeout=0.3)

    def test_other_failures_are_not_retried(self):
        self.fake.call_answer = grpc.StatusCode.UNAVAILABLE
        with self.assertRaises(warren.TransientError):
            self.client.call("rpc", b"ping", timeout=5)
        self.fake.call_answer = grpc.StatusCode.FAILED_PRECONDITION
        with self.assertRaises(warren.FatalError):
            self.client.call("rpc", b"ping", timeout=5)
        self.assertEqual(len(self.fake.calls.snapshot()), 2)


class ResponderTest(FakeServerTest):
    def test_replies_then_acks_and_skips_what_is_no_request(self):
        self.fake.plans = [([
            pb.Delivery(delivery_id=1, payload=b"2", reply_to="amq.rabbitmq.reply-to.X",
                        correlation_id="c-1"),
            pb.Delivery(delivery_id=2, payload=b"3"),  # no reply_to
        ], None)]
        asked = Recorder()

        def square(request):
            asked(request.payload)
            n = int(request.payload)
            return warren.Reply(str(n * n), headers={"op": "square"}, content_type="text/plain")

        with self.client.responder(square, queue="rpc", max_in_flight=1):
            self.fake.settles.wait_for(lambda s: len(s) == 2)
        self.assertEqual(asked.snapshot(), [b"2"])
        reply = self.fake.publishes.snapshot()[0]
        self.assertEqual((reply.exchange, reply.routing_key), ("", "amq.rabbitmq.reply-to.X"))
        self.assertEqual((reply.payload, reply.correlation_id), (b"4", "c-1"))
        self.assertEqual((dict(reply.headers), reply.content_type), ({"op": "square"}, "text/plain"))
        self.assertFalse(reply.mandatory)
        events = self.fake.events.snapshot()
        self.assertLess(events.index(("publish", "amq.rabbitmq.reply-to.X")),
                        events.index(("ack", (1,))))
        self.assertIn(("ack", (2,)), events)

    def test_a_failing_handler_sends_no_reply_and_nacks(self):
        self.fake.plans = [([pb.Delivery(delivery_id=1, reply_to="r", correlation_id="c")], None)]

        def broken(request):
            raise RuntimeError("cannot answer")

        with self.client.responder(broken, queue="rpc"):
            self.fake.settles.wait_for(lambda s: len(s) == 1)
        kind, nack = self.fake.settles.snapshot()[0]
        self.assertEqual((kind, nack.requeue), ("nack", True))
        self.assertEqual(self.fake.publishes.snapshot(), [])


class OptionsTest(unittest.TestCase):
    def test_stream_offsets(self):
        self.assertTrue(warren.stream_offset("first").first)
        self.assertTrue(warren.stream_offset("last").last)
        self.assertTrue(warren.stream_offset("next").next)
        self.assertEqual(warren.stream_offset(0).WhichOneof("start"), "offset")
        self.assertEqual(warren.stream_offset(42).offset, 42)
        for bad in (-1, True, "oldest", pb.StreamOffset(), 1.5):
            with self.assertRaises(ValueError, msg=repr(bad)):
                warren.stream_offset(bad)

    def test_queue_options(self):
        options = warren.queue_options(queue_type="STREAM", max_age=3600, max_length_bytes=10**9)
        self.assertEqual(options.queue_type, pb.QUEUE_TYPE_STREAM)
        self.assertEqual(options.max_age.seconds, 3600)
        options = warren.queue_options(queue_type=pb.QUEUE_TYPE_QUORUM, delivery_limit=3,
                                       single_active_consumer=True, message_ttl=0.25)
        self.assertEqual((options.delivery_limit, options.message_ttl.nanos), (3, 250000000))
        self.assertTrue(options.single_active_consumer)
        with self.assertRaises(ValueError):
            warren.queue_options(queue_type="lazy")


if __name__ == "__main__":
    unittest.main()
