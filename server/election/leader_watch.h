// Who leads an election, kept current for every observer in the process from
// one watch per election: a children watch on the election's node and a data
// watch on the leader's node (ObserveLeader, and `following` updates of
// candidates). Re-read after every (re)connection of the session.
//
// The leader is the first child in candidate_node.h's order that is held by
// a session: a child of the exact form that is persistent or a container
// (made outside Warren, or by an old release for a nested name) is skipped.
// Reads of the children go through the manager's RequestGate, so that many
// watches starting (or re-reading after a reconnection) at once cannot fill
// the session's queue in front of other calls.
//
// Threading: thread-safe. Listeners run on ZooKeeper's callback threads with
// the watch's lock held; they must not block or call back into it. After
// Unsubscribe returns, a listener is not called again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "server/common/mutex.h"
#include "server/election/candidate_node.h"
#include "server/election/request_gate.h"
#include "server/zk/zk_client.h"
#include "server/zk/zk_sync.h"
#include "warren/v1/election.pb.h"

namespace warren::election {

// The leader described by a candidate node's data and metadata.
warren::v1::Leader DecodeLeader(const std::string& data,
                                const zk::NodeStat& stat);

// Reads the current leader once; an empty optional when nobody leads.
// Skips candidates-to-be that no session holds, as LeaderWatch does.
absl::StatusOr<std::optional<warren::v1::Leader>> ReadLeader(
    zk::ZkSync& zk, const std::string& election_path);

class LeaderWatch : public std::enable_shared_from_this<LeaderWatch> {
 public:
  using Listener =
      absl::AnyInvocable<void(const std::optional<warren::v1::Leader>&)>;

  // `gate` bounds the children reads in flight.
  LeaderWatch(zk::ZkClient& zk, std::shared_ptr<RequestGate> gate,
              std::string path);

  // Starts reading (call once, after construction).
  void Start();
  // Called at once with the current leader when known, then on every
  // change of leader or of the leader's value.
  uint64_t Subscribe(Listener listener);
  void Unsubscribe(uint64_t id);
  void OnSessionState(zk::SessionState state);

 private:
  // Reads the children now if the gate has room, else once it has.
  void RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReadChildrenLocked(RequestGate::Slot slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnChildren(uint64_t refresh, absl::StatusOr<zk::Children> result);
  void OnLeaderData(uint64_t refresh, const std::string& node,
                    absl::StatusOr<zk::NodeData> result);
  void PublishLocked(std::optional<warren::v1::Leader> leader,
                     const std::string& node, int64_t mzxid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  zk::WatchFn RefreshOnEvent();

  zk::ZkClient& zk_;
  const std::shared_ptr<RequestGate> gate_;
  const std::string path_;

  warren::Mutex mu_;
  uint64_t refresh_ ABSL_GUARDED_BY(mu_) = 0;
  // A read waits for the gate: later events need no other (it reads after
  // them).
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  // Children of the candidates' form that proved not to be held by a
  // session (see above); only those still present are kept.
  std::set<std::string> not_candidates_ ABSL_GUARDED_BY(mu_);
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
