#include "warren/client/backoff.h"

#include <algorithm>
#include <cmath>

namespace warren::client {

absl::Duration Backoff::Next() {
  const double scale = std::pow(std::max(policy_.multiplier, 1.0), attempt_);
  absl::Duration delay = std::min(policy_.initial * scale, policy_.max);
  // Stop growing the exponent once the cap is reached, so it cannot overflow.
  if (delay < policy_.max) ++attempt_;
  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  if (jitter > 0) {
    delay *= absl::Uniform(random_, 1.0 - jitter, 1.0);
  }
  return delay;
}

}  // namespace warren::client
