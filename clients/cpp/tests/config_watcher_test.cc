// ConfigWatcher against the real warrend and ZooKeeper.
#include "warren/client/config_watcher.h"

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"
#include "warren/client/channel.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::client::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using ::warren::testing::CallContext;
using ::warren::testing::WaitFor;

// A change as one line: "put key=value", "delete key" (+ " reconciled").
std::string Line(const ConfigChange& c) {
  std::string line = c.type == ConfigChange::Type::kPut
                         ? absl::StrCat("put ", c.key, "=", c.value)
                         : absl::StrCat("delete ", c.key);
  if (c.reconciled) absl::StrAppend(&line, " reconciled");
  return line;
}

void Put(v1::ConfigService::Stub& stub, const std::string& key,
         const std::string& value) {
  v1::PutConfigRequest request;
  request.set_key(key);
  request.set_value(value);
  v1::PutConfigResponse response;
  auto status = stub.PutConfig(CallContext().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
}

void Delete(v1::ConfigService::Stub& stub, const std::string& key) {
  v1::DeleteConfigRequest request;
  request.set_key(key);
  request.set_recursive(true);
  v1::DeleteConfigResponse response;
  auto status = stub.DeleteConfig(CallContext().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
}

std::map<std::string, std::string> Values(const ConfigWatcher& watcher) {
  std::map<std::string, std::string> out;
  for (const auto& [key, entry] : watcher.Snapshot()) out[key] = entry.value();
  return out;
}

ConfigWatcherOptions Options(const std::string& key, bool prefix,
                             EventLog* changes) {
  ConfigWatcherOptions options;
  options.key = key;
  options.prefix = prefix;
  options.backoff.initial = absl::Milliseconds(50);
  options.backoff.max = absl::Milliseconds(500);
  options.on_change = [changes](const ConfigChange& c) {
    changes->Add(Line(c));
  };
  return options;
}

struct Flags {
  static std::vector<std::string> Args() { return {"--log_level=warn"}; }
};

class ConfigWatcherTest : public warren::testing::SharedWarrendTest<Flags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    channel_ = MakeChannel(warrend_->address());
    stub_ = v1::ConfigService::NewStub(channel_);
    base_ = absl::StrCat("cpp/", UniqueName("watch"));
  }
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ConfigService::Stub> stub_;
  std::string base_;
};

TEST_F(ConfigWatcherTest, KeepsTheLatestValueOfAKey) {
  const std::string key = base_ + "/greeting";
  Put(*stub_, key, "v1");
  EventLog changes;
  auto watcher = ConfigWatcher::Start(channel_, Options(key, false, &changes));
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  EXPECT_EQ((*watcher)->Value(), "v1");
  EXPECT_TRUE(changes.Lines().empty());  // the first state is no change

  Put(*stub_, key, "v2");
  ASSERT_TRUE(changes.WaitFor("put " + key + "=v2"));
  EXPECT_EQ((*watcher)->Value(), "v2");
  Delete(*stub_, key);
  ASSERT_TRUE(changes.WaitFor("delete " + key));
  EXPECT_EQ((*watcher)->Value(), std::nullopt);
  EXPECT_THAT(changes.Lines(),
              ElementsAre("put " + key + "=v2", "delete " + key));
}

TEST_F(ConfigWatcherTest, SeesAKeyCreatedLater) {
  const std::string key = base_ + "/later";
  EventLog changes;
  auto watcher = ConfigWatcher::Start(channel_, Options(key, false, &changes));
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  EXPECT_EQ((*watcher)->Value(), std::nullopt);
  Put(*stub_, key, "here");
  ASSERT_TRUE(changes.WaitFor("put " + key + "=here"));
  EXPECT_EQ((*watcher)->Value(), "here");
}

TEST_F(ConfigWatcherTest, KeepsAMapOfAPrefix) {
  Put(*stub_, base_ + "/a", "1");
  Put(*stub_, base_ + "/b", "2");
  EventLog changes;
  auto watcher = ConfigWatcher::Start(channel_, Options(base_, true, &changes));
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  // Only the keys put: their parent is a namespace, not a key.
  EXPECT_THAT(Values(**watcher), UnorderedElementsAre(Pair(base_ + "/a", "1"),
                                                      Pair(base_ + "/b", "2")));
  Put(*stub_, base_ + "/c/d", "3");
  ASSERT_TRUE(changes.WaitFor("put " + base_ + "/c/d=3"));
  Delete(*stub_, base_ + "/a");
  ASSERT_TRUE(changes.WaitFor("delete " + base_ + "/a"));
  EXPECT_EQ((*watcher)->Get(base_ + "/b"), "2");
  EXPECT_EQ((*watcher)->Get(base_ + "/a"), std::nullopt);
  EXPECT_EQ((*watcher)->Snapshot().count(base_ + "/c/d"), 1u);
  EXPECT_EQ((*watcher)->Snapshot().count(base_ + "/c"), 0u);
  EXPECT_EQ((*watcher)->Snapshot().count(base_ + "/a"), 0u);
}

TEST_F(ConfigWatcherTest, InvalidKeyFailsAtStart) {
  // INVALID_ARGUMENT is fatal (clients/retry-policy.json): the watcher stops
  // after the first stream, long before start_timeout.
  EventLog changes;
  EventLog errors;
  ConfigWatcherOptions options = Options("bad//key", false, &changes);
  options.on_stream_error = [&](const absl::Status& s) {
    errors.Add(absl::StatusCodeToString(s.code()));
  };
  const absl::Time start = absl::Now();
  auto watcher = ConfigWatcher::Start(channel_, options);
  EXPECT_EQ(watcher.status().code(), absl::StatusCode::kInvalidArgument)
      << watcher.status();
  EXPECT_LT(absl::Now() - start, options.start_timeout / 2);
  EXPECT_THAT(errors.Lines(), ElementsAre("INVALID_ARGUMENT"));
}

class ConfigWatcherFaultTest : public ConfigWatcherTest {};

TEST_F(ConfigWatcherFaultTest, WatchesAgainAndReconcilesAfterRestart) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  auto stub = v1::ConfigService::NewStub(channel);
  Put(*stub, base_ + "/kept", "same");
  Put(*stub, base_ + "/changed", "old");
  Put(*stub, base_ + "/deleted", "gone soon");
  EventLog changes;
  EventLog errors;
  ConfigWatcherOptions options = Options(base_, true, &changes);
  options.on_stream_error = [&](const absl::Status& s) {
    errors.Add(absl::StatusCodeToString(s.code()));
  };
  auto watcher = ConfigWatcher::Start(channel, options);
  ASSERT_TRUE(watcher.ok()) << watcher.status();
  ASSERT_EQ((*watcher)->Snapshot().size(), 3u);  // the parent is no key

  // While the watcher's server is down, the state changes through another
  // server of the same cluster (same ZooKeeper root).
  ASSERT_EQ((*warrend)->Stop(), 0);
  ASSERT_TRUE(errors.WaitFor("UNAVAILABLE"));
  auto other = RestartableWarrend::Start({"--root=" + (*warrend)->root()});
  ASSERT_TRUE(other.ok()) << other.status();
  auto other_stub =
      v1::ConfigService::NewStub(MakeChannel((*other)->address()));
  Put(*other_stub, base_ + "/changed", "new");
  Delete(*other_stub, base_ + "/deleted");
  Put(*other_stub, base_ + "/created", "fresh");

  ASSERT_TRUE((*warrend)->Restart().ok());
  ASSERT_TRUE(
      WaitFor([&] { return (*watcher)->loads() >= 2; }, absl::Seconds(30)));
  // The differences are reported right after the new state is loaded.
  ASSERT_TRUE(
      WaitFor([&] { return changes.Lines().size() >= 3; }, absl::Seconds(10)));
  EXPECT_THAT(changes.Lines(),
              UnorderedElementsAre("put " + base_ + "/changed=new reconciled",
                                   "put " + base_ + "/created=fresh reconciled",
                                   "delete " + base_ + "/deleted reconciled"));
  EXPECT_THAT(Values(**watcher),
              UnorderedElementsAre(Pair(base_ + "/kept", "same"),
                                   Pair(base_ + "/changed", "new"),
                                   Pair(base_ + "/created", "fresh")));
  EXPECT_TRUE((*watcher)->status().ok());
}

TEST_F(ConfigWatcherFaultTest, ResourceExhaustedIsRetriedUntilASlotFrees) {
  // One watch per client: a second watcher is refused with
  // RESOURCE_EXHAUSTED, which every wrapper retries with backoff
  // (clients/retry-policy.json), and gets the slot once the first one stops.
  auto warrend = RestartableWarrend::Start({"--max_watches_per_client=1"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  EventLog changes;
  auto first =
      ConfigWatcher::Start(channel, Options(base_ + "/a", false, &changes));
  ASSERT_TRUE(first.ok()) << first.status();

  EventLog errors;
  ConfigWatcherOptions options = Options(base_ + "/b", false, &changes);
  options.on_stream_error = [&](const absl::Status& s) {
    errors.Add(absl::StatusCodeToString(s.code()));
  };
  absl::StatusOr<std::unique_ptr<ConfigWatcher>> second;
  std::thread starting(
      [&] { second = ConfigWatcher::Start(channel, options); });
  ASSERT_TRUE(WaitFor([&] { return errors.Count("RESOURCE_EXHAUSTED") >= 2; },
                      absl::Seconds(30)));
  (*first)->Stop();
  starting.join();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->loads(), 1);
  EXPECT_TRUE((*second)->status().ok());
  EXPECT_EQ(errors.Count("RESOURCE_EXHAUSTED"), errors.Lines().size());
}

}  // namespace
}  // namespace warren::client::testing
