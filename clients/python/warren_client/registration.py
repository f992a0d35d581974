"""Registration: a config key that exists while this client is alive
(service registration), held by a HoldKey stream.

    with Registration(channel, "services/api/" + host, address) as reg:
        reg.wait_held(10)      # readers see the key (Get/List/WatchConfig)
        ...                    # reg.held, reg.set_value(new_address)
    # gone: the server deleted the key when the stream ended

The key is an ephemeral node of warrend's ZooKeeper session: it goes when
the stream ends (close(), or the process dies and its connection with it)
and when warrend's session expires; the server creates it again on its new
session (`lost`, then `held` again). When the stream itself breaks
(warrend restarted, network), the registration holds the key again on a new
stream after the backoff, by retry_policy.stream_decision's rule; a fatal
code (INVALID_ARGUMENT, PERMISSION_DENIED, ALREADY_EXISTS: another holder
or a persistent key has it) stops it with a FatalError: its `error`,
`on_error(error)`, and raised by wait_held().

The lease, as the Elector's: while held, the server sends a heartbeat every
`heartbeat_interval` only with fresh proof that its session (and so the
key) lives; `held` is True only within 2 intervals of the last one. When
they stop, the stream is given up and opened again.

Callbacks, on the registration's thread, in order: on_held(entry) (a
warren.v1.ConfigEntry) after each create, value change or re-hold;
on_lost(LostReason) when the key may be or is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import grpc

from . import _defaults
from ._backoff import Backoff
from ._proto import config_pb2 as pb
from ._proto import config_pb2_grpc, election_pb2
from ._stream import RequestQueue, StreamEnd, StreamReader, StreamThread, Wake
from ._stream import duration, open_stream, run_stream_loop
from .elector import LostReason
from .errors import ClosedError, WarrenError

log = logging.getLogger("warren_client.registration")

# A warren.v1.ConfigEntry (the generated classes carry no type information).
ConfigEntry = Any

_SERVER_REASONS = {
    election_pb2.LOSS_REASON_CONNECTION_SUSPENDED: LostReason.CONNECTION_SUSPENDED,
    election_pb2.LOSS_REASON_SESSION_EXPIRED: LostReason.SESSION_EXPIRED,
}


class Registration(StreamThread):
    """Holds `key` with `value` until closed (start() it, or use `with`)."""

    thread_name = "warren-registration"

    def __init__(
        self,
        channel: grpc.Channel,
        key: str,
        value: bytes | str = b"",
        *,
        heartbeat_interval: float = _defaults.ELECTOR_HEARTBEAT_INTERVAL_SECONDS,
        on_held: Callable[[ConfigEntry], object] | None = None,
        on_lost: Callable[[LostReason], object] | None = None,
        backoff: Backoff | None = None,
        on_error: Callable[[WarrenError], object] | None = None,
    ) -> None:
        self._stub = config_pb2_grpc.ConfigServiceStub(channel)
        self.key = key
        self.heartbeat_interval = heartbeat_interval
        self.lease = 2 * heartbeat_interval
        self._value = value.encode("utf-8") if isinstance(value, str) else value
        self._on_held = on_held
        self._on_lost = on_lost
        self._on_error = on_error
        self._backoff = backoff.copy() if backoff else Backoff()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._holding = False
        self._lease_deadline = 0.0
        self._entry: ConfigEntry | None = None
        self._requests: RequestQueue[Any] | None = None
        self._reader: StreamReader | None = None
        self._thread: threading.Thread | None = None
        self.holds = 0  # how often the key became held (the first time and each re-hold)
        self.error: WarrenError | None = None  # why the registration gave up

    # -- state, safe from any thread -----------------------------------------

    @property
    def held(self) -> bool:
        """True only while the server says the key is held AND within the
        lease."""
        with self._lock:
            return self._holding and time.monotonic() < self._lease_deadline

    @property
    def entry(self) -> ConfigEntry | None:
        """The key as last held (a warren.v1.ConfigEntry), or None."""
        with self._lock:
            return self._entry

    @property
    def value(self) -> bytes:
        """The value this registration holds (or will hold again)."""
        with self._lock:
            return self._value

    def wait_held(self, timeout: float | None = None) -> bool:
        """Waits until the key is held; returns `held` (False on timeout or
        after close()). Raises the registration's `error` (FatalError,
        ClosedError) if it gave up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not (self._holding or self._closing.is_set() or self.error is not None):
                if self._thread is not None and not self._thread.is_alive():
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(0.1 if remaining is None else min(0.1, remaining))
        if self.error is not None and not self._closing.is_set():
            raise self.error
        return self.held

    # -- lifecycle ---------------------------------------------------------------

    def set_value(self, value: bytes | str) -> None:
        """Changes the held value (on_held with the new entry once the server
        wrote it); a later re-hold uses it too."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        with self._lock:
            self._value = value
            requests = self._requests
        if requests is not None:
            requests.put(pb.HoldKeyRequest(key=self.key, value=value))

    def close(self, timeout: float = 5.0) -> None:
        """Ends the stream: the server deletes the key at once (on_lost is
        not called). Idempotent."""
        self._closing.set()
        with self._lock:
            if self._reader is not None:
                self._reader.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout + 5.0)

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the stream loop ---------------------------------------------------------

    def _run(self) -> None:
        run_stream_loop(
            self._one_hold, self._closing, self._backoff, self._give_up, self._log_retry
        )
        with self._changed:
            self._holding = False
            self._changed.notify_all()

    def _give_up(self, error: WarrenError) -> None:
        with self._changed:
            self.error = error
            self._changed.notify_all()
        log.error("holding %r ended for good: %s", self.key, error)
        self._call(self._on_error, error)

    def _log_retry(self, end: StreamEnd, delay: float) -> None:
        log.warning("hold stream of %r ended (%s); holding again in %.2fs", self.key, end, delay)

    def _one_hold(self) -> StreamEnd:
        requests: RequestQueue[Any] = RequestQueue()
        with self._lock:
            requests.put(
                pb.HoldKeyRequest(
                    key=self.key,
                    value=self._value,
                    heartbeat_interval=duration(self.heartbeat_interval),
                )
            )
        try:
            reader = open_stream(
                self._stub.HoldKey, iter(requests), "warren-hold-reader", self._backoff
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
        close_deadline: float | None = None
        while True:
            if self._closing.is_set() and close_deadline is None:
                # Half-close: the server deletes the key, then ends the
                # stream with OK. Don't wait forever for that.
                requests.close()
                close_deadline = time.monotonic() + 5.0
            with self._lock:
                holding, lease_deadline = self._holding, self._lease_deadline
            now = time.monotonic()
            if close_deadline is not None:
                timeout: float | None = max(0.0, close_deadline - now)
            elif holding:
                timeout = max(0.0, lease_deadline - now)
            else:
                timeout = None
            item = reader.next(timeout)
            if item is None:
                reader.cancel()  # the server deletes the key
                if close_deadline is None:
                    log.warning(
                        "no heartbeat for %.1fs while holding %r: holding again",
                        self.lease,
                        self.key,
                    )
                    self._lose(LostReason.LEASE_EXPIRED)
                else:
                    self._lose(None)
                return reader.drain_to_end()
            if isinstance(item, Wake):
                continue
            if isinstance(item, StreamEnd):
                self._lose(None if close_deadline is not None else LostReason.STREAM_BROKEN)
                return item
            self._on_response(item)

    def _on_response(self, response: Any) -> None:
        kind = response.WhichOneof("event")
        if kind == "heartbeat":
            with self._lock:
                if self._holding:
                    self._lease_deadline = time.monotonic() + self.lease
        elif kind == "held":
            with self._changed:
                if not self._holding:
                    self.holds += 1
                self._holding = True
                self._lease_deadline = time.monotonic() + self.lease
                self._entry = response.held
                self._changed.notify_all()
            self._call(self._on_held, response.held)
        elif kind == "lost":
            self._lose(_SERVER_REASONS.get(response.lost.reason, LostReason.STREAM_BROKEN))

    def _lose(self, reason: LostReason | None) -> None:
        """Leaves the held state; calls on_lost(reason) once if it was held
        (reason None: closed by the caller, no callback)."""
        with self._changed:
            was_holding = self._holding
            self._holding = False
            self._changed.notify_all()
        if was_holding and reason is not None:
            self._call(self._on_lost, reason)

    def _call(self, callback: Callable[..., object] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            log.exception("registration callback %r failed", callback)


__all__ = ["ConfigEntry", "Registration"]
