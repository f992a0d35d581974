// End-to-end latency at a fixed rate: publish (persistent, confirmed) ->
// broker -> consumer, measured from each message's scheduled send time
// (carried in its first 8 bytes) to its arrival at the consumer, so a
// stalled sender shows up as latency instead of being hidden.
#include <cstring>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/scenarios.h"

namespace warren::bench {
namespace {

struct Samples {
  std::mutex mu;
  std::vector<double> ms;
  int64_t from_ns = 0;  // only messages scheduled after the warm-up count
  std::atomic<int64_t> received{0};
  void Add(int64_t stamp, int64_t now) {
    received.fetch_add(1);
    if (stamp < from_ns) return;
    std::lock_guard<std::mutex> lock(mu);
    ms.push_back(NsToMs(now - stamp));
  }
};

struct Percentiles {
  double p50 = 0, p99 = 0, p999 = 0;
  size_t count = 0;
};

Percentiles Summarize(Samples& s) {
  std::lock_guard<std::mutex> lock(s.mu);
  Percentiles p;
  p.count = s.ms.size();
  p.p50 = Quantile(s.ms, 0.50);
  p.p99 = Quantile(s.ms, 0.99);
  p.p999 = Quantile(s.ms, 0.999);
  return p;
}

// Calls `send(stamp)` at the configured rate for warm-up + duration.
// Answers how many it sent.
template <typename Send>
int64_t Pace(const Options& o, int64_t start, Send send) {
  const int64_t period = 1'000'000'000LL / std::max(1, o.rate);
  const int64_t end =
      start + absl::ToInt64Nanoseconds(o.warmup + o.latency_duration);
  int64_t sent = 0;
  for (int64_t at = start; at < end; at += period) {
    const int64_t wait = at - NowNs();
    if (wait > 0) Sleep(absl::Nanoseconds(wait));
    send(at);
    ++sent;
  }
  return sent;
}

bool WaitReceived(Samples& s, int64_t sent, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (s.received.load() < sent) {
    if (absl::Now() > deadline) return false;
    Sleep(absl::Milliseconds(5));
  }
  return true;
}

absl::StatusOr<Percentiles> WarrenLatency(Env& env, const std::string& queue,
                                          CpuUsage* cpu) {
  const Options& o = env.options;
  Samples samples;
  SubscribeClient consumer(env.messaging.get(), queue, o.prefetch, 1,
                           [&samples](const v1::Delivery& d, int64_t now) {
                             samples.Add(PayloadStamp(d.payload()), now);
                           });
  consumer.Start();
  if (!consumer.WaitSubscribed(absl::Seconds(10))) {
    return absl::UnavailableError(
        absl::StrCat("Subscribe failed: ",
                     consumer.WaitDone(absl::Seconds(5)).error_message()));
  }
  PublishStreamClient publisher(env.messaging.get(), queue, "", /*window=*/0);
  publisher.Start();
  std::string payload = MakePayload(o.message_size);
  const int64_t start = NowNs() + 10'000'000;
  samples.from_ns = start + absl::ToInt64Nanoseconds(o.warmup);
  CpuMeter meter(o);
  meter.Start();
  const int64_t sent = Pace(o, start, [&](int64_t at) {
    StampPayload(payload, at);
    publisher.Send(payload);
  });
  const bool all = WaitReceived(samples, sent, absl::Seconds(30));
  *cpu = meter.Stop();
  publisher.Stop();
  publisher.WaitDone(absl::Seconds(30));
  consumer.Stop();
  consumer.WaitDone(absl::Seconds(30));
  if (!all) {
    return absl::DeadlineExceededError(absl::StrCat(
        "received ", samples.received.load(), " of ", sent, " messages"));
  }
  return Summarize(samples);
}

absl::StatusOr<Percentiles> DirectLatency(Env& env, const std::string& queue,
                                          CpuUsage* cpu) {
  const Options& o = env.options;
  auto pub = AmqpConnection::Open(o.amqp_url, "bench-direct-latency-pub");
  if (!pub.ok()) return pub.status();
  auto sub = AmqpConnection::Open(o.amqp_url, "bench-direct-latency-sub");
  if (!sub.ok()) return sub.status();
  for (auto* c : {pub->get(), sub->get()}) {
    if (absl::Status s = c->OpenChannel(1); !s.ok()) return s;
  }
  if (absl::Status s = (*pub)->ConfirmSelect(1); !s.ok()) return s;
  if (absl::Status s = (*sub)->Consume(1, queue, o.prefetch); !s.ok()) {
    return s;
  }
  Samples samples;
  std::atomic<bool> stop{false};
  // The consumer: its own connection and thread, acking every delivery.
  std::thread consumer([&] {
    amqp_connection_state_t c = (*sub)->get();
    while (!stop.load()) {
      amqp_envelope_t envelope;
      timeval tv{0, 100000};
      amqp_maybe_release_buffers(c);
      amqp_rpc_reply_t r = amqp_consume_message(c, &envelope, &tv, 0);
      if (r.reply_type != AMQP_RESPONSE_NORMAL) continue;
      samples.Add(
          PayloadStamp(envelope.message.body.bytes, envelope.message.body.len),
          NowNs());
      amqp_basic_ack(c, 1, envelope.delivery_tag, 0);
      amqp_destroy_envelope(&envelope);
    }
  });
  // The publisher: sends on schedule and reads confirms while it waits.
  amqp_connection_state_t c = (*pub)->get();
  std::string payload = MakePayload(o.message_size);
  std::string message_id;
  uint64_t tag = 0, confirmed = 0;
  absl::Status failure;
  auto read_confirms = [&](int64_t until) {
    while (failure.ok()) {
      const int64_t left = until - NowNs();
      if (left <= 0 && !amqp_data_in_buffer(c) &&
          amqp_frames_enqueued(c) == 0) {
        return;
      }
      timeval tv{0,
                 static_cast<suseconds_t>(std::max<int64_t>(0, left) / 1000)};
      amqp_frame_t frame;
      const int rc = amqp_simple_wait_frame_noblock(c, &frame, &tv);
      if (rc == AMQP_STATUS_TIMEOUT) return;
      if (rc != AMQP_STATUS_OK) {
        failure = absl::UnavailableError("direct publisher: connection lost");
        return;
      }
      if (frame.frame_type == AMQP_FRAME_METHOD &&
          frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        const auto* m =
            static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        confirmed = m->multiple ? m->delivery_tag : confirmed + 1;
      }
    }
  };
  const int64_t start = NowNs() + 10'000'000;
  samples.from_ns = start + absl::ToInt64Nanoseconds(o.warmup);
  CpuMeter meter(o);
  meter.Start();
  const int64_t sent = Pace(o, start, [&](int64_t at) {
    // Confirms that came in while we waited for this send time.
    read_confirms(at);
    StampPayload(payload, at);
    amqp_basic_properties_t props;
    std::memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                   AMQP_BASIC_TIMESTAMP_FLAG;
    props.delivery_mode = 2;
    message_id = absl::StrCat("direct-", ++tag);
    props.message_id = amqp_bytes_t{message_id.size(), message_id.data()};
    props.timestamp = static_cast<uint64_t>(absl::ToUnixSeconds(absl::Now()));
    amqp_basic_publish(
        c, 1, amqp_empty_bytes,
        amqp_bytes_t{queue.size(), const_cast<char*>(queue.data())}, 0, 0,
        &props, amqp_bytes_t{payload.size(), payload.data()});
  });
  const int64_t confirm_deadline = NowNs() + 30'000'000'000LL;
  while (confirmed < tag && failure.ok() && NowNs() < confirm_deadline) {
    read_confirms(NowNs() + 100'000'000);
  }
  const bool all = WaitReceived(samples, sent, absl::Seconds(30));
  *cpu = meter.Stop();
  stop.store(true);
  consumer.join();
  if (!failure.ok()) return failure;
  if (!all) {
    return absl::DeadlineExceededError(absl::StrCat(
        "received ", samples.received.load(), " of ", sent, " messages"));
  }
  return Summarize(samples);
}

}  // namespace

absl::Status RunLatency(Env& env) {
  const Options& o = env.options;
  const std::string queue = absl::StrCat(o.prefix, ".latency");
  if (absl::Status s = env.admin->DeclareQueue(1, queue); !s.ok()) return s;
  const std::string what =
      absl::StrCat("at ", o.rate, " msg/s, ", o.message_size,
                   " B persistent+confirmed, publish -> consumer");
  Row& p50 = env.report.Add("latency", absl::StrCat("end-to-end p50 ", what),
                            "ms", Better::kLower);
  Row& p99 = env.report.Add("latency", absl::StrCat("end-to-end p99 ", what),
                            "ms", Better::kLower,
                            Target::AddedAtMost(0.5, "added p99 <= 0.5 ms"));
  Row& p999 = env.report.Add("latency", absl::StrCat("end-to-end p99.9 ", what),
                             "ms", Better::kLower);
  p50.notes.push_back(
      "Warren side: one PublishStream (one message at a time, as scheduled) "
      "and one Subscribe acking each delivery; direct side: a confirm-mode "
      "publisher connection and a consumer connection, same prefetch");
  for (int run = 0; run < o.runs; ++run) {
    for (int side = 0; side < 2; ++side) {
      const bool warren_side = (side == 0) == (run % 2 == 0);
      if (absl::Status s = env.admin->PurgeQueue(1, queue); !s.ok()) return s;
      CpuUsage cpu;
      auto r = warren_side ? WarrenLatency(env, queue, &cpu)
                           : DirectLatency(env, queue, &cpu);
      if (!r.ok()) {
        p50.notes.push_back(absl::StrCat(warren_side ? "Warren" : "direct",
                                         " run ", run + 1, ": ",
                                         r.status().message()));
        continue;
      }
      (warren_side ? p50.warren : p50.direct).push_back(r->p50);
      (warren_side ? p99.warren : p99.direct).push_back(r->p99);
      (warren_side ? p999.warren : p999.direct).push_back(r->p999);
      (warren_side ? p50.warren_cpu : p50.direct_cpu).push_back(cpu);
    }
  }
  (void)env.admin->DeleteQueue(1, queue);
  return absl::OkStatus();
}

}  // namespace warren::bench
