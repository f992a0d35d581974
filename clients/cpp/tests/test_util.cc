#include "tests/test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace warren::client::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::atomic<int> name_counter{0};

}  // namespace

std::string UniqueName(const std::string& base) {
  return absl::StrCat(base, "-", getpid(), "-", name_counter++, "-",
                      absl::ToUnixMillis(absl::Now()) % 100000000);
}

std::unique_ptr<Child> Child::Spawn(const std::string& path,
                                    const std::vector<std::string>& args,
                                    const std::string& address) {
  std::unique_ptr<Child> child(new Child);
  child->dir_ = warren::testing::MakeTempDir("cpp-example");
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls (this process has threads).
  std::vector<std::string> argv_storage = {path};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = {"WARREN_ADDRESS=" + address};
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "WARREN_ADDRESS=")) env_storage.push_back(*e);
  }
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string out = child->dir_ + "/stdout";
  const std::string err = child->dir_ + "/stderr";
  const int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  child->pid_ = fork();
  if (child->pid_ == 0) {
    // The test process may block signals in its threads; the child starts
    // clean.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out_fd);
  close(err_fd);
  return child;
}

Child::~Child() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string Child::Output() const { return ReadFile(dir_ + "/stdout"); }
std::string Child::Errors() const { return ReadFile(dir_ + "/stderr"); }

bool Child::WaitForOutput(const std::string& needle,
                          absl::Duration timeout) const {
  return warren::testing::WaitFor(
      [&] { return absl::StrContains(Output(), needle); }, timeout);
}

void Child::Signal(int signal) const {
  if (pid_ > 0) kill(pid_, signal);
}

int Child::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  int status = 0;
  const bool exited = warren::testing::WaitFor(
      [&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  if (!exited) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

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

void RestartableWarrend::Kill() { kill(process_->pid(), SIGKILL); }

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
