// A single thread that runs callbacks at given times: stream heartbeats,
// retries with backoff. Callbacks run on the timer thread and must not block
// (hand work elsewhere, like every other reaction in the server).
//
// Thread-safe. Cancel() after the callback started running does not wait for
// it; owners guard their state with weak pointers.
#pragma once

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace warren {

class TimerQueue {
 public:
  using TimerId = uint64_t;

  TimerQueue();
  ~TimerQueue();  // Drops the callbacks that have not run.
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `fn` on the timer thread at `when` (or soon after).
  TimerId Schedule(absl::Time when, absl::AnyInvocable<void()> fn);
  TimerId ScheduleAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) {
    return Schedule(absl::Now() + delay, std::move(fn));
  }
  // Forgets a timer that has not run yet; answers whether it did.
  bool Cancel(TimerId id);

 private:
  void Run();

  warren::Mutex mu_;
  // Ordered by (time, id): ids make entries with the same time unique.
  std::map<std::pair<absl::Time, TimerId>, absl::AnyInvocable<void()>> timers_
      ABSL_GUARDED_BY(mu_);
  std::map<TimerId, absl::Time> when_by_id_ ABSL_GUARDED_BY(mu_);
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace warren
