#include "server/election/request_gate.h"

#include <utility>

namespace warren::election {

std::optional<RequestGate::Slot> RequestGate::AcquireOrWait(Waiter waiter) {
  warren::MutexLock lock(&mu_);
  if (max_ == 0 || (in_flight_ < max_ && waiters_.empty())) {
    ++in_flight_;
    return Slot(shared_from_this());
  }
  waiters_.push_back(std::move(waiter));
  return std::nullopt;
}

void RequestGate::Release() {
  {
    warren::MutexLock lock(&mu_);
    --in_flight_;
    if (handing_out_) return;  // that loop sees the free slot
    handing_out_ = true;
  }
  while (true) {
    Waiter waiter;
    {
      warren::MutexLock lock(&mu_);
      if (waiters_.empty() || (max_ != 0 && in_flight_ >= max_)) {
        handing_out_ = false;
        return;
      }
      waiter = std::move(waiters_.front());
      waiters_.pop_front();
      ++in_flight_;
    }
    waiter(Slot(shared_from_this()));
  }
}

size_t RequestGate::in_flight() const {
  warren::MutexLock lock(&mu_);
  return in_flight_;
}

size_t RequestGate::waiting() const {
  warren::MutexLock lock(&mu_);
  return waiters_.size();
}

}  // namespace warren::election
