// The `warren` command-line client: each command is a Command (its flags,
// its help and a function that runs it against a Context); Main parses the
// global flags, finds the command, runs it and turns its absl::Status into
// an exit code (exit_codes.h).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "clients/cli/args.h"
#include "clients/cli/output.h"
#include "google/protobuf/duration.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "warren/v1/common.pb.h"

namespace warren::cli {

// Unary calls wait this long for an answer unless --timeout says otherwise.
inline constexpr absl::Duration kDefaultUnaryTimeout = absl::Seconds(10);

struct Context {
  std::string server;
  // --timeout as given; unset means the defaults (see DESIGN in --help).
  std::optional<absl::Duration> timeout;
  Output out{false};
  std::shared_ptr<grpc::Channel> channel;

  // A context for one unary call, with its deadline.
  std::unique_ptr<grpc::ClientContext> UnaryContext() const;
  // When a streaming command stops by itself: --timeout from now, or never.
  absl::Time StreamDeadline() const;
};

struct Command {
  std::string name;      // "publish", "config put"
  std::string synopsis;  // one line for the command list
  std::string help;      // the full help: usage, description, options
  std::vector<FlagSpec> flags;
  absl::Status (*run)(Context& context, const Args& args);
};

// `d` (not negative) as a protobuf Duration.
void SetDuration(absl::Duration d, google::protobuf::Duration* out);

// The options that fence a write or a publish (publish, config put, delete
// and txn): --fence-election=NAME or --fence-lock=NAME with
// --fence-token=N, or --fenced (the lock of an enclosing `warren lock`, from
// $WARREN_LOCK_NAME and $WARREN_FENCING_TOKEN).
std::vector<FlagSpec> FenceFlags();
// `flags` and FenceFlags().
std::vector<FlagSpec> WithFenceFlags(std::vector<FlagSpec> flags);
// The fence those options give (nullopt: none), or a usage error.
absl::StatusOr<std::optional<v1::Fence>> ParseFence(const Args& args);
// The options text of FenceFlags for a command's help.
inline constexpr char kFenceHelp[] =
    R"txt(  --fence-election=NAME      write only while the leader of election NAME
                             has --fence-token (else exit 4, nothing done)
  --fence-lock=NAME          write only while a holder of lock NAME has
                             --fence-token (else exit 4, nothing done)
  --fence-token=N            the fencing token (from elect, lock, ...)
  --fenced                   fence with the lock of the enclosing
                             'warren lock' ($WARREN_LOCK_NAME,
                             $WARREN_FENCING_TOKEN)
)txt";

std::vector<Command> MessagingCommands();
std::vector<Command> ElectionCommands();
std::vector<Command> LockCommands();
std::vector<Command> ConfigCommands();

// The program: answers the exit code.
int Main(int argc, char** argv);

}  // namespace warren::cli
