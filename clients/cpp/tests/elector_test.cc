// Elector against the real warrend and ZooKeeper.
#include "warren/client/elector.h"

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"
#include "warren/client/channel.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::client::testing {
namespace {

namespace v1 = ::warren::v1;
using ::warren::testing::WaitFor;

// One candidate and what it was told, as lines:
//   "elected <token>", "following <leader id or ->", "lost <reason>".
struct Candidate {
  EventLog events;
  std::unique_ptr<Elector> elector;
};

ElectorOptions Options(const std::string& election, const std::string& id,
                       EventLog* events) {
  ElectorOptions options;
  options.election = election;
  options.candidate_id = id;
  options.value = "value-of-" + id;
  options.heartbeat_interval = absl::Milliseconds(500);
  options.backoff.initial = absl::Milliseconds(50);
  options.backoff.max = absl::Milliseconds(500);
  options.on_elected = [events](const v1::Leader& self) {
    events->Add(absl::StrCat("elected ", self.fencing_token()));
  };
  options.on_following = [events](const v1::Leader* leader) {
    events->Add(
        absl::StrCat("following ", leader ? leader->candidate_id() : "-"));
  };
  options.on_lost = [events](LossReason reason, const absl::Status&) {
    events->Add(absl::StrCat("lost ", LossReasonName(reason)));
  };
  return options;
}

struct Flags {
  static std::vector<std::string> Args() { return {"--log_level=warn"}; }
};

class ElectorTest : public warren::testing::SharedWarrendTest<Flags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    channel_ = MakeChannel(warrend_->address());
  }
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ElectorTest, ExactlyOneLeaderAndFailoverOnClose) {
  const std::string election = UniqueName("cpp-election");
  std::vector<std::unique_ptr<Candidate>> candidates;
  for (int i = 0; i < 3; ++i) {
    auto c = std::make_unique<Candidate>();
    auto elector = Elector::Start(
        channel_, Options(election, absl::StrCat("c", i), &c->events));
    ASSERT_TRUE(elector.ok()) << elector.status();
    c->elector = *std::move(elector);
    candidates.push_back(std::move(c));
  }
  auto leaders = [&] {
    std::vector<int> out;
    for (int i = 0; i < 3; ++i) {
      if (candidates[i]->elector->leading()) out.push_back(i);
    }
    return out;
  };
  // Exactly one leads, and the others follow it.
  auto settled = [&] {
    auto l = leaders();
    // leading() turns true just before the elected callback runs.
    if (l.size() != 1 || candidates[l[0]]->events.Count("elected") == 0) {
      return false;
    }
    const std::string id = absl::StrCat("c", l[0]);
    for (int i = 0; i < 3; ++i) {
      if (i == l[0]) continue;
      auto leader = candidates[i]->elector->leader();
      if (!leader || leader->candidate_id() != id) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitFor(settled, absl::Seconds(30)));
  const int first = leaders()[0];
  const uint64_t first_token = candidates[first]->elector->fencing_token();
  EXPECT_GT(first_token, 0u);
  size_t elected_total = 0;
  for (auto& c : candidates) elected_total += c->events.Count("elected");
  EXPECT_EQ(elected_total, 1u);

  // Close resigns: the leader hears it, another candidate takes over with a
  // higher fencing token.
  candidates[first]->elector->Close();
  EXPECT_EQ(candidates[first]->events.Count("lost resigned"), 1u);
  EXPECT_FALSE(candidates[first]->elector->leading());
  candidates.erase(candidates.begin() + first);
  auto next = [&] {
    int n = 0;
    for (auto& c : candidates) n += c->elector->leading();
    return n == 1;
  };
  ASSERT_TRUE(WaitFor(next, absl::Seconds(30)));
  for (auto& c : candidates) {
    if (c->elector->leading()) {
      EXPECT_GT(c->elector->fencing_token(), first_token);
    }
  }
}

TEST_F(ElectorTest, ProclaimUpdatesTheLeadersValue) {
  const std::string election = UniqueName("cpp-election");
  EventLog events;
  auto elector = Elector::Start(channel_, Options(election, "p", &events));
  ASSERT_TRUE(elector.ok()) << elector.status();
  ASSERT_TRUE(
      WaitFor([&] { return (*elector)->leading(); }, absl::Seconds(30)));
  ASSERT_TRUE((*elector)->Proclaim("new value").ok());
  auto stub = v1::ElectionService::NewStub(channel_);
  ASSERT_TRUE(WaitFor(
      [&] {
        v1::GetLeaderRequest request;
        request.set_election(election);
        v1::GetLeaderResponse response;
        auto context = warren::testing::CallContext();
        return stub->GetLeader(context.get(), request, &response).ok() &&
               response.leader().value() == "new value";
      },
      absl::Seconds(30)));
  (*elector)->Close();
  EXPECT_EQ((*elector)->Proclaim("late").code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ElectorTest, InvalidElectionNameFailsAtStart) {
  EventLog events;
  auto elector = Elector::Start(channel_, Options("bad//name", "x", &events));
  EXPECT_EQ(elector.status().code(), absl::StatusCode::kInvalidArgument)
      << elector.status();
}

// Fault tests: a warrend of their own.
class ElectorFaultTest : public ElectorTest {};

TEST_F(ElectorFaultTest, BrokenStreamIsLostAtOnceThenRecampaigns) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string election = UniqueName("cpp-election");
  EventLog events;
  ElectorOptions options = Options(election, "k", &events);
  options.heartbeat_interval = absl::Seconds(1);  // a lease of 2s
  auto elector = Elector::Start(MakeChannel((*warrend)->address()), options);
  ASSERT_TRUE(elector.ok()) << elector.status();
  ASSERT_TRUE(events.WaitFor("elected"));
  const uint64_t token = (*elector)->fencing_token();

  // kill -9: the connection breaks, the client must not wait for its lease.
  (*warrend)->Kill();
  ASSERT_TRUE(events.WaitFor("lost"));
  EXPECT_EQ(events.Lines().back(), "lost stream broken");
  EXPECT_FALSE((*elector)->leading());

  // recampaign (the default): elected again once a server is back (after
  // the dead server's ZooKeeper session, and its node, expired).
  ASSERT_TRUE((*warrend)->Restart().ok());
  // The callback (the event) comes after leading() turns true: await it.
  ASSERT_TRUE(
      WaitFor([&] { return events.Count("elected") >= 2; }, absl::Seconds(60)));
  EXPECT_TRUE((*elector)->leading());
  EXPECT_GT((*elector)->fencing_token(), token);
  EXPECT_EQ(events.Count("elected"), 2u);
  (*elector)->Close();
}

TEST_F(ElectorFaultTest, LeaseExpiresWhenHeartbeatsStop) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string election = UniqueName("cpp-election");
  EventLog events;
  ElectorOptions options = Options(election, "s", &events);
  options.heartbeat_interval = absl::Milliseconds(400);
  options.recampaign = false;
  options.close_timeout = absl::Seconds(1);
  auto elector = Elector::Start(MakeChannel((*warrend)->address()), options);
  ASSERT_TRUE(elector.ok()) << elector.status();
  ASSERT_TRUE(events.WaitFor("elected"));

  // SIGSTOP: the connection stays open but nothing comes any more, as with
  // a frozen server or a partition; the stream does not break.
  warren::testing::WarrendProcess* process = (*warrend)->process();
  ASSERT_TRUE(process->Signal(SIGSTOP));
  const absl::Time stopped = absl::Now();
  ASSERT_TRUE(events.WaitFor("lost", absl::Seconds(10)));
  const absl::Duration after = absl::Now() - stopped;
  EXPECT_EQ(events.Lines().back(), "lost lease expired");
  EXPECT_FALSE((*elector)->leading());
  // Within about 2 intervals of the last heartbeat (generous for slow
  // machines), certainly before the 4s ZooKeeper session could expire.
  EXPECT_LT(after, absl::Seconds(3));

  // Closing does not hang on the frozen server.
  const absl::Time closing = absl::Now();
  (*elector)->Close();
  EXPECT_LT(absl::Now() - closing, absl::Seconds(5));
  process->Signal(SIGCONT);
}

}  // namespace
}  // namespace warren::client::testing
