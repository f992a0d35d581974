// warren config get|put|delete|list|watch.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "clients/cli/cli.h"
#include "clients/cli/stream.h"
#include "warren/client/registration.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::cli {
namespace {

using Kind = FlagSpec::Kind;
namespace client = ::warren::client;

absl::Status RunGet(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(1, 1); !s.ok()) return s;
  auto consistent = args.GetBool("consistent");
  if (!consistent.ok()) return consistent.status();
  auto raw = args.GetBool("raw");
  if (!raw.ok()) return raw.status();
  v1::GetConfigRequest request;
  request.set_key(args.positional()[0]);
  request.set_consistent(*consistent);
  v1::GetConfigResponse response;
  auto stub = v1::ConfigService::NewStub(context.channel);
  auto call = context.UnaryContext();
  absl::Status status =
      FromGrpc(stub->GetConfig(call.get(), request, &response));
  if (!status.ok()) return status;
  if (context.out.json()) {
    context.out.Json(response.entry());
  } else if (*raw) {
    context.out.Raw(response.entry().value());
  } else {
    context.out.Line(response.entry().value());
  }
  return absl::OkStatus();
}

absl::Status RunPut(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(1, 2); !s.ok()) return s;
  auto expect = args.GetInt("expect-version");
  if (!expect.ok()) return expect.status();
  auto create_only = args.GetBool("create-only");
  if (!create_only.ok()) return create_only.status();
  if (expect->has_value() && *create_only) {
    return UsageError("--expect-version and --create-only exclude each other");
  }
  v1::PutConfigRequest request;
  request.set_key(args.positional()[0]);
  if (args.positional().size() == 2 && args.positional()[1] != "-") {
    request.set_value(args.positional()[1]);
  } else {
    request.set_value(std::string(std::istreambuf_iterator<char>(std::cin),
                                  std::istreambuf_iterator<char>()));
  }
  if (expect->has_value()) request.set_expected_version(**expect);
  request.set_create_only(*create_only);
  auto fence = ParseFence(args);
  if (!fence.ok()) return fence.status();
  if (fence->has_value()) *request.mutable_fence() = **fence;
  v1::PutConfigResponse response;
  auto stub = v1::ConfigService::NewStub(context.channel);
  auto call = context.UnaryContext();
  absl::Status status =
      FromGrpc(stub->PutConfig(call.get(), request, &response));
  if (!status.ok()) return status;
  if (context.out.json()) {
    context.out.Json(response.entry());
  } else {
    context.out.Line(absl::StrCat(response.entry().key(), ": version ",
                                  response.entry().version()));
  }
  return absl::OkStatus();
}

absl::Status RunDelete(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(1, 1); !s.ok()) return s;
  auto expect = args.GetInt("expect-version");
  if (!expect.ok()) return expect.status();
  auto recursive = args.GetBool("recursive");
  if (!recursive.ok()) return recursive.status();
  v1::DeleteConfigRequest request;
  request.set_key(args.positional()[0]);
  if (expect->has_value()) request.set_expected_version(**expect);
  request.set_recursive(*recursive);
  auto fence = ParseFence(args);
  if (!fence.ok()) return fence.status();
  if (fence->has_value()) *request.mutable_fence() = **fence;
  v1::DeleteConfigResponse response;
  auto stub = v1::ConfigService::NewStub(context.channel);
  auto call = context.UnaryContext();
  absl::Status status =
      FromGrpc(stub->DeleteConfig(call.get(), request, &response));
  if (!status.ok()) return status;
  if (context.out.json()) {
    context.out.Json(
        JsonObject().Set("key", request.key()).Set("deleted", true).proto());
  } else {
    context.out.Line(absl::StrCat("deleted ", request.key()));
  }
  return absl::OkStatus();
}

absl::Status RunList(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(0, 1); !s.ok()) return s;
  auto keys_only = args.GetBool("keys-only");
  if (!keys_only.ok()) return keys_only.status();
  auto single_page = args.GetBool("single-page");
  if (!single_page.ok()) return single_page.status();
  auto page_size = args.GetInt("page-size");
  if (!page_size.ok()) return page_size.status();
  if (page_size->has_value() && (**page_size < 0 || **page_size > 1000)) {
    return UsageError("--page-size takes 0 to 1000");
  }
  v1::ListConfigRequest request;
  if (!args.positional().empty()) request.set_prefix(args.positional()[0]);
  request.set_keys_only(*keys_only);
  request.set_page_size(static_cast<int32_t>(page_size->value_or(0)));
  request.set_page_token(args.Get("page-token").value_or(""));

  auto stub = v1::ConfigService::NewStub(context.channel);
  while (true) {
    v1::ListConfigResponse response;
    auto call = context.UnaryContext();
    absl::Status status =
        FromGrpc(stub->ListConfig(call.get(), request, &response));
    if (!status.ok()) return status;
    for (const v1::ConfigEntry& entry : response.entries()) {
      if (context.out.json()) {
        context.out.Json(entry);
      } else if (*keys_only) {
        context.out.Line(entry.key());
      } else {
        context.out.Line(FormatEntry(entry));
      }
    }
    if (response.next_page_token().empty()) return absl::OkStatus();
    if (*single_page) {
      // The caller pages by itself: tell it where to go on.
      if (context.out.json()) {
        context.out.Json(JsonObject()
                             .Set("nextPageToken", response.next_page_token())
                             .proto());
      } else {
        std::fprintf(stderr, "next page: --page-token=%s\n",
                     response.next_page_token().c_str());
      }
      return absl::OkStatus();
    }
    request.set_page_token(response.next_page_token());
  }
}

// `initial_keys`: the keys of the initial state so far, this response's
// included (a large one spans several responses; the last is marked).
void PrintWatchResponse(const Context& context,
                        const v1::WatchConfigResponse& response,
                        int64_t initial_keys) {
  if (context.out.json()) {
    context.out.Json(response);
    return;
  }
  for (const v1::ConfigEvent& event : response.events()) {
    if (event.type() == v1::CONFIG_EVENT_TYPE_DELETE) {
      context.out.Line(absl::StrCat("DELETE ", event.entry().key(),
                                    " (version ", event.entry().version(),
                                    ")"));
    } else {
      context.out.Line(absl::StrCat("PUT ", FormatEntry(event.entry())));
    }
  }
  if (response.initial_state()) {
    std::fprintf(stderr, "watching: %lld keys now; changes follow\n",
                 static_cast<long long>(initial_keys));
  }
}

absl::Status RunWatch(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(0, 1); !s.ok()) return s;
  auto prefix = args.GetBool("prefix");
  if (!prefix.ok()) return prefix.status();
  if (args.positional().empty() && !*prefix) {
    return UsageError("give a KEY, or --prefix to watch every key");
  }
  auto heartbeat = args.GetDuration("heartbeat-interval");
  if (!heartbeat.ok()) return heartbeat.status();
  auto max = args.GetInt("max");
  if (!max.ok()) return max.status();
  if (max->has_value() && **max <= 0) return UsageError("--max must be > 0");

  v1::WatchConfigRequest request;
  if (!args.positional().empty()) request.set_key(args.positional()[0]);
  request.set_prefix(*prefix);
  if (heartbeat->has_value()) {
    SetDuration(**heartbeat, request.mutable_heartbeat_interval());
  }
  auto stub = v1::ConfigService::NewStub(context.channel);
  grpc::ClientContext call;
  auto stream = stub->WatchConfig(&call, request);
  StreamSession<v1::WatchConfigResponse> session(&call, stream.get());
  using Session = StreamSession<v1::WatchConfigResponse>;
  const absl::Time deadline = context.StreamDeadline();
  int64_t changes = 0;
  // Until a response says initial_state, responses hold the initial state
  // (docs/config-limits.md): not changes.
  bool synced = false;
  int64_t initial_keys = 0;
  while (true) {
    auto event = session.Next(deadline);
    switch (event.kind) {
      case Session::Kind::kStop:
        (void)session.CancelAndFinish();
        return absl::OkStatus();
      case Session::Kind::kTimeout:
        (void)session.CancelAndFinish();
        return absl::DeadlineExceededError(
            absl::StrCat("--timeout passed after ", changes, " changes"));
      case Session::Kind::kEnded:
        return session.FinishEnded("watch");
      case Session::Kind::kMessage:
        break;
    }
    const v1::WatchConfigResponse& response = event.message;
    if (response.has_heartbeat() && response.events_size() == 0) continue;
    if (!synced) {
      initial_keys += response.events_size();
      synced = response.initial_state();
      PrintWatchResponse(context, response, initial_keys);
      continue;
    }
    PrintWatchResponse(context, response, initial_keys);
    changes += response.events_size();
    if (max->has_value() && changes >= **max) {
      (void)session.CancelAndFinish();
      return absl::OkStatus();
    }
  }
}

// --------------------------------------------------------------- txn

// The steps of a transaction, as options or as lines of stdin (the same
// words without the dashes): each check or op is one.
const std::vector<std::string>& TxnStepNames() {
  static const auto* names = new std::vector<std::string>{
      "if-version", "if-exists", "if-missing",
      "put",        "delete",    "delete-recursive"};
  return *names;
}

// Adds one step (`name` with its argument `text`) to `request`.
absl::Status AddTxnStep(const std::string& name, const std::string& text,
                        v1::TxnRequest* request) {
  // Keys cannot contain '=' (nor spaces), so the first one ends the key.
  auto split = [&](absl::string_view what)
      -> absl::StatusOr<std::pair<std::string, std::string>> {
    const size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError(
          absl::StrCat("--", name, " takes KEY=", what, ", not ", text));
    }
    return std::make_pair(text.substr(0, eq), text.substr(eq + 1));
  };
  if (name == "if-version") {
    auto parts = split("VERSION");
    if (!parts.ok()) return parts.status();
    int64_t version = 0;
    if (!absl::SimpleAtoi(parts->second, &version)) {
      return UsageError(
          absl::StrCat("--if-version takes KEY=VERSION, not ", text));
    }
    v1::TxnCheck* check = request->add_checks();
    check->set_key(parts->first);
    check->set_version(version);
  } else if (name == "if-exists" || name == "if-missing") {
    v1::TxnCheck* check = request->add_checks();
    check->set_key(text);
    check->set_exists(name == "if-exists");
  } else if (name == "put") {
    auto parts = split("VALUE");
    if (!parts.ok()) return parts.status();
    v1::PutConfigRequest* put = request->add_ops()->mutable_put();
    put->set_key(parts->first);
    put->set_value(parts->second);
  } else {
    v1::DeleteConfigRequest* del = request->add_ops()->mutable_delete_();
    del->set_key(text);
    del->set_recursive(name == "delete-recursive");
  }
  return absl::OkStatus();
}

// Lines of stdin: "STEP ARGUMENT" (e.g. "put app/a=1", "if-version
// app/b=3"); blank lines and lines starting with '#' are skipped.
absl::Status ReadTxnSteps(v1::TxnRequest* request) {
  std::string line;
  int number = 0;
  while (std::getline(std::cin, line)) {
    ++number;
    absl::string_view rest = absl::StripAsciiWhitespace(line);
    if (rest.empty() || rest[0] == '#') continue;
    const size_t space = rest.find(' ');
    const std::string name(rest.substr(0, space));
    const std::string argument(
        space == absl::string_view::npos ? "" : rest.substr(space + 1));
    if (std::find(TxnStepNames().begin(), TxnStepNames().end(), name) ==
            TxnStepNames().end() ||
        argument.empty()) {
      return UsageError(
          absl::StrCat("stdin line ", number, ": expected STEP ARGUMENT (",
                       absl::StrJoin(TxnStepNames(), ", "), "), not ", line));
    }
    if (auto s = AddTxnStep(name, argument, request); !s.ok()) {
      return UsageError(absl::StrCat("stdin line ", number, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status RunTxn(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(0, 1); !s.ok()) return s;
  v1::TxnRequest request;
  const auto steps = args.InOrder(TxnStepNames());
  const bool from_stdin =
      !args.positional().empty() && args.positional()[0] == "-";
  if (!args.positional().empty() && !from_stdin) {
    return UsageError(absl::StrCat("unexpected argument ", args.positional()[0],
                                   " (steps are options, or '-' for stdin)"));
  }
  if (from_stdin == !steps.empty()) {
    return UsageError(
        "give the steps as options (--put=KEY=VALUE, ...) or '-' to read "
        "them from stdin, not both");
  }
  for (const auto& [name, text] : steps) {
    if (auto s = AddTxnStep(name, text, &request); !s.ok()) return s;
  }
  if (from_stdin) {
    if (auto s = ReadTxnSteps(&request); !s.ok()) return s;
  }
  auto fence = ParseFence(args);
  if (!fence.ok()) return fence.status();
  if (fence->has_value()) *request.mutable_fence() = **fence;
  v1::TxnResponse response;
  auto stub = v1::ConfigService::NewStub(context.channel);
  auto call = context.UnaryContext();
  absl::Status status = FromGrpc(stub->Txn(call.get(), request, &response));
  if (!status.ok()) return status;
  if (context.out.json()) {
    context.out.Json(response);
    return absl::OkStatus();
  }
  int put = 0;
  for (const v1::TxnOp& op : request.ops()) {
    if (op.has_put() && put < response.entries_size()) {
      const v1::ConfigEntry& entry = response.entries(put++);
      context.out.Line(
          absl::StrCat(entry.key(), ": version ", entry.version()));
    } else if (op.has_delete_()) {
      context.out.Line(absl::StrCat("deleted ", op.delete_().key()));
    }
  }
  return absl::OkStatus();
}

// -------------------------------------------------------------- hold

void PrintHoldEvent(const Context& context, const v1::HoldKeyResponse& event) {
  if (context.out.json()) {
    context.out.Json(event);
  } else if (event.has_held()) {
    context.out.Line(absl::StrCat("held: ", FormatEntry(event.held())));
  } else if (event.has_lost()) {
    context.out.Line(absl::StrCat("lost: ", LossName(event.lost().reason())));
  }
}

absl::Status RunHold(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(1, 2); !s.ok()) return s;
  auto heartbeat = args.GetDuration("heartbeat-interval");
  if (!heartbeat.ok()) return heartbeat.status();
  client::RegistrationOptions options;
  options.key = args.positional()[0];
  if (args.positional().size() == 2 && args.positional()[1] != "-") {
    options.value = args.positional()[1];
  } else {
    options.value = std::string(std::istreambuf_iterator<char>(std::cin),
                                std::istreambuf_iterator<char>());
  }
  if (heartbeat->has_value()) options.heartbeat_interval = **heartbeat;
  // Printed by the registration's threads, one event at a time.
  options.on_held = [&context](const v1::ConfigEntry& entry) {
    v1::HoldKeyResponse event;
    *event.mutable_held() = entry;
    PrintHoldEvent(context, event);
  };
  options.on_lost = [&context](client::LossReason reason, const absl::Status&) {
    v1::HoldKeyResponse event;
    switch (reason) {
      case client::LossReason::kConnectionSuspended:
        event.mutable_lost()->set_reason(v1::LOSS_REASON_CONNECTION_SUSPENDED);
        break;
      case client::LossReason::kSessionExpired:
        event.mutable_lost()->set_reason(v1::LOSS_REASON_SESSION_EXPIRED);
        break;
      default:
        // The client's own conclusions have no LossReason on the wire.
        PrintClientLost(context.out, reason == client::LossReason::kLeaseExpired
                                         ? "CLIENT_LEASE_EXPIRED"
                                         : "STREAM_BROKEN");
        return;
    }
    PrintHoldEvent(context, event);
  };
  if (context.timeout.has_value()) {
    options.start_timeout = *context.timeout;
  }
  const absl::Time deadline = context.StreamDeadline();
  absl::Mutex mu;
  bool stop = false;
  bool stream_ended = false;
  // Wakes the wait below: the registration may have given up.
  bool started = false;
  options.on_stream_error = [&](const absl::Status& status) {
    absl::MutexLock lock(&mu);
    // Before it started, Start() answers the error itself.
    if (started) {
      std::fprintf(stderr, "the stream ended: %s\n", status.ToString().c_str());
    }
    stream_ended = true;
  };
  StopSignals::Scope stop_scope([&] {
    absl::MutexLock lock(&mu);
    stop = true;
  });
  auto registration =
      client::Registration::Start(context.channel, std::move(options));
  if (!registration.ok()) return registration.status();
  // Until a signal, --timeout, or a fatal end of the registration.
  absl::Status ended;
  {
    absl::MutexLock lock(&mu);
    started = true;
    auto news = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return stop || stream_ended;
    };
    while (true) {
      if (!mu.AwaitWithDeadline(absl::Condition(&news), deadline)) {
        ended = absl::DeadlineExceededError("--timeout passed; key released");
        break;
      }
      if (stop) break;
      stream_ended = false;
      // Its status is final before on_stream_error is called.
      ended = (*registration)->status();
      if (!ended.ok()) break;
    }
  }
  (*registration)->Close();
  return ended;
}

}  // namespace

std::vector<Command> ConfigCommands() {
  return {
      {"config get",
       "print the value of a key",
       R"txt(Usage: warren config get KEY [--consistent] [--raw]

Prints the value of KEY (a `/`-separated path such as app/db/url).
Exit 3 (NOT_FOUND) when the key does not exist.

Options:
  --consistent   a linearizable read (the server syncs with ZooKeeper first)
                 instead of an answer from its watch cache
  --raw          print the value byte for byte, without a newline

Output: the value and a newline; with --json the entry:
{"key","value" (base64),"version" (a string),"modifyTime"}.
)txt",
       {{"consistent", Kind::kBool}, {"raw", Kind::kBool}},
       RunGet},
      {"config put", "write a key (unconditionally, create-only, or CAS)",
       R"txt(Usage: warren config put KEY [VALUE|-] [--expect-version=N | --create-only]

Writes KEY; without VALUE (or with -) the value is read from stdin. Missing
parents are created as namespace nodes, not keys (they are not listed, and
get answers NOT_FOUND for them). Prints the new version (0 after creation,
+1 per write).

Options:
  --expect-version=N   compare-and-set: write only if KEY is at version N,
                       else FAILED_PRECONDITION (exit 4)
  --create-only        write only if KEY does not exist, else ALREADY_EXISTS
                       (exit 4)

Output: "KEY: version N"; with --json the entry, as for get.

Fences (exit 4, nothing written, when the fence no longer holds):
)txt" + std::string(kFenceHelp),
       WithFenceFlags({{"expect-version"}, {"create-only", Kind::kBool}}),
       RunPut},
      {"config delete", "delete a key (optionally its subtree, or CAS)",
       R"txt(Usage: warren config delete KEY [--recursive] [--expect-version=N]

Deletes KEY. Exit 3 when it does not exist; exit 4 when --expect-version
does not match. Without --recursive, a KEY with children keeps them and
becomes a namespace node (no longer a key).

Options:
  --recursive          delete KEY and everything below it, atomically
  --expect-version=N   delete only if KEY is at version N

Output: "deleted KEY"; with --json {"key":KEY,"deleted":true}.

Fences (exit 4, nothing deleted, when the fence no longer holds):
)txt" + std::string(kFenceHelp),
       WithFenceFlags({{"recursive", Kind::kBool}, {"expect-version"}}),
       RunDelete},
      {"config list",
       "list a key and everything below it",
       R"txt(Usage: warren config list [PREFIX] [options]

Lists PREFIX and every key below it (every key without PREFIX), in path
order. Fetches every page unless --single-page is given.

Options:
  --keys-only          keys and versions only, no values
  --page-size=N        entries per request (server default 100, at most 1000)
  --page-token=TOKEN   start at this page (from an earlier --single-page)
  --single-page        fetch one page only, and print the token of the next

Output: one line per key: "KEY = VALUE (version N)" ("(version N, held)"
for a key held by a HoldKey stream, e.g. 'warren config hold'), or just KEY
with --keys-only; with --single-page the next token goes to stderr as
"next page: --page-token=TOKEN". With --json one entry per line (as for
get), then {"nextPageToken":TOKEN} when --single-page stopped before the
end.
)txt",
       {{"keys-only", Kind::kBool},
        {"page-size"},
        {"page-token"},
        {"single-page", Kind::kBool}},
       RunList},
      {"config watch",
       "print a key (or prefix) and every change to it",
       R"txt(Usage: warren config watch KEY [--prefix] [--max=N] [--heartbeat-interval=DUR]
       warren config watch --prefix            (every key)

Prints the current state of KEY (with --prefix: of KEY and every key below
it, including keys created later), then every change, until --max changes,
SIGINT/SIGTERM (exit 0) or --timeout (exit 5). ZooKeeper may coalesce rapid
writes: the latest state is always printed, not every intermediate version.

Options:
  --prefix                   watch KEY and everything below it
  --max=N                    exit 0 after N changes (the initial state does
                             not count)
  --heartbeat-interval=DUR   server heartbeat on a quiet stream

Output: "PUT KEY = VALUE (version N)" and "DELETE KEY (version N)", one per
line, the initial state first as PUTs ("watching: N keys now" on stderr).
With --json one WatchConfigResponse per line: first the initial state,
{"events":[...],"initialState":true} (a large one in several lines, only the
last with "initialState":true), then {"events":[{"type":
"CONFIG_EVENT_TYPE_PUT"|"CONFIG_EVENT_TYPE_DELETE","entry":{...}}],
"initialState":false}. Heartbeats are not printed.
)txt",
       {{"prefix", Kind::kBool}, {"max"}, {"heartbeat-interval"}},
       RunWatch},
      {"config txn", "apply checks, puts and deletes all or nothing",
       R"txt(Usage: warren config txn STEP... [fence options]
       warren config txn - [fence options]      (steps from stdin)

Applies every step in one atomic ZooKeeper transaction: all checks pass and
all ops apply, or nothing changes. Steps, in order (at most the server's
--max_txn_ops, 100 by default, checks and ops together):
  --if-version=KEY=N         check: KEY exists at version N
  --if-exists=KEY            check: KEY exists
  --if-missing=KEY           check: KEY does not exist
  --put=KEY=VALUE            op: write KEY (its namespace parents as needed)
  --delete=KEY               op: delete KEY (with children: it becomes a
                             namespace node)
  --delete-recursive=KEY     op: delete KEY and everything below it
Checks are numbered in the order given (checks[0], checks[1], ...), and so
are ops. When one fails, nothing changes and the command exits 4 with the
server's message naming it: "checks[1]: ..." or "ops[0]: ...".

With '-' the steps are read from stdin instead, one per line, the same words
without the dashes: "put app/a=1", "if-version app/b=3", "delete app/c";
blank lines and lines starting with # are skipped.

Output: one line per op: "KEY: version N" for a put, "deleted KEY" for a
delete; with --json the TxnResponse, {"entries":[...]} (the entry of each
put, in op order).

Fences (exit 4, nothing changed, when the fence no longer holds):
)txt" + std::string(kFenceHelp),
       WithFenceFlags({{"if-version", Kind::kRepeated},
                       {"if-exists", Kind::kRepeated},
                       {"if-missing", Kind::kRepeated},
                       {"put", Kind::kRepeated},
                       {"delete", Kind::kRepeated},
                       {"delete-recursive", Kind::kRepeated}}),
       RunTxn},
      {"config hold",
       "hold a key while running (service registration), printing events",
       R"txt(Usage: warren config hold KEY [VALUE|-] [--heartbeat-interval=DUR]

Creates KEY (without VALUE, or with -, the value is read from stdin) as a
held key: it exists while this command runs, and is deleted at once when it
stops (SIGINT/SIGTERM: exit 0; --timeout: exit 5). Others see it with get,
list and watch, marked held. If this process or its server dies, the key
goes within the server's ZooKeeper session timeout. Exit 4
(ALREADY_EXISTS) when KEY exists (a key someone put, or someone else's
held key).

Prints every event: "held: KEY = VALUE (version N, held)" once held (and
again after the server recreated it on a new ZooKeeper session), "lost:
CONNECTION_SUSPENDED" or "lost: SESSION_EXPIRED" while it may be or is
gone, "lost: CLIENT_LEASE_EXPIRED" when two heartbeat intervals passed
without a message, "lost: STREAM_BROKEN" when the stream broke. After
those two it holds the key again on a new stream (stderr says why), as the
client libraries' Registration does; a code that retrying cannot fix
(ALREADY_EXISTS, PERMISSION_DENIED, ...) ends the command with its exit
code. ALREADY_EXISTS does so only before the key was first held: on a
re-hold it is most likely the key of a killed server's session, and the
command keeps trying until that session expires.

Options:
  --heartbeat-interval=DUR   lease heartbeat (default 1s)

Output with --json: one HoldKeyResponse per event, {"held":{entry}},
{"lost":{"reason":"LOSS_REASON_CONNECTION_SUSPENDED"}}, and the CLI's own
{"lost":{"reason":"CLIENT_LEASE_EXPIRED"}} and
{"lost":{"reason":"STREAM_BROKEN"}}. Heartbeats are not printed.
)txt",
       {{"heartbeat-interval"}},
       RunHold},
  };
}

}  // namespace warren::cli
