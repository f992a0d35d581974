"""Subscriber: runs a handler per delivery and settles it, over a Subscribe
stream that it re-opens when it breaks.

What raw stubs make easy to get wrong, and what this does instead:
- settling: the handler returning acks the delivery; raising nacks it
  (requeued unless `requeue_on_error=False`, or the handler raised Reject);
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
import logging
import threading
import time
from typing import Any, Callable, Iterable

import grpc

from . import _defaults
from ._backoff import Backoff
from ._proto import messaging_pb2 as pb
from ._proto import messaging_pb2_grpc
from ._stream import RequestQueue, StreamEnd, StreamReader, StreamThread, Wake
from ._stream import duration, open_stream, run_stream_loop
from .errors import ClosedError, WarrenError

log = logging.getLogger("warren_client.subscriber")

# A warren.v1.Delivery (the generated classes carry no type information).
Delivery = Any


class Reject(Exception):
    """Raise from a handler to nack WITHOUT requeue (dead-letter or drop),
    e.g. for a message that can never be processed."""


class _Session:
    """One Subscribe stream. Settlements go to its own request queue, so a
    handler finishing after the stream died cannot reach the next stream."""

    def __init__(self) -> None:
        self.requests: RequestQueue[Any] = RequestQueue()
        self.running: set[concurrent.futures.Future[None]] = set()  # this stream's handlers
        self.lock = threading.Lock()

    def settle(self, delivery_id: int, ok: bool, requeue: bool) -> bool:
        if ok:
            request = pb.SubscribeRequest(ack=pb.Ack(delivery_ids=[delivery_id]))
        else:
            request = pb.SubscribeRequest(
                nack=pb.Nack(delivery_ids=[delivery_id], requeue=requeue)
            )
        return self.requests.put(request)


class Subscriber(StreamThread):
    """Consumes a queue (or a topic binding) and calls `handler(delivery)` for
    each message, with `delivery` a warren.v1.Delivery (payload, headers,
    message_id, redelivered, ...).

        with Subscriber(channel, handle, queue="orders", max_in_flight=8):
            ...  # handle() runs on up to 8 threads until the block ends

    Source: `queue=` a queue name (declared durable when missing), or
    `exchange=` + `binding_keys=` (+ `exchange_type=`, `group=` for a shared
    durable queue; without a group an exclusive per-stream queue).

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
        max_in_flight: int = _defaults.SUBSCRIBER_MAX_IN_FLIGHT,
        requeue_on_error: bool = True,
        heartbeat_interval: float = 15.0,
        backoff: Backoff | None = None,
        on_error: Callable[[WarrenError], object] | None = None,
    ) -> None:
        if (queue is None) == (exchange is None):
            raise ValueError("give exactly one of queue= or exchange=")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
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
                )
            )
        if queue_options is not None:
            start.queue_options.CopyFrom(queue_options)
        self._start_request = pb.SubscribeRequest(start=start)
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
        self.queue_name: str | None = None  # the queue consumed, once subscribed
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

    def _one_stream(self) -> StreamEnd:
        """Runs one Subscribe stream until it ends or stop(); returns its end."""
        session = _Session()
        session.requests.put(self._start_request)
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
                    self.subscriptions += 1
                    self._subscribed.set()
                elif kind == "delivery":
                    # After stop() the message is not handled: closing the
                    # stream puts it back in the queue.
                    if not self._stopping.is_set():
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
        ok, requeue = True, False
        try:
            self._handler(delivery)
        except Reject:
            ok, requeue = False, False
        except Exception:
            log.exception(
                "handler failed for message %s; nack (requeue=%s)",
                delivery.message_id,
                self._requeue_on_error,
            )
            ok, requeue = False, self._requeue_on_error
        if not session.settle(delivery.delivery_id, ok, requeue):
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
