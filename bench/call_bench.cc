// Request/reply round trips: MessagingService.Call against the RabbitMQ RPC
// pattern done directly with rabbitmq-c (direct reply-to). Both sides ask
// the same responder (a rabbitmq-c consumer of its own that answers each
// request at once), one request at a time, so that the figure is the round
// trip and what each side adds to it.
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/scenarios.h"

namespace warren::bench {
namespace {

constexpr char kDirectReplyTo[] = "amq.rabbitmq.reply-to";

amqp_bytes_t View(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

// Answers every request of `queue` with its own payload, to its reply_to,
// with its correlation id, until stopped.
class Responder {
 public:
  static absl::StatusOr<std::unique_ptr<Responder>> Start(
      const Options& o, const std::string& queue) {
    auto conn = AmqpConnection::Open(o.amqp_url, "bench-call-responder");
    if (!conn.ok()) return conn.status();
    if (absl::Status s = (*conn)->OpenChannel(1); !s.ok()) return s;
    if (absl::Status s = (*conn)->Consume(1, queue, 64); !s.ok()) return s;
    std::unique_ptr<Responder> r(new Responder(*std::move(conn)));
    r->thread_ = std::thread([p = r.get()] { p->Serve(); });
    return r;
  }
  ~Responder() {
    stop_.store(true);
    thread_.join();
  }

 private:
  explicit Responder(std::unique_ptr<AmqpConnection> conn)
      : conn_(std::move(conn)) {}

  void Serve() {
    amqp_connection_state_t c = conn_->get();
    while (!stop_.load()) {
      amqp_envelope_t envelope;
      timeval tv{0, 100000};
      amqp_maybe_release_buffers(c);
      amqp_rpc_reply_t r = amqp_consume_message(c, &envelope, &tv, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) continue;
      const amqp_basic_properties_t& in = envelope.message.properties;
      if (in._flags & AMQP_BASIC_REPLY_TO_FLAG) {
        amqp_basic_properties_t out;
        std::memset(&out, 0, sizeof(out));
        out._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
        out.correlation_id = in.correlation_id;
        amqp_basic_publish(c, 1, amqp_empty_bytes, in.reply_to, 0, 0, &out,
                           envelope.message.body);
      }
      amqp_basic_ack(c, 1, envelope.delivery_tag, 0);
      amqp_destroy_envelope(&envelope);
    }
  }

  std::unique_ptr<AmqpConnection> conn_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Outcome {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
};

// Runs `round_trip` back to back for warm-up + duration; only the round
// trips after the warm-up count.
template <typename RoundTrip>
absl::StatusOr<Outcome> Measure(const Options& o, CpuUsage* cpu,
                                RoundTrip round_trip) {
  const int64_t start = NowNs();
  const int64_t counted_from = start + absl::ToInt64Nanoseconds(o.warmup);
  const int64_t end = counted_from + absl::ToInt64Nanoseconds(o.duration);
  std::vector<double> ms;
  CpuMeter meter(o);
  bool metering = false;
  while (true) {
    const int64_t before = NowNs();
    if (before >= end) break;
    if (before >= counted_from && !metering) {
      meter.Start();
      metering = true;
    }
    if (absl::Status s = round_trip(); !s.ok()) {
      if (metering) *cpu = meter.Stop();
      return s;
    }
    if (before >= counted_from) ms.push_back(NsToMs(NowNs() - before));
  }
  if (metering) *cpu = meter.Stop();
  Outcome out;
  out.per_second =
      static_cast<double>(ms.size()) / absl::ToDoubleSeconds(o.duration);
  out.p50_ms = Quantile(ms, 0.50);
  out.p99_ms = Quantile(ms, 0.99);
  return out;
}

absl::StatusOr<Outcome> WarrenCalls(Env& env, const std::string& queue,
                                    CpuUsage* cpu) {
  const std::string payload = MakePayload(env.options.message_size);
  return Measure(env.options, cpu, [&]() -> absl::Status {
    v1::CallRequest request;
    request.mutable_message()->set_routing_key(queue);
    request.mutable_message()->set_payload(payload);
    v1::CallResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    const grpc::Status s = env.messaging->Call(&context, request, &response);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("Call: ", s.error_message()));
    }
    return absl::OkStatus();
  });
}

// What an application using rabbitmq-c for RPC does: consume direct
// reply-to without acks, publish each request on that channel with
// reply_to and a correlation id, read until the reply with that id.
absl::StatusOr<Outcome> DirectCalls(Env& env, const std::string& queue,
                                    CpuUsage* cpu) {
  auto conn = AmqpConnection::Open(env.options.amqp_url, "bench-call-direct");
  if (!conn.ok()) return conn.status();
  amqp_connection_state_t c = (*conn)->get();
  if (absl::Status s = (*conn)->OpenChannel(1); !s.ok()) return s;
  if (absl::Status s = (*conn)->ConfirmSelect(1); !s.ok()) return s;
  amqp_basic_consume(c, 1, amqp_cstring_bytes(kDirectReplyTo), amqp_empty_bytes,
                     0, /*no_ack=*/1, 0, amqp_empty_table);
  if (absl::Status s = (*conn)->Check("basic.consume"); !s.ok()) return s;
  const std::string payload = MakePayload(env.options.message_size);
  uint64_t next = 0;
  return Measure(env.options, cpu, [&]() -> absl::Status {
    const std::string id = absl::StrCat("direct-call-", ++next);
    amqp_basic_properties_t props;
    std::memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                   AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
    props.delivery_mode = 2;
    props.message_id = View(id);
    props.reply_to = amqp_cstring_bytes(kDirectReplyTo);
    props.correlation_id = View(id);
    if (amqp_basic_publish(c, 1, amqp_empty_bytes, View(queue), 0, 0, &props,
                           View(payload)) != AMQP_STATUS_OK) {
      return absl::UnavailableError("direct requester: connection lost");
    }
    // The reply and the request's confirm, in either order.
    bool replied = false, confirmed = false;
    while (!replied || !confirmed) {
      amqp_frame_t frame;
      timeval tv{10, 0};
      if (amqp_simple_wait_frame_noblock(c, &frame, &tv) != AMQP_STATUS_OK) {
        return absl::UnavailableError("direct requester: no reply");
      }
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        confirmed = true;
      } else if (frame.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
        amqp_message_t message;
        amqp_rpc_reply_t r = amqp_read_message(c, 1, &message, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
          return absl::UnavailableError("direct requester: broken reply");
        }
        const amqp_bytes_t& got = message.properties.correlation_id;
        replied = got.len == id.size() &&
                  std::memcmp(got.bytes, id.data(), id.size()) == 0;
        amqp_destroy_message(&message);
      }
    }
    amqp_maybe_release_buffers(c);
    return absl::OkStatus();
  });
}

}  // namespace

absl::Status RunCall(Env& env) {
  const Options& o = env.options;
  const std::string queue = absl::StrCat(o.prefix, ".call");
  if (absl::Status s = env.admin->DeclareQueue(1, queue); !s.ok()) return s;
  auto responder = Responder::Start(o, queue);
  if (!responder.ok()) return responder.status();
  const std::string what =
      absl::StrCat("one caller, ", o.message_size, " B request and reply");
  Row& rate = env.report.Add("call", absl::StrCat("round trips/s, ", what),
                             "calls/s", Better::kHigher);
  Row& p50 = env.report.Add("call", absl::StrCat("round trip p50, ", what),
                            "ms", Better::kLower);
  Row& p99 = env.report.Add("call", absl::StrCat("round trip p99, ", what),
                            "ms", Better::kLower);
  rate.notes.push_back(
      "Warren side: MessagingService.Call, one at a time; direct side: "
      "rabbitmq-c on direct reply-to, the request persistent and confirmed "
      "as warrend publishes it, waiting for both confirm and reply; the "
      "same rabbitmq-c responder answers both");
  for (int run = 0; run < o.runs; ++run) {
    for (int side = 0; side < 2; ++side) {
      const bool warren_side = (side == 0) == (run % 2 == 0);
      if (absl::Status s = env.admin->PurgeQueue(1, queue); !s.ok()) return s;
      CpuUsage cpu;
      auto r = warren_side ? WarrenCalls(env, queue, &cpu)
                           : DirectCalls(env, queue, &cpu);
      if (!r.ok()) {
        rate.notes.push_back(absl::StrCat(warren_side ? "Warren" : "direct",
                                          " run ", run + 1, ": ",
                                          r.status().message()));
        continue;
      }
      (warren_side ? rate.warren : rate.direct).push_back(r->per_second);
      (warren_side ? p50.warren : p50.direct).push_back(r->p50_ms);
      (warren_side ? p99.warren : p99.direct).push_back(r->p99_ms);
      (warren_side ? rate.warren_cpu : rate.direct_cpu).push_back(cpu);
    }
  }
  responder->reset();
  (void)env.admin->DeleteQueue(1, queue);
  return absl::OkStatus();
}

}  // namespace warren::bench
