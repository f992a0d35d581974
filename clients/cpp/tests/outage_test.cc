// Reconnect after a long outage: a warrend of the test's own is killed
// (SIGKILL) under a Subscriber, a Publisher, a ConfigWatcher and an Elector,
// stays down for $WARREN_OUTAGE_SECONDS (default 40: long enough for gRPC's
// default reconnect backoff to have grown far beyond it), and comes back on
// the same port. Within 5 s of its return every wrapper must work again:
// the subscriber receives a message published after the return, the watcher
// reports a change put after it, the elector leads again, a publish
// succeeds. The measured recovery times are printed.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/common/mutex.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"
#include "warren/client/channel.h"
#include "warren/client/config_watcher.h"
#include "warren/client/elector.h"
#include "warren/client/publisher.h"
#include "warren/client/subscriber.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::client::testing {
namespace {

namespace v1 = ::warren::v1;
using ::warren::testing::TestEnv;

constexpr absl::Duration kRecoveryBound = absl::Seconds(5);

absl::Duration OutageFromEnv() {
  const char* text = std::getenv("WARREN_OUTAGE_SECONDS");
  int seconds = 40;
  if (text != nullptr && *text != '\0') {
    EXPECT_TRUE(absl::SimpleAtoi(text, &seconds)) << text;
  }
  return absl::Seconds(seconds);
}

// When each named event first happened, written from the wrappers' threads.
class Milestones {
 public:
  void Reach(const std::string& name) {
    warren::MutexLock lock(&mu_);
    times_.emplace(name, absl::Now());  // the first time counts
  }
  bool Reached(const std::string& name) const {
    warren::MutexLock lock(&mu_);
    return times_.count(name) > 0;
  }
  // Waits until `name` is reached or `deadline` passes.
  bool Await(const std::string& name, absl::Time deadline) const {
    warren::MutexLock lock(&mu_);
    auto reached = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return times_.count(name) > 0;
    };
    return mu_.AwaitWithDeadline(absl::Condition(&reached), deadline);
  }
  // How long after `since` it was reached (InfiniteDuration: never).
  absl::Duration After(const std::string& name, absl::Time since) const {
    warren::MutexLock lock(&mu_);
    auto it = times_.find(name);
    return it == times_.end() ? absl::InfiniteDuration() : it->second - since;
  }

 private:
  mutable warren::Mutex mu_;
  std::map<std::string, absl::Time> times_ ABSL_GUARDED_BY(mu_);
};

TEST(OutageTest, EveryWrapperWorksWithinFiveSecondsOfTheServersReturn) {
  const absl::Duration outage = OutageFromEnv();
  auto warrend = RestartableWarrend::Start({"--log_level=warn"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto channel = MakeChannel((*warrend)->address());
  const std::string queue = UniqueName("cpp-outage");
  const std::string key = absl::StrCat("cpp/", UniqueName("outage"));
  Milestones seen;

  SubscriberOptions subscriber_options;
  subscriber_options.start.set_queue(queue);
  auto subscriber = Subscriber::Start(
      channel, subscriber_options, [&](const v1::Delivery& delivery) {
        seen.Reach("received " + delivery.payload());
        return absl::OkStatus();
      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();

  ConfigWatcherOptions watcher_options;
  watcher_options.key = key;
  watcher_options.on_change = [&](const ConfigChange& change) {
    seen.Reach("changed " + change.value);
  };
  auto watcher = ConfigWatcher::Start(channel, watcher_options);
  ASSERT_TRUE(watcher.ok()) << watcher.status();

  int terms = 0;  // guarded by the Elector's callbacks never overlapping
  ElectorOptions elector_options;
  elector_options.election = UniqueName("cpp-outage");
  elector_options.on_elected = [&](const v1::Leader&) {
    seen.Reach(absl::StrCat("elected ", ++terms));
  };
  auto elector = Elector::Start(channel, elector_options);
  ASSERT_TRUE(elector.ok()) << elector.status();

  Publisher publisher(channel);
  auto config = v1::ConfigService::NewStub(channel);
  // Everything works before the outage.
  const absl::Time before = absl::Now() + absl::Seconds(30);
  ASSERT_TRUE(publisher.PublishToQueue(queue, "before").ok());
  warren::testing::PutConfigEventually(*config, key, "before");
  ASSERT_TRUE(seen.Await("received before", before));
  ASSERT_TRUE(seen.Await("changed before", before));
  ASSERT_TRUE(seen.Await("elected 1", before));

  (*warrend)->Kill();
  // The outage itself: nothing to wait for but time.
  absl::SleepFor(outage);
  ASSERT_TRUE((*warrend)->Restart().ok());
  const absl::Time back = absl::Now();

  std::thread publishing([&] {
    auto published = publisher.PublishToQueue(queue, "after");
    EXPECT_TRUE(published.ok()) << published.status();
    if (published.ok()) seen.Reach("published after");
  });
  warren::testing::PutConfigEventually(*config, key, "after");
  seen.Reach("put after");
  publishing.join();
  // Longer than the bound, so that a slow recovery is measured, not only
  // reported as missing.
  const absl::Time give_up = back + absl::Seconds(30);
  for (const char* name :
       {"received after", "changed after", "elected 2", "published after"}) {
    EXPECT_TRUE(seen.Await(name, give_up)) << name << " did not happen";
  }

  std::printf("after a %s outage, back after warrend's return:\n",
              absl::FormatDuration(outage).c_str());
  for (const char* name : {"published after", "received after", "put after",
                           "changed after", "elected 2"}) {
    const absl::Duration after = seen.After(name, back);
    std::printf("  %-16s %s\n", name, absl::FormatDuration(after).c_str());
    RecordProperty(name, absl::FormatDuration(after));
  }
  for (const char* name :
       {"published after", "received after", "changed after", "elected 2"}) {
    EXPECT_LE(seen.After(name, back), kRecoveryBound) << name;
  }
  (*elector)->Close();
  (*watcher)->Stop();
  (*subscriber)->Stop();
  auto admin =
      warren::testing::AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE((*admin)->DeleteQueue(queue).ok());
}

}  // namespace
}  // namespace warren::client::testing
