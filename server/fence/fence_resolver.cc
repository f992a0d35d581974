#include "server/fence/fence_resolver.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/election/candidate_node.h"
#include "warren/v1/lock.pb.h"

namespace warren::fence {
namespace {

std::string BaseUnder(absl::string_view root, absl::string_view kind) {
  return root == "/" ? absl::StrCat("/", kind) : absl::StrCat(root, "/", kind);
}

bool IsElection(const v1::Fence& fence) {
  return fence.owner_case() == v1::Fence::kElection;
}

// The election's or lock's name.
const std::string& OwnerRecipe(const v1::Fence& fence) {
  return IsElection(fence) ? fence.election() : fence.lock();
}

// One resolution: lists the owner's candidates, then reads them in order
// until the fence is proven to hold or not. It keeps itself alive through
// the callbacks it is waiting for.
//
// Deleted nodes are skipped rather than re-listed: candidates created after
// the listing sort after every listed one, so they cannot change who is
// ahead of the fence's node, and a node that left can only move the fence's
// node forward. What the reads see is therefore the state at some moment
// after the listing.
class Resolution : public std::enable_shared_from_this<Resolution> {
 public:
  Resolution(zk::ZkClient& zk, v1::Fence fence, std::string path,
             zk::Callback<HeldFence> done)
      : zk_(zk),
        fence_(std::move(fence)),
        path_(std::move(path)),
        done_(std::move(done)) {}

  void Start(bool sync_first) {
    if (sync_first) {
      zk_.Sync(path_, [self = shared_from_this()](absl::Status synced) {
        if (!synced.ok()) return self->Finish(synced);
        self->Start(/*sync_first=*/false);
      });
      return;
    }
    zk_.GetChildren(
        path_, {},
        [self = shared_from_this()](absl::StatusOr<zk::Children> children) {
          self->OnChildren(std::move(children));
        });
  }

 private:
  bool is_election() const { return IsElection(fence_); }
  uint64_t token() const { return fence_.fencing_token(); }

  void OnChildren(absl::StatusOr<zk::Children> children) {
    if (!children.ok()) {
      if (zk::ZkErrorOf(children.status()) == zk::ZkError::kNoNode) {
        return NotHeld();
      }
      return Finish(children.status());
    }
    candidates_ = election::SortCandidates(std::move(children->names));
    ReadNext();
  }

  void ReadNext() {
    if (next_ == candidates_.size()) return NotHeld();
    const std::string node = absl::StrCat(path_, "/", candidates_[next_++]);
    zk_.Get(node, {},
            [self = shared_from_this(), node](absl::StatusOr<zk::NodeData> r) {
              self->OnNode(node, std::move(r));
            });
  }

  void OnNode(const std::string& node, absl::StatusOr<zk::NodeData> data) {
    if (!data.ok()) {
      if (zk::ZkErrorOf(data.status()) == zk::ZkError::kNoNode) {
        return ReadNext();
      }
      return Finish(data.status());
    }
    // A node of the candidates' form that no session holds was made outside
    // the recipe: it neither leads nor holds.
    if (!election::IsSessionOwned(data->stat.ephemeral_owner)) {
      return ReadNext();
    }
    const uint64_t czxid = static_cast<uint64_t>(data->stat.czxid);
    if (holder_tokens_.empty() && !is_election()) {
      v1::Acquire first;
      // Foreign data names no limit: a mutex, as 0 does.
      if (first.ParseFromString(data->value)) limit_ = first.limit();
      limit_ = std::max<uint32_t>(limit_, 1);
    }
    holder_tokens_.push_back(czxid);
    if (czxid == token()) return Finish(HeldFence{node});
    // Nodes sort in creation order: once a holder is newer than the token,
    // the token's node is gone (or never was a holder here).
    if (czxid > token() || holder_tokens_.size() >= limit_) return NotHeld();
    ReadNext();
  }

  void NotHeld() {
    std::string detail;
    if (holder_tokens_.empty()) {
      detail = is_election() ? "nobody leads" : "nobody holds the lock";
    } else if (is_election()) {
      detail = absl::StrCat("the leader's token is ", holder_tokens_.front());
    } else if (limit_ == 1) {
      detail = absl::StrCat("the holder's token is ", holder_tokens_.front());
    } else {
      detail = absl::StrCat(holder_tokens_.size() >= limit_
                                ? "the holders' tokens are "
                                : "the first holders' tokens are ",
                            absl::StrJoin(holder_tokens_, ", "));
    }
    Finish(FenceNotHeld(fence_, detail));
  }

  void Finish(absl::StatusOr<HeldFence> result) {
    zk::Callback<HeldFence> done = std::move(done_);
    done(std::move(result));
  }

  zk::ZkClient& zk_;
  const v1::Fence fence_;
  const std::string path_;
  zk::Callback<HeldFence> done_;
  std::vector<std::string> candidates_;
  size_t next_ = 0;
  // The session-owned nodes read so far, in order: leader or holders.
  std::vector<uint64_t> holder_tokens_;
  // An election has one leader; a lock's limit comes from its first holder.
  uint32_t limit_ = 1;
};

}  // namespace

std::string OwnerName(const v1::Fence& fence) {
  switch (fence.owner_case()) {
    case v1::Fence::kElection:
      return absl::StrCat("election:", fence.election());
    case v1::Fence::kLock:
      return absl::StrCat("lock:", fence.lock());
    case v1::Fence::OWNER_NOT_SET:
      break;
  }
  return "(no owner)";
}

absl::Status ValidateFence(const v1::Fence& fence, absl::string_view field) {
  if (fence.owner_case() == v1::Fence::OWNER_NOT_SET) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must name an election or a lock"));
  }
  if (absl::Status s = election::ValidateRecipeName(
          OwnerRecipe(fence),
          absl::StrCat(field, IsElection(fence) ? ".election" : ".lock"));
      !s.ok()) {
    return s;
  }
  if (fence.fencing_token() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".fencing_token must be set (a leader's or holder's token)"));
  }
  return absl::OkStatus();
}

FenceGrant RequiredGrant(const v1::Fence& fence) {
  return {IsElection(fence) ? auth::Action::kObserve : auth::Action::kLock,
          OwnerRecipe(fence)};
}

absl::Status FenceNotHeld(const v1::Fence& fence, absl::string_view detail) {
  return absl::FailedPreconditionError(
      absl::StrCat("fence: ", OwnerName(fence), " token ",
                   fence.fencing_token(), " no longer holds (", detail, ")"));
}

absl::string_view RejectionSiteName(RejectionSite site) {
  switch (site) {
    case RejectionSite::kConfig:
      return "config";
    case RejectionSite::kPublish:
      return "publish";
  }
  return "unknown";
}

FenceResolver::FenceResolver(zk::ZkClient& zk, absl::string_view root)
    : zk_(zk),
      elections_base_(BaseUnder(root, "elections")),
      locks_base_(BaseUnder(root, "locks")) {}

void FenceResolver::Resolve(const v1::Fence& fence,
                            zk::Callback<HeldFence> done) {
  Start(fence, /*sync_first=*/false, std::move(done));
}

void FenceResolver::ResolveSynced(const v1::Fence& fence,
                                  zk::Callback<HeldFence> done) {
  Start(fence, /*sync_first=*/true, std::move(done));
}

void FenceResolver::Start(const v1::Fence& fence, bool sync_first,
                          zk::Callback<HeldFence> done) {
  std::string path =
      absl::StrCat(IsElection(fence) ? elections_base_ : locks_base_, "/",
                   OwnerRecipe(fence));
  std::make_shared<Resolution>(zk_, fence, std::move(path), std::move(done))
      ->Start(sync_first);
}

zk::Op FenceResolver::CheckOp(const HeldFence& held) {
  return zk::Op::Check(held.holder_node, -1);
}

void FenceResolver::CountRejection(RejectionSite site) {
  rejections_[static_cast<size_t>(site)].fetch_add(1,
                                                   std::memory_order_relaxed);
}

uint64_t FenceResolver::rejections(RejectionSite site) const {
  return rejections_[static_cast<size_t>(site)].load(std::memory_order_relaxed);
}

}  // namespace warren::fence
