// warren config get|put|delete|list|watch.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "clients/cli/cli.h"
#include "clients/cli/stream.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::cli {
namespace {

using Kind = FlagSpec::Kind;

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
      {"config put",
       "write a key (unconditionally, create-only, or CAS)",
       R"txt(Usage: warren config put KEY [VALUE|-] [--expect-version=N | --create-only]

Writes KEY; without VALUE (or with -) the value is read from stdin. Missing
parent keys are created. Prints the new version (0 after creation, +1 per
write).

Options:
  --expect-version=N   compare-and-set: write only if KEY is at version N,
                       else FAILED_PRECONDITION (exit 4)
  --create-only        write only if KEY does not exist, else ALREADY_EXISTS
                       (exit 4)

Output: "KEY: version N"; with --json the entry, as for get.
)txt",
       {{"expect-version"}, {"create-only", Kind::kBool}},
       RunPut},
      {"config delete",
       "delete a key (optionally its subtree, or CAS)",
       R"txt(Usage: warren config delete KEY [--recursive] [--expect-version=N]

Deletes KEY. Exit 3 when it does not exist; exit 4 when it has children and
--recursive is not given, or when --expect-version does not match.

Options:
  --recursive          delete KEY and everything below it, atomically
  --expect-version=N   delete only if KEY is at version N

Output: "deleted KEY"; with --json {"key":KEY,"deleted":true}.
)txt",
       {{"recursive", Kind::kBool}, {"expect-version"}},
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

Output: one line per key: "KEY = VALUE (version N)", or just KEY with
--keys-only; with --single-page the next token goes to stderr as
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
  };  // namespace warren::cli
}

}  // namespace warren::cli
