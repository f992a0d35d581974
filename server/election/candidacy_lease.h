// The lease heartbeats of a stream that holds a candidacy (an Elect leader,
// a Lock holder), in StreamHeartbeat's lease mode: each heartbeat follows
// fresh proof from the ensemble, asked through Candidacy::ConfirmHold, never
// a timer alone, at the interval LeaseInterval allows for the session
// timeout in force.
#pragma once

#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/common/stream_heartbeat.h"
#include "server/election/candidacy.h"
#include "server/zk/zk_client.h"
#include "warren/v1/common.pb.h"

namespace warren::election {

// The session timeout the ensemble negotiated, else the one asked for
// (before the first session).
absl::Duration SessionTimeoutInForce(const zk::ZkClient& zk,
                                     absl::Duration asked);

struct CandidacyLease {
  zk::ZkClient* zk = nullptr;
  absl::Duration asked_session_timeout;
  // As the stream asked (0: the longest allowed).
  absl::Duration requested_interval;
  // Under the owner's lock: whether the stream holds now (and goes on).
  absl::AnyInvocable<bool()> holding;
  // Under the owner's lock: the stream's candidacy (null once it ended).
  absl::AnyInvocable<std::shared_ptr<Candidacy>()> candidacy;
  // Under the owner's lock: writes one heartbeat.
  absl::AnyInvocable<void(const warren::v1::Heartbeat&)> send;
};

// Starts `heartbeat` (a member of `owner`, guarded by `owner_mu`, which the
// caller holds) in lease mode.
void StartCandidacyLease(StreamHeartbeat& heartbeat, std::weak_ptr<void> owner,
                         warren::Mutex& owner_mu, CandidacyLease lease);

}  // namespace warren::election
