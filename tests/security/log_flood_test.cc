// Logs that cannot be forged or flooded (issue: "log injection and disk
// filling with any valid token"). The attacks: a name holding a newline
// that forges a second log line, ANSI escapes that steer the operator's
// terminal, a 3.9 MB key repeated to fill the disk, and a flood of bad TLS
// handshakes, each of which gRPC itself logged. And two hygiene checks: a
// certificate about to expire is warned about and exported, and a token
// written where a key belongs is not echoed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/security/security_support.h"
#include "tests/util/http_get.h"
#include "tests/util/loopback.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing::security {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;
using ::testing::Not;

const Principal kMallory{"mallory", "mallory-token-3b9e1d7f5a2c4e6b8d0f"};

constexpr char kPolicy[] = R"yaml(principals:
  mallory:
    publish: ["mallory-ex"]
    config_read: ["mallory/**"]
)yaml";

// What a forged line would start with: warrend's own text-log prefix.
constexpr char kForged[] = "2026-12-07T00:00:00.000000Z I 1] forged: ";

std::vector<std::string> Lines(const std::string& log) {
  return absl::StrSplit(log, '\n');
}

class LogFloodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    files_ =
        std::make_unique<AuthFiles>(std::vector<Principal>{kMallory}, kPolicy);
    std::vector<std::string> flags = files_->Flags();
    // Room for the 3.9 MB request the attack sends.
    flags.push_back("--max_message_bytes=8388608");
    auto started = WarrendProcess::Start(flags);
    ASSERT_TRUE(started.ok()) << started.status();
    warrend_ = *std::move(started);
    auto channel = ChannelAs(warrend_->address(), kMallory.token);
    config_ = v1::ConfigService::NewStub(channel);
    messaging_ = v1::MessagingService::NewStub(channel);
  }

  std::unique_ptr<AuthFiles> files_;
  std::unique_ptr<WarrendProcess> warrend_;
  std::unique_ptr<v1::ConfigService::Stub> config_;
  std::unique_ptr<v1::MessagingService::Stub> messaging_;
};

TEST_F(LogFloodTest, ANewlineInANameCannotForgeALine) {
  // AMQP names may hold any byte, so this one passes validation and is
  // refused by the policy, whose refusal names it.
  v1::PublishRequest request;
  request.set_exchange(absl::StrCat("bob-ex\n", kForged, "mallory is admin"));
  request.set_payload("x");
  v1::PublishResponse response;
  grpc::Status status =
      messaging_->Publish(CallContext().get(), request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  ASSERT_TRUE(WaitFor(
      [&] { return absl::StrContains(warrend_->Log(), "forged: mallory"); },
      absl::Seconds(10)))
      << warrend_->Log();
  const std::string log = warrend_->Log();
  for (const std::string& line : Lines(log)) {
    EXPECT_FALSE(absl::StartsWith(line, kForged)) << line;
  }
  EXPECT_THAT(log, HasSubstr(absl::StrCat("bob-ex\\n", kForged)));
}

TEST_F(LogFloodTest, AnsiEscapesDoNotReachTheTerminal) {
  v1::PublishRequest request;
  request.set_exchange("\x1b[2J\x1b[31mred-ex\x1b[0m\x07");
  request.set_payload("x");
  v1::PublishResponse response;
  grpc::Status status =
      messaging_->Publish(CallContext().get(), request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(
      WaitFor([&] { return absl::StrContains(warrend_->Log(), "red-ex"); },
              absl::Seconds(10)))
      << warrend_->Log();
  const std::string log = warrend_->Log();
  EXPECT_THAT(log, Not(HasSubstr("\x1b"))) << "an escape byte reached the log";
  EXPECT_THAT(log, Not(HasSubstr("\x07")));
  EXPECT_THAT(log, HasSubstr("\\x1b[2J\\x1b[31mred-ex"));
}

TEST_F(LogFloodTest, HugeNamesAreRefusedWithoutBeingEchoed) {
  const size_t before = warrend_->Log().size();
  const std::string huge_key(3900000, 'k');
  const std::string huge_exchange(3900000, 'e');
  for (int i = 0; i < 20; ++i) {
    v1::GetConfigRequest get;
    get.set_key(absl::StrCat("mallory/", huge_key));
    v1::GetConfigResponse got;
    grpc::Status status = config_->GetConfig(CallContext().get(), get, &got);
    // INVALID_ARGUMENT before any authorization: the size is checked first.
    ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_LT(status.error_message().size(), 1000u);
    EXPECT_THAT(status.error_message(), HasSubstr("key is 3900008 bytes"));

    v1::PublishRequest publish;
    publish.set_exchange(huge_exchange);
    v1::PublishResponse published;
    status = messaging_->Publish(CallContext().get(), publish, &published);
    ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_LT(status.error_message().size(), 1000u);
  }
  // A name within the size limits but refused by the policy is echoed
  // capped (the refusal names it in the log and to the client).
  v1::PublishRequest long_name;
  long_name.set_exchange(std::string(255, 'n'));
  v1::PublishResponse published;
  grpc::Status denied =
      messaging_->Publish(CallContext().get(), long_name, &published);
  ASSERT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("... (255 bytes)"));
  // Every refusal is logged or counted, within a budget of bytes: 41 lines
  // of at most a few hundred bytes, not 156 MB.
  ASSERT_TRUE(WaitFor(
      [&] { return absl::StrContains(warrend_->Log(), "... (255 bytes)"); },
      absl::Seconds(10)))
      << warrend_->Log();
  EXPECT_LT(warrend_->Log().size() - before, 24u * 1024);
}

// One TCP connection that sends what is not a TLS ClientHello and reads
// until the server closes it (so the server has handled it, and logged
// whatever it logs, before the next one).
void BadHandshake(int port) {
  const int fd = ConnectToLoopback(port);
  ASSERT_GE(fd, 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_GT(write(fd, garbage, sizeof(garbage) - 1), 0);
  char buffer[512];
  while (read(fd, buffer, sizeof(buffer)) > 0) {
  }
  close(fd);
}

TEST(TlsLogFloodTest, BadHandshakesAddAtMostAFewKilobytes) {
  Pki pki;
  pki.Make("ca", "ca");
  pki.Make("server", "server", "ca");
  auto started = WarrendProcess::Start({"--tls_cert_file=" + pki.crt("server"),
                                        "--tls_key_file=" + pki.key("server")});
  ASSERT_TRUE(started.ok()) << started.status();
  auto& warrend = **started;
  const int port =
      std::stoi(warrend.address().substr(warrend.address().rfind(':') + 1));
  const size_t before = warrend.Log().size();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_NO_FATAL_FAILURE(BadHandshake(port));
  }
  const std::string added = warrend.Log().substr(before);
  // gRPC's own lines pass through warrend's bridge (escaped, capped,
  // budgeted): some are written, and they say what was held back.
  EXPECT_THAT(added, HasSubstr("grpc: "));
  EXPECT_LT(added.size(), 8u * 1024) << added.substr(0, 2000);
}

TEST(TlsHygieneTest, ACertificateThatExpiresSoonIsWarnedAboutAndExported) {
  Pki pki;
  pki.Make("ca", "ca");
  setenv("WARREN_CERT_DAYS", "3", 1);
  pki.Make("server", "server", "ca");
  unsetenv("WARREN_CERT_DAYS");
  const int metrics_port = FreePort();
  auto started = WarrendProcess::Start(
      {"--tls_cert_file=" + pki.crt("server"),
       "--tls_key_file=" + pki.key("server"),
       absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port)});
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_THAT((*started)->Log(),
              HasSubstr("the server certificate expires on"));
  const std::string metrics = HttpGet(metrics_port, "/metrics");
  EXPECT_THAT(metrics,
              HasSubstr("warren_tls_certificate_expiry_timestamp_seconds "));
}

TEST(TokenFileHygieneTest, ATokenWrittenAsAKeyIsNotEchoedAtStartUp) {
  const std::string dir = MakeTempDir("warren-token-key");
  const std::string secret = "s3cret-token-written-as-a-key-0123456789";
  ReplaceFile(dir + "/tokens.yaml",
              absl::StrCat("tokens:\n  - principal: a\n    ", secret, ":\n"));
  std::vector<std::string> args = {"--auth_tokens_file=" + dir + "/tokens.yaml",
                                   "--listen=127.0.0.1:0"};
  for (const std::string& flag : TestBackendFlags()) args.push_back(flag);
  ExitResult result = RunWarrendToExit(args);
  EXPECT_NE(result.code, 0);
  EXPECT_THAT(result.stderr_text, HasSubstr("unknown field of"));
  EXPECT_THAT(result.stderr_text + result.stdout_text, Not(HasSubstr(secret)));
}

}  // namespace
}  // namespace warren::testing::security
