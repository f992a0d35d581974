// Unit tests of the messaging service's request handling: validation,
// mapping to the AMQP layer, message ids, and the Subscribe stream over a
// fake broker. Delivery semantics are tested end to end against RabbitMQ in
// tests/integration.
#include <atomic>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/messaging/authorization.h"
#include "server/messaging/call_handler.h"
#include "server/messaging/messaging_service.h"
#include "tests/fakes/fake_amqp.h"

namespace warren::messaging {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;

TEST(ValidatePublishTest, AcceptsAFullMessage) {
  v1::PublishRequest r;
  r.set_exchange("orders");
  r.set_routing_key("eu.created");
  r.set_payload(std::string("a\0b", 3));
  (*r.mutable_headers())["tenant"] = "acme";
  r.set_priority(255);
  r.mutable_ttl()->set_seconds(5);
  EXPECT_TRUE(ValidatePublish(r, MessagingServiceOptions()).ok());
}

TEST(ValidatePublishTest, RefusesWhatAmqpOrTheLimitsCannotCarry) {
  MessagingServiceOptions options;
  options.max_payload_bytes = 10;
  options.max_header_bytes = 8;
  struct Case {
    std::function<void(v1::PublishRequest&)> mutate;
    std::string field;
  };
  const Case cases[] = {
      {[](auto& r) { r.set_exchange(std::string(256, 'x')); }, "exchange"},
      {[](auto& r) { r.set_routing_key(std::string(256, 'x')); },
       "routing_key"},
      {[](auto& r) { r.set_message_id(std::string(256, 'x')); }, "message_id"},
      {[](auto& r) { r.set_payload(std::string(11, 'x')); }, "payload"},
      {[](auto& r) { (*r.mutable_headers())["k"] = "123456789"; }, "headers"},
      {[](auto& r) { (*r.mutable_headers())[""] = "v"; }, "headers"},
      {[](auto& r) { r.set_priority(256); }, "priority"},
      {[](auto& r) { r.mutable_ttl()->set_seconds(-1); }, "ttl"},
  };
  for (const Case& c : cases) {
    v1::PublishRequest r;
    c.mutate(r);
    absl::Status s = ValidatePublish(r, options, "message.");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(s.message(), HasSubstr("message." + c.field));
  }
}

TEST(ToOutgoingTest, MapsFieldsAndGeneratesUniqueIds) {
  v1::PublishRequest r;
  r.set_routing_key("q");
  r.set_transient(true);
  r.set_priority(3);
  r.mutable_ttl()->set_nanos(250000000);
  amqp::OutgoingMessage m = ToOutgoing(r);
  EXPECT_FALSE(m.persistent);
  EXPECT_EQ(m.priority, 3);
  EXPECT_EQ(m.ttl, absl::Milliseconds(250));
  EXPECT_THAT(m.message_id,
              ::testing::MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
                                      "[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.insert(ToOutgoing(r).message_id);
  EXPECT_EQ(ids.size(), 1000u);
  r.set_message_id("mine");
  r.set_transient(false);
  EXPECT_EQ(ToOutgoing(r).message_id, "mine");
  EXPECT_TRUE(ToOutgoing(r).persistent);
}

TEST(ToOutgoingTest, ReplyToAndCorrelationIdPassThrough) {
  v1::PublishRequest r;
  r.set_routing_key("amq.rabbitmq.reply-to.abc.def");
  r.set_reply_to("replies");
  r.set_correlation_id("c-1");
  const amqp::OutgoingMessage m = ToOutgoing(r);
  EXPECT_EQ(m.reply_to, "replies");
  EXPECT_EQ(m.correlation_id, "c-1");
}

TEST(ValidateCallTest, TheServerOwnsTheReplyFieldsAndTheRestIsAPublish) {
  const MessagingServiceOptions options;
  v1::CallRequest r;
  EXPECT_EQ(ValidateCall(r, options).message(), "message is required");
  r.mutable_message()->set_routing_key("rpc");
  EXPECT_TRUE(ValidateCall(r, options).ok());
  struct Case {
    void (*change)(v1::PublishRequest&);
    const char* field;
  };
  for (const Case& c : std::vector<Case>{
           {[](v1::PublishRequest& m) { m.set_reply_to("mine"); },
            "message.reply_to"},
           {[](v1::PublishRequest& m) { m.set_correlation_id("c"); },
            "message.correlation_id"},
           {[](v1::PublishRequest& m) { m.mutable_delay()->set_nanos(1); },
            "message.delay"},
           {[](v1::PublishRequest& m) { m.set_priority(256); },
            "message.priority"},
       }) {
    v1::CallRequest bad = r;
    c.change(*bad.mutable_message());
    const absl::Status s = ValidateCall(bad, options);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(s.message()), ::testing::StartsWith(c.field));
  }
}

TEST(ToOutgoingTest, AFencedMessageCarriesTheFenceHeaders) {
  v1::PublishRequest r;
  r.set_routing_key("q");
  (*r.mutable_headers())["tenant"] = "acme";
  r.mutable_fence()->set_lock("jobs/printer");
  r.mutable_fence()->set_fencing_token(4294967312);
  const amqp::OutgoingMessage m = ToOutgoing(r);
  EXPECT_THAT(m.headers,
              ::testing::UnorderedElementsAre(
                  std::pair<std::string, std::string>("tenant", "acme"),
                  std::pair<std::string, std::string>("warren-fence",
                                                      "lock:jobs/printer"),
                  std::pair<std::string, std::string>("warren-fencing-token",
                                                      "4294967312")));
  r.clear_fence();
  EXPECT_EQ(ToOutgoing(r).headers.size(), 1u);
}

TEST(ValidatePublishTest, RefusesForgedFenceHeadersAndBadFences) {
  for (const char* key : {"warren-fence", "WARREN-FENCING-TOKEN"}) {
    v1::PublishRequest r;
    (*r.mutable_headers())[key] = "1";
    const absl::Status s =
        ValidatePublish(r, MessagingServiceOptions(), "message.");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(std::string(s.message()),
                ::testing::StartsWith("message.headers key"));
  }
  v1::PublishRequest r;
  r.mutable_fence()->set_election("jobs");
  EXPECT_THAT(
      std::string(ValidatePublish(r, MessagingServiceOptions()).message()),
      ::testing::StartsWith("fence.fencing_token"));
  r.mutable_fence()->set_fencing_token(3);
  EXPECT_TRUE(ValidatePublish(r, MessagingServiceOptions()).ok());
}

TEST(AuthorizationTest, AFencedPublishNeedsTheFencesGrant) {
  v1::PublishRequest r;
  r.set_exchange("orders");
  EXPECT_EQ(PublishRequirements(r).size(), 1u);
  r.mutable_fence()->set_election("jobs/dispatcher");
  std::vector<Requirement> needs = PublishRequirements(r);
  ASSERT_EQ(needs.size(), 2u);
  EXPECT_EQ(needs[0].action, auth::Action::kPublish);
  EXPECT_EQ(needs[1].action, auth::Action::kObserve);
  EXPECT_EQ(needs[1].resource.name, "jobs/dispatcher");
  r.mutable_fence()->set_lock("jobs/printer");
  needs = PublishRequirements(r);
  ASSERT_EQ(needs.size(), 2u);
  EXPECT_EQ(needs[1].action, auth::Action::kLock);
  EXPECT_EQ(needs[1].resource.name, "jobs/printer");
}

TEST(ToSubscribeSpecTest, GroupIsADurableSharedQueueAndNoGroupAnExclusiveOne) {
  MessagingServiceOptions options;
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("events");
  start.mutable_topic()->add_binding_keys("a.*");
  auto fanout = ToSubscribeSpec(start, options);
  ASSERT_TRUE(fanout.ok()) << fanout.status();
  EXPECT_TRUE(fanout->queue.name.empty());
  EXPECT_TRUE(fanout->queue.exclusive);
  EXPECT_TRUE(fanout->queue.auto_delete);
  EXPECT_EQ(fanout->prefetch, options.default_max_in_flight);
  EXPECT_EQ(fanout->binding->kind, amqp::ExchangeKind::kTopic);

  start.set_group("billing");
  start.set_max_in_flight(7);
  start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  start.mutable_queue_options()->set_dead_letter_exchange("dlx");
  start.mutable_queue_options()->mutable_message_ttl()->set_seconds(60);
  auto group = ToSubscribeSpec(start, options);
  ASSERT_TRUE(group.ok()) << group.status();
  EXPECT_EQ(group->queue.name, "billing");
  EXPECT_TRUE(group->queue.durable);
  EXPECT_FALSE(group->queue.exclusive);
  EXPECT_TRUE(group->queue.quorum);
  EXPECT_EQ(group->queue.dead_letter_exchange, "dlx");
  EXPECT_EQ(group->queue.message_ttl, absl::Seconds(60));
  EXPECT_EQ(group->prefetch, 7);
}

TEST(ToSubscribeSpecTest, RefusesIncoherentStarts) {
  MessagingServiceOptions options;
  options.max_in_flight_cap = 50;
  v1::SubscribeStart none;
  EXPECT_THAT(ToSubscribeSpec(none, options).status().message(),
              HasSubstr("start.queue or start.topic"));

  v1::SubscribeStart queue_with_group;
  queue_with_group.set_queue("q");
  queue_with_group.set_group("g");
  EXPECT_THAT(ToSubscribeSpec(queue_with_group, options).status().message(),
              HasSubstr("start.group"));

  v1::SubscribeStart quorum_fanout;
  quorum_fanout.mutable_topic()->set_exchange("x");
  quorum_fanout.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  EXPECT_EQ(ToSubscribeSpec(quorum_fanout, options).status().code(),
            absl::StatusCode::kInvalidArgument);

  v1::SubscribeStart default_exchange;
  default_exchange.mutable_topic()->add_binding_keys("k");
  EXPECT_THAT(ToSubscribeSpec(default_exchange, options).status().message(),
              HasSubstr("start.topic.exchange"));

  v1::SubscribeStart greedy;
  greedy.set_queue("q");
  greedy.set_max_in_flight(51);
  absl::Status over = ToSubscribeSpec(greedy, options).status();
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(over.message(), HasSubstr("50"));
}

TEST(ToSubscribeSpecTest, RefusesTheDefaultExchangesSpellingAsAnExchange) {
  MessagingServiceOptions options;
  v1::SubscribeStart topic;
  topic.mutable_topic()->set_exchange("(default)");
  EXPECT_THAT(ToSubscribeSpec(topic, options).status().message(),
              HasSubstr("start.topic.exchange '(default)' is reserved"));
  v1::SubscribeStart dlx;
  dlx.set_queue("q");
  dlx.mutable_queue_options()->set_dead_letter_exchange("(default)/victim");
  EXPECT_THAT(ToSubscribeSpec(dlx, options).status().message(),
              HasSubstr("start.queue_options.dead_letter_exchange"));
  v1::PublishRequest publish;
  publish.set_exchange("(default)");
  EXPECT_THAT(ValidatePublish(publish, options, "message.").message(),
              HasSubstr("message.exchange '(default)' is reserved"));
  // Names that only contain it are ordinary names.
  publish.set_exchange("x(default)");
  EXPECT_TRUE(ValidatePublish(publish, options).ok());
}

TEST(ValidatePublishTest, RefusesTheHeadersRabbitMqRoutesBy) {
  MessagingServiceOptions options;
  for (const char* key : {"CC", "BCC"}) {
    v1::PublishRequest request;
    (*request.mutable_headers())[key] = "someone-elses-queue";
    absl::Status refused = ValidatePublish(request, options, "message.");
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.message(),
                HasSubstr(absl::StrCat("message.headers key '", key, "'")));
  }
  // Only those exact names are RabbitMQ's.
  v1::PublishRequest request;
  (*request.mutable_headers())["cc"] = "x";
  (*request.mutable_headers())["X-CC"] = "x";
  EXPECT_TRUE(ValidatePublish(request, options).ok());
}

// ---------------------------------------------------------------------------
// What each request needs grants for

std::string Describe(const Requirement& need) {
  return absl::StrCat(auth::ActionName(need.action), " ",
                      need.resource.ToString('.'));
}

std::vector<std::string> Needs(const v1::SubscribeStart& start) {
  std::vector<std::string> out;
  for (const Requirement& need : SubscribeRequirements(start)) {
    out.push_back(Describe(need));
  }
  return out;
}

TEST(AuthorizationTest, PublishOnTheDefaultExchangeIsScopedByRoutingKey) {
  v1::PublishRequest request;
  request.set_routing_key("billing-q");
  auth::Resource target = PublishTarget(request);
  EXPECT_TRUE(target.default_exchange);
  EXPECT_EQ(target.ToString('.'), "'(default)/billing-q'");
  request.set_exchange("orders");
  target = PublishTarget(request);
  EXPECT_FALSE(target.default_exchange);
  // A named exchange's grant covers all of its keys.
  EXPECT_EQ(target.ToString('.'), "'orders'");
}

TEST(AuthorizationTest, SubscribeNeedsItsSourceAndItsDeadLetterExchange) {
  v1::SubscribeStart queue;
  queue.set_queue("alice-q");
  EXPECT_THAT(Needs(queue), ::testing::ElementsAre("subscribe 'alice-q'"));

  v1::SubscribeStart topic;
  topic.mutable_topic()->set_exchange("orders");
  topic.set_group("billing");
  EXPECT_THAT(Needs(topic), ::testing::ElementsAre("subscribe 'orders'",
                                                   "subscribe 'billing'"));

  // A dead-letter exchange with a key: publish there with that key.
  queue.mutable_queue_options()->set_dead_letter_exchange("bob-ex");
  queue.mutable_queue_options()->set_dead_letter_routing_key("injected");
  auto needs = SubscribeRequirements(queue);
  ASSERT_EQ(needs.size(), 2u);
  EXPECT_EQ(Describe(needs[1]), "publish 'bob-ex'");
  EXPECT_THAT(needs[1].why,
              HasSubstr("start.queue_options.dead_letter_exchange"));
  // Without a key the broker keeps the messages' own keys: any key.
  queue.mutable_queue_options()->clear_dead_letter_routing_key();
  needs = SubscribeRequirements(queue);
  ASSERT_EQ(needs.size(), 2u);
  EXPECT_EQ(Describe(needs[1]), "publish 'bob-ex'");
  EXPECT_THAT(needs[1].why, HasSubstr("original routing keys"));
  // A per-stream topic queue dead-letters too.
  topic.clear_group();
  topic.mutable_queue_options()->set_dead_letter_exchange("dlx");
  EXPECT_THAT(Needs(topic),
              ::testing::ElementsAre("subscribe 'orders'", "publish 'dlx'"));
  // The other options route nothing elsewhere (TTL and max length expire
  // into the same dead-letter exchange): no further grant.
  v1::SubscribeStart limits;
  limits.set_queue("alice-q");
  limits.mutable_queue_options()->set_max_length(5);
  limits.mutable_queue_options()->mutable_message_ttl()->set_seconds(5);
  limits.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  limits.mutable_queue_options()->set_dead_letter_routing_key("ignored");
  EXPECT_THAT(Needs(limits), ::testing::ElementsAre("subscribe 'alice-q'"));
}

// The Subscribe reactor on an in-process server over FakeAmqp; the test
// runs the broker's queued events itself.
class SubscribeStreamTest : public ::testing::Test {
 protected:
  SubscribeStreamTest()
      : service_(broker_, timers_, streams_, MessagingServiceOptions()) {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    stub_ = v1::MessagingService::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }
  ~SubscribeStreamTest() override { server_->Shutdown(); }

  // Waits until the broker holds `n` subscriptions (the server reads the
  // start on its own threads).
  void AwaitOpen(size_t n) {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (broker_.open() != n && absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_EQ(broker_.open(), n);
  }

  testing::FakeAmqp broker_;
  TimerQueue timers_;
  StreamRegistry streams_;
  MessagingServiceImpl service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::MessagingService::Stub> stub_;
};

// Found by tests/fuzz/subscribe_fuzzer: a publisher's timestamp property
// beyond what a Timestamp holds aborted the server in the conversion.
TEST_F(SubscribeStreamTest, ATimestampOutOfRangeIsLeftOutNotFatal) {
  grpc::ClientContext context;
  auto stream = stub_->Subscribe(&context);
  v1::SubscribeRequest start;
  start.mutable_start()->set_queue("orders");
  ASSERT_TRUE(stream->Write(start));
  AwaitOpen(1);
  const auto id = broker_.open_ids()[0];
  amqp::Delivery far;
  far.payload = "far";
  far.timestamp = absl::FromUnixSeconds(INT64_MAX);
  amqp::Delivery near = far;
  near.payload = "near";
  near.timestamp = absl::FromUnixSeconds(1700000000);
  ASSERT_NE(broker_.Deliver(id, far), 0u);
  ASSERT_NE(broker_.Deliver(id, near), 0u);
  broker_.RunUntilIdle();
  v1::SubscribeResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_TRUE(response.has_subscribed());
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.delivery().payload(), "far");
  EXPECT_FALSE(response.delivery().has_timestamp());
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.delivery().payload(), "near");
  EXPECT_EQ(response.delivery().timestamp().seconds(), 1700000000);
  // Unacked: they go back to the queue when the stream ends.
  EXPECT_EQ(broker_.unsettled(), 2u);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  AwaitOpen(0);
}

TEST(ToSubscribeSpecTest, MapsTheDepthOptionsToBrokerArguments) {
  MessagingServiceOptions options;
  v1::SubscribeStart start;
  start.set_queue("jobs");
  auto* q = start.mutable_queue_options();
  q->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  q->set_delivery_limit(3);
  q->set_single_active_consumer(true);
  q->set_max_length_bytes(4096);
  auto quorum = ToSubscribeSpec(start, options);
  ASSERT_TRUE(quorum.ok()) << quorum.status();
  // At most 3 deliveries: the broker dead-letters past its limit.
  EXPECT_EQ(quorum->queue.delivery_limit, std::optional<int64_t>(2));
  EXPECT_TRUE(quorum->queue.single_active_consumer);
  EXPECT_EQ(quorum->queue.max_length_bytes, 4096u);
  EXPECT_FALSE(quorum->stream_start.has_value());

  v1::SubscribeStart classic;
  classic.set_queue("jobs");
  classic.mutable_queue_options()->set_max_priority(10);
  auto priority = ToSubscribeSpec(classic, options);
  ASSERT_TRUE(priority.ok()) << priority.status();
  EXPECT_EQ(priority->queue.max_priority, 10);
  EXPECT_FALSE(priority->queue.delivery_limit.has_value());
}

TEST(ToSubscribeSpecTest, AStreamIsDeclaredDurableWithItsAgeAndOffset) {
  MessagingServiceOptions options;
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("events");
  start.set_group("audit");
  start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_STREAM);
  start.mutable_queue_options()->mutable_max_age()->set_seconds(7200);
  start.mutable_offset()->set_offset(99);
  auto spec = ToSubscribeSpec(start, options);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->queue.stream);
  EXPECT_FALSE(spec->queue.quorum);
  EXPECT_TRUE(spec->queue.durable);
  EXPECT_EQ(spec->queue.max_age, "7200s");
  ASSERT_TRUE(spec->stream_start.has_value());
  EXPECT_EQ(spec->stream_start->kind, amqp::StreamStart::Kind::kOffset);
  EXPECT_EQ(spec->stream_start->value, 99);

  start.mutable_offset()->mutable_timestamp()->set_seconds(1700000000);
  spec = ToSubscribeSpec(start, options);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->stream_start->kind, amqp::StreamStart::Kind::kTimestamp);
  EXPECT_EQ(spec->stream_start->value, 1700000000);

  // A named queue with stream options is declared with them, not used as is.
  v1::SubscribeStart named;
  named.set_queue("log");
  named.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_STREAM);
  spec = ToSubscribeSpec(named, options);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->queue.use_existing);
}

TEST(ToSubscribeSpecTest, HeadersBindingsMatchSortedHeaders) {
  MessagingServiceOptions options;
  v1::SubscribeStart start;
  auto* topic = start.mutable_topic();
  topic->set_exchange("h");
  topic->set_exchange_type(v1::EXCHANGE_TYPE_HEADERS);
  (*topic->mutable_match_headers())["zone"] = "b";
  (*topic->mutable_match_headers())["app"] = "a";
  topic->set_match_any(true);
  auto spec = ToSubscribeSpec(start, options);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->binding->match_any);
  EXPECT_EQ(spec->binding->match_headers,
            (amqp::Headers{{"app", "a"}, {"zone", "b"}}));
}

TEST(ToSubscribeSpecTest, RefusesDepthOptionsWhereTheyDoNotApply) {
  MessagingServiceOptions options;
  auto refused = [&](const std::function<void(v1::SubscribeStart&)>& make) {
    v1::SubscribeStart start;
    start.set_queue("q");
    make(start);
    absl::Status s = ToSubscribeSpec(start, options).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    return std::string(s.message());
  };
  auto type = [](v1::SubscribeStart& s, v1::QueueType t) {
    s.mutable_queue_options()->set_queue_type(t);
    return s.mutable_queue_options();
  };
  EXPECT_THAT(refused([&](auto& s) {
                type(s, v1::QUEUE_TYPE_CLASSIC)->set_max_priority(256);
              }),
              HasSubstr("start.queue_options.max_priority"));
  EXPECT_THAT(refused([&](auto& s) {
                type(s, v1::QUEUE_TYPE_QUORUM)->set_max_priority(1);
              }),
              HasSubstr("start.queue_options.max_priority"));
  EXPECT_THAT(refused([&](auto& s) {
                type(s, v1::QUEUE_TYPE_UNSPECIFIED)->set_delivery_limit(2);
              }),
              HasSubstr("start.queue_options.delivery_limit"));
  EXPECT_THAT(
      refused([&](auto& s) {
        type(s, v1::QUEUE_TYPE_STREAM)->set_single_active_consumer(true);
      }),
      HasSubstr("start.queue_options.single_active_consumer"));
  EXPECT_THAT(
      refused([&](auto& s) {
        type(s, v1::QUEUE_TYPE_STREAM)->mutable_message_ttl()->set_seconds(5);
      }),
      HasSubstr("start.queue_options.message_ttl"));
  EXPECT_THAT(
      refused([&](auto& s) {
        type(s, v1::QUEUE_TYPE_CLASSIC)->mutable_max_age()->set_seconds(5);
      }),
      HasSubstr("start.queue_options.max_age"));
  EXPECT_THAT(refused([&](auto& s) {
                type(s, v1::QUEUE_TYPE_STREAM)->mutable_max_age()->set_nanos(1);
              }),
              HasSubstr("start.queue_options.max_age"));
  EXPECT_THAT(refused([&](auto& s) { s.mutable_offset()->set_last(true); }),
              HasSubstr("start.offset"));
  EXPECT_THAT(refused([&](auto& s) {
                type(s, v1::QUEUE_TYPE_STREAM);
                s.mutable_offset();
              }),
              HasSubstr("start.offset"));
  EXPECT_THAT(refused([&](auto& s) {
                s.mutable_topic()->set_exchange("e");
                (*s.mutable_topic()->mutable_match_headers())["a"] = "1";
              }),
              HasSubstr("start.topic.match_headers"));
  EXPECT_THAT(refused([&](auto& s) {
                s.mutable_topic()->set_exchange("e");
                s.mutable_topic()->set_exchange_type(v1::EXCHANGE_TYPE_HEADERS);
                (*s.mutable_topic()->mutable_match_headers())["X-Match"] = "1";
              }),
              HasSubstr("start.topic.match_headers"));
  EXPECT_THAT(refused([&](auto& s) {
                s.mutable_topic()->set_exchange("e");
                s.mutable_queue_options()->set_single_active_consumer(true);
              }),
              HasSubstr("start.queue_options.single_active_consumer"));
  EXPECT_THAT(refused([&](auto& s) {
                s.mutable_topic()->set_exchange("e");
                type(s, v1::QUEUE_TYPE_STREAM);
              }),
              HasSubstr("start.queue_options.queue_type"));
}

// The Call handler on the same in-process server.
class CallRpcTest : public SubscribeStreamTest {
 protected:
  // Calls on a thread of its own while this one runs the broker's events.
  grpc::Status Call(const v1::CallRequest& request,
                    v1::CallResponse* response) {
    std::atomic<bool> done{false};
    grpc::Status status;
    std::thread caller([&] {
      grpc::ClientContext context;
      status = stub_->Call(&context, request, response);
      done = true;
    });
    while (!done) {
      if (!broker_.RunUntilIdle()) absl::SleepFor(absl::Milliseconds(1));
    }
    caller.join();
    return status;
  }
};

TEST_F(CallRpcTest, TheReplyIsADeliveryThatNeedsNoAck) {
  broker_.call_answer = [](const amqp::OutgoingMessage& request) {
    amqp::Delivery reply;
    reply.delivery_tag = 42;
    reply.payload = "re: " + request.payload;
    reply.content_type = "text/plain";
    return reply;
  };
  v1::CallRequest request;
  request.mutable_message()->set_routing_key("rpc");
  request.mutable_message()->set_payload("hi");
  v1::CallResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  EXPECT_EQ(response.reply().payload(), "re: hi");
  EXPECT_EQ(response.reply().content_type(), "text/plain");
  EXPECT_EQ(response.reply().delivery_id(), 0u);
  EXPECT_EQ(response.reply().correlation_id(), "fake-call-1");
  EXPECT_EQ(service_.calls().calls(absl::StatusCode::kOk), 1u);
  EXPECT_EQ(service_.calls().in_flight(), 0);
}

TEST_F(CallRpcTest, NoReplySaysHowLongTheCallWaited) {
  v1::CallRequest request;
  request.mutable_message()->set_routing_key("rpc");
  v1::CallResponse response;
  const grpc::Status status = Call(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // No deadline of the caller's: the server's call_timeout.
  EXPECT_EQ(status.error_message(), "no reply within 30s");
  EXPECT_EQ(service_.calls().calls(absl::StatusCode::kDeadlineExceeded), 1u);
}

TEST_F(CallRpcTest, AnInvalidCallNeverReachesTheBroker) {
  v1::CallRequest request;
  request.mutable_message()->set_reply_to("mine");
  v1::CallResponse response;
  EXPECT_EQ(Call(request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  request.mutable_message()->clear_reply_to();
  request.mutable_message()->mutable_fence()->set_election("e");
  request.mutable_message()->mutable_fence()->set_fencing_token(1);
  const grpc::Status fenced = Call(request, &response);
  EXPECT_EQ(fenced.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(fenced.error_message(), ::testing::StartsWith("message.fence"));
  EXPECT_EQ(broker_.calls_.load(), 0);
}

}  // namespace
}  // namespace warren::messaging
