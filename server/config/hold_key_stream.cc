#include "server/config/hold_key_stream.h"

#include <deque>
#include <memory>
#include <optional>
#include <utility>

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
        options_(deps.options),
        open_streams_(deps.open_streams),
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

  void OnCancel() override { EndStream(grpc::Status::CANCELLED); }

  void OnDone() override {
    std::optional<int> listener;
    {
      warren::MutexLock lock(&mu_);
      done_ = true;
      heartbeat_.Stop();
      if (started_) {
        open_streams_.fetch_sub(1);
        listener = listener_id_;
        // However the stream ended, the key goes now (after a step in
        // progress, which may still be creating it).
        EnqueueLocked(Step::kRelease);
      }
    }
    if (listener.has_value() && *listener != 0) {
      zk_.RemoveSessionListener(*listener);
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
    if (running_) return;
    running_ = true;
    absl::Status queued =
        workers_.Submit([self = shared_from_this()] { self->RunSteps(); });
    if (!queued.ok()) {
      running_ = false;
      steps_.clear();
      if (!done_) writes_.Finish(this, ToGrpcStatus(queued));
    }
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
    {
      warren::MutexLock lock(&mu_);
      if (done_ || writes_.finishing()) return;
      value = value_;
      owner = owner_;
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
        Failed(AboutKey(written.status()));
        return;
      }
      entry = written->puts.front();
      if (options_.on_change) {
        options_.on_change(Change::Type::kPut, *entry);
      }
    }
    warren::MutexLock lock(&mu_);
    owner_ = entry->stat.ephemeral_owner;
    generation_ = zk_.session_generation();
    if (done_) return;  // the release queued behind us deletes it
    phase_ = Phase::kHeld;
    v1::HoldKeyResponse response;
    FillHeld(*entry, response.mutable_held());
    PushLocked(std::move(response));
    if (!heartbeat_started_) {
      heartbeat_started_ = true;
      StartLeaseHeartbeatLocked();
    }
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
      if (released.ok()) owner_ = 0;
    }
    if (finish) End(released);
  }

  void OnSessionState(zk::SessionState state) {
    warren::MutexLock lock(&mu_);
    if (done_ || writes_.finishing()) return;
    switch (state) {
      case zk::SessionState::kSuspended:
        if (phase_ == Phase::kHeld) {
          SendLostLocked(v1::LOSS_REASON_CONNECTION_SUSPENDED);
        }
        break;
      case zk::SessionState::kExpired:
        // The node went with the session.
        owner_ = 0;
        if (phase_ != Phase::kStarting) {
          SendLostLocked(v1::LOSS_REASON_SESSION_EXPIRED);
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
  void StartLeaseHeartbeatLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
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
    heartbeat_.StartLease(
        weak_from_this(),
        LeaseInterval(requested_heartbeat_, SessionTimeoutInForce()),
        std::move(lease));
  }

  ConfigStore& store_;
  zk::ZkClient& zk_;
  WorkerPool& workers_;
  const ConfigServiceOptions& options_;
  std::atomic<size_t>& open_streams_;
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
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool heartbeat_started_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Step> steps_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;
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
