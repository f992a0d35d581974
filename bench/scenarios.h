// The scenario families of warren-bench. Each runs its figures on both
// sides (through warrend, and directly against RabbitMQ or ZooKeeper),
// alternating which side goes first from run to run, and adds rows to the
// report. A scenario that cannot run returns an error; the others go on.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "bench/amqp_direct.h"
#include "bench/bench_common.h"
#include "bench/warren_clients.h"

namespace warren::bench {

struct Env {
  const Options& options;
  Report& report;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::MessagingService::Stub> messaging;
  std::unique_ptr<v1::ConfigService::Stub> config;
  std::unique_ptr<v1::ElectionService::Stub> election;
  // Queue administration on channel 1 (declare, purge, depth).
  std::unique_ptr<AmqpConnection> admin;

  // Measures a counter's rate over options.duration after options.warmup;
  // `cpu` gets the CPU used meanwhile.
  double Rate(const std::atomic<int64_t>& counter, CpuUsage* cpu) const;
  // Channels of their own, for scenarios with more streams than one
  // connection may carry (warrend's max_concurrent_streams).
  std::vector<std::shared_ptr<grpc::Channel>> Channels(int streams) const;
};

absl::Status RunPublish(Env& env);
absl::Status RunConsume(Env& env);
absl::Status RunLatency(Env& env);
absl::Status RunConfig(Env& env);
absl::Status RunFanout(Env& env);
absl::Status RunFailover(Env& env);
absl::Status RunIdle(Env& env);
absl::Status RunLock(Env& env);
absl::Status RunStream(Env& env);
absl::Status RunCall(Env& env);
absl::Status RunDelay(Env& env);

}  // namespace warren::bench
