// Fences: a write or a publish that the server applies only while this
// client still leads an election or holds a lock (warren.v1.Fence). Pass
// one to Publisher::Publish, ConfigClient::Put/Delete/Txn:
//
//   auto fence = warren::client::FenceOf(*elector);
//   if (!fence.ok()) return fence.status();   // not leading now
//   config.Put("jobs/cursor", cursor, {.fence = *fence});
//
// A fence that no longer holds (a newer leader or holder, a lost session)
// is refused with FAILED_PRECONDITION naming it, and nothing is written or
// published: a deposed leader that has not noticed yet cannot do harm.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "warren/client/elector.h"
#include "warren/client/locker.h"
#include "warren/v1/common.pb.h"

namespace warren::client {

// The fence of the elector's current leadership; FAILED_PRECONDITION when it
// does not lead.
absl::StatusOr<warren::v1::Fence> FenceOf(const Elector& elector);
// The fence of a held lock (HeldLock::fence()).
warren::v1::Fence FenceOf(const HeldLock& lock);

// Fences from a name and a token obtained elsewhere.
warren::v1::Fence ElectionFence(const std::string& election,
                                uint64_t fencing_token);
warren::v1::Fence LockFence(const std::string& lock, uint64_t fencing_token);

}  // namespace warren::client
