#include "warren/client/stream_offset.h"

namespace warren::client {

namespace v1 = ::warren::v1;

v1::StreamOffset StreamFirst() {
  v1::StreamOffset offset;
  offset.set_first(true);
  return offset;
}

v1::StreamOffset StreamLast() {
  v1::StreamOffset offset;
  offset.set_last(true);
  return offset;
}

v1::StreamOffset StreamNext() {
  v1::StreamOffset offset;
  offset.set_next(true);
  return offset;
}

v1::StreamOffset StreamAt(uint64_t offset) {
  v1::StreamOffset at;
  at.set_offset(offset);
  return at;
}

v1::StreamOffset StreamSince(absl::Time time) {
  v1::StreamOffset since;
  const absl::Duration from_epoch = time - absl::UnixEpoch();
  const int64_t seconds =
      absl::ToInt64Seconds(absl::Floor(from_epoch, absl::Seconds(1)));
  since.mutable_timestamp()->set_seconds(seconds);
  since.mutable_timestamp()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(from_epoch - absl::Seconds(seconds))));
  return since;
}

v1::StreamOffset ResumeAfter(uint64_t last_handled) {
  return StreamAt(last_handled + 1);
}

}  // namespace warren::client
