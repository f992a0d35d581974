#include "server/common/stream_registry.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace warren {

absl::StatusOr<StreamRegistry::Id> StreamRegistry::Add(
    std::weak_ptr<Drainable> stream, const std::string& client) {
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
  if (!client.empty() && max_streams_per_client_ != 0) {
    auto held = per_client_.find(client);
    if (held != per_client_.end() && held->second >= max_streams_per_client_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("max_streams_per_client (", max_streams_per_client_,
                       ") streams are open for client '", Abbreviated(client),
                       "'; end one first"));
    }
  }
  const Id id = next_id_++;
  streams_.emplace(id, Entry{std::move(stream), nullptr, client});
  if (!client.empty()) ++per_client_[client];
  return id;
}

void StreamRegistry::Remove(Id id) {
  warren::MutexLock lock(&mu_);
  auto found = streams_.find(id);
  if (found == streams_.end()) return;
  if (!found->second.client.empty()) {
    auto held = per_client_.find(found->second.client);
    if (held != per_client_.end() && --held->second == 0) {
      per_client_.erase(held);
    }
  }
  streams_.erase(found);
}

void StreamRegistry::DrainAll() {
  std::vector<std::shared_ptr<Drainable>> open;
  {
    warren::MutexLock lock(&mu_);
    draining_ = true;
    for (auto& [id, entry] : streams_) {
      if (auto stream = entry.stream.lock()) open.push_back(std::move(stream));
    }
  }
  for (auto& stream : open) stream->Drain();
}

void StreamRegistry::SetReauthorizer(Id id, Reauthorizer check) {
  warren::MutexLock lock(&mu_);
  auto found = streams_.find(id);
  if (found != streams_.end()) found->second.reauthorize = std::move(check);
}

size_t StreamRegistry::ReauthorizeAll() {
  std::vector<std::pair<std::shared_ptr<Drainable>, Reauthorizer>> checked;
  {
    warren::MutexLock lock(&mu_);
    for (auto& [id, entry] : streams_) {
      if (!entry.reauthorize) continue;
      if (auto stream = entry.stream.lock()) {
        checked.emplace_back(std::move(stream), entry.reauthorize);
      }
    }
  }
  size_t ended = 0;
  for (auto& [stream, reauthorize] : checked) {
    if (absl::Status allowed = reauthorize(); !allowed.ok()) {
      stream->Revoke(allowed);
      ++ended;
    }
  }
  return ended;
}

size_t StreamRegistry::size() const {
  warren::MutexLock lock(&mu_);
  return streams_.size();
}

}  // namespace warren
