#include "server/config/hold_key_stream.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/duration.h"
#include "server/common/grpc_status.h"
#include "server/common/logging.h"
#include "server/common/mutex.h"
#include "server/common/names.h"
#include "server/common/stream_heartbeat.h"
#include "server/common/stream_lifetime.h"
#include "server/common/stream_writer.h"

namespace warren::config {
namespace {

namespace v1 = ::warren::v1;
using google::protobuf::util::TimeUtil;

void FillHeld(const CachedEntry& entry, v1::ConfigEntry* out) {
  out->set_key(entry.key);
  out->set_value(entry.value);
  out->set_version(entry.stat.version);
  *out->mutable_modify_time() =
      TimeUtil::MillisecondsToTimestamp(entry.stat.mtime_ms);
  out->set_held(entry.stat.ephemeral_owner != 0);
}

// A refusal of the key itself names the request's field.
absl::Status AboutKey(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kAlreadyExists &&
      status.code() != absl::StatusCode::kFailedPrecondition) {
    return status;
  }
  return absl::Status(status.code(), absl::StrCat("key: ", status.message()));
}

class HoldKeyReactor final
    : public grpc::ServerBidiReactor<v1::HoldKeyRequest, v1::HoldKeyResponse>,
      public EndableStream,
      public std::enable_shared_from_this<HoldKeyReactor> {
 public:
  HoldKeyReactor(const HoldKeyDeps& deps, auth::Caller caller)
      : EndableStream("server is shutting down; hold the key again"),
        store_(deps.store),
        zk_(deps.store.zk()),
        workers_(deps.workers),
        timers_(deps.timers),
        options_(deps.options),
        open_streams_(deps.open_streams),
        held_keys_(deps.held_keys),
        id_(deps.held_keys->NewStreamId()),
        caller_(std::move(caller)),
        heartbeat_(deps.timers, mu_) {}

  static HoldKeyReactor* Start(const HoldKeyDeps& deps, auth::Caller caller,
                               const std::string& client) {
    auto reactor = std::make_shared<HoldKeyReactor>(deps, std::move(caller));
    if (reactor->lifetime_.Begin(reactor, deps.streams, client)) {
      warren::MutexLock lock(&reactor->mu_);
      reactor->StartRead(&reactor->request_);
    }
    return reactor.get();
  }

  void OnReadDone(bool ok) override {
    bool listen = false;
    {
      warren::MutexLock lock(&mu_);
      if (writes_.finishing() || done_) return;
      if (!ok) {
        // Half-closed: the key goes, then the stream ends OK.
        if (!started_) {
          writes_.Finish(this, grpc::Status::OK);
        } else {
          EnqueueLocked(Step::kReleaseAndFinish);
        }
        return;
      }
      if (!started_) {
        absl::Status valid = ValidateHoldKey(request_, options_);
        if (valid.ok()) {
          valid = caller_.Check(auth::Action::kConfigWrite, {request_.key()});
        }
        if (!valid.ok()) {
          writes_.Finish(this, ToGrpcStatus(valid));
          return;
        }
        started_ = true;
        key_ = request_.key();
        path_ = store_.keys().PathOf(key_);
        value_ = request_.value();
        requested_heartbeat_ = FromProtoDuration(request_.heartbeat_interval());
        lifetime_.SetReauthorizer([caller = caller_, key = key_] {
          return caller.Recheck(auth::Action::kConfigWrite, {key});
        });
        open_streams_.fetch_add(1);
        listen = true;
      } else {
        absl::Status valid = ValidateHoldKeyUpdate(request_, key_, options_);
        if (!valid.ok()) {
          writes_.Finish(this, ToGrpcStatus(valid));
          return;
        }
        value_ = request_.value();
      }
      // One `held` answers each request.
      EnqueueLocked(Step::kReconcile);
      StartRead(&request_);
    }
    if (listen) {
      // Outside our lock: the client calls listeners with its own held.
      const int id = zk_.AddSessionListener(
          [weak = weak_from_this()](zk::SessionState state) {
            if (auto self = weak.lock()) self->OnSessionState(state);
          });
      warren::MutexLock lock(&mu_);
      listener_id_ = id;
    }
  }

  void OnWriteDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (writes_.WriteDone(this, ok)) writes_.MaybeWrite(this);
  }

  void OnCancel() override {
    {
      // A new stream for the key may be under way: it waits for this one.
      warren::MutexLock lock(&mu_);
      if (claimed_) held_keys_->Releasing(key_, id_);
    }
    EndStream(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    {
      warren::MutexLock lock(&mu_);
      done_ = true;
      heartbeat_.Stop();
      if (started_) {
        open_streams_.fetch_sub(1);
        if (claimed_) held_keys_->Releasing(key_, id_);
        // However the stream ended, the key goes now (after a step in
        // progress, which may still be creating it). The release keeps
        // this object (and its session listener) until it is over.
        EnqueueLocked(Step::kRelease);
      }
    }
    lifetime_.End();
  }

 private:
  enum class Step { kReconcile, kRelease, kReleaseAndFinish };
  enum class Phase { kStarting, kHeld, kLost };

  void EndStream(grpc::Status status) override {
    warren::MutexLock lock(&mu_);
    writes_.Finish(this, std::move(status));
  }

  void PushLocked(v1::HoldKeyResponse response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (done_ || writes_.finishing()) return;
    writes_.Push(std::move(response));
    writes_.MaybeWrite(this);
  }

  void EnqueueLocked(Step step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    steps_.push_back(step);
    SubmitLocked();
  }

  void SubmitLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (running_ || steps_.empty()) return;
    running_ = true;
    absl::Status queued =
        workers_.Submit([self = shared_from_this()] { self->RunSteps(); });
    if (queued.ok()) return;
    running_ = false;
    std::deque<Step> releases;
    for (Step step : steps_) {
      if (step != Step::kReconcile) releases.push_back(step);
    }
    steps_ = std::move(releases);
    if (!done_ && steps_.empty()) writes_.Finish(this, ToGrpcStatus(queued));
    if (steps_.empty()) return;
    // A release is never dropped (the key would outlive its stream): it
    // waits for room in the queue. Not run here: this may be ZooKeeper's
    // callback thread, which a blocking write would deadlock.
    timers_.ScheduleAfter(kRequeueDelay, [self = shared_from_this()] {
      warren::MutexLock lock(&self->mu_);
      self->SubmitLocked();
    });
  }

  void RunSteps() {
    for (;;) {
      Step step;
      {
        warren::MutexLock lock(&mu_);
        if (steps_.empty()) {
          running_ = false;
          return;
        }
        step = steps_.front();
        steps_.pop_front();
      }
      if (step == Step::kReconcile) {
        Reconcile();
      } else {
        Release(step == Step::kReleaseAndFinish);
      }
    }
  }

  absl::Time Deadline() const {
    return absl::Now() + options_.operation_timeout;
  }

  // Makes the node what the client asked for: this session's, with the
  // latest value. Answers `held`, or ends the stream when the key is
  // someone else's.
  void Reconcile() {
    std::string value;
    int64_t owner;
    uint64_t generation_before;
    uint64_t expiries_before;
    {
      warren::MutexLock lock(&mu_);
      if (done_ || writes_.finishing()) return;
      if (!ClaimLocked()) return;
      value = value_;
      owner = owner_;
      // A create whose answer was lost made the node in this session, or
      // nothing.
      if (owner == 0 && create_in_doubt_) owner = zk_.session_id();
      generation_before = zk_.session_generation();
      expiries_before = expiries_;
    }
    const absl::Time deadline = Deadline();
    absl::StatusOr<CachedEntry> entry = store_.Read(key_, deadline);
    if (entry.ok() && (owner == 0 || entry->stat.ephemeral_owner != owner)) {
      End(absl::AlreadyExistsError(absl::StrCat(
          "key: key '", key_, "' already exists",
          entry->stat.ephemeral_owner != 0 ? " (held by another stream)"
                                           : "")));
      return;
    }
    WriteBatch batch;
    PutParams put;
    put.key = key_;
    put.value = value;
    if (entry.ok()) {
      if (entry->value != value) {
        put.holder = owner;
        batch.ops.push_back(std::move(put));
      }
    } else if (entry.status().code() == absl::StatusCode::kNotFound) {
      // Not created yet, or gone with an expired session.
      put.hold = true;
      batch.ops.push_back(std::move(put));
    } else {
      Failed(entry.status());
      return;
    }
    if (!batch.ops.empty()) {
      auto written = store_.Write(batch, deadline);
      if (!written.ok()) {
        if (batch.ops.size() == 1 && std::get<PutParams>(batch.ops[0]).hold &&
            (written.status().code() == absl::StatusCode::kUnavailable ||
             written.status().code() == absl::StatusCode::kDeadlineExceeded)) {
          warren::MutexLock lock(&mu_);
          create_in_doubt_ = true;
        }
        Failed(AboutKey(written.status()));
        return;
      }
      entry = written->puts.front();
      if (options_.on_change) {
        options_.on_change(Change::Type::kPut, *entry);
      }
    }
    warren::MutexLock lock(&mu_);
    if (expiries_ != expiries_before ||
        zk_.session_generation() != generation_before) {
      // The session changed while this step ran: what it read or wrote
      // may have gone with the old one, so it claims nothing. The node may
      // still be the new session's (a write that went out in it): the next
      // reconcile looks as after a create whose answer was lost.
      owner_ = 0;
      create_in_doubt_ = true;
      phase_ = Phase::kLost;
      if (!done_ && std::find(steps_.begin(), steps_.end(), Step::kReconcile) ==
                        steps_.end()) {
        EnqueueLocked(Step::kReconcile);
      }
      return;
    }
    owner_ = entry->stat.ephemeral_owner;
    create_in_doubt_ = false;
    generation_ = zk_.session_generation();
    if (done_) return;  // the release queued behind us deletes it
    phase_ = Phase::kHeld;
    const absl::Duration interval =
        LeaseInterval(requested_heartbeat_, SessionTimeoutInForce());
    v1::HoldKeyResponse response;
    FillHeld(*entry, response.mutable_held());
    *response.mutable_heartbeat_interval() = ToProtoDuration(interval);
    PushLocked(std::move(response));
    if (!heartbeat_started_) {
      heartbeat_started_ = true;
      StartLeaseHeartbeatLocked(interval);
    } else if (heartbeat_.interval() != interval) {
      heartbeat_.SetInterval(interval);
    }
  }

  // Claims the key among this warrend's streams (held_keys.h); false when
  // the stream must wait for another stream here, or ended.
  bool ClaimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (claimed_) return true;
    if (waiting_) return false;
    const uint64_t wait = ++wait_;
    const HeldKeys::Claim claim = held_keys_->TryClaim(
        key_, id_, take_over_, [weak = weak_from_this(), wait] {
          if (auto self = weak.lock()) self->WaitOver(wait, false);
        });
    absl::Duration bound;
    switch (claim) {
      case HeldKeys::Claim::kClaimed:
        claimed_ = true;
        return true;
      case HeldKeys::Claim::kWaitForLiveStream:
        // Its holder's end would release it soon after a cancel; past the
        // grace, ZooKeeper answers (ALREADY_EXISTS while it is held).
        if (live_grace_over_) return true;
        bound = kLiveHolderGrace;
        break;
      case HeldKeys::Claim::kWaitForRelease:
        // Bounded as the create itself would be; then it goes ahead (and
        // meets the old node, if it is still there).
        bound = options_.operation_timeout;
        break;
    }
    waiting_ = true;
    timers_.ScheduleAfter(bound, [weak = weak_from_this(), wait] {
      if (auto self = weak.lock()) self->WaitOver(wait, true);
    });
    return false;
  }

  void WaitOver(uint64_t wait, bool timed_out) {
    warren::MutexLock lock(&mu_);
    if (!waiting_ || wait != wait_) return;
    waiting_ = false;
    if (timed_out) {
      take_over_ = true;
      live_grace_over_ = true;
    }
    if (!done_ && !writes_.finishing()) EnqueueLocked(Step::kReconcile);
  }

  // A reconcile that did not get through: connection trouble waits for the
  // session's next event (which queues another); the rest ends the stream.
  void Failed(const absl::Status& status) {
    if (status.code() == absl::StatusCode::kUnavailable ||
        status.code() == absl::StatusCode::kDeadlineExceeded) {
      warren::MutexLock lock(&mu_);
      if (phase_ != Phase::kStarting) return;
    }
    End(status);
  }

  void End(const absl::Status& status) {
    warren::MutexLock lock(&mu_);
    if (!done_) writes_.Finish(this, ToGrpcStatus(status));
  }

  void Release(bool finish) {
    int64_t owner;
    {
      warren::MutexLock lock(&mu_);
      owner = owner_;
      if (owner == 0 && create_in_doubt_) owner = zk_.session_id();
      phase_ = Phase::kLost;
    }
    absl::Status released = absl::OkStatus();
    if (owner != 0) {
      WriteBatch batch;
      DeleteParams del;
      del.key = key_;
      del.holder = owner;
      batch.ops.push_back(std::move(del));
      auto deleted = store_.Write(batch, Deadline());
      if (deleted.ok()) {
        if (options_.on_change) {
          for (const Change& change : deleted->changes) {
            options_.on_change(change.type, change.entry);
          }
        }
      } else if (deleted.status().code() != absl::StatusCode::kNotFound) {
        released = deleted.status();
        WARREN_LOG_WARN("HoldKey: releasing key '{}' failed: {}", key_,
                        released.ToString());
      }
      warren::MutexLock lock(&mu_);
      if (released.ok()) {
        owner_ = 0;
        create_in_doubt_ = false;
      }
    }
    if (finish) End(released);
    const bool retry = released.code() == absl::StatusCode::kUnavailable ||
                       released.code() == absl::StatusCode::kDeadlineExceeded;
    std::optional<int> listener;
    bool claimed;
    {
      warren::MutexLock lock(&mu_);
      claimed = claimed_;
      if (retry) {
        // Tried again on the next connection (or given up on expiry, which
        // takes the node): this object lives until then.
        release_pending_ = true;
        if (done_) keepalive_ = shared_from_this();
        if (zk_.state() == zk::SessionState::kConnected) {
          // Connected again before this was marked pending (that event is
          // past), or slow to answer: no event will come to retry it.
          timers_.ScheduleAfter(kReleaseRetryDelay,
                                [self = shared_from_this()] {
                                  warren::MutexLock lock(&self->mu_);
                                  if (self->release_pending_) {
                                    self->EnqueueLocked(Step::kRelease);
                                  }
                                });
        }
        return;
      }
      release_pending_ = false;
      if (!done_ || released_) return;
      released_ = true;
      listener = listener_id_;
    }
    if (listener.has_value() && *listener != 0) {
      zk_.RemoveSessionListener(*listener);
    }
    if (claimed) held_keys_->Released(key_, id_);
    warren::MutexLock lock(&mu_);
    keepalive_.reset();  // the running step still holds a reference
  }

  void OnSessionState(zk::SessionState state) {
    warren::MutexLock lock(&mu_);
    if (state == zk::SessionState::kExpired) ++expiries_;
    if (done_ || writes_.finishing()) {
      if (!release_pending_) return;
      if (state == zk::SessionState::kExpired) {
        // The node went with the session: the release only finishes.
        owner_ = 0;
        create_in_doubt_ = false;
        EnqueueLocked(Step::kRelease);
      } else if (state == zk::SessionState::kConnected) {
        EnqueueLocked(Step::kRelease);
      }
      return;
    }
    switch (state) {
      case zk::SessionState::kSuspended:
        if (phase_ == Phase::kHeld) {
          SendLostLocked(v1::LOSS_REASON_CONNECTION_SUSPENDED);
        }
        break;
      case zk::SessionState::kExpired:
        // The node went with the session.
        owner_ = 0;
        create_in_doubt_ = false;
        if (phase_ != Phase::kStarting) {
          SendLostLocked(v1::LOSS_REASON_SESSION_EXPIRED);
        } else {
          // A create in progress may answer from the old session: the
          // next connection makes the key again whatever it says.
          phase_ = Phase::kLost;
        }
        break;
      case zk::SessionState::kConnected:
        if (phase_ == Phase::kLost) EnqueueLocked(Step::kReconcile);
        break;
      default:
        break;
    }
  }

  void SendLostLocked(v1::LossReason reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    phase_ = Phase::kLost;
    v1::HoldKeyResponse response;
    response.mutable_lost()->set_reason(reason);
    PushLocked(std::move(response));
  }

  absl::Duration SessionTimeoutInForce() const {
    const absl::Duration negotiated = zk_.negotiated_session_timeout();
    return negotiated > absl::ZeroDuration() ? negotiated
                                             : options_.session_timeout;
  }

  // Lease heartbeats (stream_heartbeat.h): each follows a sync and a read
  // of the node answered in the session that holds it, as the leader's do.
  void StartLeaseHeartbeatLocked(absl::Duration interval)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StreamHeartbeat::Lease lease;
    lease.leading = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return phase_ == Phase::kHeld && !writes_.finishing() && !done_;
    };
    lease.prove = [this](absl::AnyInvocable<void(absl::Status)> done) {
      int64_t owner;
      uint64_t generation;
      {
        warren::MutexLock lock(&mu_);
        owner = owner_;
        generation = generation_;
      }
      if (owner == 0 || zk_.state() != zk::SessionState::kConnected) {
        done(absl::FailedPreconditionError("the key is not held now"));
        return;
      }
      // ZooKeeper answers a session's requests in order: the exists comes
      // from a server at least as recent as the ensemble's leader was when
      // the sync reached it.
      zk_.Sync(path_, [](absl::Status) {});
      zk_.Exists(
          path_, nullptr,
          [this, self = shared_from_this(), done = std::move(done), owner,
           generation](absl::StatusOr<std::optional<zk::NodeStat>> r) mutable {
            if (!r.ok()) {
              done(r.status());
            } else if (!r->has_value() || (*r)->ephemeral_owner != owner ||
                       zk_.session_generation() != generation) {
              done(absl::FailedPreconditionError("the key is gone"));
            } else {
              done(absl::OkStatus());
            }
          });
    };
    lease.session_timeout = [this] { return SessionTimeoutInForce(); };
    lease.send = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      v1::HoldKeyResponse response;
      *response.mutable_heartbeat()->mutable_server_time() =
          TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
      PushLocked(std::move(response));
    };
    heartbeat_.StartLease(weak_from_this(), interval, std::move(lease));
  }

  // How long a release waits for room in a full worker queue.
  static constexpr absl::Duration kRequeueDelay = absl::Milliseconds(50);
  // How long a release that failed while connected waits to try again.
  static constexpr absl::Duration kReleaseRetryDelay = absl::Seconds(1);
  // How long a new stream waits for a live stream of its key here to end.
  static constexpr absl::Duration kLiveHolderGrace = absl::Seconds(1);

  ConfigStore& store_;
  zk::ZkClient& zk_;
  WorkerPool& workers_;
  TimerQueue& timers_;
  const ConfigServiceOptions& options_;
  std::atomic<size_t>& open_streams_;
  const std::shared_ptr<HeldKeys> held_keys_;
  const uint64_t id_;
  const auth::Caller caller_;
  StreamLifetime lifetime_;

  warren::Mutex mu_;
  StreamHeartbeat heartbeat_ ABSL_GUARDED_BY(mu_);
  StreamWriter<v1::HoldKeyResponse> writes_ ABSL_GUARDED_BY(mu_);
  v1::HoldKeyRequest request_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  // Set by the first request, then constant.
  std::string key_;
  std::string path_;
  absl::Duration requested_heartbeat_ ABSL_GUARDED_BY(mu_);
  std::string value_ ABSL_GUARDED_BY(mu_);
  int listener_id_ ABSL_GUARDED_BY(mu_) = 0;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kStarting;
  // The ephemeralOwner (session id) of the node this stream made, and the
  // session generation it was seen in; 0 when it has none now.
  int64_t owner_ ABSL_GUARDED_BY(mu_) = 0;
  // A create of the node got no answer: it may exist, as this session's.
  bool create_in_doubt_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool heartbeat_started_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Step> steps_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  // Session expiries heard of: a step that saw this change claims nothing.
  uint64_t expiries_ ABSL_GUARDED_BY(mu_) = 0;
  // This stream's claim on the key among this warrend's streams.
  bool claimed_ ABSL_GUARDED_BY(mu_) = false;
  // Waiting for another stream of the key here; wait_ numbers the waits.
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t wait_ ABSL_GUARDED_BY(mu_) = 0;
  bool take_over_ ABSL_GUARDED_BY(mu_) = false;
  bool live_grace_over_ ABSL_GUARDED_BY(mu_) = false;
  // A release that could not get through, waiting for the connection.
  bool release_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  // This object, while a release outlives the stream.
  std::shared_ptr<HoldKeyReactor> keepalive_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status ValidateHoldKey(const v1::HoldKeyRequest& first,
                             const ConfigServiceOptions& options) {
  if (auto s = ValidateName(first.key(), "key"); !s.ok()) return s;
  if (auto s = ValidateValueSize(first.value(), options, "value"); !s.ok()) {
    return s;
  }
  const auto& interval = first.heartbeat_interval();
  if (interval.seconds() < 0 || interval.nanos() < 0) {
    return absl::InvalidArgumentError(
        "heartbeat_interval must not be negative");
  }
  return absl::OkStatus();
}

absl::Status ValidateHoldKeyUpdate(const v1::HoldKeyRequest& request,
                                   const std::string& key,
                                   const ConfigServiceOptions& options) {
  if (!request.key().empty() && request.key() != key) {
    return absl::InvalidArgumentError(
        absl::StrCat("key: this stream holds '", key,
                     "'; a later request's key must be empty or the same"));
  }
  return ValidateValueSize(request.value(), options, "value");
}

grpc::ServerBidiReactor<v1::HoldKeyRequest, v1::HoldKeyResponse>* StartHoldKey(
    const HoldKeyDeps& deps, auth::Caller caller, const std::string& client) {
  return HoldKeyReactor::Start(deps, std::move(caller), client);
}

}  // namespace warren::config
