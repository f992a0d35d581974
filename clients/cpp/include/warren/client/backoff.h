// Retry delays for the client wrappers: exponential, capped, with jitter. The
// defaults are the backoff of clients/retry-policy.json, shared by every
// language's wrappers: wait d = min(max, initial * multiplier^n) before
// attempt n, drawn uniformly from [d/2, d] ("equal jitter").
//
// Jitter matters more than the exponent: when a server restarts, every
// client of it sees UNAVAILABLE at the same moment, and without jitter they
// would all come back in lock step. A Backoff is not thread-safe; each retry
// loop owns its own.
#pragma once

#include "absl/random/random.h"
#include "absl/time/time.h"

namespace warren::client {

struct BackoffPolicy {
  // The first delay (before jitter).
  absl::Duration initial = absl::Milliseconds(100);
  // No delay is longer than this.
  absl::Duration max = absl::Seconds(3);
  // Each further attempt waits this many times longer.
  double multiplier = 2.0;
  // A delay is drawn uniformly from [(1 - jitter) * d, d]; 0 disables it.
  double jitter = 0.5;
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}) : policy_(policy) {}

  // The delay before the next attempt; each call grows the next one.
  absl::Duration Next();
  // Back to the first delay: a stream that delivered its first response
  // starts over.
  void Reset() { attempt_ = 0; }

 private:
  BackoffPolicy policy_;
  int attempt_ = 0;
  absl::BitGen random_;
};

}  // namespace warren::client
