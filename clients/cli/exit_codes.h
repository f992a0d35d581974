// The exit codes of `warren`, which scripts may rely on (README.md and
// `warren --help` show the same table), and the one place where a gRPC
// status becomes an absl::Status.
#pragma once

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace warren::cli {

enum ExitCode : int {
  // Done; for streaming commands also: stopped by SIGINT/SIGTERM or --max.
  kExitOk = 0,
  // Any other error (INTERNAL, RESOURCE_EXHAUSTED, PERMISSION_DENIED, ...).
  kExitError = 1,
  // The command line is wrong, or the server refused an argument
  // (INVALID_ARGUMENT, OUT_OF_RANGE): retrying the same command cannot help.
  kExitUsage = 2,
  // NOT_FOUND: no such key, exchange, or no leader.
  kExitNotFound = 3,
  // The world is not as the command assumed: FAILED_PRECONDITION (version
  // mismatch on compare-and-set, unroutable mandatory message, key has
  // children), ABORTED, ALREADY_EXISTS (create-only put on an existing key).
  kExitPrecondition = 4,
  // The server could not be reached or did not answer in time: UNAVAILABLE,
  // DEADLINE_EXCEEDED (also --timeout on a streaming command, a stream that
  // broke, an election lease that ran out, and a lock not acquired within
  // --timeout). Retrying may help.
  kExitUnavailable = 5,
  // `warren lock`: the lock was lost while COMMAND ran, and COMMAND was
  // sent SIGTERM. (Otherwise `warren lock` exits with COMMAND's status.)
  kExitLockLost = 6,
};

ExitCode ExitCodeFor(const absl::Status& status);

// A command's end with an exit code of its own (`warren lock` passes on
// COMMAND's), and a message for stderr ("" for none). Main exits with
// `code` instead of the one ExitCodeFor would choose.
absl::Status ExitWith(int code, absl::string_view message);
// The code of an ExitWith status; nullopt for any other.
std::optional<int> ExplicitExitCode(const absl::Status& status);

// grpc::Status -> absl::Status; the codes are numerically the same.
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace warren::cli
