// The leader-election recipe for one candidate (ZooKeeper's own lock recipe
// and Curator's LeaderLatch, with their known failure cases handled):
//
// - The candidate is an ephemeral-sequential node `c_<guid>-<sequence>` under
//   the election's node (a container, which ZooKeeper removes when empty).
//   The guid is unique to this attempt, so a create whose answer was lost in
//   a disconnect is found again by listing the children, never made twice.
// - The lowest sequence leads, among children of the exact candidate form
//   held by a session (candidate_node.h). Every other candidate watches
//   only the node just before its own (no herd effect when the leader goes).
// - The fencing token is the leader node's creation zxid, which only grows
//   from one leader to the next.
// - Connection suspended: a leader is told it lost leadership at once
//   (before the session could expire and a successor win). Reconnected in
//   the same session with the node still first: elected again, same token.
//   Session expired: the node is gone; lost, then a fresh candidacy on the
//   new session if asked (rejoin), otherwise the candidacy ends (ABORTED).
//
// Threading: thread-safe. Events reach the Observer in order, from ZooKeeper
// callback threads, never from inside a call to this class, and never with
// this class's lock held: the observer may call back into the candidacy.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/zk/zk_client.h"

namespace warren::election {

enum class LossReason { kResigned, kConnectionSuspended, kSessionExpired };

struct CandidacyParams {
  std::string election;       // the validated name
  std::string election_path;  // its node
  std::string candidate_id;
  std::string value;
  bool rejoin_after_expiry = false;
};

class CandidacyObserver {
 public:
  virtual ~CandidacyObserver() = default;
  virtual void OnElected(uint64_t token, absl::Time since) = 0;
  // `own_token` is this candidate's own node's creation zxid (what its
  // token would be), so that it can tell itself apart from the leader.
  virtual void OnFollowing(uint64_t own_token) = 0;
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

  // The leader replaces its value; FAILED_PRECONDITION for a follower.
  void Proclaim(std::string value, absl::AnyInvocable<void(absl::Status)> done);
  // Leaves the election: the node is deleted, then OnLost(kResigned) if it
  // led, then OnEnded(OK).
  void Resign();
  // The stream ended: the node is deleted at once, no more events.
  void Stop();

  // Leads now, with a connected session (as far as this process knows: a
  // process that was frozen past its session timeout still believes it).
  bool leading() const;
  // Fresh proof for a lease heartbeat: asks the ensemble, through the
  // leader's log (sync), whether this leader's node still exists. `done`
  // gets OK only if the answer came back in the same session and the same
  // term of leadership, with the node still this candidate's; then the
  // session was alive on the ensemble at some instant after the call.
  // Called on a ZooKeeper callback thread, or inline with
  // FAILED_PRECONDITION when this candidacy does not lead now.
  void ConfirmLeadership(absl::AnyInvocable<void(absl::Status)> done);
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
                     absl::StatusOr<std::optional<zk::NodeStat>> result);
  void BecomeLeaderLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeleteNodeLocked(const std::string& node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
  uint64_t node_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::string value_ ABSL_GUARDED_BY(mu_);
  bool leader_ ABSL_GUARDED_BY(mu_) = false;
  // Counts terms of leadership (a suspension ends one; the same node can
  // begin another), so that a proof asked in one term never serves the next.
  uint64_t term_ ABSL_GUARDED_BY(mu_) = 0;
  bool follower_told_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time elected_since_ ABSL_GUARDED_BY(mu_);
  uint64_t check_ ABSL_GUARDED_BY(mu_) = 0;
  // Children of the candidates' form that no session holds (persistent or
  // container nodes): never predecessors. Only ever a handful.
  std::set<std::string> not_candidates_ ABSL_GUARDED_BY(mu_);
  bool resigning_ ABSL_GUARDED_BY(mu_) = false;
  // Held while a stopped candidacy still has to delete a node whose
  // creation was in doubt.
  std::shared_ptr<Candidacy> keepalive_ ABSL_GUARDED_BY(mu_);
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  bool delivering_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren::election
