// Fences: a write or a publish that must happen only while its caller still
// leads an election or holds a lock (the fencing pattern, with the check in
// the resource). A token is the creation zxid of the leader's or holder's
// node, and it stays valid exactly as long as that node exists: later nodes
// never overtake an earlier one, so a node that was the leader (or among a
// lock's first `limit` holders) stays so until it is deleted. A config write
// with a fence is therefore one ZooKeeper multi: a check that the node
// exists, plus the write. A publish cannot be atomic with ZooKeeper: it is
// checked by a read just before, and the message carries the fence.
//
// Node layout (shared with the recipes): an election's candidates under
// `<root>/elections/<name>`, a lock's under `<root>/locks/<name>`, both in
// candidate_node.h's form; a lock node's data is a serialized
// warren.v1.Acquire whose `limit` (0 meaning 1) the oldest holder sets.
#pragma once

#include <atomic>
#include <cstdint>
#include <iterator>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/auth/policy.h"
#include "server/zk/zk_client.h"
#include "warren/v1/common.pb.h"

namespace warren::fence {

// The headers a fenced publish carries, and that clients may not set.
inline constexpr absl::string_view kFenceHeader = "warren-fence";
inline constexpr absl::string_view kFencingTokenHeader = "warren-fencing-token";

// `election:<name>` or `lock:<name>`: how messages, headers and logs name a
// fence's owner.
std::string OwnerName(const v1::Fence& fence);

// INVALID_ARGUMENT naming `field` (e.g. "fence", "fence.election",
// "fence.fencing_token") unless exactly one owner with a valid recipe name
// is set and the token is not 0.
absl::Status ValidateFence(const v1::Fence& fence, absl::string_view field);

// The grant a fence needs besides the write's or publish's own: `observe`
// on its election, `lock` on its lock. A fence reveals whether its owner
// still leads or holds, which those grants are for.
struct FenceGrant {
  auth::Action action;
  std::string name;
};
FenceGrant RequiredGrant(const v1::Fence& fence);

// The FAILED_PRECONDITION for a fence that does not hold; `detail` says why
// (e.g. "the leader's token is 42", "nobody leads").
absl::Status FenceNotHeld(const v1::Fence& fence, absl::string_view detail);

// Where a fence was refused (warren_fence_rejections_total{where}).
enum class RejectionSite { kConfig, kPublish };
inline constexpr RejectionSite kRejectionSites[] = {RejectionSite::kConfig,
                                                    RejectionSite::kPublish};
// The metric's label value: "config" or "publish".
absl::string_view RejectionSiteName(RejectionSite site);

// A fence that holds now: the node whose existence keeps it holding.
struct HeldFence {
  std::string holder_node;  // full ZooKeeper path
};

class FenceResolver {
 public:
  // `root`: the server's ZooKeeper root ("/" or "/warren").
  FenceResolver(zk::ZkClient& zk, absl::string_view root);

  // Finds the holder node of a validated fence: FenceNotHeld when the
  // election or lock has no leader/holder with that token now; other
  // ZooKeeper errors as they are. `done` runs on a ZooKeeper callback
  // thread.
  void Resolve(const v1::Fence& fence, zk::Callback<HeldFence> done);

  // Resolve, after a sync through the ensemble's leader: the answer is at
  // least as recent as the moment of the call. For a check that nothing
  // else backs (a publish): warrend's session may be on a follower that
  // lags, and would still show a holder whose session the leader has
  // expired and whose successor already holds. A write needs no sync: the
  // check step of its multi is applied by the leader.
  void ResolveSynced(const v1::Fence& fence, zk::Callback<HeldFence> done);

  // The multi step that keeps a resolved fence's promise: a check that the
  // holder node still exists. When a multi fails at this step, answer
  // FenceNotHeld(fence, "its holder is gone").
  static zk::Op CheckOp(const HeldFence& held);

  // Counts a write or publish refused because its fence did not hold (every
  // FenceNotHeld answered, whether found by Resolve or by a failed CheckOp).
  // Thread-safe; the metrics read rejections().
  void CountRejection(RejectionSite site);
  uint64_t rejections(RejectionSite site) const;

 private:
  void Start(const v1::Fence& fence, bool sync_first,
             zk::Callback<HeldFence> done);

  zk::ZkClient& zk_;
  const std::string elections_base_;
  const std::string locks_base_;
  std::atomic<uint64_t> rejections_[std::size(kRejectionSites)] = {};
};

}  // namespace warren::fence
