// Unit tests of the election recipe against an in-memory ZooKeeper
// (FakeZk): order, fencing tokens, predecessor-only watches, connection
// loss, session expiry, a create whose answer was lost; and the Elect
// stream's lease. The RPCs are tested end to end against a real ZooKeeper
// in tests/integration.
#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/election/candidate_node.h"
#include "server/election/election_manager.h"
#include "server/election/election_service.h"
#include "server/election/request_gate.h"
#include "tests/fakes/fake_zk.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::election {
namespace {

using ::testing::ElementsAre;

class RecordingObserver : public CandidacyObserver {
 public:
  void OnElected(uint64_t token, absl::Time) override {
    events.push_back("elected");
    tokens.push_back(token);
  }
  void OnFollowing(uint64_t, uint32_t) override {
    events.push_back("following");
  }
  void OnLost(LossReason reason) override {
    events.push_back(reason == LossReason::kResigned ? "lost:resigned"
                     : reason == LossReason::kConnectionSuspended
                         ? "lost:suspended"
                         : "lost:expired");
  }
  void OnEnded(absl::Status status) override {
    events.push_back(
        absl::StrCat("ended:", absl::StatusCodeToString(status.code())));
  }
  std::vector<std::string> events;
  std::vector<uint64_t> tokens;
};

class ElectionTest : public ::testing::Test {
 protected:
  ElectionTest() : manager_(zk_, "/w") {
    zk_.ExternalPut("/w", "");
    zk_.ExternalPut("/w/elections", "");
    zk_.RunUntilIdle();
  }
  std::pair<std::shared_ptr<Candidacy>, std::shared_ptr<RecordingObserver>>
  Campaign(const std::string& id, bool rejoin = false) {
    auto observer = std::make_shared<RecordingObserver>();
    CandidacyParams params;
    params.name = "jobs/dispatcher";
    params.candidate_id = id;
    params.value = id + "-address";
    params.rejoin_after_expiry = rejoin;
    auto candidacy = manager_.Campaign(params, observer);
    zk_.RunUntilIdle();
    return {candidacy, observer};
  }
  std::vector<std::string> Nodes() {
    return zk_.Children("/w/elections/jobs/dispatcher");
  }
  testing::FakeZk zk_;
  ElectionManager manager_;
};

TEST_F(ElectionTest, LowestLeadsOthersFollowAndTokensGrow) {
  auto [a, ao] = Campaign("a");
  auto [b, bo] = Campaign("b");
  auto [c, co] = Campaign("c");
  EXPECT_THAT(ao->events, ElementsAre("elected"));
  EXPECT_THAT(bo->events, ElementsAre("following"));
  EXPECT_THAT(co->events, ElementsAre("following"));
  EXPECT_TRUE(a->holds());
  EXPECT_FALSE(b->holds());
  EXPECT_EQ(ao->tokens[0], a->token());

  a->Resign();
  zk_.RunUntilIdle();
  EXPECT_THAT(ao->events, ElementsAre("elected", "lost:resigned", "ended:OK"));
  EXPECT_THAT(bo->events, ElementsAre("following", "elected"));
  EXPECT_THAT(co->events, ElementsAre("following"));  // no herd
  EXPECT_GT(bo->tokens[0], ao->tokens[0]);
  EXPECT_EQ(Nodes().size(), 2u);

  b->Stop();  // a stream that ends: the node goes at once
  zk_.RunUntilIdle();
  EXPECT_THAT(co->events, ElementsAre("following", "elected"));
  EXPECT_GT(co->tokens[0], bo->tokens[0]);
  EXPECT_EQ(Nodes().size(), 1u);
}

TEST_F(ElectionTest, ThousandCandidatesWatchOnlyTheirPredecessor) {
  std::vector<std::shared_ptr<Candidacy>> candidacies;
  std::vector<std::shared_ptr<RecordingObserver>> observers;
  for (int i = 0; i < 1000; ++i) {
    auto [c, o] = Campaign(absl::StrCat("c", i));
    candidacies.push_back(c);
    observers.push_back(o);
  }
  std::vector<std::string> nodes = SortCandidates(Nodes());
  ASSERT_EQ(nodes.size(), 1000u);
  // Each node but the last is watched once: by its successor.
  for (size_t i = 0; i < nodes.size(); ++i) {
    const size_t watches =
        zk_.data_watch_count("/w/elections/jobs/dispatcher/" + nodes[i]);
    EXPECT_EQ(watches, i + 1 < nodes.size() ? 1u : 0u) << i;
  }
  candidacies[0]->Resign();
  zk_.RunUntilIdle();
  int elected = 0;
  for (size_t i = 1; i < observers.size(); ++i) {
    for (const auto& e : observers[i]->events) elected += e == "elected";
  }
  EXPECT_EQ(elected, 1);
  EXPECT_TRUE(candidacies[1]->holds());
}

TEST_F(ElectionTest, SuspensionTakesLeadershipAwayUntilTheSessionIsBack) {
  auto [a, ao] = Campaign("a");
  auto [b, bo] = Campaign("b");
  const uint64_t token = a->token();
  zk_.Disconnect();
  zk_.RunUntilIdle();
  EXPECT_FALSE(a->holds());
  EXPECT_THAT(ao->events, ElementsAre("elected", "lost:suspended"));
  zk_.Reconnect();
  zk_.RunUntilIdle();
  EXPECT_THAT(ao->events, ElementsAre("elected", "lost:suspended", "elected"));
  EXPECT_EQ(ao->tokens[1], token);  // same node, same token
  EXPECT_THAT(bo->events, ElementsAre("following"));
}

// Found by tests/fuzz/elect_fuzzer: a leader's stream that ended while the
// session was suspended could not delete its node, and when the same
// session came back the node stayed, leading for as long as it lived.
TEST_F(ElectionTest, ANodeThatCouldNotGoWhileSuspendedGoesOnReconnection) {
  auto [a, ao] = Campaign("a");
  auto [b, bo] = Campaign("b");
  zk_.Disconnect();
  zk_.RunUntilIdle();
  a->Stop();
  std::weak_ptr<Candidacy> weak_a = a;
  a.reset();  // the stream is gone
  zk_.RunUntilIdle();
  EXPECT_EQ(Nodes().size(), 2u);  // nothing can be deleted meanwhile
  zk_.Reconnect();
  zk_.RunUntilIdle();
  EXPECT_EQ(Nodes().size(), 1u);
  EXPECT_TRUE(b->holds());
  EXPECT_THAT(bo->events, ElementsAre("following", "elected"));
  EXPECT_TRUE(weak_a.expired());  // and then it lets go
}

// Found by tests/fuzz/elect_fuzzer: a create that went out in the new
// session before the candidacy heard of the expiry was given up on with its
// attempt, and its node stayed, owned by nobody.
TEST_F(ElectionTest, ACreateRacingTheExpiryLeavesNoStrayNode) {
  auto observer = std::make_shared<RecordingObserver>();
  CandidacyParams params;
  params.name = "jobs/dispatcher";
  params.candidate_id = "a";
  params.rejoin_after_expiry = true;
  auto a = manager_.Campaign(params, observer);
  // The first create finds no election node: the parents go out, and their
  // answers (then the create) come after the session has expired.
  ASSERT_TRUE(zk_.RunOne());
  zk_.Expire();
  zk_.RunUntilIdle();
  EXPECT_EQ(Nodes().size(), 1u);
  EXPECT_TRUE(a->holds());
  a->Stop();
  zk_.RunUntilIdle();
  EXPECT_TRUE(Nodes().empty());
}

// Found by tests/fuzz/elect_fuzzer: a candidacy stopped while its election's
// nodes were being created without a connection was brought back by that
// failure (in doubt), campaigned on reconnection and led with no stream.
TEST_F(ElectionTest, AStoppedCandidacyStaysStoppedWhenItsParentsFail) {
  auto observer = std::make_shared<RecordingObserver>();
  CandidacyParams params;
  params.name = "jobs/dispatcher";
  params.candidate_id = "a";
  auto a = manager_.Campaign(params, observer);
  zk_.Disconnect();
  ASSERT_TRUE(zk_.RunOne());  // no election node: the parents go out, and fail
  a->Stop();
  a.reset();
  zk_.RunUntilIdle();
  zk_.Reconnect();
  zk_.RunUntilIdle();
  EXPECT_TRUE(Nodes().empty());
  EXPECT_EQ(manager_.leaders(), 0u);
}

TEST_F(ElectionTest, ExpiryEndsTheCandidacyOrStartsAFreshOne) {
  auto [a, ao] = Campaign("a");
  auto [b, bo] = Campaign("b", /*rejoin=*/true);
  const uint64_t old_token = a->token();
  zk_.Disconnect();
  zk_.RunUntilIdle();
  zk_.Expire();
  zk_.RunUntilIdle();
  EXPECT_THAT(ao->events, ElementsAre("elected", "lost:suspended",
                                      "lost:expired", "ended:ABORTED"));
  // b campaigned again on the new session and now leads, with a new token.
  EXPECT_THAT(bo->events, ElementsAre("following", "lost:expired", "elected"));
  EXPECT_GT(b->token(), old_token);
  EXPECT_EQ(Nodes().size(), 1u);
}

TEST_F(ElectionTest, ALostCreateAnswerIsFoundAgainNotDuplicated) {
  zk_.ExternalPut("/w/elections/jobs", "");
  zk_.ExternalPut("/w/elections/jobs/dispatcher", "");
  zk_.RunUntilIdle();
  zk_.LoseNextCreateResponse();
  auto [a, ao] = Campaign("a");
  EXPECT_TRUE(ao->events.empty());
  EXPECT_EQ(Nodes().size(), 1u);  // it did happen
  zk_.Reconnect();
  zk_.RunUntilIdle();
  EXPECT_EQ(Nodes().size(), 1u);  // adopted, not made twice
  EXPECT_THAT(ao->events, ElementsAre("elected"));
  EXPECT_NE(a->token(), 0u);
}

TEST_F(ElectionTest, OnlyTheLeaderProclaims) {
  auto [a, ao] = Campaign("a");
  auto [b, bo] = Campaign("b");
  absl::Status follower_status, leader_status;
  b->Proclaim("b2", [&](absl::Status s) { follower_status = s; });
  a->Proclaim("a2", [&](absl::Status s) { leader_status = s; });
  zk_.RunUntilIdle();
  EXPECT_EQ(follower_status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(leader_status.ok());
  auto nodes = SortCandidates(Nodes());
  zk::NodeData data;
  zk_.Get("/w/elections/jobs/dispatcher/" + nodes[0], nullptr,
          [&](absl::StatusOr<zk::NodeData> r) { data = *r; });
  zk_.RunUntilIdle();
  warren::v1::Leader leader = DecodeLeader(data.value, data.stat);
  EXPECT_EQ(leader.value(), "a2");
  EXPECT_EQ(leader.candidate_id(), "a");
  EXPECT_EQ(leader.fencing_token(), a->token());
  EXPECT_GT(leader.elected_time().seconds(), 0);
}

TEST_F(ElectionTest, ObserversShareOneWatchAndSeeEveryChange) {
  auto watch = manager_.Watch("jobs/dispatcher");
  EXPECT_EQ(watch, manager_.Watch("jobs/dispatcher"));
  std::vector<std::string> seen;
  auto id = watch->Subscribe([&](const std::optional<warren::v1::Leader>& l) {
    seen.push_back(l ? l->candidate_id() : "none");
  });
  zk_.RunUntilIdle();
  auto [a, ao] = Campaign("a");
  auto [b, bo] = Campaign("b");
  a->Resign();
  zk_.RunUntilIdle();
  b->Stop();
  zk_.RunUntilIdle();
  // "a" appears again when it records its election time (a data change).
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), "none");
  EXPECT_EQ(seen.back(), "none");
  EXPECT_NE(std::find(seen.begin(), seen.end(), "a"), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), "b"), seen.end());
  watch->Unsubscribe(id);
}

constexpr char kGuid[] = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";

// Only the exact form counts: the strings old releases took (any "c_" child,
// sorted by its last ten characters) are refused.
TEST(CandidateNodeTest, OnlyTheExactFormParses) {
  const std::string exact = absl::StrCat("c_", kGuid, "-0000000042");
  auto parsed = ParseCandidateNode(exact);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->guid, kGuid);
  EXPECT_EQ(parsed->sequence, 42);
  EXPECT_EQ(CandidateNodePrefix(kGuid) + "0000000042", exact);
  for (const std::string& name : {
           std::string("c_a----------"),  // the issue's attack
           std::string("c_a-0000000001"),
           absl::StrCat("c_", kGuid, "-000000004"),    // 9 digits
           absl::StrCat("c_", kGuid, "-00000000420"),  // 11 digits
           absl::StrCat("c_", kGuid, "--000000042"),   // a sign
           absl::StrCat("c_", kGuid, "-+000000042"),
           absl::StrCat("c_", kGuid, "-00000 0042"),
           absl::StrCat("c_", "0A1B2C3D-4E5F-4A6B-8C7D-8E9F0A1B2C3D",
                        "-0000000042"),  // not as NewUuid writes it
           absl::StrCat("c_", "0a1b2c3d_4e5f-4a6b-8c7d-8e9f0a1b2c3d",
                        "-0000000042"),
           absl::StrCat("x_", kGuid, "-0000000042"),
       }) {
    EXPECT_FALSE(ParseCandidateNode(name).has_value()) << name;
  }
  // Sorted by the parsed sequence, others left out.
  EXPECT_THAT(
      SortCandidates({absl::StrCat("c_", kGuid, "-0000000010"), "c_a----------",
                      absl::StrCat("c_", kGuid, "-0000000002"), "team"}),
      ElementsAre(absl::StrCat("c_", kGuid, "-0000000002"),
                  absl::StrCat("c_", kGuid, "-0000000010")));
  EXPECT_FALSE(IsSessionOwned(0));  // persistent
  EXPECT_FALSE(
      IsSessionOwned(std::numeric_limits<int64_t>::min()));  // container
  EXPECT_TRUE(IsSessionOwned(0x0100000000000001));
}

// No name can put a node of the candidates' prefix under another election.
TEST(CandidateNodeTest, NamesWithACandidateSegmentAreRefusedNamingTheField) {
  EXPECT_TRUE(ValidateRecipeName("team", "election").ok());
  EXPECT_TRUE(ValidateRecipeName("team/cand/C_x/xc_", "election").ok());
  for (const char* name : {"team/c_a----------", "c_x", "a/c_/b"}) {
    absl::Status s = ValidateRecipeName(name, "campaign.election");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(s.message()),
                ::testing::HasSubstr("campaign.election"));
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("c_"));
  }
  // The older rules still hold.
  EXPECT_FALSE(ValidateRecipeName("team/../x", "election").ok());
}

// A child of the candidates' exact form that no session holds: a container
// (what an old release makes for a nested name such as
// `jobs/dispatcher/c_<guid>-<seq>`) or a persistent node. It sorts first and
// still never leads, whichever came first; a real rival's ephemeral does.
TEST_F(ElectionTest, OnlySessionHeldCandidatesLead) {
  auto [a, ao] = Campaign("a");  // creates the election's node
  a->Stop();
  zk_.RunUntilIdle();
  const std::string base = "/w/elections/jobs/dispatcher/";
  // Sequence 0 sorts before every later candidate (the fake counts from 0).
  const std::string phantom = absl::StrCat("c_", kGuid, "-0000000000");
  // As an old release would for the nested name: a container.
  CandidacyParams nested;
  nested.name = "jobs/dispatcher/" + phantom;
  nested.candidate_id = "alice";
  auto nested_observer = std::make_shared<RecordingObserver>();
  auto alice = manager_.Campaign(nested, nested_observer);
  zk_.RunUntilIdle();
  ASSERT_THAT(Nodes(), ::testing::Contains(phantom));

  auto watch = manager_.Watch("jobs/dispatcher");
  std::vector<std::string> seen;
  auto id = watch->Subscribe([&](const std::optional<warren::v1::Leader>& l) {
    seen.push_back(l ? absl::StrCat(l->candidate_id(), "@", l->fencing_token())
                     : "none");
  });
  zk_.RunUntilIdle();
  EXPECT_THAT(seen, ElementsAre("none"));

  auto [b, bo] = Campaign("b");
  EXPECT_THAT(bo->events, ElementsAre("elected"));
  ASSERT_TRUE(b->holds());
  const std::string bob = absl::StrCat("b@", b->token());
  EXPECT_EQ(seen.back(), bob);

  // Bob leads first, then a persistent phantom appears with a lower number.
  b->Stop();
  zk_.RunUntilIdle();
  auto [c, co] = Campaign("c");
  ASSERT_TRUE(c->holds());
  zk_.ExternalPut(
      base + absl::StrCat("c_", kGuid, "-0000000001"),
      EncodeCandidate("jobs/dispatcher", "phantom", "", absl::Now()));
  zk_.RunUntilIdle();
  EXPECT_TRUE(c->holds());
  EXPECT_EQ(seen.back(), absl::StrCat("c@", c->token()));
  for (const auto& s : seen)
    EXPECT_THAT(s, ::testing::Not(::testing::StartsWith("phantom")));
  EXPECT_THAT(co->events, ElementsAre("elected"));

  // A rival's ephemeral node with a lower sequence is a candidate like any.
  auto [d, dobs] = Campaign("d");
  zk_.ExternalPutEphemeral(
      base + absl::StrCat("c_", kGuid, "-0000000002"),
      EncodeCandidate("jobs/dispatcher", "rival", "", absl::Now()));
  zk_.RunUntilIdle();
  c->Stop();
  zk_.RunUntilIdle();
  EXPECT_FALSE(d->holds());  // the rival is before it
  EXPECT_THAT(seen.back(), ::testing::StartsWith("rival@"));
  watch->Unsubscribe(id);
  alice->Stop();
  d->Stop();
  zk_.RunUntilIdle();
}

// Many watches starting at once (ObserveLeader on fresh names) read through
// the gate: at most kMaxLeaderReadsInFlight chains are in the session's queue
// at any moment, and every one of them gets its answer in the end.
TEST_F(ElectionTest, LeaderReadsOfManyWatchesAreBounded) {
  constexpr int kWatches = 500;
  std::vector<std::shared_ptr<LeaderWatch>> watches;
  int answered = 0;
  for (int i = 0; i < kWatches; ++i) {
    watches.push_back(manager_.Watch(absl::StrCat("flood/", i)));
    watches.back()->Subscribe([&](const std::optional<warren::v1::Leader>& l) {
      answered += l.has_value() ? 1000000 : 1;
    });
  }
  EXPECT_EQ(manager_.leader_reads().in_flight(),
            ElectionManager::kMaxLeaderReadsInFlight);
  EXPECT_EQ(manager_.leader_reads().waiting(),
            kWatches - ElectionManager::kMaxLeaderReadsInFlight);
  size_t most = 0;
  while (zk_.RunOne()) {
    most = std::max(most, manager_.leader_reads().in_flight());
  }
  EXPECT_LE(most, ElectionManager::kMaxLeaderReadsInFlight);
  EXPECT_EQ(answered, kWatches);
  EXPECT_EQ(manager_.leader_reads().in_flight(), 0u);
  // Watches dropped while waiting give their turn back (no leak, no
  // recursion through thousands of dropped waiters).
  for (int i = 0; i < 5000; ++i) {
    manager_.Watch(absl::StrCat("dropped/", i));
  }
  zk_.RunUntilIdle();
  EXPECT_EQ(manager_.leader_reads().in_flight(), 0u);
  EXPECT_EQ(manager_.leader_reads().waiting(), 0u);
}

TEST(RequestGateTest, AWaiterGetsTheSlotThatIsGivenBack) {
  auto owned = std::make_shared<RequestGate>(2);
  RequestGate& gate = *owned;
  auto first = gate.AcquireOrWait([](RequestGate::Slot) { FAIL(); });
  auto second = gate.AcquireOrWait([](RequestGate::Slot) { FAIL(); });
  ASSERT_TRUE(first.has_value() && second.has_value());
  RequestGate::Slot handed;
  bool ran = false;
  EXPECT_FALSE(gate.AcquireOrWait([&](RequestGate::Slot slot) {
                     ran = true;
                     handed = std::move(slot);
                   })
                   .has_value());
  EXPECT_FALSE(ran);
  first->Release();
  EXPECT_TRUE(ran);
  EXPECT_EQ(gate.in_flight(), 2u);
  handed.Release();
  second.reset();
  EXPECT_EQ(gate.in_flight(), 0u);
}

// ZooKeeper answers what is outstanding when its client closes, after the
// manager (and its handle on the gate) may be gone: a slot keeps its gate.
TEST(RequestGateTest, ASlotOutlivesTheGatesOwner) {
  auto owned = std::make_shared<RequestGate>(1);
  std::weak_ptr<RequestGate> weak = owned;
  auto slot = owned->AcquireOrWait([](RequestGate::Slot) {});
  ASSERT_TRUE(slot.has_value());
  owned.reset();
  EXPECT_FALSE(weak.expired());
  slot.reset();  // gives the slot back to a gate nobody else holds
  EXPECT_TRUE(weak.expired());
}

// The campaign's checks at the edge (also fuzzed: tests/fuzz): the lease
// interval in force, and rejections that name the field.
TEST(ValidateCampaignTest, CapsTheLeaseAndNamesTheField) {
  ElectionServiceOptions options;
  options.session_timeout = absl::Seconds(3);
  options.max_value_bytes = 4;
  warren::v1::Campaign c;
  c.set_election("jobs/leader");
  EXPECT_EQ(*ValidateCampaign(c, options), absl::Seconds(1));  // the cap
  c.mutable_heartbeat_interval()->set_seconds(60);
  EXPECT_EQ(*ValidateCampaign(c, options), absl::Seconds(1));
  c.mutable_heartbeat_interval()->set_seconds(0);
  c.mutable_heartbeat_interval()->set_nanos(1000);
  EXPECT_EQ(*ValidateCampaign(c, options), absl::Milliseconds(100));
  auto rejected = [&](const std::string& field) {
    auto s = ValidateCampaign(c, options).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(field));
  };
  c.mutable_heartbeat_interval()->set_nanos(-1);
  rejected("campaign.heartbeat_interval");
  c.clear_heartbeat_interval();
  c.set_value("12345");
  rejected("campaign.value");
  c.set_value("");
  c.set_candidate_id("a/b");
  rejected("campaign.candidate_id");
  c.set_election("jobs/../x");
  rejected("campaign.election");
  c.set_election("team/c_a----------");  // security issue 15, item 2
  rejected("campaign.election");
}

// The Elect reactor on an in-process server over FakeZk; a pump thread runs
// the fake's queued answers, as ZooKeeper's callback thread would.
class ElectStreamTest : public ::testing::Test {
 protected:
  ElectStreamTest() : manager_(zk_, "/w"), workers_(1, 100) {
    zk_.ExternalPut("/w", "");
    zk_.ExternalPut("/w/elections", "");
    zk_.RunUntilIdle();
  }
  ~ElectStreamTest() override {
    if (server_) server_->Shutdown();
    stop_ = true;
    if (pump_.joinable()) pump_.join();
  }
  void Serve(absl::Duration session_timeout) {
    ElectionServiceOptions options;
    options.session_timeout = session_timeout;
    service_ = std::make_unique<ElectionServiceImpl>(
        manager_, workers_, timers_, streams_, options);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = warren::v1::ElectionService::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
    pump_ = std::thread([this] {
      while (!stop_) {
        zk_.RunUntilIdle();
        absl::SleepFor(absl::Milliseconds(1));
      }
    });
  }
  static warren::v1::ElectRequest CampaignRequest(absl::Duration interval) {
    warren::v1::ElectRequest request;
    request.mutable_campaign()->set_election("jobs/leader");
    *request.mutable_campaign()->mutable_heartbeat_interval() =
        google::protobuf::util::TimeUtil::NanosecondsToDuration(
            absl::ToInt64Nanoseconds(interval));
    return request;
  }

  testing::FakeZk zk_;
  ElectionManager manager_;
  WorkerPool workers_;
  TimerQueue timers_;
  StreamRegistry streams_;
  std::unique_ptr<ElectionServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<warren::v1::ElectionService::Stub> stub_;
  std::atomic<bool> stop_{false};
  std::thread pump_;
};

// Seen on a cluster: a leader's process frozen past its session timeout
// resumed, and an overdue timer sent a heartbeat before the process heard
// that its session had expired (and a successor was elected). A heartbeat
// needs an answer from the ensemble; a tick alone renews nothing.
TEST_F(ElectStreamTest, AFrozenLeaderThatResumesSendsNoHeartbeatBeforeLost) {
  Serve(absl::Seconds(30));
  const absl::Duration interval = absl::Milliseconds(100);
  grpc::ClientContext context;
  auto stream = stub_->Elect(&context);
  ASSERT_TRUE(stream->Write(CampaignRequest(interval)));
  warren::v1::ElectResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_elected()) << response.DebugString();
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_heartbeat()) << response.DebugString();

  // The session is gone on the ensemble; this process still believes it is
  // connected for five intervals (its ticks come due all the while), then
  // hears of the expiry.
  zk_.ExpireUnnoticed();
  absl::SleepFor(5 * interval);
  zk_.Expire();

  // At most one heartbeat: one whose proof was answered before the expiry.
  int heartbeats = 0;
  while (stream->Read(&response) && !response.has_lost()) {
    if (response.has_heartbeat()) ++heartbeats;
  }
  ASSERT_TRUE(response.has_lost()) << response.DebugString();
  EXPECT_EQ(response.lost().reason(), warren::v1::LOSS_REASON_SESSION_EXPIRED);
  EXPECT_LE(heartbeats, 1);
  while (stream->Read(&response)) {
    EXPECT_FALSE(response.has_heartbeat());
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::ABORTED);
}

// An ensemble whose maxSessionTimeout is below the one asked for grants
// less: the lease's cap follows what was granted, and Elected says so.
TEST_F(ElectStreamTest, TheLeaseIsCappedByTheNegotiatedSessionTimeout) {
  zk_.SetNegotiatedSessionTimeout(absl::Seconds(3));
  Serve(absl::Seconds(30));
  grpc::ClientContext context;
  auto stream = stub_->Elect(&context);
  ASSERT_TRUE(stream->Write(CampaignRequest(absl::ZeroDuration())));
  warren::v1::ElectResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_elected()) << response.DebugString();
  EXPECT_EQ(response.elected().heartbeat_interval().seconds(), 1);
  EXPECT_EQ(response.elected().heartbeat_interval().nanos(), 0);
  ASSERT_TRUE(stream->WritesDone());
  while (stream->Read(&response)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

// A proclaim that races a loss of leadership (here: sent after the
// suspension took it away, before the client heard `lost`) is dropped: the
// stream goes on, and leads again when the session comes back.
TEST_F(ElectStreamTest, AProclaimAfterALossIsDroppedNotFatal) {
  Serve(absl::Seconds(30));
  grpc::ClientContext context;
  auto stream = stub_->Elect(&context);
  ASSERT_TRUE(stream->Write(CampaignRequest(absl::Seconds(5))));
  warren::v1::ElectResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ASSERT_TRUE(response.has_elected()) << response.DebugString();
  const uint64_t token = response.elected().leader().fencing_token();

  zk_.Disconnect();
  warren::v1::ElectRequest proclaim;
  proclaim.mutable_proclaim()->set_value("too late");
  ASSERT_TRUE(stream->Write(proclaim));
  while (stream->Read(&response) && !response.has_lost()) {
  }
  ASSERT_TRUE(response.has_lost()) << response.DebugString();
  EXPECT_EQ(response.lost().reason(),
            warren::v1::LOSS_REASON_CONNECTION_SUSPENDED);
  // And one sent after the loss was heard.
  ASSERT_TRUE(stream->Write(proclaim));

  zk_.Reconnect();
  while (stream->Read(&response) && !response.has_elected()) {
  }
  ASSERT_TRUE(response.has_elected()) << response.DebugString();
  EXPECT_EQ(response.elected().leader().fencing_token(), token);
  ASSERT_TRUE(stream->WritesDone());
  while (stream->Read(&response)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace warren::election
