// Registration (HoldKey) against the real warrend and ZooKeeper.
#include "warren/client/registration.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"
#include "warren/client/channel.h"
#include "warren/client/config_client.h"
#include "warren/client/config_watcher.h"

namespace warren::client::testing {
namespace {

namespace v1 = ::warren::v1;
using ::warren::testing::WaitFor;

// What a registration was told, as lines: "held <value>", "lost <reason>".
RegistrationOptions Options(const std::string& key, const std::string& value,
                            EventLog* events) {
  RegistrationOptions options;
  options.key = key;
  options.value = value;
  options.heartbeat_interval = absl::Milliseconds(500);
  options.backoff.initial = absl::Milliseconds(50);
  options.backoff.max = absl::Milliseconds(500);
  options.on_held = [events](const v1::ConfigEntry& entry) {
    events->Add(absl::StrCat("held ", entry.value()));
  };
  options.on_lost = [events](LossReason reason, const absl::Status&) {
    events->Add(absl::StrCat("lost ", LossReasonName(reason)));
  };
  return options;
}

struct Flags {
  static std::vector<std::string> Args() { return {"--log_level=warn"}; }
};

class RegistrationTest : public warren::testing::SharedWarrendTest<Flags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    channel_ = MakeChannel(warrend_->address());
  }
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(RegistrationTest, TheKeyExistsWhileOpenAndGoesOnClose) {
  ConfigClient config(channel_);
  const std::string prefix = UniqueName("cpp-services");
  const std::string key = prefix + "/api/instance-1";
  ConfigWatcherOptions watch;
  watch.key = prefix;
  watch.prefix = true;
  auto watcher = ConfigWatcher::Start(channel_, watch);
  ASSERT_TRUE(watcher.ok()) << watcher.status();

  EventLog events;
  auto registration =
      Registration::Start(channel_, Options(key, "10.0.0.7:8080", &events));
  ASSERT_TRUE(registration.ok()) << registration.status();
  EXPECT_TRUE((*registration)->held());
  ASSERT_TRUE((*registration)->entry().has_value());
  EXPECT_TRUE((*registration)->entry()->held());
  auto read = config.Get(key, /*consistent=*/true);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->value(), "10.0.0.7:8080");
  EXPECT_TRUE(read->held());
  ASSERT_TRUE(WaitFor([&] { return (*watcher)->Get(key).has_value(); },
                      absl::Seconds(30)));

  ASSERT_TRUE((*registration)->SetValue("10.0.0.7:9090").ok());
  ASSERT_TRUE(events.WaitFor("held 10.0.0.7:9090"));
  EXPECT_EQ(config.Get(key, true)->value(), "10.0.0.7:9090");

  (*registration)->Close();
  EXPECT_FALSE((*registration)->held());
  EXPECT_TRUE((*registration)->status().ok()) << (*registration)->status();
  EXPECT_EQ(config.Get(key, true).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WaitFor([&] { return !(*watcher)->Get(key).has_value(); },
                      absl::Seconds(30)));
  EXPECT_EQ(events.Count("lost"), 0u);
}

TEST_F(RegistrationTest, AnExistingKeyIsAlreadyExistsAndStaysAsItWas) {
  ConfigClient config(channel_);
  const std::string key = UniqueName("cpp-services/taken");
  ASSERT_TRUE(config.Put(key, "persistent").ok());
  EventLog events;
  auto refused = Registration::Start(channel_, Options(key, "mine", &events));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists)
      << refused.status();
  EXPECT_EQ(config.Get(key, true)->value(), "persistent");
  EXPECT_FALSE(config.Get(key, true)->held());

  // Someone else's held key as well.
  const std::string held_key = UniqueName("cpp-services/held");
  auto first = Registration::Start(channel_, Options(held_key, "1", &events));
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = Registration::Start(channel_, Options(held_key, "2", &events));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kAlreadyExists)
      << second.status();
  EXPECT_EQ(config.Get(held_key, true)->value(), "1");
}

// Fault tests: a warrend of their own.
class RegistrationFaultTest : public RegistrationTest {};

TEST_F(RegistrationFaultTest, TheKeyIsHeldAgainAfterAServerRestart) {
  auto warrend = RestartableWarrend::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  const std::string key = UniqueName("cpp-services/restart");
  EventLog events;
  auto registration = Registration::Start(channel, Options(key, "v", &events));
  ASSERT_TRUE(registration.ok()) << registration.status();
  EXPECT_EQ((*registration)->holds(), 1);

  // A graceful stop ends the stream (and deletes the key).
  EXPECT_EQ((*warrend)->Stop(), 0);
  ASSERT_TRUE(events.WaitFor("lost"));
  EXPECT_EQ(events.Lines().back(), "lost stream broken");
  EXPECT_FALSE((*registration)->held());

  ASSERT_TRUE((*warrend)->Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return (*registration)->holds() >= 2; },
                      absl::Seconds(30)));
  EXPECT_TRUE((*registration)->held());
  ConfigClient config(channel);
  auto read = config.Get(key, true);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->held());
  (*registration)->Close();
  EXPECT_EQ(config.Get(key, true).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RegistrationFaultTest, TheKeyIsHeldAgainAfterAKilledServer) {
  // A session long enough that the restarted warrend meets the dead one's
  // node: the re-hold is refused with ALREADY_EXISTS until it expires.
  auto warrend = RestartableWarrend::Start({"--zk_session_timeout=8s"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  const std::string key = UniqueName("cpp-services/killed");
  EventLog events;
  RegistrationOptions options = Options(key, "v", &events);
  options.on_stream_error = [&events](const absl::Status& status) {
    events.Add(absl::StrCat("ended ", absl::StatusCodeToString(status.code())));
  };
  auto registration = Registration::Start(channel, options);
  ASSERT_TRUE(registration.ok()) << registration.status();

  // kill -9: no clean stream end, the key stays with the dead session.
  (*warrend)->Kill();
  ASSERT_TRUE(events.WaitFor("lost"));
  EXPECT_FALSE((*registration)->held());
  ASSERT_TRUE((*warrend)->Restart().ok());

  ASSERT_TRUE(WaitFor([&] { return (*registration)->holds() >= 2; },
                      absl::Seconds(60)));
  EXPECT_TRUE((*registration)->held());
  EXPECT_TRUE((*registration)->status().ok()) << (*registration)->status();
  // The path this test is about was taken: refused while the dead
  // session's node lived, retried rather than given up.
  EXPECT_GE(events.Count("ended ALREADY_EXISTS"), 1u);
  ConfigClient config(channel);
  auto read = config.Get(key, true);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->held());
  EXPECT_EQ(read->value(), "v");
  (*registration)->Close();
  EXPECT_TRUE((*registration)->status().ok()) << (*registration)->status();
  EXPECT_EQ(config.Get(key, true).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace warren::client::testing
