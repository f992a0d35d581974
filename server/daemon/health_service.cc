#include "server/daemon/health_service.h"

#include <utility>
#include <vector>

#include "server/common/grpc_status.h"
#include "server/common/rejecting_reactors.h"
#include "server/common/stream_lifetime.h"
#include "server/common/stream_writer.h"

namespace warren::daemon {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream. Kept alive by its lifetime until OnDone, and found
// through the service's table while it watches; sends only the latest
// status when changes come faster than the client reads.
class HealthWatcher final
    : public grpc::ServerWriteReactor<HealthCheckResponse>,
      public EndableStream {
 public:
  HealthWatcher(HealthService& service, std::string name,
                ClientQuota::Lease lease)
      : EndableStream("server is shutting down"),
        service_(service),
        name_(std::move(name)),
        lifetime_(std::move(lease)) {}

  // Counts in the server's max_streams (for no client of its own); answers
  // whether it may open (if not, it has ended).
  bool Begin(std::shared_ptr<HealthWatcher> self, StreamRegistry& streams) {
    return lifetime_.Begin(std::move(self), streams, "");
  }
  const std::string& name() const { return name_; }

  void Send(HealthService::ServingStatus status) {
    warren::MutexLock lock(&mu_);
    HealthCheckResponse response;
    response.set_status(status);
    writer_.Push(std::move(response));
    writer_.MaybeWrite(this);
  }

  void EndStream(grpc::Status status) override {
    warren::MutexLock lock(&mu_);
    writer_.Finish(this, std::move(status));
  }

  void OnWriteDone(bool ok) override {
    warren::MutexLock lock(&mu_);
    if (writer_.WriteDone(this, ok)) writer_.MaybeWrite(this);
  }

  void OnCancel() override { EndStream(grpc::Status::CANCELLED); }

  void OnDone() override {
    service_.Unwatch(this, name_);
    lifetime_.End();  // may destroy this
  }

 private:
  HealthService& service_;
  const std::string name_;
  StreamLifetime lifetime_;
  warren::Mutex mu_;
  StreamWriter<HealthCheckResponse> writer_ ABSL_GUARDED_BY(mu_);
};

HealthService::HealthService(StreamRegistry& streams,
                             HealthServiceOptions options)
    : streams_(streams),
      options_(std::move(options)),
      quota_(ClientQuota::Limits{"max_health_watches",
                                 "max_health_watches_per_client",
                                 "health watches", options_.max_watches,
                                 options_.max_watches_per_client}) {}

HealthService::~HealthService() = default;

void HealthService::SetServingStatus(const std::string& service, bool serving) {
  // Sent under the lock, so that every watcher gets the statuses in the
  // order they were set (the watchers never take this lock under theirs).
  warren::MutexLock lock(&mu_);
  if (shutdown_) return;
  serving_[service] = serving;
  const ServingStatus status = StatusLocked(service);
  auto it = watchers_.find(service);
  if (it == watchers_.end()) return;
  for (auto& [raw, watcher] : it->second) watcher->Send(status);
}

void HealthService::Shutdown() {
  warren::MutexLock lock(&mu_);
  if (shutdown_) return;
  for (auto& [name, serving] : serving_) serving = false;
  shutdown_ = true;
  for (auto& [name, watchers] : watchers_) {
    if (serving_.count(name) == 0) continue;
    for (auto& [raw, watcher] : watchers) {
      watcher->Send(HealthCheckResponse::NOT_SERVING);
    }
  }
}

HealthService::ServingStatus HealthService::StatusLocked(
    const std::string& service) const {
  auto it = serving_.find(service);
  if (it == serving_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return it->second ? HealthCheckResponse::SERVING
                    : HealthCheckResponse::NOT_SERVING;
}

void HealthService::Unwatch(HealthWatcher* watcher,
                            const std::string& service) {
  std::shared_ptr<HealthWatcher> last;
  warren::MutexLock lock(&mu_);
  auto it = watchers_.find(service);
  if (it == watchers_.end()) return;
  auto found = it->second.find(watcher);
  if (found == it->second.end()) return;
  // Destroyed after the lock is released (declared before it).
  last = std::move(found->second);
  it->second.erase(found);
  if (it->second.empty()) watchers_.erase(it);
}

std::string HealthService::ClientOf(
    const grpc::CallbackServerContext& context) const {
  // Health needs no credentials, but a caller that brings valid ones is
  // counted as its principal (so that many pods of one service behind one
  // address are told apart). Without credentials: its IP address, and no
  // "rejected" log line for every probe.
  if (options_.authorizer != nullptr) {
    const auto& metadata = context.client_metadata();
    auto auth = context.auth_context();
    const bool has_credentials =
        metadata.find("authorization") != metadata.end() ||
        (auth != nullptr && auth->IsPeerAuthenticated());
    if (has_credentials) {
      auto caller = options_.authorizer->Authenticate(context, "Health/Watch");
      if (caller.ok()) return QuotaClient(caller->principal(), context.peer());
    }
  }
  return QuotaClient("", context.peer());
}

grpc::ServerUnaryReactor* HealthService::Check(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status status;
  {
    warren::MutexLock lock(&mu_);
    const ServingStatus serving = StatusLocked(request->service());
    if (serving == HealthCheckResponse::SERVICE_UNKNOWN) {
      status = grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
    } else {
      response->set_status(serving);
    }
  }
  reactor->Finish(status);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto lease = quota_.Acquire(ClientOf(*context));
  if (!lease.ok()) {
    return new RejectingWriteReactor<HealthCheckResponse>(
        ToGrpcStatus(lease.status()));
  }
  auto watcher = std::make_shared<HealthWatcher>(*this, request->service(),
                                                 *std::move(lease));
  if (!watcher->Begin(watcher, streams_)) {
    // OnDone follows: it gives the lease back, and Unwatch finds nothing to
    // remove.
    return watcher.get();
  }
  warren::MutexLock lock(&mu_);
  watchers_[request->service()][watcher.get()] = watcher;
  // Under the lock: no newer status can overtake this one.
  watcher->Send(StatusLocked(request->service()));
  return watcher.get();
}

}  // namespace warren::daemon
