#include "warren/client/subscriber.h"

#include <deque>
#include <exception>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "server/common/mutex.h"
#include "src/internal.h"
#include "warren/client/channel.h"
#include "warren/client/stream_offset.h"

namespace warren::client {

namespace v1 = ::warren::v1;

namespace {

// Where RetryAfter keeps its delay in a Status (an absl::Status payload).
constexpr char kRetryAfterPayload[] = "type.warren.dev/client.RetryAfter";

bool IsStreamQueue(const v1::SubscribeStart& start) {
  return start.queue_options().queue_type() == v1::QUEUE_TYPE_STREAM;
}

}  // namespace

absl::Status RetryAfter(absl::Duration delay, absl::Status error) {
  if (error.ok()) error = absl::UnavailableError("retry later");
  error.SetPayload(kRetryAfterPayload, absl::Cord(absl::FormatDuration(delay)));
  return error;
}

std::optional<absl::Duration> RetryDelayOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kRetryAfterPayload);
  absl::Duration delay;
  if (!payload.has_value() ||
      !absl::ParseDuration(std::string(*payload), &delay)) {
    return std::nullopt;
  }
  return delay;
}

// Everything of a Subscriber behind its handle: the threads hold `this`, so
// it stays at one address for its whole life.
class Subscriber::Impl {
 public:
  Impl(std::shared_ptr<grpc::Channel> channel, SubscriberOptions options,
       DeliveryHandler handler);
  ~Impl() { Stop(); }

  absl::Status AwaitFirstSubscription();
  void Stop();
  std::string queue() const;
  int subscriptions() const;
  std::optional<uint64_t> last_stream_offset() const;
  absl::Status status() const;

 private:
  // One Subscribe stream. Delivery ids are only valid on the stream that
  // delivered them, so every task keeps its session, and a settlement for a
  // closed session is dropped (the server requeued that delivery already).
  struct Session
      : internal::BidiSession<v1::SubscribeRequest, v1::SubscribeResponse> {
    bool silent = false;     // guarded by Impl::mu_
    bool responded = false;  // guarded by Impl::mu_
  };
  struct Task {
    std::shared_ptr<Session> session;
    v1::Delivery delivery;
  };

  void ReadLoop();
  // Runs one stream until it ends; answers how it ended.
  absl::Status RunSession(const std::shared_ptr<Session>& session);
  void WorkLoop();
  void OnSilence(uint64_t generation);
  // The settlement of a delivery whose handler answered `result`.
  v1::SubscribeRequest SettlementFor(const v1::Delivery& delivery,
                                     const absl::Status& result) const;

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::MessagingService::Stub> stub_;
  const SubscriberOptions options_;
  const DeliveryHandler handler_;
  const bool stream_queue_;

  mutable warren::Mutex mu_;
  bool stop_called_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // no new handlers
  bool reader_done_ ABSL_GUARDED_BY(mu_) = false;
  bool workers_exit_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::string queue_ ABSL_GUARDED_BY(mu_);
  int subscriptions_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<Session> current_ ABSL_GUARDED_BY(mu_);
  uint64_t silence_generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  // Stream queues: the offset of the last delivery a handler was given.
  // Deliveries reach the handlers in offset order (one FIFO of tasks), so a
  // new stream resumes after it without a gap or a repeat.
  std::optional<uint64_t> last_stream_offset_ ABSL_GUARDED_BY(mu_);

  std::thread reader_;
  std::vector<std::thread> workers_;
  // Last: destroyed first, so its callback never sees a dead Impl.
  std::unique_ptr<internal::Watchdog> watchdog_;
};

absl::StatusOr<std::unique_ptr<Subscriber>> Subscriber::Start(
    std::shared_ptr<grpc::Channel> channel, SubscriberOptions options,
    DeliveryHandler handler) {
  if (options.max_in_flight == 0) {
    return absl::InvalidArgumentError("max_in_flight must be at least 1");
  }
  if (!handler) return absl::InvalidArgumentError("handler is empty");
  if (options.retry_after < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("retry_after must not be negative");
  }
  if (options.retry_after > absl::ZeroDuration() &&
      IsStreamQueue(options.start)) {
    return absl::InvalidArgumentError(
        "retry_after does not apply to a stream queue (a stream keeps every "
        "message; replay it by offset instead)");
  }
  auto impl = std::make_unique<Impl>(std::move(channel), std::move(options),
                                     std::move(handler));
  const absl::Status failed = impl->AwaitFirstSubscription();
  if (!failed.ok()) return failed;  // ~Impl stops it
  return std::unique_ptr<Subscriber>(new Subscriber(std::move(impl)));
}

Subscriber::Subscriber(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Subscriber::~Subscriber() = default;
void Subscriber::Stop() { impl_->Stop(); }
std::string Subscriber::queue() const { return impl_->queue(); }
int Subscriber::subscriptions() const { return impl_->subscriptions(); }
std::optional<uint64_t> Subscriber::last_stream_offset() const {
  return impl_->last_stream_offset();
}
absl::Status Subscriber::status() const { return impl_->status(); }

absl::Status Subscriber::Impl::AwaitFirstSubscription() {
  return internal::AwaitFirstLoad(
      mu_,
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return subscriptions_ > 0; },
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return reader_done_; },
      &status_, options_.start_timeout, "not subscribed");
}

Subscriber::Impl::Impl(std::shared_ptr<grpc::Channel> channel,
                       SubscriberOptions options, DeliveryHandler handler)
    : channel_(std::move(channel)),
      stub_(v1::MessagingService::NewStub(channel_)),
      options_(std::move(options)),
      handler_(std::move(handler)),
      stream_queue_(IsStreamQueue(options_.start)) {
  watchdog_ = std::make_unique<internal::Watchdog>(
      [this](uint64_t generation) { OnSilence(generation); });
  for (uint32_t i = 0; i < options_.max_in_flight; ++i) {
    workers_.emplace_back([this] { WorkLoop(); });
  }
  reader_ = std::thread([this] { ReadLoop(); });
}

void Subscriber::Impl::Stop() {
  std::shared_ptr<Session> session;
  {
    warren::MutexLock lock(&mu_);
    if (stop_called_) {
      // Another thread stops it: wait until that is done.
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return workers_exit_;
      };
      mu_.Await(absl::Condition(&done));
      return;
    }
    stop_called_ = true;
    stopping_ = true;
    // Running handlers finish and settle; queued tasks are nacked by the
    // workers without running.
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return running_ == 0 && tasks_.empty();
    };
    mu_.Await(absl::Condition(&idle));
    session = current_;
    // A stream that has not answered yet may still wait for the channel,
    // its first write blocked: it has nothing to settle, so it is cancelled.
    if (session != nullptr && !session->responded) {
      session->context.TryCancel();
      session = nullptr;
    }
  }
  // Half-close: the server applies the acks it read before, then ends the
  // stream with OK and requeues whatever is still unacked.
  if (session != nullptr) session->CloseWrites();
  {
    warren::MutexLock lock(&mu_);
    auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return reader_done_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ended), options_.stop_timeout) &&
        current_ != nullptr) {
      current_->context.TryCancel();
    }
  }
  reader_.join();
  {
    warren::MutexLock lock(&mu_);
    workers_exit_ = true;
  }
  for (auto& worker : workers_) worker.join();
}

std::string Subscriber::Impl::queue() const {
  warren::MutexLock lock(&mu_);
  return queue_;
}

int Subscriber::Impl::subscriptions() const {
  warren::MutexLock lock(&mu_);
  return subscriptions_;
}

std::optional<uint64_t> Subscriber::Impl::last_stream_offset() const {
  warren::MutexLock lock(&mu_);
  return last_stream_offset_;
}

absl::Status Subscriber::Impl::status() const {
  warren::MutexLock lock(&mu_);
  return status_;
}

void Subscriber::Impl::ReadLoop() {
  Backoff backoff(options_.backoff);
  for (bool again = false;; again = true) {
    auto session = internal::NewStreamSession(mu_, &stopping_, &current_,
                                              *channel_, again);
    if (session == nullptr) break;
    session->stream = stub_->Subscribe(&session->context);
    const absl::Status ended = RunSession(session);
    warren::MutexLock lock(&mu_);
    if (session->responded) backoff.Reset();
    current_ = nullptr;
    // Tasks of the dead stream cannot be settled any more; the server has
    // returned them to the queue.
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      it = it->session == session ? tasks_.erase(it) : std::next(it);
    }
    if (stopping_) break;
    if (!internal::ResubscribeAfter(mu_, &stopping_, ended,
                                    /*may_resubscribe=*/true, backoff,
                                    options_.on_stream_error, &status_)) {
      break;
    }
  }
  warren::MutexLock lock(&mu_);
  reader_done_ = true;
}

absl::Status Subscriber::Impl::RunSession(
    const std::shared_ptr<Session>& session) {
  const absl::Duration silence = 3 * options_.heartbeat_interval;
  auto arm = [&] {
    warren::MutexLock lock(&mu_);
    silence_generation_ = watchdog_->Arm(silence);
  };
  v1::SubscribeRequest start;
  *start.mutable_start() = options_.start;
  start.mutable_start()->set_max_in_flight(options_.max_in_flight);
  *start.mutable_start()->mutable_heartbeat_interval() =
      internal::ToProto(options_.heartbeat_interval);
  {
    warren::MutexLock lock(&mu_);
    if (last_stream_offset_.has_value()) {
      *start.mutable_start()->mutable_offset() =
          ResumeAfter(*last_stream_offset_);
    }
  }
  arm();
  if (session->Write(start)) {
    v1::SubscribeResponse response;
    while (session->stream->Read(&response)) {
      {
        // Any message proves the stream alive.
        warren::MutexLock lock(&mu_);
        session->responded = true;
        silence_generation_ = watchdog_->Arm(silence);
      }
      switch (response.response_case()) {
        case v1::SubscribeResponse::kSubscribed: {
          {
            warren::MutexLock lock(&mu_);
            queue_ = response.subscribed().queue();
            ++subscriptions_;
          }
          if (options_.on_subscribed) {
            options_.on_subscribed(response.subscribed().queue());
          }
          break;
        }
        case v1::SubscribeResponse::kDelivery: {
          bool repeated;
          {
            warren::MutexLock lock(&mu_);
            // While stopping, a new delivery stays unacked: the server
            // requeues it when the stream ends.
            if (stopping_) break;
            // A resumed stream never goes back, whatever the broker's
            // chunks hand out: what a handler had is settled, not handled
            // again.
            repeated =
                stream_queue_ && last_stream_offset_.has_value() &&
                response.delivery().stream_offset() <= *last_stream_offset_;
            if (!repeated) {
              tasks_.push_back(
                  Task{session, std::move(*response.mutable_delivery())});
            }
          }
          if (repeated) {
            v1::SubscribeRequest ack;
            ack.mutable_ack()->add_delivery_ids(
                response.delivery().delivery_id());
            session->Write(ack);
          }
          break;
        }
        default:  // heartbeat
          break;
      }
    }
  }
  watchdog_->Disarm();
  session->CloseWrites();
  absl::Status status = ToStatus(session->stream->Finish());
  warren::MutexLock lock(&mu_);
  if (session->silent) {
    status = absl::DeadlineExceededError(
        absl::StrCat("no message (not even a heartbeat) within ",
                     absl::FormatDuration(silence), "; subscribing again"));
  }
  return status;
}

void Subscriber::Impl::OnSilence(uint64_t generation) {
  warren::MutexLock lock(&mu_);
  if (current_ == nullptr || generation != silence_generation_) return;
  current_->silent = true;
  current_->context.TryCancel();
}

void Subscriber::Impl::WorkLoop() {
  while (true) {
    Task task;
    bool run;
    {
      warren::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return workers_exit_ || !tasks_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
      run = !stopping_;
      ++running_;
      if (run && stream_queue_) {
        last_stream_offset_ = task.delivery.stream_offset();
      }
    }
    v1::SubscribeRequest settle;
    if (run) {
      absl::Status result;
      // No exception may escape a thread of ours: a throwing handler is a
      // failed handler.
      try {
        result = handler_(task.delivery);
      } catch (const std::exception& e) {
        result = absl::InternalError(absl::StrCat("handler threw: ", e.what()));
      } catch (...) {
        result = absl::InternalError("handler threw");
      }
      settle = SettlementFor(task.delivery, result);
    } else {
      settle.mutable_nack()->add_delivery_ids(task.delivery.delivery_id());
      settle.mutable_nack()->set_requeue(true);
    }
    // False when the stream ended meanwhile: nothing to do, see Session.
    task.session->Write(settle);
    task.session.reset();
    warren::MutexLock lock(&mu_);
    --running_;
  }
}

v1::SubscribeRequest Subscriber::Impl::SettlementFor(
    const v1::Delivery& delivery, const absl::Status& result) const {
  v1::SubscribeRequest settle;
  if (result.ok()) {
    settle.mutable_ack()->add_delivery_ids(delivery.delivery_id());
    return settle;
  }
  v1::Nack* nack = settle.mutable_nack();
  nack->add_delivery_ids(delivery.delivery_id());
  nack->set_requeue(options_.requeue_on_error);
  // A stream cannot bring a message back (the server refuses a delay there
  // and ends the stream): its nack only settles.
  if (stream_queue_) return settle;
  const absl::Duration delay =
      RetryDelayOf(result).value_or(options_.retry_after);
  if (delay > absl::ZeroDuration()) {
    *nack->mutable_retry_after() = internal::ToProto(delay);
  }
  return settle;
}

}  // namespace warren::client
