"""What the Locker and the Registration make of each event of their streams,
against an in-process server that plays a script (no warrend needed): a
suspension that ends with the same token, an expiry, a wait that breaks
and goes on within the remaining timeout, the server's wait_timeout."""

import queue
import threading
import unittest
from concurrent import futures

import grpc

from support import Recorder, wait_until, warren

pb_lock, pb_cfg, pb_elect = warren.lock_pb2, warren.config_pb2, warren.election_pb2
FAST = warren.Backoff(0.01, 0.02)

SUSPENDED = pb_elect.LOSS_REASON_CONNECTION_SUSPENDED
EXPIRED = pb_elect.LOSS_REASON_SESSION_EXPIRED


class _End:
    """A script step: end the stream with `code`."""

    def __init__(self, code, details="ended by the script"):
        self.code, self.details = code, details


class _ScriptedServer(warren.lock_pb2_grpc.LockServiceServicer,
                      warren.config_pb2_grpc.ConfigServiceServicer):
    """Each Lock / HoldKey stream plays the responses the test puts into
    `steps` (an _End ends it); the first request of every stream is kept."""

    def __init__(self):
        self.steps = queue.Queue()
        self.first_requests = Recorder()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        warren.lock_pb2_grpc.add_LockServiceServicer_to_server(self, self.server)
        warren.config_pb2_grpc.add_ConfigServiceServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = warren.channel("127.0.0.1:%d" % port)

    def _play(self, request_iterator, context):
        self.first_requests(next(request_iterator))
        # Read the client's further requests so that its half-close ends us.
        half_closed = threading.Event()

        def drain():
            try:
                for _ in request_iterator:
                    pass
            except grpc.RpcError:  # the stream ended first (aborted, cancelled)
                pass
            half_closed.set()

        threading.Thread(target=drain, daemon=True).start()
        while context.is_active() and not half_closed.is_set():
            try:
                step = self.steps.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(step, _End):
                if step.code != grpc.StatusCode.OK:
                    context.abort(step.code, step.details)
                return
            yield step

    def Lock(self, request_iterator, context):
        yield from self._play(request_iterator, context)

    def HoldKey(self, request_iterator, context):
        yield from self._play(request_iterator, context)

    def close(self):
        self.channel.close()
        self.server.stop(None)


def acquired(token, interval=1.0):
    return pb_lock.LockResponse(acquired=pb_lock.Acquired(
        holder=pb_lock.LockHolder(name="l", fencing_token=token),
        heartbeat_interval=warren._stream.duration(interval)))


def lock_lost(reason):
    return pb_lock.LockResponse(lost=pb_lock.LockLost(reason=reason))


def held(value):
    return pb_cfg.HoldKeyResponse(held=pb_cfg.ConfigEntry(key="k", value=value, held=True))


class LockEventsTest(unittest.TestCase):
    def setUp(self):
        self.fake = _ScriptedServer()
        self.locker = warren.Locker(self.fake.channel, backoff=FAST)

    def tearDown(self):
        self.locker.close()
        self.fake.close()

    def test_a_suspension_ends_with_the_same_token_and_an_expiry_for_good(self):
        lost = Recorder()
        self.fake.steps.put(acquired(42))
        lock = self.locker.acquire("l", on_lost=lost)
        self.assertTrue(lock.held)
        self.assertEqual(lock.heartbeat_interval, 1.0)
        self.fake.steps.put(lock_lost(SUSPENDED))
        lost.wait_for(lambda l: l == [warren.LostReason.CONNECTION_SUSPENDED])
        self.assertFalse(lock.held)
        self.assertFalse(lock.lost.is_set())  # it may come back
        self.fake.steps.put(acquired(42))
        wait_until(lambda: lock.held)
        self.fake.steps.put(lock_lost(EXPIRED))
        self.fake.steps.put(_End(grpc.StatusCode.ABORTED))
        self.assertTrue(lock.lost.wait(5))
        self.assertEqual(lock.lost_reason, warren.LostReason.SESSION_EXPIRED)
        self.assertEqual(lost.snapshot(), [warren.LostReason.CONNECTION_SUSPENDED,
                                           warren.LostReason.SESSION_EXPIRED])
        self.assertFalse(lock.held)
        self.assertEqual(len(self.fake.first_requests.snapshot()), 1)  # not re-acquired

    def test_the_lease_is_the_interval_the_server_put_in_force(self):
        lost = Recorder()
        self.fake.steps.put(acquired(7, interval=0.2))
        lock = self.locker.acquire("l", on_lost=lost)
        self.assertEqual(lock.lease, 0.4)
        for _ in range(5):  # heartbeats keep it
            self.fake.steps.put(pb_lock.LockResponse(heartbeat=warren.common_pb2.Heartbeat()))
        self.assertTrue(lock.lost.wait(3))  # then they stop
        self.assertEqual(lost.snapshot(), [warren.LostReason.LEASE_EXPIRED])

    def test_a_broken_wait_goes_on_within_the_remaining_timeout(self):
        positions = Recorder()
        self.fake.steps.put(pb_lock.LockResponse(queued=pb_lock.Queued(position=2)))
        self.fake.steps.put(_End(grpc.StatusCode.UNAVAILABLE))
        self.fake.steps.put(pb_lock.LockResponse(queued=pb_lock.Queued(position=1)))
        self.fake.steps.put(acquired(9))
        lock = self.locker.acquire("l", timeout=30, on_queued=lambda p, h: positions(p))
        self.assertEqual(lock.fencing_token, 9)
        self.assertEqual(positions.snapshot(), [2, 1])
        first, second = self.fake.first_requests.snapshot()
        waits = [r.acquire.wait_timeout.ToNanoseconds() / 1e9 for r in (first, second)]
        self.assertLessEqual(waits[0], 30)
        self.assertLess(waits[1], waits[0])  # what was left, not the whole again
        lock.release()

    def test_the_servers_wait_timeout_is_a_lock_timeout(self):
        self.fake.steps.put(pb_lock.LockResponse(queued=pb_lock.Queued(position=0)))
        self.fake.steps.put(_End(grpc.StatusCode.DEADLINE_EXCEEDED,
                                 "acquire.wait_timeout: lock l not acquired within 0.2s"))
        with self.assertRaises(warren.LockTimeoutError) as caught:
            self.locker.acquire("l", timeout=0.2)
        self.assertIn("acquire.wait_timeout", caught.exception.details)
        self.assertEqual(len(self.fake.first_requests.snapshot()), 1)  # not retried
        # Try-once sends a zero wait_timeout; unset waits while the stream lives.
        self.fake.steps.put(_End(grpc.StatusCode.DEADLINE_EXCEEDED, "acquire.wait_timeout: x"))
        self.assertIsNone(self.locker.try_acquire("l"))
        self.fake.steps.put(acquired(3))
        self.locker.acquire("l").release()
        requests = self.fake.first_requests.snapshot()
        self.assertTrue(requests[1].acquire.HasField("wait_timeout"))
        self.assertEqual(requests[1].acquire.wait_timeout.ToNanoseconds(), 0)
        self.assertFalse(requests[2].acquire.HasField("wait_timeout"))

    def test_no_answer_within_the_timeout_gives_up(self):
        with self.assertRaises(warren.LockTimeoutError):
            self.locker.acquire("l", timeout=0.1)  # the script stays silent

    def test_close_ends_a_wait(self):
        failures = Recorder()

        def wait():
            try:
                self.locker.acquire("l")
            except warren.WarrenError as error:
                failures(error)

        waiter = threading.Thread(target=wait)
        waiter.start()
        self.fake.first_requests.wait_for(lambda r: len(r) == 1)
        self.locker.close()
        waiter.join(5)
        self.assertEqual([type(e) for e in failures.snapshot()], [warren.ClosedError])


class RegistrationEventsTest(unittest.TestCase):
    def setUp(self):
        self.fake = _ScriptedServer()

    def tearDown(self):
        self.fake.close()

    def test_lost_and_held_again_on_the_same_stream_then_on_a_new_one(self):
        lost, got = Recorder(), Recorder()
        reg = warren.Registration(self.fake.channel, "k", "v1", backoff=FAST,
                                  on_lost=lost, on_held=lambda e: got(e.value)).start()
        try:
            self.fake.steps.put(held(b"v1"))
            self.assertTrue(reg.wait_held(5))
            self.fake.steps.put(pb_cfg.HoldKeyResponse(lost=pb_cfg.HoldLost(reason=EXPIRED)))
            lost.wait_for(lambda l: l == [warren.LostReason.SESSION_EXPIRED])
            self.assertFalse(reg.held)
            self.fake.steps.put(held(b"v1"))  # recreated by the server
            wait_until(lambda: reg.held)
            reg.set_value("v2")  # the next stream holds the new value
            self.fake.steps.put(_End(grpc.StatusCode.UNAVAILABLE))
            lost.wait_for(lambda l: len(l) == 2)
            self.fake.steps.put(held(b"v2"))
            wait_until(lambda: reg.held)
            self.assertEqual(reg.holds, 3)
            self.assertEqual(lost.snapshot()[1], warren.LostReason.STREAM_BROKEN)
            self.assertEqual(got.snapshot(), [b"v1", b"v1", b"v2"])
            first_requests = self.fake.first_requests.snapshot()
            self.assertEqual([(r.key, r.value) for r in first_requests],
                             [("k", b"v1"), ("k", b"v2")])
        finally:
            reg.close()
        self.assertFalse(reg.held)
        self.assertEqual(len(lost.snapshot()), 2)  # closing is not a loss


if __name__ == "__main__":
    unittest.main()
