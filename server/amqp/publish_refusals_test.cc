// Unit tests of when a refused confirm channel is replaced and when the
// connection moves (the failover case of quorum queues: see
// publish_refusals.h). The AMQP client's use of it is tested against real
// brokers in tests/cluster.
#include "server/amqp/publish_refusals.h"

#include <vector>

#include "gtest/gtest.h"

namespace warren::amqp {
namespace {

using Action = PublishRefusals::Action;

constexpr absl::Duration kTick = absl::Milliseconds(100);

class PublishRefusalsTest : public ::testing::Test {
 protected:
  PublishRefusalsTest() { refusals_.OnConnected(now_); }
  // One publish every 100 ms for `d`, each refused.
  void RefuseFor(absl::Duration d) {
    for (absl::Time end = now_ + d; now_ < end; now_ += kTick) {
      refusals_.OnRefused(now_);
    }
  }
  // Refuses until Next() asks for something (at most `limit`); answers it.
  Action RefuseUntilAction(absl::Duration limit) {
    for (absl::Time end = now_ + limit; now_ < end; now_ += kTick) {
      refusals_.OnRefused(now_);
      const Action next = refusals_.Next(now_);
      if (next != Action::kNone) return next;
    }
    return Action::kNone;
  }

  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  PublishRefusals refusals_;
};

TEST_F(PublishRefusalsTest, ARunOfRefusalsAfterAFailoverReplacesThenMoves) {
  // The scenario seen on a cluster: every publish refused from the moment
  // the connection failed over. Publishing must resume within 5 s: two
  // fresh channels, then another node.
  const absl::Time start = now_;
  EXPECT_EQ(RefuseUntilAction(absl::Seconds(5)), Action::kReplaceChannel);
  EXPECT_GE(now_ - start, absl::Seconds(1));
  refusals_.OnChannelReplaced(now_);
  EXPECT_EQ(RefuseUntilAction(absl::Seconds(5)), Action::kReplaceChannel);
  refusals_.OnChannelReplaced(now_);
  EXPECT_EQ(RefuseUntilAction(absl::Seconds(5)), Action::kMoveConnection);
  EXPECT_LE(now_ - start, absl::Seconds(4));
}

TEST_F(PublishRefusalsTest, AConfirmationEndsTheRun) {
  RefuseFor(absl::Milliseconds(900));
  refusals_.OnConfirmed();
  RefuseFor(absl::Milliseconds(900));
  EXPECT_EQ(refusals_.Next(now_), Action::kNone);
  refusals_.OnConfirmed();
  // A replaced channel that works: nothing more to do.
  EXPECT_EQ(RefuseUntilAction(absl::Seconds(5)), Action::kReplaceChannel);
  refusals_.OnChannelReplaced(now_);
  refusals_.OnConfirmed();
  now_ += absl::Seconds(10);
  EXPECT_EQ(refusals_.Next(now_), Action::kNone);
}

TEST_F(PublishRefusalsTest, OneOrTwoRefusalsAreTheQueuesOwnAnswer) {
  refusals_.OnRefused(now_);
  refusals_.OnRefused(now_ + kTick);
  EXPECT_EQ(refusals_.Next(now_ + absl::Seconds(30)), Action::kNone);
}

TEST_F(PublishRefusalsTest, AReplacementNobodyPublishedOnIsNotReplacedAgain) {
  EXPECT_EQ(RefuseUntilAction(absl::Seconds(5)), Action::kReplaceChannel);
  refusals_.OnChannelReplaced(now_);
  EXPECT_EQ(refusals_.Next(now_ + absl::Seconds(10)), Action::kNone);
}

TEST_F(PublishRefusalsTest, LateInAConnectionsLifeTheConnectionStays) {
  // A full queue with overflow reject-publish, an hour after connecting:
  // other channels are tried less and less often; no other node would
  // change the answer, and moving would end every subscription.
  now_ += absl::Hours(1);
  absl::Time last = now_;
  std::vector<absl::Duration> pauses;
  for (int i = 0; i < 7; ++i) {
    ASSERT_EQ(RefuseUntilAction(absl::Minutes(2)), Action::kReplaceChannel)
        << i;
    pauses.push_back(now_ - last);
    last = now_;
    refusals_.OnChannelReplaced(now_);
  }
  EXPECT_LT(pauses[2], pauses[3]);
  EXPECT_LT(pauses[3], pauses[4]);
  EXPECT_LE(pauses[6], absl::Seconds(30) + kTick);
}

TEST_F(PublishRefusalsTest, ANewConnectionStartsAfresh) {
  EXPECT_EQ(RefuseUntilAction(absl::Seconds(5)), Action::kReplaceChannel);
  refusals_.OnChannelReplaced(now_);
  EXPECT_EQ(RefuseUntilAction(absl::Seconds(5)), Action::kReplaceChannel);
  refusals_.OnChannelReplaced(now_);
  refusals_.OnConnected(now_);
  RefuseFor(absl::Milliseconds(500));
  EXPECT_EQ(refusals_.Next(now_), Action::kNone);
  EXPECT_EQ(RefuseUntilAction(absl::Seconds(5)), Action::kReplaceChannel);
}

}  // namespace
}  // namespace warren::amqp
