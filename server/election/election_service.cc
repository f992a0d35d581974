#include "server/election/election_service.h"

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
#include "server/common/names.h"
#include "server/common/rejecting_reactors.h"
#include "server/common/stream_heartbeat.h"
#include "server/common/stream_lifetime.h"
#include "server/common/stream_writer.h"
#include "server/common/uuid.h"
#include "server/election/candidacy_lease.h"
#include "server/election/candidate_node.h"
#include "server/zk/zk_sync.h"

namespace warren::election {
namespace {

namespace v1 = ::warren::v1;
using google::protobuf::util::TimeUtil;

v1::LossReason ToProto(LossReason reason) {
  switch (reason) {
    case LossReason::kResigned:
      return v1::LOSS_REASON_RESIGNED;
    case LossReason::kConnectionSuspended:
      return v1::LOSS_REASON_CONNECTION_SUSPENDED;
    case LossReason::kSessionExpired:
      return v1::LOSS_REASON_SESSION_EXPIRED;
  }
  return v1::LOSS_REASON_UNSPECIFIED;
}

class ElectReactor final
    : public grpc::ServerBidiReactor<v1::ElectRequest, v1::ElectResponse>,
      public CandidacyObserver,
      public EndableStream,
      public std::enable_shared_from_this<ElectReactor> {
 public:
  ElectReactor(ElectionManager& manager, TimerQueue& timers,
               ClientQuota& candidates, const ElectionServiceOptions& options,
               auth::Caller caller, std::string client)
      : EndableStream("server is shutting down; campaign again"),
        manager_(manager),
        candidates_(candidates),
        options_(options),
        caller_(std::move(caller)),
        client_(std::move(client)),
        heartbeat_(timers, mu_) {}

  static ElectReactor* Start(ElectionManager& manager, TimerQueue& timers,
                             StreamRegistry& streams, ClientQuota& candidates,
                             const ElectionServiceOptions& options,
                             auth::Caller caller, std::string client) {
    auto reactor =
        std::make_shared<ElectReactor>(manager, timers, candidates, options,
                                       std::move(caller), std::move(client));
    if (reactor->lifetime_.Begin(reactor, streams, reactor->client_)) {
      warren::MutexLock lock(&reactor->mu_);
      reactor->StartRead(&reactor->request_);
    }
    return reactor.get();
  }

  void OnReadDone(bool ok) override {
    enum class Action {
      kNone,
      kCampaign,
      kProclaim,
      kResign
    } action = Action::kNone;
    CandidacyParams params;
    std::string value;
    std::shared_ptr<Candidacy> candidacy;
    {
      warren::MutexLock lock(&mu_);
      if (writes_.finishing()) return;
      if (!ok) {
        // The client closed its side: resign (the node goes at once).
        if (candidacy_ == nullptr) {
          writes_.Finish(this, grpc::Status::OK);
          return;
        }
        action = Action::kResign;
        candidacy = candidacy_;
      } else {
        switch (request_.request_case()) {
          case v1::ElectRequest::kCampaign: {
            if (campaigned_) {
              FailLocked("campaign was sent twice on one stream");
              return;
            }
            absl::StatusOr<absl::Duration> heartbeat =
                ValidateCampaign(request_.campaign(), options_);
            absl::Status valid = heartbeat.status();
            if (valid.ok()) {
              valid = caller_.Check(auth::Action::kCampaign,
                                    {request_.campaign().election()});
            }
            if (!valid.ok()) {
              writes_.Finish(this, ToGrpcStatus(valid));
              return;
            }
            // Before the candidacy exists: a refused campaign leaves no node.
            auto lease = candidates_.Acquire(client_);
            if (!lease.ok()) {
              writes_.Finish(this, ToGrpcStatus(lease.status()));
              return;
            }
            lease_ = *std::move(lease);
            campaigned_ = true;
            requested_heartbeat_ =
                FromProtoDuration(request_.campaign().heartbeat_interval());
            StartLeaseHeartbeatLocked();
            const auto& c = request_.campaign();
            params.name = c.election();
            params.candidate_id =
                c.candidate_id().empty() ? NewUuid() : c.candidate_id();
            params.value = c.value();
            params.rejoin_after_expiry = c.rejoin_after_expiry();
            election_ = params.name;
            // A reload that takes the grant (or the token) away ends the
            // stream, and with it the candidacy.
            lifetime_.SetReauthorizer([caller = caller_, election = election_] {
              return caller.Recheck(auth::Action::kCampaign, {election});
            });
            candidate_id_ = params.candidate_id;
            value_ = params.value;
            action = Action::kCampaign;
            break;
          }
          case v1::ElectRequest::kProclaim:
            if (!campaigned_) {
              FailLocked("proclaim before campaign");
              return;
            }
            if (request_.proclaim().value().size() > options_.max_value_bytes) {
              FailLocked(absl::StrCat(
                  "proclaim.value is ", request_.proclaim().value().size(),
                  " bytes; at most ", options_.max_value_bytes));
              return;
            }
            value = request_.proclaim().value();
            candidacy = candidacy_;
            action = Action::kProclaim;
            break;
          case v1::ElectRequest::kResign:
            if (!campaigned_) {
              FailLocked("resign before campaign");
              return;
            }
            candidacy = candidacy_;
            action = Action::kResign;
            break;
          default:
            FailLocked(
                "a request must hold one of campaign, proclaim or "
                "resign");
            return;
        }
        // After a campaign, the next read starts once the candidacy exists
        // (StartCampaign): a proclaim or resign read at once must find it.
        if (action == Action::kProclaim) StartRead(&request_);
      }
    }
    // Outside our lock: the candidacy calls us back.
    switch (action) {
      case Action::kCampaign:
        StartCampaign(std::move(params));
        break;
      case Action::kProclaim:
        candidacy->Proclaim(value, [weak = weak_from_this(), candidacy,
                                    value](absl::Status status) {
          auto self = weak.lock();
          if (!self) return;
          // A proclaim that raced a loss of leadership (or came from a
          // candidate that does not lead) is dropped: the candidate has
          // been, or is about to be, told `lost` or `following`, and its
          // stream stays a candidacy. Only other failures end it.
          const bool dropped =
              !status.ok() &&
              (!candidacy->holds() ||
               status.code() == absl::StatusCode::kNotFound ||
               status.code() == absl::StatusCode::kFailedPrecondition);
          warren::MutexLock lock(&self->mu_);
          if (status.ok()) {
            self->value_ = value;
          } else if (dropped) {
            WARREN_LOG_INFO(
                "election {}: proclaim from {} dropped: it does not lead "
                "now ({})",
                self->election_, self->candidate_id_, status.message());
          } else {
            self->writes_.Finish(self.get(), ToGrpcStatus(status));
          }
        });
        break;
      case Action::kResign:
        candidacy->Resign();
        break;
      case Action::kNone:
        break;
    }
  }

  void OnWriteDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (writes_.WriteDone(this, ok)) writes_.MaybeWrite(this);
  }

  void OnCancel() override { EndStream(grpc::Status::CANCELLED); }

  void OnDone() override {
    std::shared_ptr<Candidacy> candidacy;
    std::shared_ptr<LeaderWatch> watch;
    uint64_t watch_id;
    {
      warren::MutexLock lock(&mu_);
      done_ = true;
      candidacy = std::move(candidacy_);
      watch = std::move(watch_);
      watch_id = watch_id_;
      heartbeat_.Stop();
    }
    // However the stream ended, the candidate node goes now.
    if (candidacy) candidacy->Stop();
    if (watch) watch->Unsubscribe(watch_id);
    {
      // Now, not with the reactor: a timer may still hold it for a moment.
      warren::MutexLock lock(&mu_);
      lease_.Release();
    }
    lifetime_.End();
  }

  // CandidacyObserver.
  void OnElected(uint64_t token, absl::Time since) override {
    warren::MutexLock lock(&mu_);
    if (done_) return;
    role_ = Role::kLeader;
    token_ = token;
    // The interval in force follows the session the ensemble granted now
    // (a new session may have been granted another timeout).
    heartbeat_.SetInterval(
        LeaseInterval(requested_heartbeat_, SessionTimeoutInForce()));
    v1::ElectResponse response;
    FillSelfLocked(response.mutable_elected()->mutable_leader(), since);
    // The client's lease must use the interval actually in force, which the
    // cap may have shortened.
    *response.mutable_elected()->mutable_heartbeat_interval() =
        ToProtoDuration(heartbeat_.interval());
    PushLocked(std::move(response));
  }

  void OnFollowing(uint64_t own_token, uint32_t) override {
    warren::MutexLock lock(&mu_);
    if (done_) return;
    role_ = Role::kFollower;
    own_token_ = own_token;
    SendFollowingLocked();
  }

  void OnLost(LossReason reason) override {
    warren::MutexLock lock(&mu_);
    if (done_) return;
    role_ = Role::kNone;
    v1::ElectResponse response;
    response.mutable_lost()->set_reason(ToProto(reason));
    PushLocked(std::move(response));
  }

  void OnEnded(absl::Status status) override {
    warren::MutexLock lock(&mu_);
    if (done_) return;
    // The node is gone: the slot is free before the client can see the end,
    // so that a client that resigned may campaign again at once. Every other
    // end gives it back in OnDone, after the node goes.
    lease_.Release();
    writes_.Finish(this, ToGrpcStatus(status));
  }

 private:
  enum class Role { kNone, kLeader, kFollower };

  void StartCampaign(CandidacyParams params) {
    auto watch = manager_.Watch(params.name);
    auto candidacy = manager_.Campaign(std::move(params), shared_from_this());
    const uint64_t watch_id = watch->Subscribe(
        [weak = weak_from_this()](const std::optional<v1::Leader>& leader) {
          if (auto self = weak.lock()) self->OnLeaderChange(leader);
        });
    {
      warren::MutexLock lock(&mu_);
      if (!done_) {
        candidacy_ = std::move(candidacy);
        watch_ = std::move(watch);
        watch_id_ = watch_id;
        StartRead(&request_);
        return;
      }
    }
    // The stream ended meanwhile (outside our lock: lock order is always
    // candidacy or watch first, then this reactor).
    candidacy->Stop();
    watch->Unsubscribe(watch_id);
  }

  void OnLeaderChange(const std::optional<v1::Leader>& leader) {
    warren::MutexLock lock(&mu_);
    if (done_) return;
    leader_ = leader;
    if (role_ == Role::kFollower) SendFollowingLocked();
  }

  void SendFollowingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // The watch may still show this candidate as leader for a moment after
    // it lost: never tell a follower that it leads.
    std::optional<v1::Leader> shown = leader_;
    if (shown.has_value() && shown->fencing_token() != 0 &&
        (shown->fencing_token() == token_ ||
         shown->fencing_token() == own_token_)) {
      shown.reset();
    }
    const std::string key =
        shown ? shown->SerializeAsString() : std::string("none");
    if (following_sent_ && key == last_following_) return;
    following_sent_ = true;
    last_following_ = key;
    v1::ElectResponse response;
    auto* following = response.mutable_following();
    if (shown) *following->mutable_leader() = *shown;
    PushLocked(std::move(response));
  }

  void FillSelfLocked(v1::Leader* leader, absl::Time since)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    leader->set_election(election_);
    leader->set_candidate_id(candidate_id_);
    leader->set_value(value_);
    leader->set_fencing_token(token_);
    *leader->mutable_elected_time() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(since));
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

  void PushLocked(v1::ElectResponse response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writes_.Push(std::move(response));
    writes_.MaybeWrite(this);
  }

  absl::Duration SessionTimeoutInForce() const {
    return election::SessionTimeoutInForce(manager_.zk(),
                                           options_.session_timeout);
  }

  // The leader's lease heartbeats (candidacy_lease.h).
  void StartLeaseHeartbeatLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CandidacyLease lease;
    lease.zk = &manager_.zk();
    lease.asked_session_timeout = options_.session_timeout;
    lease.requested_interval = requested_heartbeat_;
    lease.holding = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return role_ == Role::kLeader && candidacy_ != nullptr &&
             !writes_.finishing();
    };
    lease.candidacy = [this]()
                          ABSL_NO_THREAD_SAFETY_ANALYSIS { return candidacy_; };
    lease.send = [this](const v1::Heartbeat& beat)
                     ABSL_NO_THREAD_SAFETY_ANALYSIS {
                       v1::ElectResponse response;
                       *response.mutable_heartbeat() = beat;
                       PushLocked(std::move(response));
                     };
    StartCandidacyLease(heartbeat_, weak_from_this(), mu_, std::move(lease));
  }

  ElectionManager& manager_;
  ClientQuota& candidates_;
  const ElectionServiceOptions& options_;
  const auth::Caller caller_;
  // Who the stream counts against in max_candidates_per_client.
  const std::string client_;
  StreamLifetime lifetime_;

  warren::Mutex mu_;
  // Ticks from the campaign on; in force: capped by the session timeout.
  StreamHeartbeat heartbeat_ ABSL_GUARDED_BY(mu_);
  v1::ElectRequest request_ ABSL_GUARDED_BY(mu_);
  bool campaigned_ ABSL_GUARDED_BY(mu_) = false;
  // The slot of max_candidates(_per_client), held from the campaign until
  // the stream ends.
  ClientQuota::Lease lease_ ABSL_GUARDED_BY(mu_);
  std::string election_ ABSL_GUARDED_BY(mu_);
  std::string candidate_id_ ABSL_GUARDED_BY(mu_);
  std::string value_ ABSL_GUARDED_BY(mu_);
  // As the campaign asked (0: the longest allowed).
  absl::Duration requested_heartbeat_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Candidacy> candidacy_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<LeaderWatch> watch_ ABSL_GUARDED_BY(mu_);
  uint64_t watch_id_ ABSL_GUARDED_BY(mu_) = 0;
  Role role_ ABSL_GUARDED_BY(mu_) = Role::kNone;
  uint64_t token_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t own_token_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<v1::Leader> leader_ ABSL_GUARDED_BY(mu_);
  bool following_sent_ ABSL_GUARDED_BY(mu_) = false;
  std::string last_following_ ABSL_GUARDED_BY(mu_);
  StreamWriter<v1::ElectResponse> writes_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

class ObserveReactor final
    : public grpc::ServerWriteReactor<v1::ObserveLeaderResponse>,
      public EndableStream,
      public std::enable_shared_from_this<ObserveReactor> {
 public:
  explicit ObserveReactor(ClientQuota::Lease lease)
      : EndableStream("server is shutting down; observe again"),
        lifetime_(std::move(lease)) {}

  // `lease`: the stream's slot of max_observers(_per_client), given back
  // when the stream is done.
  static ObserveReactor* Start(ElectionManager& manager,
                               StreamRegistry& streams,
                               ClientQuota::Lease lease,
                               const std::string& election,
                               const std::string& client,
                               StreamRegistry::Reauthorizer reauthorize) {
    auto reactor = std::make_shared<ObserveReactor>(std::move(lease));
    if (!reactor->lifetime_.Begin(reactor, streams, client,
                                  std::move(reauthorize))) {
      return reactor.get();
    }
    auto watch = manager.Watch(election);
    const uint64_t id =
        watch->Subscribe([weak = std::weak_ptr<ObserveReactor>(reactor)](
                             const std::optional<v1::Leader>& leader) {
          if (auto self = weak.lock()) self->OnLeader(leader);
        });
    warren::MutexLock lock(&reactor->mu_);
    reactor->watch_ = std::move(watch);
    reactor->watch_id_ = id;
    return reactor.get();
  }

  void OnLeader(const std::optional<v1::Leader>& leader) {
    warren::MutexLock lock(&mu_);
    if (done_) return;
    v1::ObserveLeaderResponse response;
    if (leader) *response.mutable_leader() = *leader;
    writes_.Push(std::move(response));
    writes_.MaybeWrite(this);
  }

  void OnWriteDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (writes_.WriteDone(this, ok)) writes_.MaybeWrite(this);
  }
  void OnCancel() override { EndStream(grpc::Status::CANCELLED); }
  void OnDone() override {
    std::shared_ptr<LeaderWatch> watch;
    uint64_t id;
    {
      warren::MutexLock lock(&mu_);
      done_ = true;
      watch = std::move(watch_);
      id = watch_id_;
    }
    if (watch) watch->Unsubscribe(id);
    lifetime_.End();
  }

 private:
  void EndStream(grpc::Status status) override {
    warren::MutexLock lock(&mu_);
    writes_.Finish(this, std::move(status));
  }

  StreamLifetime lifetime_;
  warren::Mutex mu_;
  std::shared_ptr<LeaderWatch> watch_ ABSL_GUARDED_BY(mu_);
  uint64_t watch_id_ ABSL_GUARDED_BY(mu_) = 0;
  StreamWriter<v1::ObserveLeaderResponse> writes_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<absl::Duration> ValidateCampaign(
    const v1::Campaign& campaign, const ElectionServiceOptions& options) {
  if (auto s = ValidateRecipeName(campaign.election(), "campaign.election");
      !s.ok()) {
    return s;
  }
  if (auto s =
          ValidateCandidateId(campaign.candidate_id(), "campaign.candidate_id");
      !s.ok()) {
    return s;
  }
  if (campaign.value().size() > options.max_value_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("campaign.value is ", campaign.value().size(),
                     " bytes; at most ", options.max_value_bytes));
  }
  const auto& hb = campaign.heartbeat_interval();
  if (hb.seconds() < 0 || hb.nanos() < 0) {
    return absl::InvalidArgumentError(
        "campaign.heartbeat_interval must not be negative");
  }
  return LeaseInterval(FromProtoDuration(campaign.heartbeat_interval()),
                       options.session_timeout);
}

ElectionServiceImpl::ElectionServiceImpl(ElectionManager& manager,
                                         WorkerPool& workers,
                                         TimerQueue& timers,
                                         StreamRegistry& streams,
                                         ElectionServiceOptions options)
    : manager_(manager),
      workers_(workers),
      timers_(timers),
      streams_(streams),
      options_(options),
      candidate_quota_({"max_candidates", "max_candidates_per_client",
                        "candidacies", options.max_candidates,
                        options.max_candidates_per_client}),
      observer_quota_({"max_observers", "max_observers_per_client",
                       "ObserveLeader streams", options.max_observers,
                       options.max_observers_per_client}) {}

grpc::ServerBidiReactor<v1::ElectRequest, v1::ElectResponse>*
ElectionServiceImpl::Elect(grpc::CallbackServerContext* context) {
  auto caller = auth::Authenticate(options_.authorizer, *context, "Elect");
  if (!caller.ok()) {
    return new RejectingBidiReactor<v1::ElectRequest, v1::ElectResponse>(
        ToGrpcStatus(caller.status()));
  }
  std::string client = QuotaClient(caller->principal(), context->peer());
  return ElectReactor::Start(manager_, timers_, streams_, candidate_quota_,
                             options_, *std::move(caller), std::move(client));
}

grpc::ServerUnaryReactor* ElectionServiceImpl::GetLeader(
    grpc::CallbackServerContext* context, const v1::GetLeaderRequest* request,
    v1::GetLeaderResponse* response) {
  auto* reactor = context->DefaultReactor();
  // Validated before authorized: a refusal never echoes an oversized name.
  absl::Status s = ValidateRecipeName(request->election(), "election");
  if (s.ok()) {
    s = auth::Check(options_.authorizer, *context, "GetLeader",
                    auth::Action::kObserve, {request->election()});
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
        auto leader = ReadLeader(sync, manager_.PathOf(request->election()));
        if (!leader.ok()) {
          reactor->Finish(ToGrpcStatus(leader.status()));
        } else if (!leader->has_value()) {
          reactor->Finish(ToGrpcStatus(absl::NotFoundError(absl::StrCat(
              "election '", request->election(), "' has no leader"))));
        } else {
          *response->mutable_leader() = **leader;
          reactor->Finish(grpc::Status::OK);
        }
      });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerWriteReactor<v1::ObserveLeaderResponse>*
ElectionServiceImpl::ObserveLeader(grpc::CallbackServerContext* context,
                                   const v1::ObserveLeaderRequest* request) {
  absl::Status s = ValidateRecipeName(request->election(), "election");
  absl::StatusOr<auth::Caller> caller =
      s.ok() ? auth::Authorize(options_.authorizer, *context, "ObserveLeader",
                               auth::Action::kObserve, {request->election()})
             : absl::StatusOr<auth::Caller>(s);
  // Before the watch exists: a refused stream costs ZooKeeper nothing.
  const std::string client =
      caller.ok() ? QuotaClient(caller->principal(), context->peer()) : "";
  absl::StatusOr<ClientQuota::Lease> lease =
      caller.ok() ? observer_quota_.Acquire(client)
                  : absl::StatusOr<ClientQuota::Lease>(caller.status());
  if (!lease.ok()) {
    return new RejectingWriteReactor<v1::ObserveLeaderResponse>(
        ToGrpcStatus(lease.status()));
  }
  return ObserveReactor::Start(
      manager_, streams_, *std::move(lease), request->election(), client,
      [caller = *std::move(caller), election = request->election()] {
        return caller.Recheck(auth::Action::kObserve, {election});
      });
}

}  // namespace warren::election
