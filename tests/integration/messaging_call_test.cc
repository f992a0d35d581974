// MessagingService.Call end to end: the real warrend and the real RabbitMQ.
// Responders are what a user would write: Subscribe streams of a shared
// group that answer each request with a Publish to its reply_to, carrying
// its correlation_id.
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "tests/util/http_get.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Unique per process and run: the broker keeps durable queues of earlier
// runs.
std::string Name(const std::string& base) {
  static const std::string* const suffix = new std::string(
      absl::StrCat(getpid(), "-", absl::ToUnixMicros(absl::Now())));
  return absl::StrCat(base, "-", *suffix);
}

int MetricsPort() {
  static const int port = FreePort();
  return port;
}

struct CallFlags {
  static std::vector<std::string> Args() {
    return {"--call_timeout=2s",
            absl::StrCat("--metrics_listen=127.0.0.1:", MetricsPort())};
  }
};

// The value of an unlabelled sample (or one with exactly `labels`) of
// warrend's /metrics; -1 when it is not there.
double Metric(const std::string& name, const std::string& labels = "") {
  const std::string response = HttpGet(MetricsPort(), "/metrics");
  const std::string prefix = labels.empty()
                                 ? absl::StrCat(name, " ")
                                 : absl::StrCat(name, "{", labels, "} ");
  for (absl::string_view line : absl::StrSplit(response, '\n')) {
    if (!absl::StartsWith(line, prefix)) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(prefix.size()), &value)) return value;
  }
  return -1;
}

// Answers `request` as a responder does: a publish on the default
// exchange to its reply_to, with its correlation id.
grpc::Status Reply(v1::MessagingService::Stub& stub,
                   const v1::Delivery& request, const std::string& payload) {
  v1::PublishRequest reply;
  reply.set_routing_key(request.reply_to());
  reply.set_correlation_id(request.correlation_id());
  reply.set_payload(payload);
  v1::PublishResponse ignored;
  return stub.Publish(CallContext().get(), reply, &ignored);
}

// A responder: answers every request of its subscription with
// "<request payload> by <name>" (or not at all, when `replies` is false),
// then acks it.
class Responder {
 public:
  Responder(v1::MessagingService::Stub& stub, const v1::SubscribeStart& start,
            std::string name, bool replies = true)
      : stub_(stub),
        sub_(stub, start),
        name_(std::move(name)),
        replies_(replies) {}
  ~Responder() { Stop(); }

  // Answers "" when the subscription did not start.
  std::string Start() {
    const std::string queue = sub_.WaitSubscribed();
    if (queue.empty()) return queue;
    thread_ = std::thread([this] { Serve(); });
    return queue;
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  TestSubscriber& subscriber() { return sub_; }
  size_t answered() const { return answered_.load(); }

 private:
  void Serve() {
    size_t handled = 0;
    while (!stop_) {
      if (!sub_.WaitDeliveries(handled + 1, absl::Milliseconds(100))) continue;
      const std::vector<v1::Delivery> ds = sub_.deliveries();
      if (ds.size() <= handled) return;  // the stream ended
      for (; handled < ds.size(); ++handled) {
        const v1::Delivery& request = ds[handled];
        if (!replies_) continue;
        // Counted before the reply goes out: a caller that has its reply
        // sees it counted.
        ++answered_;
        EXPECT_TRUE(Reply(stub_, request,
                          absl::StrCat(request.payload(), " by ", name_))
                        .ok());
        sub_.Ack({request.delivery_id()});
      }
    }
  }

  v1::MessagingService::Stub& stub_;
  TestSubscriber sub_;
  const std::string name_;
  const bool replies_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> answered_{0};
  std::thread thread_;
};

class CallTest : public SharedWarrendTest<CallFlags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    stub_ = v1::MessagingService::NewStub(warrend_->channel());
  }

  // A group subscription on the topic exchange `exchange` for `key`.
  static v1::SubscribeStart GroupStart(const std::string& exchange,
                                       const std::string& group,
                                       const std::string& key,
                                       uint32_t max_in_flight = 0) {
    v1::SubscribeStart start;
    start.mutable_topic()->set_exchange(exchange);
    start.mutable_topic()->add_binding_keys(key);
    start.set_group(group);
    start.set_max_in_flight(max_in_flight);
    return start;
  }

  static v1::SubscribeStart QueueStart(const std::string& queue) {
    v1::SubscribeStart start;
    start.set_queue(queue);
    return start;
  }

  static v1::CallRequest Request(const std::string& exchange,
                                 const std::string& key,
                                 const std::string& payload) {
    v1::CallRequest request;
    request.mutable_message()->set_exchange(exchange);
    request.mutable_message()->set_routing_key(key);
    request.mutable_message()->set_payload(payload);
    return request;
  }

  grpc::Status Call(const v1::CallRequest& request, v1::CallResponse* response,
                    absl::Duration timeout = absl::Seconds(30)) {
    return stub_->Call(CallContext(timeout).get(), request, response);
  }

  std::unique_ptr<v1::MessagingService::Stub> stub_;
};

TEST_F(CallTest, HundredConcurrentCallsEachGetTheirOwnReply) {
  const std::string exchange = Name("rpc");
  const std::string group = Name("rpc-workers");
  std::vector<std::unique_ptr<Responder>> responders;
  for (int i = 0; i < 3; ++i) {
    responders.push_back(std::make_unique<Responder>(
        *stub_, GroupStart(exchange, group, "square"), absl::StrCat("r", i)));
    ASSERT_EQ(responders.back()->Start(), group);
  }
  constexpr int kCalls = 100;
  std::vector<grpc::Status> statuses(kCalls);
  std::vector<v1::CallResponse> responses(kCalls);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      statuses[i] = Call(Request(exchange, "square", absl::StrCat("req-", i)),
                         &responses[i]);
    });
  }
  for (auto& t : callers) t.join();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    const v1::Delivery& reply = responses[i].reply();
    EXPECT_THAT(reply.payload(), StartsWith(absl::StrCat("req-", i, " by r")));
    EXPECT_EQ(reply.delivery_id(), 0u);
    EXPECT_FALSE(reply.correlation_id().empty());
  }
  size_t answered = 0;
  for (auto& r : responders) answered += r->answered();
  EXPECT_EQ(answered, kCalls);
  // The requests carried the server's reply address and an id of their own.
  const v1::Delivery request = responders[0]->subscriber().deliveries()[0];
  EXPECT_THAT(request.reply_to(), StartsWith("amq.rabbitmq.reply-to."));
  EXPECT_FALSE(request.correlation_id().empty());
}

TEST_F(CallTest, AResponderThatDiesMidCallLeavesTheCallerADeadlineNotAReply) {
  const std::string exchange = Name("rpc-dying");
  const std::string group = Name("rpc-dying-workers");
  const double dropped_before = Metric("warren_call_replies_dropped_total");
  // Takes the request and never answers.
  auto dying = std::make_unique<Responder>(
      *stub_, GroupStart(exchange, group, "job", 1), "dying",
      /*replies=*/false);
  ASSERT_EQ(dying->Start(), group);
  std::thread cancel([&] {
    ASSERT_TRUE(dying->subscriber().WaitDeliveries(1));
    dying->subscriber().Cancel();
  });
  v1::CallResponse response;
  const absl::Time start = absl::Now();
  const grpc::Status first =
      Call(Request(exchange, "job", "first"), &response, absl::Seconds(1));
  cancel.join();
  EXPECT_EQ(first.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_FALSE(response.has_reply());
  dying.reset();
  // The server's copy of the deadline comes a moment after the client's
  // (the timeout travels with the call): until it passed, a reply would
  // still answer the abandoned call.
  ASSERT_TRUE(WaitFor([] { return Metric("warren_calls_in_flight") == 0; },
                      absl::Seconds(5)));

  // A live responder gets the dead one's request back first and answers it:
  // that reply belongs to no waiting call and must not answer the next one.
  Responder live(*stub_, GroupStart(exchange, group, "job"), "live");
  ASSERT_EQ(live.Start(), group);
  const grpc::Status second =
      Call(Request(exchange, "job", "second"), &response);
  ASSERT_TRUE(second.ok()) << second.error_message();
  EXPECT_EQ(response.reply().payload(), "second by live");
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric("warren_call_replies_dropped_total") >=
               dropped_before + 1;
      },
      absl::Seconds(10)));
}

TEST_F(CallTest, AReplyAfterTheDeadlineIsDroppedAndCounted) {
  const std::string queue = Name("rpc-slow");
  const double dropped_before = Metric("warren_call_replies_dropped_total");
  const double deadlines_before =
      Metric("warren_calls_total", "code=\"DeadlineExceeded\"");
  const v1::SubscribeStart start = QueueStart(queue);
  TestSubscriber slow(*stub_, start);
  ASSERT_EQ(slow.WaitSubscribed(), queue);

  v1::CallRequest request;
  request.mutable_message()->set_routing_key(queue);
  request.mutable_message()->set_payload("late");
  v1::CallResponse response;
  // No deadline of its own: the server's --call_timeout (2s) applies.
  grpc::ClientContext context;
  const absl::Time began = absl::Now();
  const grpc::Status status = stub_->Call(&context, request, &response);
  const absl::Duration took = absl::Now() - began;
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(status.error_message(), "no reply within 2s");
  EXPECT_GE(took, absl::Seconds(2));
  EXPECT_LT(took, absl::Seconds(3));

  ASSERT_TRUE(slow.WaitDeliveries(1));
  const v1::Delivery d = slow.deliveries()[0];
  ASSERT_TRUE(Reply(*stub_, d, "too late").ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric("warren_call_replies_dropped_total") >=
               dropped_before + 1;
      },
      absl::Seconds(10)));
  EXPECT_GE(Metric("warren_calls_total", "code=\"DeadlineExceeded\""),
            std::max(deadlines_before, 0.0) + 1);
  EXPECT_EQ(Metric("warren_calls_in_flight"), 0);
}

TEST_F(CallTest, NoResponderIsADeadlineAtTheCallersDeadline) {
  const std::string queue = Name("rpc-nobody");
  const v1::SubscribeStart start = QueueStart(queue);
  {
    // Declares the queue; nobody consumes it afterwards.
    TestSubscriber declare(*stub_, start);
    ASSERT_EQ(declare.WaitSubscribed(), queue);
  }
  v1::CallRequest request;
  request.mutable_message()->set_routing_key(queue);
  v1::CallResponse response;
  const absl::Time began = absl::Now();
  const grpc::Status status = Call(request, &response, absl::Milliseconds(700));
  const absl::Duration took = absl::Now() - began;
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(took, absl::Milliseconds(700));
  EXPECT_LT(took, absl::Milliseconds(1500));
}

TEST_F(CallTest, AnUnroutableMandatoryRequestIsAFailedPrecondition) {
  v1::CallRequest request;
  request.mutable_message()->set_routing_key(Name("no-such-queue"));
  request.mutable_message()->set_mandatory(true);
  v1::CallResponse response;
  const absl::Time began = absl::Now();
  const grpc::Status status = Call(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();
  // Answered at the broker's return, not at a deadline.
  EXPECT_LT(absl::Now() - began, absl::Seconds(1));

  // A missing exchange fails that call alone: the reply channel lives on.
  v1::CallRequest missing = Request(Name("no-such-exchange"), "k", "x");
  EXPECT_EQ(Call(missing, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  const std::string queue = Name("rpc-after");
  const v1::SubscribeStart start = QueueStart(queue);
  Responder responder(*stub_, start, "after");
  ASSERT_EQ(responder.Start(), queue);
  v1::CallRequest ok;
  ok.mutable_message()->set_routing_key(queue);
  ok.mutable_message()->set_payload("still");
  ASSERT_TRUE(Call(ok, &response).ok());
  EXPECT_EQ(response.reply().payload(), "still by after");
}

TEST_F(CallTest, PublishCarriesReplyToAndCorrelationId) {
  const std::string queue = Name("reply-props");
  const v1::SubscribeStart start = QueueStart(queue);
  TestSubscriber sub(*stub_, start);
  ASSERT_EQ(sub.WaitSubscribed(), queue);
  v1::PublishRequest request;
  request.set_routing_key(queue);
  request.set_reply_to("my-replies");
  request.set_correlation_id("c-17");
  v1::PublishResponse published;
  ASSERT_TRUE(stub_->Publish(CallContext().get(), request, &published).ok());
  ASSERT_TRUE(sub.WaitDeliveries(1));
  EXPECT_EQ(sub.deliveries()[0].reply_to(), "my-replies");
  EXPECT_EQ(sub.deliveries()[0].correlation_id(), "c-17");
  EXPECT_TRUE(sub.deliveries()[0].headers().empty());
}

TEST_F(CallTest, BadInputIsAnInvalidArgumentNamingTheField) {
  struct Case {
    std::function<void(v1::CallRequest&)> change;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::CallRequest& r) { r.clear_message(); }, "message"},
      {[](v1::CallRequest& r) { r.mutable_message()->set_reply_to("q"); },
       "message.reply_to"},
      {[](v1::CallRequest& r) { r.mutable_message()->set_correlation_id("c"); },
       "message.correlation_id"},
      {[](v1::CallRequest& r) {
         r.mutable_message()->mutable_delay()->set_seconds(1);
       },
       "message.delay"},
      {[](v1::CallRequest& r) {
         r.mutable_message()->set_routing_key(std::string(256, 'k'));
       },
       "message.routing_key"},
      {[](v1::CallRequest& r) {
         (*r.mutable_message()->mutable_headers())[""] = "v";
       },
       "message.headers"},
  };
  for (const Case& c : cases) {
    v1::CallRequest request = Request("", "anything", "x");
    c.change(request);
    v1::CallResponse response;
    const grpc::Status status = Call(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field;
    EXPECT_THAT(status.error_message(), StartsWith(c.field)) << c.field;
  }
  // The reply properties of a Publish are AMQP short strings.
  for (const char* field : {"reply_to", "correlation_id"}) {
    v1::PublishRequest publish;
    publish.set_routing_key("anything");
    if (std::string(field) == "reply_to") {
      publish.set_reply_to(std::string(256, 'r'));
    } else {
      publish.set_correlation_id(std::string(256, 'c'));
    }
    v1::PublishResponse ignored;
    const grpc::Status status =
        stub_->Publish(CallContext().get(), publish, &ignored);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), StartsWith(field));
  }
}

}  // namespace
}  // namespace warren::testing
