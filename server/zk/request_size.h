// How many bytes a ZooKeeper request takes on the wire, computed from jute's
// encoding as the C client writes it, so that a request the ensemble would
// refuse is refused here, before it is sent.
//
// Why: the ensemble bounds every request by its jute.maxbuffer (0xfffff
// bytes unless raised). The bound covers the whole request after the 4-byte
// length prefix: the request header, the path (with the connect string's
// chroot), the value, the ACL and, for a multi-operation, every step. A
// request over it is not refused on its own: the server drops the connection,
// which suspends the session for everything else this process does with it
// (leaders lose their leadership, health turns NOT_SERVING).
//
// Pure functions, safe on any thread.
#pragma once

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/zk/zk_acl.h"
#include "server/zk/zk_client.h"

namespace warren::zk {

// The request of one operation of `kind` (Create, Set, Delete, Check) on a
// path of `path_bytes` (with the chroot) with a value of `value_bytes`, or of
// a multi-operation of `ops`. `path_prefix_bytes` is the length of the
// connect string's chroot, which the C client puts in front of every path;
// `acl` is what every create carries. (kStockMaxRequestBytes, a stock
// ensemble's limit, is in zk_client.h.)
size_t RequestBytes(Op::Kind kind, size_t path_bytes, size_t value_bytes,
                    const std::vector<AclEntry>& acl);
size_t MultiRequestBytes(const std::vector<Op>& ops,
                         const std::vector<AclEntry>& acl,
                         size_t path_prefix_bytes = 0);

// The chroot of a connect string ("host:port,host:port/chroot"): "" for none.
absl::string_view ChrootOf(absl::string_view connect);

// INVALID_ARGUMENT naming `what` when `bytes` is over `max_bytes`.
absl::Status CheckRequestBytes(size_t bytes, size_t max_bytes,
                               absl::string_view what);

}  // namespace warren::zk
