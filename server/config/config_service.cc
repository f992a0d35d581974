#include "server/config/config_service.h"

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
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
#include "server/config/hold_key_stream.h"
#include "server/fence/fence_resolver.h"

namespace warren::config {
namespace {

namespace v1 = ::warren::v1;

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
constexpr char kPageTokenPrefix[] = "v1:";
// Beyond this many undelivered events a slow watcher's queue is reduced to
// the latest event per key: it still ends at the latest state.
constexpr size_t kMaxPendingEvents = 10000;
// The most events in one WatchConfig response (besides the byte bound).
constexpr size_t kMaxEventsPerResponse = 1000;

void FillEntry(const CachedEntry& entry, bool with_value,
               v1::ConfigEntry* out) {
  out->set_key(entry.key);
  if (with_value) out->set_value(entry.value);
  out->set_version(entry.stat.version);
  *out->mutable_modify_time() =
      google::protobuf::util::TimeUtil::MillisecondsToTimestamp(
          entry.stat.mtime_ms);
  out->set_held(entry.stat.ephemeral_owner != 0);
}

absl::StatusOr<std::string> ParsePageToken(const std::string& token,
                                           const std::string& prefix) {
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kPageTokenPrefix)) {
    return absl::InvalidArgumentError(
        "page_token is not a token this server issued");
  }
  std::string key = decoded.substr(sizeof(kPageTokenPrefix) - 1);
  if (!ValidateName(key, "page_token").ok() ||
      !IsSelfOrDescendant(key, prefix)) {
    return absl::InvalidArgumentError(
        "page_token does not belong to a listing of this prefix");
  }
  return key;
}

// The check at the top of each handler (auth.h: a null authorizer allows).
absl::Status Authorize(const ConfigServiceOptions& options,
                       const grpc::CallbackServerContext& context,
                       absl::string_view method, auth::Action action,
                       const std::string& key, bool subtree = false) {
  return auth::Check(options.authorizer, context, method, action,
                     {key, subtree});
}

// `field`: e.g. "expected_version", "ops[2].put.expected_version".
absl::Status ValidateVersion(int64_t version, absl::string_view field) {
  if (version < 0 || version > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", version, " is out of range"));
  }
  return absl::OkStatus();
}

PutParams PutParamsOf(const v1::PutConfigRequest& request) {
  PutParams params;
  params.key = request.key();
  params.value = request.value();
  if (request.has_expected_version()) {
    params.expected_version = request.expected_version();
  }
  params.create_only = request.create_only();
  return params;
}

DeleteParams DeleteParamsOf(const v1::DeleteConfigRequest& request) {
  DeleteParams params;
  params.key = request.key();
  if (request.has_expected_version()) {
    params.expected_version = request.expected_version();
  }
  params.recursive = request.recursive();
  return params;
}

// One WatchConfig stream. Kept alive by its lifetime from start until
// OnDone; the cache, the timer and the registry reach it through weak
// pointers or under the cache's subscription contract.
class WatchReactor final
    : public grpc::ServerWriteReactor<v1::WatchConfigResponse>,
      public WatchListener,
      public EndableStream,
      public std::enable_shared_from_this<WatchReactor> {
 public:
  // `lease`: the stream's slot of max_watches(_per_client).
  WatchReactor(WatchCache& cache, TimerQueue& timers, size_t max_response_bytes,
               ClientQuota::Lease lease)
      : EndableStream("server is shutting down; watch again"),
        cache_(cache),
        max_response_bytes_(max_response_bytes),
        lifetime_(std::move(lease)),
        heartbeat_(timers, mu_) {}

  static WatchReactor* Start(WatchCache& cache, TimerQueue& timers,
                             StreamRegistry& streams, absl::Duration heartbeat,
                             size_t max_response_bytes,
                             ClientQuota::Lease lease, const std::string& key,
                             bool prefix, const std::string& client,
                             StreamRegistry::Reauthorizer reauthorize) {
    auto reactor = std::make_shared<WatchReactor>(
        cache, timers, max_response_bytes, std::move(lease));
    if (!reactor->lifetime_.Begin(reactor, streams, client,
                                  std::move(reauthorize))) {
      return reactor.get();
    }
    // May deliver the initial state at once, from this thread.
    const auto id = cache.Subscribe(key, prefix, reactor.get());
    {
      warren::MutexLock lock(&reactor->mu_);
      reactor->subscription_ = id;
      reactor->subscribed_ = true;
      reactor->heartbeat_.StartIdle(
          reactor, heartbeat,
          [raw = reactor.get()]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
            raw->SendHeartbeatLocked();  // under mu_ (stream_heartbeat.h)
          });
    }
    return reactor.get();
  }

  void OnInitialState(std::vector<CachedEntry> entries) override {
    warren::MutexLock lock(&mu_);
    initial_ = std::move(entries);
    next_initial_ = 0;
    have_initial_ = true;
    MaybeWriteLocked();
  }

  void OnChanges(std::vector<Change> changes) override {
    warren::MutexLock lock(&mu_);
    for (auto& change : changes) pending_.push_back(std::move(change));
    if (pending_.size() > kMaxPendingEvents) CoalesceLocked();
    MaybeWriteLocked();
  }

  void OnWriteDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (writes_.WriteDone(this, ok)) MaybeWriteLocked();
  }

  void OnCancel() override { EndStream(grpc::Status::CANCELLED); }

  void OnDone() override {
    uint64_t subscription = 0;
    bool subscribed;
    {
      warren::MutexLock lock(&mu_);
      subscribed = subscribed_;
      subscription = subscription_;
      heartbeat_.Stop();
    }
    // Outside our lock: the cache calls us with its lock held.
    if (subscribed) cache_.Unsubscribe(subscription);
    lifetime_.End();  // may delete this
  }

 private:
  void EndStream(grpc::Status status) override {
    warren::MutexLock lock(&mu_);
    writes_.Finish(this, std::move(status));
  }

  void CoalesceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::map<std::string, size_t> last_index;
    for (size_t i = 0; i < pending_.size(); ++i) {
      last_index[pending_[i].entry.key] = i;
    }
    std::deque<Change> kept;
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (last_index[pending_[i].entry.key] == i) {
        kept.push_back(std::move(pending_[i]));
      }
    }
    pending_.swap(kept);
  }

  // Turns what is pending into one response, when nothing is being written.
  // Responses stay within max_response_bytes (and kMaxEventsPerResponse)
  // but hold at least one event: one entry always fits (config_limits.h).
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writes_.writing() || writes_.finishing() || !have_initial_) return;
    v1::WatchConfigResponse out;
    size_t bytes = 0;
    auto full = [&](const CachedEntry& entry) {
      return out.events_size() > 0 &&
             (static_cast<size_t>(out.events_size()) == kMaxEventsPerResponse ||
              bytes + EntryBytes(entry.key.size(), entry.value.size()) >
                  max_response_bytes_);
    };
    if (!initial_sent_) {
      // A large initial state spans several responses: only the last one
      // says initial_state, which tells the client the state is complete
      // (the ones before it hold only PUTs of the same state).
      while (next_initial_ < initial_.size() &&
             !full(initial_[next_initial_])) {
        const CachedEntry& entry = initial_[next_initial_++];
        auto* event = out.add_events();
        event->set_type(v1::CONFIG_EVENT_TYPE_PUT);
        FillEntry(entry, true, event->mutable_entry());
        bytes += EntryBytes(entry.key.size(), entry.value.size());
      }
      if (next_initial_ == initial_.size()) {
        out.set_initial_state(true);
        initial_.clear();
        initial_sent_ = true;
      }
    } else if (!pending_.empty()) {
      while (!pending_.empty() && !full(pending_.front().entry)) {
        Change& change = pending_.front();
        auto* event = out.add_events();
        const bool put = change.type == Change::Type::kPut;
        event->set_type(put ? v1::CONFIG_EVENT_TYPE_PUT
                            : v1::CONFIG_EVENT_TYPE_DELETE);
        FillEntry(change.entry, put, event->mutable_entry());
        bytes += EntryBytes(change.entry.key.size(),
                            put ? change.entry.value.size() : 0);
        pending_.pop_front();
      }
    } else {
      return;
    }
    SendLocked(std::move(out));
  }

  void SendLocked(v1::WatchConfigResponse response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    heartbeat_.NoteWrite();
    writes_.Push(std::move(response));
    writes_.MaybeWrite(this);
  }

  // After an interval without events; none before the initial state is
  // complete.
  void SendHeartbeatLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writes_.writing() || writes_.finishing() || !initial_sent_) return;
    v1::WatchConfigResponse heartbeat;
    *heartbeat.mutable_heartbeat()->mutable_server_time() =
        google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
            absl::ToUnixNanos(absl::Now()));
    SendLocked(std::move(heartbeat));
  }

  WatchCache& cache_;
  const size_t max_response_bytes_;
  StreamLifetime lifetime_;

  warren::Mutex mu_;
  StreamHeartbeat heartbeat_ ABSL_GUARDED_BY(mu_);
  WatchCache::SubscriptionId subscription_ ABSL_GUARDED_BY(mu_) = 0;
  bool subscribed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<CachedEntry> initial_ ABSL_GUARDED_BY(mu_);
  // The first entry of initial_ not sent yet.
  size_t next_initial_ ABSL_GUARDED_BY(mu_) = 0;
  bool have_initial_ ABSL_GUARDED_BY(mu_) = false;
  bool initial_sent_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Change> pending_ ABSL_GUARDED_BY(mu_);
  StreamWriter<v1::WatchConfigResponse> writes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

ConfigServiceImpl::ConfigServiceImpl(ConfigStore& store, WatchCache& cache,
                                     fence::FenceResolver& fences,
                                     WorkerPool& workers, TimerQueue& timers,
                                     StreamRegistry& streams,
                                     ConfigServiceOptions options)
    : store_(store),
      cache_(cache),
      fences_(fences),
      workers_(workers),
      timers_(timers),
      streams_(streams),
      options_(options),
      watch_quota_({"max_watches", "max_watches_per_client", "watches",
                    options.max_watches, options.max_watches_per_client}) {}

template <typename Work>
void ConfigServiceImpl::Offload(grpc::CallbackServerContext* context,
                                grpc::ServerUnaryReactor* reactor, Work work) {
  const absl::Time deadline =
      OperationDeadline(*context, options_.operation_timeout);
  absl::Status queued =
      workers_.Submit([reactor, deadline, work = std::move(work)]() mutable {
        reactor->Finish(ToGrpcStatus(work(deadline)));
      });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
}

std::string MakePageToken(const std::string& last_key) {
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, last_key));
}

absl::Status ValidatePut(const v1::PutConfigRequest& request,
                         const ConfigServiceOptions& options,
                         absl::string_view field_prefix) {
  const auto field = [&](absl::string_view name) {
    return absl::StrCat(field_prefix, name);
  };
  if (auto s = ValidateName(request.key(), field("key")); !s.ok()) return s;
  if (auto s = ValidateValueSize(request.value(), options, field("value"));
      !s.ok()) {
    return s;
  }
  if (!request.has_expected_version()) return absl::OkStatus();
  if (request.create_only()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field("expected_version"), " and ", field("create_only"),
                     " cannot both be set"));
  }
  return ValidateVersion(request.expected_version(), field("expected_version"));
}

absl::Status ValidateDelete(const v1::DeleteConfigRequest& request,
                            absl::string_view field_prefix) {
  const auto field = [&](absl::string_view name) {
    return absl::StrCat(field_prefix, name);
  };
  if (auto s = ValidateName(request.key(), field("key")); !s.ok()) return s;
  if (!request.has_expected_version()) return absl::OkStatus();
  return ValidateVersion(request.expected_version(), field("expected_version"));
}

absl::Status ValidateValueSize(absl::string_view value,
                               const ConfigServiceOptions& options,
                               absl::string_view field) {
  if (value.size() <= options.max_value_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " is ", value.size(), " bytes; at most ",
                   options.max_value_bytes, " are allowed"));
}

absl::Status ValidateTxn(const v1::TxnRequest& request,
                         const ConfigServiceOptions& options) {
  const size_t steps = request.checks_size() + request.ops_size();
  if (steps > options.max_txn_ops) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ops: the transaction has ", steps, " checks and ops; at most ",
        options.max_txn_ops, " (max_txn_ops) are allowed"));
  }
  if (request.ops_size() == 0) {
    return absl::InvalidArgumentError(
        "ops: a transaction needs at least one op");
  }
  for (int i = 0; i < request.checks_size(); ++i) {
    const v1::TxnCheck& check = request.checks(i);
    const std::string field = absl::StrCat("checks[", i, "]");
    if (auto s = ValidateName(check.key(), field + ".key"); !s.ok()) return s;
    switch (check.condition_case()) {
      case v1::TxnCheck::kVersion:
        if (auto s = ValidateVersion(check.version(), field + ".version");
            !s.ok()) {
          return s;
        }
        break;
      case v1::TxnCheck::kExists:
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": a check must set version or exists"));
    }
  }
  // Which op writes each key: a key written twice would depend on the
  // order ZooKeeper applies a multi's steps in, which nobody should need.
  std::map<std::string, int> writers;
  for (int i = 0; i < request.ops_size(); ++i) {
    const v1::TxnOp& op = request.ops(i);
    std::string field = absl::StrCat("ops[", i, "]");
    const std::string* key = nullptr;
    switch (op.op_case()) {
      case v1::TxnOp::kPut:
        field += ".put";
        if (auto s = ValidatePut(op.put(), options, field + "."); !s.ok()) {
          return s;
        }
        if (op.put().has_fence()) {
          return absl::InvalidArgumentError(absl::StrCat(
              field,
              ".fence must be unset: the transaction's fence covers "
              "every op"));
        }
        key = &op.put().key();
        break;
      case v1::TxnOp::kDelete:
        field += ".delete";
        if (auto s = ValidateDelete(op.delete_(), field + "."); !s.ok()) {
          return s;
        }
        if (op.delete_().has_fence()) {
          return absl::InvalidArgumentError(absl::StrCat(
              field,
              ".fence must be unset: the transaction's fence covers "
              "every op"));
        }
        key = &op.delete_().key();
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": an op must set put or delete"));
    }
    auto [it, fresh] = writers.emplace(*key, i);
    if (!fresh) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".key: key '", *key, "' is also written by ops[",
                       it->second, "]; a transaction writes a key once"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ValidateList(const v1::ListConfigRequest& request) {
  if (auto s = ValidateName(request.prefix(), "prefix", /*allow_empty=*/true);
      !s.ok()) {
    return s;
  }
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError("page_size must not be negative");
  }
  if (request.page_token().empty()) return std::string();
  return ParsePageToken(request.page_token(), request.prefix());
}

absl::Status ValidateWatch(const v1::WatchConfigRequest& request) {
  if (auto s = ValidateName(request.key(), "key",
                            /*allow_empty=*/request.prefix());
      !s.ok()) {
    return s;
  }
  const auto& interval = request.heartbeat_interval();
  if (interval.seconds() < 0 || interval.nanos() < 0) {
    return absl::InvalidArgumentError(
        "heartbeat_interval must not be negative");
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ConfigServiceImpl::GetConfig(
    grpc::CallbackServerContext* context, const v1::GetConfigRequest* request,
    v1::GetConfigResponse* response) {
  auto* reactor = context->DefaultReactor();
  // Validated before authorized, here and in every handler: a refusal
  // then never echoes a name that is too long or holds control characters.
  absl::Status valid = ValidateName(request->key(), "key");
  if (valid.ok()) {
    valid = Authorize(options_, *context, "GetConfig",
                      auth::Action::kConfigRead, request->key());
  }
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  if (!request->consistent()) {
    if (auto hit = cache_.Lookup(request->key())) {
      cache_hits_.fetch_add(1);
      if (!hit->has_value()) {
        reactor->Finish(ToGrpcStatus(absl::NotFoundError(
            absl::StrCat("key '", request->key(), "' not found"))));
      } else {
        FillEntry(**hit, true, response->mutable_entry());
        reactor->Finish(grpc::Status::OK);
      }
      return reactor;
    }
    cache_misses_.fetch_add(1);
  }
  // No worker thread: the read goes to ZooKeeper from here and the answer
  // comes from its callback, or DEADLINE_EXCEEDED from the timer, whichever
  // is first.
  struct Answer {
    std::atomic<bool> given{false};
    std::atomic<TimerQueue::TimerId> timer{0};
  };
  auto answer = std::make_shared<Answer>();
  answer->timer.store(timers_.Schedule(
      OperationDeadline(*context, options_.operation_timeout),
      [answer, reactor] {
        if (answer->given.exchange(true)) return;
        reactor->Finish(grpc::Status(
            grpc::StatusCode::DEADLINE_EXCEEDED,
            "ZooKeeper did not answer before the deadline; retry"));
      }));
  store_.GetAsync(
      request->key(), request->consistent(),
      [this, answer, reactor, response](absl::StatusOr<CachedEntry> entry) {
        if (answer->given.exchange(true)) return;
        timers_.Cancel(answer->timer.load());
        if (!entry.ok()) {
          reactor->Finish(ToGrpcStatus(entry.status()));
          return;
        }
        FillEntry(*entry, true, response->mutable_entry());
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

absl::Status ConfigServiceImpl::AuthorizeFence(
    const grpc::CallbackServerContext& context, absl::string_view method,
    const v1::Fence& fence) const {
  if (fence.owner_case() == v1::Fence::kLock) {
    return Authorize(options_, context, method, auth::Action::kLock,
                     fence.lock());
  }
  return Authorize(options_, context, method, auth::Action::kObserve,
                   fence.election());
}

absl::StatusOr<fence::HeldFence> ConfigServiceImpl::ResolveFence(
    const v1::Fence& fence, absl::Time deadline) {
  // The answer may come after the deadline, when nobody waits any more.
  struct Answer {
    absl::Notification done;
    absl::StatusOr<fence::HeldFence> held;
  };
  auto answer = std::make_shared<Answer>();
  fences_.Resolve(fence,
                  [answer](absl::StatusOr<fence::HeldFence> held) mutable {
                    answer->held = std::move(held);
                    answer->done.Notify();
                  });
  if (!answer->done.WaitForNotificationWithDeadline(deadline)) {
    return absl::DeadlineExceededError(
        "fence: ZooKeeper did not answer before the deadline; retry");
  }
  return answer->held;
}

absl::StatusOr<WriteOutcome> ConfigServiceImpl::Write(const v1::Fence* fence,
                                                      WriteBatch batch,
                                                      absl::Time deadline) {
  if (fence != nullptr) {
    auto held = ResolveFence(*fence, deadline);
    if (!held.ok()) {
      if (held.status().code() == absl::StatusCode::kFailedPrecondition) {
        fences_.CountRejection(fence::RejectionSite::kConfig);
      }
      return held.status();
    }
    batch.guard = fence::FenceResolver::CheckOp(*held);
    batch.guard_failed = fence::FenceNotHeld(*fence, "its holder is gone");
  }
  auto outcome = store_.Write(batch, deadline);
  if (fence != nullptr && !outcome.ok() &&
      outcome.status() == batch.guard_failed) {
    fences_.CountRejection(fence::RejectionSite::kConfig);
  }
  if (outcome.ok() && options_.on_change) {
    for (const Change& change : outcome->changes) {
      options_.on_change(change.type, change.entry);
    }
  }
  return outcome;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::PutConfig(
    grpc::CallbackServerContext* context, const v1::PutConfigRequest* request,
    v1::PutConfigResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::Status valid = ValidatePut(*request, options_);
  if (valid.ok() && request->has_fence()) {
    valid = fence::ValidateFence(request->fence(), "fence");
  }
  if (valid.ok()) {
    valid = CheckPutFits(store_.request_limits(), request->key(),
                         request->value().size(), options_.max_value_bytes);
  }
  if (valid.ok()) {
    valid = Authorize(options_, *context, "PutConfig",
                      auth::Action::kConfigWrite, request->key());
  }
  if (valid.ok() && request->has_fence()) {
    valid = AuthorizeFence(*context, "PutConfig", request->fence());
  }
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  Offload(context, reactor, [this, request, response](absl::Time deadline) {
    WriteBatch batch;
    batch.ops.push_back(PutParamsOf(*request));
    auto outcome = Write(request->has_fence() ? &request->fence() : nullptr,
                         std::move(batch), deadline);
    if (!outcome.ok()) return outcome.status();
    FillEntry(outcome->puts.front(), true, response->mutable_entry());
    return absl::OkStatus();
  });
  return reactor;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::DeleteConfig(
    grpc::CallbackServerContext* context,
    const v1::DeleteConfigRequest* request,
    v1::DeleteConfigResponse* /*response*/) {
  auto* reactor = context->DefaultReactor();
  absl::Status valid = ValidateDelete(*request);
  if (valid.ok() && request->has_fence()) {
    valid = fence::ValidateFence(request->fence(), "fence");
  }
  if (valid.ok()) {
    valid = Authorize(options_, *context, "DeleteConfig",
                      auth::Action::kConfigWrite, request->key(),
                      request->recursive());
  }
  if (valid.ok() && request->has_fence()) {
    valid = AuthorizeFence(*context, "DeleteConfig", request->fence());
  }
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  Offload(context, reactor, [this, request](absl::Time deadline) {
    WriteBatch batch;
    batch.ops.push_back(DeleteParamsOf(*request));
    return Write(request->has_fence() ? &request->fence() : nullptr,
                 std::move(batch), deadline)
        .status();
  });
  return reactor;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::Txn(
    grpc::CallbackServerContext* context, const v1::TxnRequest* request,
    v1::TxnResponse* response) {
  auto* reactor = context->DefaultReactor();
  absl::Status valid = ValidateTxn(*request, options_);
  if (valid.ok() && request->has_fence()) {
    valid = fence::ValidateFence(request->fence(), "fence");
  }
  if (valid.ok()) {
    // The multi holds every put at its largest (all parents missing).
    const RequestLimits limits = store_.request_limits();
    size_t bound = 0;
    for (const auto& op : request->ops()) {
      if (op.has_put()) {
        bound +=
            PutRequestBound(limits, op.put().key(), op.put().value().size());
      }
    }
    if (bound > limits.max_request_bytes) {
      valid = absl::InvalidArgumentError(absl::StrCat(
          "ops: the transaction's ZooKeeper request could reach ", bound,
          " bytes; zk_max_request_bytes is ", limits.max_request_bytes,
          "; split it or send smaller values"));
    }
  }
  for (int i = 0; valid.ok() && i < request->checks_size(); ++i) {
    valid = Authorize(options_, *context, "Txn", auth::Action::kConfigRead,
                      request->checks(i).key());
  }
  for (int i = 0; valid.ok() && i < request->ops_size(); ++i) {
    const v1::TxnOp& op = request->ops(i);
    valid =
        op.has_put()
            ? Authorize(options_, *context, "Txn", auth::Action::kConfigWrite,
                        op.put().key())
            : Authorize(options_, *context, "Txn", auth::Action::kConfigWrite,
                        op.delete_().key(), op.delete_().recursive());
  }
  if (valid.ok() && request->has_fence()) {
    valid = AuthorizeFence(*context, "Txn", request->fence());
  }
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  Offload(context, reactor, [this, request, response](absl::Time deadline) {
    WriteBatch batch;
    batch.txn = true;
    for (const v1::TxnCheck& check : request->checks()) {
      CheckParams params;
      params.key = check.key();
      if (check.has_version()) {
        params.version = check.version();
      } else {
        params.exists = check.exists();
      }
      batch.checks.push_back(std::move(params));
    }
    for (const v1::TxnOp& op : request->ops()) {
      if (op.has_put()) {
        batch.ops.push_back(PutParamsOf(op.put()));
      } else {
        batch.ops.push_back(DeleteParamsOf(op.delete_()));
      }
    }
    auto outcome = Write(request->has_fence() ? &request->fence() : nullptr,
                         std::move(batch), deadline);
    if (!outcome.ok()) return outcome.status();
    for (const CachedEntry& entry : outcome->puts) {
      FillEntry(entry, true, response->add_entries());
    }
    return absl::OkStatus();
  });
  return reactor;
}

grpc::ServerUnaryReactor* ConfigServiceImpl::ListConfig(
    grpc::CallbackServerContext* context, const v1::ListConfigRequest* request,
    v1::ListConfigResponse* response) {
  auto* reactor = context->DefaultReactor();
  std::string after;
  absl::Status valid = absl::OkStatus();
  if (auto parsed = ValidateList(*request); parsed.ok()) {
    after = *std::move(parsed);
  } else {
    valid = parsed.status();
  }
  if (valid.ok()) {
    valid =
        Authorize(options_, *context, "ListConfig", auth::Action::kConfigRead,
                  request->prefix(), /*subtree=*/true);
  }
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  Offload(
      context, reactor, [this, request, response, after](absl::Time deadline) {
        ListParams params;
        params.prefix = request->prefix();
        params.page_size = request->page_size() == 0
                               ? kDefaultPageSize
                               : std::min(request->page_size(), kMaxPageSize);
        params.after = after;
        params.keys_only = request->keys_only();
        params.max_bytes = options_.max_response_bytes;
        auto page = store_.List(params, deadline);
        if (!page.ok()) return page.status();
        for (const auto& entry : page->entries) {
          FillEntry(entry, !params.keys_only, response->add_entries());
        }
        if (page->more && !page->entries.empty()) {
          response->set_next_page_token(
              MakePageToken(page->entries.back().key));
        }
        return absl::OkStatus();
      });
  return reactor;
}

grpc::ServerWriteReactor<v1::WatchConfigResponse>*
ConfigServiceImpl::WatchConfig(grpc::CallbackServerContext* context,
                               const v1::WatchConfigRequest* request) {
  absl::Status valid = ValidateWatch(*request);
  absl::StatusOr<auth::Caller> caller =
      valid.ok() ? auth::Authorize(options_.authorizer, *context, "WatchConfig",
                                   auth::Action::kConfigRead,
                                   {request->key(), request->prefix()})
                 : absl::StatusOr<auth::Caller>(valid);
  if (!caller.ok()) {
    return new RejectingWriteReactor<v1::WatchConfigResponse>(
        ToGrpcStatus(caller.status()));
  }
  // Last, so that a refused request takes no slot; before any backend work.
  const std::string client = QuotaClient(caller->principal(), context->peer());
  auto lease = watch_quota_.Acquire(client);
  if (!lease.ok()) {
    return new RejectingWriteReactor<v1::WatchConfigResponse>(
        ToGrpcStatus(lease.status()));
  }
  const absl::Duration heartbeat =
      HeartbeatInterval(FromProtoDuration(request->heartbeat_interval()),
                        options_.default_heartbeat, options_.min_heartbeat);
  return WatchReactor::Start(
      cache_, timers_, streams_, heartbeat, options_.max_response_bytes,
      *std::move(lease), request->key(), request->prefix(), client,
      [caller = *std::move(caller), key = request->key(),
       prefix = request->prefix()] {
        return caller.Recheck(auth::Action::kConfigRead, {key, prefix});
      });
}

grpc::ServerBidiReactor<v1::HoldKeyRequest, v1::HoldKeyResponse>*
ConfigServiceImpl::HoldKey(grpc::CallbackServerContext* context) {
  // The key comes with the first request: it is authorized then.
  auto caller = auth::Authenticate(options_.authorizer, *context, "HoldKey");
  if (!caller.ok()) {
    return new RejectingBidiReactor<v1::HoldKeyRequest, v1::HoldKeyResponse>(
        ToGrpcStatus(caller.status()));
  }
  const std::string client = QuotaClient(caller->principal(), context->peer());
  return StartHoldKey({store_, workers_, timers_, streams_, options_,
                       held_keys_, held_key_streams_},
                      *std::move(caller), client);
}

}  // namespace warren::config
