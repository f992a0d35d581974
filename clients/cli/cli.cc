#include "clients/cli/cli.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "clients/cli/exit_codes.h"
#include "warren/client/channel.h"

namespace warren::cli {
namespace {

namespace client = warren::client;

constexpr char kDefaultServer[] = "127.0.0.1:50051";

const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* flags = new std::vector<FlagSpec>{
      {"server"},
      {"timeout"},
      {"tls", FlagSpec::Kind::kBool},
      {"tls_ca"},
      {"tls_cert"},
      {"tls_key"},
      {"tls_server_name"},
      {"token"},
      {"json", FlagSpec::Kind::kBool},
      {"help", FlagSpec::Kind::kBool},
  };
  return *flags;
}

const std::vector<Command>& AllCommands() {
  static const auto* commands = [] {
    auto* all = new std::vector<Command>();
    for (auto part : {MessagingCommands(), ElectionCommands(), LockCommands(),
                      ConfigCommands()}) {
      for (auto& command : part) all->push_back(std::move(command));
    }
    return all;
  }();
  return *commands;
}

const Command* FindCommand(const std::string& name) {
  for (const Command& command : AllCommands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

std::string MainHelp() {
  std::string commands;
  for (const Command& command : AllCommands()) {
    absl::StrAppendFormat(&commands, "  %-15s %s\n", command.name,
                          command.synopsis);
  }
  return absl::StrCat(
      R"txt(Usage: warren [global options] COMMAND [arguments] [options]

warren talks to a Warren server (warrend): publish and subscribe through
RabbitMQ, leader election and configuration in ZooKeeper.

Commands:
)txt",
      commands,
      R"txt(  help COMMAND    show the help of COMMAND (also: warren COMMAND --help)

Global options (before or after the command):
  --server=HOST:PORT   the server (default: $WARREN_ADDRESS, else 127.0.0.1:50051)
  --tls                connect with TLS (the system's CAs unless --tls_ca);
                       implied by any --tls_* option or $WARREN_TLS_*
  --tls_ca=FILE        PEM CA that signs the server's certificate
                       (default: $WARREN_TLS_CA)
  --tls_cert=FILE      PEM client certificate, for a server that requires
  --tls_key=FILE       one (mutual TLS), and its key ($WARREN_TLS_CERT,
                       $WARREN_TLS_KEY)
  --tls_server_name=NAME  name the server's certificate carries, when not the
                       host of --server ($WARREN_TLS_SERVER_NAME)
  --token=TOKEN        bearer token sent with every call (default:
                       $WARREN_TOKEN); for a server with authentication on
  --timeout=DURATION   deadline of each call, e.g. 500ms, 5s, 1m (default 10s);
                       streaming commands (subscribe, elect, leader --watch,
                       config watch, config hold) run until stopped unless
                       it is given, and then stop after it with exit code 5;
                       warren lock waits at most this long for the lock
  --json               print one JSON object per line (protobuf's JSON
                       mapping: camelCase names, bytes in base64, 64-bit
                       integers as strings)
  --help               show help

Exit codes:
  0  ok (streaming commands: also when stopped by SIGINT/SIGTERM or --max)
  1  any other error (INTERNAL, RESOURCE_EXHAUSTED, PERMISSION_DENIED, ...)
  2  usage: the command line is wrong, or the server refused an argument
     (INVALID_ARGUMENT, OUT_OF_RANGE)
  3  not found (NOT_FOUND): no such key or exchange, no leader
  4  precondition failed: FAILED_PRECONDITION (version mismatch, key has
     children, unroutable message), ABORTED, ALREADY_EXISTS
     (create-only put of an existing key)
  5  unavailable: UNAVAILABLE, DEADLINE_EXCEEDED, --timeout of a streaming
     command, a broken stream, an election lease that ran out, a lock not
     acquired within --timeout; retrying may help
  6  warren lock: the lock was lost while COMMAND ran (COMMAND was sent
     SIGTERM); otherwise warren lock exits with COMMAND's status
Errors go to stderr as "warren: CODE: message".
)txt");
}

std::string GroupHelp(const std::string& group) {
  std::string text = absl::StrCat("Usage: warren ", group,
                                  " SUBCOMMAND [arguments] [options]\n\n");
  for (const Command& command : AllCommands()) {
    if (absl::StartsWith(command.name, group + " ")) {
      absl::StrAppendFormat(&text, "  %-15s %s\n", command.name,
                            command.synopsis);
    }
  }
  absl::StrAppend(&text, "\nRun 'warren help ", group,
                  " SUBCOMMAND' for the options of one.\n");
  return text;
}

bool IsGroup(const std::string& word) {
  for (const Command& command : AllCommands()) {
    if (absl::StartsWith(command.name, word + " ")) return true;
  }
  return false;
}

// Finds the command named by words[0] (and words[1] for a group), and
// answers how many words it took; nullptr (and 0 or 1) when there is none.
// A word that is a command and a group (`lock NAME -- COMMAND`, `lock get
// NAME`) names the command when words[1] is no subcommand, or when the
// command line has `--`, which only the command itself takes.
const Command* Resolve(const std::vector<std::string>& words, size_t* used) {
  *used = 0;
  if (words.empty()) return nullptr;
  const Command* single = FindCommand(words[0]);
  if (IsGroup(words[0])) {
    *used = 1;
    const bool has_dashes =
        std::find(words.begin(), words.end(), "--") != words.end();
    if (words.size() >= 2 && !(single != nullptr && has_dashes)) {
      if (const Command* command = FindCommand(words[0] + " " + words[1])) {
        *used = 2;
        return command;
      }
    }
    return single;
  }
  if (single != nullptr) *used = 1;
  return single;
}

int PrintUsageError(const absl::Status& status, const std::string& command) {
  std::fprintf(stderr, "warren: %s\nRun 'warren help%s' for usage.\n",
               std::string(status.message()).c_str(),
               command.empty() ? "" : (" " + command).c_str());
  return kExitUsage;
}

int Help(const std::vector<std::string>& words) {
  if (words.empty()) {
    std::fputs(MainHelp().c_str(), stdout);
    return kExitOk;
  }
  size_t used = 0;
  const Command* command = Resolve(words, &used);
  if (command != nullptr && used == words.size()) {
    std::fputs(command->help.c_str(), stdout);
    return kExitOk;
  }
  if (command == nullptr && used == 1 && words.size() == 1) {
    std::fputs(GroupHelp(words[0]).c_str(), stdout);
    return kExitOk;
  }
  return PrintUsageError(
      UsageError(absl::StrCat("no command '", absl::StrJoin(words, " "), "'")),
      "");
}

}  // namespace

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

std::vector<FlagSpec> FenceFlags() {
  return {{"fence-election"},
          {"fence-lock"},
          {"fence-token"},
          {"fenced", FlagSpec::Kind::kBool}};
}

std::vector<FlagSpec> WithFenceFlags(std::vector<FlagSpec> flags) {
  for (FlagSpec& flag : FenceFlags()) flags.push_back(std::move(flag));
  return flags;
}

absl::StatusOr<std::optional<v1::Fence>> ParseFence(const Args& args) {
  auto fenced = args.GetBool("fenced");
  if (!fenced.ok()) return fenced.status();
  const auto election = args.Get("fence-election");
  const auto lock = args.Get("fence-lock");
  const auto token_text = args.Get("fence-token");
  if (*fenced) {
    if (election || lock || token_text) {
      return UsageError("--fenced takes no other --fence-* option");
    }
    const char* name = std::getenv("WARREN_LOCK_NAME");
    const char* token = std::getenv("WARREN_FENCING_TOKEN");
    if (name == nullptr || token == nullptr) {
      return UsageError(
          "--fenced needs $WARREN_LOCK_NAME and $WARREN_FENCING_TOKEN (run "
          "it under 'warren lock')");
    }
    v1::Fence fence;
    fence.set_lock(name);
    uint64_t value = 0;
    if (!absl::SimpleAtoi(token, &value) || value == 0) {
      return UsageError(
          absl::StrCat("$WARREN_FENCING_TOKEN is no fencing token: ", token));
    }
    fence.set_fencing_token(value);
    return fence;
  }
  if (!election && !lock) {
    if (token_text) {
      return UsageError("--fence-token needs --fence-election or --fence-lock");
    }
    return std::optional<v1::Fence>();
  }
  if (election && lock) {
    return UsageError("--fence-election and --fence-lock exclude each other");
  }
  if (!token_text) {
    return UsageError(absl::StrCat("--fence-", election ? "election" : "lock",
                                   " needs --fence-token"));
  }
  uint64_t token = 0;
  if (!absl::SimpleAtoi(*token_text, &token) || token == 0) {
    return UsageError(
        absl::StrCat("--fence-token takes a fencing token (a number > 0), not ",
                     *token_text));
  }
  v1::Fence fence;
  if (election) {
    fence.set_election(*election);
  } else {
    fence.set_lock(*lock);
  }
  fence.set_fencing_token(token);
  return fence;
}

std::unique_ptr<grpc::ClientContext> Context::UnaryContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(
      absl::ToChronoTime(absl::Now() + timeout.value_or(kDefaultUnaryTimeout)));
  return context;
}

absl::Time Context::StreamDeadline() const {
  return timeout.has_value() ? absl::Now() + *timeout : absl::InfiniteFuture();
}

namespace {

// The channel to the server: plaintext, or TLS when --tls or any TLS file
// or name is given (by flag or $WARREN_TLS_*); a bearer token when --token
// or $WARREN_TOKEN gives one. `setting(flag, env)` answers the flag's
// value, else the variable's, else "".
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(
    const std::string& address, bool tls,
    const std::function<std::string(absl::string_view, const char*)>& setting) {
  client::TlsOptions options;
  options.ca_file = setting("tls_ca", "WARREN_TLS_CA");
  options.cert_file = setting("tls_cert", "WARREN_TLS_CERT");
  options.key_file = setting("tls_key", "WARREN_TLS_KEY");
  options.server_name = setting("tls_server_name", "WARREN_TLS_SERVER_NAME");
  const client::ChannelOptions channel{setting("token", "WARREN_TOKEN")};
  if (client::TlsOptionsFromEnv().has_value()) tls = true;
  if (!tls && options.ca_file.empty() && options.cert_file.empty() &&
      options.key_file.empty() && options.server_name.empty()) {
    return client::MakeChannel(address, channel);
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return UsageError("--tls_cert and --tls_key go together");
  }
  return client::MakeChannel(address, options, channel);
}

}  // namespace

int Main(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);

  // Global options come first, up to the command's name; they may also
  // follow it, among the command's own options.
  size_t first = 0;
  while (first < words.size() && absl::StartsWith(words[first], "-") &&
         words[first] != "-" && words[first] != "--") {
    const bool takes_value =
        (words[first] == "--server" || words[first] == "--timeout" ||
         words[first] == "--tls_ca" || words[first] == "--tls_cert" ||
         words[first] == "--tls_key" || words[first] == "--tls_server_name" ||
         words[first] == "--token");
    first += takes_value ? 2 : 1;
  }
  first = std::min(first, words.size());
  auto globals = Args::Parse(
      std::vector<std::string>(words.begin(), words.begin() + first),
      GlobalFlags());
  if (!globals.ok()) return PrintUsageError(globals.status(), "");
  std::vector<std::string> rest(words.begin() + first, words.end());

  if (rest.empty()) {
    if (globals->Has("help")) return Help({});
    std::fputs(MainHelp().c_str(), stderr);
    return kExitUsage;
  }
  if (rest[0] == "help") {
    return Help(std::vector<std::string>(rest.begin() + 1, rest.end()));
  }

  size_t used = 0;
  const Command* command = Resolve(rest, &used);
  if (command == nullptr) {
    if (used == 1) {  // a group without (a known) subcommand
      const bool asked =
          globals->Has("help") ||
          (rest.size() >= 2 && (rest[1] == "--help" || rest[1] == "-h"));
      if (asked) return Help({rest[0]});
      return PrintUsageError(
          UsageError(
              rest.size() < 2
                  ? absl::StrCat("'", rest[0], "' needs a subcommand")
                  : absl::StrCat("no command '", rest[0], " ", rest[1], "'")),
          rest[0]);
    }
    return PrintUsageError(
        UsageError(absl::StrCat("no command '", rest[0], "'")), "");
  }

  std::vector<FlagSpec> flags = command->flags;
  flags.insert(flags.end(), GlobalFlags().begin(), GlobalFlags().end());
  auto args = Args::Parse(
      std::vector<std::string>(rest.begin() + used, rest.end()), flags);
  if (!args.ok()) return PrintUsageError(args.status(), command->name);
  if (globals->Has("help") || args->Has("help")) {
    std::fputs(command->help.c_str(), stdout);
    return kExitOk;
  }

  // A global given after the command wins over one given before it.
  auto global = [&](absl::string_view name) {
    return args->Has(name) ? args->Get(name) : globals->Get(name);
  };
  Context context;
  const char* env_server = std::getenv("WARREN_ADDRESS");
  context.server = global("server").value_or(
      env_server != nullptr && *env_server != '\0' ? env_server
                                                   : kDefaultServer);
  if (auto timeout_text = global("timeout")) {
    auto timeout = Args::Parse({"--timeout=" + *timeout_text}, GlobalFlags())
                       ->GetDuration("timeout");
    if (!timeout.ok()) return PrintUsageError(timeout.status(), command->name);
    if (**timeout <= absl::ZeroDuration()) {
      return PrintUsageError(UsageError("--timeout must be > 0"),
                             command->name);
    }
    context.timeout = **timeout;
  }
  auto json =
      Args::Parse({"--json=" + global("json").value_or("false")}, GlobalFlags())
          ->GetBool("json");
  if (!json.ok()) return PrintUsageError(json.status(), command->name);
  context.out = Output(*json);
  auto tls_on =
      Args::Parse({"--tls=" + global("tls").value_or("false")}, GlobalFlags())
          ->GetBool("tls");
  if (!tls_on.ok()) return PrintUsageError(tls_on.status(), command->name);
  auto channel = OpenChannel(
      context.server, *tls_on, [&](absl::string_view flag, const char* env) {
        if (auto value = global(flag)) return *value;
        const char* from_env = std::getenv(env);
        return std::string(from_env == nullptr ? "" : from_env);
      });
  if (!channel.ok()) {
    if (IsUsageError(channel.status())) {
      return PrintUsageError(channel.status(), command->name);
    }
    std::fprintf(stderr, "warren: %s\n",
                 std::string(channel.status().message()).c_str());
    return kExitUsage;
  }
  context.channel = *std::move(channel);

  absl::Status status = command->run(context, *args);
  if (status.ok()) return kExitOk;
  if (const std::optional<int> code = ExplicitExitCode(status)) {
    if (!status.message().empty()) {
      std::fprintf(stderr, "warren: %s\n",
                   std::string(status.message()).c_str());
    }
    return *code;
  }
  if (IsUsageError(status)) return PrintUsageError(status, command->name);
  std::fprintf(stderr, "warren: %s: %s\n",
               absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return ExitCodeFor(status);
}

}  // namespace warren::cli
