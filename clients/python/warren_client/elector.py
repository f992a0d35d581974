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
capped, jittered backoff. With recampaign=False the elector ends after the
first loss.

`heartbeat_interval` (default 1 s) must be at most the server's cap (a third
of warrend's --zk_session_timeout): the server silently lowers a larger one,
and the client cannot see the lowered value, so the lease would be too long.

Threading: one thread owns the stream and calls the callbacks, in order.
Keep callbacks short (hand long work to another thread and have it check
`is_leader` / `fencing_token`).
"""

import enum
import logging
import threading
import time

import grpc

from ._backoff import Backoff
from ._proto import election_pb2 as pb
from ._proto import election_pb2_grpc
from ._stream import RequestQueue, StreamEnd, StreamReader, Wake, duration

log = logging.getLogger("warren_client.elector")

# Statuses after which campaigning again cannot help.
FATAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


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


class Elector:
    """Campaigns in `election` until closed.

        def elected(leader):  print("leading with token", leader.fencing_token)
        with Elector(channel, "scheduler", on_elected=elected) as e:
            ...  # e.is_leader, e.fencing_token, e.leader

    Callbacks: on_elected(leader), on_following(leader or None while nobody
    leads), on_lost(LostReason); `leader` is a warren.v1.Leader.
    """

    def __init__(
        self,
        channel,
        election,
        *,
        candidate_id="",
        value=b"",
        on_elected=None,
        on_following=None,
        on_lost=None,
        recampaign=True,
        heartbeat_interval=1.0,
        backoff=None,
    ):
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
        self._recampaign = recampaign
        self._backoff = backoff.copy() if backoff else Backoff(0.2, 5.0)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._leading = False
        self._lease_deadline = 0.0
        self._leader = None
        self._requests = None
        self._reader = None
        self._thread = None
        self.error = None  # grpc status end that stopped the elector

    # -- state, safe from any thread -----------------------------------------

    @property
    def is_leader(self):
        """True only while leading AND within the lease."""
        with self._lock:
            return self._leading and time.monotonic() < self._lease_deadline

    @property
    def fencing_token(self):
        """The token of this candidate's leadership, or None when not leading.
        Send it with every leader-only action so that receivers can reject a
        stale leader (a token lower than one they have seen)."""
        with self._lock:
            if self._leading and time.monotonic() < self._lease_deadline:
                return self._leader.fencing_token
            return None

    @property
    def leader(self):
        """The last known leader (this candidate or another), or None."""
        with self._lock:
            return self._leader

    def wait_elected(self, timeout=None):
        """Waits until this candidate leads; returns is_leader."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not (self._leading or self._closing.is_set() or self._ended()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(0.1 if remaining is None else min(0.1, remaining))
        return self.is_leader

    def _ended(self):
        return self._thread is not None and not self._thread.is_alive()

    # -- lifecycle -------------------------------------------------------------

    def start(self):
        if self._thread is not None:
            raise RuntimeError("Elector.start() called twice")
        self._thread = threading.Thread(
            target=self._run, name="warren-elector", daemon=True
        )
        self._thread.start()
        return self

    def proclaim(self, value):
        """Updates the value published with this leader. Leader only: raises
        RuntimeError otherwise (and if leadership was lost just now, the
        server ends the stream and the elector campaigns again)."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        with self._lock:
            requests = self._requests if self._leading else None
        # Only once elected: a proclaim is for leaders (and one sent before
        # the server set up the campaign trips the same warrend bug as an
        # early Resign, see _consume).
        if requests is None or not requests.put(
            pb.ElectRequest(proclaim=pb.Proclaim(value=value))
        ):
            raise RuntimeError("not leading %s" % self.election)

    def close(self, timeout=5.0):
        """Resigns (on_lost(RESIGNED) if leading) and stops. Idempotent."""
        self._closing.set()
        with self._lock:
            if self._reader is not None:
                self._reader.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout + 5.0)

    def __enter__(self):
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the stream loop --------------------------------------------------------

    def _run(self):
        while not self._closing.is_set():
            end = self._one_campaign()
            if self._closing.is_set():
                break
            if end.code in FATAL_CODES:
                self.error = end
                log.error("campaign refused, giving up: %s", end)
                break
            if not self._recampaign:
                break
            delay = self._backoff.next_delay()
            log.info("elect stream ended (%s); campaigning again in %.2fs", end, delay)
            if self._closing.wait(delay):
                break
        with self._changed:
            self._changed.notify_all()

    def _one_campaign(self):
        requests = RequestQueue()
        requests.put(self._campaign)
        reader = StreamReader(self._stub.Elect(iter(requests)), "warren-elect-reader")
        with self._lock:
            self._requests, self._reader = requests, reader
        try:
            return self._consume(requests, reader)
        finally:
            with self._lock:
                self._requests = self._reader = None
            requests.close()

    def _consume(self, requests, reader):
        resigning = False
        while True:
            if self._closing.is_set() and not resigning:
                # Resign by half-closing: the server resigns exactly as for a
                # Resign request (lost(RESIGNED) if we led, then the stream
                # ends OK). Not an explicit Resign: warrend (this version)
                # crashes on a Resign read before its campaign is set up,
                # i.e. a close() right after start(). Don't wait forever.
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
                return self._drain_to_end(reader)
            if isinstance(item, Wake):
                continue
            if isinstance(item, StreamEnd):
                self._lose(LostReason.RESIGNED if resigning else LostReason.STREAM_BROKEN)
                return item
            self._on_response(item)

    def _on_response(self, response):
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
            self._backoff.reset()
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
            self._backoff.reset()
            self._call(self._on_following, leader)
        elif kind == "lost":
            self._lose(_SERVER_REASONS.get(response.lost.reason, LostReason.STREAM_BROKEN))

    def _lose(self, reason):
        """Leaves the leading state; calls on_lost once if we were leading."""
        with self._changed:
            was_leading = self._leading
            self._leading = False
            if was_leading and self._leader is not None:
                self._leader = None  # we are not it any more; unknown who is
            self._changed.notify_all()
        if was_leading:
            self._call(self._on_lost, reason)

    def _call(self, callback, *args):
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("elector callback %r failed", callback)

    @staticmethod
    def _drain_to_end(reader):
        while True:
            item = reader.next(timeout=10.0)
            if item is None:
                return StreamEnd()
            if isinstance(item, StreamEnd):
                return item
