// One timed consume of a pre-filled queue, through Warren's Subscribe and
// directly with rabbitmq-c (messaging_bench.cc): shared by the consume and
// stream scenarios so that both measure the same way.
#pragma once

#include <amqp.h>

#include <string>

#include "absl/status/statusor.h"
#include "bench/scenarios.h"

namespace warren::bench {

// Fills `queue` with `count` persistent messages (confirmed), directly.
absl::Status Prefill(Env& env, const std::string& queue, int count);

// Consumes options.consume_messages from `queue` and answers the rate from
// the tenth of them to the last. With `stream_options` the subscription
// declares the queue with them and reads from the first message.
absl::StatusOr<double> WarrenConsume(
    Env& env, const std::string& queue, CpuUsage* cpu,
    const v1::QueueOptions* stream_options = nullptr);
// The same with basic.consume; `arguments` are its consume arguments.
absl::StatusOr<double> DirectConsume(Env& env, const std::string& queue,
                                     CpuUsage* cpu,
                                     amqp_table_t arguments = amqp_empty_table);

// Adds one side's rate and CPU use to `row`, or a note saying why the run
// has none.
void RecordRun(Row& row, bool warren_side, int run,
               const absl::StatusOr<double>& rate, const CpuUsage& cpu);

}  // namespace warren::bench
