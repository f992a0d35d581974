// The HTTP endpoint that Prometheus scrapes: GET /metrics in the text
// exposition format, served by prometheus-cpp's Exposer (civetweb) on
// threads of its own, apart from the gRPC server.
//
// /metrics has neither authentication nor TLS, so warrend binds it to a
// non-loopback address only when told to (IsLoopbackAddress and the
// metrics_allow_remote setting).
//
// Threading: thread-safe. A scrape collects every registered collectable
// under the Exposer's lock; once a Registration is destroyed its
// collectable is not collected any more, so a collectable that reads other
// objects must be registered after them and unregistered before them.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace warren::metrics {

// Whether the host of `address` ("host:port", "[v6]:port") is a loopback
// address (127.0.0.0/8, ::1 or localhost). An empty host (":9090") or a
// wildcard (0.0.0.0, [::]) is not.
bool IsLoopbackAddress(const std::string& address);

class MetricsServer {
 public:
  // Keeps a collectable registered while it lives.
  class Registration {
   public:
    Registration() = default;
    Registration(Registration&& other) noexcept;
    Registration& operator=(Registration&& other) noexcept;
    ~Registration();

   private:
    friend class MetricsServer;
    Registration(MetricsServer* server,
                 std::shared_ptr<prometheus::Collectable> collectable);
    void Reset();

    MetricsServer* server_ = nullptr;
    std::shared_ptr<prometheus::Collectable> collectable_;
  };

  // Listens on `address` ("host:port"; port 0 picks a free one) and serves
  // /metrics; UNAVAILABLE when it cannot listen there.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port it listens on.
  int port() const { return port_; }

  // Serves `collectable` at /metrics until the Registration is destroyed
  // (which must happen before this server is).
  [[nodiscard]] Registration Add(
      std::shared_ptr<prometheus::Collectable> collectable);

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port);

  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace warren::metrics
