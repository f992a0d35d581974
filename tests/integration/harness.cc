#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace warren::testing {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

namespace {

// Forks and execs warrend with stdout and stderr in files of `dir`.
pid_t Spawn(const std::vector<std::string>& args, const std::string& dir) {
  std::vector<std::string> argv_storage = {WARREN_WARREND_PATH};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = dir + "/stdout";
  const std::string err = dir + "/stderr";
  const pid_t pid = fork();
  if (pid == 0) {
    const int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` to exit; answers its exit code, or -1 after `timeout`
// (when it is killed).
int WaitExit(pid_t pid, absl::Duration timeout) {
  int status = 0;
  const bool exited =
      WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

std::atomic<int> root_counter{0};

// Alive and not a zombie: a killed server that nobody reaped yet is dead.
bool ProcessAlive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  const char state = line[close + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace

std::string TestEnv(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    ADD_FAILURE() << name
                  << " is not set: run the suite with scripts/test.sh, which "
                     "starts the test servers";
    return "";
  }
  return value;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string MakeTempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/", prefix, "-XXXXXX");
  char* made = mkdtemp(pattern.data());
  return made == nullptr ? "" : std::string(made);
}

std::unique_ptr<grpc::ClientContext> CallContext(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

absl::StatusOr<std::unique_ptr<WarrendProcess>> WarrendProcess::Start(
    std::vector<std::string> extra_args, std::string zk_connect) {
  std::unique_ptr<WarrendProcess> p(new WarrendProcess);
  p->dir_ = MakeTempDir("warrend");
  p->root_ = absl::StrCat("/warren-test-", getpid(), "-", root_counter++);
  if (zk_connect.empty()) zk_connect = TestEnv("WARREN_TEST_ZK");
  std::vector<std::string> args = {
      "--listen=127.0.0.1:0",
      "--zk_connect=" + zk_connect,
      "--amqp_urls=" + TestEnv("WARREN_TEST_AMQP_URL"),
      "--root=" + p->root_,
      "--backend_wait=60s",
      "--log_level=debug",
  };
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  p->pid_ = Spawn(args, p->dir_);
  int port = 0;
  int status = 0;
  bool exited = false;
  const bool serving = WaitFor(
      [&] {
        if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
          exited = true;
          return true;
        }
        for (absl::string_view line :
             absl::StrSplit(ReadFile(p->dir_ + "/stdout"), '\n')) {
          if (absl::ConsumePrefix(&line, "warrend is serving on 127.0.0.1:")) {
            return absl::SimpleAtoi(line, &port);
          }
        }
        return false;
      },
      absl::Seconds(90));
  if (exited || !serving) {
    if (exited) p->pid_ = -1;
    return absl::UnavailableError(
        absl::StrCat("warrend did not start: ", ReadFile(p->dir_ + "/stderr")));
  }
  p->address_ = absl::StrCat("127.0.0.1:", port);
  p->channel_ =
      grpc::CreateChannel(p->address_, grpc::InsecureChannelCredentials());
  return p;
}

WarrendProcess::~WarrendProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string WarrendProcess::Log() const { return ReadFile(dir_ + "/stderr"); }

int WarrendProcess::Terminate(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const int code = WaitExit(pid_, timeout);
  pid_ = -1;
  return code;
}

ExitResult RunWarrendToExit(const std::vector<std::string>& args,
                            absl::Duration timeout) {
  const std::string dir = MakeTempDir("warrend-exit");
  const pid_t pid = Spawn(args, dir);
  ExitResult result;
  result.code = WaitExit(pid, timeout);
  result.stdout_text = ReadFile(dir + "/stdout");
  result.stderr_text = ReadFile(dir + "/stderr");
  return result;
}

absl::StatusOr<std::unique_ptr<ZooKeeperServer>> ZooKeeperServer::Start() {
  std::unique_ptr<ZooKeeperServer> zk(new ZooKeeperServer);
  zk->dir_ = MakeTempDir("zookeeper");
  zk->port_ = FreePort();
  absl::Status started = zk->Script("start");
  if (!started.ok()) return started;
  return zk;
}

ZooKeeperServer::~ZooKeeperServer() {
  Resume();
  (void)Stop();
}

std::string ZooKeeperServer::connect() const {
  return absl::StrCat("127.0.0.1:", port_);
}

absl::Status ZooKeeperServer::Script(const std::string& verb) {
  // The admin server stays off, and only loopback is used.
  const std::string command =
      absl::StrCat("WARREN_STACK_DIR='", dir_, "' WARREN_ZK_PORT=", port_,
                   " bash '", WARREN_SOURCE_DIR, "/scripts/stack.sh' ", verb,
                   " zookeeper >>'", dir_, "/script.log' 2>&1");
  const int rc = std::system(command.c_str());
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("stack.sh ", verb,
                     " zookeeper failed: ", ReadFile(dir_ + "/script.log")));
  }
  return absl::OkStatus();
}

pid_t ZooKeeperServer::ReadPid() const {
  int pid = 0;
  std::string text = ReadFile(dir_ + "/zookeeper/zookeeper.pid");
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)) return -1;
  return pid;
}

absl::Status ZooKeeperServer::Restart() { return Script("start"); }

void ZooKeeperServer::Kill9() {
  const pid_t pid = ReadPid();
  if (pid > 0) {
    kill(pid, SIGKILL);
    WaitFor([pid] { return !ProcessAlive(pid); }, absl::Seconds(30));
  }
}

void ZooKeeperServer::Pause() {
  const pid_t pid = ReadPid();
  if (pid > 0) kill(pid, SIGSTOP);
}

void ZooKeeperServer::Resume() {
  const pid_t pid = ReadPid();
  if (pid > 0) kill(pid, SIGCONT);
}

absl::Status ZooKeeperServer::Stop() { return Script("stop"); }

absl::StatusOr<std::unique_ptr<RabbitMqServer>> RabbitMqServer::Start(
    int channel_max) {
  std::unique_ptr<RabbitMqServer> mq(new RabbitMqServer);
  mq->channel_max_ = channel_max;
  mq->dir_ = MakeTempDir("rabbitmq");
  mq->port_ = FreePort();
  mq->dist_port_ = FreePort();
  mq->epmd_port_ = FreePort();
  absl::Status started = mq->Script("start");
  if (!started.ok()) return started;
  return mq;
}

RabbitMqServer::~RabbitMqServer() { (void)Stop(); }

std::string RabbitMqServer::url() const {
  return absl::StrCat("amqp://guest:guest@127.0.0.1:", port_, "/");
}

absl::Status RabbitMqServer::Script(const std::string& verb) {
  const std::string command = absl::StrCat(
      "WARREN_STACK_DIR='", dir_, "' WARREN_AMQP_PORT=", port_,
      " WARREN_AMQP_DIST_PORT=", dist_port_, " WARREN_EPMD_PORT=", epmd_port_,
      // A private broker has no amqps listener: the suite's own broker
      // (scripts/test.sh exports WARREN_AMQPS_PORT) already holds that port.
      " WARREN_AMQPS_PORT=", " WARREN_AMQP_CHANNEL_MAX=",
      channel_max_ > 0 ? absl::StrCat(channel_max_) : "", " bash '",
      WARREN_SOURCE_DIR, "/scripts/stack.sh' ", verb,
      absl::StartsWith(verb, "ctl ") ? "" : " rabbitmq", " >>'", dir_,
      "/script.log' 2>&1");
  const int rc = std::system(command.c_str());
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("stack.sh ", verb,
                     " rabbitmq failed: ", ReadFile(dir_ + "/script.log")));
  }
  return absl::OkStatus();
}

pid_t RabbitMqServer::ReadPid() const {
  int pid = 0;
  std::string text = ReadFile(dir_ + "/rabbitmq/rabbitmq.pid");
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid)) return -1;
  return pid;
}

void RabbitMqServer::Kill9() {
  const pid_t pid = ReadPid();
  if (pid > 0) {
    kill(pid, SIGKILL);
    WaitFor([pid] { return !ProcessAlive(pid); }, absl::Seconds(30));
  }
}

absl::Status RabbitMqServer::Restart() { return Script("start"); }

absl::Status RabbitMqServer::Ctl(const std::string& args) {
  return Script("ctl rabbitmq " + args);
}

absl::Status RabbitMqServer::Stop() { return Script("stop"); }

std::vector<std::string> TestBackendFlags() {
  return {"--zk_connect=" + TestEnv("WARREN_TEST_ZK"),
          "--amqp_urls=" + TestEnv("WARREN_TEST_AMQP_URL"),
          "--backend_wait=20s"};
}

std::string StartupFailureLine(const ExitResult& result) {
  std::string first_error;
  for (absl::string_view line : absl::StrSplit(result.stderr_text, '\n')) {
    if (absl::StrContains(line, "cannot start")) return std::string(line);
    if (first_error.empty() && absl::StrContains(line, "ERROR")) {
      first_error = std::string(line);
    }
  }
  return first_error;
}

grpc::health::v1::HealthCheckResponse::ServingStatus HealthOf(
    const WarrendProcess& warrend) {
  auto stub = grpc::health::v1::Health::NewStub(warrend.channel());
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  if (!stub->Check(CallContext(absl::Seconds(10)).get(), request, &response)
           .ok()) {
    return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  }
  return response.status();
}

void PutConfigEventually(v1::ConfigService::Stub& stub, const std::string& key,
                         const std::string& value) {
  grpc::Status last;
  const bool written = WaitFor(
      [&] {
        v1::PutConfigRequest put;
        put.set_key(key);
        put.set_value(value);
        v1::PutConfigResponse response;
        last = stub.PutConfig(CallContext(absl::Seconds(10)).get(), put,
                              &response);
        EXPECT_TRUE(last.ok() ||
                    last.error_code() == grpc::StatusCode::UNAVAILABLE ||
                    last.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
            << last.error_message();
        return last.ok();
      },
      absl::Seconds(60));
  ASSERT_TRUE(written) << last.error_message();
}

void Pki::Make(const std::string& kind, const std::string& name,
               const std::string& ca) {
  const std::string command =
      absl::StrCat("bash '", WARREN_SOURCE_DIR, "/scripts/tls-certs.sh' ", kind,
                   " '", dir_, "' ", name, " ", ca, " >/dev/null");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

std::string Pki::crt(const std::string& name) const {
  return absl::StrCat(dir_, "/", name, ".crt");
}

std::string Pki::key(const std::string& name) const {
  return absl::StrCat(dir_, "/", name, ".key");
}

}  // namespace warren::testing
