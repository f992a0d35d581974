#include "server/amqp/confirm_tracker.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace warren::amqp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

// Records every answer each publish gets (one is right; two is a bug).
class Answers {
 public:
  ConfirmTracker::Done For(const std::string& name) {
    return [answers = answers_, name](absl::Status s) {
      (*answers)[name].push_back(std::move(s));
    };
  }
  std::vector<absl::Status> Of(const std::string& name) const {
    auto it = answers_->find(name);
    return it == answers_->end() ? std::vector<absl::Status>() : it->second;
  }
  // The one answer of `name`; fails the test if there is not exactly one.
  absl::Status Only(const std::string& name) const {
    std::vector<absl::Status> all = Of(name);
    EXPECT_EQ(all.size(), 1u) << name;
    return all.empty() ? absl::UnknownError("unanswered") : all[0];
  }

 private:
  std::shared_ptr<std::map<std::string, std::vector<absl::Status>>> answers_ =
      std::make_shared<std::map<std::string, std::vector<absl::Status>>>();
};

ConfirmTracker::Publish Message(const std::string& id, Answers& answers,
                                absl::Time deadline = absl::InfiniteFuture()) {
  ConfirmTracker::Publish p;
  p.message.exchange = "orders";
  p.message.routing_key = "eu.new";
  p.message.message_id = id;
  p.deadline = deadline;
  p.done = answers.For(id);
  return p;
}

TEST(ConfirmTrackerTest, TagsFollowThePublishOrderFromOnePerChannel) {
  Answers answers;
  ConfirmTracker tracker;
  EXPECT_EQ(tracker.OnPublished(Message("a", answers), kStart), 1u);
  EXPECT_EQ(tracker.OnPublished(Message("b", answers), kStart), 2u);
  EXPECT_EQ(tracker.size(), 2u);
  tracker.FailAll(absl::UnavailableError("gone"));
  tracker.OnChannelOpened();
  EXPECT_EQ(tracker.OnPublished(Message("c", answers), kStart), 1u);
}

TEST(ConfirmTrackerTest, AnAckAnswersOkAndReportsTheLatency) {
  Answers answers;
  std::vector<absl::Duration> latencies;
  ConfirmTracker tracker([&](absl::Duration d) { latencies.push_back(d); });
  tracker.OnPublished(Message("a", answers), kStart);
  EXPECT_EQ(tracker.OnConfirm(1, false, true, kStart + absl::Milliseconds(7)),
            1u);
  EXPECT_TRUE(answers.Only("a").ok());
  EXPECT_THAT(latencies, ElementsAre(absl::Milliseconds(7)));
  EXPECT_TRUE(tracker.empty());
}

TEST(ConfirmTrackerTest, ASingleAckSettlesOnlyItsOwnTag) {
  Answers answers;
  ConfirmTracker tracker;
  for (const char* id : {"a", "b", "c"}) {
    tracker.OnPublished(Message(id, answers), kStart);
  }
  EXPECT_EQ(tracker.OnConfirm(2, false, true, kStart), 1u);
  EXPECT_THAT(answers.Of("a"), IsEmpty());
  EXPECT_TRUE(answers.Only("b").ok());
  EXPECT_THAT(answers.Of("c"), IsEmpty());
  EXPECT_EQ(tracker.size(), 2u);
}

TEST(ConfirmTrackerTest, ANackWithMultipleRefusesTheWholeRangeAndNoMore) {
  Answers answers;
  std::vector<absl::Duration> latencies;
  ConfirmTracker tracker([&](absl::Duration d) { latencies.push_back(d); });
  for (const char* id : {"a", "b", "c", "d", "e"}) {
    tracker.OnPublished(Message(id, answers), kStart);
  }
  EXPECT_EQ(tracker.OnConfirm(1, false, true, kStart), 1u);
  // Tags 2 and 3: the nack covers everything tracked up to 3.
  EXPECT_EQ(tracker.OnConfirm(3, true, false, kStart), 2u);
  EXPECT_TRUE(answers.Only("a").ok());
  for (const char* id : {"b", "c"}) {
    const absl::Status s = answers.Only(id);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << id;
    EXPECT_THAT(s.message(), HasSubstr("basic.nack"));
  }
  EXPECT_THAT(answers.Of("d"), IsEmpty());
  EXPECT_THAT(answers.Of("e"), IsEmpty());
  EXPECT_EQ(latencies.size(), 1u);  // refusals are no confirm latency

  EXPECT_EQ(tracker.OnConfirm(5, true, true, kStart), 2u);
  EXPECT_TRUE(answers.Only("d").ok());
  EXPECT_TRUE(answers.Only("e").ok());
  EXPECT_TRUE(tracker.empty());
}

TEST(ConfirmTrackerTest, ConfirmsOfUnknownTagsSettleNothing) {
  Answers answers;
  ConfirmTracker tracker;
  EXPECT_EQ(tracker.OnConfirm(1, true, true, kStart), 0u);
  tracker.OnPublished(Message("a", answers), kStart);
  tracker.OnPublished(Message("b", answers), kStart);
  EXPECT_EQ(tracker.OnConfirm(1, false, true, kStart), 1u);
  // Tag 1 again (a duplicate frame), and a multiple below what is left.
  EXPECT_EQ(tracker.OnConfirm(1, false, true, kStart), 0u);
  EXPECT_EQ(tracker.OnConfirm(1, true, false, kStart), 0u);
  EXPECT_EQ(tracker.OnConfirm(9, false, true, kStart), 0u);
  EXPECT_THAT(answers.Of("b"), IsEmpty());
  EXPECT_EQ(tracker.size(), 1u);
}

TEST(ConfirmTrackerTest, AReturnThenItsAckIsUnroutable) {
  Answers answers;
  ConfirmTracker tracker;
  tracker.OnPublished(Message("a", answers), kStart);
  tracker.OnPublished(Message("b", answers), kStart);
  tracker.OnReturned("b", "312 NO_ROUTE");
  EXPECT_EQ(tracker.OnConfirm(2, true, true, kStart), 2u);
  EXPECT_TRUE(answers.Only("a").ok());
  const absl::Status b = answers.Only("b");
  EXPECT_EQ(b.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(b.message(), HasSubstr("routing key 'eu.new'"));
  EXPECT_THAT(b.message(), HasSubstr("exchange 'orders'"));
  EXPECT_THAT(b.message(), HasSubstr("312 NO_ROUTE"));
}

TEST(ConfirmTrackerTest, AReturnedMessageThatIsNackedIsRefused) {
  Answers answers;
  ConfirmTracker tracker;
  tracker.OnPublished(Message("a", answers), kStart);
  tracker.OnReturned("a", "312 NO_ROUTE");
  tracker.OnConfirm(1, false, false, kStart);
  EXPECT_EQ(answers.Only("a").code(), absl::StatusCode::kUnavailable);
}

TEST(ConfirmTrackerTest, ReturnsOfOneIdMarkItsPublishesOldestFirst) {
  Answers answers;
  ConfirmTracker tracker;
  ConfirmTracker::Publish first = Message("same", answers);
  first.done = answers.For("first");
  ConfirmTracker::Publish second = Message("same", answers);
  second.done = answers.For("second");
  tracker.OnPublished(std::move(first), kStart);
  tracker.OnPublished(std::move(second), kStart);
  tracker.OnReturned("same", "312 NO_ROUTE");
  tracker.OnReturned("same", "312 NO_ROUTE");
  tracker.OnReturned("same", "312 NO_ROUTE");  // no third: ignored
  tracker.OnConfirm(2, true, true, kStart);
  EXPECT_EQ(answers.Only("first").code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(answers.Only("second").code(),
            absl::StatusCode::kFailedPrecondition);
}

// Two calls that share a message id (a caller's de-duplication key): the
// return names the call by its correlation id, so only that one fails.
TEST(ConfirmTrackerTest, ReturnsByCorrelationIdMarkOnlyThatPublish) {
  Answers answers;
  ConfirmTracker tracker;
  ConfirmTracker::Publish routed = Message("same", answers);
  routed.message.correlation_id = "call-1";
  routed.done = answers.For("routed");
  ConfirmTracker::Publish unroutable = Message("same", answers);
  unroutable.message.correlation_id = "call-2";
  unroutable.done = answers.For("unroutable");
  tracker.OnPublished(std::move(routed), kStart);
  tracker.OnPublished(std::move(unroutable), kStart);
  tracker.OnReturnedByCorrelationId("call-2", "312 NO_ROUTE");
  tracker.OnConfirm(2, true, true, kStart);
  EXPECT_TRUE(answers.Only("routed").ok());
  EXPECT_EQ(answers.Only("unroutable").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ConfirmTrackerTest, AReturnOfAnUnknownIdChangesNothing) {
  Answers answers;
  ConfirmTracker tracker;
  tracker.OnPublished(Message("a", answers), kStart);
  tracker.OnReturned("elsewhere", "312 NO_ROUTE");
  tracker.OnConfirm(1, false, true, kStart);
  EXPECT_TRUE(answers.Only("a").ok());
}

TEST(ConfirmTrackerTest, ADeadlineBeforeTheConfirmAnswersOnceNotOk) {
  Answers answers;
  std::vector<absl::Duration> latencies;
  ConfirmTracker tracker([&](absl::Duration d) { latencies.push_back(d); });
  tracker.OnPublished(Message("a", answers, kStart + absl::Seconds(1)), kStart);
  tracker.ExpireDeadlines(kStart + absl::Seconds(1));
  const absl::Status expired = answers.Only("a");
  EXPECT_EQ(expired.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(expired.message(), HasSubstr("same message_id"));
  // Still tracked: the confirm that comes late settles it without a second
  // answer, and still counts (for the refusals, the latency).
  EXPECT_EQ(tracker.size(), 1u);
  EXPECT_EQ(tracker.OnConfirm(1, false, true, kStart + absl::Seconds(2)), 1u);
  EXPECT_EQ(answers.Of("a").size(), 1u);
  EXPECT_THAT(latencies, ElementsAre(absl::Seconds(2)));
  EXPECT_TRUE(tracker.empty());
}

TEST(ConfirmTrackerTest, AConfirmBeforeTheDeadlineScanWinsEvenIfLate) {
  Answers answers;
  ConfirmTracker tracker;
  tracker.OnPublished(Message("a", answers, kStart + absl::Seconds(1)), kStart);
  // The deadline has passed, but the confirm is read before the scan.
  tracker.OnConfirm(1, false, true, kStart + absl::Seconds(3));
  tracker.ExpireDeadlines(kStart + absl::Seconds(3));
  EXPECT_TRUE(answers.Only("a").ok());
}

TEST(ConfirmTrackerTest, DeadlinesAreAnsweredWithinTheScanInterval) {
  Answers answers;
  ConfirmTracker tracker;
  tracker.ExpireDeadlines(kStart);  // a scan at kStart
  tracker.OnPublished(Message("a", answers, kStart + absl::Milliseconds(1)),
                      kStart);
  tracker.ExpireDeadlines(kStart + absl::Milliseconds(5));
  EXPECT_THAT(answers.Of("a"), IsEmpty());  // the next scan is not due
  tracker.ExpireDeadlines(kStart + ConfirmTracker::kDeadlineScanInterval);
  EXPECT_EQ(answers.Only("a").code(), absl::StatusCode::kDeadlineExceeded);
  // Answered once, however many scans follow.
  tracker.ExpireDeadlines(kStart + absl::Seconds(1));
  EXPECT_EQ(answers.Of("a").size(), 1u);
}

TEST(ConfirmTrackerTest, OnlyTheUnansweredAreTakenAfterAChannelClose) {
  Answers answers;
  ConfirmTracker tracker;
  tracker.OnPublished(Message("a", answers), kStart);
  tracker.OnPublished(Message("late", answers, kStart), kStart);
  tracker.OnPublished(Message("c", answers), kStart);
  tracker.ExpireDeadlines(kStart);
  std::vector<ConfirmTracker::Publish> taken = tracker.TakeUnanswered();
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0].message.message_id, "a");
  EXPECT_EQ(taken[1].message.message_id, "c");
  EXPECT_TRUE(tracker.empty());
  EXPECT_THAT(answers.Of("a"), IsEmpty());
  ConfirmTracker::AnswerAll(taken, absl::CancelledError("test over"));
}

// Replays through a fake channel: what is republished is tracked again.
struct Republisher {
  ConfirmTracker& tracker;
  std::vector<std::string> republished = {};
  absl::Status Republish(ConfirmTracker::Publish& p) {
    republished.push_back(p.message.message_id);
    tracker.OnPublished(std::move(p), kStart);
    return absl::OkStatus();
  }
};

TEST(ConfirmTrackerTest, AfterAChannelCloseTheUnconfirmedGoOutAgainInOrder) {
  Answers answers;
  ConfirmTracker tracker;
  for (const char* id : {"a", "b", "c"}) {
    tracker.OnPublished(Message(id, answers), kStart);
  }
  tracker.OnConfirm(1, false, true, kStart);
  // The broker closed the channel: a missing exchange (the publish that
  // caused it is checked again, and fails alone, when republished).
  const absl::Status closed =
      absl::NotFoundError("RabbitMQ: NOT_FOUND - no exchange 'orders'");
  ASSERT_TRUE(ConfirmTracker::Replayable(closed));
  std::vector<ConfirmTracker::Publish> replay = tracker.TakeUnanswered();
  tracker.OnChannelOpened();
  Republisher channel{tracker};
  EXPECT_TRUE(ConfirmTracker::Replay(std::move(replay), closed,
                                     [&](ConfirmTracker::Publish& p) {
                                       return channel.Republish(p);
                                     })
                  .ok());
  EXPECT_THAT(channel.republished, ElementsAre("b", "c"));
  EXPECT_THAT(answers.Of("b"), IsEmpty());
  // The fresh channel's tags start again at 1.
  EXPECT_EQ(tracker.OnConfirm(2, true, true, kStart), 2u);
  EXPECT_TRUE(answers.Only("b").ok());
  EXPECT_TRUE(answers.Only("c").ok());
}

TEST(ConfirmTrackerTest, WhatCannotBePinnedOnOneMessageFailsThemAll) {
  for (const absl::Status& closed :
       {absl::PermissionDeniedError("RabbitMQ: ACCESS_REFUSED"),
        absl::FailedPreconditionError("RabbitMQ: PRECONDITION_FAILED"),
        absl::InvalidArgumentError("RabbitMQ: CONTENT_TOO_LARGE")}) {
    Answers answers;
    ConfirmTracker tracker;
    tracker.OnPublished(Message("a", answers), kStart);
    tracker.OnPublished(Message("b", answers), kStart);
    EXPECT_FALSE(ConfirmTracker::Replayable(closed)) << closed;
    bool republished = false;
    EXPECT_TRUE(ConfirmTracker::Replay(tracker.TakeUnanswered(), closed,
                                       [&](ConfirmTracker::Publish&) {
                                         republished = true;
                                         return absl::OkStatus();
                                       })
                    .ok());
    EXPECT_FALSE(republished);
    EXPECT_EQ(answers.Only("a"), closed);
    EXPECT_EQ(answers.Only("b"), closed);
  }
}

TEST(ConfirmTrackerTest, AReplacedOrLostChannelIsReplayable) {
  EXPECT_TRUE(ConfirmTracker::Replayable(
      absl::UnavailableError("the confirm channel was replaced")));
  EXPECT_TRUE(ConfirmTracker::Replayable(
      absl::UnavailableError("RabbitMQ: CHANNEL_ERROR")));
}

TEST(ConfirmTrackerTest, AConnectionLostDuringReplayAnswersEveryPublish) {
  Answers answers;
  ConfirmTracker tracker;
  for (const char* id : {"a", "b", "c", "d"}) {
    tracker.OnPublished(Message(id, answers), kStart);
  }
  const absl::Status lost = absl::UnavailableError("connection lost");
  int calls = 0;
  const absl::Status replayed = ConfirmTracker::Replay(
      tracker.TakeUnanswered(),
      absl::UnavailableError("the confirm channel was replaced"),
      [&](ConfirmTracker::Publish& p) {
        if (++calls == 1) {
          tracker.OnPublished(std::move(p), kStart);
          return absl::OkStatus();
        }
        p.done(lost);  // as DoPublish does when the socket fails
        return lost;
      });
  EXPECT_EQ(replayed, lost);
  EXPECT_EQ(calls, 2);
  // "a" went out again (the connection's end answers it); "b" was answered
  // by the failed republish; "c" and "d" were never tried, and must not be
  // left waiting for an answer that would never come.
  EXPECT_THAT(answers.Of("a"), IsEmpty());
  EXPECT_EQ(answers.Only("b"), lost);
  EXPECT_EQ(answers.Only("c"), lost);
  EXPECT_EQ(answers.Only("d"), lost);
  tracker.FailAll(lost);
  EXPECT_EQ(answers.Only("a"), lost);
}

TEST(ConfirmTrackerTest, FailAllAnswersOnlyWhatIsStillWaiting) {
  Answers answers;
  ConfirmTracker tracker;
  tracker.OnPublished(Message("expired", answers, kStart), kStart);
  tracker.OnPublished(Message("waiting", answers), kStart);
  tracker.ExpireDeadlines(kStart);
  tracker.FailAll(absl::UnavailableError("connection lost"));
  EXPECT_EQ(answers.Only("expired").code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(answers.Only("waiting").code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(tracker.empty());
}

}  // namespace
}  // namespace warren::amqp
