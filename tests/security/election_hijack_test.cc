// Security issue 15, item 2: election hijack through a nested name.
//
// Alice may campaign on `team/*`, bob on `team`. The node of an election
// `team/<segment>` is a child of `team`'s node, beside its candidates, and
// the recipe once took any `c_` child for a candidate: alice's
// `team/c_a----------` made a phantom leader of `team` with a higher fencing
// token. Now such names are refused (INVALID_ARGUMENT naming the field),
// and whatever alice may do on `team/*`, GetLeader, ObserveLeader and bob's
// Elect stream agree that bob leads `team`, with bob's token. Both orders:
// bob campaigns first, or alice acts first.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "tests/security/security_support.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing::security {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;

const Principal kAlice{"alice", "alice-token-3b7d1f0e9c8a6b4d2e1f"};
const Principal kBob{"bob", "bob-token-8e2c4a6b0d1f3e5a7c9b"};

constexpr char kPolicy[] = R"yaml(principals:
  alice:
    campaign: ["team/*", "crew/*"]
    observe: ["**"]
  bob:
    campaign: ["team", "crew"]
    observe: ["**"]
)yaml";

// Names alice could choose under `team/*` whose node would take the
// candidates' form in `team`: the issue's, and one of the exact form that
// the recipe itself makes.
std::vector<std::string> AttackSegments() {
  return {"c_a----------", "c_0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d-0000000000"};
}

struct HijackFlags {
  static std::vector<std::string> Args() {
    static AuthFiles* files = new AuthFiles({kAlice, kBob}, kPolicy);
    std::vector<std::string> args = files->Flags();
    args.push_back("--zk_session_timeout=6s");
    return args;
  }
};

class ElectionHijackTest : public SharedWarrendTest<HijackFlags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    alice_ = v1::ElectionService::NewStub(
        ChannelAs(warrend_->address(), kAlice.token));
    bob_ = v1::ElectionService::NewStub(
        ChannelAs(warrend_->address(), kBob.token));
  }

  // Alice tries every attack name under `parent`: each is refused, naming
  // the field, before anything is made in ZooKeeper.
  void AliceAttacks(const std::string& parent) {
    for (const std::string& segment : AttackSegments()) {
      TestCandidate alice(
          *alice_, MakeCampaign(absl::StrCat(parent, "/", segment), "alice"));
      grpc::Status status;
      ASSERT_TRUE(alice.WaitEnded(&status, absl::Seconds(30))) << segment;
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << segment << ": " << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("campaign.election"));
      EXPECT_THAT(status.error_message(), HasSubstr("c_"));
    }
  }

  v1::Leader GetLeader(const std::string& election) {
    v1::GetLeaderRequest request;
    request.set_election(election);
    v1::GetLeaderResponse response;
    grpc::Status status =
        bob_->GetLeader(CallContext().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.leader();
  }

  // The first leader an ObserveLeader stream of alice's shows.
  v1::Leader Observed(const std::string& election) {
    v1::ObserveLeaderRequest request;
    request.set_election(election);
    auto context = CallContext();
    auto reader = alice_->ObserveLeader(context.get(), request);
    v1::ObserveLeaderResponse response;
    while (reader->Read(&response)) {
      if (response.has_leader()) break;
    }
    context->TryCancel();
    (void)reader->Finish();
    return response.leader();
  }

  // What every reader must agree on: bob leads, with the token of his
  // Elect stream, and the stream never said otherwise.
  void ExpectBobLeads(const std::string& election, TestCandidate& bob,
                      uint64_t token) {
    const v1::Leader read = GetLeader(election);
    EXPECT_EQ(read.candidate_id(), "bob");
    EXPECT_EQ(read.fencing_token(), token);
    const v1::Leader observed = Observed(election);
    EXPECT_EQ(observed.candidate_id(), "bob");
    EXPECT_EQ(observed.fencing_token(), token);
    for (const ElectEvent& event : bob.events()) {
      EXPECT_FALSE(event.response.has_lost()) << event.response.DebugString();
      EXPECT_FALSE(event.response.has_following())
          << event.response.DebugString();
    }
    EXPECT_FALSE(bob.ended());
  }

  std::unique_ptr<v1::ElectionService::Stub> alice_, bob_;
};

TEST_F(ElectionHijackTest, BobLeadsFirstAndAliceCannotDisplaceHim) {
  TestCandidate bob(*bob_, MakeCampaign("team", "bob"));
  const int elected = bob.WaitElected(0, absl::Seconds(30));
  ASSERT_GE(elected, 0);
  const uint64_t token =
      bob.events()[elected].response.elected().leader().fencing_token();
  ASSERT_NE(token, 0u);

  AliceAttacks("team");
  // What alice may do: lead an election nested under bob's. Its node is a
  // child of `team` too, and a later one (its zxid is higher).
  TestCandidate nested(*alice_, MakeCampaign("team/x", "alice"));
  ASSERT_GE(nested.WaitElected(0, absl::Seconds(30)), 0);

  ExpectBobLeads("team", bob, token);
  EXPECT_EQ(GetLeader("team/x").candidate_id(), "alice");
}

TEST_F(ElectionHijackTest, AliceFirstAndBobIsElectedAtOnce) {
  AliceAttacks("crew");
  TestCandidate nested(*alice_, MakeCampaign("crew/x", "alice"));
  ASSERT_GE(nested.WaitElected(0, absl::Seconds(30)), 0);

  // Before the fix bob followed a phantom with no candidate id and was
  // elected only once alice left (39.6 s); now at once, though alice stays.
  const absl::Time asked = absl::Now();
  TestCandidate bob(*bob_, MakeCampaign("crew", "bob"));
  const int elected = bob.WaitElected(0, absl::Seconds(30));
  ASSERT_GE(elected, 0);
  EXPECT_LT(bob.events()[elected].time - asked, absl::Seconds(5));
  const uint64_t token =
      bob.events()[elected].response.elected().leader().fencing_token();
  ExpectBobLeads("crew", bob, token);
  EXPECT_FALSE(nested.ended());
}

// The reading side applies the same name rule: nobody can lead such a name,
// so asking for it is a mistake, said as one.
TEST_F(ElectionHijackTest, ReadsOfACandidateShapedNameAreInvalid) {
  v1::GetLeaderRequest request;
  request.set_election("team/c_a----------");
  v1::GetLeaderResponse response;
  grpc::Status status =
      bob_->GetLeader(CallContext().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("election"));

  v1::ObserveLeaderRequest observe;
  observe.set_election("team/c_a----------");
  auto context = CallContext();
  auto reader = bob_->ObserveLeader(context.get(), observe);
  v1::ObserveLeaderResponse ignored;
  EXPECT_FALSE(reader->Read(&ignored));
  status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("election"));
}

}  // namespace
}  // namespace warren::testing::security
