"""Builders of a transaction's checks and ops, for Client.txn():

    from warren_client import txn
    client.txn(
        [txn.version_is("app/limit", 3), txn.missing("app/lock")],
        [txn.put("app/limit", "20"), txn.delete("app/old")],
        fence=elector.fence(),
    )

All or nothing: every check must pass and every op succeed (one ZooKeeper
multi), or nothing changes and Client.txn raises TxnFailedError naming the
first that failed (FenceError when the fence no longer holds).
"""

from __future__ import annotations

from typing import Any

from ._proto import config_pb2 as pb

# warren.v1.TxnCheck and warren.v1.TxnOp (no type information generated).
Check = Any
Op = Any


def version_is(key: str, version: int) -> Check:
    """`key` exists at exactly `version`."""
    return pb.TxnCheck(key=key, version=version)


def exists(key: str) -> Check:
    """`key` exists (a namespace node, which nobody put, does not)."""
    return pb.TxnCheck(key=key, exists=True)


def missing(key: str) -> Check:
    """`key` does not exist."""
    return pb.TxnCheck(key=key, exists=False)


def put(
    key: str,
    value: bytes | str,
    *,
    expected_version: int | None = None,
    create_only: bool = False,
) -> Op:
    """Writes `key` (str values are UTF-8 encoded), as PutConfig."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    request = pb.PutConfigRequest(key=key, value=value, create_only=create_only)
    if expected_version is not None:
        request.expected_version = expected_version
    return pb.TxnOp(put=request)


def delete(key: str, *, expected_version: int | None = None, recursive: bool = False) -> Op:
    """Deletes `key`, as DeleteConfig."""
    request = pb.DeleteConfigRequest(key=key, recursive=recursive)
    if expected_version is not None:
        request.expected_version = expected_version
    return pb.TxnOp(delete=request)


__all__ = ["Check", "Op", "delete", "exists", "missing", "put", "version_is"]
