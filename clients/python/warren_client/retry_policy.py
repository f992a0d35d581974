"""The retry rule of every Warren client wrapper, as in the repository's
clients/retry-policy.json (docs/semantics.md explains each row). Written out
here rather than read at run time, so an installed package needs no data
file; tests/test_policy.py reads the JSON and fails when the two differ.

unary_decision(code): what a wrapper does when a unary call (Publish, ...)
ends with `code`: DONE, RETRY (the same request, same message id, after the
backoff, until the caller's time budget ends) or FATAL (raise at once).

stream_decision(code): what a wrapper does when a long-lived stream
(Subscribe, WatchConfig, Elect) ends with `code` without the caller having
closed it: RESUBSCRIBE (after the backoff) or FATAL (report and stop). A
stream the caller closed is never reopened, whatever its code.

Applications calling the raw stubs can use the same two functions.
"""

from __future__ import annotations

import grpc

DONE = "done"
RETRY = "retry"
FATAL = "fatal"
RESUBSCRIBE = "resubscribe"

# The request itself is wrong, or the world must change before the same
# request can succeed: retrying it would only repeat the answer. Every other
# code (RESOURCE_EXHAUSTED included: a slot may free up) is worth another try.
FATAL_CODES: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)

# The backoff between attempts: before attempt n (n = 0 for the first retry)
# d = min(MAX, INITIAL * MULTIPLIER**n), drawn uniformly from [d/2, d]. A
# stream that delivered its first response starts again from n = 0.
BACKOFF_INITIAL_SECONDS = 0.1
BACKOFF_MULTIPLIER = 2.0
BACKOFF_MAX_SECONDS = 3.0

# The channel's own reconnect backoff (gRPC's default grows to 120 s) and
# streams opened wait-for-ready, so that a stream waits for the channel to
# reconnect instead of failing while it does.
RECONNECT_INITIAL_BACKOFF_MS = 100
RECONNECT_MAX_BACKOFF_MS = 2000
STREAMS_WAIT_FOR_READY = True


def unary_decision(code: grpc.StatusCode) -> str:
    """DONE, RETRY or FATAL for a unary call that ended with `code`."""
    if code == grpc.StatusCode.OK:
        return DONE
    return FATAL if code in FATAL_CODES else RETRY


def stream_decision(code: grpc.StatusCode) -> str:
    """RESUBSCRIBE or FATAL for a stream that ended with `code` on its own
    (OK included: the server ended it without being asked)."""
    return FATAL if code in FATAL_CODES else RESUBSCRIBE


__all__ = [
    "BACKOFF_INITIAL_SECONDS",
    "BACKOFF_MAX_SECONDS",
    "BACKOFF_MULTIPLIER",
    "DONE",
    "FATAL",
    "FATAL_CODES",
    "RECONNECT_INITIAL_BACKOFF_MS",
    "RECONNECT_MAX_BACKOFF_MS",
    "RESUBSCRIBE",
    "RETRY",
    "STREAMS_WAIT_FOR_READY",
    "stream_decision",
    "unary_decision",
]
