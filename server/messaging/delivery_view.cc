#include "server/messaging/delivery_view.h"

#include <algorithm>
#include <utility>

#include "google/protobuf/util/time_util.h"

namespace warren::messaging {

using google::protobuf::util::TimeUtil;

void ToV1Delivery(amqp::Delivery d, warren::v1::Delivery& out) {
  out.set_delivery_id(d.delivery_tag);
  out.set_exchange(std::move(d.exchange));
  out.set_routing_key(std::move(d.routing_key));
  out.set_payload(std::move(d.payload));
  for (auto& [key, value] : d.headers) {
    (*out.mutable_headers())[key] = std::move(value);
  }
  out.set_content_type(std::move(d.content_type));
  out.set_message_id(std::move(d.message_id));
  out.set_redelivered(d.redelivered);
  out.set_delivery_count(d.redelivered ? std::max<uint32_t>(d.delivery_count, 1)
                                       : d.delivery_count);
  out.set_reply_to(std::move(d.reply_to));
  out.set_correlation_id(std::move(d.correlation_id));
  if (d.stream_offset.has_value()) out.set_stream_offset(*d.stream_offset);
  // Any publisher may set the timestamp property to any 64 bits; one that
  // a Timestamp cannot hold (outside years 1 to 9999) is left out: the
  // conversion would abort the server.
  if (d.timestamp.has_value()) {
    const int64_t seconds = absl::ToUnixSeconds(*d.timestamp);
    if (seconds >= TimeUtil::kTimestampMinSeconds &&
        seconds <= TimeUtil::kTimestampMaxSeconds) {
      *out.mutable_timestamp() = TimeUtil::SecondsToTimestamp(seconds);
    }
  }
}

bool BelowStreamStart(const amqp::Delivery& delivery,
                      const std::optional<amqp::StreamStart>& start) {
  return start.has_value() && start->kind == amqp::StreamStart::Kind::kOffset &&
         delivery.stream_offset.has_value() &&
         *delivery.stream_offset < static_cast<uint64_t>(start->value);
}

}  // namespace warren::messaging
