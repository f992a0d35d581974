// A fixed set of threads for the multi-step backend operations of unary RPCs
// (a compare-and-set write, a paged listing): the gRPC reaction that receives
// the request hands the work here and returns at once, so no gRPC thread ever
// waits on ZooKeeper. The queue is bounded: when it is full, Submit refuses
// and the caller answers RESOURCE_EXHAUSTED instead of growing without limit.
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <deque>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "server/common/mutex.h"

namespace warren {

class WorkerPool {
 public:
  WorkerPool(size_t threads, size_t max_queued);
  ~WorkerPool();  // Runs what was queued, then joins.
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `work`; RESOURCE_EXHAUSTED when `max_queued` tasks already wait.
  absl::Status Submit(absl::AnyInvocable<void()> work);

 private:
  void Run();

  const size_t max_queued_;
  warren::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace warren
