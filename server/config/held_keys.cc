#include "server/config/held_keys.h"

#include <utility>

namespace warren::config {

HeldKeys::Claim HeldKeys::TryClaim(const std::string& key, uint64_t stream,
                                   bool take_over,
                                   absl::AnyInvocable<void()> on_released) {
  warren::MutexLock lock(&mu_);
  auto [it, inserted] = holders_.try_emplace(key);
  Holder& holder = it->second;
  if (inserted || holder.stream == stream) {
    holder.stream = stream;
    return Claim::kClaimed;
  }
  if (holder.releasing && take_over) {
    // Its waiters now wait for this stream's end instead.
    holder.stream = stream;
    return Claim::kClaimed;
  }
  holder.waiters.push_back(std::move(on_released));
  return holder.releasing ? Claim::kWaitForRelease : Claim::kWaitForLiveStream;
}

void HeldKeys::Releasing(const std::string& key, uint64_t stream) {
  warren::MutexLock lock(&mu_);
  auto it = holders_.find(key);
  if (it != holders_.end() && it->second.stream == stream) {
    it->second.releasing = true;
  }
}

void HeldKeys::Released(const std::string& key, uint64_t stream) {
  std::vector<absl::AnyInvocable<void()>> waiters;
  {
    warren::MutexLock lock(&mu_);
    auto it = holders_.find(key);
    if (it == holders_.end() || it->second.stream != stream) return;
    waiters = std::move(it->second.waiters);
    holders_.erase(it);
  }
  for (auto& waiter : waiters) waiter();
}

bool HeldKeys::AwaitNone(absl::Time deadline) {
  warren::MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return holders_.empty();
  };
  return mu_.AwaitWithDeadline(absl::Condition(&none), deadline);
}

uint64_t HeldKeys::NewStreamId() {
  warren::MutexLock lock(&mu_);
  return ++next_stream_;
}

}  // namespace warren::config
