#include "server/zk/zookeeper_client.h"

#include <zookeeper/zookeeper.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/zk/request_size.h"

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

std::vector<AclEntry> FromZkAcl(const struct ACL_vector* acl) {
  std::vector<AclEntry> out;
  if (acl == nullptr) return out;
  for (int i = 0; i < acl->count; ++i) {
    const struct ACL& entry = acl->data[i];
    out.push_back({entry.id.scheme == nullptr ? "" : entry.id.scheme,
                   entry.id.id == nullptr ? "" : entry.id.id, entry.perms});
  }
  return out;
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

// The policy's ACL in the C client's form, pointing into the policy's
// strings (the client's options outlive it).
struct ZooKeeperClient::NativeAcl {
  explicit NativeAcl(const AclPolicy& policy) {
    for (const AclEntry& entry : policy.node_acl()) {
      struct ACL acl;
      acl.perms = entry.perms;
      acl.id.scheme = const_cast<char*>(entry.scheme.c_str());
      acl.id.id = const_cast<char*>(entry.id.c_str());
      entries.push_back(acl);
    }
    vector.count = static_cast<int32_t>(entries.size());
    vector.data = entries.data();
  }
  std::vector<struct ACL> entries;
  struct ACL_vector vector;
};

absl::StatusOr<std::unique_ptr<ZooKeeperClient>> ZooKeeperClient::Create(
    ZooKeeperOptions options) {
  if (options.connect.empty()) {
    return absl::InvalidArgumentError("zk_connect is empty");
  }
  zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
  std::unique_ptr<ZooKeeperClient> client(
      new ZooKeeperClient(std::move(options)));
  zhandle_t* refused = nullptr;
  bool opened;
  int error;
  {
    warren::MutexLock lock(&client->session_mu_);
    opened = client->ReplaceHandleLocked(&refused);
    error = errno;  // before anything else may set it
  }
  if (!opened) {
    if (refused != nullptr) zookeeper_close(refused);
    return absl::InvalidArgumentError(
        absl::StrCat("cannot use ZooKeeper connect string '",
                     client->options_.connect, "': ", std::strerror(error)));
  }
  client->control_thread_ =
      std::thread([c = client.get()] { c->ControlLoop(); });
  return client;
}

ZooKeeperClient::ZooKeeperClient(ZooKeeperOptions options)
    : options_(std::move(options)),
      native_acl_(std::make_unique<NativeAcl>(options_.acl)) {}

ZooKeeperClient::~ZooKeeperClient() {
  {
    warren::MutexLock lock(&control_mu_);
    stopping_ = true;
  }
  if (control_thread_.joinable()) control_thread_.join();
  zhandle_t* last;
  {
    warren::MutexLock session(&session_mu_);
    handle_seq_ = 0;  // answers still due on the handle are stale
    warren::MutexLock lock(&handle_mu_);
    last = std::exchange(handle_, nullptr);
  }
  state_.store(SessionState::kClosed);
  // Outstanding operations are answered (ZCLOSING) from inside close.
  if (last != nullptr) zookeeper_close(last);
  // Tasks deferred after the control thread stopped still owe an answer.
  std::deque<absl::AnyInvocable<void()>> leftover;
  {
    warren::MutexLock lock(&control_mu_);
    leftover.swap(control_tasks_);
  }
  for (auto& task : leftover) task();
}

bool ZooKeeperClient::QueueCredentialsLocked(zhandle_t* zh) {
  const auto& credentials = options_.acl.credentials();
  if (!credentials) return true;
  // No completion: it runs at most once per zoo_add_auth, and a lost
  // connection consumes it (with ZCONNECTIONLOSS) although the credentials
  // stay queued and are sent again, so it cannot say whether the current
  // connection is authenticated. Rejected credentials arrive as the
  // AUTH_FAILED session state instead.
  const std::string plain =
      absl::StrCat(credentials->user, ":", credentials->password);
  const int rc = zoo_add_auth(zh, "digest", plain.data(),
                              static_cast<int>(plain.size()), nullptr, nullptr);
  if (rc == ZOK) return true;
  // ZINVALIDSTATE right after zookeeper_init2 when the first server refused
  // the connection: the handle is fine and keeps trying; the credentials
  // are queued at its next session event, before anything is sent on a
  // connection (the session counts as connected only after the probe).
  WARREN_LOG_DEBUG("zookeeper: credentials not queued yet: {}", zerror(rc));
  return false;
}

bool ZooKeeperClient::ReplaceHandleLocked(zhandle_t** retired) {
  const int timeout_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options_.session_timeout));
  // Opened under session_mu_: the new handle's first session event waits
  // until it is the current handle, so none is dropped as stale.
  zhandle_t* fresh =
      zookeeper_init2(options_.connect.c_str(), SessionWatcherTrampoline,
                      timeout_ms, nullptr, this, 0, LogFromZooKeeper);
  if (fresh == nullptr) return false;
  // Queued now; the C client sends them as soon as a connection is
  // established, ahead of every request (and again on every reconnect).
  credentials_pending_ = !QueueCredentialsLocked(fresh);
  {
    warren::MutexLock lock(&handle_mu_);
    *retired = std::exchange(handle_, fresh);
  }
  handle_seq_ = ++next_seq_;
  session_up_ = false;
  return true;
}

absl::Status ZooKeeperClient::WaitConnected(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // The state is atomic and changes on the C client's thread; poll it with a
  // short period rather than coupling a condition variable to the listener
  // machinery for this one start-up wait.
  while (state() != SessionState::kConnected) {
    if (auth_failed_.load()) {
      return absl::UnauthenticatedError(absl::StrCat(
          "ZooKeeper at ", options_.connect, " rejected the credentials of ",
          options_.acl.Describe(), " (AUTH_FAILED)"));
    }
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
  warren::MutexLock session(&session_mu_);
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    if (zh != handle_) return;  // a handle being replaced or closed
  }
  if (credentials_pending_) credentials_pending_ = !QueueCredentialsLocked(zh);
  if (zk_state == ZOO_CONNECTED_STATE) {
    session_up_ = true;
    if (state() != SessionState::kConnecting) {
      // The same session is back; the C client sent the credentials again
      // ahead of every other request.
      SetState(SessionState::kConnected);
    } else if (options_.acl.authenticated()) {
      StartAuthProbeLocked(zh);
    } else {
      PromoteLocked();
    }
  } else if (zk_state == ZOO_CONNECTING_STATE ||
             zk_state == ZOO_ASSOCIATING_STATE) {
    session_up_ = false;
    if (state() == SessionState::kConnected) SetState(SessionState::kSuspended);
  } else if (zk_state == ZOO_EXPIRED_SESSION_STATE ||
             zk_state == ZOO_AUTH_FAILED_STATE) {
    session_up_ = false;
    absl::Duration delay;
    if (zk_state == ZOO_AUTH_FAILED_STATE) {
      auth_failed_.store(true);
      delay = auth_backoff_;
      auth_backoff_ = std::min(auth_backoff_ * 2, absl::Seconds(10));
      WARREN_LOG_ERROR(
          "ZooKeeper rejected the credentials of {} (AUTH_FAILED): Warren is "
          "not serving; a new session follows in {}",
          options_.acl.Describe(), absl::FormatDuration(delay));
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
    replace_after_ = absl::Now() + delay;
  }
}

namespace {

struct AuthProbe {
  ZooKeeperClient* client;
  uint64_t handle_seq;
};

}  // namespace

// ZooKeeper handles a connection's packets in order, and the credentials
// before anything that follows them: had it rejected them, it would have
// closed the connection before answering the probe. So a probe answered on
// this connection means the session is authenticated, and every request
// from now on runs as Warren's identity.
void ZooKeeperClient::StartAuthProbeLocked(zhandle_t* zh) {
  auto* probe = new AuthProbe{this, handle_seq_};
  // Exists on "/" needs no permission and exists on every ensemble.
  const int rc = zoo_aexists(zh, "/", 0, OnAuthProbeDone, probe);
  if (rc != ZOK) {
    // The connection is already gone; its next CONNECTED probes again.
    delete probe;
    WARREN_LOG_DEBUG("zookeeper: cannot probe the credentials yet: {}",
                     zerror(rc));
  }
}

void ZooKeeperClient::OnAuthProbeDone(int rc, const ::Stat* /*stat*/,
                                      const void* data) {
  std::unique_ptr<AuthProbe> probe(
      static_cast<AuthProbe*>(const_cast<void*>(data)));
  ZooKeeperClient* client = probe->client;
  warren::MutexLock session(&client->session_mu_);
  if (probe->handle_seq != client->handle_seq_) return;
  if (rc != ZOK) {
    // Connection lost (the next CONNECTED probes again) or, after
    // AUTH_FAILED, the session event says so.
    WARREN_LOG_DEBUG("zookeeper: credentials probe failed: {}", zerror(rc));
    return;
  }
  if (!client->session_up_ || client->state() != SessionState::kConnecting) {
    return;
  }
  WARREN_LOG_INFO("zookeeper session authenticated as {}",
                  client->options_.acl.Describe());
  client->PromoteLocked();
}

void ZooKeeperClient::PromoteLocked() {
  auth_failed_.store(false);
  auth_backoff_ = absl::Milliseconds(500);
  generation_.fetch_add(1);
  SetState(SessionState::kConnected);
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

template <typename Done>
bool ZooKeeperClient::RefuseOversized(size_t bytes, const std::string& path,
                                      Done& done) {
  absl::Status refused = CheckRequestBytes(bytes, options_.max_request_bytes,
                                           absl::StrCat("write to ", path));
  if (refused.ok()) return false;
  Defer([done = std::move(done), refused]() mutable { done(refused); });
  return true;
}

size_t ZooKeeperClient::path_prefix_bytes() const {
  return ChrootOf(options_.connect).size();
}

void ZooKeeperClient::ControlLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  absl::BitGen rng;
  warren::MutexLock lock(&control_mu_);
  while (true) {
    // A replacement may have to wait (backoff); deferred answers never do.
    auto replace_due = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) {
      return replace_handle_ && absl::Now() >= replace_after_;
    };
    // The deadline is fixed when the wait starts, and a condition is only
    // looked at again when the mutex is released, not when time passes: a
    // replacement scheduled during the wait (a session event on another
    // thread) must end it, or the wait would outlast the replacement's
    // time — forever when it started with none due.
    const absl::Time deadline =
        replace_handle_ ? replace_after_ : absl::InfiniteFuture();
    auto has_work = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) {
      return stopping_ || !control_tasks_.empty() || replace_due() ||
             (replace_handle_ && replace_after_ != deadline);
    };
    control_mu_.AwaitWithDeadline(absl::Condition(&has_work), deadline);
    if (stopping_) return;
    while (!control_tasks_.empty()) {
      auto task = std::move(control_tasks_.front());
      control_tasks_.pop_front();
      control_mu_.Unlock();
      task();
      control_mu_.Lock();
    }
    if (!replace_due()) continue;
    replace_handle_ = false;
    control_mu_.Unlock();
    zhandle_t* retired = nullptr;
    bool opened;
    int open_error;
    {
      warren::MutexLock session(&session_mu_);
      opened = ReplaceHandleLocked(&retired);
      open_error = errno;  // before anything else may set it
      if (opened) SetState(SessionState::kConnecting);
    }
    // Operations still pending on the old handle are answered with
    // ZCLOSING from inside close, on this thread.
    if (retired != nullptr) zookeeper_close(retired);
    if (opened) {
      backoff = absl::Milliseconds(100);
      control_mu_.Lock();
    } else {
      WARREN_LOG_ERROR("cannot open a new ZooKeeper session: {}; retrying",
                       std::strerror(open_error));
      const absl::Duration wait =
          backoff + absl::Milliseconds(absl::Uniform(rng, 0, 100));
      backoff = std::min(backoff * 2, absl::Seconds(10));
      control_mu_.Lock();
      replace_handle_ = true;
      replace_after_ = absl::Now() + wait;
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
    out.null_data = value_len < 0;
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
  if (RefuseOversized(
          RequestBytes(Op::Kind::kCreate, path_prefix_bytes() + path.size(),
                       value.size(), options_.acl.node_acl()),
          path, done)) {
    return;
  }
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
                      static_cast<int>(value.size()), &native_acl_->vector,
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
  if (RefuseOversized(
          RequestBytes(Op::Kind::kSetData, path_prefix_bytes() + path.size(),
                       value.size(), options_.acl.node_acl()),
          path, done)) {
    return;
  }
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

void ZooKeeperClient::GetAcl(const std::string& path, Callback<NodeAcl> done) {
  if (RefuseUnlessConnected(done)) return;
  using P = Pending<Callback<NodeAcl>>;
  auto* pending = new P{this, path, nullptr, std::move(done)};
  auto completion = [](int rc, struct ACL_vector* acl, struct Stat* stat,
                       const void* data) {
    std::unique_ptr<P> p(static_cast<P*>(const_cast<void*>(data)));
    if (rc != ZOK) {
      p->done(FromZkError(rc, p->path));
      return;
    }
    p->done(NodeAcl{FromZkAcl(acl), FromZkStat(stat)});
  };
  int rc;
  {
    warren::ReaderMutexLock lock(&handle_mu_);
    rc = zoo_aget_acl(handle_, path.c_str(), completion, pending);
  }
  if (rc != ZOK) {
    Defer([pending, rc, completion] {
      completion(rc, nullptr, nullptr, pending);
    });
  }
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
  if (absl::Status refused = CheckRequestBytes(
          MultiRequestBytes(ops, options_.acl.node_acl(), path_prefix_bytes()),
          options_.max_request_bytes,
          absl::StrCat("multi-operation of ", ops.size(), " steps"));
      !refused.ok()) {
    Defer([done = std::move(done), refused]() mutable {
      MultiResult result;
      result.status = refused;
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
        zoo_create_op_init(
            &p->zk_ops[i], op.path.c_str(),
            op.null_data ? nullptr : op.value.data(),
            op.null_data ? -1 : static_cast<int>(op.value.size()),
            &native_acl_->vector, ZkCreateFlags(op.mode),
            p->path_buffers[i].data(),
            static_cast<int>(p->path_buffers[i].size()));
        break;
      case Op::Kind::kDelete:
        zoo_delete_op_init(&p->zk_ops[i], op.path.c_str(), op.version);
        break;
      case Op::Kind::kSetData:
        zoo_set_op_init(&p->zk_ops[i], op.path.c_str(),
                        op.null_data ? nullptr : op.value.data(),
                        op.null_data ? -1 : static_cast<int>(op.value.size()),
                        op.version, &p->stats[i]);
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
