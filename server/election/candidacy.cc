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

bool Candidacy::holds() const {
  warren::MutexLock lock(&mu_);
  return holding_ && zk_.state() == zk::SessionState::kConnected;
}

bool Candidacy::waits() const {
  warren::MutexLock lock(&mu_);
  return !holding_ && phase_ != Phase::kStopped;
}

void Candidacy::ConfirmHold(absl::AnyInvocable<void(absl::Status)> done) {
  std::string node;
  uint64_t term = 0;
  uint64_t generation = 0;
  uint64_t token = 0;
  {
    warren::MutexLock lock(&mu_);
    if (!holding_ || zk_.state() != zk::SessionState::kConnected) {
      node.clear();
    } else {
      node = node_;
      term = term_;
      generation = node_generation_;
      token = token_;
    }
  }
  if (node.empty()) {
    done(absl::FailedPreconditionError(
        absl::StrCat("this ", params_.kind, " is not held now")));
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
          proof = absl::FailedPreconditionError("the holder's node is gone");
        } else {
          warren::MutexLock lock(&self->mu_);
          if (!self->holding_ || self->term_ != term ||
              self->node_generation_ != generation ||
              self->zk_.session_generation() != generation) {
            proof = absl::FailedPreconditionError("the hold ended meanwhile");
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
  if (phase_ == Phase::kStopped && !ending_) return;
  events_.push_back(std::move(event));
}

void Candidacy::LoseLocked(LossReason reason) {
  // One line per transition out of a campaign's role, whatever caused it.
  const char* why = reason == LossReason::kResigned ? "resigned"
                    : reason == LossReason::kConnectionSuspended
                        ? "ZooKeeper connection suspended"
                        : "ZooKeeper session expired";
  if (reason == LossReason::kResigned) {
    WARREN_LOG_INFO("{} {}: {} {}", params_.kind, params_.name,
                    params_.candidate_id, why);
  } else {
    WARREN_LOG_WARN("{} {}: {} lost {}: {}", params_.kind, params_.name,
                    params_.candidate_id,
                    params_.holders == 1 && params_.kind == "election"
                        ? "leadership"
                        : "the hold",
                    why);
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
  holding_ = false;
  follower_told_ = false;
  first_checked_.clear();
  held_since_ = absl::Time();
  const uint64_t attempt = ++attempt_;
  node_generation_ = zk_.session_generation();
  zk_.Create(
      absl::StrCat(params_.path, "/", CandidateNodePrefix(guid_)),
      EncodeLocked(absl::InfinitePast()), zk::CreateMode::kEphemeralSequential,
      [self = shared_from_this(), attempt](absl::StatusOr<zk::Created> result) {
        self->OnCreated(attempt, std::move(result));
        self->Deliver();
      });
}

void Candidacy::EnsureParentsThenCreateLocked() {
  // Every level below the elections node is a container: ZooKeeper removes
  // it once its last candidate is gone. Created top-down; "exists" is fine.
  std::vector<std::string> levels;
  std::string path = params_.path;
  const size_t base_end = path.size() - params_.name.size() - 1;
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
    node_created_ = absl::FromUnixMillis(result->stat.ctime_ms);
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
      params_.path, nullptr,
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
              found.empty() ? "" : absl::StrCat(self->params_.path, "/", found);
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
                      self->node_created_ =
                          absl::FromUnixMillis((*stat)->ctime_ms);
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

std::string Candidacy::EncodeLocked(absl::Time held_since) const {
  if (params_.encode) return params_.encode(value_, held_since);
  return EncodeCandidate(params_.name, params_.candidate_id, value_,
                         held_since);
}

void Candidacy::CheckLocked() {
  const uint64_t check = ++check_;
  zk::WatchFn watch;
  if (params_.holders > 1 && !children_watched_) {
    // A semaphore's waiters watch the children (candidacy.h): one watch at
    // a time, set again after it fires.
    children_watched_ = true;
    watch = [self = shared_from_this()](const zk::WatchEvent&) {
      {
        warren::MutexLock lock(&self->mu_);
        self->children_watched_ = false;
        if (self->phase_ == Phase::kActive && !self->holding_) {
          self->CheckLocked();
        }
      }
      self->Deliver();
    };
  }
  const bool watching = watch != nullptr;
  zk_.GetChildren(params_.path, std::move(watch),
                  [self = shared_from_this(), check,
                   watching](absl::StatusOr<zk::Children> r) {
                    if (watching && !r.ok()) {
                      // Not set: the next check sets it.
                      warren::MutexLock lock(&self->mu_);
                      self->children_watched_ = false;
                    }
                    self->OnChildren(check, std::move(r));
                    self->Deliver();
                  });
}

bool Candidacy::VerifyAheadLocked(const std::vector<std::string>& candidates,
                                  size_t own_index) {
  std::vector<std::string> to_read;
  if (params_.check_first && own_index > 0 &&
      first_checked_ != candidates.front()) {
    to_read.push_back(candidates.front());
  }
  if (params_.holders > 1 && own_index >= params_.holders) {
    // Enough of the nodes ahead must be known to be session-held to say
    // that this one waits: a node no session holds is not in the queue.
    // Nodes not read yet count as held until read: most are.
    for (size_t i = 0; i < own_index && i < params_.holders; ++i) {
      const std::string& name = candidates[i];
      if (session_held_.count(name) == 0 &&
          std::find(to_read.begin(), to_read.end(), name) == to_read.end()) {
        to_read.push_back(name);
      }
    }
  }
  if (to_read.empty()) return false;
  const uint64_t check = check_;
  auto remaining = std::make_shared<size_t>(to_read.size());
  const std::string first = candidates.front();
  for (const std::string& name : to_read) {
    zk_.Get(absl::StrCat(params_.path, "/", name), nullptr,
            [self = shared_from_this(), check, remaining, name,
             first](absl::StatusOr<zk::NodeData> r) {
              {
                warren::MutexLock lock(&self->mu_);
                if (check != self->check_ || self->phase_ != Phase::kActive) {
                  // A later check reads again.
                } else if (!r.ok() &&
                           zk::ZkErrorOf(r.status()) != zk::ZkError::kNoNode) {
                  // Connection trouble: the reconnection checks again.
                } else {
                  if (r.ok() && !IsSessionOwned(r->stat.ephemeral_owner)) {
                    self->not_candidates_.insert(name);
                  } else if (r.ok()) {
                    self->session_held_.insert(name);
                    if (name == first && self->params_.check_first) {
                      absl::Status agreed = self->params_.check_first(r->value);
                      if (!agreed.ok()) {
                        self->EndLocked(agreed);
                        *remaining = 0;
                      } else {
                        self->first_checked_ = name;
                      }
                    }
                  }
                  // Gone (NoNode): the next listing no longer has it.
                  if (*remaining > 0 && --*remaining == 0) self->CheckLocked();
                }
              }
              self->Deliver();
            });
  }
  return true;
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
  for (auto held = session_held_.begin(); held != session_held_.end();) {
    held = std::find(candidates.begin(), candidates.end(), *held) !=
                   candidates.end()
               ? std::next(held)
               : session_held_.erase(held);
  }
  const std::string own = node_.substr(node_.rfind('/') + 1);
  auto it = std::find(candidates.begin(), candidates.end(), own);
  if (it == candidates.end()) {
    // Our node is gone (deleted by someone else): start over.
    WARREN_LOG_WARN("{} {}: candidate node {} vanished; queueing again",
                    params_.kind, params_.name, node_);
    if (holding_) {
      holding_ = false;
      LoseLocked(LossReason::kSessionExpired);
    }
    CreateLocked();
    return;
  }
  const size_t index = static_cast<size_t>(it - candidates.begin());
  if (VerifyAheadLocked(candidates, index)) return;
  if (index < params_.holders) {
    HoldLocked();
    return;
  }
  const uint32_t position = static_cast<uint32_t>(index - params_.holders);
  if (params_.holders > 1) {
    // The children watch (set by this check) wakes it.
    if (holding_) {
      holding_ = false;
      LoseLocked(LossReason::kSessionExpired);
    }
    TellWaitingLocked(position);
    return;
  }
  const std::string predecessor_name = *(it - 1);
  const std::string predecessor =
      absl::StrCat(params_.path, "/", predecessor_name);
  zk::WatchFn watch = [self = shared_from_this()](const zk::WatchEvent&) {
    {
      warren::MutexLock lock(&self->mu_);
      if (self->phase_ == Phase::kActive) self->CheckLocked();
    }
    self->Deliver();
  };
  zk_.Exists(predecessor, std::move(watch),
             [self = shared_from_this(), check, predecessor_name,
              position](absl::StatusOr<std::optional<zk::NodeStat>> r) {
               self->OnPredecessor(check, predecessor_name, position,
                                   std::move(r));
               self->Deliver();
             });
}

void Candidacy::OnPredecessor(
    uint64_t check, const std::string& predecessor, uint32_t position,
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
  if (holding_) {
    // Only after a reconnection can a node of ours stop being first.
    holding_ = false;
    LoseLocked(LossReason::kSessionExpired);
  }
  TellWaitingLocked(position);
}

void Candidacy::TellWaitingLocked(uint32_t position) {
  if (follower_told_ &&
      (told_position_ == position || !params_.report_position_changes)) {
    return;
  }
  follower_told_ = true;
  told_position_ = position;
  const uint64_t own = token_;
  EmitLocked(
      [own, position](CandidacyObserver& o) { o.OnFollowing(own, position); });
}

void Candidacy::HoldLocked() {
  if (holding_) return;
  if (zk_.state() != zk::SessionState::kConnected) return;
  holding_ = true;
  ++term_;
  follower_told_ = false;
  if (held_since_ == absl::Time()) {
    held_since_ = params_.since_creation ? node_created_ : absl::Now();
  }
  const absl::Time since = held_since_;
  const uint64_t token = token_;
  if (!params_.encode) {
    // Record the election time where GetLeader and observers read it.
    zk_.Set(node_, EncodeLocked(since), -1,
            [](absl::StatusOr<zk::NodeStat>) {});
  }
  WARREN_LOG_INFO("{} {}: {} {} (token {})", params_.kind, params_.name,
                  params_.candidate_id,
                  params_.kind == "election" ? "elected" : "holds", token);
  EmitLocked(
      [token, since](CandidacyObserver& o) { o.OnElected(token, since); });
}

void Candidacy::OnSessionState(zk::SessionState state) {
  {
    warren::MutexLock lock(&mu_);
    switch (state) {
      case zk::SessionState::kSuspended:
        if (holding_) {
          holding_ = false;
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
        children_watched_ = false;  // watches die with the session
        if (phase_ == Phase::kStopped) {
          keepalive_.reset();  // the node died with the session
          break;
        }
        if (phase_ == Phase::kRejoinWait) break;
        holding_ = false;
        node_.clear();
        token_ = 0;
        held_since_ = absl::Time();
        ++check_;
        ++attempt_;
        LoseLocked(LossReason::kSessionExpired);
        if (params_.rejoin_after_expiry) {
          phase_ = Phase::kRejoinWait;
          // Waits for the next session's first connection.
          node_generation_ = 0;
        } else {
          EmitLocked([kind = params_.kind,
                      hint = params_.expired_hint](CandidacyObserver& o) {
            o.OnEnded(absl::AbortedError(
                absl::StrCat("the ZooKeeper session expired and the ", kind,
                             " candidacy with it; ", hint)));
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
    refused = !holding_ || phase_ != Phase::kActive;
  }
  if (refused) {
    // Answered outside the lock: the caller's callback takes its own.
    done(absl::FailedPreconditionError(
        "proclaim: only the leader may proclaim, and this candidate does not "
        "lead now"));
    return;
  }
  warren::MutexLock lock(&mu_);
  value_ = std::move(value);
  zk_.Set(node_, EncodeLocked(held_since_), -1,
          [done = std::move(done)](absl::StatusOr<zk::NodeStat> r) mutable {
            done(r.status());
          });
}

void Candidacy::DeleteNodeLocked(const std::string& node,
                                 absl::AnyInvocable<void()> then) {
  zk_.Delete(node, -1,
             [self = shared_from_this(), node,
              then = std::move(then)](absl::Status s) mutable {
               self->OnDeleted(node, s);
               if (then) then();
             });
}

void Candidacy::OnDeleted(const std::string& node, const absl::Status& s) {
  if (s.ok() || zk::ZkErrorOf(s) == zk::ZkError::kNoNode) return;
  if (zk::ZkErrorOf(s) == zk::ZkError::kConnectionLoss) {
    // The client closing (warrend stopping) answers every request this way
    // too; no reconnection will come, and the session's end takes the node.
    // Kept alive then, the candidacy would never be freed.
    if (zk_.state() == zk::SessionState::kClosed) return;
    // A suspended session may come back with the node still in it, and then
    // it would stay (and hold, if it was first) for as long as the session
    // lives: kept alive, the stopped candidacy looks for its node again on
    // reconnection and deletes it (or lets go on expiry, which takes the
    // node).
    warren::MutexLock lock(&mu_);
    if (phase_ == Phase::kStopped) {
      keepalive_ = shared_from_this();
      return;
    }
  }
  WARREN_LOG_WARN("{}: cannot delete candidate node {}: {}", params_.kind, node,
                  s.message());
}

void Candidacy::Resign() {
  {
    warren::MutexLock lock(&mu_);
    if (phase_ == Phase::kStopped) return;
    const bool was_holding = holding_;
    ending_ = true;
    holding_ = false;
    const Phase phase = phase_;
    phase_ = Phase::kStopped;
    if (was_holding) LoseLocked(LossReason::kResigned);
    auto ended = [](CandidacyObserver& o) { o.OnEnded(absl::OkStatus()); };
    if (phase == Phase::kActive) {
      // Ends once the node is gone: whoever hears of the end and looks finds
      // no node of this candidacy.
      DeleteNodeLocked(node_, [self = shared_from_this(), ended] {
        {
          warren::MutexLock lock(&self->mu_);
          self->EmitLocked(ended);
        }
        self->Deliver();
      });
    } else {
      if (phase == Phase::kCreating || phase == Phase::kInDoubt) {
        keepalive_ = shared_from_this();  // delete it once it is known
      }
      EmitLocked(ended);
    }
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
  holding_ = false;
  events_.clear();
  if (phase == Phase::kActive) {
    DeleteNodeLocked(node_);
  } else if (phase == Phase::kCreating || phase == Phase::kInDoubt) {
    keepalive_ = shared_from_this();
  }
}

void Candidacy::EndLocked(const absl::Status& status) {
  if (phase_ == Phase::kStopped) return;
  if (holding_) {
    holding_ = false;
    LoseLocked(LossReason::kSessionExpired);
  }
  auto ended = [status](CandidacyObserver& o) { o.OnEnded(status); };
  const bool delete_first = phase_ == Phase::kActive && !node_.empty();
  phase_ = Phase::kStopped;
  ending_ = true;
  if (!delete_first) {
    EmitLocked(std::move(ended));
    return;
  }
  // As Resign: the end is told once the node is gone.
  DeleteNodeLocked(node_, [self = shared_from_this(), ended]() mutable {
    {
      warren::MutexLock lock(&self->mu_);
      self->EmitLocked(std::move(ended));
    }
    self->Deliver();
  });
}

void Candidacy::FailLocked(const absl::Status& status) {
  EndLocked(absl::Status(status.code(),
                         absl::StrCat(params_.kind, ": ", status.message())));
}

void CandidacySet::Add(const std::shared_ptr<Candidacy>& candidacy) {
  warren::MutexLock lock(&mu_);
  candidacies_.erase(
      std::remove_if(candidacies_.begin(), candidacies_.end(),
                     [](const auto& weak) { return weak.expired(); }),
      candidacies_.end());
  candidacies_.push_back(candidacy);
}

std::vector<std::shared_ptr<Candidacy>> CandidacySet::Live() const {
  std::vector<std::shared_ptr<Candidacy>> live;
  warren::MutexLock lock(&mu_);
  for (const auto& weak : candidacies_) {
    if (auto c = weak.lock()) live.push_back(std::move(c));
  }
  return live;
}

// Both count outside the set's lock: a candidacy takes its own to answer.
size_t CandidacySet::holding() const {
  size_t n = 0;
  for (const auto& c : Live()) n += c->holds() ? 1 : 0;
  return n;
}

size_t CandidacySet::waiting() const {
  size_t n = 0;
  for (const auto& c : Live()) n += c->waits() ? 1 : 0;
  return n;
}

}  // namespace warren::election
