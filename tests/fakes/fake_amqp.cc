#include "tests/fakes/fake_amqp.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace warren::testing {

void FakeAmqp::Post(absl::AnyInvocable<void()> fn) {
  warren::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
}

bool FakeAmqp::RunUntilIdle() {
  bool ran = false;
  while (true) {
    absl::AnyInvocable<void()> next;
    {
      warren::MutexLock lock(&mu_);
      if (queue_.empty()) return ran;
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    next();
    ran = true;
  }
}

std::shared_ptr<amqp::SubscriptionSink> FakeAmqp::SinkOf(SubscriptionId id) {
  warren::MutexLock lock(&mu_);
  auto it = subscriptions_.find(id);
  return it == subscriptions_.end() ? nullptr : it->second.sink;
}

std::shared_ptr<amqp::SubscriptionSink> FakeAmqp::CloseLocked(
    SubscriptionId id) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return nullptr;
  std::shared_ptr<amqp::SubscriptionSink> sink = std::move(it->second.sink);
  subscriptions_.erase(it);
  return sink;
}

void FakeAmqp::Publish(amqp::OutgoingMessage message, absl::Time,
                       absl::AnyInvocable<void(absl::Status)> done) {
  ++publishes_;
  absl::Status status;
  {
    warren::MutexLock lock(&mu_);
    published_.push_back(std::move(message));
    if (!publish_failures_.empty()) {
      status = std::move(publish_failures_.front());
      publish_failures_.pop_front();
    }
  }
  Post([done = std::move(done), status]() mutable { done(status); });
}

void FakeAmqp::DeclareDelayQueue(amqp::DelayQueueSpec spec,
                                 absl::AnyInvocable<void(absl::Status)> done) {
  {
    warren::MutexLock lock(&mu_);
    delay_queues_.push_back(std::move(spec));
  }
  Post([done = std::move(done)]() mutable { done(absl::OkStatus()); });
}

std::vector<amqp::Settle> FakeAmqp::settle_kinds() {
  warren::MutexLock lock(&mu_);
  return settle_kinds_;
}

std::vector<amqp::OutgoingMessage> FakeAmqp::published() {
  warren::MutexLock lock(&mu_);
  return published_;
}

std::vector<amqp::DelayQueueSpec> FakeAmqp::delay_queues() {
  warren::MutexLock lock(&mu_);
  return delay_queues_;
}

void FakeAmqp::FailNextPublishes(std::vector<absl::Status> statuses) {
  warren::MutexLock lock(&mu_);
  for (auto& s : statuses) publish_failures_.push_back(std::move(s));
}

void FakeAmqp::Call(amqp::OutgoingMessage request, absl::Time, CallDone done) {
  ++calls_;
  request.reply_to = "amq.rabbitmq.reply-to";
  request.correlation_id = absl::StrCat("fake-call-", calls_.load());
  absl::StatusOr<amqp::Delivery> answer =
      call_answer ? call_answer(request)
                  : absl::DeadlineExceededError("fake: no reply");
  if (answer.ok()) answer->correlation_id = request.correlation_id;
  Post([done = std::move(done), answer = std::move(answer)]() mutable {
    done(std::move(answer));
  });
}

void FakeAmqp::DeclareExchange(std::string, amqp::ExchangeKind,
                               absl::AnyInvocable<void(absl::Status)> done) {
  Post([done = std::move(done)]() mutable { done(absl::OkStatus()); });
}

amqp::SubscriptionId FakeAmqp::Subscribe(
    amqp::SubscribeSpec spec, std::shared_ptr<amqp::SubscriptionSink> sink) {
  warren::MutexLock lock(&mu_);
  const SubscriptionId id = next_++;
  const size_t capacity = capacity_.load();
  if (capacity > 0 && subscriptions_.size() >= capacity) {
    ++refused_;
    queue_.push_back([sink = std::move(sink)] {
      sink->OnEnded(absl::ResourceExhaustedError("fake: no free channel"));
    });
    return id;
  }
  subscriptions_[id].sink = std::move(sink);
  const std::string queue =
      spec.queue.name.empty() ? absl::StrCat("amq.gen-", id) : spec.queue.name;
  queue_.push_back([this, id, queue] {
    if (auto sink = SinkOf(id)) sink->OnSubscribed(queue);
  });
  return id;
}

void FakeAmqp::Settle(SubscriptionId id, uint64_t delivery_tag,
                      amqp::Settle how) {
  warren::MutexLock lock(&mu_);
  settled_.emplace_back(id, delivery_tag);
  settle_kinds_.push_back(how);
  auto it = subscriptions_.find(id);
  // Settling on a subscription that ended is ignored, as by AmqpClient.
  if (it == subscriptions_.end()) return;
  if (it->second.unsettled.erase(delivery_tag) == 0) ++bad_settles_;
}

void FakeAmqp::Unsubscribe(SubscriptionId id) {
  std::shared_ptr<amqp::SubscriptionSink> sink;  // released after the lock
  warren::MutexLock lock(&mu_);
  sink = CloseLocked(id);
}

uint64_t FakeAmqp::Deliver(SubscriptionId id, amqp::Delivery delivery) {
  warren::MutexLock lock(&mu_);
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return 0;
  const uint64_t tag = it->second.next_tag++;
  it->second.unsettled.insert(tag);
  delivery.delivery_tag = tag;
  queue_.push_back([this, id, delivery = std::move(delivery)]() mutable {
    if (auto sink = SinkOf(id)) sink->OnDelivery(std::move(delivery));
  });
  return tag;
}

void FakeAmqp::End(SubscriptionId id, absl::Status status) {
  Post([this, id, status] {
    std::shared_ptr<amqp::SubscriptionSink> sink;
    {
      warren::MutexLock lock(&mu_);
      sink = CloseLocked(id);
    }
    if (sink) sink->OnEnded(status);
  });
}

void FakeAmqp::EndAll(absl::Status status) {
  Post([this, status] {
    std::map<SubscriptionId, Subscription> all;
    {
      warren::MutexLock lock(&mu_);
      all.swap(subscriptions_);
    }
    for (auto& [id, subscription] : all) subscription.sink->OnEnded(status);
  });
}

size_t FakeAmqp::open() {
  warren::MutexLock lock(&mu_);
  return subscriptions_.size();
}

std::vector<amqp::SubscriptionId> FakeAmqp::open_ids() {
  warren::MutexLock lock(&mu_);
  std::vector<SubscriptionId> ids;
  for (const auto& [id, subscription] : subscriptions_) ids.push_back(id);
  return ids;
}

size_t FakeAmqp::unsettled() {
  warren::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, subscription] : subscriptions_) {
    n += subscription.unsettled.size();
  }
  return n;
}

std::vector<std::pair<amqp::SubscriptionId, uint64_t>> FakeAmqp::settled() {
  warren::MutexLock lock(&mu_);
  return settled_;
}

size_t FakeAmqp::bad_settles() {
  warren::MutexLock lock(&mu_);
  return bad_settles_;
}

size_t FakeAmqp::refused() {
  warren::MutexLock lock(&mu_);
  return refused_;
}

}  // namespace warren::testing
