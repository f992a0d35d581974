#include "tests/fakes/fake_zk.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"

namespace warren::testing {
namespace {

std::string ParentOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string NameOf(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

}  // namespace

FakeZk::FakeZk() { nodes_["/"] = Node{}; }

void FakeZk::Post(absl::AnyInvocable<void()> fn) {
  warren::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

void FakeZk::RunUntilIdle() {
  while (RunOne()) {
  }
}

bool FakeZk::RunOne() {
  absl::AnyInvocable<void()> next;
  {
    warren::MutexLock lock(&mu_);
    if (queue_.empty()) return false;
    next = std::move(queue_.front());
    queue_.pop_front();
  }
  next();
  return true;
}

void FakeZk::SetStateLocked(zk::SessionState state) {
  state_ = state;
  queue_.push_back([this, state] {
    // Listeners may start operations, which take mu_: call them without it.
    std::vector<int> ids;
    {
      warren::MutexLock lock(&mu_);
      for (auto& [id, listener] : listeners_) ids.push_back(id);
    }
    for (int id : ids) {
      zk::SessionListener listener;
      {
        warren::MutexLock lock(&mu_);
        auto it = listeners_.find(id);
        if (it == listeners_.end()) continue;
        listener = std::move(it->second);
      }
      listener(state);
      warren::MutexLock lock(&mu_);
      auto it = listeners_.find(id);
      if (it != listeners_.end()) it->second = std::move(listener);
    }
  });
}

void FakeZk::Disconnect() {
  warren::MutexLock lock(&mu_);
  SetStateLocked(zk::SessionState::kSuspended);
}

void FakeZk::Reconnect() {
  warren::MutexLock lock(&mu_);
  SetStateLocked(zk::SessionState::kConnected);
  auto missed = std::move(missed_);
  missed_.clear();
  for (auto& [child, event] : missed) {
    TriggerLocked(child ? child_watches_ : data_watches_, event.path,
                  event.type);
  }
}

void FakeZk::ExpireUnnoticed() {
  warren::MutexLock lock(&mu_);
  server_lost_ = true;
}

void FakeZk::Expire() {
  warren::MutexLock lock(&mu_);
  server_lost_ = false;
  data_watches_.clear();
  child_watches_.clear();
  missed_.clear();
  // The session's ephemeral nodes go with it (deepest first).
  std::vector<std::string> ephemeral;
  for (const auto& [path, node] : nodes_) {
    if (node.stat.ephemeral_owner == static_cast<int64_t>(generation_)) {
      ephemeral.push_back(path);
    }
  }
  for (auto it = ephemeral.rbegin(); it != ephemeral.rend(); ++it) {
    (void)DeleteLocked(*it, -1, /*external=*/true);
  }
  missed_.clear();
  SetStateLocked(zk::SessionState::kExpired);
  SetStateLocked(zk::SessionState::kConnecting);
  ++generation_;
  SetStateLocked(zk::SessionState::kConnected);
}

size_t FakeZk::registered_watch_count() {
  warren::MutexLock lock(&mu_);
  size_t n = 0;
  for (auto& [path, fns] : data_watches_) n += fns.size();
  for (auto& [path, fns] : child_watches_) n += fns.size();
  return n;
}

zk::SessionState FakeZk::state() const {
  warren::MutexLock lock(&mu_);
  return state_;
}

uint64_t FakeZk::session_generation() const {
  warren::MutexLock lock(&mu_);
  return generation_;
}

int FakeZk::AddSessionListener(zk::SessionListener listener) {
  warren::MutexLock lock(&mu_);
  const int id = next_listener_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void FakeZk::RemoveSessionListener(int id) {
  warren::MutexLock lock(&mu_);
  listeners_.erase(id);
}

bool FakeZk::AnsweringLocked() const {
  return state_ == zk::SessionState::kConnected && !server_lost_;
}

void FakeZk::SetNegotiatedSessionTimeout(absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  negotiated_ = timeout;
}

absl::Duration FakeZk::negotiated_session_timeout() const {
  warren::MutexLock lock(&mu_);
  return state_ == zk::SessionState::kConnected ? negotiated_
                                                : absl::ZeroDuration();
}

absl::Status FakeZk::Unavailable() const {
  return zk::MakeZkError(zk::ZkError::kConnectionLoss, "fake: not connected");
}

void FakeZk::TriggerLocked(
    std::map<std::string, std::vector<zk::WatchFn>>& table,
    const std::string& path, zk::EventType type) {
  if (batch_ != nullptr) {
    batch_->emplace_back(&table == &child_watches_, zk::WatchEvent{type, path});
    return;
  }
  if (state_ != zk::SessionState::kConnected) {
    missed_.emplace_back(&table == &child_watches_, zk::WatchEvent{type, path});
    return;
  }
  auto it = table.find(path);
  if (it == table.end()) return;
  for (auto& fn : it->second) {
    queue_.push_back(
        [fn = std::move(fn), event = zk::WatchEvent{type, path}]() mutable {
          fn(event);
        });
  }
  table.erase(it);
}

absl::Status FakeZk::CheckPermLocked(const std::string& path,
                                     int32_t perm) const {
  auto it = nodes_.find(path);
  if (it == nodes_.end() || (policy_.PermsOn(it->second.acl) & perm) != 0) {
    return absl::OkStatus();
  }
  return zk::MakeZkError(zk::ZkError::kNoAuth, "fake: not authorized");
}

absl::Status FakeZk::CreateLocked(const std::string& path,
                                  const std::string& value, zk::NodeStat* stat,
                                  int64_t ephemeral_owner, bool external) {
  const std::string parent = ParentOf(path);
  // ZooKeeper checks the parent's ACL before looking for the node.
  if (!external) {
    absl::Status allowed = CheckPermLocked(parent, zk::kPermCreate);
    if (!allowed.ok()) return allowed;
  }
  if (nodes_.count(path) != 0) {
    return zk::MakeZkError(zk::ZkError::kNodeExists, "fake: node exists");
  }
  auto p = nodes_.find(parent);
  if (p == nodes_.end()) {
    return zk::MakeZkError(zk::ZkError::kNoNode, "fake: no parent");
  }
  if (p->second.stat.ephemeral_owner != 0 &&
      p->second.stat.ephemeral_owner != kContainerOwner) {
    return zk::MakeZkError(zk::ZkError::kOther,
                           "fake: no children for ephemerals");
  }
  Node node;
  if (!external) node.acl = policy_.node_acl();
  node.value = value;
  node.stat.czxid = node.stat.mzxid = ++zxid_;
  node.stat.ctime_ms = node.stat.mtime_ms = 1000 * zxid_;
  node.stat.ephemeral_owner = ephemeral_owner;
  p->second.children.insert(NameOf(path));
  p->second.stat.cversion++;
  p->second.stat.num_children++;
  if (stat != nullptr) *stat = node.stat;
  nodes_[path] = std::move(node);
  TriggerLocked(data_watches_, path, zk::EventType::kCreated);
  TriggerLocked(child_watches_, parent, zk::EventType::kChildrenChanged);
  return absl::OkStatus();
}

absl::StatusOr<zk::NodeStat> FakeZk::SetLocked(const std::string& path,
                                               const std::string& value,
                                               int32_t version, bool external) {
  if (!external) {
    absl::Status allowed = CheckPermLocked(path, zk::kPermWrite);
    if (!allowed.ok()) return allowed;
  }
  auto it = nodes_.find(path);
  if (it == nodes_.end()) {
    return zk::MakeZkError(zk::ZkError::kNoNode, "fake: no node");
  }
  if (version != -1 && version != it->second.stat.version) {
    return zk::MakeZkError(zk::ZkError::kBadVersion, "fake: bad version");
  }
  it->second.value = value;
  it->second.null_data = false;
  it->second.stat.version++;
  it->second.stat.mzxid = ++zxid_;
  it->second.stat.mtime_ms = 1000 * zxid_;
  TriggerLocked(data_watches_, path, zk::EventType::kDataChanged);
  return it->second.stat;
}

absl::Status FakeZk::DeleteLocked(const std::string& path, int32_t version,
                                  bool external) {
  if (!external && path != "/") {
    absl::Status allowed = CheckPermLocked(ParentOf(path), zk::kPermDelete);
    if (!allowed.ok()) return allowed;
  }
  auto it = nodes_.find(path);
  if (it == nodes_.end() || path == "/") {
    return zk::MakeZkError(zk::ZkError::kNoNode, "fake: no node");
  }
  if (version != -1 && version != it->second.stat.version) {
    return zk::MakeZkError(zk::ZkError::kBadVersion, "fake: bad version");
  }
  if (!it->second.children.empty()) {
    return zk::MakeZkError(zk::ZkError::kNotEmpty, "fake: not empty");
  }
  nodes_.erase(it);
  const std::string parent = ParentOf(path);
  nodes_[parent].children.erase(NameOf(path));
  nodes_[parent].stat.cversion++;
  nodes_[parent].stat.num_children--;
  ++zxid_;
  TriggerLocked(data_watches_, path, zk::EventType::kDeleted);
  TriggerLocked(child_watches_, path, zk::EventType::kDeleted);
  TriggerLocked(child_watches_, parent, zk::EventType::kChildrenChanged);
  return absl::OkStatus();
}

void FakeZk::ExternalPut(const std::string& path, const std::string& value) {
  warren::MutexLock lock(&mu_);
  if (nodes_.count(path) != 0) {
    (void)SetLocked(path, value, -1, /*external=*/true);
  } else {
    (void)CreateLocked(path, value, nullptr, 0, /*external=*/true);
  }
}

void FakeZk::ExternalPutEphemeral(const std::string& path,
                                  const std::string& value) {
  warren::MutexLock lock(&mu_);
  (void)CreateLocked(path, value, nullptr, kOtherSessionOwner,
                     /*external=*/true);
}

void FakeZk::ExternalDelete(const std::string& path) {
  warren::MutexLock lock(&mu_);
  (void)DeleteLocked(path, -1, /*external=*/true);
}

void FakeZk::ExternalSetAcl(const std::string& path,
                            std::vector<zk::AclEntry> acl) {
  warren::MutexLock lock(&mu_);
  auto it = nodes_.find(path);
  if (it != nodes_.end()) it->second.acl = std::move(acl);
}

std::vector<zk::AclEntry> FakeZk::AclOf(const std::string& path) {
  warren::MutexLock lock(&mu_);
  auto it = nodes_.find(path);
  return it == nodes_.end() ? std::vector<zk::AclEntry>() : it->second.acl;
}

void FakeZk::SetAclPolicy(zk::AclPolicy policy) {
  warren::MutexLock lock(&mu_);
  policy_ = std::move(policy);
}

const zk::AclPolicy& FakeZk::acl_policy() const {
  // Set before the code under test runs; not changed while it does.
  return policy_;
}

void FakeZk::Get(const std::string& path, zk::WatchFn watch,
                 zk::Callback<zk::NodeData> done) {
  warren::MutexLock lock(&mu_);
  absl::StatusOr<zk::NodeData> result;
  if (!AnsweringLocked()) {
    result = Unavailable();
  } else if (auto it = nodes_.find(path); it == nodes_.end()) {
    result = zk::MakeZkError(zk::ZkError::kNoNode, "fake: no node");
  } else if (absl::Status allowed = CheckPermLocked(path, zk::kPermRead);
             !allowed.ok()) {
    result = allowed;
  } else {
    result =
        zk::NodeData{it->second.value, it->second.null_data, it->second.stat};
    if (watch) data_watches_[path].push_back(std::move(watch));
  }
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

void FakeZk::Exists(const std::string& path, zk::WatchFn watch,
                    zk::Callback<std::optional<zk::NodeStat>> done) {
  warren::MutexLock lock(&mu_);
  absl::StatusOr<std::optional<zk::NodeStat>> result;
  if (!AnsweringLocked()) {
    result = Unavailable();
  } else {
    auto it = nodes_.find(path);
    result = it == nodes_.end() ? std::optional<zk::NodeStat>()
                                : std::optional<zk::NodeStat>(it->second.stat);
    if (watch) data_watches_[path].push_back(std::move(watch));
  }
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

void FakeZk::GetChildren(const std::string& path, zk::WatchFn watch,
                         zk::Callback<zk::Children> done) {
  warren::MutexLock lock(&mu_);
  absl::StatusOr<zk::Children> result;
  if (!AnsweringLocked()) {
    result = Unavailable();
  } else if (auto it = nodes_.find(path); it == nodes_.end()) {
    result = zk::MakeZkError(zk::ZkError::kNoNode, "fake: no node");
  } else if (absl::Status allowed = CheckPermLocked(path, zk::kPermRead);
             !allowed.ok()) {
    result = allowed;
  } else {
    zk::Children children;
    children.names.assign(it->second.children.begin(),
                          it->second.children.end());
    children.stat = it->second.stat;
    result = std::move(children);
    if (watch) child_watches_[path].push_back(std::move(watch));
  }
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

void FakeZk::Create(const std::string& path, const std::string& value,
                    zk::CreateMode mode, zk::Callback<zk::Created> done) {
  warren::MutexLock lock(&mu_);
  absl::StatusOr<zk::Created> result;
  if (!AnsweringLocked()) {
    result = Unavailable();
  } else {
    std::string actual = path;
    if (mode == zk::CreateMode::kEphemeralSequential) {
      const int n = sequence_[ParentOf(path)]++;
      char digits[16];
      std::snprintf(digits, sizeof(digits), "%010d", n);
      actual += digits;
    }
    const bool ephemeral = mode == zk::CreateMode::kEphemeral ||
                           mode == zk::CreateMode::kEphemeralSequential;
    // As ZooKeeper marks them: a container's ephemeralOwner is the lowest
    // int64 (EphemeralType.CONTAINER_EPHEMERAL_OWNER), not 0.
    const int64_t owner = ephemeral ? static_cast<int64_t>(generation_)
                          : mode == zk::CreateMode::kContainer ? kContainerOwner
                                                               : 0;
    zk::NodeStat stat;
    absl::Status status = CreateLocked(actual, value, &stat, owner);
    if (status.ok()) {
      result = zk::Created{actual, stat};
    } else {
      result = status;
    }
    if (lose_next_create_) {
      lose_next_create_ = false;
      result = Unavailable();
      SetStateLocked(zk::SessionState::kSuspended);
    }
  }
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

void FakeZk::LoseNextCreateResponse() {
  warren::MutexLock lock(&mu_);
  lose_next_create_ = true;
}

std::vector<std::string> FakeZk::Children(const std::string& path) {
  warren::MutexLock lock(&mu_);
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return {};
  return std::vector<std::string>(it->second.children.begin(),
                                  it->second.children.end());
}

std::vector<std::string> FakeZk::EphemeralNodes() {
  warren::MutexLock lock(&mu_);
  std::vector<std::string> paths;
  for (const auto& [path, node] : nodes_) {
    if (node.stat.ephemeral_owner != 0 &&
        node.stat.ephemeral_owner != kContainerOwner) {
      paths.push_back(path);
    }
  }
  return paths;
}

size_t FakeZk::data_watch_count(const std::string& path) {
  warren::MutexLock lock(&mu_);
  auto it = data_watches_.find(path);
  return it == data_watches_.end() ? 0 : it->second.size();
}

void FakeZk::Set(const std::string& path, const std::string& value,
                 int32_t version, zk::Callback<zk::NodeStat> done) {
  warren::MutexLock lock(&mu_);
  absl::StatusOr<zk::NodeStat> result =
      !AnsweringLocked() ? Unavailable() : SetLocked(path, value, version);
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

void FakeZk::Delete(const std::string& path, int32_t version,
                    zk::DoneCallback done) {
  warren::MutexLock lock(&mu_);
  absl::Status result =
      !AnsweringLocked() ? Unavailable() : DeleteLocked(path, version);
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

void FakeZk::GetAcl(const std::string& path, zk::Callback<zk::NodeAcl> done) {
  warren::MutexLock lock(&mu_);
  absl::StatusOr<zk::NodeAcl> result;
  if (!AnsweringLocked()) {
    result = Unavailable();
  } else if (auto it = nodes_.find(path); it == nodes_.end()) {
    result = zk::MakeZkError(zk::ZkError::kNoNode, "fake: no node");
  } else if (absl::Status allowed =
                 CheckPermLocked(path, zk::kPermRead | zk::kPermAdmin);
             !allowed.ok()) {
    result = allowed;
  } else {
    result = zk::NodeAcl{it->second.acl, it->second.stat};
  }
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

void FakeZk::Sync(const std::string& /*path*/, zk::DoneCallback done) {
  warren::MutexLock lock(&mu_);
  absl::Status result = !AnsweringLocked() ? Unavailable() : absl::OkStatus();
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

void FakeZk::Multi(std::vector<zk::Op> ops,
                   absl::AnyInvocable<void(zk::MultiResult)> done) {
  warren::MutexLock lock(&mu_);
  zk::MultiResult result;
  result.results.resize(ops.size());
  if (!AnsweringLocked()) {
    result.status = Unavailable();
  } else {
    // All or nothing: apply to a copy, keep it only if every step works.
    auto saved_nodes = nodes_;
    auto saved_zxid = zxid_;
    std::vector<std::pair<bool, zk::WatchEvent>> triggers;
    batch_ = &triggers;
    for (size_t i = 0; i < ops.size() && result.status.ok(); ++i) {
      const zk::Op& op = ops[i];
      absl::Status status;
      switch (op.kind) {
        case zk::Op::Kind::kCreate: {
          const bool ephemeral = op.mode == zk::CreateMode::kEphemeral;
          status =
              CreateLocked(op.path, op.value, &result.results[i].stat,
                           ephemeral ? static_cast<int64_t>(generation_) : 0);
          result.results[i].created_path = op.path;
          if (status.ok()) nodes_[op.path].null_data = op.null_data;
          break;
        }
        case zk::Op::Kind::kDelete:
          status = DeleteLocked(op.path, op.version);
          break;
        case zk::Op::Kind::kSetData: {
          auto stat = SetLocked(op.path, op.value, op.version);
          status = stat.status();
          if (stat.ok()) {
            result.results[i].stat = *stat;
            nodes_[op.path].null_data = op.null_data;
          }
          break;
        }
        case zk::Op::Kind::kCheck: {
          auto it = nodes_.find(op.path);
          if (it == nodes_.end()) {
            status = zk::MakeZkError(zk::ZkError::kNoNode, "fake: no node");
          } else if (absl::Status allowed =
                         CheckPermLocked(op.path, zk::kPermRead);
                     !allowed.ok()) {
            status = allowed;
          } else if (op.version != -1 &&
                     op.version != it->second.stat.version) {
            status = zk::MakeZkError(zk::ZkError::kBadVersion, "fake: version");
          }
          break;
        }
      }
      result.results[i].status = status;
      if (!status.ok()) {
        result.status = status;
        result.failed_op = static_cast<int>(i);
      }
    }
    batch_ = nullptr;
    if (!result.status.ok()) {
      nodes_ = std::move(saved_nodes);
      zxid_ = saved_zxid;
    } else {
      for (auto& [child, event] : triggers) {
        TriggerLocked(child ? child_watches_ : data_watches_, event.path,
                      event.type);
      }
    }
  }
  queue_.push_back(
      [done = std::move(done), result]() mutable { done(std::move(result)); });
}

}  // namespace warren::testing
