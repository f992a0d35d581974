// What a SubscribeStart asks of the broker: the queue to declare with its
// arguments, the binding, the consume arguments and the prefetch. Every
// rule about which queue options go together lives here, so that a bad
// start is refused before anything touches the broker.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/amqp/amqp_types.h"
#include "warren/v1/messaging.pb.h"

namespace warren::messaging {

struct MessagingServiceOptions;

// AMQP short strings (names, keys, ids) hold at most 255 bytes.
inline constexpr size_t kMaxShortString = 255;

// INVALID_ARGUMENT naming `field` for a value longer than an AMQP short
// string.
absl::Status CheckShort(const std::string& value, absl::string_view field);

// The AMQP side of a SubscribeStart: the queue to declare (a named durable
// queue, a shared group queue, or an exclusive per-stream one), the binding,
// the prefetch. INVALID_ARGUMENT naming the field by its path from the
// request (e.g. `start.queue_options.max_priority`), also for a
// max_in_flight over the cap (a limit that never frees up).
absl::StatusOr<amqp::SubscribeSpec> ToSubscribeSpec(
    const warren::v1::SubscribeStart& start,
    const MessagingServiceOptions& options);

}  // namespace warren::messaging
