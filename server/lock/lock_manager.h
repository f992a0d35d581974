// The process's locks: where their nodes live (`<root>/locks/<name>`), the
// session listener that tells every lock candidacy about connection changes,
// and how many of them hold or wait (for metrics). The recipe itself is the
// one elections use (server/election/candidacy.h), with `limit` holders.
//
// Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/election/candidacy.h"
#include "server/zk/zk_client.h"
#include "server/zk/zk_sync.h"
#include "warren/v1/lock.pb.h"

namespace warren::lock {

// What a lock request asks for, validated.
struct LockRequestParams {
  std::string name;
  std::string holder_id;  // never empty
  std::string value;
  uint32_t limit = 1;  // 0 given is 1
};

// A lock's node data: the request as a warren.v1.Acquire (name, holder_id,
// value, limit only).
std::string EncodeAcquire(const LockRequestParams& params);

// The limit everyone must agree on: the one of the first (oldest)
// session-held node, 0 read as 1. Refuses `params.limit` when it differs:
// FAILED_PRECONDITION naming `acquire.limit`.
absl::Status CheckLimit(const LockRequestParams& params,
                        const std::string& first_data);

// A lock's state now: holders in the order they acquired, how many wait, the
// limit (0 when nobody holds). Nodes that no session holds are skipped.
absl::StatusOr<warren::v1::GetLockResponse> ReadLock(zk::ZkSync& zk,
                                                     const std::string& name,
                                                     const std::string& path);

class LockManager {
 public:
  LockManager(zk::ZkClient& zk, const std::string& root);
  ~LockManager();

  // Creates `<root>/locks` when missing; PERMISSION_DENIED when its ACL
  // does not give this client's identity what Warren needs.
  absl::Status EnsureBase(absl::Time deadline);
  std::string PathOf(const std::string& name) const;

  // Queues for the lock: the observer hears OnFollowing (queued, with its
  // position), OnElected (acquired), losses and the end, as an election's.
  std::shared_ptr<election::Candidacy> Acquire(
      const LockRequestParams& params,
      std::shared_ptr<election::CandidacyObserver> observer);

  zk::ZkClient& zk() { return zk_; }

  // For metrics: lock candidacies of this process that hold, that wait.
  size_t held() const { return candidacies_.holding(); }
  size_t waiting() const { return candidacies_.waiting(); }

 private:
  zk::ZkClient& zk_;
  const std::string base_;
  int listener_id_ = 0;
  election::CandidacySet candidacies_;
};

}  // namespace warren::lock
