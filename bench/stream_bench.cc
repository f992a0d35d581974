// Stream consume: the same pre-filled backlog read from a RabbitMQ stream
// (from its first message) and from a classic queue, each through Warren's
// Subscribe and directly with rabbitmq-c (same prefetch and acks). The rows
// give Warren against direct per queue type; the findings give what a
// stream costs against a classic queue on each side.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/consume_runs.h"
#include "bench/scenarios.h"

namespace warren::bench {
namespace {

amqp_bytes_t View(const char* s) { return amqp_cstring_bytes(s); }

// A stream is never purged: each run gets a fresh one.
absl::Status DeclareStream(Env& env, const std::string& name) {
  (void)env.admin->DeleteQueue(1, name);
  amqp_table_entry_t type;
  type.key = View("x-queue-type");
  type.value.kind = AMQP_FIELD_KIND_UTF8;
  type.value.value.bytes = View("stream");
  amqp_table_t args{1, &type};
  amqp_queue_declare(env.admin->get(), 1,
                     amqp_bytes_t{name.size(), const_cast<char*>(name.data())},
                     0, /*durable=*/1, 0, 0, args);
  return env.admin->Check("queue.declare (stream)");
}

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / v.size();
}

}  // namespace

absl::Status RunStream(Env& env) {
  const Options& o = env.options;
  const std::string stream = absl::StrCat(o.prefix, ".stream");
  const std::string classic = absl::StrCat(o.prefix, ".stream-classic");
  if (absl::Status s = env.admin->DeclareQueue(1, classic); !s.ok()) return s;
  const std::string figure = absl::StrCat(
      "Subscribe P=", o.prefetch, ", pre-filled queue of ", o.consume_messages,
      " (direct: basic.consume, same prefetch and acks)");
  Row& stream_row = env.report.Add(
      "stream", absl::StrCat("stream from first: ", figure), "msg/s",
      Better::kHigher, Target::RatioAtLeast(0.9, ">= 0.9x direct"));
  Row& classic_row = env.report.Add(
      "stream", absl::StrCat("classic queue: ", figure), "msg/s",
      Better::kHigher, Target::RatioAtLeast(0.9, ">= 0.9x direct"));
  v1::QueueOptions stream_options;
  stream_options.set_queue_type(v1::QUEUE_TYPE_STREAM);
  amqp_table_entry_t from_first;
  from_first.key = View("x-stream-offset");
  from_first.value.kind = AMQP_FIELD_KIND_UTF8;
  from_first.value.value.bytes = View("first");
  const amqp_table_t first_args{1, &from_first};
  for (int run = 0; run < o.runs; ++run) {
    for (int side = 0; side < 2; ++side) {
      const bool warren_side = (side == 0) == (run % 2 == 0);
      for (const bool on_stream : {true, false}) {
        const std::string& queue = on_stream ? stream : classic;
        Row& row = on_stream ? stream_row : classic_row;
        absl::Status ready = on_stream ? DeclareStream(env, stream)
                                       : env.admin->PurgeQueue(1, classic);
        if (ready.ok()) ready = Prefill(env, queue, o.consume_messages);
        if (!ready.ok()) return ready;
        CpuUsage cpu;
        auto rate =
            warren_side
                ? WarrenConsume(env, queue, &cpu,
                                on_stream ? &stream_options : nullptr)
                : DirectConsume(env, queue, &cpu,
                                on_stream ? first_args : amqp_empty_table);
        RecordRun(row, warren_side, run, rate, cpu);
      }
    }
  }
  (void)env.admin->DeleteQueue(1, stream);
  (void)env.admin->DeleteQueue(1, classic);
  for (const bool warren_side : {true, false}) {
    const double on_stream =
        Mean(warren_side ? stream_row.warren : stream_row.direct);
    const double on_classic =
        Mean(warren_side ? classic_row.warren : classic_row.direct);
    if (on_stream > 0 && on_classic > 0) {
      env.report.Finding(absl::StrFormat(
          "stream: %s, a stream consumes at %.2fx the rate of a classic "
          "queue (%.0f vs %.0f msg/s)",
          warren_side ? "through Warren" : "direct", on_stream / on_classic,
          on_stream, on_classic));
    }
  }
  return absl::OkStatus();
}

}  // namespace warren::bench
