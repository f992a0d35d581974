#include "server/common/stream_lifetime.h"

#include <utility>

namespace warren {

bool StreamLifetime::Begin(std::shared_ptr<EndableStream> stream,
                           StreamRegistry& registry, const std::string& client,
                           StreamRegistry::Reauthorizer reauthorize) {
  EndableStream* raw = stream.get();
  std::weak_ptr<Drainable> weak = stream;
  {
    warren::MutexLock lock(&mu_);
    self_ = std::move(stream);
    registry_ = &registry;
  }
  // Outside our lock: once added, the registry may drain the stream, and
  // its OnDone may end this at once.
  absl::StatusOr<StreamRegistry::Id> admitted =
      registry.Add(std::move(weak), client);
  if (!admitted.ok()) {
    raw->EndStream(ToGrpcStatus(admitted.status()));
    return false;
  }
  bool ended;
  {
    warren::MutexLock lock(&mu_);
    ended = ended_;
    if (!ended) id_ = *admitted;
  }
  if (ended) {
    registry.Remove(*admitted);
  } else if (reauthorize) {
    registry.SetReauthorizer(*admitted, std::move(reauthorize));
  }
  return true;
}

void StreamLifetime::SetReauthorizer(StreamRegistry::Reauthorizer reauthorize) {
  StreamRegistry* registry;
  StreamRegistry::Id id;
  {
    warren::MutexLock lock(&mu_);
    registry = registry_;
    id = id_;
  }
  if (id != 0) registry->SetReauthorizer(id, std::move(reauthorize));
}

void StreamLifetime::End() {
  // Declared first, so destroyed last: the reactor (and this) may go with
  // it, after every member was read.
  std::shared_ptr<Drainable> last;
  ClientQuota::Lease lease;
  StreamRegistry* registry;
  StreamRegistry::Id id;
  {
    warren::MutexLock lock(&mu_);
    if (ended_) return;
    ended_ = true;
    last = std::move(self_);
    lease = std::move(lease_);
    registry = registry_;
    id = id_;
  }
  if (id != 0) registry->Remove(id);
  lease.Release();
}

}  // namespace warren
