#include "server/config/config_store.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/mutex.h"
#include "server/zk/zk_acl.h"
#include "server/zk/zk_sync.h"

namespace warren::config {
namespace {

using zk::ZkError;
using zk::ZkErrorOf;

constexpr int kMaxAttempts = 10;

absl::Status Contended(absl::string_view what, absl::string_view key) {
  return absl::AbortedError(
      absl::StrCat(what, " of key '", key,
                   "' kept meeting concurrent changes of its parents; retry"));
}

// Status codes that already say everything (connection trouble, deadlines)
// pass through; the rest get the key in their message.
absl::Status Annotate(const absl::Status& status, absl::string_view key) {
  if (status.ok()) return status;
  if (status.code() == absl::StatusCode::kUnavailable ||
      status.code() == absl::StatusCode::kDeadlineExceeded) {
    return status;
  }
  return absl::Status(status.code(),
                      absl::StrCat("key '", key, "': ", status.message()));
}

std::string ParentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

absl::Status ConfigStore::EnsureBase(absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  absl::Status ensured = sync.EnsurePath(keys_.base());
  if (!ensured.ok()) return ensured;
  // Nodes that existed already may belong to another identity: say so now,
  // not at the first PutConfig. The root is Warren's too (unless it is "/").
  const std::string root = ParentOf(keys_.base());
  if (root != "/") {
    absl::Status root_access = zk::CheckAccess(zk_, root, deadline);
    if (!root_access.ok()) return root_access;
  }
  return zk::CheckAccess(zk_, keys_.base(), deadline);
}

namespace {

// Joins a read with the sync sent before it (when there is one): answers
// once both have come back, the sync's failure first.
class PendingGet {
 public:
  PendingGet(std::string key, bool synced, zk::Callback<CachedEntry> done)
      : key_(std::move(key)), synced_(synced), done_(std::move(done)) {}

  void OnSynced(absl::Status status) {
    warren::MutexLock lock(&mu_);
    synced_ = true;
    sync_status_ = std::move(status);
    MaybeAnswerLocked();
  }
  void OnRead(absl::StatusOr<zk::NodeData> data) {
    warren::MutexLock lock(&mu_);
    data_ = std::move(data);
    MaybeAnswerLocked();
  }

 private:
  void MaybeAnswerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!synced_ || !data_.has_value()) return;
    if (!sync_status_.ok()) {
      done_(Annotate(sync_status_, key_));
    } else if (!data_->ok()) {
      done_(
          ZkErrorOf(data_->status()) == ZkError::kNoNode
              ? absl::NotFoundError(absl::StrCat("key '", key_, "' not found"))
              : Annotate(data_->status(), key_));
    } else {
      done_(CachedEntry{key_, std::move((*data_)->value), (*data_)->stat});
    }
  }

  const std::string key_;
  warren::Mutex mu_;
  bool synced_ ABSL_GUARDED_BY(mu_);
  absl::Status sync_status_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::StatusOr<zk::NodeData>> data_ ABSL_GUARDED_BY(mu_);
  zk::Callback<CachedEntry> done_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void ConfigStore::GetAsync(const std::string& key, bool consistent,
                           zk::Callback<CachedEntry> done) {
  const std::string path = keys_.PathOf(key);
  auto pending =
      std::make_shared<PendingGet>(key, !consistent, std::move(done));
  if (consistent) {
    zk_.Sync(path,
             [pending](absl::Status status) { pending->OnSynced(status); });
  }
  zk_.Get(path, nullptr, [pending](absl::StatusOr<zk::NodeData> data) {
    pending->OnRead(std::move(data));
  });
}

absl::StatusOr<CachedEntry> ConfigStore::CreateWithParents(
    const std::string& key, const std::string& value, absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  const std::string path = keys_.PathOf(key);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    // Find the missing ancestors, deepest first.
    std::vector<std::string> missing;
    for (std::string parent = ParentOf(path); parent != "/";
         parent = ParentOf(parent)) {
      auto exists = sync.Exists(parent);
      if (!exists.ok()) return Annotate(exists.status(), key);
      if (exists->has_value()) break;
      missing.push_back(parent);
    }
    std::vector<zk::Op> ops;
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      ops.push_back(zk::Op::Create(*it, ""));
    }
    ops.push_back(zk::Op::Create(path, value));
    auto result = sync.Multi(std::move(ops));
    if (!result.ok()) return result.status();
    if (result->status.ok()) {
      // The multi-operation does not return the new node's metadata; read
      // it. A write that got in between changes version and mtime, but not
      // the creation time, which is our write's time.
      auto stat = sync.Exists(path);
      zk::NodeStat out;
      if (stat.ok() && stat->has_value()) {
        out = **stat;
        out.version = 0;
        out.mtime_ms = out.ctime_ms;
        out.mzxid = out.czxid;
      }
      return CachedEntry{key, value, out};
    }
    const ZkError error = ZkErrorOf(result->status);
    const bool leaf_failed =
        result->failed_op == static_cast<int>(missing.size());
    if (error == ZkError::kNodeExists && leaf_failed) {
      return absl::AlreadyExistsError(
          absl::StrCat("key '", key, "' already exists"));
    }
    if (error == ZkError::kNodeExists || error == ZkError::kNoNode) {
      continue;  // a parent appeared or vanished meanwhile: look again
    }
    return Annotate(result->status, key);
  }
  return Contended("create", key);
}

absl::StatusOr<CachedEntry> ConfigStore::Put(const PutParams& params,
                                             absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  const std::string path = keys_.PathOf(params.key);
  if (params.create_only) {
    return CreateWithParents(params.key, params.value, deadline);
  }
  if (params.expected_version.has_value()) {
    auto stat = sync.Set(path, params.value,
                         static_cast<int32_t>(*params.expected_version));
    if (stat.ok()) return CachedEntry{params.key, params.value, *stat};
    switch (ZkErrorOf(stat.status())) {
      case ZkError::kNoNode:
        return absl::NotFoundError(
            absl::StrCat("key '", params.key, "' not found; expected_version ",
                         *params.expected_version, " needs an existing key"));
      case ZkError::kBadVersion:
        return absl::FailedPreconditionError(
            absl::StrCat("key '", params.key, "' is not at expected_version ",
                         *params.expected_version));
      default:
        return Annotate(stat.status(), params.key);
    }
  }
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    auto stat = sync.Set(path, params.value, -1);
    if (stat.ok()) return CachedEntry{params.key, params.value, *stat};
    if (ZkErrorOf(stat.status()) != ZkError::kNoNode) {
      return Annotate(stat.status(), params.key);
    }
    auto created = CreateWithParents(params.key, params.value, deadline);
    if (created.ok() ||
        created.status().code() != absl::StatusCode::kAlreadyExists) {
      return created;
    }
    // Created by someone else in between: write over it.
  }
  return Contended("write", params.key);
}

absl::Status ConfigStore::Delete(const DeleteParams& params,
                                 absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  const std::string path = keys_.PathOf(params.key);
  const int32_t version = params.expected_version.has_value()
                              ? static_cast<int32_t>(*params.expected_version)
                              : -1;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    // The subtree, parents before children (only the key itself unless
    // recursive).
    std::vector<std::string> subtree = {path};
    if (params.recursive) {
      for (size_t i = 0; i < subtree.size(); ++i) {
        auto children = sync.GetChildren(subtree[i]);
        if (!children.ok()) {
          if (ZkErrorOf(children.status()) == ZkError::kNoNode) {
            if (i == 0) break;  // reported by the delete below
            continue;
          }
          return Annotate(children.status(), params.key);
        }
        for (const std::string& name : children->names) {
          subtree.push_back(absl::StrCat(subtree[i], "/", name));
        }
        if (subtree.size() > kMaxRecursiveDelete) {
          return absl::FailedPreconditionError(absl::StrCat(
              "key '", params.key, "' has more than ", kMaxRecursiveDelete,
              " keys below it; delete parts of it first"));
        }
      }
    }
    std::vector<zk::Op> ops;
    for (auto it = subtree.rbegin(); it != subtree.rend(); ++it) {
      ops.push_back(zk::Op::Delete(*it, *it == path ? version : -1));
    }
    auto result = sync.Multi(std::move(ops));
    if (!result.ok()) return result.status();
    if (result->status.ok()) return absl::OkStatus();
    const ZkError error = ZkErrorOf(result->status);
    const bool key_failed =
        result->failed_op == static_cast<int>(subtree.size()) - 1;
    if (key_failed && error == ZkError::kNoNode) {
      return absl::NotFoundError(
          absl::StrCat("key '", params.key, "' not found"));
    }
    if (key_failed && error == ZkError::kBadVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "key '", params.key, "' is not at expected_version ", version));
    }
    if (error == ZkError::kNotEmpty && !params.recursive) {
      return absl::FailedPreconditionError(absl::StrCat(
          "key '", params.key,
          "' has keys below it; set recursive to delete them too"));
    }
    if (error == ZkError::kNotEmpty || error == ZkError::kNoNode) {
      continue;  // the subtree changed while we read it
    }
    return Annotate(result->status, params.key);
  }
  return Contended("delete", params.key);
}

absl::StatusOr<ListPage> ConfigStore::List(const ListParams& params,
                                           absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  ListPage page;
  const size_t limit = static_cast<size_t>(params.page_size);
  size_t bytes = 0;
  absl::Status failure;

  // Depth-first in path order; subtrees that lie wholly before `after` are
  // skipped without being read. Answers false to stop.
  std::function<bool(const std::string&)> visit =
      [&](const std::string& key) -> bool {
    const std::string path = keys_.PathOf(key);
    const bool include =
        !key.empty() && (params.after.empty() || PathLess(params.after, key));
    if (include) {
      if (page.entries.size() == limit) {
        page.more = true;
        return false;
      }
      CachedEntry entry{key, "", {}};
      if (params.keys_only) {
        auto stat = sync.Exists(path);
        if (!stat.ok()) {
          failure = stat.status();
          return false;
        }
        if (!stat->has_value()) return true;  // deleted meanwhile
        entry.stat = **stat;
      } else {
        auto data = sync.Get(path);
        if (!data.ok()) {
          if (ZkErrorOf(data.status()) == ZkError::kNoNode) return true;
          failure = data.status();
          return false;
        }
        entry.value = std::move(data->value);
        entry.stat = data->stat;
      }
      // A page ends early rather than grow past what one message may hold;
      // the next page starts with this entry (it is after the last key).
      const size_t entry_bytes = EntryBytes(key.size(), entry.value.size());
      if (!page.entries.empty() && bytes + entry_bytes > params.max_bytes) {
        page.more = true;
        return false;
      }
      bytes += entry_bytes;
      page.entries.push_back(std::move(entry));
    }
    auto children = sync.GetChildren(path);
    if (!children.ok()) {
      if (ZkErrorOf(children.status()) == ZkError::kNoNode) return true;
      failure = children.status();
      return false;
    }
    // Names hold no '/', so plain ordering is path ordering among siblings.
    std::sort(children->names.begin(), children->names.end());
    for (const std::string& name : children->names) {
      const std::string child =
          key.empty() ? name : absl::StrCat(key, "/", name);
      if (!params.after.empty() && PathLess(child, params.after) &&
          !IsSelfOrDescendant(params.after, child)) {
        continue;  // wholly on earlier pages
      }
      if (!visit(child)) return false;
    }
    return true;
  };
  visit(params.prefix);
  if (!failure.ok()) return Annotate(failure, params.prefix);
  return page;
}

}  // namespace warren::config
