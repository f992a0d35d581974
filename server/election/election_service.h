// warren.v1.ElectionService: validation and status codes at the edge; the
// recipe in Candidacy, leader observation in LeaderWatch.
//
// Elect streams carry the leader's lease: each heartbeat follows fresh proof
// from the ensemble that the leader's node (and so the session) is alive,
// never a timer alone, at an interval capped at a third of the session
// timeout the ensemble negotiated, so a client that has missed two of them
// can step down before the session could expire and a successor be elected.
#pragma once

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth/authorizer.h"
#include "server/common/client_quota.h"
#include "server/common/duration.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "server/election/election_manager.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::election {

struct ElectionServiceOptions {
  // The session timeout asked for; the one the ensemble negotiated wins
  // once known.
  absl::Duration session_timeout = absl::Seconds(10);
  absl::Duration operation_timeout = absl::Seconds(10);
  size_t max_value_bytes = 64 << 10;
  // Elect streams that have campaigned and not ended, over all clients and
  // per client (client_quota.h: the principal, or the peer's address); 0:
  // no limit.
  size_t max_candidates = 20000;
  size_t max_candidates_per_client = 20000;
  // ObserveLeader streams open, over all clients and per client (as
  // above); 0: no limit. Each observed name costs a ZooKeeper watch, and
  // its first read waits its turn on the one session (request_gate.h).
  size_t max_observers = 10000;
  size_t max_observers_per_client = 10000;
  // Checks every call (campaign at Elect's campaign, observe); null: auth
  // off.
  const auth::Authorizer* authorizer = nullptr;
};

// Checks a campaign against the API's rules and the limits (INVALID_ARGUMENT
// naming the field; the election's name by candidate_node.h's rule); answers
// the lease's heartbeat interval for a session of options.session_timeout (see
// LeaseInterval).
absl::StatusOr<absl::Duration> ValidateCampaign(
    const warren::v1::Campaign& campaign,
    const ElectionServiceOptions& options);

class ElectionServiceImpl final
    : public warren::v1::ElectionService::CallbackService {
 public:
  ElectionServiceImpl(ElectionManager& manager, WorkerPool& workers,
                      TimerQueue& timers, StreamRegistry& streams,
                      ElectionServiceOptions options);

  grpc::ServerBidiReactor<warren::v1::ElectRequest, warren::v1::ElectResponse>*
  Elect(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetLeader(
      grpc::CallbackServerContext* context,
      const warren::v1::GetLeaderRequest* request,
      warren::v1::GetLeaderResponse* response) override;
  grpc::ServerWriteReactor<warren::v1::ObserveLeaderResponse>* ObserveLeader(
      grpc::CallbackServerContext* context,
      const warren::v1::ObserveLeaderRequest* request) override;

 private:
  ElectionManager& manager_;
  WorkerPool& workers_;
  TimerQueue& timers_;
  StreamRegistry& streams_;
  const ElectionServiceOptions options_;
  ClientQuota candidate_quota_;
  ClientQuota observer_quota_;
};

}  // namespace warren::election
