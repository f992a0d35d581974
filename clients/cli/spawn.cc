#include "clients/cli/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "clients/cli/exit_codes.h"

extern char** environ;

namespace warren::cli {

absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& command,
                            const std::vector<std::string>& extra,
                            const posix_spawn_file_actions_t* file_actions) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const std::string& mine : extra) {
      const std::string name = mine.substr(0, mine.find('=') + 1);
      replaced |= entry.rfind(name, 0) == 0;
    }
    if (!replaced) env_strings.push_back(entry);
  }
  env_strings.insert(env_strings.end(), extra.begin(), extra.end());
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = command;
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  // `warren respond` ignores SIGPIPE (a COMMAND that does not read its
  // request must not kill it); the COMMAND gets the usual default.
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  const int error = posix_spawnp(&pid, argv[0], file_actions, &attr,
                                 argv.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  if (error != 0) {
    return ExitWith(error == ENOENT ? 127 : 126,
                    absl::StrCat(command[0], ": ", std::strerror(error)));
  }
  return pid;
}

absl::StatusOr<CommandOutput> RunWithInput(
    const std::vector<std::string>& command,
    const std::vector<std::string>& extra, const std::string& input) {
  int to_child[2];
  int from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  if (pipe2(from_child, O_CLOEXEC) != 0) {
    close(to_child[0]);
    close(to_child[1]);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
  auto pid = Spawn(command, extra, &actions);
  posix_spawn_file_actions_destroy(&actions);
  close(to_child[0]);
  close(from_child[1]);
  if (!pid.ok()) {
    close(to_child[1]);
    close(from_child[0]);
    return pid.status();
  }
  // Written from a thread of its own: a COMMAND that writes a lot before it
  // reads everything would otherwise block us both.
  std::thread writer([fd = to_child[1], &input] {
    size_t done = 0;
    while (done < input.size()) {
      const ssize_t n = write(fd, input.data() + done, input.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EPIPE: it does not read its input
      done += static_cast<size_t>(n);
    }
    close(fd);
  });
  CommandOutput output;
  char buffer[65536];
  while (true) {
    const ssize_t n = read(from_child[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.stdout_text.append(buffer, static_cast<size_t>(n));
  }
  close(from_child[0]);
  writer.join();
  while (waitpid(*pid, &output.wait_status, 0) < 0 && errno == EINTR) {
  }
  return output;
}

}  // namespace warren::cli
