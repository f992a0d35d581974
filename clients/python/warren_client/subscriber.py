"""Subscriber: runs a handler per delivery and settles it, over a Subscribe
stream that it re-opens when it breaks.

What raw stubs make easy to get wrong, and what this does instead:
- settling: the handler returning acks the delivery; raising nacks it
  (requeued unless `requeue_on_error=False`, or the handler raised Reject;
  back after a delay with `retry_after=` or when it raised Retry);
- stream queues keep their messages, so a stream broken mid-way is resumed
  at the offset after the last one handled (no gap, no repeat) instead of
  where the first subscription started; `last_offset` tells the caller too;
- delivery ids belong to ONE stream: a handler that finishes after its stream
  broke must not ack on the next stream (the id would name another message,
  or end the stream with INVALID_ARGUMENT). Its settlement is dropped; the
  server has already requeued the message, so it comes again (at-least-once:
  handlers must be idempotent, e.g. de-duplicate by `message_id`);
- flow control: at most `max_in_flight` handlers run at once (a pool of that
  many threads, and the same number as the server's prefetch);
- liveness: a stream that ends with a code retry_policy.stream_decision
  says to resubscribe on (UNAVAILABLE, RESOURCE_EXHAUSTED, OK: the server
  ended it without being asked, ...) or that is silent for 3 heartbeat
  intervals is re-opened after a capped, jittered backoff, wait-for-ready
  (it waits while the channel reconnects); a fatal code (INVALID_ARGUMENT,
  NOT_FOUND, PERMISSION_DENIED, ...) stops the subscriber with a FatalError
  (its `error`, `on_error(error)`, raised by wait_subscribed);
- stop(): no new handlers, running ones finish and are settled, then the
  stream is half-closed so those settlements reach the broker first.

Threading: one thread owns the stream; handlers run on a thread pool.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import logging
import threading
import time
from typing import Any, Callable, Iterable, Mapping

import grpc

from . import _defaults
from ._backoff import Backoff
from ._proto import messaging_pb2 as pb
from ._proto import messaging_pb2_grpc
from ._stream_offsets import HandledOffsets
from ._stream import RequestQueue, StreamEnd, StreamReader, StreamThread, Wake
from ._stream import duration, open_stream, run_stream_loop
from .errors import ClosedError, WarrenError
from .options import Offset, stream_offset

log = logging.getLogger("warren_client.subscriber")

# A warren.v1.Delivery (the generated classes carry no type information).
Delivery = Any


class Reject(Exception):
    """Raise from a handler to nack WITHOUT requeue (dead-letter or drop),
    e.g. for a message that can never be processed."""


class Retry(Exception):
    """Raise from a handler to have the message come back after `after`
    seconds (Nack.retry_after: it waits in a delay queue of the broker, so
    other messages flow meanwhile); `Delivery.delivery_count` counts each
    retry. Not on stream queues (they cannot requeue)."""

    def __init__(self, after: float, reason: str = "") -> None:
        super().__init__(after, reason)
        if after <= 0:
            raise ValueError("Retry(after=) must be positive, not %r" % after)
        self.after = after
        self.reason = reason


class _Session:
    """One Subscribe stream. Settlements go to its own request queue, so a
    handler finishing after the stream died cannot reach the next stream."""

    def __init__(self) -> None:
        self.requests: RequestQueue[Any] = RequestQueue()
        self.running: set[concurrent.futures.Future[None]] = set()  # this stream's handlers
        self.lock = threading.Lock()
        self.offsets = HandledOffsets()

    def settle(
        self, delivery_id: int, ok: bool, requeue: bool, retry_after: float | None = None
    ) -> bool:
        if ok:
            request = pb.SubscribeRequest(ack=pb.Ack(delivery_ids=[delivery_id]))
        else:
            nack = pb.Nack(delivery_ids=[delivery_id], requeue=requeue)
            if retry_after is not None:
                nack.retry_after.CopyFrom(duration(retry_after))
            request = pb.SubscribeRequest(nack=nack)
        return self.requests.put(request)


class Subscriber(StreamThread):
    """Consumes a queue (or a topic binding) and calls `handler(delivery)` for
    each message, with `delivery` a warren.v1.Delivery (payload, headers,
    message_id, redelivered, ...).

        with Subscriber(channel, handle, queue="orders", max_in_flight=8):
            ...  # handle() runs on up to 8 threads until the block ends

    Source: `queue=` a queue name (declared durable when missing), or
    `exchange=` + `binding_keys=` (+ `exchange_type=`, `group=` for a shared
    durable queue; without a group an exclusive per-stream queue). A HEADERS
    exchange routes by `match_headers=` (every pair must match, or any one
    with `match_any=True`).

    `queue_options=` (warren_client.queue_options(...) or a
    warren.v1.QueueOptions) declares the queue with those arguments: a
    priority queue, a delivery limit, a single active consumer, a stream.

    Stream queues (queue_type "stream"): `offset=` is where the first
    subscription starts ("first", "last", "next" (default), an offset N, a
    datetime). The subscriber remembers the last offset handled
    (`last_offset`, each delivery's `stream_offset`) and re-subscribes after
    a broken stream at the one after it (before any was handled: from
    "next" or "last", at the second its first stream opened, so that
    nothing published meanwhile is skipped). To resume across restarts,
    store `delivery.stream_offset` when handled and pass `offset=stored + 1`.

    A handler that raises Retry(seconds) has its message back after that
    delay; `retry_after=` does the same for any other exception.

    When it gives up (a fatal code, or its channel was closed) `error` holds
    the WarrenError, `on_error(error)` is called on its thread and
    wait_subscribed() raises it.
    """

    thread_name = "warren-subscriber"

    def __init__(
        self,
        channel: grpc.Channel,
        handler: Callable[[Delivery], object],
        *,
        queue: str | None = None,
        exchange: str | None = None,
        binding_keys: Iterable[str] = (),
        exchange_type: int = pb.EXCHANGE_TYPE_TOPIC,
        group: str = "",
        queue_options: Any = None,
        match_headers: Mapping[str, str] | None = None,
        match_any: bool = False,
        offset: Offset | None = None,
        max_in_flight: int = _defaults.SUBSCRIBER_MAX_IN_FLIGHT,
        requeue_on_error: bool = True,
        retry_after: float | None = None,
        heartbeat_interval: float = 15.0,
        backoff: Backoff | None = None,
        on_error: Callable[[WarrenError], object] | None = None,
    ) -> None:
        if (queue is None) == (exchange is None):
            raise ValueError("give exactly one of queue= or exchange=")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if match_headers and exchange is None:
            raise ValueError("match_headers= binds to an exchange: give exchange=")
        if retry_after is not None and retry_after <= 0:
            raise ValueError("retry_after must be positive seconds, not %r" % retry_after)
        start = pb.SubscribeStart(
            group=group,
            max_in_flight=max_in_flight,
            heartbeat_interval=duration(heartbeat_interval),
        )
        if queue is not None:
            start.queue = queue
        else:
            start.topic.CopyFrom(
                pb.TopicBinding(
                    exchange=exchange,
                    exchange_type=exchange_type,
                    binding_keys=list(binding_keys),
                    match_headers=dict(match_headers or {}),
                    match_any=match_any,
                )
            )
        if queue_options is not None:
            start.queue_options.CopyFrom(queue_options)
        # A stream keeps what was acked: where to read again is the
        # subscriber's to remember, by offset.
        self._is_stream = start.queue_options.queue_type == pb.QUEUE_TYPE_STREAM
        if self._is_stream and retry_after is not None:
            raise ValueError("retry_after: a stream queue cannot requeue (replay by offset)")
        if offset is not None:
            start.offset.CopyFrom(stream_offset(offset))
        self._start_request = pb.SubscribeRequest(start=start)
        self._retry_after = retry_after
        self._stub = messaging_pb2_grpc.MessagingServiceStub(channel)
        self._handler = handler
        self._requeue_on_error = requeue_on_error
        # A quiet stream carries a heartbeat at most ~1 interval after the
        # last message; 3 intervals of silence means the stream is dead even
        # if TCP has not noticed (a cut by a proxy, a frozen server).
        self._idle_timeout = 3 * heartbeat_interval
        self._backoff = backoff.copy() if backoff else Backoff()
        self._on_error = on_error
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_in_flight, thread_name_prefix="warren-handler"
        )
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._reader: StreamReader | None = None
        self._thread: threading.Thread | None = None
        self._stop_timeout: float | None = None
        self._previous_session: _Session | None = None
        self.queue_name: str | None = None  # the queue consumed, once subscribed
        # Stream queues: the last offset handled with every earlier delivery
        # handled too; re-subscribing starts after it.
        self.last_offset: int | None = None
        # Stream queues read from "next" / "last": when the subscription was
        # first open, for a stream that breaks before its first delivery.
        self._subscribed_at: float | None = None
        self.subscriptions = 0  # how many streams reached `subscribed`
        self.error: WarrenError | None = None  # why the subscriber gave up

    # -- lifecycle ---------------------------------------------------------

    def wait_subscribed(self, timeout: float | None = None) -> bool:
        """Waits until a stream is open (the queue exists and is consumed);
        returns False on timeout or after stop(). Raises the subscriber's
        `error` (FatalError, ClosedError) if it gave up."""
        deadline_hit = not self._wait_any(self._subscribed, timeout)
        if self.error is not None:
            raise self.error
        return not deadline_hit

    def stop(self, timeout: float = 30.0) -> None:
        """Stops: no new handlers; running ones finish (up to `timeout`
        seconds) and are settled; then the stream closes. Idempotent."""
        self._stop_timeout = timeout
        self._stopping.set()
        with self._lock:
            if self._reader is not None:
                self._reader.wake()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=False)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the stream loop ---------------------------------------------------

    def _wait_any(self, event: threading.Event, timeout: float | None) -> bool:
        # Wakes on `event` or when the subscriber ended (gave up or stopped).
        deadline = None if timeout is None else time.monotonic() + timeout
        while not event.is_set() and not self._done.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            event.wait(0.05 if remaining is None else min(0.05, remaining))
        return event.is_set()

    def _run(self) -> None:
        try:
            run_stream_loop(
                self._one_stream,
                self._stopping,
                self._backoff,
                self._give_up,
                self._log_retry,
            )
        finally:
            self._done.set()

    @staticmethod
    def _log_retry(end: StreamEnd, delay: float) -> None:
        log.warning(
            "subscribe stream ended (%s: %s); again in %.2fs",
            end.code.name,
            end.details,
            delay,
        )

    def _give_up(self, error: WarrenError) -> None:
        self.error = error
        log.error("subscription of %s ended for good: %s", self._source(), error)
        if self._on_error:
            try:
                self._on_error(error)
            except Exception:
                log.exception("subscriber on_error callback failed")

    def _source(self) -> str:
        start = self._start_request.start
        return repr(start.queue) if start.HasField("queue") else repr(start.topic.exchange)

    def _start(self) -> Any:
        """The request that opens a stream: after a broken stream on a stream
        queue, it starts after the last offset handled."""
        if not self._is_stream:
            return self._start_request
        previous = self._previous_session
        if previous is not None:
            # Handlers of the broken stream still count: wait for them so
            # that resuming neither repeats nor skips what they handle.
            with previous.lock:
                running = list(previous.running)
            while running and not self._stopping.is_set():
                _, pending = concurrent.futures.wait(running, timeout=0.1)
                running = list(pending)
        if self.last_offset is not None:
            resume = pb.StreamOffset(offset=self.last_offset + 1)
        elif self._subscribed_at is not None:
            # Nothing handled yet: "next" again would skip what came while
            # the stream was broken. From the time it first started instead
            # (by chunk, so a few older messages may come; no gap).
            resume = stream_offset(datetime.datetime.fromtimestamp(int(self._subscribed_at)))
        else:
            return self._start_request
        request = pb.SubscribeRequest()
        request.CopyFrom(self._start_request)
        request.start.offset.CopyFrom(resume)
        return request

    def _one_stream(self) -> StreamEnd:
        """Runs one Subscribe stream until it ends or stop(); returns its end."""
        session = _Session()
        session.requests.put(self._start())
        self._previous_session = session
        try:
            reader = open_stream(
                self._stub.Subscribe,
                iter(session.requests),
                "warren-subscribe-reader",
                self._backoff,
            )
        except ClosedError:
            session.requests.close()
            raise
        with self._lock:
            self._reader = reader
        try:
            while True:
                if self._stopping.is_set():
                    return self._close_stream(session, reader)
                item = reader.next(timeout=self._idle_timeout)
                if item is None:
                    reader.cancel()  # silent too long: treat as broken
                    reader.drain_to_end()
                    return StreamEnd(_Silent(self._idle_timeout))
                if isinstance(item, Wake):
                    continue
                if isinstance(item, StreamEnd):
                    return item
                kind = item.WhichOneof("response")
                if kind == "subscribed":
                    self.queue_name = item.subscribed.queue
                    if (
                        self._is_stream
                        and self._subscribed_at is None
                        and self._start_request.start.offset.WhichOneof("start")
                        in (None, "next", "last")
                    ):
                        self._subscribed_at = time.time()
                    self.subscriptions += 1
                    self._subscribed.set()
                elif kind == "delivery":
                    # After stop() the message is not handled: closing the
                    # stream puts it back in the queue.
                    if not self._stopping.is_set():
                        if self._is_stream:
                            session.offsets.delivered(item.delivery.stream_offset)
                        self._dispatch(session, item.delivery)
                # heartbeat: only proves the stream alive (handled above)
        finally:
            with self._lock:
                self._reader = None
            session.requests.close()  # frees gRPC's request consumer thread

    def _dispatch(self, session: _Session, delivery: Delivery) -> None:
        future = self._pool.submit(self._handle, session, delivery)
        with session.lock:
            session.running.add(future)
        future.add_done_callback(lambda f: self._forget(session, f))

    @staticmethod
    def _forget(session: _Session, future: concurrent.futures.Future[None]) -> None:
        with session.lock:
            session.running.discard(future)

    def _handle(self, session: _Session, delivery: Delivery) -> None:
        ok, requeue, retry_after = True, False, None
        try:
            self._handler(delivery)
        except Reject:
            ok, requeue = False, False
        except Retry as retry:
            if self._is_stream:
                log.error(
                    "Retry raised for message %s of a stream queue, which "
                    "cannot requeue; settled without a retry",
                    delivery.message_id,
                )
                ok = False
            else:
                ok, retry_after = False, retry.after
        except Exception:
            log.exception(
                "handler failed for message %s; nack (requeue=%s, retry_after=%s)",
                delivery.message_id,
                self._requeue_on_error,
                self._retry_after,
            )
            ok, requeue, retry_after = False, self._requeue_on_error, self._retry_after
        if self._is_stream:
            # Handled (a nack only settles on a stream: it never comes back).
            last = session.offsets.handled(delivery.stream_offset)
            if last is not None:
                with self._lock:
                    if self.last_offset is None or last > self.last_offset:
                        self.last_offset = last
        if not session.settle(delivery.delivery_id, ok, requeue, retry_after):
            log.info(
                "stream of delivery %s ended before it was settled; the "
                "broker redelivers message %s",
                delivery.delivery_id,
                delivery.message_id,
            )

    def _close_stream(self, session: _Session, reader: StreamReader) -> StreamEnd:
        """stop(): wait for this stream's handlers, then half-close so their
        settlements are read by the server before it ends the stream."""
        with session.lock:
            running = list(session.running)
        concurrent.futures.wait(running, timeout=self._stop_timeout)
        session.requests.close()
        if not reader.ended.wait(5.0):
            reader.cancel()
        return reader.drain_to_end()


class _Silent(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__("no message or heartbeat for %.1fs" % seconds)
