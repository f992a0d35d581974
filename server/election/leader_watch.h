// Who leads an election, kept current for every observer in the process from
// one watch per election: a children watch on the election's node and a data
// watch on the leader's node (ObserveLeader, and `following` updates of
// candidates). Re-read after every (re)connection of the session.
//
// Threading: thread-safe. Listeners run on ZooKeeper's callback threads with
// the watch's lock held; they must not block or call back into it. After
// Unsubscribe returns, a listener is not called again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "server/common/mutex.h"
#include "server/zk/zk_client.h"
#include "server/zk/zk_sync.h"
#include "warren/v1/election.pb.h"

namespace warren::election {

// Candidate node names, lowest sequence (the leader) first.
std::vector<std::string> SortCandidates(std::vector<std::string> names);

// The leader described by a candidate node's data and metadata.
warren::v1::Leader DecodeLeader(const std::string& data,
                                const zk::NodeStat& stat);

// Reads the current leader once; an empty optional when nobody leads.
absl::StatusOr<std::optional<warren::v1::Leader>> ReadLeader(
    zk::ZkSync& zk, const std::string& election_path);

class LeaderWatch : public std::enable_shared_from_this<LeaderWatch> {
 public:
  using Listener =
      absl::AnyInvocable<void(const std::optional<warren::v1::Leader>&)>;

  LeaderWatch(zk::ZkClient& zk, std::string path);

  // Starts reading (call once, after construction).
  void Start();
  // Called at once with the current leader when known, then on every
  // change of leader or of the leader's value.
  uint64_t Subscribe(Listener listener);
  void Unsubscribe(uint64_t id);
  void OnSessionState(zk::SessionState state);

 private:
  void RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnChildren(uint64_t refresh, absl::StatusOr<zk::Children> result);
  void OnLeaderData(uint64_t refresh, const std::string& node,
                    absl::StatusOr<zk::NodeData> result);
  void PublishLocked(std::optional<warren::v1::Leader> leader,
                     const std::string& node, int64_t mzxid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  zk::WatchFn RefreshOnEvent();

  zk::ZkClient& zk_;
  const std::string path_;

  warren::Mutex mu_;
  uint64_t refresh_ ABSL_GUARDED_BY(mu_) = 0;
  bool children_watched_ ABSL_GUARDED_BY(mu_) = false;
  std::string data_watched_ ABSL_GUARDED_BY(mu_);
  bool known_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<warren::v1::Leader> leader_ ABSL_GUARDED_BY(mu_);
  std::string leader_node_ ABSL_GUARDED_BY(mu_);
  int64_t leader_mzxid_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace warren::election
