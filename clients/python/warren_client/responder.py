"""Responder: the serving side of request/reply (Publisher.call(),
Client.call(), or any requester that sets `reply_to`).

A Subscriber whose handler returns the reply: the responder publishes it on
the default exchange to the request's `reply_to` with its `correlation_id`,
and acks the request only once the broker confirmed the reply. So a
responder that dies mid-request leaves the request to another one (the
caller gets at most one answer: the first reply with its id wins, later ones
are dropped by the server). A handler that raises is nacked as a
Subscriber's would be (requeued by default; Reject, Retry and
requeue_on_error work as there) and sends no reply: the caller times out
unless another responder answers the redelivery. A request without
`reply_to` (someone published instead of calling) is acked and skipped with
a log line.

Replies are not mandatory: a caller that gave up is gone with its reply
address, and its reply is dropped rather than failing the responder.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Union

import grpc

from .publisher import Publisher
from .subscriber import Delivery, Subscriber

log = logging.getLogger("warren_client.responder")


class Reply:
    """A reply with more than a payload: headers and a content type."""

    def __init__(
        self,
        payload: bytes | str,
        *,
        headers: Mapping[str, str] | None = None,
        content_type: str = "",
    ) -> None:
        self.payload = payload
        self.headers = dict(headers or {})
        self.content_type = content_type


# What a responder's handler returns.
ReplyLike = Union[bytes, str, Reply]


class Responder(Subscriber):
    """Answers requests from a queue (or a topic binding with a group):

        def price(request):                     # a warren.v1.Delivery
            return b"1.0842"                    # or Reply(b"...", headers=...)

        with client.responder(price, queue="prices") as responder:
            responder.wait_subscribed(10)
            ...

    Takes the Subscriber's arguments (queue=, exchange=, group=,
    queue_options=, max_in_flight=, requeue_on_error=, ...) and
    `publisher=` (a Publisher of your own for the replies: its timeout and
    retries apply; default one on the same channel). Replies are published
    with the Publisher's retries, under the same message id each time."""

    thread_name = "warren-responder"

    def __init__(
        self,
        channel: grpc.Channel,
        handler: Callable[[Delivery], ReplyLike],
        *,
        publisher: Publisher | None = None,
        **subscriber_kwargs: Any,
    ) -> None:
        super().__init__(channel, self._respond, **subscriber_kwargs)
        self._answer = handler
        self._own_publisher = publisher is None
        self._publisher = publisher or Publisher(channel)

    def _respond(self, request: Delivery) -> None:
        if not request.reply_to:
            log.warning(
                "message %s on %s has no reply_to: not a request; acked without a reply",
                request.message_id,
                self.queue_name,
            )
            return
        reply = self._answer(request)
        if not isinstance(reply, Reply):
            reply = Reply(reply)
        # Raises (and so nacks the request) when the reply cannot be sent.
        self._publisher.publish(
            request.reply_to,
            reply.payload,
            headers=reply.headers,
            content_type=reply.content_type,
            correlation_id=request.correlation_id,
            mandatory=False,
        )

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        if self._own_publisher:
            self._publisher.close()


__all__ = ["Reply", "ReplyLike", "Responder"]
