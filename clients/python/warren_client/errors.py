"""The exceptions of the Warren wrappers: one hierarchy, whichever wrapper
raises or reports it. No grpc.RpcError leaves a wrapper; the one that caused
an error is its __cause__.

    WarrenError            .code (grpc.StatusCode) and .details (str)
    ├── FatalError         the server refused with a code that retry_policy
    │                      classifies fatal (INVALID_ARGUMENT, NOT_FOUND,
    │                      PERMISSION_DENIED, UNAUTHENTICATED, an unroutable
    │                      mandatory message's FAILED_PRECONDITION, ...):
    │                      the same request cannot succeed; fix it first
    ├── TransientError     a code worth retrying (UNAVAILABLE,
    │                      RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ...) that
    │                      was not retried any longer: the Publisher's
    │                      `timeout` ran out (.attempts says how many were
    │                      made), or a helper that never retries met it
    │                      (Client.get_config / put_config)
    ├── ClosedError        the caller closed the wrapper or its channel while
    │                      (or before) it worked; code CANCELLED
    └── NotLeaderError     Elector.proclaim() while not leading;
                           code FAILED_PRECONDITION

Who raises what: Publisher.publish() raises FatalError, TransientError or
ClosedError. The stream wrappers retry every non-fatal ending themselves, so
they only ever give up with a FatalError: it is their `.error`, goes to their
`on_error` callback, and is raised by their wait methods
(Subscriber.wait_subscribed, ConfigWatcher.wait_ready / wait_for,
Elector.wait_elected). Wrong arguments (ValueError) and using a wrapper
wrongly (RuntimeError: start() twice) are programming errors, not
WarrenErrors.
"""

from __future__ import annotations

import grpc

from . import retry_policy


class WarrenError(Exception):
    """A Warren call or stream failed with `code` (a grpc.StatusCode) and the
    server's (or the client's) `details`."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return "%s: %s" % (self.code.name, self.details)


class FatalError(WarrenError):
    """Refused with a code that retrying cannot change."""


class TransientError(WarrenError):
    """A retryable failure that was given up on after `attempts` attempts."""

    def __init__(self, code: grpc.StatusCode, details: str, attempts: int = 1) -> None:
        super().__init__(code, details)
        self.attempts = attempts

    def __str__(self) -> str:
        return "%s: %s (after %d attempt%s)" % (
            self.code.name,
            self.details,
            self.attempts,
            "" if self.attempts == 1 else "s",
        )


class ClosedError(WarrenError):
    """The wrapper (or its channel) was closed by the caller."""

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.CANCELLED, details)


class NotLeaderError(WarrenError):
    """A leader-only action by a candidate that does not lead."""

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.FAILED_PRECONDITION, details)


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, details) of an exception raised by a gRPC call: its status for
    a grpc.RpcError that has one, UNKNOWN for anything else."""
    code = getattr(error, "code", None)
    if isinstance(error, grpc.RpcError) and callable(code):
        details = error.details() if callable(getattr(error, "details", None)) else ""
        return code(), details or ""
    return grpc.StatusCode.UNKNOWN, repr(error)


def from_unary_error(error: BaseException, attempts: int = 1) -> WarrenError:
    """The WarrenError for a unary call that failed with `error` and is not
    retried: FatalError or TransientError as retry_policy classifies it."""
    code, details = status_of(error)
    if retry_policy.unary_decision(code) == retry_policy.FATAL:
        return FatalError(code, details)
    return TransientError(code, details, attempts)


__all__ = [
    "ClosedError",
    "FatalError",
    "NotLeaderError",
    "TransientError",
    "WarrenError",
    "from_unary_error",
    "status_of",
]
