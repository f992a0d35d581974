#include "server/daemon/config_change_publisher.h"

#include <algorithm>

#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/logging.h"
#include "server/common/uuid.h"
#include "warren/v1/config.pb.h"

namespace warren::daemon {

ConfigChangePublisher::ConfigChangePublisher(amqp::AmqpBroker& amqp,
                                             std::string exchange)
    : amqp_(amqp), exchange_(std::move(exchange)) {}

namespace {

void Declare(amqp::AmqpBroker& amqp, const std::string& exchange) {
  amqp.DeclareExchange(
      exchange, amqp::ExchangeKind::kTopic, [exchange](absl::Status status) {
        if (!status.ok()) {
          WARREN_LOG_WARN("config changes: cannot declare exchange {}: {}",
                          exchange, status.message());
        }
      });
}

}  // namespace

void ConfigChangePublisher::DeclareExchange() { Declare(amqp_, exchange_); }

void ConfigChangePublisher::Announce(config::Change::Type type,
                                     const config::CachedEntry& entry) {
  warren::v1::ConfigEvent event;
  const bool put = type == config::Change::Type::kPut;
  event.set_type(put ? warren::v1::CONFIG_EVENT_TYPE_PUT
                     : warren::v1::CONFIG_EVENT_TYPE_DELETE);
  auto* out = event.mutable_entry();
  out->set_key(entry.key);
  if (put) out->set_value(entry.value);
  out->set_version(entry.stat.version);
  *out->mutable_modify_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
          entry.stat.mtime_ms);

  amqp::OutgoingMessage message;
  message.exchange = exchange_;
  message.routing_key = entry.key;
  std::replace(message.routing_key.begin(), message.routing_key.end(), '/',
               '.');
  google::protobuf::util::JsonPrintOptions json;
  json.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(event, &message.payload,
                                                    json);
  message.content_type = "application/json";
  message.message_id = NewUuid();
  message.headers.emplace_back("warren-change-type", put ? "PUT" : "DELETE");
  amqp_.Publish(std::move(message), absl::Now() + absl::Seconds(30),
                [amqp = &amqp_, exchange = exchange_, failures = failures_,
                 key = entry.key](absl::Status status) {
                  if (status.ok()) return;
                  failures->fetch_add(1);
                  WARREN_LOG_WARN("config changes: announcing {} failed: {}",
                                  key, status.message());
                  // Deleted behind our back: declare it again for the next.
                  if (status.code() == absl::StatusCode::kNotFound) {
                    Declare(*amqp, exchange);
                  }
                });
}

}  // namespace warren::daemon
