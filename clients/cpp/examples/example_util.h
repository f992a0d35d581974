// What the examples share: output that a test can read line by line, and
// stopping on Ctrl-C / SIGTERM.
#pragma once

#include <signal.h>
#include <stdio.h>

#include <algorithm>
#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace warren::examples {

// Call first thing in main(), before any thread starts: line-buffered stdout
// (tests read it from a file), and SIGINT/SIGTERM blocked in every thread so
// that WaitForStop() can take them.
inline void Setup() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Waits until SIGINT or SIGTERM arrives, `duration` passed (zero: no
// limit), or `done` holds; answers whether a signal ended it.
inline bool WaitForStop(absl::Duration duration,
                        const std::function<bool()>& done = nullptr) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const absl::Time end = duration == absl::ZeroDuration()
                             ? absl::InfiniteFuture()
                             : absl::Now() + duration;
  while (absl::Now() < end) {
    if (done && done()) return false;
    // Short waits, so that `done` is checked often.
    const timespec tick =
        absl::ToTimespec(std::min(absl::Milliseconds(50), end - absl::Now()));
    if (sigtimedwait(&set, nullptr, &tick) > 0) return true;
  }
  return false;
}

}  // namespace warren::examples
