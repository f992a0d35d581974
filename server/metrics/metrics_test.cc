#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "server/metrics/grpc_metrics.h"
#include "server/metrics/metrics_server.h"
#include "server/metrics/warren_metrics.h"
#include "tests/util/http_get.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The value of the sample of `name` whose labels include all of `labels`
// (for a histogram: its sample count); nullopt when there is none.
std::optional<double> Value(const prometheus::Collectable& registry,
                            const std::string& name,
                            const std::map<std::string, std::string>& labels) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      size_t matched = 0;
      for (const auto& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched != labels.size()) continue;
      switch (family.type) {
        case prometheus::MetricType::Counter:
          return metric.counter.value;
        case prometheus::MetricType::Gauge:
          return metric.gauge.value;
        case prometheus::MetricType::Histogram:
          return static_cast<double>(metric.histogram.sample_count);
        default:
          return metric.untyped.value;
      }
    }
  }
  return std::nullopt;
}

// A tiny server: GetConfig answers NOT_FOUND for the key "missing" and the
// key back otherwise; WatchConfig sends three messages and ends OK.
class TestConfigService final : public v1::ConfigService::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetConfig(
      grpc::CallbackServerContext* context, const v1::GetConfigRequest* request,
      v1::GetConfigResponse* response) override {
    auto* reactor = context->DefaultReactor();
    if (request->key() == "missing") {
      reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "missing"));
    } else {
      response->mutable_entry()->set_key(request->key());
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

  grpc::ServerWriteReactor<v1::WatchConfigResponse>* WatchConfig(
      grpc::CallbackServerContext* /*context*/,
      const v1::WatchConfigRequest* /*request*/) override {
    class Writer final
        : public grpc::ServerWriteReactor<v1::WatchConfigResponse> {
     public:
      Writer() { Next(); }
      void OnWriteDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::CANCELLED);
        } else {
          Next();
        }
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (left_-- == 0) {
          Finish(grpc::Status::OK);
        } else {
          StartWrite(&response_);
        }
      }
      int left_ = 3;
      v1::WatchConfigResponse response_;
    };
    return new Writer;
  }
};

// Subscribe answers every request with one response, ends OK when the client
// half-closes and CANCELLED when it cancels.
class TestMessagingService final
    : public v1::MessagingService::CallbackService {
 public:
  grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>*
  Subscribe(grpc::CallbackServerContext* /*context*/) override {
    class Echo final : public grpc::ServerBidiReactor<v1::SubscribeRequest,
                                                      v1::SubscribeResponse> {
     public:
      Echo() { StartRead(&request_); }
      void OnReadDone(bool ok) override {
        if (!ok) {
          FinishOnce(grpc::Status::OK);
          return;
        }
        StartWrite(&response_);
      }
      void OnWriteDone(bool ok) override {
        if (ok) StartRead(&request_);
      }
      void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }
      void OnDone() override { delete this; }

     private:
      // A cancelled stream also fails its read: finish only once.
      void FinishOnce(grpc::Status status) {
        if (!finished_.exchange(true)) Finish(std::move(status));
      }
      std::atomic<bool> finished_{false};
      v1::SubscribeRequest request_;
      v1::SubscribeResponse response_;
    };
    return new Echo;
  }
};

class InterceptorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics_ = std::make_unique<GrpcServerMetrics>(registry_);
    ASSERT_TRUE(metrics_->InitializeService("warren.v1.ConfigService"));
    ASSERT_TRUE(metrics_->InitializeService("warren.v1.MessagingService"));
    metrics_->InitializeMethod("/grpc.health.v1.Health/Check", RpcType::UNARY);
    metrics_->InitializeMethod("/grpc.health.v1.Health/Watch",
                               RpcType::SERVER_STREAMING);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&config_);
    builder.RegisterService(&messaging_);
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        creators;
    creators.push_back(metrics_->InterceptorFactory());
    builder.experimental().SetInterceptorCreators(std::move(creators));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    }
  }

  std::optional<double> Get(const std::string& name,
                            const std::map<std::string, std::string>& labels) {
    return Value(registry_, name, labels);
  }

  // Waits for what the server records after the client has seen its end of
  // the call (a cancellation travels to the server on its own).
  bool WaitForValue(const std::string& name,
                    const std::map<std::string, std::string>& labels,
                    double want) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (Get(name, labels) != want) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  prometheus::Registry registry_;
  std::unique_ptr<GrpcServerMetrics> metrics_;
  TestConfigService config_;
  TestMessagingService messaging_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

const std::map<std::string, std::string> kGetConfig = {
    {"grpc_type", "unary"},
    {"grpc_service", "warren.v1.ConfigService"},
    {"grpc_method", "GetConfig"}};

std::map<std::string, std::string> With(
    std::map<std::string, std::string> labels, const std::string& code) {
  labels["grpc_code"] = code;
  return labels;
}

TEST_F(InterceptorTest, UnaryCallsAreCountedWithTheirGoCodeNames) {
  auto stub = v1::ConfigService::NewStub(channel_);
  for (const char* key : {"a", "b", "missing"}) {
    v1::GetConfigRequest request;
    request.set_key(key);
    v1::GetConfigResponse response;
    stub->GetConfig(Context().get(), request, &response);
  }
  EXPECT_EQ(Get("grpc_server_started_total", kGetConfig), 3);
  EXPECT_EQ(Get("grpc_server_handled_total", With(kGetConfig, "OK")), 2);
  EXPECT_EQ(Get("grpc_server_handled_total", With(kGetConfig, "NotFound")), 1);
  // As in Go: a failed unary call sends no message.
  EXPECT_EQ(Get("grpc_server_msg_received_total", kGetConfig), 3);
  EXPECT_EQ(Get("grpc_server_msg_sent_total", kGetConfig), 2);
  EXPECT_EQ(Get("grpc_server_handling_seconds", kGetConfig), 3);
}

TEST_F(InterceptorTest, RegisteredMethodsStartAtZeroForEveryCode) {
  const std::map<std::string, std::string> put = {
      {"grpc_type", "unary"},
      {"grpc_service", "warren.v1.ConfigService"},
      {"grpc_method", "PutConfig"}};
  EXPECT_EQ(Get("grpc_server_started_total", put), 0);
  for (const char* code :
       {"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
        "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
        "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
        "Internal", "Unavailable", "DataLoss", "Unauthenticated"}) {
    EXPECT_EQ(Get("grpc_server_handled_total", With(put, code)), 0) << code;
  }
  EXPECT_EQ(Get("grpc_server_started_total",
                {{"grpc_type", "bidi_stream"},
                 {"grpc_service", "warren.v1.MessagingService"},
                 {"grpc_method", "PublishStream"}}),
            0);
  EXPECT_EQ(Get("grpc_server_started_total", {{"grpc_type", "server_stream"},
                                              {"grpc_method", "WatchConfig"}}),
            0);
}

TEST_F(InterceptorTest, ServerStreamCountsEveryMessage) {
  auto stub = v1::ConfigService::NewStub(channel_);
  auto context = Context();
  auto reader = stub->WatchConfig(context.get(), v1::WatchConfigRequest());
  v1::WatchConfigResponse response;
  int read = 0;
  while (reader->Read(&response)) ++read;
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_EQ(read, 3);
  const std::map<std::string, std::string> watch = {
      {"grpc_type", "server_stream"},
      {"grpc_service", "warren.v1.ConfigService"},
      {"grpc_method", "WatchConfig"}};
  EXPECT_EQ(Get("grpc_server_started_total", watch), 1);
  EXPECT_EQ(Get("grpc_server_msg_received_total", watch), 1);
  EXPECT_EQ(Get("grpc_server_msg_sent_total", watch), 3);
  EXPECT_EQ(Get("grpc_server_handled_total", With(watch, "OK")), 1);
}

TEST_F(InterceptorTest, BidiStreamCountsMessagesAndCancellation) {
  auto stub = v1::MessagingService::NewStub(channel_);
  const std::map<std::string, std::string> subscribe = {
      {"grpc_type", "bidi_stream"},
      {"grpc_service", "warren.v1.MessagingService"},
      {"grpc_method", "Subscribe"}};
  {
    auto context = Context();
    auto stream = stub->Subscribe(context.get());
    v1::SubscribeResponse response;
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(stream->Write(v1::SubscribeRequest()));
      ASSERT_TRUE(stream->Read(&response));
    }
    stream->WritesDone();
    ASSERT_TRUE(stream->Finish().ok());
  }
  EXPECT_EQ(Get("grpc_server_msg_received_total", subscribe), 2);
  EXPECT_EQ(Get("grpc_server_msg_sent_total", subscribe), 2);
  EXPECT_EQ(Get("grpc_server_handled_total", With(subscribe, "OK")), 1);

  {
    auto context = Context();
    auto stream = stub->Subscribe(context.get());
    v1::SubscribeResponse response;
    ASSERT_TRUE(stream->Write(v1::SubscribeRequest()));
    ASSERT_TRUE(stream->Read(&response));
    context->TryCancel();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(WaitForValue("grpc_server_handled_total",
                           With(subscribe, "Canceled"), 1));
  EXPECT_EQ(Get("grpc_server_handled_total", With(subscribe, "OK")), 1);
  EXPECT_EQ(Get("grpc_server_started_total", subscribe), 2);
  EXPECT_EQ(Get("grpc_server_handling_seconds", subscribe), 2);
}

TEST_F(InterceptorTest, HealthServiceIsCounted) {
  auto stub = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(stub->Check(Context().get(),
                          grpc::health::v1::HealthCheckRequest(), &response)
                  .ok());
  grpc::health::v1::HealthCheckRequest unknown;
  unknown.set_service("no.such.Service");
  EXPECT_EQ(stub->Check(Context().get(), unknown, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  const std::map<std::string, std::string> check = {
      {"grpc_type", "unary"},
      {"grpc_service", "grpc.health.v1.Health"},
      {"grpc_method", "Check"}};
  EXPECT_EQ(Get("grpc_server_handled_total", With(check, "OK")), 1);
  EXPECT_EQ(Get("grpc_server_handled_total", With(check, "NotFound")), 1);
}

// A client can name any method; one the server does not know must not
// become a label value.
TEST_F(InterceptorTest, UnknownMethodsAreNotCounted) {
  auto stub = v1::ElectionService::NewStub(channel_);
  v1::GetLeaderResponse response;
  EXPECT_EQ(stub->GetLeader(Context().get(), v1::GetLeaderRequest(), &response)
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(Get("grpc_server_started_total",
                {{"grpc_service", "warren.v1.ElectionService"}}),
            std::nullopt);
}

TEST(GrpcNamesTest, CodesHaveTheirGoNames) {
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::CANCELLED), "Canceled");
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::DEADLINE_EXCEEDED),
               "DeadlineExceeded");
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED),
               "ResourceExhausted");
  EXPECT_STREQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED),
               "Unauthenticated");
  EXPECT_STREQ(GrpcCodeName(static_cast<grpc::StatusCode>(99)), "Unknown");
  EXPECT_STREQ(GrpcTypeName(RpcType::CLIENT_STREAMING), "client_stream");
  EXPECT_STREQ(GrpcTypeName(RpcType::BIDI_STREAMING), "bidi_stream");
  EXPECT_THAT(
      HandlingSecondsBuckets(),
      ::testing::ElementsAre(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10));
}

std::string Text(const prometheus::Collectable& collectable) {
  return prometheus::TextSerializer().Serialize(collectable.Collect());
}

TEST(WarrenCollectorTest, ReadsTheProbesAtScrapeTime) {
  zk::SessionState zk_state = zk::SessionState::kSuspended;
  std::vector<amqp::BrokerState> amqp_states = {amqp::BrokerState::kConnected,
                                                amqp::BrokerState::kConnecting};
  size_t watches = 2;
  WarrenProbes probes;
  probes.zk_state = [&] { return zk_state; };
  probes.zk_reconnects = [] { return uint64_t{3}; };
  probes.zk_session_expirations = [] { return uint64_t{1}; };
  probes.amqp_connections = [&] { return amqp_states.size(); };
  probes.amqp_state = [&](size_t i) { return amqp_states[i]; };
  probes.amqp_reconnects = [](size_t i) { return uint64_t{i * 10}; };
  probes.amqp_subscriptions = [](size_t i) { return i == 0 ? 2045 : 7; };
  probes.amqp_unconfirmed_publishes = [] { return size_t{4}; };
  probes.unacked_deliveries = [] { return int64_t{5}; };
  probes.election_leaders = [] { return size_t{1}; };
  probes.locks_held = [] { return size_t{3}; };
  probes.lock_waiters = [] { return size_t{7}; };
  probes.config_watches = [&] { return watches; };
  probes.config_cache_hits = [] { return uint64_t{9}; };
  probes.config_cache_misses = [] { return uint64_t{1}; };
  probes.fence_rejections = [](const std::string& where) {
    return where == "publish" ? uint64_t{6} : uint64_t{0};
  };
  WarrenCollector collector(std::move(probes));

  std::string text = Text(collector);
  for (const char* line : {
           "warren_backend_up{backend=\"zookeeper\"} 0",
           "warren_backend_up{backend=\"rabbitmq\"} 1",
           "warren_zookeeper_session_state{state=\"suspended\"} 1",
           "warren_zookeeper_session_state{state=\"connected\"} 0",
           "warren_zookeeper_reconnects_total 3",
           "warren_zookeeper_session_expirations_total 1",
           "warren_amqp_connections 2",
           "warren_amqp_connection_state{connection=\"1\",state=\"connected\"}"
           " 1",
           "warren_amqp_connection_state{connection=\"2\",state=\"connecting\"}"
           " 1",
           "warren_amqp_connection_state{connection=\"2\",state=\"connected\"}"
           " 0",
           "warren_amqp_reconnects_total{connection=\"2\"} 10",
           "warren_amqp_subscriptions{connection=\"1\"} 2045",
           "warren_amqp_subscriptions{connection=\"2\"} 7",
           "warren_amqp_unconfirmed_publishes 4",
           "warren_subscribe_unacked_deliveries 5",
           "warren_election_leaders 1",
           "warren_locks_held 3",
           "warren_lock_waiters 7",
           "# TYPE warren_lock_waiters gauge",
           "warren_config_watches 2",
           "warren_config_cache_hits_total 9",
           "warren_config_cache_misses_total 1",
           "warren_fence_rejections_total{where=\"config\"} 0",
           "warren_fence_rejections_total{where=\"publish\"} 6",
           "# TYPE warren_amqp_reconnects_total counter",
           "# TYPE warren_config_watches gauge",
       }) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("\n", line, "\n"))) << line;
  }

  // Values are read at each scrape, not cached.
  zk_state = zk::SessionState::kConnected;
  watches = 0;
  text = Text(collector);
  EXPECT_THAT(text, HasSubstr("warren_backend_up{backend=\"zookeeper\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("warren_config_watches 0\n"));
}

TEST(WarrenCollectorTest, EmptyProbesLeaveTheirMetricsOut) {
  WarrenProbes probes;
  probes.zk_state = [] { return zk::SessionState::kConnected; };
  WarrenCollector collector(std::move(probes));
  const std::string text = Text(collector);
  EXPECT_THAT(text, HasSubstr("warren_backend_up{backend=\"zookeeper\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("rabbitmq")));
  EXPECT_THAT(text, Not(HasSubstr("warren_amqp")));
  EXPECT_THAT(text, Not(HasSubstr("warren_config")));
}

TEST(WarrenCollectorTest, ConfirmHistogramHasSubMillisecondBuckets) {
  prometheus::Registry registry;
  prometheus::Histogram& confirms = AddPublishConfirmHistogram(registry);
  confirms.Observe(0.0007);
  confirms.Observe(0.02);
  const std::string text = Text(registry);
  EXPECT_THAT(text, HasSubstr("warren_amqp_publish_confirm_seconds_bucket{le="
                              "\"0.0005\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("warren_amqp_publish_confirm_seconds_bucket{le="
                              "\"0.001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("warren_amqp_publish_confirm_seconds_count 2\n"));
}

TEST(IsLoopbackAddressTest, OnlyLoopbackHosts) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:9090"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:9090"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:9090"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:9090"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:9090"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:9090"));
  EXPECT_FALSE(IsLoopbackAddress(":9090"));
  EXPECT_FALSE(IsLoopbackAddress("9090"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:9090"));
  EXPECT_FALSE(IsLoopbackAddress("metrics.example.com:9090"));
}

using ::warren::testing::HttpGet;

TEST(MetricsServerTest, ServesRegisteredCollectablesOverHttp) {
  auto server = MetricsServer::Start("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  WarrenProbes probes;
  probes.election_leaders = [] { return size_t{2}; };
  {
    MetricsServer::Registration registration =
        (*server)->Add(std::make_shared<WarrenCollector>(std::move(probes)));
    const std::string response = HttpGet((*server)->port(), "/metrics");
    EXPECT_THAT(response, HasSubstr("200 OK"));
    EXPECT_THAT(response, HasSubstr("\nwarren_election_leaders 2\n"));
  }
  // Unregistered: no longer served.
  EXPECT_THAT(HttpGet((*server)->port(), "/metrics"),
              Not(HasSubstr("warren_election_leaders")));
}

TEST(MetricsServerTest, AnAddressInUseIsUnavailable) {
  auto first = MetricsServer::Start("127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second =
      MetricsServer::Start(absl::StrCat("127.0.0.1:", (*first)->port()));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("127.0.0.1:", (*first)->port())));
}

}  // namespace
}  // namespace warren::metrics
