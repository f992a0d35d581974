// Unit tests of AmqpPool over fake connections: where subscriptions go, when
// connections are opened, how channels are counted and given back, and that
// concurrent callers never overfill a connection. The real connections are
// tested in amqp_test.cc and, through warrend, in tests/integration.
#include "server/amqp/amqp_pool.h"

#include <map>
#include <set>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_amqp.h"

namespace warren::amqp {
namespace {

// Connections are FakeAmqp (tests/fakes): they record what they are asked
// and hold sinks until the test ends the subscription or the pool
// unsubscribes; their callbacks run when the test calls RunUntilIdle().
using FakeBroker = testing::FakeAmqp;

class RecordingSink final : public SubscriptionSink {
 public:
  void OnSubscribed(const std::string&) override {}
  void OnDelivery(Delivery) override {}
  void OnEnded(absl::Status status) override {
    warren::MutexLock lock(&mu_);
    ended_.push_back(std::move(status));
  }
  std::vector<absl::Status> ended() {
    warren::MutexLock lock(&mu_);
    return ended_;
  }

 private:
  warren::Mutex mu_;
  std::vector<absl::Status> ended_ ABSL_GUARDED_BY(mu_);
};

// Opens fake connections of `capacity` channels and keeps a pointer to each
// (they belong to the pool).
struct Fakes {
  explicit Fakes(size_t capacity) : capacity(capacity) {}
  AmqpConnectionFactory Factory() {
    return [this](size_t index) -> absl::StatusOr<std::unique_ptr<AmqpBroker>> {
      auto broker = std::make_unique<FakeBroker>(capacity);
      warren::MutexLock lock(&mu);
      EXPECT_EQ(index, brokers.size());
      brokers.push_back(broker.get());
      return std::unique_ptr<AmqpBroker>(std::move(broker));
    };
  }
  FakeBroker& at(size_t i) {
    warren::MutexLock lock(&mu);
    return *brokers.at(i);
  }
  size_t count() {
    warren::MutexLock lock(&mu);
    return brokers.size();
  }
  const size_t capacity;
  warren::Mutex mu;
  std::vector<FakeBroker*> brokers ABSL_GUARDED_BY(mu);
};

std::unique_ptr<AmqpPool> MakePool(Fakes& fakes, size_t max_connections) {
  AmqpPoolOptions options;
  options.max_connections = max_connections;
  auto pool = AmqpPool::Create(options, fakes.Factory());
  EXPECT_TRUE(pool.ok()) << pool.status();
  return *std::move(pool);
}

TEST(AmqpPoolTest, RefusesZeroConnections) {
  Fakes fakes(3);
  AmqpPoolOptions options;
  options.max_connections = 0;
  EXPECT_EQ(AmqpPool::Create(options, fakes.Factory()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AmqpPoolTest, EverythingButSubscriptionsGoesToThePrimary) {
  Fakes fakes(3);
  auto pool = MakePool(fakes, 4);
  ASSERT_EQ(fakes.count(), 1u);  // the primary opens at once
  int answered = 0;
  pool->Publish(OutgoingMessage(), absl::InfiniteFuture(),
                [&](absl::Status s) { answered += s.ok(); });
  const int listener = pool->AddListener([](BrokerState) {});
  fakes.at(0).RunUntilIdle();
  EXPECT_EQ(answered, 1);
  EXPECT_EQ(fakes.at(0).publishes_.load(), 1);
  EXPECT_EQ(fakes.at(0).listeners_.load(), 1);
  EXPECT_EQ(pool->reconnects(), 7u);
  EXPECT_TRUE(pool->reachable());
  fakes.at(0).state_ = BrokerState::kConnecting;
  EXPECT_FALSE(pool->reachable());
  pool->RemoveListener(listener);
  EXPECT_EQ(fakes.at(0).listeners_.load(), 0);
}

TEST(AmqpPoolTest, OpensAConnectionWhenTheOthersAreFullAndRoutesById) {
  Fakes fakes(3);
  auto pool = MakePool(fakes, 4);
  auto sink = std::make_shared<RecordingSink>();
  std::vector<SubscriptionId> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(pool->Subscribe({}, sink));
  ASSERT_EQ(fakes.count(), 3u);
  EXPECT_EQ(pool->connections(), 3u);
  EXPECT_EQ(fakes.at(0).open(), 3u);
  EXPECT_EQ(fakes.at(1).open(), 3u);
  EXPECT_EQ(fakes.at(2).open(), 1u);
  EXPECT_EQ(pool->subscriptions(2), 1u);
  EXPECT_EQ(std::set<SubscriptionId>(ids.begin(), ids.end()).size(), 7u);
  // Each connection's own state and reconnects (metrics label them).
  fakes.at(1).state_ = BrokerState::kConnecting;
  EXPECT_EQ(pool->connection_state(0), BrokerState::kConnected);
  EXPECT_EQ(pool->connection_state(1), BrokerState::kConnecting);
  EXPECT_EQ(pool->connection_state(3), BrokerState::kClosed);  // not open
  EXPECT_EQ(pool->connection_reconnects(2), 7u);
  EXPECT_EQ(pool->connection_reconnects(3), 0u);
  fakes.at(1).state_ = BrokerState::kConnected;

  // Settle and Unsubscribe reach the connection that holds the subscription,
  // with that connection's own id.
  pool->Settle(ids[4], 42, Settle::kAck);
  ASSERT_EQ(fakes.at(1).settled().size(), 1u);
  EXPECT_EQ(fakes.at(1).settled()[0], std::make_pair(SubscriptionId{2}, 42ul));
  EXPECT_TRUE(fakes.at(0).settled().empty());
  pool->Unsubscribe(ids[4]);
  EXPECT_EQ(fakes.at(1).open(), 2u);
  EXPECT_EQ(pool->subscriptions(1), 2u);

  // The freed channel is used again before anything new is opened.
  pool->Subscribe({}, sink);
  pool->Subscribe({}, sink);
  EXPECT_EQ(fakes.at(1).open(), 3u);
  EXPECT_EQ(fakes.at(2).open(), 2u);
  EXPECT_EQ(fakes.count(), 3u);
  EXPECT_TRUE(sink->ended().empty());
}

TEST(AmqpPoolTest, ChannelsComeBackWhenAConnectionEndsItsSubscriptions) {
  Fakes fakes(2);
  auto pool = MakePool(fakes, 2);
  auto sink = std::make_shared<RecordingSink>();
  for (int i = 0; i < 4; ++i) pool->Subscribe({}, sink);
  ASSERT_EQ(fakes.count(), 2u);
  // The secondary is lost: its subscriptions end like the primary's would.
  fakes.at(1).EndAll(absl::UnavailableError("connection lost"));
  fakes.at(1).RunUntilIdle();
  ASSERT_EQ(sink->ended().size(), 2u);
  EXPECT_EQ(sink->ended()[0].code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(pool->subscriptions(1), 0u);
  pool->Subscribe({}, sink);
  EXPECT_EQ(fakes.at(1).open(), 1u);
}

TEST(AmqpPoolTest, BeyondTheMaximumTheConnectionRefuses) {
  Fakes fakes(2);
  auto pool = MakePool(fakes, 2);
  auto sink = std::make_shared<RecordingSink>();
  for (int i = 0; i < 5; ++i) pool->Subscribe({}, sink);
  EXPECT_EQ(fakes.count(), 2u);
  fakes.at(0).RunUntilIdle();
  ASSERT_EQ(sink->ended().size(), 1u);
  EXPECT_EQ(sink->ended()[0].code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(fakes.at(0).refused(), 1u);
  // The refused one was given back at once.
  EXPECT_EQ(pool->subscriptions(0), 2u);
}

TEST(AmqpPoolTest, PrefersReachableConnectionsAndOpensNoneInAnOutage) {
  Fakes fakes(2);
  auto pool = MakePool(fakes, 4);
  auto sink = std::make_shared<RecordingSink>();
  pool->Subscribe({}, sink);
  pool->Subscribe({}, sink);
  pool->Subscribe({}, sink);  // opens the second
  ASSERT_EQ(fakes.count(), 2u);
  fakes.at(0).EndAll(absl::UnavailableError("lost"));
  fakes.at(0).RunUntilIdle();
  fakes.at(0).state_ = BrokerState::kConnecting;
  pool->Subscribe({}, sink);  // the reachable secondary has room
  EXPECT_EQ(fakes.at(1).open(), 2u);
  fakes.at(1).state_ = BrokerState::kConnecting;
  // Nobody is reachable: the primary answers (UNAVAILABLE, in real life);
  // no connection is opened for it.
  pool->Subscribe({}, sink);
  EXPECT_EQ(fakes.at(0).open(), 1u);
  EXPECT_EQ(fakes.count(), 2u);
}

TEST(AmqpPoolTest, UsesTheDefaultCapacityUntilTheConnectionKnowsItsOwn) {
  Fakes fakes(0);
  AmqpPoolOptions options;
  options.max_connections = 3;
  options.default_capacity = 2;
  auto pool = *AmqpPool::Create(options, fakes.Factory());
  auto sink = std::make_shared<RecordingSink>();
  pool->Subscribe({}, sink);
  pool->Subscribe({}, sink);
  EXPECT_EQ(fakes.count(), 1u);
  pool->Subscribe({}, sink);
  EXPECT_EQ(fakes.count(), 2u);
}

// A connection still in its handshake does not know its channel_max yet;
// it gets what the brokers gave the primary, so a burst of subscriptions
// spreads over connections instead of piling onto the new one beyond what it
// will be allowed (seen with a broker of channel_max 32: 10 of 70 refused).
TEST(AmqpPoolTest, AConnectionStillOpeningIsFilledOnlyAsFarAsThePrimary) {
  std::vector<FakeBroker*> brokers;
  AmqpPoolOptions options;
  options.max_connections = 3;
  options.default_capacity = 100;
  auto pool = AmqpPool::Create(
      options,
      [&](size_t index) -> absl::StatusOr<std::unique_ptr<AmqpBroker>> {
        // Only the primary has finished its handshake (0: not known yet).
        auto broker = std::make_unique<FakeBroker>(index == 0 ? 3 : 0);
        brokers.push_back(broker.get());
        return std::unique_ptr<AmqpBroker>(std::move(broker));
      });
  ASSERT_TRUE(pool.ok()) << pool.status();
  auto sink = std::make_shared<RecordingSink>();
  for (int i = 0; i < 7; ++i) (*pool)->Subscribe({}, sink);
  ASSERT_EQ(brokers.size(), 3u);
  EXPECT_EQ((*pool)->subscriptions(0), 3u);
  EXPECT_EQ((*pool)->subscriptions(1), 3u);
  EXPECT_EQ((*pool)->subscriptions(2), 1u);
}

TEST(AmqpPoolTest, ConcurrentCallersNeverOverfillAConnection) {
  constexpr size_t kCapacity = 50;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 60;  // 480 of 500 channels: nothing refused
  Fakes fakes(kCapacity);
  auto pool = MakePool(fakes, 10);
  auto sink = std::make_shared<RecordingSink>();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<SubscriptionId> mine;
      for (int i = 0; i < kPerThread; ++i) {
        mine.push_back(pool->Subscribe({}, sink));
        pool->Settle(mine.back(), i, Settle::kAck);
        // Every other thread gives half of its subscriptions back.
        if (t % 2 == 0 && i % 2 == 0) {
          pool->Unsubscribe(mine.back());
          mine.pop_back();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(sink->ended().empty());
  size_t total = 0;
  for (size_t i = 0; i < fakes.count(); ++i) {
    EXPECT_LE(fakes.at(i).open(), kCapacity);
    EXPECT_EQ(pool->subscriptions(i), fakes.at(i).open());
    total += fakes.at(i).open();
  }
  EXPECT_EQ(total, kThreads / 2 * kPerThread + kThreads / 2 * kPerThread / 2);
  // Freed channels are taken again before a connection is opened; at the
  // peak, 480 subscriptions needed 10.
  EXPECT_GE(fakes.count(), (total + kCapacity - 1) / kCapacity);
  EXPECT_LE(fakes.count(), 10u);
}

}  // namespace
}  // namespace warren::amqp
