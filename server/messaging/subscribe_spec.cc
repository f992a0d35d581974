#include "server/messaging/subscribe_spec.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/common/duration.h"
#include "server/messaging/authorization.h"
#include "server/messaging/messaging_service.h"

namespace warren::messaging {
namespace {

namespace v1 = ::warren::v1;

// AMQP short strings (names, keys, ids) hold at most 255 bytes.
constexpr size_t kMaxShortString = 255;

absl::Status CheckShort(const std::string& value, absl::string_view field) {
  if (value.size() > kMaxShortString) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(),
                     " bytes long; AMQP allows at most ", kMaxShortString));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<amqp::SubscribeSpec> ToSubscribeSpec(
    const v1::SubscribeStart& start, const MessagingServiceOptions& options) {
  amqp::SubscribeSpec spec;
  const auto& q = start.queue_options();
  const bool quorum = q.queue_type() == v1::QUEUE_TYPE_QUORUM;
  switch (start.source_case()) {
    case v1::SubscribeStart::kQueue:
      if (start.queue().empty()) {
        return absl::InvalidArgumentError("start.queue must not be empty");
      }
      if (!start.group().empty()) {
        return absl::InvalidArgumentError(
            "start.group applies to a topic subscription, not to start.queue");
      }
      if (auto s = CheckShort(start.queue(), "start.queue"); !s.ok()) return s;
      spec.queue.name = start.queue();
      // Without options, an existing queue is consumed as it is.
      spec.queue.use_existing = !start.has_queue_options();
      break;
    case v1::SubscribeStart::kTopic: {
      const auto& topic = start.topic();
      if (topic.exchange().empty()) {
        return absl::InvalidArgumentError(
            "start.topic.exchange is required (the default exchange cannot "
            "be bound)");
      }
      if (auto s = CheckShort(topic.exchange(), "start.topic.exchange");
          !s.ok()) {
        return s;
      }
      if (auto s = CheckExchangeName(topic.exchange(), "start.topic.exchange");
          !s.ok()) {
        return s;
      }
      spec.binding.emplace();
      spec.binding->exchange = topic.exchange();
      switch (topic.exchange_type()) {
        case v1::EXCHANGE_TYPE_DIRECT:
          spec.binding->kind = amqp::ExchangeKind::kDirect;
          break;
        case v1::EXCHANGE_TYPE_FANOUT:
          spec.binding->kind = amqp::ExchangeKind::kFanout;
          break;
        case v1::EXCHANGE_TYPE_HEADERS:
          spec.binding->kind = amqp::ExchangeKind::kHeaders;
          break;
        case v1::EXCHANGE_TYPE_TOPIC:
        case v1::EXCHANGE_TYPE_UNSPECIFIED:
          spec.binding->kind = amqp::ExchangeKind::kTopic;
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("start.topic.exchange_type ", topic.exchange_type(),
                           " is not a known exchange type"));
      }
      for (int i = 0; i < topic.binding_keys_size(); ++i) {
        if (auto s =
                CheckShort(topic.binding_keys(i),
                           absl::StrCat("start.topic.binding_keys[", i, "]"));
            !s.ok()) {
          return s;
        }
        spec.binding->keys.push_back(topic.binding_keys(i));
      }
      if (start.group().empty()) {
        if (quorum) {
          return absl::InvalidArgumentError(
              "start.queue_options.queue_type QUORUM needs a start.group: a "
              "per-stream exclusive queue cannot be a quorum queue");
        }
        spec.queue.durable = false;
        spec.queue.exclusive = true;
        spec.queue.auto_delete = true;
      } else {
        if (auto s = CheckShort(start.group(), "start.group"); !s.ok()) {
          return s;
        }
        spec.queue.name = start.group();
      }
      break;
    }
    default:
      return absl::InvalidArgumentError(
          "start needs a source: start.queue or start.topic");
  }
  if (q.queue_type() != v1::QUEUE_TYPE_UNSPECIFIED &&
      q.queue_type() != v1::QUEUE_TYPE_CLASSIC && !quorum) {
    return absl::InvalidArgumentError(
        absl::StrCat("start.queue_options.queue_type ", q.queue_type(),
                     " is not a known queue type"));
  }
  spec.queue.quorum = quorum;
  if (auto s = CheckShort(q.dead_letter_exchange(),
                          "start.queue_options.dead_letter_exchange");
      !s.ok()) {
    return s;
  }
  if (auto s = CheckShort(q.dead_letter_routing_key(),
                          "start.queue_options.dead_letter_routing_key");
      !s.ok()) {
    return s;
  }
  if (auto s = CheckExchangeName(q.dead_letter_exchange(),
                                 "start.queue_options.dead_letter_exchange");
      !s.ok()) {
    return s;
  }
  spec.queue.dead_letter_exchange = q.dead_letter_exchange();
  spec.queue.dead_letter_routing_key = q.dead_letter_routing_key();
  if (q.has_message_ttl()) {
    const absl::Duration ttl = FromProtoDuration(q.message_ttl());
    if (ttl < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          "start.queue_options.message_ttl must not be negative");
    }
    spec.queue.message_ttl = ttl;
  }
  if (q.max_length() > static_cast<uint64_t>(INT64_MAX)) {
    return absl::InvalidArgumentError(
        "start.queue_options.max_length is out of range");
  }
  spec.queue.max_length = q.max_length();
  uint32_t in_flight = start.max_in_flight();
  if (in_flight == 0) in_flight = options.default_max_in_flight;
  if (in_flight > options.max_in_flight_cap) {
    // A request that can never succeed here: INVALID_ARGUMENT, so that a
    // client does not retry it as it would a limit that frees up.
    return absl::InvalidArgumentError(absl::StrCat(
        "start.max_in_flight ", in_flight, " exceeds this server's limit of ",
        options.max_in_flight_cap));
  }
  spec.prefetch = static_cast<uint16_t>(std::min<uint32_t>(in_flight, 65535));
  if (start.has_heartbeat_interval() &&
      FromProtoDuration(start.heartbeat_interval()) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "start.heartbeat_interval must not be negative");
  }
  return spec;
}

}  // namespace warren::messaging
