// An in-memory AmqpBroker for unit tests and fuzzing of what sits on
// RabbitMQ (the connection pool, the messaging service). It records what it
// is asked and keeps each subscription's unsettled deliveries, so a test can
// tell whether a stream left anything behind.
//
// Like AmqpClient, it never calls back from inside a call (the services call
// it with their own locks held): publish results and subscription events are
// queued and run by RunUntilIdle(), on the thread that calls it (the test's,
// or a pump thread's). Events of a subscription that was unsubscribed by the
// time they run are dropped, as the real client drops them. Thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "server/amqp/amqp_client.h"
#include "server/common/mutex.h"

namespace warren::testing {

class FakeAmqp final : public amqp::AmqpBroker {
 public:
  // At most `capacity` subscriptions at once (0: no limit); more end with
  // RESOURCE_EXHAUSTED, as a connection out of channels does.
  explicit FakeAmqp(size_t capacity = 0) : capacity_(capacity) {}

  // Runs queued callbacks (and what they queue) until none is left; true if
  // it ran any.
  bool RunUntilIdle();

  // The broker's side of a subscription, queued like the real events. The
  // delivery gets the subscription's next tag (1, 2, ... as on an AMQP
  // channel); answers it, or 0 when the subscription is not open.
  uint64_t Deliver(SubscriptionId id, amqp::Delivery delivery);
  // Ends one subscription (a channel error) or all (the connection was
  // lost): the broker requeues what they did not settle.
  void End(SubscriptionId id, absl::Status status);
  void EndAll(absl::Status status);

  // What is open now.
  size_t open();
  std::vector<SubscriptionId> open_ids();
  // Deliveries of open subscriptions that were neither settled nor requeued.
  size_t unsettled();
  std::vector<std::pair<SubscriptionId, uint64_t>> settled();
  // How each of settled() was settled, in the same order.
  std::vector<amqp::Settle> settle_kinds();
  // Settles of a tag that is not outstanding on its open subscription
  // (never delivered, or settled before): a broker closes the channel with
  // PRECONDITION_FAILED for that, so the services must never send one.
  size_t bad_settles();
  size_t refused();
  // Every message published, and every delay queue declared, in order.
  std::vector<amqp::OutgoingMessage> published();
  std::vector<amqp::DelayQueueSpec> delay_queues();
  // What the next publishes answer, in order (then OK).
  void FailNextPublishes(std::vector<absl::Status> statuses);

  std::atomic<amqp::BrokerState> state_{amqp::BrokerState::kConnected};
  std::atomic<size_t> capacity_;
  std::atomic<int> publishes_{0};
  std::atomic<int> listeners_{0};

  // amqp::AmqpBroker.
  amqp::BrokerState state() const override { return state_.load(); }
  absl::Status WaitConnected(absl::Duration) override {
    return absl::OkStatus();
  }
  uint64_t reconnects() const override { return 7; }
  size_t subscription_capacity() const override { return capacity_.load(); }
  int AddListener(absl::AnyInvocable<void(amqp::BrokerState)>) override {
    return ++listeners_;
  }
  void RemoveListener(int) override { --listeners_; }
  // Confirms every message (queued).
  void Publish(amqp::OutgoingMessage message, absl::Time deadline,
               absl::AnyInvocable<void(absl::Status)> done) override;
  void DeclareExchange(std::string name, amqp::ExchangeKind kind,
                       absl::AnyInvocable<void(absl::Status)> done) override;
  // Records the spec and succeeds (queued).
  void DeclareDelayQueue(amqp::DelayQueueSpec spec,
                         absl::AnyInvocable<void(absl::Status)> done) override;
  // Opens the subscription and queues OnSubscribed (the queue's name, or a
  // generated one for a server-named queue).
  SubscriptionId Subscribe(
      amqp::SubscribeSpec spec,
      std::shared_ptr<amqp::SubscriptionSink> sink) override;
  void Settle(SubscriptionId id, uint64_t delivery_tag,
              amqp::Settle how) override;
  void Unsubscribe(SubscriptionId id) override;
  // Answers (queued) with what `call_answer` makes of the request, with the
  // request's correlation id stamped on a reply; without one, as a call
  // nobody answers: DEADLINE_EXCEEDED.
  void Call(amqp::OutgoingMessage request, absl::Time deadline,
            CallDone done) override;
  std::function<absl::StatusOr<amqp::Delivery>(const amqp::OutgoingMessage&)>
      call_answer;
  std::atomic<int> calls_{0};

 private:
  struct Subscription {
    std::shared_ptr<amqp::SubscriptionSink> sink;
    uint64_t next_tag = 1;
    std::set<uint64_t> unsettled;
  };

  void Post(absl::AnyInvocable<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);
  // The sink of an open subscription, or null.
  std::shared_ptr<amqp::SubscriptionSink> SinkOf(SubscriptionId id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the subscription; its sink is handed back to be released outside
  // the lock (the pool counts a channel until the sink goes).
  std::shared_ptr<amqp::SubscriptionSink> CloseLocked(SubscriptionId id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  warren::Mutex mu_;
  std::map<SubscriptionId, Subscription> subscriptions_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<SubscriptionId, uint64_t>> settled_
      ABSL_GUARDED_BY(mu_);
  std::vector<amqp::Settle> settle_kinds_ ABSL_GUARDED_BY(mu_);
  SubscriptionId next_ ABSL_GUARDED_BY(mu_) = 1;
  size_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bad_settles_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<amqp::OutgoingMessage> published_ ABSL_GUARDED_BY(mu_);
  std::vector<amqp::DelayQueueSpec> delay_queues_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::Status> publish_failures_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::testing
