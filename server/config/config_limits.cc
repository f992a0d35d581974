#include "server/config/config_limits.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/common/names.h"
#include "server/zk/request_size.h"

namespace warren::config {
namespace {

// gRPC clients' default receive limit.
constexpr size_t kClientReceiveLimit = 4 << 20;
// Framing and the response's own fields (a page token, flags).
constexpr size_t kResponseMargin = 64 << 10;
// Per entry besides key and value: the repeated field's tag and length, the
// key's and value's tags and lengths, the version and the timestamp.
constexpr size_t kEntryOverhead = 64;

}  // namespace

size_t PutRequestBound(const RequestLimits& limits, absl::string_view key,
                       size_t value_bytes) {
  std::vector<zk::Op> ops;
  const std::string path = limits.keys->PathOf(key);
  // Every ancestor below the base, then the key; the base always exists
  // (EnsureBase at start-up).
  const size_t base = limits.keys->base().size();
  for (size_t slash = path.find('/', base + 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    ops.push_back(zk::Op::Create(path.substr(0, slash), ""));
  }
  ops.push_back(zk::Op::Create(path, ""));
  return zk::MultiRequestBytes(ops, *limits.acl, limits.path_prefix_bytes) +
         value_bytes;
}

absl::Status CheckPutFits(const RequestLimits& limits, absl::string_view key,
                          size_t value_bytes, size_t max_value_bytes) {
  const size_t bytes = PutRequestBound(limits, key, value_bytes);
  if (bytes <= limits.max_request_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "value is ", value_bytes, " bytes; with key '", key,
      "' (and its parents, created in the same request) the ZooKeeper "
      "request would be ",
      bytes, " bytes, over zk_max_request_bytes (", limits.max_request_bytes,
      "); max_config_value_bytes is ", max_value_bytes,
      "; use a shorter key or a smaller value"));
}

absl::Status CheckValueLimitFits(const RequestLimits& limits,
                                 size_t max_value_bytes) {
  const std::string longest_key(kMaxNameBytes, 'k');
  const size_t bytes = zk::MultiRequestBytes(
      {zk::Op::Create(limits.keys->PathOf(longest_key), "")}, *limits.acl,
      limits.path_prefix_bytes);
  if (max_value_bytes + bytes <= limits.max_request_bytes) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "max_config_value_bytes (", max_value_bytes,
      ") does not fit in zk_max_request_bytes (", limits.max_request_bytes,
      ") with the request around it (", bytes,
      " bytes for the longest key, the root and the ACL): lower "
      "max_config_value_bytes to at most ",
      limits.max_request_bytes > bytes ? limits.max_request_bytes - bytes : 0,
      ", or raise zk_max_request_bytes together with the ensemble's "
      "jute.maxbuffer"));
}

size_t ResponseBudget(size_t max_message_bytes) {
  const size_t cap = std::min(max_message_bytes, kClientReceiveLimit);
  return cap > 2 * kResponseMargin ? cap - kResponseMargin : cap / 2;
}

size_t EntryBytes(size_t key_bytes, size_t value_bytes) {
  return key_bytes + value_bytes + kEntryOverhead;
}

}  // namespace warren::config
