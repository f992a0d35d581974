// Fuzzes request validation: every validator at the edge of the API, fed
// requests parsed from the input. The first byte picks the validator, the
// rest is the serialized request (or, for names, the raw bytes).
//
// Invariants a client relies on: a rejection is INVALID_ARGUMENT and its
// message names a field of the request; an accepted request converts without
// crashing and within the limits (AMQP short strings, sizes, names that stay
// under the root).
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/duration.h"
#include "server/common/names.h"
#include "server/config/config_service.h"
#include "server/config/hold_key_stream.h"
#include "server/config/key_space.h"
#include "server/election/election_service.h"
#include "server/fence/fence_resolver.h"
#include "server/messaging/call_handler.h"
#include "server/messaging/delay_queues.h"
#include "server/messaging/delay_validation.h"
#include "server/messaging/messaging_service.h"
#include "tests/fuzz/fuzz_ops.h"
#include "tests/fuzz/fuzz_support.h"

namespace warren::fuzz {
namespace {

namespace v1 = ::warren::v1;

// Small limits, so that inputs reach them.
messaging::MessagingServiceOptions MessagingOptions() {
  messaging::MessagingServiceOptions options;
  options.max_payload_bytes = 4096;
  options.max_header_bytes = 512;
  options.max_in_flight_cap = 1000;
  return options;
}
config::ConfigServiceOptions ConfigOptions() {
  config::ConfigServiceOptions options;
  options.max_value_bytes = 1024;
  options.max_txn_ops = 8;
  return options;
}
election::ElectionServiceOptions ElectionOptions() {
  election::ElectionServiceOptions options;
  options.session_timeout = absl::Seconds(3);
  options.max_value_bytes = 1024;
  return options;
}

// A rejection: the right code, and a message that names one of `fields`.
void CheckRejection(const absl::Status& status,
                    std::initializer_list<absl::string_view> fields) {
  const std::string what = status.ToString();
  Check(status.code() == absl::StatusCode::kInvalidArgument,
        "a rejection with the wrong code: " + what);
  bool named = false;
  for (absl::string_view field : fields) {
    named = named || absl::StrContains(status.message(), field);
  }
  Check(named, "a rejection that names no field: " + what);
}

// An accepted name: what ValidateName promises, and it stays under the root.
void CheckValidName(const std::string& name, bool allow_empty) {
  Check(allow_empty || !name.empty(), "an empty name was accepted");
  Check(name.size() <= kMaxNameBytes, "an over-long name was accepted");
  if (name.empty()) return;
  Check(name.front() != '/' && name.back() != '/' &&
            !absl::StrContains(name, "//"),
        "a name with an empty segment was accepted: " + name);
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '-' || c == '/';
    Check(ok, "a name with a disallowed byte was accepted");
  }
  const std::string slashed = absl::StrCat("/", name, "/");
  Check(
      !absl::StrContains(slashed, "/./") && !absl::StrContains(slashed, "/../"),
      "a name with a relative segment was accepted: " + name);
  const config::KeySpace keys("/w");
  const std::string path = keys.PathOf(name);
  Check(absl::StartsWith(path, "/w/config/"), "a key outside the root");
  Check(keys.KeyOf(path) == name, "a key does not round-trip: " + name);
}

void CheckShortString(const std::string& value, const char* what) {
  Check(value.size() <= 255, absl::StrCat(what, " over 255 bytes accepted"));
}

void FuzzPublish(const v1::PublishRequest& request, absl::string_view prefix) {
  const auto options = MessagingOptions();
  absl::Status valid = messaging::ValidatePublish(request, options, prefix);
  if (!valid.ok()) {
    Check(absl::StartsWith(valid.message(), prefix),
          "a rejection without the field prefix: " + valid.ToString());
    CheckRejection(
        valid, {"exchange", "routing_key", "content_type", "message_id",
                "payload", "headers", "priority", "ttl", "fence", "reply_to",
                "correlation_id", "delay"});
    return;
  }
  // A delayed message is routed later: what needs its routing now is
  // refused with it, and the delay is within the server's limit.
  if (request.has_delay()) {
    const absl::Duration delay = FromProtoDuration(request.delay());
    Check(delay >= absl::ZeroDuration() && delay <= options.max_publish_delay,
          "a delay out of range accepted");
    Check(delay == absl::ZeroDuration() ||
              (!request.has_ttl() && !request.mandatory()),
          "a delay with ttl or mandatory accepted");
    if (delay > absl::ZeroDuration()) {
      const absl::Duration bucket = messaging::DelayBucket(delay);
      Check(bucket >= delay && bucket <= delay * 1.1 + absl::Milliseconds(1),
            "a delay bucket early or more than 10 % late");
      CheckShortString(messaging::DelayQueueName(bucket, request.exchange()),
                       "delay queue name");
    }
  }
  // Only the server sets the retry headers: a client's never pass.
  for (const auto& [key, value] : request.headers()) {
    Check(!absl::EqualsIgnoreCase(key, messaging::kRetriesHeader) &&
              !absl::EqualsIgnoreCase(key, messaging::kRetryExchangeHeader) &&
              !absl::EqualsIgnoreCase(key, messaging::kRetryRoutingKeyHeader),
          "a client-set retry header accepted: " + key);
  }
  // Only the server sets the fence headers: a client's never pass.
  for (const auto& [key, value] : request.headers()) {
    Check(!absl::EqualsIgnoreCase(key, fence::kFenceHeader) &&
              !absl::EqualsIgnoreCase(key, fence::kFencingTokenHeader),
          "a client-set fence header accepted: " + key);
  }
  if (request.has_fence()) {
    const v1::Fence& f = request.fence();
    Check(f.fencing_token() != 0, "a fence without a token accepted");
    Check(f.owner_case() != v1::Fence::OWNER_NOT_SET,
          "a fence without an owner accepted");
    const std::string& owner =
        f.owner_case() == v1::Fence::kElection ? f.election() : f.lock();
    CheckValidName(owner, /*allow_empty=*/false);
    for (absl::string_view segment : absl::StrSplit(owner, '/')) {
      Check(!absl::StartsWith(segment, "c_"),
            "a fence owner with a candidate-like segment accepted: " + owner);
    }
  }
  const amqp::OutgoingMessage m = messaging::ToOutgoing(request);
  CheckShortString(m.exchange, "exchange");
  CheckShortString(m.routing_key, "routing_key");
  CheckShortString(m.content_type, "content_type");
  CheckShortString(m.message_id, "message_id");
  CheckShortString(m.reply_to, "reply_to");
  CheckShortString(m.correlation_id, "correlation_id");
  Check(!m.message_id.empty(), "a message without an id");
  Check(m.payload.size() <= options.max_payload_bytes,
        "payload over the limit");
  size_t header_bytes = 0;
  int stamped = 0;
  for (const auto& [key, value] : m.headers) {
    Check(!key.empty(), "an empty header key accepted");
    CheckShortString(key, "a header key");
    // The fence headers are the server's (a name and a number), outside
    // the client's limit.
    if (key == fence::kFenceHeader) {
      ++stamped;
      Check(request.has_fence() && value == fence::OwnerName(request.fence()),
            "a fence header that is not the request's fence: " + value);
      continue;
    }
    if (key == fence::kFencingTokenHeader) {
      ++stamped;
      Check(request.has_fence() &&
                value == absl::StrCat(request.fence().fencing_token()),
            "a fencing token header that is not the request's: " + value);
      continue;
    }
    header_bytes += key.size() + value.size();
  }
  Check(header_bytes <= options.max_header_bytes, "headers over the limit");
  Check(stamped == (request.has_fence() ? 2 : 0),
        "a fenced message without both fence headers");
  Check(
      m.headers.size() == static_cast<size_t>(request.headers_size()) + stamped,
      "headers lost");
  Check(!m.priority.has_value() || *m.priority == request.priority(),
        "priority changed");
  Check(!m.ttl.has_value() || *m.ttl >= absl::ZeroDuration(),
        "a negative ttl accepted");
  Check(m.persistent == !request.transient(), "persistence changed");
}

// A Call: validated like a publish under "message.", and the reply fields
// are the server's: a request that sets them is never accepted.
void FuzzCall(const v1::CallRequest& request) {
  const auto options = MessagingOptions();
  absl::Status valid = messaging::ValidateCall(request, options);
  if (!valid.ok()) {
    Check(absl::StartsWith(valid.message(), "message"),
          "a rejection without the field prefix: " + valid.ToString());
    CheckRejection(valid, {"message"});
    return;
  }
  Check(request.has_message(), "a call without a message accepted");
  Check(request.message().reply_to().empty() &&
            request.message().correlation_id().empty(),
        "a call with its own reply_to or correlation_id accepted");
  Check(!request.message().has_delay(), "a delayed call accepted");
  FuzzPublish(request.message(), "message.");
}

void FuzzSubscribeStart(const v1::SubscribeStart& start) {
  const auto options = MessagingOptions();
  auto spec = messaging::ToSubscribeSpec(start, options);
  if (!spec.ok()) {
    CheckRejection(spec.status(), {"start."});
    return;
  }
  Check(spec->prefetch >= 1 && spec->prefetch <= options.max_in_flight_cap,
        absl::StrCat("prefetch ", spec->prefetch, " out of range"));
  CheckShortString(spec->queue.name, "queue");
  CheckShortString(spec->queue.dead_letter_exchange, "dead_letter_exchange");
  CheckShortString(spec->queue.dead_letter_routing_key,
                   "dead_letter_routing_key");
  Check(spec->queue.name.empty() == spec->queue.exclusive,
        "only a server-named queue is exclusive");
  Check(!spec->queue.quorum || (spec->queue.durable && !spec->queue.exclusive),
        "a quorum queue that is not durable and shared");
  Check(!spec->queue.message_ttl.has_value() ||
            *spec->queue.message_ttl >= absl::ZeroDuration(),
        "a negative message_ttl accepted");
  const amqp::QueueSpec& q = spec->queue;
  if (q.stream) {
    Check(!q.quorum && q.durable && !q.exclusive && !q.name.empty(),
          "a stream that is not a durable named queue");
    Check(q.max_priority == 0 && !q.delivery_limit.has_value() &&
              !q.single_active_consumer && q.dead_letter_exchange.empty() &&
              q.dead_letter_routing_key.empty() && !q.message_ttl.has_value() &&
              q.max_length == 0,
          "a stream with an option streams do not have");
  }
  Check(!spec->stream_start.has_value() || q.stream,
        "an offset on a queue that is not a stream");
  Check(q.max_age.empty() || q.stream, "max_age on a queue that is no stream");
  Check(!q.delivery_limit.has_value() || (q.quorum && *q.delivery_limit >= 0),
        "a delivery limit on a queue that is not quorum");
  Check(q.max_priority == 0 || (!q.quorum && !q.stream),
        "a priority queue that is not classic");
  Check(!q.single_active_consumer || !q.name.empty(),
        "single active consumer on an exclusive queue");
  if (spec->binding.has_value()) {
    Check(spec->binding->match_headers.empty() ||
              spec->binding->kind == amqp::ExchangeKind::kHeaders,
          "match_headers on an exchange that is not a headers exchange");
    for (const auto& [key, value] : spec->binding->match_headers) {
      Check(!key.empty() && !absl::StartsWithIgnoreCase(key, "x-"),
            "a header match the broker would not make: " + key);
      CheckShortString(key, "match header");
    }
    Check(!spec->binding->exchange.empty(),
          "a binding to the default exchange");
    CheckShortString(spec->binding->exchange, "exchange");
    for (const auto& key : spec->binding->keys) {
      CheckShortString(key, "binding key");
    }
  } else {
    Check(!spec->queue.name.empty(), "a queue subscription without a queue");
  }
}

void FuzzNack(const v1::Nack& nack, bool stream_queue) {
  const auto options = MessagingOptions();
  absl::Status valid = messaging::ValidateRetryAfter(nack, stream_queue,
                                                     options.max_retry_delay);
  if (!valid.ok()) {
    CheckRejection(valid, {"nack.retry_after"});
    return;
  }
  if (!nack.has_retry_after()) return;
  const absl::Duration after = FromProtoDuration(nack.retry_after());
  Check(after >= absl::ZeroDuration() && after <= options.max_retry_delay,
        "a retry_after out of range accepted");
  Check(!stream_queue || after == absl::ZeroDuration(),
        "a retry_after on a stream queue accepted");
}

void FuzzPut(const v1::PutConfigRequest& request) {
  const auto options = ConfigOptions();
  absl::Status valid = config::ValidatePut(request, options);
  if (!valid.ok()) {
    CheckRejection(valid, {"key", "value", "expected_version", "create_only"});
    return;
  }
  CheckValidName(request.key(), /*allow_empty=*/false);
  Check(request.value().size() <= options.max_value_bytes,
        "value over the limit");
  Check(!request.has_expected_version() ||
            (!request.create_only() && request.expected_version() >= 0 &&
             request.expected_version() <= std::numeric_limits<int32_t>::max()),
        "an expected_version out of range accepted");
}

void FuzzDelete(const v1::DeleteConfigRequest& request) {
  absl::Status valid = config::ValidateDelete(request);
  if (!valid.ok()) {
    CheckRejection(valid, {"key", "expected_version"});
    return;
  }
  CheckValidName(request.key(), /*allow_empty=*/false);
  Check(!request.has_expected_version() ||
            (request.expected_version() >= 0 &&
             request.expected_version() <= std::numeric_limits<int32_t>::max()),
        "an expected_version out of range accepted");
}

void FuzzTxn(const v1::TxnRequest& request) {
  const auto options = ConfigOptions();
  absl::Status valid = config::ValidateTxn(request, options);
  if (!valid.ok()) {
    CheckRejection(valid, {"ops", "checks["});
    return;
  }
  Check(request.ops_size() > 0, "a transaction without ops accepted");
  Check(static_cast<size_t>(request.checks_size() + request.ops_size()) <=
            options.max_txn_ops,
        "a transaction over max_txn_ops accepted");
  for (const auto& check : request.checks()) {
    CheckValidName(check.key(), /*allow_empty=*/false);
    Check(check.condition_case() != v1::TxnCheck::CONDITION_NOT_SET,
          "a check without a condition accepted");
    Check(!check.has_version() ||
              (check.version() >= 0 &&
               check.version() <= std::numeric_limits<int32_t>::max()),
          "a check's version out of range accepted");
  }
  std::set<std::string> keys;
  for (const auto& op : request.ops()) {
    Check(op.op_case() != v1::TxnOp::OP_NOT_SET, "an empty op accepted");
    const bool put = op.has_put();
    Check(put ? !op.put().has_fence() : !op.delete_().has_fence(),
          "a fence inside a transaction's op accepted");
    // Each op passes its own RPC's validation.
    Check(put ? config::ValidatePut(op.put(), options).ok()
              : config::ValidateDelete(op.delete_()).ok(),
          "an op its own RPC refuses accepted");
    Check(keys.insert(put ? op.put().key() : op.delete_().key()).second,
          "a key written twice accepted");
  }
}

void FuzzHoldKey(const v1::HoldKeyRequest& request) {
  const auto options = ConfigOptions();
  absl::Status valid = config::ValidateHoldKey(request, options);
  if (!valid.ok()) {
    CheckRejection(valid, {"key", "value", "heartbeat_interval"});
    return;
  }
  CheckValidName(request.key(), /*allow_empty=*/false);
  Check(request.value().size() <= options.max_value_bytes,
        "value over the limit");
  Check(request.heartbeat_interval().seconds() >= 0 &&
            request.heartbeat_interval().nanos() >= 0,
        "a negative heartbeat_interval accepted");
  // A later request of the same stream: its key empty or the same.
  v1::HoldKeyRequest later = request;
  later.set_key(request.key() + "x");
  absl::Status other =
      config::ValidateHoldKeyUpdate(later, request.key(), options);
  Check(!other.ok(), "a later request naming another key accepted");
  CheckRejection(other, {"key"});
  later.clear_key();
  Check(config::ValidateHoldKeyUpdate(later, request.key(), options).ok(),
        "a later request without a key refused");
}

void FuzzList(const v1::ListConfigRequest& request) {
  auto after = config::ValidateList(request);
  if (!after.ok()) {
    CheckRejection(after.status(), {"prefix", "page_size", "page_token"});
    return;
  }
  CheckValidName(request.prefix(), /*allow_empty=*/true);
  Check(request.page_size() >= 0, "a negative page_size accepted");
  if (after->empty()) {
    Check(request.page_token().empty(), "a page token that names no key");
    return;
  }
  CheckValidName(*after, /*allow_empty=*/false);
  Check(config::IsSelfOrDescendant(*after, request.prefix()),
        "a page token of another prefix accepted");
  // The server's own token for that key reads back the same.
  v1::ListConfigRequest again = request;
  again.set_page_token(config::MakePageToken(*after));
  auto reread = config::ValidateList(again);
  Check(reread.ok() && *reread == *after, "a page token does not round-trip");
}

void FuzzWatch(const v1::WatchConfigRequest& request) {
  absl::Status valid = config::ValidateWatch(request);
  if (!valid.ok()) {
    CheckRejection(valid, {"key", "heartbeat_interval"});
    return;
  }
  CheckValidName(request.key(), /*allow_empty=*/request.prefix());
}

void FuzzCampaign(const v1::Campaign& campaign) {
  const auto options = ElectionOptions();
  auto heartbeat = election::ValidateCampaign(campaign, options);
  if (!heartbeat.ok()) {
    CheckRejection(heartbeat.status(), {"campaign."});
    return;
  }
  CheckValidName(campaign.election(), /*allow_empty=*/false);
  // No segment in the candidates' form: its node would be a phantom
  // candidate of the parent election (candidate_node.h).
  Check(!absl::StartsWith(campaign.election(), "c_") &&
            !absl::StrContains(campaign.election(), "/c_"),
        "an election with a c_ segment accepted: " + campaign.election());
  CheckShortString(campaign.candidate_id(), "candidate_id");
  Check(campaign.candidate_id().find('/') == std::string::npos,
        "a candidate_id with '/' accepted");
  Check(campaign.value().size() <= options.max_value_bytes,
        "campaign.value over the limit");
  Check(*heartbeat >= absl::Milliseconds(100) &&
            *heartbeat <=
                std::max(options.session_timeout / 3, absl::Milliseconds(100)),
        absl::StrCat("heartbeat ", absl::FormatDuration(*heartbeat),
                     " outside the lease's bounds"));
}

void FuzzName(const std::string& name, bool allow_empty) {
  absl::Status valid = ValidateName(name, "key", allow_empty);
  if (!valid.ok()) {
    CheckRejection(valid, {"key"});
    return;
  }
  CheckValidName(name, allow_empty);
}

template <typename Message>
bool Parse(const std::string& bytes, Message* message) {
  return message->ParseFromString(bytes);
}

}  // namespace

void FuzzOne(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const uint8_t which = data[0] % kValidators;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (which) {
    case kPublish: {
      v1::PublishRequest r;
      if (Parse(rest, &r)) FuzzPublish(r, "");
      break;
    }
    case kCall: {
      v1::CallRequest r;
      if (Parse(rest, &r)) FuzzCall(r);
      break;
    }
    case kPublishStream: {
      v1::PublishStreamRequest r;
      if (Parse(rest, &r)) FuzzPublish(r.message(), "message.");
      break;
    }
    case kSubscribeStart: {
      v1::SubscribeStart r;
      if (Parse(rest, &r)) FuzzSubscribeStart(r);
      break;
    }
    case kPutConfig: {
      v1::PutConfigRequest r;
      if (Parse(rest, &r)) FuzzPut(r);
      break;
    }
    case kDeleteConfig: {
      v1::DeleteConfigRequest r;
      if (Parse(rest, &r)) FuzzDelete(r);
      break;
    }
    case kListConfig: {
      v1::ListConfigRequest r;
      if (Parse(rest, &r)) FuzzList(r);
      break;
    }
    case kWatchConfig: {
      v1::WatchConfigRequest r;
      if (Parse(rest, &r)) FuzzWatch(r);
      break;
    }
    case kCampaign: {
      v1::Campaign r;
      if (Parse(rest, &r)) FuzzCampaign(r);
      break;
    }
    case kName:
      FuzzName(rest, /*allow_empty=*/(data[0] & 0x80) != 0);
      break;
    case kTxn: {
      v1::TxnRequest r;
      if (Parse(rest, &r)) FuzzTxn(r);
      break;
    }
    case kHoldKey: {
      v1::HoldKeyRequest r;
      if (Parse(rest, &r)) FuzzHoldKey(r);
      break;
    }
    case kNack: {
      v1::Nack r;
      if (Parse(rest, &r)) {
        FuzzNack(r, /*stream_queue=*/(data[0] / kValidators) % 2 == 1);
      }
      break;
    }
  }
}

}  // namespace warren::fuzz

WARREN_FUZZ_ENTRY_POINTS
