// The delay scenario: what a delayed publish (PublishRequest.delay, through
// a delay queue of the broker) costs against the same publish without a
// delay, both through Warren. Unlike the other scenarios the "direct"
// column holds Warren's plain publish: the ratio is the delay queue's price.
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/scenarios.h"

namespace warren::bench {
namespace {

// Long enough that nothing leaves the delay queue during a run: the
// throughput figure is the publish into it, not the dead-lettering.
constexpr absl::Duration kParkedDelay = absl::Seconds(60);
// The lateness figure's delay, and its pacing.
constexpr absl::Duration kShortDelay = absl::Milliseconds(200);
constexpr int kLatenessMessages = 100;
constexpr absl::Duration kLatenessSpacing = absl::Milliseconds(10);

v1::PublishRequest Request(const std::string& queue, const std::string& payload,
                           absl::Duration delay) {
  v1::PublishRequest r;
  r.set_routing_key(queue);
  r.set_payload(payload);
  if (delay > absl::ZeroDuration()) {
    r.mutable_delay()->set_seconds(absl::ToInt64Seconds(delay));
    r.mutable_delay()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(delay) % 1000000000));
  }
  return r;
}

// `callers` unary Publish calls in flight; msg/s confirmed.
double Throughput(Env& env, const std::string& queue, absl::Duration delay,
                  CpuUsage* cpu, Row& row) {
  const Options& o = env.options;
  UnaryPublisher publisher(env.messaging.get(),
                           Request(queue, MakePayload(o.message_size), delay),
                           o.callers);
  publisher.Start();
  const double rate = env.Rate(publisher.confirmed, cpu);
  publisher.Stop();
  publisher.WaitDone(absl::Seconds(60));
  if (publisher.failed.load() > 0) {
    row.notes.push_back(absl::StrCat(
        publisher.failed.load(), " publishes ",
        delay > absl::ZeroDuration() ? "with" : "without", " delay failed"));
  }
  return rate;
}

// Median ms from when each message was due (sent + delay) to its delivery.
absl::StatusOr<double> Lateness(Env& env, const std::string& queue,
                                absl::Duration delay) {
  std::mutex mu;
  std::vector<double> late_ms;
  SubscribeClient sub(
      env.messaging.get(), queue, 256, 1,
      [&](const v1::Delivery& d, int64_t now_ns) {
        int64_t sent_ns = 0;
        auto it = d.headers().find("bench-sent-ns");
        if (it == d.headers().end() ||
            !absl::SimpleAtoi(it->second, &sent_ns)) {
          return;
        }
        std::lock_guard<std::mutex> lock(mu);
        late_ms.push_back(
            NsToMs(now_ns - sent_ns - absl::ToInt64Nanoseconds(delay)));
      });
  sub.Start();
  if (!sub.WaitSubscribed(absl::Seconds(10))) {
    sub.Cancel();
    sub.WaitDone(absl::Seconds(10));
    return absl::UnavailableError("the lateness subscriber did not start");
  }
  for (int i = 0; i < kLatenessMessages; ++i) {
    v1::PublishRequest r = Request(queue, "late?", delay);
    (*r.mutable_headers())["bench-sent-ns"] = absl::StrCat(NowNs());
    grpc::ClientContext context;
    v1::PublishResponse response;
    (void)env.messaging->Publish(&context, r, &response);
    Sleep(kLatenessSpacing);
  }
  const absl::Time end = absl::Now() + delay * 1.1 + absl::Seconds(10);
  while (sub.received.load() < kLatenessMessages && absl::Now() < end) {
    Sleep(absl::Milliseconds(10));
  }
  sub.Stop();
  sub.WaitDone(absl::Seconds(10));
  std::lock_guard<std::mutex> lock(mu);
  if (late_ms.size() < static_cast<size_t>(kLatenessMessages)) {
    return absl::DeadlineExceededError(
        absl::StrCat(late_ms.size(), " of ", kLatenessMessages, " arrived"));
  }
  return Median(late_ms);
}

}  // namespace

absl::Status RunDelay(Env& env) {
  const Options& o = env.options;
  const std::string queue = absl::StrCat(o.prefix, ".delay");
  if (absl::Status s = env.admin->DeclareQueue(1, queue); !s.ok()) return s;
  // Where the parked messages wait (server/messaging/delay_queues.h).
  const std::string parked =
      absl::StrCat("warren.delay.", absl::ToInt64Milliseconds(kParkedDelay),
                   "ms.amq.default");

  Row& rate = env.report.Add(
      "delay",
      absl::StrCat("unary Publish with delay (into a delay queue), N=",
                   o.callers, ", ", o.message_size,
                   " B (direct column: the same publish without delay, "
                   "through Warren)"),
      "msg/s", Better::kHigher);
  Row& cost = env.report.Add(
      "delay",
      "publisher time per message = N / rate (direct column: without delay)",
      "us", Better::kLower);
  Row& late = env.report.Add(
      "delay",
      absl::StrCat("median arrival after due: delay ",
                   absl::FormatDuration(kShortDelay),
                   " (direct column: plain publish, arrival after sent)"),
      "ms", Better::kLower);
  rate.notes.push_back(
      "delayed: each message is one more enqueue (the delay queue) and one "
      "dead-lettering later; the first publish of a bucket also declares its "
      "queue and exchange");
  late.notes.push_back(
      "the delay is rounded up to two significant digits (never early, at "
      "most 10 % late); 200 ms is exact, so this is the broker's own "
      "lateness in expiring and dead-lettering");

  for (int run = 0; run < o.runs; ++run) {
    for (int side = 0; side < 2; ++side) {
      const bool delayed = (side == 0) == (run % 2 == 0);
      if (absl::Status s = env.admin->PurgeQueue(1, queue); !s.ok()) return s;
      CpuUsage cpu;
      const double r =
          Throughput(env, queue, delayed ? kParkedDelay : absl::ZeroDuration(),
                     &cpu, rate);
      (delayed ? rate.warren : rate.direct).push_back(r);
      (delayed ? rate.warren_cpu : rate.direct_cpu).push_back(cpu);
      if (r > 0) {
        (delayed ? cost.warren : cost.direct).push_back(o.callers / r * 1e6);
      }
      if (delayed) (void)env.admin->PurgeQueue(1, parked);
      (void)env.admin->PurgeQueue(1, queue);
      auto l =
          Lateness(env, queue, delayed ? kShortDelay : absl::ZeroDuration());
      if (!l.ok()) {
        late.notes.push_back(absl::StrCat(delayed ? "delayed" : "plain",
                                          " run ", run + 1, ": ",
                                          l.status().message()));
        continue;
      }
      (delayed ? late.warren : late.direct).push_back(*l);
    }
  }
  (void)env.admin->PurgeQueue(1, parked);
  (void)env.admin->DeleteQueue(1, queue);
  return absl::OkStatus();
}

}  // namespace warren::bench
