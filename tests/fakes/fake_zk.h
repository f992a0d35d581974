// An in-memory ZkClient for unit tests of logic that sits on ZooKeeper (the
// watch cache, recipes). It keeps a node tree with versions and zxids, one-shot
// watches with ZooKeeper's trigger rules, and a session the test drives:
// Disconnect (suspended; changes meanwhile are reported on Reconnect, as the
// real client's watch re-registration does), Reconnect, Expire (watches gone,
// a new session follows).
//
// ACLs as ZooKeeper applies them: nodes this client creates get its
// AclPolicy's ACL (open by default), nodes of "another client" (External*)
// are open unless ExternalSetAcl says otherwise, and this client's
// operations are checked against them (read for Get, GetChildren and
// GetAcl, write for Set, create and delete on the parent; Exists is never
// checked, as in ZooKeeper).
//
// Deterministic: nothing runs on its own. Results, watch events and session
// notifications are queued and run by RunUntilIdle() on the test's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "server/common/mutex.h"
#include "server/zk/zk_client.h"

namespace warren::testing {

class FakeZk final : public zk::ZkClient {
 public:
  static constexpr int64_t kContainerOwner =
      std::numeric_limits<int64_t>::min();
  static constexpr int64_t kOtherSessionOwner = 0x7e57000000000001;

  FakeZk();

  // Runs queued callbacks (and what they queue) until none is left.
  void RunUntilIdle();
  // Runs the first queued callback only; false if none was queued.
  bool RunOne();

  // Session control.
  void Disconnect();
  void Reconnect();
  void Expire();  // ends with a new, connected session
  // The session expired on the server, but this client has not heard yet
  // (as a process frozen past its session timeout sees it when it resumes):
  // state() still says kConnected, every operation fails with connection
  // loss. Expire() then tells the client.
  void ExpireUnnoticed();
  // What negotiated_session_timeout() answers while connected (default:
  // 10 s).
  void SetNegotiatedSessionTimeout(absl::Duration timeout);

  // This client's identity and the ACL of the nodes it creates (what
  // ZooKeeperOptions::acl is to the real client). Set it before the code
  // under test runs: acl_policy() hands out a reference.
  void SetAclPolicy(zk::AclPolicy policy);

  // Changes made by "another client": they trigger watches like any write.
  void ExternalPut(const std::string& path, const std::string& value);
  // A node of another client's live session (its ephemeralOwner is
  // kOtherSessionOwner; this client's session expiring leaves it).
  void ExternalPutEphemeral(const std::string& path, const std::string& value);
  void ExternalDelete(const std::string& path);
  void ExternalSetAcl(const std::string& path, std::vector<zk::AclEntry> acl);
  std::vector<zk::AclEntry> AclOf(const std::string& path);

  // Watches registered with ZooKeeper now (for leak checks), in all or on
  // one path (data and exists watches).
  size_t registered_watch_count();
  size_t data_watch_count(const std::string& path);
  // The next Create takes effect, but its answer is lost with the
  // connection (the session is suspended, as by a network cut).
  void LoseNextCreateResponse();
  std::vector<std::string> Children(const std::string& path);
  // The ephemeral nodes this client holds now (for leak checks).
  std::vector<std::string> EphemeralNodes();

  zk::SessionState state() const override;
  const zk::AclPolicy& acl_policy() const override;
  uint64_t session_generation() const override;
  absl::Duration negotiated_session_timeout() const override;
  int AddSessionListener(zk::SessionListener listener) override;
  void RemoveSessionListener(int id) override;

  void Get(const std::string& path, zk::WatchFn watch,
           zk::Callback<zk::NodeData> done) override;
  void Exists(const std::string& path, zk::WatchFn watch,
              zk::Callback<std::optional<zk::NodeStat>> done) override;
  void GetChildren(const std::string& path, zk::WatchFn watch,
                   zk::Callback<zk::Children> done) override;
  void Create(const std::string& path, const std::string& value,
              zk::CreateMode mode, zk::Callback<zk::Created> done) override;
  void Set(const std::string& path, const std::string& value, int32_t version,
           zk::Callback<zk::NodeStat> done) override;
  void Delete(const std::string& path, int32_t version,
              zk::DoneCallback done) override;
  void GetAcl(const std::string& path, zk::Callback<zk::NodeAcl> done) override;
  void Sync(const std::string& path, zk::DoneCallback done) override;
  void Multi(std::vector<zk::Op> ops,
             absl::AnyInvocable<void(zk::MultiResult)> done) override;

 private:
  struct Node {
    std::string value;
    bool null_data = false;
    zk::NodeStat stat;
    std::set<std::string> children;
    std::vector<zk::AclEntry> acl = {{"world", "anyone", zk::kPermAll}};
  };

  void Post(absl::AnyInvocable<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);
  void SetStateLocked(zk::SessionState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Unavailable() const;
  // Operations get answers: connected, and the server has the session.
  bool AnsweringLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // kNoAuth unless this client holds `perm` on `path` (OK for a missing
  // node: the operation reports that).
  absl::Status CheckPermLocked(const std::string& path, int32_t perm) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tree mutations; they queue the watch events they trigger. `external`
  // ones are another client's: open ACL, no permission checks.
  absl::Status CreateLocked(const std::string& path, const std::string& value,
                            zk::NodeStat* stat, int64_t ephemeral_owner = 0,
                            bool external = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<zk::NodeStat> SetLocked(const std::string& path,
                                         const std::string& value,
                                         int32_t version, bool external = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DeleteLocked(const std::string& path, int32_t version,
                            bool external = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TriggerLocked(std::map<std::string, std::vector<zk::WatchFn>>& table,
                     const std::string& path, zk::EventType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable warren::Mutex mu_;
  zk::AclPolicy policy_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  int64_t zxid_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, int> sequence_ ABSL_GUARDED_BY(mu_);
  bool lose_next_create_ ABSL_GUARDED_BY(mu_) = false;
  zk::SessionState state_ ABSL_GUARDED_BY(mu_) = zk::SessionState::kConnected;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 1;
  bool server_lost_ ABSL_GUARDED_BY(mu_) = false;
  absl::Duration negotiated_ ABSL_GUARDED_BY(mu_) = absl::Seconds(10);
  std::map<std::string, std::vector<zk::WatchFn>> data_watches_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<zk::WatchFn>> child_watches_
      ABSL_GUARDED_BY(mu_);
  // Events that happened while disconnected, reported on Reconnect.
  std::vector<std::pair<bool, zk::WatchEvent>> missed_ ABSL_GUARDED_BY(mu_);
  // While a multi-operation runs, the watch events it would trigger.
  std::vector<std::pair<bool, zk::WatchEvent>>* batch_ ABSL_GUARDED_BY(mu_) =
      nullptr;
  std::map<int, zk::SessionListener> listeners_ ABSL_GUARDED_BY(mu_);
  int next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::testing
