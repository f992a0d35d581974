// Per-client and total limits of open watches and candidacies, end to end:
// the real warrend with small limits, called through the generated stubs.
// Beyond a limit a new WatchConfig or campaign is refused with
// RESOURCE_EXHAUSTED naming the limit, while what is open keeps working; a
// slot that frees up can be taken again; with auth on, each principal has a
// budget of its own.
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/config_clients.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "warren/client/channel.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
namespace client = ::warren::client;
using ::testing::AllOf;
using ::testing::HasSubstr;

bool HasState(const std::vector<v1::WatchConfigResponse>& responses) {
  return !responses.empty();
}

// A watch that must be refused with RESOURCE_EXHAUSTED; answers its message.
std::string RefusedWatch(v1::ConfigService::Stub* stub,
                         const std::string& key) {
  WatchReader refused(stub, key, /*prefix=*/false);
  grpc::Status status;
  EXPECT_TRUE(refused.WaitEnded(absl::Seconds(30), &status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_TRUE(refused.responses().empty());
  return status.error_message();
}

// Waits for the first answer to a campaign: elected or following.
bool Campaigning(TestCandidate& candidate) {
  return candidate.WaitFor([](const v1::ElectResponse& r) {
    return r.has_elected() || r.has_following();
  }) >= 0;
}

// A campaign that must be refused with RESOURCE_EXHAUSTED; answers its
// message.
std::string RefusedCampaign(v1::ElectionService::Stub& stub,
                            const std::string& election,
                            const std::string& id) {
  TestCandidate refused(stub, MakeCampaign(election, id));
  grpc::Status status;
  EXPECT_TRUE(refused.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  EXPECT_TRUE(refused.events().empty());
  return status.error_message();
}

void Put(v1::ConfigService::Stub* stub, const std::string& key,
         const std::string& value) {
  v1::PutConfigRequest put;
  put.set_key(key);
  put.set_value(value);
  v1::PutConfigResponse ignored;
  grpc::Status status = stub->PutConfig(CallContext().get(), put, &ignored);
  ASSERT_TRUE(status.ok()) << status.error_message();
}

struct PerClientFlags {
  static std::vector<std::string> Args() {
    return {"--max_watches_per_client=2", "--max_candidates_per_client=2"};
  }
};

class PerClientLimitTest : public SharedWarrendTest<PerClientFlags> {};

TEST_F(PerClientLimitTest, WatchesBeyondTheLimitAreRefusedOpenOnesKeepWorking) {
  auto stub = v1::ConfigService::NewStub(warrend_->channel());
  std::vector<std::unique_ptr<WatchReader>> open;
  for (int i = 0; i < 2; ++i) {
    open.push_back(std::make_unique<WatchReader>(stub.get(), "pc/key",
                                                 /*prefix=*/false));
    ASSERT_TRUE(open.back()->WaitUntil(HasState)) << i;
  }
  // Another connection of the same host is the same client.
  grpc::ChannelArguments separate;
  separate.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto other_channel = grpc::CreateCustomChannel(
      warrend_->address(), grpc::InsecureChannelCredentials(), separate);
  auto other_stub = v1::ConfigService::NewStub(other_channel);
  for (auto* s : {stub.get(), other_stub.get()}) {
    EXPECT_THAT(RefusedWatch(s, "pc/key"),
                AllOf(HasSubstr("max_watches_per_client (2)"),
                      HasSubstr("'127.0.0.1'")));
  }
  // The open ones still see changes.
  Put(stub.get(), "pc/key", "v1");
  for (auto& watch : open) EXPECT_TRUE(watch->WaitForValue("pc/key", "v1"));
  // Other calls of the client are not limited.
  v1::GetConfigRequest get;
  get.set_key("pc/key");
  v1::GetConfigResponse got;
  EXPECT_TRUE(stub->GetConfig(CallContext().get(), get, &got).ok());
  // Closing one makes room for one, and only one.
  open.pop_back();
  std::unique_ptr<WatchReader> again;
  ASSERT_TRUE(WaitFor(
      [&] {
        again = std::make_unique<WatchReader>(stub.get(), "pc/key",
                                              /*prefix=*/false);
        return again->WaitUntil(HasState, absl::Seconds(5));
      },
      absl::Seconds(30)));
  EXPECT_THAT(RefusedWatch(stub.get(), "pc/key"),
              HasSubstr("max_watches_per_client (2)"));
  Put(stub.get(), "pc/key", "v2");
  EXPECT_TRUE(open.front()->WaitForValue("pc/key", "v2"));
  EXPECT_TRUE(again->WaitForValue("pc/key", "v2"));
}

TEST_F(PerClientLimitTest,
       CampaignsBeyondTheLimitAreRefusedLeaderKeepsLeading) {
  auto stub = v1::ElectionService::NewStub(warrend_->channel());
  const std::string election = "pc/leader";
  TestCandidate leader(*stub, MakeCampaign(election, "first"));
  ASSERT_GE(leader.WaitElected(), 0);
  TestCandidate follower(*stub, MakeCampaign(election, "second"));
  ASSERT_TRUE(Campaigning(follower));
  // Refused for this client, in this election and in any other.
  EXPECT_THAT(RefusedCampaign(*stub, election, "third"),
              AllOf(HasSubstr("max_candidates_per_client (2)"),
                    HasSubstr("'127.0.0.1'")));
  EXPECT_THAT(RefusedCampaign(*stub, "pc/other", "fourth"),
              HasSubstr("max_candidates_per_client (2)"));
  // The leader still leads: heartbeats go on, no loss, GetLeader names it.
  const size_t seen = leader.events().size();
  EXPECT_GE(
      leader.WaitFor(
          [](const v1::ElectResponse& r) { return r.has_heartbeat(); }, seen),
      0);
  for (const auto& event : leader.events()) {
    EXPECT_FALSE(event.response.has_lost());
  }
  v1::GetLeaderRequest get;
  get.set_election(election);
  v1::GetLeaderResponse got;
  ASSERT_TRUE(stub->GetLeader(CallContext().get(), get, &got).ok());
  EXPECT_EQ(got.leader().candidate_id(), "first");

  // A resignation frees its slot by the time its stream ends: a new
  // campaign succeeds at once, and the follower takes over.
  ASSERT_TRUE(leader.Resign());
  grpc::Status ended;
  ASSERT_TRUE(leader.WaitEnded(&ended));
  EXPECT_TRUE(ended.ok()) << ended.error_message();
  ASSERT_GE(follower.WaitElected(), 0);
  TestCandidate next(*stub, MakeCampaign(election, "fifth"));
  ASSERT_TRUE(Campaigning(next));
  EXPECT_THAT(RefusedCampaign(*stub, election, "sixth"),
              HasSubstr("max_candidates_per_client (2)"));

  // A cancelled stream frees its slot too (when the server sees the cancel).
  next.Cancel();
  std::unique_ptr<TestCandidate> after_cancel;
  ASSERT_TRUE(WaitFor(
      [&] {
        after_cancel = std::make_unique<TestCandidate>(
            *stub, MakeCampaign(election, "seventh"));
        return Campaigning(*after_cancel);
      },
      absl::Seconds(30)));
}

// The totals apply over all clients, before any per-client limit.
struct TotalFlags {
  static std::vector<std::string> Args() {
    return {"--max_watches=2", "--max_candidates=2"};
  }
};

class TotalLimitTest : public SharedWarrendTest<TotalFlags> {};

TEST_F(TotalLimitTest, WatchesAndCampaignsBeyondTheTotalsAreRefused) {
  auto config = v1::ConfigService::NewStub(warrend_->channel());
  WatchReader a(config.get(), "total/a", /*prefix=*/false);
  WatchReader b(config.get(), "total/b", /*prefix=*/false);
  ASSERT_TRUE(a.WaitUntil(HasState));
  ASSERT_TRUE(b.WaitUntil(HasState));
  EXPECT_THAT(RefusedWatch(config.get(), "total/c"),
              HasSubstr("max_watches (2)"));

  auto elections = v1::ElectionService::NewStub(warrend_->channel());
  TestCandidate first(*elections, MakeCampaign("total/e", "first"));
  TestCandidate second(*elections, MakeCampaign("total/f", "second"));
  ASSERT_GE(first.WaitElected(), 0);
  ASSERT_GE(second.WaitElected(), 0);
  EXPECT_THAT(RefusedCampaign(*elections, "total/g", "third"),
              HasSubstr("max_candidates (2)"));
  // What is open keeps working.
  Put(config.get(), "total/a", "v1");
  EXPECT_TRUE(a.WaitForValue("total/a", "v1"));
  EXPECT_FALSE(first.ended());
  EXPECT_FALSE(second.ended());
}

constexpr char kAliceToken[] = "alice-token-9d8c7b6a5f4e3d2c1b0a";
constexpr char kBobToken[] = "bob-token-0a1b2c3d4e5f6a7b8c9d";

// With auth on, the client is the principal: two principals on one host
// have a budget each, and one principal on two connections has one.
struct AuthFlags {
  static std::vector<std::string> Args() {
    const std::string dir = MakeTempDir("warren-limits-auth");
    const std::string tokens = dir + "/tokens.yaml";
    std::ofstream(tokens) << "tokens:\n  - {principal: alice, token: "
                          << kAliceToken
                          << "}\n  - {principal: bob, token: " << kBobToken
                          << "}\n";
    return {"--auth_tokens_file=" + tokens, "--max_watches_per_client=1",
            "--max_candidates_per_client=1"};
  }
};

class PerPrincipalLimitTest : public SharedWarrendTest<AuthFlags> {
 protected:
  std::shared_ptr<grpc::Channel> Channel(const std::string& token) {
    return client::MakeChannel(warrend_->address(),
                               client::ChannelOptions{token});
  }
};

TEST_F(PerPrincipalLimitTest, EachPrincipalHasItsOwnBudget) {
  auto alice = v1::ConfigService::NewStub(Channel(kAliceToken));
  auto alice_again = v1::ConfigService::NewStub(Channel(kAliceToken));
  auto bob = v1::ConfigService::NewStub(Channel(kBobToken));
  WatchReader alice_watch(alice.get(), "pp/key", /*prefix=*/false);
  ASSERT_TRUE(alice_watch.WaitUntil(HasState));
  for (auto* stub : {alice.get(), alice_again.get()}) {
    EXPECT_THAT(
        RefusedWatch(stub, "pp/key"),
        AllOf(HasSubstr("max_watches_per_client (1)"), HasSubstr("'alice'")));
  }
  WatchReader bob_watch(bob.get(), "pp/key", /*prefix=*/false);
  ASSERT_TRUE(bob_watch.WaitUntil(HasState));
  EXPECT_THAT(RefusedWatch(bob.get(), "pp/key"), HasSubstr("'bob'"));
  Put(alice.get(), "pp/key", "v1");
  EXPECT_TRUE(alice_watch.WaitForValue("pp/key", "v1"));
  EXPECT_TRUE(bob_watch.WaitForValue("pp/key", "v1"));

  auto alice_elect = v1::ElectionService::NewStub(Channel(kAliceToken));
  auto bob_elect = v1::ElectionService::NewStub(Channel(kBobToken));
  TestCandidate alice_candidate(*alice_elect, MakeCampaign("pp/e", "alice"));
  ASSERT_GE(alice_candidate.WaitElected(), 0);
  EXPECT_THAT(
      RefusedCampaign(*alice_elect, "pp/e", "alice-2"),
      AllOf(HasSubstr("max_candidates_per_client (1)"), HasSubstr("'alice'")));
  TestCandidate bob_candidate(*bob_elect, MakeCampaign("pp/e", "bob"));
  ASSERT_TRUE(Campaigning(bob_candidate));
  EXPECT_THAT(RefusedCampaign(*bob_elect, "pp/e", "bob-2"), HasSubstr("'bob'"));
  EXPECT_FALSE(alice_candidate.ended());
}

}  // namespace
}  // namespace warren::testing
