// Where a subscription of a stream queue (QueueOptions.queue_type STREAM)
// starts reading: SubscriberOptions::start.offset. A stream keeps its
// messages after they are acked, so every subscriber reads it on its own
// and may start anywhere:
//
//   options.start.set_queue("events");
//   options.start.mutable_queue_options()->set_queue_type(
//       warren::v1::QUEUE_TYPE_STREAM);
//   *options.start.mutable_offset() = warren::client::StreamFirst();
//
// A Subscriber resumes by itself after a broken stream (at the offset after
// the last one it handed to the handler). Across restarts of the process,
// store each handled Delivery::stream_offset() and start the next
// Subscriber at ResumeAfter(stored): no gap, no repeat.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "warren/v1/messaging.pb.h"

namespace warren::client {

// The oldest message the stream still keeps.
warren::v1::StreamOffset StreamFirst();
// The last chunk the broker wrote (a few messages before the newest one
// may come too).
warren::v1::StreamOffset StreamLast();
// Only messages that arrive after the subscription starts (the default).
warren::v1::StreamOffset StreamNext();
// The message with this offset (or the oldest kept, if it is gone); none
// before it.
warren::v1::StreamOffset StreamAt(uint64_t offset);
// The messages stored at or after `time` (second precision, by chunk: a few
// earlier ones may come too).
warren::v1::StreamOffset StreamSince(absl::Time time);
// The message after the last one handled: StreamAt(last_handled + 1).
warren::v1::StreamOffset ResumeAfter(uint64_t last_handled);

}  // namespace warren::client
