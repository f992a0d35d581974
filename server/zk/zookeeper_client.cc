#include "server/zk/zookeeper_client.h"

#include <zookeeper/zookeeper.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace warren::zk {
namespace {

absl::Status FromZkError(int rc, absl::string_view path) {
  if (rc == ZOK) return absl::OkStatus();
  const std::string where = absl::StrCat(" (", path, ")");
  if (rc == ZNONODE)
    return MakeZkError(ZkError::kNoNode, "no such node" + where);
  if (rc == ZNODEEXISTS) {
    return MakeZkError(ZkError::kNodeExists, "node exists" + where);
  }
  if (rc == ZBADVERSION) {
    return MakeZkError(ZkError::kBadVersion, "version mismatch" + where);
  }
  if (rc == ZNOTEMPTY) {
    return MakeZkError(ZkError::kNotEmpty, "node has children" + where);
  }
  if (rc == ZNOAUTH || rc == ZAUTHFAILED) {
    return MakeZkError(ZkError::kNoAuth, "not authorized by ZooKeeper" + where);
  }
  if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZCLOSING ||
      rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE || rc == ZSESSIONMOVED) {
    return MakeZkError(
        ZkError::kConnectionLoss,
        absl::StrCat("ZooKeeper connection lost: ", zerror(rc), where));
  }
  return MakeZkError(ZkError::kOther, absl::StrCat("ZooKeeper error ", rc, ": ",
                                                   zerror(rc), where));
}

NodeStat FromZkStat(const struct Stat* stat) {
  NodeStat out;
  if (stat == nullptr) return out;
  out.czxid = stat->czxid;
  out.mzxid = stat->mzxid;
  out.ctime_ms = stat->ctime;
  out.mtime_ms = stat->mtime;
  out.version = stat->version;
  out.cversion = stat->cversion;
  out.ephemeral_owner = stat->ephemeralOwner;
  out.num_children = stat->numChildren;
  return out;
}

int ZkCreateFlags(CreateMode mode) {
  switch (mode) {
    case CreateMode::kPersistent:
      return ZOO_PERSISTENT;
    case CreateMode::kEphemeral:
      return ZOO_EPHEMERAL;
    case CreateMode::kEphemeralSequential:
      return ZOO_EPHEMERAL_SEQUENTIAL;
    case CreateMode::kContainer:
      return ZOO_CONTAINER;
  }
  return ZOO_PERSISTENT;
}

void SessionWatcherTrampoline(zhandle_t* zh, int type, int state,
                              const char* /*path*/, void* context) {
  if (type != ZOO_SESSION_EVENT) return;
  static_cast<ZooKeeperClient*>(context)->OnSessionEvent(zh, state);
}

void PathWatcherTrampoline(zhandle_t* zh, int type, int /*state*/,
                           const char* path, void* context) {
  // Every path watcher also hears session events; the session watcher
  // handles those.
  if (type == ZOO_SESSION_EVENT || type == ZOO_NOTWATCHING_EVENT) return;
  static_cast<ZooKeeperClient*>(context)->OnPathEvent(zh, type, path);
}

void LogFromZooKeeper(const char* message) {
  WARREN_LOG_DEBUG("zookeeper client: {}", message);
}

// The state a pending operation carries through the C client.
template <typename Done>
struct Pending {
  ZooKeeperClient* client;
  std::string path;
  WatchFn watch;
  Done done;
};

}  // namespace

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kConnecting:
      return "connecting";
    case SessionState::kConnected:
      return "connected";
    case SessionState::kSuspended:
      return "suspended";
    case SessionState::kExpired:
      return "expired";
    case SessionState::kClosed:
      return "closed";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<ZooKeeperClient>> ZooKeeperClient::Create(
    ZooKeeperOptions options) {
  if (options.connect.empty()) {
    return absl::InvalidArgumentError("zk_connect is empty");
  }
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
  std::unique_ptr<ZooKeeperClient> client(
      new ZooKeeperClient(std::move(options)));
  zhandle_t* zh = client->OpenHandle();
  if (zh == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot use ZooKeeper connect string '",
                     client->options_.connect, "': ", std::strerror(errno)));
  }
  {
    warren::MutexLock lock(&client->handle_mu_);
    client->handle_ = zh;
  }
  client->control_thread_ =
      std::thread([c = client.get()] { c->ControlLoop(); });
  return client;
}

ZooKeeperClient::ZooKeeperClient(ZooKeeperOptions options)
    : options_(std::move(options)) {}

ZooKeeperClient::~ZooKeeperClient() {
  {
    warren::MutexLock lock(&control_mu_);
    stopping_ = true;
  }
  if (control_thread_.joinable()) control_thread_.join();
  zhandle_t* zh;
  {
    warren::MutexLock lock(&handle_mu_);
    zh = std::exchange(handle_, nullptr);
  }
  state_.store(SessionState::kClosed);
  // Outstanding operations are answered (ZCLOSING) from inside close.
  if (zh != nullptr) zookeeper_close(zh);
  // Tasks deferred after the control thread stopped still owe an answer.
  std::deque<absl::AnyInvocable<void()>> leftover;
  {
    warren::MutexLock lock(&control_mu_);
    leftover.swap(control_tasks_);
  }
  for (auto& task : leftover) task();
}

zhandle_t* ZooKeeperClient::OpenHandle() {
  const int timeout_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options_.session_timeout));
  return zookeeper_init2(options_.connect.c_str(), SessionWatcherTrampoline,
                         timeout_ms, nullptr, this, 0, LogFromZooKeeper);
}

absl::Status ZooKeeperClient::WaitConnected(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // The state is atomic and changes on the C client's thread; poll it with a
  // short period rather than coupling a condition variable to the listener
  // machinery for this one start-up wait.
  while (state() != SessionState::kConnected) {
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(
          absl::StrCat("could not connect to ZooKeeper at ", options_.connect,
                       " within ", absl::FormatDuration(timeout),
                       " (state: ", SessionStateName(state()), ")"));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::OkStatus();
}

absl::Duration ZooKeeperClient::negotiated_session_timeout() const {
  warren::MutexLock lock(&handle_mu_);
  if (handle_ == nullptr || state() != SessionState::kConnected) {
    return absl::ZeroDuration();
  }
  return absl::Milliseconds(zoo_recv_timeout(handle_));
}

int ZooKeeperClient::AddSessionListener(SessionListener listener) {
  warren::MutexLock lock(&listeners_mu_);
  const int id = next_listener_id_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void ZooKeeperClient::RemoveSessionListener(int id) {
  warren::MutexLock lock(&listeners_mu_);
  listeners_.erase(id);
}

void ZooKeeperClient::SetState(SessionState next) {
  const SessionState previous = state_.exchange(next);
  if (previous == next) return;
  if (next == SessionState::kExpired) expiries_.fetch_add(1);
  if (next == SessionState::kConnected &&
      (previous == SessionState::kSuspended || generation_.load() > 1)) {
    reconnects_.fetch_add(1);
  }
  WARREN_LOG_INFO("zookeeper session {} -> {} (generation {}, servers {})",
                  SessionStateName(previous), SessionStateName(next),
                  generation_.load(), options_.connect);
  warren::MutexLock lock(&listeners_mu_);
  for (auto& [id, listener] : listeners_) listener(next);
}

void ZooKeeperClient::OnSessionEvent(zhandle_t* zh, int zk_state) {
  {
    warren::MutexLock lock(&handle_mu_);
    if (zh != handle_) return;  // a handle being replaced or closed
  }
  if (zk_state == ZOO_CONNECTED_STATE) {
    if (state() == SessionState::kConnecting) generation_.fetch_add(1);
    SetState(SessionState::kConnected);
  } else if (zk_state == ZOO_CONNECTING_STATE ||
             zk_state == ZOO_ASSOCIATING_STATE) {
    if (state() == SessionState::kConnected) SetState(SessionState::kSuspended);
  } else if (zk_state == ZOO_EXPIRED_SESSION_STATE ||
             zk_state == ZOO_AUTH_FAILED_STATE) {
    if (zk_state == ZOO_AUTH_FAILED_STATE) {
      WARREN_LOG_ERROR(
          "zookeeper authentication failed; opening a new session");
    }
    {
      // The session's watches are gone with it; the callbacks we hold for
      // them would never fire. Owners learn of the expiry and read again.
      warren::MutexLock lock(&watches_mu_);
      data_watches_.clear();
      child_watches_.clear();
    }
    SetState(SessionState::kExpired);
    warren::MutexLock lock(&control_mu_);
    replace_handle_ = true;
  }
}

void ZooKeeperClient::OnPathEvent(zhandle_t* zh, int type, const char* path) {
  {
    warren::MutexLock lock(&handle_mu_);
    if (zh != handle_) return;
  }
  WatchEvent event{EventType::kDataChanged, path == nullptr ? "" : path};
  std::vector<WatchFn> fire;
  {
    warren::MutexLock lock(&watches_mu_);
    auto take = [&](std::map<std::string, std::vector<WatchFn>>& table) {
      auto it = table.find(event.path);
      if (it == table.end()) return;
      for (auto& fn : it->second) fire.push_back(std::move(fn));
      table.erase(it);
    };
    if (type == ZOO_CREATED_EVENT) {
      event.type = EventType::kCreated;
      take(data_watches_);
    } else if (type == ZOO_CHANGED_EVENT) {
      event.type = EventType::kDataChanged;
      take(data_watches_);
    } else if (type == ZOO_DELETED_EVENT) {
      event.type = EventType::kDeleted;
      take(data_watches_);
      take(child_watches_);
    } else if (type == ZOO_CHILD_EVENT) {
      event.type = EventType::kChildrenChanged;
      take(child_watches_);
    } else {
      return;
    }
  }
  for (auto& fn : fire) fn(event);
}

void ZooKeeperClient::RegisterWatch(bool child, const std::string& path,
                                    WatchFn watch) {
  if (!watch) return;
  warren::MutexLock lock(&watches_mu_);
  (child ? child_watches_ : data_watches_)[path].push_back(std::move(watch));
}

void ZooKeeperClient::Defer(absl::AnyInvocable<void()> fn) {
  warren::MutexLock lock(&control_mu_);
  control_tasks_.push_back(std::move(fn));
}

template <typename Done>
bool ZooKeeperClient::RefuseUnlessConnected(Done& done) {
  const SessionState now = state();
  if (now == SessionState::kConnected) return false;
  Defer([done = std::move(done), now]() mutable {
    done(MakeZkError(ZkError::kConnectionLoss,
                     absl::StrCat("ZooKeeper session is ",
                                  SessionStateName(now), "; retry later")));
  });
  return true;
}

void ZooKeeperClient::ControlLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  absl::BitGen rng;
  warren::MutexLock lock(&control_mu_);
  while (true) {
    auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) {
      return stopping_ || replace_handle_ || !control_tasks_.empty();
    };
    control_mu_.Await(absl::Condition(&has_work));
    if (stopping_) return;
    while (!control_tasks_.empty()) {
      auto task = std::move(control_tasks_.front());
      control_tasks_.pop_front();
      control_mu_.Unlock();
      task();
      control_mu_.Lock();
    }
    if (!replace_handle_) continue;
    replace_handle_ = false;
    control_mu_.Unlock();
    zhandle_t* fresh = OpenHandle();
    zhandle_t* old;
    {
      warren::MutexLock handle_lock(&handle_mu_);
      old = handle_;
      if (fresh != nullptr) handle_ = fresh;
    }
    if (fresh != nullptr) {
      backoff = absl::Milliseconds(100);
      SetState(SessionState::kConnecting);
      // Operations still pending on the old handle are answered with
      // ZCLOSING from inside close, on this thread.
      if (old != nullptr) zookeeper_close(old);
      control_mu_.Lock();
    } else {
      WARREN_LOG_ERROR("cannot open a new ZooKeeper session: {}; retrying",
                       std::strerror(errno));
      const absl::Duration wait =
          backoff + absl::Milliseconds(absl::Uniform(rng, 0, 100));
      backoff = std::min(backoff * 2, absl::Seconds(10));
      control_mu_.Lock();
      replace_handle_ = true;
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) {
        return stopping_;
      };
      control_mu_.AwaitWithTimeout(absl::Condition(&stop), wait);
    }
  }
}

void ZooKeeperClient::Get(const std::string& path, WatchFn watch,
                          Callback<NodeData> done) {
  if (RefuseUnlessConnected(done)) return;
  using P = Pending<Callback<NodeData>>;
  auto* pending = new P{this, path, std::move(watch), std::move(done)};
  auto completion = [](int rc, const char* value, int value_len,
                       const struct Stat* stat, const void* data) {
    std::unique_ptr<P> p(static_cast<P*>(const_cast<void*>(data)));
    if (rc != ZOK) {
      p->done(FromZkError(rc, p->path));
      return;
    }
    p->client->RegisterWatch(false, p->path, std::move(p->watch));
    NodeData out;
    if (value != nullptr && value_len > 0) out.value.assign(value, value_len);
    out.stat = FromZkStat(stat);
    p->done(std::move(out));
  };
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_awget(handle_, path.c_str(),
                   pending->watch ? PathWatcherTrampoline : nullptr, this,
                   completion, pending);
  }
  if (rc != ZOK) {
    Defer([pending, rc, completion] {
      completion(rc, nullptr, 0, nullptr, pending);
    });
  }
}

void ZooKeeperClient::Exists(const std::string& path, WatchFn watch,
                             Callback<std::optional<NodeStat>> done) {
  if (RefuseUnlessConnected(done)) return;
  using P = Pending<Callback<std::optional<NodeStat>>>;
  auto* pending = new P{this, path, std::move(watch), std::move(done)};
  auto completion = [](int rc, const struct Stat* stat, const void* data) {
    std::unique_ptr<P> p(static_cast<P*>(const_cast<void*>(data)));
    if (rc == ZNONODE) {
      p->client->RegisterWatch(false, p->path, std::move(p->watch));
      p->done(std::optional<NodeStat>());
      return;
    }
    if (rc != ZOK) {
      p->done(FromZkError(rc, p->path));
      return;
    }
    p->client->RegisterWatch(false, p->path, std::move(p->watch));
    p->done(std::optional<NodeStat>(FromZkStat(stat)));
  };
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_awexists(handle_, path.c_str(),
                      pending->watch ? PathWatcherTrampoline : nullptr, this,
                      completion, pending);
  }
  if (rc != ZOK)
    Defer([pending, rc, completion] { completion(rc, nullptr, pending); });
}

void ZooKeeperClient::GetChildren(const std::string& path, WatchFn watch,
                                  Callback<Children> done) {
  if (RefuseUnlessConnected(done)) return;
  using P = Pending<Callback<Children>>;
  auto* pending = new P{this, path, std::move(watch), std::move(done)};
  auto completion = [](int rc, const struct String_vector* strings,
                       const struct Stat* stat, const void* data) {
    std::unique_ptr<P> p(static_cast<P*>(const_cast<void*>(data)));
    if (rc != ZOK) {
      p->done(FromZkError(rc, p->path));
      return;
    }
    p->client->RegisterWatch(true, p->path, std::move(p->watch));
    Children out;
    if (strings != nullptr) {
      out.names.reserve(strings->count);
      for (int i = 0; i < strings->count; ++i) {
        out.names.emplace_back(strings->data[i]);
      }
    }
    out.stat = FromZkStat(stat);
    p->done(std::move(out));
  };
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_awget_children2(handle_, path.c_str(),
                             pending->watch ? PathWatcherTrampoline : nullptr,
                             this, completion, pending);
  }
  if (rc != ZOK) {
    Defer([pending, rc, completion] {
      completion(rc, nullptr, nullptr, pending);
    });
  }
}

void ZooKeeperClient::Create(const std::string& path, const std::string& value,
                             CreateMode mode, Callback<Created> done) {
  if (RefuseUnlessConnected(done)) return;
  using P = Pending<Callback<Created>>;
  auto* pending = new P{this, path, nullptr, std::move(done)};
  auto completion = [](int rc, const char* created_path,
                       const struct Stat* stat, const void* data) {
    std::unique_ptr<P> p(static_cast<P*>(const_cast<void*>(data)));
    if (rc != ZOK) {
      p->done(FromZkError(rc, p->path));
      return;
    }
    p->done(Created{created_path == nullptr ? p->path : created_path,
                    FromZkStat(stat)});
  };
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_acreate2(handle_, path.c_str(), value.data(),
                      static_cast<int>(value.size()), &ZOO_OPEN_ACL_UNSAFE,
                      ZkCreateFlags(mode), completion, pending);
  }
  if (rc != ZOK) {
    Defer([pending, rc, completion] {
      completion(rc, nullptr, nullptr, pending);
    });
  }
}

void ZooKeeperClient::Set(const std::string& path, const std::string& value,
                          int32_t version, Callback<NodeStat> done) {
  if (RefuseUnlessConnected(done)) return;
  using P = Pending<Callback<NodeStat>>;
  auto* pending = new P{this, path, nullptr, std::move(done)};
  auto completion = [](int rc, const struct Stat* stat, const void* data) {
    std::unique_ptr<P> p(static_cast<P*>(const_cast<void*>(data)));
    if (rc != ZOK) {
      p->done(FromZkError(rc, p->path));
      return;
    }
    p->done(FromZkStat(stat));
  };
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_aset(handle_, path.c_str(), value.data(),
                  static_cast<int>(value.size()), version, completion, pending);
  }
  if (rc != ZOK)
    Defer([pending, rc, completion] { completion(rc, nullptr, pending); });
}

void ZooKeeperClient::Delete(const std::string& path, int32_t version,
                             DoneCallback done) {
  if (RefuseUnlessConnected(done)) return;
  using P = Pending<DoneCallback>;
  auto* pending = new P{this, path, nullptr, std::move(done)};
  auto completion = [](int rc, const void* data) {
    std::unique_ptr<P> p(static_cast<P*>(const_cast<void*>(data)));
    p->done(FromZkError(rc, p->path));
  };
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_adelete(handle_, path.c_str(), version, completion, pending);
  }
  if (rc != ZOK) Defer([pending, rc, completion] { completion(rc, pending); });
}

void ZooKeeperClient::Sync(const std::string& path, DoneCallback done) {
  if (RefuseUnlessConnected(done)) return;
  using P = Pending<DoneCallback>;
  auto* pending = new P{this, path, nullptr, std::move(done)};
  auto completion = [](int rc, const char* /*value*/, const void* data) {
    std::unique_ptr<P> p(static_cast<P*>(const_cast<void*>(data)));
    p->done(FromZkError(rc, p->path));
  };
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_async(handle_, path.c_str(), completion, pending);
  }
  if (rc != ZOK)
    Defer([pending, rc, completion] { completion(rc, nullptr, pending); });
}

namespace {

// Everything zoo_amulti reads or writes until its completion runs.
struct PendingMulti {
  std::vector<Op> ops;
  std::vector<zoo_op_t> zk_ops;
  std::vector<zoo_op_result_t> zk_results;
  std::vector<std::string> path_buffers;
  std::vector<struct Stat> stats;
  absl::AnyInvocable<void(MultiResult)> done;
};

void MultiCompletion(int rc, const void* data) {
  std::unique_ptr<PendingMulti> p(
      static_cast<PendingMulti*>(const_cast<void*>(data)));
  MultiResult result;
  result.results.resize(p->ops.size());
  for (size_t i = 0; i < p->ops.size(); ++i) {
    OpResult& out = result.results[i];
    const int err = rc == ZOK ? ZOK : p->zk_results[i].err;
    // Steps after the failing one report ZRUNTIMEINCONSISTENCY; steps before
    // it report ZOK although they were rolled back.
    out.status = FromZkError(err, p->ops[i].path);
    if (rc != ZOK && err != ZOK && err != ZRUNTIMEINCONSISTENCY &&
        result.failed_op < 0) {
      result.failed_op = static_cast<int>(i);
    }
    if (rc == ZOK && p->ops[i].kind == Op::Kind::kCreate) {
      out.created_path = p->path_buffers[i].c_str();
    }
    if (rc == ZOK && p->ops[i].kind == Op::Kind::kSetData) {
      out.stat = FromZkStat(&p->stats[i]);
    }
  }
  result.status = rc == ZOK
                      ? absl::OkStatus()
                      : FromZkError(rc, result.failed_op >= 0
                                            ? p->ops[result.failed_op].path
                                            : std::string("multi"));
  p->done(std::move(result));
}

}  // namespace

void ZooKeeperClient::Multi(std::vector<Op> ops,
                            absl::AnyInvocable<void(MultiResult)> done) {
  if (state() != SessionState::kConnected) {
    const SessionState now = state();
    Defer([done = std::move(done), now]() mutable {
      MultiResult result;
      result.status =
          MakeZkError(ZkError::kConnectionLoss,
                      absl::StrCat("ZooKeeper session is ",
                                   SessionStateName(now), "; retry later"));
      done(std::move(result));
    });
    return;
  }
  auto* p = new PendingMulti;
  p->ops = std::move(ops);
  p->done = std::move(done);
  const size_t n = p->ops.size();
  p->zk_ops.resize(n);
  p->zk_results.resize(n);
  p->path_buffers.resize(n);
  p->stats.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const Op& op = p->ops[i];
    switch (op.kind) {
      case Op::Kind::kCreate:
        p->path_buffers[i].assign(op.path.size() + 32, '\0');
        zoo_create_op_init(&p->zk_ops[i], op.path.c_str(), op.value.data(),
                           static_cast<int>(op.value.size()),
                           &ZOO_OPEN_ACL_UNSAFE, ZkCreateFlags(op.mode),
                           p->path_buffers[i].data(),
                           static_cast<int>(p->path_buffers[i].size()));
        break;
      case Op::Kind::kDelete:
        zoo_delete_op_init(&p->zk_ops[i], op.path.c_str(), op.version);
        break;
      case Op::Kind::kSetData:
        zoo_set_op_init(&p->zk_ops[i], op.path.c_str(), op.value.data(),
                        static_cast<int>(op.value.size()), op.version,
                        &p->stats[i]);
        break;
      case Op::Kind::kCheck:
        zoo_check_op_init(&p->zk_ops[i], op.path.c_str(), op.version);
        break;
    }
  }
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_amulti(handle_, static_cast<int>(n), p->zk_ops.data(),
                    p->zk_results.data(), MultiCompletion, p);
  }
  if (rc != ZOK) {
    for (auto& r : p->zk_results) r.err = rc;
    Defer([p, rc] { MultiCompletion(rc, p); });
  }
}

}  // namespace warren::zk
