"""Publisher: Publish with a client-generated message id, retried with the
SAME id as retry_policy.unary_decision says, so consumers can de-duplicate.

A retried failure (UNAVAILABLE: server or broker unreachable, confirm lost;
DEADLINE_EXCEEDED of one attempt; RESOURCE_EXHAUSTED; ...) may mean "maybe
published", which a retry with the same id turns into "published at least
once". Each attempt has its own `attempt_timeout`; all attempts together are
bounded by `timeout`, after which TransientError is raised. A retry waits
the policy's backoff, or less when the channel, not connected at the failure,
connects meanwhile: the lost connection was then the likely cause, and the
message goes out as soon as warrend is back rather than up to a backoff
(3 s) later. A fatal code
(INVALID_ARGUMENT, NOT_FOUND for a missing exchange, FAILED_PRECONDITION for
an unroutable mandatory message, ...) raises FatalError at once.

A publish with a `fence` (Elector.fence(), Lock.fence()) goes out only if
that leadership or lock still holds just before the publish; otherwise
FenceError (a FatalError), nothing published. The server stamps the
message's headers `warren-fence` and `warren-fencing-token`, which consumers
use to drop messages of a deposed holder (headers of those names set by the
caller are refused: they cannot be forged). A retry of a fenced publish is
checked again, so a holder deposed between attempts publishes nothing more.

Messages are published `mandatory` by default: a message no queue takes is
an error (FatalError, FAILED_PRECONDITION) instead of a silent drop. Pass
mandatory=False to publish to a routing key that may have no queue yet.
A delayed message (`delay=`) is routed only when its delay is over, so it
cannot be mandatory: it is published without unless mandatory=True is
asked for (which the server refuses).

call() is request/reply: the message goes out with a reply address of the
server's own, and the first reply that carries its correlation id is the
answer. It is never retried (a request that may have been handled must not
be sent again behind the caller's back); no reply in time raises
CallTimeoutError (a TimeoutError).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Mapping

import grpc

from . import _defaults, retry_policy
from ._backoff import Backoff
from ._proto import messaging_pb2 as pb
from ._proto import messaging_pb2_grpc
from ._stream import duration
from .errors import CallTimeoutError, ClosedError, TransientError, fatal_error, status_of

log = logging.getLogger("warren_client.publisher")


class Publisher:
    """Thread-safe; one per channel is enough.

        publisher = Publisher(channel)
        message_id = publisher.publish("orders", b"{...}")          # default exchange
        publisher.publish("order.created", body, exchange="events")  # an exchange
        publisher.publish("reminders", b"...", delay=60)            # routed a minute later
        reply = publisher.call("prices", b"EURUSD", timeout=5)      # request/reply

    Raises FatalError (FenceError for a fence that no longer holds),
    TransientError or ClosedError (warren_client.errors).
    """

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout: float = 30.0,
        attempt_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._channel = channel
        self._stub = messaging_pb2_grpc.MessagingServiceStub(channel)
        self._timeout = timeout
        self._attempt_timeout = attempt_timeout
        self._backoff = backoff or Backoff()
        self._closed = threading.Event()
        self._wake = threading.Condition()  # close(), or a channel reconnected

    def publish(
        self,
        routing_key: str,
        payload: bytes | str,
        *,
        exchange: str = "",
        headers: Mapping[str, str] | None = None,
        content_type: str = "",
        message_id: str | None = None,
        transient: bool = False,
        priority: int = 0,
        ttl: float | None = None,
        mandatory: bool | None = None,
        fence: Any = None,
        delay: float | None = None,
        reply_to: str = "",
        correlation_id: str = "",
        timeout: float | None = None,
    ) -> str:
        """Publishes one message and returns its id once the broker confirmed
        it. `payload` is bytes (str is encoded as UTF-8); `ttl` in seconds.
        Pass `message_id` to make the id deterministic (e.g. a task number),
        so that a re-publish after a crash is recognisable too. `fence`: a
        warren.v1.Fence (Elector.fence(), Lock.fence()); FenceError when it
        no longer holds. `delay` (seconds): the message reaches the exchange
        that much later (up to 10 % more: delays are rounded up to two
        significant digits of milliseconds), confirmed once the broker holds
        it; not with `ttl`. `reply_to` / `correlation_id`: the AMQP
        properties, for a requester with a reply queue of its own (a
        Responder answers to them)."""
        request = self._request(
            routing_key,
            payload,
            exchange=exchange,
            headers=headers,
            content_type=content_type,
            message_id=message_id,
            transient=transient,
            priority=priority,
            ttl=ttl,
            mandatory=_defaults.PUBLISH_MANDATORY and delay is None
            if mandatory is None
            else mandatory,
            fence=fence,
        )
        if delay is not None:
            request.delay.CopyFrom(duration(delay))
        request.reply_to = reply_to
        request.correlation_id = correlation_id
        return self.send(request, timeout=timeout)

    @staticmethod
    def _request(
        routing_key: str,
        payload: bytes | str,
        *,
        exchange: str,
        headers: Mapping[str, str] | None,
        content_type: str,
        message_id: str | None,
        transient: bool,
        priority: int,
        ttl: float | None,
        mandatory: bool,
        fence: Any,
    ) -> Any:
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        request = pb.PublishRequest(
            exchange=exchange,
            routing_key=routing_key,
            payload=payload,
            headers=dict(headers or {}),
            content_type=content_type,
            message_id=message_id or str(uuid.uuid4()),
            transient=transient,
            priority=priority,
            mandatory=mandatory,
        )
        if ttl is not None:
            request.ttl.CopyFrom(duration(ttl))
        if fence is not None:
            request.fence.CopyFrom(fence)
        return request

    def call(
        self,
        routing_key: str,
        payload: bytes | str,
        *,
        exchange: str = "",
        headers: Mapping[str, str] | None = None,
        content_type: str = "",
        message_id: str | None = None,
        transient: bool = False,
        priority: int = 0,
        ttl: float | None = None,
        mandatory: bool = _defaults.PUBLISH_MANDATORY,
        fence: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """Sends a request and returns the reply, a warren.v1.Delivery
        (payload, headers, content_type, correlation_id; nothing to ack).
        Waits up to `timeout` seconds (default: the publisher's `timeout`);
        none given to the server means its `call_timeout`. Raises
        CallTimeoutError (a TimeoutError) when no reply came in time — the
        request may still have been handled —, FatalError
        (FAILED_PRECONDITION: mandatory and no queue took it; FenceError),
        TransientError (e.g. UNAVAILABLE: the server lost its reply channel)
        or ClosedError. Never retried."""
        request = self._request(
            routing_key,
            payload,
            exchange=exchange,
            headers=headers,
            content_type=content_type,
            message_id=message_id,
            transient=transient,
            priority=priority,
            ttl=ttl,
            mandatory=mandatory,
            fence=fence,
        )
        if self._closed.is_set():
            raise ClosedError("publisher closed; call %s not sent" % request.message_id)
        seconds = self._timeout if timeout is None else timeout
        try:
            response = self._stub.Call(pb.CallRequest(message=request), timeout=seconds)
        except grpc.RpcError as error:
            code, details = status_of(error)
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise CallTimeoutError(
                    "no reply to %s within %gs%s"
                    % (request.message_id, seconds, ": " + details if details else "")
                ) from error
            if retry_policy.unary_decision(code) == retry_policy.FATAL:
                raise fatal_error(code, details) from error
            raise TransientError(code, details, 1) from error
        except ValueError as error:  # grpc: "Cannot invoke RPC on closed channel!"
            raise ClosedError("the channel was closed: %s" % error) from error
        return response.reply

    def send(self, request: Any, *, timeout: float | None = None) -> str:
        """Publishes a ready PublishRequest (an id is filled in when empty;
        its `mandatory` and `fence` are the caller's)."""
        if not request.message_id:
            request.message_id = str(uuid.uuid4())
        if self._closed.is_set():
            raise ClosedError("publisher closed; %s not published" % request.message_id)
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        backoff = self._backoff.copy()
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                response = self._stub.Publish(
                    request, timeout=max(0.001, min(self._attempt_timeout, remaining))
                )
                return str(response.message_id)
            except grpc.RpcError as error:
                code, details = status_of(error)
                if retry_policy.unary_decision(code) == retry_policy.FATAL:
                    raise fatal_error(code, details) from error
                delay = backoff.next_delay()
                if time.monotonic() + delay >= deadline:
                    raise TransientError(code, details, attempt) from error
                log.warning(
                    "publish of %s failed (attempt %d, %s: %s); retrying in %.2fs",
                    request.message_id,
                    attempt,
                    code.name,
                    details,
                    delay,
                )
                if self._wait_before_retry(delay):
                    raise ClosedError(
                        "publisher closed while retrying %s (last: %s: %s)"
                        % (request.message_id, code.name, details)
                    ) from error
            except ValueError as error:  # grpc: "Cannot invoke RPC on closed channel!"
                raise ClosedError("the channel was closed: %s" % error) from error

    def _wait_before_retry(self, delay: float) -> bool:
        """Waits `delay` seconds, less if the channel turns READY after
        having been seen otherwise; returns True when close() ended it."""
        reconnected = _Reconnected(self._wake)
        self._channel.subscribe(reconnected, try_to_connect=True)
        try:
            with self._wake:
                self._wake.wait_for(
                    lambda: self._closed.is_set() or reconnected.ready, timeout=delay
                )
        finally:
            self._channel.unsubscribe(reconnected)
        return self._closed.is_set()

    def close(self) -> None:
        """Ends retries in progress (they raise ClosedError); later publishes
        raise ClosedError at once. Does not close the channel."""
        with self._wake:
            self._closed.set()
            self._wake.notify_all()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Reconnected:
    """A channel connectivity callback: `ready` once the channel is READY
    after a state other than READY (its first report is the current state,
    so a channel that stayed connected, e.g. while the broker is the one
    unreachable, never cuts a backoff short)."""

    def __init__(self, wake: threading.Condition) -> None:
        self._wake = wake
        self._seen_not_ready = False
        self.ready = False

    def __call__(self, state: grpc.ChannelConnectivity) -> None:
        with self._wake:
            if state != grpc.ChannelConnectivity.READY:
                self._seen_not_ready = True
            elif self._seen_not_ready:
                self.ready = True
                self._wake.notify_all()
