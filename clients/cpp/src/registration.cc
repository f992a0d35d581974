#include "warren/client/registration.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/mutex.h"
#include "src/internal.h"
#include "warren/client/channel.h"

namespace warren::client {

namespace v1 = ::warren::v1;

// Everything of a Registration behind its handle: the threads hold `this`,
// so it stays at one address for its whole life.
class Registration::Impl {
 public:
  Impl(std::shared_ptr<grpc::Channel> channel, RegistrationOptions options);
  ~Impl() { Close(); }

  absl::Status AwaitFirstHeld();
  void Close();
  absl::Status SetValue(const std::string& value);
  bool held() const;
  std::optional<v1::ConfigEntry> entry() const;
  int holds() const;
  absl::Status status() const;

 private:
  struct Session
      : internal::BidiSession<v1::HoldKeyRequest, v1::HoldKeyResponse> {
    bool responded = false;  // guarded by Impl::mu_
    bool held = false;       // guarded by Impl::mu_: held on this stream
  };

  void ReadLoop();
  absl::Status RunSession(const std::shared_ptr<Session>& session);
  void Handle(const std::shared_ptr<Session>& session,
              const v1::HoldKeyResponse& response);
  void OnLeaseExpired(uint64_t generation);
  void ArmLeaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::ConfigService::Stub> stub_;
  const RegistrationOptions options_;

  // Held while an event is decided and its callback runs: callbacks never
  // overlap, and a lease expiry cannot interleave with a server event.
  warren::Mutex events_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable warren::Mutex mu_;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool close_called_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::string value_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int holds_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<v1::ConfigEntry> entry_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Session> current_ ABSL_GUARDED_BY(mu_);
  absl::Duration lease_interval_ ABSL_GUARDED_BY(mu_);
  // Whether the server said its interval with the last `held`.
  bool interval_told_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time lease_end_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_heartbeat_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t lease_generation_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread reader_;
  // Last: destroyed first, so its callback never sees a dead Impl.
  std::unique_ptr<internal::Watchdog> lease_;
};

namespace {

// The server never sends heartbeats more often than this.
constexpr absl::Duration kMinHeartbeat = absl::Milliseconds(100);

}  // namespace

absl::StatusOr<std::unique_ptr<Registration>> Registration::Start(
    std::shared_ptr<grpc::Channel> channel, RegistrationOptions options) {
  if (options.key.empty()) return absl::InvalidArgumentError("key is empty");
  if (options.heartbeat_interval < kMinHeartbeat) {
    return absl::InvalidArgumentError("heartbeat_interval is below 100ms");
  }
  auto impl = std::make_unique<Impl>(std::move(channel), std::move(options));
  const absl::Status failed = impl->AwaitFirstHeld();
  if (!failed.ok()) return failed;  // ~Impl closes it
  return std::unique_ptr<Registration>(new Registration(std::move(impl)));
}

Registration::Registration(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
Registration::~Registration() = default;
void Registration::Close() { impl_->Close(); }
absl::Status Registration::SetValue(const std::string& value) {
  return impl_->SetValue(value);
}
bool Registration::held() const { return impl_->held(); }
std::optional<v1::ConfigEntry> Registration::entry() const {
  return impl_->entry();
}
int Registration::holds() const { return impl_->holds(); }
absl::Status Registration::status() const { return impl_->status(); }

Registration::Impl::Impl(std::shared_ptr<grpc::Channel> channel,
                         RegistrationOptions options)
    : channel_(std::move(channel)),
      stub_(v1::ConfigService::NewStub(channel_)),
      options_(std::move(options)),
      value_(options_.value),
      lease_interval_(options_.heartbeat_interval) {
  lease_ = std::make_unique<internal::Watchdog>(
      [this](uint64_t generation) { OnLeaseExpired(generation); });
  reader_ = std::thread([this] { ReadLoop(); });
}

absl::Status Registration::Impl::AwaitFirstHeld() {
  return internal::AwaitFirstLoad(
      mu_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return holds_ > 0; },
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; }, &status_,
      options_.start_timeout, absl::StrCat("key ", options_.key, " not held"));
}

void Registration::Impl::Close() {
  std::shared_ptr<Session> session;
  {
    warren::MutexLock lock(&mu_);
    if (close_called_) {
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
      mu_.Await(absl::Condition(&done));
      return;
    }
    close_called_ = true;
    closing_ = true;
    held_ = false;
    lease_->Disarm();
    session = current_;
    // A stream that has not answered may still wait for the channel, its
    // first write blocked: cancelling ends it (the server deletes a key it
    // created meanwhile).
    if (session != nullptr && !session->responded) {
      session->context.TryCancel();
      session = nullptr;
    }
  }
  // Half-close: the server deletes the key, then ends the stream with OK.
  if (session != nullptr) session->CloseWrites();
  {
    warren::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&done), options_.close_timeout) &&
        current_ != nullptr) {
      current_->context.TryCancel();
    }
  }
  reader_.join();
}

absl::Status Registration::Impl::SetValue(const std::string& value) {
  std::shared_ptr<Session> session;
  {
    warren::MutexLock lock(&mu_);
    if (closing_) return absl::FailedPreconditionError("closed");
    value_ = value;
    session = current_;
    // Not yet answered: the stream's first request (or the next stream's)
    // carries the new value.
    if (session == nullptr || !session->responded) return absl::OkStatus();
  }
  v1::HoldKeyRequest request;
  request.set_value(value);
  if (!session->Write(request)) {
    return absl::UnavailableError(
        "the stream has ended; the value is used when the key is held again");
  }
  return absl::OkStatus();
}

bool Registration::Impl::held() const {
  warren::MutexLock lock(&mu_);
  return held_ && absl::Now() < lease_end_;
}

std::optional<v1::ConfigEntry> Registration::Impl::entry() const {
  warren::MutexLock lock(&mu_);
  return entry_;
}

int Registration::Impl::holds() const {
  warren::MutexLock lock(&mu_);
  return holds_;
}

absl::Status Registration::Impl::status() const {
  warren::MutexLock lock(&mu_);
  return status_;
}

void Registration::Impl::ReadLoop() {
  Backoff backoff(options_.backoff);
  for (bool again = false;; again = true) {
    auto session =
        internal::NewStreamSession(mu_, &closing_, &current_, *channel_, again);
    if (session == nullptr) break;
    session->stream = stub_->HoldKey(&session->context);
    const absl::Status ended = RunSession(session);
    warren::MutexLock lock(&mu_);
    current_ = nullptr;
    if (closing_) break;
    if (session->responded) backoff.Reset();
    // The one exception to the table: once this Registration has held its
    // key, ALREADY_EXISTS is most likely its own node of a crashed warrend's
    // ZooKeeper session, gone within that session's timeout (someone else's
    // key can only be told apart by waiting that long). Giving up would
    // leave the service unregistered for good.
    const bool own_node_may_linger =
        ended.code() == absl::StatusCode::kAlreadyExists && holds_ > 0;
    if (!internal::ResubscribeAfter(mu_, &closing_, ended,
                                    /*may_resubscribe=*/true, backoff,
                                    options_.on_stream_error, &status_,
                                    /*retry_anyway=*/own_node_may_linger)) {
      break;
    }
  }
  warren::MutexLock lock(&mu_);
  done_ = true;
}

absl::Status Registration::Impl::RunSession(
    const std::shared_ptr<Session>& session) {
  v1::HoldKeyRequest request;
  request.set_key(options_.key);
  {
    warren::MutexLock lock(&mu_);
    request.set_value(value_);
  }
  *request.mutable_heartbeat_interval() =
      internal::ToProto(options_.heartbeat_interval);
  if (session->Write(request)) {
    v1::HoldKeyResponse response;
    while (session->stream->Read(&response)) {
      warren::MutexLock events(&events_mu_);
      {
        warren::MutexLock lock(&mu_);
        session->responded = true;
      }
      Handle(session, response);
    }
  }
  session->CloseWrites();
  const absl::Status status = ToStatus(session->stream->Finish());
  warren::MutexLock events(&events_mu_);
  bool was_held;
  {
    warren::MutexLock lock(&mu_);
    was_held = held_ && !closing_;
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

void Registration::Impl::Handle(const std::shared_ptr<Session>& session,
                                const v1::HoldKeyResponse& response) {
  switch (response.event_case()) {
    case v1::HoldKeyResponse::kHeld: {
      {
        warren::MutexLock lock(&mu_);
        if (closing_) return;
        if (!session->held) ++holds_;
        session->held = true;
        held_ = true;
        entry_ = response.held();
        // A new holding: heartbeat gaps of an earlier one say nothing.
        last_heartbeat_ = absl::InfinitePast();
        // The server says which interval it uses (it caps long ones below
        // its session timeout); older servers leave it out.
        const absl::Duration told =
            response.has_heartbeat_interval()
                ? internal::FromProto(response.heartbeat_interval())
                : absl::ZeroDuration();
        interval_told_ = told > absl::ZeroDuration();
        lease_interval_ = interval_told_ ? told : options_.heartbeat_interval;
        ArmLeaseLocked();
      }
      if (options_.on_held) options_.on_held(response.held());
      return;
    }
    case v1::HoldKeyResponse::kLost: {
      bool was_held;
      {
        warren::MutexLock lock(&mu_);
        was_held = held_;
        held_ = false;
        lease_->Disarm();
      }
      if (was_held && options_.on_lost) {
        options_.on_lost(internal::FromProto(response.lost().reason()),
                         absl::OkStatus());
      }
      return;
    }
    case v1::HoldKeyResponse::kHeartbeat: {
      warren::MutexLock lock(&mu_);
      if (!held_) return;
      const absl::Time now = absl::Now();
      if (!interval_told_ && last_heartbeat_ != absl::InfinitePast()) {
        // A server that does not say its interval may have capped the one
        // we asked for; the gap between two heartbeats shows it.
        lease_interval_ = std::max(
            std::min(options_.heartbeat_interval, now - last_heartbeat_),
            kMinHeartbeat);
      }
      last_heartbeat_ = now;
      ArmLeaseLocked();
      return;
    }
    default:
      return;
  }
}

void Registration::Impl::ArmLeaseLocked() {
  lease_end_ = absl::Now() + 2 * lease_interval_;
  lease_generation_ = lease_->Arm(2 * lease_interval_);
}

void Registration::Impl::OnLeaseExpired(uint64_t generation) {
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
                         " while holding key ", options_.key)));
  }
  // Start over on a new stream: this one cannot be trusted any more.
  if (session != nullptr) session->context.TryCancel();
}

}  // namespace warren::client
