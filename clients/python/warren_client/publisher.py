"""Publisher: Publish with a client-generated message id, retried with the
SAME id when the outcome is unknown, so consumers can de-duplicate.

Retried: UNAVAILABLE (server or broker unreachable, confirm lost: the message
may or may not be queued) and DEADLINE_EXCEEDED of one attempt (no confirm in
time: equally unknown). Both mean "maybe published", which a retry with the
same id turns into "published at least once". Each attempt has its own
`attempt_timeout`; all attempts together are bounded by `timeout`, after
which the last error is raised. Every other status (INVALID_ARGUMENT,
NOT_FOUND for a missing exchange, FAILED_PRECONDITION for an unroutable
mandatory message, RESOURCE_EXHAUSTED, ...) is raised at once: retrying the
same request cannot change it.
"""

import logging
import threading
import time
import uuid

import grpc

from ._backoff import Backoff
from ._proto import messaging_pb2 as pb
from ._proto import messaging_pb2_grpc
from ._stream import duration

log = logging.getLogger("warren_client.publisher")

RETRYABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)


class Publisher:
    """Thread-safe; one per channel is enough.

        publisher = Publisher(channel)
        message_id = publisher.publish("orders", b"{...}")          # default exchange
        publisher.publish("order.created", body, exchange="events")  # an exchange
    """

    def __init__(self, channel, *, timeout=30.0, attempt_timeout=10.0, backoff=None):
        self._stub = messaging_pb2_grpc.MessagingServiceStub(channel)
        self._timeout = timeout
        self._attempt_timeout = attempt_timeout
        self._backoff = backoff or Backoff(initial=0.1, maximum=2.0)
        self._stop = threading.Event()

    def publish(
        self,
        routing_key,
        payload,
        *,
        exchange="",
        headers=None,
        content_type="",
        message_id=None,
        transient=False,
        priority=0,
        ttl=None,
        mandatory=False,
        timeout=None,
    ):
        """Publishes one message and returns its id once the broker confirmed
        it. `payload` is bytes (str is encoded as UTF-8); `ttl` in seconds.
        Pass `message_id` to make the id deterministic (e.g. a task number),
        so that a re-publish after a crash is recognisable too."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        request = pb.PublishRequest(
            exchange=exchange,
            routing_key=routing_key,
            payload=payload,
            headers=headers or {},
            content_type=content_type,
            message_id=message_id or str(uuid.uuid4()),
            transient=transient,
            priority=priority,
            mandatory=mandatory,
        )
        if ttl is not None:
            request.ttl.CopyFrom(duration(ttl))
        return self.send(request, timeout=timeout)

    def send(self, request, *, timeout=None):
        """Publishes a ready PublishRequest (an id is filled in when empty)."""
        if not request.message_id:
            request.message_id = str(uuid.uuid4())
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
                return response.message_id
            except grpc.RpcError as error:
                code = error.code()
                delay = backoff.next_delay()
                if code not in RETRYABLE_CODES or time.monotonic() + delay >= deadline:
                    raise
                log.warning(
                    "publish of %s failed (attempt %d, %s: %s); retrying in %.2fs",
                    request.message_id,
                    attempt,
                    code.name,
                    error.details(),
                    delay,
                )
                if self._stop.wait(delay):
                    raise

    def close(self):
        """Ends retries in progress (they raise their last error)."""
        self._stop.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
