#include "warren/client/elector.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/mutex.h"
#include "src/internal.h"
#include "warren/client/channel.h"

namespace warren::client {

namespace v1 = ::warren::v1;

// Everything of an Elector behind its handle: the threads hold `this`, so it
// stays at one address for its whole life.
class Elector::Impl {
 public:
  Impl(std::shared_ptr<grpc::Channel> channel, ElectorOptions options);
  ~Impl() { Close(); }

  absl::Status AwaitFirstEvent();
  void Close();
  absl::Status Proclaim(const std::string& value);
  bool leading() const;
  uint64_t fencing_token() const;
  std::optional<v1::Leader> leader() const;
  absl::Status status() const;

 private:
  struct Session : internal::BidiSession<v1::ElectRequest, v1::ElectResponse> {
    bool responded = false;  // guarded by Impl::mu_
  };

  void ReadLoop();
  absl::Status RunSession(const std::shared_ptr<Session>& session);
  void Handle(const v1::ElectResponse& response);
  void OnLeaseExpired(uint64_t generation);
  void ArmLeaseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::ElectionService::Stub> stub_;
  const ElectorOptions options_;

  // Held while an event is decided and its callback runs: callbacks never
  // overlap, and a lease expiry cannot interleave with a server event.
  warren::Mutex events_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable warren::Mutex mu_;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool close_called_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool established_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Session> current_ ABSL_GUARDED_BY(mu_);
  bool leading_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<v1::Leader> leader_ ABSL_GUARDED_BY(mu_);
  // The lease: armed at election and at every message while leading.
  absl::Duration lease_interval_ ABSL_GUARDED_BY(mu_);
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

absl::StatusOr<std::unique_ptr<Elector>> Elector::Start(
    std::shared_ptr<grpc::Channel> channel, ElectorOptions options) {
  if (options.election.empty()) {
    return absl::InvalidArgumentError("election is empty");
  }
  if (options.heartbeat_interval < kMinHeartbeat) {
    return absl::InvalidArgumentError("heartbeat_interval is below 100ms");
  }
  auto impl = std::make_unique<Impl>(std::move(channel), std::move(options));
  const absl::Status failed = impl->AwaitFirstEvent();
  if (!failed.ok()) return failed;  // ~Impl closes it
  return std::unique_ptr<Elector>(new Elector(std::move(impl)));
}

Elector::Elector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Elector::~Elector() = default;
void Elector::Close() { impl_->Close(); }
absl::Status Elector::Proclaim(const std::string& value) {
  return impl_->Proclaim(value);
}
bool Elector::leading() const { return impl_->leading(); }
uint64_t Elector::fencing_token() const { return impl_->fencing_token(); }
std::optional<v1::Leader> Elector::leader() const { return impl_->leader(); }
absl::Status Elector::status() const { return impl_->status(); }

absl::Status Elector::Impl::AwaitFirstEvent() {
  warren::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return established_ || done_;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&settled),
                            options_.start_timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("no election event within ",
                     absl::FormatDuration(options_.start_timeout)));
  }
  if (established_) return absl::OkStatus();
  return status_.ok() ? absl::UnavailableError("campaign ended") : status_;
}

Elector::Impl::Impl(std::shared_ptr<grpc::Channel> channel,
                    ElectorOptions options)
    : channel_(std::move(channel)),
      stub_(v1::ElectionService::NewStub(channel_)),
      options_(std::move(options)),
      lease_interval_(options_.heartbeat_interval) {
  lease_ = std::make_unique<internal::Watchdog>(
      [this](uint64_t generation) { OnLeaseExpired(generation); });
  reader_ = std::thread([this] { ReadLoop(); });
}

void Elector::Impl::Close() {
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
    session = current_;
    // A stream that has not answered yet may still wait for the channel,
    // its campaign write blocked: there is nothing to resign from yet.
    if (session != nullptr && !session->responded) {
      session->context.TryCancel();
      session = nullptr;
    }
  }
  if (session != nullptr) {
    // Resign explicitly (the server answers "lost: resigned" to a leader),
    // then half-close; the server ends the stream once the node is gone.
    v1::ElectRequest resign;
    resign.mutable_resign();
    session->Write(resign);
    session->CloseWrites();
  }
  {
    warren::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&done), options_.close_timeout) &&
        current_ != nullptr) {
      // An unresponsive server: cancelling ends the stream here, and the
      // server drops the candidate node when it notices.
      current_->context.TryCancel();
    }
  }
  reader_.join();
}

absl::Status Elector::Impl::Proclaim(const std::string& value) {
  std::shared_ptr<Session> session;
  {
    warren::MutexLock lock(&mu_);
    if (!leading_) return absl::FailedPreconditionError("not leading");
    session = current_;
  }
  v1::ElectRequest request;
  request.mutable_proclaim()->set_value(value);
  if (session == nullptr || !session->Write(request)) {
    return absl::UnavailableError("the election stream has ended");
  }
  return absl::OkStatus();
}

bool Elector::Impl::leading() const {
  warren::MutexLock lock(&mu_);
  return leading_;
}

uint64_t Elector::Impl::fencing_token() const {
  warren::MutexLock lock(&mu_);
  return leading_ && leader_.has_value() ? leader_->fencing_token() : 0;
}

std::optional<v1::Leader> Elector::Impl::leader() const {
  warren::MutexLock lock(&mu_);
  return leader_;
}

absl::Status Elector::Impl::status() const {
  warren::MutexLock lock(&mu_);
  return status_;
}

void Elector::Impl::ReadLoop() {
  Backoff backoff(options_.backoff);
  for (bool again = false;; again = true) {
    auto session =
        internal::NewStreamSession(mu_, &closing_, &current_, *channel_, again);
    if (session == nullptr) break;
    session->stream = stub_->Elect(&session->context);
    const absl::Status ended = RunSession(session);
    warren::MutexLock lock(&mu_);
    current_ = nullptr;
    if (closing_) break;
    if (session->responded) backoff.Reset();
    if (!internal::ResubscribeAfter(mu_, &closing_, ended, options_.recampaign,
                                    backoff, options_.on_stream_error,
                                    &status_)) {
      break;
    }
  }
  warren::MutexLock lock(&mu_);
  done_ = true;
}

absl::Status Elector::Impl::RunSession(
    const std::shared_ptr<Session>& session) {
  v1::ElectRequest campaign;
  auto* c = campaign.mutable_campaign();
  c->set_election(options_.election);
  c->set_candidate_id(options_.candidate_id);
  c->set_value(options_.value);
  c->set_rejoin_after_expiry(options_.rejoin_after_expiry);
  *c->mutable_heartbeat_interval() =
      internal::ToProto(options_.heartbeat_interval);
  if (session->Write(campaign)) {
    v1::ElectResponse response;
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
  // A broken stream is a lost leadership at once: nothing tells this
  // client any more whether it still leads.
  warren::MutexLock events(&events_mu_);
  bool was_leading;
  bool closing;
  {
    warren::MutexLock lock(&mu_);
    was_leading = leading_;
    closing = closing_;
    if (was_leading) leader_.reset();
    leading_ = false;
    lease_->Disarm();
  }
  if (was_leading && options_.on_lost) {
    options_.on_lost(
        closing ? LossReason::kResigned : LossReason::kStreamBroken,
        status.ok() ? absl::UnavailableError("stream ended") : status);
  }
  return status;
}

void Elector::Impl::Handle(const v1::ElectResponse& response) {
  switch (response.event_case()) {
    case v1::ElectResponse::kElected: {
      {
        warren::MutexLock lock(&mu_);
        leading_ = true;
        leader_ = response.elected().leader();
        established_ = true;
        // A new term: heartbeat gaps of an earlier term say nothing.
        last_heartbeat_ = absl::InfinitePast();
        lease_interval_ = options_.heartbeat_interval;
        // The server says which interval it uses (it caps long ones below
        // its session timeout); older servers leave it out.
        if (response.elected().has_heartbeat_interval()) {
          const auto& in_force = response.elected().heartbeat_interval();
          const absl::Duration told = absl::Seconds(in_force.seconds()) +
                                      absl::Nanoseconds(in_force.nanos());
          if (told > absl::ZeroDuration()) {
            lease_interval_ = std::min(lease_interval_, told);
          }
        }
        ArmLeaseLocked();
      }
      if (options_.on_elected) options_.on_elected(response.elected().leader());
      return;
    }
    case v1::ElectResponse::kFollowing: {
      const auto& following = response.following();
      bool was_leading;
      {
        warren::MutexLock lock(&mu_);
        was_leading = leading_;
        leading_ = false;
        lease_->Disarm();
        if (following.has_leader()) {
          leader_ = following.leader();
        } else {
          leader_.reset();
        }
        established_ = true;
      }
      // The server says "lost" before "following"; should that ever be
      // missing, the application must still hear that it lost.
      if (was_leading && options_.on_lost) {
        options_.on_lost(LossReason::kSessionExpired,
                         absl::AbortedError("following without a loss"));
      }
      if (options_.on_following) {
        options_.on_following(following.has_leader() ? &following.leader()
                                                     : nullptr);
      }
      return;
    }
    case v1::ElectResponse::kLost: {
      bool was_leading;
      {
        warren::MutexLock lock(&mu_);
        was_leading = leading_;
        if (was_leading) leader_.reset();
        leading_ = false;
        lease_->Disarm();
      }
      // Not twice: the lease may have declared the loss already.
      if (was_leading && options_.on_lost) {
        options_.on_lost(internal::FromProto(response.lost().reason()),
                         absl::OkStatus());
      }
      return;
    }
    case v1::ElectResponse::kHeartbeat: {
      warren::MutexLock lock(&mu_);
      if (!leading_) return;
      const absl::Time now = absl::Now();
      if (last_heartbeat_ != absl::InfinitePast()) {
        // The server may have capped the interval we asked for; the gap
        // between two heartbeats shows the one it uses.
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

void Elector::Impl::ArmLeaseLocked() {
  lease_generation_ = lease_->Arm(2 * lease_interval_);
}

void Elector::Impl::OnLeaseExpired(uint64_t generation) {
  warren::MutexLock events(&events_mu_);
  std::shared_ptr<Session> session;
  absl::Duration lease;
  {
    warren::MutexLock lock(&mu_);
    if (!leading_ || generation != lease_generation_) return;
    leading_ = false;
    leader_.reset();
    session = current_;
    lease = 2 * lease_interval_;
  }
  if (options_.on_lost) {
    options_.on_lost(LossReason::kLeaseExpired,
                     absl::DeadlineExceededError(absl::StrCat(
                         "no heartbeat within ", absl::FormatDuration(lease),
                         " while leading")));
  }
  // Leave the election: the server removes the candidate node (if it still
  // can), so another candidate may lead; with recampaign we join again.
  if (session != nullptr) session->context.TryCancel();
}

}  // namespace warren::client
