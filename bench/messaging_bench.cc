// Publish and consume throughput: Warren's PublishStream, unary Publish and
// Subscribe against rabbitmq-c with pipelined confirms and a prefetching,
// acking consumer.
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/consume_runs.h"
#include "bench/scenarios.h"

namespace warren::bench {

double Env::Rate(const std::atomic<int64_t>& counter, CpuUsage* cpu) const {
  Sleep(options.warmup);
  CpuMeter meter(options);
  meter.Start();
  const int64_t c0 = counter.load();
  const int64_t t0 = NowNs();
  Sleep(options.duration);
  const int64_t c1 = counter.load();
  const int64_t t1 = NowNs();
  *cpu = meter.Stop();
  return static_cast<double>(c1 - c0) / ((t1 - t0) / 1e9);
}

std::vector<std::shared_ptr<grpc::Channel>> Env::Channels(int streams) const {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  const int n = std::max(1, (streams + options.streams_per_channel - 1) /
                                options.streams_per_channel);
  for (int i = 0; i < n; ++i) {
    channels.push_back(MakeChannel(options.warren, 1000 + i));
  }
  return channels;
}

namespace {

// Warren: one PublishStream keeping `window` messages unconfirmed.
double WarrenStream(Env& env, const std::string& queue, CpuUsage* cpu,
                    Row& row) {
  const Options& o = env.options;
  PublishStreamClient client(env.messaging.get(), queue,
                             MakePayload(o.message_size), o.window);
  client.Start();
  const double rate = env.Rate(client.confirmed, cpu);
  client.Stop();
  grpc::Status s = client.WaitDone(absl::Seconds(60));
  if (!s.ok() || client.failed.load() > 0) {
    row.notes.push_back(
        absl::StrCat("PublishStream ended with ", s.error_message(), "; ",
                     client.failed.load(), " publishes failed"));
  }
  return rate;
}

// Warren: `callers` unary Publish calls always in flight.
double WarrenUnary(Env& env, const std::string& queue, CpuUsage* cpu,
                   Row& row) {
  const Options& o = env.options;
  UnaryPublisher publisher(env.messaging.get(), queue,
                           MakePayload(o.message_size), o.callers);
  publisher.Start();
  const double rate = env.Rate(publisher.confirmed, cpu);
  publisher.Stop();
  publisher.WaitDone(absl::Seconds(60));
  if (publisher.failed.load() > 0) {
    row.notes.push_back(
        absl::StrCat(publisher.failed.load(), " unary publishes failed"));
  }
  return rate;
}

// Direct: rabbitmq-c, one connection, confirms pipelined with `window`.
absl::StatusOr<double> DirectPipelined(Env& env, const std::string& queue,
                                       int window, CpuUsage* cpu) {
  const Options& o = env.options;
  auto conn = AmqpConnection::Open(o.amqp_url, "bench-direct-publisher");
  if (!conn.ok()) return conn.status();
  if (absl::Status s = (*conn)->OpenChannel(1); !s.ok()) return s;
  if (absl::Status s = (*conn)->ConfirmSelect(1); !s.ok()) return s;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> confirmed{0};
  absl::Status result;
  std::thread publisher([&] {
    PipelinedPublish p;
    p.queue = queue;
    p.payload = MakePayload(o.message_size);
    p.window = window;
    p.stop = &stop;
    p.confirmed = &confirmed;
    result = PublishPipelined(**conn, 1, p);
  });
  const double rate = env.Rate(confirmed, cpu);
  stop.store(true);
  publisher.join();
  if (!result.ok()) return result;
  return rate;
}

absl::Status Purge(Env& env, const std::string& queue) {
  return env.admin->PurgeQueue(1, queue);
}

}  // namespace

absl::Status RunPublish(Env& env) {
  const Options& o = env.options;
  const std::string queue = absl::StrCat(o.prefix, ".publish");
  if (absl::Status s = env.admin->DeclareQueue(1, queue); !s.ok()) return s;

  Row& stream = env.report.Add(
      "publish",
      absl::StrCat("PublishStream W=", o.window, ", ", o.message_size,
                   " B persistent+confirmed (direct: pipelined confirms, "
                   "window ",
                   o.window, ")"),
      "msg/s", Better::kHigher, Target::RatioAtLeast(0.9, ">= 0.9x direct"));
  Row& unary = env.report.Add(
      "publish",
      absl::StrCat("unary Publish, N=", o.callers,
                   " concurrent callers (direct: pipelined confirms, window ",
                   o.callers, ")"),
      "msg/s", Better::kHigher,
      Target::RatioAtLeast(0.7, ">= 0.7x direct pipelined"));

  for (int run = 0; run < o.runs; ++run) {
    for (int side = 0; side < 2; ++side) {
      const bool warren_side = (side == 0) == (run % 2 == 0);
      CpuUsage cpu;
      if (absl::Status s = Purge(env, queue); !s.ok()) return s;
      if (warren_side) {
        stream.warren.push_back(WarrenStream(env, queue, &cpu, stream));
        stream.warren_cpu.push_back(cpu);
        if (absl::Status s = Purge(env, queue); !s.ok()) return s;
        unary.warren.push_back(WarrenUnary(env, queue, &cpu, unary));
        unary.warren_cpu.push_back(cpu);
      } else {
        auto r = DirectPipelined(env, queue, o.window, &cpu);
        if (!r.ok()) return r.status();
        stream.direct.push_back(*r);
        stream.direct_cpu.push_back(cpu);
        if (absl::Status s = Purge(env, queue); !s.ok()) return s;
        r = DirectPipelined(env, queue, o.callers, &cpu);
        if (!r.ok()) return r.status();
        unary.direct.push_back(*r);
        unary.direct_cpu.push_back(cpu);
      }
    }
  }
  (void)Purge(env, queue);
  (void)env.admin->DeleteQueue(1, queue);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Consume.

// Fills `queue` with `count` persistent messages (confirmed), directly.
absl::Status Prefill(Env& env, const std::string& queue, int count) {
  const Options& o = env.options;
  auto conn = AmqpConnection::Open(o.amqp_url, "bench-prefill");
  if (!conn.ok()) return conn.status();
  if (absl::Status s = (*conn)->OpenChannel(1); !s.ok()) return s;
  if (absl::Status s = (*conn)->ConfirmSelect(1); !s.ok()) return s;
  PipelinedPublish p;
  p.queue = queue;
  p.payload = MakePayload(o.message_size);
  p.window = 1000;
  p.limit = count;
  return PublishPipelined(**conn, 1, p);
}

namespace {

// Times from the `warm`-th to the last of `total` deliveries.
struct ConsumeClock {
  int warm = 0;
  int total = 0;
  std::atomic<int> count{0};
  std::atomic<int64_t> warm_ns{0};
  std::atomic<int64_t> end_ns{0};
  absl::Notification finished;
  void Tick(int64_t now) {
    const int n = count.fetch_add(1) + 1;
    if (n == warm) warm_ns.store(now);
    if (n == total) {
      end_ns.store(now);
      finished.Notify();
    }
  }
  double Rate() const {
    return (total - warm) / ((end_ns.load() - warm_ns.load()) / 1e9);
  }
};

}  // namespace

absl::StatusOr<double> WarrenConsume(Env& env, const std::string& queue,
                                     CpuUsage* cpu,
                                     const v1::QueueOptions* stream_options) {
  const Options& o = env.options;
  ConsumeClock clock;
  clock.total = o.consume_messages;
  clock.warm = std::max(1, o.consume_messages / 10);
  CpuMeter meter(o);
  meter.Start();
  SubscribeClient client(
      env.messaging.get(), queue, o.prefetch, o.ack_batch,
      [&clock](const v1::Delivery&, int64_t now) { clock.Tick(now); });
  if (stream_options != nullptr) {
    v1::StreamOffset first;
    first.set_first(true);
    client.set_queue_options(*stream_options, first);
  }
  client.Start();
  const bool finished =
      clock.finished.WaitForNotificationWithTimeout(absl::Seconds(300));
  *cpu = meter.Stop();
  client.Stop();
  grpc::Status s = client.WaitDone(absl::Seconds(30));
  if (!finished) {
    return absl::DeadlineExceededError(
        absl::StrCat("Subscribe received ", clock.count.load(), " of ",
                     clock.total, " (stream: ", s.error_message(), ")"));
  }
  return clock.Rate();
}

absl::StatusOr<double> DirectConsume(Env& env, const std::string& queue,
                                     CpuUsage* cpu, amqp_table_t arguments) {
  const Options& o = env.options;
  auto conn = AmqpConnection::Open(o.amqp_url, "bench-direct-consumer");
  if (!conn.ok()) return conn.status();
  amqp_connection_state_t c = (*conn)->get();
  if (absl::Status s = (*conn)->OpenChannel(1); !s.ok()) return s;
  ConsumeClock clock;
  clock.total = o.consume_messages;
  clock.warm = std::max(1, o.consume_messages / 10);
  CpuMeter meter(o);
  meter.Start();
  if (absl::Status s = (*conn)->Consume(1, queue, o.prefetch, arguments);
      !s.ok()) {
    return s;
  }
  int unacked = 0;
  const int64_t give_up = NowNs() + 300'000'000'000LL;
  while (clock.count.load() < clock.total && NowNs() < give_up) {
    amqp_envelope_t envelope;
    timeval tv{1, 0};
    amqp_maybe_release_buffers(c);
    amqp_rpc_reply_t r = amqp_consume_message(c, &envelope, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
          r.library_error == AMQP_STATUS_TIMEOUT) {
        continue;
      }
      return absl::UnavailableError("direct consumer: consume failed");
    }
    clock.Tick(NowNs());
    if (++unacked >= o.ack_batch) {
      // One ack per delivery, or one `multiple` ack per batch.
      amqp_basic_ack(c, 1, envelope.delivery_tag, o.ack_batch > 1 ? 1 : 0);
      unacked = 0;
    }
    amqp_destroy_envelope(&envelope);
  }
  *cpu = meter.Stop();
  if (clock.count.load() < clock.total) {
    return absl::DeadlineExceededError("direct consumer did not finish");
  }
  return clock.Rate();
}

void RecordRun(Row& row, bool warren_side, int run,
               const absl::StatusOr<double>& rate, const CpuUsage& cpu) {
  if (!rate.ok()) {
    row.notes.push_back(absl::StrCat(warren_side ? "Warren" : "direct", " run ",
                                     run + 1, ": ", rate.status().message()));
    return;
  }
  (warren_side ? row.warren : row.direct).push_back(*rate);
  (warren_side ? row.warren_cpu : row.direct_cpu).push_back(cpu);
}

absl::Status RunConsume(Env& env) {
  const Options& o = env.options;
  const std::string queue = absl::StrCat(o.prefix, ".consume");
  if (absl::Status s = env.admin->DeclareQueue(1, queue); !s.ok()) return s;
  Row& row = env.report.Add(
      "consume",
      absl::StrCat("Subscribe P=", o.prefetch, ", ack every ",
                   o.ack_batch == 1 ? std::string("delivery")
                                    : absl::StrCat(o.ack_batch, " deliveries"),
                   ", pre-filled queue of ", o.consume_messages,
                   " (direct: basic.consume, same prefetch and acks)"),
      "msg/s", Better::kHigher, Target::RatioAtLeast(0.9, ">= 0.9x direct"));
  row.notes.push_back(absl::StrCat(
      "the rate runs from the ", std::max(1, o.consume_messages / 10),
      "th delivery (warm-up) to the last; the queue is filled directly with "
      "persistent messages before each run, untimed"));
  for (int run = 0; run < o.runs; ++run) {
    for (int side = 0; side < 2; ++side) {
      const bool warren_side = (side == 0) == (run % 2 == 0);
      if (absl::Status s = Purge(env, queue); !s.ok()) return s;
      if (absl::Status s = Prefill(env, queue, o.consume_messages); !s.ok()) {
        return s;
      }
      CpuUsage cpu;
      auto rate = warren_side ? WarrenConsume(env, queue, &cpu)
                              : DirectConsume(env, queue, &cpu);
      RecordRun(row, warren_side, run, rate, cpu);
    }
  }
  (void)Purge(env, queue);
  (void)env.admin->DeleteQueue(1, queue);
  return absl::OkStatus();
}

}  // namespace warren::bench
