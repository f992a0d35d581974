// Helpers of the client library's tests: unique names on the shared stack,
// example programs as child processes, a thread-safe event log to await, and
// a warrend that can be stopped and started again on the same address.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "tests/integration/harness.h"
#include "warren/client/backoff.h"
#include "warren/v1/messaging.pb.h"

namespace warren::client::testing {

// `base` plus this process's pid, a counter and the time: the stack is
// shared with other suites, and durable queues outlive a run.
std::string UniqueName(const std::string& base);

// A program run with WARREN_ADDRESS set, its stdout and stderr in files.
class Child {
 public:
  static std::unique_ptr<Child> Spawn(const std::string& path,
                                      const std::vector<std::string>& args,
                                      const std::string& address);
  // SIGKILL on destruction if still running.

  std::string Output() const;  // stdout so far
  std::string Errors() const;  // stderr so far
  bool WaitForOutput(const std::string& needle,
                     absl::Duration timeout = absl::Seconds(30)) const;
  void Signal(int signal) const;
  // The exit code, or -1 when it did not exit in time (it is killed).
  int Wait(absl::Duration timeout = absl::Seconds(60));

 private:
  Child() = default;
  std::unique_ptr<warren::testing::ChildProcess> process_;
};

// Lines appended by callbacks on any thread, awaited by the test.
class EventLog {
 public:
  void Add(std::string line);
  std::vector<std::string> Lines() const;
  size_t Count(const std::string& prefix) const;
  // Waits until some line starts with `prefix`.
  bool WaitFor(const std::string& prefix,
               absl::Duration timeout = absl::Seconds(30)) const;

 private:
  mutable warren::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

// A warrend of the test's own that it may stop and start again on the same
// port and ZooKeeper root (fault tests). Stops are SIGTERM (streams end with
// UNAVAILABLE) unless Kill() is used.
class RestartableWarrend {
 public:
  static absl::StatusOr<std::unique_ptr<RestartableWarrend>> Start(
      std::vector<std::string> args = {});
  const std::string& address() const { return address_; }
  const std::string& root() const { return root_; }
  warren::testing::WarrendProcess* process() { return process_.get(); }
  int Stop();              // SIGTERM; the exit code
  void Kill();             // SIGKILL
  absl::Status Restart();  // same port, same root, same flags

 private:
  std::vector<std::string> args_;
  std::string address_;
  std::string root_;
  std::unique_ptr<warren::testing::WarrendProcess> process_;
};

// Resubscribing within half a second, for the tests' broken streams.
inline BackoffPolicy FastBackoff() {
  BackoffPolicy policy;
  policy.initial = absl::Milliseconds(50);
  policy.max = absl::Milliseconds(500);
  return policy;
}

// What a Subscriber's handler saw, thread-safe.
class Received {
 public:
  void Add(const warren::v1::Delivery& d) {
    warren::MutexLock lock(&mu_);
    deliveries_.push_back(d);
  }
  size_t size() const {
    warren::MutexLock lock(&mu_);
    return deliveries_.size();
  }
  std::vector<warren::v1::Delivery> deliveries() const {
    warren::MutexLock lock(&mu_);
    return deliveries_;
  }
  std::vector<std::string> payloads() const {
    std::vector<std::string> out;
    for (const auto& d : deliveries()) out.push_back(d.payload());
    return out;
  }
  bool WaitSize(size_t n, absl::Duration timeout = absl::Seconds(30)) const {
    return warren::testing::WaitFor([&] { return size() >= n; }, timeout);
  }

 private:
  mutable warren::Mutex mu_;
  std::vector<warren::v1::Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::client::testing
