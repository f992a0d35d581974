"""Builders for the subscription messages whose fields are durations,
timestamps or a oneof, with the Python types the wrappers take everywhere
else (seconds as float, datetime, plain strings):

    queue_options(queue_type="stream", max_age=7 * 86400)
    queue_options(queue_type="quorum", delivery_limit=5, single_active_consumer=True)
    stream_offset("first") / stream_offset(1234) / stream_offset(datetime(...))

A ready warren.v1.QueueOptions / StreamOffset is accepted wherever these are.
The server validates the combinations (INVALID_ARGUMENT naming the field,
e.g. `start.queue_options.max_priority` on a quorum queue); only what can be
told without the server is checked here.
"""

from __future__ import annotations

import datetime
from typing import Any, Union

from google.protobuf import timestamp_pb2

from ._proto import messaging_pb2 as pb
from ._stream import duration

_QUEUE_TYPES = {
    "classic": pb.QUEUE_TYPE_CLASSIC,
    "quorum": pb.QUEUE_TYPE_QUORUM,
    "stream": pb.QUEUE_TYPE_STREAM,
}

# "first", "last", "next", an offset, a time, or a ready warren.v1.StreamOffset.
Offset = Union[str, int, datetime.datetime, Any]


def queue_type(value: Union[str, int]) -> int:
    """A QueueType from "classic" / "quorum" / "stream" or the enum value."""
    if isinstance(value, str):
        try:
            return int(_QUEUE_TYPES[value.lower()])
        except KeyError:
            raise ValueError(
                "queue_type must be one of %s, not %r" % (sorted(_QUEUE_TYPES), value)
            ) from None
    return int(value)


def queue_options(
    *,
    queue_type: Union[str, int] = pb.QUEUE_TYPE_UNSPECIFIED,
    dead_letter_exchange: str = "",
    dead_letter_routing_key: str = "",
    message_ttl: float | None = None,
    max_length: int = 0,
    max_priority: int = 0,
    delivery_limit: int = 0,
    single_active_consumer: bool = False,
    max_age: float | None = None,
    max_length_bytes: int = 0,
) -> Any:
    """A warren.v1.QueueOptions; `message_ttl` and `max_age` in seconds
    (`max_age` whole seconds: the broker keeps streams by the second)."""
    options = pb.QueueOptions(
        queue_type=_queue_type(queue_type),
        dead_letter_exchange=dead_letter_exchange,
        dead_letter_routing_key=dead_letter_routing_key,
        max_length=max_length,
        max_priority=max_priority,
        delivery_limit=delivery_limit,
        single_active_consumer=single_active_consumer,
        max_length_bytes=max_length_bytes,
    )
    if message_ttl is not None:
        options.message_ttl.CopyFrom(duration(message_ttl))
    if max_age is not None:
        options.max_age.CopyFrom(duration(max_age))
    return options


_queue_type = queue_type  # queue_options() has a parameter of that name


def stream_offset(where: Offset) -> Any:
    """A warren.v1.StreamOffset: "first" (the oldest message kept), "last"
    (the last chunk written), "next" (only new messages), an int (that
    offset: resume at the last handled `Delivery.stream_offset` + 1) or a
    datetime (the first messages stored at or after it; a naive datetime is
    local time)."""
    if isinstance(where, pb.StreamOffset):
        if where.WhichOneof("start") is None:
            raise ValueError("a StreamOffset needs one of first, last, next, offset, timestamp")
        return where
    if isinstance(where, bool):
        raise ValueError("a stream offset is a position, not %r" % where)
    if isinstance(where, int):
        if where < 0:
            raise ValueError("a stream offset is not negative: %d" % where)
        return pb.StreamOffset(offset=where)
    if isinstance(where, datetime.datetime):
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(where.astimezone(datetime.timezone.utc).replace(tzinfo=None))
        return pb.StreamOffset(timestamp=stamp)
    if where in ("first", "last", "next"):
        return pb.StreamOffset(**{where: True})
    raise ValueError(
        'a stream offset is "first", "last", "next", an int or a datetime, not %r' % (where,)
    )


__all__ = ["Offset", "queue_options", "queue_type", "stream_offset"]
