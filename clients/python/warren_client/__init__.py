"""Warren client for Python: the generated warren.v1 stubs plus thin wrappers
for what is easy to get wrong with raw stubs.

    import warren_client as warren

    with warren.connect() as client:              # WARREN_ADDRESS or 127.0.0.1:50051
        client.publisher().publish("jobs", b"hello")
        with client.subscriber(print_job, queue="jobs"):
            ...

Built on gRPC's synchronous (threaded) API: every wrapper owns a background
thread per stream and calls back on it (handlers on a pool), so it fits plain
scripts, WSGI apps and threaded services alike. asyncio applications can use
the generated stubs with grpc.aio directly (`warren_client.messaging_pb2_grpc`
works with an aio channel) or call these wrappers from a thread.

Messaging beyond publish/subscribe: Client.call() and Client.responder()
(request/reply), delay= on publishes, Retry from a handler (a retry after
a delay), stream queues with replay by offset (warren_client.options:
queue_options(), stream_offset()).

Coordination: Client.locker() (locks and semaphores with fencing tokens),
fence= on publishes and config writes (Elector.fence(), Lock.fence()),
Client.txn() (see warren_client.txn), Client.hold_key() (a Registration).

Errors: the wrappers and the Client's helpers raise (or report) the
exceptions of warren_client.errors, never grpc.RpcError; the raw stubs
(Client.config, .messaging, .election, .lock) raise grpc.RpcError as gRPC
does.
"""

from __future__ import annotations

import collections
import os
from typing import Any, Callable, Iterable, Mapping

import grpc

from . import errors, retry_policy, txn
from ._backoff import Backoff
from ._proto import (
    common_pb2,
    config_pb2,
    config_pb2_grpc,
    election_pb2,
    election_pb2_grpc,
    lock_pb2,
    lock_pb2_grpc,
    messaging_pb2,
    messaging_pb2_grpc,
)
from .config_watcher import Change, ConfigWatcher
from .elector import Elector, LostReason
from .errors import (
    CallTimeoutError,
    ClosedError,
    FatalError,
    FenceError,
    LockTimeoutError,
    NotLeaderError,
    TransientError,
    TxnFailedError,
    WarrenError,
)
from .fence import Fence, election_fence, lock_fence
from .locker import Lock, Locker
from .options import queue_options, stream_offset
from .publisher import Publisher
from .registration import Registration
from .responder import Reply, Responder
from .subscriber import Reject, Retry, Subscriber

DEFAULT_ADDRESS = "127.0.0.1:50051"

# gRPC's default reconnect backoff grows to 120 s: after a warrend restart a
# client could stay disconnected for minutes. Capped as retry_policy says.
# grpc.min_reconnect_backoff_ms keeps gRPC's default on purpose: in gRPC core
# it is not a backoff but the least time a connection attempt is given (20 s);
# lowered, a loaded machine fails handshakes with "timed out before receiving
# SETTINGS frame". It does not delay reconnecting to a server that is back:
# a refused connection fails at once and the next attempt follows the backoff.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", retry_policy.RECONNECT_INITIAL_BACKOFF_MS),
    ("grpc.min_reconnect_backoff_ms", 20000),
    ("grpc.max_reconnect_backoff_ms", retry_policy.RECONNECT_MAX_BACKOFF_MS),
)


def channel(
    address: str | None = None,
    *,
    options: Iterable[tuple[str, Any]] = (),
    credentials: grpc.ChannelCredentials | None = None,
    tls: bool = False,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    server_name: str | None = None,
    token: str | None = None,
) -> grpc.Channel:
    """A gRPC channel to warrend. `address` defaults to $WARREN_ADDRESS, then
    127.0.0.1:50051.

    Plaintext unless TLS is asked for: `credentials` (grpc.ChannelCredentials
    of your own), `tls=True` (the system's CAs), or any of `ca_file` (PEM CA
    of the server's certificate), `cert_file` + `key_file` (a client
    certificate, for a server with tls_client_ca_file) and `server_name`
    (the name the server's certificate carries, when dialing another, e.g.
    an IP). `token`: every call, streams included, carries
    "authorization: Bearer <token>" (for a server with auth_tokens_file).
    A file that cannot be read raises OSError naming it."""
    address = address or os.environ.get("WARREN_ADDRESS") or DEFAULT_ADDRESS
    merged: dict[str, Any] = dict(CHANNEL_OPTIONS)
    merged.update(dict(options))
    if server_name:
        merged["grpc.ssl_target_name_override"] = server_name
    if credentials is None and (tls or ca_file or cert_file or key_file or server_name):
        credentials = tls_credentials(ca_file, cert_file, key_file)
    if credentials is None:
        plain = grpc.insecure_channel(address, options=list(merged.items()))
        # gRPC sends call credentials over TLS only: over plaintext the token
        # goes in by an interceptor (keep such a listener on loopback or a
        # private network: anyone on the path can read it).
        return grpc.intercept_channel(plain, _BearerInterceptor(token)) if token else plain
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token)
        )
    return grpc.secure_channel(address, credentials, options=list(merged.items()))


def tls_credentials(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> grpc.ChannelCredentials:
    """grpc.ssl_channel_credentials from PEM files: the CA of the server's
    certificate (None: the system's) and a client certificate and key
    (both or neither)."""
    if bool(cert_file) != bool(key_file):
        raise ValueError("TLS client certificate and key go together: give both or neither")

    def read(path: str | None) -> bytes | None:
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca_file),
        private_key=read(key_file),
        certificate_chain=read(cert_file),
    )


def channel_options_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of channel() that the environment sets, with the
    names the C++ client and the CLI read: WARREN_TOKEN, and TLS when any of
    WARREN_TLS_CA, WARREN_TLS_CERT, WARREN_TLS_KEY, WARREN_TLS_SERVER_NAME is
    set or WARREN_TLS is neither empty, "0" nor "false"."""
    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {}
    for name, key in (
        ("WARREN_TLS_CA", "ca_file"),
        ("WARREN_TLS_CERT", "cert_file"),
        ("WARREN_TLS_KEY", "key_file"),
        ("WARREN_TLS_SERVER_NAME", "server_name"),
        ("WARREN_TOKEN", "token"),
    ):
        if env.get(name):
            kwargs[key] = env[name]
    if env.get("WARREN_TLS", "") not in ("", "0", "false"):
        kwargs["tls"] = True
    return kwargs


def channel_from_env(environ: Mapping[str, str] | None = None, **kwargs: Any) -> grpc.Channel:
    """channel() to $WARREN_ADDRESS (else 127.0.0.1:50051) with the TLS and
    token settings of channel_options_from_env(); `kwargs` (e.g. options=)
    are added."""
    env = os.environ if environ is None else environ
    kwargs.update(channel_options_from_env(env))
    return channel(env.get("WARREN_ADDRESS") or DEFAULT_ADDRESS, **kwargs)


class _BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds "authorization: Bearer <token>" to every call's metadata."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", "Bearer " + token)

    def _with_token(self, details: Any) -> Any:
        metadata = list(details.metadata or ()) + [self._header]
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._with_token(details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._with_token(details), request_iterator)


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class Client:
    """A channel with the raw stubs (config, messaging, election, lock) and
    factories for the wrappers.
    Closing it closes the channel (close the wrappers first: a wrapper whose
    channel closed under it stops with ClosedError)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        grpc_channel: grpc.Channel | None = None,
        **channel_kwargs: Any,
    ) -> None:
        self.address = address or os.environ.get("WARREN_ADDRESS") or DEFAULT_ADDRESS
        self.channel = grpc_channel or channel(self.address, **channel_kwargs)
        self.config = config_pb2_grpc.ConfigServiceStub(self.channel)
        self.messaging = messaging_pb2_grpc.MessagingServiceStub(self.channel)
        self.election = election_pb2_grpc.ElectionServiceStub(self.channel)
        self.lock = lock_pb2_grpc.LockServiceStub(self.channel)

    def publisher(self, **kwargs: Any) -> Publisher:
        return Publisher(self.channel, **kwargs)

    def subscriber(self, handler: Callable[[Any], object], **kwargs: Any) -> Subscriber:
        """A started Subscriber (use it as a context manager or stop() it)."""
        return Subscriber(self.channel, handler, **kwargs).start()

    def responder(self, handler: Callable[[Any], Any], **kwargs: Any) -> Responder:
        """A started Responder: `handler(request)` returns the reply (bytes,
        str or a Reply); Subscriber's kwargs choose the queue."""
        return Responder(self.channel, handler, **kwargs).start()

    def call(
        self,
        routing_key: str,
        payload: bytes | str,
        *,
        timeout: float | None = 30.0,
        **kwargs: Any,
    ) -> Any:
        """Request/reply: Publisher.call() — the reply (a warren.v1.Delivery),
        CallTimeoutError (a TimeoutError) when none comes within `timeout`
        seconds. Never retried."""
        with Publisher(self.channel) as publisher:
            return publisher.call(routing_key, payload, timeout=timeout, **kwargs)

    def elector(self, election: str, **kwargs: Any) -> Elector:
        """A started Elector (use it as a context manager or close() it)."""
        return Elector(self.channel, election, **kwargs).start()

    def config_watcher(self, key: str, **kwargs: Any) -> ConfigWatcher:
        """A started ConfigWatcher (use it as a context manager or close() it)."""
        return ConfigWatcher(self.channel, key, **kwargs).start()

    def locker(self, **kwargs: Any) -> Locker:
        """A Locker: locker.acquire(name, limit=, timeout=) -> a Lock (use it
        as a context manager). Close the locker (or use it in a `with`) to
        release what it still holds."""
        return Locker(self.channel, **kwargs)

    def hold_key(self, key: str, value: bytes | str = b"", **kwargs: Any) -> Registration:
        """A started Registration holding `key` while it is open (use it as
        a context manager or close() it)."""
        return Registration(self.channel, key, value, **kwargs).start()

    def get_config(
        self, key: str, *, consistent: bool = False, timeout: float | None = None
    ) -> bytes | None:
        """The value of `key` (bytes), or None when it does not exist. Not
        retried: raises FatalError or TransientError (warren_client.errors)."""
        request = config_pb2.GetConfigRequest(key=key, consistent=consistent)
        try:
            response = self._unary(self.config.GetConfig, request, timeout)
        except FatalError as error:
            if error.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return bytes(response.entry.value)

    def put_config(
        self,
        key: str,
        value: bytes | str,
        *,
        fence: Fence | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Writes `key` (str values are UTF-8 encoded); returns the new
        warren.v1.ConfigEntry. kwargs: expected_version=, create_only= (see
        PutConfigRequest). `fence` (Elector.fence(), Lock.fence()): written
        only if it still holds, checked atomically with the write. Not
        retried (a compare-and-set whose answer was lost cannot tell on a
        retry whether it was its own write): raises FatalError (e.g.
        FAILED_PRECONDITION for a version that moved on, ALREADY_EXISTS for
        create_only, FenceError for a fence that no longer holds) or
        TransientError."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        request = config_pb2.PutConfigRequest(key=key, value=value, fence=fence, **kwargs)
        return self._unary(self.config.PutConfig, request, timeout).entry

    def delete_config(
        self,
        key: str,
        *,
        expected_version: int | None = None,
        recursive: bool = False,
        fence: Fence | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Deletes `key` (with `recursive`, its subtree; without, a key with
        children keeps them and becomes a namespace node). Returns False when
        there was no such key. `fence` as for put_config. Not retried: raises
        FatalError (FAILED_PRECONDITION for a version that moved on,
        FenceError) or TransientError."""
        request = config_pb2.DeleteConfigRequest(
            key=key, expected_version=expected_version, recursive=recursive, fence=fence
        )
        try:
            self._unary(self.config.DeleteConfig, request, timeout)
        except FatalError as error:
            if error.code == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True

    def txn(
        self,
        checks: Iterable[Any] = (),
        ops: Iterable[Any] = (),
        *,
        fence: Fence | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """Applies `ops` (warren_client.txn.put / delete) if every one of
        `checks` (txn.version_is / exists / missing) passes and `fence`, if
        given, holds — all or nothing, in one atomic step. Returns the new
        warren.v1.ConfigEntry of each put, in op order. Not retried: raises
        TxnFailedError naming the first check or op that failed (.field,
        .index), FenceError, another FatalError (INVALID_ARGUMENT for a bad
        key or too many ops) or TransientError; on any of them nothing
        changed, except that a TransientError may hide an applied txn."""
        request = config_pb2.TxnRequest(checks=list(checks), ops=list(ops), fence=fence)
        return list(self._unary(self.config.Txn, request, timeout).entries)

    @staticmethod
    def _unary(method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        """Calls `method` once, its errors as WarrenErrors."""
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as error:
            raise errors.from_unary_error(error) from error
        except ValueError as error:  # grpc: "Cannot invoke RPC on closed channel!"
            raise ClosedError("the channel was closed: %s" % error) from error

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(address: str | None = None, **kwargs: Any) -> Client:
    """A Client for `address` (default: $WARREN_ADDRESS, then 127.0.0.1:50051).
    kwargs: channel()'s (ca_file=, cert_file=, key_file=, token=, ...) or
    grpc_channel= for a channel of your own."""
    return Client(address, **kwargs)


def connect_from_env(environ: Mapping[str, str] | None = None, **kwargs: Any) -> Client:
    """A Client configured like the C++ client's MakeChannelFromEnv and the
    CLI: WARREN_ADDRESS, WARREN_TOKEN and WARREN_TLS_* (see
    channel_options_from_env)."""
    env = os.environ if environ is None else environ
    kwargs.update(channel_options_from_env(env))
    return Client(env.get("WARREN_ADDRESS") or DEFAULT_ADDRESS, **kwargs)


__all__ = [
    "Backoff",
    "CallTimeoutError",
    "Change",
    "Client",
    "ClosedError",
    "ConfigWatcher",
    "Elector",
    "FatalError",
    "Fence",
    "FenceError",
    "Lock",
    "LockTimeoutError",
    "Locker",
    "LostReason",
    "NotLeaderError",
    "Publisher",
    "Registration",
    "Reject",
    "Reply",
    "Responder",
    "Retry",
    "Subscriber",
    "TransientError",
    "TxnFailedError",
    "WarrenError",
    "election_fence",
    "errors",
    "lock_fence",
    "queue_options",
    "stream_offset",
    "retry_policy",
    "txn",
    "channel",
    "channel_from_env",
    "channel_options_from_env",
    "connect",
    "connect_from_env",
    "tls_credentials",
    "common_pb2",
    "config_pb2",
    "config_pb2_grpc",
    "election_pb2",
    "election_pb2_grpc",
    "lock_pb2",
    "lock_pb2_grpc",
    "messaging_pb2",
    "messaging_pb2_grpc",
]
