"""ConfigWatcher: the latest value of a config key, or of every key under a
prefix, kept up to date by a WatchConfig stream that is re-opened when it
breaks.

Within one stream the server reports every change (and after its own
ZooKeeper reconnects, the differences). A NEW stream, after UNAVAILABLE or a
server restart, starts again with the complete current state; the watcher
reconciles it with what it held: keys gone are reported as DELETE, new or
changed keys as PUT, unchanged keys not at all. So the application sees one
continuous sequence of changes that always ends at the latest state
(intermediate versions may be coalesced, as ZooKeeper does).

Which stream endings are retried is retry_policy.stream_decision's rule
(RESOURCE_EXHAUSTED at the server's max_watches included: a slot may free
up); a fatal code (INVALID_ARGUMENT, PERMISSION_DENIED, ...) stops the
watcher with a FatalError: its `error`, `on_error(error)`, and raised by
wait_ready() / wait_for().

Threading: one thread owns the stream and calls on_change(changes) with the
watcher's state already updated. Reading the state is safe from any thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Sequence

import grpc

from ._backoff import Backoff
from ._proto import config_pb2 as pb
from ._proto import config_pb2_grpc
from ._stream import StreamEnd, StreamReader, StreamThread, Wake
from ._stream import duration, open_stream, run_stream_loop
from .errors import WarrenError

log = logging.getLogger("warren_client.config_watcher")

PUT = "PUT"
DELETE = "DELETE"


@dataclasses.dataclass(frozen=True)
class Change:
    """One change of one key: `type` is PUT or DELETE; for a DELETE, `value`
    and `version` are the last ones known."""

    type: str
    key: str
    value: bytes
    version: int


class ConfigWatcher(StreamThread):
    """Watches `key` (with prefix=True: the key and everything below it).

        with ConfigWatcher(channel, "app/db/url", on_change=print) as w:
            w.wait_ready(5)
            url = w.value           # bytes, or None while the key is absent
    """

    thread_name = "warren-config-watcher"

    def __init__(
        self,
        channel: grpc.Channel,
        key: str,
        *,
        prefix: bool = False,
        on_change: Callable[[list[Change]], object] | None = None,
        heartbeat_interval: float = 15.0,
        backoff: Backoff | None = None,
        on_error: Callable[[WarrenError], object] | None = None,
    ) -> None:
        self._stub = config_pb2_grpc.ConfigServiceStub(channel)
        self._request = pb.WatchConfigRequest(
            key=key, prefix=prefix, heartbeat_interval=duration(heartbeat_interval)
        )
        self.key = key
        self.prefix = prefix
        self._on_change = on_change
        self._on_error = on_error
        # A quiet stream has a heartbeat at least every interval; 3 intervals
        # of silence means it is dead even if TCP did not notice.
        self._idle_timeout = 3 * heartbeat_interval
        self._backoff = backoff.copy() if backoff else Backoff()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._entries: dict[str, Any] = {}  # key -> warren.v1.ConfigEntry
        self._ready = False
        self._closing = threading.Event()
        self._reader: StreamReader | None = None
        self._thread: threading.Thread | None = None
        self.watches = 0  # how many streams delivered an initial state
        self.error: WarrenError | None = None  # why the watcher gave up

    # -- state ------------------------------------------------------------------

    @property
    def entries(self) -> dict[str, bytes]:
        """A copy of the current state: {key: value bytes}."""
        with self._lock:
            return {k: e.value for k, e in self._entries.items()}

    @property
    def value(self) -> bytes | None:
        """The watched key's value (bytes), or None while it does not exist."""
        return self.get(self.key)

    def get(self, key: str, default: bytes | None = None) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            return default if entry is None else entry.value

    def version(self, key: str | None = None) -> int | None:
        """The version of `key` (default: the watched key), or None."""
        with self._lock:
            entry = self._entries.get(self.key if key is None else key)
            return None if entry is None else entry.version

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Waits for the first complete state; returns whether it came
        (False on timeout or after close()). Raises the watcher's `error`
        (FatalError, ClosedError) if it gave up."""
        return self.wait_for(lambda _entries: True, timeout)

    def wait_for(
        self, predicate: Callable[[dict[str, bytes]], object], timeout: float | None = None
    ) -> bool:
        """Waits until `predicate({key: value})` is true on a received state;
        returns whether it became true within `timeout` seconds (False after
        close()). Raises the watcher's `error` if it gave up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                if self._ready and predicate(
                    {k: e.value for k, e in self._entries.items()}
                ):
                    return True
                if self.error is not None:
                    raise self.error
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or (
                    self._thread is not None and not self._thread.is_alive()
                ):
                    return False
                self._changed.wait(0.1 if remaining is None else min(0.1, remaining))

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            if self._reader is not None:
                self._reader.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the stream loop -----------------------------------------------------------

    def _run(self) -> None:
        run_stream_loop(
            self._one_watch, self._closing, self._backoff, self._give_up, self._log_retry
        )
        with self._changed:
            self._changed.notify_all()

    def _give_up(self, error: WarrenError) -> None:
        with self._changed:
            self.error = error
            self._changed.notify_all()
        log.error("watch of %r ended for good: %s", self.key, error)
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("config watcher on_error callback failed")

    def _log_retry(self, end: StreamEnd, delay: float) -> None:
        log.warning("watch of %r ended (%s); again in %.2fs", self.key, end, delay)

    def _one_watch(self) -> StreamEnd:
        reader = open_stream(
            self._stub.WatchConfig, self._request, "warren-watch-reader", self._backoff
        )
        with self._lock:
            self._reader = reader
        if self._closing.is_set():  # close() ran before _reader was set
            reader.cancel()
        # A large initial state arrives in several responses: the ones before
        # the one marked initial_state hold PUTs of the same state
        # (docs/config-limits.md). They are gathered and reconciled as one.
        initial: list[Any] = []
        synced = False
        try:
            while True:
                item = reader.next(timeout=self._idle_timeout)
                if item is None:
                    reader.cancel()
                    continue  # the reader reports CANCELLED next
                if isinstance(item, Wake):
                    continue
                if isinstance(item, StreamEnd):
                    return item
                if not synced:
                    initial.extend(item.events)
                    if not item.initial_state:
                        continue
                    synced = True
                    self._apply(self._reconcile(initial))
                    initial = []
                elif item.events:
                    self._apply(self._changes(item.events))
        finally:
            with self._lock:
                self._reader = None

    def _reconcile(self, events: Sequence[Any]) -> list[Change]:
        """A new stream's complete state, as changes against what we hold."""
        fresh = {e.entry.key: e.entry for e in events if e.type == pb.CONFIG_EVENT_TYPE_PUT}
        with self._lock:
            old = dict(self._entries)
            self._entries = fresh
            self._ready = True
            self.watches += 1
        changes = [
            Change(DELETE, k, e.value, e.version) for k, e in old.items() if k not in fresh
        ]
        for k, e in fresh.items():
            before = old.get(k)
            if before is None or (before.version, before.value) != (e.version, e.value):
                changes.append(Change(PUT, k, e.value, e.version))
        return changes

    def _changes(self, events: Sequence[Any]) -> list[Change]:
        changes = []
        with self._lock:
            for event in events:
                entry = event.entry
                if event.type == pb.CONFIG_EVENT_TYPE_PUT:
                    self._entries[entry.key] = entry
                    changes.append(Change(PUT, entry.key, entry.value, entry.version))
                elif event.type == pb.CONFIG_EVENT_TYPE_DELETE:
                    # The server's DELETE carries the key and version only;
                    # report the last value we knew.
                    last = self._entries.pop(entry.key, None)
                    value = last.value if last is not None else entry.value
                    changes.append(Change(DELETE, entry.key, value, entry.version))
        return changes

    def _apply(self, changes: list[Change]) -> None:
        with self._changed:
            self._changed.notify_all()
        if changes and self._on_change is not None:
            try:
                self._on_change(changes)
            except Exception:
                log.exception("on_change callback failed")
