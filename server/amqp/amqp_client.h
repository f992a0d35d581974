// AmqpClient: one connection to RabbitMQ (or to the first reachable broker
// of a cluster's URL list), and everything that goes over it: confirmed
// publishes, subscriptions, acks. warrend holds up to amqp_max_connections
// of them in an AmqpPool (amqp_pool.h), which spreads subscriptions over
// them.
//
// Threading: the rabbitmq-c connection, its state and all its channels belong
// to one I/O thread. Other threads hand it commands through a queue and wake
// it through an eventfd; it polls the socket and the eventfd together, so it
// neither busy-loops nor blocks in a read while commands wait. Callbacks
// (publish results, subscription events, state listeners) run on the I/O
// thread and must not block.
//
// Failure model: a broker-side channel error ends only the operation that
// caused it (a publish to a missing exchange is NOT_FOUND, a queue declared
// with other arguments ends that subscription with FAILED_PRECONDITION).
// When the connection is lost, unconfirmed publishes answer UNAVAILABLE,
// subscriptions end with UNAVAILABLE (the broker requeues what they did not
// ack), and the client reconnects with exponential backoff and jitter.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/amqp/amqp_types.h"
#include "server/common/mutex.h"

namespace warren::amqp {

struct AmqpOptions {
  std::vector<std::string> urls;
  absl::Duration heartbeat = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(5);
  // CA bundle for amqps:// brokers; empty uses the system's.
  std::string ca_file;
  // Client certificate (PEM chain) and its key, for amqps:// brokers that
  // verify peers; both or neither.
  std::string cert_file;
  std::string key_file;
  // Shown by the broker (management UI, rabbitmqctl list_connections).
  std::string connection_name = "warrend";
  // The URL tried first; after it the list is tried in order, wrapping.
  size_t first_url = 0;
  // Optional (metrics): called on the I/O thread with the time from a
  // message's basic.publish to its basic.ack; must not block.
  std::function<void(absl::Duration)> on_confirm;
};

enum class BrokerState { kConnecting, kConnected, kBlocked, kClosed };

// What the services need of RabbitMQ: one connection (AmqpClient) or several
// (AmqpPool, server/amqp/amqp_pool.h). The contracts below are AmqpClient's;
// callbacks run on an I/O thread and must not block.
class AmqpBroker {
 public:
  using SubscriptionId = amqp::SubscriptionId;

  virtual ~AmqpBroker() = default;

  virtual BrokerState state() const = 0;
  // Connected, blocked or not: the broker is reachable.
  bool reachable() const {
    const BrokerState s = state();
    return s == BrokerState::kConnected || s == BrokerState::kBlocked;
  }
  virtual absl::Status WaitConnected(absl::Duration timeout) = 0;
  virtual uint64_t reconnects() const = 0;
  // Publishes sent and not yet confirmed by the broker (for metrics; as of
  // the I/O thread's last wait, so it may lag by one batch).
  virtual size_t unconfirmed_publishes() const { return 0; }
  // How many subscriptions can be open at once (one channel each); 0 while
  // it is not known yet (the broker's channel_max comes with the login).
  virtual size_t subscription_capacity() const = 0;

  // Listeners must not add or remove listeners.
  virtual int AddListener(absl::AnyInvocable<void(BrokerState)> listener) = 0;
  virtual void RemoveListener(int id) = 0;

  virtual void Publish(OutgoingMessage message, absl::Time deadline,
                       absl::AnyInvocable<void(absl::Status)> done) = 0;
  virtual void DeclareExchange(std::string name, ExchangeKind kind,
                               absl::AnyInvocable<void(absl::Status)> done) = 0;
  virtual SubscriptionId Subscribe(SubscribeSpec spec,
                                   std::shared_ptr<SubscriptionSink> sink) = 0;
  // Declares a delay queue (and its exchange and binding) on the scratch
  // channel; idempotent. FAILED_PRECONDITION if it exists with other
  // arguments; NOT_FOUND if it has an exchange and dead-letters into a
  // named exchange that does not exist.
  virtual void DeclareDelayQueue(
      DelayQueueSpec spec, absl::AnyInvocable<void(absl::Status)> done) = 0;
  virtual void Settle(SubscriptionId id, uint64_t delivery_tag,
                      amqp::Settle how) = 0;
  virtual void Unsubscribe(SubscriptionId id) = 0;

  using CallDone = absl::AnyInvocable<void(absl::StatusOr<Delivery>)>;
  // Request/reply over RabbitMQ direct reply-to: publishes `request` (its
  // reply_to and correlation_id are the client's to set) with a publisher
  // confirm and answers `done` once with the first reply carrying the
  // call's fresh correlation id; DEADLINE_EXCEEDED at `deadline` without
  // one; FAILED_PRECONDITION when a mandatory request was unroutable;
  // publish errors as Publish; UNAVAILABLE when the reply channel is lost
  // while the call waits (the request may have been handled).
  virtual void Call(OutgoingMessage request, absl::Time deadline,
                    CallDone done) = 0;
  // Replies that found no waiting call (late or unknown), for metrics.
  virtual uint64_t call_replies_dropped() const { return 0; }
};

class AmqpClient final : public AmqpBroker {
 public:
  static absl::StatusOr<std::unique_ptr<AmqpClient>> Create(
      AmqpOptions options);
  ~AmqpClient() override;
  AmqpClient(const AmqpClient&) = delete;
  AmqpClient& operator=(const AmqpClient&) = delete;

  BrokerState state() const override { return state_.load(); }
  absl::Status WaitConnected(absl::Duration timeout) override;
  uint64_t reconnects() const override { return reconnects_.load(); }
  size_t unconfirmed_publishes() const override {
    return unconfirmed_publishes_.load(std::memory_order_relaxed);
  }
  // The broker's channel_max less the publish, scratch and call channels; kept
  // from the last login.
  size_t subscription_capacity() const override {
    return subscription_capacity_.load();
  }

  int AddListener(absl::AnyInvocable<void(BrokerState)> listener) override;
  void RemoveListener(int id) override;

  // Publishes `message` on a confirm-mode channel and calls `done` once:
  // OK only after the broker's basic.ack; FAILED_PRECONDITION if a mandatory
  // message was returned unroutable; NOT_FOUND for a missing exchange;
  // UNAVAILABLE on basic.nack or a lost connection; RESOURCE_EXHAUSTED while
  // the broker applies flow control; DEADLINE_EXCEEDED at `deadline`.
  void Publish(OutgoingMessage message, absl::Time deadline,
               absl::AnyInvocable<void(absl::Status)> done) override;

  // Declares a durable exchange (idempotent); FAILED_PRECONDITION if it
  // exists with another type.
  void DeclareExchange(std::string name, ExchangeKind kind,
                       absl::AnyInvocable<void(absl::Status)> done) override;

  void DeclareDelayQueue(DelayQueueSpec spec,
                         absl::AnyInvocable<void(absl::Status)> done) override;

  // Declares what `spec` names and starts consuming with `prefetch`
  // unacknowledged deliveries at most. The sink is held until the
  // subscription ends or Unsubscribe.
  SubscriptionId Subscribe(SubscribeSpec spec,
                           std::shared_ptr<SubscriptionSink> sink) override;
  // Settles one delivery of a subscription (ignored once it ended: the
  // broker has requeued its unacknowledged deliveries already).
  void Settle(SubscriptionId id, uint64_t delivery_tag,
              amqp::Settle how) override;
  // Stops consuming and closes the subscription's channel: the broker
  // requeues every delivery not acknowledged.
  void Unsubscribe(SubscriptionId id) override;

  // On a channel of its own (opened at the first call, consuming
  // amq.rabbitmq.reply-to, in confirm mode): direct reply-to answers only
  // the channel that consumes it, and a reply channel lost fails only the
  // calls, not the publishes.
  void Call(OutgoingMessage request, absl::Time deadline,
            CallDone done) override;
  uint64_t call_replies_dropped() const override {
    return call_replies_dropped_.load(std::memory_order_relaxed);
  }

 private:
  class IoLoop;
  struct Command;

  AmqpClient(AmqpOptions options, std::vector<BrokerAddress> brokers,
             int wake_fd);
  void Post(Command command);
  void SetState(BrokerState state);

  const AmqpOptions options_;
  const std::vector<BrokerAddress> brokers_;
  const int wake_fd_;
  std::atomic<bool> stopping_{false};
  std::atomic<BrokerState> state_{BrokerState::kConnecting};
  std::atomic<uint64_t> reconnects_{0};
  std::atomic<uint64_t> next_subscription_{1};
  std::atomic<size_t> subscription_capacity_{0};
  std::atomic<size_t> unconfirmed_publishes_{0};
  std::atomic<uint64_t> call_replies_dropped_{0};

  warren::Mutex listeners_mu_;
  std::map<int, absl::AnyInvocable<void(BrokerState)>> listeners_
      ABSL_GUARDED_BY(listeners_mu_);
  int next_listener_ ABSL_GUARDED_BY(listeners_mu_) = 1;

  warren::Mutex commands_mu_;
  std::vector<Command>* commands_ ABSL_GUARDED_BY(commands_mu_);

  std::unique_ptr<IoLoop> loop_;
  std::thread thread_;
};

}  // namespace warren::amqp
