// Elector: a candidacy in a Warren leader election (ElectionService.Elect),
// with the client half of the leader lease.
//
// Events, each through a callback (all called on the elector's threads, one
// at a time, never concurrently):
//   on_elected(leader)   this candidate leads; leader.fencing_token() is the
//                        token to hand to downstream systems, which reject
//                        writes carrying an older one;
//   on_following(leader) another candidate leads (nullptr: nobody, for now);
//   on_lost(reason, why) this candidate no longer leads. Stop leader work at
//                        once.
//
// Losses the server reports (resigned, connection suspended, session
// expired) are passed on. The client adds two of its own, because the
// server's "lost" message may never arrive:
//   kStreamBroken  the stream ended while leading: reported at once;
//   kLeaseExpired  while leading, no message (heartbeat or other) arrived
//                  within 2 heartbeat intervals (the lease): the
//                  server sends lease heartbeats only while its ZooKeeper
//                  session is connected, so silence means the leadership may
//                  already be gone. The stream is then cancelled (the server
//                  removes the candidate node) and, with recampaign, a new
//                  candidacy starts.
// After a loss, with ElectorOptions::recampaign (the default: true), the
// elector campaigns again on a new stream once its stream has ended with a
// code clients/retry-policy.json says to resubscribe on (after a jittered
// backoff, waiting for the channel while it reconnects); a fatal code
// (INVALID_ARGUMENT, PERMISSION_DENIED, ...) ends the candidacy. A
// CONNECTION_SUSPENDED loss keeps the stream, and the server itself says
// "elected" again if the session survives. Close() resigns:
// on_lost(kResigned) if leading, and the next candidate takes over at once.
//
// The heartbeat interval is asked of the server, which caps it at a third of
// its ZooKeeper session timeout without saying so. The lease therefore uses
// min(requested interval, measured gap between two heartbeats), so a capped
// interval shortens the lease after the second heartbeat. Ask for an
// interval at most a third of the server's --zk_session_timeout.
//
// Threading: a reader thread per candidacy (gRPC's synchronous API; see
// subscriber.h for why) and a lease timer thread. Never call Close() or
// destroy the Elector from its own callbacks.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "warren/client/backoff.h"
#include "warren/client/loss_reason.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::client {

struct ElectorOptions {
  // The election's name: `/`-separated segments of [A-Za-z0-9._-], none of
  // them starting with "c_".
  std::string election;
  // This candidate's id; empty lets the server generate one (see
  // Elector::candidate_id() once elected or following).
  std::string candidate_id;
  // Published while this candidate leads, e.g. its address.
  std::string value;
  // The lease heartbeat interval asked of the server (see above);
  // clients/defaults.json.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Server side: a candidacy ended by session expiry starts again on the
  // new session instead of ending the stream; clients/defaults.json.
  bool rejoin_after_expiry = true;
  // Campaign again on a new stream after the stream ended (broken, lease
  // expired, session expired). Default true: a service usually wants to stay
  // a candidate; on_lost has already told it to stop leading.
  bool recampaign = true;
  BackoffPolicy backoff;
  // How long Start() waits for the first event.
  absl::Duration start_timeout = absl::Seconds(30);
  // How long Close() waits for the server to confirm the resignation.
  absl::Duration close_timeout = absl::Seconds(10);

  std::function<void(const warren::v1::Leader& self)> on_elected;
  std::function<void(const warren::v1::Leader* leader)> on_following;
  std::function<void(LossReason reason, const absl::Status& why)> on_lost;
  // Each stream end other than by Close(), before campaigning again (or
  // giving up, when recampaign is off or the error is permanent).
  std::function<void(const absl::Status& status)> on_stream_error;
};

class Elector {
 public:
  // Campaigns and answers after the first event (elected or following), or
  // the error that ended the first attempt (INVALID_ARGUMENT for a bad name,
  // ...), or DEADLINE_EXCEEDED after start_timeout.
  static absl::StatusOr<std::unique_ptr<Elector>> Start(
      std::shared_ptr<grpc::Channel> channel, ElectorOptions options);
  ~Elector();  // Close()
  Elector(const Elector&) = delete;
  Elector& operator=(const Elector&) = delete;

  // Resigns and ends the candidacy; idempotent, blocks until done.
  void Close();

  // Publishes a new value while leading (FAILED_PRECONDITION otherwise). The
  // server does not answer a proclaim; if it refuses one, the stream ends.
  absl::Status Proclaim(const std::string& value);

  bool leading() const;
  // The fencing token while leading, else 0.
  uint64_t fencing_token() const;
  // The leader as last reported (this candidate while leading).
  std::optional<warren::v1::Leader> leader() const;
  // OK while campaigning and after Close(); the error that ended it
  // otherwise.
  absl::Status status() const;

 private:
  class Impl;
  explicit Elector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warren::client
