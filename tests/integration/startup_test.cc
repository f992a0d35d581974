// warrend's start-up failure modes: each exits non-zero with one clear line.
// And what it says when asked (--help, --version) before it starts at all.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace warren::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// --help works on a machine with no backends and no settings: it lists
// Warren's own settings by group, with defaults and variables, and exits 0.
TEST(StartupTest, HelpListsWarrensSettingsGroupedAndExitsZero) {
  ExitResult result = RunWarrendToExit({"--help"}, absl::Seconds(10));
  EXPECT_EQ(result.code, 0) << result.stderr_text;
  EXPECT_THAT(result.stdout_text, Not(HasSubstr("No flags matched")));
  for (const char* expected :
       {"Listen and TLS:", "Backends:", "Auth:", "Limits:", "Streams:",
        "Logging and metrics:",
        "--zk_connect=127.0.0.1:2181  [WARREN_ZK_CONNECT]",
        "--amqp_max_connections=8  [WARREN_AMQP_MAX_CONNECTIONS]",
        "--auth_policy_file=\"\"  [WARREN_AUTH_POLICY_FILE]",
        "--log_level=info  [WARREN_LOG_LEVEL]", "--helpfull"}) {
    EXPECT_THAT(result.stdout_text, HasSubstr(expected));
  }
  // --helpfull still lists everything, gRPC's and Abseil's flags too.
  ExitResult full = RunWarrendToExit({"--helpfull"}, absl::Seconds(10));
  EXPECT_THAT(full.stdout_text + full.stderr_text, HasSubstr("--flagfile"));
  EXPECT_THAT(full.stdout_text + full.stderr_text, HasSubstr("--zk_connect"));
}

TEST(StartupTest, VersionPrintsWarrenAndLibraryVersionsAndExitsZero) {
  ExitResult result = RunWarrendToExit({"--version"}, absl::Seconds(10));
  EXPECT_EQ(result.code, 0) << result.stderr_text;
  EXPECT_THAT(result.stdout_text, ::testing::StartsWith("warrend 0."));
  for (const char* library :
       {"gRPC 1.", "protobuf 3.", "ZooKeeper C client 3.", "rabbitmq-c 0."}) {
    EXPECT_THAT(result.stdout_text, HasSubstr(library));
  }
}

TEST(StartupTest, UnknownFlagExitsNonZero) {
  ExitResult result = RunWarrendToExit({"--no_such_flag=1"});
  EXPECT_NE(result.code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr("no_such_flag"));
}

TEST(StartupTest, MalformedFlagValueExitsNonZero) {
  ExitResult result = RunWarrendToExit({"--zk_session_timeout=soon"});
  EXPECT_NE(result.code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr("zk_session_timeout"));
}

TEST(StartupTest, InvalidSettingExitsWithOneClearLine) {
  auto args = TestBackendFlags();
  args.push_back("--root=relative/path");
  ExitResult result = RunWarrendToExit(args);
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(StartupFailureLine(result),
              HasSubstr("root must be an absolute path"));
}

TEST(StartupTest, UnreachableZooKeeperExitsAfterTheWait) {
  ExitResult result = RunWarrendToExit(
      {"--zk_connect=127.0.0.1:" + std::to_string(FreePort()),
       "--amqp_urls=" + TestEnv("WARREN_TEST_AMQP_URL"), "--backend_wait=2s"});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(StartupFailureLine(result),
              HasSubstr("could not connect to ZooKeeper"));
}

// With digest credentials too: the C client refuses to queue them while its
// first connection attempt fails, which once stopped start-up at once with
// "cannot use ZooKeeper connect string" (about one run in four).
TEST(StartupTest, UnreachableZooKeeperWithCredentialsWaitsLikeWithout) {
  const std::string auth = MakeTempDir("startup-zk-auth") + "/zk-auth";
  std::ofstream(auth) << "warren:startup-test-password\n";
  for (int run = 0; run < 8; ++run) {
    ExitResult result = RunWarrendToExit(
        {"--zk_connect=127.0.0.1:" + std::to_string(FreePort()),
         "--zk_auth_file=" + auth,
         "--amqp_urls=" + TestEnv("WARREN_TEST_AMQP_URL"),
         "--backend_wait=300ms"});
    EXPECT_EQ(result.code, 1);
    EXPECT_THAT(StartupFailureLine(result),
                HasSubstr("could not connect to ZooKeeper"))
        << "run " << run;
  }
}

TEST(StartupTest, UnreachableRabbitMqExitsAfterTheWait) {
  ExitResult result =
      RunWarrendToExit({"--zk_connect=" + TestEnv("WARREN_TEST_ZK"),
                        "--amqp_urls=amqp://guest:secret@127.0.0.1:" +
                            std::to_string(FreePort()) + "/",
                        "--backend_wait=2s"});
  EXPECT_EQ(result.code, 1);
  const std::string reason = StartupFailureLine(result);
  EXPECT_THAT(reason, HasSubstr("could not connect to RabbitMQ"));
  EXPECT_THAT(result.stderr_text, ::testing::Not(HasSubstr("secret")));
}

TEST(StartupTest, PortInUseExitsNonZero) {
  // Hold a listening socket on a loopback port for the duration.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  auto args = TestBackendFlags();
  args.push_back(absl::StrCat("--listen=127.0.0.1:", ntohs(addr.sin_port)));
  ExitResult result = RunWarrendToExit(args);
  close(fd);
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(StartupFailureLine(result),
              HasSubstr("cannot listen on 127.0.0.1:"));
}

// gRPC turns SO_REUSEPORT on by default: a second warrend on a running
// one's address would start, and the two would share its connections.
TEST(StartupTest, AnotherWarrendsAddressExitsNonZero) {
  auto first = WarrendProcess::Start();
  ASSERT_TRUE(first.ok()) << first.status();
  auto args = TestBackendFlags();
  args.push_back("--listen=" + (*first)->address());
  ExitResult result = RunWarrendToExit(args, absl::Seconds(30));
  EXPECT_EQ(result.code, 1) << result.stdout_text;
  EXPECT_THAT(StartupFailureLine(result),
              HasSubstr("cannot listen on " + (*first)->address()));
  EXPECT_THAT(result.stdout_text, ::testing::Not(HasSubstr("serving")));
}

TEST(StartupTest, BadConfigFileExitsNonZero) {
  const std::string dir = MakeTempDir("warren-config");
  const std::string path = dir + "/warren.yaml";
  FILE* f = fopen(path.c_str(), "w");
  fputs("listen: [unclosed\n", f);
  fclose(f);
  ExitResult result = RunWarrendToExit({"--config=" + path});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(StartupFailureLine(result), HasSubstr(path));
}

}  // namespace
}  // namespace warren::testing
