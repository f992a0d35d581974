#include "server/metrics/metrics_server.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "prometheus/exposer.h"
#include "server/common/net_address.h"

namespace warren::metrics {

bool IsLoopbackAddress(const std::string& address) {
  // civetweb needs host:port; a bare port listens on every interface.
  if (address.find(':') == std::string::npos) return false;
  return IsLoopbackHost(HostOf(address));
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address) {
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // Two threads: a scrape or two at a time is all Prometheus does.
    exposer = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception& e) {
    // civetweb's CivetException: address in use, malformed, not local.
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what(),
                     " (address in use, not local, or malformed)"));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address));
  }
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(exposer), ports[0]));
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer,
                             int port)
    : exposer_(std::move(exposer)), port_(port) {}

MetricsServer::~MetricsServer() = default;

MetricsServer::Registration MetricsServer::Add(
    std::shared_ptr<prometheus::Collectable> collectable) {
  exposer_->RegisterCollectable(collectable);
  return Registration(this, std::move(collectable));
}

MetricsServer::Registration::Registration(
    MetricsServer* server, std::shared_ptr<prometheus::Collectable> collectable)
    : server_(server), collectable_(std::move(collectable)) {}

MetricsServer::Registration::Registration(Registration&& other) noexcept
    : server_(std::exchange(other.server_, nullptr)),
      collectable_(std::move(other.collectable_)) {}

MetricsServer::Registration& MetricsServer::Registration::operator=(
    Registration&& other) noexcept {
  if (this != &other) {
    Reset();
    server_ = std::exchange(other.server_, nullptr);
    collectable_ = std::move(other.collectable_);
  }
  return *this;
}

MetricsServer::Registration::~Registration() { Reset(); }

void MetricsServer::Registration::Reset() {
  if (server_ == nullptr) return;
  // Waits for a scrape in progress (it holds the same lock), so the
  // collectable is not read after this returns.
  server_->exposer_->RemoveCollectable(collectable_);
  server_ = nullptr;
  collectable_.reset();
}

}  // namespace warren::metrics
