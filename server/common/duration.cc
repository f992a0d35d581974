#include "server/common/duration.h"

#include <algorithm>

#include "google/protobuf/util/time_util.h"

namespace warren {

absl::Duration FromProtoDuration(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) +
         absl::Nanoseconds(duration.nanos());
}

google::protobuf::Duration ToProtoDuration(absl::Duration duration) {
  return google::protobuf::util::TimeUtil::NanosecondsToDuration(
      absl::ToInt64Nanoseconds(duration));
}

absl::Duration HeartbeatInterval(absl::Duration requested,
                                 absl::Duration default_interval,
                                 absl::Duration min_interval) {
  if (requested == absl::ZeroDuration()) requested = default_interval;
  return std::max(requested, min_interval);
}

absl::Duration LeaseInterval(absl::Duration requested,
                             absl::Duration session_timeout) {
  // The lease: two missed heartbeats must come before the session could
  // expire.
  const absl::Duration cap = session_timeout / 3;
  absl::Duration interval = requested;
  if (interval <= absl::ZeroDuration() || interval > cap) interval = cap;
  return std::max(interval, absl::Milliseconds(100));
}

}  // namespace warren
