"""Capped exponential backoff with jitter, shared by every reconnect loop."""

import random
import threading


class Backoff:
    """Delays for retry number 1, 2, 3, ...: initial * multiplier**n, capped.

    Each delay is drawn uniformly from [delay/2, delay] ("equal jitter"), so
    that many clients cut off by the same server restart do not come back in
    lock-step, while no delay is ever much shorter than planned.
    """

    def __init__(self, initial=0.1, maximum=5.0, multiplier=2.0, rng=None):
        if initial <= 0 or maximum < initial or multiplier < 1:
            raise ValueError("need 0 < initial <= maximum and multiplier >= 1")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self):
        """The delay before the next retry; each call backs off further."""
        delay = min(self.maximum, self.initial * self.multiplier ** self._attempt)
        self._attempt = min(self._attempt + 1, 64)  # no float overflow
        return self._rng.uniform(delay / 2, delay)

    def reset(self):
        """Call after a success: the next failure starts from `initial`."""
        self._attempt = 0

    def copy(self):
        """A fresh Backoff with the same settings (one per loop)."""
        return Backoff(self.initial, self.maximum, self.multiplier)


def sleep_unless(event: threading.Event, seconds: float) -> bool:
    """Sleeps up to `seconds`; returns True if `event` was set (stop asked)."""
    return event.wait(seconds)
