// Locker: distributed locks and semaphores (LockService.Lock), with the
// client half of the lease.
//
//   warren::client::Locker locker(channel);
//   warren::client::LockOptions options;
//   options.timeout = absl::Seconds(30);
//   auto lock = locker.Acquire("jobs/nightly", options);
//   if (!lock.ok()) return lock.status();   // DEADLINE_EXCEEDED: not within 30
//   s DoWork((*lock)->fence());               // fenced writes (fence.h)
//   // ~HeldLock (or Release()) gives it up at once.
//
// Acquire() waits in the lock's queue (on_queued reports the position) and
// answers a HeldLock once this client holds it, with its fencing token: the
// creation zxid of its node, larger for every later holder, to hand to
// downstream systems (or to fence Warren's own writes and publishes).
// `timeout`: unset waits as long as it takes, zero tries once, anything else
// waits at most that long; then DEADLINE_EXCEEDED and nothing is left
// behind. A stream that breaks while waiting (warrend restarting, ...) is
// opened again within what is left of the timeout, per
// clients/retry-policy.json; a fatal code (INVALID_ARGUMENT, a limit other
// than the lock's (FAILED_PRECONDITION), PERMISSION_DENIED, ...) is answered
// at once.
//
// While held (the Elector's lease rule): the server sends a heartbeat every
// interval only while it has fresh proof that its ZooKeeper session lives;
// held() turns false when no message came within 2 intervals, and
// on_lost(kLeaseExpired) is called (the stream is then cancelled, so the
// server deletes the node). Server losses are passed on: kConnectionSuspended
// (the server may say "acquired" again with the same token: held() is true
// again and on_regained is called), kSessionExpired. A stream that breaks
// while holding is kStreamBroken: the lock is gone for good; a HeldLock is
// never re-acquired behind the caller's back (acquire a new one).
//
// Threading: a reader thread and a lease timer per HeldLock. Callbacks run
// on them, one at a time; never call Release() or destroy the HeldLock from
// its own callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "warren/client/backoff.h"
#include "warren/client/loss_reason.h"
#include "warren/v1/lock.grpc.pb.h"

namespace warren::client {

struct LockOptions {
  // This holder's id, shown to others; empty lets the server generate one.
  std::string holder_id;
  // Shown to others, e.g. what this holder works on.
  std::string value;
  // The most holders at once: 1 (or 0) a mutex, N a semaphore. Everyone
  // using one lock must give the same.
  uint32_t limit = 1;
  // How long Acquire() waits: unset as long as it takes, zero tries once.
  std::optional<absl::Duration> timeout;
  // The lease heartbeat asked of the server (it may use a shorter one and
  // says so); the Elector's default.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Delays between attempts while waiting.
  BackoffPolicy backoff;
  // How long Release() waits for the server to confirm.
  absl::Duration release_timeout = absl::Seconds(10);

  // While waiting: this client's place (waiters ahead of it) and the
  // holders, when it starts waiting and whenever its place changes.
  std::function<void(uint32_t position,
                     const std::vector<warren::v1::LockHolder>& holders)>
      on_queued;
  // While holding: the lock is (or may be) lost; stop acting as holder.
  std::function<void(LossReason reason, const absl::Status& why)> on_lost;
  // The server holds it again with the same token after a suspension.
  std::function<void(const warren::v1::LockHolder& self)> on_regained;
  // While waiting: each stream end before trying again (or giving up).
  std::function<void(const absl::Status& status)> on_stream_error;
};

class HeldLock;

class Locker {
 public:
  explicit Locker(std::shared_ptr<grpc::Channel> channel);

  // Waits for the lock `name` as described above.
  absl::StatusOr<std::unique_ptr<HeldLock>> Acquire(
      const std::string& name, LockOptions options = {}) const;

  // Who holds `name` now and how many wait (all empty for a lock nobody
  // uses); retried as a unary call.
  absl::StatusOr<warren::v1::GetLockResponse> Get(
      const std::string& name) const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

class HeldLock {
 public:
  ~HeldLock();  // Release()
  HeldLock(const HeldLock&) = delete;
  HeldLock& operator=(const HeldLock&) = delete;

  // Gives the lock up at once (the server deletes the node); idempotent,
  // blocks until the server confirmed or release_timeout passed.
  void Release();

  // Still held: no loss reported and the lease (2 heartbeat intervals
  // since the last message) not over.
  bool held() const;
  const std::string& name() const;
  // This holder as acquired: id, value, fencing token, acquired time.
  const warren::v1::LockHolder& holder() const;
  uint64_t fencing_token() const;
  // A fence (warren.v1.Fence) naming this lock and its token.
  warren::v1::Fence fence() const;

 private:
  friend class Locker;
  class Impl;
  explicit HeldLock(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warren::client
