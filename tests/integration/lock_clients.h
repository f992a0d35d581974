// Test-side client of LockService: a Lock stream read on its own thread,
// logging every event with the time it arrived.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/common/mutex.h"
#include "warren/v1/lock.grpc.pb.h"

namespace warren::testing {

// An acquire of lock `name` by holder `id` with `limit` holders at most.
warren::v1::Acquire MakeAcquire(const std::string& name, const std::string& id,
                                uint32_t limit = 0);

struct LockEvent {
  absl::Time time;
  warren::v1::LockResponse response;
};

class TestLocker {
 public:
  // Opens the stream and sends `acquire`.
  TestLocker(warren::v1::LockService::Stub& stub,
             const warren::v1::Acquire& acquire);
  // Opens the stream and sends `first` as it is (for the bad-input tests).
  TestLocker(warren::v1::LockService::Stub& stub,
             const warren::v1::LockRequest& first);
  ~TestLocker();  // cancels the stream and waits for its end

  // Waits for an event matching `predicate` among those after `from` (an
  // index into events()); answers its index or -1.
  int WaitFor(
      const std::function<bool(const warren::v1::LockResponse&)>& predicate,
      size_t from = 0, absl::Duration timeout = absl::Seconds(60));
  int WaitAcquired(size_t from = 0, absl::Duration timeout = absl::Seconds(60));
  bool WaitEnded(grpc::Status* status,
                 absl::Duration timeout = absl::Seconds(60));
  std::vector<LockEvent> events();
  bool ended();

  bool Send(const warren::v1::LockRequest& request);
  // Sends a release; answers when it was written.
  absl::Time Release();
  bool WritesDone();
  void Cancel() { context_.TryCancel(); }

 private:
  void Open(warren::v1::LockService::Stub& stub,
            const warren::v1::LockRequest& first);

  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<warren::v1::LockRequest,
                                           warren::v1::LockResponse>>
      stream_;
  std::thread reader_;
  warren::Mutex mu_;
  std::vector<LockEvent> events_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  warren::Mutex write_mu_;
};

}  // namespace warren::testing
