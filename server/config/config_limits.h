// The size bounds of config traffic, as pure functions: what a PutConfig may
// send to ZooKeeper (the ensemble drops the connection, and with it the
// session of every leader on this server, for a request over its
// jute.maxbuffer), and how large one ListConfig page or WatchConfig response
// may grow (gRPC refuses a message over the receiver's limit, 4 MiB in every
// client by default). docs/config-limits.md is the user's view.
#pragma once

#include <cstddef>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/config/key_space.h"
#include "server/zk/zk_acl.h"

namespace warren::config {

// Where a write's size is checked: the key space, the ACL every create
// carries, the chroot's length and the ensemble's limit (ZkClient's).
struct RequestLimits {
  const KeySpace* keys = nullptr;
  const std::vector<zk::AclEntry>* acl = nullptr;
  size_t path_prefix_bytes = 0;
  size_t max_request_bytes = 0;
};

// The largest ZooKeeper request a PutConfig of `key` with a value of
// `value_bytes` can make: the multi-operation that creates every ancestor
// below the base and the key itself (ConfigStore::Put when none exists yet;
// the plain setData of an existing key is smaller).
size_t PutRequestBound(const RequestLimits& limits, absl::string_view key,
                       size_t value_bytes);

// INVALID_ARGUMENT naming `value`, zk_max_request_bytes and
// max_config_value_bytes when that bound is over the ensemble's limit.
absl::Status CheckPutFits(const RequestLimits& limits, absl::string_view key,
                          size_t value_bytes, size_t max_value_bytes);

// At start-up: a value of max_config_value_bytes must fit with the longest
// key whose parents exist (one create in a multi-operation). Deeper keys
// whose parents are missing cost more, and are refused per call.
absl::Status CheckValueLimitFits(const RequestLimits& limits,
                                 size_t max_value_bytes);

// The default max_config_value_bytes: a stock ensemble's limit less 64 KiB
// for the request around the value (path, ACL, missing parents).
inline constexpr size_t kDefaultMaxValueBytes = 960 << 10;

// The bytes one ListConfig page or one WatchConfig response may hold:
// below max_message_bytes and below the 4 MiB every gRPC client accepts by
// default, with room for framing. A single entry is always sent, and fits:
// values are at most max_config_value_bytes, which start-up keeps 4 KiB
// below max_message_bytes.
size_t ResponseBudget(size_t max_message_bytes);
// What one entry adds to a response, with its field tags and lengths
// (an upper bound: the timestamp and version at their widest).
size_t EntryBytes(size_t key_bytes, size_t value_bytes);

}  // namespace warren::config
