#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

std::unique_ptr<ChildProcess> ChildProcess::Start(
    const std::vector<std::string>& argv, const Options& options) {
  std::unique_ptr<ChildProcess> child(new ChildProcess);
  child->dir_ = MakeTempDir(options.dir_prefix);
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls (the test process has threads).
  std::vector<std::string> argv_storage = argv;
  std::vector<char*> argv_pointers;
  for (auto& a : argv_storage) argv_pointers.push_back(a.data());
  argv_pointers.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const absl::string_view name =
        absl::string_view(*e).substr(0, absl::string_view(*e).find('='));
    if (std::find(options.unset_env.begin(), options.unset_env.end(), name) ==
        options.unset_env.end()) {
      env_storage.push_back(*e);
    }
  }
  env_storage.insert(env_storage.end(), options.set_env.begin(),
                     options.set_env.end());
  std::vector<char*> env_pointers;
  for (auto& e : env_storage) env_pointers.push_back(e.data());
  env_pointers.push_back(nullptr);
  const std::string in = child->dir_ + "/stdin";
  std::ofstream(in) << options.stdin_text;
  const int in_fd = open(in.c_str(), O_RDONLY | O_CLOEXEC);
  const int out_fd = open((child->dir_ + "/stdout").c_str(),
                          O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = open((child->dir_ + "/stderr").c_str(),
                          O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  child->pid_ = fork();
  if (child->pid_ == 0) {
    // The test may block signals in its threads; the child starts clean.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execve(argv_pointers[0], argv_pointers.data(), env_pointers.data());
    _exit(127);
  }
  close(in_fd);
  close(out_fd);
  close(err_fd);
  EXPECT_GT(child->pid_, 0) << "fork failed";
  return child;
}

ChildProcess::~ChildProcess() {
  // Never kill(-1) or kill(0): that would signal every process there is.
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string ChildProcess::Stdout() const { return ReadFile(dir_ + "/stdout"); }

std::string ChildProcess::Stderr() const { return ReadFile(dir_ + "/stderr"); }

bool ChildProcess::WaitForStdout(const std::string& needle,
                                 absl::Duration timeout) const {
  return WaitFor([&] { return absl::StrContains(Stdout(), needle); }, timeout);
}

bool ChildProcess::Signal(int signal) const {
  return pid_ > 0 && kill(pid_, signal) == 0;
}

void ChildProcess::Reaped(int status) {
  pid_ = -1;
  code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool ChildProcess::Exited() {
  if (pid_ <= 0) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
  Reaped(status);
  return true;
}

int ChildProcess::Wait(absl::Duration timeout) {
  if (!WaitFor([&] { return Exited(); }, timeout)) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    code_ = -1;
  }
  return code_;
}

absl::StatusOr<std::unique_ptr<WarrendProcess>> WarrendProcess::Start(
    std::vector<std::string> extra_args, std::string zk_connect) {
  std::unique_ptr<WarrendProcess> p(new WarrendProcess);
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
  args.insert(args.begin(), WARREN_WARREND_PATH);
  ChildProcess::Options options;
  options.dir_prefix = "warrend";
  p->child_ = ChildProcess::Start(args, options);
  int port = 0;
  bool exited = false;
  const bool serving = WaitFor(
      [&] {
        if (p->child_->Exited()) {
          exited = true;
          return true;
        }
        for (absl::string_view line :
             absl::StrSplit(p->child_->Stdout(), '\n')) {
          if (absl::ConsumePrefix(&line, "warrend is serving on 127.0.0.1:")) {
            return absl::SimpleAtoi(line, &port);
          }
        }
        return false;
      },
      absl::Seconds(90));
  if (exited || !serving) {
    return absl::UnavailableError(
        absl::StrCat("warrend did not start: ", p->child_->Stderr()));
  }
  p->address_ = absl::StrCat("127.0.0.1:", port);
  p->channel_ =
      grpc::CreateChannel(p->address_, grpc::InsecureChannelCredentials());
  return p;
}

WarrendProcess::~WarrendProcess() = default;

std::string WarrendProcess::Log() const { return child_->Stderr(); }

int WarrendProcess::Terminate(absl::Duration timeout) {
  if (child_->pid() <= 0) return -1;
  child_->Signal(SIGTERM);
  return child_->Wait(timeout);
}

ExitResult RunWarrendToExit(const std::vector<std::string>& args,
                            absl::Duration timeout) {
  std::vector<std::string> argv = {WARREN_WARREND_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess::Options options;
  options.dir_prefix = "warrend-exit";
  auto child = ChildProcess::Start(argv, options);
  ExitResult result;
  result.code = child->Wait(timeout);
  result.stdout_text = child->Stdout();
  result.stderr_text = child->Stderr();
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
