#include "server/lock/lock_service.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/duration.h"
#include "server/common/grpc_status.h"
#include "server/common/logging.h"
#include "server/common/mutex.h"
#include "server/common/rejecting_reactors.h"
#include "server/common/stream_heartbeat.h"
#include "server/common/stream_lifetime.h"
#include "server/common/stream_writer.h"
#include "server/common/uuid.h"
#include "server/election/candidacy_lease.h"
#include "server/election/candidate_node.h"
#include "server/zk/zk_sync.h"

namespace warren::lock {
namespace {

namespace v1 = ::warren::v1;
using election::Candidacy;
using election::LossReason;
using google::protobuf::util::TimeUtil;

class LockReactor final
    : public grpc::ServerBidiReactor<v1::LockRequest, v1::LockResponse>,
      public election::CandidacyObserver,
      public EndableStream,
      public std::enable_shared_from_this<LockReactor> {
 public:
  LockReactor(LockManager& manager, WorkerPool& workers, TimerQueue& timers,
              const LockServiceOptions& options, auth::Caller caller)
      : EndableStream("server is shutting down; acquire again"),
        manager_(manager),
        workers_(workers),
        timers_(timers),
        options_(options),
        caller_(std::move(caller)),
        heartbeat_(timers, mu_) {}

  static LockReactor* Start(LockManager& manager, WorkerPool& workers,
                            TimerQueue& timers, StreamRegistry& streams,
                            const LockServiceOptions& options,
                            auth::Caller caller, const std::string& client) {
    auto reactor = std::make_shared<LockReactor>(manager, workers, timers,
                                                 options, std::move(caller));
    if (reactor->lifetime_.Begin(reactor, streams, client)) {
      warren::MutexLock lock(&reactor->mu_);
      reactor->StartRead(&reactor->request_);
    }
    return reactor.get();
  }

  void OnReadDone(bool ok) override {
    std::shared_ptr<Candidacy> release;
    std::optional<LockRequestParams> acquire;
    {
      warren::MutexLock lock(&mu_);
      if (writes_.finishing()) return;
      if (!ok) {
        // The client closed its side: release (the node goes at once).
        if (candidacy_ == nullptr) {
          writes_.Finish(this, grpc::Status::OK);
          return;
        }
        release = candidacy_;
      } else {
        switch (request_.request_case()) {
          case v1::LockRequest::kAcquire: {
            if (acquired_) {
              FailLocked("request: acquire was sent twice on one stream");
              return;
            }
            auto params = AcquireLocked();
            if (!params.ok()) {
              writes_.Finish(this, ToGrpcStatus(params.status()));
              return;
            }
            acquire = *std::move(params);
            break;
          }
          case v1::LockRequest::kRelease:
            if (!acquired_) {
              FailLocked("request: the first request must be an acquire");
              return;
            }
            release = candidacy_;
            break;
          default:
            FailLocked(acquired_
                           ? "request: must hold acquire or release"
                           : "request: the first request must be an acquire");
            return;
        }
      }
    }
    // Outside our lock: the candidacy calls us back.
    if (acquire) StartAcquire(*std::move(acquire));
    if (release) release->Resign();
  }

  void OnWriteDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (writes_.WriteDone(this, ok)) writes_.MaybeWrite(this);
  }

  void OnCancel() override { EndStream(grpc::Status::CANCELLED); }

  void OnDone() override {
    std::shared_ptr<Candidacy> candidacy;
    {
      warren::MutexLock lock(&mu_);
      done_ = true;
      candidacy = std::move(candidacy_);
      heartbeat_.Stop();
      if (wait_timer_ != 0) timers_.Cancel(wait_timer_);
    }
    // However the stream ended, the node goes now (also when its create is
    // still unanswered: then once it is known).
    if (candidacy) candidacy->Stop();
    lifetime_.End();
  }

  // CandidacyObserver.
  void OnElected(uint64_t token, absl::Time since) override {
    warren::MutexLock lock(&mu_);
    if (done_ || giving_up_) return;
    role_ = Role::kHolder;
    if (wait_timer_ != 0) {
      timers_.Cancel(wait_timer_);
      wait_timer_ = 0;
    }
    // The interval in force follows the session the ensemble granted now.
    heartbeat_.SetInterval(
        LeaseInterval(requested_heartbeat_, SessionTimeoutInForce()));
    v1::LockResponse response;
    v1::LockHolder* holder = response.mutable_acquired()->mutable_holder();
    holder->set_name(params_.name);
    holder->set_holder_id(params_.holder_id);
    holder->set_value(params_.value);
    holder->set_fencing_token(token);
    *holder->mutable_acquired_time() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(since));
    *response.mutable_acquired()->mutable_heartbeat_interval() =
        ToProtoDuration(heartbeat_.interval());
    PushLocked(std::move(response));
  }

  void OnFollowing(uint64_t, uint32_t position) override {
    std::shared_ptr<Candidacy> give_up;
    {
      warren::MutexLock lock(&mu_);
      if (done_ || giving_up_) return;
      role_ = Role::kWaiting;
      if (try_once_) {
        give_up = GiveUpLocked();
      } else {
        SendQueuedLocked(position);
      }
    }
    if (give_up) give_up->Resign();
  }

  void OnLost(LossReason reason) override {
    warren::MutexLock lock(&mu_);
    if (done_) return;
    role_ = Role::kNone;
    // A release's own loss ends the stream with OK: nothing to tell.
    if (reason == LossReason::kResigned) return;
    v1::LockResponse response;
    response.mutable_lost()->set_reason(
        reason == LossReason::kConnectionSuspended
            ? v1::LOSS_REASON_CONNECTION_SUSPENDED
            : v1::LOSS_REASON_SESSION_EXPIRED);
    PushLocked(std::move(response));
  }

  void OnEnded(absl::Status status) override {
    warren::MutexLock lock(&mu_);
    if (done_) return;
    if (status.ok() && giving_up_) {
      status = absl::DeadlineExceededError(absl::StrCat(
          "acquire.wait_timeout: lock ", params_.name, " not acquired within ",
          absl::FormatDuration(wait_timeout_)));
    }
    writes_.Finish(this, ToGrpcStatus(status));
  }

 private:
  enum class Role { kNone, kWaiting, kHolder };

  // The first request's acquire, validated and authorized; sets the stream
  // up for it.
  absl::StatusOr<LockRequestParams> AcquireLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::Acquire& a = request_.acquire();
    absl::StatusOr<absl::Duration> heartbeat = ValidateAcquire(a, options_);
    if (!heartbeat.ok()) return heartbeat.status();
    if (absl::Status s = caller_.Check(auth::Action::kLock, {a.name()});
        !s.ok()) {
      return s;
    }
    acquired_ = true;
    LockRequestParams params;
    params.name = a.name();
    params.holder_id = a.holder_id().empty() ? NewUuid() : a.holder_id();
    params.value = a.value();
    params.limit = a.limit();
    params_ = params;
    requested_heartbeat_ = FromProtoDuration(a.heartbeat_interval());
    if (a.has_wait_timeout()) {
      wait_timeout_ = FromProtoDuration(a.wait_timeout());
      try_once_ = wait_timeout_ == absl::ZeroDuration();
    }
    // A reload that takes the grant (or the token) away ends the stream,
    // and with it the hold.
    lifetime_.SetReauthorizer([caller = caller_, name = params.name] {
      return caller.Recheck(auth::Action::kLock, {name});
    });
    StartLeaseHeartbeatLocked();
    return params;
  }

  void StartAcquire(LockRequestParams params) {
    auto candidacy = manager_.Acquire(params, shared_from_this());
    {
      warren::MutexLock lock(&mu_);
      if (!done_) {
        candidacy_ = std::move(candidacy);
        if (wait_timeout_ > absl::ZeroDuration() &&
            wait_timeout_ != absl::InfiniteDuration()) {
          wait_timer_ =
              timers_.ScheduleAfter(wait_timeout_, [weak = weak_from_this()] {
                if (auto self = weak.lock()) self->OnWaitTimeout();
              });
        }
        StartRead(&request_);
        return;
      }
    }
    // The stream ended meanwhile (outside our lock: lock order is always
    // the candidacy first, then this reactor).
    candidacy->Stop();
  }

  void OnWaitTimeout() {
    std::shared_ptr<Candidacy> give_up;
    {
      warren::MutexLock lock(&mu_);
      wait_timer_ = 0;
      if (done_ || giving_up_ || role_ == Role::kHolder) return;
      give_up = GiveUpLocked();
    }
    if (give_up) give_up->Resign();
  }

  // Stops waiting: the node is deleted (Resign), then the stream ends with
  // DEADLINE_EXCEEDED (OnEnded). The caller resigns outside our lock.
  std::shared_ptr<Candidacy> GiveUpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writes_.finishing()) return nullptr;
    giving_up_ = true;
    return candidacy_;
  }

  // Queued, with the holders as they are now: read on a worker, and sent
  // only if this stream still waits at the same place by then.
  void SendQueuedLocked(uint32_t position) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uint64_t seq = ++queued_seq_;
    auto send = [weak = weak_from_this(), seq, position](
                    const absl::StatusOr<v1::GetLockResponse>& lock_state) {
      auto self = weak.lock();
      if (!self) return;
      warren::MutexLock lock(&self->mu_);
      if (self->done_ || self->role_ != Role::kWaiting ||
          seq != self->queued_seq_) {
        return;
      }
      v1::LockResponse response;
      response.mutable_queued()->set_position(position);
      if (lock_state.ok()) {
        *response.mutable_queued()->mutable_holders() = lock_state->holders();
      }
      self->PushLocked(std::move(response));
    };
    const std::string path = manager_.PathOf(params_.name);
    absl::Status queued = workers_.Submit(
        [manager = &manager_, send, path, name = params_.name,
         deadline = absl::Now() + options_.operation_timeout]() mutable {
          zk::ZkSync sync(manager->zk(), deadline);
          send(ReadLock(sync, name, path));
        });
    // No worker free: the position alone, now.
    if (!queued.ok()) {
      v1::LockResponse response;
      response.mutable_queued()->set_position(position);
      PushLocked(std::move(response));
    }
  }

  void EndStream(grpc::Status status) override {
    warren::MutexLock lock(&mu_);
    writes_.Finish(this, std::move(status));
  }

  void FailLocked(const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writes_.Finish(this,
                   grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message));
  }

  void PushLocked(v1::LockResponse response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writes_.Push(std::move(response));
    writes_.MaybeWrite(this);
  }

  absl::Duration SessionTimeoutInForce() const {
    return election::SessionTimeoutInForce(manager_.zk(),
                                           options_.session_timeout);
  }

  // The holder's lease heartbeats (candidacy_lease.h), exactly as an Elect
  // leader's.
  void StartLeaseHeartbeatLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    election::CandidacyLease lease;
    lease.zk = &manager_.zk();
    lease.asked_session_timeout = options_.session_timeout;
    lease.requested_interval = requested_heartbeat_;
    lease.holding = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return role_ == Role::kHolder && candidacy_ != nullptr &&
             !writes_.finishing();
    };
    lease.candidacy = [this]()
                          ABSL_NO_THREAD_SAFETY_ANALYSIS { return candidacy_; };
    lease.send = [this](const v1::Heartbeat& beat)
                     ABSL_NO_THREAD_SAFETY_ANALYSIS {
                       v1::LockResponse response;
                       *response.mutable_heartbeat() = beat;
                       PushLocked(std::move(response));
                     };
    election::StartCandidacyLease(heartbeat_, weak_from_this(), mu_,
                                  std::move(lease));
  }

  LockManager& manager_;
  WorkerPool& workers_;
  TimerQueue& timers_;
  const LockServiceOptions& options_;
  const auth::Caller caller_;
  StreamLifetime lifetime_;

  warren::Mutex mu_;
  StreamHeartbeat heartbeat_ ABSL_GUARDED_BY(mu_);
  v1::LockRequest request_ ABSL_GUARDED_BY(mu_);
  bool acquired_ ABSL_GUARDED_BY(mu_) = false;
  LockRequestParams params_ ABSL_GUARDED_BY(mu_);
  // As the acquire asked (0: the longest allowed).
  absl::Duration requested_heartbeat_ ABSL_GUARDED_BY(mu_);
  // Unset (infinite): wait while the stream lives.
  absl::Duration wait_timeout_ ABSL_GUARDED_BY(mu_) = absl::InfiniteDuration();
  bool try_once_ ABSL_GUARDED_BY(mu_) = false;
  TimerQueue::TimerId wait_timer_ ABSL_GUARDED_BY(mu_) = 0;
  // The wait timed out: the node is being deleted, then the stream ends.
  bool giving_up_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t queued_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<Candidacy> candidacy_ ABSL_GUARDED_BY(mu_);
  Role role_ ABSL_GUARDED_BY(mu_) = Role::kNone;
  StreamWriter<v1::LockResponse> writes_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

bool IsNegative(const google::protobuf::Duration& d) {
  return d.seconds() < 0 || d.nanos() < 0;
}

}  // namespace

absl::StatusOr<absl::Duration> ValidateAcquire(
    const v1::Acquire& acquire, const LockServiceOptions& options) {
  if (auto s = election::ValidateRecipeName(acquire.name(), "acquire.name");
      !s.ok()) {
    return s;
  }
  if (auto s = election::ValidateCandidateId(acquire.holder_id(),
                                             "acquire.holder_id");
      !s.ok()) {
    return s;
  }
  if (acquire.value().size() > options.max_value_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("acquire.value is ", acquire.value().size(),
                     " bytes; at most ", options.max_value_bytes));
  }
  if (acquire.limit() > kMaxLockLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "acquire.limit is ", acquire.limit(), "; at most ", kMaxLockLimit));
  }
  if (IsNegative(acquire.wait_timeout())) {
    return absl::InvalidArgumentError(
        "acquire.wait_timeout must not be negative");
  }
  if (IsNegative(acquire.heartbeat_interval())) {
    return absl::InvalidArgumentError(
        "acquire.heartbeat_interval must not be negative");
  }
  return LeaseInterval(FromProtoDuration(acquire.heartbeat_interval()),
                       options.session_timeout);
}

LockServiceImpl::LockServiceImpl(LockManager& manager, WorkerPool& workers,
                                 TimerQueue& timers, StreamRegistry& streams,
                                 LockServiceOptions options)
    : manager_(manager),
      workers_(workers),
      timers_(timers),
      streams_(streams),
      options_(options) {}

grpc::ServerBidiReactor<v1::LockRequest, v1::LockResponse>*
LockServiceImpl::Lock(grpc::CallbackServerContext* context) {
  auto caller = auth::Authenticate(options_.authorizer, *context, "Lock");
  if (!caller.ok()) {
    return new RejectingBidiReactor<v1::LockRequest, v1::LockResponse>(
        ToGrpcStatus(caller.status()));
  }
  const std::string client = QuotaClient(caller->principal(), context->peer());
  return LockReactor::Start(manager_, workers_, timers_, streams_, options_,
                            *std::move(caller), client);
}

grpc::ServerUnaryReactor* LockServiceImpl::GetLock(
    grpc::CallbackServerContext* context, const v1::GetLockRequest* request,
    v1::GetLockResponse* response) {
  auto* reactor = context->DefaultReactor();
  // Validated before authorized: a refusal never echoes an oversized name.
  absl::Status s = election::ValidateRecipeName(request->name(), "name");
  if (s.ok()) {
    s = auth::Check(options_.authorizer, *context, "GetLock",
                    auth::Action::kLock, {request->name()});
  }
  if (!s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  const absl::Time deadline =
      OperationDeadline(*context, options_.operation_timeout);
  absl::Status queued =
      workers_.Submit([this, reactor, request, response, deadline] {
        zk::ZkSync sync(manager_.zk(), deadline);
        auto lock =
            ReadLock(sync, request->name(), manager_.PathOf(request->name()));
        if (lock.ok()) *response = *std::move(lock);
        reactor->Finish(ToGrpcStatus(lock.status()));
      });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

}  // namespace warren::lock
