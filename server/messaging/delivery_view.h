// What a subscriber sees of a broker delivery: the AMQP message as a
// warren.v1.Delivery, with the broker's and the server's bookkeeping
// (delivery counts, stream offsets, retry headers) turned into fields.
#pragma once

#include <cstdint>
#include <optional>

#include "server/amqp/amqp_types.h"
#include "warren/v1/messaging.pb.h"

namespace warren::messaging {

// Fills `out` from `delivery`: `delivery_count` is the count the delivery
// carries, and at least 1 when the broker says it was delivered before
// (classic queues count nothing themselves). A timestamp a Timestamp cannot
// hold is left out.
void ToV1Delivery(amqp::Delivery delivery, warren::v1::Delivery& out);

// True for a stream delivery below the numeric offset a subscription asked
// to start at: the broker hands out whole chunks, so a consumer that starts
// mid-chunk first gets the chunk's earlier messages, which the server acks
// and drops.
bool BelowStreamStart(const amqp::Delivery& delivery,
                      const std::optional<amqp::StreamStart>& start);

}  // namespace warren::messaging
