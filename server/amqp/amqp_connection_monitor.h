// AmqpConnectionMonitor keeps one AMQP connection open to the broker (or to
// the first reachable broker of a cluster's URL list), with heartbeats, and
// reconnects with exponential backoff and jitter when it is lost. It tells
// the rest of the server whether RabbitMQ is reachable (health), and logs
// every state change, including broker flow control (connection.blocked).
//
// Threading: the connection and its state belong to the monitor's one I/O
// thread, which polls the socket together with a wake-up eventfd (used to
// stop it), so it never busy-loops and never blocks past a heartbeat.
// Everything else here is thread-safe. Listeners run on the I/O thread and
// must not block.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace warren::amqp {

// A parsed amqp:// or amqps:// URL.
struct BrokerAddress {
  std::string host;
  int port = 5672;
  std::string user;
  std::string password;
  std::string vhost;
  bool tls = false;
  // For logs: the URL without its password.
  std::string redacted;
};

// Parses `amqp[s]://user:password@host:port/vhost`; INVALID_ARGUMENT naming
// the URL (without its password) when it is malformed.
absl::StatusOr<BrokerAddress> ParseBrokerUrl(const std::string& url);

struct AmqpMonitorOptions {
  std::vector<std::string> urls;
  absl::Duration heartbeat = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(5);
  // CA bundle for amqps:// brokers; empty uses the system's.
  std::string ca_file;
};

enum class BrokerState { kConnecting, kConnected, kBlocked, kClosed };

class AmqpConnectionMonitor {
 public:
  static absl::StatusOr<std::unique_ptr<AmqpConnectionMonitor>> Create(
      AmqpMonitorOptions options);
  ~AmqpConnectionMonitor();

  BrokerState state() const { return state_.load(); }
  // Connected, blocked or not: the broker is reachable.
  bool reachable() const {
    const BrokerState s = state();
    return s == BrokerState::kConnected || s == BrokerState::kBlocked;
  }
  absl::Status WaitConnected(absl::Duration timeout);
  uint64_t reconnects() const { return reconnects_.load(); }

  // Listeners must not add or remove listeners.
  int AddListener(absl::AnyInvocable<void(BrokerState)> listener);
  void RemoveListener(int id);

 private:
  AmqpConnectionMonitor(AmqpMonitorOptions options,
                        std::vector<BrokerAddress> brokers, int wake_fd);
  void Run();
  // Connects to `broker` and serves the connection until it fails or the
  // monitor stops; answers why it ended.
  absl::Status ServeOne(const BrokerAddress& broker);
  void SetState(BrokerState state);
  // Waits for `timeout` or the stop signal; answers whether to stop.
  bool WaitOrStop(absl::Duration timeout);

  const AmqpMonitorOptions options_;
  const std::vector<BrokerAddress> brokers_;
  const int wake_fd_;
  std::atomic<bool> stopping_{false};
  std::atomic<BrokerState> state_{BrokerState::kConnecting};
  std::atomic<uint64_t> reconnects_{0};

  warren::Mutex listeners_mu_;
  std::map<int, absl::AnyInvocable<void(BrokerState)>> listeners_
      ABSL_GUARDED_BY(listeners_mu_);
  int next_listener_ ABSL_GUARDED_BY(listeners_mu_) = 1;

  std::thread thread_;
};

}  // namespace warren::amqp
