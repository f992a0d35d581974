#include "server/config/config_store.h"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <variant>

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
    } else if (!data_->ok() && ZkErrorOf(data_->status()) != ZkError::kNoNode) {
      done_(Annotate(data_->status(), key_));
    } else if (!data_->ok() || (*data_)->null_data) {
      // A namespace node is not a key.
      done_(absl::NotFoundError(absl::StrCat("key '", key_, "' not found")));
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

absl::StatusOr<CachedEntry> ConfigStore::Read(const std::string& key,
                                              absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  auto data = sync.Get(keys_.PathOf(key));
  if (data.ok() && !data->null_data) {
    return CachedEntry{key, std::move(data->value), data->stat};
  }
  if (!data.ok() && ZkErrorOf(data.status()) != ZkError::kNoNode) {
    return Annotate(data.status(), key);
  }
  return absl::NotFoundError(absl::StrCat("key '", key, "' not found"));
}

namespace {

// What a plan knows of one node: read from ZooKeeper once, then updated by
// the steps planned before.
struct NodeState {
  bool exists = false;
  bool null_data = false;  // a namespace node
  int32_t version = 0;
  int64_t ephemeral_owner = 0;
  int32_t children = 0;

  bool is_key() const { return exists && !null_data; }
  bool held() const { return exists && ephemeral_owner != 0; }
};

// Who a step of the multi belongs to: the guard, a check or an op.
struct StepOwner {
  enum class Kind { kGuard, kCheck, kOp } kind;
  size_t index = 0;
  std::string key;
};

// A refusal that planning found: a single write's own code, or in a
// transaction FAILED_PRECONDITION naming the check or op.
struct Refusal {
  absl::Status status;
};

// Turns checks and ops into the steps of one multi, from what it reads.
// A step that fails when the multi runs means that something read here
// changed meanwhile: the caller plans again, and the refusal (if any) then
// comes from planning, with a message that says what is wrong.
class WritePlan {
 public:
  WritePlan(zk::ZkSync& sync, const KeySpace& keys, bool txn)
      : sync_(sync), keys_(keys), txn_(txn) {}

  void AddGuard(const zk::Op& guard) {
    Add(guard, {StepOwner::Kind::kGuard, 0, ""});
  }

  absl::Status AddCheck(size_t i, const CheckParams& check) {
    owner_ = {StepOwner::Kind::kCheck, i, check.key};
    const std::string path = keys_.PathOf(check.key);
    auto state = StateOf(path);
    if (!state.ok()) return state.status();
    const NodeState s = **state;
    if (check.version.has_value()) {
      if (!s.is_key()) {
        return Refuse(absl::StatusCode::kFailedPrecondition,
                      absl::StrCat("key '", check.key, "' not found (version ",
                                   *check.version, " expected)"));
      }
      if (s.version != *check.version) {
        return Refuse(absl::StatusCode::kFailedPrecondition,
                      absl::StrCat("key '", check.key, "' is at version ",
                                   s.version, ", not ", *check.version));
      }
      Add(zk::Op::Check(path, s.version), owner_);
      return absl::OkStatus();
    }
    const bool want = check.exists.value_or(true);
    if (want != s.is_key()) {
      return Refuse(absl::StatusCode::kFailedPrecondition,
                    absl::StrCat("key '", check.key,
                                 want ? "' does not exist" : "' exists"));
    }
    if (s.exists) {
      // The version moves with every write, a namespace node's turning
      // into a key included.
      Add(zk::Op::Check(path, s.version), owner_);
      return absl::OkStatus();
    }
    // ZooKeeper has no "does not exist" check: creating the node (and its
    // missing parents) and deleting it again fails if it exists, and
    // leaves nothing. Below a held key nothing can exist while it does.
    auto chain = MissingChain(path);
    if (!chain.ok()) return chain.status();
    if (chain->held_ancestor.has_value()) {
      Add(zk::Op::Check(chain->held_ancestor->first,
                        chain->held_ancestor->second),
          owner_);
      return absl::OkStatus();
    }
    for (const std::string& node : chain->missing) {
      Add(zk::Op::CreateNull(node), owner_);
    }
    for (auto it = chain->missing.rbegin(); it != chain->missing.rend(); ++it) {
      Add(zk::Op::Delete(*it), owner_);
    }
    return absl::OkStatus();
  }

  // Answers the index of the step whose result holds the put's new state.
  absl::StatusOr<size_t> AddPut(size_t i, const PutParams& put) {
    owner_ = {StepOwner::Kind::kOp, i, put.key};
    const std::string path = keys_.PathOf(put.key);
    auto state = StateOf(path);
    if (!state.ok()) return state.status();
    NodeState& s = **state;
    if (put.holder.has_value()) {
      if (!s.is_key() || s.ephemeral_owner != *put.holder) {
        return Refuse(absl::StatusCode::kNotFound,
                      absl::StrCat("key '", put.key,
                                   "' is no longer held by this stream"));
      }
    } else if (put.hold || put.create_only) {
      if (s.is_key()) {
        return Refuse(
            absl::StatusCode::kAlreadyExists,
            absl::StrCat("key '", put.key, "' already exists",
                         s.held() ? " (held by a HoldKey stream)" : ""));
      }
      if (put.hold && s.exists) {
        if (s.children > 0) {
          return Refuse(absl::StatusCode::kFailedPrecondition,
                        absl::StrCat("key '", put.key,
                                     "' has keys below it; a held key cannot"));
        }
        // A namespace node nobody removed (its keys went with an expired
        // holder's session): it goes, and the ephemeral takes its place.
        // The version pins it as read: a key created below it meanwhile
        // fails the step, and the plan is made again.
        Add(zk::Op::Delete(path, s.version), owner_);
        MarkDeleted(path);
      }
    }
    if (put.expected_version.has_value()) {
      if (!s.is_key()) {
        return Refuse(
            absl::StatusCode::kNotFound,
            absl::StrCat("key '", put.key, "' not found; expected_version ",
                         *put.expected_version, " needs an existing key"));
      }
      if (s.version != *put.expected_version) {
        return Refuse(
            absl::StatusCode::kFailedPrecondition,
            absl::StrCat("key '", put.key, "' is not at expected_version ",
                         *put.expected_version));
      }
    }
    if (s.exists) {
      // A write over a namespace node makes it a key; a create-only one
      // must find it still a namespace node, and a held key's holder must
      // find it unchanged by anyone else.
      const bool pinned = put.expected_version.has_value() ||
                          (s.null_data && put.create_only) ||
                          put.holder.has_value();
      zk::Op op = zk::Op::SetData(path, put.value, pinned ? s.version : -1);
      s.null_data = false;
      ++s.version;
      return Add(std::move(op), owner_);
    }
    auto chain = MissingChain(path);
    if (!chain.ok()) return chain.status();
    if (chain->held_ancestor.has_value()) {
      return Refuse(
          absl::StatusCode::kFailedPrecondition,
          absl::StrCat("key '", put.key, "' is below the held key '",
                       keys_.KeyOf(chain->held_ancestor->first).value_or(""),
                       "'; a held key cannot have keys below it"));
    }
    chain->missing.pop_back();  // the key itself
    for (const std::string& node : chain->missing) {
      Add(zk::Op::CreateNull(node), owner_);
      MarkCreated(node, /*null_data=*/true, 0);
    }
    const size_t step =
        Add(zk::Op::Create(path, put.value,
                           put.hold ? zk::CreateMode::kEphemeral
                                    : zk::CreateMode::kPersistent),
            owner_);
    MarkCreated(path, /*null_data=*/false, put.hold ? -1 : 0);
    created_.insert(step);
    return step;
  }

  // Answers whether a key (not a namespace node) went.
  absl::StatusOr<bool> AddDelete(size_t i, const DeleteParams& del) {
    owner_ = {StepOwner::Kind::kOp, i, del.key};
    const std::string path = keys_.PathOf(del.key);
    auto state = StateOf(path);
    if (!state.ok()) return state.status();
    NodeState& s = **state;
    const bool was_key = s.is_key();
    if (!s.exists ||
        (!was_key && (!del.recursive || del.expected_version.has_value() ||
                      del.holder.has_value()))) {
      return Refuse(absl::StatusCode::kNotFound,
                    absl::StrCat("key '", del.key, "' not found"));
    }
    if (del.holder.has_value() && s.ephemeral_owner != *del.holder) {
      return Refuse(
          absl::StatusCode::kNotFound,
          absl::StrCat("key '", del.key, "' is no longer held by this stream"));
    }
    if (del.expected_version.has_value() &&
        s.version != *del.expected_version) {
      return Refuse(
          absl::StatusCode::kFailedPrecondition,
          absl::StrCat("key '", del.key, "' is not at expected_version ",
                       *del.expected_version));
    }
    const int32_t version =
        del.expected_version.has_value() || del.holder.has_value() ? s.version
                                                                   : -1;
    deleted_.push_back(path);
    if (del.recursive) {
      auto subtree = Subtree(path);
      if (!subtree.ok()) return subtree.status();
      for (auto it = subtree->rbegin(); it != subtree->rend(); ++it) {
        Add(zk::Op::Delete(*it, *it == path ? version : -1), owner_);
        MarkDeleted(*it);
      }
      return was_key;
    }
    if (s.children > 0) {
      // Its children stay; it stays as their namespace node.
      Add(zk::Op::SetNull(path, version), owner_);
      s.null_data = true;
      ++s.version;
      return true;
    }
    Add(zk::Op::Delete(path, version), owner_);
    MarkDeleted(path);
    return true;
  }

  std::vector<zk::Op>& ops() { return ops_; }
  const StepOwner& owner_of(size_t step) const { return owners_[step]; }
  bool is_create(size_t step) const { return created_.count(step) != 0; }
  // The nodes deleted or emptied, whose namespace parents may now be empty.
  const std::vector<std::string>& deleted() const { return deleted_; }

 private:
  struct Chain {
    // The node and its missing ancestors, outermost first.
    std::vector<std::string> missing;
    // The nearest existing ancestor when it is a held key (path, version).
    std::optional<std::pair<std::string, int32_t>> held_ancestor;
  };

  size_t Add(zk::Op op, const StepOwner& owner) {
    ops_.push_back(std::move(op));
    owners_.push_back(owner);
    return ops_.size() - 1;
  }

  absl::Status Refuse(absl::StatusCode code, const std::string& message) {
    if (!txn_) return absl::Status(code, message);
    return absl::FailedPreconditionError(absl::StrCat(
        owner_.kind == StepOwner::Kind::kCheck ? "checks[" : "ops[",
        owner_.index, "]: ", message));
  }

  absl::StatusOr<NodeState*> StateOf(const std::string& path) {
    auto it = states_.find(path);
    if (it != states_.end()) return &it->second;
    NodeState state;
    auto data = sync_.Get(path);
    if (data.ok()) {
      state.exists = true;
      state.null_data = data->null_data;
      state.version = data->stat.version;
      state.ephemeral_owner = data->stat.ephemeral_owner;
      state.children = data->stat.num_children;
    } else if (ZkErrorOf(data.status()) != ZkError::kNoNode) {
      return Annotate(data.status(), owner_.key);
    }
    return &states_.emplace(path, state).first->second;
  }

  absl::StatusOr<Chain> MissingChain(const std::string& path) {
    Chain chain;
    chain.missing.push_back(path);
    for (std::string parent = ParentOf(path);
         parent != keys_.base() && parent != "/"; parent = ParentOf(parent)) {
      auto state = StateOf(parent);
      if (!state.ok()) return state.status();
      if ((*state)->exists) {
        if ((*state)->held()) {
          chain.held_ancestor.emplace(parent, (*state)->version);
        }
        break;
      }
      chain.missing.push_back(parent);
    }
    std::reverse(chain.missing.begin(), chain.missing.end());
    return chain;
  }

  void MarkCreated(const std::string& path, bool null_data, int64_t owner) {
    NodeState& s = states_[path];
    s = NodeState{};
    s.exists = true;
    s.null_data = null_data;
    s.ephemeral_owner = owner;
    auto parent = states_.find(ParentOf(path));
    if (parent != states_.end()) ++parent->second.children;
  }

  void MarkDeleted(const std::string& path) {
    states_[path] = NodeState{};
    auto parent = states_.find(ParentOf(path));
    if (parent != states_.end() && parent->second.children > 0) {
      --parent->second.children;
    }
  }

  // The node and everything below it, parents before children: what
  // ZooKeeper holds, plus what this plan created, less what it deleted.
  absl::StatusOr<std::vector<std::string>> Subtree(const std::string& path) {
    std::set<std::string, PathLessFn> nodes = {path};
    std::vector<std::string> queue = {path};
    for (size_t i = 0; i < queue.size(); ++i) {
      auto children = sync_.GetChildren(queue[i]);
      if (!children.ok()) {
        if (ZkErrorOf(children.status()) == ZkError::kNoNode) continue;
        return Annotate(children.status(), owner_.key);
      }
      for (const std::string& name : children->names) {
        queue.push_back(absl::StrCat(queue[i], "/", name));
        nodes.insert(queue.back());
      }
      if (nodes.size() > ConfigStore::kMaxRecursiveDelete) {
        return Refuse(absl::StatusCode::kFailedPrecondition,
                      absl::StrCat("key '", owner_.key, "' has more than ",
                                   ConfigStore::kMaxRecursiveDelete,
                                   " keys below it; delete parts of it first"));
      }
    }
    for (const auto& [node, state] : states_) {
      if (!IsSelfOrDescendant(node, path)) continue;
      if (state.exists) {
        nodes.insert(node);
      } else {
        nodes.erase(node);
      }
    }
    return std::vector<std::string>(nodes.begin(), nodes.end());
  }

  zk::ZkSync& sync_;
  const KeySpace& keys_;
  const bool txn_;
  StepOwner owner_{StepOwner::Kind::kGuard, 0, ""};
  std::map<std::string, NodeState> states_;
  std::vector<zk::Op> ops_;
  std::vector<StepOwner> owners_;
  std::set<size_t> created_;
  std::vector<std::string> deleted_;
};

bool Replannable(ZkError error) {
  return error == ZkError::kNoNode || error == ZkError::kNodeExists ||
         error == ZkError::kBadVersion || error == ZkError::kNotEmpty;
}

}  // namespace

absl::StatusOr<WriteOutcome> ConfigStore::Write(const WriteBatch& batch,
                                                absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  const std::string first_key =
      !batch.ops.empty()
          ? std::visit([](const auto& op) { return op.key; }, batch.ops[0])
          : "";
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    WritePlan plan(sync, keys_, batch.txn);
    if (batch.guard.has_value()) plan.AddGuard(*batch.guard);
    for (size_t i = 0; i < batch.checks.size(); ++i) {
      absl::Status planned = plan.AddCheck(i, batch.checks[i]);
      if (!planned.ok()) return planned;
    }
    // Per op: the step with a put's new state, or whether a delete took a
    // key.
    std::vector<std::optional<size_t>> put_steps(batch.ops.size());
    std::vector<bool> deleted_key(batch.ops.size(), false);
    for (size_t i = 0; i < batch.ops.size(); ++i) {
      if (const auto* put = std::get_if<PutParams>(&batch.ops[i])) {
        auto step = plan.AddPut(i, *put);
        if (!step.ok()) return step.status();
        put_steps[i] = *step;
      } else {
        auto took = plan.AddDelete(i, std::get<DeleteParams>(batch.ops[i]));
        if (!took.ok()) return took.status();
        deleted_key[i] = *took;
      }
    }
    auto result = sync.Multi(plan.ops());
    if (!result.ok()) return result.status();
    if (!result->status.ok()) {
      const StepOwner& owner = plan.owner_of(result->failed_op);
      const ZkError error = ZkErrorOf(result->status);
      if (owner.kind == StepOwner::Kind::kGuard) {
        if (error == ZkError::kNoNode || error == ZkError::kBadVersion) {
          return batch.guard_failed;
        }
        return result->status;
      }
      if (Replannable(error)) continue;  // something read changed meanwhile
      return Annotate(result->status, owner.key);
    }
    WriteOutcome outcome;
    for (size_t i = 0; i < batch.ops.size(); ++i) {
      if (!put_steps[i].has_value()) {
        if (deleted_key[i]) {
          outcome.changes.push_back(
              {Change::Type::kDelete,
               CachedEntry{std::get<DeleteParams>(batch.ops[i]).key, "", {}}});
        }
        continue;
      }
      const PutParams& put = std::get<PutParams>(batch.ops[i]);
      const size_t step = *put_steps[i];
      zk::NodeStat stat = result->results[step].stat;
      if (plan.is_create(step)) {
        // A multi's create does not return the new node's metadata: read
        // it. A write that got in between changes version and mtime, but
        // not the creation time, which is our write's time.
        auto read = sync.Exists(keys_.PathOf(put.key));
        stat = {};
        if (read.ok() && read->has_value()) {
          stat = **read;
          stat.version = 0;
          stat.mtime_ms = stat.ctime_ms;
          stat.mzxid = stat.czxid;
        }
      }
      outcome.puts.push_back(CachedEntry{put.key, put.value, stat});
      outcome.changes.push_back({Change::Type::kPut, outcome.puts.back()});
    }
    for (const std::string& path : plan.deleted()) {
      RemoveEmptyNamespaces(path, deadline);
    }
    return outcome;
  }
  return Contended(batch.txn ? "transaction" : "write", first_key);
}

void ConfigStore::RemoveEmptyNamespaces(const std::string& path,
                                        absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  for (std::string node = path; node != keys_.base() && node != "/";
       node = ParentOf(node)) {
    auto data = sync.Get(node);
    if (!data.ok()) {
      if (ZkErrorOf(data.status()) == ZkError::kNoNode) continue;
      return;
    }
    if (!data->null_data || data->stat.num_children > 0) return;
    // The version pins it as the namespace node read; a create below it
    // meanwhile makes the delete fail, and the namespace node stays.
    auto deleted = sync.Multi({zk::Op::Delete(node, data->stat.version)});
    if (!deleted.ok() || !deleted->status.ok()) return;
  }
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
      // Read with its data even for keys_only: only the data tells a key
      // from a namespace node.
      auto data = sync.Get(path);
      if (!data.ok()) {
        if (ZkErrorOf(data.status()) == ZkError::kNoNode) return true;
        failure = data.status();
        return false;
      }
      if (!data->null_data) {
        if (page.entries.size() == limit) {
          page.more = true;
          return false;
        }
        CachedEntry entry{key, "", data->stat};
        if (!params.keys_only) entry.value = std::move(data->value);
        // A page ends early rather than grow past what one message may
        // hold; the next page starts with this entry (it is after the last
        // key).
        const size_t entry_bytes = EntryBytes(key.size(), entry.value.size());
        if (!page.entries.empty() && bytes + entry_bytes > params.max_bytes) {
          page.more = true;
          return false;
        }
        bytes += entry_bytes;
        page.entries.push_back(std::move(entry));
      }
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
