#include "server/common/stream_heartbeat.h"

#include <utility>

#include "absl/time/clock.h"

namespace warren {

bool LeaseProofIsFresh(absl::Time asked, absl::Time now,
                       absl::Duration session_timeout,
                       absl::Duration interval) {
  const absl::Duration margin = session_timeout - 2 * interval;
  return now - asked <= margin / 2;
}

void StreamHeartbeat::StartIdle(std::weak_ptr<void> owner,
                                absl::Duration interval, Send send) {
  if (started_ || stopped_) return;
  started_ = true;
  owner_ = std::move(owner);
  interval_ = interval;
  send_ = std::move(send);
  ScheduleLocked();
}

void StreamHeartbeat::StartLease(std::weak_ptr<void> owner,
                                 absl::Duration interval, Lease lease) {
  if (started_ || stopped_) return;
  started_ = true;
  lease_mode_ = true;
  owner_ = std::move(owner);
  interval_ = interval;
  lease_ = std::move(lease);
  ScheduleLocked();
}

void StreamHeartbeat::SetInterval(absl::Duration interval) {
  if (interval == interval_) return;
  interval_ = interval;
  if (started_ && !stopped_) ScheduleLocked();
}

void StreamHeartbeat::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // A tick already running finds stopped_ once it has the owner's lock.
  if (timer_ != 0) timers_.Cancel(timer_);
  timer_ = 0;
}

void StreamHeartbeat::ScheduleLocked() {
  if (timer_ != 0) timers_.Cancel(timer_);
  const uint64_t chain = ++chain_;
  // The owner, locked first, keeps this (its member) alive for the tick.
  timer_ = timers_.ScheduleAfter(interval_, [this, owner = owner_, chain] {
    if (auto alive = owner.lock()) Tick(chain);
  });
}

void StreamHeartbeat::Tick(uint64_t chain) {
  std::weak_ptr<void> owner;
  {
    warren::MutexLock lock(&owner_mu_);
    if (stopped_ || chain != chain_) return;
    timer_ = 0;
    ScheduleLocked();
    if (!lease_mode_) {
      if (!wrote_since_tick_) send_();
      wrote_since_tick_ = false;
      return;
    }
    if (proving_ || !lease_.leading()) return;
    proving_ = true;
    owner = owner_;
  }
  // Outside the owner's lock, but never twice at once (proving_); prove is
  // set once, at the start.
  const absl::Time asked = absl::Now();
  lease_.prove([this, owner = std::move(owner), asked](absl::Status proof) {
    if (auto alive = owner.lock()) OnProof(asked, proof);
  });
}

void StreamHeartbeat::OnProof(absl::Time asked, const absl::Status& proof) {
  warren::MutexLock lock(&owner_mu_);
  proving_ = false;
  if (stopped_ || !proof.ok() || !lease_.leading()) return;
  if (!LeaseProofIsFresh(asked, absl::Now(), lease_.session_timeout(),
                         interval_)) {
    return;
  }
  lease_.send();
}

}  // namespace warren
