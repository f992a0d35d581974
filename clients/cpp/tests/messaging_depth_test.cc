// Delays, retries, streams, single active consumer, headers routing and
// request/reply through the C++ wrappers, against the real warrend and
// RabbitMQ.
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"
#include "warren/client/channel.h"
#include "warren/client/publisher.h"
#include "warren/client/responder.h"
#include "warren/client/stream_offset.h"
#include "warren/client/subscriber.h"

namespace warren::client::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::warren::testing::TestEnv;
using ::warren::testing::WaitFor;

struct Flags {
  static std::vector<std::string> Args() { return {"--log_level=warn"}; }
};

class MessagingDepthTest : public warren::testing::SharedWarrendTest<Flags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    channel_ = MakeChannel(warrend_->address());
    auto admin =
        warren::testing::AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = *std::move(admin);
  }
  void TearDown() override {
    for (const auto& q : queues_) (void)admin_->DeleteQueue(q);
  }

  std::string NewQueue() {
    queues_.push_back(UniqueName("cpp-depth"));
    return queues_.back();
  }

  static SubscriberOptions OptionsFor(const std::string& queue) {
    SubscriberOptions options;
    options.start.set_queue(queue);
    options.max_in_flight = 1;
    options.backoff = FastBackoff();
    return options;
  }
  static SubscriberOptions StreamOptions(const std::string& queue,
                                         v1::StreamOffset offset) {
    SubscriberOptions options = OptionsFor(queue);
    options.start.mutable_queue_options()->set_queue_type(
        v1::QUEUE_TYPE_STREAM);
    *options.start.mutable_offset() = std::move(offset);
    return options;
  }
  static DeliveryHandler Into(Received& received) {
    return [&received](const v1::Delivery& d) {
      received.Add(d);
      return absl::OkStatus();
    };
  }
  void PublishAll(const std::string& queue,
                  const std::vector<std::string>& payloads) {
    Publisher publisher(channel_);
    for (const auto& payload : payloads) {
      ASSERT_TRUE(publisher.PublishToQueue(queue, payload).ok());
    }
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<warren::testing::AmqpAdmin> admin_;
  std::vector<std::string> queues_;
};

std::vector<uint64_t> Offsets(const Received& received) {
  std::vector<uint64_t> out;
  for (const auto& d : received.deliveries()) out.push_back(d.stream_offset());
  return out;
}

TEST_F(MessagingDepthTest, ADelayedPublishArrivesAfterItsDelay) {
  const std::string queue = NewQueue();
  warren::Mutex mu;
  std::map<std::string, absl::Time> arrived;
  auto subscriber = Subscriber::Start(channel_, OptionsFor(queue),
                                      [&](const v1::Delivery& d) {
                                        warren::MutexLock lock(&mu);
                                        arrived[d.payload()] = absl::Now();
                                        return absl::OkStatus();
                                      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  Publisher publisher(channel_);
  v1::PublishRequest later;
  later.set_routing_key(queue);
  later.set_payload("later");
  const absl::Time sent = absl::Now();
  ASSERT_TRUE(publisher.PublishDelayed(later, absl::Seconds(1)).ok());
  ASSERT_TRUE(publisher.PublishToQueue(queue, "now").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        warren::MutexLock lock(&mu);
        return arrived.size() == 2;
      },
      absl::Seconds(30)));
  (*subscriber)->Stop();
  warren::MutexLock lock(&mu);
  EXPECT_LT(arrived["now"], arrived["later"]);
  // Never early; late by at most the rounding (none for 1 s) plus the
  // broker's expiry pass.
  EXPECT_GE(arrived["later"] - sent, absl::Seconds(1));
  EXPECT_LT(arrived["later"] - sent, absl::Seconds(5));
}

TEST_F(MessagingDepthTest, ARetryComesBackAfterItsDelayCountedAndOthersFlow) {
  const std::string queue = NewQueue();
  Received received;
  warren::Mutex mu;
  std::vector<absl::Time> poison_times;
  SubscriberOptions options = OptionsFor(queue);
  auto subscriber = Subscriber::Start(
      channel_, options, [&](const v1::Delivery& d) -> absl::Status {
        received.Add(d);
        if (d.payload() == "poison") {
          warren::MutexLock lock(&mu);
          poison_times.push_back(absl::Now());
        }
        if (d.payload() == "poison" && d.delivery_count() == 0) {
          return RetryAfter(absl::Milliseconds(500));
        }
        return absl::OkStatus();
      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  PublishAll(queue, {"poison", "other"});
  ASSERT_TRUE(received.WaitSize(3));
  (*subscriber)->Stop();
  const auto deliveries = received.deliveries();
  ASSERT_EQ(deliveries.size(), 3u);
  EXPECT_THAT(received.payloads(), ElementsAre("poison", "other", "poison"));
  EXPECT_EQ(deliveries[0].delivery_count(), 0u);
  EXPECT_EQ(deliveries[2].delivery_count(), 1u);
  // Warren's own bookkeeping stays out of the headers.
  EXPECT_EQ(deliveries[2].headers().count("warren-retries"), 0u);
  EXPECT_EQ(deliveries[2].routing_key(), queue);
  warren::MutexLock lock(&mu);
  ASSERT_EQ(poison_times.size(), 2u);
  // Never early; late by at most the broker's expiry pass and our slack.
  EXPECT_GE(poison_times[1] - poison_times[0], absl::Milliseconds(500));
  EXPECT_LT(poison_times[1] - poison_times[0], absl::Seconds(3));
}

TEST_F(MessagingDepthTest, TwoSubscribersReplayAStreamFromTheFirstMessage) {
  const std::string queue = NewQueue();
  Received first_reader;
  auto a = Subscriber::Start(channel_, StreamOptions(queue, StreamFirst()),
                             Into(first_reader));
  ASSERT_TRUE(a.ok()) << a.status();
  const std::vector<std::string> sent = {"s0", "s1", "s2", "s3", "s4"};
  PublishAll(queue, sent);
  ASSERT_TRUE(first_reader.WaitSize(sent.size()));
  Received second_reader;
  auto b = Subscriber::Start(channel_, StreamOptions(queue, StreamFirst()),
                             Into(second_reader));
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(second_reader.WaitSize(sent.size()));
  (*a)->Stop();
  (*b)->Stop();
  EXPECT_THAT(first_reader.payloads(), ElementsAreArray(sent));
  EXPECT_THAT(second_reader.payloads(), ElementsAreArray(sent));
  EXPECT_EQ(Offsets(first_reader), Offsets(second_reader));
  const auto offsets = Offsets(first_reader);
  for (size_t i = 1; i < offsets.size(); ++i) {
    EXPECT_EQ(offsets[i], offsets[i - 1] + 1);
  }
  EXPECT_EQ((*a)->last_stream_offset(), offsets.back());
}

TEST_F(MessagingDepthTest, AStoredOffsetResumesWithoutGapOrRepeat) {
  const std::string queue = NewQueue();
  Received before;
  auto a = Subscriber::Start(channel_, StreamOptions(queue, StreamFirst()),
                             Into(before));
  ASSERT_TRUE(a.ok()) << a.status();
  PublishAll(queue, {"r0", "r1", "r2"});
  ASSERT_TRUE(before.WaitSize(3));
  (*a)->Stop();
  const std::optional<uint64_t> stored = (*a)->last_stream_offset();
  ASSERT_TRUE(stored.has_value());
  PublishAll(queue, {"r3", "r4"});
  Received after;
  auto b = Subscriber::Start(
      channel_, StreamOptions(queue, ResumeAfter(*stored)), Into(after));
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(after.WaitSize(2));
  PublishAll(queue, {"r5"});
  ASSERT_TRUE(after.WaitSize(3));
  (*b)->Stop();
  EXPECT_THAT(before.payloads(), ElementsAre("r0", "r1", "r2"));
  EXPECT_THAT(after.payloads(), ElementsAre("r3", "r4", "r5"));
  EXPECT_EQ(after.deliveries()[0].stream_offset(), *stored + 1);
}

TEST_F(MessagingDepthTest, OnlyTheSingleActiveConsumerReceivesUntilItStops) {
  const std::string queue = NewQueue();
  auto options = [&] {
    SubscriberOptions o = OptionsFor(queue);
    o.start.mutable_queue_options()->set_single_active_consumer(true);
    return o;
  };
  Received active;
  Received standby;
  auto a = Subscriber::Start(channel_, options(), Into(active));
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = Subscriber::Start(channel_, options(), Into(standby));
  ASSERT_TRUE(b.ok()) << b.status();
  PublishAll(queue, {"a0", "a1", "a2", "a3", "a4"});
  ASSERT_TRUE(active.WaitSize(5));
  (*a)->Stop();
  PublishAll(queue, {"b0", "b1", "b2"});
  ASSERT_TRUE(standby.WaitSize(3));
  (*b)->Stop();
  EXPECT_THAT(active.payloads(), ElementsAre("a0", "a1", "a2", "a3", "a4"));
  EXPECT_THAT(standby.payloads(), ElementsAre("b0", "b1", "b2"));
}

TEST_F(MessagingDepthTest, HeadersBindingsReceiveExactlyTheMatchingMessages) {
  const std::string exchange = UniqueName("cpp-headers");
  auto options = [&](bool any) {
    SubscriberOptions o;
    o.backoff = FastBackoff();
    auto* topic = o.start.mutable_topic();
    topic->set_exchange(exchange);
    topic->set_exchange_type(v1::EXCHANGE_TYPE_HEADERS);
    (*topic->mutable_match_headers())["format"] = "pdf";
    (*topic->mutable_match_headers())["type"] = "report";
    topic->set_match_any(any);
    return o;
  };
  Received all;
  Received any;
  auto a = Subscriber::Start(channel_, options(false), Into(all));
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = Subscriber::Start(channel_, options(true), Into(any));
  ASSERT_TRUE(b.ok()) << b.status();
  PublisherOptions unrouted_is_fine;
  unrouted_is_fine.mandatory = false;
  Publisher publisher(channel_, unrouted_is_fine);
  auto publish = [&](const std::string& payload,
                     std::map<std::string, std::string> headers) {
    v1::PublishRequest request;
    request.set_exchange(exchange);
    request.set_payload(payload);
    request.mutable_headers()->insert(headers.begin(), headers.end());
    ASSERT_TRUE(publisher.Publish(request).ok());
  };
  publish("both", {{"format", "pdf"}, {"type", "report"}});
  publish("format only", {{"format", "pdf"}});
  publish("other type", {{"type", "log"}});
  publish("no headers", {});
  // Last, and for both: once it is in, everything before it was routed.
  publish("sentinel", {{"format", "pdf"}, {"type", "report"}, {"x", "y"}});
  ASSERT_TRUE(all.WaitSize(2));
  ASSERT_TRUE(any.WaitSize(3));
  (*a)->Stop();
  (*b)->Stop();
  EXPECT_THAT(all.payloads(), ElementsAre("both", "sentinel"));
  EXPECT_THAT(any.payloads(), ElementsAre("both", "format only", "sentinel"));
}

TEST_F(MessagingDepthTest, EveryCallGetsItsOwnReplyFromAResponder) {
  const std::string queue = NewQueue();
  ResponderOptions options;
  options.subscriber = OptionsFor(queue);
  options.subscriber.max_in_flight = 4;
  auto responder = Responder::Start(
      channel_, options,
      [](const v1::Delivery& request) -> absl::StatusOr<Reply> {
        return Reply{absl::StrCat("re:", request.payload()),
                     {{"answered", "yes"}},
                     "text/plain"};
      });
  ASSERT_TRUE(responder.ok()) << responder.status();
  Publisher publisher(channel_);
  constexpr int kCalls = 20;
  std::vector<absl::StatusOr<v1::Delivery>> replies(
      kCalls, absl::UnknownError("not called"));
  std::vector<std::thread> callers;
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&, i] {
      v1::PublishRequest request;
      request.set_routing_key(queue);
      request.set_payload(absl::StrCat("q", i));
      replies[i] = publisher.Call(request, absl::Seconds(20));
    });
  }
  for (auto& caller : callers) caller.join();
  (*responder)->Stop();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(replies[i].ok()) << i << ": " << replies[i].status();
    EXPECT_EQ(replies[i]->payload(), absl::StrCat("re:q", i));
    EXPECT_EQ(replies[i]->content_type(), "text/plain");
    EXPECT_EQ(replies[i]->headers().at("answered"), "yes");
  }
}

TEST_F(MessagingDepthTest, ACallNobodyAnswersIsDeadlineExceeded) {
  const std::string queue = NewQueue();
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());
  Publisher publisher(channel_);
  v1::PublishRequest request;
  request.set_routing_key(queue);
  request.set_payload("anyone?");
  const absl::Time start = absl::Now();
  auto reply = publisher.Call(request, absl::Seconds(1));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded)
      << reply.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(990));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

// A warrend of its own, restarted under a stream subscription.
class MessagingDepthFaultTest : public MessagingDepthTest {};

TEST_F(MessagingDepthFaultTest, AStreamResumesAfterARestartWithoutGapOrRepeat) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  const std::string queue = NewQueue();
  Received received;
  auto subscriber = Subscriber::Start(
      channel, StreamOptions(queue, StreamFirst()), Into(received));
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  Publisher publisher(channel);
  for (const char* payload : {"k0", "k1", "k2"}) {
    ASSERT_TRUE(publisher.PublishToQueue(queue, payload).ok());
  }
  ASSERT_TRUE(received.WaitSize(3));
  EXPECT_EQ((*warrend)->Stop(), 0);
  ASSERT_TRUE((*warrend)->Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return (*subscriber)->subscriptions() >= 2; },
                      absl::Seconds(30)))
      << (*subscriber)->status();
  for (const char* payload : {"k3", "k4", "k5"}) {
    ASSERT_TRUE(publisher.PublishToQueue(queue, payload).ok());
  }
  ASSERT_TRUE(received.WaitSize(6));
  (*subscriber)->Stop();
  EXPECT_THAT(received.payloads(),
              ElementsAre("k0", "k1", "k2", "k3", "k4", "k5"));
  const auto offsets = Offsets(received);
  for (size_t i = 1; i < offsets.size(); ++i) {
    EXPECT_EQ(offsets[i], offsets[i - 1] + 1);
  }
}

}  // namespace
}  // namespace warren::client::testing
