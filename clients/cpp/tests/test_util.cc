#include "tests/test_util.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren::client::testing {
namespace {

std::atomic<int> name_counter{0};

}  // namespace

std::string UniqueName(const std::string& base) {
  return absl::StrCat(base, "-", getpid(), "-", name_counter++, "-",
                      absl::ToUnixMillis(absl::Now()) % 100000000);
}

std::unique_ptr<Child> Child::Spawn(const std::string& path,
                                    const std::vector<std::string>& args,
                                    const std::string& address) {
  std::vector<std::string> argv = {path};
  argv.insert(argv.end(), args.begin(), args.end());
  warren::testing::ChildProcess::Options options;
  options.unset_env = {"WARREN_ADDRESS"};
  options.set_env = {"WARREN_ADDRESS=" + address};
  options.dir_prefix = "cpp-example";
  std::unique_ptr<Child> child(new Child);
  child->process_ = warren::testing::ChildProcess::Start(argv, options);
  return child;
}

std::string Child::Output() const { return process_->Stdout(); }
std::string Child::Errors() const { return process_->Stderr(); }

bool Child::WaitForOutput(const std::string& needle,
                          absl::Duration timeout) const {
  return process_->WaitForStdout(needle, timeout);
}

void Child::Signal(int signal) const { process_->Signal(signal); }

int Child::Wait(absl::Duration timeout) { return process_->Wait(timeout); }

void EventLog::Add(std::string line) {
  warren::MutexLock lock(&mu_);
  lines_.push_back(std::move(line));
}

std::vector<std::string> EventLog::Lines() const {
  warren::MutexLock lock(&mu_);
  return lines_;
}

size_t EventLog::Count(const std::string& prefix) const {
  warren::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& line : lines_) n += absl::StartsWith(line, prefix);
  return n;
}

bool EventLog::WaitFor(const std::string& prefix,
                       absl::Duration timeout) const {
  return warren::testing::WaitFor([&] { return Count(prefix) > 0; }, timeout);
}

absl::StatusOr<std::unique_ptr<RestartableWarrend>> RestartableWarrend::Start(
    std::vector<std::string> args) {
  auto w = std::make_unique<RestartableWarrend>();
  // Quick drains and short sessions: fault tests wait for both.
  w->args_ = {"--shutdown_grace=2s", "--zk_session_timeout=4s",
              "--log_level=info"};
  w->args_.insert(w->args_.end(), args.begin(), args.end());
  auto started = warren::testing::WarrendProcess::Start(w->args_);
  if (!started.ok()) return started.status();
  w->process_ = *std::move(started);
  w->address_ = w->process_->address();
  w->root_ = w->process_->root();
  return w;
}

int RestartableWarrend::Stop() { return process_->Terminate(); }

void RestartableWarrend::Kill() { process_->Signal(SIGKILL); }

absl::Status RestartableWarrend::Restart() {
  process_.reset();  // reaps a killed one
  std::vector<std::string> args = args_;
  args.push_back("--listen=" + address_);
  args.push_back("--root=" + root_);
  auto started = warren::testing::WarrendProcess::Start(args);
  if (!started.ok()) return started.status();
  process_ = *std::move(started);
  return absl::OkStatus();
}

}  // namespace warren::client::testing
