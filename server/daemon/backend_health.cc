#include "server/daemon/backend_health.h"

#include "server/common/logging.h"

namespace warren::daemon {
namespace {

constexpr const char* kServices[] = {"", "warren.v1.ConfigService",
                                     "warren.v1.ElectionService",
                                     "warren.v1.MessagingService"};

}  // namespace

BackendHealth::BackendHealth(zk::ZkClient& zk, amqp::AmqpBroker& amqp)
    : zk_(zk), amqp_(amqp) {
  zk_listener_ = zk_.AddSessionListener([this](zk::SessionState) { Update(); });
  amqp_listener_ = amqp_.AddListener([this](amqp::BrokerState) { Update(); });
}

BackendHealth::~BackendHealth() {
  zk_.RemoveSessionListener(zk_listener_);
  amqp_.RemoveListener(amqp_listener_);
}

void BackendHealth::SetAccepting(bool accepting) {
  {
    warren::MutexLock lock(&mu_);
    accepting_ = accepting;
  }
  Update();
}

void BackendHealth::Attach(HealthService* health) {
  {
    warren::MutexLock lock(&mu_);
    health_ = health;
  }
  Update();
}

void BackendHealth::StartDraining() {
  warren::MutexLock lock(&mu_);
  draining_ = true;
  if (health_ != nullptr) {
    for (const char* service : kServices) {
      health_->SetServingStatus(service, false);
    }
    // Ignores every later update.
    health_->Shutdown();
  }
}

void BackendHealth::Update() {
  // The states are read under the lock: two backends' listeners may update
  // at once, and the one that takes the lock last must see both states as
  // they are now (read before the lock, a stale "not connected" could be
  // written last and stay: warrend NOT_SERVING with both backends up).
  warren::MutexLock lock(&mu_);
  const bool zk_ok = zk_.state() == zk::SessionState::kConnected;
  const bool amqp_ok = amqp_.reachable();
  const int serving = zk_ok && amqp_ok && accepting_ ? 1 : 0;
  if (health_ == nullptr || draining_ || serving == last_) return;
  last_ = serving;
  for (const char* service : kServices) {
    health_->SetServingStatus(service, serving == 1);
  }
  if (serving) {
    WARREN_LOG_INFO("health: SERVING");
  } else {
    WARREN_LOG_WARN(
        "health: NOT_SERVING (zookeeper {}, rabbitmq {}, listener {})",
        zk_ok ? "connected" : "not connected",
        amqp_ok ? "connected" : "not connected",
        accepting_ ? "accepting" : "out of file descriptors");
  }
}

}  // namespace warren::daemon
