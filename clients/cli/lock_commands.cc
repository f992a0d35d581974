// warren lock NAME -- COMMAND, warren lock get.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "clients/cli/cli.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/spawn.h"
#include "clients/cli/stream.h"
#include "warren/client/locker.h"
#include "warren/v1/lock.grpc.pb.h"

namespace warren::cli {
namespace {

using Kind = FlagSpec::Kind;
namespace client = ::warren::client;

// How long COMMAND has to exit after the SIGTERM of a lost lock before it
// is killed.
constexpr absl::Duration kKillAfter = absl::Seconds(10);

// What happens while COMMAND runs, from the lock's threads, the signal
// thread and the thread that waits for COMMAND.
struct RunState {
  absl::Mutex mu;
  bool exited ABSL_GUARDED_BY(mu) = false;
  int wait_status ABSL_GUARDED_BY(mu) = 0;
  bool lost ABSL_GUARDED_BY(mu) = false;
  std::string lost_reason ABSL_GUARDED_BY(mu);
  bool stop_requested ABSL_GUARDED_BY(mu) = false;
};

std::string HolderIds(const std::vector<v1::LockHolder>& holders) {
  return absl::StrJoin(holders, ", ",
                       [](std::string* out, const v1::LockHolder& holder) {
                         absl::StrAppend(out, holder.holder_id());
                       });
}

absl::Status RunLock(Context& context, const Args& args) {
  const std::optional<size_t> before = args.positional_before_dashes();
  if (!before.has_value() || *before != 1 || args.positional().size() < 2) {
    return UsageError("give the lock's NAME, then -- COMMAND [ARGS...]");
  }
  const std::string name = args.positional()[0];
  const std::vector<std::string> command(args.positional().begin() + 1,
                                         args.positional().end());
  auto limit = args.GetInt("limit");
  if (!limit.ok()) return limit.status();
  if (limit->has_value() && (**limit < 1 || **limit > 1000)) {
    return UsageError("--limit takes 1 to 1000");
  }
  auto heartbeat = args.GetDuration("heartbeat-interval");
  if (!heartbeat.ok()) return heartbeat.status();
  auto no_wait = args.GetBool("no-wait");
  if (!no_wait.ok()) return no_wait.status();
  if (*no_wait && context.timeout.has_value()) {
    return UsageError("--no-wait and --timeout exclude each other");
  }

  RunState state;
  client::LockOptions options;
  options.holder_id = args.Get("holder").value_or("");
  options.value = args.Get("value").value_or("");
  options.limit = static_cast<uint32_t>(limit->value_or(1));
  if (*no_wait) {
    options.timeout = absl::ZeroDuration();
  } else {
    options.timeout = context.timeout;  // unset: as long as it takes
  }
  if (heartbeat->has_value()) options.heartbeat_interval = **heartbeat;
  options.on_queued = [&name](uint32_t position,
                              const std::vector<v1::LockHolder>& holders) {
    std::fprintf(stderr, "waiting for lock %s: %u ahead, held by %s\n",
                 name.c_str(), position, HolderIds(holders).c_str());
  };
  options.on_lost = [&state](client::LossReason reason, const absl::Status&) {
    absl::MutexLock lock(&state.mu);
    if (state.lost) return;
    state.lost = true;
    state.lost_reason = client::LossReasonName(reason);
  };
  client::Locker locker(context.channel);
  // No stop handler yet: a signal while waiting ends the process at once,
  // and the server gives up its place in line when the stream drops.
  auto held = locker.Acquire(name, options);
  if (!held.ok()) return held.status();
  const uint64_t token = (*held)->fencing_token();
  std::fprintf(stderr, "acquired lock %s (holder %s, fencing_token=%llu)\n",
               name.c_str(), (*held)->holder().holder_id().c_str(),
               static_cast<unsigned long long>(token));

  // SIGINT/SIGTERM go on to COMMAND; the lock is released once it exits.
  StopSignals::Scope stop([&state] {
    absl::MutexLock lock(&state.mu);
    state.stop_requested = true;
  });
  auto pid = Spawn(command, {absl::StrCat("WARREN_LOCK_NAME=", name),
                             absl::StrCat("WARREN_FENCING_TOKEN=", token),
                             absl::StrCat("WARREN_LOCK_HOLDER=",
                                          (*held)->holder().holder_id())});
  if (!pid.ok()) return pid.status();  // ~HeldLock releases
  std::thread waiter([&state, child = *pid] {
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    absl::MutexLock lock(&state.mu);
    state.exited = true;
    state.wait_status = status;
  });

  bool forwarded = false;
  absl::Time kill_at = absl::InfiniteFuture();
  // Set when COMMAND ran (for all we know) while the lock was lost.
  std::string lost_reason;
  {
    absl::MutexLock lock(&state.mu);
    while (true) {
      auto news = [&state,
                   &forwarded]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
        return state.exited ||
               (!forwarded && (state.stop_requested || state.lost));
      };
      state.mu.AwaitWithDeadline(absl::Condition(&news), kill_at);
      if (state.exited) {
        if (state.lost) lost_reason = state.lost_reason;
        break;
      }
      if (absl::Now() >= kill_at) {
        kill(*pid, SIGKILL);
        kill_at = absl::InfiniteFuture();
        continue;
      }
      if (!forwarded && (state.stop_requested || state.lost)) {
        forwarded = true;
        if (state.lost) {
          std::fprintf(
              stderr, "warren: lost lock %s (%s): sending SIGTERM to %s\n",
              name.c_str(), state.lost_reason.c_str(), command[0].c_str());
          kill_at = absl::Now() + kKillAfter;
        }
        kill(*pid, SIGTERM);
      }
    }
  }
  waiter.join();
  (*held)->Release();
  if (!lost_reason.empty()) {
    return ExitWith(kExitLockLost,
                    absl::StrCat("lost lock ", name, " while ", command[0],
                                 " ran (", lost_reason, ")"));
  }
  absl::MutexLock lock(&state.mu);
  if (WIFEXITED(state.wait_status)) {
    return ExitWith(WEXITSTATUS(state.wait_status), "");
  }
  if (WIFSIGNALED(state.wait_status)) {
    return ExitWith(128 + WTERMSIG(state.wait_status), "");
  }
  return ExitWith(kExitError, "COMMAND ended in an unknown way");
}

std::string FormatHolder(const v1::LockHolder& holder) {
  return absl::StrCat(holder.holder_id(), " (value=", Printable(holder.value()),
                      ", fencing_token=", holder.fencing_token(), ", acquired ",
                      FormatTime(holder.acquired_time()), ")");
}

absl::Status RunLockGet(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(1, 1); !s.ok()) return s;
  auto stub = v1::LockService::NewStub(context.channel);
  v1::GetLockRequest request;
  request.set_name(args.positional()[0]);
  v1::GetLockResponse response;
  auto call = context.UnaryContext();
  absl::Status status = FromGrpc(stub->GetLock(call.get(), request, &response));
  if (!status.ok()) return status;
  if (context.out.json()) {
    context.out.Json(response);
    return absl::OkStatus();
  }
  for (const v1::LockHolder& holder : response.holders()) {
    context.out.Line(absl::StrCat("holder: ", FormatHolder(holder)));
  }
  if (response.holders().empty()) context.out.Line("no holder");
  context.out.Line(absl::StrCat("limit: ", response.limit(),
                                ", waiting: ", response.waiting()));
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> LockCommands() {
  return {
      {"lock",
       "run a command while holding a lock (or: lock get NAME)",
       R"txt(Usage: warren lock NAME [--limit=N] [--timeout=DUR | --no-wait]
                   [--holder=ID] [--value=V] -- COMMAND [ARGS...]
       warren lock get NAME

Waits for the lock NAME (a mutex, or with --limit=N a semaphore of N
holders), runs COMMAND while holding it, and releases it as soon as COMMAND
exits. COMMAND's environment has
  WARREN_LOCK_NAME       NAME
  WARREN_FENCING_TOKEN   the fencing token (larger for every later holder):
                         hand it to what COMMAND writes, or fence Warren's
                         own writes with 'warren config put ... --fenced'
  WARREN_LOCK_HOLDER     this holder's id
warren lock exits with COMMAND's status (128 + N when a signal N ended it,
127 when COMMAND cannot be found, 126 when it cannot run).

While COMMAND runs, the lease is checked as for 'warren elect': the lock
counts as lost when the server reports a loss (connection suspended, session
expired), when the stream breaks, or when two heartbeat intervals pass
without a message. Then COMMAND is sent SIGTERM (SIGKILL 10s later if it is
still running) and warren lock exits 6, whatever COMMAND's status: another
holder may be running already.

SIGINT/SIGTERM while COMMAND runs are passed on to it as SIGTERM (and the
lock is released once it exits); while waiting for the lock they end
warren lock at once (exit 128 + N), leaving nothing behind.

Progress goes to stderr ("waiting for lock NAME: N ahead, held by ...",
"acquired lock NAME (holder ID, fencing_token=N)"); stdout is COMMAND's.

Options:
  --limit=N                  the most holders at once (default 1: a mutex);
                             everyone using NAME must give the same (else
                             exit 4)
  --timeout=DUR              (global) wait at most DUR for the lock, else
                             exit 5 (DEADLINE_EXCEEDED); default: as long as
                             it takes
  --no-wait                  try once: exit 5 at once when the lock is taken
  --holder=ID                this holder's id, shown to others (default:
                             chosen by the server)
  --value=V                  shown to others, e.g. what this holder does
  --heartbeat-interval=DUR   lease heartbeat (default 1s)

warren lock get NAME prints the holders of NAME (in the order they
acquired), its limit and how many wait:
  holder: ID (value=..., fencing_token=N, acquired TIME)
  limit: 1, waiting: 2
("no holder" and "limit: 0" when nobody holds it). With --json, the
GetLockResponse: {"holders":[{"name","holderId","value" (base64),
"fencingToken" (a string),"acquiredTime"}],"waiting":N,"limit":N}.
A lock nobody uses is no error.
)txt",
       {{"limit"},
        {"holder"},
        {"value"},
        {"no-wait", Kind::kBool},
        {"heartbeat-interval"}},
       RunLock},
      {"lock get",
       "print who holds a lock and how many wait",
       R"txt(Usage: warren lock get NAME

Prints the holders of lock NAME, in the order they acquired, its limit and
how many clients wait:
  holder: ID (value=..., fencing_token=N, acquired TIME)
  limit: 1, waiting: 2
"no holder" and "limit: 0" when nobody holds it (no error: a lock exists
only while someone holds or waits).

Output with --json: the GetLockResponse, {"holders":[{"name","holderId",
"value" (base64),"fencingToken" (a string),"acquiredTime"}],"waiting":N,
"limit":N}.
)txt",
       {},
       RunLockGet},
  };
}

}  // namespace warren::cli
