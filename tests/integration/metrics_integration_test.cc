// Metrics end to end: the real warrend with --metrics_listen, the real
// backends, calls through the generated stubs, and /metrics scraped over
// plain HTTP the way Prometheus does. Counts are compared with a scrape
// taken before the calls, so nothing depends on what start-up did.
#include <signal.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "tests/util/http_get.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;
using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// GET /metrics; the body, or "" when the request failed.
std::string Scrape(int port) {
  const std::string response = HttpGet(port, "/metrics");
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(response, "HTTP/1.1 200") || body == std::string::npos)
    return "";
  return response.substr(body + 4);
}

// Parses the text exposition format (label values here have no escapes).
std::vector<Sample> Parse(const std::string& text) {
  std::vector<Sample> samples;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    absl::string_view series = line.substr(0, space);
    if (!absl::SimpleAtod(line.substr(space + 1), &s.value)) continue;
    const size_t brace = series.find('{');
    s.name = std::string(series.substr(0, brace));
    if (brace != absl::string_view::npos) {
      absl::string_view labels = series.substr(brace + 1);
      absl::ConsumeSuffix(&labels, "}");
      for (absl::string_view pair :
           absl::StrSplit(labels, "\",", absl::SkipEmpty())) {
        std::pair<std::string, std::string> kv =
            absl::StrSplit(pair, absl::MaxSplits('=', 1));
        kv.second = std::string(
            absl::StripSuffix(absl::StripPrefix(kv.second, "\""), "\""));
        s.labels[kv.first] = kv.second;
      }
    }
    samples.push_back(std::move(s));
  }
  return samples;
}

// The value of the one sample of `name` whose labels include `labels`.
std::optional<double> Find(const std::vector<Sample>& samples,
                           const std::string& name, const Labels& labels) {
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      match = match && it != s.labels.end() && it->second == v;
    }
    if (match) return s.value;
  }
  return std::nullopt;
}

Labels Method(const std::string& type, const std::string& service,
              const std::string& method) {
  return {{"grpc_type", type},
          {"grpc_service", "warren.v1." + service},
          {"grpc_method", method}};
}

Labels Code(Labels labels, const std::string& code) {
  labels["grpc_code"] = code;
  return labels;
}

std::string Name(const std::string& base) {
  return absl::StrCat(base, "-", getpid());
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics_port_ = FreePort();
    auto started = WarrendProcess::Start(
        {absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port_)});
    ASSERT_TRUE(started.ok()) << started.status();
    warrend_ = *std::move(started);
    baseline_ = Parse(Scrape(metrics_port_));
    ASSERT_FALSE(baseline_.empty())
        << "no metrics at 127.0.0.1:" << metrics_port_;
  }

  std::vector<Sample> Now() { return Parse(Scrape(metrics_port_)); }

  // How much a counter grew since the baseline.
  double Delta(const std::string& name, const Labels& labels) {
    return Find(Now(), name, labels).value_or(-1) -
           Find(baseline_, name, labels).value_or(0);
  }

  double Value(const std::string& name, const Labels& labels = {}) {
    return Find(Now(), name, labels).value_or(-1);
  }

  // For what the server records after the client saw its side of the call
  // end (a cancellation, an ack that needs no answer).
  bool Eventually(const std::string& name, const Labels& labels, double want,
                  bool delta = false) {
    return WaitFor(
        [&] {
          return (delta ? Delta(name, labels) : Value(name, labels)) == want;
        },
        absl::Seconds(20));
  }

  int metrics_port_ = 0;
  std::unique_ptr<WarrendProcess> warrend_;
  std::vector<Sample> baseline_;
};

TEST_F(MetricsTest, BackendGaugesTellTheTruth) {
  EXPECT_EQ(Find(baseline_, "warren_backend_up", {{"backend", "zookeeper"}}),
            1);
  EXPECT_EQ(Find(baseline_, "warren_backend_up", {{"backend", "rabbitmq"}}), 1);
  EXPECT_EQ(Find(baseline_, "warren_zookeeper_session_state",
                 {{"state", "connected"}}),
            1);
  EXPECT_EQ(Find(baseline_, "warren_zookeeper_session_state",
                 {{"state", "suspended"}}),
            0);
  EXPECT_EQ(Find(baseline_, "warren_zookeeper_reconnects_total", {}), 0);
  EXPECT_EQ(Find(baseline_, "warren_zookeeper_session_expirations_total", {}),
            0);
  EXPECT_EQ(Find(baseline_, "warren_amqp_connections", {}), 1);
  EXPECT_EQ(Find(baseline_, "warren_amqp_connection_state",
                 {{"connection", "1"}, {"state", "connected"}}),
            1);
  EXPECT_EQ(
      Find(baseline_, "warren_amqp_reconnects_total", {{"connection", "1"}}),
      0);
  EXPECT_EQ(Find(baseline_, "warren_amqp_unconfirmed_publishes", {}), 0);
  EXPECT_EQ(Find(baseline_, "warren_config_watches", {}), 0);
  EXPECT_EQ(Find(baseline_, "warren_election_leaders", {}), 0);
  EXPECT_EQ(Find(baseline_, "warren_subscribe_unacked_deliveries", {}), 0);
  // Every method is there from the start, at zero.
  EXPECT_EQ(Find(baseline_, "grpc_server_handled_total",
                 Code(Method("bidi_stream", "ElectionService", "Elect"),
                      "Unavailable")),
            0);
}

TEST_F(MetricsTest, ConfigCallsAreCountedWithTheirCodes) {
  auto stub = v1::ConfigService::NewStub(warrend_->channel());
  const Labels get = Method("unary", "ConfigService", "GetConfig");

  v1::GetConfigRequest missing;
  missing.set_key("metrics/missing");
  v1::GetConfigResponse got;
  ASSERT_EQ(stub->GetConfig(CallContext().get(), missing, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delta("grpc_server_started_total", get), 1);
  EXPECT_EQ(Delta("grpc_server_handled_total", Code(get, "NotFound")), 1);
  EXPECT_EQ(Delta("grpc_server_handled_total", Code(get, "OK")), 0);
  EXPECT_EQ(Delta("grpc_server_msg_received_total", get), 1);
  EXPECT_EQ(Delta("grpc_server_msg_sent_total", get), 0);
  EXPECT_EQ(Delta("grpc_server_handling_seconds_count", get), 1);
  EXPECT_EQ(Delta("warren_config_cache_misses_total", {}), 1);

  v1::PutConfigRequest put;
  put.set_key("metrics/k");
  put.set_value("v");
  v1::PutConfigResponse written;
  ASSERT_TRUE(stub->PutConfig(CallContext().get(), put, &written).ok());
  EXPECT_EQ(Delta("grpc_server_handled_total",
                  Code(Method("unary", "ConfigService", "PutConfig"), "OK")),
            1);

  // A watch: the gauge counts it, and reads of its key come from the cache.
  auto watch_context = CallContext();
  v1::WatchConfigRequest watch;
  watch.set_key("metrics/k");
  auto reader = stub->WatchConfig(watch_context.get(), watch);
  v1::WatchConfigResponse initial;
  ASSERT_TRUE(reader->Read(&initial));
  EXPECT_EQ(Value("warren_config_watches"), 1);
  v1::GetConfigRequest cached;
  cached.set_key("metrics/k");
  ASSERT_TRUE(stub->GetConfig(CallContext().get(), cached, &got).ok());
  EXPECT_EQ(Delta("warren_config_cache_hits_total", {}), 1);
  EXPECT_EQ(Delta("grpc_server_handled_total", Code(get, "OK")), 1);

  watch_context->TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const Labels watch_labels =
      Method("server_stream", "ConfigService", "WatchConfig");
  EXPECT_TRUE(Eventually("grpc_server_handled_total",
                         Code(watch_labels, "Canceled"), 1, true));
  EXPECT_TRUE(Eventually("warren_config_watches", {}, 0));
  EXPECT_EQ(Delta("grpc_server_msg_sent_total", watch_labels), 1);
}

TEST_F(MetricsTest, MessagingCallsAndGauges) {
  auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  const std::string queue = Name("metrics-queue");
  ASSERT_TRUE((*admin)->DeclareQueue(queue).ok());
  auto stub = v1::MessagingService::NewStub(warrend_->channel());
  const Labels publish = Method("unary", "MessagingService", "Publish");

  v1::PublishRequest request;
  request.set_routing_key(queue);
  request.set_payload("counted");
  v1::PublishResponse response;
  ASSERT_TRUE(stub->Publish(CallContext().get(), request, &response).ok());
  v1::PublishRequest nowhere = request;
  nowhere.set_exchange(Name("metrics-no-such-exchange"));
  ASSERT_EQ(stub->Publish(CallContext().get(), nowhere, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delta("grpc_server_handled_total", Code(publish, "OK")), 1);
  EXPECT_EQ(Delta("grpc_server_handled_total", Code(publish, "NotFound")), 1);
  // The confirm of the first publish (the second never reached a queue).
  EXPECT_EQ(Delta("warren_amqp_publish_confirm_seconds_count", {}), 1);
  EXPECT_TRUE(Eventually("warren_amqp_unconfirmed_publishes", {}, 0));

  // A subscription: one channel, one delivery not acked yet.
  const Labels subscribe =
      Method("bidi_stream", "MessagingService", "Subscribe");
  {
    v1::SubscribeStart start;
    start.set_queue(queue);
    start.set_max_in_flight(10);
    TestSubscriber subscriber(*stub, start);
    ASSERT_EQ(subscriber.WaitSubscribed(), queue);
    ASSERT_TRUE(subscriber.WaitDeliveries(1));
    EXPECT_EQ(Value("warren_amqp_subscriptions", {{"connection", "1"}}), 1);
    EXPECT_EQ(Value("warren_subscribe_unacked_deliveries"), 1);
    EXPECT_EQ(Delta("grpc_server_msg_sent_total", subscribe), 2);
    ASSERT_TRUE(subscriber.Ack({subscriber.deliveries()[0].delivery_id()}));
    EXPECT_TRUE(Eventually("warren_subscribe_unacked_deliveries", {}, 0));
    EXPECT_EQ(Delta("grpc_server_msg_received_total", subscribe), 2);
    subscriber.Cancel();
    grpc::Status ended;
    ASSERT_TRUE(subscriber.WaitEnded(&ended));
  }
  EXPECT_TRUE(Eventually("grpc_server_handled_total",
                         Code(subscribe, "Canceled"), 1, true));
  EXPECT_TRUE(
      Eventually("warren_amqp_subscriptions", {{"connection", "1"}}, 0));
  EXPECT_EQ(Delta("grpc_server_started_total", subscribe), 1);
  ASSERT_TRUE((*admin)->DeleteQueue(queue).ok());
}

TEST_F(MetricsTest, ElectionAndHealthAreCounted) {
  auto stub = v1::ElectionService::NewStub(warrend_->channel());
  v1::Campaign campaign;
  campaign.set_election(Name("metrics-election"));
  campaign.set_candidate_id("a");
  campaign.set_value("a:8080");
  {
    TestCandidate candidate(*stub, campaign);
    ASSERT_GE(candidate.WaitElected(), 0);
    EXPECT_EQ(Value("warren_election_leaders"), 1);
    candidate.Cancel();
    grpc::Status ended;
    ASSERT_TRUE(candidate.WaitEnded(&ended));
  }
  EXPECT_TRUE(Eventually("warren_election_leaders", {}, 0));

  auto health = grpc::health::v1::Health::NewStub(warrend_->channel());
  grpc::health::v1::HealthCheckResponse status;
  ASSERT_TRUE(health
                  ->Check(CallContext().get(),
                          grpc::health::v1::HealthCheckRequest(), &status)
                  .ok());
  EXPECT_EQ(Delta("grpc_server_handled_total",
                  {{"grpc_type", "unary"},
                   {"grpc_service", "grpc.health.v1.Health"},
                   {"grpc_method", "Check"},
                   {"grpc_code", "OK"}}),
            1);
}

// The exposition format Prometheus parses, as a user would see it.
TEST_F(MetricsTest, ServesTheTextFormat) {
  const std::string text = Scrape(metrics_port_);
  EXPECT_THAT(text, HasSubstr("# TYPE grpc_server_handled_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE grpc_server_handling_seconds histogram"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket{"));
  EXPECT_THAT(text, HasSubstr("le=\"0.005\""));
  EXPECT_THAT(text, HasSubstr("# TYPE warren_amqp_publish_confirm_seconds "
                              "histogram"));
}

// ZooKeeper faults on a private server: the gauges follow the session, and
// the counters count the reconnect and the expiry.
double ScrapeValue(int port, const std::string& name, const Labels& labels) {
  return Find(Parse(Scrape(port)), name, labels).value_or(-1);
}

TEST(MetricsFaultTest, ZooKeeperRestartIsSeenAndCounted) {
  auto zk = ZooKeeperServer::Start();
  ASSERT_TRUE(zk.ok()) << zk.status();
  const int port = FreePort();
  auto warrend =
      WarrendProcess::Start({absl::StrCat("--metrics_listen=127.0.0.1:", port),
                             "--zk_session_timeout=20s"},
                            (*zk)->connect());
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  ASSERT_EQ(ScrapeValue(port, "warren_backend_up", {{"backend", "zookeeper"}}),
            1);

  (*zk)->Kill9();
  EXPECT_TRUE(WaitFor(
      [&] {
        return ScrapeValue(port, "warren_zookeeper_session_state",
                           {{"state", "suspended"}}) == 1 &&
               ScrapeValue(port, "warren_backend_up",
                           {{"backend", "zookeeper"}}) == 0;
      },
      absl::Seconds(30)));
  ASSERT_TRUE((*zk)->Restart().ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        return ScrapeValue(port, "warren_zookeeper_session_state",
                           {{"state", "connected"}}) == 1;
      },
      absl::Seconds(60)))
      << (*warrend)->Log();
  EXPECT_EQ(ScrapeValue(port, "warren_zookeeper_reconnects_total", {}), 1);
  EXPECT_EQ(ScrapeValue(port, "warren_zookeeper_session_expirations_total", {}),
            0);
}

TEST(MetricsFaultTest, ZooKeeperSessionExpiryIsCounted) {
  auto zk = ZooKeeperServer::Start();
  ASSERT_TRUE(zk.ok()) << zk.status();
  const int port = FreePort();
  // 2s: the shortest session the test server grants (see zk_fault_test).
  auto warrend =
      WarrendProcess::Start({absl::StrCat("--metrics_listen=127.0.0.1:", port),
                             "--zk_session_timeout=2s"},
                            (*zk)->connect());
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  // Frozen well past the session timeout: ZooKeeper expires the session.
  (*warrend)->Signal(SIGSTOP);
  // Letting wall-clock time pass is the point here, not a stand-in for a
  // condition.
  absl::SleepFor(absl::Seconds(6));
  (*warrend)->Signal(SIGCONT);
  EXPECT_TRUE(WaitFor(
      [&] {
        return ScrapeValue(port, "warren_zookeeper_session_expirations_total",
                           {}) == 1 &&
               ScrapeValue(port, "warren_zookeeper_session_state",
                           {{"state", "connected"}}) == 1;
      },
      absl::Seconds(60)))
      << (*warrend)->Log();
  EXPECT_GE(ScrapeValue(port, "warren_zookeeper_reconnects_total", {}), 1);
}

TEST(MetricsStartupTest, NonLoopbackMetricsNeedTheOptIn) {
  ExitResult result =
      RunWarrendToExit({"--metrics_listen=0.0.0.0:9090",
                        "--zk_connect=" + TestEnv("WARREN_TEST_ZK")});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(result.stderr_text, HasSubstr("metrics_allow_remote"));
}

TEST(MetricsStartupTest, MetricsPortInUseFailsAtOnce) {
  // Another warrend's metrics port.
  const int port = FreePort();
  auto first = WarrendProcess::Start(
      {absl::StrCat("--metrics_listen=127.0.0.1:", port)});
  ASSERT_TRUE(first.ok()) << first.status();
  ExitResult result = RunWarrendToExit(
      {absl::StrCat("--metrics_listen=127.0.0.1:", port),
       "--zk_connect=" + TestEnv("WARREN_TEST_ZK"), "--listen=127.0.0.1:0"});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(
      result.stderr_text,
      HasSubstr(absl::StrCat("cannot serve metrics on 127.0.0.1:", port)));
}

}  // namespace
}  // namespace warren::testing
