#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/client_quota.h"
#include "server/common/log_rate_limit.h"
#include "server/common/logging.h"
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

TEST(LogRateLimitTest, BoundsBytesAsWellAsLines) {
  absl::Time now = absl::FromUnixSeconds(1000);
  LogRateLimit limit(100, 1000, absl::Seconds(1), [&] { return now; });
  int64_t suppressed = -1;
  // A window's first line passes whatever its size, so that a long line is
  // written (it is capped elsewhere) rather than never.
  ASSERT_TRUE(limit.Admit(5000, &suppressed));
  EXPECT_FALSE(limit.Admit(10, &suppressed));
  now += absl::Seconds(1);
  ASSERT_TRUE(limit.Admit(600, &suppressed));
  EXPECT_EQ(suppressed, 1);
  ASSERT_TRUE(limit.Admit(400, &suppressed));
  EXPECT_FALSE(limit.Admit(1, &suppressed));
}

TEST(LogEscapingTest, KeepsALineOnOneLineAndAwayFromTheTerminal) {
  std::string out;
  AppendEscapedForLog("key\n2026-12-07T00:00:00Z I 1] forged", &out);
  EXPECT_EQ(out, "key\\n2026-12-07T00:00:00Z I 1] forged");
  out.clear();
  AppendEscapedForLog("red \x1b[31m bell \x07 del \x7f cr \r tab \t", &out);
  EXPECT_EQ(out, "red \\x1b[31m bell \\x07 del \\x7f cr \\r tab \\t");
  // A backslash is doubled: "\\n" in the log was written as one, never
  // forged from a newline.
  out.clear();
  AppendEscapedForLog("a\\nb", &out);
  EXPECT_EQ(out, "a\\\\nb");
}

TEST(LogEscapingTest, KeepsUtf8ButNotC1ControlsBidiOverridesOrBrokenBytes) {
  std::string out;
  AppendEscapedForLog("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x90\x87", &out);
  EXPECT_EQ(out, "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x90\x87");
  out.clear();
  // U+009B (CSI as a C1 control), U+202E (right-to-left override), a lone
  // continuation byte, an overlong '/' and a truncated sequence at the end.
  AppendEscapedForLog("\xc2\x9b|\xe2\x80\xae|\x80|\xc0\xaf|\xe2\x82", &out);
  EXPECT_EQ(out, "\\xc2\\x9b|\\xe2\\x80\\xae|\\x80|\\xc0\\xaf|\\xe2\\x82");
}

TEST(LogEscapingTest, CutsLongMessagesAndSaysTheirLength) {
  std::string out;
  AppendEscapedForLog(std::string(3900000, 'k'), &out, 100);
  EXPECT_EQ(out, std::string(100, 'k') + "... (3900000 bytes)");
  // Never half a character: the cut steps back to the euro sign's start.
  EXPECT_EQ(Abbreviated(std::string(9, 'a') + "\xe2\x82\xac", 10),
            std::string(9, 'a') + "... (12 bytes)");
  EXPECT_EQ(Abbreviated("short", 10), "short");
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
  void Revoke(const absl::Status& status) override { revoked = status; }
  int drained = 0;
  absl::Status revoked;
};

TEST(StreamRegistryTest, RevokesOnlyStreamsWhoseCheckNowFails) {
  StreamRegistry registry;
  auto kept = std::make_shared<FakeStream>();
  auto lost = std::make_shared<FakeStream>();
  auto unchecked = std::make_shared<FakeStream>();
  auto kept_id = registry.Add(kept);
  auto lost_id = registry.Add(lost);
  ASSERT_TRUE(kept_id.ok() && lost_id.ok() && registry.Add(unchecked).ok());
  bool grant_held = true;
  registry.SetReauthorizer(*kept_id, [] { return absl::OkStatus(); });
  registry.SetReauthorizer(*lost_id, [&grant_held] {
    return grant_held ? absl::OkStatus()
                      : absl::PermissionDeniedError("grant removed");
  });
  EXPECT_EQ(registry.ReauthorizeAll(), 0u);
  EXPECT_TRUE(lost->revoked.ok());
  grant_held = false;
  EXPECT_EQ(registry.ReauthorizeAll(), 1u);
  EXPECT_EQ(lost->revoked, absl::PermissionDeniedError("grant removed"));
  EXPECT_TRUE(kept->revoked.ok());
  EXPECT_TRUE(unchecked->revoked.ok());
  EXPECT_EQ(kept->drained + lost->drained + unchecked->drained, 0);
  // A stream that left is not asked again.
  registry.Remove(*lost_id);
  lost->revoked = absl::OkStatus();
  EXPECT_EQ(registry.ReauthorizeAll(), 0u);
  EXPECT_TRUE(lost->revoked.ok());
}

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

TEST(StreamRegistryTest, BoundsEachClientAndFreesItsSlotsOnRemove) {
  StreamRegistry registry(10, 2);
  auto stream = std::make_shared<FakeStream>();
  auto first = registry.Add(stream, "mallory");
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(registry.Add(stream, "mallory").ok());
  auto refused = registry.Add(stream, "mallory");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr(
                  "max_streams_per_client (2) streams are open for client "
                  "'mallory'"));
  // Another client, and streams of no client, still fit.
  EXPECT_TRUE(registry.Add(stream, "bob").ok());
  EXPECT_TRUE(registry.Add(stream).ok());
  registry.Remove(*first);
  registry.Remove(*first);  // twice: counted once
  EXPECT_TRUE(registry.Add(stream, "mallory").ok());
  EXPECT_FALSE(registry.Add(stream, "mallory").ok());
}

TEST(QuotaClientTest, IsThePrincipalElseThePeerAddressWithoutItsPort) {
  EXPECT_EQ(QuotaClient("alice", "ipv4:127.0.0.1:5000"), "alice");
  EXPECT_EQ(QuotaClient("", "ipv4:127.0.0.1:54321"), "127.0.0.1");
  EXPECT_EQ(QuotaClient("", "ipv4:10.1.2.3:1"), "10.1.2.3");
  EXPECT_EQ(QuotaClient("", "ipv6:[::1]:54321"), "::1");
  EXPECT_EQ(QuotaClient("", "ipv6:%5B::1%5D:54321"), "::1");
  EXPECT_EQ(QuotaClient("", "ipv6:[fe80::1%25eth0]:7"), "fe80::1%25eth0");
  EXPECT_EQ(QuotaClient("", "unix:/run/warren.sock"), "unix:/run/warren.sock");
  EXPECT_EQ(QuotaClient("", "unix-abstract:warren"), "unix-abstract:warren");
  // Two connections of one host are one client.
  EXPECT_EQ(QuotaClient("", "ipv4:192.0.2.7:1000"),
            QuotaClient("", "ipv4:192.0.2.7:2000"));
}

ClientQuota::Limits TestLimits(size_t total, size_t per_client) {
  return {"max_watches", "max_watches_per_client", "watches", total,
          per_client};
}

TEST(ClientQuotaTest, RefusesAClientBeyondItsLimitWhileOthersStillGetSlots) {
  ClientQuota quota(TestLimits(10, 2));
  auto a1 = quota.Acquire("a");
  auto a2 = quota.Acquire("a");
  ASSERT_TRUE(a1.ok());
  ASSERT_TRUE(a2.ok());
  auto refused = quota.Acquire("a");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("max_watches_per_client (2) watches are open for "
                        "client 'a'"));
  auto b = quota.Acquire("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(quota.count("a"), 2u);
  EXPECT_EQ(quota.count("b"), 1u);
  EXPECT_EQ(quota.total(), 3u);
  // A released slot is the client's again.
  a1->Release();
  EXPECT_EQ(quota.count("a"), 1u);
  EXPECT_TRUE(quota.Acquire("a").ok());  // and released at once
}

TEST(ClientQuotaTest, RefusesEveryClientAtTheTotal) {
  ClientQuota quota(TestLimits(2, 2));
  auto a = quota.Acquire("a");
  auto b = quota.Acquire("b");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  auto refused = quota.Acquire("c");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("max_watches (2) watches are open on this server"));
  b->Release();
  EXPECT_TRUE(quota.Acquire("c").ok());
}

TEST(ClientQuotaTest, ZeroMeansNoLimit) {
  ClientQuota quota(TestLimits(0, 0));
  std::vector<ClientQuota::Lease> leases;
  for (int i = 0; i < 1000; ++i) {
    auto lease = quota.Acquire("a");
    ASSERT_TRUE(lease.ok()) << i;
    leases.push_back(*std::move(lease));
  }
  EXPECT_EQ(quota.count("a"), 1000u);
}

TEST(ClientQuotaTest, ReleasesExactlyOnceAndForgetsIdleClients) {
  ClientQuota quota(TestLimits(10, 1));
  {
    auto lease = quota.Acquire("a");
    ASSERT_TRUE(lease.ok());
    EXPECT_TRUE(lease->held());
    // Moving hands the slot over; the moved-from lease releases nothing.
    ClientQuota::Lease moved = *std::move(lease);
    EXPECT_FALSE(lease->held());
    lease->Release();
    EXPECT_EQ(quota.count("a"), 1u);
    auto other = quota.Acquire("b");
    ASSERT_TRUE(other.ok());
    // Assigning over a held lease gives back the slot it held.
    moved = *std::move(other);
    EXPECT_EQ(quota.count("a"), 0u);
    EXPECT_EQ(quota.count("b"), 1u);
    moved.Release();
    moved.Release();
    EXPECT_EQ(quota.total(), 0u);
    EXPECT_EQ(quota.clients(), 0u);
  }
  EXPECT_EQ(quota.total(), 0u);
  // Many clients that came and went leave nothing behind.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(quota.Acquire(std::to_string(i)).ok());
  }
  EXPECT_EQ(quota.clients(), 0u);
  EXPECT_TRUE(quota.Acquire("a").ok());
}

TEST(ClientQuotaTest, ConcurrentClientsNeverExceedTheirLimits) {
  constexpr size_t kPerClient = 3;
  constexpr int kThreads = 8;
  ClientQuota quota(TestLimits(0, kPerClient));
  std::atomic<bool> over{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string client = t % 2 == 0 ? "even" : "odd";
      for (int i = 0; i < 2000; ++i) {
        auto lease = quota.Acquire(client);
        if (quota.count(client) > kPerClient) over = true;
        if (lease.ok() && i % 3 == 0) lease->Release();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_FALSE(over.load());
  EXPECT_EQ(quota.total(), 0u);
  EXPECT_EQ(quota.clients(), 0u);
}

}  // namespace
}  // namespace warren
