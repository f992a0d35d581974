// The queue side of messaging depth, end to end against the real RabbitMQ:
// headers routing, priority queues, the quorum delivery limit, streams with
// their offsets, single active consumer, and the refusals (bad input, and
// queues that exist with other arguments).
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// Unique per process and run: the broker keeps durable queues of earlier
// runs.
std::string Name(const std::string& base) {
  static const std::string* const suffix = new std::string(
      absl::StrCat(getpid(), "-", absl::ToUnixMicros(absl::Now())));
  return absl::StrCat("depth-", base, "-", *suffix);
}

struct NoFlags {
  static std::vector<std::string> Args() { return {}; }
};

std::vector<std::string> Payloads(const std::vector<v1::Delivery>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.payload());
  return out;
}

std::vector<std::string> Numbered(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i) out.push_back(absl::StrCat("m", i));
  return out;
}

class QueueDepthTest : public MessagingTestBase<NoFlags> {
 protected:
  void Publish(const v1::PublishRequest& request) {
    v1::PublishResponse ignored;
    grpc::Status s = stub_->Publish(CallContext().get(), request, &ignored);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  void PublishTo(const std::string& queue, const std::string& payload) {
    v1::PublishRequest r;
    r.set_routing_key(queue);
    r.set_payload(payload);
    Publish(r);
  }
  void PublishAllTo(const std::string& queue,
                    const std::vector<std::string>& payloads) {
    for (const auto& p : payloads) PublishTo(queue, p);
  }

  static v1::SubscribeStart StreamStart(const std::string& queue) {
    v1::SubscribeStart start;
    start.set_queue(queue);
    start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_STREAM);
    return start;
  }

  // Declares the stream (a subscription at `next` that ends at once).
  void DeclareStream(const std::string& queue) {
    TestSubscriber declare(*stub_, StreamStart(queue));
    ASSERT_EQ(declare.WaitSubscribed(), queue);
  }

  // Polls the broker's count until it reaches `n`.
  bool WaitReady(const std::string& queue, uint32_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      auto count = admin_->ReadyCount(queue);
      if (count.ok() && *count == n) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }
};

TEST_F(QueueDepthTest, HeadersAllAndAnyEachReceiveExactlyTheMatchingMessages) {
  const std::string exchange = Name("headers");
  auto start = [&](bool any) {
    v1::SubscribeStart s;
    auto* topic = s.mutable_topic();
    topic->set_exchange(exchange);
    topic->set_exchange_type(v1::EXCHANGE_TYPE_HEADERS);
    (*topic->mutable_match_headers())["region"] = "eu";
    (*topic->mutable_match_headers())["kind"] = "order";
    topic->set_match_any(any);
    return s;
  };
  TestSubscriber all(*stub_, start(false));
  TestSubscriber any(*stub_, start(true));
  ASSERT_NE(all.WaitSubscribed(), "");
  ASSERT_NE(any.WaitSubscribed(), "");
  const std::vector<std::pair<std::string, std::map<std::string, std::string>>>
      messages = {
          {"both", {{"region", "eu"}, {"kind", "order"}}},
          {"region", {{"region", "eu"}}},
          {"kind-extra", {{"kind", "order"}, {"other", "x"}}},
          {"wrong-value", {{"region", "us"}}},
          {"none", {}},
          // Last, so that what came before has arrived when it has.
          {"end", {{"region", "eu"}, {"kind", "order"}}},
      };
  for (const auto& [payload, headers] : messages) {
    v1::PublishRequest r;
    r.set_exchange(exchange);
    r.set_payload(payload);
    for (const auto& [k, v] : headers) (*r.mutable_headers())[k] = v;
    Publish(r);
  }
  ASSERT_TRUE(all.WaitDeliveries(2));
  ASSERT_TRUE(any.WaitDeliveries(4));
  EXPECT_THAT(Payloads(all.deliveries()), ElementsAre("both", "end"));
  EXPECT_THAT(Payloads(any.deliveries()),
              ElementsAre("both", "region", "kind-extra", "end"));
}

TEST_F(QueueDepthTest, APriorityQueueDeliversItsBacklogHighestFirst) {
  const std::string queue = Name("priority");
  v1::SubscribeStart start;
  start.set_queue(queue);
  start.mutable_queue_options()->set_max_priority(10);
  {
    TestSubscriber declare(*stub_, start);
    ASSERT_EQ(declare.WaitSubscribed(), queue);
  }
  for (uint32_t p : {1u, 7u, 3u, 10u, 0u, 5u}) {
    v1::PublishRequest r;
    r.set_routing_key(queue);
    r.set_priority(p);
    r.set_payload(absl::StrCat("p", p));
    Publish(r);
  }
  ASSERT_TRUE(WaitReady(queue, 6));
  TestSubscriber sub(*stub_, start);
  ASSERT_TRUE(sub.WaitDeliveries(6));
  EXPECT_THAT(Payloads(sub.deliveries()),
              ElementsAre("p10", "p7", "p5", "p3", "p1", "p0"));
}

TEST_F(QueueDepthTest, QuorumDeliveryLimitDeadLettersAfterThatManyDeliveries) {
  const std::string queue = Name("limited");
  const std::string dlx = Name("limited-dlx");
  const std::string dlq = Name("limited-dlq");
  ASSERT_TRUE(admin_->DeclareExchange(dlx, "fanout").ok());
  ASSERT_TRUE(admin_->DeclareQueue(dlq).ok());
  ASSERT_TRUE(admin_->Bind(dlq, dlx, "").ok());
  v1::SubscribeStart start;
  start.set_queue(queue);
  auto* options = start.mutable_queue_options();
  options->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  options->set_delivery_limit(3);
  options->set_dead_letter_exchange(dlx);
  TestSubscriber sub(*stub_, start);
  ASSERT_EQ(sub.WaitSubscribed(), queue);
  PublishTo(queue, "poison");
  // Nacked with requeue forever: the broker hands it out again until the
  // limit, then dead-letters it.
  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(sub.WaitDeliveries(n)) << n;
    ASSERT_TRUE(sub.Nack({sub.deliveries()[n - 1].delivery_id()}, true));
  }
  ASSERT_TRUE(WaitReady(dlq, 1));
  auto ds = sub.deliveries();
  ASSERT_EQ(ds.size(), 3u);
  EXPECT_EQ(ds[0].delivery_count(), 0u);
  EXPECT_EQ(ds[1].delivery_count(), 1u);
  EXPECT_EQ(ds[2].delivery_count(), 2u);
  EXPECT_TRUE(ds[2].redelivered());
}

TEST_F(QueueDepthTest, TwoSubscribersReplayTheSameStreamIndependently) {
  const std::string queue = Name("replay");
  DeclareStream(queue);
  PublishAllTo(queue, Numbered(0, 20));
  v1::SubscribeStart start = StreamStart(queue);
  start.mutable_offset()->set_first(true);
  TestSubscriber a(*stub_, start);
  ASSERT_TRUE(a.WaitDeliveries(20));
  // The first one acks everything: the stream keeps it for the second.
  std::vector<uint64_t> ids;
  for (const auto& d : a.deliveries()) ids.push_back(d.delivery_id());
  ASSERT_TRUE(a.Ack(ids));
  TestSubscriber b(*stub_, start);
  ASSERT_TRUE(b.WaitDeliveries(20));
  EXPECT_THAT(Payloads(a.deliveries()), ElementsAreArray(Numbered(0, 20)));
  EXPECT_THAT(Payloads(b.deliveries()), ElementsAreArray(Numbered(0, 20)));
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(a.deliveries()[i].stream_offset(),
              b.deliveries()[i].stream_offset());
    if (i > 0) {
      EXPECT_EQ(a.deliveries()[i].stream_offset(),
                a.deliveries()[i - 1].stream_offset() + 1);
    }
    EXPECT_EQ(a.deliveries()[i].headers().count("x-stream-offset"), 0u);
  }
}

TEST_F(QueueDepthTest, AResumedSubscriberGetsNoGapAndNoRepeat) {
  const std::string queue = Name("resume");
  DeclareStream(queue);
  // One publish pipeline: the broker writes them in few chunks, so the
  // resume offset falls mid-chunk and the server must skip what precedes it.
  PublishAllTo(queue, Numbered(0, 30));
  v1::SubscribeStart start = StreamStart(queue);
  start.mutable_offset()->set_first(true);
  uint64_t last_handled = 0;
  {
    TestSubscriber first(*stub_, start);
    ASSERT_TRUE(first.WaitDeliveries(30));
    auto ds = first.deliveries();
    for (size_t i = 0; i < 12; ++i)
      ASSERT_TRUE(first.Ack({ds[i].delivery_id()}));
    last_handled = ds[11].stream_offset();
    first.Cancel();  // the stream breaks
    grpc::Status ended;
    ASSERT_TRUE(first.WaitEnded(&ended));
  }
  PublishAllTo(queue, Numbered(30, 35));
  start.mutable_offset()->set_offset(last_handled + 1);
  TestSubscriber resumed(*stub_, start);
  ASSERT_TRUE(resumed.WaitDeliveries(23));
  // Nothing more than those: a later message proves nothing else was due.
  PublishTo(queue, "end");
  ASSERT_TRUE(resumed.WaitDeliveries(24));
  auto want = Numbered(12, 35);
  want.push_back("end");
  EXPECT_THAT(Payloads(resumed.deliveries()), ElementsAreArray(want));
  EXPECT_EQ(resumed.deliveries()[0].stream_offset(), last_handled + 1);
}

TEST_F(QueueDepthTest, StreamOffsetsByTimestampLastAndNext) {
  const std::string queue = Name("offsets");
  DeclareStream(queue);
  PublishAllTo(queue, Numbered(0, 5));
  // The broker stamps chunks in milliseconds and a timestamp offset counts
  // in seconds: wait for a second boundary past every earlier chunk.
  const absl::Time cut =
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 2);
  while (absl::Now() < cut) absl::SleepFor(absl::Milliseconds(20));
  PublishAllTo(queue, Numbered(5, 10));

  v1::SubscribeStart by_time = StreamStart(queue);
  by_time.mutable_offset()->mutable_timestamp()->set_seconds(
      absl::ToUnixSeconds(cut));
  TestSubscriber timed(*stub_, by_time);
  ASSERT_TRUE(timed.WaitDeliveries(5));
  EXPECT_THAT(Payloads(timed.deliveries()), ElementsAreArray(Numbered(5, 10)));

  // `last`: the last chunk, which holds the newest message (and maybe a
  // few before it).
  v1::SubscribeStart last = StreamStart(queue);
  last.mutable_offset()->set_last(true);
  TestSubscriber from_last(*stub_, last);
  ASSERT_TRUE(from_last.WaitDeliveries(1));
  const absl::Time settle = absl::Now() + absl::Seconds(30);
  while (from_last.deliveries().back().payload() != "m9" &&
         absl::Now() < settle) {
    ASSERT_TRUE(from_last.WaitDeliveries(from_last.delivery_count() + 1));
  }
  EXPECT_EQ(from_last.deliveries().back().payload(), "m9");
  EXPECT_LE(from_last.delivery_count(), 5u);

  // `next` (also the default): only what comes after the subscription.
  v1::SubscribeStart next = StreamStart(queue);
  next.mutable_offset()->set_next(true);
  TestSubscriber from_next(*stub_, next);
  TestSubscriber by_default(*stub_, StreamStart(queue));
  ASSERT_EQ(from_next.WaitSubscribed(), queue);
  ASSERT_EQ(by_default.WaitSubscribed(), queue);
  PublishTo(queue, "after");
  ASSERT_TRUE(from_next.WaitDeliveries(1));
  ASSERT_TRUE(by_default.WaitDeliveries(1));
  EXPECT_THAT(Payloads(from_next.deliveries()), ElementsAre("after"));
  EXPECT_THAT(Payloads(by_default.deliveries()), ElementsAre("after"));
}

TEST_F(QueueDepthTest, NackOnAStreamSettlesAndTheStreamKeepsTheMessage) {
  const std::string queue = Name("stream-nack");
  DeclareStream(queue);
  PublishAllTo(queue, Numbered(0, 3));
  v1::SubscribeStart start = StreamStart(queue);
  start.mutable_offset()->set_first(true);
  start.set_max_in_flight(1);
  TestSubscriber sub(*stub_, start);
  // With one in flight, each nack must settle for the next to come.
  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(sub.WaitDeliveries(n));
    ASSERT_TRUE(sub.Nack({sub.deliveries()[n - 1].delivery_id()}, n % 2 == 1));
  }
  EXPECT_THAT(Payloads(sub.deliveries()), ElementsAreArray(Numbered(0, 3)));
  TestSubscriber replay(*stub_, start);
  ASSERT_TRUE(replay.WaitDeliveries(1));
  EXPECT_EQ(replay.deliveries()[0].payload(), "m0");
}

TEST_F(QueueDepthTest, SingleActiveConsumerHandsOverWithNothingLost) {
  const std::string exchange = Name("sac-exchange");
  const std::string group = Name("sac");
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange(exchange);
  start.mutable_topic()->set_exchange_type(v1::EXCHANGE_TYPE_FANOUT);
  start.set_group(group);
  start.mutable_queue_options()->set_single_active_consumer(true);
  start.set_max_in_flight(4);
  auto active = std::make_unique<TestSubscriber>(*stub_, start);
  ASSERT_EQ(active->WaitSubscribed(), group);
  v1::SubscribeStart roomy = start;
  roomy.set_max_in_flight(0);
  TestSubscriber standby(*stub_, roomy);
  ASSERT_EQ(standby.WaitSubscribed(), group);
  for (const auto& p : Numbered(0, 10)) {
    v1::PublishRequest r;
    r.set_exchange(exchange);
    r.set_payload(p);
    Publish(r);
  }
  // Four in flight: once the broker has the acks of the first four, it
  // hands out the next four, so the test knows what was settled when the
  // stream breaks.
  ASSERT_TRUE(active->WaitDeliveries(4));
  auto ds = active->deliveries();
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(active->Ack({ds[i].delivery_id()}));
  }
  ASSERT_TRUE(active->WaitDeliveries(8));
  EXPECT_EQ(standby.delivery_count(), 0u);
  active->Cancel();
  grpc::Status ended;
  ASSERT_TRUE(active->WaitEnded(&ended));
  active.reset();
  ASSERT_TRUE(standby.WaitDeliveries(6));
  EXPECT_THAT(Payloads(standby.deliveries()),
              ElementsAreArray(Numbered(4, 10)));
}

TEST_F(QueueDepthTest, AnArgumentClashEndsOnlyThatSubscription) {
  const std::string other = Name("bystander");
  TestSubscriber bystander(*stub_, [&] {
    v1::SubscribeStart s;
    s.set_queue(other);
    return s;
  }());
  ASSERT_EQ(bystander.WaitSubscribed(), other);

  const std::string queue = Name("clash");
  ASSERT_TRUE(admin_->DeclareQueue(queue, {{"x-max-priority", 5}}).ok());
  v1::SubscribeStart start;
  start.set_queue(queue);
  start.mutable_queue_options()->set_max_priority(7);
  TestSubscriber clash(*stub_, start);
  grpc::Status ended;
  ASSERT_TRUE(clash.WaitEnded(&ended));
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(ended.error_message(),
              HasSubstr(absl::StrCat("queue ", queue, " exists with other")));
  EXPECT_THAT(ended.error_message(), HasSubstr("x-max-priority"));

  PublishTo(other, "still here");
  ASSERT_TRUE(bystander.WaitDeliveries(1));
  EXPECT_EQ(bystander.deliveries()[0].payload(), "still here");
}

TEST_F(QueueDepthTest, EveryBadStartIsRefusedNamingItsField) {
  struct Case {
    std::function<void(v1::SubscribeStart&)> make;
    std::string field;
  };
  auto options = [](v1::SubscribeStart& s) {
    s.set_queue(Name("bad"));
    return s.mutable_queue_options();
  };
  auto stream = [&](v1::SubscribeStart& s) {
    auto* o = options(s);
    o->set_queue_type(v1::QUEUE_TYPE_STREAM);
    return o;
  };
  auto headers = [](v1::SubscribeStart& s, v1::ExchangeType type) {
    s.mutable_topic()->set_exchange(Name("bad-headers"));
    s.mutable_topic()->set_exchange_type(type);
    return s.mutable_topic()->mutable_match_headers();
  };
  const Case cases[] = {
      {[&](auto& s) { options(s)->set_max_priority(256); },
       "start.queue_options.max_priority"},
      {[&](auto& s) {
         auto* o = options(s);
         o->set_queue_type(v1::QUEUE_TYPE_QUORUM);
         o->set_max_priority(5);
       },
       "start.queue_options.max_priority"},
      {[&](auto& s) { stream(s)->set_max_priority(5); },
       "start.queue_options.max_priority"},
      {[&](auto& s) { options(s)->set_delivery_limit(3); },
       "start.queue_options.delivery_limit"},
      {[&](auto& s) { stream(s)->set_delivery_limit(3); },
       "start.queue_options.delivery_limit"},
      {[&](auto& s) {
         s.mutable_topic()->set_exchange(Name("bad-sac"));
         s.mutable_queue_options()->set_single_active_consumer(true);
       },
       "start.queue_options.single_active_consumer"},
      {[&](auto& s) { stream(s)->set_single_active_consumer(true); },
       "start.queue_options.single_active_consumer"},
      {[&](auto& s) {
         s.mutable_topic()->set_exchange(Name("bad-stream"));
         s.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_STREAM);
       },
       "start.queue_options.queue_type"},
      {[&](auto& s) { options(s)->mutable_max_age()->set_seconds(60); },
       "start.queue_options.max_age"},
      {[&](auto& s) { stream(s)->mutable_max_age()->set_nanos(5); },
       "start.queue_options.max_age"},
      {[&](auto& s) { stream(s)->mutable_max_age()->set_seconds(-1); },
       "start.queue_options.max_age"},
      {[&](auto& s) { stream(s)->set_dead_letter_exchange("dlx"); },
       "start.queue_options.dead_letter_exchange"},
      {[&](auto& s) { stream(s)->set_dead_letter_routing_key("k"); },
       "start.queue_options.dead_letter_routing_key"},
      {[&](auto& s) { stream(s)->mutable_message_ttl()->set_seconds(1); },
       "start.queue_options.message_ttl"},
      {[&](auto& s) { stream(s)->set_max_length(10); },
       "start.queue_options.max_length"},
      {[&](auto& s) {
         options(s);
         s.mutable_offset()->set_first(true);
       },
       "start.offset"},
      {[&](auto& s) {
         stream(s);
         s.mutable_offset();
       },
       "start.offset"},
      {[&](auto& s) { (*headers(s, v1::EXCHANGE_TYPE_TOPIC))["a"] = "1"; },
       "start.topic.match_headers"},
      {[&](auto& s) { (*headers(s, v1::EXCHANGE_TYPE_HEADERS))[""] = "1"; },
       "start.topic.match_headers"},
      {[&](auto& s) {
         (*headers(s, v1::EXCHANGE_TYPE_HEADERS))["x-match"] = "any";
       },
       "start.topic.match_headers"},
      {[&](auto& s) {
         (*headers(s, v1::EXCHANGE_TYPE_HEADERS))[std::string(256, 'k')] = "1";
       },
       "start.topic.match_headers"},
  };
  for (const Case& c : cases) {
    v1::SubscribeStart start;
    c.make(start);
    TestSubscriber sub(*stub_, start);
    grpc::Status ended;
    ASSERT_TRUE(sub.WaitEnded(&ended)) << c.field;
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field << ": " << ended.error_message();
    EXPECT_THAT(ended.error_message(), HasSubstr(c.field));
  }
  // match_any alone is harmless.
  v1::SubscribeStart fine;
  fine.mutable_topic()->set_exchange(Name("any-alone"));
  fine.mutable_topic()->set_match_any(true);
  TestSubscriber sub(*stub_, fine);
  EXPECT_NE(sub.WaitSubscribed(), "") << [&] {
    grpc::Status ended;
    sub.WaitEnded(&ended, absl::ZeroDuration());
    return ended.error_message();
  }();
}

}  // namespace
}  // namespace warren::testing
