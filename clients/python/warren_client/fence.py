"""Fences: a write or publish that happens only while a leadership or a lock
still holds (warren.v1.Fence). The server checks a fenced config write
atomically with it, and a fenced publish just before it; a fence that no
longer holds is refused with FenceError and nothing happens.

Usually made by the holder itself: Elector.fence() while leading,
Lock.fence() for a held lock. These functions make one from a name and a
token received some other way (e.g. passed to a worker process).
"""

from __future__ import annotations

from typing import Any

from ._proto import common_pb2

# A warren.v1.Fence (the generated classes carry no type information).
Fence = Any


def _checked(token: int) -> int:
    if token <= 0:
        raise ValueError("a fencing token is positive, not %d" % token)
    return int(token)


def election_fence(election: str, fencing_token: int) -> Fence:
    """Holds while `election`'s leader has `fencing_token`."""
    return common_pb2.Fence(election=election, fencing_token=_checked(fencing_token))


def lock_fence(lock: str, fencing_token: int) -> Fence:
    """Holds while one of `lock`'s holders has `fencing_token`."""
    return common_pb2.Fence(lock=lock, fencing_token=_checked(fencing_token))


__all__ = ["Fence", "election_fence", "lock_fence"]
