#include "tests/integration/lock_clients.h"

namespace warren::testing {

namespace v1 = ::warren::v1;

v1::Acquire MakeAcquire(const std::string& name, const std::string& id,
                        uint32_t limit) {
  v1::Acquire acquire;
  acquire.set_name(name);
  acquire.set_holder_id(id);
  acquire.set_value(id + "-work");
  acquire.set_limit(limit);
  return acquire;
}

TestLocker::TestLocker(v1::LockService::Stub& stub,
                       const v1::Acquire& acquire) {
  v1::LockRequest request;
  *request.mutable_acquire() = acquire;
  Open(stub, request);
}

TestLocker::TestLocker(v1::LockService::Stub& stub,
                       const v1::LockRequest& first) {
  Open(stub, first);
}

void TestLocker::Open(v1::LockService::Stub& stub,
                      const v1::LockRequest& first) {
  stream_ = stub.Lock(&context_);
  Send(first);
  reader_ = std::thread([this] {
    v1::LockResponse response;
    while (stream_->Read(&response)) {
      warren::MutexLock lock(&mu_);
      events_.push_back(LockEvent{absl::Now(), response});
    }
    grpc::Status status = stream_->Finish();
    warren::MutexLock lock(&mu_);
    status_ = status;
    ended_ = true;
  });
}

TestLocker::~TestLocker() {
  context_.TryCancel();
  reader_.join();
}

bool TestLocker::Send(const v1::LockRequest& request) {
  warren::MutexLock lock(&write_mu_);
  return stream_->Write(request);
}

absl::Time TestLocker::Release() {
  v1::LockRequest request;
  request.mutable_release();
  // The holder stops acting as one before it asks to let go.
  const absl::Time released = absl::Now();
  Send(request);
  return released;
}

bool TestLocker::WritesDone() {
  warren::MutexLock lock(&write_mu_);
  return stream_->WritesDone();
}

int TestLocker::WaitFor(
    const std::function<bool(const v1::LockResponse&)>& predicate, size_t from,
    absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  int found = -1;
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t i = from; i < events_.size(); ++i) {
      if (predicate(events_[i].response)) {
        found = static_cast<int>(i);
        return true;
      }
    }
    return ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return found;
}

int TestLocker::WaitAcquired(size_t from, absl::Duration timeout) {
  return WaitFor([](const v1::LockResponse& r) { return r.has_acquired(); },
                 from, timeout);
}

bool TestLocker::WaitEnded(grpc::Status* status, absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ended), timeout)) return false;
  *status = status_;
  return true;
}

std::vector<LockEvent> TestLocker::events() {
  warren::MutexLock lock(&mu_);
  return events_;
}

bool TestLocker::ended() {
  warren::MutexLock lock(&mu_);
  return ended_;
}

}  // namespace warren::testing
