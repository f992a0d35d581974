// Elections across faults. Two warrend processes share one ZooKeeper and one
// root; candidates on both. What must hold: never two leaders — a candidate
// on the survivor is elected only once the dead (or frozen) process's session
// has expired, and a frozen leader's client, when its process resumes, hears
// that it lost (or its stream ends), never that it leads.
#include <signal.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;

constexpr absl::Duration kSessionTimeout = absl::Seconds(4);

struct Pair {
  std::unique_ptr<WarrendProcess> first, second;
};

Pair StartPair(const std::string& zk_connect = "") {
  const std::string root = absl::StrCat("/warren-pair-", getpid(), "-",
                                        absl::ToUnixMicros(absl::Now()));
  const std::vector<std::string> args = {
      "--root=" + root, absl::StrCat("--zk_session_timeout=",
                                     absl::FormatDuration(kSessionTimeout))};
  auto a = WarrendProcess::Start(args, zk_connect);
  auto b = WarrendProcess::Start(args, zk_connect);
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(b.ok()) << b.status();
  if (!a.ok() || !b.ok()) return {};
  return {*std::move(a), *std::move(b)};
}

bool IsLoss(const v1::ElectResponse& r) { return r.has_lost(); }

TEST(ElectionFaultTest, KillOfTheLeadersProcessElectsAfterSessionExpiry) {
  Pair pair = StartPair();
  ASSERT_TRUE(pair.first && pair.second);
  auto stub_a = v1::ElectionService::NewStub(pair.first->channel());
  auto stub_b = v1::ElectionService::NewStub(pair.second->channel());
  TestCandidate a(*stub_a, MakeCampaign("kill", "on-a"));
  ASSERT_GE(a.WaitElected(), 0);
  TestCandidate b(*stub_b, MakeCampaign("kill", "on-b"));
  ASSERT_GE(
      b.WaitFor([](const v1::ElectResponse& r) { return r.has_following(); }),
      0);
  const absl::Time killed = absl::Now();
  pair.first->Signal(SIGKILL);
  const int elected = b.WaitElected(0, absl::Seconds(60));
  ASSERT_GE(elected, 0);
  const absl::Duration failover = b.events()[elected].time - killed;
  // The dead session's last ping was at most a third of the timeout before
  // the kill; its node lives until the session expires.
  EXPECT_GE(failover, kSessionTimeout * 2 / 3);
  RecordProperty("failover_after_kill_ms",
                 static_cast<int>(absl::ToInt64Milliseconds(failover)));
}

TEST(ElectionFaultTest, AFrozenLeaderIsReplacedAndNeverHearsItLeads) {
  Pair pair = StartPair();
  ASSERT_TRUE(pair.first && pair.second);
  auto stub_a = v1::ElectionService::NewStub(pair.first->channel());
  auto stub_b = v1::ElectionService::NewStub(pair.second->channel());
  v1::Campaign leased = MakeCampaign("freeze", "on-a");
  TestCandidate a(*stub_a, leased);
  ASSERT_GE(a.WaitElected(), 0);
  TestCandidate b(*stub_b, MakeCampaign("freeze", "on-b"));
  ASSERT_GE(
      b.WaitFor([](const v1::ElectResponse& r) { return r.has_following(); }),
      0);
  const size_t before = a.events().size();
  pair.first->Signal(SIGSTOP);
  // The frozen process stops sending the lease: no heartbeat arrives.
  ASSERT_GE(b.WaitElected(0, absl::Seconds(60)), 0);
  pair.first->Signal(SIGCONT);
  // Once resumed, a's client hears it lost (or its stream ends) ...
  const bool told = a.WaitFor(IsLoss, before, absl::Seconds(60)) >= 0;
  EXPECT_TRUE(told || a.ended());
  // ... and is never told it leads.
  for (size_t i = before; i < a.events().size(); ++i) {
    EXPECT_FALSE(a.events()[i].response.has_elected());
  }
}

TEST(ElectionFaultTest, ZooKeeperRestartSuspendsLeadersThenOneLeads) {
  auto zk = ZooKeeperServer::Start();
  ASSERT_TRUE(zk.ok()) << zk.status();
  auto warrend =
      WarrendProcess::Start({"--zk_session_timeout=20s"}, (*zk)->connect());
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto stub = v1::ElectionService::NewStub((*warrend)->channel());
  TestCandidate a(*stub, MakeCampaign("zk-restart", "a"));
  ASSERT_GE(a.WaitElected(), 0);
  const uint64_t token =
      a.events()[a.WaitElected()].response.elected().leader().fencing_token();
  TestCandidate b(*stub, MakeCampaign("zk-restart", "b"));
  ASSERT_GE(
      b.WaitFor([](const v1::ElectResponse& r) { return r.has_following(); }),
      0);
  const size_t before = a.events().size();
  (*zk)->Kill9();
  const int lost = a.WaitFor(IsLoss, before, absl::Seconds(30));
  ASSERT_GE(lost, 0);
  EXPECT_EQ(a.events()[lost].response.lost().reason(),
            v1::LOSS_REASON_CONNECTION_SUSPENDED);
  ASSERT_TRUE((*zk)->Restart().ok());
  // The session survives the restart: a is elected again, same token.
  const int again = a.WaitElected(lost + 1, absl::Seconds(60));
  ASSERT_GE(again, 0) << (*warrend)->Log();
  EXPECT_GE(a.events()[again].response.elected().leader().fencing_token(),
            token);
  for (const auto& e : b.events()) EXPECT_FALSE(e.response.has_elected());
  a.Resign();
  ASSERT_GE(b.WaitElected(), 0);
  EXPECT_GT(
      b.events()[b.WaitElected()].response.elected().leader().fencing_token(),
      token);
}

}  // namespace
}  // namespace warren::testing
