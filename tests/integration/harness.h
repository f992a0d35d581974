// What the integration tests need to run Warren the way users do: the real
// `warrend` binary as a child process talking to real ZooKeeper and RabbitMQ
// servers, and, for fault tests, a private ZooKeeper server they may kill,
// stop and restart (started through scripts/stack.sh like the shared one).
//
// The shared servers come from scripts/test.sh, which exports
// WARREN_TEST_ZK (connect string) and WARREN_TEST_AMQP_URL.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::testing {

// The whole contents of a file; "" when it cannot be read.
std::string ReadFile(const std::string& path);

// The value of a variable that scripts/test.sh sets; fails the test (and
// answers "") when it is missing.
std::string TestEnv(const char* name);

// A TCP port on loopback that nothing listened on a moment ago.
int FreePort();

// A fresh directory under the build tree's temporary space.
std::string MakeTempDir(const std::string& prefix);

// Polls `condition` every 10 ms until it holds or `timeout` passes; answers
// whether it held. For conditions that no event announces (another process's
// state); everything the test itself drives is awaited through its streams.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);

// A program run as a child process: stdin from a string, stdout and stderr
// in files of a directory of its own, so that a test can read what it wrote
// so far. Killed (SIGKILL) on destruction if still running; it only ever
// signals its own child, never a pid it does not hold.
class ChildProcess {
 public:
  struct Options {
    std::string stdin_text;
    // The test's own environment without the variables named here...
    std::vector<std::string> unset_env;
    // ...and with these NAME=value settings.
    std::vector<std::string> set_env;
    // Prefix of its directory (see MakeTempDir).
    std::string dir_prefix = "child";
  };
  // argv[0] is the program's path.
  static std::unique_ptr<ChildProcess> Start(
      const std::vector<std::string>& argv, const Options& options);
  static std::unique_ptr<ChildProcess> Start(
      const std::vector<std::string>& argv) {
    return Start(argv, Options());
  }
  ~ChildProcess();

  // -1 once it has exited and been reaped.
  pid_t pid() const { return pid_; }
  const std::string& dir() const { return dir_; }
  std::string Stdout() const;
  std::string Stderr() const;
  bool WaitForStdout(const std::string& needle,
                     absl::Duration timeout = absl::Seconds(30)) const;
  // Signals it while it runs (true); nothing once it has exited (false).
  bool Signal(int signal) const;
  // Whether it has exited (reaping it, and keeping its exit code for Wait).
  bool Exited();
  // The exit code, 128 + the signal that ended it, or -1 when it did not
  // exit within `timeout` (it is killed then).
  int Wait(absl::Duration timeout = absl::Seconds(60));

 private:
  ChildProcess() = default;
  void Reaped(int status);
  pid_t pid_ = -1;
  int code_ = -1;
  std::string dir_;
};

class WarrendProcess {
 public:
  // Starts warrend on 127.0.0.1 with a port of its choice, against the
  // shared servers (or `zk_connect` when given), with a root path of its own
  // so that tests never see each other's keys; `extra_args` come last and
  // win. Answers when it serves.
  static absl::StatusOr<std::unique_ptr<WarrendProcess>> Start(
      std::vector<std::string> extra_args = {}, std::string zk_connect = "");
  ~WarrendProcess();  // SIGKILL if still running

  const std::string& address() const { return address_; }
  const std::string& root() const { return root_; }
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  // -1 once it has exited: signal it through Signal(), never kill(pid()).
  pid_t pid() const { return child_->pid(); }
  // Signals it while it runs (true); nothing once it has exited (false).
  bool Signal(int signal) const { return child_->Signal(signal); }
  // Everything warrend wrote to stderr so far.
  std::string Log() const;
  // SIGTERM, then the exit code (or -1 if it did not exit in time).
  int Terminate(absl::Duration timeout = absl::Seconds(30));

 private:
  WarrendProcess() = default;
  std::unique_ptr<ChildProcess> child_;
  std::string address_;
  std::string root_;
  std::shared_ptr<grpc::Channel> channel_;
};

struct ExitResult {
  int code = -1;  // -1: did not exit in time (it was killed)
  std::string stdout_text;
  std::string stderr_text;
};

// Runs warrend with exactly `args` until it exits.
ExitResult RunWarrendToExit(const std::vector<std::string>& args,
                            absl::Duration timeout = absl::Seconds(60));

// The flags that point a warrend at the shared test servers (for
// RunWarrendToExit, which adds none of its own).
std::vector<std::string> TestBackendFlags();

// The line of warrend's stderr that says why it did not start: the
// "cannot start" line, else the first ERROR line, else "".
std::string StartupFailureLine(const ExitResult& result);

// The server's health as its health service answers it; UNKNOWN when the
// call itself fails.
grpc::health::v1::HealthCheckResponse::ServingStatus HealthOf(
    const WarrendProcess& warrend);

// Puts `key` = `value` until the write succeeds: right after a fault the
// server answers UNAVAILABLE until its session is back, which is what a
// client retries on. Any other answer fails the test.
void PutConfigEventually(v1::ConfigService::Stub& stub, const std::string& key,
                         const std::string& value);

// A private PKI in a temporary directory, made with scripts/tls-certs.sh:
// Make("ca", "a") writes a.crt and a.key.
class Pki {
 public:
  Pki() : dir_(MakeTempDir("warren-pki")) {}

  // kind: ca, server (signed by `ca`, for localhost and 127.0.0.1) or
  // client (signed by `ca`).
  void Make(const std::string& kind, const std::string& name,
            const std::string& ca = "");
  std::string crt(const std::string& name) const;
  std::string key(const std::string& name) const;
  std::string pem(const std::string& path) const { return ReadFile(path); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

// A private ZooKeeper server on its own port and data directory.
class ZooKeeperServer {
 public:
  static absl::StatusOr<std::unique_ptr<ZooKeeperServer>> Start();
  ~ZooKeeperServer();  // stops it

  std::string connect() const;
  absl::Status Restart();  // start again on the same port and data
  void Kill9();
  void Pause();   // SIGSTOP
  void Resume();  // SIGCONT
  absl::Status Stop();

 private:
  ZooKeeperServer() = default;
  absl::Status Script(const std::string& verb);
  pid_t ReadPid() const;

  std::string dir_;
  int port_ = 0;
};

// A private RabbitMQ node on its own ports and data directory.
class RabbitMqServer {
 public:
  // channel_max: the most channels a connection may open (0: RabbitMQ's
  // default, 2047), kept across Restart().
  static absl::StatusOr<std::unique_ptr<RabbitMqServer>> Start(
      int channel_max = 0);
  ~RabbitMqServer();  // stops it

  std::string url() const;
  absl::Status Restart();  // start again on the same ports and data
  void Kill9();
  absl::Status Stop();
  // Runs `rabbitmqctl <args>` against this node.
  absl::Status Ctl(const std::string& args);

 private:
  RabbitMqServer() = default;
  absl::Status Script(const std::string& verb);
  pid_t ReadPid() const;

  std::string dir_;
  int port_ = 0;
  int dist_port_ = 0;
  int epmd_port_ = 0;
  int channel_max_ = 0;
};

// A test suite whose tests share one warrend, started with Flags::Args()
// before the first test and stopped after the last; with
// `private_zookeeper`, against a ZooKeeper server of the suite's own
// (zk_), for tests that need its settings or must not disturb the shared one.
template <typename Flags, bool private_zookeeper = false>
class SharedWarrendTest : public ::testing::Test {
 protected:
  // Started by the suite's first test, not in SetUpTestSuite: gtest marks
  // every test of a suite whose SetUpTestSuite failed as skipped, and ctest
  // counts skipped tests as passing. Here each test fails instead.
  static void TearDownTestSuite() {
    delete warrend_;
    warrend_ = nullptr;
    delete zk_;
    zk_ = nullptr;
    delete start_error_;
    start_error_ = nullptr;
  }
  void SetUp() override {
    if (warrend_ == nullptr && start_error_ == nullptr) {
      absl::Status started = Start();
      if (!started.ok()) start_error_ = new absl::Status(started);
    }
    ASSERT_NE(warrend_, nullptr)
        << (start_error_ != nullptr ? start_error_->ToString() : "");
  }

  static inline ZooKeeperServer* zk_ = nullptr;
  static inline WarrendProcess* warrend_ = nullptr;
  static inline absl::Status* start_error_ = nullptr;

 private:
  static absl::Status Start() {
    std::string zk_connect;
    if (private_zookeeper) {
      auto zk = ZooKeeperServer::Start();
      if (!zk.ok()) return zk.status();
      zk_ = zk->release();
      zk_connect = zk_->connect();
    }
    auto started = WarrendProcess::Start(Flags::Args(), zk_connect);
    if (!started.ok()) return started.status();
    warrend_ = started->release();
    return absl::OkStatus();
  }
};

// A client context with a deadline `timeout` from now.
std::unique_ptr<grpc::ClientContext> CallContext(
    absl::Duration timeout = absl::Seconds(30));

}  // namespace warren::testing
