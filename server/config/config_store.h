// The ConfigService operations over ZooKeeper: reads without blocking,
// writes as blocking steps for worker threads. Each call validates nothing the
// service already validated (keys, sizes); it turns ZooKeeper's answers into
// the status codes of the API with messages that name the key, and never leaves
// partial state: writes that need more than one node change go through one
// atomic multi-operation.
//
// Keys are what was put: a node with non-null data is a key (an empty value
// included); a node with ZooKeeper's null data is a namespace node, a parent
// made for the keys below it, which no read reports.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/config/config_limits.h"
#include "server/config/key_space.h"
#include "server/config/watch_cache.h"
#include "server/zk/zk_client.h"

namespace warren::config {

struct PutParams {
  std::string key;
  std::string value;
  std::optional<int64_t> expected_version;
  bool create_only = false;
  // HoldKey: create the key as an ephemeral node of this session (where no
  // key is: ALREADY_EXISTS otherwise), or, with `holder`, write the value
  // of the key that session holds.
  bool hold = false;
  std::optional<int64_t> holder;
};

struct DeleteParams {
  std::string key;
  std::optional<int64_t> expected_version;
  bool recursive = false;
  // HoldKey's end: delete the key only while this session holds it.
  std::optional<int64_t> holder;
};

// A condition of a transaction: the key exists at `version`, or exists (or
// not) as `exists` says.
struct CheckParams {
  std::string key;
  std::optional<int64_t> version;
  std::optional<bool> exists;
};

using WriteOp = std::variant<PutParams, DeleteParams>;

// One atomic write: checks, then ops, as one ZooKeeper multi.
struct WriteBatch {
  std::vector<CheckParams> checks;
  std::vector<WriteOp> ops;
  // When set, the multi's first step (a fence's check); when that step
  // fails, the write answers `guard_failed`.
  std::optional<zk::Op> guard;
  absl::Status guard_failed;
  // A transaction: every refusal is FAILED_PRECONDITION naming the check
  // or op (`checks[i]: `, `ops[i]: `). A single write (one op) keeps its
  // codes (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION).
  bool txn = false;
};

struct WriteOutcome {
  // The new state of each put, in op order.
  std::vector<CachedEntry> puts;
  // What happened to keys, in op order, for announcements: each put, and
  // each delete of a key (not of a namespace node).
  std::vector<Change> changes;
};

struct ListParams {
  std::string prefix;
  int page_size = 100;
  // The last key of the previous page; empty for the first page.
  std::string after;
  bool keys_only = false;
  // The page ends before an entry that would take it over this many bytes
  // (EntryBytes), unless it is the page's first.
  size_t max_bytes = SIZE_MAX;
};

struct ListPage {
  std::vector<CachedEntry> entries;
  bool more = false;  // whether a next page exists
};

class ConfigStore {
 public:
  ConfigStore(zk::ZkClient& zk, KeySpace keys) : zk_(zk), keys_(keys) {}

  // Creates the base node (and the root) when missing; PERMISSION_DENIED
  // when their ACL does not give this client's identity what Warren needs
  // (zk::CheckAccess).
  absl::Status EnsureBase(absl::Time deadline);

  // Reads `key` without blocking: `done` runs once, on a ZooKeeper callback
  // thread (it must not block). A consistent read sends a sync and the read
  // back to back: ZooKeeper serves one session's requests in order, so the
  // read sees every write committed before the sync, at the cost of one
  // round trip instead of two.
  void GetAsync(const std::string& key, bool consistent,
                zk::Callback<CachedEntry> done);
  // The same read, blocking (for worker threads): NOT_FOUND for a missing
  // key or a namespace node.
  absl::StatusOr<CachedEntry> Read(const std::string& key, absl::Time deadline);
  // Every write: plans the multi from what it reads (namespace parents
  // for puts, a namespace node for a delete of a key with children), runs
  // it, and plans again when something it read changed meanwhile. After a
  // delete, namespace nodes left without children are removed upwards
  // (best effort: a concurrent create keeps them).
  absl::StatusOr<WriteOutcome> Write(const WriteBatch& batch,
                                     absl::Time deadline);
  absl::StatusOr<ListPage> List(const ListParams& params, absl::Time deadline);

  zk::ZkClient& zk() const { return zk_; }
  const KeySpace& keys() const { return keys_; }

  // What a write's size is checked against (config_limits.h).
  RequestLimits request_limits() const {
    return {&keys_, &zk_.acl_policy().node_acl(), zk_.path_prefix_bytes(),
            zk_.max_request_bytes()};
  }

  // How many nodes a recursive delete may remove in its one atomic step.
  static constexpr size_t kMaxRecursiveDelete = 10000;

 private:
  void RemoveEmptyNamespaces(const std::string& path, absl::Time deadline);

  zk::ZkClient& zk_;
  const KeySpace keys_;
};

}  // namespace warren::config
