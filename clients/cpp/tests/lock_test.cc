// Locker, fences and ConfigClient against the real warrend, ZooKeeper and
// RabbitMQ.
#include <signal.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"
#include "warren/client/channel.h"
#include "warren/client/config_client.h"
#include "warren/client/elector.h"
#include "warren/client/fence.h"
#include "warren/client/locker.h"
#include "warren/client/publisher.h"
#include "warren/client/subscriber.h"

namespace warren::client::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::warren::testing::WaitFor;

// What a lock was told, as lines: "queued <position>", "lost <reason>",
// "regained <token>".
LockOptions Options(EventLog* events, const std::string& holder = "") {
  LockOptions options;
  options.holder_id = holder;
  options.heartbeat_interval = absl::Milliseconds(500);
  options.backoff.initial = absl::Milliseconds(50);
  options.backoff.max = absl::Milliseconds(500);
  options.on_queued = [events](uint32_t position,
                               const std::vector<v1::LockHolder>&) {
    events->Add(absl::StrCat("queued ", position));
  };
  options.on_lost = [events](LossReason reason, const absl::Status&) {
    events->Add(absl::StrCat("lost ", LossReasonName(reason)));
  };
  options.on_regained = [events](const v1::LockHolder& self) {
    events->Add(absl::StrCat("regained ", self.fencing_token()));
  };
  return options;
}

struct Flags {
  static std::vector<std::string> Args() { return {"--log_level=warn"}; }
};

class LockerTest : public warren::testing::SharedWarrendTest<Flags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    channel_ = MakeChannel(warrend_->address());
  }
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(LockerTest, AMutexHasOneHolderAndTheNextGetsALargerToken) {
  Locker locker(channel_);
  const std::string name = UniqueName("cpp-lock");
  EventLog a_events;
  auto a = locker.Acquire(name, Options(&a_events, "a"));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE((*a)->held());
  EXPECT_GT((*a)->fencing_token(), 0u);
  EXPECT_EQ((*a)->holder().holder_id(), "a");

  // Try once: taken.
  EventLog b_events;
  LockOptions try_once = Options(&b_events, "b");
  try_once.timeout = absl::ZeroDuration();
  auto busy = locker.Acquire(name, try_once);
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kDeadlineExceeded)
      << busy.status();

  // Waits in line (position 0: nobody else ahead) until a releases.
  absl::StatusOr<std::unique_ptr<HeldLock>> b;
  std::thread waiter(
      [&] { b = locker.Acquire(name, Options(&b_events, "b")); });
  ASSERT_TRUE(b_events.WaitFor("queued 0"));
  auto info = locker.Get(name);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->holders_size(), 1);
  EXPECT_EQ(info->holders(0).holder_id(), "a");
  EXPECT_EQ(info->holders(0).fencing_token(), (*a)->fencing_token());
  EXPECT_EQ(info->waiting(), 1u);
  EXPECT_EQ(info->limit(), 1u);

  (*a)->Release();
  EXPECT_FALSE((*a)->held());
  waiter.join();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE((*b)->held());
  EXPECT_GT((*b)->fencing_token(), (*a)->fencing_token());
  // A release is no loss.
  EXPECT_EQ(a_events.Count("lost"), 0u);

  b->reset();  // the destructor releases
  info = locker.Get(name);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->holders_size(), 0);
  EXPECT_EQ(info->waiting(), 0u);
}

TEST_F(LockerTest, ATimedWaitEndsWithDeadlineExceededAndLeavesNothing) {
  Locker locker(channel_);
  const std::string name = UniqueName("cpp-lock");
  EventLog events;
  auto holder = locker.Acquire(name, Options(&events, "holder"));
  ASSERT_TRUE(holder.ok()) << holder.status();

  LockOptions timed = Options(&events, "timed");
  timed.timeout = absl::Milliseconds(700);
  const absl::Time start = absl::Now();
  auto waited = locker.Acquire(name, timed);
  EXPECT_EQ(waited.status().code(), absl::StatusCode::kDeadlineExceeded)
      << waited.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(700));
  auto info = locker.Get(name);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->waiting(), 0u);
  EXPECT_EQ(info->holders_size(), 1);
}

TEST_F(LockerTest, ASemaphoreAdmitsItsLimitAndRefusesAnotherLimit) {
  Locker locker(channel_);
  const std::string name = UniqueName("cpp-semaphore");
  EventLog events;
  std::vector<std::unique_ptr<HeldLock>> holders;
  for (int i = 0; i < 3; ++i) {
    LockOptions options = Options(&events, absl::StrCat("h", i));
    options.limit = 3;
    options.timeout = absl::Seconds(10);
    auto held = locker.Acquire(name, options);
    ASSERT_TRUE(held.ok()) << held.status();
    holders.push_back(*std::move(held));
  }
  LockOptions fourth = Options(&events, "h3");
  fourth.limit = 3;
  fourth.timeout = absl::ZeroDuration();
  EXPECT_EQ(locker.Acquire(name, fourth).status().code(),
            absl::StatusCode::kDeadlineExceeded);

  LockOptions mutex = Options(&events, "m");
  mutex.timeout = absl::ZeroDuration();
  auto refused = locker.Acquire(name, mutex);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("limit"));

  auto info = locker.Get(name);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->holders_size(), 3);
  EXPECT_EQ(info->limit(), 3u);
  EXPECT_EQ(info->waiting(), 0u);
}

TEST_F(LockerTest, ABadNameIsRefusedAtOnce) {
  Locker locker(channel_);
  EventLog events;
  auto bad = locker.Acquire("bad//name", Options(&events));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument)
      << bad.status();
}

TEST_F(LockerTest, FencedWritesApplyOnlyWhileTheLockIsHeld) {
  Locker locker(channel_);
  ConfigClient config(channel_);
  const std::string name = UniqueName("cpp-lock");
  const std::string key = UniqueName("cpp-fenced/counter");
  EventLog events;
  auto lock = locker.Acquire(name, Options(&events));
  ASSERT_TRUE(lock.ok()) << lock.status();
  const v1::Fence fence = FenceOf(**lock);
  EXPECT_EQ(fence.lock(), name);
  EXPECT_EQ(fence.fencing_token(), (*lock)->fencing_token());

  PutOptions fenced;
  fenced.fence = fence;
  auto put = config.Put(key, "1", fenced);
  ASSERT_TRUE(put.ok()) << put.status();
  auto txn = config.Txn({CheckVersion(key, 0)}, {PutOp(key, "2")}, fence);
  ASSERT_TRUE(txn.ok()) << txn.status();

  (*lock)->Release();
  auto late = config.Put(key, "late", fenced);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StartsWith(late.status().message(), "fence: "))
      << late.status();
  EXPECT_THAT(std::string(late.status().message()),
              HasSubstr(absl::StrCat("lock:", name)));
  DeleteOptions fenced_delete;
  fenced_delete.fence = fence;
  EXPECT_EQ(config.Delete(key, fenced_delete).code(),
            absl::StatusCode::kFailedPrecondition);
  auto late_txn = config.Txn({}, {PutOp(key, "late")}, fence);
  EXPECT_EQ(late_txn.status().code(), absl::StatusCode::kFailedPrecondition);
  auto now = config.Get(key);
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->value(), "2");
}

TEST_F(LockerTest, FencedWritesApplyOnlyWhileLeading) {
  ConfigClient config(channel_);
  const std::string election = UniqueName("cpp-fenced-election");
  const std::string key = UniqueName("cpp-fenced/leader");
  ElectorOptions options;
  options.election = election;
  options.heartbeat_interval = absl::Milliseconds(500);
  auto elector = Elector::Start(channel_, options);
  ASSERT_TRUE(elector.ok()) << elector.status();
  ASSERT_TRUE(
      WaitFor([&] { return (*elector)->leading(); }, absl::Seconds(30)));
  auto fence = FenceOf(**elector);
  ASSERT_TRUE(fence.ok()) << fence.status();
  EXPECT_EQ(fence->election(), election);
  EXPECT_EQ(fence->fencing_token(), (*elector)->fencing_token());

  PutOptions fenced;
  fenced.fence = *fence;
  ASSERT_TRUE(config.Put(key, "by the leader", fenced).ok());
  (*elector)->Close();
  EXPECT_EQ(FenceOf(**elector).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto late = config.Put(key, "by a deposed leader", fenced);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition)
      << late.status();
  EXPECT_THAT(std::string(late.status().message()),
              HasSubstr(absl::StrCat("election:", election)));
  EXPECT_EQ(config.Get(key)->value(), "by the leader");
}

TEST_F(LockerTest, FencedPublishesStopWithTheLeadership) {
  ElectorOptions options;
  options.election = UniqueName("cpp-fenced-election");
  options.heartbeat_interval = absl::Milliseconds(500);
  auto elector = Elector::Start(channel_, options);
  ASSERT_TRUE(elector.ok()) << elector.status();
  ASSERT_TRUE(
      WaitFor([&] { return (*elector)->leading(); }, absl::Seconds(30)));
  auto fence = FenceOf(**elector);
  ASSERT_TRUE(fence.ok()) << fence.status();
  // Not mandatory: no queue needs to take it.
  PublisherOptions unrouted;
  unrouted.mandatory = false;
  Publisher publisher(channel_, unrouted);
  const std::string queue = UniqueName("cpp-nobody");
  EXPECT_TRUE(publisher.PublishToQueue(queue, "leading", *fence).ok());
  (*elector)->Close();
  auto late = publisher.PublishToQueue(queue, "deposed", *fence);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition)
      << late.status();
  EXPECT_TRUE(absl::StartsWith(late.status().message(), "fence: "))
      << late.status();
}

TEST_F(LockerTest, FencedPublishesCarryTheFenceAndStopWithTheLock) {
  auto admin = warren::testing::AmqpAdmin::Connect(
      warren::testing::TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  const std::string queue = UniqueName("cpp-fenced-queue");
  warren::Mutex mu;
  std::vector<v1::Delivery> received;
  SubscriberOptions subscribe;
  subscribe.start.set_queue(queue);
  auto subscriber =
      Subscriber::Start(channel_, subscribe, [&](const v1::Delivery& d) {
        warren::MutexLock lock(&mu);
        received.push_back(d);
        return absl::OkStatus();
      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();

  Locker locker(channel_);
  const std::string name = UniqueName("cpp-lock");
  EventLog events;
  auto lock = locker.Acquire(name, Options(&events));
  ASSERT_TRUE(lock.ok()) << lock.status();
  Publisher publisher(channel_);
  ASSERT_TRUE(
      publisher.PublishToQueue(queue, "while held", (*lock)->fence()).ok());
  const v1::Fence fence = (*lock)->fence();
  (*lock)->Release();
  auto late = publisher.PublishToQueue(queue, "after release", fence);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition)
      << late.status();
  ASSERT_TRUE(publisher.PublishToQueue(queue, "unfenced").ok());

  ASSERT_TRUE(WaitFor(
      [&] {
        warren::MutexLock lock(&mu);
        return received.size() >= 2;
      },
      absl::Seconds(30)));
  (*subscriber)->Stop();
  (void)(*admin)->DeleteQueue(queue);
  warren::MutexLock hold(&mu);
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].payload(), "while held");
  EXPECT_EQ(received[0].headers().at("warren-fence"),
            absl::StrCat("lock:", name));
  EXPECT_EQ(received[0].headers().at("warren-fencing-token"),
            absl::StrCat(fence.fencing_token()));
  EXPECT_EQ(received[1].payload(), "unfenced");
  EXPECT_EQ(received[1].headers().count("warren-fence"), 0u);
}

TEST_F(LockerTest, ATxnAppliesAllOrNothing) {
  ConfigClient config(channel_);
  const std::string base = UniqueName("cpp-txn");
  ASSERT_TRUE(config.Put(base + "/a", "1").ok());
  ASSERT_TRUE(config.Put(base + "/c", "there").ok());
  auto applied = config.Txn(
      {CheckVersion(base + "/a", 0), CheckExists(base + "/b", false)},
      {PutOp(base + "/b", "2"), PutOp(base + "/a", "3"),
       PutOp(base + "/c", "again", std::nullopt, /*create_only=*/true)});
  // A create-only put of an existing key fails the transaction: nothing
  // changes, and the failing op is named.
  ASSERT_EQ(applied.status().code(), absl::StatusCode::kFailedPrecondition)
      << applied.status();
  EXPECT_TRUE(absl::StartsWith(applied.status().message(), "ops[2]"))
      << applied.status();
  EXPECT_EQ(config.Get(base + "/b").status().code(),
            absl::StatusCode::kNotFound);

  applied = config.Txn(
      {CheckVersion(base + "/a", 0), CheckExists(base + "/b", false)},
      {PutOp(base + "/b", "2"), PutOp(base + "/a", "3")});
  ASSERT_TRUE(applied.ok()) << applied.status();
  ASSERT_EQ(applied->size(), 2u);
  EXPECT_EQ((*applied)[0].key(), base + "/b");
  EXPECT_EQ((*applied)[1].value(), "3");
  EXPECT_EQ((*applied)[1].version(), 1);

  // A failing check at index 1: nothing changes.
  auto refused =
      config.Txn({CheckExists(base + "/a"), CheckVersion(base + "/b", 7)},
                 {PutOp(base + "/a", "4"), DeleteOp(base + "/b")});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StartsWith(refused.status().message(), "checks[1]"))
      << refused.status();
  EXPECT_EQ(config.Get(base + "/a")->value(), "3");
  EXPECT_EQ(config.Get(base + "/b")->value(), "2");
}

// Fault tests: a warrend of their own.
class LockerFaultTest : public LockerTest {};

TEST_F(LockerFaultTest, TheLeaseEndsWhenHeartbeatsStop) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  Locker locker(MakeChannel((*warrend)->address()));
  EventLog events;
  LockOptions options = Options(&events, "frozen");
  options.heartbeat_interval = absl::Milliseconds(400);
  options.release_timeout = absl::Seconds(1);
  auto lock = locker.Acquire(UniqueName("cpp-lock"), options);
  ASSERT_TRUE(lock.ok()) << lock.status();

  warren::testing::WarrendProcess* process = (*warrend)->process();
  ASSERT_TRUE(process->Signal(SIGSTOP));
  const absl::Time stopped = absl::Now();
  ASSERT_TRUE(events.WaitFor("lost", absl::Seconds(10)));
  EXPECT_EQ(events.Lines().back(), "lost lease expired");
  EXPECT_FALSE((*lock)->held());
  // Within about 2 intervals, before the 4s ZooKeeper session could expire.
  EXPECT_LT(absl::Now() - stopped, absl::Seconds(3));
  const absl::Time releasing = absl::Now();
  (*lock)->Release();
  EXPECT_LT(absl::Now() - releasing, absl::Seconds(5));
  process->Signal(SIGCONT);
}

TEST_F(LockerFaultTest, ABrokenStreamLosesTheLockButAWaiterWaitsOn) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  Locker locker(channel);
  const std::string name = UniqueName("cpp-lock");
  EventLog holder_events;
  auto holder = locker.Acquire(name, Options(&holder_events, "holder"));
  ASSERT_TRUE(holder.ok()) << holder.status();

  EventLog waiter_events;
  LockOptions waiting = Options(&waiter_events, "waiter");
  waiting.timeout = absl::Seconds(60);
  absl::StatusOr<std::unique_ptr<HeldLock>> waiter;
  std::thread thread([&] { waiter = locker.Acquire(name, waiting); });
  ASSERT_TRUE(waiter_events.WaitFor("queued"));

  // A graceful stop ends both streams (and deletes both nodes).
  EXPECT_EQ((*warrend)->Stop(), 0);
  ASSERT_TRUE(holder_events.WaitFor("lost"));
  EXPECT_EQ(holder_events.Lines().back(), "lost stream broken");
  EXPECT_FALSE((*holder)->held());

  // The waiter opens its stream again within its timeout and acquires.
  ASSERT_TRUE((*warrend)->Restart().ok());
  thread.join();
  ASSERT_TRUE(waiter.ok()) << waiter.status();
  EXPECT_TRUE((*waiter)->held());
  EXPECT_GT((*waiter)->fencing_token(), (*holder)->fencing_token());
  // The lost holder was never acquired again behind its back.
  EXPECT_FALSE((*holder)->held());
  EXPECT_EQ(holder_events.Count("regained"), 0u);
}

}  // namespace
}  // namespace warren::client::testing
