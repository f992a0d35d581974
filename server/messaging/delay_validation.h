// The edge's checks of the delay fields (PublishRequest.delay,
// Nack.retry_after): INVALID_ARGUMENT naming the field, so that a client
// does not retry what can never succeed.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "warren/v1/messaging.pb.h"

namespace warren::messaging {

// `request.delay` (named `field`): not negative, at most `max`, and when
// positive neither with `ttl` nor with `mandatory` (neither can be checked
// for a message routed later).
absl::Status ValidatePublishDelay(const warren::v1::PublishRequest& request,
                                  absl::Duration max, const std::string& field);

// `nack.retry_after`: not negative, at most `max`, and not on a stream
// queue (a stream cannot requeue; replay by offset).
absl::Status ValidateRetryAfter(const warren::v1::Nack& nack, bool stream_queue,
                                absl::Duration max);

}  // namespace warren::messaging
