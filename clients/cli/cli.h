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

std::vector<Command> MessagingCommands();
std::vector<Command> ElectionCommands();
std::vector<Command> ConfigCommands();

// The program: answers the exit code.
int Main(int argc, char** argv);

}  // namespace warren::cli
