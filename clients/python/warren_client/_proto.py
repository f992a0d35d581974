"""The generated warren.v1 modules, imported once for the whole package.

generate.sh writes them to _gen/ as the package `warren.v1` (their proto
package), and they import each other by that name, so _gen/ must be on
sys.path. It is appended, not prepended: a `warren` package the application
installed itself wins, and a missing generate.sh run fails loudly here.
"""

import os
import sys

_GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_gen")
if os.path.isdir(_GEN) and _GEN not in sys.path:
    sys.path.append(_GEN)

try:
    from warren.v1 import common_pb2  # noqa: E402
    from warren.v1 import config_pb2, config_pb2_grpc  # noqa: E402
    from warren.v1 import election_pb2, election_pb2_grpc  # noqa: E402
    from warren.v1 import lock_pb2, lock_pb2_grpc  # noqa: E402
    from warren.v1 import messaging_pb2, messaging_pb2_grpc  # noqa: E402
except ImportError as error:  # pragma: no cover - only without generate.sh
    raise ImportError(
        "warren_client: the generated stubs are missing; run "
        "clients/python/generate.sh first (%s)" % error
    ) from error

__all__ = [
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
