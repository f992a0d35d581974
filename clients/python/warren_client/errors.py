"""The exceptions of the Warren wrappers: one hierarchy, whichever wrapper
raises or reports it. No grpc.RpcError leaves a wrapper; the one that caused
an error is its __cause__.

    WarrenError            .code (grpc.StatusCode) and .details (str)
    ├── FatalError         the server refused with a code that retry_policy
    │   │                  classifies fatal (INVALID_ARGUMENT, NOT_FOUND,
    │   │                  PERMISSION_DENIED, UNAUTHENTICATED, an unroutable
    │   │                  mandatory message's FAILED_PRECONDITION, ...):
    │   │                  the same request cannot succeed; fix it first
    │   ├── FenceError     FAILED_PRECONDITION "fence: ...": the leadership
    │   │                  or lock of a fenced write or publish no longer
    │   │                  holds; nothing was written or published
    │   └── TxnFailedError FAILED_PRECONDITION "checks[i]: ..." or
    │                      "ops[i]: ...": a transaction's check or op failed
    │                      (.field, .index); nothing changed
    ├── TransientError     a code worth retrying (UNAVAILABLE,
    │                      RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ...) that
    │                      was not retried any longer: the Publisher's
    │                      `timeout` ran out (.attempts says how many were
    │                      made), or a helper that never retries met it
    │                      (Client.get_config / put_config / delete_config /
    │                      txn)
    ├── ClosedError        the caller closed the wrapper or its channel while
    │                      (or before) it worked; code CANCELLED
    ├── NotLeaderError     Elector.proclaim() or Elector.fence() while not
    │                      leading; code FAILED_PRECONDITION
    ├── LockTimeoutError   Locker.acquire(): the lock was not acquired within
    │                      its timeout; code DEADLINE_EXCEEDED
    └── CallTimeoutError   Publisher.call() / Client.call(): no reply within
                           the timeout (also a builtin TimeoutError); code
                           DEADLINE_EXCEEDED; the request may have been handled

Who raises what: Publisher.publish() raises FatalError (FenceError),
TransientError or ClosedError; Client.put_config / delete_config / txn
FatalError (FenceError, TxnFailedError) or TransientError;
Locker.acquire() LockTimeoutError, FatalError or ClosedError;
Publisher.call() CallTimeoutError, FatalError, TransientError or ClosedError. The stream
wrappers retry every non-fatal ending themselves, so they only ever give up
with a FatalError: it is their `.error`, goes to their `on_error` callback,
and is raised by their wait methods (Subscriber.wait_subscribed,
ConfigWatcher.wait_ready / wait_for, Elector.wait_elected,
Registration.wait_held). Wrong arguments (ValueError) and using a wrapper
wrongly (RuntimeError: start() twice) are programming errors, not
WarrenErrors.
"""

from __future__ import annotations

import re

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


class FenceError(FatalError):
    """A fenced write or publish was refused: the fence (an election's
    leadership or a lock's hold) no longer holds. Nothing was written or
    published; the one who fenced must stop acting as leader or holder."""


class TxnFailedError(FatalError):
    """A transaction was refused: the check or op named by `field`
    ("checks" or "ops") and `index` failed. Nothing changed."""

    def __init__(self, code: grpc.StatusCode, details: str, field: str, index: int) -> None:
        super().__init__(code, details)
        self.field = field
        self.index = index


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


class LockTimeoutError(WarrenError):
    """The lock was not acquired within the timeout given to acquire();
    nothing of the attempt is left behind on the server."""

    def __init__(self, details: str) -> None:
        super().__init__(grpc.StatusCode.DEADLINE_EXCEEDED, details)


class CallTimeoutError(WarrenError, TimeoutError):
    """No reply to a call within its timeout (the request may still have
    been handled, and is not sent again). A TimeoutError too, so code that
    handles timeouts the Python way catches it."""

    def __init__(self, details: str) -> None:
        WarrenError.__init__(self, grpc.StatusCode.DEADLINE_EXCEEDED, details)


# How the server names what failed in a FAILED_PRECONDITION
# (docs/semantics.md): a fence that no longer holds, or a transaction's
# check or op by its index.
_FENCE_PREFIX = "fence: "
_TXN_PART = re.compile(r"^(checks|ops)\[(\d+)\]")


def fatal_error(code: grpc.StatusCode, details: str) -> FatalError:
    """The FatalError for a fatal `code`: a FenceError or TxnFailedError
    when the server's details say that a fence or a transaction's check or
    op failed, a plain FatalError otherwise."""
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        if details.startswith(_FENCE_PREFIX):
            return FenceError(code, details)
        match = _TXN_PART.match(details)
        if match:
            return TxnFailedError(code, details, match.group(1), int(match.group(2)))
    return FatalError(code, details)


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
        return fatal_error(code, details)
    return TransientError(code, details, attempts)


__all__ = [
    "CallTimeoutError",
    "ClosedError",
    "FatalError",
    "FenceError",
    "LockTimeoutError",
    "NotLeaderError",
    "TransientError",
    "TxnFailedError",
    "WarrenError",
    "fatal_error",
    "from_unary_error",
    "status_of",
]
