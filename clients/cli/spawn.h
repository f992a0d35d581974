// Running a COMMAND of the user's from `warren lock` and `warren respond`.
#pragma once

#include <spawn.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace warren::cli {

// COMMAND with this process's environment plus `extra` (NAME=VALUE each),
// its signal mask cleared (this process blocks SIGINT/SIGTERM in every
// thread, see StopSignals, and a child would inherit that) and SIGPIPE at
// its default; `file_actions` (may be null) set up its descriptors.
// Answers the pid, or an ExitWith status with the code a shell would give
// (127 not found, 126 not runnable).
absl::StatusOr<pid_t> Spawn(
    const std::vector<std::string>& command,
    const std::vector<std::string>& extra,
    const posix_spawn_file_actions_t* file_actions = nullptr);

struct CommandOutput {
  int wait_status = 0;  // as waitpid gives it
  std::string stdout_text;
};

// Runs COMMAND (as Spawn does) with `input` on its stdin, waits for it to
// exit and answers what it wrote to stdout; its stderr is this process's.
absl::StatusOr<CommandOutput> RunWithInput(
    const std::vector<std::string>& command,
    const std::vector<std::string>& extra, const std::string& input);

}  // namespace warren::cli
