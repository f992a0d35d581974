#include "server/amqp/amqp_codec.h"

#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace warren::amqp {

amqp_bytes_t Bytes(absl::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

std::string String(amqp_bytes_t bytes) {
  return bytes.bytes == nullptr
             ? std::string()
             : std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

const char* ExchangeType(ExchangeKind kind) {
  switch (kind) {
    case ExchangeKind::kTopic:
      return "topic";
    case ExchangeKind::kDirect:
      return "direct";
    case ExchangeKind::kFanout:
      return "fanout";
    case ExchangeKind::kHeaders:
      return "headers";
  }
  return "topic";
}

absl::Status FromReplyCode(int code, absl::string_view text) {
  const std::string message = absl::StrCat("RabbitMQ: ", text);
  switch (code) {
    case 404:
      return absl::NotFoundError(message);
    case 403:
    case 530:
      return absl::PermissionDeniedError(message);
    case 405:
    case 406:
      return absl::FailedPreconditionError(message);
    case 311:
      return absl::InvalidArgumentError(message);
    default:
      return absl::UnavailableError(message);
  }
}

ReplyOutcome ClassifyReply(const amqp_rpc_reply_t& reply,
                           absl::string_view what) {
  using Kind = ReplyOutcome::Kind;
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return {Kind::kOk, absl::OkStatus()};
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* close =
            static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
        return {Kind::kChannelClosed,
                FromReplyCode(close->reply_code, String(close->reply_text))};
      }
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* close =
            static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
        return {Kind::kConnectionClosed,
                FromReplyCode(close->reply_code, String(close->reply_text))};
      }
      return {Kind::kConnectionFailed,
              absl::UnavailableError(absl::StrCat(
                  what, ": unexpected broker method ", reply.reply.id))};
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
    case AMQP_RESPONSE_NONE:
    default:
      return {Kind::kConnectionFailed,
              absl::UnavailableError(absl::StrCat(
                  what, " failed: ",
                  reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                      ? amqp_error_string2(reply.library_error)
                      : "no reply"))};
  }
}

std::string FieldToString(const amqp_field_value_t& value) {
  switch (value.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      return String(value.value.bytes);
    case AMQP_FIELD_KIND_BOOLEAN:
      return value.value.boolean ? "true" : "false";
    case AMQP_FIELD_KIND_I8:
      return absl::StrCat(value.value.i8);
    case AMQP_FIELD_KIND_U8:
      return absl::StrCat(value.value.u8);
    case AMQP_FIELD_KIND_I16:
      return absl::StrCat(value.value.i16);
    case AMQP_FIELD_KIND_U16:
      return absl::StrCat(value.value.u16);
    case AMQP_FIELD_KIND_I32:
      return absl::StrCat(value.value.i32);
    case AMQP_FIELD_KIND_U32:
      return absl::StrCat(value.value.u32);
    case AMQP_FIELD_KIND_I64:
      return absl::StrCat(value.value.i64);
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
      return absl::StrCat(value.value.u64);
    case AMQP_FIELD_KIND_F32:
      return absl::StrCat(value.value.f32);
    case AMQP_FIELD_KIND_F64:
      return absl::StrCat(value.value.f64);
    default:
      return "";
  }
}

void TableBuilder::AddString(absl::string_view key, absl::string_view value) {
  amqp_table_entry_t e;
  e.key = Bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = Bytes(value);
  entries_.push_back(e);
}

void TableBuilder::AddLong(absl::string_view key, int64_t value) {
  amqp_table_entry_t e;
  e.key = Bytes(key);
  e.value.kind = AMQP_FIELD_KIND_I64;
  e.value.value.i64 = value;
  entries_.push_back(e);
}

void TableBuilder::AddBool(absl::string_view key, bool value) {
  amqp_table_entry_t e;
  e.key = Bytes(key);
  e.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  e.value.value.boolean = value ? 1 : 0;
  entries_.push_back(e);
}

void TableBuilder::AddTimestamp(absl::string_view key, int64_t unix_seconds) {
  amqp_table_entry_t e;
  e.key = Bytes(key);
  e.value.kind = AMQP_FIELD_KIND_TIMESTAMP;
  e.value.value.u64 = static_cast<uint64_t>(unix_seconds);
  entries_.push_back(e);
}

amqp_table_t TableBuilder::table() {
  return amqp_table_t{static_cast<int>(entries_.size()),
                      entries_.empty() ? nullptr : entries_.data()};
}

void AddQueueArguments(const QueueSpec& queue, TableBuilder& args) {
  if (queue.quorum) args.AddString("x-queue-type", "quorum");
  if (queue.stream) args.AddString("x-queue-type", "stream");
  if (!queue.dead_letter_exchange.empty()) {
    args.AddString("x-dead-letter-exchange", queue.dead_letter_exchange);
  }
  if (!queue.dead_letter_routing_key.empty()) {
    args.AddString("x-dead-letter-routing-key", queue.dead_letter_routing_key);
  }
  if (queue.message_ttl.has_value()) {
    args.AddLong("x-message-ttl",
                 absl::ToInt64Milliseconds(*queue.message_ttl));
  }
  if (queue.max_length > 0) {
    args.AddLong("x-max-length", static_cast<int64_t>(queue.max_length));
  }
  if (queue.max_priority > 0)
    args.AddLong("x-max-priority", queue.max_priority);
  if (queue.delivery_limit.has_value()) {
    args.AddLong("x-delivery-limit", *queue.delivery_limit);
  }
  if (queue.single_active_consumer) {
    args.AddBool("x-single-active-consumer", true);
  }
  if (!queue.max_age.empty()) args.AddString("x-max-age", queue.max_age);
  if (queue.max_length_bytes > 0) {
    args.AddLong("x-max-length-bytes",
                 static_cast<int64_t>(queue.max_length_bytes));
  }
}

void AddBindingArguments(const BindingSpec& binding, TableBuilder& args) {
  if (binding.kind != ExchangeKind::kHeaders || binding.match_headers.empty()) {
    return;
  }
  args.AddString("x-match", binding.match_any ? "any" : "all");
  for (const auto& [key, value] : binding.match_headers) {
    args.AddString(key, value);
  }
}

void AddConsumeArguments(const SubscribeSpec& spec, TableBuilder& args) {
  if (!spec.stream_start.has_value()) return;
  const StreamStart& start = *spec.stream_start;
  switch (start.kind) {
    case StreamStart::Kind::kFirst:
      args.AddString("x-stream-offset", "first");
      break;
    case StreamStart::Kind::kLast:
      args.AddString("x-stream-offset", "last");
      break;
    case StreamStart::Kind::kNext:
      args.AddString("x-stream-offset", "next");
      break;
    case StreamStart::Kind::kOffset:
      args.AddLong("x-stream-offset", start.value);
      break;
    case StreamStart::Kind::kTimestamp:
      args.AddTimestamp("x-stream-offset", start.value);
      break;
  }
}

void AddDelayQueueArguments(const DelayQueueSpec& queue, TableBuilder& args) {
  if (queue.quorum) {
    args.AddString("x-queue-type", "quorum");
    args.AddString("x-dead-letter-strategy", "at-least-once");
    args.AddString("x-overflow", "reject-publish");
  }
  args.AddLong("x-message-ttl", absl::ToInt64Milliseconds(queue.message_ttl));
  args.AddString("x-dead-letter-exchange", queue.dead_letter_exchange);
  if (queue.dead_letter_routing_key.has_value()) {
    args.AddString("x-dead-letter-routing-key", *queue.dead_letter_routing_key);
  }
  args.AddLong("x-expires", absl::ToInt64Milliseconds(queue.expires));
}

PublishProperties::PublishProperties(const OutgoingMessage& m, absl::Time now) {
  std::memset(&properties_, 0, sizeof(properties_));
  properties_._flags = AMQP_BASIC_DELIVERY_MODE_FLAG |
                       AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
  properties_.delivery_mode = m.persistent ? 2 : 1;
  properties_.message_id = Bytes(m.message_id);
  properties_.timestamp = static_cast<uint64_t>(absl::ToUnixSeconds(now));
  if (!m.content_type.empty()) {
    properties_._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
    properties_.content_type = Bytes(m.content_type);
  }
  if (m.priority.has_value()) {
    properties_._flags |= AMQP_BASIC_PRIORITY_FLAG;
    properties_.priority = *m.priority;
  }
  if (!m.reply_to.empty()) {
    properties_._flags |= AMQP_BASIC_REPLY_TO_FLAG;
    properties_.reply_to = Bytes(m.reply_to);
  }
  if (!m.correlation_id.empty()) {
    properties_._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    properties_.correlation_id = Bytes(m.correlation_id);
  }
  if (m.ttl.has_value()) {
    expiration_ = absl::StrCat(absl::ToInt64Milliseconds(*m.ttl));
    properties_._flags |= AMQP_BASIC_EXPIRATION_FLAG;
    properties_.expiration = Bytes(expiration_);
  }
  for (const auto& [key, value] : m.headers) headers_.AddString(key, value);
  if (!headers_.empty()) {
    properties_._flags |= AMQP_BASIC_HEADERS_FLAG;
    properties_.headers = headers_.table();
  }
}

void DecodeProperties(const amqp_basic_properties_t& p, Delivery& d) {
  if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) {
    d.content_type = String(p.content_type);
  }
  if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
    d.message_id = String(p.message_id);
  }
  if (p._flags & AMQP_BASIC_REPLY_TO_FLAG) d.reply_to = String(p.reply_to);
  if (p._flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
    d.correlation_id = String(p.correlation_id);
  }
  if (p._flags & AMQP_BASIC_TIMESTAMP_FLAG) {
    d.timestamp = absl::FromUnixSeconds(static_cast<int64_t>(p.timestamp));
  }
  if (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) {
    d.persistent = p.delivery_mode == 2;
  }
  if (p._flags & AMQP_BASIC_PRIORITY_FLAG) d.priority = p.priority;
  if ((p._flags & AMQP_BASIC_HEADERS_FLAG) == 0) return;
  for (int i = 0; i < p.headers.num_entries; ++i) {
    const amqp_table_entry_t& e = p.headers.entries[i];
    std::string key = String(e.key);
    if (key == "x-delivery-count") {
      uint32_t count = 0;
      if (absl::SimpleAtoi(FieldToString(e.value), &count)) {
        d.delivery_count = count;
      }
      continue;
    }
    if (key == "x-stream-offset") {
      uint64_t offset = 0;
      if (absl::SimpleAtoi(FieldToString(e.value), &offset)) {
        d.stream_offset = offset;
      }
      continue;
    }
    if (e.value.kind == AMQP_FIELD_KIND_ARRAY ||
        e.value.kind == AMQP_FIELD_KIND_TABLE) {
      continue;
    }
    d.headers.emplace_back(std::move(key), FieldToString(e.value));
  }
}

absl::StatusOr<BrokerAddress> ParseBrokerUrl(const std::string& url) {
  std::vector<char> buffer(url.begin(), url.end());
  buffer.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  // Redact before parsing so that no error message carries the password.
  std::string redacted = url;
  const size_t at = redacted.rfind('@');
  const size_t scheme = redacted.find("://");
  if (at != std::string::npos && scheme != std::string::npos) {
    const size_t colon = redacted.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at) {
      redacted.replace(colon + 1, at - colon - 1, "****");
    }
  }
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amqp_urls: '", redacted,
        "' is not an AMQP URL (amqp[s]://user:password@host:port/vhost)"));
  }
  BrokerAddress address;
  address.host = info.host;
  address.port = info.port;
  address.user = info.user;
  address.password = info.password;
  // "amqp://host/" names the empty vhost by the letter of the URI spec;
  // like most clients, take it as the default vhost "/".
  address.vhost = *info.vhost == '\0' ? "/" : info.vhost;
  address.tls = info.ssl != 0;
  address.redacted = std::move(redacted);
  return address;
}

}  // namespace warren::amqp
