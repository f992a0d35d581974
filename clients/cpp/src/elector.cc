#include "warren/client/elector.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/internal.h"
#include "warren/client/channel.h"

namespace warren::client {

namespace v1 = ::warren::v1;

struct Elector::Session
    : internal::BidiSession<v1::ElectRequest, v1::ElectResponse> {};

const char* LossReasonName(LossReason reason) {
  switch (reason) {
    case LossReason::kResigned:
      return "resigned";
    case LossReason::kConnectionSuspended:
      return "connection suspended";
    case LossReason::kSessionExpired:
      return "session expired";
    case LossReason::kStreamBroken:
      return "stream broken";
    case LossReason::kLeaseExpired:
      return "lease expired";
  }
  return "unknown";
}

namespace {

LossReason FromProto(v1::LossReason reason) {
  switch (reason) {
    case v1::LOSS_REASON_RESIGNED:
      return LossReason::kResigned;
    case v1::LOSS_REASON_CONNECTION_SUSPENDED:
      return LossReason::kConnectionSuspended;
    default:
      return LossReason::kSessionExpired;
  }
}

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
  std::unique_ptr<Elector> elector(
      new Elector(std::move(channel), std::move(options)));
  absl::Status failed;
  {
    Elector& e = *elector;
    warren::MutexLock lock(&e.mu_);
    auto settled = [&e]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(e.mu_) {
      return e.established_ || e.done_;
    };
    if (!e.mu_.AwaitWithTimeout(absl::Condition(&settled),
                                e.options_.start_timeout)) {
      failed = absl::DeadlineExceededError(
          absl::StrCat("no election event within ",
                       absl::FormatDuration(e.options_.start_timeout)));
    } else if (!e.established_) {
      failed =
          e.status_.ok() ? absl::UnavailableError("campaign ended") : e.status_;
    }
  }
  if (!failed.ok()) {
    elector->Close();
    return failed;
  }
  return elector;
}

Elector::Elector(std::shared_ptr<grpc::Channel> channel, ElectorOptions options)
    : stub_(v1::ElectionService::NewStub(std::move(channel))),
      options_(std::move(options)),
      lease_interval_(options_.heartbeat_interval) {
  lease_ = std::make_unique<internal::Watchdog>(
      [this](uint64_t generation) { OnLeaseExpired(generation); });
  reader_ = std::thread([this] { ReadLoop(); });
}

Elector::~Elector() { Close(); }

void Elector::Close() {
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

absl::Status Elector::Proclaim(const std::string& value) {
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

bool Elector::leading() const {
  warren::MutexLock lock(&mu_);
  return leading_;
}

uint64_t Elector::fencing_token() const {
  warren::MutexLock lock(&mu_);
  return leading_ && leader_.has_value() ? leader_->fencing_token() : 0;
}

std::optional<v1::Leader> Elector::leader() const {
  warren::MutexLock lock(&mu_);
  return leader_;
}

absl::Status Elector::status() const {
  warren::MutexLock lock(&mu_);
  return status_;
}

void Elector::ReadLoop() {
  Backoff backoff(options_.backoff);
  while (true) {
    auto session = std::make_shared<Session>();
    session->stream = stub_->Elect(&session->context);
    {
      warren::MutexLock lock(&mu_);
      if (closing_) {
        session->context.TryCancel();
        break;
      }
      current_ = session;
      established_in_session_ = false;
    }
    const absl::Status ended = RunSession(session);
    warren::MutexLock lock(&mu_);
    current_ = nullptr;
    if (closing_) break;
    if (established_in_session_) backoff.Reset();
    const bool permanent = !internal::IsRetryableStreamEnd(ended);
    if (options_.on_stream_error) {
      mu_.Unlock();
      options_.on_stream_error(ended);
      mu_.Lock();
    }
    if (permanent || !options_.recampaign) {
      status_ = ended.ok()
                    ? absl::UnavailableError("the server ended the candidacy")
                    : ended;
      break;
    }
    if (!internal::SleepUnlessStopped(mu_, &closing_, backoff.Next())) break;
  }
  warren::MutexLock lock(&mu_);
  done_ = true;
}

absl::Status Elector::RunSession(const std::shared_ptr<Session>& session) {
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

void Elector::Handle(const v1::ElectResponse& response) {
  switch (response.event_case()) {
    case v1::ElectResponse::kElected: {
      {
        warren::MutexLock lock(&mu_);
        leading_ = true;
        leader_ = response.elected().leader();
        established_ = established_in_session_ = true;
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
        established_ = established_in_session_ = true;
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
        options_.on_lost(FromProto(response.lost().reason()), absl::OkStatus());
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

void Elector::ArmLeaseLocked() {
  lease_generation_ = lease_->Arm(2 * lease_interval_);
}

void Elector::OnLeaseExpired(uint64_t generation) {
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
