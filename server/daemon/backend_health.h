// Publishes the truth about the backends through grpc.health.v1: SERVING
// only while the ZooKeeper session is connected and RabbitMQ is reachable
// (for an AmqpPool: its primary connection, the one that publishes; a lost
// secondary ends its own subscriptions, which resubscribe elsewhere) and
// while the listener can accept connections (it cannot while the process
// is out of file descriptors), for the whole server ("") and for each
// warren.v1 service. Once draining starts, everything stays NOT_SERVING.
//
// Thread-safe; updates come from the backends' threads.
#pragma once

#include <atomic>

#include "server/amqp/amqp_client.h"
#include "server/common/mutex.h"
#include "server/daemon/health_service.h"
#include "server/zk/zk_client.h"

namespace warren::daemon {

class BackendHealth {
 public:
  BackendHealth(zk::ZkClient& zk, amqp::AmqpBroker& amqp);
  ~BackendHealth();

  // Starts publishing to `health`.
  void Attach(HealthService* health);
  // Whether the listener can accept connections now.
  void SetAccepting(bool accepting);
  // NOT_SERVING from now on.
  void StartDraining();

 private:
  void Update();

  zk::ZkClient& zk_;
  amqp::AmqpBroker& amqp_;
  int zk_listener_ = 0;
  int amqp_listener_ = 0;

  warren::Mutex mu_;
  HealthService* health_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int last_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace warren::daemon
