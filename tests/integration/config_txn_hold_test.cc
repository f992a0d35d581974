// ConfigService's Txn and HoldKey end to end: the real warrend, the real
// ZooKeeper. The fault cases (kill -9 of a holder's warrend, an expired
// session) run against a ZooKeeper server of their own.
#include <signal.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/mutex.h"
#include "tests/integration/config_clients.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A HoldKey stream, read on its own thread.
class HoldStream {
 public:
  HoldStream(v1::ConfigService::Stub& stub, const std::string& key,
             const std::string& value,
             absl::Duration heartbeat = absl::ZeroDuration()) {
    stream_ = stub.HoldKey(&context_);
    v1::HoldKeyRequest first;
    first.set_key(key);
    first.set_value(value);
    if (heartbeat != absl::ZeroDuration()) {
      first.mutable_heartbeat_interval()->set_seconds(
          absl::ToInt64Seconds(heartbeat));
      first.mutable_heartbeat_interval()->set_nanos(static_cast<int32_t>(
          absl::ToInt64Nanoseconds(heartbeat % absl::Seconds(1))));
    }
    stream_->Write(first);
    thread_ = std::thread([this] {
      v1::HoldKeyResponse response;
      while (stream_->Read(&response)) {
        warren::MutexLock lock(&mu_);
        responses_.push_back(response);
      }
      grpc::Status status = stream_->Finish();
      warren::MutexLock lock(&mu_);
      status_ = status;
      ended_ = true;
    });
  }
  ~HoldStream() {
    context_.TryCancel();
    thread_.join();
  }

  bool Send(const v1::HoldKeyRequest& request) {
    return stream_->Write(request);
  }
  void HalfClose() { stream_->WritesDone(); }
  void Cancel() { context_.TryCancel(); }

  // Waits until `count` responses satisfy `predicate` (or the stream
  // ends); answers whether they did.
  bool WaitFor(const std::function<bool(const v1::HoldKeyResponse&)>& predicate,
               int count = 1, absl::Duration timeout = absl::Seconds(30)) {
    warren::MutexLock lock(&mu_);
    auto matches = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      int n = 0;
      for (const auto& r : responses_) n += predicate(r) ? 1 : 0;
      return n >= count;
    };
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ended_ || matches();
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return matches();
  }
  bool WaitHeld(int count = 1, absl::Duration timeout = absl::Seconds(30)) {
    return WaitFor([](const auto& r) { return r.has_held(); }, count, timeout);
  }
  bool WaitEnded(grpc::Status* status,
                 absl::Duration timeout = absl::Seconds(30)) {
    warren::MutexLock lock(&mu_);
    auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ended), timeout)) return false;
    *status = status_;
    return true;
  }
  std::vector<v1::HoldKeyResponse> responses() {
    warren::MutexLock lock(&mu_);
    return responses_;
  }
  v1::ConfigEntry LastHeld() {
    warren::MutexLock lock(&mu_);
    for (auto it = responses_.rbegin(); it != responses_.rend(); ++it) {
      if (it->has_held()) return it->held();
    }
    return {};
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::HoldKeyRequest, v1::HoldKeyResponse>>
      stream_;
  std::thread thread_;
  warren::Mutex mu_;
  std::vector<v1::HoldKeyResponse> responses_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

// Calls of one ConfigService stub.
class Config {
 public:
  explicit Config(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::ConfigService::NewStub(std::move(channel))) {}
  v1::ConfigService::Stub& stub() { return *stub_; }

  grpc::Status Put(const std::string& key, const std::string& value) {
    v1::PutConfigRequest request;
    request.set_key(key);
    request.set_value(value);
    v1::PutConfigResponse response;
    return stub_->PutConfig(CallContext().get(), request, &response);
  }
  absl::StatusOr<v1::ConfigEntry> Get(const std::string& key) {
    v1::GetConfigRequest request;
    request.set_key(key);
    request.set_consistent(true);
    v1::GetConfigResponse response;
    grpc::Status status =
        stub_->GetConfig(CallContext().get(), request, &response);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    return response.entry();
  }
  grpc::Status Delete(const std::string& key, bool recursive = false) {
    v1::DeleteConfigRequest request;
    request.set_key(key);
    request.set_recursive(recursive);
    v1::DeleteConfigResponse response;
    return stub_->DeleteConfig(CallContext().get(), request, &response);
  }
  grpc::Status Txn(const v1::TxnRequest& request,
                   v1::TxnResponse* response = nullptr) {
    v1::TxnResponse ignored;
    return stub_->Txn(CallContext().get(), request,
                      response ? response : &ignored);
  }
  // key -> value@version of every key below `prefix`.
  std::map<std::string, std::string> State(const std::string& prefix) {
    std::map<std::string, std::string> state;
    std::string token;
    do {
      v1::ListConfigRequest request;
      request.set_prefix(prefix);
      request.set_page_size(1000);
      request.set_page_token(token);
      v1::ListConfigResponse response;
      grpc::Status status =
          stub_->ListConfig(CallContext().get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      for (const auto& e : response.entries()) {
        state[e.key()] = absl::StrCat(e.value(), "@", e.version());
      }
      token = response.next_page_token();
    } while (!token.empty());
    return state;
  }

 private:
  std::unique_ptr<v1::ConfigService::Stub> stub_;
};

v1::TxnCheck VersionCheck(const std::string& key, int64_t version) {
  v1::TxnCheck check;
  check.set_key(key);
  check.set_version(version);
  return check;
}
v1::TxnCheck ExistsCheck(const std::string& key, bool exists) {
  v1::TxnCheck check;
  check.set_key(key);
  check.set_exists(exists);
  return check;
}
v1::TxnOp PutOp(const std::string& key, const std::string& value) {
  v1::TxnOp op;
  op.mutable_put()->set_key(key);
  op.mutable_put()->set_value(value);
  return op;
}
v1::TxnOp DeleteOp(const std::string& key) {
  v1::TxnOp op;
  op.mutable_delete_()->set_key(key);
  return op;
}

struct NoFlags {
  static std::vector<std::string> Args() { return {}; }
};

class TxnTest : public SharedWarrendTest<NoFlags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    config_ = std::make_unique<Config>(warrend_->channel());
  }
  std::unique_ptr<Config> config_;
};

TEST_F(TxnTest, AppliesChecksPutsAndDeletesTogether) {
  ASSERT_TRUE(config_->Put("tx1/a", "a0").ok());
  ASSERT_TRUE(config_->Put("tx1/gone", "g").ok());
  v1::TxnRequest txn;
  *txn.add_checks() = VersionCheck("tx1/a", 0);
  *txn.add_checks() = ExistsCheck("tx1/new/deep", false);
  *txn.add_checks() = ExistsCheck("tx1/gone", true);
  *txn.add_ops() = PutOp("tx1/a", "a1");
  *txn.add_ops() = DeleteOp("tx1/gone");
  *txn.add_ops() = PutOp("tx1/new/deep", "");
  v1::TxnResponse response;
  grpc::Status status = config_->Txn(txn, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.entries_size(), 2);
  EXPECT_EQ(response.entries(0).key(), "tx1/a");
  EXPECT_EQ(response.entries(0).value(), "a1");
  EXPECT_EQ(response.entries(0).version(), 1);
  EXPECT_EQ(response.entries(1).key(), "tx1/new/deep");
  EXPECT_EQ(response.entries(1).version(), 0);
  EXPECT_GT(response.entries(1).modify_time().seconds(), 1700000000);
  EXPECT_THAT(config_->State("tx1"),
              (std::map<std::string, std::string>{{"tx1/a", "a1@1"},
                                                  {"tx1/new/deep", "@0"}}));
  // The exists-false check left nothing behind for a key that was missing.
  v1::TxnRequest again;
  *again.add_checks() = ExistsCheck("tx1/x/y/z", false);
  *again.add_ops() = PutOp("tx1/a", "a2");
  ASSERT_TRUE(config_->Txn(again).ok());
  EXPECT_EQ(config_->Delete("tx1/x", /*recursive=*/true).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(config_->Delete("tx1", true).ok());
}

TEST_F(TxnTest, AFailingCheckOrOpAtAnyPositionChangesNothing) {
  ASSERT_TRUE(config_->Put("tx2/k0", "v").ok());
  ASSERT_TRUE(config_->Put("tx2/k1", "v").ok());
  ASSERT_TRUE(config_->Put("tx2/k2", "v").ok());
  ASSERT_TRUE(config_->Put("tx2/taken", "t").ok());
  const auto before = config_->State("tx2");
  // A transaction that would pass, and a way to break each of its steps.
  const auto passing = [] {
    v1::TxnRequest txn;
    *txn.add_checks() = VersionCheck("tx2/k0", 0);
    *txn.add_checks() = ExistsCheck("tx2/k1", true);
    *txn.add_checks() = ExistsCheck("tx2/absent", false);
    *txn.add_ops() = PutOp("tx2/k2", "changed");
    *txn.add_ops() = PutOp("tx2/new/key", "new");
    *txn.add_ops() = DeleteOp("tx2/k1");
    return txn;
  };
  {
    v1::TxnRequest txn = passing();
    // Proves the breaks below are what fails: this one alone passes.
    v1::TxnRequest probe = txn;
    *probe.mutable_ops(0)->mutable_put()->mutable_key() = "tx2/probe";
    probe.mutable_ops()->RemoveLast();
    probe.mutable_ops()->RemoveLast();
    ASSERT_TRUE(config_->Txn(probe).ok());
    ASSERT_TRUE(config_->Delete("tx2/probe").ok());
  }
  std::vector<std::pair<std::string, v1::TxnRequest>> broken;
  for (int i = 0; i < 3; ++i) broken.emplace_back("", passing());
  broken[0].first = "checks[0]";
  broken[0].second.mutable_checks(0)->set_version(3);
  broken[1].first = "checks[1]";
  broken[1].second.mutable_checks(1)->set_key("tx2/missing");
  broken[2].first = "checks[2]";
  broken[2].second.mutable_checks(2)->set_key("tx2/taken");
  broken.emplace_back("ops[0]", passing());
  broken.back().second.mutable_ops(0)->mutable_put()->set_expected_version(9);
  broken.emplace_back("ops[1]", passing());
  broken.back().second.mutable_ops(1)->mutable_put()->set_key("tx2/taken");
  broken.back().second.mutable_ops(1)->mutable_put()->set_create_only(true);
  broken.emplace_back("ops[2]", passing());
  broken.back().second.mutable_ops(2)->mutable_delete_()->set_key(
      "tx2/missing");
  for (const auto& [field, txn] : broken) {
    grpc::Status status = config_->Txn(txn);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << field << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), StartsWith(field + ": "));
    EXPECT_EQ(config_->State("tx2"), before) << field;
  }
  EXPECT_EQ(config_->Delete("tx2/new", true).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(config_->Delete("tx2", true).ok());
}

TEST_F(TxnTest, AHundredOpsReachAPrefixWatcherTogether) {
  ASSERT_TRUE(config_->Put("tx3/seed", "s").ok());
  WatchReader watch(&config_->stub(), "tx3", /*prefix=*/true);
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    return !responses.empty() && responses.back().initial_state();
  }));
  for (int round = 0; round < 3; ++round) {
    v1::TxnRequest txn;
    for (int i = 0; i < 100; ++i) {
      // Puts on existing keys (set), new keys at several depths (creates
      // with namespace parents), and in the last round deletes.
      const std::string key = absl::StrCat("tx3/g", i % 7, "/k", i);
      *txn.add_ops() =
          round < 2 ? PutOp(key, absl::StrCat("r", round)) : DeleteOp(key);
    }
    grpc::Status status = config_->Txn(txn);
    ASSERT_TRUE(status.ok()) << status.error_message();
    const std::string last = round < 2 ? "PUT" : "DELETE";
    ASSERT_TRUE(watch.WaitUntil([&](const auto& responses) {
      int seen = 0;
      for (const auto& r : responses) {
        for (const auto& e : r.events()) {
          if (e.entry().key() == "tx3/g1/k99" &&
              (round < 2 ? e.entry().value() == absl::StrCat("r", round)
                         : e.type() == v1::CONFIG_EVENT_TYPE_DELETE)) {
            ++seen;
          }
        }
      }
      return seen > 0;
    })) << round;
    // The response that carries one of the transaction's changes carries
    // all of them.
    const auto responses = watch.responses();
    int with_changes = 0;
    for (const auto& r : responses) {
      if (r.initial_state() || r.events_size() == 0) continue;
      int of_round = 0;
      for (const auto& e : r.events()) {
        const bool match =
            round < 2 ? e.type() == v1::CONFIG_EVENT_TYPE_PUT &&
                            e.entry().value() == absl::StrCat("r", round)
                      : e.type() == v1::CONFIG_EVENT_TYPE_DELETE;
        of_round += match ? 1 : 0;
      }
      if (of_round == 0) continue;
      ++with_changes;
      EXPECT_EQ(of_round, 100) << "round " << round;
    }
    EXPECT_EQ(with_changes, 1) << "round " << round;
  }
  EXPECT_EQ(config_->State("tx3").size(), 1u);
  ASSERT_TRUE(config_->Delete("tx3", true).ok());
}

TEST_F(TxnTest, BadTransactionsAreRefusedNamingTheField) {
  struct Case {
    v1::TxnRequest txn;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({{}, "ops"});  // no op
  {
    v1::TxnRequest txn;  // 101 steps
    for (int i = 0; i < 51; ++i) *txn.add_checks() = ExistsCheck("tx4/c", true);
    for (int i = 0; i < 50; ++i)
      *txn.add_ops() = PutOp(absl::StrCat("tx4/k", i), "");
    cases.push_back({txn, "ops"});
  }
  {
    v1::TxnRequest txn;
    *txn.add_ops() = PutOp("tx4/a", "");
    *txn.add_checks() = ExistsCheck("tx4/../x", true);
    cases.push_back({txn, "checks[0].key"});
  }
  {
    v1::TxnRequest txn;
    *txn.add_ops() = PutOp("tx4/a", "");
    txn.add_checks()->set_key("tx4/a");
    cases.push_back({txn, "checks[0]"});
  }
  {
    v1::TxnRequest txn;
    *txn.add_ops() = PutOp("tx4/a", "");
    txn.add_ops();
    cases.push_back({txn, "ops[1]"});
  }
  {
    v1::TxnRequest txn;
    *txn.add_ops() = PutOp("tx4/a", "");
    *txn.add_ops() = PutOp("tx4//b", "");
    cases.push_back({txn, "ops[1].put.key"});
  }
  {
    v1::TxnRequest txn;
    *txn.add_ops() = PutOp("tx4/a", "");
    *txn.add_ops() = DeleteOp("tx4/a");
    cases.push_back({txn, "ops[1].delete.key"});
  }
  {
    v1::TxnRequest txn;
    *txn.add_ops() = PutOp("tx4/a", "");
    txn.mutable_ops(0)->mutable_put()->mutable_fence()->set_election("e");
    txn.mutable_ops(0)->mutable_put()->mutable_fence()->set_fencing_token(1);
    cases.push_back({txn, "ops[0].put.fence"});
  }
  {
    v1::TxnRequest txn;
    *txn.add_ops() = PutOp("tx4/a", "");
    txn.mutable_ops(0)->mutable_put()->set_expected_version(-1);
    cases.push_back({txn, "ops[0].put.expected_version"});
  }
  for (const Case& c : cases) {
    grpc::Status status = config_->Txn(c.txn);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), StartsWith(c.field)) << c.field;
  }
  EXPECT_TRUE(config_->State("tx4").empty());
  // Exactly the maximum is fine.
  v1::TxnRequest full;
  for (int i = 0; i < 100; ++i)
    *full.add_ops() = PutOp(absl::StrCat("tx4/k", i), "");
  ASSERT_TRUE(config_->Txn(full).ok());
  EXPECT_EQ(config_->State("tx4").size(), 100u);
  ASSERT_TRUE(config_->Delete("tx4", true).ok());
}

v1::Fence ElectionFence(const std::string& election, uint64_t token) {
  v1::Fence fence;
  fence.set_election(election);
  fence.set_fencing_token(token);
  return fence;
}

TEST_F(TxnTest, FencedWritesHoldOnlyWhileTheLeaderLeads) {
  auto elections = v1::ElectionService::NewStub(warrend_->channel());
  TestCandidate leader(*elections, MakeCampaign("fenced-config", "a"));
  const int elected = leader.WaitElected();
  ASSERT_GE(elected, 0);
  const uint64_t token =
      leader.events()[elected].response.elected().leader().fencing_token();
  const v1::Fence fence = ElectionFence("fenced-config", token);

  v1::PutConfigRequest put;
  put.set_key("fc/counter");
  put.set_value("1");
  *put.mutable_fence() = fence;
  v1::PutConfigResponse written;
  grpc::Status status =
      config_->stub().PutConfig(CallContext().get(), put, &written);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::TxnRequest txn;
  *txn.add_ops() = PutOp("fc/other", "o");
  *txn.mutable_fence() = fence;
  ASSERT_TRUE(config_->Txn(txn).ok());

  // A stale token does not hold even while the election has a leader.
  v1::PutConfigRequest stale = put;
  stale.mutable_fence()->set_fencing_token(token - 1);
  stale.set_value("stale");
  status = config_->stub().PutConfig(CallContext().get(), stale, &written);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(),
              StartsWith("fence: election:fenced-config"));

  ASSERT_TRUE(leader.Resign());
  grpc::Status ended;
  ASSERT_TRUE(leader.WaitEnded(&ended));
  put.set_value("2");
  status = config_->stub().PutConfig(CallContext().get(), put, &written);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), StartsWith("fence: "));
  EXPECT_EQ(config_->Get("fc/counter")->value(), "1");
  v1::DeleteConfigRequest del;
  del.set_key("fc/counter");
  *del.mutable_fence() = fence;
  v1::DeleteConfigResponse deleted;
  status = config_->stub().DeleteConfig(CallContext().get(), del, &deleted);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  *txn.mutable_ops(0) = PutOp("fc/other", "changed");
  EXPECT_EQ(config_->Txn(txn).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(config_->State("fc"),
            (std::map<std::string, std::string>{{"fc/counter", "1@0"},
                                                {"fc/other", "o@0"}}));

  // Bad fences, and a fence naming an election that does not exist.
  std::vector<std::pair<v1::Fence, std::string>> bad = {
      {v1::Fence(), "fence"},
      {ElectionFence("no/such/../x", 5), "fence.election"},
      {ElectionFence("fenced-config", 0), "fence.fencing_token"}};
  for (const auto& [f, field] : bad) {
    v1::PutConfigRequest request = put;
    *request.mutable_fence() = f;
    status = config_->stub().PutConfig(CallContext().get(), request, &written);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << field << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), StartsWith(field));
  }
  *put.mutable_fence() = ElectionFence("never-held", 42);
  status = config_->stub().PutConfig(CallContext().get(), put, &written);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(config_->Get("fc/counter")->value(), "1");
  ASSERT_TRUE(config_->Delete("fc", true).ok());
}

class HoldKeyTest : public TxnTest {};

TEST_F(HoldKeyTest, AHeldKeyLivesAsLongAsItsStream) {
  WatchReader watch(&config_->stub(), "hk1", /*prefix=*/true);
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    return !responses.empty() && responses.back().initial_state();
  }));
  HoldStream hold(config_->stub(), "hk1/svc/instance-1", "10.0.0.1:80",
                  absl::Milliseconds(200));
  ASSERT_TRUE(hold.WaitHeld());
  v1::ConfigEntry held = hold.LastHeld();
  EXPECT_EQ(held.key(), "hk1/svc/instance-1");
  EXPECT_EQ(held.value(), "10.0.0.1:80");
  EXPECT_TRUE(held.held());
  // The lease interval in force comes with every `held`.
  for (const auto& r : hold.responses()) {
    if (r.has_held()) {
      EXPECT_EQ(r.heartbeat_interval().seconds(), 0);
      EXPECT_EQ(r.heartbeat_interval().nanos(), 200000000);
    }
  }
  auto got = config_->Get("hk1/svc/instance-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->held());
  ASSERT_TRUE(watch.WaitForValue("hk1/svc/instance-1", "10.0.0.1:80"));
  // Lease heartbeats while held.
  EXPECT_TRUE(hold.WaitFor([](const auto& r) { return r.has_heartbeat(); }, 2));

  v1::HoldKeyRequest update;
  update.set_value("10.0.0.1:81");
  ASSERT_TRUE(hold.Send(update));
  ASSERT_TRUE(hold.WaitHeld(2));
  EXPECT_EQ(hold.LastHeld().value(), "10.0.0.1:81");
  EXPECT_EQ(hold.LastHeld().version(), 1);
  ASSERT_TRUE(watch.WaitForValue("hk1/svc/instance-1", "10.0.0.1:81"));
  update.set_key("hk1/svc/instance-1");  // the same key: fine
  update.set_value("10.0.0.1:82");
  ASSERT_TRUE(hold.Send(update));
  ASSERT_TRUE(hold.WaitHeld(3));
  EXPECT_EQ(config_->Get("hk1/svc/instance-1")->value(), "10.0.0.1:82");

  hold.HalfClose();
  grpc::Status status;
  ASSERT_TRUE(hold.WaitEnded(&status));
  EXPECT_TRUE(status.ok()) << status.error_message();
  // Gone at once, namespace parents with it.
  EXPECT_EQ(config_->Get("hk1/svc/instance-1").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(config_->Delete("hk1", true).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    const auto events = WatchReader::EventsOf(responses);
    return !events.empty() && absl::StartsWith(events.back(), "DELETE");
  }));
}

TEST_F(HoldKeyTest, ACancelledStreamDeletesItsKey) {
  {
    HoldStream hold(config_->stub(), "hk2/a", "x");
    ASSERT_TRUE(hold.WaitHeld());
  }  // cancelled
  ASSERT_TRUE(WaitFor(
      [&] {
        return config_->Get("hk2/a").status().code() ==
               absl::StatusCode::kNotFound;
      },
      absl::Seconds(10)));
}

TEST_F(HoldKeyTest, AKeyIsHeldAgainAtOnceAfterItsStreamIsCancelled) {
  // The new stream's create must not meet the old stream's node, which the
  // same warrend is still deleting.
  for (int i = 0; i < 20; ++i) {
    auto old_stream =
        std::make_unique<HoldStream>(config_->stub(), "hk5/again", "old");
    ASSERT_TRUE(old_stream->WaitHeld()) << "round " << i;
    old_stream->Cancel();
    HoldStream next(config_->stub(), "hk5/again", "new");
    ASSERT_TRUE(next.WaitHeld()) << "round " << i;
    EXPECT_EQ(next.LastHeld().value(), "new");
    old_stream.reset();
  }
}

TEST_F(HoldKeyTest, AnExistingKeyIsNotHeld) {
  ASSERT_TRUE(config_->Put("hk3/persistent", "p").ok());
  HoldStream persistent(config_->stub(), "hk3/persistent", "mine");
  grpc::Status status;
  ASSERT_TRUE(persistent.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), StartsWith("key: "));
  EXPECT_EQ(config_->Get("hk3/persistent")->value(), "p");
  EXPECT_FALSE(config_->Get("hk3/persistent")->held());

  HoldStream first(config_->stub(), "hk3/held", "first");
  ASSERT_TRUE(first.WaitHeld());
  HoldStream second(config_->stub(), "hk3/held", "second");
  ASSERT_TRUE(second.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), HasSubstr("held"));
  EXPECT_EQ(config_->Get("hk3/held")->value(), "first");
  // Below a held key nothing can be put.
  grpc::Status below = config_->Put("hk3/held/child", "c");
  EXPECT_EQ(below.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << below.error_message();
  ASSERT_TRUE(config_->Delete("hk3/persistent").ok());
}

TEST_F(HoldKeyTest, BadRequestsAreRefusedAndLeaveNothing) {
  struct Case {
    v1::HoldKeyRequest first;
    std::string field;
  };
  std::vector<Case> cases(3);
  cases[0].first.set_key("hk4/../x");
  cases[0].field = "key";
  cases[1].first.set_key("hk4/big");
  cases[1].first.set_value(std::string(2 << 20, 'v'));
  cases[1].field = "value";
  cases[2].first.set_key("hk4/neg");
  cases[2].first.mutable_heartbeat_interval()->set_seconds(-1);
  cases[2].field = "heartbeat_interval";
  for (const Case& c : cases) {
    grpc::ClientContext context;
    auto stream = config_->stub().HoldKey(&context);
    stream->Write(c.first);
    v1::HoldKeyResponse response;
    EXPECT_FALSE(stream->Read(&response));
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.field;
    EXPECT_THAT(status.error_message(), StartsWith(c.field));
  }
  // A later request naming another key.
  HoldStream hold(config_->stub(), "hk4/ok", "v");
  ASSERT_TRUE(hold.WaitHeld());
  v1::HoldKeyRequest other;
  other.set_key("hk4/other");
  ASSERT_TRUE(hold.Send(other));
  grpc::Status status;
  ASSERT_TRUE(hold.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), StartsWith("key"));
  // The stream's end deletes the key (after the status reached us).
  EXPECT_TRUE(WaitFor([&] { return config_->State("hk4").empty(); },
                      absl::Seconds(10)));
}

// Two warrends on a ZooKeeper server of the test's own, with a short
// session timeout (the server's tick is 1s: 2s is the shortest it grants).
class HoldKeyFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto zk = ZooKeeperServer::Start();
    ASSERT_TRUE(zk.ok()) << zk.status();
    zk_ = *std::move(zk);
    auto holder =
        WarrendProcess::Start({"--zk_session_timeout=2s"}, zk_->connect());
    ASSERT_TRUE(holder.ok()) << holder.status();
    holder_ = *std::move(holder);
    auto reader = WarrendProcess::Start(
        {"--zk_session_timeout=10s", "--root=" + holder_->root()},
        zk_->connect());
    ASSERT_TRUE(reader.ok()) << reader.status();
    reader_ = *std::move(reader);
  }

  std::unique_ptr<ZooKeeperServer> zk_;
  std::unique_ptr<WarrendProcess> holder_;
  std::unique_ptr<WarrendProcess> reader_;
};

TEST_F(HoldKeyFaultTest, AKeyGoesWithinTheSessionTimeoutOfAKilledHolder) {
  Config holder(holder_->channel());
  Config reader(reader_->channel());
  HoldStream hold(holder.stub(), "reg/worker", "w1");
  ASSERT_TRUE(hold.WaitHeld());
  ASSERT_TRUE(reader.Get("reg/worker").ok());
  const absl::Time killed = absl::Now();
  holder_->Signal(SIGKILL);
  ASSERT_TRUE(WaitFor(
      [&] {
        return reader.Get("reg/worker").status().code() ==
               absl::StatusCode::kNotFound;
      },
      absl::Seconds(30)));
  // The session timeout (2s) plus the server's expiry tick and our polling.
  EXPECT_LT(absl::Now() - killed, absl::Seconds(8));
}

TEST_F(HoldKeyFaultTest, AReleaseThatFailsForWantOfAConnectionIsRetried) {
  // The reader's session (10s) outlives a brief ZooKeeper outage.
  Config config(reader_->channel());
  auto hold = std::make_unique<HoldStream>(config.stub(), "reg/outage", "v");
  ASSERT_TRUE(hold->WaitHeld());
  zk_->Kill9();
  ASSERT_TRUE(hold->WaitFor([](const auto& r) {
    return r.has_lost() &&
           r.lost().reason() == v1::LOSS_REASON_CONNECTION_SUSPENDED;
  })) << reader_->Log();
  hold.reset();  // cancelled while there is no connection
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(reader_->Log(),
                                 "releasing key 'reg/outage' failed");
      },
      absl::Seconds(30)))
      << reader_->Log();
  ASSERT_TRUE(zk_->Restart().ok());
  // Back in the same session (its node alive), the delete goes through.
  EXPECT_TRUE(WaitFor(
      [&] {
        return config.Get("reg/outage").status().code() ==
               absl::StatusCode::kNotFound;
      },
      absl::Seconds(30)))
      << reader_->Log();
  HoldStream again(config.stub(), "reg/outage", "again");
  EXPECT_TRUE(again.WaitHeld()) << reader_->Log();
}

TEST_F(HoldKeyFaultTest, AKeyIsHeldAgainAfterASessionExpiry) {
  Config holder(holder_->channel());
  Config reader(reader_->channel());
  HoldStream hold(holder.stub(), "reg/expiring", "v1");
  ASSERT_TRUE(hold.WaitHeld());
  // Frozen past its session timeout, the holder's session expires (see
  // zk_fault_test), and its key with it.
  holder_->Signal(SIGSTOP);
  const absl::Time frozen = absl::Now();
  EXPECT_TRUE(WaitFor(
      [&] {
        return reader.Get("reg/expiring").status().code() ==
               absl::StatusCode::kNotFound;
      },
      absl::Seconds(30)));
  // Waiting for wall-clock time to pass is the point here.
  absl::SleepFor(frozen + absl::Seconds(6) - absl::Now());
  holder_->Signal(SIGCONT);
  ASSERT_TRUE(hold.WaitFor(
      [](const auto& r) {
        return r.has_lost() &&
               r.lost().reason() == v1::LOSS_REASON_SESSION_EXPIRED;
      },
      1, absl::Seconds(60)))
      << holder_->Log();
  ASSERT_TRUE(hold.WaitHeld(2, absl::Seconds(60))) << holder_->Log();
  auto got = reader.Get("reg/expiring");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->held());
  EXPECT_EQ(got->value(), "v1");
  // No heartbeat between the loss and the new `held`.
  const auto responses = hold.responses();
  bool lost = false;
  for (const auto& r : responses) {
    if (r.has_lost()) lost = true;
    if (r.has_held()) lost = false;
    EXPECT_FALSE(lost && r.has_heartbeat());
  }
}

}  // namespace
}  // namespace warren::testing
