// Unit tests of fence validation and resolution against an in-memory
// ZooKeeper (FakeZk): who holds an election or a lock as the recipes'
// nodes say, what a fence that does not hold is answered, and the multi
// step that keeps a resolved fence's promise. Fenced writes and publishes
// are tested end to end in tests/integration.
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fence/fence_resolver.h"
#include "tests/fakes/fake_zk.h"
#include "warren/v1/lock.pb.h"

namespace warren::fence {
namespace {

using ::testing::HasSubstr;

v1::Fence ElectionFence(const std::string& name, uint64_t token) {
  v1::Fence fence;
  fence.set_election(name);
  fence.set_fencing_token(token);
  return fence;
}

v1::Fence LockFence(const std::string& name, uint64_t token) {
  v1::Fence fence;
  fence.set_lock(name);
  fence.set_fencing_token(token);
  return fence;
}

std::string LockData(uint32_t limit) {
  v1::Acquire acquire;
  acquire.set_name("ignored");
  acquire.set_holder_id("h");
  acquire.set_limit(limit);
  return acquire.SerializeAsString();
}

enum class Owner { kOtherSession, kPersistent };

class FenceTest : public ::testing::Test {
 protected:
  FenceTest() : resolver_(zk_, "/w") {
    zk_.ExternalPut("/w", "");
    zk_.ExternalPut("/w/elections", "");
    zk_.ExternalPut("/w/locks", "");
    zk_.RunUntilIdle();
  }

  // A node of the recipes' form with this sequence under `base`; answers
  // its path and token (czxid).
  std::pair<std::string, uint64_t> AddNode(const std::string& base,
                                           int sequence,
                                           const std::string& data = "",
                                           Owner owner = Owner::kOtherSession) {
    char name[64];
    std::snprintf(name, sizeof(name),
                  "c_0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-%010d", sequence);
    const std::string path = absl::StrCat(base, "/", name);
    if (owner == Owner::kPersistent) {
      zk_.ExternalPut(path, data);
    } else {
      zk_.ExternalPutEphemeral(path, data);
    }
    uint64_t token = 0;
    zk_.Get(path, {}, [&](absl::StatusOr<zk::NodeData> r) {
      ASSERT_TRUE(r.ok()) << r.status();
      token = static_cast<uint64_t>(r->stat.czxid);
    });
    zk_.RunUntilIdle();
    return {path, token};
  }

  absl::StatusOr<HeldFence> Resolve(const v1::Fence& fence,
                                    bool synced = false) {
    std::optional<absl::StatusOr<HeldFence>> result;
    auto done = [&](absl::StatusOr<HeldFence> r) { result = std::move(r); };
    if (synced) {
      resolver_.ResolveSynced(fence, done);
    } else {
      resolver_.Resolve(fence, done);
    }
    zk_.RunUntilIdle();
    if (!result.has_value()) return absl::InternalError("no answer");
    return *std::move(result);
  }

  testing::FakeZk zk_;
  FenceResolver resolver_;
};

TEST(FenceValidationTest, NamesTheFieldThatIsWrong) {
  EXPECT_TRUE(ValidateFence(ElectionFence("jobs/dispatcher", 7), "fence").ok());
  EXPECT_TRUE(ValidateFence(LockFence("printer", 7), "fence").ok());

  v1::Fence no_owner;
  no_owner.set_fencing_token(7);
  absl::Status s = ValidateFence(no_owner, "fence");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::StartsWith("fence "));

  s = ValidateFence(ElectionFence("", 7), "fence");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("fence.election"));

  s = ValidateFence(ElectionFence("jobs/c_x", 7), "fence");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("fence.election"));

  s = ValidateFence(LockFence("../up", 7), "fence");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("fence.lock"));

  s = ValidateFence(LockFence("printer", 0), "ops[2].fence");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              ::testing::StartsWith("ops[2].fence.fencing_token"));
}

TEST(FenceValidationTest, OwnerNamesAndTheRefusal) {
  EXPECT_EQ(OwnerName(ElectionFence("jobs", 1)), "election:jobs");
  EXPECT_EQ(OwnerName(LockFence("a/b", 1)), "lock:a/b");
  const absl::Status s = FenceNotHeld(ElectionFence("jobs", 4294967312),
                                      "the leader's token is 9");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "fence: election:jobs token 4294967312 no longer holds (the "
            "leader's token is 9)");
}

TEST_F(FenceTest, OnlyTheElectionsLeaderHolds) {
  zk_.ExternalPut("/w/elections/jobs", "");
  // Of the candidates' form but no session's: neither leads nor hides the
  // leader.
  auto [stray, stray_token] =
      AddNode("/w/elections/jobs", 1, "", Owner::kPersistent);
  auto [leader, leader_token] = AddNode("/w/elections/jobs", 2);
  auto [follower, follower_token] = AddNode("/w/elections/jobs", 3);

  absl::StatusOr<HeldFence> held = Resolve(ElectionFence("jobs", leader_token));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->holder_node, leader);

  for (uint64_t token : {stray_token, follower_token}) {
    absl::StatusOr<HeldFence> refused = Resolve(ElectionFence("jobs", token));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(refused.status().message(),
              absl::StrCat("fence: election:jobs token ", token,
                           " no longer holds (the leader's token is ",
                           leader_token, ")"));
  }
}

TEST_F(FenceTest, AResignedLeadersTokenIsStaleAndTheNextOneHolds) {
  zk_.ExternalPut("/w/elections/jobs", "");
  auto [leader, leader_token] = AddNode("/w/elections/jobs", 1);
  auto [next, next_token] = AddNode("/w/elections/jobs", 2);
  zk_.ExternalDelete(leader);

  absl::StatusOr<HeldFence> stale =
      Resolve(ElectionFence("jobs", leader_token));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.status().message(),
              HasSubstr(absl::StrCat("the leader's token is ", next_token)));

  absl::StatusOr<HeldFence> held = Resolve(ElectionFence("jobs", next_token));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->holder_node, next);
}

TEST_F(FenceTest, AnUnknownOrEmptyElectionHasNoLeader) {
  absl::StatusOr<HeldFence> unknown = Resolve(ElectionFence("nobody/here", 5));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(unknown.status().message(),
            "fence: election:nobody/here token 5 no longer holds (nobody "
            "leads)");

  zk_.ExternalPut("/w/elections/empty", "");
  AddNode("/w/elections/empty", 1, "", Owner::kPersistent);
  absl::StatusOr<HeldFence> empty = Resolve(ElectionFence("empty", 5));
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(empty.status().message(), HasSubstr("(nobody leads)"));
}

TEST_F(FenceTest, ALocksFirstLimitHoldersHoldWithTheFirstHoldersLimit) {
  zk_.ExternalPut("/w/locks/pool", "");
  // A stray persistent node whose data names a larger limit: not a holder,
  // and not the one whose limit counts.
  AddNode("/w/locks/pool", 1, LockData(9), Owner::kPersistent);
  auto [first, first_token] = AddNode("/w/locks/pool", 2, LockData(2));
  // A later holder's different limit does not change the lock's.
  auto [second, second_token] = AddNode("/w/locks/pool", 3, LockData(5));
  auto [waiter, waiter_token] = AddNode("/w/locks/pool", 4, LockData(2));

  absl::StatusOr<HeldFence> held = Resolve(LockFence("pool", first_token));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->holder_node, first);
  held = Resolve(LockFence("pool", second_token));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->holder_node, second);

  absl::StatusOr<HeldFence> waiting = Resolve(LockFence("pool", waiter_token));
  EXPECT_EQ(waiting.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(waiting.status().message(),
            absl::StrCat("fence: lock:pool token ", waiter_token,
                         " no longer holds (the holders' tokens are ",
                         first_token, ", ", second_token, ")"));

  // A holder leaves: the waiter moves up and now holds.
  zk_.ExternalDelete(first);
  held = Resolve(LockFence("pool", waiter_token));
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->holder_node, waiter);
  absl::StatusOr<HeldFence> stale = Resolve(LockFence("pool", first_token));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(FenceTest, ALimitOfZeroOrForeignDataMakesAMutex) {
  zk_.ExternalPut("/w/locks/m", "");
  auto [holder, holder_token] = AddNode("/w/locks/m", 1, LockData(0));
  auto [waiter, waiter_token] = AddNode("/w/locks/m", 2, LockData(0));
  EXPECT_TRUE(Resolve(LockFence("m", holder_token)).ok());
  absl::StatusOr<HeldFence> waiting = Resolve(LockFence("m", waiter_token));
  EXPECT_EQ(waiting.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      waiting.status().message(),
      HasSubstr(absl::StrCat("(the holder's token is ", holder_token, ")")));

  zk_.ExternalPut("/w/locks/foreign", "");
  auto [f1, f1_token] = AddNode("/w/locks/foreign", 1, "\xff\xff not proto");
  auto [f2, f2_token] = AddNode("/w/locks/foreign", 2, LockData(3));
  EXPECT_TRUE(Resolve(LockFence("foreign", f1_token)).ok());
  EXPECT_EQ(Resolve(LockFence("foreign", f2_token)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(FenceTest, AnUnknownLockOrATokenNobodyHasDoesNotHold) {
  absl::StatusOr<HeldFence> unknown = Resolve(LockFence("nope", 12));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(unknown.status().message(),
            "fence: lock:nope token 12 no longer holds (nobody holds the "
            "lock)");

  zk_.ExternalPut("/w/locks/sem", "");
  auto [a, a_token] = AddNode("/w/locks/sem", 1, LockData(3));
  absl::StatusOr<HeldFence> never = Resolve(LockFence("sem", a_token + 1000));
  EXPECT_EQ(never.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(never.status().message(), HasSubstr(absl::StrCat(a_token)));
}

TEST_F(FenceTest, ConnectionErrorsPassThrough) {
  zk_.ExternalPut("/w/elections/jobs", "");
  auto [leader, token] = AddNode("/w/elections/jobs", 1);
  zk_.Disconnect();
  absl::StatusOr<HeldFence> result = Resolve(ElectionFence("jobs", token));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
}

// What publishes use: the same answers, after a sync (whose failure, like
// a read's, passes through).
TEST_F(FenceTest, ASyncedResolutionAnswersAsAPlainOne) {
  zk_.ExternalPut("/w/elections/jobs", "");
  auto [leader, token] = AddNode("/w/elections/jobs", 1);
  absl::StatusOr<HeldFence> held =
      Resolve(ElectionFence("jobs", token), /*synced=*/true);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(held->holder_node, leader);
  EXPECT_EQ(Resolve(ElectionFence("jobs", token + 1), /*synced=*/true)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  zk_.Disconnect();
  EXPECT_EQ(
      Resolve(ElectionFence("jobs", token), /*synced=*/true).status().code(),
      absl::StatusCode::kUnavailable);
}

TEST_F(FenceTest, TheCheckOpFailsAMultiOnceTheHolderIsGone) {
  zk_.ExternalPut("/w/elections/jobs", "");
  zk_.ExternalPut("/w/data", "");
  auto [leader, token] = AddNode("/w/elections/jobs", 1);
  absl::StatusOr<HeldFence> held = Resolve(ElectionFence("jobs", token));
  ASSERT_TRUE(held.ok()) << held.status();

  auto multi = [&](const std::string& value) {
    zk::MultiResult out;
    zk_.Multi(
        {FenceResolver::CheckOp(*held), zk::Op::SetData("/w/data", value)},
        [&](zk::MultiResult r) { out = std::move(r); });
    zk_.RunUntilIdle();
    return out;
  };
  EXPECT_TRUE(multi("while leading").status.ok());

  zk_.ExternalDelete(leader);
  zk::MultiResult late = multi("after resigning");
  EXPECT_FALSE(late.status.ok());
  EXPECT_EQ(late.failed_op, 0);
  std::string value;
  zk_.Get("/w/data", {}, [&](absl::StatusOr<zk::NodeData> r) {
    ASSERT_TRUE(r.ok());
    value = r->value;
  });
  zk_.RunUntilIdle();
  EXPECT_EQ(value, "while leading");
}

TEST(FenceResolverRootTest, TheRootSlashHasNoDoubleSlash) {
  testing::FakeZk zk;
  zk.ExternalPut("/elections", "");
  zk.ExternalPut("/elections/jobs", "");
  const std::string node =
      "/elections/jobs/c_0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0-0000000001";
  zk.ExternalPutEphemeral(node, "");
  uint64_t token = 0;
  zk.Get(node, {}, [&](absl::StatusOr<zk::NodeData> r) {
    token = static_cast<uint64_t>(r->stat.czxid);
  });
  zk.RunUntilIdle();
  FenceResolver resolver(zk, "/");
  std::optional<absl::StatusOr<HeldFence>> result;
  resolver.Resolve(ElectionFence("jobs", token),
                   [&](absl::StatusOr<HeldFence> r) { result = std::move(r); });
  zk.RunUntilIdle();
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->ok()) << result->status();
  EXPECT_EQ((*result)->holder_node, node);
}

}  // namespace
}  // namespace warren::fence
