// Publisher and Subscriber against the real warrend and RabbitMQ.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <stdexcept>
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
#include "warren/client/subscriber.h"

namespace warren::client::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAreArray;
using ::warren::testing::TestEnv;
using ::warren::testing::WaitFor;

struct Flags {
  static std::vector<std::string> Args() { return {"--log_level=warn"}; }
};

class PublisherSubscriberTest
    : public warren::testing::SharedWarrendTest<Flags> {
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
    queues_.push_back(UniqueName("cpp-client"));
    return queues_.back();
  }

  SubscriberOptions QueueOptions(const std::string& queue,
                                 uint32_t max_in_flight = 8) {
    SubscriberOptions options;
    options.start.set_queue(queue);
    options.max_in_flight = max_in_flight;
    options.backoff = FastBackoff();
    return options;
  }

  // Proves that `queue` holds nothing but what is published now: a message
  // that was not acked (or was requeued) would come before the sentinel.
  void ExpectQueueEmpty(const std::string& queue) {
    Received received;
    auto subscriber = Subscriber::Start(channel_, QueueOptions(queue, 1),
                                        [&](const v1::Delivery& d) {
                                          received.Add(d);
                                          return absl::OkStatus();
                                        });
    ASSERT_TRUE(subscriber.ok()) << subscriber.status();
    Publisher publisher(channel_);
    ASSERT_TRUE(publisher.PublishToQueue(queue, "sentinel").ok());
    ASSERT_TRUE(received.WaitSize(1));
    (*subscriber)->Stop();
    EXPECT_THAT(received.payloads(), ElementsAre("sentinel"));
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<warren::testing::AmqpAdmin> admin_;
  std::vector<std::string> queues_;
};

TEST_F(PublisherSubscriberTest, MessagesReceivedEqualMessagesSent) {
  const std::string queue = NewQueue();
  Received received;
  // A prefetch of 2 for 30 messages: all of them arrive only if every ack
  // reaches the broker.
  auto subscriber = Subscriber::Start(channel_, QueueOptions(queue, 2),
                                      [&](const v1::Delivery& d) {
                                        received.Add(d);
                                        return absl::OkStatus();
                                      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  EXPECT_EQ((*subscriber)->queue(), queue);

  Publisher publisher(channel_);
  std::vector<std::string> sent;
  std::set<std::string> ids;
  for (int i = 0; i < 30; ++i) {
    sent.push_back(absl::StrCat("message-", i));
    auto id = publisher.PublishToQueue(queue, sent.back());
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_TRUE(ids.insert(*id).second) << "duplicate id " << *id;
  }
  ASSERT_TRUE(received.WaitSize(sent.size()));
  (*subscriber)->Stop();
  EXPECT_THAT(received.payloads(), UnorderedElementsAreArray(sent));
  std::set<std::string> received_ids;
  for (const auto& d : received.deliveries()) {
    received_ids.insert(d.message_id());
    EXPECT_FALSE(d.redelivered());
  }
  EXPECT_EQ(received_ids, ids);
  EXPECT_TRUE((*subscriber)->status().ok());
  ExpectQueueEmpty(queue);
}

TEST_F(PublisherSubscriberTest, AtMostMaxInFlightHandlersRun) {
  const std::string queue = NewQueue();
  warren::Mutex mu;
  int running = 0;
  int most = 0;
  bool open = false;
  Received done;
  auto subscriber = Subscriber::Start(channel_, QueueOptions(queue, 3),
                                      [&](const v1::Delivery& d) {
                                        warren::MutexLock lock(&mu);
                                        most = std::max(most, ++running);
                                        mu.Await(absl::Condition(&open));
                                        --running;
                                        done.Add(d);
                                        return absl::OkStatus();
                                      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  Publisher publisher(channel_);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(publisher.PublishToQueue(queue, absl::StrCat(i)).ok());
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        warren::MutexLock lock(&mu);
        return running == 3;
      },
      absl::Seconds(30)));
  {
    warren::MutexLock lock(&mu);
    open = true;
  }
  ASSERT_TRUE(done.WaitSize(10));
  (*subscriber)->Stop();
  warren::MutexLock lock(&mu);
  EXPECT_EQ(most, 3);
}

TEST_F(PublisherSubscriberTest, FailedHandlerNacksWithRequeue) {
  const std::string queue = NewQueue();
  warren::Mutex mu;
  std::map<std::string, int> attempts;
  Received acked;
  auto subscriber = Subscriber::Start(
      channel_, QueueOptions(queue), [&](const v1::Delivery& d) {
        int attempt;
        {
          warren::MutexLock lock(&mu);
          attempt = ++attempts[d.payload()];
        }
        if (attempt == 1) {
          if (d.payload() == "throws") throw std::runtime_error("boom");
          return absl::InternalError("first attempt fails");
        }
        acked.Add(d);
        return absl::OkStatus();
      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  Publisher publisher(channel_);
  ASSERT_TRUE(publisher.PublishToQueue(queue, "fails").ok());
  ASSERT_TRUE(publisher.PublishToQueue(queue, "throws").ok());
  ASSERT_TRUE(acked.WaitSize(2));
  (*subscriber)->Stop();
  EXPECT_THAT(acked.payloads(),
              ::testing::UnorderedElementsAre("fails", "throws"));
  for (const auto& d : acked.deliveries()) EXPECT_TRUE(d.redelivered());
  ExpectQueueEmpty(queue);
}

TEST_F(PublisherSubscriberTest, FailedHandlerWithoutRequeueDropsTheMessage) {
  const std::string queue = NewQueue();
  Received seen;
  SubscriberOptions options = QueueOptions(queue);
  options.requeue_on_error = false;
  auto subscriber =
      Subscriber::Start(channel_, options, [&](const v1::Delivery& d) {
        seen.Add(d);
        return absl::InvalidArgumentError("poison");
      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  Publisher publisher(channel_);
  ASSERT_TRUE(publisher.PublishToQueue(queue, "poison").ok());
  ASSERT_TRUE(seen.WaitSize(1));
  (*subscriber)->Stop();
  ExpectQueueEmpty(queue);
}

TEST_F(PublisherSubscriberTest, StopWaitsForRunningHandlersAndAcksThem) {
  const std::string queue = NewQueue();
  warren::Mutex mu;
  bool started = false;
  bool release = false;
  auto subscriber = Subscriber::Start(channel_, QueueOptions(queue, 1),
                                      [&](const v1::Delivery&) {
                                        warren::MutexLock lock(&mu);
                                        started = true;
                                        mu.Await(absl::Condition(&release));
                                        return absl::OkStatus();
                                      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  Publisher publisher(channel_);
  ASSERT_TRUE(publisher.PublishToQueue(queue, "slow").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        warren::MutexLock lock(&mu);
        return started;
      },
      absl::Seconds(30)));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    (*subscriber)->Stop();
    stopped = true;
  });
  // Stop() must wait for the running handler.
  EXPECT_FALSE(
      WaitFor([&] { return stopped.load(); }, absl::Milliseconds(300)));
  {
    warren::MutexLock lock(&mu);
    release = true;
  }
  stopper.join();
  EXPECT_TRUE(stopped);
  ExpectQueueEmpty(queue);  // it was acked before the stream closed
}

TEST_F(PublisherSubscriberTest, PermanentErrorsSurfaceAtOnce) {
  // A subscription without a source.
  SubscriberOptions options;
  auto subscriber = Subscriber::Start(
      channel_, options, [](const v1::Delivery&) { return absl::OkStatus(); });
  EXPECT_EQ(subscriber.status().code(), absl::StatusCode::kInvalidArgument)
      << subscriber.status();

  // A publish to an exchange that does not exist is not retried.
  int retries = 0;
  PublisherOptions publisher_options;
  publisher_options.on_retry = [&](int, const absl::Status&,
                                   const std::string&) { ++retries; };
  Publisher publisher(channel_, publisher_options);
  v1::PublishRequest request;
  request.set_exchange(UniqueName("cpp-no-such-exchange"));
  request.set_routing_key("x");
  request.set_payload("lost");
  auto id = publisher.Publish(request);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kNotFound) << id.status();
  EXPECT_EQ(retries, 0);
}

// Fault tests: a warrend of their own that they stop and start again.
class PublisherSubscriberFaultTest : public PublisherSubscriberTest {};

TEST_F(PublisherSubscriberFaultTest, SubscriberResubscribesAfterRestart) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  const std::string queue = NewQueue();
  Received received;
  EventLog errors;
  SubscriberOptions options = QueueOptions(queue);
  options.on_stream_error = [&](const absl::Status& s) {
    errors.Add(
        absl::StrCat(absl::StatusCodeToString(s.code()), " ", s.message()));
  };
  auto subscriber =
      Subscriber::Start(channel, options, [&](const v1::Delivery& d) {
        received.Add(d);
        return absl::OkStatus();
      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  Publisher publisher(channel);
  ASSERT_TRUE(publisher.PublishToQueue(queue, "before").ok());
  ASSERT_TRUE(received.WaitSize(1));

  // SIGTERM: the server ends the stream with UNAVAILABLE and exits.
  EXPECT_EQ((*warrend)->Stop(), 0);
  ASSERT_TRUE(errors.WaitFor("UNAVAILABLE"));
  ASSERT_TRUE((*warrend)->Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return (*subscriber)->subscriptions() >= 2; },
                      absl::Seconds(30)))
      << absl::StrJoin(errors.Lines(), ", ") << "; " << (*subscriber)->status();
  ASSERT_TRUE(publisher.PublishToQueue(queue, "after").ok());
  auto has_after = [&] {
    auto p = received.payloads();
    return std::find(p.begin(), p.end(), "after") != p.end();
  };
  ASSERT_TRUE(WaitFor(has_after, absl::Seconds(30)));
  (*subscriber)->Stop();
  // "before" may come twice if the server went down before its ack got
  // through (at-least-once), but then marked as redelivered.
  std::map<std::string, int> seen;
  for (const auto& d : received.deliveries()) {
    EXPECT_THAT(d.payload(), ::testing::AnyOf("before", "after"));
    if (++seen[d.payload()] > 1) {
      EXPECT_TRUE(d.redelivered());
    }
  }
  EXPECT_TRUE((*subscriber)->status().ok()) << (*subscriber)->status();
}

TEST_F(PublisherSubscriberFaultTest, PublisherRetryKeepsTheMessageId) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  const std::string queue = NewQueue();
  {
    // Declares the (durable) queue, so the message has somewhere to go.
    auto declare =
        Subscriber::Start(channel, QueueOptions(queue),
                          [](const v1::Delivery&) { return absl::OkStatus(); });
    ASSERT_TRUE(declare.ok()) << declare.status();
  }
  ASSERT_EQ((*warrend)->Stop(), 0);

  warren::Mutex mu;
  std::vector<std::string> retry_ids;
  std::vector<absl::StatusCode> retry_codes;
  PublisherOptions options;
  options.backoff = FastBackoff();
  options.on_retry = [&](int, const absl::Status& s, const std::string& id) {
    warren::MutexLock lock(&mu);
    retry_ids.push_back(id);
    retry_codes.push_back(s.code());
  };
  Publisher publisher(channel, options);
  absl::StatusOr<std::string> published;
  std::thread publishing(
      [&] { published = publisher.PublishToQueue(queue, "retried"); });
  // It retries while the server is down...
  ASSERT_TRUE(WaitFor(
      [&] {
        warren::MutexLock lock(&mu);
        return retry_ids.size() >= 3;
      },
      absl::Seconds(30)));
  // ...and succeeds once it is back.
  ASSERT_TRUE((*warrend)->Restart().ok());
  publishing.join();
  ASSERT_TRUE(published.ok()) << published.status();
  {
    warren::MutexLock lock(&mu);
    for (const auto& id : retry_ids) EXPECT_EQ(id, *published);
    for (auto code : retry_codes) {
      EXPECT_EQ(code, absl::StatusCode::kUnavailable);
    }
  }
  Received received;
  auto subscriber = Subscriber::Start(channel, QueueOptions(queue),
                                      [&](const v1::Delivery& d) {
                                        received.Add(d);
                                        return absl::OkStatus();
                                      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  ASSERT_TRUE(received.WaitSize(1));
  (*subscriber)->Stop();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received.deliveries()[0].message_id(), *published);
  EXPECT_EQ(received.deliveries()[0].payload(), "retried");
}

}  // namespace
}  // namespace warren::client::testing
