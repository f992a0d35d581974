"""Where a stream subscription resumes: after the last message handled with
every earlier one handled too.

Handlers run on a pool, so they finish out of order; resuming after the
highest offset handled would skip a slower earlier one, resuming at the
lowest unhandled one repeats nothing that finished before it. A stream
delivers in offset order, so the delivery order is the offset order.
"""

from __future__ import annotations

import collections
import threading


class HandledOffsets:
    """The offsets of one Subscribe stream, in delivery order, until each
    and every one before it was handled."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: collections.OrderedDict[int, bool] = collections.OrderedDict()

    def delivered(self, offset: int) -> None:
        with self._lock:
            self._pending[offset] = False

    def handled(self, offset: int) -> int | None:
        """Marks `offset` handled; returns the new last offset handled in
        order (None when an earlier delivery is still being handled)."""
        last = None
        with self._lock:
            if offset not in self._pending:
                return None
            self._pending[offset] = True
            while self._pending:
                first, done = next(iter(self._pending.items()))
                if not done:
                    break
                del self._pending[first]
                last = first
        return last
