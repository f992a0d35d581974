// Attack: one config write larger than the ZooKeeper ensemble accepts. The
// ensemble does not refuse such a request, it drops the connection, and with
// it the session that every leader and watch on the same warrend shares. The
// write must fail alone (INVALID_ARGUMENT), before it is sent.
//
// And: a prefix holding more than a gRPC message (4 MiB) is still listed and
// watched completely, in several messages (docs/config-limits.md).
//
// Everything here runs against a private ZooKeeper (scripts/stack.sh, as the
// fault tests do), never the shared one: values of several MB at its
// jute.maxbuffer (4194304, what scripts/stack.sh sets) exhaust the small
// heap of a ZooKeeper that other suites load at the same time (the shared
// test ZooKeeper died of it, OutOfMemoryError, once).
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "server/config/config_limits.h"
#include "server/config/key_space.h"
#include "server/zk/request_size.h"
#include "server/zk/zk_sync.h"
#include "server/zk/zookeeper_client.h"
#include "tests/integration/config_clients.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "warren/client/config_watcher.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

// The private ZooKeeper's jute.maxbuffer (scripts/stack.sh).
size_t EnsembleLimit() { return 4194304; }

// One private ZooKeeper (its jute.maxbuffer is EnsembleLimit()) and one
// warrend on it per suite.
template <typename Flags>
using PrivateZooKeeperTest =
    SharedWarrendTest<Flags, /*private_zookeeper=*/true>;

// The request bound of a PutConfig on this warrend (no chroot, no
// credentials: the open ACL).
size_t PutRequestBound(const WarrendProcess& warrend, const std::string& key,
                       size_t value_bytes) {
  static const zk::AclPolicy kOpen;
  const config::KeySpace keys(warrend.root());
  return config::PutRequestBound({&keys, &kOpen.node_acl(), 0, EnsembleLimit()},
                                 key, value_bytes);
}

// A channel that receives messages as large as the values of this test.
std::unique_ptr<v1::ConfigService::Stub> LargeMessageStub(
    const WarrendProcess& warrend) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return v1::ConfigService::NewStub(grpc::CreateCustomChannel(
      warrend.address(), grpc::InsecureChannelCredentials(), args));
}

grpc::Status Put(v1::ConfigService::Stub& stub, const std::string& key,
                 const std::string& value) {
  v1::PutConfigRequest request;
  request.set_key(key);
  request.set_value(value);
  v1::PutConfigResponse response;
  return stub.PutConfig(CallContext().get(), request, &response);
}

// What the test's warrend leaves of the limit for the request around a value
// of max_config_value_bytes (the default leaves 64 KiB).
constexpr size_t kReserve = 4096;

// warrend told the ensemble's real limit, with values as large as fit.
struct AtTheEnsembleLimitFlags {
  static std::vector<std::string> Args() {
    const size_t limit = EnsembleLimit();
    return {absl::StrCat("--zk_max_request_bytes=", limit),
            absl::StrCat("--max_config_value_bytes=", limit - kReserve),
            absl::StrCat("--max_message_bytes=", limit + (1 << 20))};
  }
};

class OversizedValueTest
    : public PrivateZooKeeperTest<AtTheEnsembleLimitFlags> {};

TEST_F(OversizedValueTest, FailsAloneAndLeadersKeepTheirSession) {
  auto config = LargeMessageStub(*warrend_);
  auto elections = v1::ElectionService::NewStub(warrend_->channel());
  TestCandidate leader(*elections, MakeCampaign("oversized", "leader-1"));
  ASSERT_GE(leader.WaitElected(), 0);
  ASSERT_EQ(HealthOf(*warrend_), HealthCheckResponse::SERVING);

  // A value within max_config_value_bytes, under a deep key whose missing
  // parents are created in the same request: over the ensemble's limit.
  const size_t max_value = EnsembleLimit() - kReserve;
  std::string deep_key = "deep";
  while (PutRequestBound(*warrend_, deep_key, max_value) <= EnsembleLimit()) {
    absl::StrAppend(&deep_key, "/d", deep_key.size());
  }
  ASSERT_LE(deep_key.size(), 1024u);
  grpc::Status refused = Put(*config, deep_key, std::string(max_value, 'x'));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("value"));
  EXPECT_THAT(
      refused.error_message(),
      HasSubstr(absl::StrCat("zk_max_request_bytes (", EnsembleLimit(), ")")));
  EXPECT_THAT(refused.error_message(),
              HasSubstr(absl::StrCat("max_config_value_bytes is ", max_value)));

  // The session was never dropped: a consistent read needs a round trip on
  // it, and the leader was told of no loss and still leads.
  v1::GetConfigRequest read;
  read.set_key("deep");
  read.set_consistent(true);
  v1::GetConfigResponse ignored;
  grpc::Status after = config->GetConfig(CallContext().get(), read, &ignored);
  EXPECT_EQ(after.error_code(), grpc::StatusCode::NOT_FOUND)
      << after.error_message();
  for (const ElectEvent& event : leader.events()) {
    EXPECT_FALSE(event.response.has_lost()) << event.response.DebugString();
  }
  EXPECT_EQ(HealthOf(*warrend_), HealthCheckResponse::SERVING);
  EXPECT_FALSE(leader.ended());
}

TEST_F(OversizedValueTest, AValueThatFillsTheRequestExactlyIsStored) {
  auto config = LargeMessageStub(*warrend_);
  // Missing parents, created in the same request: enough of them that the
  // request around the value is more than the reserve.
  std::string key = "exact";
  while (PutRequestBound(*warrend_, key, 0) <= kReserve) {
    absl::StrAppend(&key, "/p", key.size());
  }
  const size_t value_bytes =
      EnsembleLimit() - PutRequestBound(*warrend_, key, 0);
  ASSERT_LT(value_bytes, EnsembleLimit() - kReserve);
  std::string value(value_bytes, 'v');
  value.front() = 'a';
  value.back() = 'z';
  grpc::Status one_more = Put(*config, key, value + "!");
  EXPECT_EQ(one_more.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << one_more.error_message();

  grpc::Status stored = Put(*config, key, value);
  ASSERT_TRUE(stored.ok()) << stored.error_message();
  v1::GetConfigRequest read;
  read.set_key(key);
  read.set_consistent(true);
  v1::GetConfigResponse response;
  grpc::Status got = config->GetConfig(CallContext().get(), read, &response);
  ASSERT_TRUE(got.ok()) << got.error_message();
  EXPECT_EQ(response.entry().value().size(), value.size());
  EXPECT_TRUE(response.entry().value() == value);
  // Written again (a setData, smaller than the create): still fine.
  EXPECT_TRUE(Put(*config, key, value).ok());
}

// The computation itself against the ensemble, on a session of its own: a
// request of exactly the limit is served, one byte more loses the
// connection. This is what the bound protects every other session from.
TEST_F(OversizedValueTest, OneByteOverTheLimitDropsTheSession) {
  zk::ZooKeeperOptions options;
  options.connect = zk_->connect();
  options.max_request_bytes = EnsembleLimit() + 1;  // let it through
  auto client = zk::ZooKeeperClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE((*client)->WaitConnected(absl::Seconds(30)).ok());
  const std::string path = absl::StrCat("/warren-request-size-", getpid(), "-",
                                        absl::ToUnixMicros(absl::Now()));
  {
    zk::ZkSync sync(**client, absl::Now() + absl::Seconds(30));
    ASSERT_TRUE(sync.EnsurePath(path).ok());
  }
  const size_t overhead =
      zk::RequestBytes(zk::Op::Kind::kSetData, path.size(), 0, {});
  {
    zk::ZkSync sync(**client, absl::Now() + absl::Seconds(30));
    auto exact =
        sync.Set(path, std::string(EnsembleLimit() - overhead, 'e'), -1);
    EXPECT_TRUE(exact.ok()) << exact.status();
  }
  {
    zk::ZkSync sync(**client, absl::Now() + absl::Seconds(30));
    auto over =
        sync.Set(path, std::string(EnsembleLimit() - overhead + 1, 'o'), -1);
    EXPECT_EQ(zk::ZkErrorOf(over.status()), zk::ZkError::kConnectionLoss)
        << over.status();
  }
  // A multi-operation's steps count too.
  ASSERT_TRUE((*client)->WaitConnected(absl::Seconds(30)).ok());
  const std::vector<zk::AclEntry> acl = (*client)->acl_policy().node_acl();
  const size_t multi_overhead = zk::MultiRequestBytes(
      {zk::Op::Check(path, -1), zk::Op::SetData(path, "")}, acl);
  {
    zk::ZkSync sync(**client, absl::Now() + absl::Seconds(30));
    auto exact = sync.Multi(
        {zk::Op::Check(path, -1),
         zk::Op::SetData(path,
                         std::string(EnsembleLimit() - multi_overhead, 'm'))});
    ASSERT_TRUE(exact.ok()) << exact.status();
    EXPECT_TRUE(exact->status.ok()) << exact->status;
  }
  {
    zk::ZkSync sync(**client, absl::Now() + absl::Seconds(30));
    auto over = sync.Multi(
        {zk::Op::Check(path, -1),
         zk::Op::SetData(
             path, std::string(EnsembleLimit() - multi_overhead + 1, 'm'))});
    const absl::Status status = over.ok() ? over->status : over.status();
    EXPECT_EQ(zk::ZkErrorOf(status), zk::ZkError::kConnectionLoss) << status;
  }
  // Told the real limit, the client refuses that request itself, for every
  // caller (elections too): INVALID_ARGUMENT, and the session stays.
  zk::ZooKeeperOptions guarded_options;
  guarded_options.connect = zk_->connect();
  guarded_options.max_request_bytes = EnsembleLimit();
  auto guarded = zk::ZooKeeperClient::Create(guarded_options);
  ASSERT_TRUE(guarded.ok()) << guarded.status();
  ASSERT_TRUE((*guarded)->WaitConnected(absl::Seconds(30)).ok());
  {
    zk::ZkSync sync(**guarded, absl::Now() + absl::Seconds(30));
    auto refused =
        sync.Set(path, std::string(EnsembleLimit() - overhead + 1, 'g'), -1);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument)
        << refused.status();
    auto refused_multi = sync.Multi(
        {zk::Op::Check(path, -1),
         zk::Op::SetData(
             path, std::string(EnsembleLimit() - multi_overhead + 1, 'g'))});
    ASSERT_TRUE(refused_multi.ok());
    EXPECT_EQ(refused_multi->status.code(), absl::StatusCode::kInvalidArgument)
        << refused_multi->status;
    EXPECT_TRUE(sync.Sync(path).ok());
    EXPECT_EQ((*guarded)->reconnects(), 0u);
    EXPECT_EQ((*guarded)->state(), zk::SessionState::kConnected);
  }

  ASSERT_TRUE((*client)->WaitConnected(absl::Seconds(30)).ok());
  zk::ZkSync sync(**client, absl::Now() + absl::Seconds(30));
  auto deleted = sync.Multi({zk::Op::Delete(path)});
  EXPECT_TRUE(deleted.ok() && deleted->status.ok());
}

// A value limit the ensemble cannot take is a configuration error: warrend
// says so at start-up (before connecting) instead of failing such writes.
TEST(ValueLimitAtStartupTest, AValueLimitOverTheRequestLimitIsRefused) {
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{
           {"--max_config_value_bytes=1048576"},  // the old default
           {"--zk_max_request_bytes=2097152",
            "--max_config_value_bytes=2096640",
            "--max_message_bytes=4194304"}}) {
    std::vector<std::string> args = TestBackendFlags();
    args.insert(args.end(), flags.begin(), flags.end());
    ExitResult result = RunWarrendToExit(args);
    EXPECT_NE(result.code, 0) << flags.back();
    const std::string line = StartupFailureLine(result);
    EXPECT_THAT(line, HasSubstr("max_config_value_bytes"))
        << result.stderr_text;
    EXPECT_THAT(line, HasSubstr("zk_max_request_bytes")) << result.stderr_text;
  }
}

// Default limits: values of 900 KB, six of them in one prefix (over 5 MiB,
// more than one gRPC message holds).
struct DefaultFlags {
  static std::vector<std::string> Args() { return {}; }
};

class LargePrefixTest : public PrivateZooKeeperTest<DefaultFlags> {
 protected:
  static constexpr int kValues = 6;
  static constexpr size_t kValueBytes = 900 * 1000;

  static std::string ValueOf(int i) {
    std::string value(kValueBytes, static_cast<char>('a' + i));
    value += absl::StrCat("#", i);
    return value;
  }
};

TEST_F(LargePrefixTest, IsListedCompletelyThroughPages) {
  auto config = v1::ConfigService::NewStub(warrend_->channel());
  for (int i = 0; i < kValues; ++i) {
    grpc::Status put = Put(*config, absl::StrCat("big/list/k", i), ValueOf(i));
    ASSERT_TRUE(put.ok()) << put.error_message();
  }
  std::map<std::string, std::string> listed;
  std::string token;
  int pages = 0;
  do {
    v1::ListConfigRequest request;
    request.set_prefix("big/list");
    request.set_page_token(token);
    v1::ListConfigResponse page;
    grpc::Status status =
        config->ListConfig(CallContext().get(), request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_GT(page.entries_size(), 0);
    for (const auto& entry : page.entries()) {
      EXPECT_TRUE(listed.emplace(entry.key(), entry.value()).second)
          << entry.key() << " listed twice";
    }
    token = page.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 100);
  EXPECT_GT(pages, 1);
  // The prefix itself is a namespace node, not a key: not listed.
  ASSERT_EQ(listed.size(), static_cast<size_t>(kValues));
  for (int i = 0; i < kValues; ++i) {
    EXPECT_TRUE(listed[absl::StrCat("big/list/k", i)] == ValueOf(i)) << i;
  }
}

TEST_F(LargePrefixTest, IsWatchedCompletelyThenChangesArrive) {
  auto config = v1::ConfigService::NewStub(warrend_->channel());
  for (int i = 0; i < kValues; ++i) {
    grpc::Status put = Put(*config, absl::StrCat("big/watch/k", i), ValueOf(i));
    ASSERT_TRUE(put.ok()) << put.error_message();
  }
  WatchReader watch(config.get(), "big/watch", /*prefix=*/true);
  auto initial_done = [](const std::vector<v1::WatchConfigResponse>& rs) {
    for (const auto& r : rs) {
      if (r.initial_state()) return true;
    }
    return false;
  };
  ASSERT_TRUE(watch.WaitUntil(initial_done, absl::Seconds(60)));
  // Everything up to the response saying initial_state is the state.
  std::map<std::string, std::string> state;
  size_t responses = 0;
  for (const auto& r : watch.responses()) {
    ++responses;
    for (const auto& e : r.events()) {
      EXPECT_EQ(e.type(), v1::CONFIG_EVENT_TYPE_PUT);
      state[e.entry().key()] = e.entry().value();
    }
    if (r.initial_state()) break;
  }
  EXPECT_GT(responses, 1u);
  ASSERT_EQ(state.size(), static_cast<size_t>(kValues));
  for (int i = 0; i < kValues; ++i) {
    EXPECT_TRUE(state[absl::StrCat("big/watch/k", i)] == ValueOf(i)) << i;
  }
  ASSERT_TRUE(Put(*config, "big/watch/k2", "changed").ok());
  EXPECT_TRUE(watch.WaitForValue("big/watch/k2", "changed"));
}

}  // namespace
}  // namespace warren::testing

namespace warren::testing {
namespace {

// The C++ wrapper gathers the parts into one state before Start() returns
// (through a channel with gRPC's default 4 MiB receive limit).
TEST_F(LargePrefixTest, TheCppWatcherHoldsTheWholePrefix) {
  auto config = v1::ConfigService::NewStub(warrend_->channel());
  for (int i = 0; i < kValues; ++i) {
    grpc::Status put = Put(*config, absl::StrCat("big/cpp/k", i), ValueOf(i));
    ASSERT_TRUE(put.ok()) << put.error_message();
  }
  client::ConfigWatcherOptions options;
  options.key = "big/cpp";
  options.prefix = true;
  auto watcher = client::ConfigWatcher::Start(warrend_->channel(), options);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  auto snapshot = (*watcher)->Snapshot();
  ASSERT_EQ(snapshot.size(), static_cast<size_t>(kValues));
  for (int i = 0; i < kValues; ++i) {
    EXPECT_TRUE(snapshot[absl::StrCat("big/cpp/k", i)].value() == ValueOf(i))
        << i;
  }
}

}  // namespace
}  // namespace warren::testing
