"""Locker: distributed locks (mutexes) and semaphores of LockService, with
the fencing token and the lease rule of the Elector.

    locker = Locker(channel)
    with locker.acquire("reports/daily", timeout=30) as lock:
        ...                                   # lock.held, lock.fencing_token
        client.put_config("reports/last", "done", fence=lock.fence())

acquire() waits in the caller's thread until the lock is held (or raises
LockTimeoutError when `timeout` passes: None waits as long as it takes, 0
tries once). Waiting survives a broken stream: the stream is opened again,
after the backoff, within what is left of the timeout, by
retry_policy.stream_decision's rule (a fatal code raises FatalError). The
server deletes the waiter's node when its stream ends, so nothing is left
behind by a timeout or a retry.

Holding: a background thread reads the lock's stream. The server sends a
lease heartbeat only while it has fresh proof that its ZooKeeper session
lives; `held` is True only within two heartbeat intervals of the last one
(the interval the server put in force), so it turns False in time even if
the server froze. Losses:

- CONNECTION_SUSPENDED: `held` is False until the server says the lock is
  held again (same token, same node) — unless the lease runs out first;
- SESSION_EXPIRED, LEASE_EXPIRED (no heartbeat for 2 intervals: the stream
  is cancelled, which deletes the node if it still exists), STREAM_BROKEN:
  the lock is gone for good. It is never acquired again behind the
  caller's back: acquire again if you still need it.

Each loss calls `on_lost(LostReason)`; a loss for good also sets the `lost`
event. Releasing (release(), leaving the `with` block, Locker.close())
deletes the node at once and is not a loss.

Whatever the client believes, a downstream write or publish made with
`fence=lock.fence()` is refused once the lock no longer holds (FenceError).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Sequence

import grpc

from . import _defaults, retry_policy
from ._backoff import Backoff
from ._proto import election_pb2, lock_pb2, lock_pb2_grpc
from ._stream import RequestQueue, StreamEnd, StreamReader, Wake
from ._stream import duration, open_stream
from .elector import LostReason
from .errors import ClosedError, LockTimeoutError, fatal_error
from .fence import Fence, lock_fence

log = logging.getLogger("warren_client.locker")

# A warren.v1.LockHolder (the generated classes carry no type information).
LockHolder = Any

_SERVER_REASONS = {
    election_pb2.LOSS_REASON_CONNECTION_SUSPENDED: LostReason.CONNECTION_SUSPENDED,
    election_pb2.LOSS_REASON_SESSION_EXPIRED: LostReason.SESSION_EXPIRED,
}

# How the server says that wait_timeout passed (docs/semantics.md): the
# end of a bounded wait, not a deadline of the transport to retry on.
_WAIT_TIMEOUT_PREFIX = "acquire.wait_timeout"

# A wait is bounded by the server's wait_timeout; the client's own bound,
# for a server that cannot answer (down, frozen), comes this much later.
_CLIENT_GRACE_SECONDS = 2.0

# How long release() waits for the server to confirm before cancelling
# (which deletes the node just as well).
_RELEASE_WAIT_SECONDS = 5.0


class Lock:
    """A held lock, from Locker.acquire(). Use it as a context manager (or
    call release()). Safe to read from any thread."""

    def __init__(
        self,
        acquired: Any,
        requests: RequestQueue[Any],
        reader: StreamReader,
        requested_interval: float,
        on_lost: Callable[[LostReason], object] | None,
        forget: Callable[[Lock], None],
    ) -> None:
        self.holder: LockHolder = acquired.holder
        self.name: str = acquired.holder.name
        self.fencing_token: int = int(acquired.holder.fencing_token)
        interval = acquired.heartbeat_interval.ToNanoseconds() / 1e9
        # The server's interval in force; the requested one if it said none.
        self.heartbeat_interval = interval if interval > 0 else requested_interval
        self.lease = 2 * self.heartbeat_interval
        self.lost = threading.Event()  # set when the lock is gone for good
        self.lost_reason: LostReason | None = None
        self._requests = requests
        self._reader = reader
        self._on_lost = on_lost
        self._forget = forget
        self._lock = threading.Lock()
        self._suspended = False
        self._releasing = False
        self._ended = False
        self._lease_deadline = time.monotonic() + self.lease
        self._thread = threading.Thread(target=self._hold, name="warren-lock", daemon=True)
        self._thread.start()

    # -- state -------------------------------------------------------------------

    @property
    def held(self) -> bool:
        """True only while the lock is held AND within the lease."""
        with self._lock:
            return (
                not self._ended
                and not self._releasing
                and not self._suspended
                and time.monotonic() < self._lease_deadline
            )

    def fence(self) -> Fence:
        """A warren.v1.Fence of this lock's token, for fenced config writes
        and publishes: the server refuses them (FenceError) once the lock no
        longer holds."""
        return lock_fence(self.name, self.fencing_token)

    # -- release -------------------------------------------------------------------

    def release(self) -> None:
        """Gives the lock up: the server deletes the node at once. Returns
        once the stream ended (at most ~5 s; then it is cancelled, which
        deletes the node as well). Idempotent; not a loss (no on_lost)."""
        with self._lock:
            self._releasing = True
        self._reader.wake()
        if self._thread is not threading.current_thread():
            self._thread.join(_RELEASE_WAIT_SECONDS + 5.0)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return "Lock(%r, token=%d, held=%s)" % (self.name, self.fencing_token, self.held)

    # -- the holding thread ------------------------------------------------------

    def _hold(self) -> None:
        try:
            self._consume()
        finally:
            self._requests.close()
            with self._lock:
                self._ended = True
            self._forget(self)

    def _consume(self) -> None:
        release_deadline: float | None = None
        while True:
            with self._lock:
                releasing = self._releasing
                lease_deadline = self._lease_deadline
            now = time.monotonic()
            if releasing and release_deadline is None:
                # Release, then half-close: the server deletes the node and
                # ends the stream with OK.
                self._requests.put(lock_pb2.LockRequest(release=lock_pb2.Release()))
                self._requests.close()
                release_deadline = now + _RELEASE_WAIT_SECONDS
            deadline = release_deadline if release_deadline is not None else lease_deadline
            item = self._reader.next(max(0.0, deadline - now))
            if item is None:
                self._reader.cancel()  # the server deletes the node
                if release_deadline is None:
                    log.warning(
                        "no heartbeat for %.1fs while holding lock %s: given up",
                        self.lease,
                        self.name,
                    )
                    self._lose(LostReason.LEASE_EXPIRED, for_good=True)
                self._reader.drain_to_end()
                return
            if isinstance(item, Wake):
                continue
            if isinstance(item, StreamEnd):
                if release_deadline is None:
                    self._lose(LostReason.STREAM_BROKEN, for_good=True)
                return
            self._on_response(item)

    def _on_response(self, response: Any) -> None:
        kind = response.WhichOneof("event")
        with self._lock:
            if kind == "heartbeat" and not self._suspended:
                self._lease_deadline = time.monotonic() + self.lease
            elif kind == "acquired":
                # Back after a suspension: the same node, the same token.
                self._suspended = False
                self._lease_deadline = time.monotonic() + self.lease
        if kind == "lost":
            reason = _SERVER_REASONS.get(response.lost.reason, LostReason.STREAM_BROKEN)
            self._lose(reason, for_good=reason != LostReason.CONNECTION_SUSPENDED)

    def _lose(self, reason: LostReason, for_good: bool) -> None:
        with self._lock:
            if self.lost.is_set():
                return
            was_held = not self._suspended
            self._suspended = True
            if for_good:
                self.lost_reason = reason
                self.lost.set()
        if (was_held or for_good) and self._on_lost is not None:
            try:
                self._on_lost(reason)
            except Exception:
                log.exception("lock on_lost callback %r failed", self._on_lost)


class Locker:
    """Acquires locks on one channel. Thread-safe. close() (or the end of a
    `with` block) releases the locks it still holds and ends waits in
    progress with ClosedError.

    `holder_id` (shown to others; the server makes one when empty) and
    `heartbeat_interval` (default 1 s, as the Elector's; the server lowers
    it below its session timeout and says so) apply to every acquire."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        holder_id: str = "",
        heartbeat_interval: float = _defaults.ELECTOR_HEARTBEAT_INTERVAL_SECONDS,
        backoff: Backoff | None = None,
    ) -> None:
        self._stub = lock_pb2_grpc.LockServiceStub(channel)
        self.holder_id = holder_id
        self.heartbeat_interval = heartbeat_interval
        self._backoff = backoff.copy() if backoff else Backoff()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._waiting: set[StreamReader] = set()
        self._held: set[Lock] = set()

    def acquire(
        self,
        name: str,
        *,
        limit: int = 1,
        timeout: float | None = None,
        value: bytes | str = b"",
        on_lost: Callable[[LostReason], object] | None = None,
        on_queued: Callable[[int, Sequence[LockHolder]], object] | None = None,
    ) -> Lock:
        """Waits until `name` is held and returns the Lock. `limit`: 1 for a
        mutex, N for a semaphore of N (everyone using a lock must give the
        same). `timeout`: None waits as long as it takes, 0 tries once, else
        seconds. `on_queued(position, holders)` while waiting; `on_lost` see
        the module doc. Raises LockTimeoutError (not held within `timeout`),
        FatalError (e.g. INVALID_ARGUMENT, FAILED_PRECONDITION for another
        limit than the lock's, PERMISSION_DENIED) or ClosedError."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        if limit < 0 or (timeout is not None and timeout < 0):
            raise ValueError("limit and timeout must not be negative")
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = self._backoff.copy()
        while True:
            if self._closing.is_set():
                raise ClosedError("locker closed while acquiring %s" % name)
            acquire = lock_pb2.Acquire(
                name=name,
                holder_id=self.holder_id,
                value=value,
                limit=limit,
                heartbeat_interval=duration(self.heartbeat_interval),
            )
            if deadline is not None:
                acquire.wait_timeout.CopyFrom(
                    duration(max(0.0, deadline - time.monotonic()))
                )
            outcome = self._attempt(acquire, deadline, backoff, on_lost, on_queued)
            if isinstance(outcome, Lock):
                if self._closing.is_set():  # close() did not see it to release it
                    outcome.release()
                    raise ClosedError("locker closed while acquiring %s" % name)
                return outcome
            end = outcome
            if end.code == grpc.StatusCode.DEADLINE_EXCEEDED and end.details.startswith(
                _WAIT_TIMEOUT_PREFIX
            ):
                raise LockTimeoutError(end.details) from end.error
            if retry_policy.stream_decision(end.code) == retry_policy.FATAL:
                raise fatal_error(end.code, end.details) from end.error
            delay = backoff.next_delay()
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise LockTimeoutError(
                    "lock %s not acquired within %.3gs (the last attempt ended %s: %s)"
                    % (name, timeout or 0.0, end.code.name, end.details)
                ) from end.error
            log.info("lock stream for %s ended (%s); again in %.2fs", name, end, delay)
            if self._closing.wait(delay):
                raise ClosedError("locker closed while acquiring %s" % name)

    def try_acquire(
        self,
        name: str,
        *,
        limit: int = 1,
        value: bytes | str = b"",
        on_lost: Callable[[LostReason], object] | None = None,
    ) -> Lock | None:
        """Tries once: the Lock if `name` could be held at once, else None."""
        try:
            return self.acquire(name, limit=limit, timeout=0, value=value, on_lost=on_lost)
        except LockTimeoutError:
            return None

    def _attempt(
        self,
        acquire: Any,
        deadline: float | None,
        backoff: Backoff,
        on_lost: Callable[[LostReason], object] | None,
        on_queued: Callable[[int, Sequence[LockHolder]], object] | None,
    ) -> Lock | StreamEnd:
        """One Lock stream: the Lock once acquired, or how the stream ended."""
        requests: RequestQueue[Any] = RequestQueue()
        requests.put(lock_pb2.LockRequest(acquire=acquire))
        try:
            reader = open_stream(self._stub.Lock, iter(requests), "warren-lock-reader", backoff)
        except ClosedError:
            requests.close()
            raise
        with self._lock:
            self._waiting.add(reader)
        try:
            while True:
                if self._closing.is_set():
                    reader.cancel()
                    reader.drain_to_end()
                    raise ClosedError("locker closed while acquiring %s" % acquire.name)
                timeout = None
                if deadline is not None:
                    timeout = max(0.0, deadline + _CLIENT_GRACE_SECONDS - time.monotonic())
                item = reader.next(timeout)
                if item is None:
                    # The server did not answer in time (unreachable, frozen):
                    # cancelling deletes whatever node it may have made.
                    reader.cancel()
                    reader.drain_to_end()
                    raise LockTimeoutError(
                        "lock %s not acquired within the timeout: no answer from the server"
                        % acquire.name
                    )
                if isinstance(item, Wake):
                    continue
                if isinstance(item, StreamEnd):
                    requests.close()
                    return item
                kind = item.WhichOneof("event")
                if kind == "queued" and on_queued is not None:
                    try:
                        on_queued(int(item.queued.position), list(item.queued.holders))
                    except Exception:
                        log.exception("lock on_queued callback %r failed", on_queued)
                elif kind == "acquired":
                    lock = Lock(
                        item.acquired, requests, reader, self.heartbeat_interval, on_lost,
                        self._forget,
                    )
                    with self._lock:
                        self._held.add(lock)
                    return lock
        except BaseException:
            requests.close()
            raise
        finally:
            with self._lock:
                self._waiting.discard(reader)

    def _forget(self, lock: Lock) -> None:
        with self._lock:
            self._held.discard(lock)

    def close(self) -> None:
        """Ends waits in progress (ClosedError) and releases every lock this
        locker still holds. Idempotent."""
        self._closing.set()
        with self._lock:
            waiting, held = list(self._waiting), list(self._held)
        for reader in waiting:
            reader.wake()
        for lock in held:
            lock.release()

    def __enter__(self) -> Locker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Lock", "LockHolder", "Locker", "LostReason"]
