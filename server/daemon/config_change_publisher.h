// Announces configuration changes on RabbitMQ (the seed's scenario:
// "ZooKeeper stores configuration, RabbitMQ announces its changes"): every
// change made through this server's ConfigService is published to a topic
// exchange with routing key = the config key with '/' turned into '.', the
// new entry as JSON for payload, and header `warren-change-type` = PUT or
// DELETE. Plain AMQP consumers bind to it (`app.#`) and hear about changes.
//
// Best effort after the fact: the change is already stored in ZooKeeper
// when it is announced; a publish that fails is logged and counted, never
// turned into a failure of the write. Writes made by other ZooKeeper clients
// or other Warren replicas are announced by those replicas, not this one.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "server/amqp/amqp_client.h"
#include "server/config/watch_cache.h"

namespace warren::daemon {

class ConfigChangePublisher {
 public:
  ConfigChangePublisher(amqp::AmqpBroker& amqp, std::string exchange);

  // Declares the exchange (durable topic); called again after a failure.
  void DeclareExchange();
  void Announce(config::Change::Type type, const config::CachedEntry& entry);

  uint64_t failures() const { return failures_->load(); }

 private:
  amqp::AmqpBroker& amqp_;
  const std::string exchange_;
  // Shared with publish callbacks, which may run after this is gone.
  std::shared_ptr<std::atomic<uint64_t>> failures_ =
      std::make_shared<std::atomic<uint64_t>>(0);
};

}  // namespace warren::daemon
