#include "warren/client/locker.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/mutex.h"
#include "src/internal.h"
#include "warren/client/channel.h"
#include "warren/client/fence.h"
#include "warren/client/retry_policy.h"

namespace warren::client {

namespace v1 = ::warren::v1;

namespace {

// The server answers a wait_timeout that passed with DEADLINE_EXCEEDED of
// its own; Acquire() gives it this long beyond the timeout to do so before
// it stops waiting by itself (a frozen server, a channel that never
// connects).
constexpr absl::Duration kServerAnswerGrace = absl::Seconds(2);

}  // namespace

// Everything of a HeldLock behind its handle: the threads hold `this`, so it
// stays at one address for its whole life. It exists from the start of
// Acquire(), while waiting.
class HeldLock::Impl {
 public:
  Impl(std::shared_ptr<grpc::Channel> channel, std::string name,
       LockOptions options);
  ~Impl() { Release(); }

  absl::Status AwaitAcquired();
  // Stops waiting without a word to the server: cancelling the stream is
  // the quickest way out of the line (the server deletes the node), also
  // with a server that does not answer.
  void Abandon();
  void Release();
  bool held() const;
  const std::string& name() const { return name_; }
  const v1::LockHolder& holder() const ABSL_NO_THREAD_SAFETY_ANALYSIS {
    // Written once, before Acquire() answers; never changed afterwards.
    return holder_;
  }

 private:
  struct Session : internal::BidiSession<v1::LockRequest, v1::LockResponse> {
    bool responded = false;  // guarded by Impl::mu_
  };

  void ReadLoop();
  absl::Status RunSession(const std::shared_ptr<Session>& session);
  void Handle(const v1::LockResponse& response);
  void OnLeaseExpired(uint64_t generation);
  void ArmLeaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No more time to wait (always false without a timeout).
  bool OutOfTimeLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::LockService::Stub> stub_;
  const std::string name_;
  const LockOptions options_;
  // When waiting ends: the start plus the timeout (InfiniteFuture without).
  const absl::Time deadline_;

  // Held while an event is decided and its callback runs: callbacks never
  // overlap, and a lease expiry cannot interleave with a server event.
  warren::Mutex events_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable warren::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool release_called_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool acquired_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  v1::LockHolder holder_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Session> current_ ABSL_GUARDED_BY(mu_);
  absl::Duration lease_interval_ ABSL_GUARDED_BY(mu_);
  absl::Time lease_end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t lease_generation_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread reader_;
  // Last: destroyed first, so its callback never sees a dead Impl.
  std::unique_ptr<internal::Watchdog> lease_;
};

Locker::Locker(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)) {}

absl::StatusOr<std::unique_ptr<HeldLock>> Locker::Acquire(
    const std::string& name, LockOptions options) const {
  if (name.empty()) return absl::InvalidArgumentError("name is empty");
  if (options.timeout.has_value() && *options.timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout is negative");
  }
  if (options.heartbeat_interval < absl::Milliseconds(100)) {
    return absl::InvalidArgumentError("heartbeat_interval is below 100ms");
  }
  auto impl =
      std::make_unique<HeldLock::Impl>(channel_, name, std::move(options));
  const absl::Status acquired = impl->AwaitAcquired();
  if (!acquired.ok()) {
    impl->Abandon();
    return acquired;
  }
  return std::unique_ptr<HeldLock>(new HeldLock(std::move(impl)));
}

absl::StatusOr<v1::GetLockResponse> Locker::Get(const std::string& name) const {
  auto stub = v1::LockService::NewStub(channel_);
  v1::GetLockRequest request;
  request.set_name(name);
  v1::GetLockResponse response;
  const absl::Status status = internal::CallWithRetry(
      internal::UnaryRetry(), [&](grpc::ClientContext* context) {
        return stub->GetLock(context, request, &response);
      });
  if (!status.ok()) return status;
  return response;
}

HeldLock::HeldLock(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HeldLock::~HeldLock() = default;
void HeldLock::Release() { impl_->Release(); }
bool HeldLock::held() const { return impl_->held(); }
const std::string& HeldLock::name() const { return impl_->name(); }
const v1::LockHolder& HeldLock::holder() const { return impl_->holder(); }
uint64_t HeldLock::fencing_token() const {
  return impl_->holder().fencing_token();
}
v1::Fence HeldLock::fence() const {
  return LockFence(impl_->name(), fencing_token());
}

HeldLock::Impl::Impl(std::shared_ptr<grpc::Channel> channel, std::string name,
                     LockOptions options)
    : channel_(std::move(channel)),
      stub_(v1::LockService::NewStub(channel_)),
      name_(std::move(name)),
      options_(std::move(options)),
      deadline_(options_.timeout.has_value() ? absl::Now() + *options_.timeout
                                             : absl::InfiniteFuture()),
      lease_interval_(options_.heartbeat_interval) {
  lease_ = std::make_unique<internal::Watchdog>(
      [this](uint64_t generation) { OnLeaseExpired(generation); });
  reader_ = std::thread([this] { ReadLoop(); });
}

absl::Status HeldLock::Impl::AwaitAcquired() {
  warren::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return acquired_ || done_;
  };
  const absl::Time give_up = deadline_ == absl::InfiniteFuture()
                                 ? deadline_
                                 : deadline_ + kServerAnswerGrace;
  mu_.AwaitWithDeadline(absl::Condition(&settled), give_up);
  if (acquired_) return absl::OkStatus();
  if (done_) return status_;
  return absl::DeadlineExceededError(absl::StrCat(
      "lock ", name_, " not acquired within ",
      absl::FormatDuration(*options_.timeout), " (no answer from the server)"));
}

void HeldLock::Impl::Abandon() {
  {
    warren::MutexLock lock(&mu_);
    release_called_ = true;
    stopping_ = true;
    held_ = false;
    lease_->Disarm();
    if (current_ != nullptr) current_->context.TryCancel();
  }
  reader_.join();  // it sets done_ as it ends
}

void HeldLock::Impl::Release() {
  std::shared_ptr<Session> session;
  {
    warren::MutexLock lock(&mu_);
    if (release_called_) {
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
      mu_.Await(absl::Condition(&done));
      return;
    }
    release_called_ = true;
    stopping_ = true;
    held_ = false;
    lease_->Disarm();
    session = current_;
    // A stream that has not answered may still wait for the channel, its
    // acquire write blocked; cancelling is the release then (the server
    // deletes a node whose create was in doubt).
    if (session != nullptr && !session->responded) {
      session->context.TryCancel();
      session = nullptr;
    }
  }
  if (session != nullptr) {
    // Release, then half-close: the server deletes the node and ends the
    // stream with OK.
    v1::LockRequest release;
    release.mutable_release();
    session->Write(release);
    session->CloseWrites();
  }
  {
    warren::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&done),
                              options_.release_timeout) &&
        current_ != nullptr) {
      // An unresponsive server: cancelling ends the stream here, and the
      // server drops the node when it notices.
      current_->context.TryCancel();
    }
  }
  reader_.join();
}

bool HeldLock::Impl::held() const {
  warren::MutexLock lock(&mu_);
  // The time as well as the flag: the lease timer's thread may not have run
  // yet when the lease ends.
  return held_ && absl::Now() < lease_end_;
}

bool HeldLock::Impl::OutOfTimeLocked() const {
  return absl::Now() >= deadline_;
}

void HeldLock::Impl::ReadLoop() {
  Backoff backoff(options_.backoff);
  for (bool again = false;; again = true) {
    auto session = internal::NewStreamSession(mu_, &stopping_, &current_,
                                              *channel_, again);
    if (session == nullptr) break;
    session->stream = stub_->Lock(&session->context);
    const absl::Status ended = RunSession(session);
    warren::MutexLock lock(&mu_);
    current_ = nullptr;
    // Once acquired, a lock is never acquired again behind the caller's
    // back: the stream's end was the loss.
    if (stopping_ || acquired_) break;
    if (session->responded) backoff.Reset();
    // A fatal code is the answer, whatever time is left (a limit other
    // than the lock's, a bad name, ...).
    if (StreamDecisionFor(ended.code()) == StreamDecision::kFatal) {
      status_ = ended;
      break;
    }
    if (options_.timeout.has_value()) {
      // The server's own DEADLINE_EXCEEDED answers the wait_timeout we
      // sent: the wait is over, whatever the table says of that code.
      if (ended.code() == absl::StatusCode::kDeadlineExceeded) {
        status_ = ended;
        break;
      }
      if (OutOfTimeLocked()) {
        status_ = absl::DeadlineExceededError(
            absl::StrCat("lock ", name_, " not acquired within ",
                         absl::FormatDuration(*options_.timeout),
                         " (the last stream ended: ", ended.ToString(), ")"));
        break;
      }
    }
    // Waiting again sends what is left of the timeout.
    if (!internal::ResubscribeAfter(mu_, &stopping_, ended,
                                    /*may_resubscribe=*/true, backoff,
                                    options_.on_stream_error, &status_)) {
      break;
    }
  }
  warren::MutexLock lock(&mu_);
  done_ = true;
}

absl::Status HeldLock::Impl::RunSession(
    const std::shared_ptr<Session>& session) {
  v1::LockRequest request;
  v1::Acquire* acquire = request.mutable_acquire();
  acquire->set_name(name_);
  acquire->set_holder_id(options_.holder_id);
  acquire->set_value(options_.value);
  acquire->set_limit(options_.limit);
  *acquire->mutable_heartbeat_interval() =
      internal::ToProto(options_.heartbeat_interval);
  if (options_.timeout.has_value()) {
    // What is left of the caller's timeout (zero: try once).
    *acquire->mutable_wait_timeout() = internal::ToProto(
        std::max(absl::ZeroDuration(), deadline_ - absl::Now()));
  }
  if (session->Write(request)) {
    v1::LockResponse response;
    while (session->stream->Read(&response)) {
      warren::MutexLock events(&events_mu_);
      {
        warren::MutexLock lock(&mu_);
        session->responded = true;
      }
      Handle(response);
    }
  }
  session->CloseWrites();
  const absl::Status status = ToStatus(session->stream->Finish());
  // A broken stream while holding is a loss at once: nothing tells this
  // client any more whether it holds the lock.
  warren::MutexLock events(&events_mu_);
  bool was_held;
  {
    warren::MutexLock lock(&mu_);
    was_held = held_ && !stopping_;
    held_ = false;
    lease_->Disarm();
  }
  if (was_held && options_.on_lost) {
    options_.on_lost(
        LossReason::kStreamBroken,
        status.ok() ? absl::UnavailableError("stream ended") : status);
  }
  return status;
}

void HeldLock::Impl::Handle(const v1::LockResponse& response) {
  switch (response.event_case()) {
    case v1::LockResponse::kQueued: {
      if (options_.on_queued) {
        const auto& queued = response.queued();
        options_.on_queued(queued.position(),
                           std::vector<v1::LockHolder>(queued.holders().begin(),
                                                       queued.holders().end()));
      }
      return;
    }
    case v1::LockResponse::kAcquired: {
      const auto& acquired = response.acquired();
      bool regained;
      {
        warren::MutexLock lock(&mu_);
        if (stopping_) return;
        regained = acquired_;
        if (!acquired_) holder_ = acquired.holder();
        acquired_ = true;
        held_ = true;
        // The server says which interval it uses (it caps long ones below
        // its session timeout).
        lease_interval_ = options_.heartbeat_interval;
        if (acquired.has_heartbeat_interval()) {
          const absl::Duration told =
              internal::FromProto(acquired.heartbeat_interval());
          if (told > absl::ZeroDuration()) {
            lease_interval_ = std::min(lease_interval_, told);
          }
        }
        ArmLeaseLocked();
      }
      if (regained && options_.on_regained) {
        options_.on_regained(acquired.holder());
      }
      return;
    }
    case v1::LockResponse::kLost: {
      bool was_held;
      {
        warren::MutexLock lock(&mu_);
        was_held = held_;
        held_ = false;
        lease_->Disarm();
      }
      // Not twice: the lease may have declared the loss already.
      if (was_held && options_.on_lost) {
        options_.on_lost(internal::FromProto(response.lost().reason()),
                         absl::OkStatus());
      }
      return;
    }
    case v1::LockResponse::kHeartbeat: {
      warren::MutexLock lock(&mu_);
      if (held_) ArmLeaseLocked();
      return;
    }
    default:
      return;
  }
}

void HeldLock::Impl::ArmLeaseLocked() {
  lease_end_ = absl::Now() + 2 * lease_interval_;
  lease_generation_ = lease_->Arm(2 * lease_interval_);
}

void HeldLock::Impl::OnLeaseExpired(uint64_t generation) {
  warren::MutexLock events(&events_mu_);
  std::shared_ptr<Session> session;
  absl::Duration lease;
  {
    warren::MutexLock lock(&mu_);
    if (!held_ || generation != lease_generation_) return;
    held_ = false;
    session = current_;
    lease = 2 * lease_interval_;
  }
  if (options_.on_lost) {
    options_.on_lost(LossReason::kLeaseExpired,
                     absl::DeadlineExceededError(absl::StrCat(
                         "no heartbeat within ", absl::FormatDuration(lease),
                         " while holding lock ", name_)));
  }
  // Give the lock up: the server deletes the node (if it still can), so
  // the next waiter may hold it.
  if (session != nullptr) session->context.TryCancel();
}

}  // namespace warren::client
