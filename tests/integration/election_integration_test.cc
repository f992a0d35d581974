// ElectionService end to end: the real warrend and the real ZooKeeper,
// through the generated stubs.
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;

struct ElectionFlags {
  static std::vector<std::string> Args() { return {"--zk_session_timeout=6s"}; }
};

class ElectionTest : public SharedWarrendTest<ElectionFlags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    stub_ = v1::ElectionService::NewStub(warrend_->channel());
  }
  grpc::Status GetLeader(const std::string& election, v1::Leader* leader) {
    v1::GetLeaderRequest request;
    request.set_election(election);
    v1::GetLeaderResponse response;
    grpc::Status s = stub_->GetLeader(CallContext().get(), request, &response);
    if (leader != nullptr) *leader = response.leader();
    return s;
  }
  std::unique_ptr<v1::ElectionService::Stub> stub_;
};

TEST_F(ElectionTest, TenCandidatesOneLeaderAtATimeTokensIncrease) {
  const std::string election = "ten/leader";
  TestObserver observer(*stub_, election);
  std::vector<std::unique_ptr<TestCandidate>> candidates;
  for (int i = 0; i < 10; ++i) {
    candidates.push_back(std::make_unique<TestCandidate>(
        *stub_, MakeCampaign(election, absl::StrCat("c", i))));
  }
  // Each candidate believes it leads from its `elected` until it sends
  // resign or cancels (the client's own decision) or hears `lost`.
  struct Term {
    int candidate;
    absl::Time from, to;
    uint64_t token;
  };
  std::vector<Term> terms;
  std::set<int> gone;
  for (int round = 0; round < 10; ++round) {
    int leader = -1;
    for (int waited = 0; leader < 0 && waited < 600; ++waited) {
      for (int i = 0; i < 10; ++i) {
        if (gone.count(i)) continue;
        if (candidates[i]->WaitElected(0, absl::Milliseconds(10)) >= 0) {
          ASSERT_EQ(leader, -1) << "two candidates elected at once";
          leader = i;
        }
      }
    }
    ASSERT_GE(leader, 0) << "no leader in round " << round;
    const int at = candidates[leader]->WaitElected();
    const auto events = candidates[leader]->events();
    Term term{leader, events[at].time, absl::Now(),
              events[at].response.elected().leader().fencing_token()};
    // Nobody else elected while this one leads.
    for (int i = 0; i < 10; ++i) {
      if (i != leader && !gone.count(i)) {
        EXPECT_LT(candidates[i]->WaitElected(0, absl::ZeroDuration()), 0);
      }
    }
    // The observer reports this leader before it steps down (a leader that
    // comes and goes between two reads of the shared watch could be missed:
    // watches report the latest state, not every intermediate one).
    ASSERT_TRUE(observer.WaitUntil([&](const auto& seen) {
      return !seen.empty() && seen.back().has_leader() &&
             seen.back().leader().fencing_token() == term.token;
    }));
    // It stops believing it leads when it decides to step down, before
    // the request leaves.
    term.to = absl::Now();
    if (round % 2 == 0) {
      candidates[leader]->Resign();
    } else {
      candidates[leader]->Cancel();
    }
    terms.push_back(term);
    gone.insert(leader);
  }
  std::vector<int64_t> failover_ms;
  for (size_t i = 1; i < terms.size(); ++i) {
    EXPECT_GT(terms[i].token, terms[i - 1].token) << "tokens must grow";
    EXPECT_GE(terms[i].from, terms[i - 1].to) << "terms overlap";
    failover_ms.push_back(
        absl::ToInt64Milliseconds(terms[i].from - terms[i - 1].to));
  }
  std::sort(failover_ms.begin(), failover_ms.end());
  RecordProperty("failover_after_resign_or_cancel_median_ms",
                 static_cast<int>(failover_ms[failover_ms.size() / 2]));
  // The observer saw each leader in turn, tokens growing, ending with none.
  ASSERT_TRUE(observer.WaitUntil([](const auto& seen) {
    return !seen.empty() && !seen.back().has_leader();
  }));
  uint64_t last = 0;
  std::set<uint64_t> observed;
  for (const auto& r : observer.seen()) {
    if (!r.has_leader()) continue;
    EXPECT_GE(r.leader().fencing_token(), last);
    last = r.leader().fencing_token();
    observed.insert(last);
  }
  for (const auto& t : terms) EXPECT_TRUE(observed.count(t.token));
  v1::Leader none;
  EXPECT_EQ(GetLeader(election, &none).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ElectionTest, ProclaimAndGetLeaderAndFollowing) {
  const std::string election = "proclaim/test";
  TestCandidate leader(*stub_, MakeCampaign(election, "lead", "v1"));
  ASSERT_GE(leader.WaitElected(), 0);
  TestCandidate follower(*stub_, MakeCampaign(election, "follow"));
  const int following = follower.WaitFor(
      [](const v1::ElectResponse& r) { return r.has_following(); });
  ASSERT_GE(following, 0);
  EXPECT_EQ(
      follower.events()[following].response.following().leader().candidate_id(),
      "lead");

  v1::Leader got;
  ASSERT_TRUE(GetLeader(election, &got).ok());
  EXPECT_EQ(got.candidate_id(), "lead");
  EXPECT_EQ(got.value(), "v1");
  EXPECT_EQ(got.election(), election);
  EXPECT_GT(got.fencing_token(), 0u);
  EXPECT_GT(got.elected_time().seconds(), 1700000000);

  TestObserver observer(*stub_, election);
  ASSERT_TRUE(
      observer.WaitUntil([](const auto& seen) { return !seen.empty(); }));
  EXPECT_EQ(observer.seen()[0].leader().value(), "v1");
  ASSERT_TRUE(leader.Proclaim("v2"));
  ASSERT_TRUE(observer.WaitUntil(
      [](const auto& seen) { return seen.back().leader().value() == "v2"; }));
  ASSERT_TRUE(WaitFor(
      [&] { return GetLeader(election, &got).ok() && got.value() == "v2"; },
      absl::Seconds(10)));
  // The follower hears the new value too.
  ASSERT_GE(follower.WaitFor([](const v1::ElectResponse& r) {
    return r.has_following() && r.following().leader().value() == "v2";
  }),
            0);
  // A follower's proclaim is dropped: it changes nothing and its stream
  // stays a candidacy (a proclaim may race a loss it has not heard of yet).
  const size_t seen = follower.events().size();
  ASSERT_TRUE(follower.Proclaim("mine"));
  ASSERT_TRUE(leader.Resign());
  const int elected = follower.WaitElected(seen);
  ASSERT_GE(elected, 0);
  EXPECT_EQ(follower.events()[elected].response.elected().leader().value(),
            "follow:8080");
  ASSERT_TRUE(GetLeader(election, &got).ok());
  EXPECT_EQ(got.candidate_id(), "follow");
  EXPECT_EQ(got.value(), "follow:8080");
  ASSERT_TRUE(follower.Resign());
  grpc::Status s;
  ASSERT_TRUE(follower.WaitEnded(&s));
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(ElectionTest, TheLeaderAloneGetsLeaseHeartbeats) {
  const std::string election = "lease/test";
  v1::Campaign fast = MakeCampaign(election, "l");
  fast.mutable_heartbeat_interval()->set_nanos(200 * 1000 * 1000);
  TestCandidate leader(*stub_, fast);
  ASSERT_GE(leader.WaitElected(), 0);
  v1::Campaign slow = fast;
  slow.set_candidate_id("f");
  TestCandidate follower(*stub_, slow);
  ASSERT_GE(follower.WaitFor(
                [](const v1::ElectResponse& r) { return r.has_following(); }),
            0);
  int beats = 0;
  for (int from = 0; beats < 3; ++beats) {
    const int at = leader.WaitFor(
        [](const v1::ElectResponse& r) { return r.has_heartbeat(); }, from);
    ASSERT_GE(at, 0);
    from = at + 1;
  }
  for (const auto& e : follower.events()) {
    EXPECT_FALSE(e.response.has_heartbeat()) << "a follower holds no lease";
  }
  // Sub-second intervals need sub-second server times to be read against.
  bool fractional = false;
  for (const auto& e : leader.events()) {
    fractional |= e.response.heartbeat().server_time().nanos() != 0;
  }
  EXPECT_TRUE(fractional) << "heartbeat server_time has whole seconds only";
}

TEST_F(ElectionTest, ElectedTellsTheLeaseIntervalInForce) {
  v1::Campaign asked = MakeCampaign("lease/interval", "short");
  asked.mutable_heartbeat_interval()->set_nanos(250 * 1000 * 1000);
  {
    TestCandidate candidate(*stub_, asked);
    const int at = candidate.WaitElected();
    ASSERT_GE(at, 0);
    const auto interval =
        candidate.events()[at].response.elected().heartbeat_interval();
    EXPECT_EQ(interval.seconds(), 0);
    EXPECT_EQ(interval.nanos(), 250 * 1000 * 1000);
  }
  // An interval longer than the session allows is capped, and the client is
  // told the shorter one its lease must use.
  asked.set_candidate_id("long");
  asked.mutable_heartbeat_interval()->set_seconds(3600);
  asked.mutable_heartbeat_interval()->set_nanos(0);
  TestCandidate candidate(*stub_, asked);
  const int at = candidate.WaitElected();
  ASSERT_GE(at, 0);
  const auto interval =
      candidate.events()[at].response.elected().heartbeat_interval();
  EXPECT_GT(interval.seconds() * 1000000000LL + interval.nanos(), 0);
  EXPECT_LT(interval.seconds(), 3600);
}

// Every election transition is one log line at info: elected (with the
// token) and resigned.
TEST_F(ElectionTest, TransitionsAreLogged) {
  TestCandidate candidate(*stub_, MakeCampaign("logged/transitions", "lg-1"));
  ASSERT_GE(candidate.WaitElected(), 0);
  ASSERT_TRUE(candidate.Resign());
  grpc::Status s;
  ASSERT_TRUE(candidate.WaitEnded(&s));
  EXPECT_TRUE(WaitFor(
      [&] {
        const std::string log = warrend_->Log();
        return log.find("election logged/transitions: lg-1 elected (token") !=
                   std::string::npos &&
               log.find("election logged/transitions: lg-1 resigned") !=
                   std::string::npos;
      },
      absl::Seconds(10)))
      << warrend_->Log();
}

// A client may send its next request before the server has set the
// candidacy up: resign or proclaim right behind the campaign must be served
// (or refused), never crash the server.
TEST_F(ElectionTest, RequestsRightBehindTheCampaignAreServed) {
  for (int i = 0; i < 30; ++i) {
    const std::string election = absl::StrCat("quick/resign", i);
    TestCandidate candidate(*stub_, MakeCampaign(election, "r"));
    ASSERT_TRUE(candidate.Resign());
    grpc::Status s;
    ASSERT_TRUE(candidate.WaitEnded(&s)) << "iteration " << i;
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(GetLeader(election, nullptr).error_code(),
              grpc::StatusCode::NOT_FOUND)
        << "a resigned candidate left its node behind";
  }
  for (int i = 0; i < 30; ++i) {
    TestCandidate candidate(
        *stub_, MakeCampaign(absl::StrCat("quick/proclaim", i), "p"));
    ASSERT_TRUE(candidate.Proclaim("early"));
    // Refused while not yet leading, or accepted once elected: either way
    // the candidate is still served.
    const int at = candidate.WaitFor(
        [](const v1::ElectResponse& r) { return r.has_elected(); });
    grpc::Status s;
    if (at < 0) {
      ASSERT_TRUE(candidate.WaitEnded(&s));
      EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
          << s.error_message();
    }
  }
}

TEST_F(ElectionTest, BadInputIsRefusedAndEmptyElectionsHaveNoLeader) {
  for (const auto& [campaign, field] :
       std::vector<std::pair<v1::Campaign, std::string>>{
           {MakeCampaign("", "x"), "campaign.election"},
           {MakeCampaign("../up", "x"), "campaign.election"},
           {MakeCampaign("ok", "a/b"), "campaign.candidate_id"},
           {MakeCampaign("ok", "sp ace"), "campaign.candidate_id"},
           {MakeCampaign("ok", "x", std::string(70000, 'v')),
            "campaign.value"}}) {
    TestCandidate c(*stub_, campaign);
    grpc::Status s;
    ASSERT_TRUE(c.WaitEnded(&s));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field;
    EXPECT_THAT(s.error_message(), HasSubstr(field));
  }
  {
    grpc::ClientContext context;
    auto stream = stub_->Elect(&context);
    v1::ElectRequest resign;
    resign.mutable_resign();
    stream->Write(resign);
    v1::ElectResponse r;
    EXPECT_FALSE(stream->Read(&r));
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("before campaign"));
  }
  v1::Leader none;
  grpc::Status s = GetLeader("never/campaigned", &none);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("never/campaigned"));
  EXPECT_EQ(GetLeader("bad//name", &none).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  TestObserver observer(*stub_, "never/campaigned");
  ASSERT_TRUE(
      observer.WaitUntil([](const auto& seen) { return !seen.empty(); }));
  EXPECT_FALSE(observer.seen()[0].has_leader());
}

// Asks ZooKeeper which paths this server's session watches (`wchc`).
std::set<std::string> WatchedPaths(const std::string& zk_connect) {
  const std::string port = zk_connect.substr(zk_connect.rfind(':') + 1);
  const std::string command =
      absl::StrCat("timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/", port,
                   " && printf wchc >&3 && cat <&3'");
  std::set<std::string> paths;
  FILE* pipe = popen(command.c_str(), "r");
  char line[4096];
  while (pipe != nullptr && fgets(line, sizeof(line), pipe) != nullptr) {
    std::string text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
      text.pop_back();
    }
    const size_t start = text.find_first_not_of(" \t");
    if (start != std::string::npos && text[start] == '/') {
      paths.insert(text.substr(start));
    }
  }
  if (pipe != nullptr) pclose(pipe);
  return paths;
}

TEST_F(ElectionTest, ThousandCandidatesEachWatchedByOneSuccessor) {
  constexpr int kCandidates = 1000;
  const std::string election = absl::StrCat("crowd-", getpid());
  // Two connections: each carries at most max_concurrent_streams calls.
  std::vector<std::unique_ptr<v1::ElectionService::Stub>> stubs;
  for (int i = 0; i < 2; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(v1::ElectionService::NewStub(grpc::CreateCustomChannel(
        warrend_->address(), grpc::InsecureChannelCredentials(), args)));
  }
  std::vector<std::unique_ptr<TestCandidate>> candidates;
  for (int i = 0; i < kCandidates; ++i) {
    candidates.push_back(std::make_unique<TestCandidate>(
        *stubs[i % 2], MakeCampaign(election, absl::StrCat("n", i))));
  }
  int leader = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        int settled = 0;
        leader = -1;
        for (int i = 0; i < kCandidates; ++i) {
          for (const auto& e : candidates[i]->events()) {
            if (e.response.has_elected()) leader = i;
            if (e.response.has_elected() || e.response.has_following()) {
              ++settled;
              break;
            }
          }
        }
        return settled == kCandidates;
      },
      absl::Seconds(120)));
  ASSERT_GE(leader, 0);
  // ZooKeeper's view (`wchc` lists data watches by session): every
  // candidate node but the newest is watched — by its successor; the leader
  // node's watch is shared with the process's one leader watch. One session
  // holds at most one watch per path, so the unit test of the recipe counts
  // the registrations themselves (exactly one per node).
  const std::string prefix =
      absl::StrCat(warrend_->root(), "/elections/", election, "/");
  size_t watched_nodes = 0;
  for (const auto& path : WatchedPaths(TestEnv("WARREN_TEST_ZK"))) {
    if (absl::StartsWith(path, prefix)) ++watched_nodes;
  }
  EXPECT_EQ(watched_nodes, static_cast<size_t>(kCandidates - 1));

  std::vector<size_t> before(kCandidates);
  for (int i = 0; i < kCandidates; ++i) {
    before[i] = candidates[i]->events().size();
  }
  candidates[leader]->Resign();
  int next = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < kCandidates; ++i) {
          if (i != leader && candidates[i]->WaitElected(
                                 before[i], absl::ZeroDuration()) >= 0) {
            next = i;
            return true;
          }
        }
        return false;
      },
      absl::Seconds(60)));
  // Give a stray second election every chance to show up, then count.
  ASSERT_TRUE(
      WaitFor([&] { return candidates[next]->events().size() > before[next]; },
              absl::Seconds(10)));
  int elected = 0;
  for (int i = 0; i < kCandidates; ++i) {
    if (i == leader) continue;
    const auto events = candidates[i]->events();
    for (size_t k = before[i]; k < events.size(); ++k) {
      elected += events[k].response.has_elected();
    }
  }
  EXPECT_EQ(elected, 1);
}

}  // namespace
}  // namespace warren::testing
