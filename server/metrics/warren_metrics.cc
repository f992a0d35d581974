#include "server/metrics/warren_metrics.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/client_metric.h"
#include "prometheus/metric_type.h"
#include "server/metrics/grpc_metrics.h"

namespace warren::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr zk::SessionState kSessionStates[] = {
    zk::SessionState::kConnecting, zk::SessionState::kConnected,
    zk::SessionState::kSuspended, zk::SessionState::kExpired,
    zk::SessionState::kClosed};

constexpr amqp::BrokerState kBrokerStates[] = {
    amqp::BrokerState::kConnecting, amqp::BrokerState::kConnected,
    amqp::BrokerState::kBlocked, amqp::BrokerState::kClosed};

const char* BrokerStateName(amqp::BrokerState state) {
  switch (state) {
    case amqp::BrokerState::kConnecting:
      return "connecting";
    case amqp::BrokerState::kConnected:
      return "connected";
    case amqp::BrokerState::kBlocked:
      return "blocked";
    case amqp::BrokerState::kClosed:
      return "closed";
  }
  return "unknown";
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

ClientMetric Sample(double value, MetricType type,
                    std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return metric;
}

// One family with a single unlabelled sample.
MetricFamily Single(std::string name, std::string help, MetricType type,
                    double value) {
  MetricFamily family = Family(std::move(name), std::move(help), type);
  family.metric.push_back(Sample(value, type));
  return family;
}

}  // namespace

std::vector<MetricFamily> WarrenCollector::Collect() const {
  const WarrenProbes& p = probes_;
  std::vector<MetricFamily> out;

  // Read each backend state once, so that the families agree.
  std::optional<zk::SessionState> zk_state;
  if (p.zk_state) zk_state = p.zk_state();
  size_t connections = 0;
  if (p.amqp_connections) connections = p.amqp_connections();
  std::vector<amqp::BrokerState> amqp_states;
  if (p.amqp_state) {
    for (size_t i = 0; i < connections; ++i) {
      amqp_states.push_back(p.amqp_state(i));
    }
  }

  if (zk_state.has_value() || !amqp_states.empty()) {
    MetricFamily up = Family(
        "warren_backend_up",
        "1 while the backend is usable: the ZooKeeper session is connected, "
        "the primary RabbitMQ connection is connected or blocked (what "
        "health reports).",
        MetricType::Gauge);
    if (zk_state.has_value()) {
      up.metric.push_back(
          Sample(*zk_state == zk::SessionState::kConnected ? 1 : 0,
                 MetricType::Gauge, {{"backend", "zookeeper"}}));
    }
    if (!amqp_states.empty()) {
      const bool reachable = amqp_states[0] == amqp::BrokerState::kConnected ||
                             amqp_states[0] == amqp::BrokerState::kBlocked;
      up.metric.push_back(Sample(reachable ? 1 : 0, MetricType::Gauge,
                                 {{"backend", "rabbitmq"}}));
    }
    out.push_back(std::move(up));
  }

  if (zk_state.has_value()) {
    MetricFamily state =
        Family("warren_zookeeper_session_state",
               "The ZooKeeper session's state: 1 for the current one.",
               MetricType::Gauge);
    for (zk::SessionState s : kSessionStates) {
      state.metric.push_back(Sample(s == *zk_state ? 1 : 0, MetricType::Gauge,
                                    {{"state", zk::SessionStateName(s)}}));
    }
    out.push_back(std::move(state));
  }
  if (p.zk_reconnects) {
    out.push_back(Single("warren_zookeeper_reconnects_total",
                         "Times the ZooKeeper session came back to connected "
                         "after the first connection (resumed or new).",
                         MetricType::Counter,
                         static_cast<double>(p.zk_reconnects())));
  }
  if (p.zk_session_expirations) {
    out.push_back(Single("warren_zookeeper_session_expirations_total",
                         "ZooKeeper sessions that expired (their ephemeral "
                         "nodes and watches were lost).",
                         MetricType::Counter,
                         static_cast<double>(p.zk_session_expirations())));
  }

  if (p.amqp_connections) {
    out.push_back(Single("warren_amqp_connections",
                         "RabbitMQ connections open (the pool opens more as "
                         "subscriptions fill their channels).",
                         MetricType::Gauge, static_cast<double>(connections)));
  }
  auto connection_label = [](size_t i) {
    return ClientMetric::Label{"connection", absl::StrCat(i + 1)};
  };
  if (!amqp_states.empty()) {
    MetricFamily state = Family(
        "warren_amqp_connection_state",
        "Each RabbitMQ connection's state: 1 for the current one. Connection "
        "1 publishes and is what health reports.",
        MetricType::Gauge);
    for (size_t i = 0; i < amqp_states.size(); ++i) {
      for (amqp::BrokerState s : kBrokerStates) {
        state.metric.push_back(
            Sample(s == amqp_states[i] ? 1 : 0, MetricType::Gauge,
                   {connection_label(i), {"state", BrokerStateName(s)}}));
      }
    }
    out.push_back(std::move(state));
  }
  if (p.amqp_reconnects && connections > 0) {
    MetricFamily reconnects =
        Family("warren_amqp_reconnects_total",
               "Times a RabbitMQ connection was lost and opened again.",
               MetricType::Counter);
    for (size_t i = 0; i < connections; ++i) {
      reconnects.metric.push_back(
          Sample(static_cast<double>(p.amqp_reconnects(i)), MetricType::Counter,
                 {connection_label(i)}));
    }
    out.push_back(std::move(reconnects));
  }
  if (p.amqp_subscriptions && connections > 0) {
    MetricFamily subscriptions =
        Family("warren_amqp_subscriptions",
               "Open subscriptions (Subscribe streams, one channel each) per "
               "RabbitMQ connection.",
               MetricType::Gauge);
    for (size_t i = 0; i < connections; ++i) {
      subscriptions.metric.push_back(
          Sample(static_cast<double>(p.amqp_subscriptions(i)),
                 MetricType::Gauge, {connection_label(i)}));
    }
    out.push_back(std::move(subscriptions));
  }
  if (p.amqp_unconfirmed_publishes) {
    out.push_back(
        Single("warren_amqp_unconfirmed_publishes",
               "Messages published to RabbitMQ and not yet confirmed by it.",
               MetricType::Gauge,
               static_cast<double>(p.amqp_unconfirmed_publishes())));
  }

  if (p.unacked_deliveries) {
    out.push_back(Single("warren_subscribe_unacked_deliveries",
                         "Deliveries sent on Subscribe streams and not yet "
                         "acked or nacked by their clients.",
                         MetricType::Gauge,
                         static_cast<double>(p.unacked_deliveries())));
  }
  if (p.election_leaders) {
    out.push_back(Single("warren_election_leaders",
                         "Elections in which a client of this server leads "
                         "now.",
                         MetricType::Gauge,
                         static_cast<double>(p.election_leaders())));
  }
  if (p.locks_held) {
    out.push_back(Single("warren_locks_held",
                         "Lock streams of this server that hold their lock "
                         "now.",
                         MetricType::Gauge,
                         static_cast<double>(p.locks_held())));
  }
  if (p.lock_waiters) {
    out.push_back(Single("warren_lock_waiters",
                         "Lock streams of this server that wait for their "
                         "lock.",
                         MetricType::Gauge,
                         static_cast<double>(p.lock_waiters())));
  }
  if (p.config_watches) {
    out.push_back(Single("warren_config_watches", "Open WatchConfig streams.",
                         MetricType::Gauge,
                         static_cast<double>(p.config_watches())));
  }
  if (p.held_keys) {
    out.push_back(Single("warren_held_keys",
                         "Open HoldKey streams (keys held by clients of this "
                         "server).",
                         MetricType::Gauge,
                         static_cast<double>(p.held_keys())));
  }
  if (p.config_cache_hits) {
    out.push_back(Single("warren_config_cache_hits_total",
                         "GetConfig reads answered from the watch cache.",
                         MetricType::Counter,
                         static_cast<double>(p.config_cache_hits())));
  }
  if (p.listener_accepting) {
    out.push_back(Single("warren_listener_accepting",
                         "1 while the gRPC listener can accept connections; "
                         "0 while the process is out of file descriptors "
                         "(new connections are closed at once).",
                         MetricType::Gauge, p.listener_accepting() ? 1 : 0));
  }
  if (p.connections) {
    out.push_back(Single("warren_connections",
                         "Client connections open now (as of the listener's "
                         "last check, at most a second old).",
                         MetricType::Gauge,
                         static_cast<double>(p.connections())));
  }
  if (p.connections_refused) {
    MetricFamily refused =
        Family("warren_connections_refused_total",
               "Client connections closed as soon as accepted: reason "
               "max_connections, max_connections_per_peer or no_descriptors.",
               MetricType::Counter);
    for (const char* reason :
         {"max_connections", "max_connections_per_peer", "no_descriptors"}) {
      refused.metric.push_back(
          Sample(static_cast<double>(p.connections_refused(reason)),
                 MetricType::Counter, {{"reason", reason}}));
    }
    out.push_back(std::move(refused));
  }
  if (p.health_watches) {
    out.push_back(
        Single("warren_health_watches", "Open grpc.health.v1 Watch streams.",
               MetricType::Gauge, static_cast<double>(p.health_watches())));
  }
  if (p.fence_rejections) {
    MetricFamily rejections =
        Family("warren_fence_rejections_total",
               "Fenced config writes and publishes refused because their "
               "fence no longer held: where config or publish.",
               MetricType::Counter);
    for (const char* where : {"config", "publish"}) {
      rejections.metric.push_back(
          Sample(static_cast<double>(p.fence_rejections(where)),
                 MetricType::Counter, {{"where", where}}));
    }
    out.push_back(std::move(rejections));
  }
  if (p.calls) {
    MetricFamily calls =
        Family("warren_calls_total",
               "MessagingService.Call calls answered, by gRPC status code.",
               MetricType::Counter);
    for (int code = 0; code <= 16; ++code) {
      const uint64_t answered = p.calls(code);
      // OK always, so that a rate has a series from the start.
      if (answered == 0 && code != 0) continue;
      calls.metric.push_back(Sample(
          static_cast<double>(answered), MetricType::Counter,
          {{"code", GrpcCodeName(static_cast<grpc::StatusCode>(code))}}));
    }
    out.push_back(std::move(calls));
  }
  if (p.calls_in_flight) {
    out.push_back(Single("warren_calls_in_flight",
                         "MessagingService.Call calls waiting for their reply.",
                         MetricType::Gauge,
                         static_cast<double>(p.calls_in_flight())));
  }
  if (p.call_replies_dropped) {
    out.push_back(Single("warren_call_replies_dropped_total",
                         "Replies that arrived for no waiting Call (after its "
                         "deadline, a second reply, or an unknown id).",
                         MetricType::Counter,
                         static_cast<double>(p.call_replies_dropped())));
  }
  if (p.config_cache_misses) {
    out.push_back(Single("warren_config_cache_misses_total",
                         "GetConfig reads (not consistent ones) that no "
                         "watch covered: they went to ZooKeeper.",
                         MetricType::Counter,
                         static_cast<double>(p.config_cache_misses())));
  }
  if (p.tls_certificate_expiry) {
    if (std::optional<absl::Time> expiry = p.tls_certificate_expiry()) {
      out.push_back(Single(
          "warren_tls_certificate_expiry_timestamp_seconds",
          "When the server certificate (tls_cert_file) expires, in seconds "
          "since the Unix epoch: alert on it minus time() being small.",
          MetricType::Gauge,
          absl::ToDoubleSeconds(*expiry - absl::UnixEpoch())));
    }
  }
  return out;
}

const prometheus::Histogram::BucketBoundaries& ConfirmSecondsBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
  return *buckets;
}

prometheus::Histogram& AddPublishConfirmHistogram(
    prometheus::Registry& registry) {
  return prometheus::BuildHistogram()
      .Name("warren_amqp_publish_confirm_seconds")
      .Help(
          "Time from basic.publish to the broker's basic.ack (publisher "
          "confirm).")
      .Register(registry)
      .Add({}, ConfirmSecondsBuckets());
}

}  // namespace warren::metrics
