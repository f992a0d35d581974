// The process's elections: where their nodes live (`<root>/elections/<name>`),
// the one session listener that tells every candidacy and leader watch about
// connection changes, and one shared LeaderWatch per election.
//
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/election/candidacy.h"
#include "server/election/leader_watch.h"
#include "server/zk/zk_client.h"

namespace warren::election {

class ElectionManager {
 public:
  ElectionManager(zk::ZkClient& zk, const std::string& root);
  ~ElectionManager();

  // Creates `<root>/elections` when missing; PERMISSION_DENIED when its ACL
  // does not give this client's identity what Warren needs.
  absl::Status EnsureBase(absl::Time deadline);
  std::string PathOf(const std::string& election) const;

  std::shared_ptr<Candidacy> Campaign(
      CandidacyParams params, std::shared_ptr<CandidacyObserver> observer);
  // The shared watch of an election (made on first use, dropped with its
  // last user).
  std::shared_ptr<LeaderWatch> Watch(const std::string& election);

  zk::ZkClient& zk() { return zk_; }

  // For metrics: the candidacies of this process that lead now.
  size_t leaders() const;

 private:
  void OnSessionState(zk::SessionState state);

  zk::ZkClient& zk_;
  const std::string base_;
  int listener_id_ = 0;

  mutable warren::Mutex mu_;
  std::vector<std::weak_ptr<Candidacy>> candidacies_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::weak_ptr<LeaderWatch>> watches_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::election
