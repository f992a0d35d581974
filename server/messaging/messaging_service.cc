#include "server/messaging/messaging_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "server/common/client_quota.h"
#include "server/common/duration.h"
#include "server/common/grpc_status.h"
#include "server/common/logging.h"
#include "server/common/mutex.h"
#include "server/common/rejecting_reactors.h"
#include "server/common/stream_heartbeat.h"
#include "server/common/stream_lifetime.h"
#include "server/common/stream_writer.h"
#include "server/common/uuid.h"
#include "server/messaging/authorization.h"
#include "server/messaging/call_handler.h"
#include "server/messaging/delay_queues.h"
#include "server/messaging/delay_validation.h"
#include "server/messaging/delivery_view.h"
#include "server/messaging/unsettled_deliveries.h"

namespace warren::messaging {
namespace {

namespace v1 = ::warren::v1;
using google::protobuf::util::TimeUtil;

// What a publish needs before it can be checked against its fence.
absl::Status CanCheckFence(const v1::PublishRequest& request,
                           const MessagingServiceOptions& options) {
  if (request.has_fence() && options.fences == nullptr) {
    return absl::UnimplementedError(
        "fence: this server cannot check fences (no ZooKeeper)");
  }
  return absl::OkStatus();
}

// Checks a publish's fence just before its publish: `done` gets OK while
// it holds, else why not (a refusal is counted). `done` runs on a
// ZooKeeper callback thread, never inline; synced first, since nothing
// else backs the check (see ResolveSynced). Every form of publish with a
// fence goes through it (a batch form would check each fenced message and
// keep the order, as PublishStream does).
void CheckFence(fence::FenceResolver& fences, const v1::Fence& fence,
                absl::AnyInvocable<void(absl::Status)> done) {
  fences.ResolveSynced(
      fence, [&fences, done = std::move(done)](
                 absl::StatusOr<fence::HeldFence> held) mutable {
        // The resolver's only FAILED_PRECONDITION: the fence does not hold.
        if (held.status().code() == absl::StatusCode::kFailedPrecondition) {
          fences.CountRejection(fence::RejectionSite::kPublish);
        }
        done(held.status());
      });
}

// ---------------------------------------------------------------------------

class PublishStreamReactor final
    : public grpc::ServerBidiReactor<v1::PublishStreamRequest,
                                     v1::PublishStreamResponse>,
      public EndableStream,
      public std::enable_shared_from_this<PublishStreamReactor> {
 public:
  PublishStreamReactor(DelayQueues& amqp,
                       const MessagingServiceOptions& options,
                       absl::Time call_deadline, auth::Caller caller)
      : EndableStream(
            "server is shutting down; publish again elsewhere with the same "
            "message ids"),
        amqp_(amqp),
        options_(options),
        call_deadline_(call_deadline),
        caller_(std::move(caller)) {}

  static PublishStreamReactor* Start(DelayQueues& amqp, StreamRegistry& streams,
                                     const MessagingServiceOptions& options,
                                     absl::Time call_deadline,
                                     auth::Caller caller,
                                     const std::string& client) {
    auto reactor = std::make_shared<PublishStreamReactor>(
        amqp, options, call_deadline, std::move(caller));
    // Each message is checked on its own; the stream itself only needs its
    // caller's token to stay valid.
    if (reactor->lifetime_.Begin(
            reactor, streams, client,
            [caller = reactor->caller_] { return caller.Reauthenticate(); })) {
      warren::MutexLock lock(&reactor->mu_);
      reactor->MaybeReadLocked();
    }
    return reactor.get();
  }

  void OnReadDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    reading_ = false;
    if (!ok) {
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    const uint64_t sequence = request_.sequence();
    absl::Status valid =
        request_.has_message()
            ? ValidatePublish(request_.message(), options_, "message.")
            : absl::InvalidArgumentError("message is required");
    // Per message: a denied one gets PERMISSION_DENIED, the stream goes on.
    if (valid.ok()) valid = CanCheckFence(request_.message(), options_);
    if (valid.ok()) {
      valid = CheckAll(caller_, PublishRequirements(request_.message()));
    }
    if (!valid.ok()) {
      v1::PublishStreamResponse response;
      response.set_sequence(sequence);
      response.set_message_id(request_.message().message_id());
      response.set_code(static_cast<int32_t>(valid.code()));
      response.set_error_message(std::string(valid.message()));
      writes_.Push(std::move(response));
      writes_.MaybeWrite(this);
      MaybeReadLocked();
      return;
    }
    ++in_flight_;
    if (!request_.message().has_fence() && pending_.empty()) {
      // The common case: nothing to wait for.
      PublishLocked(sequence, ToOutgoing(request_.message()),
                    FromProtoDuration(request_.message().delay()));
      MaybeReadLocked();
      return;
    }
    auto pending = std::make_shared<Pending>();
    pending->sequence = sequence;
    pending->message = ToOutgoing(request_.message());
    pending->delay = FromProtoDuration(request_.message().delay());
    if (request_.message().has_fence()) {
      pending->checked = false;
      CheckFence(*options_.fences, request_.message().fence(),
                 [weak = weak_from_this(), pending](absl::Status held) {
                   auto self = weak.lock();
                   if (!self) return;
                   warren::MutexLock lock(&self->mu_);
                   pending->checked = true;
                   pending->fence = std::move(held);
                   self->PublishCheckedLocked();
                 });
    }
    pending_.push_back(std::move(pending));
    PublishCheckedLocked();
  }

  void OnWriteDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (!writes_.WriteDone(this, ok)) return;
    writes_.MaybeWrite(this);
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void OnCancel() override { EndStream(grpc::Status::CANCELLED); }

  void OnDone() override {
    {
      warren::MutexLock lock(&mu_);
      done_ = true;
    }
    lifetime_.End();
  }

 private:
  // A message read and not yet handed to the broker: an unfenced one is
  // ready at once, a fenced one once its fence was checked.
  struct Pending {
    uint64_t sequence = 0;
    amqp::OutgoingMessage message;
    absl::Duration delay;
    bool checked = true;
    absl::Status fence;
  };

  // Hands the messages at the front of the queue whose checks are done to
  // the broker, in the order they were read; answers those whose fence did
  // not hold.
  void PublishCheckedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    while (!pending_.empty() && pending_.front()->checked) {
      std::shared_ptr<Pending> next = std::move(pending_.front());
      pending_.pop_front();
      if (done_ || writes_.finishing()) {
        // Nobody would learn the outcome.
        --in_flight_;
        continue;
      }
      if (!next->fence.ok()) {
        --in_flight_;
        RespondLocked(next->sequence, next->message.message_id, next->fence);
        continue;
      }
      PublishLocked(next->sequence, std::move(next->message), next->delay);
    }
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void PublishLocked(uint64_t sequence, amqp::OutgoingMessage message,
                     absl::Duration delay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string id = message.message_id;
    const absl::Time deadline =
        std::min(call_deadline_, absl::Now() + options_.operation_timeout);
    amqp_.Publish(std::move(message), delay, deadline,
                  [weak = weak_from_this(), sequence, id](absl::Status status) {
                    if (auto self = weak.lock()) {
                      self->OnConfirmed(sequence, id, status);
                    }
                  });
  }

  void OnConfirmed(uint64_t sequence, const std::string& id,
                   const absl::Status& status) {
    warren::MutexLock lock(&mu_);
    --in_flight_;
    if (done_ || writes_.finishing()) return;
    RespondLocked(sequence, id, status);
    MaybeReadLocked();
    MaybeFinishLocked();
  }

  void RespondLocked(uint64_t sequence, const std::string& id,
                     const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::PublishStreamResponse response;
    response.set_sequence(sequence);
    response.set_message_id(id);
    response.set_code(static_cast<int32_t>(status.code()));
    if (!status.ok()) response.set_error_message(std::string(status.message()));
    writes_.Push(std::move(response));
    writes_.MaybeWrite(this);
  }

  // Reads the next request while the window has room: unconfirmed
  // publishes and unwritten responses both count.
  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || reads_done_ || writes_.finishing()) return;
    if (in_flight_ + writes_.queued() >= options_.publish_window) return;
    reading_ = true;
    StartRead(&request_);
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reads_done_ && in_flight_ == 0 && writes_.idle()) {
      FinishLocked(grpc::Status::OK);
    }
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writes_.Finish(this, std::move(status));
  }

  void EndStream(grpc::Status status) override {
    warren::MutexLock lock(&mu_);
    FinishLocked(std::move(status));
  }

  // Publishes directly or, for a delayed message, through a delay queue.
  DelayQueues& amqp_;
  const MessagingServiceOptions& options_;
  const absl::Time call_deadline_;
  const auth::Caller caller_;
  StreamLifetime lifetime_;

  warren::Mutex mu_;
  v1::PublishStreamRequest request_ ABSL_GUARDED_BY(mu_);
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  // Read and not yet confirmed (or refused): pending_ and the broker's.
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::shared_ptr<Pending>> pending_ ABSL_GUARDED_BY(mu_);
  StreamWriter<v1::PublishStreamResponse> writes_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

class SubscribeReactor final
    : public grpc::ServerBidiReactor<v1::SubscribeRequest,
                                     v1::SubscribeResponse>,
      public amqp::SubscriptionSink,
      public EndableStream,
      public std::enable_shared_from_this<SubscribeReactor> {
 public:
  SubscribeReactor(amqp::AmqpBroker& amqp, DelayQueues& delays,
                   TimerQueue& timers, const MessagingServiceOptions& options,
                   std::atomic<int64_t>& unacked, auth::Caller caller)
      : EndableStream("server is shutting down; subscribe again"),
        amqp_(amqp),
        delays_(delays),
        options_(options),
        unacked_(unacked),
        caller_(std::move(caller)),
        heartbeat_(timers, mu_) {}

  static SubscribeReactor* Start(amqp::AmqpBroker& amqp, DelayQueues& delays,
                                 TimerQueue& timers, StreamRegistry& streams,
                                 const MessagingServiceOptions& options,
                                 std::atomic<int64_t>& unacked,
                                 auth::Caller caller,
                                 const std::string& client) {
    auto reactor = std::make_shared<SubscribeReactor>(
        amqp, delays, timers, options, unacked, std::move(caller));
    if (reactor->lifetime_.Begin(reactor, streams, client)) {
      warren::MutexLock lock(&reactor->mu_);
      reactor->StartRead(&reactor->request_);
    }
    return reactor.get();
  }

  void OnReadDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (writes_.finishing()) return;
    if (!ok) {
      // The client closed its side: no acks can come any more, so nothing
      // more is delivered; what it did not ack goes back to the queue.
      FinishLocked(grpc::Status::OK);
      return;
    }
    switch (request_.request_case()) {
      case v1::SubscribeRequest::kStart:
        HandleStartLocked();
        break;
      case v1::SubscribeRequest::kAck:
        HandleSettleLocked(request_.ack().delivery_ids(), amqp::Settle::kAck,
                           "ack");
        break;
      case v1::SubscribeRequest::kNack:
        HandleNackLocked(request_.nack());
        break;
      default:
        FinishLocked(
            grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "a request must hold one of start, ack or nack"));
        break;
    }
    if (!writes_.finishing()) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (writes_.WriteDone(this, ok)) writes_.MaybeWrite(this);
  }

  void OnCancel() override { EndStream(grpc::Status::CANCELLED); }

  void OnDone() override {
    {
      warren::MutexLock lock(&mu_);
      done_ = true;
      heartbeat_.Stop();
      UnsubscribeLocked();
      unacked_.fetch_sub(static_cast<int64_t>(unsettled_.size()));
      unsettled_.Clear();
    }
    lifetime_.End();  // the AMQP client may hold the sink a little longer
  }

  // amqp::SubscriptionSink, on the AMQP I/O thread.
  void OnSubscribed(const std::string& queue) override {
    warren::MutexLock lock(&mu_);
    if (done_ || writes_.finishing()) return;
    queue_ = queue;
    v1::SubscribeResponse response;
    response.mutable_subscribed()->set_queue(queue);
    PushLocked(std::move(response));
  }

  void OnDelivery(amqp::Delivery d) override {
    warren::MutexLock lock(&mu_);
    if (done_ || writes_.finishing()) return;
    // An existing queue consumed as it is may be a stream: its deliveries
    // say so (then a nack only settles, and a retry is refused).
    if (d.stream_offset.has_value()) on_stream_queue_ = true;
    if (BelowStreamStart(d, stream_start_)) {
      if (subscribed_) {
        amqp_.Settle(subscription_, d.delivery_tag, amqp::Settle::kAck);
      }
      return;
    }
    RestoreRetriedOrigin(queue_, d);
    d.delivery_count += RetriesOf(d);
    // Kept whole (with the retry headers) in case it is nacked with
    // retry_after; the subscriber sees the bookkeeping as fields instead.
    unsettled_.Add(d);
    unacked_.fetch_add(1);
    d.headers.erase(std::remove_if(d.headers.begin(), d.headers.end(),
                                   [](const auto& header) {
                                     return IsRetryHeader(header.first);
                                   }),
                    d.headers.end());
    v1::SubscribeResponse response;
    ToV1Delivery(std::move(d), *response.mutable_delivery());
    PushLocked(std::move(response));
  }

  void OnEnded(absl::Status status) override {
    warren::MutexLock lock(&mu_);
    subscribed_ = false;  // the broker ended it: nothing to unsubscribe
    if (done_) return;
    FinishLocked(ToGrpcStatus(status));
  }

 private:
  void HandleStartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (started_) {
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "start was sent twice on one stream"));
      return;
    }
    auto spec = ToSubscribeSpec(request_.start(), options_);
    if (!spec.ok()) {
      FinishLocked(ToGrpcStatus(spec.status()));
      return;
    }
    if (absl::Status allowed =
            CheckAll(caller_, SubscribeRequirements(request_.start()));
        !allowed.ok()) {
      FinishLocked(ToGrpcStatus(allowed));
      return;
    }
    started_ = true;
    retry_target_.quorum = spec->queue.quorum;
    stream_start_ = spec->stream_start;
    on_stream_queue_ = spec->queue.stream;
    delivery_limit_ = request_.start().queue_options().delivery_limit();
    // A reload that takes a grant it needed (or the token) away ends it.
    lifetime_.SetReauthorizer(
        [caller = caller_,
         requirements = SubscribeRequirements(request_.start())] {
          if (absl::Status valid = caller.Reauthenticate(); !valid.ok()) {
            return valid;
          }
          return CheckAll(caller, requirements);
        });
    subscribed_ = true;
    subscription_ = amqp_.Subscribe(*std::move(spec), shared_from_this());
    heartbeat_.StartIdle(
        weak_from_this(),
        HeartbeatInterval(
            FromProtoDuration(request_.start().heartbeat_interval()),
            options_.default_heartbeat, options_.min_heartbeat),
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          SendHeartbeatLocked();  // under mu_ (stream_heartbeat.h)
        });
  }

  template <typename Ids>
  void HandleSettleLocked(const Ids& ids, amqp::Settle how,
                          absl::string_view verb)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!CheckSettleLocked(ids, verb)) return;
    for (uint64_t id : ids) {
      const std::optional<amqp::Delivery> kept = unsettled_.Take(id);
      // A stream keeps every message and cannot requeue one: a nack there
      // only settles the delivery.
      amqp::Settle settle = on_stream_queue_ ? amqp::Settle::kAck : how;
      // A retry through a delay queue restarts the broker's own count, so
      // the limit is also applied here, to the count that includes retries.
      if (settle == amqp::Settle::kRequeue && delivery_limit_ > 0 &&
          kept.has_value() && kept->delivery_count + 1 >= delivery_limit_) {
        settle = amqp::Settle::kReject;
      }
      if (subscribed_) amqp_.Settle(subscription_, id, settle);
    }
    unacked_.fetch_sub(static_cast<int64_t>(ids.size()));
  }

  void HandleNackLocked(const v1::Nack& nack)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const amqp::Settle how =
        nack.requeue() ? amqp::Settle::kRequeue : amqp::Settle::kReject;
    if (!nack.has_retry_after()) {
      HandleSettleLocked(nack.delivery_ids(), how, "nack");
      return;
    }
    if (absl::Status valid = ValidateRetryAfter(nack, on_stream_queue_,
                                                options_.max_retry_delay);
        !valid.ok()) {
      FinishLocked(ToGrpcStatus(valid));
      return;
    }
    const absl::Duration after = FromProtoDuration(nack.retry_after());
    if (after <= absl::ZeroDuration()) {
      HandleSettleLocked(nack.delivery_ids(), how, "nack");
      return;
    }
    if (!CheckSettleLocked(nack.delivery_ids(), "nack")) return;
    retry_target_.queue = queue_;
    for (uint64_t id : nack.delivery_ids()) {
      std::optional<amqp::Delivery> kept = unsettled_.Take(id);
      unacked_.fetch_sub(1);
      if (!subscribed_ || !kept.has_value()) continue;
      // The last delivery the limit allows: dead-lettered, as the broker
      // would at its own limit.
      if (delivery_limit_ > 0 && kept->delivery_count + 1 >= delivery_limit_) {
        amqp_.Settle(subscription_, id, amqp::Settle::kReject);
        continue;
      }
      // Acked only once the copy is safe in the retry queue; if it cannot
      // be put there, the original goes back to its queue at once.
      delays_.Retry(
          *kept, retry_target_, after, absl::Now() + options_.operation_timeout,
          [&amqp = amqp_, subscription = subscription_,
           id](absl::Status stored) {
            if (!stored.ok()) {
              WARREN_LOG_WARN("retry of delivery {} not stored, requeued: {}",
                              id, stored.ToString());
            }
            amqp.Settle(
                subscription, id,
                stored.ok() ? amqp::Settle::kAck : amqp::Settle::kRequeue);
          });
    }
  }

  // All or nothing: every id must be outstanding, once; otherwise the
  // stream ends and nothing is settled.
  template <typename Ids>
  bool CheckSettleLocked(const Ids& ids, absl::string_view verb)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!started_) {
      FinishLocked(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat(verb,
                       " before start: the first request must be start")));
      return false;
    }
    if (ids.empty()) {
      FinishLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                absl::StrCat(verb, ".delivery_ids is empty")));
      return false;
    }
    // All or nothing: check every id before settling any.
    std::set<uint64_t> seen;
    for (uint64_t id : ids) {
      if (!unsettled_.Contains(id) || !seen.insert(id).second) {
        FinishLocked(grpc::Status(
            grpc::StatusCode::INVALID_ARGUMENT,
            absl::StrCat(verb, ".delivery_ids: delivery_id ", id,
                         " was never delivered on this stream or is already "
                         "settled")));
        return false;
      }
    }
    return true;
  }

  void PushLocked(v1::SubscribeResponse response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    heartbeat_.NoteWrite();
    writes_.Push(std::move(response));
    writes_.MaybeWrite(this);
  }

  void UnsubscribeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!subscribed_) return;
    subscribed_ = false;
    amqp_.Unsubscribe(subscription_);
  }

  void FinishLocked(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writes_.finishing()) return;
    // Closing the channel hands every unacked delivery back to the queue.
    UnsubscribeLocked();
    writes_.Finish(this, std::move(status));
  }

  void EndStream(grpc::Status status) override {
    warren::MutexLock lock(&mu_);
    FinishLocked(std::move(status));
  }

  // After an interval in which nothing else was written.
  void SendHeartbeatLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writes_.writing() || writes_.finishing()) return;
    v1::SubscribeResponse response;
    *response.mutable_heartbeat()->mutable_server_time() =
        TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
    PushLocked(std::move(response));
  }

  amqp::AmqpBroker& amqp_;
  DelayQueues& delays_;
  const MessagingServiceOptions& options_;
  std::atomic<int64_t>& unacked_;  // the service's, across streams
  const auth::Caller caller_;
  StreamLifetime lifetime_;

  warren::Mutex mu_;
  StreamHeartbeat heartbeat_ ABSL_GUARDED_BY(mu_);
  v1::SubscribeRequest request_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool subscribed_ ABSL_GUARDED_BY(mu_) = false;
  amqp::SubscriptionId subscription_ ABSL_GUARDED_BY(mu_) = 0;
  // Delivered and not yet settled: bounded by the prefetch.
  UnsettledDeliveries unsettled_ ABSL_GUARDED_BY(mu_);
  // The queue consumed (the broker's name for a server-named one).
  std::string queue_ ABSL_GUARDED_BY(mu_);
  RetryTarget retry_target_ ABSL_GUARDED_BY(mu_);
  // Where a stream subscription asked to start: nothing below is delivered.
  std::optional<amqp::StreamStart> stream_start_ ABSL_GUARDED_BY(mu_);
  bool on_stream_queue_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t delivery_limit_ ABSL_GUARDED_BY(mu_) = 0;
  StreamWriter<v1::SubscribeResponse> writes_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::Status ValidatePublish(const v1::PublishRequest& request,
                             const MessagingServiceOptions& options,
                             absl::string_view field) {
  auto name = [&](absl::string_view f) { return absl::StrCat(field, f); };
  for (const auto& [value, f] :
       {std::pair<const std::string&, const char*>{request.exchange(),
                                                   "exchange"},
        {request.routing_key(), "routing_key"},
        {request.content_type(), "content_type"},
        {request.message_id(), "message_id"},
        {request.reply_to(), "reply_to"},
        {request.correlation_id(), "correlation_id"}}) {
    if (auto s = CheckShort(value, name(f)); !s.ok()) return s;
  }
  if (auto s = CheckExchangeName(request.exchange(), name("exchange"));
      !s.ok()) {
    return s;
  }
  if (request.payload().size() > options.max_payload_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        name("payload"), " is ", request.payload().size(),
        " bytes; this server accepts at most ", options.max_payload_bytes));
  }
  size_t header_bytes = 0;
  for (const auto& [key, value] : request.headers()) {
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name("headers"), " has an empty key"));
    }
    if (auto s = CheckShort(key, absl::StrCat(name("headers"), " key '",
                                              key.substr(0, 32), "'"));
        !s.ok()) {
      return s;
    }
    // RabbitMQ reads these as extra routing keys (sender-selected
    // distribution) and closes the channel over a string-typed one: the
    // confirm channel every publisher shares.
    // The fence headers are the server's word that a fence held: a client
    // must not be able to forge them (nor a variant a consumer might read
    // case-insensitively).
    if (absl::EqualsIgnoreCase(key, fence::kFenceHeader) ||
        absl::EqualsIgnoreCase(key, fence::kFencingTokenHeader)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name("headers"), " key '", key,
          "' is reserved: the server sets it on fenced publishes (set ",
          name("fence"), " instead)"));
    }
    if (absl::EqualsIgnoreCase(key, kRetriesHeader) ||
        absl::EqualsIgnoreCase(key, kRetryExchangeHeader) ||
        absl::EqualsIgnoreCase(key, kRetryRoutingKeyHeader)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name("headers"), " key '", key,
          "' is reserved: the server sets it on retried messages"));
    }
    if (key == "CC" || key == "BCC") {
      return absl::InvalidArgumentError(
          absl::StrCat(name("headers"), " key '", key,
                       "' is reserved: RabbitMQ routes by it (sender-selected "
                       "distribution)"));
    }
    header_bytes += key.size() + value.size();
  }
  if (header_bytes > options.max_header_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        name("headers"), " hold ", header_bytes,
        " bytes; this server accepts at most ", options.max_header_bytes));
  }
  if (request.priority() > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        name("priority"), " is ", request.priority(), "; at most 255"));
  }
  if (request.has_ttl()) {
    const absl::Duration ttl = FromProtoDuration(request.ttl());
    if (ttl < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name("ttl"), " must not be negative"));
    }
  }
  if (auto s = ValidatePublishDelay(request, options.max_publish_delay,
                                    name("delay"));
      !s.ok()) {
    return s;
  }
  if (request.has_fence()) {
    return fence::ValidateFence(request.fence(), name("fence"));
  }
  return absl::OkStatus();
}

amqp::OutgoingMessage ToOutgoing(const v1::PublishRequest& request) {
  amqp::OutgoingMessage m;
  m.exchange = request.exchange();
  m.routing_key = request.routing_key();
  m.payload = request.payload();
  for (const auto& [key, value] : request.headers()) {
    m.headers.emplace_back(key, value);
  }
  if (request.has_fence()) {
    m.headers.emplace_back(fence::kFenceHeader,
                           fence::OwnerName(request.fence()));
    m.headers.emplace_back(fence::kFencingTokenHeader,
                           absl::StrCat(request.fence().fencing_token()));
  }
  m.content_type = request.content_type();
  m.message_id =
      request.message_id().empty() ? NewUuid() : request.message_id();
  m.persistent = !request.transient();
  if (request.priority() > 0) {
    m.priority = static_cast<uint8_t>(request.priority());
  }
  if (request.has_ttl()) m.ttl = FromProtoDuration(request.ttl());
  m.mandatory = request.mandatory();
  m.reply_to = request.reply_to();
  m.correlation_id = request.correlation_id();
  return m;
}

MessagingServiceImpl::MessagingServiceImpl(amqp::AmqpBroker& amqp,
                                           TimerQueue& timers,
                                           StreamRegistry& streams,
                                           MessagingServiceOptions options)
    : amqp_(amqp),
      timers_(timers),
      streams_(streams),
      options_(options),
      delays_(amqp, options.delay_queues),
      calls_(std::make_unique<CallHandler>(amqp_, options_)) {}

MessagingServiceImpl::~MessagingServiceImpl() = default;

grpc::ServerUnaryReactor* MessagingServiceImpl::Call(
    grpc::CallbackServerContext* context, const v1::CallRequest* request,
    v1::CallResponse* response) {
  return calls_->Call(context, request, response);
}

grpc::ServerUnaryReactor* MessagingServiceImpl::Publish(
    grpc::CallbackServerContext* context, const v1::PublishRequest* request,
    v1::PublishResponse* response) {
  auto* reactor = context->DefaultReactor();
  // Validated before authorized: a refusal never echoes an oversized name.
  absl::Status valid = ValidatePublish(*request, options_);
  if (valid.ok()) valid = CanCheckFence(*request, options_);
  if (valid.ok()) {
    auto caller = auth::Authenticate(options_.authorizer, *context, "Publish");
    valid = caller.ok() ? CheckAll(*caller, PublishRequirements(*request))
                        : caller.status();
  }
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  amqp::OutgoingMessage message = ToOutgoing(*request);
  response->set_message_id(message.message_id);
  auto publish =
      [this, reactor,
       deadline = OperationDeadline(*context, options_.operation_timeout),
       delay =
           FromProtoDuration(request->delay())](amqp::OutgoingMessage message) {
        delays_.Publish(std::move(message), delay, deadline,
                        [reactor](absl::Status status) {
                          reactor->Finish(ToGrpcStatus(status));
                        });
      };
  if (!request->has_fence()) {
    publish(std::move(message));
    return reactor;
  }
  CheckFence(*options_.fences, request->fence(),
             [publish, reactor,
              message = std::move(message)](absl::Status held) mutable {
               if (!held.ok()) {
                 reactor->Finish(ToGrpcStatus(held));
                 return;
               }
               publish(std::move(message));
             });
  return reactor;
}

grpc::ServerBidiReactor<v1::PublishStreamRequest, v1::PublishStreamResponse>*
MessagingServiceImpl::PublishStream(grpc::CallbackServerContext* context) {
  auto caller =
      auth::Authenticate(options_.authorizer, *context, "PublishStream");
  if (!caller.ok()) {
    return new RejectingBidiReactor<v1::PublishStreamRequest,
                                    v1::PublishStreamResponse>(
        ToGrpcStatus(caller.status()));
  }
  const auto theirs = context->deadline();
  const absl::Time call_deadline =
      theirs == std::chrono::system_clock::time_point::max()
          ? absl::InfiniteFuture()
          : absl::FromChrono(theirs);
  const std::string client = QuotaClient(caller->principal(), context->peer());
  return PublishStreamReactor::Start(delays_, streams_, options_, call_deadline,
                                     *std::move(caller), client);
}

grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>*
MessagingServiceImpl::Subscribe(grpc::CallbackServerContext* context) {
  auto caller = auth::Authenticate(options_.authorizer, *context, "Subscribe");
  if (!caller.ok()) {
    return new RejectingBidiReactor<v1::SubscribeRequest,
                                    v1::SubscribeResponse>(
        ToGrpcStatus(caller.status()));
  }
  const std::string client = QuotaClient(caller->principal(), context->peer());
  return SubscribeReactor::Start(amqp_, delays_, timers_, streams_, options_,
                                 unacked_deliveries_, *std::move(caller),
                                 client);
}

}  // namespace warren::messaging
