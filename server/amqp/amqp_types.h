// The value types of the AMQP client (what is published, delivered,
// declared and consumed) and the parsing of broker URLs (amqp_codec.cc).
// Plain data, free of rabbitmq-c, so that the pure-state units
// (confirm_tracker.h, consumer_book.h) and the services can use them
// without the connection.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace warren::amqp {

// A parsed amqp:// or amqps:// URL.
struct BrokerAddress {
  std::string host;
  int port = 5672;
  std::string user;
  std::string password;
  std::string vhost;
  bool tls = false;
  // For logs: the URL without its password.
  std::string redacted;
};

// Parses `amqp[s]://user:password@host:port/vhost`; INVALID_ARGUMENT naming
// the URL (without its password) when it is malformed. An empty vhost is
// the default vhost "/".
absl::StatusOr<BrokerAddress> ParseBrokerUrl(const std::string& url);

using Headers = std::vector<std::pair<std::string, std::string>>;

struct OutgoingMessage {
  std::string exchange;
  std::string routing_key;
  std::string payload;
  Headers headers;
  std::string content_type;
  std::string message_id;
  bool persistent = true;
  std::optional<uint8_t> priority;
  std::optional<absl::Duration> ttl;
  bool mandatory = false;
  // AMQP reply_to / correlation_id properties; empty: not sent.
  std::string reply_to;
  std::string correlation_id;
};

struct Delivery {
  uint64_t delivery_tag = 0;
  std::string exchange;
  std::string routing_key;
  std::string payload;
  Headers headers;
  std::string content_type;
  std::string message_id;
  bool redelivered = false;
  uint32_t delivery_count = 0;
  // Stream queues: the message's offset (the broker's x-stream-offset).
  std::optional<uint64_t> stream_offset;
  std::optional<absl::Time> timestamp;
  // AMQP reply_to / correlation_id properties (request/reply).
  std::string reply_to;
  std::string correlation_id;
  // Delivery mode 2; kept so that a retry republishes the message as it was.
  bool persistent = true;
  std::optional<uint8_t> priority;
};

enum class ExchangeKind { kTopic, kDirect, kFanout, kHeaders };

struct QueueSpec {
  // Empty: a server-named, exclusive queue deleted with its consumer.
  std::string name;
  bool durable = true;
  bool exclusive = false;
  bool auto_delete = false;
  bool quorum = false;
  std::string dead_letter_exchange;
  std::string dead_letter_routing_key;
  std::optional<absl::Duration> message_ttl;
  uint64_t max_length = 0;
  // Consume an existing queue as it is (whatever its arguments); declare it
  // with the fields above only when it does not exist.
  bool use_existing = false;
  // A RabbitMQ stream (x-queue-type: stream); excludes `quorum`.
  bool stream = false;
  // x-max-priority; 0: not a priority queue.
  uint8_t max_priority = 0;
  // x-delivery-limit as the broker reads it (it dead-letters once a
  // message's count exceeds it).
  std::optional<int64_t> delivery_limit;
  bool single_active_consumer = false;
  // x-max-age as the broker spells it ("3600s"); empty: none.
  std::string max_age;
  uint64_t max_length_bytes = 0;
};

struct BindingSpec {
  std::string exchange;
  ExchangeKind kind = ExchangeKind::kTopic;
  std::vector<std::string> keys;
  // Headers exchanges: the headers a message must carry (x-match
  // arguments of every binding); `match_any` makes one match enough.
  Headers match_headers;
  bool match_any = false;
};

// Where a consumer of a stream queue starts (x-stream-offset).
struct StreamStart {
  enum class Kind { kFirst, kLast, kNext, kOffset, kTimestamp };
  Kind kind = Kind::kNext;
  // kOffset: the offset; kTimestamp: seconds since the Unix epoch.
  int64_t value = 0;
};

struct SubscribeSpec {
  QueueSpec queue;
  std::optional<BindingSpec> binding;
  uint16_t prefetch = 100;
  // Stream queues only: the consume argument x-stream-offset.
  std::optional<StreamStart> stream_start;
};

// What a subscription tells its owner, on the I/O thread.
class SubscriptionSink {
 public:
  virtual ~SubscriptionSink() = default;
  // Consuming started on `queue` (the broker's name for a server-named one).
  virtual void OnSubscribed(const std::string& queue) = 0;
  virtual void OnDelivery(Delivery delivery) = 0;
  // The subscription ended on the broker's side or with the connection;
  // not called after Unsubscribe.
  virtual void OnEnded(absl::Status status) = 0;
};

// A queue that holds messages for a fixed time and then dead-letters them
// (server/messaging/delay_queues.h says what it is for). Declared durable,
// so that waiting messages survive a broker restart.
struct DelayQueueSpec {
  // The queue's name, and the fanout exchange's when `with_exchange`.
  std::string name;
  // A quorum queue, dead-lettering at least once (x-dead-letter-strategy)
  // and refusing publishes when full rather than dropping (x-overflow).
  bool quorum = false;
  absl::Duration message_ttl;
  // "" is the default exchange.
  std::string dead_letter_exchange;
  // Unset keeps each message's own routing key.
  std::optional<std::string> dead_letter_routing_key;
  // x-expires: how long the queue may go unused before the broker deletes
  // it. A publish does not count as use; a redeclare does.
  absl::Duration expires;
  // Also declare a durable, auto-delete fanout exchange named `name` and
  // bind the queue to it (messages then keep their routing key).
  bool with_exchange = false;
};

enum class Settle { kAck, kRequeue, kReject };

using SubscriptionId = uint64_t;

}  // namespace warren::amqp
