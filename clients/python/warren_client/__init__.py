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
"""

import os

import grpc

from ._backoff import Backoff
from ._proto import (
    common_pb2,
    config_pb2,
    config_pb2_grpc,
    election_pb2,
    election_pb2_grpc,
    messaging_pb2,
    messaging_pb2_grpc,
)
from .config_watcher import Change, ConfigWatcher
from .elector import Elector, LostReason
from .publisher import Publisher
from .subscriber import Reject, Subscriber, SubscriptionError

DEFAULT_ADDRESS = "127.0.0.1:50051"

# gRPC's default reconnect backoff grows to 120 s: after a warrend restart a
# client could stay disconnected for minutes. Cap it near our own retry loops.
# (Not grpc.min_reconnect_backoff_ms: despite its name it is also the minimum
# time a connection attempt may take, 20 s by default; lowered, a loaded
# machine fails handshakes with "timed out before receiving SETTINGS frame".)
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def channel(address=None, *, options=(), credentials=None):
    """A gRPC channel to warrend (plaintext unless `credentials` are given).
    `address` defaults to $WARREN_ADDRESS, then 127.0.0.1:50051."""
    address = address or os.environ.get("WARREN_ADDRESS") or DEFAULT_ADDRESS
    merged = dict(CHANNEL_OPTIONS)
    merged.update(dict(options))
    if credentials is not None:
        return grpc.secure_channel(address, credentials, options=list(merged.items()))
    return grpc.insecure_channel(address, options=list(merged.items()))


class Client:
    """A channel with the three raw stubs and factories for the wrappers.
    Closing it closes the channel (close the wrappers first)."""

    def __init__(self, address=None, *, grpc_channel=None, **channel_kwargs):
        self.address = address or os.environ.get("WARREN_ADDRESS") or DEFAULT_ADDRESS
        self.channel = grpc_channel or channel(self.address, **channel_kwargs)
        self.config = config_pb2_grpc.ConfigServiceStub(self.channel)
        self.messaging = messaging_pb2_grpc.MessagingServiceStub(self.channel)
        self.election = election_pb2_grpc.ElectionServiceStub(self.channel)

    def publisher(self, **kwargs):
        return Publisher(self.channel, **kwargs)

    def subscriber(self, handler, **kwargs):
        """A started Subscriber (use it as a context manager or stop() it)."""
        return Subscriber(self.channel, handler, **kwargs).start()

    def elector(self, election, **kwargs):
        """A started Elector (use it as a context manager or close() it)."""
        return Elector(self.channel, election, **kwargs).start()

    def config_watcher(self, key, **kwargs):
        """A started ConfigWatcher (use it as a context manager or close() it)."""
        return ConfigWatcher(self.channel, key, **kwargs).start()

    def get_config(self, key, *, consistent=False):
        """The value of `key` (bytes), or None when it does not exist."""
        try:
            response = self.config.GetConfig(
                config_pb2.GetConfigRequest(key=key, consistent=consistent)
            )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.entry.value

    def put_config(self, key, value, **kwargs):
        """Writes `key` (str values are UTF-8 encoded); returns the new entry.
        kwargs: expected_version=, create_only= (see PutConfigRequest)."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        return self.config.PutConfig(
            config_pb2.PutConfigRequest(key=key, value=value, **kwargs)
        ).entry

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(address=None, **kwargs):
    """A Client for `address` (default: $WARREN_ADDRESS, then 127.0.0.1:50051)."""
    return Client(address, **kwargs)


__all__ = [
    "Backoff",
    "Change",
    "Client",
    "ConfigWatcher",
    "Elector",
    "LostReason",
    "Publisher",
    "Reject",
    "Subscriber",
    "SubscriptionError",
    "channel",
    "connect",
    "common_pb2",
    "config_pb2",
    "config_pb2_grpc",
    "election_pb2",
    "election_pb2_grpc",
    "messaging_pb2",
    "messaging_pb2_grpc",
]
