// MessagingService end to end: the real warrend and the real RabbitMQ,
// through the generated stubs; the broker's own view (AmqpAdmin) checks what
// the API says.
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;

// Names unique to this test process: durable queues outlive a run.
// Unique per process and run: the broker keeps queues from earlier runs, and
// a pid alone comes round again.
std::string Name(const std::string& base) {
  static const std::string* const suffix = new std::string(
      absl::StrCat(getpid(), "-", absl::ToUnixMicros(absl::Now())));
  return absl::StrCat(base, "-", *suffix);
}

struct MessagingFlags {
  static std::vector<std::string> Args() {
    return {"--publish_config_changes"};
  }
};

class MessagingTest : public MessagingTestBase<MessagingFlags> {
 protected:
  grpc::Status Publish(const v1::PublishRequest& request,
                       v1::PublishResponse* response = nullptr) {
    v1::PublishResponse ignored;
    return stub_->Publish(CallContext().get(), request,
                          response ? response : &ignored);
  }
  grpc::Status PublishTo(const std::string& queue, const std::string& payload) {
    v1::PublishRequest request;
    request.set_routing_key(queue);
    request.set_payload(payload);
    return Publish(request);
  }
  uint32_t Ready(const std::string& queue) {
    auto count = admin_->ReadyCount(queue);
    EXPECT_TRUE(count.ok()) << count.status();
    return count.ok() ? *count : 0;
  }
  static v1::SubscribeStart QueueStart(const std::string& queue,
                                       uint32_t max_in_flight = 0) {
    v1::SubscribeStart start;
    start.set_queue(queue);
    start.set_max_in_flight(max_in_flight);
    return start;
  }
  static std::vector<uint64_t> Ids(const std::vector<v1::Delivery>& ds) {
    std::vector<uint64_t> ids;
    for (const auto& d : ds) ids.push_back(d.delivery_id());
    return ids;
  }
};

TEST_F(MessagingTest, EveryFieldSurvivesTheRoundTrip) {
  const std::string queue = Name("roundtrip");
  ASSERT_TRUE(admin_->DeclareQueue(queue, {{"x-max-priority", 10}}).ok());
  v1::PublishRequest request;
  request.set_routing_key(queue);
  request.set_payload(std::string("bin\0ary\xff", 8));
  (*request.mutable_headers())["tenant"] = "acme";
  (*request.mutable_headers())["trace"] = "t-1";
  request.set_content_type("application/octet-stream");
  request.set_message_id("m-42");
  request.set_priority(7);
  v1::PublishResponse published;
  ASSERT_TRUE(Publish(request, &published).ok());
  EXPECT_EQ(published.message_id(), "m-42");

  TestSubscriber sub(*stub_, QueueStart(queue));
  EXPECT_EQ(sub.WaitSubscribed(), queue);
  ASSERT_TRUE(sub.WaitDeliveries(1));
  const v1::Delivery d = sub.deliveries()[0];
  EXPECT_EQ(d.payload(), std::string("bin\0ary\xff", 8));
  EXPECT_EQ(d.headers().at("tenant"), "acme");
  EXPECT_EQ(d.headers().at("trace"), "t-1");
  EXPECT_EQ(d.content_type(), "application/octet-stream");
  EXPECT_EQ(d.message_id(), "m-42");
  EXPECT_EQ(d.routing_key(), queue);
  EXPECT_EQ(d.exchange(), "");
  EXPECT_FALSE(d.redelivered());
  EXPECT_GT(d.timestamp().seconds(), 1700000000);
  EXPECT_TRUE(sub.Ack({d.delivery_id()}));

  // Without a message id the server makes one and returns it.
  v1::PublishRequest anonymous;
  anonymous.set_routing_key(queue);
  ASSERT_TRUE(Publish(anonymous, &published).ok());
  EXPECT_EQ(published.message_id().size(), 36u);
  ASSERT_TRUE(sub.WaitDeliveries(2));
  EXPECT_EQ(sub.deliveries()[1].message_id(), published.message_id());
}

TEST_F(MessagingTest, PriorityOrdersAWaitingQueue) {
  const std::string queue = Name("priority");
  ASSERT_TRUE(admin_->DeclareQueue(queue, {{"x-max-priority", 10}}).ok());
  for (uint32_t p : {1u, 9u, 5u}) {
    v1::PublishRequest r;
    r.set_routing_key(queue);
    r.set_priority(p);
    r.set_payload(std::to_string(p));
    ASSERT_TRUE(Publish(r).ok());
  }
  TestSubscriber sub(*stub_, QueueStart(queue));
  ASSERT_TRUE(sub.WaitDeliveries(3));
  auto ds = sub.deliveries();
  EXPECT_EQ(ds[0].payload(), "9");
  EXPECT_EQ(ds[1].payload(), "5");
  EXPECT_EQ(ds[2].payload(), "1");
}

TEST_F(MessagingTest, ExpiredMessagesLeaveAnUnconsumedQueue) {
  const std::string queue = Name("ttl");
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());
  v1::PublishRequest r;
  r.set_routing_key(queue);
  r.mutable_ttl()->set_nanos(200 * 1000 * 1000);
  ASSERT_TRUE(Publish(r).ok());
  v1::PublishRequest keep;
  keep.set_routing_key(queue);
  keep.set_payload("kept");
  ASSERT_TRUE(Publish(keep).ok());
  EXPECT_TRUE(WaitFor([&] { return Ready(queue) == 1; }, absl::Seconds(30)));
  TestSubscriber sub(*stub_, QueueStart(queue));
  ASSERT_TRUE(sub.WaitDeliveries(1));
  EXPECT_EQ(sub.deliveries()[0].payload(), "kept");
}

TEST_F(MessagingTest, PublishErrorsEndOnlyTheirOwnMessage) {
  const std::string queue = Name("errors");
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());
  v1::PublishRequest missing;
  missing.set_exchange(Name("no-such-exchange"));
  missing.set_routing_key("k");
  grpc::Status status = Publish(missing);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("no-such-exchange"));

  v1::PublishRequest unroutable;
  unroutable.set_exchange("amq.direct");
  unroutable.set_routing_key(Name("nobody-binds-this"));
  unroutable.set_mandatory(true);
  status = Publish(unroutable);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("unroutable"));
  unroutable.set_mandatory(false);  // dropped by the broker, as asked
  EXPECT_TRUE(Publish(unroutable).ok());

  // In one pipeline: good, missing exchange, unroutable, good.
  grpc::Status stream_status;
  auto outcomes = PublishAll(
      *stub_, 4,
      [&](size_t i) {
        v1::PublishRequest r;
        if (i == 1) r = missing;
        if (i == 2) {
          r = unroutable;
          r.set_mandatory(true);
        }
        if (i == 0 || i == 3) {
          r.set_routing_key(queue);
          r.set_payload(std::to_string(i));
        }
        return r;
      },
      &stream_status);
  ASSERT_TRUE(stream_status.ok()) << stream_status.error_message();
  ASSERT_EQ(outcomes.size(), 4u);
  std::map<uint64_t, int32_t> codes;
  for (const auto& o : outcomes) codes[o.sequence] = o.code;
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(codes[2], static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(codes[3], 0);
  EXPECT_TRUE(WaitFor([&] { return Ready(queue) == 2; }, absl::Seconds(10)));
}

TEST_F(MessagingTest, BadInputGetsItsCodeAndTheServerStaysHealthy) {
  v1::PublishRequest r;
  r.set_routing_key(std::string(256, 'k'));
  grpc::Status s = Publish(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("routing_key"));
  r.set_routing_key("k");
  r.set_payload(std::string((1 << 20) + 1, 'x'));
  s = Publish(r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("payload"));

  struct Case {
    std::function<void(v1::SubscribeStart&)> make;
    grpc::StatusCode code;
    std::string text;
  };
  const Case cases[] = {
      {[](auto&) {}, grpc::StatusCode::INVALID_ARGUMENT, "start.queue or"},
      {[](auto& s) { s.set_max_in_flight(1000000); },
       grpc::StatusCode::INVALID_ARGUMENT, "start.max_in_flight"},
      {[](auto& s) { s.mutable_topic()->set_exchange(std::string(300, 'e')); },
       grpc::StatusCode::INVALID_ARGUMENT, "start.topic.exchange"},
      // A queue that exists with other arguments: the broker's 406.
      {[&](auto& s) {
         const std::string q = Name("args-mismatch");
         EXPECT_TRUE(admin_->DeclareQueue(q, {{"x-max-length", 5}}).ok());
         s.set_queue(q);
         s.mutable_queue_options()->set_max_length(6);
       },
       grpc::StatusCode::FAILED_PRECONDITION, "x-max-length"},
  };
  for (const Case& c : cases) {
    v1::SubscribeStart start;
    c.make(start);
    if (start.source_case() == v1::SubscribeStart::SOURCE_NOT_SET &&
        start.max_in_flight() != 0) {
      start.set_queue(Name("any"));
    }
    TestSubscriber sub(*stub_, start);
    grpc::Status ended;
    ASSERT_TRUE(sub.WaitEnded(&ended));
    EXPECT_EQ(ended.error_code(), c.code) << ended.error_message();
    EXPECT_THAT(ended.error_message(), HasSubstr(c.text));
  }
  auto health = grpc::health::v1::Health::NewStub(warrend_->channel());
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(CallContext().get(), request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_TRUE(PublishTo(Name("still-fine"), "x").ok());
}

TEST_F(MessagingTest, StreamProtocolErrorsEndTheStreamAndRequeue) {
  const std::string queue = Name("protocol");
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(PublishTo(queue, "p").ok());
  {
    // Ack before start.
    grpc::ClientContext context;
    auto stream = stub_->Subscribe(&context);
    v1::SubscribeRequest ack;
    ack.mutable_ack()->add_delivery_ids(1);
    stream->Write(ack);
    v1::SubscribeResponse response;
    EXPECT_FALSE(stream->Read(&response));
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("before start"));
  }
  {
    TestSubscriber sub(*stub_, QueueStart(queue));
    ASSERT_TRUE(sub.WaitDeliveries(3));
    const uint64_t bogus = 1000 + sub.deliveries().back().delivery_id();
    sub.Ack({sub.deliveries()[0].delivery_id(), bogus});
    grpc::Status s;
    ASSERT_TRUE(sub.WaitEnded(&s));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr(std::to_string(bogus)));
  }
  // Nothing was acked (the ack was refused whole): all three are back.
  EXPECT_TRUE(WaitFor([&] { return Ready(queue) == 3; }, absl::Seconds(10)));
  {
    TestSubscriber sub(*stub_, QueueStart(queue));
    ASSERT_TRUE(sub.WaitDeliveries(1));
    v1::SubscribeRequest again;
    *again.mutable_start() = QueueStart(queue);
    sub.Send(again);
    grpc::Status s;
    ASSERT_TRUE(sub.WaitEnded(&s));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("twice"));
    // A settled id cannot be settled again.
  }
  {
    TestSubscriber sub(*stub_, QueueStart(queue));
    ASSERT_TRUE(sub.WaitDeliveries(3));
    const uint64_t id = sub.deliveries()[0].delivery_id();
    sub.Ack({id});
    sub.Ack({id});
    grpc::Status s;
    ASSERT_TRUE(sub.WaitEnded(&s));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("already settled"));
  }
  EXPECT_TRUE(WaitFor([&] { return Ready(queue) == 2; }, absl::Seconds(10)));
}

TEST_F(MessagingTest, MaxInFlightHoldsBackTheRestUntilAnAck) {
  const std::string queue = Name("inflight");
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(PublishTo(queue, std::to_string(i)).ok());
  }
  TestSubscriber sub(*stub_, QueueStart(queue, 5));
  ASSERT_TRUE(sub.WaitDeliveries(5));
  // The broker itself holds the other 15: nothing more is on its way.
  EXPECT_TRUE(WaitFor([&] { return Ready(queue) == 15; }, absl::Seconds(10)));
  EXPECT_EQ(sub.delivery_count(), 5u);
  sub.Ack({sub.deliveries()[0].delivery_id()});
  ASSERT_TRUE(sub.WaitDeliveries(6));
  EXPECT_TRUE(WaitFor([&] { return Ready(queue) == 14; }, absl::Seconds(10)));
  EXPECT_EQ(sub.delivery_count(), 6u);
}

TEST_F(MessagingTest, NackDeadLettersOrRequeuesAndCancelRedelivers) {
  const std::string dlx = Name("dlx");
  const std::string dead = Name("dead");
  const std::string work = Name("work");
  ASSERT_TRUE(admin_->DeclareExchange(dlx, "fanout").ok());
  ASSERT_TRUE(admin_->DeclareQueue(dead).ok());
  ASSERT_TRUE(admin_->Bind(dead, dlx, "").ok());
  v1::SubscribeStart start = QueueStart(work);
  start.mutable_queue_options()->set_dead_letter_exchange(dlx);
  {
    TestSubscriber sub(*stub_, start);
    ASSERT_EQ(sub.WaitSubscribed(), work);
    ASSERT_TRUE(PublishTo(work, "to-the-dead").ok());
    ASSERT_TRUE(PublishTo(work, "again").ok());
    ASSERT_TRUE(sub.WaitDeliveries(2));
    auto ds = sub.deliveries();
    sub.Nack({ds[0].delivery_id()}, /*requeue=*/false);
    sub.Nack({ds[1].delivery_id()}, /*requeue=*/true);
    ASSERT_TRUE(sub.WaitDeliveries(3));
    const v1::Delivery back = sub.deliveries()[2];
    EXPECT_EQ(back.payload(), "again");
    EXPECT_TRUE(back.redelivered());
    EXPECT_TRUE(WaitFor([&] { return Ready(dead) == 1; }, absl::Seconds(10)));
    // Leaves with "again" unacked: cancelled streams give it back.
    sub.Cancel();
    grpc::Status s;
    ASSERT_TRUE(sub.WaitEnded(&s));
  }
  TestSubscriber next(*stub_, start);
  ASSERT_TRUE(next.WaitDeliveries(1));
  EXPECT_EQ(next.deliveries()[0].payload(), "again");
  EXPECT_TRUE(next.deliveries()[0].redelivered());
}

TEST_F(MessagingTest, GroupMembersCompeteAndFanOutReachesEveryone) {
  const std::string exchange = Name("events");
  v1::SubscribeStart group;
  group.mutable_topic()->set_exchange(exchange);
  group.mutable_topic()->add_binding_keys("task.#");
  group.set_group(Name("workers"));
  group.set_max_in_flight(10);
  v1::SubscribeStart fanout = group;
  fanout.clear_group();
  TestSubscriber w1(*stub_, group), w2(*stub_, group);
  TestSubscriber f1(*stub_, fanout), f2(*stub_, fanout);
  for (auto* s : {&w1, &w2, &f1, &f2})
    ASSERT_FALSE(s->WaitSubscribed().empty());
  EXPECT_NE(f1.WaitSubscribed(), f2.WaitSubscribed());

  constexpr int kMessages = 200;
  grpc::Status status;
  auto outcomes = PublishAll(
      *stub_, kMessages,
      [&](size_t i) {
        v1::PublishRequest r;
        r.set_exchange(exchange);
        r.set_routing_key(i % 2 ? "task.a" : "task.b.c");
        r.set_message_id(absl::StrCat("task-", i));
        return r;
      },
      &status);
  ASSERT_TRUE(status.ok());
  for (const auto& o : outcomes) ASSERT_EQ(o.code, 0) << o.error;

  // Workers ack as they go; together they see each message exactly once.
  std::set<std::string> seen;
  size_t w1_count = 0, w2_count = 0;
  std::map<TestSubscriber*, size_t> acked;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (auto* w : {&w1, &w2}) {
          auto ds = w->deliveries();
          std::vector<uint64_t> ids;
          for (size_t i = acked[w]; i < ds.size(); ++i) {
            ids.push_back(ds[i].delivery_id());
          }
          if (!ids.empty()) w->Ack(ids);
          acked[w] = ds.size();
        }
        return w1.delivery_count() + w2.delivery_count() >= kMessages;
      },
      absl::Seconds(60)));
  for (auto* w : {&w1, &w2}) {
    for (const auto& d : w->deliveries()) {
      EXPECT_TRUE(seen.insert(d.message_id()).second)
          << d.message_id() << " delivered twice";
    }
    (w == &w1 ? w1_count : w2_count) = w->delivery_count();
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kMessages));
  EXPECT_GT(w1_count, 0u);
  EXPECT_GT(w2_count, 0u);

  for (auto* f : {&f1, &f2}) {
    std::set<std::string> got;
    ASSERT_TRUE(WaitFor(
        [&] {
          auto ds = f->deliveries();
          std::vector<uint64_t> ids;
          for (const auto& d : ds) {
            if (got.insert(d.message_id()).second)
              ids.push_back(d.delivery_id());
          }
          if (!ids.empty()) f->Ack(ids);
          return got.size() == kMessages;
        },
        absl::Seconds(60)));
  }
}

TEST_F(MessagingTest, QuorumQueueCountsDeliveries) {
  const std::string exchange = Name("qx");
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange(exchange);
  start.mutable_topic()->add_binding_keys("q");
  start.set_group(Name("quorum-group"));
  start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  TestSubscriber sub(*stub_, start);
  ASSERT_FALSE(sub.WaitSubscribed().empty());
  v1::PublishRequest r;
  r.set_exchange(exchange);
  r.set_routing_key("q");
  r.set_payload("quorum");
  ASSERT_TRUE(Publish(r).ok());
  ASSERT_TRUE(sub.WaitDeliveries(1));
  sub.Nack({sub.deliveries()[0].delivery_id()}, true);
  ASSERT_TRUE(sub.WaitDeliveries(2));
  const v1::Delivery again = sub.deliveries()[1];
  EXPECT_EQ(again.payload(), "quorum");
  EXPECT_TRUE(again.redelivered());
  EXPECT_EQ(again.delivery_count(), 1u);
  // Declared as a quorum queue: declaring it as classic is refused.
  auto classic = admin_->DeclareQueue(Name("quorum-group"));
  EXPECT_FALSE(classic.ok());
}

TEST_F(MessagingTest, HundredThousandPipelinedMessagesArriveExactly) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan makes warrend some three times slower; a memory error shows at any
  // volume, and the plain tree's run checks the whole hundred thousand.
  constexpr size_t kMessages = 20000;
#else
  constexpr size_t kMessages = 100000;
#endif
  const std::string queue = Name("bulk");
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());
  grpc::Status status;
  const absl::Time start_time = absl::Now();
  auto outcomes = PublishAll(
      *stub_, kMessages,
      [&](size_t i) {
        v1::PublishRequest r;
        r.set_routing_key(queue);
        r.set_message_id(absl::StrCat("bulk-", i));
        r.set_payload("0123456789abcdef");
        return r;
      },
      &status);
  const absl::Duration publish_time = absl::Now() - start_time;
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(outcomes.size(), kMessages);
  std::set<std::string> confirmed;
  std::set<uint64_t> sequences;
  for (const auto& o : outcomes) {
    sequences.insert(o.sequence);
    if (o.code == 0) confirmed.insert(o.message_id);
  }
  EXPECT_EQ(sequences.size(), kMessages) << "one response per request";
  EXPECT_EQ(confirmed.size(), kMessages);

  TestSubscriber sub(*stub_, QueueStart(queue, 1000));
  std::set<std::string> consumed;
  size_t acked = 0, duplicates_unexplained = 0;
  const absl::Time consume_start = absl::Now();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto ds = sub.deliveries();
        std::vector<uint64_t> ids;
        for (size_t i = acked; i < ds.size(); ++i) {
          if (!consumed.insert(ds[i].message_id()).second &&
              !ds[i].redelivered()) {
            ++duplicates_unexplained;
          }
          ids.push_back(ds[i].delivery_id());
        }
        if (!ids.empty()) sub.Ack(ids);
        acked = ds.size();
        return consumed.size() >= confirmed.size();
      },
      absl::Seconds(240)));
  const absl::Duration consume_time = absl::Now() - consume_start;
  EXPECT_EQ(consumed, confirmed);
  EXPECT_EQ(duplicates_unexplained, 0u);
  RecordProperty(
      "publish_stream_msgs_per_s",
      static_cast<int>(kMessages / absl::ToDoubleSeconds(publish_time)));
  RecordProperty(
      "subscribe_msgs_per_s",
      static_cast<int>(kMessages / absl::ToDoubleSeconds(consume_time)));
}

TEST_F(MessagingTest, ConfigChangesAreAnnouncedOnRabbitMq) {
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("warren.config");
  start.mutable_topic()->add_binding_keys(Name("fan") + ".#");
  TestSubscriber sub(*stub_, start);
  ASSERT_FALSE(sub.WaitSubscribed().empty());
  auto config = v1::ConfigService::NewStub(warrend_->channel());
  v1::PutConfigRequest put;
  put.set_key(Name("fan") + "/db/url");
  put.set_value("postgres://db");
  v1::PutConfigResponse written;
  ASSERT_TRUE(config->PutConfig(CallContext().get(), put, &written).ok());
  v1::DeleteConfigRequest del;
  del.set_key(put.key());
  v1::DeleteConfigResponse deleted;
  ASSERT_TRUE(config->DeleteConfig(CallContext().get(), del, &deleted).ok());
  ASSERT_TRUE(sub.WaitDeliveries(2));
  auto ds = sub.deliveries();
  EXPECT_EQ(ds[0].routing_key(), Name("fan") + ".db.url");
  EXPECT_EQ(ds[0].headers().at("warren-change-type"), "PUT");
  EXPECT_EQ(ds[0].content_type(), "application/json");
  EXPECT_THAT(ds[0].payload(), HasSubstr(put.key()));
  EXPECT_EQ(ds[1].headers().at("warren-change-type"), "DELETE");
}

// RabbitMQ gives a connection 2047 channels (channel_max) and every
// subscription takes one: more concurrent streams than that need warrend to
// spread them over more connections. All of them subscribe, every one gets a
// fan-out message, and when they end their channels and exclusive queues go.
TEST(MessagingScaleTest, MoreSubscriptionsThanOneConnectionHasChannels) {
  // One client connection carries them all: let it.
  auto warrend = WarrendProcess::Start({"--max_concurrent_streams=5000"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto stub = v1::MessagingService::NewStub((*warrend)->channel());
  const std::string exchange = Name("scale-fanout");
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange(exchange);
  start.mutable_topic()->set_exchange_type(v1::EXCHANGE_TYPE_FANOUT);
  start.set_max_in_flight(10);
  constexpr size_t kStreams = 2300;
  v1::PublishRequest hello;
  hello.set_exchange(exchange);
  hello.set_payload("to everyone");
  hello.set_mandatory(true);
  const absl::Time began = absl::Now();
  {
    SubscriberSwarm swarm(*stub, start, kStreams);
    ASSERT_TRUE(swarm.WaitUntil(
        [](SubscriberSwarm& s) {
          return s.subscribed() + s.ended() == s.size();
        },
        absl::Seconds(60)));
    RecordProperty(
        "subscribe_ms",
        static_cast<int>(absl::ToInt64Milliseconds(absl::Now() - began)));
    ASSERT_EQ(swarm.subscribed(), kStreams)
        << swarm.ended() << " ended, e.g. "
        << swarm.end_message(grpc::StatusCode::RESOURCE_EXHAUSTED)
        << swarm.end_message(grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT((*warrend)->Log(), HasSubstr("opening connection 2 of"));

    v1::PublishResponse response;
    ASSERT_TRUE(stub->Publish(CallContext().get(), hello, &response).ok());
    EXPECT_TRUE(swarm.WaitUntil(
        [](SubscriberSwarm& s) { return s.with_deliveries(1) == s.size(); },
        absl::Seconds(30)))
        << swarm.with_deliveries(1) << " of " << kStreams << " got it";
    EXPECT_EQ(swarm.ended(), 0u);

    RecordProperty(
        "delivered_ms",
        static_cast<int>(absl::ToInt64Milliseconds(absl::Now() - began)));
    swarm.CancelAll();
    EXPECT_TRUE(swarm.WaitUntil(
        [](SubscriberSwarm& s) { return s.ended() == s.size(); },
        absl::Seconds(30)));
    RecordProperty(
        "cancelled_ms",
        static_cast<int>(absl::ToInt64Milliseconds(absl::Now() - began)));
  }
  // Every stream's queue went with its channel: nothing is bound any more,
  // so a mandatory message is unroutable.
  EXPECT_TRUE(WaitFor(
      [&] {
        v1::PublishResponse response;
        return stub->Publish(CallContext().get(), hello, &response)
                   .error_code() == grpc::StatusCode::FAILED_PRECONDITION;
      },
      absl::Seconds(30)));
  RecordProperty(
      "unbound_ms",
      static_cast<int>(absl::ToInt64Milliseconds(absl::Now() - began)));
  // And the freed channels are used again: no third connection.
  {
    SubscriberSwarm again(*stub, start, 100);
    EXPECT_TRUE(again.WaitUntil(
        [](SubscriberSwarm& s) { return s.subscribed() == s.size(); },
        absl::Seconds(30)));
  }
  EXPECT_THAT((*warrend)->Log(),
              ::testing::Not(HasSubstr("opening connection 3 of")));
}

}  // namespace
}  // namespace warren::testing
