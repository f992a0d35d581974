#include "server/zk/request_size.h"

#include "absl/strings/str_cat.h"

namespace warren::zk {
namespace {

// jute: an int is 4 bytes, a boolean 1, a string or buffer a 4-byte length
// and its bytes, a vector a 4-byte count and its elements.
constexpr size_t kInt = 4;
constexpr size_t kBool = 1;
// RequestHeader {int xid; int type}.
constexpr size_t kRequestHeader = 2 * kInt;
// MultiHeader {int type; boolean done; int err}: before every step, and once
// more (done) after the last.
constexpr size_t kMultiHeader = kInt + kBool + kInt;

size_t Bytes(size_t n) { return kInt + n; }

size_t AclBytes(const std::vector<AclEntry>& acl) {
  size_t bytes = kInt;  // the count
  for (const AclEntry& entry : acl) {
    bytes += kInt + Bytes(entry.scheme.size()) + Bytes(entry.id.size());
  }
  return bytes;
}

// The body of one step (what follows the request header, or the step's
// MultiHeader): CreateRequest {path, data, acl, int flags} (Create2Request
// is the same), SetDataRequest {path, data, int version}, DeleteRequest and
// CheckVersionRequest {path, int version}.
size_t BodyBytes(Op::Kind kind, size_t path_bytes, size_t value_bytes,
                 const std::vector<AclEntry>& acl) {
  const size_t path = Bytes(path_bytes);
  switch (kind) {
    case Op::Kind::kCreate:
      return path + Bytes(value_bytes) + AclBytes(acl) + kInt;
    case Op::Kind::kSetData:
      return path + Bytes(value_bytes) + kInt;
    case Op::Kind::kDelete:
    case Op::Kind::kCheck:
      return path + kInt;
  }
  return path;
}

}  // namespace

size_t RequestBytes(Op::Kind kind, size_t path_bytes, size_t value_bytes,
                    const std::vector<AclEntry>& acl) {
  return kRequestHeader + BodyBytes(kind, path_bytes, value_bytes, acl);
}

size_t MultiRequestBytes(const std::vector<Op>& ops,
                         const std::vector<AclEntry>& acl,
                         size_t path_prefix_bytes) {
  size_t bytes = kRequestHeader + kMultiHeader;
  for (const Op& op : ops) {
    bytes +=
        kMultiHeader + BodyBytes(op.kind, path_prefix_bytes + op.path.size(),
                                 op.value.size(), acl);
  }
  return bytes;
}

absl::string_view ChrootOf(absl::string_view connect) {
  const size_t slash = connect.find('/');
  if (slash == absl::string_view::npos) return {};
  absl::string_view chroot = connect.substr(slash);
  // "/" alone is no chroot (the C client treats it so).
  return chroot == "/" ? absl::string_view() : chroot;
}

absl::Status CheckRequestBytes(size_t bytes, size_t max_bytes,
                               absl::string_view what) {
  if (bytes <= max_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": the ZooKeeper request would be ", bytes,
      " bytes, over zk_max_request_bytes (", max_bytes,
      "; the ensemble's jute.maxbuffer must be at least as large)"));
}

}  // namespace warren::zk
