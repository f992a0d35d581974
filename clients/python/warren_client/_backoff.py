"""Capped exponential backoff with jitter, shared by every retry loop."""

from __future__ import annotations

import random

from . import retry_policy


class Backoff:
    """Delays for retry number 1, 2, 3, ...: initial * multiplier**n, capped.

    Each delay is drawn uniformly from [delay/2, delay] ("equal jitter"), so
    that many clients cut off by the same server restart do not come back in
    lock-step, while no delay is ever much shorter than planned. The
    defaults are those of retry_policy (100 ms, x2, at most 3 s).
    """

    def __init__(
        self,
        initial: float = retry_policy.BACKOFF_INITIAL_SECONDS,
        maximum: float = retry_policy.BACKOFF_MAX_SECONDS,
        multiplier: float = retry_policy.BACKOFF_MULTIPLIER,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or multiplier < 1:
            raise ValueError("need 0 < initial <= maximum and multiplier >= 1")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        """The delay before the next retry; each call backs off further."""
        delay = min(self.maximum, self.initial * self.multiplier**self._attempt)
        self._attempt = min(self._attempt + 1, 64)  # no float overflow
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        """Call after a success: the next failure starts from `initial`."""
        self._attempt = 0

    def copy(self) -> Backoff:
        """A fresh Backoff with the same settings (one per loop)."""
        return Backoff(self.initial, self.maximum, self.multiplier)

