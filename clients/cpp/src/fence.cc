#include "warren/client/fence.h"

namespace warren::client {

namespace v1 = ::warren::v1;

absl::StatusOr<v1::Fence> FenceOf(const Elector& elector) {
  // One read of the leader: it names the election and its token together.
  const std::optional<v1::Leader> leader = elector.leader();
  if (!elector.leading() || !leader.has_value() ||
      leader->fencing_token() != elector.fencing_token()) {
    return absl::FailedPreconditionError("not leading");
  }
  return ElectionFence(leader->election(), leader->fencing_token());
}

v1::Fence FenceOf(const HeldLock& lock) { return lock.fence(); }

v1::Fence ElectionFence(const std::string& election, uint64_t fencing_token) {
  v1::Fence fence;
  fence.set_election(election);
  fence.set_fencing_token(fencing_token);
  return fence;
}

v1::Fence LockFence(const std::string& lock, uint64_t fencing_token) {
  v1::Fence fence;
  fence.set_lock(lock);
  fence.set_fencing_token(fencing_token);
  return fence;
}

}  // namespace warren::client
