// ZooKeeperClient: the ZkClient over the ZooKeeper C client (zookeeper_mt).
//
// It owns exactly one zhandle_t at a time and closes each exactly once. When
// the session expires it opens a new one (with backoff if that fails), so the
// process always converges back to one live session. Session transitions are
// logged and reported to listeners.
//
// With digest credentials (ZooKeeperOptions::acl), every handle queues them
// (zoo_add_auth) before it connects, and a new session only becomes
// kConnected once a round trip that followed them on the same connection
// succeeded, which proves ZooKeeper accepted them: no request of ours runs
// unauthenticated. (On a reconnect of the same session the C client re-sends
// them ahead of every other request.) Rejected credentials (AUTH_FAILED) are
// logged as such, the state leaves kConnected, and new sessions are tried
// with backoff. Every node created (Create, and the creates of Multi) gets
// the policy's ACL.
//
// Threads: the C client's I/O and completion threads, plus one control thread
// of ours that replaces expired handles and delivers results that failed
// before reaching ZooKeeper (so no callback ever runs inline).
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/zk/zk_client.h"

typedef struct _zhandle zhandle_t;
struct Stat;  // the C client's node metadata

namespace warren::zk {

struct ZooKeeperOptions {
  // host:port[,host:port...], optionally followed by a chroot.
  std::string connect;
  absl::Duration session_timeout = absl::Seconds(10);
  // Who the sessions authenticate as and the ACL of every node created.
  AclPolicy acl;
  // The largest request sent (request_size.h): the ensemble's jute.maxbuffer.
  size_t max_request_bytes = kStockMaxRequestBytes;
};

class ZooKeeperClient final : public ZkClient {
 public:
  // Starts connecting in the background; INVALID_ARGUMENT for a connect
  // string the C client refuses.
  static absl::StatusOr<std::unique_ptr<ZooKeeperClient>> Create(
      ZooKeeperOptions options);
  ~ZooKeeperClient() override;

  // Waits until the session is connected, or answers UNAVAILABLE, or
  // UNAUTHENTICATED as soon as ZooKeeper rejects the credentials.
  absl::Status WaitConnected(absl::Duration timeout);
  absl::Duration negotiated_session_timeout() const override;

  SessionState state() const override { return state_.load(); }
  size_t max_request_bytes() const override {
    return options_.max_request_bytes;
  }
  size_t path_prefix_bytes() const override;
  const AclPolicy& acl_policy() const override { return options_.acl; }
  // For metrics: how often the session came back to kConnected after the
  // first connection (a resumed session or a new one), and how many
  // sessions expired.
  uint64_t reconnects() const { return reconnects_.load(); }
  uint64_t session_expiries() const { return expiries_.load(); }
  uint64_t session_generation() const override { return generation_.load(); }
  int64_t session_id() const override;
  int AddSessionListener(SessionListener listener) override;
  void RemoveSessionListener(int id) override;

  void Get(const std::string& path, WatchFn watch,
           Callback<NodeData> done) override;
  void Exists(const std::string& path, WatchFn watch,
              Callback<std::optional<NodeStat>> done) override;
  void GetChildren(const std::string& path, WatchFn watch,
                   Callback<Children> done) override;
  void Create(const std::string& path, const std::string& value,
              CreateMode mode, Callback<Created> done) override;
  void Set(const std::string& path, const std::string& value, int32_t version,
           Callback<NodeStat> done) override;
  void Delete(const std::string& path, int32_t version,
              DoneCallback done) override;
  void GetAcl(const std::string& path, Callback<NodeAcl> done) override;
  void Sync(const std::string& path, DoneCallback done) override;
  void Multi(std::vector<Op> ops,
             absl::AnyInvocable<void(MultiResult)> done) override;

  // Called by the C client's threads through static trampolines.
  void OnSessionEvent(zhandle_t* zh, int state);
  void OnPathEvent(zhandle_t* zh, int type, const char* path);
  void RegisterWatch(bool child, const std::string& path, WatchFn watch);

 private:
  struct NativeAcl;

  explicit ZooKeeperClient(ZooKeeperOptions options);

  // Opens a handle, queues the credentials on it and makes it the current
  // one; the previous handle goes to `*retired`, for the caller to close
  // outside every lock (closing joins the C client's threads, which may be
  // waiting for session_mu_). False (errno set) when the C client refuses.
  bool ReplaceHandleLocked(zhandle_t** retired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_mu_);
  // With credentials, a new session becomes kConnected only after a round
  // trip that followed them on the same connection (see the .cc).
  void StartAuthProbeLocked(zhandle_t* zh)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_mu_);
  // Queues the digest credentials on `zh`; false when the C client refuses
  // for now (ZINVALIDSTATE while its first connection attempt fails), and
  // then the next session event of the handle queues them.
  bool QueueCredentialsLocked(zhandle_t* zh)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_mu_);
  static void OnAuthProbeDone(int rc, const ::Stat* stat, const void* data);
  void PromoteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_mu_);
  void SetState(SessionState next);
  // Runs `fn` on the control thread.
  void Defer(absl::AnyInvocable<void()> fn);
  void ControlLoop();
  // Answers `done` with UNAVAILABLE on the control thread when the session is
  // not connected; returns whether it did.
  template <typename Done>
  bool RefuseUnlessConnected(Done& done);
  // Answers INVALID_ARGUMENT (deferred) instead of sending a request of
  // `bytes` over max_request_bytes: the ensemble would drop the connection.
  template <typename Done>
  bool RefuseOversized(size_t bytes, const std::string& path, Done& done);

  const ZooKeeperOptions options_;
  const std::unique_ptr<NativeAcl> native_acl_;
  std::atomic<SessionState> state_{SessionState::kConnecting};
  std::atomic<uint64_t> generation_{0};
  // Set when ZooKeeper rejected the credentials, until a session succeeds.
  std::atomic<bool> auth_failed_{false};

  // Serializes session transitions (session events, the credentials probe,
  // handle replacement), so that they are decided on current
  // facts and reported in order. Taken before handle_mu_.
  warren::Mutex session_mu_ ABSL_ACQUIRED_BEFORE(handle_mu_);
  // Numbers the handles, so that a late answer on a replaced one is ignored.
  uint64_t next_seq_ ABSL_GUARDED_BY(session_mu_) = 0;
  uint64_t handle_seq_ ABSL_GUARDED_BY(session_mu_) = 0;  // 0: none
  bool session_up_ ABSL_GUARDED_BY(session_mu_) = false;
  // The current handle's credentials are not queued yet (see
  // QueueCredentialsLocked).
  bool credentials_pending_ ABSL_GUARDED_BY(session_mu_) = false;
  absl::Duration auth_backoff_ ABSL_GUARDED_BY(session_mu_) =
      absl::Milliseconds(500);
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> expiries_{0};

  mutable warren::Mutex handle_mu_;
  zhandle_t* handle_ ABSL_GUARDED_BY(handle_mu_) = nullptr;

  warren::Mutex listeners_mu_;
  std::map<int, SessionListener> listeners_ ABSL_GUARDED_BY(listeners_mu_);
  int next_listener_id_ ABSL_GUARDED_BY(listeners_mu_) = 1;

  // Our side of ZooKeeper's one-shot watches: ZooKeeper holds one watch per
  // path and kind (it de-duplicates by watcher function and context), we hold
  // every caller's callback for it.
  warren::Mutex watches_mu_;
  std::map<std::string, std::vector<WatchFn>> data_watches_
      ABSL_GUARDED_BY(watches_mu_);
  std::map<std::string, std::vector<WatchFn>> child_watches_
      ABSL_GUARDED_BY(watches_mu_);

  warren::Mutex control_mu_;
  std::deque<absl::AnyInvocable<void()>> control_tasks_
      ABSL_GUARDED_BY(control_mu_);
  bool replace_handle_ ABSL_GUARDED_BY(control_mu_) = false;
  // No replacement before this time (backoff after a failed open or
  // rejected credentials, so as not to hammer the ensemble).
  absl::Time replace_after_ ABSL_GUARDED_BY(control_mu_) = absl::InfinitePast();
  bool stopping_ ABSL_GUARDED_BY(control_mu_) = false;
  std::thread control_thread_;
};

}  // namespace warren::zk
