#include "server/election/leader_watch.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace warren::election {

warren::v1::Leader DecodeLeader(const std::string& data,
                                const zk::NodeStat& stat) {
  warren::v1::Leader leader;
  // A node another client wrote with foreign data still names a leader.
  (void)leader.ParseFromString(data);
  leader.set_fencing_token(static_cast<uint64_t>(stat.czxid));
  return leader;
}

absl::StatusOr<std::optional<warren::v1::Leader>> ReadLeader(
    zk::ZkSync& zk, const std::string& election_path) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto children = zk.GetChildren(election_path);
    if (!children.ok()) {
      if (zk::ZkErrorOf(children.status()) == zk::ZkError::kNoNode) {
        return std::optional<warren::v1::Leader>();
      }
      return children.status();
    }
    bool gone = false;
    for (const std::string& candidate :
         SortCandidates(std::move(children->names))) {
      auto data = zk.Get(absl::StrCat(election_path, "/", candidate));
      if (data.ok()) {
        if (!IsSessionOwned(data->stat.ephemeral_owner)) continue;
        return std::optional<warren::v1::Leader>(
            DecodeLeader(data->value, data->stat));
      }
      if (zk::ZkErrorOf(data.status()) != zk::ZkError::kNoNode) {
        return data.status();
      }
      // The leader left between the two reads: look again.
      gone = true;
      break;
    }
    if (!gone) return std::optional<warren::v1::Leader>();
  }
  return absl::AbortedError("the leader kept changing while being read");
}

LeaderWatch::LeaderWatch(zk::ZkClient& zk, std::shared_ptr<RequestGate> gate,
                         std::string path)
    : zk_(zk), gate_(std::move(gate)), path_(std::move(path)) {}

void LeaderWatch::Start() {
  warren::MutexLock lock(&mu_);
  if (zk_.state() == zk::SessionState::kConnected) RefreshLocked();
}

uint64_t LeaderWatch::Subscribe(Listener listener) {
  warren::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  if (known_) listener(leader_);
  listeners_.emplace(id, std::move(listener));
  return id;
}

void LeaderWatch::Unsubscribe(uint64_t id) {
  warren::MutexLock lock(&mu_);
  listeners_.erase(id);
}

void LeaderWatch::OnSessionState(zk::SessionState state) {
  warren::MutexLock lock(&mu_);
  if (state == zk::SessionState::kExpired) {
    children_watched_ = false;
    data_watched_.clear();
  }
  if (state == zk::SessionState::kConnected) RefreshLocked();
}

zk::WatchFn LeaderWatch::RefreshOnEvent() {
  return [weak = weak_from_this()](const zk::WatchEvent& event) {
    auto self = weak.lock();
    if (!self) return;
    warren::MutexLock lock(&self->mu_);
    if (event.path == self->path_) {
      self->children_watched_ = false;
    } else if (event.path == self->data_watched_) {
      self->data_watched_.clear();
    }
    self->RefreshLocked();
  };
}

void LeaderWatch::RefreshLocked() {
  if (waiting_) return;
  std::optional<RequestGate::Slot> slot =
      gate_->AcquireOrWait([weak = weak_from_this()](RequestGate::Slot slot) {
        auto self = weak.lock();
        if (!self) return;  // the slot goes back with it
        warren::MutexLock lock(&self->mu_);
        self->waiting_ = false;
        self->ReadChildrenLocked(std::move(slot));
      });
  if (!slot.has_value()) {
    waiting_ = true;
    return;
  }
  ReadChildrenLocked(*std::move(slot));
}

void LeaderWatch::ReadChildrenLocked(RequestGate::Slot slot) {
  const uint64_t refresh = ++refresh_;
  zk::WatchFn watch;
  if (!children_watched_) {
    children_watched_ = true;
    watch = RefreshOnEvent();
  }
  zk_.GetChildren(path_, std::move(watch),
                  [weak = weak_from_this(), refresh, slot = std::move(slot)](
                      absl::StatusOr<zk::Children> r) mutable {
                    if (auto self = weak.lock()) {
                      self->OnChildren(refresh, std::move(r));
                    }
                    // After the leader's read went out: a chain holds one slot.
                    slot.Release();
                  });
}

void LeaderWatch::OnChildren(uint64_t refresh,
                             absl::StatusOr<zk::Children> result) {
  warren::MutexLock lock(&mu_);
  if (!result.ok()) {
    children_watched_ = false;  // no node, no watch: see it created instead
    if (zk::ZkErrorOf(result.status()) != zk::ZkError::kNoNode) return;
    if (refresh != refresh_) return;
    PublishLocked(std::nullopt, "", 0);
    zk_.Exists(path_, RefreshOnEvent(),
               [weak = weak_from_this()](
                   absl::StatusOr<std::optional<zk::NodeStat>> r) {
                 auto self = weak.lock();
                 if (!self || !r.ok() || !r->has_value()) return;
                 warren::MutexLock lock(&self->mu_);
                 self->RefreshLocked();  // created in between
               });
    return;
  }
  if (refresh != refresh_) return;
  std::vector<std::string> candidates;
  std::set<std::string> still_there;
  for (std::string& name : SortCandidates(std::move(result->names))) {
    if (not_candidates_.count(name) != 0) {
      still_there.insert(std::move(name));
    } else {
      candidates.push_back(std::move(name));
    }
  }
  not_candidates_ = std::move(still_there);
  if (candidates.empty()) {
    PublishLocked(std::nullopt, "", 0);
    return;
  }
  const std::string node = absl::StrCat(path_, "/", candidates.front());
  zk::WatchFn watch;
  if (data_watched_ != node) {
    data_watched_ = node;
    watch = RefreshOnEvent();
  }
  zk_.Get(
      node, std::move(watch),
      [weak = weak_from_this(), refresh, node](absl::StatusOr<zk::NodeData> r) {
        if (auto self = weak.lock()) {
          self->OnLeaderData(refresh, node, std::move(r));
        }
      });
}

void LeaderWatch::OnLeaderData(uint64_t refresh, const std::string& node,
                               absl::StatusOr<zk::NodeData> result) {
  warren::MutexLock lock(&mu_);
  if (!result.ok()) {
    if (data_watched_ == node) data_watched_.clear();
    // Gone already: the children watch brings the next leader.
    return;
  }
  if (refresh != refresh_) return;
  if (!IsSessionOwned(result->stat.ephemeral_owner)) {
    // Not a candidate, whatever its name: the next child may lead.
    not_candidates_.insert(node.substr(node.rfind('/') + 1));
    RefreshLocked();
    return;
  }
  PublishLocked(DecodeLeader(result->value, result->stat), node,
                result->stat.mzxid);
}

void LeaderWatch::PublishLocked(std::optional<warren::v1::Leader> leader,
                                const std::string& node, int64_t mzxid) {
  if (known_ && node == leader_node_ && mzxid == leader_mzxid_) return;
  known_ = true;
  leader_ = std::move(leader);
  leader_node_ = node;
  leader_mzxid_ = mzxid;
  for (auto& [id, listener] : listeners_) listener(leader_);
}

}  // namespace warren::election
