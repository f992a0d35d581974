// warren publish, warren subscribe.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <iterator>
#include <random>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "clients/cli/cli.h"
#include "clients/cli/spawn.h"
#include "clients/cli/stream.h"
#include "google/protobuf/duration.pb.h"
#include "warren/client/responder.h"
#include "warren/client/retry_policy.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::cli {
namespace {

using Kind = FlagSpec::Kind;
namespace client = ::warren::client;

// A random (version 4) UUID. The CLI picks the message id itself, rather
// than let the server do it, so that it can name the id when the publish
// fails and the caller can retry with the same one.
std::string NewMessageId() {
  std::random_device device;
  std::mt19937_64 engine((static_cast<uint64_t>(device()) << 32) ^ device());
  uint64_t hi = engine();
  uint64_t lo = engine();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32,
                         (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                         lo & 0xffffffffffffULL);
}

std::string ReadStdin() {
  std::string text((std::istreambuf_iterator<char>(std::cin)),
                   std::istreambuf_iterator<char>());
  return text;
}

// --------------------------------------------------------------- publish

// The message of `publish` and `call`: its address, payload and options.
absl::StatusOr<v1::PublishRequest> BuildPublishRequest(const Args& args) {
  v1::PublishRequest request;
  size_t payload_index = 0;
  if (auto queue = args.Get("queue")) {
    if (auto s = args.ExpectPositional(0, 1); !s.ok()) return s;
    request.set_routing_key(*queue);  // the default exchange routes by queue
    payload_index = 0;
  } else {
    if (auto s = args.ExpectPositional(2, 3); !s.ok()) return s;
    request.set_exchange(args.positional()[0]);
    request.set_routing_key(args.positional()[1]);
    payload_index = 2;
  }
  if (args.positional().size() > payload_index &&
      args.positional()[payload_index] != "-") {
    request.set_payload(args.positional()[payload_index]);
  } else {
    request.set_payload(ReadStdin());
  }
  for (const std::string& header : args.GetAll("header")) {
    const size_t eq = header.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError(
          absl::StrCat("--header takes NAME=VALUE, not ", header));
    }
    (*request.mutable_headers())[header.substr(0, eq)] = header.substr(eq + 1);
  }
  if (auto v = args.Get("content-type")) request.set_content_type(*v);
  request.set_message_id(args.Get("message-id").value_or(NewMessageId()));
  auto transient = args.GetBool("transient");
  if (!transient.ok()) return transient.status();
  request.set_transient(*transient);
  auto delay = args.GetDuration("delay");
  if (!delay.ok()) return delay.status();
  if (delay->has_value()) {
    if (**delay <= absl::ZeroDuration()) {
      return UsageError("--delay must be positive");
    }
    SetDuration(**delay, request.mutable_delay());
  }
  if (auto v = args.Get("reply-to")) request.set_reply_to(*v);
  if (auto v = args.Get("correlation-id")) request.set_correlation_id(*v);
  // Mandatory unless turned off, like the client wrappers: a message no
  // queue receives is an error, not a silent drop. Not a delayed one: its
  // route is taken later, so the server cannot check it (and refuses both).
  auto mandatory = args.Has("mandatory")
                       ? args.GetBool("mandatory")
                       : absl::StatusOr<bool>(!delay->has_value());
  if (!mandatory.ok()) return mandatory.status();
  request.set_mandatory(*mandatory);
  auto priority = args.GetInt("priority");
  if (!priority.ok()) return priority.status();
  if (priority->has_value()) {
    if (**priority < 0 || **priority > 255) {
      return UsageError("--priority takes 0 to 255");
    }
    request.set_priority(static_cast<uint32_t>(**priority));
  }
  auto ttl = args.GetDuration("ttl");
  if (!ttl.ok()) return ttl.status();
  if (ttl->has_value()) SetDuration(**ttl, request.mutable_ttl());
  auto fence = ParseFence(args);
  if (!fence.ok()) return fence.status();
  if (fence->has_value()) *request.mutable_fence() = **fence;
  return request;
}

absl::Status RunPublish(Context& context, const Args& args) {
  auto built = BuildPublishRequest(args);
  if (!built.ok()) return built.status();
  const v1::PublishRequest& request = *built;
  auto stub = v1::MessagingService::NewStub(context.channel);
  auto call = context.UnaryContext();
  v1::PublishResponse response;
  absl::Status status = FromGrpc(stub->Publish(call.get(), request, &response));
  if (!status.ok()) {
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kDeadlineExceeded) {
      // The broker may have the message even so: a retry with the same id
      // lets consumers drop the duplicate.
      return absl::Status(
          status.code(),
          absl::StrCat(status.message(), " (message id ", request.message_id(),
                       "; it may have been published: retry with "
                       "--message-id=",
                       request.message_id(), ")"));
    }
    return status;
  }
  if (context.out.json()) {
    context.out.Json(response);
  } else {
    context.out.Line(absl::StrCat("published ", response.message_id()));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------ call

absl::Status RunCall(Context& context, const Args& args) {
  auto built = BuildPublishRequest(args);
  if (!built.ok()) return built.status();
  auto raw = args.GetBool("raw");
  if (!raw.ok()) return raw.status();
  v1::CallRequest request;
  *request.mutable_message() = *std::move(built);
  auto stub = v1::MessagingService::NewStub(context.channel);
  auto call = context.UnaryContext();
  v1::CallResponse response;
  absl::Status status = FromGrpc(stub->Call(call.get(), request, &response));
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    // Not retried, and said so: the request may have been handled.
    return absl::DeadlineExceededError(absl::StrCat(
        "no reply within ",
        absl::FormatDuration(context.timeout.value_or(kDefaultUnaryTimeout)),
        " (", status.message(), "; the request may have been handled)"));
  }
  if (!status.ok()) return status;
  if (context.out.json()) {
    context.out.Json(response);
  } else if (*raw) {
    context.out.Raw(response.reply().payload());
  } else {
    context.out.Line(response.reply().payload());
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------- subscribe

// What subscribe and respond consume: their flags and help.
constexpr char kSubscriptionHelp[] =
    R"txt(  --exchange=EXCHANGE          bind to EXCHANGE instead of consuming QUEUE
  --exchange-type=TYPE         topic (default), direct, fanout or headers
  --binding-key=KEY            a binding key (repeatable)
  --group=GROUP                the shared durable queue of a consumer group
  --max-in-flight=N            most unacknowledged deliveries (AMQP prefetch;
                               default: the server's, or --max)
  --heartbeat-interval=DUR     server heartbeat on a quiet stream
Queue options (the queue is declared with them; FAILED_PRECONDITION, exit 4,
if it exists with other arguments):
  --queue-type=TYPE            classic, quorum or stream
  --dead-letter-exchange=X     where rejected or expired messages go
  --dead-letter-routing-key=K  their routing key there
  --message-ttl=DUR            how long a message may wait in the queue
  --max-length=N               the most messages the queue holds
  --max-length-bytes=N         the most bytes the queue keeps
  --max-priority=N             classic: a priority queue, priorities 1 to N
  --delivery-limit=N           quorum: at most N deliveries of a message,
                               then it is dead-lettered (or dropped)
  --single-active              classic or quorum with a name (QUEUE or
                               --group): one subscriber at a time receives
  --max-age=DUR                stream: how long it keeps messages
Streams (--queue-type=stream, with QUEUE or --group; every subscriber reads
the stream on its own, and acks keep the messages):
  --offset=WHERE               first, last, next (default), an offset N
                               (resume at the last printed stream_offset + 1),
                               or an RFC 3339 time (2026-01-02T15:04:05Z)
Headers exchanges (--exchange-type=headers):
  --match-header=NAME=VALUE    a header a message must carry (repeatable)
  --match-any                  one matching header is enough (default: all)
)txt";

std::vector<FlagSpec> SubscriptionFlags() {
  return {{"max"},
          {"exchange"},
          {"exchange-type"},
          {"binding-key", Kind::kRepeated},
          {"group"},
          {"max-in-flight"},
          {"heartbeat-interval"},
          {"queue-type"},
          {"dead-letter-exchange"},
          {"dead-letter-routing-key"},
          {"message-ttl"},
          {"max-length"},
          {"max-length-bytes"},
          {"max-priority"},
          {"delivery-limit"},
          {"single-active", Kind::kBool},
          {"max-age"},
          {"offset"},
          {"match-header", Kind::kRepeated},
          {"match-any", Kind::kBool}};
}

absl::StatusOr<v1::ExchangeType> ParseExchangeType(const std::string& text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "topic") return v1::EXCHANGE_TYPE_TOPIC;
  if (lower == "direct") return v1::EXCHANGE_TYPE_DIRECT;
  if (lower == "fanout") return v1::EXCHANGE_TYPE_FANOUT;
  if (lower == "headers") return v1::EXCHANGE_TYPE_HEADERS;
  return UsageError(absl::StrCat(
      "--exchange-type takes topic, direct, fanout or headers, not ", text));
}

// --offset: first, last, next, an offset, or an RFC 3339 time.
absl::StatusOr<v1::StreamOffset> ParseStreamOffset(const std::string& text) {
  v1::StreamOffset offset;
  const std::string lower = absl::AsciiStrToLower(text);
  uint64_t number = 0;
  absl::Time time;
  std::string error;
  if (lower == "first") {
    offset.set_first(true);
  } else if (lower == "last") {
    offset.set_last(true);
  } else if (lower == "next") {
    offset.set_next(true);
  } else if (absl::SimpleAtoi(text, &number)) {
    offset.set_offset(number);
  } else if (absl::ParseTime(absl::RFC3339_full, text, &time, &error)) {
    const int64_t seconds = absl::ToUnixSeconds(time);
    offset.mutable_timestamp()->set_seconds(seconds);
    offset.mutable_timestamp()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  } else {
    return UsageError(absl::StrCat(
        "--offset takes first, last, next, an offset or an RFC 3339 time "
        "(2026-01-02T15:04:05Z), not ",
        text));
  }
  return offset;
}

absl::StatusOr<v1::SubscribeStart> BuildStart(const Args& args) {
  v1::SubscribeStart start;
  if (auto exchange = args.Get("exchange")) {
    if (auto s = args.ExpectPositional(0, 0); !s.ok()) {
      return UsageError(
          "with --exchange the queue is named by --group (or is exclusive): "
          "give no QUEUE");
    }
    auto* topic = start.mutable_topic();
    topic->set_exchange(*exchange);
    if (auto type = args.Get("exchange-type")) {
      auto parsed = ParseExchangeType(*type);
      if (!parsed.ok()) return parsed.status();
      topic->set_exchange_type(*parsed);
    }
    for (const std::string& key : args.GetAll("binding-key")) {
      topic->add_binding_keys(key);
    }
    for (const std::string& header : args.GetAll("match-header")) {
      const size_t eq = header.find('=');
      if (eq == std::string::npos || eq == 0) {
        return UsageError(
            absl::StrCat("--match-header takes NAME=VALUE, not ", header));
      }
      (*topic->mutable_match_headers())[header.substr(0, eq)] =
          header.substr(eq + 1);
    }
    auto match_any = args.GetBool("match-any");
    if (!match_any.ok()) return match_any.status();
    topic->set_match_any(*match_any);
    start.set_group(args.Get("group").value_or(""));
  } else {
    if (auto s = args.ExpectPositional(1, 1); !s.ok()) return s;
    for (const char* topic_only : {"exchange-type", "binding-key", "group",
                                   "match-header", "match-any"}) {
      if (args.Has(topic_only)) {
        return UsageError(absl::StrCat("--", topic_only, " needs --exchange"));
      }
    }
    start.set_queue(args.positional()[0]);
  }

  // Queue options: only sent when one is given, since a queue subscribed
  // with options must match them (FAILED_PRECONDITION otherwise).
  v1::QueueOptions options;
  bool has_options = false;
  if (auto type = args.Get("queue-type")) {
    const std::string lower = absl::AsciiStrToLower(*type);
    if (lower == "classic") {
      options.set_queue_type(v1::QUEUE_TYPE_CLASSIC);
    } else if (lower == "quorum") {
      options.set_queue_type(v1::QUEUE_TYPE_QUORUM);
    } else if (lower == "stream") {
      options.set_queue_type(v1::QUEUE_TYPE_STREAM);
    } else {
      return UsageError(absl::StrCat(
          "--queue-type takes classic, quorum or stream, not ", *type));
    }
    has_options = true;
  }
  if (auto v = args.Get("dead-letter-exchange")) {
    options.set_dead_letter_exchange(*v);
    has_options = true;
  }
  if (auto v = args.Get("dead-letter-routing-key")) {
    options.set_dead_letter_routing_key(*v);
    has_options = true;
  }
  auto ttl = args.GetDuration("message-ttl");
  if (!ttl.ok()) return ttl.status();
  if (ttl->has_value()) {
    SetDuration(**ttl, options.mutable_message_ttl());
    has_options = true;
  }
  auto max_length = args.GetInt("max-length");
  if (!max_length.ok()) return max_length.status();
  if (max_length->has_value()) {
    if (**max_length < 0) return UsageError("--max-length must not be < 0");
    options.set_max_length(static_cast<uint64_t>(**max_length));
    has_options = true;
  }
  // The server checks the ranges and names the field; here only what
  // would not fit the message.
  auto unsigned_flag =
      [&](const char* name, uint64_t max,
          const std::function<void(uint64_t)>& set) -> absl::Status {
    auto value = args.GetInt(name);
    if (!value.ok()) return value.status();
    if (!value->has_value()) return absl::OkStatus();
    if (**value < 0 || static_cast<uint64_t>(**value) > max) {
      return UsageError(absl::StrCat("--", name, " is out of range"));
    }
    set(static_cast<uint64_t>(**value));
    has_options = true;
    return absl::OkStatus();
  };
  for (const absl::Status& status : {
           unsigned_flag("max-priority", UINT32_MAX,
                         [&](uint64_t v) {
                           options.set_max_priority(static_cast<uint32_t>(v));
                         }),
           unsigned_flag("delivery-limit", UINT32_MAX,
                         [&](uint64_t v) {
                           options.set_delivery_limit(static_cast<uint32_t>(v));
                         }),
           unsigned_flag("max-length-bytes", INT64_MAX,
                         [&](uint64_t v) { options.set_max_length_bytes(v); }),
       }) {
    if (!status.ok()) return status;
  }
  auto single_active = args.GetBool("single-active");
  if (!single_active.ok()) return single_active.status();
  if (*single_active) {
    options.set_single_active_consumer(true);
    has_options = true;
  }
  auto max_age = args.GetDuration("max-age");
  if (!max_age.ok()) return max_age.status();
  if (max_age->has_value()) {
    SetDuration(**max_age, options.mutable_max_age());
    has_options = true;
  }
  if (has_options) *start.mutable_queue_options() = options;
  if (auto offset = args.Get("offset")) {
    auto parsed = ParseStreamOffset(*offset);
    if (!parsed.ok()) return parsed.status();
    *start.mutable_offset() = *parsed;
  }

  auto max_in_flight = args.GetInt("max-in-flight");
  if (!max_in_flight.ok()) return max_in_flight.status();
  auto max = args.GetInt("max");
  if (!max.ok()) return max.status();
  if (max->has_value() && **max <= 0) return UsageError("--max must be > 0");
  if (max_in_flight->has_value()) {
    if (**max_in_flight < 0 || **max_in_flight > UINT32_MAX) {
      return UsageError("--max-in-flight is out of range");
    }
    start.set_max_in_flight(static_cast<uint32_t>(**max_in_flight));
  } else if (max->has_value()) {
    // No more in flight than will be printed: the rest would only come
    // back to the queue marked redelivered.
    start.set_max_in_flight(
        static_cast<uint32_t>(std::min<int64_t>(**max, 1000)));
  }
  auto heartbeat = args.GetDuration("heartbeat-interval");
  if (!heartbeat.ok()) return heartbeat.status();
  if (heartbeat->has_value()) {
    SetDuration(**heartbeat, start.mutable_heartbeat_interval());
  }
  return start;
}

std::string FormatDelivery(const v1::Delivery& d, bool stream_queue) {
  std::string text = absl::StrCat(Printable(d.payload()), "  (");
  if (!d.exchange().empty()) {
    absl::StrAppend(&text, "exchange=", d.exchange(), ", ");
  }
  absl::StrAppend(&text, "routing_key=", d.routing_key(),
                  ", message_id=", d.message_id());
  if (!d.content_type().empty()) {
    absl::StrAppend(&text, ", content_type=", d.content_type());
  }
  // Sorted, so that the same message always prints the same way.
  std::vector<std::pair<std::string, std::string>> headers(d.headers().begin(),
                                                           d.headers().end());
  std::sort(headers.begin(), headers.end());
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&text, ", header ", name, "=", Printable(value));
  }
  if (!d.reply_to().empty())
    absl::StrAppend(&text, ", reply_to=", d.reply_to());
  if (!d.correlation_id().empty()) {
    absl::StrAppend(&text, ", correlation_id=", d.correlation_id());
  }
  // Offset 0 is a stream's first message, so it is shown whenever the
  // queue is a stream.
  if (stream_queue)
    absl::StrAppend(&text, ", stream_offset=", d.stream_offset());
  if (d.redelivered()) absl::StrAppend(&text, ", redelivered");
  if (d.delivery_count() > 0) {
    absl::StrAppend(&text, ", delivery_count=", d.delivery_count());
  }
  absl::StrAppend(&text, ")");
  return text;
}

absl::Status RunSubscribe(Context& context, const Args& args) {
  auto start = BuildStart(args);
  if (!start.ok()) return start.status();
  const std::optional<int64_t> max = *args.GetInt("max");  // checked above
  const absl::Time deadline = context.StreamDeadline();

  auto stub = v1::MessagingService::NewStub(context.channel);
  grpc::ClientContext call;
  auto stream = stub->Subscribe(&call);
  v1::SubscribeRequest first;
  *first.mutable_start() = *start;
  // A failed write shows up as the end of the stream, with its status.
  stream->Write(first);
  StreamSession<v1::SubscribeResponse> session(&call, stream.get());

  // Half-closing makes the server settle the acks sent so far, requeue the
  // rest and end the stream with OK; cancelling instead could lose the last
  // acks (their messages would be delivered again).
  auto close = [&](absl::Status result) -> absl::Status {
    stream->WritesDone();
    if (!session.DrainUntilEnded(absl::Now() + absl::Seconds(10))) {
      (void)session.CancelAndFinish();
      return absl::UnavailableError(
          "the server did not close the subscription in time; the last "
          "deliveries may come again");
    }
    absl::Status finished = session.Finish();
    return finished.ok() ? result : finished;
  };

  int64_t received = 0;
  while (true) {
    auto event = session.Next(deadline);
    switch (event.kind) {
      case StreamSession<v1::SubscribeResponse>::Kind::kStop:
        return close(absl::OkStatus());
      case StreamSession<v1::SubscribeResponse>::Kind::kTimeout:
        return close(absl::DeadlineExceededError(
            absl::StrCat("--timeout passed after ", received, " deliveries")));
      case StreamSession<v1::SubscribeResponse>::Kind::kEnded:
        return session.FinishEnded("subscription");
      case StreamSession<v1::SubscribeResponse>::Kind::kMessage:
        break;
    }
    const v1::SubscribeResponse& response = event.message;
    if (response.has_heartbeat()) continue;
    if (response.has_subscribed()) {
      if (context.out.json()) {
        context.out.Json(response);
      } else {
        std::fprintf(stderr, "subscribed to queue %s\n",
                     response.subscribed().queue().c_str());
      }
      continue;
    }
    if (!response.has_delivery()) continue;
    // Printed first, acked after: a crash in between means the message comes
    // again (at least once), never that it is lost.
    if (context.out.json()) {
      context.out.Json(response);
    } else {
      context.out.Line(FormatDelivery(
          response.delivery(),
          start->queue_options().queue_type() == v1::QUEUE_TYPE_STREAM));
    }
    v1::SubscribeRequest ack;
    ack.mutable_ack()->add_delivery_ids(response.delivery().delivery_id());
    stream->Write(ack);
    ++received;
    if (max.has_value() && received >= *max) return close(absl::OkStatus());
  }
}

// --------------------------------------------------------------- respond

// What the responder's threads, the signal thread and the command's own
// thread share.
struct RespondState {
  absl::Mutex mu;
  int64_t replied ABSL_GUARDED_BY(mu) = 0;
  bool stop_requested ABSL_GUARDED_BY(mu) = false;
  absl::Status failed ABSL_GUARDED_BY(mu);
};

absl::Status RunRespond(Context& context, const Args& args) {
  const Args own = args.BeforeDashes();
  std::vector<std::string> command;
  if (args.positional_before_dashes().has_value()) {
    command.assign(args.positional().begin() + *args.positional_before_dashes(),
                   args.positional().end());
    if (command.empty()) return UsageError("give a COMMAND after --");
  }
  auto start = BuildStart(own);
  if (!start.ok()) return start.status();
  const std::optional<int64_t> max = *args.GetInt("max");  // checked above
  // A COMMAND that does not read its request closes the pipe: that must
  // not end this process.
  signal(SIGPIPE, SIG_IGN);

  RespondState state;
  client::ResponderOptions options;
  options.subscriber.start = *start;
  options.subscriber.max_in_flight =
      start->max_in_flight() > 0 ? start->max_in_flight() : 1;
  if (start->has_heartbeat_interval()) {
    options.subscriber.heartbeat_interval =
        absl::Seconds(start->heartbeat_interval().seconds()) +
        absl::Nanoseconds(start->heartbeat_interval().nanos());
  }
  options.subscriber.on_subscribed = [](const std::string& queue) {
    std::fprintf(stderr, "responding on queue %s\n", queue.c_str());
  };
  options.subscriber.on_stream_error = [&state](const absl::Status& status) {
    std::fprintf(stderr, "warren: subscription ended: %s\n",
                 status.ToString().c_str());
    if (client::StreamDecisionFor(status.code()) ==
        client::StreamDecision::kFatal) {
      absl::MutexLock lock(&state.mu);
      state.failed = status;
    }
  };
  options.on_dropped = [](const v1::Delivery& request,
                          const absl::Status& why) {
    std::fprintf(stderr, "warren: request %s acked without a reply: %s\n",
                 request.message_id().c_str(), why.ToString().c_str());
  };
  const Output& out = context.out;
  auto handler =
      [&](const v1::Delivery& request) -> absl::StatusOr<client::Reply> {
    {
      absl::MutexLock lock(&state.mu);
      // Beyond --max: back to the queue for another responder.
      if (max.has_value() && state.replied >= *max) {
        return absl::UnavailableError("--max replies sent");
      }
    }
    client::Reply reply;
    if (command.empty()) {
      reply.payload = request.payload();
      reply.content_type = request.content_type();
    } else {
      auto ran = RunWithInput(
          command,
          {absl::StrCat("WARREN_CORRELATION_ID=", request.correlation_id()),
           absl::StrCat("WARREN_MESSAGE_ID=", request.message_id()),
           absl::StrCat("WARREN_REPLY_TO=", request.reply_to())},
          request.payload());
      if (!ran.ok()) return ran.status();
      if (!WIFEXITED(ran->wait_status) || WEXITSTATUS(ran->wait_status) != 0) {
        std::fprintf(stderr,
                     "warren: %s failed for request %s: no reply, the "
                     "request goes back to the queue\n",
                     command[0].c_str(), request.message_id().c_str());
        return absl::InternalError("COMMAND failed");
      }
      reply.payload = std::move(ran->stdout_text);
    }
    absl::MutexLock lock(&state.mu);
    ++state.replied;
    if (out.json()) {
      out.Json(JsonObject()
                   .Set("messageId", request.message_id())
                   .Set("correlationId", request.correlation_id())
                   .Set("replyTo", request.reply_to())
                   .proto());
    } else {
      out.Line(absl::StrCat("replied to ", request.message_id(),
                            " (correlation_id=", request.correlation_id(),
                            ")"));
    }
    return reply;
  };
  auto responder = client::Responder::Start(context.channel, options, handler);
  if (!responder.ok()) return responder.status();

  StopSignals::Scope stop([&state] {
    absl::MutexLock lock(&state.mu);
    state.stop_requested = true;
  });
  const absl::Time deadline = context.StreamDeadline();
  absl::Status result;
  {
    absl::MutexLock lock(&state.mu);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
      return state.stop_requested || !state.failed.ok() ||
             (max.has_value() && state.replied >= *max);
    };
    if (!state.mu.AwaitWithDeadline(absl::Condition(&done), deadline)) {
      result = absl::DeadlineExceededError(
          absl::StrCat("--timeout passed after ", state.replied, " replies"));
    }
    if (!state.failed.ok()) result = state.failed;
  }
  // Running handlers finish, their replies are published and their
  // requests acked; the rest go back to the queue.
  (*responder)->Stop();
  return result;
}

}  // namespace

std::vector<Command> MessagingCommands() {
  return {
      {"publish", "publish one message (answers after the broker's confirm)",
       R"txt(Usage: warren publish EXCHANGE ROUTING_KEY [PAYLOAD|-] [options]
       warren publish --queue=QUEUE [PAYLOAD|-] [options]

Publishes one message and answers after the broker confirmed it. EXCHANGE ""
is the default exchange, which routes by queue name; --queue=Q is short for
publishing to Q through it. Without PAYLOAD (or with -) the payload is read
from stdin, byte for byte. Prints the message id.

Publishing to an exchange that does not exist fails with NOT_FOUND (exit 3);
a message that no queue receives fails with FAILED_PRECONDITION (exit 4)
unless --mandatory=false lets the broker drop it. The CLI chooses the message id (a UUID) unless --message-id gives
one; when the publish fails with UNAVAILABLE or DEADLINE_EXCEEDED (exit 5)
the message may still have been published: retry with the id named in the
error so that consumers can de-duplicate.

Options:
  --queue=QUEUE           publish to QUEUE through the default exchange
  --header=NAME=VALUE     an application header (repeatable)
  --content-type=TYPE     the MIME type of the payload, e.g. application/json
  --message-id=ID         the message id (default: a new UUID)
  --transient             not persisted by the broker (default: persistent)
  --priority=N            0-255 (effective on priority queues only)
  --ttl=DURATION          per-message time to live, e.g. 30s
  --mandatory=false       let the broker drop a message no queue receives
                          (default: true, such a message fails; false with
                          --delay)
  --delay=DURATION        deliver after this delay, e.g. 90s (rounded up by
                          the server to two significant digits: up to 10 %
                          late, never early; at most its --max_publish_delay,
                          24h by default); no --ttl or --mandatory with it
  --reply-to=ADDRESS      where the consumer should reply (AMQP reply_to)
  --correlation-id=ID     ties a reply to its request: a responder copies
                          the request's correlation id here

Output: "published ID"; with --json {"messageId": ID}.

Fences: the message is published only while the fence holds, checked just
before the publish (else exit 4, nothing published), and carries the
headers warren-fence (election:NAME or lock:NAME) and warren-fencing-token
(the token), which consumers can use to drop a deposed holder's messages:
)txt" + std::string(kFenceHelp),
       WithFenceFlags({{"queue"},
                       {"header", Kind::kRepeated},
                       {"content-type"},
                       {"message-id"},
                       {"transient", Kind::kBool},
                       {"priority"},
                       {"ttl"},
                       {"mandatory", Kind::kBool},
                       {"delay"},
                       {"reply-to"},
                       {"correlation-id"}}),
       RunPublish},
      {"call",
       "request/reply: publish a request, print the first reply",
       R"txt(Usage: warren call EXCHANGE ROUTING_KEY [PAYLOAD|-] [options]
       warren call --queue=QUEUE [PAYLOAD|-] [options]

Publishes a request with the server's reply address and a fresh correlation
id, waits for the first reply (a responder publishes it to the request's
reply_to with its correlation_id: `warren respond`, or any client's
responder helper) and prints its payload. Without PAYLOAD (or with -) the
request is read from stdin, byte for byte. Waits --timeout (default 10s):
no reply by then exits 5 (DEADLINE_EXCEEDED). A call is never retried: the
request may have been handled even when the reply did not come.

A request that no queue receives fails with FAILED_PRECONDITION (exit 4)
unless --mandatory=false; an exchange that does not exist with NOT_FOUND
(exit 3).

Options:
  --queue=QUEUE           send to QUEUE through the default exchange
  --header=NAME=VALUE     an application header of the request (repeatable)
  --content-type=TYPE     the MIME type of the request's payload
  --message-id=ID         the request's message id (default: a new UUID)
  --transient             not persisted by the broker (default: persistent)
  --priority=N            0-255 (effective on priority queues only)
  --ttl=DURATION          the request's time to live in its queue
  --mandatory=false       let the broker drop a request no queue receives
  --raw                   print the reply's payload byte for byte, without a
                          newline

Output: the reply's payload; with --json the CallResponse:
{"reply":{"payload" (base64),"headers","contentType","correlationId",...}}.
)txt",
       {{"queue"},
        {"header", Kind::kRepeated},
        {"content-type"},
        {"message-id"},
        {"transient", Kind::kBool},
        {"priority"},
        {"ttl"},
        {"mandatory", Kind::kBool},
        {"raw", Kind::kBool}},
       RunCall},
      {"subscribe", "consume a queue: print each delivery, then ack it",
       R"txt(Usage: warren subscribe QUEUE [options]
       warren subscribe --exchange=EXCHANGE [--binding-key=KEY...] [--group=GROUP] [options]

Consumes messages and prints each one, then acknowledges it (so a message is
printed at least once; one printed just before a crash may come again).
Runs until --max deliveries were printed, SIGINT/SIGTERM (exit 0), or
--timeout passed (exit 5); unacknowledged deliveries go back to the queue.

QUEUE is consumed as it is when it exists, and declared durable when it
does not. With --exchange, a queue is bound to the exchange (declared
durable if missing) with each --binding-key: the durable queue named by
--group, shared by every subscriber of the group (competing consumers), or
without --group an exclusive queue deleted when the command ends (fan-out).

Options:
  --max=N                      exit 0 after N deliveries (and ask the server
                               for at most N in flight)
)txt" + std::string(kSubscriptionHelp) +
           R"txt(
Output: one line per delivery: PAYLOAD  (routing_key=..., message_id=...,
header NAME=VALUE..., reply_to, correlation_id, stream_offset (streams),
redelivered, delivery_count); "subscribed to queue Q" goes to stderr. With
--json one line per response: {"subscribed":{"queue":...}} first, then
{"delivery":{"deliveryId","exchange","routingKey","payload" (base64),
"headers","contentType","messageId","redelivered",...}}.
)txt",
       SubscriptionFlags(), RunSubscribe},
      {"respond",
       "answer requests (warren call): run a command per request, or echo",
       R"txt(Usage: warren respond QUEUE [options] [-- COMMAND [ARGS...]]
       warren respond --exchange=EXCHANGE [--binding-key=KEY...] [--group=GROUP] [options] [-- COMMAND [ARGS...]]

A responder for request/reply: consumes requests like subscribe and answers
each one (that has a reply_to) by publishing the reply to its reply_to with
its correlation_id, then acks it. Without COMMAND the reply is the request's
payload (an echo); with COMMAND, COMMAND runs once per request with the
request's payload on stdin and $WARREN_CORRELATION_ID, $WARREN_MESSAGE_ID,
$WARREN_REPLY_TO set, and its stdout is the reply. A COMMAND that exits
non-zero sends no reply: the request goes back to the queue (nacked with
requeue). A request without reply_to is acked without a reply (noted on
stderr). Runs until --max replies, SIGINT/SIGTERM (exit 0) or --timeout
(exit 5). One request at a time unless --max-in-flight says more.

Options:
  --max=N                      exit 0 after N replies
)txt" + std::string(kSubscriptionHelp) +
           R"txt(
Output: "replied to MESSAGE_ID (correlation_id=ID)" per reply; with --json
{"messageId","correlationId","replyTo"}. "responding on queue Q" goes to
stderr.
)txt",
       SubscriptionFlags(), RunRespond},
  };
}

}  // namespace warren::cli
