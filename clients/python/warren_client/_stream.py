"""Plumbing shared by the stream wrappers: a request queue for bidi calls and
a reader thread that turns a response iterator into a queue with timeouts.

The sync gRPC API blocks in `next(call)` with no timeout, yet every wrapper
must notice a silent stream (missed heartbeats) and a stop request. So one
daemon thread per stream only reads, and the wrapper's own thread waits on
the queue with a timeout.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Generic, Iterator, TypeVar, Union

import grpc
from google.protobuf import duration_pb2

from . import retry_policy
from .errors import ClosedError, status_of

T = TypeVar("T")

_END = object()


def duration(seconds: float) -> duration_pb2.Duration:
    """A google.protobuf.Duration for `seconds` (float)."""
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(round(seconds * 1e9)))
    return d


class RequestQueue(Generic[T]):
    """The request iterator of a bidi call, fed from any thread.

    gRPC consumes it on a thread of its own; close() half-closes the call once
    everything put before it was sent. Always close it when the call ends,
    or gRPC's consumer thread waits here forever.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()

    def put(self, request: T) -> bool:
        """Queues a request; returns False (and drops it) after close()."""
        with self._lock:
            if self._closed:
                return False
            self._queue.put(request)
            return True

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_END)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            yield item


class StreamEnd:
    """The end of a response stream: `code` is grpc.StatusCode.OK when the
    server finished it normally."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        if error is None:
            self.code, self.details = grpc.StatusCode.OK, ""
        else:
            self.code, self.details = status_of(error)

    def __repr__(self) -> str:
        return "StreamEnd(%s, %r)" % (self.code.name, self.details)


class Wake:
    """Put into a reader's inbox to wake the thread waiting on it."""


class StreamReader:
    """Reads `call` on a daemon thread into `inbox`: responses, then exactly
    one StreamEnd."""

    def __init__(self, call: Any, name: str) -> None:
        self.call = call
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.inbox.put(response)
            end = StreamEnd()
        except Exception as error:  # grpc.RpcError, or anything gRPC raised
            end = StreamEnd(error)
        self.ended.set()
        self.inbox.put(end)

    def next(self, timeout: float | None) -> Union[Any, StreamEnd, Wake, None]:
        """The next item (response, StreamEnd or Wake), or None on timeout."""
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def wake(self) -> None:
        self.inbox.put(Wake())

    def cancel(self) -> None:
        self.call.cancel()


def open_stream(method: Callable[..., Any], request: Any, name: str) -> StreamReader:
    """Calls the stream `method` wait-for-ready (the stream waits while the
    channel reconnects instead of failing at once) and reads it on a thread
    called `name`. Raises ClosedError when the channel was closed."""
    try:
        call = method(request, wait_for_ready=retry_policy.STREAMS_WAIT_FOR_READY)
    except ValueError as error:  # grpc: "Cannot invoke RPC on closed channel!"
        raise ClosedError("the channel was closed: %s" % error) from error
    return StreamReader(call, name)
