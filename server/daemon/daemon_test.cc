#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/daemon/options.h"

namespace warren::daemon {
namespace {

using ::testing::HasSubstr;

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = std::string(::testing::TempDir()) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

// absl flags are process-wide, so the precedence rules are checked in one
// pass: the file sets three settings, the environment overrides two of them,
// the command line overrides one of those.
TEST(LoadOptionsTest, FlagsBeatEnvironmentBeatFile) {
  const std::string file = WriteTemp("warren.yaml",
                                     "listen: 127.0.0.1:6000\n"
                                     "zk_connect: file:1\n"
                                     "root: /from-file\n"
                                     "amqp_urls:\n"
                                     "  - amqp://a/\n"
                                     "  - amqp://b/\n");
  setenv("WARREN_ZK_CONNECT", "env:2", 1);
  setenv("WARREN_ROOT", "/from-env", 1);
  std::string config_flag = "--config=" + file;
  std::vector<std::string> args = {"warrend", config_flag, "--root=/from-flag"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  auto options = LoadOptions(static_cast<int>(argv.size()), argv.data());
  unsetenv("WARREN_ZK_CONNECT");
  unsetenv("WARREN_ROOT");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->listen, "127.0.0.1:6000");
  EXPECT_EQ(options->zk_connect, "env:2");
  EXPECT_EQ(options->root, "/from-flag");
  EXPECT_THAT(options->amqp_urls,
              ::testing::ElementsAre("amqp://a/", "amqp://b/"));
  EXPECT_EQ(options->zk_session_timeout, absl::Seconds(10));  // default
}

// Every flag of warrend (but --config itself) can also come from the file, so
// a deployment can keep all of its settings in one ConfigMap.
TEST(LoadOptionsTest, EveryFlagIsASettingOfTheFile) {
  std::string yaml;
  int flags = 0;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::EndsWith(flag->Filename(), "server/daemon/options.cc") ||
        name == "config") {
      continue;
    }
    ++flags;
    absl::StrAppend(&yaml, name, ": \"", flag->CurrentValue(), "\"\n");
  }
  ASSERT_GT(flags, 20);
  const std::string file = WriteTemp("every.yaml", yaml);
  std::string config_flag = "--config=" + file;
  std::vector<std::string> args = {"warrend", config_flag};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  auto options = LoadOptions(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(options.ok()) << options.status() << "\n" << yaml;
}

TEST(LoadOptionsTest, UnknownFileSettingIsNamed) {
  const std::string file = WriteTemp("bad.yaml", "listn: 1.2.3.4:5\n");
  std::string config_flag = "--config=" + file;
  std::vector<std::string> args = {"warrend", config_flag};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  auto options = LoadOptions(static_cast<int>(argv.size()), argv.data());
  ASSERT_FALSE(options.ok());
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(options.status().message(), HasSubstr("unknown setting 'listn'"));
}

TEST(LoadOptionsTest, MalformedEnvironmentValueIsNamed) {
  setenv("WARREN_ZK_SESSION_TIMEOUT", "ten seconds", 1);
  std::vector<std::string> args = {"warrend"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  auto options = LoadOptions(1, argv.data());
  unsetenv("WARREN_ZK_SESSION_TIMEOUT");
  ASSERT_FALSE(options.ok());
  EXPECT_THAT(options.status().message(),
              HasSubstr("WARREN_ZK_SESSION_TIMEOUT"));
}

// /metrics is plaintext and unauthenticated: like an exposed port that
// nobody meant to expose, a non-loopback address needs an explicit opt-in.
TEST(LoadOptionsTest, RemoteMetricsListenNeedsTheOptIn) {
  auto load = [](std::vector<std::string> args) {
    args.insert(args.begin(), "warrend");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    return LoadOptions(static_cast<int>(argv.size()), argv.data());
  };
  auto local = load({"--metrics_listen=127.0.0.1:9090"});
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_EQ(local->metrics_listen, "127.0.0.1:9090");

  auto remote = load({"--metrics_listen=0.0.0.0:9090"});
  ASSERT_FALSE(remote.ok());
  EXPECT_EQ(remote.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(remote.status().message(), HasSubstr("metrics_allow_remote"));

  auto allowed =
      load({"--metrics_listen=0.0.0.0:9090", "--metrics_allow_remote"});
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_TRUE(allowed->metrics_allow_remote);

  auto off = load({"--metrics_listen=", "--metrics_allow_remote=false"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->metrics_listen, "");  // the default: no metrics
}

}  // namespace
}  // namespace warren::daemon
