// The AMQP codec of the client: Warren's values to and from rabbitmq-c's
// (bytes, field values, field tables, basic properties), and the broker's
// replies (reply codes, RPC replies) as absl::Status.
//
// Pure functions over rabbitmq-c's types; nothing here touches a
// connection. What they return may point into their arguments (said at
// each one), so that a publish copies no header. Thread-compatible: any
// thread may use them on data it owns (the client uses them on its I/O
// thread).
#pragma once

#include <amqp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/amqp_types.h"

namespace warren::amqp {

// A view of `s` (no copy): valid while `s` is.
amqp_bytes_t Bytes(absl::string_view s);
// A copy; empty for rabbitmq-c's null bytes.
std::string String(amqp_bytes_t bytes);

// The exchange type's AMQP name ("topic", ...).
const char* ExchangeType(ExchangeKind kind);

// A broker's channel.close or connection.close as a status: its reply code
// decides the canonical code, its text is kept.
absl::Status FromReplyCode(int code, absl::string_view text);

// What a synchronous call's reply (amqp_get_rpc_reply, or what
// amqp_channel_close hands back) means for the channel and the connection.
struct ReplyOutcome {
  enum class Kind {
    kOk,
    // The broker closed the channel (the caller owes it a close-ok); the
    // connection is fine.
    kChannelClosed,
    // The broker closed the connection (the caller owes it a close-ok).
    kConnectionClosed,
    // The connection is unusable (a library error, a timeout, an
    // unexpected method).
    kConnectionFailed,
  };
  Kind kind = Kind::kOk;
  absl::Status status;
};
// `what` names the call in the status ("queue.declare").
ReplyOutcome ClassifyReply(const amqp_rpc_reply_t& reply,
                           absl::string_view what);

// A header or argument value as text: strings as they are, numbers and
// booleans printed; "" for what has no text form (arrays, tables,
// decimals, void).
std::string FieldToString(const amqp_field_value_t& value);

// Builds a field table that points into strings owned by the caller: valid
// while they are, and while the builder is (it owns the entries).
class TableBuilder {
 public:
  void AddString(absl::string_view key, absl::string_view value);
  void AddLong(absl::string_view key, int64_t value);
  void AddBool(absl::string_view key, bool value);
  // An AMQP timestamp: seconds since the Unix epoch.
  void AddTimestamp(absl::string_view key, int64_t unix_seconds);
  bool empty() const { return entries_.empty(); }
  amqp_table_t table();

 private:
  std::vector<amqp_table_entry_t> entries_;
};

// The queue.declare arguments `queue` asks for (x-queue-type,
// x-dead-letter-*, x-message-ttl, x-max-length, x-max-priority,
// x-delivery-limit, x-single-active-consumer, x-max-age,
// x-max-length-bytes), added to `args`; they point into `queue`.
void AddQueueArguments(const QueueSpec& queue, TableBuilder& args);

// The queue.declare arguments of a delay queue (x-message-ttl,
// x-dead-letter-*, x-expires, and for quorum queues x-queue-type,
// x-dead-letter-strategy and x-overflow), added to `args`; they point into
// `queue`.
void AddDelayQueueArguments(const DelayQueueSpec& queue, TableBuilder& args);

// The queue.bind arguments of a headers binding (x-match and the headers to
// match), added to `args`; nothing for other bindings. They point into
// `binding`.
void AddBindingArguments(const BindingSpec& binding, TableBuilder& args);

// The basic.consume arguments `spec` asks for (x-stream-offset), added to
// `args`; they point into `spec`.
void AddConsumeArguments(const SubscribeSpec& spec, TableBuilder& args);

// The basic properties of a publish: persistent or not, message id and
// timestamp always, the rest when set. Points into `message`, which must
// outlive it; not copyable (it points into itself).
class PublishProperties {
 public:
  PublishProperties(const OutgoingMessage& message, absl::Time now);
  PublishProperties(const PublishProperties&) = delete;
  PublishProperties& operator=(const PublishProperties&) = delete;

  const amqp_basic_properties_t* get() const { return &properties_; }

 private:
  amqp_basic_properties_t properties_;
  std::string expiration_;
  TableBuilder headers_;
};

// Fills what a delivery's content header carries into `delivery`: content
// type, message id, timestamp, the x-delivery-count of quorum queues, the
// x-stream-offset of stream queues (both taken out of the headers), and
// the headers that have a text form (nested tables and arrays, such as
// x-death, are left out).
void DecodeProperties(const amqp_basic_properties_t& properties,
                      Delivery& delivery);

}  // namespace warren::amqp
