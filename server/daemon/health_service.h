// warrend's grpc.health.v1.Health, in place of gRPC's default health
// service (which cannot be limited: 90,000 Watch streams of one
// unauthenticated client took 1.5 GB). Check and Watch answer as gRPC's
// do: "" is the whole server, other names are the services whose status was
// set; Check of an unknown name is NOT_FOUND, Watch of one sends
// SERVICE_UNKNOWN and stays open for a later status; Watch sends the
// current status at once and every change after it; after Shutdown()
// everything is NOT_SERVING and stays so.
//
// Health stays open without credentials (probes carry none), but Watch
// streams are limited: per client (its principal when the call carries
// valid credentials, else its IP address) and in total, and each one also
// counts in the server's max_streams (StreamRegistry, which ends them at
// shutdown). Past a limit: RESOURCE_EXHAUSTED.
//
// Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "health.grpc.pb.h"
#include "server/auth/authorizer.h"
#include "server/common/client_quota.h"
#include "server/common/mutex.h"
#include "server/common/stream_registry.h"

namespace warren::daemon {

class HealthWatcher;

struct HealthServiceOptions {
  size_t max_watches = 1000;
  size_t max_watches_per_client = 100;
  // Null: auth off (clients are told apart by IP address only).
  const auth::Authorizer* authorizer = nullptr;
};

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  HealthService(StreamRegistry& streams, HealthServiceOptions options);
  ~HealthService() override;

  void SetServingStatus(const std::string& service, bool serving);
  // NOT_SERVING for every service from now on; later updates are ignored.
  void Shutdown();

  // Watch streams open now.
  size_t watches() const { return quota_.total(); }

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  friend class HealthWatcher;
  ServingStatus StatusLocked(const std::string& service) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unwatch(HealthWatcher* watcher, const std::string& service);
  std::string ClientOf(const grpc::CallbackServerContext& context) const;

  StreamRegistry& streams_;
  const HealthServiceOptions options_;
  ClientQuota quota_;
  mutable warren::Mutex mu_;
  std::map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
  std::map<std::string,
           std::map<HealthWatcher*, std::shared_ptr<HealthWatcher>>>
      watchers_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren::daemon
