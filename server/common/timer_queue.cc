#include "server/common/timer_queue.h"

namespace warren {

TimerQueue::TimerQueue() : thread_([this] { Run(); }) {}

TimerQueue::~TimerQueue() {
  {
    warren::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

TimerQueue::TimerId TimerQueue::Schedule(absl::Time when,
                                         absl::AnyInvocable<void()> fn) {
  warren::MutexLock lock(&mu_);
  const TimerId id = next_id_++;
  timers_.emplace(std::make_pair(when, id), std::move(fn));
  when_by_id_.emplace(id, when);
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  warren::MutexLock lock(&mu_);
  auto it = when_by_id_.find(id);
  if (it == when_by_id_.end()) return false;
  timers_.erase(std::make_pair(it->second, id));
  when_by_id_.erase(it);
  return true;
}

void TimerQueue::Run() {
  warren::MutexLock lock(&mu_);
  while (true) {
    // Wake when stopping, when the earliest timer is due, or when a new,
    // earlier timer arrives (the condition is re-evaluated on every unlock).
    const absl::Time wake =
        timers_.empty() ? absl::InfiniteFuture() : timers_.begin()->first.first;
    auto due_or_stopping = [this, wake]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_ ||
             (!timers_.empty() && timers_.begin()->first.first < wake) ||
             (!timers_.empty() && timers_.begin()->first.first <= absl::Now());
    };
    mu_.AwaitWithDeadline(absl::Condition(&due_or_stopping), wake);
    if (stopping_) return;
    if (timers_.empty() || timers_.begin()->first.first > absl::Now()) {
      continue;
    }
    auto node = timers_.extract(timers_.begin());
    when_by_id_.erase(node.key().second);
    mu_.Unlock();
    node.mapped()();
    mu_.Lock();
  }
}

}  // namespace warren
