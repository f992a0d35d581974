"""Backoff: capped, jittered, reset after success (no server needed)."""

import random
import unittest

import grpc

from support import warren
from warren_client import _stream


class BackoffTest(unittest.TestCase):
    def test_grows_is_capped_and_jittered(self):
        backoff = warren.Backoff(initial=0.1, maximum=1.0, multiplier=2.0, rng=random.Random(7))
        delays = [backoff.next_delay() for _ in range(10)]
        planned = [min(1.0, 0.1 * 2 ** n) for n in range(10)]
        for delay, plan in zip(delays, planned):
            self.assertGreaterEqual(delay, plan / 2)
            self.assertLessEqual(delay, plan)
        self.assertGreater(len({round(d, 6) for d in delays[5:]}), 1, "no jitter at the cap")

    def test_reset_starts_again(self):
        backoff = warren.Backoff(initial=0.1, maximum=5.0)
        for _ in range(8):
            backoff.next_delay()
        backoff.reset()
        self.assertLessEqual(backoff.next_delay(), 0.1)


class _Call:
    """A finished response stream, as the reader thread sees it."""

    def __init__(self, *responses):
        self.responses = responses

    def __iter__(self):
        return iter(self.responses)

    def cancel(self):
        pass


def _backed_off(times=8):
    backoff = warren.Backoff(initial=0.1, maximum=5.0)
    for _ in range(times):
        backoff.next_delay()
    return backoff


class StreamResetTest(unittest.TestCase):
    """The retry delays start again once a stream has answered, whichever
    wrapper reads it, and only then."""

    def test_a_streams_first_response_resets_the_backoff_once(self):
        backoff = _backed_off()
        reader = _stream.StreamReader(_Call("first", "second"), "test-reader", backoff)
        self.assertEqual(reader.next(timeout=5.0), "first")
        self.assertLessEqual(backoff.next_delay(), 0.1)
        for _ in range(8):
            backoff.next_delay()
        self.assertEqual(reader.next(timeout=5.0), "second")
        self.assertGreater(backoff.next_delay(), 0.1, "reset again by a later response")
        end = reader.next(timeout=5.0)
        self.assertIsInstance(end, _stream.StreamEnd)
        self.assertEqual(end.code, grpc.StatusCode.OK)

    def test_a_stream_without_a_response_read_keeps_the_backoff(self):
        backoff = _backed_off()
        reader = _stream.StreamReader(_Call(), "test-reader", backoff)
        self.assertIsInstance(reader.next(timeout=5.0), _stream.StreamEnd)
        self.assertGreater(backoff.next_delay(), 0.1)
        backoff = _backed_off()
        drained = _stream.StreamReader(_Call("skipped"), "test-reader", backoff)
        self.assertEqual(drained.drain_to_end().code, grpc.StatusCode.OK)
        self.assertGreater(backoff.next_delay(), 0.1, "reset by a response drained unread")


if __name__ == "__main__":
    unittest.main()
