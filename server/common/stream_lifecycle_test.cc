// The helpers every stream reactor shares: duration.h, stream_lifetime.h,
// stream_heartbeat.h. Concurrent code: these also run under ThreadSanitizer.
#include <atomic>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/common/client_quota.h"
#include "server/common/duration.h"
#include "server/common/mutex.h"
#include "server/common/stream_heartbeat.h"
#include "server/common/stream_lifetime.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"

namespace warren {

// Ticks a heartbeat by hand, as its timer would (the tests give it an
// interval that never fires by itself).
class StreamHeartbeatPeer {
 public:
  static void Tick(StreamHeartbeat& heartbeat, warren::Mutex& owner_mu) {
    uint64_t chain;
    {
      warren::MutexLock lock(&owner_mu);
      chain = heartbeat.chain_;
    }
    heartbeat.Tick(chain);
  }
  // A tick of the chain in force before the latest (re)schedule.
  static void TickStaleChain(StreamHeartbeat& heartbeat,
                             warren::Mutex& owner_mu) {
    uint64_t chain;
    {
      warren::MutexLock lock(&owner_mu);
      chain = heartbeat.chain_ - 1;
    }
    heartbeat.Tick(chain);
  }
};

namespace {

constexpr absl::Duration kNever = absl::Hours(1);

TEST(DurationTest, ConvertsBothWaysToTheNanosecond) {
  google::protobuf::Duration proto;
  proto.set_seconds(3);
  proto.set_nanos(500000001);
  EXPECT_EQ(FromProtoDuration(proto),
            absl::Seconds(3) + absl::Nanoseconds(500000001));
  const google::protobuf::Duration back =
      ToProtoDuration(absl::Milliseconds(1250));
  EXPECT_EQ(back.seconds(), 1);
  EXPECT_EQ(back.nanos(), 250000000);
  EXPECT_EQ(FromProtoDuration(ToProtoDuration(absl::Milliseconds(-1500))),
            absl::Milliseconds(-1500));
  EXPECT_EQ(FromProtoDuration(google::protobuf::Duration()),
            absl::ZeroDuration());
}

TEST(HeartbeatIntervalTest, UnsetIsTheDefaultAndNoneIsBelowTheMinimum) {
  const absl::Duration def = absl::Seconds(30);
  const absl::Duration min = absl::Seconds(1);
  EXPECT_EQ(HeartbeatInterval(absl::ZeroDuration(), def, min), def);
  EXPECT_EQ(HeartbeatInterval(absl::Seconds(5), def, min), absl::Seconds(5));
  EXPECT_EQ(HeartbeatInterval(absl::Milliseconds(1), def, min), min);
  // A default below the minimum is raised too.
  EXPECT_EQ(
      HeartbeatInterval(absl::ZeroDuration(), absl::Milliseconds(10), min),
      min);
}

// A reactor as the lifetime sees it: endable, holding its lifetime.
class FakeReactor : public EndableStream {
 public:
  explicit FakeReactor(ClientQuota::Lease lease = {})
      : EndableStream("draining; again"), lifetime(std::move(lease)) {}
  // How it ended: the status of the first EndStream, and how many came.
  std::pair<grpc::Status, int> ended() {
    warren::MutexLock lock(&mu);
    return {status, ends};
  }
  StreamLifetime lifetime;

 private:
  void EndStream(grpc::Status end) override {
    warren::MutexLock lock(&mu);
    if (ends++ == 0) status = std::move(end);
  }
  warren::Mutex mu;
  grpc::Status status ABSL_GUARDED_BY(mu);
  int ends ABSL_GUARDED_BY(mu) = 0;
};

ClientQuota::Limits TenSlots() {
  return {"max_x", "max_x_per_client", "xs", 10, 10};
}

// A reactor holding one slot of `quota`.
std::shared_ptr<FakeReactor> NewReactorWithSlot(ClientQuota& quota) {
  auto lease = quota.Acquire("alice");
  EXPECT_TRUE(lease.ok());
  return std::make_shared<FakeReactor>(lease.ok() ? *std::move(lease)
                                                  : ClientQuota::Lease());
}

TEST(StreamLifetimeTest, KeepsTheStreamAliveUntilEndThenGivesEverythingBack) {
  StreamRegistry registry;
  ClientQuota quota(TenSlots());
  auto reactor = NewReactorWithSlot(quota);
  std::weak_ptr<FakeReactor> weak = reactor;
  FakeReactor* raw = reactor.get();
  ASSERT_TRUE(raw->lifetime.Begin(std::move(reactor), registry, "alice"));
  // gRPC holds only the raw pointer now: the lifetime keeps it alive.
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(registry.size(), 1u);
  EXPECT_EQ(quota.total(), 1u);
  EXPECT_EQ(raw->ended().second, 0);
  registry.DrainAll();
  EXPECT_EQ(raw->ended().first.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(raw->ended().first.error_message(), "draining; again");

  raw->lifetime.End();  // OnDone
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(registry.size(), 0u);
  EXPECT_EQ(quota.total(), 0u);
}

TEST(StreamLifetimeTest, ARefusedStreamStillLivesUntilEndAndEndsOnce) {
  StreamRegistry registry(/*max_streams=*/1);
  auto other = std::make_shared<FakeReactor>();
  ASSERT_TRUE(other->lifetime.Begin(other, registry, "bob"));

  ClientQuota quota(TenSlots());
  auto reactor = NewReactorWithSlot(quota);
  std::weak_ptr<FakeReactor> weak = reactor;
  FakeReactor* raw = reactor.get();
  EXPECT_FALSE(raw->lifetime.Begin(reactor, registry, "alice"));
  reactor.reset();
  // Ended with the reason; gRPC calls OnDone after it.
  EXPECT_EQ(raw->ended().first.error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_FALSE(weak.expired());
  EXPECT_EQ(quota.total(), 1u);

  raw->lifetime.End();
  EXPECT_TRUE(weak.expired());
  EXPECT_EQ(quota.total(), 0u);
  // The admitted stream kept its place.
  EXPECT_EQ(registry.size(), 1u);
  other->lifetime.End();
  other->lifetime.End();  // a second End does nothing
  EXPECT_EQ(registry.size(), 0u);
}

TEST(StreamLifetimeTest, ReauthorizesWithTheCheckGivenAtBeginOrLater) {
  StreamRegistry registry;
  auto at_begin = std::make_shared<FakeReactor>();
  ASSERT_TRUE(at_begin->lifetime.Begin(at_begin, registry, "alice", [] {
    return absl::PermissionDeniedError("gone");
  }));
  auto later = std::make_shared<FakeReactor>();
  ASSERT_TRUE(later->lifetime.Begin(later, registry, "alice"));
  auto allowed = std::make_shared<FakeReactor>();
  ASSERT_TRUE(allowed->lifetime.Begin(allowed, registry, "alice"));
  EXPECT_EQ(registry.ReauthorizeAll(), 1u);
  later->lifetime.SetReauthorizer(
      [] { return absl::UnauthenticatedError("expired"); });
  allowed->lifetime.SetReauthorizer([] { return absl::OkStatus(); });
  EXPECT_EQ(registry.ReauthorizeAll(), 2u);
  EXPECT_EQ(at_begin->ended().first.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(later->ended().first.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(allowed->ended().second, 0);
  for (auto* r : {at_begin.get(), later.get(), allowed.get()}) {
    r->lifetime.End();
  }
  EXPECT_EQ(registry.size(), 0u);
}

// Streams that start while the server drains them, and end on other threads
// (as OnDone does): each leaves the registry and is freed exactly once.
TEST(StreamLifetimeTest, ConcurrentStartsDrainsAndEndsLeaveNothingBehind) {
  constexpr int kThreads = 4;
  constexpr int kStreamsPerThread = 200;
  StreamRegistry registry(/*max_streams=*/50, /*max_streams_per_client=*/0);
  ClientQuota quota({"max_x", "max_x_per_client", "xs", 0, 0});
  std::atomic<int> alive{0};
  class Counted : public FakeReactor {
   public:
    Counted(ClientQuota::Lease lease, std::atomic<int>& alive)
        : FakeReactor(std::move(lease)), alive_(alive) {
      alive_.fetch_add(1);
    }
    ~Counted() override { alive_.fetch_sub(1); }

   private:
    std::atomic<int>& alive_;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kStreamsPerThread; ++i) {
        const std::string client = "client" + std::to_string(t);
        auto lease = quota.Acquire(client);
        ASSERT_TRUE(lease.ok());
        auto reactor = std::make_shared<Counted>(*std::move(lease), alive);
        Counted* raw = reactor.get();
        // Admitted or refused (full, or draining): OnDone comes either way.
        static_cast<void>(raw->lifetime.Begin(std::move(reactor), registry,
                                              client,
                                              [] { return absl::OkStatus(); }));
        std::thread on_done([raw] { raw->lifetime.End(); });
        registry.ReauthorizeAll();
        on_done.join();
      }
    });
  }
  std::thread drainer([&] { registry.DrainAll(); });
  for (auto& thread : threads) thread.join();
  drainer.join();
  EXPECT_EQ(alive.load(), 0);
  EXPECT_EQ(registry.size(), 0u);
  EXPECT_EQ(quota.total(), 0u);
}

// An owner as a reactor is one: a lock, a heartbeat under it, what it sent.
struct HeartbeatOwner {
  explicit HeartbeatOwner(TimerQueue& timers) : heartbeat(timers, mu) {}
  // As a reactor's write path does.
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    ++writes;
    heartbeat.NoteWrite();
  }
  void Tick() { StreamHeartbeatPeer::Tick(heartbeat, mu); }
  int sent() {
    warren::MutexLock lock(&mu);
    return heartbeats;
  }
  bool AwaitHeartbeats(int n) {
    warren::MutexLock lock(&mu);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return heartbeats >= n;
    };
    return mu.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(30));
  }

  warren::Mutex mu;
  StreamHeartbeat heartbeat;
  int heartbeats ABSL_GUARDED_BY(mu) = 0;
  int writes ABSL_GUARDED_BY(mu) = 0;
  bool leading ABSL_GUARDED_BY(mu) = true;
  absl::Duration session_timeout ABSL_GUARDED_BY(mu) = absl::Hours(10);
  int proofs_asked ABSL_GUARDED_BY(mu) = 0;
  absl::AnyInvocable<void(absl::Status)> pending_proof ABSL_GUARDED_BY(mu);
};

void StartIdle(std::shared_ptr<HeartbeatOwner> owner, absl::Duration interval) {
  HeartbeatOwner* raw = owner.get();
  warren::MutexLock lock(&raw->mu);
  raw->heartbeat.StartIdle(owner, interval, [raw] {
    ++raw->heartbeats;
    raw->heartbeat.NoteWrite();  // a heartbeat is a write as well
  });
}

using Prove = absl::AnyInvocable<void(absl::AnyInvocable<void(absl::Status)>)>;

// Proofs wait in pending_proof until the test answers them, unless `prove`
// answers them otherwise.
void StartLease(std::shared_ptr<HeartbeatOwner> owner, absl::Duration interval,
                Prove prove = nullptr) {
  HeartbeatOwner* raw = owner.get();
  StreamHeartbeat::Lease lease;
  lease.leading = [raw] { return raw->leading; };
  if (prove == nullptr) {
    prove = [raw](absl::AnyInvocable<void(absl::Status)> done) {
      warren::MutexLock lock(&raw->mu);
      ++raw->proofs_asked;
      raw->pending_proof = std::move(done);
    };
  }
  lease.prove = std::move(prove);
  lease.session_timeout = [raw] { return raw->session_timeout; };
  lease.send = [raw] { ++raw->heartbeats; };
  warren::MutexLock lock(&raw->mu);
  raw->heartbeat.StartLease(owner, interval, std::move(lease));
}

void AnswerProof(HeartbeatOwner& owner, absl::Status proof) {
  absl::AnyInvocable<void(absl::Status)> done;
  {
    warren::MutexLock lock(&owner.mu);
    done = std::move(owner.pending_proof);
    owner.pending_proof = nullptr;
  }
  ASSERT_TRUE(done != nullptr);
  done(std::move(proof));
}

TEST(StreamHeartbeatTest, IdleModeSendsOnlyAfterAnIntervalWithoutWrites) {
  TimerQueue timers;
  auto owner = std::make_shared<HeartbeatOwner>(timers);
  StartIdle(owner, kNever);
  owner->Tick();
  {
    warren::MutexLock lock(&owner->mu);
    EXPECT_EQ(owner->heartbeats, 1);
    owner->WriteLocked();
  }
  owner->Tick();
  EXPECT_EQ(owner->sent(), 1);  // the interval had a write
  // The heartbeat of the first tick did not count toward the next interval.
  owner->Tick();
  owner->Tick();
  EXPECT_EQ(owner->sent(), 3);
}

TEST(StreamHeartbeatTest, IdleModeTicksOnItsTimerUntilStopped) {
  TimerQueue timers;
  auto owner = std::make_shared<HeartbeatOwner>(timers);
  StartIdle(owner, absl::Milliseconds(5));
  ASSERT_TRUE(owner->AwaitHeartbeats(3));
  int sent;
  {
    warren::MutexLock lock(&owner->mu);
    owner->heartbeat.Stop();
    sent = owner->heartbeats;
  }
  // A tick after Stop (one already on its way) sends nothing.
  owner->Tick();
  EXPECT_EQ(owner->sent(), sent);
}

TEST(StreamHeartbeatTest, AnOwnerMayGoWhileItsTicksAreDue) {
  TimerQueue timers;
  for (int i = 0; i < 50; ++i) {
    auto owner = std::make_shared<HeartbeatOwner>(timers);
    StartIdle(owner, absl::Microseconds(100));
    ASSERT_TRUE(owner->AwaitHeartbeats(1));
    owner.reset();  // without Stop: its timer finds it gone
  }
}

TEST(StreamHeartbeatTest,
     LeaseModeProvesBeforeEachHeartbeatAndOnlyWhileLeading) {
  TimerQueue timers;
  auto owner = std::make_shared<HeartbeatOwner>(timers);
  {
    warren::MutexLock lock(&owner->mu);
    owner->leading = false;
  }
  StartLease(owner, kNever);
  owner->Tick();
  {
    warren::MutexLock lock(&owner->mu);
    EXPECT_EQ(owner->proofs_asked, 0);  // a follower has no lease
    owner->leading = true;
  }
  owner->Tick();
  // The tick sent nothing by itself, and asks once while a proof is due.
  owner->Tick();
  {
    warren::MutexLock lock(&owner->mu);
    EXPECT_EQ(owner->proofs_asked, 1);
    EXPECT_EQ(owner->heartbeats, 0);
  }
  AnswerProof(*owner, absl::OkStatus());
  {
    warren::MutexLock lock(&owner->mu);
    EXPECT_EQ(owner->heartbeats, 1);
    // Writes do not matter in lease mode.
    owner->WriteLocked();
  }
  owner->Tick();
  AnswerProof(*owner, absl::UnavailableError("connection loss"));
  {
    warren::MutexLock lock(&owner->mu);
    EXPECT_EQ(owner->proofs_asked, 2);
    EXPECT_EQ(owner->heartbeats, 1);  // a failed proof renews nothing
  }
  owner->Tick();
  {
    // Lost the lead while the proof was on its way.
    warren::MutexLock lock(&owner->mu);
    owner->leading = false;
  }
  AnswerProof(*owner, absl::OkStatus());
  {
    warren::MutexLock lock(&owner->mu);
    EXPECT_EQ(owner->heartbeats, 1);
    owner->leading = true;
  }
  owner->Tick();
  {
    warren::MutexLock lock(&owner->mu);
    owner->heartbeat.Stop();  // the stream ended meanwhile
  }
  AnswerProof(*owner, absl::OkStatus());
  warren::MutexLock lock(&owner->mu);
  EXPECT_EQ(owner->proofs_asked, 4);
  EXPECT_EQ(owner->heartbeats, 1);
}

TEST(StreamHeartbeatTest, LeaseModeDropsAProofTooOldToRenewTheLease) {
  TimerQueue timers;
  auto owner = std::make_shared<HeartbeatOwner>(timers);
  {
    // A session shorter than two intervals leaves no margin at all.
    warren::MutexLock lock(&owner->mu);
    owner->session_timeout = absl::Seconds(1);
  }
  StartLease(owner, kNever);
  owner->Tick();
  AnswerProof(*owner, absl::OkStatus());
  warren::MutexLock lock(&owner->mu);
  EXPECT_EQ(owner->proofs_asked, 1);
  EXPECT_EQ(owner->heartbeats, 0);
}

TEST(LeaseProofIsFreshTest, HalfTheMarginIsForTheProofsWayBack) {
  const absl::Time asked = absl::FromUnixSeconds(1000);
  // Session 9 s, interval 3 s: a lease of 6 s, a margin of 3 s.
  EXPECT_TRUE(LeaseProofIsFresh(asked, asked + absl::Milliseconds(1500),
                                absl::Seconds(9), absl::Seconds(3)));
  EXPECT_FALSE(LeaseProofIsFresh(asked, asked + absl::Milliseconds(1501),
                                 absl::Seconds(9), absl::Seconds(3)));
  EXPECT_FALSE(
      LeaseProofIsFresh(asked, asked, absl::Seconds(5), absl::Seconds(3)));
}

TEST(StreamHeartbeatTest, ANewIntervalReplacesTheTicksOfTheOld) {
  TimerQueue timers;
  auto owner = std::make_shared<HeartbeatOwner>(timers);
  StartIdle(owner, kNever);
  {
    warren::MutexLock lock(&owner->mu);
    owner->heartbeat.SetInterval(kNever);  // the same: nothing changes
    owner->heartbeat.SetInterval(kNever + absl::Seconds(1));
    EXPECT_EQ(owner->heartbeat.interval(), kNever + absl::Seconds(1));
  }
  StreamHeartbeatPeer::TickStaleChain(owner->heartbeat, owner->mu);
  EXPECT_EQ(owner->sent(), 0);
  owner->Tick();
  EXPECT_EQ(owner->sent(), 1);
}

// Proofs answered on another thread while the timer ticks, the owner
// writes, and the stream stops: what ThreadSanitizer watches.
TEST(StreamHeartbeatTest, LeaseProofsFromAnotherThreadRaceNothing) {
  TimerQueue timers;
  auto owner = std::make_shared<HeartbeatOwner>(timers);
  HeartbeatOwner* raw = owner.get();
  warren::Mutex answers_mu;
  std::vector<absl::AnyInvocable<void(absl::Status)>> answers;
  bool stop_answering = false;
  StartLease(owner, absl::Milliseconds(2),
             [&](absl::AnyInvocable<void(absl::Status)> done) {
               warren::MutexLock lock(&answers_mu);
               answers.push_back(std::move(done));
             });
  std::thread ensemble([&] {
    for (;;) {
      std::vector<absl::AnyInvocable<void(absl::Status)>> batch;
      {
        warren::MutexLock lock(&answers_mu);
        auto ready = [&] { return stop_answering || !answers.empty(); };
        answers_mu.Await(absl::Condition(&ready));
        if (stop_answering) return;
        batch.swap(answers);
      }
      for (auto& done : batch) done(absl::OkStatus());
    }
  });
  std::thread writer([raw] {
    for (int i = 0; i < 1000; ++i) {
      warren::MutexLock lock(&raw->mu);
      raw->WriteLocked();
    }
  });
  EXPECT_TRUE(owner->AwaitHeartbeats(5));
  writer.join();
  {
    warren::MutexLock lock(&raw->mu);
    raw->heartbeat.Stop();
  }
  {
    warren::MutexLock lock(&answers_mu);
    stop_answering = true;
  }
  ensemble.join();
}

}  // namespace
}  // namespace warren
