// The ConfigService operations over ZooKeeper: reads without blocking,
// writes as blocking steps for worker threads. Each call validates nothing the
// service already validated (keys, sizes); it turns ZooKeeper's answers into
// the status codes of the API with messages that name the key, and never leaves
// partial state: writes that need more than one node change go through one
// atomic multi-operation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
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
};

struct DeleteParams {
  std::string key;
  std::optional<int64_t> expected_version;
  bool recursive = false;
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
  absl::StatusOr<CachedEntry> Put(const PutParams& params, absl::Time deadline);
  absl::Status Delete(const DeleteParams& params, absl::Time deadline);
  absl::StatusOr<ListPage> List(const ListParams& params, absl::Time deadline);

  // What a write's size is checked against (config_limits.h).
  RequestLimits request_limits() const {
    return {&keys_, &zk_.acl_policy().node_acl(), zk_.path_prefix_bytes(),
            zk_.max_request_bytes()};
  }

  // How many nodes a recursive delete may remove in its one atomic step.
  static constexpr size_t kMaxRecursiveDelete = 10000;

 private:
  absl::StatusOr<CachedEntry> CreateWithParents(const std::string& key,
                                                const std::string& value,
                                                absl::Time deadline);

  zk::ZkClient& zk_;
  const KeySpace keys_;
};

}  // namespace warren::config
