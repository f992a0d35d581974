#include "bench/warren_clients.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "bench/bench_common.h"

namespace warren::bench {

bool WaitFor(absl::Notification& n, absl::Duration timeout) {
  return n.WaitForNotificationWithTimeout(timeout);
}

// ---------------------------------------------------------------------------

PublishStreamClient::PublishStreamClient(v1::MessagingService::Stub* stub,
                                         std::string queue, std::string payload,
                                         int window)
    : queue_(std::move(queue)), payload_(std::move(payload)), window_(window) {
  stub->async()->PublishStream(&context_, this);
}

void PublishStreamClient::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  StartRead(&response_);
  StartCall();
  MaybeWriteLocked();
}

void PublishStreamClient::Send(std::string payload) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_.push_back(std::move(payload));
  MaybeWriteLocked();
}

void PublishStreamClient::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_ = true;
  MaybeWriteLocked();
}

grpc::Status PublishStreamClient::WaitDone(absl::Duration timeout) {
  if (!WaitFor(done_, timeout)) {
    context_.TryCancel();
    done_.WaitForNotification();
  }
  return status_;
}

void PublishStreamClient::MaybeWriteLocked() {
  if (writing_ || half_closed_ || finished_) return;
  const bool paced = window_ == 0;
  const bool more =
      paced ? !pending_.empty() : (!stopping_ && outstanding_ < window_);
  if (more) {
    request_.Clear();
    request_.set_sequence(++sequence_);
    auto* m = request_.mutable_message();
    m->set_routing_key(queue_);
    if (paced) {
      m->set_payload(std::move(pending_.front()));
      pending_.pop_front();
    } else {
      m->set_payload(payload_);
    }
    ++outstanding_;
    writing_ = true;
    StartWrite(&request_);
    return;
  }
  if (stopping_ && outstanding_ == 0 && pending_.empty()) {
    half_closed_ = true;
    StartWritesDone();
  }
}

void PublishStreamClient::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  if (!ok) return;  // the stream is ending; OnDone says why
  MaybeWriteLocked();
}

void PublishStreamClient::OnReadDone(bool ok) {
  if (!ok) return;
  if (response_.code() == 0) {
    confirmed.fetch_add(1, std::memory_order_relaxed);
  } else {
    failed.fetch_add(1, std::memory_order_relaxed);
  }
  std::lock_guard<std::mutex> lock(mu_);
  --outstanding_;
  StartRead(&response_);
  MaybeWriteLocked();
}

void PublishStreamClient::OnDone(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
  }
  status_ = status;
  done_.Notify();
}

// ---------------------------------------------------------------------------

UnaryPublisher::UnaryPublisher(v1::MessagingService::Stub* stub,
                               std::string queue, std::string payload,
                               int callers)
    : stub_(stub), callers_(callers) {
  request_.set_routing_key(std::move(queue));
  request_.set_payload(std::move(payload));
}

UnaryPublisher::UnaryPublisher(v1::MessagingService::Stub* stub,
                               v1::PublishRequest request, int callers)
    : stub_(stub), request_(std::move(request)), callers_(callers) {}

void UnaryPublisher::Start() {
  active_.store(callers_);
  for (int i = 0; i < callers_; ++i) Issue();
}

void UnaryPublisher::Stop() { stop_.store(true); }

bool UnaryPublisher::WaitDone(absl::Duration timeout) {
  return WaitFor(done_, timeout);
}

void UnaryPublisher::Issue() {
  struct Call {
    grpc::ClientContext context;
    v1::PublishResponse response;
  };
  auto* call = new Call;
  call->context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  stub_->async()->Publish(&call->context, &request_, &call->response,
                          [this, call](grpc::Status status) {
                            delete call;
                            if (status.ok()) {
                              confirmed.fetch_add(1, std::memory_order_relaxed);
                            } else {
                              failed.fetch_add(1, std::memory_order_relaxed);
                            }
                            if (!stop_.load()) {
                              Issue();
                            } else if (active_.fetch_sub(1) == 1) {
                              done_.Notify();
                            }
                          });
}

// ---------------------------------------------------------------------------

SubscribeClient::SubscribeClient(v1::MessagingService::Stub* stub,
                                 std::string queue, int prefetch, int ack_batch,
                                 OnDelivery on_delivery,
                                 std::atomic<int>* settled)
    : queue_(std::move(queue)),
      prefetch_(prefetch),
      ack_batch_(std::max(1, ack_batch)),
      on_delivery_(std::move(on_delivery)),
      settled_counter_(settled) {
  stub->async()->Subscribe(&context_, this);
}

void SubscribeClient::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  v1::SubscribeRequest start;
  start.mutable_start()->set_queue(queue_);
  start.mutable_start()->set_max_in_flight(static_cast<uint32_t>(prefetch_));
  if (queue_options_.has_value()) {
    *start.mutable_start()->mutable_queue_options() = *queue_options_;
    *start.mutable_start()->mutable_offset() = offset_;
  }
  queue_writes_.push_back(std::move(start));
  StartRead(&response_);
  StartCall();
  MaybeWriteLocked();
}

void SubscribeClient::Stop() {
  std::lock_guard<std::mutex> lock(mu_);
  half_close_ = true;
  MaybeWriteLocked();
}

bool SubscribeClient::WaitSubscribed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (subscribed_n_.WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
      return true;
    }
    if (done()) return false;
  }
  return false;
}

grpc::Status SubscribeClient::WaitDone(absl::Duration timeout) {
  if (!WaitFor(done_, timeout)) {
    context_.TryCancel();
    done_.WaitForNotification();
  }
  return status_;
}

void SubscribeClient::Settle() {
  if (!settled_.exchange(true) && settled_counter_ != nullptr) {
    settled_counter_->fetch_add(1);
  }
}

void SubscribeClient::MaybeWriteLocked() {
  if (writing_ || half_closed_ || finished_) return;
  if (!queue_writes_.empty()) {
    writing_request_ = std::move(queue_writes_.front());
    queue_writes_.pop_front();
    writing_ = true;
    StartWrite(&writing_request_);
    return;
  }
  if (half_close_) {
    half_closed_ = true;
    StartWritesDone();
  }
}

void SubscribeClient::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  if (!ok) return;
  MaybeWriteLocked();
}

void SubscribeClient::OnReadDone(bool ok) {
  if (!ok) return;
  switch (response_.response_case()) {
    case v1::SubscribeResponse::kSubscribed:
      subscribed_.store(true);
      subscribed_n_.Notify();
      Settle();
      break;
    case v1::SubscribeResponse::kDelivery: {
      const int64_t now = NowNs();
      received.fetch_add(1, std::memory_order_relaxed);
      if (on_delivery_) on_delivery_(response_.delivery(), now);
      std::lock_guard<std::mutex> lock(mu_);
      pending_ack_.add_delivery_ids(response_.delivery().delivery_id());
      if (pending_ack_.delivery_ids_size() >= ack_batch_) {
        v1::SubscribeRequest ack;
        ack.mutable_ack()->Swap(&pending_ack_);
        queue_writes_.push_back(std::move(ack));
        MaybeWriteLocked();
      }
      break;
    }
    default:
      break;
  }
  StartRead(&response_);
}

void SubscribeClient::OnDone(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
  }
  status_ = status;
  Settle();
  done_.Notify();
}

// ---------------------------------------------------------------------------

void FanoutTracker::Reach(int64_t now_ns) {
  int64_t last = last_ns.load();
  while (now_ns > last && !last_ns.compare_exchange_weak(last, now_ns)) {
  }
  reached.fetch_add(1);
}

WatchClient::WatchClient(v1::ConfigService::Stub* stub, std::string key,
                         FanoutTracker* tracker,
                         std::atomic<int>* initial_counter)
    : tracker_(tracker), initial_counter_(initial_counter) {
  request_.set_key(std::move(key));
  stub->async()->WatchConfig(&context_, &request_, this);
}

void WatchClient::Start() {
  StartRead(&response_);
  StartCall();
}

grpc::Status WatchClient::WaitDone(absl::Duration timeout) {
  if (!WaitFor(done_, timeout)) {
    context_.TryCancel();
    done_.WaitForNotification();
  }
  return status_;
}

void WatchClient::OnReadDone(bool ok) {
  if (!ok) return;
  const int64_t now = NowNs();
  int64_t newest = seen_version_;
  for (const auto& e : response_.events()) {
    newest = std::max<int64_t>(newest, e.entry().version());
  }
  if (response_.initial_state() && initial_counter_ != nullptr) {
    initial_counter_->fetch_add(1);
  }
  const int64_t target = tracker_->target_version.load();
  if (target >= 0 && seen_version_ < target && newest >= target) {
    tracker_->Reach(now);
  }
  seen_version_ = newest;
  StartRead(&response_);
}

void WatchClient::OnDone(const grpc::Status& status) {
  status_ = status;
  done_.Notify();
}

// ---------------------------------------------------------------------------

ElectClient::ElectClient(v1::ElectionService::Stub* stub, std::string election,
                         std::string candidate_id, std::atomic<int>* settled)
    : settled_counter_(settled) {
  campaign_.mutable_campaign()->set_election(std::move(election));
  campaign_.mutable_campaign()->set_candidate_id(std::move(candidate_id));
  campaign_.mutable_campaign()->set_value("bench");
  resign_.mutable_resign();
  stub->async()->Elect(&context_, this);
}

void ElectClient::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = true;
  StartWrite(&campaign_);
  StartRead(&response_);
  StartCall();
}

void ElectClient::Resign() {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  if (writing_) {
    resign_wanted_ = true;
    return;
  }
  writing_ = true;
  StartWrite(&resign_);
}

void ElectClient::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  if (ok && resign_wanted_ && !finished_) {
    resign_wanted_ = false;
    writing_ = true;
    StartWrite(&resign_);
  }
}

void ElectClient::Settle() {
  if (!settled_.exchange(true) && settled_counter_ != nullptr) {
    settled_counter_->fetch_add(1);
  }
}

bool ElectClient::WaitElected(absl::Duration timeout) {
  return WaitFor(elected_n_, timeout);
}

bool ElectClient::WaitFollowing(absl::Duration timeout) {
  return WaitFor(following_n_, timeout);
}

grpc::Status ElectClient::WaitDone(absl::Duration timeout) {
  if (!WaitFor(done_, timeout)) {
    context_.TryCancel();
    done_.WaitForNotification();
  }
  return status_;
}

void ElectClient::OnReadDone(bool ok) {
  if (!ok) return;
  switch (response_.event_case()) {
    case v1::ElectResponse::kElected:
      if (!elected_n_.HasBeenNotified()) {
        elected_ns_.store(NowNs());
        elected_n_.Notify();
      }
      Settle();
      break;
    case v1::ElectResponse::kFollowing:
      if (!following_n_.HasBeenNotified()) following_n_.Notify();
      Settle();
      break;
    default:
      break;
  }
  StartRead(&response_);
}

void ElectClient::OnDone(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
  }
  status_ = status;
  Settle();
  done_.Notify();
}

}  // namespace warren::bench
