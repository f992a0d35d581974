"""Backoff: capped, jittered, reset after success (no server needed)."""

import random
import unittest

from support import warren


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


if __name__ == "__main__":
    unittest.main()
