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
#include "server/election/request_gate.h"
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

  // The leader watches' children reads in flight at most, over all
  // elections: another call on the session waits behind no more than these
  // (request_gate.h). Each read is a getChildren, then one get or exists.
  static constexpr size_t kMaxLeaderReadsInFlight = 32;
  const RequestGate& leader_reads() const { return *leader_reads_; }

 private:
  void OnSessionState(zk::SessionState state);

  zk::ZkClient& zk_;
  const std::string base_;
  int listener_id_ = 0;
  const std::shared_ptr<RequestGate> leader_reads_ =
      std::make_shared<RequestGate>(kMaxLeaderReadsInFlight);

  mutable warren::Mutex mu_;
  CandidacySet candidacies_;
  std::map<std::string, std::weak_ptr<LeaderWatch>> watches_
      ABSL_GUARDED_BY(mu_);
  // Expired entries are swept when the map has doubled since the last
  // sweep: a sweep on every Watch made 20,000 observers quadratic.
  size_t swept_size_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace warren::election
