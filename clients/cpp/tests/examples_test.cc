// The example programs, run as users run them (subprocesses with
// WARREN_ADDRESS), with assertions on what they print.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::client::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;
using ::warren::testing::CallContext;
using ::warren::testing::TestEnv;
using ::warren::testing::WaitFor;

// The text between `before` and the next `after` in `text`, or "".
std::string Between(const std::string& text, const std::string& before,
                    const std::string& after) {
  const size_t start = text.find(before);
  if (start == std::string::npos) return "";
  const size_t from = start + before.size();
  const size_t end = text.find(after, from);
  return end == std::string::npos ? "" : text.substr(from, end - from);
}

struct Flags {
  static std::vector<std::string> Args() { return {"--log_level=warn"}; }
};

class ExamplesTest : public warren::testing::SharedWarrendTest<Flags> {
 protected:
  std::string address() const { return warrend_->address(); }
};

TEST_F(ExamplesTest, HelloSendsAndReceivesTheGreeting) {
  const std::string queue = UniqueName("cpp-hello");
  auto hello =
      Child::Spawn(WARREN_EXAMPLE_HELLO, {"--queue=" + queue}, address());
  const int code = hello->Wait();
  const std::string out = hello->Output();
  EXPECT_EQ(code, 0) << out << hello->Errors();
  EXPECT_THAT(out, HasSubstr("subscribed to queue " + queue + "\n"));
  const std::string greeting = "\"Hello, Zookeeper & RabbitMQ!\"";
  const std::string sent =
      Between(out, "published " + greeting + " (message ", ")");
  const std::string got =
      Between(out, "received " + greeting + " (message ", ")");
  EXPECT_FALSE(sent.empty()) << out;
  EXPECT_EQ(got, sent) << out;
  EXPECT_THAT(out, HasSubstr("done\n"));
  auto admin =
      warren::testing::AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(*(*admin)->ReadyCount(queue), 0u);  // it was acked
  (void)(*admin)->DeleteQueue(queue);
}

TEST_F(ExamplesTest, CampaignElectsExactlyOneThenFailsOver) {
  const std::string election = UniqueName("cpp-campaign");
  std::vector<std::unique_ptr<Child>> runs;
  for (const char* id : {"alpha", "beta"}) {
    runs.push_back(Child::Spawn(
        WARREN_EXAMPLE_CAMPAIGN,
        {"--election=" + election, absl::StrCat("--candidate=", id),
         absl::StrCat("--value=", id, "-address"), "--heartbeat=500ms"},
        address()));
  }
  const std::vector<std::string> ids = {"alpha", "beta"};
  // One is elected, the other follows it.
  int leader = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < 2; ++i) {
          const int other = 1 - i;
          if (absl::StrContains(runs[i]->Output(), "elected: " + ids[i]) &&
              absl::StrContains(runs[other]->Output(),
                                "following: " + ids[i] + " leads (value \"" +
                                    ids[i] + "-address\"")) {
            leader = i;
            return true;
          }
        }
        return false;
      },
      absl::Seconds(30)))
      << runs[0]->Output() << runs[1]->Output();
  const int follower = 1 - leader;
  EXPECT_THAT(runs[follower]->Output(), ::testing::Not(HasSubstr("elected:")));

  // The leader resigns on SIGTERM; the follower takes over.
  runs[leader]->Signal(SIGTERM);
  EXPECT_EQ(runs[leader]->Wait(), 0);
  EXPECT_THAT(runs[leader]->Output(), HasSubstr("resigning\nlost: resigned\n"));
  ASSERT_TRUE(runs[follower]->WaitForOutput("elected: " + ids[follower]))
      << runs[follower]->Output();
  runs[follower]->Signal(SIGTERM);
  EXPECT_EQ(runs[follower]->Wait(), 0);
  EXPECT_THAT(runs[follower]->Output(), HasSubstr("done\n"));
}

TEST_F(ExamplesTest, ConfigPrintsTheValueAndEveryChange) {
  auto stub = v1::ConfigService::NewStub(warrend_->channel());
  const std::string key = absl::StrCat("cpp/", UniqueName("example"));
  auto put = [&](const std::string& value) {
    v1::PutConfigRequest request;
    request.set_key(key);
    request.set_value(value);
    v1::PutConfigResponse response;
    auto status = stub->PutConfig(CallContext().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  };
  put("first");
  auto config = Child::Spawn(WARREN_EXAMPLE_CONFIG,
                             {"--key=" + key, "--changes=2"}, address());
  ASSERT_TRUE(config->WaitForOutput("value: " + key + " = first (version 0)"))
      << config->Output() << config->Errors();
  put("second");
  ASSERT_TRUE(
      config->WaitForOutput("changed: " + key + " = second (version 1)"))
      << config->Output();
  v1::DeleteConfigRequest request;
  request.set_key(key);
  v1::DeleteConfigResponse response;
  ASSERT_TRUE(stub->DeleteConfig(CallContext().get(), request, &response).ok());
  // --changes=2: it exits by itself after the delete.
  EXPECT_EQ(config->Wait(), 0) << config->Output();
  EXPECT_THAT(config->Output(), HasSubstr("deleted: " + key + "\ndone\n"));
}

TEST_F(ExamplesTest, RequestReplyGetsTheAnswerOfItsResponder) {
  const std::string queue = UniqueName("cpp-request-reply");
  auto run = Child::Spawn(WARREN_EXAMPLE_REQUEST_REPLY,
                          {"--queue=" + queue, "--question=what time is it"},
                          address());
  EXPECT_EQ(run->Wait(), 0) << run->Output() << run->Errors();
  EXPECT_THAT(run->Output(), HasSubstr("responding on queue " + queue + "\n"));
  EXPECT_THAT(run->Output(),
              HasSubstr("responder: request \"what time is it\""));
  EXPECT_THAT(run->Output(), HasSubstr("reply: \"WHAT TIME IS IT\"\n"));
  auto admin =
      warren::testing::AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok());
  EXPECT_EQ(*(*admin)->ReadyCount(queue), 0u);  // the request was acked
  (void)(*admin)->DeleteQueue(queue);
}

TEST_F(ExamplesTest, ReplayReadsAStreamAndResumesWhereItStopped) {
  const std::string stream = UniqueName("cpp-replay");
  auto first = Child::Spawn(WARREN_EXAMPLE_REPLAY,
                            {"--stream=" + stream, "--publish=3"}, address());
  ASSERT_EQ(first->Wait(), 0) << first->Output() << first->Errors();
  const std::string out = first->Output();
  EXPECT_THAT(out, HasSubstr("offset 0: run-"));
  EXPECT_THAT(out, HasSubstr(" event 2\nnext: --from=3\n"));

  // From the offset it printed: only the new event, nothing read twice.
  auto second = Child::Spawn(WARREN_EXAMPLE_REPLAY,
                             {"--stream=" + stream, "--from=3", "--publish=1"},
                             address());
  ASSERT_EQ(second->Wait(), 0) << second->Output() << second->Errors();
  const std::vector<std::string> lines =
      absl::StrSplit(second->Output(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << second->Output();
  EXPECT_THAT(lines[0], ::testing::StartsWith("offset 3: run-"));
  EXPECT_EQ(lines[1], "next: --from=4");
  auto admin =
      warren::testing::AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok());
  (void)(*admin)->DeleteQueue(stream);
}

}  // namespace
}  // namespace warren::client::testing
