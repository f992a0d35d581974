// warren.v1.LockService: validation and status codes at the edge; the recipe
// in election::Candidacy (one recipe for elections and locks), the locks'
// nodes in LockManager.
//
// Lock streams carry the holder's lease exactly as Elect streams carry the
// leader's: each heartbeat follows fresh proof from the ensemble that the
// holder's node (and so the session) is alive, never a timer alone, at an
// interval capped at a third of the session timeout in force.
#pragma once

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth/authorizer.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "server/lock/lock_manager.h"
#include "warren/v1/lock.grpc.pb.h"

namespace warren::lock {

// The most holders a semaphore may have.
inline constexpr uint32_t kMaxLockLimit = 1000;

struct LockServiceOptions {
  // The session timeout asked for; the one the ensemble negotiated wins
  // once known.
  absl::Duration session_timeout = absl::Seconds(10);
  absl::Duration operation_timeout = absl::Seconds(10);
  size_t max_value_bytes = 64 << 10;
  // Checks Lock at its acquire and GetLock; null: auth off.
  const auth::Authorizer* authorizer = nullptr;
};

// Checks an acquire against the API's rules (INVALID_ARGUMENT naming the
// field); answers the lease's heartbeat interval for a session of
// options.session_timeout.
absl::StatusOr<absl::Duration> ValidateAcquire(
    const warren::v1::Acquire& acquire, const LockServiceOptions& options);

class LockServiceImpl final : public warren::v1::LockService::CallbackService {
 public:
  LockServiceImpl(LockManager& manager, WorkerPool& workers, TimerQueue& timers,
                  StreamRegistry& streams, LockServiceOptions options);

  grpc::ServerBidiReactor<warren::v1::LockRequest, warren::v1::LockResponse>*
  Lock(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetLock(
      grpc::CallbackServerContext* context,
      const warren::v1::GetLockRequest* request,
      warren::v1::GetLockResponse* response) override;

 private:
  LockManager& manager_;
  WorkerPool& workers_;
  TimerQueue& timers_;
  StreamRegistry& streams_;
  const LockServiceOptions options_;
};

}  // namespace warren::lock
