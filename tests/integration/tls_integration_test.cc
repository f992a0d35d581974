// Transport security end to end: the real warrend serving gRPC over TLS and
// mutual TLS with certificates made by openssl (scripts/tls-certs.sh) in a
// temporary directory, its reload of replaced certificate files, the rule
// that plaintext stays on loopback unless allowed, and warrend's own amqps://
// connection with a client certificate to the test RabbitMQ (scripts/test.sh
// starts it with an amqps listener that requires client certificates).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "warren/client/channel.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;
using ::testing::Not;

// A channel of its own (no subchannel shared with other channels, so that
// each one makes a fresh handshake) trusting `ca_pem`, presenting a client
// certificate when given one.
std::shared_ptr<grpc::Channel> TlsChannel(const std::string& address,
                                          const std::string& ca_pem,
                                          const std::string& cert_pem = "",
                                          const std::string& key_pem = "") {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  ssl.pem_cert_chain = cert_pem;
  ssl.pem_private_key = key_pem;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
}

std::shared_ptr<grpc::Channel> PlaintextChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

// One health check; OK only when the call went through and the server said
// SERVING.
grpc::Status Health(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status =
      stub->Check(CallContext(absl::Seconds(10)).get(), request, &response);
  if (status.ok() &&
      response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not SERVING");
  }
  return status;
}

// warrend on a listen address the harness does not handle (0.0.0.0): run
// until it prints where it serves; killed on destruction.
class ListeningWarrend {
 public:
  explicit ListeningWarrend(std::vector<std::string> args) {
    args.insert(args.begin(), WARREN_WARREND_PATH);
    args.push_back(absl::StrCat("--root=/warren-tls-test-", getpid()));
    ChildProcess::Options options;
    options.dir_prefix = "warrend-any";
    child_ = ChildProcess::Start(args, options);
  }
  // The port once it serves on `host` (0 if it exited or took too long).
  int AwaitPort(const std::string& host) {
    int port = 0;
    WaitFor(
        [&] {
          if (child_->Exited()) return true;
          for (absl::string_view line :
               absl::StrSplit(child_->Stdout(), '\n')) {
            if (absl::ConsumePrefix(
                    &line, absl::StrCat("warrend is serving on ", host, ":"))) {
              return absl::SimpleAtoi(line, &port);
            }
          }
          return false;
        },
        absl::Seconds(60));
    return port;
  }
  std::string Log() const { return child_->Stderr(); }

 private:
  std::unique_ptr<ChildProcess> child_;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new Pki;
    pki_->Make("ca", "server-ca");
    pki_->Make("server", "server", "server-ca");
    pki_->Make("ca", "client-ca");
    pki_->Make("client", "client", "client-ca");
    pki_->Make("ca", "other-ca");
    pki_->Make("server", "other-server", "other-ca");
    pki_->Make("client", "other-client", "other-ca");
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  static std::vector<std::string> ServerTls(const std::string& name) {
    return {"--tls_cert_file=" + pki_->crt(name),
            "--tls_key_file=" + pki_->key(name)};
  }
  static std::string Pem(const std::string& path) { return pki_->pem(path); }

  static inline Pki* pki_ = nullptr;
};

TEST_F(TlsTest, ServesTlsToClientsThatTrustItsCa) {
  auto warrend = WarrendProcess::Start(ServerTls("server"));
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string address = (*warrend)->address();

  EXPECT_TRUE(Health(TlsChannel(address, Pem(pki_->crt("server-ca")))).ok());
  // A client that does not trust the server's CA refuses the handshake.
  const grpc::Status untrusted =
      Health(TlsChannel(address, Pem(pki_->crt("other-ca"))));
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE)
      << untrusted.error_message();
  // Plaintext is not served on a TLS port.
  EXPECT_EQ(Health(PlaintextChannel(address)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // No client certificate is asked for: one from an unknown CA is ignored.
  EXPECT_TRUE(Health(TlsChannel(address, Pem(pki_->crt("server-ca")),
                                Pem(pki_->crt("other-client")),
                                Pem(pki_->key("other-client"))))
                  .ok());
}

TEST_F(TlsTest, MutualTlsAcceptsOnlyCertificatesOfTheClientCa) {
  auto args = ServerTls("server");
  args.push_back("--tls_client_ca_file=" + pki_->crt("client-ca"));
  auto warrend = WarrendProcess::Start(args);
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string address = (*warrend)->address();
  const std::string ca = Pem(pki_->crt("server-ca"));

  EXPECT_TRUE(Health(TlsChannel(address, ca, Pem(pki_->crt("client")),
                                Pem(pki_->key("client"))))
                  .ok());
  const grpc::Status anonymous = Health(TlsChannel(address, ca));
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAVAILABLE)
      << anonymous.error_message();
  const grpc::Status foreign =
      Health(TlsChannel(address, ca, Pem(pki_->crt("other-client")),
                        Pem(pki_->key("other-client"))));
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::UNAVAILABLE)
      << foreign.error_message();
}

TEST_F(TlsTest, RequestModeLetsAnonymousClientsInButChecksPresentedOnes) {
  auto args = ServerTls("server");
  args.push_back("--tls_client_ca_file=" + pki_->crt("client-ca"));
  args.push_back("--tls_client_auth=request");
  auto warrend = WarrendProcess::Start(args);
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string address = (*warrend)->address();
  const std::string ca = Pem(pki_->crt("server-ca"));

  EXPECT_TRUE(Health(TlsChannel(address, ca)).ok());
  EXPECT_TRUE(Health(TlsChannel(address, ca, Pem(pki_->crt("client")),
                                Pem(pki_->key("client"))))
                  .ok());
  EXPECT_EQ(Health(TlsChannel(address, ca, Pem(pki_->crt("other-client")),
                              Pem(pki_->key("other-client"))))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ReplacedCertificateFilesAreServedToNewConnections) {
  // warrend reads copies that the test replaces, as a Secret rotation would.
  const std::string dir = MakeTempDir("warren-rotate");
  const std::string crt = dir + "/tls.crt";
  const std::string key = dir + "/tls.key";
  auto copy = [](const std::string& from, const std::string& to) {
    const std::string tmp = to + ".new";
    std::ofstream(tmp) << ReadFile(from);
    ASSERT_EQ(std::rename(tmp.c_str(), to.c_str()), 0);
  };
  copy(pki_->crt("server"), crt);
  copy(pki_->key("server"), key);
  auto warrend =
      WarrendProcess::Start({"--tls_cert_file=" + crt, "--tls_key_file=" + key,
                             "--tls_reload_interval=1s"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string address = (*warrend)->address();
  const std::string old_ca = Pem(pki_->crt("server-ca"));
  const std::string new_ca = Pem(pki_->crt("other-ca"));
  ASSERT_TRUE(Health(TlsChannel(address, old_ca)).ok());
  ASSERT_FALSE(Health(TlsChannel(address, new_ca)).ok());

  // A pair from another CA, each file replaced by a rename.
  copy(pki_->key("other-server"), key);
  copy(pki_->crt("other-server"), crt);
  EXPECT_TRUE(WaitFor([&] { return Health(TlsChannel(address, new_ca)).ok(); },
                      absl::Seconds(30)))
      << (*warrend)->Log();
  EXPECT_FALSE(Health(TlsChannel(address, old_ca)).ok());

  // SIGHUP checks the files at once and says so; warrend keeps serving.
  (*warrend)->Signal(SIGHUP);
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains((*warrend)->Log(), "TLS files are valid");
      },
      absl::Seconds(10)))
      << (*warrend)->Log();
  EXPECT_TRUE(Health(TlsChannel(address, new_ca)).ok());
}

TEST_F(TlsTest, UnusableCertificateFilesStopStartUpWithTheSettingNamed) {
  auto args = TestBackendFlags();
  args.push_back("--tls_cert_file=" + pki_->dir() + "/missing.crt");
  args.push_back("--tls_key_file=" + pki_->key("server"));
  ExitResult missing = RunWarrendToExit(args);
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(StartupFailureLine(missing),
              HasSubstr("tls_cert_file " + pki_->dir() + "/missing.crt"));

  // A key that belongs to another certificate.
  args = TestBackendFlags();
  args.push_back("--tls_cert_file=" + pki_->crt("server"));
  args.push_back("--tls_key_file=" + pki_->key("other-server"));
  ExitResult mismatched = RunWarrendToExit(args);
  EXPECT_EQ(mismatched.code, 1);
  EXPECT_THAT(StartupFailureLine(mismatched),
              HasSubstr("tls_key_file " + pki_->key("other-server") +
                        ": is not the key of the certificate"));

  // A client CA file that holds no certificate.
  args = TestBackendFlags();
  for (auto& a : ServerTls("server")) args.push_back(a);
  args.push_back("--tls_client_ca_file=" + pki_->key("client-ca"));
  ExitResult not_a_ca = RunWarrendToExit(args);
  EXPECT_EQ(not_a_ca.code, 1);
  EXPECT_THAT(StartupFailureLine(not_a_ca),
              HasSubstr("tls_client_ca_file " + pki_->key("client-ca") +
                        ": holds no PEM certificate"));
}

TEST_F(TlsTest, PlaintextOnANonLoopbackAddressNeedsTheOptIn) {
  auto args = TestBackendFlags();
  args.push_back("--listen=0.0.0.0:0");
  ExitResult refused = RunWarrendToExit(args);
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(StartupFailureLine(refused),
              HasSubstr("listen 0.0.0.0:0 is not a loopback address and TLS "
                        "is off"));
  EXPECT_THAT(StartupFailureLine(refused), HasSubstr("allow_insecure_listen"));

  args = TestBackendFlags();
  args.push_back("--listen=0.0.0.0:0");
  args.push_back("--allow_insecure_listen");
  ListeningWarrend allowed(args);
  const int port = allowed.AwaitPort("0.0.0.0");
  ASSERT_GT(port, 0) << allowed.Log();
  EXPECT_TRUE(Health(PlaintextChannel(absl::StrCat("127.0.0.1:", port))).ok());
}

TEST_F(TlsTest, TlsMayListenOnEveryInterfaceWithoutTheOptIn) {
  auto args = TestBackendFlags();
  args.push_back("--listen=0.0.0.0:0");
  for (auto& a : ServerTls("server")) args.push_back(a);
  ListeningWarrend warrend(args);
  const int port = warrend.AwaitPort("0.0.0.0");
  ASSERT_GT(port, 0) << warrend.Log();
  EXPECT_TRUE(Health(TlsChannel(absl::StrCat("127.0.0.1:", port),
                                Pem(pki_->crt("server-ca"))))
                  .ok());
}

// The C++ client library and the `warren` CLI reach a mutual-TLS warrend
// with their TLS options.
TEST_F(TlsTest, ClientLibraryAndCliConnectWithTheirTlsOptions) {
  auto args = ServerTls("server");
  args.push_back("--tls_client_ca_file=" + pki_->crt("client-ca"));
  auto warrend = WarrendProcess::Start(args);
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string address = (*warrend)->address();

  client::TlsOptions tls;
  tls.ca_file = pki_->crt("server-ca");
  tls.cert_file = pki_->crt("client");
  tls.key_file = pki_->key("client");
  auto channel = client::MakeChannel(address, tls);
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_TRUE(Health(*channel).ok());
  tls.ca_file = pki_->dir() + "/missing.crt";
  auto missing = client::MakeChannel(address, tls);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("missing.crt"));

  const std::string dir = MakeTempDir("warren-cli-tls");
  auto cli = [&](const std::string& tls_flags) {
    const std::string command = absl::StrCat(
        "'", WARREN_CLI_PATH, "' --server=", address, " ", tls_flags,
        " config list >'", dir, "/out' 2>'", dir, "/err'");
    const int rc = std::system(command.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  const std::string ca = "--tls_ca=" + pki_->crt("server-ca");
  EXPECT_EQ(cli(absl::StrCat(ca, " --tls_cert=", pki_->crt("client"),
                             " --tls_key=", pki_->key("client"))),
            0)
      << ReadFile(dir + "/err");
  EXPECT_NE(cli(ca), 0);
  EXPECT_THAT(ReadFile(dir + "/err"), HasSubstr("UNAVAILABLE"));
  EXPECT_NE(cli(""), 0);  // plaintext to a TLS port
}

// warrend's connection to RabbitMQ over amqps://, to the test broker that
// requires a client certificate signed by its CA.
TEST(AmqpsTest, ClientCertificateCarriesPublishAndSubscribe) {
  const std::string url = TestEnv("WARREN_TEST_AMQPS_URL");
  const std::string ca = TestEnv("WARREN_TEST_AMQPS_CA");
  ASSERT_TRUE(absl::StartsWith(url, "amqps://")) << url;
  auto warrend = WarrendProcess::Start(
      {"--amqp_urls=" + url, "--amqp_ca_file=" + ca,
       "--amqp_cert_file=" + TestEnv("WARREN_TEST_AMQPS_CERT"),
       "--amqp_key_file=" + TestEnv("WARREN_TEST_AMQPS_KEY")});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  EXPECT_TRUE(Health((*warrend)->channel()).ok());

  auto stub = v1::MessagingService::NewStub((*warrend)->channel());
  const std::string key = absl::StrCat("tls.amqps.", getpid());
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("amq.topic");
  start.mutable_topic()->add_binding_keys(key);
  TestSubscriber subscriber(*stub, start);
  ASSERT_FALSE(subscriber.WaitSubscribed().empty());
  v1::PublishRequest publish;
  publish.set_exchange("amq.topic");
  publish.set_routing_key(key);
  publish.set_payload("over amqps");
  v1::PublishResponse published;
  const grpc::Status status =
      stub->Publish(CallContext().get(), publish, &published);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(subscriber.WaitDeliveries(1));
  EXPECT_EQ(subscriber.deliveries()[0].payload(), "over amqps");
  EXPECT_EQ(subscriber.deliveries()[0].message_id(), published.message_id());
}

TEST(AmqpsTest, WithoutAClientCertificateTheBrokerRefusesAndStartUpFails) {
  const std::string url = TestEnv("WARREN_TEST_AMQPS_URL");
  ExitResult result = RunWarrendToExit(
      {"--zk_connect=" + TestEnv("WARREN_TEST_ZK"), "--amqp_urls=" + url,
       "--amqp_ca_file=" + TestEnv("WARREN_TEST_AMQPS_CA"),
       "--backend_wait=3s"});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(StartupFailureLine(result),
              HasSubstr("could not connect to RabbitMQ"));
  // The log says why: the broker ended the TLS session at login.
  EXPECT_THAT(result.stderr_text, HasSubstr("login failed: a SSL error"));
  EXPECT_THAT(result.stderr_text, Not(HasSubstr("guest:guest")));
}

TEST(AmqpsTest, UnusableClientCertificateStopsStartUpWithTheSettingNamed) {
  ExitResult result = RunWarrendToExit(
      {"--zk_connect=" + TestEnv("WARREN_TEST_ZK"),
       "--amqp_urls=" + TestEnv("WARREN_TEST_AMQPS_URL"),
       "--amqp_cert_file=" + TestEnv("WARREN_TEST_AMQPS_CERT"),
       "--amqp_key_file=" + TestEnv("WARREN_TEST_AMQPS_CERT")});
  EXPECT_EQ(result.code, 1);
  EXPECT_THAT(StartupFailureLine(result),
              HasSubstr("amqp_key_file " + TestEnv("WARREN_TEST_AMQPS_CERT") +
                        ": holds no unencrypted PEM private key"));
}

}  // namespace
}  // namespace warren::testing
