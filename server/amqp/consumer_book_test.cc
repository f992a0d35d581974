#include "server/amqp/consumer_book.h"

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace warren::amqp {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint16_t kFirst = 4;

class NullSink : public SubscriptionSink {
 public:
  void OnSubscribed(const std::string&) override {}
  void OnDelivery(Delivery) override {}
  void OnEnded(absl::Status) override {}
};

// Acks as (channel, tag, multiple), for readable expectations.
std::vector<std::tuple<uint16_t, uint64_t, bool>> Frames(
    const std::vector<ConsumerBook::Ack>& acks) {
  std::vector<std::tuple<uint16_t, uint64_t, bool>> frames;
  for (const auto& a : acks) {
    frames.emplace_back(a.channel, a.delivery_tag, a.multiple);
  }
  return frames;
}

class ConsumerBookTest : public ::testing::Test {
 protected:
  // Subscription `id` on `channel` with deliveries `tags`.
  void Consume(SubscriptionId id, uint16_t channel,
               const std::vector<uint64_t>& tags) {
    book_.Add(id, channel, sink_);
    for (uint64_t tag : tags) {
      EXPECT_EQ(book_.OnDelivery(channel, tag), sink_.get());
    }
  }

  std::shared_ptr<NullSink> sink_ = std::make_shared<NullSink>();
  ConsumerBook book_{kFirst};
};

TEST_F(ConsumerBookTest, AcksInOrderBecomeOneMultipleAck) {
  Consume(1, kFirst, {1, 2, 3, 4, 5});
  for (uint64_t tag : {3, 1, 2}) book_.QueueAck(1, tag);  // any order
  EXPECT_THAT(Frames(book_.TakeAcks()),
              ElementsAre(std::make_tuple(kFirst, 3u, true)));
  EXPECT_EQ(book_.unsettled(1), 2u);
  EXPECT_THAT(book_.TakeAcks(), IsEmpty());  // sent once
}

TEST_F(ConsumerBookTest, AnAckOfTheOldestAloneIsASingleAck) {
  Consume(1, kFirst, {1, 2});
  book_.QueueAck(1, 1);
  EXPECT_THAT(Frames(book_.TakeAcks()),
              ElementsAre(std::make_tuple(kFirst, 1u, false)));
}

TEST_F(ConsumerBookTest, AcksPastAnUnsettledDeliveryGoOutOneByOne) {
  Consume(1, kFirst, {1, 2, 3, 4, 5});
  // 3 stays unsettled: a multiple ack of 5 would settle it too.
  for (uint64_t tag : {1, 2, 4, 5}) book_.QueueAck(1, tag);
  EXPECT_THAT(Frames(book_.TakeAcks()),
              ElementsAre(std::make_tuple(kFirst, 2u, true),
                          std::make_tuple(kFirst, 4u, false),
                          std::make_tuple(kFirst, 5u, false)));
  EXPECT_EQ(book_.unsettled(1), 1u);
  // Once 3 is the oldest unsettled, acking it alone is a single ack.
  book_.QueueAck(1, 3);
  EXPECT_THAT(Frames(book_.TakeAcks()),
              ElementsAre(std::make_tuple(kFirst, 3u, false)));
  EXPECT_EQ(book_.unsettled(1), 0u);
}

TEST_F(ConsumerBookTest, AcksBehindAnUnsettledOldestAreNeverCoalesced) {
  Consume(1, kFirst, {1, 2, 3});
  book_.QueueAck(1, 2);
  book_.QueueAck(1, 3);
  EXPECT_THAT(Frames(book_.TakeAcks()),
              ElementsAre(std::make_tuple(kFirst, 2u, false),
                          std::make_tuple(kFirst, 3u, false)));
}

TEST_F(ConsumerBookTest, ARequeueSettlesAtOnceAndTheAcksAroundItCoalesce) {
  Consume(1, kFirst, {1, 2, 3});
  book_.QueueAck(1, 1);
  EXPECT_EQ(book_.TakeForNack(1, 2), std::optional<uint16_t>(kFirst));
  book_.QueueAck(1, 3);
  // The nack went out first, so a multiple ack of 3 settles 1 and 3 only.
  EXPECT_THAT(Frames(book_.TakeAcks()),
              ElementsAre(std::make_tuple(kFirst, 3u, true)));
  EXPECT_EQ(book_.unsettled(1), 0u);
}

TEST_F(ConsumerBookTest, EachSubscriptionAcksOnItsOwnChannel) {
  Consume(1, kFirst, {1, 2});
  Consume(2, kFirst + 1, {1, 2});
  book_.QueueAck(2, 1);
  book_.QueueAck(1, 1);
  book_.QueueAck(1, 2);
  book_.QueueAck(2, 2);
  // In the order the subscriptions first queued an ack.
  EXPECT_THAT(Frames(book_.TakeAcks()),
              ElementsAre(std::make_tuple(uint16_t{kFirst + 1}, 2u, true),
                          std::make_tuple(kFirst, 2u, true)));
}

TEST_F(ConsumerBookTest, AnUnsubscribeTakesItsOwnAcksOnly) {
  Consume(1, kFirst, {1, 2});
  Consume(2, kFirst + 1, {1});
  book_.QueueAck(1, 1);
  book_.QueueAck(2, 1);
  EXPECT_THAT(Frames(book_.TakeAcks(1)),
              ElementsAre(std::make_tuple(kFirst, 1u, false)));
  book_.Remove(1);
  EXPECT_FALSE(book_.Has(1));
  EXPECT_EQ(book_.OnDelivery(kFirst, 3), nullptr);
  EXPECT_THAT(Frames(book_.TakeAcks()),
              ElementsAre(std::make_tuple(uint16_t{kFirst + 1}, 1u, false)));
}

TEST_F(ConsumerBookTest, SettlesOfAnEndedSubscriptionAreDropped) {
  Consume(1, kFirst, {1, 2});
  book_.QueueAck(1, 1);
  EXPECT_EQ(book_.RemoveByChannel(kFirst), sink_);
  EXPECT_EQ(book_.RemoveByChannel(kFirst), nullptr);
  book_.QueueAck(1, 2);
  EXPECT_EQ(book_.TakeForNack(1, 2), std::nullopt);
  EXPECT_THAT(book_.TakeAcks(), IsEmpty());  // the broker requeued them
  EXPECT_THAT(book_.TakeAcks(1), IsEmpty());
}

TEST_F(ConsumerBookTest, DeliveriesOnAChannelWithoutSubscriptionAreNobodys) {
  EXPECT_EQ(book_.OnDelivery(kFirst, 1), nullptr);
  Consume(7, kFirst, {});
  EXPECT_EQ(book_.ChannelOf(7), std::optional<uint16_t>(kFirst));
  EXPECT_EQ(book_.ChannelOf(8), std::nullopt);
  EXPECT_EQ(book_.OnDelivery(kFirst + 1, 1), nullptr);
}

TEST_F(ConsumerBookTest, NewChannelNumbersComeFirstThenTheOldestReleased) {
  const int max = kFirst + 2;  // three subscription channels
  EXPECT_EQ(book_.AllocateChannel(max), kFirst);
  EXPECT_EQ(book_.AllocateChannel(max), kFirst + 1);
  book_.OnChannelClosed(kFirst + 1);
  // Not yet released: a fresh number, then none at all.
  EXPECT_EQ(book_.AllocateChannel(max), kFirst + 2);
  EXPECT_EQ(book_.AllocateChannel(max), 0);
  book_.OnChannelClosed(kFirst);
  EXPECT_TRUE(book_.IsClosed(kFirst));
  EXPECT_THAT(book_.ReleaseClosedChannels(), ElementsAre(kFirst, kFirst + 1));
  EXPECT_FALSE(book_.IsClosed(kFirst));
  EXPECT_FALSE(book_.has_closed_channels());
  book_.OnChannelClosed(kFirst + 2);
  book_.ReleaseClosedChannels();
  EXPECT_EQ(book_.AllocateChannel(max), kFirst);
  EXPECT_EQ(book_.AllocateChannel(max), kFirst + 1);
  EXPECT_EQ(book_.AllocateChannel(max), kFirst + 2);
  EXPECT_EQ(book_.AllocateChannel(max), 0);
}

TEST_F(ConsumerBookTest, AChannelMaxOfZeroMeansTheProtocolsLimit) {
  ConsumerBook book(65534);
  EXPECT_EQ(book.AllocateChannel(0), 65534);
  EXPECT_EQ(book.AllocateChannel(0), 65535);
  EXPECT_EQ(book.AllocateChannel(0), 0);
}

TEST_F(ConsumerBookTest, ClearHandsBackEverySinkAndStartsTheNumbersAgain) {
  auto other = std::make_shared<NullSink>();
  EXPECT_EQ(book_.AllocateChannel(0), kFirst);
  book_.Add(2, kFirst, other);
  Consume(1, kFirst + 1, {1});
  book_.QueueAck(1, 1);
  book_.OnChannelClosed(kFirst + 5);
  const auto sinks = book_.Clear();
  EXPECT_THAT(sinks, ElementsAre(sink_, other));  // subscription order
  EXPECT_EQ(book_.size(), 0u);
  EXPECT_FALSE(book_.IsClosed(kFirst + 5));
  EXPECT_THAT(book_.TakeAcks(), IsEmpty());
  EXPECT_EQ(book_.AllocateChannel(0), kFirst);
}

}  // namespace
}  // namespace warren::amqp
