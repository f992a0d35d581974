#include "warren/client/subscriber.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/internal.h"
#include "warren/client/channel.h"

namespace warren::client {

namespace v1 = ::warren::v1;

// One Subscribe stream. Delivery ids are only valid on the stream that
// delivered them, so every task keeps its session, and a settlement for a
// closed session is dropped (the server requeued that delivery already).
struct Subscriber::Session
    : internal::BidiSession<v1::SubscribeRequest, v1::SubscribeResponse> {
  bool silent = false;  // guarded by Subscriber::mu_
};

absl::StatusOr<std::unique_ptr<Subscriber>> Subscriber::Start(
    std::shared_ptr<grpc::Channel> channel, SubscriberOptions options,
    DeliveryHandler handler) {
  if (options.max_in_flight == 0) {
    return absl::InvalidArgumentError("max_in_flight must be at least 1");
  }
  if (!handler) return absl::InvalidArgumentError("handler is empty");
  std::unique_ptr<Subscriber> subscriber(new Subscriber(
      std::move(channel), std::move(options), std::move(handler)));
  Subscriber& s = *subscriber;
  const absl::Status failed = internal::AwaitFirstLoad(
      s.mu_,
      [&s]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return s.subscriptions_ > 0; },
      [&s]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return s.reader_done_; },
      &s.status_, s.options_.start_timeout, "not subscribed");
  if (!failed.ok()) {
    subscriber->Stop();
    return failed;
  }
  return subscriber;
}

Subscriber::Subscriber(std::shared_ptr<grpc::Channel> channel,
                       SubscriberOptions options, DeliveryHandler handler)
    : stub_(v1::MessagingService::NewStub(std::move(channel))),
      options_(std::move(options)),
      handler_(std::move(handler)) {
  watchdog_ = std::make_unique<internal::Watchdog>(
      [this](uint64_t generation) { OnSilence(generation); });
  for (uint32_t i = 0; i < options_.max_in_flight; ++i) {
    workers_.emplace_back([this] { WorkLoop(); });
  }
  reader_ = std::thread([this] { ReadLoop(); });
}

Subscriber::~Subscriber() { Stop(); }

void Subscriber::Stop() {
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

std::string Subscriber::queue() const {
  warren::MutexLock lock(&mu_);
  return queue_;
}

int Subscriber::subscriptions() const {
  warren::MutexLock lock(&mu_);
  return subscriptions_;
}

absl::Status Subscriber::status() const {
  warren::MutexLock lock(&mu_);
  return status_;
}

void Subscriber::ReadLoop() {
  Backoff backoff(options_.backoff);
  while (true) {
    auto session = std::make_shared<Session>();
    session->stream = stub_->Subscribe(&session->context);
    {
      warren::MutexLock lock(&mu_);
      if (stopping_) {
        session->context.TryCancel();
        break;
      }
      current_ = session;
    }
    const int before = subscriptions();
    const absl::Status ended = RunSession(session);
    if (subscriptions() > before) backoff.Reset();
    warren::MutexLock lock(&mu_);
    current_ = nullptr;
    // Tasks of the dead stream cannot be settled any more; the server has
    // returned them to the queue.
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      it = it->session == session ? tasks_.erase(it) : std::next(it);
    }
    if (stopping_) break;
    const bool retry = internal::IsRetryableStreamEnd(ended);
    if (!retry) status_ = ended;
    if (options_.on_stream_error) {
      mu_.Unlock();
      options_.on_stream_error(ended);
      mu_.Lock();
    }
    if (!retry) break;
    if (!internal::SleepUnlessStopped(mu_, &stopping_, backoff.Next())) break;
  }
  warren::MutexLock lock(&mu_);
  reader_done_ = true;
}

absl::Status Subscriber::RunSession(const std::shared_ptr<Session>& session) {
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
  arm();
  if (session->Write(start)) {
    v1::SubscribeResponse response;
    while (session->stream->Read(&response)) {
      arm();  // any message proves the stream alive
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
          warren::MutexLock lock(&mu_);
          // While stopping, a new delivery stays unacked: the server
          // requeues it when the stream ends.
          if (!stopping_) {
            tasks_.push_back(
                Task{session, std::move(*response.mutable_delivery())});
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

void Subscriber::OnSilence(uint64_t generation) {
  warren::MutexLock lock(&mu_);
  if (current_ == nullptr || generation != silence_generation_) return;
  current_->silent = true;
  current_->context.TryCancel();
}

void Subscriber::WorkLoop() {
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
      if (result.ok()) {
        settle.mutable_ack()->add_delivery_ids(task.delivery.delivery_id());
      } else {
        settle.mutable_nack()->add_delivery_ids(task.delivery.delivery_id());
        settle.mutable_nack()->set_requeue(options_.requeue_on_error);
      }
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

}  // namespace warren::client
