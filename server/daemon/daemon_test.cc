#include <amqp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zookeeper/zookeeper_version.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/logging.h"
#include "server/daemon/cert_expiry.h"
#include "server/daemon/health_service.h"
#include "server/daemon/listener.h"
#include "server/daemon/options.h"
#include "server/daemon/tls.h"
#include "tests/util/loopback.h"

namespace warren::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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
  EXPECT_EQ(options->serving.listener.address, "127.0.0.1:6000");
  EXPECT_EQ(options->zk.connect, "env:2");
  EXPECT_EQ(options->root, "/from-flag");
  EXPECT_THAT(options->amqp.urls,
              ::testing::ElementsAre("amqp://a/", "amqp://b/"));
  EXPECT_EQ(options->zk.session_timeout, absl::Seconds(10));  // default
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

// --help lists every setting exactly once, under its group, with its
// default and its variable: a new flag that no group names fails here.
TEST(HelpTextTest, EverySettingOnceInAGroupWithDefaultAndVariable) {
  const std::string help = HelpText();
  for (absl::string_view group :
       {"\nListen and TLS:\n", "\nBackends:\n", "\nAuth:\n", "\nLimits:\n",
        "\nStreams:\n", "\nLogging and metrics:\n"}) {
    EXPECT_THAT(help, HasSubstr(group));
  }
  int settings = 0;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!absl::EndsWith(flag->Filename(), "server/daemon/options.cc")) {
      continue;
    }
    ++settings;
    const std::string value = flag->DefaultValue();
    const std::string line =
        absl::StrCat("\n  --", name, "=", value.empty() ? "\"\"" : value,
                     "  [WARREN_", absl::AsciiStrToUpper(name), "]\n");
    size_t first = help.find(line);
    EXPECT_NE(first, std::string::npos) << line;
    EXPECT_EQ(help.find(line, first + 1), std::string::npos)
        << name << " is listed twice";
  }
  ASSERT_GT(settings, 50);
  EXPECT_THAT(help, HasSubstr("--listen=127.0.0.1:50051  [WARREN_LISTEN]"));
  EXPECT_THAT(help, HasSubstr("--max_watches=10000  [WARREN_MAX_WATCHES]"));
  // Other libraries' flags stay in --helpfull.
  EXPECT_THAT(help, Not(HasSubstr("--flagfile")));
}

TEST(HelpTextTest, VersionNamesWarrenAndTheLibrariesItWasBuiltWith) {
  const std::string version = VersionText();
  EXPECT_THAT(version, HasSubstr(absl::StrCat("warrend ", WARREN_VERSION)));
  EXPECT_THAT(version, HasSubstr(absl::StrCat("gRPC ", grpc::Version())));
  EXPECT_THAT(version, HasSubstr("protobuf 3."));
  EXPECT_THAT(version,
              HasSubstr(absl::StrCat("ZooKeeper C client ", ZOO_VERSION)));
  EXPECT_THAT(version, HasSubstr(absl::StrCat("rabbitmq-c ", amqp_version())));
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

// Without credentials every node is open to everyone: a world-read switch
// would suggest a protection that is not there.
TEST(LoadOptionsTest, ZkAclWorldReadNeedsZkAuthFile) {
  setenv("WARREN_ZK_ACL_WORLD_READ", "true", 1);
  std::vector<std::string> args = {"warrend"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  auto options = LoadOptions(1, argv.data());
  ASSERT_FALSE(options.ok());
  EXPECT_THAT(options.status().message(), HasSubstr("zk_auth_file"));

  setenv("WARREN_ZK_AUTH_FILE", "/run/secrets/zk-auth", 1);
  options = LoadOptions(1, argv.data());
  unsetenv("WARREN_ZK_ACL_WORLD_READ");
  unsetenv("WARREN_ZK_AUTH_FILE");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->zk_auth_file, "/run/secrets/zk-auth");
  EXPECT_TRUE(options->zk_acl_world_read);
  // Flags are process-wide: leave the defaults to the other tests.
  std::string error;
  absl::FindCommandLineFlag("zk_acl_world_read")->ParseFrom("false", &error);
  absl::FindCommandLineFlag("zk_auth_file")->ParseFrom("", &error);
}

TEST(IsLoopbackListenTest, OnlyAddressesReachableFromThisHostAreLoopback) {
  for (const char* listen :
       {"127.0.0.1:50051", "127.8.9.10:1", "localhost:50051", "LOCALHOST:1",
        "[::1]:50051", "ipv6:[::1]:1", "[::ffff:127.0.0.1]:1",
        "ipv4:127.0.0.1:1", "unix:/run/warren.sock"}) {
    EXPECT_TRUE(IsLoopbackListen(listen)) << listen;
  }
  for (const char* listen :
       {"0.0.0.0:50051", "[::]:50051", ":50051", "10.1.2.3:50051",
        "[fe80::1]:1", "warren.example.com:50051", "128.0.0.1:1",
        "[::ffff:10.0.0.1]:1", "[::1:1"}) {
    EXPECT_FALSE(IsLoopbackListen(listen)) << listen;
  }
}

// Loads `args` after resetting every TLS and listen setting to its default
// (absl flags are process-wide: an earlier test's values would leak in).
absl::StatusOr<Options> LoadWith(std::vector<std::string> args) {
  std::vector<std::string> all = {"warrend",
                                  "--listen=127.0.0.1:50051",
                                  "--allow_insecure_listen=false",
                                  "--tls_cert_file=",
                                  "--tls_key_file=",
                                  "--tls_client_ca_file=",
                                  "--tls_client_auth=",
                                  "--tls_reload_interval=60s",
                                  "--amqp_cert_file=",
                                  "--amqp_key_file="};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  return LoadOptions(static_cast<int>(argv.size()), argv.data());
}

TEST(LoadOptionsTest, PlaintextStaysOnLoopbackUnlessAllowed) {
  auto loopback = LoadWith({});
  ASSERT_TRUE(loopback.ok()) << loopback.status();
  EXPECT_FALSE(TlsEnabled(*loopback));
  EXPECT_EQ(loopback->serving.tls.client_auth, ClientAuth::kNone);

  auto refused = LoadWith({"--listen=0.0.0.0:50051"});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(),
              HasSubstr("listen 0.0.0.0:50051 is not a loopback address"));
  EXPECT_THAT(refused.status().message(), HasSubstr("allow_insecure_listen"));

  EXPECT_TRUE(
      LoadWith({"--listen=0.0.0.0:50051", "--allow_insecure_listen"}).ok());
  // TLS needs no opt-in (the files are checked at start-up, not here).
  auto tls = LoadWith({"--listen=0.0.0.0:50051", "--tls_cert_file=a.crt",
                       "--tls_key_file=a.key"});
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(TlsEnabled(*tls));
  (void)LoadWith({});  // back to the defaults
}

TEST(LoadOptionsTest, TlsSettingsMustBeComplete) {
  const std::string cert = "--tls_cert_file=a.crt";
  const std::string key = "--tls_key_file=a.key";
  const std::string ca = "--tls_client_ca_file=ca.crt";
  struct Case {
    std::vector<std::string> args;
    std::string error;
  } cases[] = {
      {{cert}, "tls_cert_file and tls_key_file go together"},
      {{key}, "tls_cert_file and tls_key_file go together"},
      {{ca}, "tls_client_ca_file needs tls_cert_file"},
      {{cert, key, "--tls_client_auth=require"},
       "tls_client_auth=request or require needs tls_client_ca_file"},
      {{cert, key, ca, "--tls_client_auth=none"},
       "tls_client_auth=none contradicts"},
      {{cert, key, ca, "--tls_client_auth=optional"},
       "tls_client_auth must be none, request or require"},
      {{cert, key, "--tls_reload_interval=500ms"},
       "tls_reload_interval must be between 1s and 24h"},
      {{"--amqp_cert_file=c.crt"}, "amqp_cert_file and amqp_key_file go"},
  };
  for (const Case& c : cases) {
    auto options = LoadWith(c.args);
    ASSERT_FALSE(options.ok()) << c.error;
    EXPECT_THAT(options.status().message(), HasSubstr(c.error));
  }
  // A client CA alone means mutual TLS.
  auto mtls = LoadWith({cert, key, ca});
  ASSERT_TRUE(mtls.ok()) << mtls.status();
  EXPECT_EQ(mtls->serving.tls.client_auth, ClientAuth::kRequire);
  auto request = LoadWith({cert, key, ca, "--tls_client_auth=request"});
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->serving.tls.client_auth, ClientAuth::kRequest);
  (void)LoadWith({});
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

// The connection table counts a connection until its descriptor is closed,
// and refuses past either limit.
TEST(ConnectionTableTest, CountsOpenDescriptorsAgainstBothLimits) {
  ConnectionTable table(/*max_total=*/3, /*max_per_peer=*/2);
  int a[2], b[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
  UniqueFd a0(a[0]), a1(a[1]), b0(b[0]), b1(b[1]);
  ASSERT_EQ(table.Check("10.0.0.1"), ConnectionTable::Verdict::kAdmit);
  table.Add(a0.get(), "10.0.0.1");
  table.Add(a1.get(), "10.0.0.1");
  EXPECT_EQ(table.Check("10.0.0.1"), ConnectionTable::Verdict::kPeerLimit);
  EXPECT_EQ(table.Check("10.0.0.2"), ConnectionTable::Verdict::kAdmit);
  table.Add(b0.get(), "10.0.0.2");
  EXPECT_EQ(table.Check("10.0.0.3"), ConnectionTable::Verdict::kTotalLimit);
  // Closed by its owner (gRPC): forgotten at the next check that would
  // refuse.
  a0.reset();
  EXPECT_EQ(table.Check("10.0.0.1"), ConnectionTable::Verdict::kAdmit);
  EXPECT_EQ(table.total(), 2u);
  EXPECT_EQ(table.count("10.0.0.1"), 1u);
}

// A descriptor number reused for another file is not the connection it
// was: the table forgets the old entry.
TEST(ConnectionTableTest, AReusedDescriptorNumberIsANewConnection) {
  ConnectionTable table(0, 0);
  int p[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
  UniqueFd keep(p[1]);
  const int number = p[0];
  table.Add(number, "10.0.0.1");
  close(number);
  int q[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, q), 0);
  UniqueFd q0(q[0]), q1(q[1]);
  ASSERT_EQ(q[0], number);  // the lowest free number
  EXPECT_EQ(table.Sweep(), 1u);
  table.Add(q0.get(), "10.0.0.2");
  EXPECT_EQ(table.count("10.0.0.1"), 0u);
  EXPECT_EQ(table.count("10.0.0.2"), 1u);
}

// Whether the peer closed `fd` within 10 s.
bool ClosedByPeer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) return false;
  char c;
  return recv(fd, &c, 1, 0) <= 0;
}

TEST(ListenerTest, PicksAPortAndATakenPortIsAnError) {
  auto first = Listener::Bind({"127.0.0.1:0"});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_GT((*first)->port(), 0);
  auto second = Listener::Bind({absl::StrCat("127.0.0.1:", (*first)->port())});
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("Address already in use"));
  EXPECT_FALSE(Listener::Bind({"127.0.0.1"}).ok());
}

// The addresses gRPC took: IPv6, a name (every address of it, one port),
// every interface.
TEST(ListenerTest, BindsIpv6NamesAndWildcards) {
  for (const char* address :
       {"[::1]:0", "localhost:0", "0.0.0.0:0", "[::]:0"}) {
    auto listener = Listener::Bind({address});
    ASSERT_TRUE(listener.ok()) << address << ": " << listener.status();
    EXPECT_GT((*listener)->port(), 0) << address;
  }
}

// Admitted connections are handed over; past the per-peer limit one is
// closed at once; a slot comes back when a handed-over one is closed.
TEST(ListenerTest, HandsOverWithinTheLimitAndClosesPastIt) {
  ListenerOptions options;
  options.address = "127.0.0.1:0";
  options.max_connections_per_peer = 1;
  options.sweep_interval = absl::Milliseconds(20);
  auto listener = Listener::Bind(options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::Mutex mu;
  std::vector<int> handed;
  (*listener)->Start(
      [&](int fd) {
        absl::MutexLock lock(&mu);
        handed.push_back(fd);
      },
      [](bool) {});
  UniqueFd first(warren::testing::ConnectToLoopback((*listener)->port()));
  ASSERT_TRUE(first.valid());
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<int>* h) { return !h->empty(); }, &handed));
  }
  UniqueFd second(warren::testing::ConnectToLoopback((*listener)->port()));
  ASSERT_TRUE(second.valid());
  EXPECT_TRUE(ClosedByPeer(second.get()));
  EXPECT_EQ((*listener)->stats().refused_peer_limit, 1u);
  // The owner of the first one closes it: a new one is admitted.
  {
    absl::MutexLock lock(&mu);
    close(handed[0]);
  }
  UniqueFd third(warren::testing::ConnectToLoopback((*listener)->port()));
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<int>* h) { return h->size() == 2; }, &handed));
    close(handed[1]);
  }
  (*listener)->Stop();
  EXPECT_EQ((*listener)->stats().accepted, 2u);
}

// Out of descriptors, the listener closes queued connections at once (the
// reserve descriptor) instead of leaving them in the queue, says it cannot
// accept, and says it accepts again once descriptors are free.
TEST(ListenerTest, OutOfDescriptorsDropsQueuedConnectionsAndRecovers) {
  ListenerOptions options;
  options.address = "127.0.0.1:0";
  auto listener = Listener::Bind(options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::Mutex mu;
  std::vector<int> handed;
  std::vector<bool> accepting;
  (*listener)->Start(
      [&](int fd) {
        absl::MutexLock lock(&mu);
        handed.push_back(fd);
      },
      [&](bool now) {
        absl::MutexLock lock(&mu);
        accepting.push_back(now);
      });
  // The clients' sockets first: the limit below leaves room for two
  // accepted connections and no more.
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  // The listener logs while the process has no descriptor left. Under
  // UBSan, the first call on each polymorphic type (spdlog's logger, fmt's
  // buffer) is checked by probing its vtable's memory through a pipe, which
  // then cannot be made: a line logged now, with an argument, makes those
  // checks before the descriptors run out.
  WARREN_LOG_INFO("listener test: {} client sockets open", clients.size());
  UniqueFd probe(open("/dev/null", O_RDONLY | O_CLOEXEC));
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(probe.get()) + 2;
  probe.reset();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((*listener)->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (UniqueFd& c : clients) {
    ASSERT_EQ(
        connect(c.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::vector<bool>* a) { return !a->empty(); }, &accepting));
    EXPECT_FALSE(accepting.front());
  }
  // Every client beyond the ones accepted is closed, none left queued.
  std::vector<int> handed_ports;
  {
    absl::MutexLock lock(&mu);
    EXPECT_LE(handed.size(), 2u);
    for (int fd : handed) {
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
      handed_ports.push_back(ntohs(peer.sin_port));
    }
  }
  int closed = 0;
  for (UniqueFd& c : clients) {
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    getsockname(c.get(), reinterpret_cast<sockaddr*>(&local), &len);
    if (absl::c_linear_search(handed_ports, ntohs(local.sin_port))) continue;
    if (ClosedByPeer(c.get())) ++closed;
  }
  EXPECT_EQ(closed + handed_ports.size(), clients.size())
      << "queued connections must be closed, not left waiting";
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  {
    absl::MutexLock lock(&mu);
    for (int fd : handed) close(fd);
    mu.Await(absl::Condition(
        +[](std::vector<bool>* a) -> bool { return a->back(); }, &accepting));
  }
  // Served again. (The count before connecting: the listener may hand the
  // connection over before this thread looks.)
  size_t before;
  {
    absl::MutexLock lock(&mu);
    before = handed.size();
  }
  UniqueFd again(warren::testing::ConnectToLoopback((*listener)->port()));
  ASSERT_TRUE(again.valid());
  {
    absl::MutexLock lock(&mu);
    auto grew = [&] { return handed.size() > before; };
    mu.Await(absl::Condition(&grew));
    close(handed.back());
  }
  (*listener)->Stop();
  const Listener::Stats stats = (*listener)->stats();
  EXPECT_GE(stats.dropped_no_descriptors + 2, clients.size());
}

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// A HealthService in a gRPC server of its own, called in-process.
class HealthServiceTest : public ::testing::Test {
 protected:
  void Start(HealthServiceOptions options) {
    service_ = std::make_unique<HealthService>(streams_, options);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = grpc::health::v1::Health::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    if (server_ != nullptr) {
      streams_.DrainAll();
      server_->Shutdown();
    }
  }
  grpc::Status Check(const std::string& service,
                     HealthCheckResponse* response) {
    grpc::ClientContext context;
    HealthCheckRequest request;
    request.set_service(service);
    return stub_->Check(&context, request, response);
  }

  StreamRegistry streams_{100};
  std::unique_ptr<HealthService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::health::v1::Health::Stub> stub_;
};

// Check and Watch answer as gRPC's default health service does.
TEST_F(HealthServiceTest, AnswersLikeGrpcsDefaultService) {
  Start({});
  service_->SetServingStatus("", true);
  service_->SetServingStatus("a", false);
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(Check("a", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(Check("b", &response).error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("b");
  auto watch = stub_->Watch(&context, request);
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  service_->SetServingStatus("b", true);
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  // Shutdown: NOT_SERVING for good.
  service_->Shutdown();
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  service_->SetServingStatus("", true);
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  context.TryCancel();
  watch->Finish();
}

// Past max_watches_per_client, Watch is refused with RESOURCE_EXHAUSTED;
// Check needs no slot.
TEST_F(HealthServiceTest, WatchesPastTheLimitAreRefused) {
  HealthServiceOptions options;
  options.max_watches = 10;
  options.max_watches_per_client = 2;
  Start(options);
  service_->SetServingStatus("", true);
  HealthCheckRequest request;
  HealthCheckResponse response;
  grpc::ClientContext c1, c2, c3;
  auto w1 = stub_->Watch(&c1, request);
  auto w2 = stub_->Watch(&c2, request);
  ASSERT_TRUE(w1->Read(&response));
  ASSERT_TRUE(w2->Read(&response));
  auto w3 = stub_->Watch(&c3, request);
  EXPECT_FALSE(w3->Read(&response));
  grpc::Status refused = w3->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(),
              HasSubstr("max_health_watches_per_client"));
  EXPECT_TRUE(Check("", &response).ok());
  EXPECT_EQ(service_->watches(), 2u);
  EXPECT_EQ(streams_.size(), 2u);  // they count in max_streams
  // (That a slot comes back when a stream ends: health_flood_test.)
  c1.TryCancel();
  w1->Finish();
  c2.TryCancel();
  w2->Finish();
}

}  // namespace
}  // namespace warren::daemon

namespace warren::daemon {
namespace {

TEST(CertificateExpiryTest, WarnsWhenExpiredOrWithinTwoWeeks) {
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  EXPECT_EQ(CertificateExpiryWarning(now + absl::Hours(24 * 15), now),
            std::nullopt);
  std::optional<std::string> soon =
      CertificateExpiryWarning(now + absl::Hours(24 * 13), now);
  ASSERT_TRUE(soon.has_value());
  EXPECT_THAT(*soon, ::testing::HasSubstr("expires on"));
  EXPECT_THAT(*soon, ::testing::HasSubstr("in 312h"));
  std::optional<std::string> expired =
      CertificateExpiryWarning(now - absl::Seconds(1), now);
  ASSERT_TRUE(expired.has_value());
  EXPECT_THAT(*expired, ::testing::HasSubstr("expired on"));
}

TEST(CertificateExpiryTest, AnUnreadableFileIsNamedAndKnowsNoExpiry) {
  auto read =
      LeafCertificateNotAfter("/nonexistent/server.crt", "tls_cert_file");
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(),
              ::testing::HasSubstr("tls_cert_file /nonexistent/server.crt"));
  CertificateExpiry expiry("/nonexistent/server.crt");
  expiry.Check();
  EXPECT_EQ(expiry.not_after(), std::nullopt);
}

}  // namespace
}  // namespace warren::daemon
