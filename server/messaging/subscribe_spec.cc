#include "server/messaging/subscribe_spec.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/duration.h"
#include "server/messaging/authorization.h"
#include "server/messaging/messaging_service.h"

namespace warren::messaging {
namespace {

namespace v1 = ::warren::v1;

absl::Status HeadersMatchError(absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("start.topic.match_headers ", why));
}

// Headers routing: x-match arguments on every binding of a HEADERS exchange.
absl::Status ToHeadersMatch(const v1::TopicBinding& topic,
                            amqp::BindingSpec& binding) {
  if (topic.match_headers().empty()) return absl::OkStatus();
  if (topic.exchange_type() != v1::EXCHANGE_TYPE_HEADERS) {
    return HeadersMatchError(
        "applies to start.topic.exchange_type HEADERS only");
  }
  for (const auto& [key, value] : topic.match_headers()) {
    if (key.empty()) return HeadersMatchError("has an empty key");
    if (key.size() > kMaxShortString) {
      return HeadersMatchError(absl::StrCat("key '", key.substr(0, 32),
                                            "...' is longer than ",
                                            kMaxShortString, " bytes"));
    }
    // The broker ignores x- headers when matching (and x-match is ours).
    if (absl::StartsWithIgnoreCase(key, "x-")) {
      return HeadersMatchError(absl::StrCat(
          "key '", key, "' starts with x-, which the broker never matches"));
    }
    binding.match_headers.emplace_back(key, value);
  }
  // A map's order is unspecified: sorted, so that two equal subscriptions
  // make equal bindings.
  std::sort(binding.match_headers.begin(), binding.match_headers.end());
  binding.match_any = topic.match_any();
  return absl::OkStatus();
}

absl::Status OptionError(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("start.queue_options.", field, " ", why));
}

// A stream is an append-only log: no option that removes or reorders single
// messages applies to it.
absl::Status CheckStreamCompatible(const v1::QueueOptions& q) {
  constexpr absl::string_view kNotOnStreams = "does not apply to STREAM queues";
  if (!q.dead_letter_exchange().empty()) {
    return OptionError("dead_letter_exchange", kNotOnStreams);
  }
  if (!q.dead_letter_routing_key().empty()) {
    return OptionError("dead_letter_routing_key", kNotOnStreams);
  }
  if (q.has_message_ttl()) return OptionError("message_ttl", kNotOnStreams);
  if (q.max_length() > 0) return OptionError("max_length", kNotOnStreams);
  if (q.max_priority() > 0) return OptionError("max_priority", kNotOnStreams);
  if (q.delivery_limit() > 0) {
    return OptionError("delivery_limit", kNotOnStreams);
  }
  if (q.single_active_consumer()) {
    return OptionError("single_active_consumer", kNotOnStreams);
  }
  return absl::OkStatus();
}

absl::StatusOr<amqp::StreamStart> ToStreamStart(
    const v1::StreamOffset& offset) {
  using Kind = amqp::StreamStart::Kind;
  amqp::StreamStart start;
  switch (offset.start_case()) {
    case v1::StreamOffset::kFirst:
      start.kind = Kind::kFirst;
      break;
    case v1::StreamOffset::kLast:
      start.kind = Kind::kLast;
      break;
    case v1::StreamOffset::kNext:
      start.kind = Kind::kNext;
      break;
    case v1::StreamOffset::kOffset:
      if (offset.offset() > static_cast<uint64_t>(INT64_MAX)) {
        return absl::InvalidArgumentError(
            "start.offset.offset is out of range");
      }
      start.kind = Kind::kOffset;
      start.value = static_cast<int64_t>(offset.offset());
      break;
    case v1::StreamOffset::kTimestamp:
      if (offset.timestamp().seconds() < 0) {
        return absl::InvalidArgumentError(
            "start.offset.timestamp must not be before 1970");
      }
      start.kind = Kind::kTimestamp;
      start.value = offset.timestamp().seconds();
      break;
    default:
      return absl::InvalidArgumentError(
          "start.offset needs one of first, last, next, offset or timestamp");
  }
  return start;
}

// The options of the second round: priority, delivery limit, single active
// consumer, streams and their offsets.
absl::Status ToQueueDepthOptions(const v1::SubscribeStart& start,
                                 amqp::SubscribeSpec& spec) {
  const v1::QueueOptions& q = start.queue_options();
  const bool quorum = q.queue_type() == v1::QUEUE_TYPE_QUORUM;
  const bool stream = q.queue_type() == v1::QUEUE_TYPE_STREAM;
  if (stream) {
    if (auto s = CheckStreamCompatible(q); !s.ok()) return s;
    spec.queue.stream = true;
    spec.queue.durable = true;
  }
  if (q.max_priority() > 255) {
    return OptionError("max_priority",
                       absl::StrCat("is ", q.max_priority(), "; at most 255"));
  }
  if (q.max_priority() > 0 && quorum) {
    return OptionError("max_priority", "applies to CLASSIC queues only");
  }
  spec.queue.max_priority = static_cast<uint8_t>(q.max_priority());
  if (q.delivery_limit() > 0) {
    if (!quorum) {
      return OptionError("delivery_limit", "applies to QUORUM queues only");
    }
    // The broker dead-letters once a message's count exceeds its limit, and
    // counts from 0 at the first delivery.
    spec.queue.delivery_limit = static_cast<int64_t>(q.delivery_limit()) - 1;
  }
  if (q.single_active_consumer()) {
    if (spec.queue.name.empty()) {
      return OptionError("single_active_consumer",
                         "needs a named queue (start.queue or start.group): "
                         "an exclusive queue has one consumer anyway");
    }
    spec.queue.single_active_consumer = true;
  }
  if (q.has_max_age()) {
    if (!stream) {
      return OptionError("max_age", "applies to STREAM queues only");
    }
    const auto& age = q.max_age();
    if (age.seconds() <= 0 || age.nanos() != 0) {
      return OptionError("max_age",
                         "must be a positive whole number of seconds");
    }
    spec.queue.max_age = absl::StrCat(age.seconds(), "s");
  }
  if (q.max_length_bytes() > static_cast<uint64_t>(INT64_MAX)) {
    return OptionError("max_length_bytes", "is out of range");
  }
  spec.queue.max_length_bytes = q.max_length_bytes();
  if (start.has_offset()) {
    if (!stream) {
      return absl::InvalidArgumentError(
          "start.offset applies to start.queue_options.queue_type STREAM "
          "only");
    }
    auto offset = ToStreamStart(start.offset());
    if (!offset.ok()) return offset.status();
    spec.stream_start = *offset;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckShort(const std::string& value, absl::string_view field) {
  if (value.size() > kMaxShortString) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", value.size(),
                     " bytes long; AMQP allows at most ", kMaxShortString));
  }
  return absl::OkStatus();
}

absl::StatusOr<amqp::SubscribeSpec> ToSubscribeSpec(
    const v1::SubscribeStart& start, const MessagingServiceOptions& options) {
  amqp::SubscribeSpec spec;
  const auto& q = start.queue_options();
  const bool quorum = q.queue_type() == v1::QUEUE_TYPE_QUORUM;
  const bool stream = q.queue_type() == v1::QUEUE_TYPE_STREAM;
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
      if (auto s = ToHeadersMatch(topic, *spec.binding); !s.ok()) return s;
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
        if (stream) {
          return absl::InvalidArgumentError(
              "start.queue_options.queue_type STREAM needs a start.group: a "
              "per-stream exclusive queue cannot be a stream");
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
      q.queue_type() != v1::QUEUE_TYPE_CLASSIC && !quorum && !stream) {
    return absl::InvalidArgumentError(
        absl::StrCat("start.queue_options.queue_type ", q.queue_type(),
                     " is not a known queue type"));
  }
  spec.queue.quorum = quorum;
  if (auto s = ToQueueDepthOptions(start, spec); !s.ok()) return s;
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
  // The broker refuses a routing key without an exchange, and would say so
  // as a clash of arguments: name the field instead.
  if (!q.dead_letter_routing_key().empty() &&
      q.dead_letter_exchange().empty()) {
    return absl::InvalidArgumentError(
        "start.queue_options.dead_letter_routing_key needs a "
        "start.queue_options.dead_letter_exchange");
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
