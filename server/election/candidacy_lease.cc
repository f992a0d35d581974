#include "server/election/candidacy_lease.h"

#include <utility>

#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/duration.h"

namespace warren::election {

absl::Duration SessionTimeoutInForce(const zk::ZkClient& zk,
                                     absl::Duration asked) {
  const absl::Duration negotiated = zk.negotiated_session_timeout();
  return negotiated > absl::ZeroDuration() ? negotiated : asked;
}

void StartCandidacyLease(StreamHeartbeat& heartbeat, std::weak_ptr<void> owner,
                         warren::Mutex& owner_mu, CandidacyLease lease) {
  zk::ZkClient* zk = lease.zk;
  const absl::Duration asked = lease.asked_session_timeout;
  StreamHeartbeat::Lease modes;
  modes.leading = std::move(lease.holding);
  modes.prove = [&owner_mu, candidacy = std::move(lease.candidacy)](
                    absl::AnyInvocable<void(absl::Status)> done) mutable {
    std::shared_ptr<Candidacy> held;
    {
      warren::MutexLock lock(&owner_mu);
      held = candidacy();
    }
    if (held == nullptr) {
      done(absl::FailedPreconditionError("the stream has ended"));
      return;
    }
    // Outside the owner's lock: the candidacy's comes first.
    held->ConfirmHold(std::move(done));
  };
  modes.session_timeout = [zk, asked] {
    return SessionTimeoutInForce(*zk, asked);
  };
  modes.send = [send = std::move(lease.send)]() mutable {
    warren::v1::Heartbeat beat;
    *beat.mutable_server_time() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
            absl::ToUnixNanos(absl::Now()));
    send(beat);
  };
  heartbeat.StartLease(std::move(owner),
                       LeaseInterval(lease.requested_interval,
                                     SessionTimeoutInForce(*zk, asked)),
                       std::move(modes));
}

}  // namespace warren::election
