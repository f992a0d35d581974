// Unit tests of the lock recipe (election::Candidacy with N holders) against
// an in-memory ZooKeeper (FakeZk): semaphore order and wake-ups, the limit
// everyone must agree on, nodes no session holds, positions. The RPCs are
// tested end to end against a real ZooKeeper in tests/integration.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/election/candidate_node.h"
#include "server/lock/lock_manager.h"
#include "server/lock/lock_service.h"
#include "tests/fakes/fake_zk.h"

namespace warren::lock {
namespace {

using ::testing::ElementsAre;

class RecordingObserver : public election::CandidacyObserver {
 public:
  void OnElected(uint64_t token, absl::Time) override {
    events.push_back("acquired");
    tokens.push_back(token);
  }
  void OnFollowing(uint64_t, uint32_t position) override {
    events.push_back(absl::StrCat("queued:", position));
  }
  void OnLost(election::LossReason reason) override {
    events.push_back(reason == election::LossReason::kResigned ? "lost:released"
                     : reason == election::LossReason::kConnectionSuspended
                         ? "lost:suspended"
                         : "lost:expired");
  }
  void OnEnded(absl::Status status) override {
    events.push_back(absl::StrCat("ended:", status.ToString()));
  }
  std::vector<std::string> events;
  std::vector<uint64_t> tokens;
};

class LockTest : public ::testing::Test {
 protected:
  LockTest() : manager_(zk_, "/w") {
    zk_.ExternalPut("/w", "");
    zk_.ExternalPut("/w/locks", "");
    zk_.RunUntilIdle();
  }
  std::pair<std::shared_ptr<election::Candidacy>,
            std::shared_ptr<RecordingObserver>>
  Acquire(const std::string& id, uint32_t limit) {
    auto observer = std::make_shared<RecordingObserver>();
    LockRequestParams params;
    params.name = "jobs/db";
    params.holder_id = id;
    params.value = id + "-value";
    params.limit = limit;
    auto candidacy = manager_.Acquire(params, observer);
    zk_.RunUntilIdle();
    return {candidacy, observer};
  }
  std::vector<std::string> Nodes() { return zk_.Children("/w/locks/jobs/db"); }
  testing::FakeZk zk_;
  LockManager manager_;
};

TEST_F(LockTest, TheFirstLimitHoldAndEachLeaverLetsOneIn) {
  std::vector<std::shared_ptr<election::Candidacy>> c;
  std::vector<std::shared_ptr<RecordingObserver>> o;
  for (int i = 0; i < 5; ++i) {
    auto [candidacy, observer] = Acquire(absl::StrCat("h", i), 3);
    c.push_back(candidacy);
    o.push_back(observer);
  }
  EXPECT_THAT(o[0]->events, ElementsAre("acquired"));
  EXPECT_THAT(o[1]->events, ElementsAre("acquired"));
  EXPECT_THAT(o[2]->events, ElementsAre("acquired"));
  EXPECT_THAT(o[3]->events, ElementsAre("queued:0"));
  EXPECT_THAT(o[4]->events, ElementsAre("queued:1"));
  EXPECT_EQ(manager_.held(), 3u);
  EXPECT_EQ(manager_.waiting(), 2u);

  // Not the oldest: a semaphore's waiter wakes for any holder that goes.
  c[1]->Resign();
  zk_.RunUntilIdle();
  EXPECT_THAT(o[1]->events,
              ElementsAre("acquired", "lost:released", "ended:OK"));
  EXPECT_THAT(o[3]->events, ElementsAre("queued:0", "acquired"));
  EXPECT_THAT(o[4]->events, ElementsAre("queued:1", "queued:0"));
  EXPECT_GT(o[3]->tokens[0], o[2]->tokens[0]);

  c[0]->Stop();
  zk_.RunUntilIdle();
  EXPECT_THAT(o[4]->events, ElementsAre("queued:1", "queued:0", "acquired"));
  EXPECT_EQ(Nodes().size(), 3u);
  EXPECT_EQ(manager_.held(), 3u);
  EXPECT_EQ(manager_.waiting(), 0u);
}

TEST_F(LockTest, AMutexWaiterWatchesOnlyItsPredecessor) {
  auto [a, ao] = Acquire("a", 0);  // 0 is a mutex, as 1
  auto [b, bo] = Acquire("b", 1);
  auto [c, co] = Acquire("c", 1);
  EXPECT_THAT(ao->events, ElementsAre("acquired"));
  EXPECT_THAT(bo->events, ElementsAre("queued:0"));
  EXPECT_THAT(co->events, ElementsAre("queued:1"));
  const std::vector<std::string> nodes = election::SortCandidates(Nodes());
  ASSERT_EQ(nodes.size(), 3u);
  EXPECT_EQ(zk_.data_watch_count("/w/locks/jobs/db/" + nodes[0]), 1u);
  EXPECT_EQ(zk_.data_watch_count("/w/locks/jobs/db/" + nodes[1]), 1u);
  EXPECT_EQ(zk_.data_watch_count("/w/locks/jobs/db/" + nodes[2]), 0u);
  a->Resign();
  zk_.RunUntilIdle();
  EXPECT_THAT(bo->events, ElementsAre("queued:0", "acquired"));
  EXPECT_THAT(co->events, ElementsAre("queued:1"));  // no herd
}

TEST_F(LockTest, ALimitThatDiffersIsRefusedAndLeavesNoNode) {
  auto [a, ao] = Acquire("a", 3);
  auto [b, bo] = Acquire("b", 2);
  EXPECT_THAT(bo->events,
              ElementsAre("ended:FAILED_PRECONDITION: acquire.limit: lock "
                          "jobs/db has limit 3, not 2"));
  EXPECT_EQ(Nodes().size(), 1u);
  auto [m, mo] = Acquire("m", 1);
  EXPECT_EQ(mo->events.size(), 1u);
  EXPECT_THAT(mo->events[0], ::testing::HasSubstr("has limit 3, not 1"));
  a->Stop();
  zk_.RunUntilIdle();
  // A lock nobody holds takes the limit of its next first holder.
  auto [x, xo] = Acquire("x", 0);
  auto [y, yo] = Acquire("y", 1);
  EXPECT_THAT(xo->events, ElementsAre("acquired"));
  EXPECT_THAT(yo->events, ElementsAre("queued:0"));
}

TEST_F(LockTest, ASemaphoreSkipsNodesNoSessionHolds) {
  auto [a, ao] = Acquire("a", 2);  // creates the lock's node
  a->Stop();
  zk_.RunUntilIdle();
  // Persistent nodes of the candidates' exact form, before any real one.
  const std::string guid = "0f8fad5b-d9cb-469f-a165-70867728950e";
  zk_.ExternalPut(absl::StrCat("/w/locks/jobs/db/c_", guid, "-0000000000"), "");
  zk_.ExternalPut(absl::StrCat("/w/locks/jobs/db/c_", guid, "-0000000001"), "");
  auto [b, bo] = Acquire("b", 2);
  auto [c, co] = Acquire("c", 2);
  auto [d, dobs] = Acquire("d", 2);
  EXPECT_THAT(bo->events, ElementsAre("acquired"));
  EXPECT_THAT(co->events, ElementsAre("acquired"));
  EXPECT_THAT(dobs->events, ElementsAre("queued:0"));
}

TEST_F(LockTest, SuspensionLosesTheHoldAndTheSameSessionGivesItBack) {
  auto [a, ao] = Acquire("a", 1);
  const uint64_t token = a->token();
  zk_.Disconnect();
  zk_.RunUntilIdle();
  EXPECT_FALSE(a->holds());
  zk_.Reconnect();
  zk_.RunUntilIdle();
  EXPECT_TRUE(a->holds());
  EXPECT_THAT(ao->events,
              ElementsAre("acquired", "lost:suspended", "acquired"));
  EXPECT_EQ(ao->tokens[1], token);
  zk_.Expire();
  zk_.RunUntilIdle();
  ASSERT_EQ(ao->events.size(), 5u);
  EXPECT_EQ(ao->events[3], "lost:expired");
  EXPECT_THAT(ao->events[4], ::testing::StartsWith("ended:ABORTED"));
}

TEST(ValidateAcquireTest, NamesTheField) {
  LockServiceOptions options;
  options.max_value_bytes = 4;
  auto rejected = [&](const warren::v1::Acquire& a, const std::string& field) {
    auto result = ValidateAcquire(a, options);
    ASSERT_FALSE(result.ok()) << field;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(result.status().message()),
                ::testing::StartsWith(field));
  };
  warren::v1::Acquire a;
  a.set_name("jobs/db");
  EXPECT_TRUE(ValidateAcquire(a, options).ok());
  a.set_name("");
  rejected(a, "acquire.name");
  a.set_name("team/c_x");
  rejected(a, "acquire.name");
  a.set_name("jobs/db");
  a.set_holder_id("a/b");
  rejected(a, "acquire.holder_id");
  a.set_holder_id("");
  a.set_value("12345");
  rejected(a, "acquire.value");
  a.set_value("");
  a.set_limit(1001);
  rejected(a, "acquire.limit");
  a.set_limit(1000);
  EXPECT_TRUE(ValidateAcquire(a, options).ok());
  a.mutable_wait_timeout()->set_seconds(-1);
  rejected(a, "acquire.wait_timeout");
  a.clear_wait_timeout();
  a.mutable_heartbeat_interval()->set_nanos(-1);
  rejected(a, "acquire.heartbeat_interval");
}

}  // namespace
}  // namespace warren::lock
