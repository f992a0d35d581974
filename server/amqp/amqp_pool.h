// AmqpPool: several AmqpClient connections to the same brokers behind one
// AmqpBroker, so that a replica can hold more subscriptions than one
// connection has channels (RabbitMQ's channel_max is 2047 by default, and
// every subscription is a channel of its own).
//
// The primary (first) connection carries everything but subscriptions:
// publishes, exchange declarations, the state, the listeners and the
// reconnect count. One confirm channel keeps a PublishStream's messages in
// order and its confirms in one place, and the primary's state is what
// health reports. Subscriptions go to the first connection with a free
// channel (a reachable one first); when every connection open so far is
// full, the pool opens another, up to `max_connections`. Beyond that, a
// subscription ends with RESOURCE_EXHAUSTED as on a single connection.
// Secondary connections stay open (and reconnect by themselves) until the
// pool is destroyed; when one is lost, its subscriptions end with
// UNAVAILABLE exactly like the primary's, so clients resubscribe.
//
// Threading: thread-safe. Each connection keeps its own I/O thread, the one
// owner of its rabbitmq-c state; the pool only routes calls. A channel is
// counted from Subscribe until the connection lets go of the subscription's
// sink (it ended, or Unsubscribe was carried out).
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "server/amqp/amqp_client.h"
#include "server/common/mutex.h"

namespace warren::amqp {

struct AmqpPoolOptions {
  // 8 connections of 2043 subscriptions each: 16,344 with RabbitMQ's
  // default channel_max.
  size_t max_connections = 8;
  // Subscriptions per connection while its capacity is not known yet (it
  // has not logged in): RabbitMQ's default channel_max (2047) less the
  // publish, scratch, spare publish and call channels (amqp_client.cc,
  // kFirstSubscriptionChannel).
  size_t default_capacity = 2043;
};

// Opens connection number `index` (0 is the primary); it connects in the
// background.
using AmqpConnectionFactory =
    absl::AnyInvocable<absl::StatusOr<std::unique_ptr<AmqpBroker>>(size_t)>;

class AmqpPool final : public AmqpBroker {
 public:
  // Opens the primary connection at once, the others when needed.
  static absl::StatusOr<std::unique_ptr<AmqpPool>> Create(
      AmqpPoolOptions options, AmqpConnectionFactory factory);
  // Connections are AmqpClients with `amqp`, named "<name>", "<name>-2", ...
  static absl::StatusOr<std::unique_ptr<AmqpPool>> Create(
      AmqpPoolOptions options, AmqpOptions amqp);
  ~AmqpPool() override;
  AmqpPool(const AmqpPool&) = delete;
  AmqpPool& operator=(const AmqpPool&) = delete;

  // The primary connection's.
  BrokerState state() const override { return primary_->state(); }
  absl::Status WaitConnected(absl::Duration timeout) override {
    return primary_->WaitConnected(timeout);
  }
  uint64_t reconnects() const override { return primary_->reconnects(); }
  size_t unconfirmed_publishes() const override {
    return primary_->unconfirmed_publishes();
  }
  int AddListener(absl::AnyInvocable<void(BrokerState)> listener) override {
    return primary_->AddListener(std::move(listener));
  }
  void RemoveListener(int id) override { primary_->RemoveListener(id); }
  void Publish(OutgoingMessage message, absl::Time deadline,
               absl::AnyInvocable<void(absl::Status)> done) override {
    primary_->Publish(std::move(message), deadline, std::move(done));
  }
  void DeclareExchange(std::string name, ExchangeKind kind,
                       absl::AnyInvocable<void(absl::Status)> done) override {
    primary_->DeclareExchange(std::move(name), kind, std::move(done));
  }
  // Calls go over the primary, like publishes.
  void Call(OutgoingMessage request, absl::Time deadline,
            CallDone done) override {
    primary_->Call(std::move(request), deadline, std::move(done));
  }
  uint64_t call_replies_dropped() const override {
    return primary_->call_replies_dropped();
  }
  void DeclareDelayQueue(DelayQueueSpec spec,
                         absl::AnyInvocable<void(absl::Status)> done) override {
    primary_->DeclareDelayQueue(std::move(spec), std::move(done));
  }

  // Across every connection the pool may open.
  size_t subscription_capacity() const override;

  SubscriptionId Subscribe(SubscribeSpec spec,
                           std::shared_ptr<SubscriptionSink> sink) override;
  void Settle(SubscriptionId id, uint64_t delivery_tag,
              amqp::Settle how) override;
  void Unsubscribe(SubscriptionId id) override;

  // Connections opened so far, and the subscriptions counted on one.
  size_t connections() const;
  size_t subscriptions(size_t index) const;
  // One connection's state and reconnect count (for metrics); kClosed and 0
  // for an index not opened.
  BrokerState connection_state(size_t index) const;
  uint64_t connection_reconnects(size_t index) const;

 private:
  struct Slot {
    // Declared before the connection, so that it outlives the sinks that
    // the connection releases while it shuts down.
    std::atomic<size_t> open{0};
    std::unique_ptr<AmqpBroker> broker;
  };
  class CountingSink;

  AmqpPool(AmqpPoolOptions options, AmqpConnectionFactory factory,
           std::unique_ptr<AmqpBroker> primary);
  // What a connection carries: its own negotiated capacity, once known.
  size_t Capacity(const Slot& slot) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The connection for one more subscription; opens one when all are full.
  size_t PickLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Slot* Find(SubscriptionId id, SubscriptionId* inner) const;

  const AmqpPoolOptions options_;
  AmqpBroker* const primary_;

  mutable warren::Mutex mu_;
  AmqpConnectionFactory factory_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
  bool warned_full_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren::amqp
