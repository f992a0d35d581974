#include <atomic>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/amqp/amqp_client.h"
#include "server/common/mutex.h"

namespace warren::amqp {
namespace {

using ::testing::HasSubstr;

TEST(AmqpClientTest, ReportsAnUnreachableBrokerAsUnavailable) {
  AmqpOptions options;
  // Port 1 on loopback: nothing listens there, the connect is refused.
  options.urls = {"amqp://guest:guest@127.0.0.1:1/"};
  auto monitor = AmqpClient::Create(options);
  ASSERT_TRUE(monitor.ok());
  absl::Status waited = (*monitor)->WaitConnected(absl::Milliseconds(300));
  EXPECT_EQ(waited.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(waited.message(), HasSubstr("127.0.0.1:1"));
  EXPECT_FALSE((*monitor)->reachable());
}

TEST(AmqpClientTest, ConnectsToTheTestBroker) {
  const char* url = std::getenv("WARREN_TEST_AMQP_URL");
  ASSERT_NE(url, nullptr)
      << "WARREN_TEST_AMQP_URL is not set: run the suite with scripts/test.sh";
  AmqpOptions options;
  // A dead broker first: the monitor must move on to the next URL.
  options.urls = {"amqp://guest:guest@127.0.0.1:1/", url};
  options.heartbeat = absl::Seconds(2);
  auto monitor = AmqpClient::Create(options);
  ASSERT_TRUE(monitor.ok());
  ASSERT_TRUE((*monitor)->WaitConnected(absl::Seconds(20)).ok());
  EXPECT_EQ((*monitor)->state(), BrokerState::kConnected);
}

// A client connected to the suite's broker (WARREN_TEST_AMQP_URL, set by
// scripts/test.sh); fails the test when there is none.
void ConnectToTestBroker(absl::StatusOr<std::unique_ptr<AmqpClient>>* client) {
  const char* url = std::getenv("WARREN_TEST_AMQP_URL");
  ASSERT_NE(url, nullptr)
      << "WARREN_TEST_AMQP_URL is not set: run the suite with scripts/test.sh";
  AmqpOptions options;
  options.urls = {url};
  *client = AmqpClient::Create(options);
  ASSERT_TRUE(client->ok());
  ASSERT_TRUE((**client)->WaitConnected(absl::Seconds(20)).ok());
}

// Polls `condition` (another thread changes it) for up to 60 s.
bool WaitUntil(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// Records a subscription's events and acks every delivery from the thread
// that receives it (the client's I/O thread), as a gRPC reactor would not,
// but as any caller may.
class CollectingSink : public SubscriptionSink {
 public:
  explicit CollectingSink(AmqpClient& client) : client_(client) {}
  void set_id(AmqpClient::SubscriptionId id) {
    warren::MutexLock lock(&mu_);
    id_ = id;
  }
  void OnSubscribed(const std::string& queue) override {
    warren::MutexLock lock(&mu_);
    queue_ = queue;
  }
  void OnDelivery(Delivery d) override {
    warren::MutexLock lock(&mu_);
    ids_.insert(d.message_id);
    client_.Settle(id_, d.delivery_tag, Settle::kAck);
  }
  void OnEnded(absl::Status status) override {
    warren::MutexLock lock(&mu_);
    ended_ = status;
  }
  bool WaitFor(size_t n) {
    warren::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ids_.size() >= n || !ended_.ok();
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(60)) &&
           ids_.size() >= n;
  }
  std::string queue() {
    warren::MutexLock lock(&mu_);
    return queue_;
  }

 private:
  AmqpClient& client_;
  warren::Mutex mu_;
  AmqpClient::SubscriptionId id_ ABSL_GUARDED_BY(mu_) = 0;
  std::string queue_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> ids_ ABSL_GUARDED_BY(mu_);
  absl::Status ended_ ABSL_GUARDED_BY(mu_);
};

// Many threads hand the one connection work at once; every publish is
// confirmed once, every message arrives once.
TEST(AmqpClientTest, ConcurrentPublishersAndASubscriberShareTheConnection) {
  absl::StatusOr<std::unique_ptr<AmqpClient>> client;
  ASSERT_NO_FATAL_FAILURE(ConnectToTestBroker(&client));

  auto sink = std::make_shared<CollectingSink>(**client);
  SubscribeSpec spec;
  spec.queue.durable = false;
  spec.queue.exclusive = true;
  spec.queue.auto_delete = true;  // a server-named queue of its own
  spec.prefetch = 50;
  // Subscribe and set the id before the first delivery can be acked.
  {
    const auto id = (*client)->Subscribe(spec, sink);
    sink->set_id(id);
  }
  ASSERT_TRUE(WaitUntil([&] { return !sink->queue().empty(); }));
  const std::string queue = sink->queue();

  constexpr int kThreads = 4;
  constexpr int kEach = 250;
  std::atomic<int> confirmed{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        OutgoingMessage m;
        m.routing_key = queue;
        m.message_id = absl::StrCat(t, "-", i);
        m.payload = "x";
        (*client)->Publish(
            std::move(m), absl::Now() + absl::Seconds(30),
            [&](absl::Status s) { (s.ok() ? confirmed : failed)++; });
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(sink->WaitFor(kThreads * kEach));
  // Every publish was answered exactly once, and OK.
  ASSERT_TRUE(WaitUntil(
      [&] { return confirmed.load() + failed.load() == kThreads * kEach; }));
  EXPECT_EQ(failed.load(), 0);
}

// Records deliveries and leaves settling to the test.
class RecordingSink : public SubscriptionSink {
 public:
  void OnSubscribed(const std::string&) override {}
  void OnDelivery(Delivery d) override {
    warren::MutexLock lock(&mu_);
    deliveries_.emplace_back(d.message_id, d.delivery_tag);
  }
  void OnEnded(absl::Status status) override {
    warren::MutexLock lock(&mu_);
    ended_ = status;
  }
  // The first `n` deliveries as (message id, delivery tag), once they came.
  std::vector<std::pair<std::string, uint64_t>> Await(size_t n) {
    warren::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return deliveries_.size() >= n || !ended_.ok();
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(60));
    return deliveries_;
  }

 private:
  warren::Mutex mu_;
  std::vector<std::pair<std::string, uint64_t>> deliveries_
      ABSL_GUARDED_BY(mu_);
  absl::Status ended_ ABSL_GUARDED_BY(mu_);
};

// Acks settled together go out as one basic.ack with `multiple` where they
// are the oldest unacked deliveries; that must never settle a delivery the
// consumer did not ack. Acks 1, 2, 3 and 5 of 5, not 4: after the channel
// closes, only 4 comes back.
TEST(AmqpClientTest, CoalescedAcksSettleOnlyTheDeliveriesNamed) {
  absl::StatusOr<std::unique_ptr<AmqpClient>> client;
  ASSERT_NO_FATAL_FAILURE(ConnectToTestBroker(&client));

  SubscribeSpec spec;
  spec.queue.name =
      absl::StrCat("warren-amqp-test-acks-", absl::ToUnixNanos(absl::Now()));
  spec.queue.durable = false;
  spec.prefetch = 10;
  auto publish = [&](const std::string& id) {
    OutgoingMessage m;
    m.routing_key = spec.queue.name;
    m.message_id = id;
    m.payload = id;
    // A promise, not absl::Notification: Debian's Abseil is not built for
    // ThreadSanitizer, which then cannot see the hand-over.
    auto confirmed = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> result = confirmed->get_future();
    (*client)->Publish(
        std::move(m), absl::Now() + absl::Seconds(30),
        [confirmed](absl::Status s) { confirmed->set_value(s); });
    return result.get();
  };

  auto first = std::make_shared<RecordingSink>();
  const auto first_id = (*client)->Subscribe(spec, first);
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(publish(absl::StrCat("m", i)).ok());
  }
  const auto delivered = first->Await(5);
  ASSERT_EQ(delivered.size(), 5u);
  for (int i : {0, 1, 2, 4}) {
    ASSERT_EQ(delivered[i].first, absl::StrCat("m", i + 1));
    (*client)->Settle(first_id, delivered[i].second, Settle::kAck);
  }
  (*client)->Unsubscribe(first_id);

  // What comes back is m4, then the marker: m1-m3 and m5 stay settled.
  auto second = std::make_shared<RecordingSink>();
  const auto second_id = (*client)->Subscribe(spec, second);
  ASSERT_TRUE(publish("marker").ok());
  const auto again = second->Await(2);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].first, "m4");
  EXPECT_EQ(again[1].first, "marker");
  (*client)->Unsubscribe(second_id);
}

// Acks whatever it receives, as a client would, and records it.
class AckingRecorder : public SubscriptionSink {
 public:
  explicit AckingRecorder(AmqpClient& client) : client_(client) {}
  void set_id(AmqpClient::SubscriptionId id) {
    warren::MutexLock lock(&mu_);
    id_ = id;
  }
  void OnSubscribed(const std::string&) override {
    warren::MutexLock lock(&mu_);
    subscribed_ = true;
  }
  void OnDelivery(Delivery d) override {
    warren::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](AmqpClient::SubscriptionId* id) { return *id != 0; }, &id_));
    message_ids_.push_back(d.message_id);
    client_.Settle(id_, d.delivery_tag, Settle::kAck);
  }
  void OnEnded(absl::Status status) override {
    warren::MutexLock lock(&mu_);
    ended_ = status;
  }
  // Whether it was subscribed (false if it ended first).
  bool WaitSubscribed() {
    warren::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return subscribed_ || !ended_.ok();
    };
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(60));
    return subscribed_;
  }
  std::vector<std::string> message_ids() {
    warren::MutexLock lock(&mu_);
    return message_ids_;
  }
  absl::Status ended() {
    warren::MutexLock lock(&mu_);
    return ended_;
  }
  AmqpClient::SubscriptionId id() {
    warren::MutexLock lock(&mu_);
    return id_;
  }

 private:
  AmqpClient& client_;
  warren::Mutex mu_;
  AmqpClient::SubscriptionId id_ ABSL_GUARDED_BY(mu_) = 0;
  bool subscribed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> message_ids_ ABSL_GUARDED_BY(mu_);
  absl::Status ended_ ABSL_GUARDED_BY(mu_);
};

// At its first delivery (on the I/O thread, so that the commands wait in
// one batch), cancels itself and starts `next`, as a client that cancels
// its stream and subscribes again at once. With `bad_ack_tag`, it first
// acks that tag, which its channel never had: the broker closes the channel
// for it while our channel.close is on its way (the closes cross).
class ChurningSink : public SubscriptionSink {
 public:
  ChurningSink(AmqpClient& client, SubscribeSpec next_spec,
               std::shared_ptr<AckingRecorder> next, uint64_t bad_ack_tag = 0)
      : client_(client),
        next_spec_(std::move(next_spec)),
        next_(next),
        bad_ack_tag_(bad_ack_tag) {}
  void set_id(AmqpClient::SubscriptionId id) {
    warren::MutexLock lock(&mu_);
    id_ = id;
  }
  void OnSubscribed(const std::string&) override {}
  void OnDelivery(Delivery) override {
    warren::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](AmqpClient::SubscriptionId* id) { return *id != 0; }, &id_));
    if (churned_) return;
    churned_ = true;
    if (bad_ack_tag_ != 0) client_.Settle(id_, bad_ack_tag_, Settle::kAck);
    client_.Unsubscribe(id_);
    next_->set_id(client_.Subscribe(next_spec_, next_));
  }
  void OnEnded(absl::Status) override {}

 private:
  AmqpClient& client_;
  const SubscribeSpec next_spec_;
  const std::shared_ptr<AckingRecorder> next_;
  const uint64_t bad_ack_tag_;
  warren::Mutex mu_;
  AmqpClient::SubscriptionId id_ ABSL_GUARDED_BY(mu_) = 0;
  bool churned_ ABSL_GUARDED_BY(mu_) = false;
};

// A subscription cancelled while the broker is still pushing its
// deliveries, and another one started in the same breath: the second may
// get the first one's channel number, but never one of the first one's
// deliveries (they arrived before the first channel's close-ok). Acking one
// on the new channel is what the broker answers with PRECONDITION_FAILED
// "unknown delivery tag", or, where the tag exists there, settles a message
// the new consumer never saw.
TEST(AmqpClientTest, AResubscriptionNeverGetsTheCancelledOnesDeliveries) {
  absl::StatusOr<std::unique_ptr<AmqpClient>> client;
  ASSERT_NO_FATAL_FAILURE(ConnectToTestBroker(&client));

  const std::string stamp = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  constexpr int kMessages = 1000;
  constexpr int kRounds = 3;
  SubscribeSpec busy;
  busy.queue.name = absl::StrCat("warren-amqp-test-churn-busy-", stamp);
  busy.queue.durable = false;
  busy.queue.auto_delete = false;
  // Everything at once: most of it is still on the wire when the
  // subscription is cancelled.
  busy.prefetch = kMessages;
  SubscribeSpec quiet;
  quiet.queue.name = absl::StrCat("warren-amqp-test-churn-quiet-", stamp);
  quiet.queue.durable = false;
  quiet.queue.auto_delete = true;

  // Declare the busy queue, then fill it.
  {
    auto declare = std::make_shared<AckingRecorder>(**client);
    SubscribeSpec idle = busy;
    const auto id = (*client)->Subscribe(idle, declare);
    declare->set_id(id);
    ASSERT_TRUE(declare->WaitSubscribed());
    (*client)->Unsubscribe(id);
  }
  std::atomic<int> confirmed{0}, failed{0};
  for (int i = 0; i < kMessages; ++i) {
    OutgoingMessage m;
    m.routing_key = busy.queue.name;
    m.message_id = absl::StrCat("m", i);
    m.payload = std::string(200, 'x');
    m.persistent = false;
    (*client)->Publish(
        std::move(m), absl::Now() + absl::Seconds(30),
        [&](absl::Status s) { (s.ok() ? confirmed : failed)++; });
  }
  ASSERT_TRUE(
      WaitUntil([&] { return confirmed.load() + failed.load() == kMessages; }));
  ASSERT_EQ(failed.load(), 0);

  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    auto next = std::make_shared<AckingRecorder>(**client);
    auto churning = std::make_shared<ChurningSink>(**client, quiet, next);
    churning->set_id((*client)->Subscribe(busy, churning));
    ASSERT_TRUE(next->WaitSubscribed());
    // A round trip through the I/O thread after the subscribe: every frame
    // that came before has been handled by the time it answers.
    auto declared = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> barrier = declared->get_future();
    (*client)->DeclareExchange(
        absl::StrCat("warren-amqp-test-churn-", stamp), ExchangeKind::kTopic,
        [declared](absl::Status s) { declared->set_value(s); });
    ASSERT_TRUE(barrier.get().ok());
    // The quiet queue is empty: anything it got was the busy one's.
    EXPECT_THAT(next->message_ids(), ::testing::IsEmpty());
    EXPECT_TRUE(next->ended().ok()) << next->ended();
    (*client)->Unsubscribe(next->id());
  }
}

// The broker's channel.close crosses ours (an ack it refuses, then our
// close): the channel number is reused only once the broker has answered
// our close too, or the next channel.open on it is a connection error.
TEST(AmqpClientTest, CrossedChannelClosesNeverCostTheConnection) {
  absl::StatusOr<std::unique_ptr<AmqpClient>> client;
  ASSERT_NO_FATAL_FAILURE(ConnectToTestBroker(&client));

  const std::string stamp = absl::StrCat(absl::ToUnixNanos(absl::Now()));
  SubscribeSpec busy;
  busy.queue.name = absl::StrCat("warren-amqp-test-cross-busy-", stamp);
  busy.queue.durable = false;
  busy.prefetch = 100;
  SubscribeSpec quiet;
  quiet.queue.name = absl::StrCat("warren-amqp-test-cross-quiet-", stamp);
  quiet.queue.durable = false;
  {
    auto declare = std::make_shared<AckingRecorder>(**client);
    const auto id = (*client)->Subscribe(busy, declare);
    declare->set_id(id);
    ASSERT_TRUE(declare->WaitSubscribed());
    (*client)->Unsubscribe(id);
  }
  std::atomic<int> confirmed{0}, failed{0};
  for (int i = 0; i < 200; ++i) {
    OutgoingMessage m;
    m.routing_key = busy.queue.name;
    m.message_id = absl::StrCat("m", i);
    m.payload = "x";
    m.persistent = false;
    (*client)->Publish(
        std::move(m), absl::Now() + absl::Seconds(30),
        [&](absl::Status s) { (s.ok() ? confirmed : failed)++; });
  }
  ASSERT_TRUE(
      WaitUntil([&] { return confirmed.load() + failed.load() == 200; }));

  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    auto next = std::make_shared<AckingRecorder>(**client);
    auto bad = std::make_shared<ChurningSink>(**client, quiet, next,
                                              /*bad_ack_tag=*/1u << 30);
    bad->set_id((*client)->Subscribe(busy, bad));
    ASSERT_TRUE(next->WaitSubscribed());
    (*client)->Unsubscribe(next->id());
  }
  // One more subscription on the reused numbers, then a round trip.
  auto last = std::make_shared<AckingRecorder>(**client);
  last->set_id((*client)->Subscribe(quiet, last));
  ASSERT_TRUE(last->WaitSubscribed());
  EXPECT_EQ((*client)->reconnects(), 0u);
  EXPECT_TRUE(last->ended().ok()) << last->ended();
}

// Where a Call's answer lands, awaited by the test.
class CallOutcome {
 public:
  AmqpBroker::CallDone Catch() {
    return [this](absl::StatusOr<Delivery> answer) {
      warren::MutexLock lock(&mu_);
      answer_ = std::move(answer);
    };
  }
  absl::StatusOr<Delivery> Wait() {
    warren::MutexLock lock(&mu_);
    auto answered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return answer_.has_value();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&answered), absl::Seconds(60))) {
      return absl::InternalError("the call was never answered");
    }
    return *answer_;
  }

 private:
  warren::Mutex mu_;
  std::optional<absl::StatusOr<Delivery>> answer_ ABSL_GUARDED_BY(mu_);
};

// Keeps every delivery (the requests of a call), unacked.
class RequestSink : public SubscriptionSink {
 public:
  void OnSubscribed(const std::string& queue) override {
    warren::MutexLock lock(&mu_);
    queue_ = queue;
  }
  void OnDelivery(Delivery d) override {
    warren::MutexLock lock(&mu_);
    requests_.push_back(std::move(d));
  }
  void OnEnded(absl::Status) override {}
  std::optional<Delivery> WaitRequest() {
    warren::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !requests_.empty();
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(60))) {
      return std::nullopt;
    }
    return requests_.front();
  }
  std::string queue() {
    warren::MutexLock lock(&mu_);
    return queue_;
  }

 private:
  warren::Mutex mu_;
  std::string queue_ ABSL_GUARDED_BY(mu_);
  std::vector<Delivery> requests_ ABSL_GUARDED_BY(mu_);
};

TEST(AmqpClientTest, ACallIsAnsweredOnlyByAReplyWithItsCorrelationId) {
  absl::StatusOr<std::unique_ptr<AmqpClient>> client;
  ASSERT_NO_FATAL_FAILURE(ConnectToTestBroker(&client));
  auto sink = std::make_shared<RequestSink>();
  SubscribeSpec spec;
  spec.queue.durable = false;
  spec.queue.exclusive = true;
  spec.queue.auto_delete = true;
  (*client)->Subscribe(spec, sink);
  ASSERT_TRUE(WaitUntil([&] { return !sink->queue().empty(); }));

  OutgoingMessage request;
  request.routing_key = sink->queue();
  request.message_id = "call-1";
  request.payload = "ping";
  CallOutcome outcome;
  (*client)->Call(request, absl::Now() + absl::Seconds(30), outcome.Catch());
  const std::optional<Delivery> got = sink->WaitRequest();
  ASSERT_TRUE(got.has_value());
  EXPECT_THAT(got->reply_to, ::testing::StartsWith("amq.rabbitmq.reply-to."));
  ASSERT_EQ(got->correlation_id.size(), 36u);  // a UUID

  // A reply with another id is dropped; the one with the call's answers.
  for (const std::string& id :
       {std::string("not-this-call"), got->correlation_id}) {
    OutgoingMessage reply;
    reply.routing_key = got->reply_to;
    reply.correlation_id = id;
    reply.message_id = id;
    reply.payload = "pong for " + id;
    absl::Status status;
    std::atomic<bool> done{false};
    (*client)->Publish(reply, absl::Now() + absl::Seconds(30),
                       [&](absl::Status s) {
                         status = s;
                         done = true;
                       });
    ASSERT_TRUE(WaitUntil([&] { return done.load(); }));
    ASSERT_TRUE(status.ok()) << status;
  }
  absl::StatusOr<Delivery> answer = outcome.Wait();
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->payload, "pong for " + got->correlation_id);
  EXPECT_EQ(answer->correlation_id, got->correlation_id);
  EXPECT_TRUE(
      WaitUntil([&] { return (*client)->call_replies_dropped() == 1; }));
}

TEST(AmqpClientTest, ALostReplyChannelFailsItsCallsAndTheNextCallReopensIt) {
  absl::StatusOr<std::unique_ptr<AmqpClient>> client;
  ASSERT_NO_FATAL_FAILURE(ConnectToTestBroker(&client));
  // Waits: the broker drops a message no queue takes (not mandatory).
  OutgoingMessage unanswered;
  unanswered.routing_key = "warren-amqp-test-nobody-consumes-this";
  unanswered.message_id = "waits";
  CallOutcome waiting;
  (*client)->Call(unanswered, absl::Now() + absl::Seconds(30), waiting.Catch());
  // A string-typed CC header makes the broker close the channel.
  OutgoingMessage poison = unanswered;
  poison.message_id = "poison";
  poison.headers = {{"CC", "x"}};
  CallOutcome poisoned;
  (*client)->Call(poison, absl::Now() + absl::Seconds(30), poisoned.Catch());
  for (CallOutcome* outcome : {&waiting, &poisoned}) {
    const absl::StatusOr<Delivery> answer = outcome->Wait();
    EXPECT_EQ(answer.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(answer.status().message(), HasSubstr("no reply can arrive"));
  }
  // The next call opens a fresh reply channel.
  OutgoingMessage mandatory = unanswered;
  mandatory.message_id = "mandatory";
  mandatory.mandatory = true;
  CallOutcome returned;
  (*client)->Call(mandatory, absl::Now() + absl::Seconds(30), returned.Catch());
  EXPECT_EQ(returned.Wait().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*client)->state(), BrokerState::kConnected);
}

}  // namespace
}  // namespace warren::amqp
