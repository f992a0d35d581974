// Warren's own metrics (prefix warren_): the state of the backends and of
// what the services hold open. They are read at scrape time from accessors
// the components already have (WarrenProbes), so that the components stay
// free of Prometheus and cost nothing between scrapes:
//
//   warren_backend_up{backend="zookeeper"|"rabbitmq"}      gauge 1/0
//   warren_zookeeper_session_state{state}                  gauge 1/0 per state
//   warren_zookeeper_reconnects_total                      counter
//   warren_zookeeper_session_expirations_total             counter
//   warren_amqp_connections                                gauge
//   warren_amqp_connection_state{connection,state}         gauge 1/0 per state
//   warren_amqp_reconnects_total{connection}               counter
//   warren_amqp_subscriptions{connection}                  gauge
//   warren_amqp_unconfirmed_publishes                      gauge
//   warren_amqp_publish_confirm_seconds                    histogram (*)
//   warren_subscribe_unacked_deliveries                    gauge
//   warren_election_leaders                                gauge
//   warren_locks_held, warren_lock_waiters                 gauges
//   warren_config_watches                                  gauge
//   warren_config_cache_hits_total, ..._misses_total       counters
//   warren_held_keys                                       gauge
//   warren_listener_accepting                              gauge 1/0
//   warren_connections                                     gauge
//   warren_connections_refused_total{reason}               counter
//   warren_health_watches                                  gauge
//   warren_fence_rejections_total{where="config"|"publish"} counter
//   warren_calls_total{code}                               counter
//   warren_calls_in_flight                                 gauge
//   warren_call_replies_dropped_total                      counter
//
// connection is "1" for the pool's primary connection (the one that
// publishes and that health reports), "2", ... for the others. (*) The one
// metric observed as it happens: AddPublishConfirmHistogram puts it in a
// registry, and AmqpOptions::on_confirm feeds it from the AMQP I/O thread.
//
// Threading: Collect may run on any thread (the HTTP server's), so every
// probe must be thread-safe and must not block for long.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "prometheus/collectable.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "server/amqp/amqp_client.h"
#include "server/zk/zk_client.h"

namespace warren::metrics {

// Where the collector reads its values. An empty probe leaves its metric
// out, so that one collector can be registered per stage of start-up (the
// backends first, the services once they exist).
struct WarrenProbes {
  std::function<zk::SessionState()> zk_state;
  std::function<uint64_t()> zk_reconnects;
  std::function<uint64_t()> zk_session_expirations;

  // The AMQP connections: how many are open, and by index (0 = primary).
  std::function<size_t()> amqp_connections;
  std::function<amqp::BrokerState(size_t)> amqp_state;
  std::function<uint64_t(size_t)> amqp_reconnects;
  std::function<size_t(size_t)> amqp_subscriptions;
  std::function<size_t()> amqp_unconfirmed_publishes;

  std::function<int64_t()> unacked_deliveries;
  std::function<size_t()> election_leaders;
  // Lock streams of this server that hold their lock, that wait for it.
  std::function<size_t()> locks_held;
  std::function<size_t()> lock_waiters;
  std::function<size_t()> config_watches;
  std::function<uint64_t()> config_cache_hits;
  std::function<size_t()> held_keys;
  std::function<uint64_t()> config_cache_misses;

  // With TLS: when the served certificate expires (nullopt until read).
  std::function<std::optional<absl::Time>()> tls_certificate_expiry;
  // The gRPC listener (server/daemon/listener.h) and the health service.
  std::function<bool()> listener_accepting;
  std::function<size_t()> connections;
  // By reason: max_connections, max_connections_per_peer, no_descriptors.
  std::function<uint64_t(const std::string&)> connections_refused;
  std::function<size_t()> health_watches;
  // Writes and publishes refused because their fence did not hold, by
  // where: "config" or "publish".
  std::function<uint64_t(const std::string&)> fence_rejections;
  // MessagingService.Call: answered calls by gRPC status code (0 to 16),
  // calls waiting for their reply, replies that found no waiting call.
  std::function<uint64_t(int)> calls;
  std::function<int64_t()> calls_in_flight;
  std::function<uint64_t()> call_replies_dropped;
};

class WarrenCollector final : public prometheus::Collectable {
 public:
  explicit WarrenCollector(WarrenProbes probes) : probes_(std::move(probes)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const WarrenProbes probes_;
};

// Buckets of warren_amqp_publish_confirm_seconds: 0.5 ms to 10 s.
const prometheus::Histogram::BucketBoundaries& ConfirmSecondsBuckets();

// Adds warren_amqp_publish_confirm_seconds to `registry` and answers it.
prometheus::Histogram& AddPublishConfirmHistogram(
    prometheus::Registry& registry);

}  // namespace warren::metrics
