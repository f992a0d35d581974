// ZooKeeper's lock recipe for one candidate, serving both elections (one
// holder: the leader) and locks (a mutex, or a semaphore of N holders), with
// the recipe's known failure cases handled (Curator's LeaderLatch and
// InterProcessSemaphoreV2 are the same recipe):
//
// - The candidate is an ephemeral-sequential node `c_<guid>-<sequence>` under
//   the recipe's node (a container, which ZooKeeper removes when empty).
//   The guid is unique to this attempt, so a create whose answer was lost in
//   a disconnect is found again by listing the children, never made twice.
// - The `holders` lowest sequences hold, among children of the exact
//   candidate form held by a session (candidate_node.h).
// - Watch strategy. One holder (an election, a mutex): every other
//   candidate watches only the node just before its own, so when the holder
//   goes only its successor wakes (no herd effect), and each node costs one
//   watch. N holders (a semaphore): a waiter can hold once any of the nodes
//   ahead of it goes, not only its predecessor, so each waiter watches the
//   recipe node's children instead: no wake-up is missed, at the price that
//   every create and delete under the lock wakes every waiter (one
//   getChildren each), which is fine for the small queues semaphores have.
// - The fencing token is the holder node's creation zxid, which only grows
//   from one holder to the next.
// - Connection suspended: a holder is told it lost at once (before the
//   session could expire and a successor win). Reconnected in the same
//   session with the node still holding: held again, same token.
//   Session expired: the node is gone; lost, then a fresh candidacy on the
//   new session if asked (rejoin: elections only), otherwise the candidacy
//   ends (ABORTED).
//
// Threading: thread-safe. Events reach the Observer in order, from ZooKeeper
// callback threads, never from inside a call to this class, and never with
// this class's lock held: the observer may call back into the candidacy.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/zk/zk_client.h"

namespace warren::election {

enum class LossReason { kResigned, kConnectionSuspended, kSessionExpired };

struct CandidacyParams {
  std::string name;  // the election's or lock's validated name
  std::string path;  // its node
  std::string candidate_id;
  std::string value;
  bool rejoin_after_expiry = false;
  // How many of the first candidates hold at once: 1 for an election or a
  // mutex (predecessor watch), more for a semaphore (children watch).
  uint32_t holders = 1;
  // What a candidate's node stores, from its value and when it began to
  // hold (InfinitePast before). Unset: an election's Leader
  // (EncodeCandidate), rewritten with the time when it is elected.
  std::function<std::string(const std::string& value, absl::Time held_since)>
      encode;
  // When set, checks the data of the first (oldest) candidate when it is
  // not this one, before this candidate may hold or be told that it waits:
  // a refusal ends the candidacy with that status (the node deleted). Locks
  // check that everyone agrees on the limit.
  std::function<absl::Status(const std::string& first_data)> check_first;
  // OnFollowing again whenever a re-read finds the position changed (a
  // lock's Queued); otherwise once per wait (an election's followers are
  // told of leaders instead).
  bool report_position_changes = false;
  // OnElected's `since` is when the node was created (a lock's
  // acquired_time), not when it began to hold (an election's elected_time).
  bool since_creation = false;
  // In logs: "election" or "lock".
  std::string kind = "election";
  // Ends the ABORTED message of an expiry without rejoin.
  std::string expired_hint = "campaign again (or set rejoin_after_expiry)";
};

class CandidacyObserver {
 public:
  virtual ~CandidacyObserver() = default;
  // Holds (leads), with this fencing token, since that time.
  virtual void OnElected(uint64_t token, absl::Time since) = 0;
  // Waits. `own_token` is this candidate's own node's creation zxid (what
  // its token would be), so that it can tell itself apart from the leader;
  // `position` counts the candidates ahead of it that wait too. Sent when it
  // starts waiting (and, with report_position_changes, when a re-read finds
  // its position changed).
  virtual void OnFollowing(uint64_t own_token, uint32_t position) = 0;
  virtual void OnLost(LossReason reason) = 0;
  // The candidacy is over (resigned: OK; session expired without rejoin:
  // ABORTED; an unexpected ZooKeeper error). Nothing follows.
  virtual void OnEnded(absl::Status status) = 0;
};

// The data stored in a candidate's node: what GetLeader and observers show.
std::string EncodeCandidate(const std::string& election,
                            const std::string& candidate_id,
                            const std::string& value, absl::Time elected);

class Candidacy : public std::enable_shared_from_this<Candidacy> {
 public:
  static std::shared_ptr<Candidacy> Start(
      zk::ZkClient& zk, CandidacyParams params,
      std::shared_ptr<CandidacyObserver> observer);

  // Session transitions, from the process-wide dispatcher.
  void OnSessionState(zk::SessionState state);

  // A holder replaces its value; FAILED_PRECONDITION for one that does not
  // hold.
  void Proclaim(std::string value, absl::AnyInvocable<void(absl::Status)> done);
  // Leaves: OnLost(kResigned) if it held, the node is deleted, then
  // OnEnded(OK) once ZooKeeper answered the delete (at once when the create
  // is still unanswered: the node goes once it is known).
  void Resign();
  // The stream ended: the node is deleted at once, no more events.
  void Stop();

  // Holds (leads) now, with a connected session (as far as this process
  // knows: a process that was frozen past its session timeout still
  // believes it).
  bool holds() const;
  // Neither holds nor has ended: waits (or is still creating its node).
  bool waits() const;
  // Fresh proof for a lease heartbeat: asks the ensemble, through the
  // ZooKeeper leader's log (sync), whether this holder's node still exists.
  // `done` gets OK only if the answer came back in the same session and the
  // same term of holding, with the node still this candidate's; then the
  // session was alive on the ensemble at some instant after the call.
  // Called on a ZooKeeper callback thread, or inline with
  // FAILED_PRECONDITION when this candidacy does not hold now.
  void ConfirmHold(absl::AnyInvocable<void(absl::Status)> done);
  // The creation zxid of this candidate's node (0 while unknown).
  uint64_t token() const;

  Candidacy(zk::ZkClient& zk, CandidacyParams params,
            std::shared_ptr<CandidacyObserver> observer);

 private:
  enum class Phase { kCreating, kInDoubt, kActive, kRejoinWait, kStopped };
  using Event = absl::AnyInvocable<void(CandidacyObserver&)>;

  void CreateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnsureParentsThenCreateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnCreated(uint64_t attempt, absl::StatusOr<zk::Created> result);
  void FindOwnNodeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnChildren(uint64_t check, absl::StatusOr<zk::Children> result);
  void OnPredecessor(uint64_t check, const std::string& predecessor,
                     uint32_t position,
                     absl::StatusOr<std::optional<zk::NodeStat>> result);
  // Reads the candidates ahead of this one that must be known before it
  // may decide (check_first's node; for a semaphore, enough nodes ahead to
  // know whether `holders` session-held ones are there), then checks again.
  // False when nothing needs reading.
  bool VerifyAheadLocked(const std::vector<std::string>& candidates,
                         size_t own_index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TellWaitingLocked(uint32_t position) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string EncodeLocked(absl::Time held_since) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `then` runs (outside the lock) once ZooKeeper answered, whatever it
  // answered.
  void DeleteNodeLocked(const std::string& node,
                        absl::AnyInvocable<void()> then = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnDeleted(const std::string& node, const absl::Status& status);
  // Ends the candidacy with `status` as it is.
  void EndLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends it with an unexpected ZooKeeper error.
  void FailLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(Event event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs the loss and tells the observer.
  void LoseLocked(LossReason reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Delivers queued events, outside the lock, one thread at a time.
  void Deliver();

  zk::ZkClient& zk_;
  const CandidacyParams params_;
  const std::shared_ptr<CandidacyObserver> observer_;

  mutable warren::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kCreating;
  std::string guid_ ABSL_GUARDED_BY(mu_);
  uint64_t attempt_ ABSL_GUARDED_BY(mu_) = 0;
  std::string node_ ABSL_GUARDED_BY(mu_);  // full path once known
  uint64_t token_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time node_created_ ABSL_GUARDED_BY(mu_);
  uint64_t node_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::string value_ ABSL_GUARDED_BY(mu_);
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
  // Counts terms of holding (a suspension ends one; the same node can begin
  // another), so that a proof asked in one term never serves the next.
  uint64_t term_ ABSL_GUARDED_BY(mu_) = 0;
  bool follower_told_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t told_position_ ABSL_GUARDED_BY(mu_) = 0;
  // A semaphore's children watch is set and has not fired (a new session
  // has none).
  bool children_watched_ ABSL_GUARDED_BY(mu_) = false;
  // The first candidate whose data check_first accepted.
  std::string first_checked_ ABSL_GUARDED_BY(mu_);
  // Candidates ahead read and found held by a session (a node's owner never
  // changes); trimmed to the current children on every check.
  std::set<std::string> session_held_ ABSL_GUARDED_BY(mu_);
  absl::Time held_since_ ABSL_GUARDED_BY(mu_);
  uint64_t check_ ABSL_GUARDED_BY(mu_) = 0;
  // Children of the candidates' form that no session holds (persistent or
  // container nodes): never predecessors. Only ever a handful.
  std::set<std::string> not_candidates_ ABSL_GUARDED_BY(mu_);
  // Stopped by Resign or an end of its own: its last events still go out
  // (Stop's do not).
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  // Held while a stopped candidacy still has to delete a node whose
  // creation was in doubt.
  std::shared_ptr<Candidacy> keepalive_ ABSL_GUARDED_BY(mu_);
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  bool delivering_ ABSL_GUARDED_BY(mu_) = false;
};

// The live candidacies of one recipe in this process: what the session
// listener tells of every transition, and what the metrics count.
// Thread-safe.
class CandidacySet {
 public:
  void Add(const std::shared_ptr<Candidacy>& candidacy);
  std::vector<std::shared_ptr<Candidacy>> Live() const;
  // Those that hold now, and those that wait.
  size_t holding() const;
  size_t waiting() const;

 private:
  mutable warren::Mutex mu_;
  std::vector<std::weak_ptr<Candidacy>> candidacies_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::election
