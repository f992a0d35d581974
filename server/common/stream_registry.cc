#include "server/common/stream_registry.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace warren {

absl::StatusOr<StreamRegistry::Id> StreamRegistry::Add(
    std::weak_ptr<Drainable> stream) {
  warren::MutexLock lock(&mu_);
  if (draining_) {
    return absl::UnavailableError(
        "server is shutting down; open the stream elsewhere");
  }
  if (max_streams_ != 0 && streams_.size() >= max_streams_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "max_streams (", max_streams_,
        ") streams are open on this server; retry later or elsewhere"));
  }
  const Id id = next_id_++;
  streams_.emplace(id, std::move(stream));
  return id;
}

void StreamRegistry::Remove(Id id) {
  warren::MutexLock lock(&mu_);
  streams_.erase(id);
}

void StreamRegistry::DrainAll() {
  std::vector<std::shared_ptr<Drainable>> open;
  {
    warren::MutexLock lock(&mu_);
    draining_ = true;
    for (auto& [id, weak] : streams_) {
      if (auto stream = weak.lock()) open.push_back(std::move(stream));
    }
  }
  for (auto& stream : open) stream->Drain();
}

size_t StreamRegistry::size() const {
  warren::MutexLock lock(&mu_);
  return streams_.size();
}

}  // namespace warren
