#include "server/election/election_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/zk/zk_acl.h"
#include "server/zk/zk_sync.h"

namespace warren::election {

ElectionManager::ElectionManager(zk::ZkClient& zk, const std::string& root)
    : zk_(zk),
      base_(root == "/" ? "/elections" : absl::StrCat(root, "/elections")) {
  listener_id_ = zk_.AddSessionListener(
      [this](zk::SessionState state) { OnSessionState(state); });
}

ElectionManager::~ElectionManager() { zk_.RemoveSessionListener(listener_id_); }

std::string ElectionManager::PathOf(const std::string& election) const {
  return absl::StrCat(base_, "/", election);
}

absl::Status ElectionManager::EnsureBase(absl::Time deadline) {
  zk::ZkSync sync(zk_, deadline);
  absl::Status ensured = sync.EnsurePath(base_);
  if (!ensured.ok()) return ensured;
  // An elections node that existed already may belong to another identity:
  // say so now, not at the first campaign.
  return zk::CheckAccess(zk_, base_, deadline);
}

std::shared_ptr<Candidacy> ElectionManager::Campaign(
    CandidacyParams params, std::shared_ptr<CandidacyObserver> observer) {
  params.path = PathOf(params.name);
  auto candidacy =
      Candidacy::Start(zk_, std::move(params), std::move(observer));
  candidacies_.Add(candidacy);
  return candidacy;
}

std::shared_ptr<LeaderWatch> ElectionManager::Watch(
    const std::string& election) {
  warren::MutexLock lock(&mu_);
  auto& slot = watches_[election];
  if (auto existing = slot.lock()) return existing;
  auto watch =
      std::make_shared<LeaderWatch>(zk_, leader_reads_, PathOf(election));
  slot = watch;
  watch->Start();
  if (watches_.size() >= 2 * swept_size_ + 64) {
    for (auto it = watches_.begin(); it != watches_.end();) {
      it = it->second.expired() ? watches_.erase(it) : std::next(it);
    }
    swept_size_ = watches_.size();
  }
  return watch;
}

size_t ElectionManager::leaders() const { return candidacies_.holding(); }

void ElectionManager::OnSessionState(zk::SessionState state) {
  const std::vector<std::shared_ptr<Candidacy>> candidacies =
      candidacies_.Live();
  std::vector<std::shared_ptr<LeaderWatch>> watches;
  {
    warren::MutexLock lock(&mu_);
    for (auto& [name, weak] : watches_) {
      if (auto w = weak.lock()) watches.push_back(std::move(w));
    }
  }
  // Leaders hear about a suspension first: it is what keeps two of them
  // from believing they lead.
  for (auto& c : candidacies) c->OnSessionState(state);
  for (auto& w : watches) w->OnSessionState(state);
}

}  // namespace warren::election
