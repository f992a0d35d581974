#include "server/amqp/call_book.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace warren::amqp {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1700000000);

// Where a call's answer lands.
struct Answer {
  std::optional<absl::StatusOr<Delivery>> value;
  CallBook::Done Catch() {
    return [this](absl::StatusOr<Delivery> v) {
      EXPECT_FALSE(value.has_value()) << "answered twice";
      value = std::move(v);
    };
  }
};

Delivery Reply(const std::string& correlation_id, const std::string& payload) {
  Delivery d;
  d.correlation_id = correlation_id;
  d.payload = payload;
  return d;
}

TEST(CallBookTest, EachReplyAnswersOnlyTheCallWithItsId) {
  CallBook book;
  Answer a, b;
  book.Add("a", kStart + absl::Seconds(5), kStart, a.Catch());
  book.Add("b", kStart + absl::Seconds(5), kStart, b.Catch());
  EXPECT_TRUE(book.OnReply(Reply("b", "for b")));
  EXPECT_FALSE(a.value.has_value());
  ASSERT_TRUE(b.value.has_value());
  ASSERT_TRUE(b.value->ok());
  EXPECT_EQ((*b.value)->payload, "for b");
  EXPECT_EQ(book.size(), 1u);
}

TEST(CallBookTest, OnlyTheFirstReplyAnswersLaterOnesAreDroppedAndCounted) {
  CallBook book;
  Answer a;
  book.Add("a", kStart + absl::Seconds(5), kStart, a.Catch());
  EXPECT_TRUE(book.OnReply(Reply("a", "first")));
  EXPECT_FALSE(book.OnReply(Reply("a", "second")));
  EXPECT_FALSE(book.OnReply(Reply("never-ours", "x")));
  EXPECT_EQ((*a.value)->payload, "first");
  EXPECT_EQ(book.dropped(), 2u);
  EXPECT_TRUE(book.empty());
}

TEST(CallBookTest, ADeadlineAnswersDeadlineExceededAndALateReplyIsDropped) {
  CallBook book;
  Answer a, b;
  book.Add("a", kStart + absl::Milliseconds(1500), kStart, a.Catch());
  book.Add("b", kStart + absl::Seconds(5), kStart, b.Catch());
  book.ExpireDeadlines(kStart + absl::Milliseconds(1499));
  EXPECT_FALSE(a.value.has_value());
  book.ExpireDeadlines(kStart + absl::Milliseconds(1500));
  ASSERT_TRUE(a.value.has_value());
  EXPECT_EQ(a.value->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(a.value->status().message(), "no reply within 1.5s");
  EXPECT_FALSE(b.value.has_value());
  EXPECT_FALSE(book.OnReply(Reply("a", "late")));
  EXPECT_EQ(book.dropped(), 1u);
}

TEST(CallBookTest, AFailedPublishAnswersOnceAndNotAfterAReply) {
  CallBook book;
  Answer a, b;
  book.Add("a", kStart + absl::Seconds(5), kStart, a.Catch());
  book.Add("b", kStart + absl::Seconds(5), kStart, b.Catch());
  book.Fail("a", absl::FailedPreconditionError("312 NO_ROUTE"));
  EXPECT_EQ(a.value->status().code(), absl::StatusCode::kFailedPrecondition);
  // A reply that beat its own confirm: the later failure changes nothing.
  EXPECT_TRUE(book.OnReply(Reply("b", "ok")));
  book.Fail("b", absl::UnavailableError("nack"));
  EXPECT_TRUE(b.value->ok());
}

TEST(CallBookTest, FailAllAnswersEveryWaitingCall) {
  CallBook book;
  Answer a, b;
  book.Add("a", kStart + absl::Seconds(5), kStart, a.Catch());
  book.Add("b", kStart + absl::Seconds(5), kStart, b.Catch());
  book.FailAll(absl::UnavailableError("lost"));
  EXPECT_EQ(a.value->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(b.value->status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(book.empty());
}

}  // namespace
}  // namespace warren::amqp
