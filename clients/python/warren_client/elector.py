"""Elector: campaigns in an election and tells the application, through
callbacks, when it leads (with the fencing token), whom it follows, and
when it lost — including the two losses the server cannot report:

- the stream broke (UNAVAILABLE, server restart, network): lost at once,
  because the candidate node goes with the stream;
- the LEASE ran out: while leading, the server sends a heartbeat every
  `heartbeat_interval` only while its ZooKeeper session is connected and this
  candidate still leads. If nothing at all arrives for 2 intervals, the
  elector declares itself lost and ends its candidacy, before the server's
  session could expire and a successor be elected. `is_leader` checks the
  lease on every read, so it turns False in time even while a callback or
  the network is stuck.

After a loss it campaigns again (`recampaign=True`, the default, like
Curator's LeaderLatch; a resign or close() never re-campaigns) after a
capped, jittered backoff, on a stream opened wait-for-ready (it waits while
the channel reconnects). With recampaign=False the elector ends after the
first loss. Which stream endings are campaigned again is
retry_policy.stream_decision's rule; a fatal code (INVALID_ARGUMENT,
PERMISSION_DENIED, ...) stops the elector with a FatalError: its `error`,
`on_error(error)`, and raised by wait_elected().

`heartbeat_interval` (default 1 s) must be at most the server's cap (a third
of warrend's --zk_session_timeout): the server silently lowers a larger one,
and the client cannot see the lowered value, so the lease would be too long.

Threading: one thread owns the stream and calls the callbacks, in order.
Keep callbacks short (hand long work to another thread and have it check
`is_leader` / `fencing_token`).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Any, Callable

import grpc

from . import _defaults
from ._backoff import Backoff
from ._proto import election_pb2 as pb
from ._proto import election_pb2_grpc
from ._stream import RequestQueue, StreamEnd, StreamReader, StreamThread, Wake
from ._stream import duration, open_stream, run_stream_loop
from .errors import ClosedError, NotLeaderError, WarrenError
from .fence import Fence, election_fence

log = logging.getLogger("warren_client.elector")

# A warren.v1.Leader (the generated classes carry no type information).
Leader = Any


class LostReason(enum.Enum):
    """Why leadership ended: the server's reasons, then the client's own."""

    RESIGNED = "resigned"
    CONNECTION_SUSPENDED = "connection suspended"  # may come back, same token
    SESSION_EXPIRED = "session expired"
    LEASE_EXPIRED = "lease expired"  # no heartbeat for 2 intervals
    STREAM_BROKEN = "stream broken"  # UNAVAILABLE, server gone, ...


_SERVER_REASONS = {
    pb.LOSS_REASON_RESIGNED: LostReason.RESIGNED,
    pb.LOSS_REASON_CONNECTION_SUSPENDED: LostReason.CONNECTION_SUSPENDED,
    pb.LOSS_REASON_SESSION_EXPIRED: LostReason.SESSION_EXPIRED,
}


class Elector(StreamThread):
    """Campaigns in `election` until closed.

        def elected(leader):  print("leading with token", leader.fencing_token)
        with Elector(channel, "scheduler", on_elected=elected) as e:
            ...  # e.is_leader, e.fencing_token, e.leader

    Callbacks: on_elected(leader), on_following(leader or None while nobody
    leads), on_lost(LostReason); `leader` is a warren.v1.Leader.
    """

    thread_name = "warren-elector"

    def __init__(
        self,
        channel: grpc.Channel,
        election: str,
        *,
        candidate_id: str = "",
        value: bytes | str = b"",
        on_elected: Callable[[Leader], object] | None = None,
        on_following: Callable[[Leader | None], object] | None = None,
        on_lost: Callable[[LostReason], object] | None = None,
        recampaign: bool = _defaults.ELECTOR_REJOIN_AFTER_EXPIRY,
        heartbeat_interval: float = _defaults.ELECTOR_HEARTBEAT_INTERVAL_SECONDS,
        backoff: Backoff | None = None,
        on_error: Callable[[WarrenError], object] | None = None,
    ) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8")
        self._stub = election_pb2_grpc.ElectionServiceStub(channel)
        self._campaign = pb.ElectRequest(
            campaign=pb.Campaign(
                election=election,
                candidate_id=candidate_id,
                value=value,
                # Re-campaigning on a new session is what recampaign means.
                rejoin_after_expiry=recampaign,
                heartbeat_interval=duration(heartbeat_interval),
            )
        )
        self.election = election
        self.lease = 2 * heartbeat_interval
        self._on_elected = on_elected
        self._on_following = on_following
        self._on_lost = on_lost
        self._on_error = on_error
        self._recampaign = recampaign
        self._backoff = backoff.copy() if backoff else Backoff()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._leading = False
        self._lease_deadline = 0.0
        self._leader: Leader | None = None
        self._requests: RequestQueue[Any] | None = None
        self._reader: StreamReader | None = None
        self._thread: threading.Thread | None = None
        self.error: WarrenError | None = None  # why the elector gave up

    # -- state, safe from any thread -----------------------------------------

    @property
    def is_leader(self) -> bool:
        """True only while leading AND within the lease."""
        with self._lock:
            return self._leading and time.monotonic() < self._lease_deadline

    @property
    def fencing_token(self) -> int | None:
        """The token of this candidate's leadership, or None when not leading.
        Send it with every leader-only action so that receivers can reject a
        stale leader (a token lower than one they have seen)."""
        with self._lock:
            leader = self._leader
            if leader is not None and self._leading and time.monotonic() < self._lease_deadline:
                return int(leader.fencing_token)
            return None

    def fence(self) -> Fence:
        """A warren.v1.Fence of this leadership, for fenced config writes
        and publishes: the server refuses them (FenceError) once this
        candidate no longer leads, even if it still believes it does.
        Raises NotLeaderError when not leading now (the lease included)."""
        token = self.fencing_token
        if token is None:
            raise NotLeaderError("not leading %s: no fence" % self.election)
        return election_fence(self.election, token)

    @property
    def leader(self) -> Leader | None:
        """The last known leader (this candidate or another), or None."""
        with self._lock:
            return self._leader

    def wait_elected(self, timeout: float | None = None) -> bool:
        """Waits until this candidate leads; returns is_leader (False on
        timeout, after close() or after the loss that ends an elector with
        recampaign=False). Raises the elector's `error` (FatalError,
        ClosedError) if it gave up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not (self._leading or self._closing.is_set() or self._ended()):
                if self.error is not None:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(0.1 if remaining is None else min(0.1, remaining))
        if self.error is not None and not self._closing.is_set():
            raise self.error
        return self.is_leader

    def _ended(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    # -- lifecycle -------------------------------------------------------------

    def proclaim(self, value: bytes | str) -> None:
        """Updates the value published with this leader. Leader only: raises
        NotLeaderError otherwise. Should leadership be lost just as the
        proclaim reaches the server, the server refuses it by ending the
        stream with FAILED_PRECONDITION, which (a fatal code) stops the
        elector: its `error` and on_error say so."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        with self._lock:
            requests = self._requests if self._leading else None
        if requests is None or not requests.put(
            pb.ElectRequest(proclaim=pb.Proclaim(value=value))
        ):
            raise NotLeaderError("not leading %s" % self.election)

    def close(self, timeout: float = 5.0) -> None:
        """Resigns (on_lost(RESIGNED) if leading) and stops. Idempotent."""
        self._closing.set()
        with self._lock:
            if self._reader is not None:
                self._reader.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout + 5.0)

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the stream loop --------------------------------------------------------

    def _run(self) -> None:
        run_stream_loop(
            self._one_campaign,
            self._closing,
            self._backoff,
            self._give_up,
            self._log_retry,
            retries=self._recampaign,
        )
        with self._changed:
            self._changed.notify_all()

    def _give_up(self, error: WarrenError) -> None:
        with self._changed:
            self.error = error
            self._changed.notify_all()
        log.error("campaign in %s ended for good: %s", self.election, error)
        self._call(self._on_error, error)

    @staticmethod
    def _log_retry(end: StreamEnd, delay: float) -> None:
        log.info("elect stream ended (%s); campaigning again in %.2fs", end, delay)

    def _one_campaign(self) -> StreamEnd:
        requests: RequestQueue[Any] = RequestQueue()
        requests.put(self._campaign)
        try:
            reader = open_stream(
                self._stub.Elect, iter(requests), "warren-elect-reader", self._backoff
            )
        except ClosedError:
            requests.close()
            raise
        with self._lock:
            self._requests, self._reader = requests, reader
        try:
            return self._consume(requests, reader)
        finally:
            with self._lock:
                self._requests = self._reader = None
            requests.close()

    def _consume(self, requests: RequestQueue[Any], reader: StreamReader) -> StreamEnd:
        resigning = False
        resign_deadline = 0.0
        while True:
            if self._closing.is_set() and not resigning:
                # Resign by half-closing: the server resigns exactly as for a
                # Resign request (lost(RESIGNED) if we led, then the stream
                # ends OK), and a close() right after start() needs no
                # campaign to refer to. Don't wait forever for the end.
                resigning = True
                requests.close()
                resign_deadline = time.monotonic() + 5.0
            with self._lock:
                leading, lease_deadline = self._leading, self._lease_deadline
            now = time.monotonic()
            if resigning:
                timeout = max(0.0, resign_deadline - now)
            elif leading:
                timeout = max(0.0, lease_deadline - now)
            else:
                timeout = None
            item = reader.next(timeout)
            if item is None:
                reader.cancel()
                if resigning:
                    self._lose(LostReason.RESIGNED)
                else:
                    log.warning(
                        "no heartbeat for %.1fs while leading %s: stepping down",
                        self.lease,
                        self.election,
                    )
                    self._lose(LostReason.LEASE_EXPIRED)
                return reader.drain_to_end()
            if isinstance(item, Wake):
                continue
            if isinstance(item, StreamEnd):
                self._lose(LostReason.RESIGNED if resigning else LostReason.STREAM_BROKEN)
                return item
            self._on_response(item)

    def _on_response(self, response: Any) -> None:
        kind = response.WhichOneof("event")
        now = time.monotonic()
        if kind == "heartbeat":
            with self._lock:
                if self._leading:
                    self._lease_deadline = now + self.lease
            return
        if kind == "elected":
            with self._changed:
                self._leading = True
                self._lease_deadline = now + self.lease
                self._leader = response.elected.leader
                self._changed.notify_all()
            self._call(self._on_elected, response.elected.leader)
        elif kind == "following":
            leader = (
                response.following.leader
                if response.following.HasField("leader")
                else None
            )
            # The server always says lost before following; should that ever
            # not hold, never stay leader while following.
            self._lose(LostReason.STREAM_BROKEN)
            with self._lock:
                self._leader = leader
            self._call(self._on_following, leader)
        elif kind == "lost":
            self._lose(_SERVER_REASONS.get(response.lost.reason, LostReason.STREAM_BROKEN))

    def _lose(self, reason: LostReason) -> None:
        """Leaves the leading state; calls on_lost once if we were leading."""
        with self._changed:
            was_leading = self._leading
            self._leading = False
            if was_leading and self._leader is not None:
                self._leader = None  # we are not it any more; unknown who is
            self._changed.notify_all()
        if was_leading:
            self._call(self._on_lost, reason)

    def _call(self, callback: Callable[..., object] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("elector callback %r failed", callback)
