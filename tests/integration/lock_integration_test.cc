// LockService end to end: the real warrend and the real ZooKeeper, through
// the generated stubs.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/lock_clients.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/lock.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct LockFlags {
  static std::vector<std::string> Args() { return {"--zk_session_timeout=6s"}; }
};

google::protobuf::Duration Millis(int64_t ms) {
  return google::protobuf::util::TimeUtil::MillisecondsToDuration(ms);
}

bool IsQueued(const v1::LockResponse& r) { return r.has_queued(); }
bool IsHeartbeat(const v1::LockResponse& r) { return r.has_heartbeat(); }

class LockTest : public SharedWarrendTest<LockFlags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    stub_ = v1::LockService::NewStub(warrend_->channel());
    config_ = v1::ConfigService::NewStub(warrend_->channel());
  }
  v1::GetLockResponse GetLock(const std::string& name) {
    v1::GetLockRequest request;
    request.set_name(name);
    v1::GetLockResponse response;
    grpc::Status s = stub_->GetLock(CallContext().get(), request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }
  // Nothing holds or waits: the lock's nodes are all gone.
  bool Empty(const std::string& name) {
    const v1::GetLockResponse lock = GetLock(name);
    return lock.holders_size() == 0 && lock.waiting() == 0 && lock.limit() == 0;
  }
  std::unique_ptr<v1::LockService::Stub> stub_;
  std::unique_ptr<v1::ConfigService::Stub> config_;
};

// The mutex's promise, as a user relies on it: a read-modify-write without
// CAS under the lock loses no increment, and no two holds overlap.
TEST_F(LockTest, TwentyClientsIncrementACounterUnderAMutex) {
  const std::string lock_name = "counter/mutex";
  const std::string key = "lock-test/counter";
  {
    v1::PutConfigRequest put;
    put.set_key(key);
    put.set_value("0");
    v1::PutConfigResponse response;
    ASSERT_TRUE(config_->PutConfig(CallContext().get(), put, &response).ok());
  }
  struct Hold {
    absl::Time acquired, released;
    uint64_t token = 0;
  };
  constexpr int kClients = 20;
  std::vector<Hold> holds(kClients);
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      TestLocker locker(*stub_, MakeAcquire(lock_name, absl::StrCat("c", i)));
      const int at = locker.WaitAcquired(0, absl::Seconds(120));
      if (at < 0) {
        failures[i] = "never acquired";
        return;
      }
      const LockEvent acquired = locker.events()[at];
      holds[i].acquired = acquired.time;
      holds[i].token = acquired.response.acquired().holder().fencing_token();
      v1::GetConfigRequest get;
      get.set_key(key);
      get.set_consistent(true);
      v1::GetConfigResponse current;
      grpc::Status s = config_->GetConfig(CallContext().get(), get, &current);
      int64_t count = 0;
      if (!s.ok() || !absl::SimpleAtoi(current.entry().value(), &count)) {
        failures[i] = absl::StrCat("get: ", s.error_message());
      }
      v1::PutConfigRequest put;
      put.set_key(key);
      put.set_value(absl::StrCat(count + 1));
      v1::PutConfigResponse put_response;
      s = config_->PutConfig(CallContext().get(), put, &put_response);
      if (!s.ok()) failures[i] = absl::StrCat("put: ", s.error_message());
      holds[i].released = locker.Release();
      grpc::Status end;
      if (!locker.WaitEnded(&end) || !end.ok()) {
        failures[i] = absl::StrCat("release: ", end.error_message());
      }
    });
  }
  for (auto& t : clients) t.join();
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(failures[i], "") << i;

  v1::GetConfigRequest get;
  get.set_key(key);
  get.set_consistent(true);
  v1::GetConfigResponse final_count;
  ASSERT_TRUE(config_->GetConfig(CallContext().get(), get, &final_count).ok());
  EXPECT_EQ(final_count.entry().value(), absl::StrCat(kClients));

  std::sort(holds.begin(), holds.end(), [](const Hold& a, const Hold& b) {
    return a.acquired < b.acquired;
  });
  for (int i = 1; i < kClients; ++i) {
    EXPECT_LE(holds[i - 1].released, holds[i].acquired)
        << "holds " << i - 1 << " and " << i << " overlap";
    EXPECT_GT(holds[i].token, holds[i - 1].token);
  }
  EXPECT_TRUE(Empty(lock_name));
}

TEST_F(LockTest, ASemaphoreOfThreeNeverHasMoreHoldersAndEveryoneGetsIn) {
  const std::string name = "pool/three";
  constexpr int kClients = 10;
  std::vector<std::unique_ptr<TestLocker>> lockers;
  for (int i = 0; i < kClients; ++i) {
    lockers.push_back(std::make_unique<TestLocker>(
        *stub_, MakeAcquire(name, absl::StrCat("s", i), 3)));
  }
  std::vector<bool> released(kClients, false);
  int done = 0;
  while (done < kClients) {
    // Wait until three hold (or all that are left), then check and let the
    // oldest go.
    std::vector<int> holding;
    const int expected = std::min(3, kClients - done);
    ASSERT_TRUE(WaitFor(
        [&] {
          holding.clear();
          for (int i = 0; i < kClients; ++i) {
            if (!released[i] &&
                lockers[i]->WaitAcquired(0, absl::ZeroDuration()) >= 0) {
              holding.push_back(i);
            }
          }
          return static_cast<int>(holding.size()) >= expected;
        },
        absl::Seconds(60)))
        << "only " << holding.size() << " hold after " << done << " left";
    EXPECT_EQ(static_cast<int>(holding.size()), expected);
    const v1::GetLockResponse lock = GetLock(name);
    EXPECT_LE(lock.holders_size(), 3);
    EXPECT_EQ(lock.limit(), 3u);
    EXPECT_EQ(lock.holders_size() + static_cast<int>(lock.waiting()),
              kClients - done);
    const int leaving = holding.front();
    lockers[leaving]->Release();
    grpc::Status end;
    ASSERT_TRUE(lockers[leaving]->WaitEnded(&end));
    EXPECT_TRUE(end.ok()) << end.error_message();
    released[leaving] = true;
    ++done;
  }
  EXPECT_TRUE(Empty(name));
}

TEST_F(LockTest, TryOnceAndTimedWaitsEndWithDeadlineExceededLeavingNothing) {
  const std::string name = "t/mutex";
  TestLocker holder(*stub_, MakeAcquire(name, "holder"));
  ASSERT_GE(holder.WaitAcquired(), 0);

  v1::Acquire once = MakeAcquire(name, "once");
  *once.mutable_wait_timeout() = Millis(0);
  TestLocker try_once(*stub_, once);
  grpc::Status end;
  ASSERT_TRUE(try_once.WaitEnded(&end));
  EXPECT_EQ(end.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(end.error_message(), StartsWith("acquire.wait_timeout: lock " +
                                              name + " not acquired within"));
  EXPECT_EQ(try_once.WaitAcquired(0, absl::ZeroDuration()), -1);
  v1::GetLockResponse lock = GetLock(name);
  EXPECT_EQ(lock.holders_size(), 1);
  EXPECT_EQ(lock.waiting(), 0u);

  v1::Acquire timed = MakeAcquire(name, "timed");
  *timed.mutable_wait_timeout() = Millis(500);
  const absl::Time started = absl::Now();
  TestLocker timed_out(*stub_, timed);
  ASSERT_GE(timed_out.WaitFor(IsQueued), 0);
  ASSERT_TRUE(timed_out.WaitEnded(&end));
  EXPECT_GE(absl::Now() - started, absl::Milliseconds(500));
  EXPECT_EQ(end.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(end.error_message(), HasSubstr("not acquired within 500ms"));
  lock = GetLock(name);
  EXPECT_EQ(lock.holders_size(), 1);
  EXPECT_EQ(lock.waiting(), 0u);

  // A timed wait that the lock comes free within: acquired.
  *timed.mutable_wait_timeout() = Millis(30000);
  TestLocker in_time(*stub_, timed);
  ASSERT_GE(in_time.WaitFor(IsQueued), 0);
  holder.Release();
  ASSERT_GE(in_time.WaitAcquired(), 0);
  // Try-once on a free lock holds at once.
  in_time.Release();
  ASSERT_TRUE(in_time.WaitEnded(&end));
  TestLocker free_once(*stub_, once);
  EXPECT_GE(free_once.WaitAcquired(), 0);
}

TEST_F(LockTest, LimitsZeroAndOneAgreeOthersAreRefused) {
  TestLocker zero(*stub_, MakeAcquire("lim/mutex", "zero", 0));
  ASSERT_GE(zero.WaitAcquired(), 0);
  TestLocker one(*stub_, MakeAcquire("lim/mutex", "one", 1));
  ASSERT_GE(one.WaitFor(IsQueued), 0);
  TestLocker two(*stub_, MakeAcquire("lim/mutex", "two", 2));
  grpc::Status end;
  ASSERT_TRUE(two.WaitEnded(&end));
  EXPECT_EQ(end.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(end.error_message(),
            "acquire.limit: lock lim/mutex has limit 1, not 2");
  v1::GetLockResponse lock = GetLock("lim/mutex");
  EXPECT_EQ(lock.holders_size(), 1);
  EXPECT_EQ(lock.waiting(), 1u);
  EXPECT_EQ(lock.limit(), 1u);

  TestLocker s2(*stub_, MakeAcquire("lim/pool", "s2", 2));
  ASSERT_GE(s2.WaitAcquired(), 0);
  TestLocker s3(*stub_, MakeAcquire("lim/pool", "s3", 3));
  ASSERT_TRUE(s3.WaitEnded(&end));
  EXPECT_EQ(end.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(end.error_message(),
            "acquire.limit: lock lim/pool has limit 2, not 3");
  lock = GetLock("lim/pool");
  EXPECT_EQ(lock.holders_size(), 1);
  EXPECT_EQ(lock.waiting(), 0u);
  EXPECT_EQ(lock.limit(), 2u);
}

TEST_F(LockTest, ReleaseHalfCloseAndCancelDeleteTheNode) {
  const std::string name = "gone/mutex";
  grpc::Status end;
  {
    TestLocker locker(*stub_, MakeAcquire(name, "released"));
    ASSERT_GE(locker.WaitAcquired(), 0);
    EXPECT_EQ(GetLock(name).holders_size(), 1);
    locker.Release();
    ASSERT_TRUE(locker.WaitEnded(&end));
    EXPECT_TRUE(end.ok()) << end.error_message();
    // The stream ends after the node is gone.
    EXPECT_TRUE(Empty(name));
  }
  {
    TestLocker locker(*stub_, MakeAcquire(name, "half-closed"));
    ASSERT_GE(locker.WaitAcquired(), 0);
    locker.WritesDone();
    ASSERT_TRUE(locker.WaitEnded(&end));
    EXPECT_TRUE(end.ok()) << end.error_message();
    EXPECT_TRUE(Empty(name));
  }
  {
    TestLocker holder(*stub_, MakeAcquire(name, "holder"));
    ASSERT_GE(holder.WaitAcquired(), 0);
    TestLocker waiter(*stub_, MakeAcquire(name, "cancelled-waiter"));
    ASSERT_GE(waiter.WaitFor(IsQueued), 0);
    waiter.Cancel();
    // The server's side of a cancel has no answer to await.
    EXPECT_TRUE(WaitFor([&] { return GetLock(name).waiting() == 0; },
                        absl::Seconds(10)));
    holder.Cancel();
    EXPECT_TRUE(WaitFor([&] { return Empty(name); }, absl::Seconds(10)));
  }
}

TEST_F(LockTest, AWaiterIsToldItsPositionAndTheHolders) {
  const std::string name = "queue/mutex";
  TestLocker a(*stub_, MakeAcquire(name, "a"));
  const int acquired = a.WaitAcquired();
  ASSERT_GE(acquired, 0);
  const v1::LockHolder holder =
      a.events()[acquired].response.acquired().holder();
  EXPECT_EQ(holder.name(), name);
  EXPECT_EQ(holder.holder_id(), "a");
  EXPECT_EQ(holder.value(), "a-work");
  EXPECT_GT(holder.fencing_token(), 0u);
  EXPECT_GT(holder.acquired_time().seconds(), 0);
  EXPECT_GT(
      a.events()[acquired].response.acquired().heartbeat_interval().seconds(),
      0);

  TestLocker b(*stub_, MakeAcquire(name, "b"));
  const int b_queued = b.WaitFor(IsQueued);
  ASSERT_GE(b_queued, 0);
  TestLocker c(*stub_, MakeAcquire(name, "c"));
  const int c_queued = c.WaitFor(IsQueued);
  ASSERT_GE(c_queued, 0);
  const v1::Queued bq = b.events()[b_queued].response.queued();
  EXPECT_EQ(bq.position(), 0u);
  ASSERT_EQ(bq.holders_size(), 1);
  EXPECT_EQ(bq.holders(0).holder_id(), "a");
  EXPECT_EQ(bq.holders(0).fencing_token(), holder.fencing_token());
  EXPECT_EQ(c.events()[c_queued].response.queued().position(), 1u);

  v1::GetLockResponse lock = GetLock(name);
  ASSERT_EQ(lock.holders_size(), 1);
  EXPECT_EQ(lock.holders(0).holder_id(), "a");
  EXPECT_EQ(lock.holders(0).fencing_token(), holder.fencing_token());
  EXPECT_EQ(lock.holders(0).acquired_time().seconds(),
            holder.acquired_time().seconds());
  EXPECT_EQ(lock.waiting(), 2u);
  EXPECT_EQ(lock.limit(), 1u);

  // A mutex's waiter watches only its predecessor: c is not woken when a
  // goes (no herd), so it hears nothing until b goes too.
  const size_t c_seen = c.events().size();
  a.Release();
  ASSERT_GE(b.WaitAcquired(), 0);
  b.Release();
  ASSERT_GE(c.WaitAcquired(c_seen), 0);
  for (size_t i = c_seen; i < c.events().size(); ++i) {
    EXPECT_FALSE(c.events()[i].response.has_queued()) << i;
  }
}

// A semaphore's waiters watch the children: each hears its new place.
TEST_F(LockTest, ASemaphoreWaiterHearsItsPlaceChange) {
  const std::string name = "queue/pool";
  TestLocker a(*stub_, MakeAcquire(name, "a", 2));
  ASSERT_GE(a.WaitAcquired(), 0);
  TestLocker b(*stub_, MakeAcquire(name, "b", 2));
  ASSERT_GE(b.WaitAcquired(), 0);
  TestLocker c(*stub_, MakeAcquire(name, "c", 2));
  ASSERT_GE(c.WaitFor(IsQueued), 0);
  TestLocker d(*stub_, MakeAcquire(name, "d", 2));
  const int d_queued = d.WaitFor(IsQueued);
  ASSERT_GE(d_queued, 0);
  const v1::Queued first = d.events()[d_queued].response.queued();
  EXPECT_EQ(first.position(), 1u);
  ASSERT_EQ(first.holders_size(), 2);
  EXPECT_EQ(first.holders(0).holder_id(), "a");
  EXPECT_EQ(first.holders(1).holder_id(), "b");

  a.Release();
  ASSERT_GE(c.WaitAcquired(), 0);
  const int moved = d.WaitFor(
      [](const v1::LockResponse& r) {
        return r.has_queued() && r.queued().position() == 0;
      },
      d_queued + 1);
  ASSERT_GE(moved, 0);
  const v1::Queued now = d.events()[moved].response.queued();
  ASSERT_EQ(now.holders_size(), 2);
  EXPECT_EQ(now.holders(0).holder_id(), "b");
  EXPECT_EQ(now.holders(1).holder_id(), "c");
  EXPECT_EQ(GetLock(name).waiting(), 1u);
}

TEST_F(LockTest, GetLockOfAnUnknownLockIsEmptyAndABadNameIsRefused) {
  const v1::GetLockResponse lock = GetLock("nobody/has/this");
  EXPECT_EQ(lock.holders_size(), 0);
  EXPECT_EQ(lock.waiting(), 0u);
  EXPECT_EQ(lock.limit(), 0u);
  for (const std::string& bad :
       {std::string(""), std::string("a//b"), std::string("team/c_x")}) {
    v1::GetLockRequest request;
    request.set_name(bad);
    v1::GetLockResponse response;
    grpc::Status s = stub_->GetLock(CallContext().get(), request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(s.error_message(), StartsWith("name")) << bad;
  }
}

TEST_F(LockTest, EveryBadInputIsRefusedNamingItAndLeavesNothing) {
  const std::string name = "bad/input";
  auto refused = [&](const v1::LockRequest& first, const std::string& field) {
    TestLocker locker(*stub_, first);
    grpc::Status end;
    ASSERT_TRUE(locker.WaitEnded(&end)) << field;
    EXPECT_EQ(end.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_THAT(end.error_message(), StartsWith(field));
    EXPECT_TRUE(locker.events().empty()) << field;
    EXPECT_TRUE(Empty(name)) << field;
  };
  v1::LockRequest request;
  refused(request, "request");
  request.mutable_release();
  refused(request, "request");
  auto with = [&](const std::function<void(v1::Acquire&)>& change) {
    v1::LockRequest r;
    *r.mutable_acquire() = MakeAcquire(name, "h");
    change(*r.mutable_acquire());
    return r;
  };
  refused(with([](v1::Acquire& a) { a.set_name(""); }), "acquire.name");
  refused(with([](v1::Acquire& a) { a.set_name("bad/c_x"); }), "acquire.name");
  refused(with([](v1::Acquire& a) { a.set_holder_id("a/b"); }),
          "acquire.holder_id");
  refused(with([](v1::Acquire& a) { a.set_holder_id(std::string(256, 'x')); }),
          "acquire.holder_id");
  refused(with([](v1::Acquire& a) { a.set_value(std::string(65537, 'v')); }),
          "acquire.value");
  refused(with([](v1::Acquire& a) { a.set_limit(1001); }), "acquire.limit");
  refused(with([](v1::Acquire& a) { *a.mutable_wait_timeout() = Millis(-1); }),
          "acquire.wait_timeout");
  refused(with([](v1::Acquire& a) {
            *a.mutable_heartbeat_interval() = Millis(-1);
          }),
          "acquire.heartbeat_interval");

  // A second acquire on a stream that holds: refused, and the node goes.
  TestLocker twice(*stub_, MakeAcquire(name, "twice"));
  ASSERT_GE(twice.WaitAcquired(), 0);
  v1::LockRequest again;
  *again.mutable_acquire() = MakeAcquire(name, "twice");
  twice.Send(again);
  grpc::Status end;
  ASSERT_TRUE(twice.WaitEnded(&end));
  EXPECT_EQ(end.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(end.error_message(), StartsWith("request"));
  EXPECT_TRUE(WaitFor([&] { return Empty(name); }, absl::Seconds(10)));
}

TEST_F(LockTest, OnlyAHolderHearsHeartbeats) {
  const std::string name = "beat/mutex";
  v1::Acquire acquire = MakeAcquire(name, "holder");
  *acquire.mutable_heartbeat_interval() = Millis(200);
  TestLocker holder(*stub_, acquire);
  const int acquired = holder.WaitAcquired();
  ASSERT_GE(acquired, 0);
  EXPECT_EQ(holder.events()[acquired]
                .response.acquired()
                .heartbeat_interval()
                .nanos(),
            200000000);
  acquire.set_holder_id("waiter");
  TestLocker waiter(*stub_, acquire);
  ASSERT_GE(waiter.WaitFor(IsQueued), 0);
  const size_t waiter_seen = waiter.events().size();
  // Three heartbeats of the holder's: the waiter, on the same interval,
  // would have had its own by then.
  int at = acquired;
  for (int i = 0; i < 3; ++i) {
    at = holder.WaitFor(IsHeartbeat, at + 1, absl::Seconds(10));
    ASSERT_GE(at, 0) << i;
  }
  EXPECT_EQ(waiter.WaitFor(IsHeartbeat, 0, absl::ZeroDuration()), -1);
  EXPECT_EQ(waiter.events().size(), waiter_seen);

  holder.Release();
  const int waiter_acquired = waiter.WaitAcquired();
  ASSERT_GE(waiter_acquired, 0);
  EXPECT_GE(waiter.WaitFor(IsHeartbeat, waiter_acquired + 1, absl::Seconds(10)),
            0);
  // After its release the old holder heard nothing more than its end.
  grpc::Status end;
  ASSERT_TRUE(holder.WaitEnded(&end));
  EXPECT_TRUE(end.ok());
}

}  // namespace
}  // namespace warren::testing
