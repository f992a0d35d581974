#include "server/messaging/delay_queues.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_amqp.h"

namespace warren::messaging {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(DelayBucketTest, RoundsUpToTwoSignificantDigits) {
  EXPECT_EQ(DelayBucket(absl::Milliseconds(500)), absl::Milliseconds(500));
  EXPECT_EQ(DelayBucket(absl::Milliseconds(1234)), absl::Milliseconds(1300));
  EXPECT_EQ(DelayBucket(absl::Milliseconds(86400001)),
            absl::Milliseconds(87000000));
  EXPECT_EQ(DelayBucket(absl::Milliseconds(99)), absl::Milliseconds(99));
  EXPECT_EQ(DelayBucket(absl::Milliseconds(101)), absl::Milliseconds(110));
  EXPECT_EQ(DelayBucket(absl::Microseconds(1500)), absl::Milliseconds(2));
  EXPECT_EQ(DelayBucket(absl::Nanoseconds(1)), absl::Milliseconds(1));
}

TEST(DelayBucketTest, NeverEarlyAtMostTenPercentLate) {
  for (int64_t ms = 1; ms < 2000000; ms = ms * 7 / 5 + 1) {
    const absl::Duration delay = absl::Milliseconds(ms);
    const absl::Duration bucket = DelayBucket(delay);
    EXPECT_GE(bucket, delay) << ms;
    EXPECT_LE(bucket, delay * 1.1) << ms;
  }
}

TEST(DelayQueueNameTest, NamesAndHashesLongTargets) {
  EXPECT_EQ(RetryQueueName(absl::Milliseconds(500), "jobs"),
            "warren.retry.500ms.jobs");
  EXPECT_EQ(DelayQueueName(absl::Milliseconds(1300), ""),
            "warren.delay.1300ms.amq.default");
  EXPECT_EQ(DelayQueueName(absl::Milliseconds(1300), "events"),
            "warren.delay.1300ms.events");
  const std::string long_name(250, 'q');
  const std::string hashed = RetryQueueName(absl::Milliseconds(500), long_name);
  EXPECT_LE(hashed.size(), 255u);
  EXPECT_EQ(hashed.size(), std::string("warren.retry.500ms.").size() + 16);
  EXPECT_EQ(hashed, RetryQueueName(absl::Milliseconds(500), long_name));
  EXPECT_NE(hashed, RetryQueueName(absl::Milliseconds(500), long_name + "x"));
}

TEST(DelayQueueExpiryTest, OutlivesEveryWaitingMessage) {
  EXPECT_EQ(DelayQueueExpiry(absl::Milliseconds(500)),
            absl::Milliseconds(1000) + absl::Minutes(10));
  // Declared at most a redeclare interval (1 min) before a publish, the
  // queue outlives the message it just took by more than its TTL.
  const absl::Duration bucket = absl::Hours(1);
  EXPECT_GT(DelayQueueExpiry(bucket) - absl::Minutes(1), bucket);
}

class DelayQueuesTest : public ::testing::Test {
 protected:
  absl::Status Run(absl::AnyInvocable<void(DelayQueues::Done)> start) {
    absl::Status result = absl::UnknownError("not answered");
    start([&](absl::Status s) { result = s; });
    amqp_.RunUntilIdle();
    return result;
  }

  testing::FakeAmqp amqp_;
  DelayQueues delays_{amqp_};
};

TEST_F(DelayQueuesTest, UndelayedPublishGoesStraightToItsExchange) {
  amqp::OutgoingMessage m;
  m.exchange = "events";
  EXPECT_TRUE(Run([&](auto done) {
                delays_.Publish(m, absl::ZeroDuration(), absl::InfiniteFuture(),
                                std::move(done));
              }).ok());
  ASSERT_EQ(amqp_.published().size(), 1u);
  EXPECT_EQ(amqp_.published()[0].exchange, "events");
  EXPECT_TRUE(amqp_.delay_queues().empty());
}

TEST_F(DelayQueuesTest, DelayedPublishDeclaresOnceAndKeepsTheRoutingKey) {
  amqp::OutgoingMessage m;
  m.exchange = "events";
  m.routing_key = "a.b";
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(Run([&](auto done) {
                  delays_.Publish(m, absl::Milliseconds(1234),
                                  absl::InfiniteFuture(), std::move(done));
                }).ok());
  }
  ASSERT_EQ(amqp_.delay_queues().size(), 1u);
  const amqp::DelayQueueSpec q = amqp_.delay_queues()[0];
  EXPECT_EQ(q.name, "warren.delay.1300ms.events");
  EXPECT_TRUE(q.with_exchange);
  EXPECT_EQ(q.message_ttl, absl::Milliseconds(1300));
  EXPECT_EQ(q.dead_letter_exchange, "events");
  EXPECT_FALSE(q.dead_letter_routing_key.has_value());
  EXPECT_EQ(q.expires, absl::Milliseconds(2600) + absl::Minutes(10));
  ASSERT_EQ(amqp_.published().size(), 3u);
  EXPECT_EQ(amqp_.published()[0].exchange, "warren.delay.1300ms.events");
  EXPECT_EQ(amqp_.published()[0].routing_key, "a.b");
  EXPECT_TRUE(amqp_.published()[0].mandatory);
}

TEST_F(DelayQueuesTest, RedeclaresAfterTheInterval) {
  DelayQueues quick(amqp_, {.expiry_slack = absl::Minutes(10),
                            .redeclare_interval = absl::ZeroDuration()});
  amqp::OutgoingMessage m;
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(Run([&](auto done) {
                  quick.Publish(m, absl::Seconds(1), absl::InfiniteFuture(),
                                std::move(done));
                }).ok());
  }
  EXPECT_EQ(amqp_.delay_queues().size(), 2u);
}

TEST_F(DelayQueuesTest, VanishedQueueIsRedeclaredAndThePublishRetriedOnce) {
  amqp_.FailNextPublishes(
      {absl::FailedPreconditionError("returned unroutable")});
  amqp::OutgoingMessage m;
  EXPECT_TRUE(Run([&](auto done) {
                delays_.Publish(m, absl::Seconds(1), absl::InfiniteFuture(),
                                std::move(done));
              }).ok());
  EXPECT_EQ(amqp_.delay_queues().size(), 2u);
  EXPECT_EQ(amqp_.published().size(), 2u);

  amqp_.FailNextPublishes({absl::FailedPreconditionError("unroutable"),
                           absl::FailedPreconditionError("unroutable")});
  EXPECT_EQ(Run([&](auto done) {
              delays_.Publish(m, absl::Seconds(1), absl::InfiniteFuture(),
                              std::move(done));
            }).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(DelayQueuesTest, RetryCountsAndRemembersTheOrigin) {
  amqp::Delivery d;
  d.exchange = "events";
  d.routing_key = "a.b";
  d.payload = "body";
  d.message_id = "m1";
  d.persistent = false;
  d.priority = 3;
  d.reply_to = "replies";
  d.correlation_id = "c-1";
  d.headers = {{"k", "v"}};
  const RetryTarget target{"jobs", /*quorum=*/true};
  EXPECT_TRUE(Run([&](auto done) {
                delays_.Retry(d, target, absl::Milliseconds(500),
                              absl::InfiniteFuture(), std::move(done));
              }).ok());
  ASSERT_EQ(amqp_.delay_queues().size(), 1u);
  const amqp::DelayQueueSpec q = amqp_.delay_queues()[0];
  EXPECT_EQ(q.name, "warren.retry.500ms.jobs");
  EXPECT_TRUE(q.quorum);
  EXPECT_FALSE(q.with_exchange);
  EXPECT_EQ(q.dead_letter_exchange, "");
  EXPECT_EQ(q.dead_letter_routing_key, "jobs");
  ASSERT_EQ(amqp_.published().size(), 1u);
  amqp::OutgoingMessage m = amqp_.published()[0];
  EXPECT_EQ(m.exchange, "");
  EXPECT_EQ(m.routing_key, "warren.retry.500ms.jobs");
  EXPECT_EQ(m.payload, "body");
  EXPECT_EQ(m.message_id, "m1");
  EXPECT_FALSE(m.persistent);
  EXPECT_EQ(m.priority, 3);
  EXPECT_EQ(m.reply_to, "replies");
  EXPECT_EQ(m.correlation_id, "c-1");
  EXPECT_THAT(m.headers,
              UnorderedElementsAre(Pair("k", "v"), Pair(kRetriesHeader, "1"),
                                   Pair(kRetryExchangeHeader, "events"),
                                   Pair(kRetryRoutingKeyHeader, "a.b")));

  // Back from the retry queue, then retried again.
  amqp::Delivery back;
  back.exchange = "";
  back.routing_key = "jobs";
  back.headers = m.headers;
  RestoreRetriedOrigin("jobs", back);
  EXPECT_EQ(back.exchange, "events");
  EXPECT_EQ(back.routing_key, "a.b");
  EXPECT_EQ(RetriesOf(back), 1u);
  EXPECT_TRUE(Run([&](auto done) {
                delays_.Retry(back, target, absl::Milliseconds(500),
                              absl::InfiniteFuture(), std::move(done));
              }).ok());
  EXPECT_THAT(amqp_.published()[1].headers,
              UnorderedElementsAre(Pair("k", "v"), Pair(kRetriesHeader, "2"),
                                   Pair(kRetryExchangeHeader, "events"),
                                   Pair(kRetryRoutingKeyHeader, "a.b")));
}

TEST_F(DelayQueuesTest, ARetriedRequestKeepsItsReplyAddress) {
  amqp::Delivery d;
  d.routing_key = "rpc";
  d.reply_to = "amq.rabbitmq.reply-to.abc.def";
  d.correlation_id = "c-7";
  EXPECT_TRUE(Run([&](auto done) {
                delays_.Retry(d, RetryTarget{"rpc", /*quorum=*/false},
                              absl::Milliseconds(500), absl::InfiniteFuture(),
                              std::move(done));
              }).ok());
  ASSERT_EQ(amqp_.published().size(), 1u);
  EXPECT_EQ(amqp_.published()[0].reply_to, d.reply_to);
  EXPECT_EQ(amqp_.published()[0].correlation_id, "c-7");
}

TEST(RestoreRetriedOriginTest, OnlyForMessagesBackFromTheRetryQueue) {
  amqp::Delivery d;
  d.exchange = "other";
  d.routing_key = "jobs";
  d.headers = {{kRetryExchangeHeader, "forged"},
               {kRetryRoutingKeyHeader, "forged"}};
  RestoreRetriedOrigin("jobs", d);
  EXPECT_EQ(d.exchange, "other");
}

}  // namespace
}  // namespace warren::messaging
