"""Plumbing shared by the stream wrappers: a request queue for bidi calls, a
reader thread that turns a response iterator into a queue with timeouts, and
the loop that re-opens a stream by retry_policy's rule, run on the thread
of a StreamThread.

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
from ._backoff import Backoff
from .errors import ClosedError, FatalError, WarrenError, status_of

T = TypeVar("T")
W = TypeVar("W", bound="StreamThread")

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
    one StreamEnd. The first response next() returns resets `backoff`: a
    stream that answered counts as a success for the retry delays."""

    def __init__(self, call: Any, name: str, backoff: Backoff) -> None:
        self.call = call
        self._backoff: Backoff | None = backoff
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
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if self._backoff is not None and not isinstance(item, (StreamEnd, Wake)):
            self._backoff.reset()
            self._backoff = None
        return item

    def drain_to_end(self) -> StreamEnd:
        """Skips what is left, up to the StreamEnd (after cancel() or a
        half-close). A stream that does not end within 10 s counts as ended OK."""
        while True:
            try:
                item = self.inbox.get(timeout=10.0)
            except queue.Empty:
                return StreamEnd()
            if isinstance(item, StreamEnd):
                return item

    def wake(self) -> None:
        self.inbox.put(Wake())

    def cancel(self) -> None:
        self.call.cancel()


def open_stream(
    method: Callable[..., Any], request: Any, name: str, backoff: Backoff
) -> StreamReader:
    """Calls the stream `method` wait-for-ready (the stream waits while the
    channel reconnects instead of failing at once) and reads it on a thread
    called `name`; its first response resets `backoff`. Raises ClosedError
    when the channel was closed."""
    try:
        call = method(request, wait_for_ready=retry_policy.STREAMS_WAIT_FOR_READY)
    except ValueError as error:  # grpc: "Cannot invoke RPC on closed channel!"
        raise ClosedError("the channel was closed: %s" % error) from error
    return StreamReader(call, name, backoff)


def run_stream_loop(
    attempt: Callable[[], StreamEnd],
    stopping: threading.Event,
    backoff: Backoff,
    give_up: Callable[[WarrenError], None],
    log_retry: Callable[[StreamEnd, float], None],
    retries: bool = True,
    retry_anyway: Callable[[StreamEnd], bool] | None = None,
) -> None:
    """Runs `attempt` (one stream, to its end) until `stopping` is set, the
    end is fatal by retry_policy.stream_decision, or the channel was closed;
    in between waits backoff.next_delay(), cut short by `stopping`.

    `give_up(error)` is called with the ClosedError, or a FatalError for a
    fatal end; `log_retry(end, delay)` before each wait. With retries=False
    the loop ends quietly after the first non-fatal end. `retry_anyway(end)`,
    if given, may turn a fatal end into a retry (a wrapper's documented
    exception to the table)."""
    while not stopping.is_set():
        try:
            end = attempt()
        except ClosedError as error:
            give_up(error)
            return
        if stopping.is_set():
            return
        if retry_policy.stream_decision(end.code) == retry_policy.FATAL and not (
            retry_anyway is not None and retry_anyway(end)
        ):
            give_up(FatalError(end.code, end.details))
            return
        if not retries:
            return
        delay = backoff.next_delay()
        log_retry(end, delay)
        if stopping.wait(delay):
            return


class StreamThread:
    """start() and `with` of a wrapper whose streams run on one daemon thread
    of its own, named `thread_name`, running `_run`. The wrapper sets
    `_thread = None` in __init__ and ends the thread in its __exit__."""

    thread_name = "warren-stream"
    _thread: threading.Thread | None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self: W) -> W:
        """Starts the stream thread; returns self."""
        if self._thread is not None:
            raise RuntimeError("%s.start() called twice" % type(self).__name__)
        self._thread = threading.Thread(
            target=self._run, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def __enter__(self: W) -> W:
        if self._thread is None:
            self.start()
        return self
