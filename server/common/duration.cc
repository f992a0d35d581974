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

}  // namespace warren
