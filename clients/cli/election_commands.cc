// warren elect, warren leader.
#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "clients/cli/cli.h"
#include "clients/cli/stream.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::cli {
namespace {

using Kind = FlagSpec::Kind;

// Lease heartbeats that `elect` asks for unless told otherwise. The server
// silently caps the interval at a third of its ZooKeeper session timeout
// (10s by default), and does not say what it chose; asking for a short one
// keeps the client's lease (two intervals) inside the session timeout.
constexpr absl::Duration kDefaultLeaseHeartbeat = absl::Seconds(1);

void PrintElectEvent(const Context& context, const v1::ElectResponse& event) {
  if (context.out.json()) {
    context.out.Json(event);
    return;
  }
  switch (event.event_case()) {
    case v1::ElectResponse::kElected:
      context.out.Line(
          absl::StrCat("elected: ", FormatLeader(event.elected().leader())));
      break;
    case v1::ElectResponse::kFollowing:
      context.out.Line(
          event.following().has_leader()
              ? absl::StrCat("following: ",
                             FormatLeader(event.following().leader()))
              : std::string("following: no leader yet"));
      break;
    case v1::ElectResponse::kLost:
      context.out.Line(absl::StrCat("lost: ", LossName(event.lost().reason())));
      break;
    default:
      break;
  }
}

absl::Status RunElect(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(1, 1); !s.ok()) return s;
  auto heartbeat = args.GetDuration("heartbeat-interval");
  if (!heartbeat.ok()) return heartbeat.status();
  const absl::Duration interval = heartbeat->value_or(kDefaultLeaseHeartbeat);
  if (interval < absl::Milliseconds(100)) {
    return UsageError("--heartbeat-interval must be at least 100ms");
  }
  auto rejoin = args.GetBool("rejoin-after-expiry");
  if (!rejoin.ok()) return rejoin.status();

  v1::ElectRequest campaign_request;
  v1::Campaign* campaign = campaign_request.mutable_campaign();
  campaign->set_election(args.positional()[0]);
  campaign->set_candidate_id(args.Get("id").value_or(""));
  campaign->set_value(args.Get("value").value_or(""));
  campaign->set_rejoin_after_expiry(*rejoin);
  SetDuration(interval, campaign->mutable_heartbeat_interval());

  auto stub = v1::ElectionService::NewStub(context.channel);
  grpc::ClientContext call;
  auto stream = stub->Elect(&call);
  stream->Write(campaign_request);
  StreamSession<v1::ElectResponse> session(&call, stream.get());
  using Session = StreamSession<v1::ElectResponse>;

  const absl::Time deadline = context.StreamDeadline();
  bool leading = false;
  // While leading: the time by which the next message (a heartbeat or any
  // other) must have come, or the lease is over (docs/semantics.md,
  // "Fencing and the lease").
  absl::Time lease_end = absl::InfiniteFuture();
  // Set once we resign: SIGINT/SIGTERM or --timeout.
  bool resigning = false;
  absl::Status result = absl::OkStatus();
  absl::Time resign_deadline = absl::InfiniteFuture();

  auto resign = [&](absl::Status why) {
    resigning = true;
    result = std::move(why);
    v1::ElectRequest request;
    request.mutable_resign();
    stream->Write(request);
    stream->WritesDone();
    // The server answers "lost: RESIGNED" (when leading) and ends the
    // stream; if it does not, cancelling resigns just as well.
    resign_deadline = absl::Now() + absl::Seconds(5);
  };

  while (true) {
    absl::Time wake = resigning ? resign_deadline : deadline;
    if (leading && !resigning) wake = std::min(wake, lease_end);
    auto event = session.Next(wake);
    switch (event.kind) {
      case Session::Kind::kStop:
        if (!resigning) resign(absl::OkStatus());
        continue;
      case Session::Kind::kTimeout:
        if (resigning) {
          (void)session.CancelAndFinish();
          return result;
        }
        if (leading && absl::Now() >= lease_end) {
          // Two heartbeats missed: the server may have lost its session
          // and another candidate may be elected soon. Step down now, and
          // end the candidacy rather than trust a stream that went quiet.
          PrintClientLost(context.out, "CLIENT_LEASE_EXPIRED");
          (void)session.CancelAndFinish();
          return absl::UnavailableError(absl::StrCat(
              "no heartbeat from the server for ",
              absl::FormatDuration(2 * interval), ": leadership given up"));
        }
        if (absl::Now() >= deadline) {
          resign(absl::DeadlineExceededError(
              "--timeout passed; resigned from the election"));
        }
        continue;
      case Session::Kind::kEnded: {
        absl::Status status = session.Finish();
        if (resigning) return status.ok() ? result : status;
        // A broken stream ends leadership at once: nothing renews the lease
        // any more.
        if (leading) PrintClientLost(context.out, "STREAM_BROKEN");
        if (status.ok()) {
          return absl::UnavailableError("the server ended the election stream");
        }
        return status;
      }
      case Session::Kind::kMessage:
        break;
    }
    const v1::ElectResponse& response = event.message;
    if (leading) lease_end = absl::Now() + 2 * interval;
    switch (response.event_case()) {
      case v1::ElectResponse::kElected:
        leading = true;
        lease_end = absl::Now() + 2 * interval;
        break;
      case v1::ElectResponse::kFollowing:
      case v1::ElectResponse::kLost:
        leading = false;
        break;
      default:
        break;
    }
    if (response.has_heartbeat()) continue;  // it only renewed the lease
    PrintElectEvent(context, response);
  }
}

void PrintLeader(const Context& context, const v1::Leader* leader) {
  if (leader == nullptr) {
    context.out.Line("no leader");
  } else {
    context.out.Line(FormatLeader(*leader));
  }
}

absl::Status RunLeader(Context& context, const Args& args) {
  if (auto s = args.ExpectPositional(1, 1); !s.ok()) return s;
  auto watch = args.GetBool("watch");
  if (!watch.ok()) return watch.status();
  auto stub = v1::ElectionService::NewStub(context.channel);

  if (!*watch) {
    v1::GetLeaderRequest request;
    request.set_election(args.positional()[0]);
    v1::GetLeaderResponse response;
    auto call = context.UnaryContext();
    absl::Status status =
        FromGrpc(stub->GetLeader(call.get(), request, &response));
    if (!status.ok()) return status;
    if (context.out.json()) {
      context.out.Json(response);
    } else {
      PrintLeader(context, &response.leader());
    }
    return absl::OkStatus();
  }

  v1::ObserveLeaderRequest request;
  request.set_election(args.positional()[0]);
  grpc::ClientContext call;
  auto stream = stub->ObserveLeader(&call, request);
  StreamSession<v1::ObserveLeaderResponse> session(&call, stream.get());
  using Session = StreamSession<v1::ObserveLeaderResponse>;
  const absl::Time deadline = context.StreamDeadline();
  while (true) {
    auto event = session.Next(deadline);
    switch (event.kind) {
      case Session::Kind::kStop:
        (void)session.CancelAndFinish();
        return absl::OkStatus();
      case Session::Kind::kTimeout:
        (void)session.CancelAndFinish();
        return absl::DeadlineExceededError("--timeout passed");
      case Session::Kind::kEnded:
        return session.FinishEnded("stream");
      case Session::Kind::kMessage:
        break;
    }
    if (context.out.json()) {
      context.out.Json(event.message);
    } else {
      PrintLeader(context, event.message.has_leader() ? &event.message.leader()
                                                      : nullptr);
    }
  }
}

}  // namespace

std::vector<Command> ElectionCommands() {
  return {
      {"elect",
       "campaign in an election until SIGINT/SIGTERM, printing events",
       R"txt(Usage: warren elect ELECTION [--id=ID] [--value=VALUE] [options]

Campaigns in ELECTION and stays a candidate until SIGINT or SIGTERM, then
resigns (exit 0). Prints every event: "elected" (with the fencing token),
"following" (with the current leader, again whenever it changes), "lost"
(with the reason: RESIGNED, CONNECTION_SUSPENDED, SESSION_EXPIRED).

The lease: while leading, the server sends a heartbeat every
--heartbeat-interval. If two intervals pass without any message, the CLI
prints "lost: CLIENT_LEASE_EXPIRED", leaves the election and exits 5: it can
no longer be sure that it leads. If the stream breaks, it prints
"lost: STREAM_BROKEN" (when leading) and exits 5. It does not campaign again
by itself: run it again (e.g. in a loop) to do so.

Options:
  --id=ID                    the candidate id (default: chosen by the server)
  --value=VALUE              the value published while leading, e.g. an address
  --heartbeat-interval=DUR   lease heartbeat (default 1s; the server caps it at
                             a third of its ZooKeeper session timeout without
                             saying so: keep it below that)
  --rejoin-after-expiry      campaign again on the server's new ZooKeeper
                             session after an expiry (else the stream ends with
                             ABORTED, exit 4)
  --timeout=DUR              (global) resign after DUR and exit 5

Output: one line per event, e.g.
  elected: ID (value=..., fencing_token=N, elected 2024-01-01T00:00:00Z)
  following: ID (value=..., fencing_token=N, elected ...)
  lost: RESIGNED
With --json, each ElectResponse: {"elected":{"leader":{...,"fencingToken":"N"}}},
{"following":{"leader":{...}}} ({"following":{}} while nobody leads),
{"lost":{"reason":"LOSS_REASON_RESIGNED"}}; the CLI's own losses are
{"lost":{"reason":"CLIENT_LEASE_EXPIRED"}} and {"lost":{"reason":"STREAM_BROKEN"}}.
Heartbeats are not printed.
)txt",
       {{"id"},
        {"value"},
        {"heartbeat-interval"},
        {"rejoin-after-expiry", Kind::kBool}},
       RunElect},
      {"leader",
       "print who leads an election (--watch: every change)",
       R"txt(Usage: warren leader ELECTION [--watch]

Prints the current leader of ELECTION: its candidate id, value, fencing
token and when it was elected. Exit 3 (NOT_FOUND) when nobody leads.
With --watch, prints the current leader and then every change until
SIGINT/SIGTERM (exit 0); "no leader" while nobody leads.

Options:
  --watch    keep printing every change of leader

Output: ID (value=..., fencing_token=N, elected TIME); with --json
{"leader":{"election","candidateId","value" (base64),"fencingToken",
"electedTime"}} ({} while nobody leads, with --watch).
)txt",
       {{"watch", Kind::kBool}},
       RunLeader},
  };
}

}  // namespace warren::cli
