#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/log_rate_limit.h"
#include "server/common/names.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"

namespace warren {
namespace {

using ::testing::HasSubstr;

TEST(ValidateNameTest, AcceptsSegmentsOfTheAllowedCharacters) {
  for (const char* name : {"a", "app/db/url", "A-Z_0.9", "x/y/z/w", ".hidden",
                           "a..b", "...", "v1.2.3/-_-"}) {
    EXPECT_TRUE(ValidateName(name, "key").ok()) << name;
  }
  EXPECT_TRUE(ValidateName(std::string(kMaxNameBytes, 'k'), "key").ok());
}

TEST(ValidateNameTest, RefusesEscapesEmptySegmentsAndForeignCharacters) {
  struct Case {
    std::string name;
    std::string why;
  };
  const Case cases[] = {
      {"", "is required"},
      {"/a", "empty segment"},
      {"a/", "empty segment"},
      {"a//b", "empty segment"},
      {"..", "'..' segment"},
      {"a/../b", "'..' segment"},
      {".", "'.' segment"},
      {"a/./b", "'.' segment"},
      {"caf\xc3\xa9", "byte 3 (0xc3)"},
      {"a b", "byte 1 (0x20)"},
      {"a*", "byte 1"},
      {std::string("a\0b", 3), "byte 1 (0x00)"},
      {std::string(kMaxNameBytes + 1, 'k'), "1025 bytes long"},
  };
  for (const Case& c : cases) {
    absl::Status status = ValidateName(c.name, "key");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(status.message(), HasSubstr("key")) << c.name;
    EXPECT_THAT(status.message(), HasSubstr(c.why)) << c.name;
  }
}

TEST(ValidateNameTest, EmptyIsAcceptedOnlyWhenAllowed) {
  EXPECT_TRUE(ValidateName("", "prefix", /*allow_empty=*/true).ok());
  EXPECT_THAT(ValidateName("", "election").message(),
              HasSubstr("election is required"));
}

TEST(LogRateLimitTest, WritesABurstPerWindowAndCountsTheRest) {
  absl::Time now = absl::FromUnixSeconds(1000);
  LogRateLimit limit(3, absl::Seconds(1), [&] { return now; });
  int64_t suppressed = -1;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(limit.Admit(&suppressed)) << i;
    EXPECT_EQ(suppressed, 0);
  }
  int64_t untouched = -1;
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limit.Admit(&untouched));
  EXPECT_EQ(untouched, -1);
  now += absl::Milliseconds(999);
  EXPECT_FALSE(limit.Admit(&untouched));
  // The next window's first line tells how many were held back.
  now += absl::Milliseconds(1);
  ASSERT_TRUE(limit.Admit(&suppressed));
  EXPECT_EQ(suppressed, 6);
  ASSERT_TRUE(limit.Admit(&suppressed));
  EXPECT_EQ(suppressed, 0);
}

TEST(LogRateLimitTest, ConcurrentCallersShareOneBudget) {
  absl::Time now = absl::FromUnixSeconds(1000);
  LogRateLimit limit(10, absl::Hours(1), [&] { return now; });
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        int64_t suppressed = 0;
        if (limit.Admit(&suppressed)) admitted.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 10);
}

TEST(TimerQueueTest, RunsInTimeOrderAndHonoursCancel) {
  TimerQueue timers;
  warren::Mutex mu;
  std::string order;
  absl::Notification done;
  const absl::Time now = absl::Now();
  timers.Schedule(now + absl::Milliseconds(30), [&] {
    warren::MutexLock lock(&mu);
    order += "b";
  });
  auto cancelled = timers.Schedule(now + absl::Milliseconds(20), [&] {
    warren::MutexLock lock(&mu);
    order += "x";
  });
  timers.Schedule(now + absl::Milliseconds(10), [&] {
    warren::MutexLock lock(&mu);
    order += "a";
  });
  timers.Schedule(now + absl::Milliseconds(40), [&] { done.Notify(); });
  EXPECT_TRUE(timers.Cancel(cancelled));
  EXPECT_FALSE(timers.Cancel(cancelled));
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  warren::MutexLock lock(&mu);
  EXPECT_EQ(order, "ab");
}

TEST(WorkerPoolTest, RunsEverythingQueuedAndRefusesBeyondTheBound) {
  std::atomic<int> ran{0};
  absl::Notification release;
  {
    WorkerPool pool(1, 2);
    // Occupy the only thread, then fill the queue.
    ASSERT_TRUE(pool.Submit([&] {
                      release.WaitForNotification();
                      ran++;
                    })
                    .ok());
    // The first task may not have been taken off the queue yet: fill until
    // the pool refuses, which must happen within the bound.
    int accepted = 0;
    absl::Status status;
    while ((status = pool.Submit([&] { ran++; })).ok()) ++accepted;
    EXPECT_GE(accepted, 1);
    EXPECT_LE(accepted, 2);
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(status.message(), HasSubstr("limit 2"));
    release.Notify();
    // The destructor runs what was queued.
  }
  EXPECT_GE(ran.load(), 2);
}

class FakeStream : public Drainable {
 public:
  void Drain() override { drained++; }
  int drained = 0;
};

TEST(StreamRegistryTest, DrainsOpenStreamsAndRefusesNewOnes) {
  StreamRegistry registry;
  auto open = std::make_shared<FakeStream>();
  auto closed = std::make_shared<FakeStream>();
  auto open_id = registry.Add(open);
  auto closed_id = registry.Add(closed);
  ASSERT_TRUE(open_id.ok());
  ASSERT_TRUE(closed_id.ok());
  EXPECT_NE(*open_id, 0u);
  EXPECT_NE(*open_id, *closed_id);
  registry.Remove(*closed_id);
  registry.DrainAll();
  EXPECT_EQ(open->drained, 1);
  EXPECT_EQ(closed->drained, 0);
  EXPECT_EQ(registry.Add(std::make_shared<FakeStream>()).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(StreamRegistryTest, RefusesStreamsBeyondTheLimitUntilOneLeaves) {
  StreamRegistry registry(2);
  auto a = std::make_shared<FakeStream>();
  auto b = std::make_shared<FakeStream>();
  auto c = std::make_shared<FakeStream>();
  auto a_id = registry.Add(a);
  ASSERT_TRUE(a_id.ok());
  ASSERT_TRUE(registry.Add(b).ok());
  auto refused = registry.Add(c);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("max_streams (2)"));
  registry.Remove(*a_id);
  EXPECT_TRUE(registry.Add(c).ok());
  EXPECT_EQ(registry.size(), 2u);
}

}  // namespace
}  // namespace warren
