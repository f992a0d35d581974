#include "server/election/candidacy.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/logging.h"
#include "server/common/uuid.h"
#include "server/election/candidate_node.h"
#include "server/election/leader_watch.h"
#include "warren/v1/election.pb.h"

namespace warren::election {

std::string EncodeCandidate(const std::string& election,
                            const std::string& candidate_id,
                            const std::string& value, absl::Time elected) {
  warren::v1::Leader leader;
  leader.set_election(election);
  leader.set_candidate_id(candidate_id);
  leader.set_value(value);
  if (elected != absl::InfinitePast()) {
    *leader.mutable_elected_time() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
            absl::ToUnixNanos(elected));
  }
  return leader.SerializeAsString();
}

std::shared_ptr<Candidacy> Candidacy::Start(
    zk::ZkClient& zk, CandidacyParams params,
    std::shared_ptr<CandidacyObserver> observer) {
  auto candidacy =
      std::make_shared<Candidacy>(zk, std::move(params), std::move(observer));
  warren::MutexLock lock(&candidacy->mu_);
  candidacy->value_ = candidacy->params_.value;
  candidacy->CreateLocked();
  return candidacy;
}

Candidacy::Candidacy(zk::ZkClient& zk, CandidacyParams params,
                     std::shared_ptr<CandidacyObserver> observer)
    : zk_(zk), params_(std::move(params)), observer_(std::move(observer)) {}

bool Candidacy::leading() const {
  warren::MutexLock lock(&mu_);
  return leader_ && zk_.state() == zk::SessionState::kConnected;
}

void Candidacy::ConfirmLeadership(absl::AnyInvocable<void(absl::Status)> done) {
  std::string node;
  uint64_t term = 0;
  uint64_t generation = 0;
  uint64_t token = 0;
  {
    warren::MutexLock lock(&mu_);
    if (!leader_ || zk_.state() != zk::SessionState::kConnected) {
      node.clear();
    } else {
      node = node_;
      term = term_;
      generation = node_generation_;
      token = token_;
    }
  }
  if (node.empty()) {
    done(absl::FailedPreconditionError("not the leader now"));
    return;
  }
  // ZooKeeper answers a session's requests in order: the exists below is
  // answered after the sync, so by a server at least as recent as the
  // ensemble's leader was when the sync reached it. A session that expired
  // there has lost its node (or its connection) by then.
  zk_.Sync(node, [](absl::Status) {});
  zk_.Exists(
      node, nullptr,
      [self = shared_from_this(), done = std::move(done), term, generation,
       token](absl::StatusOr<std::optional<zk::NodeStat>> result) mutable {
        absl::Status proof;
        if (!result.ok()) {
          proof = result.status();
        } else if (!result->has_value() ||
                   static_cast<uint64_t>((*result)->czxid) != token) {
          proof = absl::FailedPreconditionError("the leader's node is gone");
        } else {
          warren::MutexLock lock(&self->mu_);
          if (!self->leader_ || self->term_ != term ||
              self->node_generation_ != generation ||
              self->zk_.session_generation() != generation) {
            proof = absl::FailedPreconditionError("leadership ended meanwhile");
          }
        }
        done(std::move(proof));
      });
}

uint64_t Candidacy::token() const {
  warren::MutexLock lock(&mu_);
  return token_;
}

void Candidacy::EmitLocked(Event event) {
  if (phase_ == Phase::kStopped && !resigning_) return;
  events_.push_back(std::move(event));
}

void Candidacy::LoseLocked(LossReason reason) {
  // One line per transition out of a campaign's role, whatever caused it.
  const char* why = reason == LossReason::kResigned ? "resigned"
                    : reason == LossReason::kConnectionSuspended
                        ? "ZooKeeper connection suspended"
                        : "ZooKeeper session expired";
  if (reason == LossReason::kResigned) {
    WARREN_LOG_INFO("election {}: {} {}", params_.election,
                    params_.candidate_id, why);
  } else {
    WARREN_LOG_WARN("election {}: {} lost leadership: {}", params_.election,
                    params_.candidate_id, why);
  }
  EmitLocked([reason](CandidacyObserver& o) { o.OnLost(reason); });
}

void Candidacy::Deliver() {
  while (true) {
    Event event;
    {
      warren::MutexLock lock(&mu_);
      if (delivering_ || events_.empty()) return;
      delivering_ = true;
      event = std::move(events_.front());
      events_.pop_front();
    }
    event(*observer_);
    warren::MutexLock lock(&mu_);
    delivering_ = false;
  }
}

void Candidacy::CreateLocked() {
  phase_ = Phase::kCreating;
  guid_ = NewUuid();
  node_.clear();
  token_ = 0;
  leader_ = false;
  follower_told_ = false;
  elected_since_ = absl::Time();
  const uint64_t attempt = ++attempt_;
  node_generation_ = zk_.session_generation();
  zk_.Create(
      absl::StrCat(params_.election_path, "/", CandidateNodePrefix(guid_)),
      EncodeCandidate(params_.election, params_.candidate_id, value_,
                      absl::InfinitePast()),
      zk::CreateMode::kEphemeralSequential,
      [self = shared_from_this(), attempt](absl::StatusOr<zk::Created> result) {
        self->OnCreated(attempt, std::move(result));
        self->Deliver();
      });
}

void Candidacy::EnsureParentsThenCreateLocked() {
  // Every level below the elections node is a container: ZooKeeper removes
  // it once its last candidate is gone. Created top-down; "exists" is fine.
  std::vector<std::string> levels;
  std::string path = params_.election_path;
  const size_t base_end = path.size() - params_.election.size() - 1;
  while (path.size() > base_end) {
    levels.push_back(path);
    path.resize(path.rfind('/'));
  }
  std::reverse(levels.begin(), levels.end());
  auto remaining = std::make_shared<size_t>(levels.size());
  auto self = shared_from_this();
  // Sequential on ZooKeeper's side (one session, in order): the last answer
  // means every level was handled.
  for (const std::string& level : levels) {
    zk_.Create(level, "", zk::CreateMode::kContainer,
               [self, remaining,
                attempt = attempt_](absl::StatusOr<zk::Created> result) {
                 {
                   warren::MutexLock lock(&self->mu_);
                   if (self->phase_ == Phase::kStopped) {
                     // Stopped before its node was asked for: nothing to
                     // delete, and no retry may bring it back to life.
                     self->keepalive_.reset();
                   } else if (attempt != self->attempt_) {
                     // A later attempt is under way.
                   } else if (!result.ok() && zk::ZkErrorOf(result.status()) !=
                                                  zk::ZkError::kNodeExists) {
                     const zk::ZkError error = zk::ZkErrorOf(result.status());
                     if (error == zk::ZkError::kConnectionLoss) {
                       // Connection trouble: the next connection retries.
                       self->phase_ = Phase::kInDoubt;
                     } else if (error == zk::ZkError::kNoNode) {
                       // A level above was not made (its create went out
                       // without a connection, which came back before this
                       // one) or was reaped as an empty container: whoever
                       // handles that (the reconnection, in doubt) or a
                       // fresh attempt makes them again. Not the client's
                       // error.
                       if (self->phase_ == Phase::kCreating) {
                         self->CreateLocked();
                       }
                     } else {
                       self->FailLocked(result.status());
                     }
                   } else if (--*remaining == 0 &&
                              self->phase_ == Phase::kCreating &&
                              attempt == self->attempt_) {
                     self->CreateLocked();
                   }
                 }
                 self->Deliver();
               });
  }
}

void Candidacy::OnCreated(uint64_t attempt,
                          absl::StatusOr<zk::Created> result) {
  warren::MutexLock lock(&mu_);
  if (attempt != attempt_) {
    // An attempt given up on (the session expired meanwhile) may still have
    // made a node, in the new session if the create went out there before
    // the expiry was heard of: nobody would own it, and it could lead.
    if (result.ok()) DeleteNodeLocked(result->path);
    return;
  }
  if (result.ok()) {
    if (phase_ == Phase::kStopped) {
      DeleteNodeLocked(result->path);
      keepalive_.reset();
      return;
    }
    node_ = result->path;
    token_ = static_cast<uint64_t>(result->stat.czxid);
    phase_ = Phase::kActive;
    CheckLocked();
    return;
  }
  switch (zk::ZkErrorOf(result.status())) {
    case zk::ZkError::kNoNode:
      if (phase_ == Phase::kCreating) EnsureParentsThenCreateLocked();
      return;
    case zk::ZkError::kConnectionLoss:
      // The create may or may not have happened: look on reconnection.
      if (phase_ == Phase::kCreating) phase_ = Phase::kInDoubt;
      return;
    default:
      if (phase_ != Phase::kStopped) FailLocked(result.status());
  }
}

void Candidacy::FindOwnNodeLocked() {
  const uint64_t attempt = attempt_;
  zk_.GetChildren(
      params_.election_path, nullptr,
      [self = shared_from_this(), attempt](absl::StatusOr<zk::Children> r) {
        {
          warren::MutexLock lock(&self->mu_);
          if (attempt != self->attempt_) return;
          std::string found;
          if (r.ok()) {
            for (const auto& name : r->names) {
              auto parsed = ParseCandidateNode(name);
              if (parsed && parsed->guid == self->guid_) found = name;
            }
          } else if (zk::ZkErrorOf(r.status()) != zk::ZkError::kNoNode) {
            return;  // still no connection: the next one looks again
          }
          const std::string path =
              found.empty()
                  ? ""
                  : absl::StrCat(self->params_.election_path, "/", found);
          if (self->phase_ == Phase::kStopped) {
            if (!path.empty()) self->DeleteNodeLocked(path);
            self->keepalive_.reset();
          } else if (path.empty()) {
            self->CreateLocked();  // it never happened
          } else {
            // It happened: adopt it (its creation zxid is the token).
            self->node_ = path;
            self->zk_.Exists(
                path, nullptr,
                [self,
                 attempt](absl::StatusOr<std::optional<zk::NodeStat>> stat) {
                  {
                    warren::MutexLock lock(&self->mu_);
                    if (attempt != self->attempt_ ||
                        self->phase_ != Phase::kInDoubt) {
                      return;
                    }
                    if (stat.ok() && stat->has_value()) {
                      self->token_ = static_cast<uint64_t>((*stat)->czxid);
                      self->phase_ = Phase::kActive;
                      self->CheckLocked();
                    } else if (stat.ok()) {
                      self->CreateLocked();
                    }
                  }
                  self->Deliver();
                });
          }
        }
        self->Deliver();
      });
}

void Candidacy::CheckLocked() {
  const uint64_t check = ++check_;
  zk_.GetChildren(
      params_.election_path, nullptr,
      [self = shared_from_this(), check](absl::StatusOr<zk::Children> r) {
        self->OnChildren(check, std::move(r));
        self->Deliver();
      });
}

void Candidacy::OnChildren(uint64_t check,
                           absl::StatusOr<zk::Children> result) {
  warren::MutexLock lock(&mu_);
  if (check != check_ || phase_ != Phase::kActive) return;
  if (!result.ok()) {
    if (zk::ZkErrorOf(result.status()) != zk::ZkError::kConnectionLoss) {
      FailLocked(result.status());
    }
    return;  // connection trouble: the reconnection checks again
  }
  std::vector<std::string> candidates;
  for (std::string& name : SortCandidates(std::move(result->names))) {
    if (not_candidates_.count(name) == 0) candidates.push_back(std::move(name));
  }
  const std::string own = node_.substr(node_.rfind('/') + 1);
  auto it = std::find(candidates.begin(), candidates.end(), own);
  if (it == candidates.end()) {
    // Our node is gone (deleted by someone else): start over.
    WARREN_LOG_WARN(
        "election {}: candidate node {} vanished; campaigning "
        "again",
        params_.election, node_);
    if (leader_) {
      leader_ = false;
      LoseLocked(LossReason::kSessionExpired);
    }
    CreateLocked();
    return;
  }
  if (it == candidates.begin()) {
    BecomeLeaderLocked();
    return;
  }
  const std::string predecessor_name = *(it - 1);
  const std::string predecessor =
      absl::StrCat(params_.election_path, "/", predecessor_name);
  zk::WatchFn watch = [self = shared_from_this()](const zk::WatchEvent&) {
    {
      warren::MutexLock lock(&self->mu_);
      if (self->phase_ == Phase::kActive) self->CheckLocked();
    }
    self->Deliver();
  };
  zk_.Exists(predecessor, std::move(watch),
             [self = shared_from_this(), check,
              predecessor_name](absl::StatusOr<std::optional<zk::NodeStat>> r) {
               self->OnPredecessor(check, predecessor_name, std::move(r));
               self->Deliver();
             });
}

void Candidacy::OnPredecessor(
    uint64_t check, const std::string& predecessor,
    absl::StatusOr<std::optional<zk::NodeStat>> result) {
  warren::MutexLock lock(&mu_);
  if (check != check_ || phase_ != Phase::kActive || !result.ok()) return;
  if (!result->has_value()) {
    CheckLocked();  // gone in between: look again
    return;
  }
  if (!IsSessionOwned((*result)->ephemeral_owner)) {
    // Named like a candidate but held by no session (candidate_node.h):
    // not in the queue. Its exists watch stays; a change only re-checks.
    not_candidates_.insert(predecessor);
    CheckLocked();
    return;
  }
  if (leader_) {
    // Only after a reconnection can a node of ours stop being first.
    leader_ = false;
    LoseLocked(LossReason::kSessionExpired);
  }
  if (!follower_told_) {
    follower_told_ = true;
    const uint64_t own = token_;
    EmitLocked([own](CandidacyObserver& o) { o.OnFollowing(own); });
  }
}

void Candidacy::BecomeLeaderLocked() {
  if (leader_) return;
  if (zk_.state() != zk::SessionState::kConnected) return;
  leader_ = true;
  ++term_;
  follower_told_ = false;
  if (elected_since_ == absl::Time()) elected_since_ = absl::Now();
  const absl::Time since = elected_since_;
  const uint64_t token = token_;
  // Record the election time where GetLeader and observers read it.
  zk_.Set(
      node_,
      EncodeCandidate(params_.election, params_.candidate_id, value_, since),
      -1, [](absl::StatusOr<zk::NodeStat>) {});
  WARREN_LOG_INFO("election {}: {} elected (token {})", params_.election,
                  params_.candidate_id, token);
  EmitLocked(
      [token, since](CandidacyObserver& o) { o.OnElected(token, since); });
}

void Candidacy::OnSessionState(zk::SessionState state) {
  {
    warren::MutexLock lock(&mu_);
    switch (state) {
      case zk::SessionState::kSuspended:
        if (leader_) {
          leader_ = false;
          LoseLocked(LossReason::kConnectionSuspended);
        }
        break;
      case zk::SessionState::kConnected:
        if (zk_.session_generation() != node_generation_) break;
        if (phase_ == Phase::kActive) CheckLocked();
        if (phase_ == Phase::kInDoubt) FindOwnNodeLocked();
        if (phase_ == Phase::kStopped && keepalive_) FindOwnNodeLocked();
        if (phase_ == Phase::kRejoinWait) CreateLocked();
        break;
      case zk::SessionState::kExpired:
        if (phase_ == Phase::kStopped) {
          keepalive_.reset();  // the node died with the session
          break;
        }
        if (phase_ == Phase::kRejoinWait) break;
        leader_ = false;
        node_.clear();
        token_ = 0;
        elected_since_ = absl::Time();
        ++check_;
        ++attempt_;
        LoseLocked(LossReason::kSessionExpired);
        if (params_.rejoin_after_expiry) {
          phase_ = Phase::kRejoinWait;
          // Waits for the next session's first connection.
          node_generation_ = 0;
        } else {
          EmitLocked([](CandidacyObserver& o) {
            o.OnEnded(absl::AbortedError(
                "the ZooKeeper session expired and the candidacy with it; "
                "campaign again (or set rejoin_after_expiry)"));
          });
          phase_ = Phase::kStopped;
        }
        break;
      default:
        break;
    }
    if (state == zk::SessionState::kConnected && phase_ == Phase::kRejoinWait &&
        node_generation_ == 0) {
      CreateLocked();
    }
  }
  Deliver();
}

void Candidacy::Proclaim(std::string value,
                         absl::AnyInvocable<void(absl::Status)> done) {
  bool refused = false;
  {
    warren::MutexLock lock(&mu_);
    refused = !leader_ || phase_ != Phase::kActive;
  }
  if (refused) {
    // Answered outside the lock: the caller's callback takes its own.
    done(absl::FailedPreconditionError(
        "proclaim: only the leader may proclaim, and this candidate does not "
        "lead"));
    return;
  }
  warren::MutexLock lock(&mu_);
  value_ = std::move(value);
  zk_.Set(node_,
          EncodeCandidate(params_.election, params_.candidate_id, value_,
                          elected_since_),
          -1, [done = std::move(done)](absl::StatusOr<zk::NodeStat> r) mutable {
            done(r.status());
          });
}

void Candidacy::DeleteNodeLocked(const std::string& node) {
  zk_.Delete(node, -1, [self = shared_from_this(), node](absl::Status s) {
    if (s.ok() || zk::ZkErrorOf(s) == zk::ZkError::kNoNode) return;
    if (zk::ZkErrorOf(s) == zk::ZkError::kConnectionLoss) {
      // The client closing (warrend stopping) answers every request this
      // way too; no reconnection will come, and the session's end takes
      // the node. Kept alive then, the candidacy would never be freed.
      if (self->zk_.state() == zk::SessionState::kClosed) return;
      // A suspended session may come back with the node still in it, and
      // then it would stay (and lead, if it was first) for as long as the
      // session lives: kept alive, the stopped candidacy looks for its node
      // again on reconnection and deletes it (or lets go on expiry, which
      // takes the node).
      warren::MutexLock lock(&self->mu_);
      if (self->phase_ == Phase::kStopped) {
        self->keepalive_ = self;
        return;
      }
    }
    WARREN_LOG_WARN("election: cannot delete candidate node {}: {}", node,
                    s.message());
  });
}

void Candidacy::Resign() {
  {
    warren::MutexLock lock(&mu_);
    if (phase_ == Phase::kStopped) return;
    const bool was_leader = leader_;
    resigning_ = true;
    leader_ = false;
    const Phase phase = phase_;
    phase_ = Phase::kStopped;
    if (phase == Phase::kActive) {
      DeleteNodeLocked(node_);
    } else if (phase == Phase::kCreating || phase == Phase::kInDoubt) {
      keepalive_ = shared_from_this();  // delete it once it is known
    }
    if (was_leader) {
      LoseLocked(LossReason::kResigned);
    }
    EmitLocked([](CandidacyObserver& o) { o.OnEnded(absl::OkStatus()); });
  }
  // Resign is called by the observer's owner outside its own lock, so the
  // events may go out from here.
  Deliver();
}

void Candidacy::Stop() {
  warren::MutexLock lock(&mu_);
  if (phase_ == Phase::kStopped) return;
  const Phase phase = phase_;
  phase_ = Phase::kStopped;
  leader_ = false;
  events_.clear();
  if (phase == Phase::kActive) {
    DeleteNodeLocked(node_);
  } else if (phase == Phase::kCreating || phase == Phase::kInDoubt) {
    keepalive_ = shared_from_this();
  }
}

void Candidacy::FailLocked(const absl::Status& status) {
  if (phase_ == Phase::kStopped) return;
  if (leader_) {
    leader_ = false;
    LoseLocked(LossReason::kSessionExpired);
  }
  EmitLocked([status](CandidacyObserver& o) {
    o.OnEnded(absl::Status(status.code(),
                           absl::StrCat("election: ", status.message())));
  });
  if (phase_ == Phase::kActive && !node_.empty()) DeleteNodeLocked(node_);
  phase_ = Phase::kStopped;
}

}  // namespace warren::election
